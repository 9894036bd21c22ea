use std::path::PathBuf;
use std::time::Duration;

use mailhost_plugin_api::options::HostOptions;
use mailhost_plugin_api::{wire, PluginError};
use serde::Deserialize;

/// Microsoft Graph's public-cloud endpoint.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com/v1.0";
/// The scope for Graph with application permissions (client credentials).
pub const DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// JSON Schema of the account settings; the host validates accounts with it.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Microsoft 365 (Graph) account",
  "type": "object",
  "additionalProperties": false,
  "required": ["oauth", "mailbox"],
  "properties": {
    "oauth": {"type": "string", "minLength": 1, "description": "the [oauth.NAME] client whose tokens this account uses (an app registration with the Mail.Send application permission; Mail.ReadWrite for drafts and messages over 4 MB)"},
    "mailbox": {"type": "string", "minLength": 1, "description": "the mailbox to send as: its user id or user principal name (erp@contoso.com); a request may name another with the `mailbox` option"},
    "save_to_sent_items": {"type": "boolean", "default": true, "description": "keep a copy in the mailbox's Sent Items; false sends through Graph's JSON form, since MIME sends are always saved"},
    "base_url": {"type": "string", "minLength": 1, "default": "https://graph.microsoft.com/v1.0", "description": "Graph endpoint, for national clouds (https://graph.microsoft.us/v1.0) and tests"},
    "scope": {"type": "string", "minLength": 1, "default": "https://graph.microsoft.com/.default", "description": "the OAuth2 scope asked of the token broker; must match base_url's cloud"},
    "ca_file": {"type": "string", "minLength": 1, "format": "path", "description": "extra CA certificate (PEM) to trust for base_url, for tests and private proxies"},
    "timeout_ms": {"type": "integer", "minimum": 1000, "maximum": 3600000, "default": 60000, "description": "time limit of one HTTP request to Graph, in milliseconds"}
  }
}"#;

/// Settings of one Graph account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    pub oauth: String,
    pub mailbox: String,
    #[serde(default = "yes")]
    pub save_to_sent_items: bool,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    #[serde(default = "default_scope")]
    pub scope: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}
fn default_scope() -> String {
    DEFAULT_SCOPE.to_string()
}
fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl GraphConfig {
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        let config: Self = serde_json::from_str(json)
            .map_err(|e| PluginError::config(format!("graph settings are invalid: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), PluginError> {
        // Each goes into a URL or a token request: one line, no CR/LF/NUL.
        wire::setting("graph", "oauth", &self.oauth)?;
        wire::setting("graph", "mailbox", &self.mailbox)?;
        wire::setting("graph", "base_url", &self.base_url)?;
        wire::setting("graph", "scope", &self.scope)?;
        if self.oauth.trim().is_empty() {
            return Err(PluginError::config(
                "graph: `oauth` is empty; name an [oauth.NAME] client",
            ));
        }
        if self.mailbox.trim().is_empty() {
            return Err(PluginError::config(
                "graph: `mailbox` is empty; set the user id or UPN to send as",
            ));
        }
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| {
            PluginError::config(format!(
                "graph: base_url {:?} is not a URL ({e}); e.g. https://graph.microsoft.com/v1.0",
                self.base_url
            ))
        })?;
        if url.scheme() != "https" {
            return Err(PluginError::config(format!(
                "graph: base_url {} must use https (tokens must not travel in clear text)",
                self.base_url
            )));
        }
        if url.cannot_be_a_base() || url.query().is_some() {
            return Err(PluginError::config(format!(
                "graph: base_url {} must be a plain https URL without query",
                self.base_url
            )));
        }
        if !self.scope.ends_with("/.default") {
            return Err(PluginError::config(format!(
                "graph: scope {:?} must end in /.default (client-credentials tokens carry the app's granted permissions)",
                self.scope
            )));
        }
        if self.timeout_ms < 1000 {
            return Err(PluginError::config(
                "graph: timeout_ms must be at least 1000",
            ));
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// What the Graph plugin reads from `options_json`: the host's keys (the
/// per-user `mailbox`, through plugin-api's one definition) and its own
/// request key `save_to_sent_items`; other keys are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestOptions {
    /// The host's keys; `host.mailbox` sends as / creates the draft in that
    /// mailbox instead of the account's (set only by the host, from
    /// `[users.NAME.accounts.ACCOUNT] mailbox`).
    #[serde(flatten)]
    pub host: HostOptions,
    #[serde(default)]
    pub save_to_sent_items: Option<bool>,
}

impl RequestOptions {
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        if json.trim().is_empty() {
            return Ok(Self::default());
        }
        let o: Self = serde_json::from_str(json).map_err(|e| {
            PluginError::permanent(format!(
                "graph: the request's options_json is not a valid options object: {e}"
            ))
        })?;
        if let Some(m) = &o.host.mailbox {
            // The mailbox becomes a URL path segment; a URL parser drops CR/LF
            // silently, which would send as another mailbox than the one named.
            wire::request("graph", "mailbox option", m)?;
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_line_breaks_in_settings_naming_the_key() {
        for (key, json) in [
            ("mailbox", r#"{"oauth":"m","mailbox":"a@example.com\r\nx"}"#),
            ("oauth", r#"{"oauth":"m\u0000","mailbox":"a@example.com"}"#),
            (
                "base_url",
                r#"{"oauth":"m","mailbox":"a","base_url":"https://g.example/v1.0\n"}"#,
            ),
            (
                "scope",
                r#"{"oauth":"m","mailbox":"a","scope":"s\r/.default"}"#,
            ),
        ] {
            let e = GraphConfig::from_json(json).unwrap_err();
            assert_eq!(e.class(), mailhost_plugin_api::ErrorClass::CONFIG, "{e}");
            assert!(e.message().contains(&format!("`{key}`")), "{key}: {e}");
            assert!(
                !e.message().contains('\n') && !e.message().contains('\r'),
                "{e}"
            );
        }
    }

    #[test]
    fn defaults() {
        let c = GraphConfig::from_json(r#"{"oauth":"m365","mailbox":"a@example.com"}"#).unwrap();
        assert!(c.save_to_sent_items);
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.scope, DEFAULT_SCOPE);
        assert_eq!(c.timeout_ms, DEFAULT_TIMEOUT_MS);
    }

    #[test]
    fn rejects_unknown_keys_and_http() {
        assert!(GraphConfig::from_json(r#"{"oauth":"m","mailbox":"a","nope":1}"#).is_err());
        let e = GraphConfig::from_json(r#"{"oauth":"m","mailbox":"a","base_url":"http://x/v1.0"}"#)
            .unwrap_err();
        assert!(e.message().contains("https"));
        let e = GraphConfig::from_json(r#"{"oauth":"m","mailbox":"a","scope":"Mail.Send"}"#)
            .unwrap_err();
        assert!(e.message().contains("/.default"));
    }

    #[test]
    fn schema_is_json() {
        let v: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(v["additionalProperties"], false);
    }

    #[test]
    fn options_ignore_unknown_keys() {
        let o =
            RequestOptions::from_json(r#"{"mailbox":"b@example.com","dsn":{"notify":["never"]}}"#)
                .unwrap();
        assert_eq!(o.host.mailbox.as_deref(), Some("b@example.com"));
        assert!(RequestOptions::from_json("")
            .unwrap()
            .host
            .mailbox
            .is_none());
        let e = RequestOptions::from_json(r#"{"mailbox":"b@example.com\r\nx"}"#).unwrap_err();
        assert_eq!(e.class(), mailhost_plugin_api::ErrorClass::PERMANENT);
        assert!(e.message().contains("mailbox option"), "{e}");
        assert!(!e.message().contains('\n'), "{e}");
    }
}
