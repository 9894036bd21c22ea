use std::path::PathBuf;

use mailhost_plugin_api::PluginError;
use serde::Deserialize;

/// JSON Schema of the account settings; the host validates accounts with it.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "pickup account",
  "type": "object",
  "additionalProperties": false,
  "required": ["dir"],
  "properties": {
    "dir": {"type": "string", "format": "path", "minLength": 1, "description": "directory the .eml files are written to; relative paths are relative to the config file"},
    "create_dir": {"type": "boolean", "default": true, "description": "create the directory when it is missing"},
    "keep_bcc": {"type": "boolean", "default": false, "description": "keep the Bcc header in the file (for drafts a person finishes); off: removed, as a delivered copy would be"},
    "envelope_headers": {"type": "boolean", "default": false, "description": "prepend X-Sender/X-Receiver lines with the envelope (the IIS/Exchange pickup-directory format)"}
  }
}"#;

/// Settings of one pickup account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PickupConfig {
    pub dir: PathBuf,
    #[serde(default = "yes")]
    pub create_dir: bool,
    #[serde(default)]
    pub keep_bcc: bool,
    #[serde(default)]
    pub envelope_headers: bool,
}

fn yes() -> bool {
    true
}

impl PickupConfig {
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        serde_json::from_str(json)
            .map_err(|e| PluginError::config(format!("pickup settings are invalid: {e}")))
    }
}
