//! `outlook`: sends and composes through Outlook Classic's object model on
//! Windows (mode `outlook`), late-bound over COM (`IDispatch`) as a script
//! would: `CreateItem(olMailItem)`, `To`/`CC`/`BCC`/`Subject`/`Body` or
//! `HTMLBody`, `Attachments.Add`, then `Send`, or `Display` (non-modal) to
//! compose. Outlook runs out of process, so a 64-bit mailhost drives a 32-bit
//! Outlook too.
//!
//! The probe reads the registry: `Outlook.Application` registered (CLSID,
//! server, bitness) and Outlook Classic the one in use — the new Outlook
//! (`olk.exe`) offers neither COM nor MAPI, and the probe says so. On other
//! OSes the plugin loads and its probe answers "requires Windows".
//!
//! The COM calls are behind the [`model::Dispatch`] seam, so what is called
//! with what, and how failures are classed, is unit-tested on every OS.

pub mod model;
#[cfg(windows)]
pub mod win;

use mailhost_plugin_api::{
    settings, Capabilities, CheckReport, ComposeKind, ComposeOutcome, Host, Manifest,
    OutgoingMessage, Plugin, PluginError, Probe, Receipt, StepOutcome, TransportImpl,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// An `outlook` account has no settings: it uses the user's Outlook profile.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "outlook account")]
pub struct OutlookConfig {}

/// The plugin type exported to the host.
#[derive(Debug)]
pub struct Outlook;

/// An opened `outlook` transport: what detection found.
#[derive(Debug)]
pub struct OutlookTransport {
    #[cfg_attr(not(windows), allow(dead_code))]
    found: mailhost_winmail::Outlook,
}

impl Plugin for Outlook {
    type Transport = OutlookTransport;

    fn manifest() -> Manifest {
        Manifest::new("outlook", env!("CARGO_PKG_VERSION"))
            .description("hands messages to Outlook Classic on Windows (COM): sends them, or shows them for the user to finish")
            .capabilities(Capabilities::SEND | Capabilities::COMPOSE | Capabilities::CHECK)
            .modes(&["outlook"])
            .settings_schema(&settings::schema_for::<OutlookConfig>())
            .os(&["windows", "linux", "macos"])
    }

    fn probe(_host: &Host) -> Probe {
        match detect() {
            Ok(_) => Probe::available(""),
            Err(reason) => Probe::unavailable(&reason),
        }
    }

    fn open(settings_json: &str, _host: Host) -> Result<OutlookTransport, PluginError> {
        let _: OutlookConfig = serde_json::from_str(settings_json)
            .map_err(|e| PluginError::config(format!("outlook settings are invalid: {e}")))?;
        let found = detect().map_err(|r| PluginError::unavailable(format!("outlook: {r}")))?;
        Ok(OutlookTransport { found })
    }
}

#[cfg(not(windows))]
fn detect() -> Result<mailhost_winmail::Outlook, String> {
    Err(mailhost_winmail::REQUIRES_WINDOWS.to_string())
}

#[cfg(windows)]
fn detect() -> Result<mailhost_winmail::Outlook, String> {
    mailhost_winmail::outlook(&mailhost_winmail::WinRegistry)
}

impl OutlookTransport {
    #[cfg(windows)]
    fn hand_over(&self, message: &OutgoingMessage, compose: bool) -> Result<(), PluginError> {
        win::hand_over(message, compose)
    }

    #[cfg(not(windows))]
    fn hand_over(&self, _message: &OutgoingMessage, _compose: bool) -> Result<(), PluginError> {
        Err(PluginError::unavailable("outlook: requires Windows"))
    }
}

impl TransportImpl for OutlookTransport {
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        self.hand_over(message, false)?;
        Ok(Receipt {
            message_id: message.message_id.clone(),
            server_reply: "handed to Outlook (MailItem.Send); Outlook delivers it from its Outbox"
                .into(),
            accepted: message.envelope.to.clone(),
            details_json: "{}".into(),
            ..Receipt::default()
        })
    }

    fn compose(&self, message: &OutgoingMessage) -> Result<ComposeOutcome, PluginError> {
        self.hand_over(message, true)?;
        Ok(ComposeOutcome::new(
            ComposeKind::SHOWN_IN_CLIENT,
            "shown in Outlook (MailItem.Display); it is sent or saved from there",
        ))
    }

    fn check(&self, _options_json: &str) -> Result<CheckReport, PluginError> {
        let mut report = CheckReport::new();
        let f = &self.found;
        report.push(
            "detect",
            StepOutcome::OK,
            &format!(
                "Outlook Classic registered: CLSID {}, server {}, bitness {}",
                f.clsid,
                f.server.as_deref().unwrap_or("unknown"),
                f.bitness.as_deref().unwrap_or("unknown")
            ),
            "",
            0,
        );
        Ok(report)
    }
}

mailhost_plugin_api::export_plugin!(Outlook);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_declares_every_os_and_the_outlook_mode() {
        let m = Outlook::manifest();
        for os in ["windows", "linux", "macos"] {
            assert!(m.supports_os(os), "{os}");
        }
        let modes: Vec<&str> = m.modes.iter().map(|m| m.as_str()).collect();
        assert_eq!(modes, ["outlook"]);
        assert!(m
            .capabilities
            .contains(Capabilities::SEND | Capabilities::COMPOSE));
    }

    #[cfg(not(windows))]
    #[test]
    fn elsewhere_the_probe_says_it_requires_windows() {
        let host = mailhost_plugin_api::testing::TestHost::new();
        let p = Outlook::probe(&host.host());
        assert!(!p.available);
        assert_eq!(p.reason.as_str(), "requires Windows");
        let e = Outlook::open("{}", host.host()).unwrap_err();
        assert_eq!(e.class, mailhost_plugin_api::ErrorClass::UNAVAILABLE);
        assert!(e.message().contains("requires Windows"), "{}", e.message());
    }
}
