//! Configuration: TOML → raw (spans, unknown keys refused) → validated [`Settings`].
//!
//! Every mistake is reported with `file:line:col`, what is wrong and what
//! would be valid; validation collects all mistakes in one pass.

mod raw;
mod source;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::loader::PluginSet;
use raw::{RawAccount, RawConfig, S};
pub use source::{ConfigError, ConfigErrors, Loc, Source};

/// The configuration the binary falls back to: one pickup account writing to
/// `./outbox`, so a new user can send with no server at all.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/mailhost.toml");
pub const EMBEDDED_NAME: &str = "<embedded default config/mailhost.toml>";

/// Built-in send modes (an account name is a send mode too).
pub const SEND_MODES: &[&str] = &[
    "autodetect",
    "smtp",
    "graph",
    "outlook",
    "mapi-full",
    "mapi-simple",
];
/// Built-in compose modes.
pub const COMPOSE_MODES: &[&str] = &[
    "autodetect",
    "builtin",
    "outlook",
    "mapi-full",
    "mapi-simple",
    "m365-draft",
    "imap-draft",
];
/// Entries allowed in `send_autodetect` besides modes: the system/tenant account.
pub const ACCOUNT_CANDIDATE: &str = "account";
/// Keys of an `[accounts.NAME]` table that the host takes; the rest goes to the plugin.
pub const HOST_ACCOUNT_KEYS: &[&str] = &[
    "plugin",
    "from",
    "max_per_minute",
    "description",
    "save_copy_to",
];
/// Plugin keys whose literal values are secrets and should be references.
const SECRET_KEYS: &[&str] = &["password", "client_secret", "secret", "api_key", "token"];

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// `[policy]`, validated.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySettings {
    pub enabled: bool,
    pub account: Option<String>,
    pub send_mode: String,
    pub compose_mode: String,
    pub allow_user_send_selection: bool,
    pub allow_user_compose_selection: bool,
    pub allow_microsoft365_web: bool,
    pub preferred_sender: String,
    pub send_autodetect: Vec<String>,
    pub compose_autodetect: Vec<String>,
    pub probe_ttl_ms: u64,
    pub probe_timeout_ms: u64,
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Where each key was set (absent: the default).
    pub locs: BTreeMap<String, Loc>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            account: None,
            send_mode: "autodetect".into(),
            compose_mode: "autodetect".into(),
            allow_user_send_selection: true,
            allow_user_compose_selection: true,
            allow_microsoft365_web: true,
            preferred_sender: "graph".into(),
            send_autodetect: vec![
                ACCOUNT_CANDIDATE.into(),
                "outlook".into(),
                "mapi-full".into(),
                "mapi-simple".into(),
            ],
            compose_autodetect: vec![
                "outlook".into(),
                "mapi-full".into(),
                "mapi-simple".into(),
                "builtin".into(),
            ],
            probe_ttl_ms: 30_000,
            probe_timeout_ms: 2_000,
            max_attempts: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            locs: BTreeMap::new(),
        }
    }
}

impl PolicySettings {
    /// `file:line:col` of a key, or `default` when not set.
    pub fn loc_of(&self, key: &str) -> String {
        self.locs
            .get(key)
            .map(|l| l.to_string())
            .unwrap_or_else(|| "default".to_string())
    }
}

/// `[oauth.NAME]`: an OAuth2 client for the token broker (secret unresolved).
#[derive(Debug, Clone, Serialize)]
pub struct OAuthSettings {
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    /// A secret reference; never printed.
    #[serde(skip)]
    pub client_secret: String,
    pub authority: String,
    pub ca_file: Option<PathBuf>,
    pub loc: Loc,
}

/// `[accounts.NAME]`: a plugin and its settings.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub name: String,
    pub plugin: String,
    pub from: Option<String>,
    pub max_per_minute: Option<u32>,
    pub description: String,
    /// Another account that stores a copy of each message sent through this one (see `crate::copies`).
    pub save_copy_to: Option<crate::copies::CopyTarget>,
    /// The plugin's own keys as JSON, validated against its schema. May hold
    /// secret *references* (never values); not serialized.
    #[serde(skip)]
    pub settings: serde_json::Value,
    /// The modes the plugin serves.
    pub modes: Vec<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub name: String,
    pub account: Option<String>,
    pub from: Option<String>,
    pub enabled: bool,
    /// This client's own support address, used by purposes with
    /// `allow_client_support_address = true` instead of theirs.
    pub support_address: Option<String>,
    pub loc: Loc,
}

/// Per-user credentials or mailbox for one account.
#[derive(Debug, Clone, Serialize, Default)]
pub struct UserAccount {
    pub username: Option<String>,
    /// A secret reference; never printed.
    #[serde(skip)]
    pub password: Option<String>,
    pub mailbox: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub name: String,
    pub send_mode: Option<String>,
    pub compose_mode: Option<String>,
    pub tenant: Option<String>,
    pub from: Option<String>,
    pub accounts: BTreeMap<String, UserAccount>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Serialize)]
pub struct Purpose {
    pub name: String,
    /// Accounts this purpose may use (empty: any).
    pub accounts: Vec<String>,
    /// Whether the request may set its own From.
    pub allow_sender: bool,
    /// Permitted recipients: `user@domain`, `@domain` or `domain` (empty: any).
    pub allowed_recipients: Vec<String>,
    pub default_from: Option<String>,
    pub support_address: Option<String>,
    pub attach_system_info: bool,
    /// Whether a tenant's own `support_address` replaces this purpose's.
    pub allow_client_support_address: bool,
    pub loc: Loc,
}

/// The validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub source: String,
    pub base_dir: PathBuf,
    pub policy: PolicySettings,
    pub oauth: BTreeMap<String, OAuthSettings>,
    pub accounts: BTreeMap<String, Account>,
    pub tenants: BTreeMap<String, Tenant>,
    pub users: BTreeMap<String, User>,
    pub purposes: BTreeMap<String, Purpose>,
    /// `[limits]`: the size of every input (crate::limits).
    pub limits: crate::limits::Limits,
    /// Things that work but should be fixed (plain-text secrets, unset env vars).
    pub warnings: Vec<ConfigError>,
}

/// Which config to read: `--config`, else `MAILHOST_CONFIG`, else
/// `./mailhost.toml` when present, else the embedded default.
pub fn locate(cli: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = cli {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("MAILHOST_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let local = PathBuf::from("mailhost.toml");
    local.exists().then_some(local)
}

/// Reads and validates the config at `path` (or the embedded default when `None`).
pub fn load(path: Option<&Path>, plugins: &PluginSet) -> Result<Settings, ConfigErrors> {
    let source = match path {
        Some(p) => Source::from_file(p)?,
        None => Source::from_text(EMBEDDED_NAME, Path::new("."), EMBEDDED_DEFAULT),
    };
    validate(&source, plugins)
}

/// Parses and validates a config text.
pub fn validate(source: &Source, plugins: &PluginSet) -> Result<Settings, ConfigErrors> {
    let raw: RawConfig = toml::from_str(&source.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let (message, hint) = explain_toml_error(e.message());
        ConfigErrors(vec![source.error(&span, message, hint)])
    })?;
    Validator {
        src: source,
        plugins,
        errors: Vec::new(),
        warnings: Vec::new(),
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
}

fn span<T>(s: &S<T>) -> Range<usize> {
    s.span()
}

impl Validator<'_> {
    fn err(&mut self, at: &Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let e = self.src.error(at, message, hint);
        self.errors.push(e);
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
            crate::secrets::SecretKind::File => {}
        }
    }

    fn run(mut self, raw: RawConfig) -> Result<Settings, ConfigErrors> {
        let oauth = self.oauth(&raw);
        let accounts = self.accounts(&raw, &oauth);
        let tenants = self.tenants(&raw, &accounts);
        let purposes = self.purposes(&raw, &accounts);
        let policy = self.policy(&raw, &accounts);
        let users = self.users(&raw, &accounts, &tenants, &policy);
        self.errors
            .extend(crate::copies::check_config(&accounts, self.plugins));
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
            limits: raw
                .limits
                .as_ref()
                .map(|l| l.get_ref().clone())
                .unwrap_or_default(),
            warnings: self.warnings,
        })
    }

    fn oauth(&mut self, raw: &RawConfig) -> BTreeMap<String, OAuthSettings> {
        let mut out = BTreeMap::new();
        for (name, o) in &raw.oauth {
            let o = o.get_ref();
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

    fn all_modes(&self) -> Vec<String> {
        let mut modes: Vec<String> = SEND_MODES
            .iter()
            .chain(COMPOSE_MODES)
            .map(|m| m.to_string())
            .collect();
        for p in &self.plugins.plugins {
            modes.extend(p.manifest().modes.iter().map(|m| m.to_string()));
        }
        modes.sort();
        modes.dedup();
        modes
    }

    fn accounts(
        &mut self,
        raw: &RawConfig,
        oauth: &BTreeMap<String, OAuthSettings>,
    ) -> BTreeMap<String, Account> {
        let modes = self.all_modes();
        let mut out = BTreeMap::new();
        for (name, table) in &raw.accounts {
            if modes.iter().any(|m| m == name.get_ref()) {
                self.err(
                    &span(name),
                    format!("account `{}` is named after a mode", name.get_ref()),
                    "rename it (e.g. `office-smtp`): a send mode could not tell the two apart",
                );
                continue;
            }
            if let Some(a) = self.account(name, table, oauth) {
                out.insert(a.name.clone(), a);
            }
        }
        out
    }

    fn account(
        &mut self,
        name: &S<String>,
        table: &S<RawAccount>,
        oauth: &BTreeMap<String, OAuthSettings>,
    ) -> Option<Account> {
        let aname = name.get_ref().clone();
        let t = table.get_ref();
        let get = |k: &str| t.iter().find(|(key, _)| key.get_ref() == k);
        let Some((_, plugin_v)) = get("plugin") else {
            let names = self.plugins.names().join(", ");
            self.err(
                &span(name),
                format!("account `{aname}` has no `plugin` key"),
                format!("add `plugin = \"...\"` naming a loaded plugin: {names}"),
            );
            return None;
        };
        let Some(plugin_name) = plugin_v.get_ref().as_str() else {
            self.err(
                &span(plugin_v),
                "`plugin` must be a string",
                "e.g. plugin = \"smtp\"",
            );
            return None;
        };
        let Some(plugin) = self.plugins.get(plugin_name) else {
            let mut hint = format!("loaded plugins: {}", self.plugins.names().join(", "));
            if let Some(f) = self.plugins.failures.iter().find(|f| {
                f.path
                    .to_string_lossy()
                    .contains(&format!("mailhost_{plugin_name}"))
            }) {
                hint = format!(
                    "{hint}; {} did not load: {}",
                    f.path.display(),
                    f.reason.lines().next().unwrap_or("")
                );
            }
            self.err(
                &span(plugin_v),
                format!("account `{aname}`: no plugin named `{plugin_name}` is loaded"),
                format!("{hint} (run `mailhost plugins` to see why)"),
            );
            return None;
        };
        let manifest = plugin.manifest();
        let mut from = None;
        let mut max_per_minute = None;
        let mut description = String::new();
        let mut save_copy_to = None;
        let mut settings = serde_json::Map::new();
        let mut spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for (key, value) in t {
            let k = key.get_ref().as_str();
            spans.insert(k.to_string(), span(key));
            match k {
                "plugin" => {}
                "from" => match value.get_ref().as_str() {
                    Some(s) => {
                        let sv = S::new(span(value), s.to_string());
                        from = self.address("from", &sv);
                    }
                    None => self.err(
                        &span(value),
                        "`from` must be a string",
                        "e.g. from = \"ERP <erp@example.com>\"",
                    ),
                },
                "max_per_minute" => match value.get_ref().as_integer() {
                    Some(n) if (1..=1_000_000).contains(&n) => max_per_minute = Some(n as u32),
                    _ => self.err(
                        &span(value),
                        "`max_per_minute` must be a whole number from 1 to 1000000",
                        "messages per minute this account may send; leave it out for no limit",
                    ),
                },
                "description" => {
                    description = value.get_ref().as_str().unwrap_or_default().to_string()
                }
                "save_copy_to" => match value.get_ref().as_str() {
                    Some(a) => {
                        save_copy_to = Some(crate::copies::CopyTarget {
                            account: a.to_string(),
                            loc: self.loc(&span(value)),
                        })
                    }
                    None => self.err(
                        &span(value),
                        "`save_copy_to` must be an account name",
                        "e.g. save_copy_to = \"mailbox\" (an account with plugin = \"imap\")",
                    ),
                },
                _ => {
                    if SECRET_KEYS.contains(&k) {
                        if let Some(s) = value.get_ref().as_str() {
                            self.secret_ref(
                                &format!("[accounts.{aname}] {k}"),
                                &S::new(span(value), s.to_string()),
                            );
                        }
                    }
                    if k == "oauth" {
                        if let Some(o) = value.get_ref().as_str() {
                            if !oauth.contains_key(o) {
                                self.err(&span(value), format!("account `{aname}`: no OAuth client `[oauth.{o}]` is configured"), format!("add an [oauth.{o}] section or use one of: {}", names(oauth.keys(), "(none configured)")));
                            }
                        }
                    }
                    settings.insert(k.to_string(), toml_to_json(value.get_ref()));
                }
            }
        }
        resolve_paths(
            &mut settings,
            manifest.settings_schema.as_str(),
            &self.src.base_dir,
        );
        let settings = serde_json::Value::Object(settings);
        self.schema_check(
            &aname,
            name,
            manifest.settings_schema.as_str(),
            plugin_name,
            &settings,
            &spans,
        );
        Some(Account {
            name: aname,
            plugin: plugin_name.to_string(),
            from,
            max_per_minute,
            description,
            save_copy_to,
            settings,
            modes: manifest.modes.iter().map(|m| m.to_string()).collect(),
            loc: self.loc(&span(name)),
        })
    }

    fn schema_check(
        &mut self,
        aname: &str,
        at_name: &S<String>,
        schema_text: &str,
        plugin: &str,
        settings: &serde_json::Value,
        spans: &BTreeMap<String, Range<usize>>,
    ) {
        let Ok(schema) = serde_json::from_str::<serde_json::Value>(schema_text) else {
            return; // the loader refuses plugins with a broken schema
        };
        // Unknown keys first, with the list of valid ones (clearer than the schema's words).
        let props: Vec<String> = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let closed = schema.get("additionalProperties") == Some(&serde_json::Value::Bool(false));
        let mut unknown = Vec::new();
        if let Some(obj) = settings.as_object() {
            for k in obj.keys() {
                if closed && !props.contains(k) {
                    unknown.push(k.clone());
                }
            }
        }
        for k in &unknown {
            let at = spans.get(k).cloned().unwrap_or_else(|| span(at_name));
            let mut valid: Vec<String> = HOST_ACCOUNT_KEYS.iter().map(|s| s.to_string()).collect();
            valid.extend(props.iter().cloned());
            self.err(
                &at,
                format!("account `{aname}`: unknown key `{k}` for plugin `{plugin}`"),
                format!("valid keys: {}", valid.join(", ")),
            );
        }
        let Ok(validator) = jsonschema::validator_for(&schema) else {
            return;
        };
        for e in validator.iter_errors(settings) {
            let path = e.instance_path.to_string();
            let first = path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("")
                .to_string();
            if matches!(
                e.kind,
                jsonschema::error::ValidationErrorKind::AdditionalProperties { .. }
            ) && path.is_empty()
                && !unknown.is_empty()
            {
                continue;
            }
            let at = spans.get(&first).cloned().unwrap_or_else(|| span(at_name));
            let key = if path.is_empty() {
                String::new()
            } else {
                format!(" `{}`", path.trim_start_matches('/').replace('/', "."))
            };
            let hint = describe_property(&schema, &first);
            self.err(&at, format!("account `{aname}`{key}: {e}"), hint);
        }
    }

    fn check_account_ref(
        &mut self,
        what: &str,
        v: &S<String>,
        accounts: &BTreeMap<String, Account>,
    ) -> Option<String> {
        if accounts.contains_key(v.get_ref()) {
            Some(v.get_ref().clone())
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
            let schema: serde_json::Value =
                serde_json::from_str(p.manifest().settings_schema.as_str()).ok()?;
            schema.pointer("/properties/auth/default").cloned()
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

/// The schema's description, type and allowed values of a property, as a hint.
fn describe_property(schema: &serde_json::Value, key: &str) -> String {
    let Some(p) = schema.get("properties").and_then(|p| p.get(key)) else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(d) = p.get("description").and_then(|d| d.as_str()) {
        parts.push(d.to_string());
    }
    if let Some(e) = p.get("enum").and_then(|e| e.as_array()) {
        parts.push(format!(
            "one of: {}",
            e.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let (Some(min), Some(max)) = (p.get("minimum"), p.get("maximum")) {
        parts.push(format!("from {min} to {max}"));
    }
    if let Some(t) = p.get("type") {
        parts.push(format!("type {t}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("`{key}`: {}", parts.join("; "))
    }
}

/// Plugin settings whose schema says `"format": "path"` are made absolute
/// against the config file's directory (a plugin does not know where the config is).
fn resolve_paths(
    settings: &mut serde_json::Map<String, serde_json::Value>,
    schema_text: &str,
    base: &Path,
) {
    let Ok(schema) = serde_json::from_str::<serde_json::Value>(schema_text) else {
        return;
    };
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    for (k, p) in props {
        if p.get("format").and_then(|f| f.as_str()) != Some("path") {
            continue;
        }
        if let Some(serde_json::Value::String(v)) = settings.get_mut(k) {
            let path = Path::new(v.as_str());
            if path.is_relative() && !v.is_empty() {
                *v = base.join(path).to_string_lossy().into_owned();
            }
        }
    }
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
