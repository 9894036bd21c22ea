//! `mapi`: sends and composes through the default mail client's MAPI on
//! Windows (modes `mapi-simple` and `mapi-full`).
//!
//! * **Detection** (`probe`): the default mail client (`HKCU`, then
//!   `HKLM\Software\Clients\Mail`, 64-bit and 32-bit views) and the MAPI level
//!   its DLLs offer, read from their export tables (`DLLPathEx` with
//!   `MAPILogonEx`: Extended MAPI; `DLLPath` with `MAPISendMailW`: Simple MAPI).
//! * **mapi-simple**: `MAPISendMailW`, loaded from `mapi32.dll` at run time;
//!   To/Cc/Bcc, subject, the text body (HTML converted to text: Simple MAPI has
//!   no HTML), attachments as temporary files removed afterwards; `compose`
//!   shows the client's modal window (`MAPI_DIALOG`), `send` does not.
//! * **mapi-full**, offered where the client has Extended MAPI (`DLLPathEx`
//!   with `MAPILogonEx`, e.g. Outlook) as well as Simple MAPI: `compose`
//!   opens the client's **modeless** window (`MAPISendMailW` with
//!   `MAPI_DIALOG_MODELESS`, Outlook 2013 and later; other clients show their
//!   modal one), whose attachment files stay until a start a day later. The
//!   body is text (Simple MAPI). Sending through Extended MAPI (Outbox, HTML)
//!   is not built: a `mapi-full` send is refused as unsupported, so the next
//!   mode (`mapi-simple`) sends. The host's extension `mode` tells the
//!   transport which of the two modes it was opened for.
//! * **A 32-bit client** under a 64-bit mailhost: each call runs in the
//!   32-bit helper `mailhost-mapi32.exe` beside this DLL ([`helper`]).
//! * On other OSes the plugin loads, and its probe answers "requires Windows".
//!
//! Every OS call is behind a seam ([`simple::SendMail`] here,
//! [`mailhost_winmail::Registry`] and [`mailhost_winmail::Exports`]), so the
//! mapping is unit-tested on every OS.

pub mod helper;
pub mod simple;
pub mod transport;
#[cfg(windows)]
pub mod win;

pub use transport::MapiTransport;

use mailhost_plugin_api::{settings, Capabilities, Host, Manifest, Plugin, PluginError, Probe};
use schemars::JsonSchema;
use serde::Deserialize;

/// A `mapi` account has no settings: it uses the user's default mail client.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "mapi account")]
pub struct MapiConfig {}

/// The plugin type exported to the host.
#[derive(Debug)]
pub struct Mapi;

impl Plugin for Mapi {
    type Transport = MapiTransport;

    fn manifest() -> Manifest {
        Manifest::new("mapi", env!("CARGO_PKG_VERSION"))
            .description("hands messages to the default mail client through Simple MAPI on Windows (mapi-simple; mapi-full composes in the modeless window of a client with Extended MAPI; a 32-bit client through the 32-bit helper)")
            .capabilities(Capabilities::SEND | Capabilities::COMPOSE | Capabilities::CHECK)
            .modes(&["mapi-full", "mapi-simple"])
            .settings_schema(&settings::schema_for::<MapiConfig>())
            .os(&["windows", "linux", "macos"])
    }

    fn probe(_host: &Host) -> Probe {
        probe_now()
    }

    fn open(settings_json: &str, host: Host) -> Result<MapiTransport, PluginError> {
        let _: MapiConfig = serde_json::from_str(settings_json)
            .map_err(|e| PluginError::config(format!("mapi settings are invalid: {e}")))?;
        Ok(open_now()?.full(opened_for(&host).as_deref() == Some("mapi-full")))
    }
}

/// The mode the host opened this transport for (its extension `mode`), or
/// `None` from a host without it (then the transport serves `mapi-simple`).
pub fn opened_for(host: &Host) -> Option<String> {
    #[derive(Deserialize)]
    struct Mode {
        mode: Option<String>,
    }
    let json = host.extension("mode", "").ok()?;
    serde_json::from_str::<Mode>(&json).ok()?.mode
}

#[cfg(not(windows))]
fn probe_now() -> Probe {
    Probe::unavailable(mailhost_winmail::REQUIRES_WINDOWS)
}

#[cfg(not(windows))]
fn open_now() -> Result<MapiTransport, PluginError> {
    Err(PluginError::unavailable(
        "mapi: requires Windows (MAPI is a Windows interface); choose another mode, e.g. smtp or graph",
    ))
}

#[cfg(windows)]
fn probe_now() -> Probe {
    match win::detect() {
        Ok(d) => Probe::available(d.level.name()),
        Err(reason) => Probe::unavailable(&reason),
    }
}

#[cfg(windows)]
fn open_now() -> Result<MapiTransport, PluginError> {
    let d = win::detect().map_err(|r| PluginError::unavailable(format!("mapi: {r}")))?;
    let temp = std::env::temp_dir();
    // Attachment folders a crash or a modeless window left behind a day ago.
    mailhost_winmail::files::cleanup_stale(&temp, std::time::Duration::from_secs(24 * 3600));
    let mailer: Box<dyn simple::SendMail> = match d.helper {
        Some(program) => Box::new(helper::Helper32::new(program, &d.detected.client)),
        None => Box::new(win::Mapi32),
    };
    Ok(MapiTransport::new(d.detected, mailer, temp))
}

mailhost_plugin_api::export_plugin!(Mapi);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_declares_every_os_and_both_modes() {
        let m = Mapi::manifest();
        for os in ["windows", "linux", "macos"] {
            assert!(m.supports_os(os), "{os}");
        }
        let modes: Vec<&str> = m.modes.iter().map(|m| m.as_str()).collect();
        assert_eq!(modes, ["mapi-full", "mapi-simple"]);
        assert!(m.capabilities.contains(Capabilities::COMPOSE));
        let schema: serde_json::Value = serde_json::from_str(m.settings_schema.as_str()).unwrap();
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn a_host_without_the_mode_extension_opens_mapi_simple() {
        let host = mailhost_plugin_api::testing::TestHost::new();
        assert_eq!(opened_for(&host.host()), None);
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_the_probe_says_it_requires_windows() {
        let p = probe_now();
        assert!(!p.available);
        assert_eq!(p.reason.as_str(), "requires Windows");
        let e = open_now().unwrap_err();
        assert_eq!(e.class, mailhost_plugin_api::ErrorClass::UNAVAILABLE);
    }
}
