//! The opened `mapi` account: hands each message to Simple MAPI through the
//! [`SendMail`] seam.

use std::path::PathBuf;

use mailhost_plugin_api::{
    CheckReport, ComposeKind, ComposeOutcome, OutgoingMessage, PluginError, Receipt, StepOutcome,
    TransportImpl,
};
use mailhost_winmail::AttachmentFiles;

use crate::simple::{flags, from_outgoing, map_error, modeless_flags, SendMail};

/// What detection found, for `check` and error messages.
#[derive(Debug, Clone)]
pub struct Detected {
    /// The default mail client's name (its `Software\Clients\Mail` subkey).
    pub client: String,
    /// One line per finding (client, its DLLs, the MAPI level), for `check`.
    pub findings: Vec<String>,
}

/// An opened Simple MAPI transport.
pub struct MapiTransport {
    detected: Detected,
    mailer: Box<dyn SendMail>,
    temp: PathBuf,
    /// Opened for mode `mapi-full`: compose in the modeless window; no send.
    full: bool,
}

impl std::fmt::Debug for MapiTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapiTransport")
            .field("client", &self.detected.client)
            .finish_non_exhaustive()
    }
}

impl MapiTransport {
    /// `temp`: where attachments are written for the client to read.
    pub fn new(detected: Detected, mailer: Box<dyn SendMail>, temp: PathBuf) -> Self {
        Self {
            detected,
            mailer,
            temp,
            full: false,
        }
    }

    /// This transport serves mode `mapi-full`: a compose opens the client's
    /// modeless window (`MAPI_DIALOG_MODELESS`), whose attachments stay until
    /// a later start; a send is refused (Extended MAPI sending is not built).
    pub fn full(mut self, full: bool) -> Self {
        self.full = full;
        self
    }

    fn hand_over(&self, message: &OutgoingMessage, compose: bool) -> Result<(), PluginError> {
        if self.full && !compose {
            return Err(PluginError::unsupported(format!(
                "mapi-full: sending through Extended MAPI (Outbox, HTML body) is not built; mode mapi-simple sends through the mail client `{}` (text body)",
                self.detected.client
            )));
        }
        let files = AttachmentFiles::write(&self.temp, message.parts.attachments.as_slice())?;
        let simple = from_outgoing(message, &files);
        if simple.recipients.is_empty() && !compose {
            return Err(PluginError::permanent(
                "mapi-simple: the message has no recipient; add one with --to, --cc or --bcc",
            ));
        }
        tracing::debug!(
            client = %self.detected.client,
            recipients = simple.recipients.len(),
            files = simple.files.len(),
            compose,
            "handing the message to MAPISendMailW"
        );
        let modeless = compose && self.full;
        let flags = if modeless {
            modeless_flags()
        } else {
            flags(compose)
        };
        // The call is synchronous (the modal dialog too): the client has read
        // the attachment files when it returns, and `files` removes them. A
        // modeless window reads them later: they stay, and a start a day
        // later removes them (`files::cleanup_stale`).
        match self.mailer.send_mail(&simple, flags)? {
            0 => {
                if modeless {
                    files.keep();
                }
                Ok(())
            }
            code => Err(map_error(code, &self.detected.client, &simple)),
        }
    }
}

impl TransportImpl for MapiTransport {
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        self.hand_over(message, false)?;
        Ok(Receipt {
            message_id: message.message_id.clone(),
            server_reply: format!(
                "handed to the mail client `{}` (Simple MAPI)",
                self.detected.client
            )
            .into(),
            accepted: message.envelope.to.clone(),
            details_json: "{}".into(),
            ..Receipt::default()
        })
    }

    fn compose(&self, message: &OutgoingMessage) -> Result<ComposeOutcome, PluginError> {
        self.hand_over(message, true)?;
        let window = if self.full {
            "its modeless window, MAPI_DIALOG_MODELESS"
        } else {
            "Simple MAPI"
        };
        Ok(ComposeOutcome::new(
            ComposeKind::SHOWN_IN_CLIENT,
            &format!(
                "shown in the mail client `{}` ({window}); it is sent or saved from there",
                self.detected.client
            ),
        ))
    }

    fn check(&self, _options_json: &str) -> Result<CheckReport, PluginError> {
        let mut report = CheckReport::new();
        for f in &self.detected.findings {
            report.push("detect", StepOutcome::OK, f, "", 0);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simple::SimpleMessage;
    use mailhost_plugin_api::{Attachment, ErrorClass, Mailbox, MessageParts};
    use std::sync::{Arc, Mutex};

    /// Each call: the message, its flags and the attachment files' bytes.
    type Seen = Arc<Mutex<Vec<(SimpleMessage, u32, Vec<Vec<u8>>)>>>;

    /// Records what reached the seam and answers a chosen code.
    struct Recorder {
        answer: u32,
        seen: Seen,
    }

    impl SendMail for Recorder {
        fn send_mail(&self, m: &SimpleMessage, flags: u32) -> Result<u32, PluginError> {
            // The client reads the files during the call.
            let contents = m
                .files
                .iter()
                .map(|f| std::fs::read(&f.path).unwrap())
                .collect();
            self.seen.lock().unwrap().push((m.clone(), flags, contents));
            Ok(self.answer)
        }
    }

    fn transport(answer: u32, temp: &std::path::Path) -> (MapiTransport, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let t = MapiTransport::new(
            Detected {
                client: "Test Client".into(),
                findings: vec!["default mail client `Test Client`".into()],
            },
            Box::new(Recorder {
                answer,
                seen: seen.clone(),
            }),
            temp.to_path_buf(),
        );
        (t, seen)
    }

    fn message(to: &[&str]) -> OutgoingMessage {
        OutgoingMessage {
            parts: MessageParts {
                to: to
                    .iter()
                    .map(|a| Mailbox::new("", a))
                    .collect::<Vec<_>>()
                    .into(),
                subject: "Angebot".into(),
                text: Some("Hallo".into()).into(),
                attachments: vec![Attachment {
                    filename: "angebot.pdf".into(),
                    media_type: "application/pdf".into(),
                    content_id: "".into(),
                    inline: false,
                    data: b"%PDF".to_vec().into(),
                }]
                .into(),
                ..MessageParts::default()
            },
            envelope: Default::default(),
            mime: Default::default(),
            message_id: "<m@example.com>".into(),
            idempotency_key: "".into(),
            options_json: "{}".into(),
        }
    }

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mailhost-mapi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn send_hands_over_without_dialog_and_removes_the_files() {
        let dir = temp("send");
        let (t, seen) = transport(0, &dir);
        let r = t.send(&message(&["a@example.com"])).unwrap();
        assert!(r.server_reply.contains("`Test Client`"));
        let seen = seen.lock().unwrap();
        let (m, flags, contents) = &seen[0];
        assert_eq!(flags & crate::simple::MAPI_DIALOG, 0);
        assert_eq!(m.subject, "Angebot");
        assert_eq!(contents, &vec![b"%PDF".to_vec()]);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "temporary files left"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn compose_shows_the_dialog() {
        let dir = temp("compose");
        let (t, seen) = transport(0, &dir);
        let o = t.compose(&message(&[])).unwrap();
        assert_eq!(o.kind, ComposeKind::SHOWN_IN_CLIENT);
        assert_ne!(seen.lock().unwrap()[0].1 & crate::simple::MAPI_DIALOG, 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_user_abort_is_reported_and_the_files_are_removed() {
        let dir = temp("abort");
        let (t, _) = transport(1, &dir);
        let e = t.compose(&message(&["a@example.com"])).unwrap_err();
        assert_eq!(e.class, ErrorClass::PERMANENT);
        assert!(
            e.message().contains("the user cancelled"),
            "{}",
            e.message()
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mapi_full_composes_modeless_and_keeps_the_files_for_the_window() {
        let dir = temp("modeless");
        let (t, seen) = transport(0, &dir);
        let t = t.full(true);
        let o = t.compose(&message(&["a@example.com"])).unwrap();
        assert!(o.message.contains("MAPI_DIALOG_MODELESS"), "{}", o.message);
        let flags = seen.lock().unwrap()[0].1;
        assert_eq!(flags, crate::simple::MAPI_LOGON_UI | 0x4 | 0x8);
        // The window reads the attachment later: it stays, until a cleanup.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(
            mailhost_winmail::files::cleanup_stale(&dir, std::time::Duration::ZERO),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_refused_modeless_compose_removes_the_files() {
        let dir = temp("modeless-abort");
        let (t, _) = transport(1, &dir);
        let e = t.full(true).compose(&message(&[])).unwrap_err();
        assert!(e.message().contains("the user cancelled"));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mapi_full_refuses_to_send_so_the_next_mode_is_tried() {
        let dir = temp("full-send");
        let (t, seen) = transport(0, &dir);
        let e = t.full(true).send(&message(&["a@example.com"])).unwrap_err();
        assert_eq!(e.class, ErrorClass::UNSUPPORTED);
        assert!(
            e.message().contains("mode mapi-simple sends"),
            "{}",
            e.message()
        );
        assert!(seen.lock().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn send_without_recipients_is_refused_before_the_client_is_called() {
        let dir = temp("norcpt");
        let (t, seen) = transport(0, &dir);
        let e = t.send(&message(&[])).unwrap_err();
        assert!(e.message().contains("no recipient"));
        assert!(seen.lock().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
