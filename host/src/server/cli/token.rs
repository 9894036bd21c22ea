//! `mailhost api-token NAME`: a new API token, shown once. Without `--add`
//! it prints the token and the `[api.tokens.NAME]` lines to paste; with
//! `--add` (or `--replace`, to give a name a new token) it writes them into
//! the config file itself, comments and layout kept, after checking the
//! result as `config validate` does, and prints only the token.

use std::path::Path;

use clap::Args;
use toml_edit::{Array, DocumentMut};

use crate::cli::{errln, exit, out, outln};
use crate::config::{self, Source};
use crate::loader::PluginSet;
use crate::server::admin::edit;
use crate::server::auth;

#[derive(Debug, Clone, Args)]
pub struct ApiTokenArgs {
    /// The token's name in [api.tokens.NAME]: letters, digits, `-`, `_`.
    pub name: String,
    /// send and/or admin; repeat for both (default: send; with --replace,
    /// the scopes the name has).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Bind it to a tenant; repeat for several.
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// Bind it to a user; repeat for several.
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// Write [api.tokens.NAME] into the config file (checked first; comments
    /// kept) and print only the token. Refused when NAME exists.
    #[arg(long, conflicts_with = "replace")]
    pub add: bool,
    /// Give an existing NAME a new token in the config file: the old one stops
    /// working once the service reloads. Scopes, tenants and users stay unless
    /// given.
    #[arg(long)]
    pub replace: bool,
}

/// The longest token name.
const MAX_NAME: usize = 64;

/// A token name: it is shown in logs and problems, and is a bare TOML key.
fn check_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(());
    }
    Err(format!(
        "`{}` cannot name a token: use letters, digits, `-` and `_` (at most {MAX_NAME})",
        crate::limits::shown(name)
    ))
}

/// Scopes, tenants and users as given: scopes known, no control characters.
fn check_lists(a: &ApiTokenArgs) -> Result<(), String> {
    for s in &a.scopes {
        if !auth::SCOPES.contains(&s.as_str()) {
            return Err(format!(
                "scope `{}` is unknown; use send or admin",
                crate::limits::shown(s)
            ));
        }
    }
    for (what, v) in [("tenant", &a.tenants), ("user", &a.users)] {
        for x in v {
            if x.is_empty() {
                return Err(format!("--{what} is empty"));
            }
            crate::limits::check_name(x).map_err(|e| format!("--{what} {e}"))?;
        }
    }
    Ok(())
}

fn array(v: &[String]) -> toml_edit::Value {
    toml_edit::Value::Array(v.iter().map(String::as_str).collect::<Array>())
}

/// Sets the token's keys in `t`: the hash always, the lists when given (or
/// when `t` is new, the default scope).
fn fill(t: &mut toml_edit::Table, hash: &str, a: &ApiTokenArgs) {
    edit::set(t, "hash", hash.into());
    if !a.scopes.is_empty() {
        edit::set(t, "scopes", array(&a.scopes));
    } else if !t.contains_key("scopes") {
        edit::set(t, "scopes", array(&["send".to_string()]));
    }
    if !a.tenants.is_empty() {
        edit::set(t, "tenants", array(&a.tenants));
    }
    if !a.users.is_empty() {
        edit::set(t, "users", array(&a.users));
    }
}

/// `mailhost api-token NAME [--add | --replace]`; `config` is `--config` as given.
pub fn api_token(config: Option<&Path>, plugins: &PluginSet, a: &ApiTokenArgs, json: bool) -> u8 {
    if let Err(e) = check_name(&a.name).and_then(|_| check_lists(a)) {
        errln!("mailhost: {e}");
        return exit::USAGE;
    }
    let token = auth::new_token();
    let hash = auth::hash_token(&token);
    if a.add || a.replace {
        return add(config, plugins, a, &token, &hash, json);
    }
    let mut doc = DocumentMut::new();
    match edit::table(&mut doc, &["api", "tokens", &a.name]) {
        Ok(t) => fill(t, &hash, a),
        Err(e) => {
            errln!("mailhost: {e}");
            return exit::CONFIG;
        }
    }
    if json {
        outln!(
            "{}",
            serde_json::json!({"name": a.name, "token": token, "toml": doc.to_string()})
        );
    } else {
        outln!("# The token (shown once; give it to the API client, keep it secret):");
        outln!("# {token}");
        out!("{doc}");
    }
    exit::OK
}

fn add(
    config: Option<&Path>,
    plugins: &PluginSet,
    a: &ApiTokenArgs,
    token: &str,
    hash: &str,
    json: bool,
) -> u8 {
    let Some(path) = config::locate(config) else {
        errln!("mailhost: there is no config file to add the token to (this runs on the embedded default): write one with `mailhost config init`, or name one with --config");
        return exit::CONFIG;
    };
    let src = match Source::from_file(&path) {
        Ok(s) => s,
        Err(e) => {
            errln!("mailhost: {e}");
            return exit::CONFIG;
        }
    };
    let mut doc = match src.text.parse::<DocumentMut>() {
        Ok(d) => d,
        Err(e) => {
            errln!(
                "mailhost: {}: the config file does not parse as TOML: {e}",
                src.name
            );
            return exit::CONFIG;
        }
    };
    let existed = doc
        .get("api")
        .and_then(|t| t.get("tokens"))
        .and_then(|t| t.get(&a.name))
        .is_some();
    if existed && !a.replace {
        errln!(
            "mailhost: {} already has [api.tokens.{}]; --replace gives it a new token (the old one stops working), or pick another name",
            src.name, a.name
        );
        return exit::USAGE;
    }
    match edit::table(&mut doc, &["api", "tokens", &a.name]) {
        Ok(t) => fill(t, hash, a),
        Err(e) => {
            errln!("mailhost: {}: {e}", src.name);
            return exit::CONFIG;
        }
    }
    let text = doc.to_string();
    let checked = Source::from_text(&src.name, &src.base_dir, &text);
    if let Err(errors) = config::validate(&checked, plugins) {
        errln!("mailhost: with the token added, the config does not validate; nothing was written:\n{errors}");
        return exit::CONFIG;
    }
    if let Err(e) = edit::write_config(&path, &text) {
        errln!("mailhost: {e}; nothing was changed");
        return exit::CONFIG;
    }
    let done = if existed { "replaced" } else { "added" };
    if json {
        outln!(
            "{}",
            serde_json::json!({"name": a.name, "token": token, "file": src.name, "replaced": existed})
        );
    } else {
        outln!("{token}");
    }
    errln!(
        "mailhost: {done} [api.tokens.{}] in {}; the token (on standard output) is shown only now: give it to the API client and keep it secret. A running `mailhost serve` takes it on a reload (SIGHUP: `kill -HUP PID`) or a restart",
        a.name, src.name
    );
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bare_keys_of_bounded_length() {
        assert!(check_name("erp-1_a").is_ok());
        for bad in ["", "a b", "a]b", "a.b", "\u{1b}[2J", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err();
            assert!(!e.chars().any(char::is_control) && e.len() < 200, "{e}");
        }
    }

    #[test]
    fn the_printed_lines_are_toml_whatever_the_names() {
        let a = ApiTokenArgs {
            name: "erp".into(),
            scopes: vec![],
            tenants: vec!["ac\"me\\".into()],
            users: vec!["bob]".into()],
            add: false,
            replace: false,
        };
        let mut doc = DocumentMut::new();
        fill(
            edit::table(&mut doc, &["api", "tokens", "erp"]).unwrap(),
            "sha256:00",
            &a,
        );
        let back: toml::Value = toml::from_str(&doc.to_string()).unwrap();
        let t = &back["api"]["tokens"]["erp"];
        assert_eq!(t["tenants"][0].as_str(), Some("ac\"me\\"));
        assert_eq!(t["users"][0].as_str(), Some("bob]"));
        assert_eq!(t["scopes"][0].as_str(), Some("send"));
    }

    #[test]
    fn a_replaced_token_keeps_its_comments_and_bindings() {
        let mut doc: DocumentMut = "[api.tokens.erp]  # the ERP\nhash = \"sha256:aa\"\nscopes = [\"admin\"]\ntenants = [\"acme\"]\n"
            .parse()
            .unwrap();
        let a = ApiTokenArgs {
            name: "erp".into(),
            scopes: vec![],
            tenants: vec![],
            users: vec![],
            add: false,
            replace: true,
        };
        fill(
            edit::table(&mut doc, &["api", "tokens", "erp"]).unwrap(),
            "sha256:bb",
            &a,
        );
        let text = doc.to_string();
        assert!(text.contains("# the ERP"), "{text}");
        assert!(text.contains("hash = \"sha256:bb\""), "{text}");
        assert!(text.contains("scopes = [\"admin\"]"), "{text}");
        assert!(text.contains("tenants = [\"acme\"]"), "{text}");
    }
}
