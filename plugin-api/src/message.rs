//! The message as the host hands it to a transport.

use std::fmt;

use abi_stable::std_types::{ROption, RString, RVec};
use abi_stable::StableAbi;

/// An address with an optional display name.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// Display name; empty when there is none.
    pub name: RString,
    /// `local@domain`, possibly with non-ASCII characters (RFC 6531).
    pub email: RString,
}

impl Mailbox {
    /// A mailbox; `name` may be empty.
    pub fn new(name: &str, email: &str) -> Self {
        Self {
            name: name.into(),
            email: email.into(),
        }
    }

    /// The display name, or `None` when it is empty.
    pub fn name(&self) -> Option<&str> {
        (!self.name.is_empty()).then_some(self.name.as_str())
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} <{}>", self.email),
            None => f.write_str(&self.email),
        }
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The SMTP envelope: who the message is from (MAIL FROM) and every recipient
/// it goes to (RCPT TO), Bcc included.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Default)]
pub struct Envelope {
    /// Reverse path; `None` is the null sender `<>` (bounces).
    pub from: ROption<RString>,
    /// Every recipient: To, Cc and Bcc.
    pub to: RVec<RString>,
}

/// A file attached to the message.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name the recipient sees (no directory).
    pub filename: RString,
    /// `application/pdf`, `image/png`...
    pub media_type: RString,
    /// For inline parts referenced from HTML as `cid:...`; empty otherwise.
    pub content_id: RString,
    /// Shown in the body (`Content-Disposition: inline`) rather than as a file.
    pub inline: bool,
    /// The file's bytes (not encoded).
    pub data: RVec<u8>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename.as_str())
            .field("media_type", &self.media_type.as_str())
            .field("content_id", &self.content_id.as_str())
            .field("inline", &self.inline)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// The message as structured parts, for transports that do not take MIME
/// (MAPI, Outlook, Graph's JSON form). The same message as
/// [`OutgoingMessage::mime`]; for a message sent as a complete file
/// (`mailhost send --eml`), the parts the host parsed out of it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Default)]
pub struct MessageParts {
    /// The From header.
    pub from: Mailbox,
    /// Reply-To addresses (empty when none).
    pub reply_to: RVec<Mailbox>,
    /// To recipients.
    pub to: RVec<Mailbox>,
    /// Cc recipients.
    pub cc: RVec<Mailbox>,
    /// Bcc recipients: in the envelope and in `mime`'s Bcc header, never to be
    /// shown to the other recipients.
    pub bcc: RVec<Mailbox>,
    /// The subject, decoded (UTF-8).
    pub subject: RString,
    /// The plain-text body, when there is one.
    pub text: ROption<RString>,
    /// The HTML body, when there is one.
    pub html: ROption<RString>,
    /// Attached and inline files, in message order.
    pub attachments: RVec<Attachment>,
}

/// One message handed to `Transport::send` or `Transport::compose`.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Who the message is from and every recipient it goes to (To, Cc and Bcc).
    pub envelope: Envelope,
    /// The exact RFC 5322 bytes (CRLF line ends, headers and every body part
    /// and attachment encoded), built once by the host **with the Bcc header
    /// kept** (Graph and MAPI have no envelope). A transport that hands the
    /// bytes to other people's servers (SMTP DATA) removes the Bcc header first
    /// ([`crate::mime`] has helpers).
    pub mime: RVec<u8>,
    /// The same message as structured parts.
    pub parts: MessageParts,
    /// The Message-ID header value, without angle brackets.
    pub message_id: RString,
    /// Stable across retries of the same request; transports that can dedupe use it.
    pub idempotency_key: RString,
    /// Per-request options as a JSON object (`{}` when none). Two kinds of
    /// keys ([`crate::options`]): the host's own (`user`, `mailbox`,
    /// `credentials` — set from the admin's configuration, never by a request,
    /// read them with [`crate::options::HostOptions`]) and request keys a
    /// caller may set (`dsn` for SMTP, `save_to_sent_items` for Graph, your
    /// plugin's own). Transports ignore keys they do not know.
    pub options_json: RString,
}

impl fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never dump bodies or options (they may carry per-user credentials).
        f.debug_struct("OutgoingMessage")
            .field("message_id", &self.message_id.as_str())
            .field("envelope", &self.envelope)
            .field("mime_bytes", &self.mime.len())
            .field("subject", &self.parts.subject.as_str())
            .finish_non_exhaustive()
    }
}
