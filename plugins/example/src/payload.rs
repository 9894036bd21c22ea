//! What goes over the wire: the message as one JSON document.
//!
//! The host hands every transport the same [`OutgoingMessage`]:
//!
//! * `envelope` — MAIL FROM and **every** recipient (To, Cc and Bcc);
//! * `mime` — the exact RFC 5322 bytes, built once by the host **with the Bcc
//!   header kept** (transports without an envelope need it);
//! * `parts` — the same message as structured fields, for transports that do
//!   not take MIME;
//! * `message_id`, `idempotency_key` (stable across retries) and
//!   `options_json` (per-request options; ignore the keys you do not know).
//!
//! A webhook is a delivered copy, so we remove the Bcc header from the raw
//! MIME (as an SMTP server would never see it) and do not list Bcc in the
//! structured part: the Bcc recipients are in `envelope.to`, which is where
//! a receiver that delivers mail must take recipients from anyway.
//! `options_json` is not forwarded: it may carry per-user credentials.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use mailhost_plugin_api::mime::strip_bcc;
use mailhost_plugin_api::{Mailbox, OutgoingMessage};
use serde::Serialize;

/// The JSON document POSTed for one message (`Content-Type: application/json`).
///
/// ```json
/// {
///   "message_id": "20261123.abc@example.com",
///   "idempotency_key": "20261123.abc@example.com",
///   "envelope": {"from": "erp@example.com", "to": ["a@example.com", "hidden@example.com"]},
///   "from": {"name": "ERP", "email": "erp@example.com"},
///   "reply_to": [], "to": [{"name": "", "email": "a@example.com"}], "cc": [],
///   "subject": "Invoice 4711",
///   "text": "Hello", "html": null,
///   "attachments": [{"filename": "a.pdf", "media_type": "application/pdf",
///                    "content_id": "", "inline": false, "size": 1234, "data_base64": "JVBE…"}],
///   "mime_base64": "RnJvbTog…"
/// }
/// ```
#[derive(Debug, Serialize)]
pub struct WebhookPayload<'a> {
    pub message_id: &'a str,
    pub idempotency_key: &'a str,
    pub envelope: EnvelopeJson<'a>,
    pub from: MailboxJson<'a>,
    pub reply_to: Vec<MailboxJson<'a>>,
    pub to: Vec<MailboxJson<'a>>,
    pub cc: Vec<MailboxJson<'a>>,
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    pub attachments: Vec<AttachmentJson<'a>>,
    /// The raw message, Bcc header removed, base64 (standard alphabet, padded).
    pub mime_base64: String,
}

#[derive(Debug, Serialize)]
pub struct EnvelopeJson<'a> {
    /// `None` (JSON `null`) is the null sender `<>`.
    pub from: Option<&'a str>,
    pub to: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct MailboxJson<'a> {
    pub name: &'a str,
    pub email: &'a str,
}

#[derive(Debug, Serialize)]
pub struct AttachmentJson<'a> {
    pub filename: &'a str,
    pub media_type: &'a str,
    pub content_id: &'a str,
    pub inline: bool,
    pub size: usize,
    pub data_base64: String,
}

fn mailbox(m: &Mailbox) -> MailboxJson<'_> {
    MailboxJson {
        name: m.name.as_str(),
        email: m.email.as_str(),
    }
}

impl<'a> WebhookPayload<'a> {
    pub fn new(message: &'a OutgoingMessage) -> Self {
        let p = &message.parts;
        Self {
            message_id: message.message_id.as_str(),
            idempotency_key: message.idempotency_key.as_str(),
            envelope: EnvelopeJson {
                from: message
                    .envelope
                    .from
                    .as_ref()
                    .map(|s| s.as_str())
                    .into_option(),
                to: message.envelope.to.iter().map(|s| s.as_str()).collect(),
            },
            from: mailbox(&p.from),
            reply_to: p.reply_to.iter().map(mailbox).collect(),
            to: p.to.iter().map(mailbox).collect(),
            cc: p.cc.iter().map(mailbox).collect(),
            subject: p.subject.as_str(),
            text: p.text.as_ref().map(|s| s.as_str()).into_option(),
            html: p.html.as_ref().map(|s| s.as_str()).into_option(),
            attachments: p
                .attachments
                .iter()
                .map(|a| AttachmentJson {
                    filename: a.filename.as_str(),
                    media_type: a.media_type.as_str(),
                    content_id: a.content_id.as_str(),
                    inline: a.inline,
                    size: a.data.len(),
                    data_base64: BASE64.encode(a.data.as_slice()),
                })
                .collect(),
            mime_base64: BASE64.encode(strip_bcc(&message.mime)),
        }
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// The URL as it may appear in logs and errors: scheme, host, port and path —
/// no user-info and no query (either may carry a secret).
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port_or_known_default().map(|p| format!(":{p}"));
            format!(
                "{}://{host}{}{}",
                u.scheme(),
                port.unwrap_or_default(),
                u.path()
            )
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::abi_stable::std_types::{ROption, RString};
    use mailhost_plugin_api::{Attachment, Envelope, MessageParts};

    fn message() -> OutgoingMessage {
        OutgoingMessage {
            envelope: Envelope {
                from: ROption::RSome("erp@example.com".into()),
                to: vec![RString::from("a@example.com"), "hidden@example.com".into()].into(),
            },
            mime: b"From: erp@example.com\r\nTo: a@example.com\r\nBcc: hidden@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"
                .to_vec()
                .into(),
            parts: MessageParts {
                from: Mailbox::new("ERP", "erp@example.com"),
                to: vec![Mailbox::new("", "a@example.com")].into(),
                bcc: vec![Mailbox::new("", "hidden@example.com")].into(),
                subject: "Hi".into(),
                text: ROption::RSome("Hello".into()),
                attachments: vec![Attachment {
                    filename: "a.txt".into(),
                    media_type: "text/plain".into(),
                    content_id: "".into(),
                    inline: false,
                    data: b"abc".to_vec().into(),
                }]
                .into(),
                ..MessageParts::default()
            },
            message_id: "id-1@example.com".into(),
            idempotency_key: "key-1".into(),
            options_json: r#"{"credentials":{"password":"env:X"}}"#.into(),
        }
    }

    #[test]
    fn payload_shape() {
        let m = message();
        let v: serde_json::Value =
            serde_json::from_str(&WebhookPayload::new(&m).to_json().unwrap()).unwrap();
        assert_eq!(v["envelope"]["to"][1], "hidden@example.com");
        assert_eq!(v["from"]["name"], "ERP");
        assert_eq!(v["attachments"][0]["data_base64"], "YWJj");
        assert_eq!(v["attachments"][0]["size"], 3);
        assert!(v.get("bcc").is_none() && v.get("options").is_none());
        let mime = BASE64.decode(v["mime_base64"].as_str().unwrap()).unwrap();
        let mime = String::from_utf8(mime).unwrap();
        assert!(
            !mime.contains("Bcc:") && mime.contains("Subject: Hi"),
            "{mime}"
        );
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redacted_url("https://user:pw@h.example/a/b?token=x"),
            "https://h.example:443/a/b"
        );
        assert_eq!(
            redacted_url("http://127.0.0.1:8080/x"),
            "http://127.0.0.1:8080/x"
        );
    }
}
