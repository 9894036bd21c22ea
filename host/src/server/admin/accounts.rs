//! Accounts: one form per account, generated from its plugin's settings JSON
//! Schema (types, enums, booleans, ranges, required keys, descriptions,
//! presets), so a third-party plugin gets its form with no host code.
//! Secrets are write-only: the page says "set" or "not set" and never sends
//! a stored value back. Buttons: Check (validate), Test settings (the
//! plugin's `check()` on the values in the form), Send test mail, Save.

use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::Form;
use serde::Deserialize;
use serde_json::Value;

mod form;

use form::{render, View};

use super::edit::{self, NewSecret};
use super::status::{record_check, steps_html};
use super::{csrf_field, esc, field, notice, page, url_enc, AdminState, Denied, Nav, Session};
use crate::config::is_secret_key;
use crate::engine::Engine;
use crate::loader::LoadedPlugin;

/// `GET /admin/accounts`
pub(super) async fn list(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    Ok(render_list(&st, &s, ""))
}

/// What a token's payload says (audience, roles or scopes, expiry); never the token.
fn token_claims(token: &str) -> String {
    use base64::Engine as _;
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let Some(c) = claims else {
        return format!("an opaque token of {} characters", token.len());
    };
    let text = |k: &str| match c.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
        None => "–".into(),
    };
    let exp = c
        .get("exp")
        .and_then(|e| e.as_i64())
        .map(|e| super::when(e * 1000))
        .unwrap_or_else(|| "–".into());
    format!(
        "audience {}; roles {}; scopes {}; expires {}",
        text("aud"),
        text("roles"),
        text("scp"),
        exp
    )
}

/// `POST /admin/oauth/{name}/token`: "get a token now" for an `[oauth.NAME]` client.
pub(super) async fn oauth_token(
    AxState(st): AxState<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Html<String>, Denied> {
    let s = st.post_session(&headers, field(&form, "csrf"))?;
    let engine = st.engine();
    let scope = field(&form, "scope")
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .unwrap_or("https://graph.microsoft.com/.default")
        .to_string();
    let top = if !engine.settings().oauth.contains_key(&name) {
        notice(
            false,
            &format!(
                "There is no OAuth client <code>[oauth.{}]</code>.",
                esc(&name)
            ),
        )
    } else {
        let (n, sc) = (name.clone(), scope.clone());
        let got = tokio::task::spawn_blocking(move || engine.oauth_token(&n, &sc))
            .await
            .unwrap_or_else(|e| {
                Err(mailhost_plugin_api::PluginError::permanent(format!(
                    "the token request stopped: {e}"
                )))
            });
        match got {
            Ok(token) => notice(
                true,
                &format!(
                    "<strong>[oauth.{}] issued a token</strong> for <code>{}</code>: {}. (The token itself is not shown.)",
                    esc(&name),
                    esc(&scope),
                    esc(&token_claims(&token))
                ),
            ),
            Err(e) => notice(
                false,
                &format!(
                    "<strong>[oauth.{}] did not issue a token</strong> for <code>{}</code>:<pre>{}</pre>",
                    esc(&name),
                    esc(&scope),
                    esc(&e.to_string())
                ),
            ),
        }
    };
    Ok(render_list(&st, &s, &top))
}

fn render_list(st: &AdminState, s: &Session, top: &str) -> Html<String> {
    let engine = st.engine();
    let mut body = String::from(top);
    if let Some(why) = edit::read_only_reason(engine.settings(), st.shared_outbox()) {
        body.push_str(&notice(false, &format!("Read-only here: {}.", esc(&why))));
    }
    body.push_str("<table><thead><tr><th scope=\"col\">Account</th><th scope=\"col\">Plugin</th><th scope=\"col\">From</th><th scope=\"col\">Description</th></tr></thead><tbody>");
    for a in engine.settings().accounts.values() {
        body.push_str(&format!(
            "<tr><th scope=\"row\"><a href=\"/admin/accounts/{}\">{}</a></th><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_enc(&a.name),
            esc(&a.name),
            esc(&a.plugin),
            esc(a.from.as_deref().unwrap_or("")),
            esc(&a.description)
        ));
    }
    body.push_str("</tbody></table>");
    let mut plugins = String::new();
    for p in &engine.plugins().plugins {
        plugins.push_str(&format!(
            "<option value=\"{n}\">{n} — {modes}</option>",
            n = esc(p.name()),
            modes = esc(&p
                .manifest()
                .modes
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join(", "))
        ));
    }
    body.push_str(&format!(
        "<h2>Add an account</h2><form method=\"get\" action=\"/admin/accounts/new\"><div class=\"field\"><label for=\"new-name\">Name</label><p class=\"help\" id=\"new-name-help\">Letters, digits, <code>-</code> and <code>_</code>; not the name of a mode.</p><input type=\"text\" id=\"new-name\" name=\"name\" required pattern=\"[A-Za-z0-9_-]+\" aria-describedby=\"new-name-help\"></div><div class=\"field\"><label for=\"new-plugin\">Plugin</label><select id=\"new-plugin\" name=\"plugin\">{plugins}</select></div><div class=\"actions\"><button type=\"submit\">Continue</button></div></form>"
    ));
    if !engine.settings().oauth.is_empty() {
        body.push_str("<h2>OAuth clients</h2><p>The host's token broker gets tokens for these clients (<code>[oauth.NAME]</code>); accounts name one with <code>oauth</code>.</p><table><thead><tr><th scope=\"col\">Client</th><th scope=\"col\">Tenant</th><th scope=\"col\">Client id</th><th scope=\"col\">Authority</th><th scope=\"col\">Get a token now</th></tr></thead><tbody>");
        for o in engine.settings().oauth.values() {
            let id = format!("scope-{}", o.name);
            body.push_str(&format!(
                "<tr><th scope=\"row\">{n}</th><td>{t}</td><td><code>{c}</code></td><td>{a}</td><td><form method=\"post\" action=\"/admin/oauth/{u}/token\">{csrf}<label class=\"sr-only\" for=\"{id}\">Scope for {n}</label><input type=\"text\" id=\"{id}\" name=\"scope\" value=\"https://graph.microsoft.com/.default\"> <button type=\"submit\">Get a token now</button></form></td></tr>",
                n = esc(&o.name),
                u = url_enc(&o.name),
                t = esc(&o.tenant),
                c = esc(&o.client_id),
                a = esc(&o.authority),
                id = esc(&id),
                csrf = csrf_field(s),
            ));
        }
        body.push_str("</tbody></table>");
    }
    page(s, Nav::Accounts, "Accounts", &body)
}

fn secret_kind(v: &Value) -> &'static str {
    match v.as_str().map(crate::secrets::kind) {
        Some(crate::secrets::SecretKind::Env) => "set (from an environment variable)",
        Some(crate::secrets::SecretKind::File) => "set (from a file)",
        Some(crate::secrets::SecretKind::Literal) => {
            "set (written in the config file: type it again here to move it into a secrets file)"
        }
        None => "set",
    }
}

/// The account's table as written in the config file (JSON), or from the
/// running settings when the file cannot be read.
fn stored(st: &AdminState, engine: &Engine, name: &str) -> serde_json::Map<String, Value> {
    let from_file = edit::load(engine.settings(), st.shared_outbox())
        .ok()
        .and_then(|l| l.text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("accounts")?.get(name).cloned())
        .and_then(|v| match crate::config::toml_to_json(&v) {
            Value::Object(m) => Some(m),
            _ => None,
        });
    if let Some(m) = from_file {
        return m;
    }
    let mut m = serde_json::Map::new();
    if let Some(a) = engine.settings().accounts.get(name) {
        if let Value::Object(o) = &a.settings {
            m.extend(o.clone());
        }
        m.insert("plugin".into(), Value::String(a.plugin.clone()));
        if let Some(f) = &a.from {
            m.insert("from".into(), Value::String(f.clone()));
        }
    }
    m
}

/// Splits stored values into what the form may show and the secrets' states.
fn view<'a>(
    name: &'a str,
    plugin: &'a LoadedPlugin,
    mut values: serde_json::Map<String, Value>,
    is_new: bool,
    etag: String,
) -> View<'a> {
    let schema = plugin.schema();
    let mut secrets = Vec::new();
    let keys: Vec<String> = values.keys().cloned().collect();
    for k in keys {
        if is_secret_key(&k, Some(schema)) {
            if let Some(v) = values.remove(&k) {
                secrets.push((k, secret_kind(&v)));
            }
        } else if values.get(&k).is_some_and(|v| v.is_object()) {
            // Maps (e.g. request headers) may hold secrets: only their keys are shown.
            if let Some(Value::Object(o)) = values.remove(&k) {
                let names: Vec<String> = o.keys().cloned().collect();
                values.insert(format!("{k}#keys"), Value::String(names.join(", ")));
            }
        }
    }
    View {
        name,
        plugin,
        values,
        secrets,
        is_new,
        etag,
        test_to: String::new(),
        errors: Default::default(),
    }
}

/// The validator's messages that are about `key` of account `account`.
fn errors_by_key(
    account: &str,
    plugin: &LoadedPlugin,
    errors: &[String],
) -> std::collections::BTreeMap<String, String> {
    let mut keys: Vec<String> = plugin
        .schema()
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.extend(["from", "max_per_minute", "description", "preset"].map(String::from));
    let mut out = std::collections::BTreeMap::new();
    for e in errors {
        let first = e.lines().next().unwrap_or("");
        for k in &keys {
            let about = first.contains(&format!("account `{account}` `{k}`"))
                || first.contains(&format!("[accounts.{account}] {k}"))
                || first.contains(&format!("accounts.{account}.{k}"));
            if about {
                out.entry(k.clone())
                    .and_modify(|m: &mut String| {
                        m.push('\n');
                        m.push_str(first)
                    })
                    .or_insert_with(|| first.to_string());
            }
        }
    }
    out
}

/// `GET /admin/accounts/{name}`
pub(super) async fn form(
    AxState(st): AxState<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    let engine = st.engine();
    let Some(acc) = engine.settings().accounts.get(&name) else {
        return Ok(page(
            &s,
            Nav::Accounts,
            "Account",
            &notice(false, &format!("There is no account <code>{}</code>. <a href=\"/admin/accounts\">All accounts</a>", esc(&name))),
        ));
    };
    let Some(plugin) = engine.plugins().get(&acc.plugin) else {
        return Ok(page(
            &s,
            Nav::Accounts,
            "Account",
            &notice(false, &format!("Plugin <code>{}</code> of account <code>{}</code> is not loaded; run <code>mailhost plugins</code> to see why.", esc(&acc.plugin), esc(&name))),
        ));
    };
    let etag = current_etag(&st, &engine);
    let v = view(&name, plugin, stored(&st, &engine, &name), false, etag);
    Ok(render(&st, &s, &v, ""))
}

fn current_etag(st: &AdminState, engine: &Engine) -> String {
    edit::load(engine.settings(), st.shared_outbox())
        .map(|l| l.etag)
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub(super) struct NewQuery {
    name: Option<String>,
    plugin: Option<String>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `GET /admin/accounts/new?name=&plugin=`
pub(super) async fn new_form(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Query(q): Query<NewQuery>,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    let engine = st.engine();
    let name = q.name.unwrap_or_default();
    let plugin_name = q.plugin.unwrap_or_default();
    let problem = if !valid_name(&name) {
        Some(format!("<code>{}</code> cannot be an account name: use letters, digits, <code>-</code> and <code>_</code>.", esc(&name)))
    } else if engine.settings().accounts.contains_key(&name) {
        Some(format!(
            "Account <code>{}</code> exists already: <a href=\"/admin/accounts/{}\">edit it</a>.",
            esc(&name),
            url_enc(&name)
        ))
    } else if engine.plugins().get(&plugin_name).is_none() {
        Some(format!(
            "Plugin <code>{}</code> is not loaded.",
            esc(&plugin_name)
        ))
    } else {
        None
    };
    if let Some(p) = problem {
        return Ok(page(&s, Nav::Accounts, "New account", &notice(false, &p)));
    }
    let Some(plugin) = engine.plugins().get(&plugin_name) else {
        return Ok(page(&s, Nav::Accounts, "New account", ""));
    };
    let etag = current_etag(&st, &engine);
    let v = view(&name, plugin, serde_json::Map::new(), true, etag);
    Ok(render(&st, &s, &v, ""))
}

/// Writes the form's values into the account's table. Secrets typed on the
/// page become secrets files (`for_test`: the typed value itself, kept in
/// memory only). Returns the secrets to write and the form's own mistakes.
fn apply_form(
    t: &mut toml_edit::Table,
    account: &str,
    plugin: &LoadedPlugin,
    form: &[(String, String)],
    for_test: bool,
) -> Result<Vec<NewSecret>, Vec<String>> {
    let schema = plugin.schema();
    let mut errors = Vec::new();
    let mut secrets = Vec::new();
    let mut props: Vec<(String, Value)> = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    props.push(("from".into(), serde_json::json!({"type": "string"})));
    props.push((
        "max_per_minute".into(),
        serde_json::json!({"type": "integer"}),
    ));
    props.push(("description".into(), serde_json::json!({"type": "string"})));
    if schema.get("x-presets").is_some() {
        props.push(("preset".into(), serde_json::json!({"type": "string"})));
    }
    edit::set(t, "plugin", plugin.name().into());
    for (key, prop) in &props {
        if key == "plugin" {
            continue;
        }
        if is_secret_key(key, Some(schema)) {
            if field(form, &format!("clear.{key}")).is_some() {
                t.remove(key);
                continue;
            }
            let typed = field(form, &format!("secret.{key}")).unwrap_or("");
            if typed.is_empty() {
                continue;
            }
            if for_test {
                edit::set(t, key, typed.into());
            } else {
                let file = edit::secret_file_name(account, key);
                edit::set(t, key, edit::secret_ref(&file).into());
                secrets.push(NewSecret {
                    file,
                    value: typed.to_string(),
                });
            }
            continue;
        }
        let kind = prop
            .get("type")
            .and_then(|k| k.as_str())
            .unwrap_or("string");
        let name = format!("k.{key}");
        match kind {
            "object" => {}
            "boolean" => {
                if field(form, &format!("present.{key}")).is_none() {
                    continue;
                }
                let on = field(form, &name) == Some("true");
                let default = prop
                    .get("default")
                    .and_then(|d| d.as_bool())
                    .unwrap_or(false);
                if on || t.contains_key(key) || default {
                    edit::set(t, key, on.into());
                }
            }
            _ => {
                let Some(raw) = field(form, &name) else {
                    continue;
                };
                let raw = raw.trim();
                if raw.is_empty() {
                    t.remove(key);
                    continue;
                }
                let value: toml_edit::Value = match kind {
                    "integer" => match raw.parse::<i64>() {
                        Ok(n) => n.into(),
                        Err(_) => {
                            errors.push(format!("{key}: `{raw}` is not a whole number"));
                            continue;
                        }
                    },
                    "number" => match raw.parse::<f64>() {
                        Ok(n) => n.into(),
                        Err(_) => {
                            errors.push(format!("{key}: `{raw}` is not a number"));
                            continue;
                        }
                    },
                    "array" => {
                        let mut a = toml_edit::Array::new();
                        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            a.push(part);
                        }
                        toml_edit::Value::Array(a)
                    }
                    _ => raw.into(),
                };
                edit::set(t, key, value);
            }
        }
    }
    if errors.is_empty() {
        Ok(secrets)
    } else {
        Err(errors)
    }
}

/// The form's values as a view again (after a check, test or refused save):
/// what was typed stays, secrets typed are not echoed.
fn view_from_form<'a>(
    st: &AdminState,
    engine: &Engine,
    name: &'a str,
    plugin: &'a LoadedPlugin,
    form: &[(String, String)],
    is_new: bool,
    etag: String,
) -> View<'a> {
    let mut base = if is_new {
        serde_json::Map::new()
    } else {
        stored(st, engine, name)
    };
    for (k, val) in form {
        if let Some(key) = k.strip_prefix("k.") {
            base.insert(key.to_string(), Value::String(val.clone()));
        }
    }
    // Unchecked boxes send nothing.
    for (k, _) in form {
        if let Some(key) = k.strip_prefix("present.") {
            let on = field(form, &format!("k.{key}")) == Some("true");
            base.insert(key.to_string(), Value::Bool(on));
        }
    }
    let mut v = view(name, plugin, base, is_new, etag);
    v.test_to = field(form, "test_to").unwrap_or("").to_string();
    v
}

/// `POST /admin/accounts/{name}` with `do` = validate | test | send-test | save.
pub(super) async fn submit(
    AxState(st): AxState<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Html<String>, Denied> {
    let s = st.post_session(&headers, field(&form, "csrf"))?;
    let engine = st.engine();
    let is_new = field(&form, "new").is_some();
    let plugin_name = field(&form, "plugin").unwrap_or("").to_string();
    let etag = field(&form, "etag").unwrap_or("").to_string();
    let action = field(&form, "do").unwrap_or("validate").to_string();
    let Some(plugin) = engine.plugins().get(&plugin_name) else {
        return Ok(page(
            &s,
            Nav::Accounts,
            "Account",
            &notice(
                false,
                &format!("Plugin <code>{}</code> is not loaded.", esc(&plugin_name)),
            ),
        ));
    };
    if !valid_name(&name) || (is_new && engine.settings().accounts.contains_key(&name)) {
        return Ok(page(
            &s,
            Nav::Accounts,
            "Account",
            &notice(
                false,
                &format!(
                    "<code>{}</code> cannot be used as a new account's name.",
                    esc(&name)
                ),
            ),
        ));
    }
    let plugin = plugin.clone();
    if action == "save" {
        let n = name.clone();
        let p = plugin.clone();
        let f = form.clone();
        let r = edit::save(&st, &etag, move |doc| {
            let t = edit::table(doc, &["accounts", &n])?;
            apply_form(t, &n, &p, &f, false).map_err(|e| e.join("; "))
        })
        .await;
        let engine = st.engine();
        let top = match &r {
            Ok(warnings) => {
                tracing::info!("admin: token `{}` saved account `{name}`", s.token);
                let w = if warnings.is_empty() {
                    String::new()
                } else {
                    format!("<p>Warnings:</p><pre>{}</pre>", esc(&warnings.join("\n")))
                };
                notice(true, &format!("<strong>Saved and applied.</strong> The service uses the new settings from now on.{w}"))
            }
            Err(e) => notice(false, &e.html()),
        };
        let v = match &r {
            Ok(_) => view(
                &name,
                &plugin,
                stored(&st, &engine, &name),
                false,
                current_etag(&st, &engine),
            ),
            Err(e) => {
                let mut v = view_from_form(&st, &engine, &name, &plugin, &form, is_new, etag);
                if let edit::SaveError::Invalid(errs) = e {
                    v.errors = errors_by_key(&name, &plugin, errs);
                }
                v
            }
        };
        return Ok(render(&st, &s, &v, &top));
    }
    // A candidate config from the form (secrets typed are used as they are, in memory only).
    let candidate = async {
        let l = edit::load(engine.settings(), st.shared_outbox()).map_err(|e| vec![e])?;
        let doc = edit::parse(&l).map_err(|e| vec![e])?;
        let with_form = |for_test: bool| -> Result<(String, usize), Vec<String>> {
            let mut doc = doc.clone();
            let t = edit::table(&mut doc, &["accounts", &name]).map_err(|e| vec![e])?;
            let secrets = apply_form(t, &name, &plugin, &form, for_test)?;
            Ok((doc.to_string(), secrets.len()))
        };
        let (text, _) = with_form(true)?;
        // No secret typed: the text is the one a save would write, which
        // may go to a file for the check child (a typed value never does).
        if let Ok((_, 0)) = with_form(false) {
            edit::check_in_child(&l, &text, engine.plugins()).await;
        }
        edit::validate(&l, &text, engine.plugins())
    }
    .await;
    let mut top = String::new();
    match (&candidate, action.as_str()) {
        (Err(errs), _) => top.push_str(&notice(
            false,
            &format!(
                "<strong>These settings do not validate</strong> (the same check as <code>mailhost config validate</code>):<pre>{}</pre>",
                esc(&errs.join("\n"))
            ),
        )),
        (Ok(_), "validate") => top.push_str(&notice(true, "The settings validate. Nothing was saved yet.")),
        (Ok(settings), "test" | "send-test") => {
            let to = field(&form, "test_to").map(str::trim).filter(|t| !t.is_empty());
            if action == "send-test" && to.is_none() {
                top.push_str(&notice(false, "Give a test recipient to send a test mail to."));
            } else {
                let trial = Arc::new(Engine::new(settings.clone(), engine.plugins().clone()));
                let to = if action == "send-test" { to } else { None };
                let got = super::status::run_check(trial.clone(), &name, to).await;
                let t2 = trial.clone();
                let _ = tokio::task::spawn_blocking(move || t2.close()).await;
                // A test of the running settings is also the account's connection state.
                let same = settings.accounts.get(&name).map(|a| &a.settings)
                    == engine.settings().accounts.get(&name).map(|a| &a.settings);
                if !is_new && same {
                    record_check(&st, &name, &got).await;
                }
                top.push_str(&steps_html(&name, &got));
            }
        }
        (Ok(_), other) => top.push_str(&notice(false, &format!("Unknown action <code>{}</code>.", esc(other)))),
    }
    let mut v = view_from_form(&st, &engine, &name, &plugin, &form, is_new, etag);
    if let Err(errs) = &candidate {
        v.errors = errors_by_key(&name, &plugin, errs);
    }
    Ok(render(&st, &s, &v, &top))
}
