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
//! **`outlook-new`** (compose only): where the new Outlook is installed, a
//! compose writes the message as an `.eml` with `X-Unsent: 1` and opens it with
//! `olk.exe`, which shows it as a new draft. The file stays for Outlook to read
//! and is removed at a later start, after a day.
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
    /// Outlook Classic, or why it cannot be used.
    classic: Result<mailhost_winmail::Outlook, String>,
    /// The new Outlook's program, when installed.
    new: Option<String>,
}

/// What the machine offers: Outlook Classic (or why not) and the new Outlook.
type Found = (Result<mailhost_winmail::Outlook, String>, Option<String>);

/// The probe's answer for what was found: the modes offered, or why none is.
pub fn probe_for(found: &Found) -> Probe {
    match found {
        (Ok(_), Some(_)) => Probe::available("outlook,outlook-new"),
        (Ok(_), None) => Probe::available("outlook"),
        (Err(_), Some(_)) => Probe::available("outlook-new"),
        (Err(reason), None) => Probe::unavailable(reason),
    }
}

/// The prefix of the `.eml` files handed to the new Outlook.
pub const UNSENT_PREFIX: &str = "mailhost-unsent-";

/// `mime` as a draft the new Outlook opens for the user to finish: the
/// message with `X-Unsent: 1` in front.
pub fn unsent_eml(mime: &[u8]) -> Vec<u8> {
    let mut eml = b"X-Unsent: 1\r\n".to_vec();
    eml.extend_from_slice(mime);
    eml
}

/// Writes the draft into `dir` and opens it with `olk` (not waiting: Outlook
/// stays open). Returns the file.
pub fn open_in_new_outlook(
    olk: &str,
    dir: &std::path::Path,
    mime: &[u8],
) -> Result<std::path::PathBuf, PluginError> {
    let path = dir.join(format!(
        "{UNSENT_PREFIX}{}.eml",
        std::process::id() as u128 * 1_000_000_007
            + std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
    ));
    std::fs::write(&path, unsent_eml(mime)).map_err(|e| {
        PluginError::transient(format!(
            "outlook-new: cannot write the draft {}: {e}; check the temporary directory",
            path.display()
        ))
    })?;
    std::process::Command::new(olk)
        .arg(&path)
        .spawn()
        .map_err(|e| {
            let _ = std::fs::remove_file(&path);
            PluginError::unavailable(format!(
                "outlook-new: cannot start the new Outlook ({olk}): {e}; is it installed for this user?"
            ))
        })?;
    Ok(path)
}

impl Plugin for Outlook {
    type Transport = OutlookTransport;

    fn manifest() -> Manifest {
        Manifest::new("outlook", env!("CARGO_PKG_VERSION"))
            .description("hands messages to Outlook Classic on Windows (COM): sends them, or shows them for the user to finish")
            .capabilities(Capabilities::SEND | Capabilities::COMPOSE | Capabilities::CHECK)
            .modes(&["outlook", "outlook-new"])
            .settings_schema(&settings::schema_for::<OutlookConfig>())
            .os(&["windows", "linux", "macos"])
    }

    fn probe(_host: &Host) -> Probe {
        probe_for(&detect())
    }

    fn open(settings_json: &str, _host: Host) -> Result<OutlookTransport, PluginError> {
        let _: OutlookConfig = serde_json::from_str(settings_json)
            .map_err(|e| PluginError::config(format!("outlook settings are invalid: {e}")))?;
        let (classic, new) = detect();
        if let (Err(reason), None) = (&classic, &new) {
            return Err(PluginError::unavailable(format!("outlook: {reason}")));
        }
        if new.is_some() {
            // Drafts handed to the new Outlook a day ago have been read.
            cleanup_unsent(
                &std::env::temp_dir(),
                std::time::Duration::from_secs(24 * 3600),
            );
        }
        Ok(OutlookTransport { classic, new })
    }
}

/// Removes `.eml` drafts older than `age` that were handed to the new Outlook.
pub fn cleanup_unsent(dir: &std::path::Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d >= age);
        if old && e.file_name().to_string_lossy().starts_with(UNSENT_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(not(windows))]
fn detect() -> Found {
    (Err(mailhost_winmail::REQUIRES_WINDOWS.to_string()), None)
}

#[cfg(windows)]
fn detect() -> Found {
    let reg = mailhost_winmail::WinRegistry;
    (
        mailhost_winmail::outlook(&reg),
        mailhost_winmail::new_outlook(&reg),
    )
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
        if let Err(reason) = &self.classic {
            return Err(PluginError::unsupported(format!(
                "outlook: {reason}; the new Outlook only takes drafts to finish (compose, mode outlook-new)"
            )));
        }
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
        if self.classic.is_err() {
            if let Some(olk) = &self.new {
                open_in_new_outlook(olk, &std::env::temp_dir(), message.mime.as_slice())?;
                return Ok(ComposeOutcome::new(
                    ComposeKind::SHOWN_IN_CLIENT,
                    "opened in the new Outlook as a draft; it is sent or saved from there",
                ));
            }
        }
        self.hand_over(message, true)?;
        Ok(ComposeOutcome::new(
            ComposeKind::SHOWN_IN_CLIENT,
            "shown in Outlook (MailItem.Display); it is sent or saved from there",
        ))
    }

    fn check(&self, _options_json: &str) -> Result<CheckReport, PluginError> {
        let mut report = CheckReport::new();
        match &self.classic {
            Ok(f) => report.push(
                "outlook classic",
                StepOutcome::OK,
                &format!(
                    "registered: CLSID {}, server {}, bitness {}",
                    f.clsid,
                    f.server.as_deref().unwrap_or("unknown"),
                    f.bitness.as_deref().unwrap_or("unknown")
                ),
                "",
                0,
            ),
            Err(reason) => report.push("outlook classic", StepOutcome::FAILED, reason, "", 0),
        }
        if let Some(olk) = &self.new {
            report.push(
                "new outlook",
                StepOutcome::OK,
                &format!("installed ({olk}): compose only, as a draft (mode outlook-new)"),
                "",
                0,
            );
        }
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
        assert_eq!(modes, ["outlook", "outlook-new"]);
        assert!(m
            .capabilities
            .contains(Capabilities::SEND | Capabilities::COMPOSE));
    }

    #[test]
    fn the_probe_offers_what_was_found() {
        let classic = || {
            Ok(mailhost_winmail::Outlook {
                clsid: "{x}".into(),
                bitness: None,
                server: None,
            })
        };
        let olk = || Some(r"C:\olk.exe".to_string());
        assert_eq!(
            probe_for(&(classic(), olk())).level.as_str(),
            "outlook,outlook-new"
        );
        assert_eq!(probe_for(&(classic(), None)).level.as_str(), "outlook");
        let p = probe_for(&(Err("only the new Outlook".into()), olk()));
        assert!(p.available);
        assert_eq!(p.level.as_str(), "outlook-new");
        let p = probe_for(&(Err("not installed".into()), None));
        assert!(!p.available);
        assert_eq!(p.reason.as_str(), "not installed");
    }

    #[test]
    fn a_draft_for_the_new_outlook_is_marked_unsent() {
        let eml = unsent_eml(b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n");
        assert!(eml.starts_with(b"X-Unsent: 1\r\nFrom: a@example.com\r\n"));
        let dir = std::env::temp_dir().join(format!("mailhost-olk-ut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e =
            open_in_new_outlook("/nonexistent/olk.exe", &dir, b"Subject: x\r\n\r\n").unwrap_err();
        assert_eq!(e.class, mailhost_plugin_api::ErrorClass::UNAVAILABLE);
        assert!(
            e.message().contains("cannot start the new Outlook"),
            "{}",
            e.message()
        );
        // Nothing is left behind when Outlook could not be started.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(dir);
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
