//! The account settings: a JSON Schema for the host, a serde struct for us.
//!
//! An account in the host's config is the plugin name, the host's own keys and
//! then the plugin's keys:
//!
//! ```toml
//! [accounts.hooks]
//! plugin = "example"
//! from = "ERP <erp@example.com>"
//! url = "https://hooks.example.com/mail"
//! headers = { Authorization = "env:WEBHOOK_AUTH" }   # a secret reference
//! timeout_ms = 10000
//! ```
//!
//! The host validates the plugin's keys against [`SCHEMA`] (unknown keys are
//! errors: keep `additionalProperties: false`), so a typo is reported with the
//! file, line and column before any plugin code runs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use mailhost_plugin_api::PluginError;
use serde::Deserialize;

/// JSON Schema (draft 2020-12) of the account settings. Every property has a
/// `description`: the admin page shows it next to the field.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "webhook account (example plugin)",
  "type": "object",
  "additionalProperties": false,
  "required": ["url"],
  "properties": {
    "url": {
      "type": "string",
      "pattern": "^[hH][tT][tT][pP][sS]?://",
      "description": "where each message is POSTed as JSON: an http:// or https:// URL"
    },
    "headers": {
      "type": "object",
      "additionalProperties": {"type": "string"},
      "description": "extra request headers; each value is a secret reference (env:NAME, file:PATH) or a literal, e.g. Authorization = \"env:WEBHOOK_AUTH\""
    },
    "timeout_ms": {
      "type": "integer",
      "minimum": 1,
      "maximum": 600000,
      "default": 10000,
      "description": "how long one request may take, connect included, in milliseconds"
    },
    "ca_file": {
      "type": "string",
      "minLength": 1,
      "description": "PEM file with extra CA certificates to trust (a private CA or a self-signed receiver); give an absolute path"
    },
    "accept_invalid_certs": {
      "type": "boolean",
      "default": false,
      "description": "skip TLS certificate verification (insecure: for tests only; the plugin logs a warning)"
    }
  }
}"#;

/// The settings of one webhook account, as `open` receives them.
///
/// `deny_unknown_fields` mirrors the schema's `additionalProperties: false`:
/// the host already refused unknown keys, this catches a schema/struct
/// mismatch in our own code.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Header name → secret reference or literal. Resolved in `open` through
    /// `host.secret()`; never logged (see the `Debug` impl below).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl WebhookConfig {
    /// Parses the settings; the error names the setting at fault and is a
    /// `Config` error, so the host tries the next account at once.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        serde_json::from_str(json).map_err(|e| {
            PluginError::config(format!(
                "example (webhook) settings are invalid: {e}; see the plugin's settings schema (`mailhost plugins`)"
            ))
        })
    }
}

/// Secrets never appear in logs, errors or `Debug` output: header values are
/// left out (an `Authorization` literal would otherwise leak), and so is the
/// URL's query (it may carry a token).
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &crate::payload::redacted_url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_ms", &self.timeout_ms)
            .field("ca_file", &self.ca_file)
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let c = WebhookConfig::from_json(r#"{"url":"http://127.0.0.1:1/x"}"#).unwrap();
        assert_eq!(c.timeout_ms, 10_000);
        assert!(!c.accept_invalid_certs);
        let e = WebhookConfig::from_json(r#"{"url":"http://x","tiemout_ms":5}"#).unwrap_err();
        assert!(e.message().contains("unknown field `tiemout_ms`"), "{e}");
    }

    #[test]
    fn schema_is_json() {
        let v: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(v["additionalProperties"], false);
    }

    #[test]
    fn debug_hides_header_values_and_query() {
        let c = WebhookConfig::from_json(
            r#"{"url":"https://h.example/p?token=abc","headers":{"Authorization":"Bearer s3cret"}}"#,
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret") && !d.contains("abc"), "{d}");
        assert!(d.contains("Authorization"), "{d}");
    }
}
