use std::path::PathBuf;

use mailhost_plugin_api::{settings, PluginError};
use schemars::JsonSchema;
use serde::Deserialize;

/// JSON Schema (draft 2020-12) of the account settings, derived from
/// [`PickupConfig`]: the one definition of the keys; the host validates
/// accounts with it.
pub fn schema() -> String {
    settings::schema_for::<PickupConfig>()
}

// The serde struct is the one definition of the settings: the doc comments
// are the descriptions users read in `mailhost plugins --settings pickup`.
/// The settings of an account that writes each message as an .eml file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pickup account")]
pub struct PickupConfig {
    /// directory the .eml files are written to; relative paths are relative to the config file
    #[schemars(length(min = 1, max = 4096), regex(pattern = settings::ONE_LINE), extend("format" = "path"))]
    pub dir: PathBuf,
    /// create the directory when it is missing
    #[serde(default = "yes")]
    pub create_dir: bool,
    /// keep the Bcc header in the file (for drafts a person finishes); off: removed, as a delivered copy would be
    #[serde(default)]
    pub keep_bcc: bool,
    /// prepend X-Sender/X-Receiver lines with the envelope (the IIS/Exchange pickup-directory format)
    #[serde(default)]
    pub envelope_headers: bool,
}

fn yes() -> bool {
    true
}

impl PickupConfig {
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        let c: Self = serde_json::from_str(json)
            .map_err(|e| PluginError::config(format!("pickup settings are invalid: {e}")))?;
        if c.dir.as_os_str().is_empty() {
            return Err(PluginError::config(
                "pickup setting `dir` is empty; give the directory the .eml files go to",
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_schema_keeps_what_the_host_relies_on() {
        let v: serde_json::Value = serde_json::from_str(&schema()).unwrap();
        assert_eq!(v["additionalProperties"], false);
        assert_eq!(v["required"], serde_json::json!(["dir"]));
        assert_eq!(v["properties"]["dir"]["format"], "path");
        assert_eq!(v["properties"]["create_dir"]["default"], true);
        assert_eq!(v["properties"]["keep_bcc"]["default"], false);
        assert!(v["properties"]["dir"]["description"]
            .as_str()
            .unwrap()
            .contains("relative to the config file"));
    }

    #[test]
    fn empty_dir_and_unknown_keys_are_refused() {
        assert!(PickupConfig::from_json(r#"{"dir":""}"#).is_err());
        assert!(PickupConfig::from_json(r#"{"dir":"/tmp/x","bogus":true}"#).is_err());
        assert!(PickupConfig::from_json(r#"{"dir":"/tmp/x"}"#).is_ok());
    }
}
