//! The account form's HTML, generated from the plugin's settings JSON
//! Schema: one input per property (type, enum, boolean, range, required,
//! description, presets), secrets as write-only fields.

use std::collections::BTreeSet;

use axum::response::Html;
use serde_json::Value;

use super::super::edit;
use super::super::{csrf_field, esc, notice, page, url_enc, AdminState, Nav, Session};
use crate::config::is_secret_key;
use crate::loader::LoadedPlugin;

/// What the form shows for one account.
pub(super) struct View<'a> {
    pub(super) name: &'a str,
    pub(super) plugin: &'a LoadedPlugin,
    /// The account's keys as the form shows them (secrets removed).
    pub(super) values: serde_json::Map<String, Value>,
    /// How each secret key is set: "from an environment variable", ...
    pub(super) secrets: Vec<(String, &'static str)>,
    pub(super) is_new: bool,
    pub(super) etag: String,
    pub(super) test_to: String,
    /// Validation messages by key, shown under their field.
    pub(super) errors: std::collections::BTreeMap<String, String>,
}

/// The inline message under a field, and the attributes that tie it to the input.
fn field_error(id: &str, err: Option<&String>) -> (String, String) {
    match err {
        None => (String::new(), String::new()),
        Some(e) => (
            format!("<p class=\"error\" id=\"{id}-error\">{}</p>", esc(e)),
            format!(" aria-invalid=\"true\" aria-errormessage=\"{id}-error\""),
        ),
    }
}

fn help(id: &str, text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("<p class=\"help\" id=\"{id}-help\">{}</p>", esc(text))
    }
}

fn described(id: &str, text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" aria-describedby=\"{id}-help\"")
    }
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// One input for a schema property.
fn input(key: &str, prop: &Value, required: bool, v: &View<'_>) -> String {
    let id = format!(
        "f-{}",
        key.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let desc = prop
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("");
    let title = prop.get("title").and_then(|d| d.as_str()).unwrap_or(key);
    let (err_html, err_attr) = field_error(&id, v.errors.get(key));
    let req_attr = &format!("{}{err_attr}", if required { " required" } else { "" });
    let req_mark = if required {
        " <span aria-hidden=\"true\">*</span><span class=\"sr-only\">(required)</span>"
    } else {
        ""
    };
    let name = format!("k.{key}");
    let cur = v.values.get(key);
    let default = prop.get("default");
    let kind = prop
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("string");
    let label = format!(
        "<label for=\"{id}\">{}{req_mark}{}</label>",
        esc(title),
        if title != key {
            format!(" <code>{}</code>", esc(key))
        } else {
            String::new()
        }
    );
    if let Some(options) = prop.get("enum").and_then(|e| e.as_array()) {
        let cur_text = value_text(cur);
        let mut opts = String::new();
        if !required {
            opts.push_str(&format!(
                "<option value=\"\">{}</option>",
                match default {
                    Some(d) => format!("default ({})", esc(&value_text(Some(d)))),
                    None => "not set".into(),
                }
            ));
        }
        for o in options {
            let t = value_text(Some(o));
            opts.push_str(&format!(
                "<option value=\"{t}\"{sel}>{t}</option>",
                t = esc(&t),
                sel = if cur_text == t { " selected" } else { "" }
            ));
        }
        return format!(
            "<div class=\"field\">{label}{h}<select id=\"{id}\" name=\"{n}\"{req_attr}{d}>{opts}</select>{err_html}</div>",
            h = help(&id, desc),
            n = esc(&name),
            d = described(&id, desc),
        );
    }
    match kind {
        "boolean" => {
            let on = cur
                .and_then(|c| c.as_bool())
                .or_else(|| default.and_then(|d| d.as_bool()))
                .unwrap_or(false);
            format!(
                "<div class=\"field check\"><input type=\"hidden\" name=\"present.{k}\" value=\"1\"><input type=\"checkbox\" id=\"{id}\" name=\"{n}\" value=\"true\"{c}{d}{err_attr}> <label for=\"{id}\">{t}{code}</label>{h}{err_html}</div>",
                k = esc(key),
                n = esc(&name),
                c = if on { " checked" } else { "" },
                d = described(&id, desc),
                t = esc(title),
                code = if title != key { format!(" <code>{}</code>", esc(key)) } else { String::new() },
                h = help(&id, desc),
            )
        }
        "integer" | "number" => {
            let mut attrs = String::new();
            if let Some(m) = prop.get("minimum") {
                attrs.push_str(&format!(" min=\"{}\"", esc(&m.to_string())));
            }
            if let Some(m) = prop.get("maximum") {
                attrs.push_str(&format!(" max=\"{}\"", esc(&m.to_string())));
            }
            attrs.push_str(if kind == "integer" {
                " step=\"1\""
            } else {
                " step=\"any\""
            });
            if let Some(d) = default {
                attrs.push_str(&format!(" placeholder=\"{}\"", esc(&value_text(Some(d)))));
            }
            format!(
                "<div class=\"field\">{label}{h}<input type=\"number\" id=\"{id}\" name=\"{n}\" value=\"{val}\"{attrs}{req_attr}{d}>{err_html}</div>",
                h = help(&id, desc),
                n = esc(&name),
                val = esc(&value_text(cur)),
                d = described(&id, desc),
            )
        }
        "object" => {
            let keys = v
                .values
                .get(&format!("{key}#keys"))
                .and_then(|x| x.as_str())
                .unwrap_or("");
            format!(
                "<div class=\"field\"><span class=\"label\"><strong>{}</strong> <code>{}</code></span>{}<p id=\"{id}\">{}</p></div>",
                esc(title),
                esc(key),
                help(&id, desc),
                if keys.is_empty() {
                    "Not set. A table of values: set it in the config file.".to_string()
                } else {
                    format!("Set: {} (values not shown; edit them in the config file).", esc(keys))
                }
            )
        }
        _ => {
            let mut attrs = String::new();
            if let Some(p) = prop.get("pattern").and_then(|p| p.as_str()) {
                attrs.push_str(&format!(" pattern=\"{}\"", esc(p)));
            }
            if let Some(m) = prop.get("minLength") {
                attrs.push_str(&format!(" minlength=\"{}\"", esc(&m.to_string())));
            }
            if let Some(m) = prop.get("maxLength") {
                attrs.push_str(&format!(" maxlength=\"{}\"", esc(&m.to_string())));
            }
            if let Some(d) = default {
                attrs.push_str(&format!(" placeholder=\"{}\"", esc(&value_text(Some(d)))));
            }
            let list_help = if kind == "array" {
                " (several: separate with commas)"
            } else {
                ""
            };
            format!(
                "<div class=\"field\">{label}{h}<input type=\"text\" id=\"{id}\" name=\"{n}\" value=\"{val}\"{attrs}{req_attr}{d}>{err_html}</div>",
                h = help(&id, &format!("{desc}{list_help}")),
                n = esc(&name),
                val = esc(&value_text(cur)),
                d = described(&id, desc),
            )
        }
    }
}

fn secret_input(
    key: &str,
    prop: Option<&Value>,
    state: Option<&str>,
    err: Option<&String>,
) -> String {
    let id = format!(
        "s-{}",
        key.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let desc = prop
        .and_then(|p| p.get("description"))
        .and_then(|d| d.as_str())
        .unwrap_or("");
    let state_text = state.unwrap_or("not set");
    let (err_html, err_attr) = field_error(&id, err);
    format!(
        "<div class=\"field\"><label for=\"{id}\">{k} <span class=\"secret-state\" id=\"{id}-state\">{st}</span></label>{h}<input type=\"password\" id=\"{id}\" name=\"secret.{k}\" value=\"\" autocomplete=\"new-password\" placeholder=\"{ph}\" aria-describedby=\"{id}-state{dh}\"{err_attr}>{clear}{err_html}</div>",
        k = esc(key),
        st = esc(state_text),
        h = help(&id, desc),
        ph = if state.is_some() { "leave empty to keep it" } else { "" },
        dh = if desc.is_empty() { String::new() } else { format!(" {id}-help") },
        clear = if state.is_some() {
            format!(" <input type=\"checkbox\" id=\"{id}-clear\" name=\"clear.{k}\" value=\"1\"> <label for=\"{id}-clear\" class=\"inline\">remove</label>", k = esc(key))
        } else {
            String::new()
        }
    )
}

pub(super) fn render(st: &AdminState, s: &Session, v: &View<'_>, top: &str) -> Html<String> {
    let engine = st.engine();
    let schema = v.plugin.schema();
    let props = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .cloned()
        .unwrap_or_default();
    let required: BTreeSet<String> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let read_only = edit::read_only_reason(engine.settings(), st.shared_outbox());
    let mut body = String::from(top);
    if let Some(why) = &read_only {
        body.push_str(&notice(false, &format!("Read-only here: {}.", esc(why))));
    }
    let title = schema
        .get("title")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    body.push_str(&format!(
        "<p>Plugin <strong>{}</strong>{}. The fields below come from the plugin's settings schema.</p>",
        esc(v.plugin.name()),
        if title.is_empty() { String::new() } else { format!(" — {}", esc(&title)) }
    ));
    body.push_str(&format!(
        "<form method=\"post\" action=\"/admin/accounts/{u}\" id=\"account-form\" novalidate>{csrf}<input type=\"hidden\" name=\"etag\" value=\"{etag}\"><input type=\"hidden\" name=\"plugin\" value=\"{p}\">{newflag}",
        u = url_enc(v.name),
        csrf = csrf_field(s),
        etag = esc(&v.etag),
        p = esc(v.plugin.name()),
        newflag = if v.is_new { "<input type=\"hidden\" name=\"new\" value=\"1\">" } else { "" },
    ));
    // The host's keys.
    body.push_str("<fieldset><legend>Account</legend>");
    let host_props = serde_json::json!({
        "from": {"type": "string", "title": "From", "description": "the sender address messages through this account carry, e.g. ERP <erp@example.com>"},
        "max_per_minute": {"type": "integer", "minimum": 1, "title": "Messages per minute", "description": "rate limit for this account (empty: none)"},
        "description": {"type": "string", "title": "Description", "description": "a note for administrators"},
    });
    for k in ["from", "max_per_minute", "description"] {
        body.push_str(&input(k, &host_props[k], false, v));
    }
    if let Some(presets) = schema.get("x-presets").and_then(|p| p.as_object()) {
        let enumv: Vec<Value> = presets.keys().map(|k| Value::String(k.clone())).collect();
        let desc = presets
            .iter()
            .map(|(k, vals)| {
                let filled: Vec<String> = vals
                    .as_object()
                    .map(|o| o.iter().map(|(a, b)| format!("{a} = {b}")).collect())
                    .unwrap_or_default();
                format!("{k}: {}", filled.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        let prop = serde_json::json!({"type": "string", "enum": enumv, "title": "Preset", "description": format!("fills the keys a provider needs; a key set below wins. {desc}")});
        body.push_str(&input("preset", &prop, false, v));
    }
    body.push_str("</fieldset><fieldset><legend>Plugin settings</legend>");
    let secret_states: std::collections::BTreeMap<&str, &str> =
        v.secrets.iter().map(|(k, s)| (k.as_str(), *s)).collect();
    // Required keys first, then the rest in the schema's (alphabetical) order.
    let mut ordered: Vec<(&String, &Value)> = props.iter().collect();
    ordered.sort_by_key(|(k, _)| !required.contains(*k));
    for (k, prop) in ordered {
        if is_secret_key(k, Some(schema)) {
            body.push_str(&secret_input(
                k,
                Some(prop),
                secret_states.get(k.as_str()).copied(),
                v.errors.get(k.as_str()),
            ));
        } else {
            body.push_str(&input(k, prop, required.contains(k), v));
        }
    }
    body.push_str("</fieldset>");
    body.push_str(&format!(
        "<fieldset><legend>Test</legend><div class=\"field\"><label for=\"test-to\">Test recipient</label><p class=\"help\" id=\"test-to-help\">For <em>Send test mail</em>: the address that receives it.</p><input type=\"email\" id=\"test-to\" name=\"test_to\" value=\"{}\" aria-describedby=\"test-to-help\"></div></fieldset>",
        esc(&v.test_to)
    ));
    let save = if read_only.is_some() {
        String::new()
    } else {
        "<button type=\"submit\" name=\"do\" value=\"save\" class=\"primary\">Save</button>"
            .to_string()
    };
    body.push_str(&format!(
        "<div class=\"actions\">{save}<button type=\"submit\" name=\"do\" value=\"validate\">Check the settings</button><button type=\"submit\" name=\"do\" value=\"test\">Test settings</button><button type=\"submit\" name=\"do\" value=\"send-test\">Send test mail</button></div></form>"
    ));
    page(s, Nav::Accounts, &format!("Account {}", v.name), &body)
}
