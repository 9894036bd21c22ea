//! A plugin's settings schema, derived from its serde settings struct (feature
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
