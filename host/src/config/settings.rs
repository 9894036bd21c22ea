//! The validated configuration's types: what the rest of the host reads.
//!
//! [`super::validate`] builds these from the raw TOML; nothing here parses.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::{ConfigError, Loc};

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
    "outlook-new",
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
    "max_concurrent",
    "max_age_secs",
    "description",
    "save_copy_to",
    "preset",
];

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
                "outlook-new".into(),
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
    /// Sends in flight at once through this account, across every `serve`
    /// process on one outbox database.
    pub max_concurrent: Option<u32>,
    /// How long the outbox retries this account after temporary failures
    /// before the next way out (overrides `[outbox] max_age_secs`).
    pub max_age_secs: Option<u64>,
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
    /// The plugin preset (`preset = "NAME"`) applied to the settings, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<AppliedPreset>,
}

/// A plugin's preset as applied to an account: the keys it filled, and the
/// keys the account set itself (those win). Presets are data in the plugin's
/// settings schema: `"x-presets": {"NAME": {"key": value, ...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedPreset {
    pub name: String,
    pub filled: serde_json::Map<String, serde_json::Value>,
    pub explicit: Vec<String>,
}

impl AppliedPreset {
    /// `preset `office365` filled host = "smtp.office365.com", port = 587; explicit: port`
    pub fn describe(&self) -> String {
        let filled: Vec<String> = self
            .filled
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        let mut s = format!(
            "preset `{}` filled {}",
            self.name,
            if filled.is_empty() {
                "nothing".to_string()
            } else {
                filled.join(", ")
            }
        );
        if !self.explicit.is_empty() {
            s.push_str(&format!("; set explicitly: {}", self.explicit.join(", ")));
        }
        s
    }
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
    /// `[outbox]`: where `mailhost serve` keeps messages (crate::outbox).
    /// Not serialized: `database` may hold a URL with a password.
    #[serde(skip)]
    pub outbox: crate::outbox::OutboxSettings,
    /// `[api]`: the service's address and API tokens (crate::server::auth).
    #[serde(skip)]
    pub api: crate::server::auth::ApiSettings,
    /// Things that work but should be fixed (plain-text secrets, unset env vars).
    pub warnings: Vec<ConfigError>,
}
