use std::path::PathBuf;
use std::time::Duration;

use mailhost_plugin_api::options::HostOptions;
use mailhost_plugin_api::{settings, wire, PluginError};
use schemars::JsonSchema;
use serde::Deserialize;

/// Microsoft Graph's public-cloud endpoint.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com/v1.0";
/// The scope for Graph with application permissions (client credentials).
pub const DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// JSON Schema (draft 2020-12) of the account settings, derived from
/// [`GraphConfig`]: the one definition of the keys; the host validates
/// accounts with it.
pub fn schema() -> String {
    settings::schema_for::<GraphConfig>()
}

/// An `https://` URL on one line.
const HTTPS_URL: &str = r"^https://[^\s\x00]+$";
/// A client-credentials scope: one line ending in `/.default`.
const DEFAULT_SCOPE_PATTERN: &str = r"^[^\s\x00]+/\.default$";

// The serde struct is the one definition of the settings: the doc comments
// are the descriptions users read in `mailhost plugins --settings graph`.
/// The settings of a Microsoft 365 (Graph) account.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Microsoft 365 (Graph) account")]
pub struct GraphConfig {
    /// the [oauth.NAME] client whose tokens this account uses (an app registration with the Mail.Send application permission; Mail.ReadWrite for drafts and messages over 4 MB)
    #[schemars(length(min = 1, max = 128), regex(pattern = settings::ONE_LINE))]
    pub oauth: String,
    /// the mailbox to send as: its user id or user principal name (erp@contoso.com); a user may have another in [users.NAME.accounts.ACCOUNT] mailbox
    #[schemars(length(min = 1, max = 320), regex(pattern = settings::ONE_LINE))]
    pub mailbox: String,
    /// keep a copy in the mailbox's Sent Items; false sends through Graph's JSON form, since MIME sends are always saved
    #[serde(default = "yes")]
    pub save_to_sent_items: bool,
    /// Graph endpoint, for national clouds (<https://graph.microsoft.us/v1.0>) and tests: an https URL without query
    #[serde(default = "default_base_url")]
    #[schemars(length(min = 9, max = 2048), regex(pattern = HTTPS_URL), extend("format" = "uri"))]
    pub base_url: String,
    /// the OAuth2 scope asked of the token broker, ending in /.default; must match base_url's cloud
    #[serde(default = "default_scope")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = DEFAULT_SCOPE_PATTERN))]
    pub scope: String,
    /// extra CA certificate (PEM) to trust for base_url, for tests and private proxies
    #[serde(default)]
    #[schemars(length(min = 1, max = 4096), extend("format" = "path"))]
    pub ca_file: Option<PathBuf>,
    /// time limit of one HTTP request to Graph, in milliseconds
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 1000, max = 3_600_000u64))]
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
        if !(1000..=3_600_000).contains(&self.timeout_ms) {
            return Err(PluginError::config(format!(
                "graph setting `timeout_ms`: {} is out of range; use 1000 to 3600000 (one hour)",
                self.timeout_ms
            )));
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
    fn derived_schema_keeps_what_the_host_relies_on() {
        let v: serde_json::Value = serde_json::from_str(&schema()).unwrap();
        assert_eq!(v["additionalProperties"], false);
        assert_eq!(v["required"], serde_json::json!(["oauth", "mailbox"]));
        assert_eq!(v["properties"]["ca_file"]["format"], "path");
        assert_eq!(v["properties"]["base_url"]["default"], DEFAULT_BASE_URL);
        assert_eq!(v["properties"]["save_to_sent_items"]["default"], true);
        assert_eq!(v["properties"]["timeout_ms"]["default"], DEFAULT_TIMEOUT_MS);
        assert!(!schema().contains("$ref") && !schema().contains("null"));
    }

    #[test]
    fn schema_refuses_what_open_refuses() {
        let v: serde_json::Value = serde_json::from_str(&schema()).unwrap();
        let validator = jsonschema::validator_for(&v).unwrap();
        for bad in [
            r#"{"oauth":"m","mailbox":"a","base_url":"not a url"}"#,
            r#"{"oauth":"m","mailbox":"a","base_url":"http://graph.example/v1.0"}"#,
            r#"{"oauth":"m","mailbox":"a","scope":"Mail.Send"}"#,
            r#"{"oauth":"m","mailbox":"a@example.com\r\nx"}"#,
            r#"{"oauth":"m\u0000","mailbox":"a"}"#,
            r#"{"oauth":"m","mailbox":"a","timeout_ms":999}"#,
            r#"{"oauth":"m","mailbox":"a","timeout_ms":3600001}"#,
            r#"{"oauth":"m","mailbox":""}"#,
            r#"{"oauth":"m"}"#,
        ] {
            let settings: serde_json::Value = serde_json::from_str(bad).unwrap();
            assert!(!validator.is_valid(&settings), "schema accepts {bad}");
            assert!(GraphConfig::from_json(bad).is_err(), "open accepts {bad}");
        }
        let good = r#"{"oauth":"m365","mailbox":"erp@contoso.com","base_url":"https://127.0.0.1:8443/v1.0","scope":"https://graph.microsoft.us/.default","timeout_ms":1000}"#;
        assert!(validator.is_valid(&serde_json::from_str(good).unwrap()));
        assert!(GraphConfig::from_json(good).is_ok());
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
