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
//! [`Extension`] trait object and JSON text.
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
//!
//! # The settings schema, derived
//!
//! A plugin's settings schema can be derived from its serde settings struct (feature
//! `schema`), so that the schema the host validates with and the struct the
//! plugin parses cannot drift apart.
//!
//! What the host reads from a settings schema (see `docs/plugin-authors.md`):
//!
//! * `additionalProperties: false` on the object (`#[serde(deny_unknown_fields)]`),
//!   `required` (fields without `Option`/`#[serde(default)]`), `properties`
//!   with their `description` (the field's doc comment), `default`, `enum`,
//!   `minimum`/`maximum`, `pattern`, `maxLength`;
//! * `"format": "path"` ([`PATH`]) on a top-level string property: the host
//!   makes a relative value absolute against the config file's directory;
//! * `"writeOnly": true` ([`SECRET`]) on a property that holds a secret
//!   reference (`env:NAME`, `file:/path`): never echoed; the host also treats
//!   keys named like `password`, `secret`, `token` as secrets.
//!
//! Everything is inlined (no `$ref`/`$defs`), so each property's schema is
//! where the host looks for it.
//!
//! ```
//! # #[cfg(feature = "schema")] {
//! use mailhost_plugin_api::settings;
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     /// Where to write.
//!     #[schemars(extend("format" = "path"))]
//!     dir: std::path::PathBuf,
//!     /// Server name.
//!     #[schemars(length(min = 1, max = 253), regex(pattern = settings::ONE_LINE))]
//!     host: Option<String>,
//! }
//! let s: serde_json::Value = serde_json::from_str(&settings::schema_for::<Settings>()).unwrap();
//! assert_eq!(s["additionalProperties"], false);
//! assert_eq!(s["required"], serde_json::json!(["dir"]));
//! assert_eq!(s["properties"]["dir"]["format"], "path");
//! assert_eq!(s["properties"]["host"]["type"], "string"); // not ["string", "null"]
//! # }
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

/// A value that goes on the wire: no CR, LF or NUL (see [`crate::wire`]).
pub const ONE_LINE: &str = r"^[^\r\n\x00]*$";

/// `"format"` of a path property (made absolute by the host).
pub const PATH: &str = "path";

/// The annotation that marks a secret-bearing property: `"writeOnly": true`.
pub const SECRET: &str = "writeOnly";

/// The JSON Schema (draft 2020-12) of `T`, pretty-printed, with every
/// subschema inlined and `Option` fields as their inner type (a config file
/// has no `null`: a key is given or left out).
#[cfg(feature = "schema")]
pub fn schema_for<T: schemars::JsonSchema>() -> String {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    drop_null(&mut value);
    format!("{value:#}")
}

/// Removes the `null` that schemars allows for `Option` fields: `"type":
/// ["string", "null"]` becomes `"type": "string"`, `"anyOf": [S, {"type":
/// "null"}]` becomes S, and `"default": null` goes.
#[cfg(feature = "schema")]
fn drop_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = v else {
        if let Value::Array(items) = v {
            items.iter_mut().for_each(drop_null);
        }
        return;
    };
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(any)) = map.get("anyOf") {
        let rest: Vec<&Value> = any
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if rest.len() == 1 && any.len() == 2 {
            if let Value::Object(inner) = rest[0].clone() {
                map.remove("anyOf");
                for (k, val) in inner {
                    map.entry(k).or_insert(val);
                }
            }
        }
    }
    if map.get("default").is_some_and(Value::is_null) {
        map.remove("default"); // `#[serde(default)]` on an `Option`
    }
    if let Some(Value::Array(e)) = map.get_mut("enum") {
        e.retain(|x| !x.is_null());
    }
    map.values_mut().for_each(drop_null);
}
