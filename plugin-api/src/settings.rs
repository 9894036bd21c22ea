//! Checking an account's settings without connecting: the `validate_settings`
//! extension (added after 1.0 through the root module's `extension`, so no
//! layout changes).
//!
//! The host calls it from `mailhost config validate` (and every command that
//! loads the config) after the settings passed the manifest's JSON Schema, so
//! a value the plugin would refuse at `open` is reported at its
//! `file:line:col` before anything is sent. The contract:
//!
//! * the host asks `extension("validate_settings")`; `RNone` means the plugin
//!   relies on its schema alone;
//! * it calls the object's `call("validate", settings_json)` with the same
//!   JSON object `open` would get (secrets still as references such as
//!   `env:NAME`: never resolve them here, and never connect);
//! * the answer is `{"problems": [{"key": "min_tls", "message": "..."}]}`:
//!   an empty list when the settings are fine; `key` (optional) names the
//!   top-level settings key, so the host can point at its line; `message`
//!   says what is wrong and what is valid, **without quoting secret values**.
//!   An `Err` is shown as one problem.
//!
//! Plain Rust helpers, not ABI types: what crosses the ABI is the
//! [`Extension`](crate::Extension) trait object and JSON text.
//!
//! ```
//! use mailhost_plugin_api::settings::{settings_validator, SettingsProblem, VALIDATE_SETTINGS};
//! use mailhost_plugin_api::ExtensionBox;
//!
//! fn check(settings_json: &str) -> Vec<SettingsProblem> {
//!     let v: serde_json::Value = serde_json::from_str(settings_json).unwrap_or_default();
//!     match v.get("min_tls").and_then(|t| t.as_str()) {
//!         Some("1.0" | "1.1") => vec![SettingsProblem::at("min_tls", "TLS 1.0 and 1.1 are refused (RFC 8996): use 1.2 or 1.3")],
//!         _ => Vec::new(),
//!     }
//! }
//!
//! // In `impl Plugin for MyPlugin`:
//! fn extension(name: &str) -> Option<ExtensionBox> {
//!     (name == VALIDATE_SETTINGS).then(|| settings_validator(check))
//! }
//! # let ext = extension(VALIDATE_SETTINGS).unwrap();
//! # let out = ext.call("validate".into(), r#"{"min_tls":"1.0"}"#.into()).unwrap();
//! # assert!(out.as_str().contains("RFC 8996"));
//! ```

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RString};
use serde::{Deserialize, Serialize};

use crate::{guard, Extension, ExtensionBox, Extension_TO, PluginError};

/// The extension's name, for `extension(name)`.
pub const VALIDATE_SETTINGS: &str = "validate_settings";
/// The one method of the extension object.
pub const VALIDATE_METHOD: &str = "validate";

/// One thing wrong with an account's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsProblem {
    /// The top-level settings key it is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong and what would be valid (never a secret's value).
    pub message: String,
}

impl SettingsProblem {
    /// A problem with one key.
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    /// A problem with the settings as a whole.
    pub fn general(message: impl Into<String>) -> Self {
        Self {
            key: None,
            message: message.into(),
        }
    }
}

/// The answer's JSON shape.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Problems {
    /// Every problem found; empty when the settings are fine.
    pub problems: Vec<SettingsProblem>,
}

struct Validator(fn(&str) -> Vec<SettingsProblem>);

impl Extension for Validator {
    fn call(&self, method: RStr<'_>, input_json: RStr<'_>) -> RResult<RString, PluginError> {
        guard("validate_settings", || {
            if method.as_str() != VALIDATE_METHOD {
                return Err(PluginError::unsupported(format!(
                    "validate_settings has no method `{method}`; call `{VALIDATE_METHOD}`"
                )));
            }
            let problems = (self.0)(input_json.as_str());
            serde_json::to_string(&Problems { problems })
                .map(RString::from)
                .map_err(|e| PluginError::permanent(format!("validate_settings: {e}")))
        })
        .into()
    }
}

/// The `validate_settings` extension object around a check function (which
/// gets the settings JSON and returns the problems, none when fine). Panics
/// in `check` are caught and reported as a problem.
pub fn settings_validator(check: fn(&str) -> Vec<SettingsProblem>) -> ExtensionBox {
    Extension_TO::from_value(Validator(check), TD_Opaque)
}
