//! Simple MAPI (`MAPISendMailW`) without the OS: the message as the fields of
//! a `MapiMessageW`, the flags, and the `MAPI_E_*` codes as error classes.
//! `mailhost_mapi_helper32::win` turns a [`SimpleMessage`] into the real
//! structures, in process or in the 32-bit helper; [`route`] decides which.

use mailhost_plugin_api::{OutgoingMessage, PluginError};
use mailhost_winmail::{html_to_text, AttachmentFiles, Bitness};

pub use mailhost_mapi_helper32::{
    code_name, File, RecipClass, Recipient, SimpleMessage, MAPI_DIALOG, MAPI_DIALOG_MODELESS,
    MAPI_LOGON_UI,
};

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// `message` as Simple MAPI carries it: recipients by class, the text body
/// (or the HTML body as text: Simple MAPI has no HTML), the attachments
/// already written to `files`. The one mapping for both routes (in process
/// and through the 32-bit helper).
pub fn from_outgoing(message: &OutgoingMessage, files: &AttachmentFiles) -> SimpleMessage {
    let p = &message.parts;
    let mut recipients = Vec::new();
    for (class, list) in [
        (RecipClass::To, &p.to),
        (RecipClass::Cc, &p.cc),
        (RecipClass::Bcc, &p.bcc),
    ] {
        for m in list.iter() {
            let name = if m.name.is_empty() {
                m.email.to_string()
            } else {
                m.name.to_string()
            };
            recipients.push(Recipient {
                class,
                name,
                address: format!("SMTP:{}", m.email),
            });
        }
    }
    let body = match (p.text.as_ref().into_option(), p.html.as_ref().into_option()) {
        (Some(text), _) => crlf(text.as_str()),
        (None, Some(html)) => html_to_text(html.as_str()),
        (None, None) => String::new(),
    };
    SimpleMessage {
        subject: p.subject.to_string(),
        body,
        recipients,
        files: files
            .files()
            .iter()
            .map(|(path, name)| File {
                path: path.clone(),
                name: name.clone(),
            })
            .collect(),
    }
}

/// The flags for `send` (no window where the client allows) or `compose`
/// (its modal compose window).
pub fn flags(compose: bool) -> u32 {
    if compose {
        MAPI_LOGON_UI | MAPI_DIALOG
    } else {
        MAPI_LOGON_UI
    }
}

/// The flags for a `mapi-full` compose: the client's modeless window
/// (`MAPI_DIALOG_MODELESS`; session 0, as it requires).
pub fn modeless_flags() -> u32 {
    MAPI_LOGON_UI | MAPI_DIALOG_MODELESS
}

/// The OS seam: hands a message to `MAPISendMailW` and returns its code.
/// `Err` when Simple MAPI itself cannot be reached (no `mapi32.dll`).
pub trait SendMail: Send + Sync {
    fn send_mail(&self, message: &SimpleMessage, flags: u32) -> Result<u32, PluginError>;
}

/// Where the `MAPISendMailW` call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// In this process: the client's DLL has its bitness.
    InProcess,
    /// In the 32-bit helper process (`mailhost-mapi32.exe`): the client's DLL
    /// is 32-bit and this process 64-bit.
    Helper32,
}

/// The route for a client whose Simple MAPI DLL has `dll`'s bitness, from a
/// process that is 64-bit or not. Simple MAPI loads the client's DLL into the
/// calling process, so the bitness must match; a 64-bit process reaches a
/// 32-bit client through the helper. `Err`: no route (a 64-bit client for a
/// 32-bit mailhost).
pub fn route(host_64bit: bool, dll: Bitness) -> Result<Route, String> {
    match (host_64bit, dll) {
        (true, Bitness::Bits64) | (false, Bitness::Bits32) => Ok(Route::InProcess),
        (true, Bitness::Bits32) => Ok(Route::Helper32),
        (false, Bitness::Bits64) => Err(
            "its Simple MAPI DLL is 64-bit and this mailhost is 32-bit; use the 64-bit mailhost"
                .to_string(),
        ),
    }
}

/// A non-zero `MAPISendMailW` code as an error of the right class. `client`
/// names the default mail client; `message` is what was handed over.
pub fn map_error(code: u32, client: &str, message: &SimpleMessage) -> PluginError {
    let what = format!(
        "mapi-simple: the mail client `{client}` answered {} ({code})",
        code_name(code)
    );
    match code {
        1 => PluginError::permanent(format!(
            "{what}: the user cancelled; nothing was sent"
        )),
        2 => PluginError::unavailable(format!(
            "{what}: a general failure; check that the client is installed, set up with an account and is the default mail client"
        )),
        3 | 6 => PluginError::auth(format!(
            "{what}: it could not log on; open the client once, sign in or choose its profile, then retry"
        )),
        4 | 5 | 8 | 19 | 22 | 23 => PluginError::transient(format!("{what}; retry later")),
        9 => PluginError::unsupported(format!(
            "{what}: it takes fewer than the {} attachments of this message; send them in several messages or through another mode",
            message.files.len()
        )),
        10 => PluginError::unsupported(format!(
            "{what}: it takes fewer than the {} recipients of this message",
            message.recipients.len()
        )),
        14 | 21 | 25 => PluginError::permanent(format!(
            "{what}: a recipient could not be resolved ({}); use complete addresses",
            message
                .recipients
                .iter()
                .map(|r| r.address.trim_start_matches("SMTP:"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        20 | 26 | 27 | 28 => PluginError::unsupported(format!(
            "{what}: the client does not support this; choose another mode (outlook, smtp, graph)"
        )),
        11..=13 => PluginError::permanent(format!(
            "{what}: it could not read an attachment's temporary file; check the temporary directory"
        )),
        _ => PluginError::permanent(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::{Attachment, ErrorClass, Mailbox, MessageParts};

    fn message(text: Option<&str>, html: Option<&str>) -> OutgoingMessage {
        OutgoingMessage {
            parts: MessageParts {
                from: Mailbox::new("ERP", "erp@example.com"),
                to: vec![Mailbox::new("Anna Ärger", "anna@example.com")].into(),
                cc: vec![Mailbox::new("", "cc@example.com")].into(),
                bcc: vec![Mailbox::new("", "hidden@example.com")].into(),
                subject: "Grüße".into(),
                text: text.map(Into::into).into(),
                html: html.map(Into::into).into(),
                attachments: vec![Attachment {
                    filename: "Rechnung 1.pdf".into(),
                    media_type: "application/pdf".into(),
                    content_id: "".into(),
                    inline: false,
                    data: b"%PDF-1.4".to_vec().into(),
                }]
                .into(),
                ..MessageParts::default()
            },
            envelope: Default::default(),
            mime: Default::default(),
            message_id: "<1@example.com>".into(),
            idempotency_key: "".into(),
            options_json: "{}".into(),
        }
    }

    #[test]
    fn recipients_keep_their_class_and_go_by_smtp_address() {
        let m = message(Some("hi"), None);
        let s = from_outgoing(
            &m,
            &AttachmentFiles::write(std::path::Path::new("/nonexistent"), &[]).unwrap(),
        );
        assert_eq!(
            s.recipients,
            vec![
                Recipient {
                    class: RecipClass::To,
                    name: "Anna Ärger".into(),
                    address: "SMTP:anna@example.com".into()
                },
                Recipient {
                    class: RecipClass::Cc,
                    name: "cc@example.com".into(),
                    address: "SMTP:cc@example.com".into()
                },
                Recipient {
                    class: RecipClass::Bcc,
                    name: "hidden@example.com".into(),
                    address: "SMTP:hidden@example.com".into()
                },
            ]
        );
        assert_eq!(s.subject, "Grüße");
    }

    #[test]
    fn text_wins_html_becomes_text_and_lines_end_in_crlf() {
        let none = AttachmentFiles::write(std::path::Path::new("/nonexistent"), &[]).unwrap();
        let s = from_outgoing(&message(Some("a\nb"), Some("<p>x</p>")), &none);
        assert_eq!(s.body, "a\r\nb");
        let s = from_outgoing(
            &message(None, Some("<p>Hallo</p><p>Welt &amp; mehr</p>")),
            &none,
        );
        assert_eq!(s.body, "Hallo\r\n\r\nWelt & mehr");
        let s = from_outgoing(&message(None, None), &none);
        assert_eq!(s.body, "");
    }

    #[test]
    fn attachments_become_temporary_files_with_their_names() {
        let base = tempfile_dir();
        let m = message(Some("x"), None);
        let files = AttachmentFiles::write(&base, m.parts.attachments.as_slice()).unwrap();
        let s = from_outgoing(&m, &files);
        assert_eq!(s.files.len(), 1);
        assert_eq!(s.files[0].name, "Rechnung 1.pdf");
        assert_eq!(std::fs::read(&s.files[0].path).unwrap(), b"%PDF-1.4");
        let path = s.files[0].path.clone();
        drop(files);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(base);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mailhost-mapi-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn compose_shows_the_dialog_send_does_not() {
        assert_eq!(flags(true), MAPI_LOGON_UI | MAPI_DIALOG);
        assert_eq!(flags(false) & MAPI_DIALOG, 0);
    }

    #[test]
    fn the_route_follows_the_bitness_of_the_client_and_the_host() {
        assert_eq!(route(true, Bitness::Bits64), Ok(Route::InProcess));
        assert_eq!(route(true, Bitness::Bits32), Ok(Route::Helper32));
        assert_eq!(route(false, Bitness::Bits32), Ok(Route::InProcess));
        assert!(route(false, Bitness::Bits64)
            .unwrap_err()
            .contains("use the 64-bit mailhost"));
    }

    #[test]
    fn codes_map_to_classes() {
        let m = SimpleMessage {
            subject: String::new(),
            body: String::new(),
            recipients: vec![Recipient {
                class: RecipClass::To,
                name: "a".into(),
                address: "SMTP:a@x.example".into(),
            }],
            files: vec![],
        };
        let cases = [
            (
                1,
                ErrorClass::PERMANENT,
                "MAPI_E_USER_ABORT (1): the user cancelled",
            ),
            (2, ErrorClass::UNAVAILABLE, "MAPI_E_FAILURE (2)"),
            (
                3,
                ErrorClass::AUTH,
                "MAPI_E_LOGIN_FAILURE (3): it could not log on",
            ),
            (
                21,
                ErrorClass::PERMANENT,
                "MAPI_E_AMBIGUOUS_RECIPIENT (21): a recipient could not be resolved (a@x.example)",
            ),
            (14, ErrorClass::PERMANENT, "MAPI_E_UNKNOWN_RECIPIENT"),
            (26, ErrorClass::UNSUPPORTED, "MAPI_E_NOT_SUPPORTED (26)"),
            (
                9,
                ErrorClass::UNSUPPORTED,
                "MAPI_E_TOO_MANY_FILES (9): it takes fewer than the 0 attachments",
            ),
            (23, ErrorClass::TRANSIENT, "MAPI_E_NETWORK_FAILURE"),
            (99, ErrorClass::PERMANENT, "an unknown MAPI code (99)"),
        ];
        for (code, class, text) in cases {
            let e = map_error(code, "Test Client", &m);
            assert_eq!(e.class, class, "{code}: {e:?}");
            assert!(e.message().contains(text), "{code}: {}", e.message());
            assert!(e.message().contains("`Test Client`"), "{}", e.message());
        }
    }
}
