//! Phase two: raw TOML (with spans) → validated [`Settings`], every mistake
//! collected with its `file:line:col`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::checks::{key_at, scrub_toml_message, string_problem};
use super::raw::{RawConfig, S};
use super::settings::*;
use super::{ConfigError, ConfigErrors, Loc, Source};
use crate::loader::PluginSet;

mod accounts;
mod outbox;

/// Parses and validates a config text.
pub fn validate(source: &Source, plugins: &PluginSet) -> Result<Settings, ConfigErrors> {
    let raw: RawConfig = toml::from_str(&source.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let (message, hint) = explain_toml_error(e.message());
        // A value of the wrong type is quoted by serde: not when it is a secret.
        let message = scrub_toml_message(&message, key_at(&source.text, span.start).as_deref());
        ConfigErrors(vec![source.error(&span, message, hint)])
    })?;
    Validator {
        src: source,
        plugins,
        errors: Vec::new(),
        warnings: Vec::new(),
        unloaded: BTreeMap::new(),
    }
    .run(raw)
}

/// serde's words, plus what would be valid where we can say it.
fn explain_toml_error(msg: &str) -> (String, String) {
    let msg = msg.trim().to_string();
    if msg.starts_with("unknown field") {
        let hint = match msg.find("expected") {
            Some(i) => format!("valid keys here: {}", msg[i + "expected".len()..].trim()),
            None => String::new(),
        };
        let head = msg.split(", expected").next().unwrap_or(&msg).to_string();
        return (head, hint);
    }
    (msg, String::new())
}

struct Validator<'a> {
    src: &'a Source,
    plugins: &'a PluginSet,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    /// Accounts left out because their plugin is not loaded: account name →
    /// (plugin name, where the account is), so that a reference to one says
    /// why instead of "does not exist".
    unloaded: BTreeMap<String, (String, Loc)>,
}

fn span<T>(s: &S<T>) -> Range<usize> {
    s.span()
}

impl Validator<'_> {
    fn err(&mut self, at: &Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let e = self.src.error(at, message, hint);
        self.errors.push(e);
    }

    /// Whether an error was already reported on the line of `at` (so a
    /// second check of the same value does not repeat it).
    fn reported_at(&self, at: &Range<usize>) -> bool {
        let l = self.loc(at);
        self.errors
            .iter()
            .any(|e| e.loc.line == l.line && e.loc.file == l.file)
    }

    fn warn(&mut self, at: &Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let e = self.src.error(at, message, hint);
        self.warnings.push(e);
    }

    fn loc(&self, at: &Range<usize>) -> Loc {
        self.src.loc(at)
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_relative() {
            self.src.base_dir.join(p)
        } else {
            p.to_path_buf()
        }
    }

    fn address(&mut self, what: &str, v: &S<String>) -> Option<String> {
        if !self.wire(what, v) {
            return None;
        }
        let text = v.get_ref();
        match text.parse::<lettre::message::Mailbox>() {
            Ok(_) => Some(text.clone()),
            Err(e) => {
                self.err(
                    &span(v),
                    format!("{what} `{text}` is not a valid address ({e})"),
                    "write it as `name@example.com` or `Name <name@example.com>`",
                );
                None
            }
        }
    }

    fn secret_ref(&mut self, what: &str, v: &S<String>) {
        match crate::secrets::kind(v.get_ref()) {
            crate::secrets::SecretKind::Literal => self.warn(
                &span(v),
                format!("{what} is written in plain text in the config"),
                "use a reference instead: `env:NAME` or `file:/path/to/secret`",
            ),
            crate::secrets::SecretKind::Env => {
                let name = &v.get_ref()["env:".len()..];
                if std::env::var_os(name).is_none() {
                    self.warn(
                        &span(v),
                        format!("{what}: environment variable {name} is not set"),
                        "set it in the host's environment, or sending through this account fails",
                    );
                }
            }
            crate::secrets::SecretKind::File => {
                let path = self.path(&v.get_ref()["file:".len()..]);
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_dir() => self.warn(
                        &span(v),
                        format!("{what}: {} is a directory, not a secret file", path.display()),
                        "point `file:` at the file holding the secret, or sending through this account fails",
                    ),
                    Ok(_) => {}
                    Err(e) => self.warn(
                        &span(v),
                        format!("{what}: cannot read {} ({e})", path.display()),
                        "create the file (readable by the host), or sending through this account fails",
                    ),
                }
            }
        }
    }

    /// A file the config names (`ca_file`, any `"format": "path"` setting)
    /// that is missing: a warning, as it may appear before the first send.
    fn file_exists(&mut self, what: &str, at: &Range<usize>, path: &Path) {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => self.warn(
                at,
                format!("{what}: {} is a directory, not a file", path.display()),
                "name the file itself",
            ),
            Ok(_) => {}
            Err(e) => self.warn(
                at,
                format!("{what}: {} cannot be read ({e})", path.display()),
                "create it or correct the path, or using this account fails",
            ),
        }
    }

    /// A host string that may reach a wire: no CR, LF or NUL, a sane length.
    /// Returns whether it is fine. The value is never shown (it may be a secret).
    fn wire(&mut self, what: &str, v: &S<String>) -> bool {
        match string_problem(v.get_ref()) {
            Some(p) => {
                self.err(
                    &span(v),
                    format!("{what} {p}"),
                    "write it on one line, without control characters",
                );
                false
            }
            None => true,
        }
    }

    fn run(mut self, raw: RawConfig) -> Result<Settings, ConfigErrors> {
        self.section_names(&raw);
        let oauth = self.oauth(&raw);
        let accounts = self.accounts(&raw, &oauth);
        let tenants = self.tenants(&raw, &accounts);
        let purposes = self.purposes(&raw, &accounts);
        let policy = self.policy(&raw, &accounts);
        let users = self.users(&raw, &accounts, &tenants, &policy);
        self.errors
            .extend(crate::copies::check_config(&accounts, self.plugins));
        let limits = self.limits(&raw);
        if let Some(api) = &raw.api {
            let t: Vec<&str> = tenants.keys().map(String::as_str).collect();
            let u: Vec<&str> = users.keys().map(String::as_str).collect();
            for (message, hint) in api.get_ref().problems(&t, &u) {
                self.err(&span(api), message, hint);
            }
            self.api_tls(api);
        }
        let outbox = self.outbox_settings(&raw);
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        Ok(Settings {
            source: self.src.name.clone(),
            base_dir: self.src.base_dir.clone(),
            policy,
            oauth,
            accounts,
            tenants,
            users,
            purposes,
            limits,
            outbox,
            api: raw
                .api
                .as_ref()
                .map(|a| a.get_ref().clone())
                .unwrap_or_default(),
            warnings: self.warnings,
        })
    }

    /// `[api] tls_cert`/`tls_key`: both or neither, a pair that loads.
    fn api_tls(&mut self, api: &S<crate::server::auth::ApiSettings>) {
        let a = api.get_ref();
        match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => {
                let (cert, key) = (self.path(cert), self.path(key));
                // A key readable by the service's account alone is not
                // a mistake for another user's `mailhost send`: `serve`
                // reads it at start and says so there.
                let unreadable = |p: &Path| {
                    std::fs::File::open(p).is_err_and(|e| {
                        e.kind() == std::io::ErrorKind::PermissionDenied
                    })
                };
                let checked = if unreadable(&cert) || unreadable(&key) {
                    Ok(())
                } else {
                    crate::server::tls::load(&cert, &key).map(|_| ())
                };
                if let Err(e) = checked {
                    self.err(
                        &span(api),
                        format!("[api] tls_cert/tls_key: {e}"),
                        "give PEM files: the certificate (and its chain) and its private key",
                    );
                }
            }
            (None, None) => {}
            _ => self.err(
                &span(api),
                "[api] has only one of tls_cert and tls_key".to_string(),
                "give both for HTTPS (the certificate and its private key), or neither for plain HTTP",
            ),
        }
    }

    /// Names of accounts, users, tenants... reach logs, listings and (a
    /// user's name) plugins' options: the same rules as wire values.
    fn section_names(&mut self, raw: &RawConfig) {
        let mut names: Vec<(&str, &S<String>)> = Vec::new();
        names.extend(raw.oauth.keys().map(|n| ("[oauth] name", n)));
        names.extend(raw.accounts.keys().map(|n| ("[accounts] name", n)));
        names.extend(raw.tenants.keys().map(|n| ("[tenants] name", n)));
        names.extend(raw.users.keys().map(|n| ("[users] name", n)));
        names.extend(raw.purposes.keys().map(|n| ("[purposes] name", n)));
        for u in raw.users.values() {
            names.extend(
                u.get_ref()
                    .accounts
                    .keys()
                    .map(|n| ("[users.*.accounts] name", n)),
            );
        }
        for (what, n) in names {
            if let Some(p) = string_problem(n.get_ref()) {
                self.err(
                    &span(n),
                    format!("{what} {p}"),
                    "use a short name without control characters",
                );
            } else if n.get_ref().chars().any(char::is_control) {
                self.err(
                    &span(n),
                    format!("{what} contains a control character"),
                    "use a short name without control characters",
                );
            }
        }
    }

    /// The span of `key = ...` in the section starting at `section` (for a
    /// typed section whose fields carry no spans of their own): its lines up
    /// to the next `[header]`. Else the section's span.
    fn key_in(&self, section: &Range<usize>, key: &str) -> Range<usize> {
        let text = self.src.text.get(section.start..).unwrap_or("");
        let mut offset = section.start;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let t = line.trim_start();
            if i > 0 && t.starts_with('[') {
                break;
            }
            let rest = t.strip_prefix(key).map(str::trim_start);
            if rest.is_some_and(|r| r.starts_with('=')) {
                let start = offset + (line.len() - t.len());
                return start..start + key.len();
            }
            offset += line.len();
        }
        section.clone()
    }

    /// `[limits]`: a 0 would refuse every input; said at the key.
    fn limits(&mut self, raw: &RawConfig) -> crate::limits::Limits {
        let Some(l) = &raw.limits else {
            return crate::limits::Limits::default();
        };
        let v = l.get_ref();
        for (key, value) in [
            ("max_message_bytes", v.max_message_bytes),
            ("max_recipients", v.max_recipients as u64),
            ("max_batch_rows", v.max_batch_rows as u64),
            ("max_batch_bytes", v.max_batch_bytes),
            ("max_batch_row_bytes", v.max_batch_row_bytes),
        ] {
            if value == 0 {
                let at = self.key_in(&span(l), key);
                self.err(
                    &at,
                    format!("[limits] {key} is 0, which would refuse every input"),
                    format!(
                        "give a positive number, or remove the key for the default ({})",
                        match key {
                            "max_message_bytes" =>
                                crate::limits::Limits::default().max_message_bytes,
                            "max_recipients" =>
                                crate::limits::Limits::default().max_recipients as u64,
                            "max_batch_bytes" => crate::limits::Limits::default().max_batch_bytes,
                            "max_batch_row_bytes" =>
                                crate::limits::Limits::default().max_batch_row_bytes,
                            _ => crate::limits::Limits::default().max_batch_rows as u64,
                        }
                    ),
                );
            }
        }
        v.clone()
    }

    fn oauth(&mut self, raw: &RawConfig) -> BTreeMap<String, OAuthSettings> {
        let mut out = BTreeMap::new();
        for (name, o) in &raw.oauth {
            let o = o.get_ref();
            let on = name.get_ref();
            for (key, v) in [
                ("tenant", Some(&o.tenant)),
                ("client_id", Some(&o.client_id)),
                ("client_secret", Some(&o.client_secret)),
                ("authority", o.authority.as_ref()),
                ("ca_file", o.ca_file.as_ref()),
            ] {
                if let Some(v) = v {
                    self.wire(&format!("[oauth.{on}] {key}"), v);
                }
            }
            if let Some(c) = &o.ca_file {
                let p = self.path(c.get_ref());
                self.file_exists(&format!("[oauth.{on}] ca_file"), &span(c), &p);
            }
            self.secret_ref(
                &format!("[oauth.{}] client_secret", name.get_ref()),
                &o.client_secret,
            );
            let authority = match &o.authority {
                Some(a)
                    if !(a.get_ref().starts_with("https://")
                        || a.get_ref().starts_with("http://")) =>
                {
                    self.err(
                        &span(a),
                        format!("authority `{}` is not a URL", a.get_ref()),
                        "e.g. https://login.microsoftonline.com",
                    );
                    continue;
                }
                Some(a) => a.get_ref().trim_end_matches('/').to_string(),
                None => DEFAULT_AUTHORITY.to_string(),
            };
            out.insert(
                name.get_ref().clone(),
                OAuthSettings {
                    name: name.get_ref().clone(),
                    tenant: o.tenant.get_ref().clone(),
                    client_id: o.client_id.get_ref().clone(),
                    client_secret: o.client_secret.get_ref().clone(),
                    authority,
                    ca_file: o.ca_file.as_ref().map(|c| self.path(c.get_ref())),
                    loc: self.loc(&span(name)),
                },
            );
        }
        out
    }

    fn check_account_ref(
        &mut self,
        what: &str,
        v: &S<String>,
        accounts: &BTreeMap<String, Account>,
    ) -> Option<String> {
        if accounts.contains_key(v.get_ref()) {
            Some(v.get_ref().clone())
        } else if let Some((plugin, at)) = self.unloaded.get(v.get_ref()).cloned() {
            self.err(
                &span(v),
                format!(
                    "{what} names account `{}`, whose plugin `{plugin}` is not loaded",
                    v.get_ref()
                ),
                format!(
                    "install the plugin (see the error at {at} for where the host looked), or point {what} at another account"
                ),
            );
            None
        } else {
            self.err(
                &span(v),
                format!(
                    "{what} names account `{}`, which does not exist",
                    v.get_ref()
                ),
                format!("configured accounts: {}", names(accounts.keys(), "(none)")),
            );
            None
        }
    }

    fn tenants(
        &mut self,
        raw: &RawConfig,
        accounts: &BTreeMap<String, Account>,
    ) -> BTreeMap<String, Tenant> {
        let mut out = BTreeMap::new();
        for (name, t) in &raw.tenants {
            let t = t.get_ref();
            let account = t.account.as_ref().and_then(|a| {
                self.check_account_ref(&format!("tenant `{}`", name.get_ref()), a, accounts)
            });
            let from = t.from.as_ref().and_then(|f| self.address("from", f));
            let support_address = t.support_address.as_ref().and_then(|a| {
                let allowed = raw.purposes.values().any(|p| {
                    p.get_ref()
                        .allow_client_support_address
                        .as_ref()
                        .is_some_and(|b| *b.get_ref())
                });
                if !allowed {
                    self.err(
                        &span(a),
                        format!(
                            "tenant `{}` sets its own support_address, but no purpose allows a client-specific one",
                            name.get_ref()
                        ),
                        "set `allow_client_support_address = true` in [purposes.support], or remove this key",
                    );
                }
                self.address("support_address", a)
            });
            out.insert(
                name.get_ref().clone(),
                Tenant {
                    name: name.get_ref().clone(),
                    account,
                    from,
                    support_address,
                    enabled: t.enabled.as_ref().map(|e| *e.get_ref()).unwrap_or(true),
                    loc: self.loc(&span(name)),
                },
            );
        }
        out
    }

    fn purposes(
        &mut self,
        raw: &RawConfig,
        accounts: &BTreeMap<String, Account>,
    ) -> BTreeMap<String, Purpose> {
        let mut out = BTreeMap::new();
        for (name, p) in &raw.purposes {
            let pn = name.get_ref().clone();
            let p = p.get_ref();
            let mut list = Vec::new();
            if let Some(accs) = &p.accounts {
                if accs.get_ref().is_empty() {
                    self.err(
                        &span(accs),
                        format!("purpose `{pn}` allows no account"),
                        "list at least one account, or remove `accounts` to allow any",
                    );
                }
                for a in accs.get_ref() {
                    if let Some(a) = self.check_account_ref(&format!("purpose `{pn}`"), a, accounts)
                    {
                        list.push(a);
                    }
                }
            }
            let mut rcpts = Vec::new();
            for r in p.allowed_recipients.iter().flat_map(|v| v.get_ref()) {
                let v = r.get_ref().trim().to_ascii_lowercase();
                let ok = if let Some(d) = v.strip_prefix('@') {
                    valid_domain(d)
                } else if v.contains('@') {
                    v.parse::<lettre::Address>().is_ok()
                } else {
                    valid_domain(&v)
                };
                if ok {
                    rcpts.push(v);
                } else {
                    self.err(
                        &span(r),
                        format!(
                            "purpose `{pn}`: `{}` is neither an address nor a domain",
                            r.get_ref()
                        ),
                        "write `user@example.com`, `@example.com` or `example.com`",
                    );
                }
            }
            out.insert(
                pn.clone(),
                Purpose {
                    name: pn,
                    accounts: list,
                    allow_sender: p
                        .allow_sender
                        .as_ref()
                        .map(|b| *b.get_ref())
                        .unwrap_or(false),
                    allowed_recipients: rcpts,
                    default_from: p
                        .default_from
                        .as_ref()
                        .and_then(|f| self.address("default_from", f)),
                    support_address: p
                        .support_address
                        .as_ref()
                        .and_then(|f| self.address("support_address", f)),
                    attach_system_info: p
                        .attach_system_info
                        .as_ref()
                        .map(|b| *b.get_ref())
                        .unwrap_or(false),
                    allow_client_support_address: p
                        .allow_client_support_address
                        .as_ref()
                        .is_some_and(|b| *b.get_ref()),
                    loc: self.loc(&span(name)),
                },
            );
        }
        out
    }

    /// Whether an account's plugin setting `auth` is `optional`, as written or
    /// as its plugin's schema defaults it.
    fn auth_is_optional(&self, account: Option<&Account>) -> bool {
        let Some(a) = account else {
            return false;
        };
        let auth = a.settings.get("auth").cloned().or_else(|| {
            let p = self.plugins.get(&a.plugin)?;
            p.schema().pointer("/properties/auth/default").cloned()
        });
        auth.as_ref().and_then(|v| v.as_str()) == Some("optional")
    }

    /// A send mode is a built-in mode, a plugin's mode, or an account name.
    fn check_mode(
        &mut self,
        what: &str,
        v: &S<String>,
        compose: bool,
        accounts: &BTreeMap<String, Account>,
    ) -> Option<String> {
        let m = v.get_ref();
        let mut valid: Vec<String> = if compose { COMPOSE_MODES } else { SEND_MODES }
            .iter()
            .map(|s| s.to_string())
            .collect();
        for p in &self.plugins.plugins {
            valid.extend(p.manifest().modes.iter().map(|m| m.to_string()));
        }
        if !compose {
            valid.extend(accounts.keys().cloned());
        }
        valid.sort();
        valid.dedup();
        if valid.contains(m) {
            Some(m.clone())
        } else {
            self.err(
                &span(v),
                format!(
                    "{what} `{m}` is not a {} mode{}",
                    if compose { "compose" } else { "send" },
                    if compose { "" } else { " or an account" }
                ),
                format!("valid: {}", valid.join(", ")),
            );
            None
        }
    }

    fn policy(&mut self, raw: &RawConfig, accounts: &BTreeMap<String, Account>) -> PolicySettings {
        let mut p = PolicySettings::default();
        let Some(rp) = &raw.policy else {
            return p;
        };
        let rp = rp.get_ref();
        let mut locs = BTreeMap::new();
        macro_rules! take {
            ($field:ident) => {
                if let Some(v) = &rp.$field {
                    locs.insert(stringify!($field).to_string(), self.loc(&span(v)));
                    p.$field = v.get_ref().clone();
                }
            };
        }
        take!(enabled);
        take!(allow_user_send_selection);
        take!(allow_user_compose_selection);
        take!(allow_microsoft365_web);
        take!(probe_ttl_ms);
        take!(probe_timeout_ms);
        take!(initial_backoff_ms);
        take!(max_backoff_ms);
        if let Some(v) = &rp.max_attempts {
            locs.insert("max_attempts".into(), self.loc(&span(v)));
            if *v.get_ref() == 0 || *v.get_ref() > 100 {
                self.err(
                    &span(v),
                    "max_attempts must be from 1 to 100",
                    "attempts per account before the next account is tried",
                );
            } else {
                p.max_attempts = *v.get_ref();
            }
        }
        if let Some(a) = &rp.account {
            locs.insert("account".into(), self.loc(&span(a)));
            p.account = self.check_account_ref("policy.account", a, accounts);
        }
        if let Some(m) = &rp.send_mode {
            locs.insert("send_mode".into(), self.loc(&span(m)));
            if let Some(m) = self.check_mode("policy.send_mode", m, false, accounts) {
                p.send_mode = m;
            }
        }
        if let Some(m) = &rp.compose_mode {
            locs.insert("compose_mode".into(), self.loc(&span(m)));
            if let Some(m) = self.check_mode("policy.compose_mode", m, true, accounts) {
                p.compose_mode = m;
            }
        }
        if let Some(ps) = &rp.preferred_sender {
            locs.insert("preferred_sender".into(), self.loc(&span(ps)));
            if ps.get_ref() == "graph" || ps.get_ref() == "smtp" {
                p.preferred_sender = ps.get_ref().clone();
            } else {
                self.err(
                    &span(ps),
                    format!(
                        "preferred_sender `{}` is not `graph` or `smtp`",
                        ps.get_ref()
                    ),
                    "which account kind to use when policy.account is unset and both exist",
                );
            }
        }
        for (key, compose) in [("send_autodetect", false), ("compose_autodetect", true)] {
            let list = if compose {
                &rp.compose_autodetect
            } else {
                &rp.send_autodetect
            };
            let Some(list) = list else { continue };
            locs.insert(key.into(), self.loc(&span(list)));
            if list.get_ref().is_empty() {
                self.err(
                    &span(list),
                    format!("policy.{key} is empty"),
                    "list at least one candidate, or remove the key for the default order",
                );
                continue;
            }
            let mut out: Vec<String> = Vec::new();
            for c in list.get_ref() {
                if c.get_ref() == "autodetect" {
                    self.err(
                        &span(c),
                        format!("policy.{key} cannot contain `autodetect` (a cycle)"),
                        "list concrete modes or accounts",
                    );
                    continue;
                }
                if out.contains(c.get_ref()) {
                    self.err(
                        &span(c),
                        format!("policy.{key} lists `{}` twice", c.get_ref()),
                        "remove the repeat",
                    );
                    continue;
                }
                let ok = (!compose && c.get_ref() == ACCOUNT_CANDIDATE)
                    || self
                        .check_mode(&format!("policy.{key} entry"), c, compose, accounts)
                        .is_some();
                if ok {
                    out.push(c.get_ref().clone());
                }
            }
            if compose {
                p.compose_autodetect = out;
            } else {
                p.send_autodetect = out;
            }
        }
        p.locs = locs;
        p
    }

    fn users(
        &mut self,
        raw: &RawConfig,
        accounts: &BTreeMap<String, Account>,
        tenants: &BTreeMap<String, Tenant>,
        policy: &PolicySettings,
    ) -> BTreeMap<String, User> {
        let _ = policy;
        let mut out = BTreeMap::new();
        for (name, u) in &raw.users {
            let un = name.get_ref().clone();
            let u = u.get_ref();
            let send_mode = u.send_mode.as_ref().and_then(|m| {
                self.check_mode(&format!("user `{un}` send_mode"), m, false, accounts)
            });
            let compose_mode = u.compose_mode.as_ref().and_then(|m| {
                self.check_mode(&format!("user `{un}` compose_mode"), m, true, accounts)
            });
            let tenant = match &u.tenant {
                Some(t) if !tenants.contains_key(t.get_ref()) => {
                    self.err(
                        &span(t),
                        format!(
                            "user `{un}` names tenant `{}`, which does not exist",
                            t.get_ref()
                        ),
                        format!("configured tenants: {}", names(tenants.keys(), "(none)")),
                    );
                    None
                }
                Some(t) => Some(t.get_ref().clone()),
                None => None,
            };
            let mut uaccs = BTreeMap::new();
            for (aname, ua) in &u.accounts {
                if self
                    .check_account_ref(&format!("user `{un}`"), aname, accounts)
                    .is_none()
                {
                    continue;
                }
                let ua = ua.get_ref();
                for (key, v) in [
                    ("username", &ua.username),
                    ("password", &ua.password),
                    ("mailbox", &ua.mailbox),
                ] {
                    if let Some(v) = v {
                        self.wire(
                            &format!("[users.{un}.accounts.{}] {key}", aname.get_ref()),
                            v,
                        );
                    }
                }
                if let Some(pw) = &ua.password {
                    self.secret_ref(
                        &format!("user `{un}` password for `{}`", aname.get_ref()),
                        pw,
                    );
                }
                if ua.username.is_none() && self.auth_is_optional(accounts.get(aname.get_ref())) {
                    self.err(
                        &span(aname),
                        format!(
                            "user `{un}` has no username for account `{}`, which has auth = \"optional\" (username required, password optional)",
                            aname.get_ref()
                        ),
                        format!(
                            "add `username = \"...\"` to [users.{un}.accounts.{}]; without a password the user's mail goes unauthenticated",
                            aname.get_ref()
                        ),
                    );
                } else if ua.password.is_some() && ua.username.is_none() {
                    self.err(
                        &span(aname),
                        format!(
                            "user `{un}`: credentials for `{}` have a password but no username",
                            aname.get_ref()
                        ),
                        "add `username = \"...\"`",
                    );
                }
                uaccs.insert(
                    aname.get_ref().clone(),
                    UserAccount {
                        username: ua.username.as_ref().map(|s| s.get_ref().clone()),
                        password: ua.password.as_ref().map(|s| s.get_ref().clone()),
                        mailbox: ua.mailbox.as_ref().map(|s| s.get_ref().clone()),
                    },
                );
            }
            let from = u.from.as_ref().and_then(|f| self.address("from", f));
            out.insert(
                un.clone(),
                User {
                    name: un,
                    send_mode,
                    compose_mode,
                    tenant,
                    from,
                    accounts: uaccs,
                    loc: self.loc(&span(name)),
                },
            );
        }
        out
    }
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.contains('.')
        && d.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
}

/// TOML → JSON for the plugin (datetimes become strings).
pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// The configured names, comma-separated, or `empty` when there are none (for
/// "configured: ..." hints in errors).
pub(crate) fn names<'a>(keys: impl Iterator<Item = &'a String>, empty: &str) -> String {
    let list: Vec<&str> = keys.map(String::as_str).collect();
    if list.is_empty() {
        empty.to_string()
    } else {
        list.join(", ")
    }
}
