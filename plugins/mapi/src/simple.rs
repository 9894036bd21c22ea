//! Simple MAPI (`MAPISendMailW`) without the OS: the message as the fields of
//! a `MapiMessageW`, the flags, and the `MAPI_E_*` codes as error classes.
//! `crate::win` turns a [`SimpleMessage`] into the real structures.

use std::path::PathBuf;

use mailhost_plugin_api::{OutgoingMessage, PluginError};
use mailhost_winmail::{html_to_text, AttachmentFiles};

/// `MAPI_LOGON_UI`: the client may ask which profile or account to use.
pub const MAPI_LOGON_UI: u32 = 0x1;
/// `MAPI_DIALOG`: show the message in the client's (modal) compose window.
pub const MAPI_DIALOG: u32 = 0x8;

/// Recipient classes (`ulRecipClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RecipClass {
    To = 1,
    Cc = 2,
    Bcc = 3,
}

/// One `MapiRecipDescW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub class: RecipClass,
    /// `lpszName`: the display name, or the address when there is none.
    pub name: String,
    /// `lpszAddress`: `SMTP:local@domain` (resolved by the client without its address book).
    pub address: String,
}

/// One `MapiFileDescW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// `lpszPathName`: the temporary file.
    pub path: PathBuf,
    /// `lpszFileName`: the name the recipient sees.
    pub name: String,
}

/// The fields of one `MapiMessageW`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleMessage {
    pub subject: String,
    /// `lpszNoteText`: plain text only (HTML converted), CRLF line ends.
    pub body: String,
    pub recipients: Vec<Recipient>,
    pub files: Vec<File>,
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

impl SimpleMessage {
    /// `message` as Simple MAPI carries it: recipients by class, the text body
    /// (or the HTML body as text: Simple MAPI has no HTML), the attachments
    /// already written to `files`.
    pub fn from_outgoing(message: &OutgoingMessage, files: &AttachmentFiles) -> Self {
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

/// The OS seam: hands a message to `MAPISendMailW` and returns its code.
/// `Err` when Simple MAPI itself cannot be reached (no `mapi32.dll`).
pub trait SendMail: Send + Sync {
    fn send_mail(&self, message: &SimpleMessage, flags: u32) -> Result<u32, PluginError>;
}

/// The name of a `MAPISendMailW` return code.
pub fn code_name(code: u32) -> &'static str {
    match code {
        0 => "SUCCESS_SUCCESS",
        1 => "MAPI_E_USER_ABORT",
        2 => "MAPI_E_FAILURE",
        3 => "MAPI_E_LOGIN_FAILURE",
        4 => "MAPI_E_DISK_FULL",
        5 => "MAPI_E_INSUFFICIENT_MEMORY",
        6 => "MAPI_E_ACCESS_DENIED",
        8 => "MAPI_E_TOO_MANY_SESSIONS",
        9 => "MAPI_E_TOO_MANY_FILES",
        10 => "MAPI_E_TOO_MANY_RECIPIENTS",
        11 => "MAPI_E_ATTACHMENT_NOT_FOUND",
        12 => "MAPI_E_ATTACHMENT_OPEN_FAILURE",
        13 => "MAPI_E_ATTACHMENT_WRITE_FAILURE",
        14 => "MAPI_E_UNKNOWN_RECIPIENT",
        15 => "MAPI_E_BAD_RECIPTYPE",
        17 => "MAPI_E_INVALID_MESSAGE",
        18 => "MAPI_E_TEXT_TOO_LARGE",
        19 => "MAPI_E_INVALID_SESSION",
        20 => "MAPI_E_TYPE_NOT_SUPPORTED",
        21 => "MAPI_E_AMBIGUOUS_RECIPIENT",
        22 => "MAPI_E_MESSAGE_IN_USE",
        23 => "MAPI_E_NETWORK_FAILURE",
        24 => "MAPI_E_INVALID_EDITFIELDS",
        25 => "MAPI_E_INVALID_RECIPS",
        26 => "MAPI_E_NOT_SUPPORTED",
        27 => "MAPI_E_UNICODE_NOT_SUPPORTED",
        28 => "MAPI_E_ATTACHMENT_TOO_LARGE",
        _ => "an unknown MAPI code",
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
        let s = SimpleMessage::from_outgoing(
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
        let s = SimpleMessage::from_outgoing(&message(Some("a\nb"), Some("<p>x</p>")), &none);
        assert_eq!(s.body, "a\r\nb");
        let s = SimpleMessage::from_outgoing(
            &message(None, Some("<p>Hallo</p><p>Welt &amp; mehr</p>")),
            &none,
        );
        assert_eq!(s.body, "Hallo\r\n\r\nWelt & mehr");
        let s = SimpleMessage::from_outgoing(&message(None, None), &none);
        assert_eq!(s.body, "");
    }

    #[test]
    fn attachments_become_temporary_files_with_their_names() {
        let base = tempfile_dir();
        let m = message(Some("x"), None);
        let files = AttachmentFiles::write(&base, m.parts.attachments.as_slice()).unwrap();
        let s = SimpleMessage::from_outgoing(&m, &files);
        assert_eq!(s.files.len(), 1);
        assert_eq!(s.files[0].name, "Rechnung 1.pdf");
        assert_eq!(std::fs::read(&s.files[0].path).unwrap(), b"%PDF-1.4");
        let path = s.files[0].path.clone();
        drop(files);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(base);
    }

    fn tempfile_dir() -> PathBuf {
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
