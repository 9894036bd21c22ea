//! `pickup`: writes each message atomically as `<timestamp>-<id>.eml` into a
//! directory. The embedded default (no server needed) and a test transport.
//!
//! The file appears complete or not at all: it is written as a hidden `.tmp`
//! file in the same directory, synced, and renamed.

mod config;
mod transport;

pub use config::PickupConfig;
pub use transport::PickupTransport;

use mailhost_plugin_api::{Capabilities, Host, Manifest, Plugin, PluginError};

/// The plugin type exported to the host.
#[derive(Debug)]
pub struct Pickup;

impl Plugin for Pickup {
    type Transport = PickupTransport;

    fn manifest() -> Manifest {
        Manifest::new("pickup", env!("CARGO_PKG_VERSION"))
            .description("writes each message as an .eml file into a directory (no server needed)")
            .capabilities(Capabilities::SEND | Capabilities::CHECK)
            .modes(&["pickup"])
            .settings_schema(&config::schema())
            // `send` reads the envelope and the bytes, never the parts.
            .send_reads_mime_only()
    }

    fn open(settings_json: &str, _host: Host) -> Result<PickupTransport, PluginError> {
        let config = PickupConfig::from_json(settings_json)?;
        PickupTransport::new(config)
    }
}

mailhost_plugin_api::export_plugin!(Pickup);
