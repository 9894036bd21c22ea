//! Policy (system modes, autodetect order, user selection, preferred sender,
//! the kill switch, tenants, purposes and support addresses), Users
//! (per-user modes and credentials) and Explain (the policy trace, as
//! `mailhost policy explain` prints it).

use axum::extract::{Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::Form;
use serde::Deserialize;

use super::edit::{self, NewSecret};
use super::{csrf_field, esc, field, notice, page, AdminState, Denied, Nav, Session};
use crate::config::{Settings, COMPOSE_MODES, SEND_MODES};
use crate::policy::{Action, Request};

fn select(id: &str, name: &str, options: &[String], cur: &str, empty: Option<&str>) -> String {
    let mut o = String::new();
    if let Some(e) = empty {
        o.push_str(&format!(
            "<option value=\"\"{}>{}</option>",
            if cur.is_empty() { " selected" } else { "" },
            esc(e)
        ));
    }
    for v in options {
        o.push_str(&format!(
            "<option value=\"{v}\"{sel}>{v}</option>",
            v = esc(v),
            sel = if v == cur { " selected" } else { "" }
        ));
    }
    format!(
        "<select id=\"{}\" name=\"{}\">{o}</select>",
        esc(id),
        esc(name)
    )
}

fn checkbox(id: &str, name: &str, label: &str, on: bool, help: &str) -> String {
    format!(
        "<div class=\"field check\"><input type=\"hidden\" name=\"present.{n}\" value=\"1\"><input type=\"checkbox\" id=\"{id}\" name=\"{n}\" value=\"true\"{c} aria-describedby=\"{id}-help\"> <label for=\"{id}\">{l}</label><p class=\"help\" id=\"{id}-help\">{h}</p></div>",
        id = esc(id),
        n = esc(name),
        c = if on { " checked" } else { "" },
        l = esc(label),
        h = esc(help),
    )
}

fn text(id: &str, name: &str, label: &str, cur: &str, help: &str) -> String {
    format!(
        "<div class=\"field\"><label for=\"{id}\">{l}</label><p class=\"help\" id=\"{id}-help\">{h}</p><input type=\"text\" id=\"{id}\" name=\"{n}\" value=\"{v}\" aria-describedby=\"{id}-help\"></div>",
        id = esc(id),
        n = esc(name),
        l = esc(label),
        h = esc(help),
        v = esc(cur),
    )
}

fn labelled(id: &str, label: &str, help: &str, control: &str) -> String {
    format!(
        "<div class=\"field\"><label for=\"{id}\">{l}</label><p class=\"help\">{h}</p>{control}</div>",
        id = esc(id),
        l = esc(label),
        h = esc(help),
    )
}

fn modes_with_accounts(modes: &[&str], s: &Settings) -> Vec<String> {
    modes
        .iter()
        .map(|m| m.to_string())
        .chain(s.accounts.keys().cloned())
        .collect()
}

fn read_only_notice(st: &AdminState, s: &Settings) -> (bool, String) {
    match edit::read_only_reason(s, st.shared_outbox()) {
        Some(why) => (
            true,
            notice(false, &format!("Read-only here: {}.", esc(&why))),
        ),
        None => (false, String::new()),
    }
}

fn etag_field(st: &AdminState, s: &Settings) -> String {
    let etag = edit::load(s, st.shared_outbox())
        .map(|l| l.etag)
        .unwrap_or_default();
    format!(
        "<input type=\"hidden\" name=\"etag\" value=\"{}\">",
        esc(&etag)
    )
}

fn render_policy(st: &AdminState, s: &Session, top: &str) -> Html<String> {
    let engine = st.engine();
    let set = engine.settings();
    let p = &set.policy;
    let (ro, mut body) = read_only_notice(st, set);
    body.insert_str(0, top);
    let accounts: Vec<String> = set.accounts.keys().cloned().collect();
    // The kill switch, on its own with a confirmation.
    body.push_str(&format!(
        "<h2>Sending</h2><p>Sending is <strong id=\"sending-state\">{}</strong>.</p>",
        if p.enabled {
            "on"
        } else {
            "off: nothing is sent; queued mail waits"
        }
    ));
    if !ro {
        if p.enabled {
            body.push_str(&format!(
                "<form method=\"post\" action=\"/admin/policy\" data-confirm=\"Switch all sending off? Nothing is sent until it is switched on again.\">{}{}<input type=\"hidden\" name=\"do\" value=\"kill\"><div class=\"field check\"><input type=\"checkbox\" id=\"kill-confirm\" name=\"confirm\" value=\"1\"> <label for=\"kill-confirm\">I understand that no mail leaves until sending is switched on again</label></div><div class=\"actions\"><button type=\"submit\" class=\"danger\" id=\"kill-switch\">Switch sending off</button></div></form>",
                csrf_field(s),
                etag_field(st, set)
            ));
        } else {
            body.push_str(&format!(
                "<form method=\"post\" action=\"/admin/policy\">{}{}<input type=\"hidden\" name=\"do\" value=\"unkill\"><div class=\"actions\"><button type=\"submit\" class=\"primary\" id=\"kill-switch\">Switch sending on</button></div></form>",
                csrf_field(s),
                etag_field(st, set)
            ));
        }
    }
    body.push_str(&format!(
        "<h2>Modes</h2><form method=\"post\" action=\"/admin/policy\">{}{}<input type=\"hidden\" name=\"do\" value=\"save\">",
        csrf_field(s),
        etag_field(st, set)
    ));
    body.push_str(&labelled(
        "p-account",
        "System account",
        "the global account; tenants may name their own",
        &select(
            "p-account",
            "account",
            &accounts,
            p.account.as_deref().unwrap_or(""),
            Some("none (decided by preferred sender)"),
        ),
    ));
    body.push_str(&labelled(
        "p-send",
        "Send mode",
        "autodetect tries the order below; or name a mode or an account",
        &select(
            "p-send",
            "send_mode",
            &modes_with_accounts(SEND_MODES, set),
            &p.send_mode,
            None,
        ),
    ));
    body.push_str(&text(
        "p-send-auto",
        "send_autodetect",
        "Send autodetect order",
        &p.send_autodetect.join(", "),
        "comma-separated: account (the system or tenant account), outlook, mapi-full, mapi-simple, smtp, graph",
    ));
    body.push_str(&labelled(
        "p-compose",
        "Compose mode",
        "how a message is opened for the user to edit",
        &select(
            "p-compose",
            "compose_mode",
            &COMPOSE_MODES
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>(),
            &p.compose_mode,
            None,
        ),
    ));
    body.push_str(&text(
        "p-compose-auto",
        "compose_autodetect",
        "Compose autodetect order",
        &p.compose_autodetect.join(", "),
        "comma-separated compose modes, tried in order",
    ));
    body.push_str(&checkbox(
        "p-user-send",
        "allow_user_send_selection",
        "Allow user selection (send)",
        p.allow_user_send_selection,
        "users may choose their own send mode",
    ));
    body.push_str(&checkbox(
        "p-user-compose",
        "allow_user_compose_selection",
        "Allow user selection (compose)",
        p.allow_user_compose_selection,
        "users may choose their own compose mode",
    ));
    body.push_str(&checkbox(
        "p-m365-web",
        "allow_microsoft365_web",
        "Allow Microsoft 365 web",
        p.allow_microsoft365_web,
        "compose may open Outlook on the web (m365-draft)",
    ));
    body.push_str(&labelled(
        "p-preferred",
        "Preferred sender",
        "used when no system account is set and both a Microsoft 365 and an SMTP account exist",
        &select(
            "p-preferred",
            "preferred_sender",
            &["graph".to_string(), "smtp".to_string()],
            &p.preferred_sender,
            None,
        ),
    ));
    // Tenants.
    body.push_str("<h2>Tenants</h2>");
    if set.tenants.is_empty() {
        body.push_str("<p>No tenants: every message uses the system account.</p>");
    } else {
        body.push_str("<table><thead><tr><th scope=\"col\">Tenant</th><th scope=\"col\">Account</th><th scope=\"col\">Support address</th></tr></thead><tbody>");
        for t in set.tenants.values() {
            let id = format!("t-{}-account", t.name);
            let sid = format!("t-{}-support", t.name);
            body.push_str(&format!(
                "<tr><th scope=\"row\">{n}</th><td><label class=\"sr-only\" for=\"{id}\">Account of {n}</label>{sel}</td><td><label class=\"sr-only\" for=\"{sid}\">Support address of {n}</label><input type=\"text\" id=\"{sid}\" name=\"tenant.{n}.support_address\" value=\"{sup}\"></td></tr>",
                n = esc(&t.name),
                id = esc(&id),
                sid = esc(&sid),
                sel = select(&id, &format!("tenant.{}.account", t.name), &accounts, t.account.as_deref().unwrap_or(""), Some("the global account")),
                sup = esc(t.support_address.as_deref().unwrap_or("")),
            ));
        }
        body.push_str("</tbody></table>");
    }
    // Purposes.
    body.push_str("<h2>Purposes</h2>");
    if set.purposes.is_empty() {
        body.push_str("<p>No purposes configured.</p>");
    } else {
        body.push_str("<table><thead><tr><th scope=\"col\">Purpose</th><th scope=\"col\">Accounts</th><th scope=\"col\">Permitted recipients</th><th scope=\"col\">Support address</th></tr></thead><tbody>");
        for pu in set.purposes.values() {
            let rid = format!("pu-{}-rcpt", pu.name);
            let sid = format!("pu-{}-support", pu.name);
            body.push_str(&format!(
                "<tr><th scope=\"row\">{n}</th><td>{acc}</td><td><label class=\"sr-only\" for=\"{rid}\">Permitted recipients of {n}</label><input type=\"text\" id=\"{rid}\" name=\"purpose.{n}.allowed_recipients\" value=\"{r}\"></td><td><label class=\"sr-only\" for=\"{sid}\">Support address of {n}</label><input type=\"text\" id=\"{sid}\" name=\"purpose.{n}.support_address\" value=\"{sup}\"></td></tr>",
                n = esc(&pu.name),
                rid = esc(&rid),
                sid = esc(&sid),
                acc = esc(&pu.accounts.join(", ")),
                r = esc(&pu.allowed_recipients.join(", ")),
                sup = esc(pu.support_address.as_deref().unwrap_or("")),
            ));
        }
        body.push_str("</tbody></table>");
    }
    if !ro {
        body.push_str(
            "<div class=\"actions\"><button type=\"submit\" class=\"primary\">Save</button></div>",
        );
    }
    body.push_str("</form>");
    page(s, Nav::Policy, "Policy", &body)
}

/// `GET /admin/policy`
pub(super) async fn show(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    Ok(render_policy(&st, &s, ""))
}

fn list_value(raw: &str) -> toml_edit::Value {
    let mut a = toml_edit::Array::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        a.push(part);
    }
    toml_edit::Value::Array(a)
}

/// Sets a string key, or removes it when empty.
fn set_or_remove(t: &mut toml_edit::Table, key: &str, v: &str) {
    let v = v.trim();
    if v.is_empty() {
        t.remove(key);
    } else {
        edit::set(t, key, v.into());
    }
}

fn saved_notice(r: &Result<Vec<String>, edit::SaveError>, what: &str) -> String {
    match r {
        Ok(w) if w.is_empty() => notice(
            true,
            &format!("<strong>{}</strong> Applied without a restart.", esc(what)),
        ),
        Ok(w) => notice(
            true,
            &format!(
                "<strong>{}</strong> Applied without a restart. Warnings:<pre>{}</pre>",
                esc(what),
                esc(&w.join("\n"))
            ),
        ),
        Err(e) => notice(false, &e.html()),
    }
}

/// `POST /admin/policy` with `do` = save | kill | unkill.
pub(super) async fn submit(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Html<String>, Denied> {
    let s = st.post_session(&headers, field(&form, "csrf"))?;
    let etag = field(&form, "etag").unwrap_or("").to_string();
    let top = match field(&form, "do").unwrap_or("") {
        "kill" => {
            if field(&form, "confirm") != Some("1") {
                notice(
                    false,
                    "Sending stays on: tick the confirmation to switch it off.",
                )
            } else {
                let r = edit::save(&st, &etag, |doc| {
                    edit::set(edit::table(doc, &["policy"])?, "enabled", false.into());
                    Ok(Vec::new())
                })
                .await;
                if r.is_ok() {
                    tracing::warn!(
                        "admin: token `{}` switched sending off (kill switch)",
                        s.token
                    );
                }
                saved_notice(&r, "Sending is switched off.")
            }
        }
        "unkill" => {
            let r = edit::save(&st, &etag, |doc| {
                edit::set(edit::table(doc, &["policy"])?, "enabled", true.into());
                Ok(Vec::new())
            })
            .await;
            if r.is_ok() {
                tracing::info!("admin: token `{}` switched sending on", s.token);
            }
            saved_notice(&r, "Sending is switched on.")
        }
        "save" => {
            let f = form.clone();
            let r = edit::save(&st, &etag, move |doc| {
                {
                    let p = edit::table(doc, &["policy"])?;
                    for k in ["account", "send_mode", "compose_mode", "preferred_sender"] {
                        if let Some(v) = field(&f, k) {
                            set_or_remove(p, k, v);
                        }
                    }
                    for k in ["send_autodetect", "compose_autodetect"] {
                        if let Some(v) = field(&f, k) {
                            if v.trim().is_empty() {
                                p.remove(k);
                            } else {
                                edit::set(p, k, list_value(v));
                            }
                        }
                    }
                    for k in [
                        "allow_user_send_selection",
                        "allow_user_compose_selection",
                        "allow_microsoft365_web",
                    ] {
                        if field(&f, &format!("present.{k}")).is_some() {
                            edit::set(p, k, (field(&f, k) == Some("true")).into());
                        }
                    }
                }
                for (k, v) in &f {
                    if let Some(rest) = k.strip_prefix("tenant.") {
                        if let Some((name, key)) = rest.rsplit_once('.') {
                            if key == "account" || key == "support_address" {
                                set_or_remove(edit::table(doc, &["tenants", name])?, key, v);
                            }
                        }
                    } else if let Some(rest) = k.strip_prefix("purpose.") {
                        if let Some((name, key)) = rest.rsplit_once('.') {
                            let t = edit::table(doc, &["purposes", name])?;
                            match key {
                                "support_address" => set_or_remove(t, key, v),
                                "allowed_recipients" if v.trim().is_empty() => {
                                    t.remove(key);
                                }
                                "allowed_recipients" => edit::set(t, key, list_value(v)),
                                _ => {}
                            }
                        }
                    }
                }
                Ok(Vec::new())
            })
            .await;
            if r.is_ok() {
                tracing::info!("admin: token `{}` saved the policy", s.token);
            }
            saved_notice(&r, "Policy saved.")
        }
        other => notice(
            false,
            &format!("Unknown action <code>{}</code>.", esc(other)),
        ),
    };
    Ok(render_policy(&st, &s, &top))
}

fn render_users(
    st: &AdminState,
    s: &Session,
    top: &str,
    trace: Option<(&ExplainQuery, String)>,
) -> Html<String> {
    let engine = st.engine();
    let set = engine.settings();
    let (ro, mut body) = read_only_notice(st, set);
    body.insert_str(0, top);
    let p = &set.policy;
    body.push_str(&format!(
        "<p>Users may choose their send mode: <strong>{}</strong>; their compose mode: <strong>{}</strong> (see <a href=\"/admin/policy\">Policy</a>). An empty mode uses the system mode.</p>",
        if p.allow_user_send_selection { "yes" } else { "no" },
        if p.allow_user_compose_selection { "yes" } else { "no" },
    ));
    body.push_str(&format!(
        "<form method=\"post\" action=\"/admin/users\">{}{}<input type=\"hidden\" name=\"do\" value=\"save\">",
        csrf_field(s),
        etag_field(st, set)
    ));
    let send_modes = modes_with_accounts(SEND_MODES, set);
    let compose_modes: Vec<String> = COMPOSE_MODES.iter().map(|m| m.to_string()).collect();
    let tenants: Vec<String> = set.tenants.keys().cloned().collect();
    if set.users.is_empty() {
        body.push_str("<p>No users configured.</p>");
    }
    for u in set.users.values() {
        let n = &u.name;
        body.push_str(&format!("<fieldset><legend>User {}</legend>", esc(n)));
        body.push_str(&labelled(
            &format!("u-{n}-send"),
            "Send mode",
            "",
            &select(
                &format!("u-{n}-send"),
                &format!("user.{n}.send_mode"),
                &send_modes,
                u.send_mode.as_deref().unwrap_or(""),
                Some("system mode"),
            ),
        ));
        body.push_str(&labelled(
            &format!("u-{n}-compose"),
            "Compose mode",
            "",
            &select(
                &format!("u-{n}-compose"),
                &format!("user.{n}.compose_mode"),
                &compose_modes,
                u.compose_mode.as_deref().unwrap_or(""),
                Some("system mode"),
            ),
        ));
        if !tenants.is_empty() {
            body.push_str(&labelled(
                &format!("u-{n}-tenant"),
                "Tenant",
                "",
                &select(
                    &format!("u-{n}-tenant"),
                    &format!("user.{n}.tenant"),
                    &tenants,
                    u.tenant.as_deref().unwrap_or(""),
                    Some("none"),
                ),
            ));
        }
        for (acc, cred) in &u.accounts {
            let id = format!("u-{n}-{acc}");
            body.push_str(&format!(
                "<div class=\"field\"><span><strong>Credentials for account <code>{a}</code></strong></span></div>{user}<div class=\"field\"><label for=\"{id}-pw\">Password <span class=\"secret-state\">{st}</span></label><input type=\"password\" id=\"{id}-pw\" name=\"cred.{n}.{a}.password\" value=\"\" autocomplete=\"new-password\" placeholder=\"leave empty to keep it\"></div>",
                a = esc(acc),
                n = esc(n),
                id = esc(&id),
                user = text(&format!("{id}-user"), &format!("cred.{n}.{acc}.username"), "Username", cred.username.as_deref().unwrap_or(""), "per-user login for this account"),
                st = if cred.password.is_some() { "set" } else { "not set" },
            ));
        }
        body.push_str("</fieldset>");
    }
    body.push_str(&text(
        "u-new",
        "new_user",
        "Add a user",
        "",
        "a new user's name (letters, digits, - and _); set its modes after saving",
    ));
    if !ro {
        body.push_str(
            "<div class=\"actions\"><button type=\"submit\" class=\"primary\">Save</button></div>",
        );
    }
    body.push_str("</form>");
    // Explain.
    let users: Vec<String> = set.users.keys().cloned().collect();
    let (q_user, q_tenant, q_action, q_purpose) = trace
        .as_ref()
        .map(|(q, _)| {
            (
                q.user.clone().unwrap_or_default(),
                q.tenant.clone().unwrap_or_default(),
                q.action.clone().unwrap_or_else(|| "send".into()),
                q.purpose.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| (String::new(), String::new(), "send".into(), String::new()));
    let purposes: Vec<String> = set.purposes.keys().cloned().collect();
    body.push_str("<h2 id=\"explain\">Explain</h2><p>The policy trace for a user and action: each rule, what it saw, what it chose (as <code>mailhost policy explain</code>).</p><form method=\"get\" action=\"/admin/explain\">");
    body.push_str(&labelled(
        "e-user",
        "User",
        "",
        &select("e-user", "user", &users, &q_user, Some("no user")),
    ));
    body.push_str(&labelled(
        "e-tenant",
        "Tenant",
        "",
        &select("e-tenant", "tenant", &tenants, &q_tenant, Some("no tenant")),
    ));
    body.push_str(&labelled(
        "e-action",
        "Action",
        "",
        &select(
            "e-action",
            "action",
            &["send".to_string(), "compose".to_string()],
            &q_action,
            None,
        ),
    ));
    if !purposes.is_empty() {
        body.push_str(&labelled(
            "e-purpose",
            "Purpose",
            "",
            &select("e-purpose", "purpose", &purposes, &q_purpose, Some("none")),
        ));
    }
    body.push_str("<div class=\"actions\"><button type=\"submit\">Explain</button></div></form>");
    if let Some((_, t)) = trace {
        body.push_str(&format!("<pre class=\"trace\" id=\"explain-trace\" tabindex=\"0\" aria-label=\"Policy trace\">{}</pre>", esc(&t)));
    }
    page(s, Nav::Users, "Users", &body)
}

/// `GET /admin/users`
pub(super) async fn users(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    Ok(render_users(&st, &s, "", None))
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `POST /admin/users`
pub(super) async fn users_submit(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Html<String>, Denied> {
    let s = st.post_session(&headers, field(&form, "csrf"))?;
    let etag = field(&form, "etag").unwrap_or("").to_string();
    let f = form.clone();
    let r = edit::save(&st, &etag, move |doc| {
        let mut secrets = Vec::new();
        for (k, v) in &f {
            if let Some(rest) = k.strip_prefix("user.") {
                if let Some((name, key)) = rest.rsplit_once('.') {
                    if matches!(key, "send_mode" | "compose_mode" | "tenant") {
                        set_or_remove(edit::table(doc, &["users", name])?, key, v);
                    }
                }
            } else if let Some(rest) = k.strip_prefix("cred.") {
                let parts: Vec<&str> = rest.splitn(3, '.').collect();
                if let [user, acc, key] = parts[..] {
                    let t = edit::table(doc, &["users", user, "accounts", acc])?;
                    match key {
                        "username" => set_or_remove(t, key, v),
                        "password" if !v.is_empty() => {
                            let file =
                                edit::secret_file_name(&format!("user-{user}-{acc}"), "password");
                            edit::set(t, "password", edit::secret_ref(&file).into());
                            secrets.push(NewSecret {
                                file,
                                value: v.clone(),
                            });
                        }
                        _ => {}
                    }
                }
            }
        }
        if let Some(n) = field(&f, "new_user")
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !valid_name(n) {
                return Err(format!(
                    "`{n}` cannot be a user name: use letters, digits, - and _"
                ));
            }
            edit::table(doc, &["users", n])?;
        }
        Ok(secrets)
    })
    .await;
    if r.is_ok() {
        tracing::info!("admin: token `{}` saved the users", s.token);
    }
    Ok(render_users(
        &st,
        &s,
        &saved_notice(&r, "Users saved."),
        None,
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct ExplainQuery {
    user: Option<String>,
    tenant: Option<String>,
    action: Option<String>,
    purpose: Option<String>,
}

/// `GET /admin/explain?user=&tenant=&action=&purpose=`
pub(super) async fn explain(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Query(q): Query<ExplainQuery>,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    let nonempty = |v: &Option<String>| v.clone().filter(|x| !x.is_empty());
    let action: Result<Action, String> = q.action.as_deref().unwrap_or("send").parse();
    let action = match action {
        Ok(a) => a,
        Err(e) => return Ok(render_users(&st, &s, &notice(false, &esc(&e)), None)),
    };
    let req = Request {
        user: nonempty(&q.user),
        tenant: nonempty(&q.tenant),
        purpose: nonempty(&q.purpose),
        mode: None,
        from: None,
        recipients: Vec::new(),
    };
    let engine = st.engine();
    let text = tokio::task::spawn_blocking(move || engine.decide(action, &req).render())
        .await
        .unwrap_or_else(|e| format!("deciding failed: {e}"));
    Ok(render_users(&st, &s, "", Some((&q, text))))
}
