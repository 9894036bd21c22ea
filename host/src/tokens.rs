//! The OAuth2 token broker shared by every plugin (issue 6 fills this in).
//!
//! Contract used by the rest of the host:
//! * `TokenBroker::new(clients)` with one [`OAuthClientConfig`] per `[oauth.NAME]`;
//! * `TokenBroker::token(provider, scope, force_refresh)` — blocking, callable
//!   from any thread (also from inside a tokio runtime), never logs a token.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use mailhost_plugin_api::PluginError;

/// One `[oauth.NAME]` client, secrets already resolved.
#[derive(Clone)]
pub struct OAuthClientConfig {
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// e.g. `https://login.microsoftonline.com`; tests point it at the Graph double.
    pub authority: String,
    /// Extra CA certificate (PEM) to trust for the authority, for tests and private clouds.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for OAuthClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientConfig")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("authority", &self.authority)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Shares OAuth2 access tokens among plugins.
#[derive(Debug, Default)]
pub struct TokenBroker {
    clients: BTreeMap<String, OAuthClientConfig>,
}

impl TokenBroker {
    pub fn new(clients: BTreeMap<String, OAuthClientConfig>) -> Self {
        Self { clients }
    }

    /// An access token for `provider` (an `[oauth.NAME]`) and `scope`.
    pub fn token(&self, provider: &str, _scope: &str, _force_refresh: bool) -> Result<String, PluginError> {
        match self.clients.get(provider) {
            None => Err(PluginError::config(format!(
                "no OAuth client [oauth.{provider}] is configured; add one or fix the account's `oauth` key"
            ))),
            Some(_) => Err(PluginError::unavailable("the token broker is not built yet")),
        }
    }
}
