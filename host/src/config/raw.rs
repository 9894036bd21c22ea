//! Phase one: the TOML as written, with spans, unknown keys refused.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;
/// An account table: keys and values with their spans (host keys and plugin keys mixed).
pub type RawAccount = BTreeMap<S<String>, S<toml::Value>>;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub policy: Option<S<RawPolicy>>,
    #[serde(default)]
    pub oauth: BTreeMap<S<String>, S<RawOAuth>>,
    #[serde(default)]
    pub accounts: BTreeMap<S<String>, S<RawAccount>>,
    #[serde(default)]
    pub tenants: BTreeMap<S<String>, S<RawTenant>>,
    #[serde(default)]
    pub users: BTreeMap<S<String>, S<RawUser>>,
    #[serde(default)]
    pub purposes: BTreeMap<S<String>, S<RawPurpose>>,
    #[serde(default)]
    pub limits: Option<S<crate::limits::Limits>>,
    #[serde(default)]
    pub outbox: Option<S<crate::outbox::OutboxSettings>>,
    #[serde(default)]
    pub api: Option<S<crate::server::auth::ApiSettings>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub enabled: Option<S<bool>>,
    pub account: Option<S<String>>,
    pub send_mode: Option<S<String>>,
    pub compose_mode: Option<S<String>>,
    pub allow_user_send_selection: Option<S<bool>>,
    pub allow_user_compose_selection: Option<S<bool>>,
    pub allow_microsoft365_web: Option<S<bool>>,
    pub preferred_sender: Option<S<String>>,
    pub send_autodetect: Option<S<Vec<S<String>>>>,
    pub compose_autodetect: Option<S<Vec<S<String>>>>,
    pub probe_ttl_ms: Option<S<u64>>,
    pub probe_timeout_ms: Option<S<u64>>,
    pub max_attempts: Option<S<u32>>,
    pub initial_backoff_ms: Option<S<u64>>,
    pub max_backoff_ms: Option<S<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth {
    pub tenant: S<String>,
    pub client_id: S<String>,
    pub client_secret: S<String>,
    pub authority: Option<S<String>>,
    pub ca_file: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub account: Option<S<String>>,
    pub from: Option<S<String>>,
    pub enabled: Option<S<bool>>,
    pub support_address: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub send_mode: Option<S<String>>,
    pub compose_mode: Option<S<String>>,
    pub tenant: Option<S<String>>,
    pub from: Option<S<String>>,
    #[serde(default)]
    pub accounts: BTreeMap<S<String>, S<RawUserAccount>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUserAccount {
    pub username: Option<S<String>>,
    pub password: Option<S<String>>,
    pub mailbox: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurpose {
    pub accounts: Option<S<Vec<S<String>>>>,
    pub allow_sender: Option<S<bool>>,
    pub allowed_recipients: Option<S<Vec<S<String>>>>,
    pub default_from: Option<S<String>>,
    pub support_address: Option<S<String>>,
    pub attach_system_info: Option<S<bool>>,
    pub allow_client_support_address: Option<S<bool>>,
}
