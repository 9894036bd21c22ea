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
    pub fn new(name: &str, email: &str) -> Self {
        Self {
            name: name.into(),
            email: email.into(),
        }
    }

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
    pub filename: RString,
    /// `application/pdf`, `image/png`...
    pub media_type: RString,
    /// For inline parts referenced from HTML as `cid:...`; empty otherwise.
    pub content_id: RString,
    pub inline: bool,
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
/// (MAPI, Outlook, Graph's JSON form).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Default)]
pub struct MessageParts {
    pub from: Mailbox,
    pub reply_to: RVec<Mailbox>,
    pub to: RVec<Mailbox>,
    pub cc: RVec<Mailbox>,
    pub bcc: RVec<Mailbox>,
    pub subject: RString,
    pub text: ROption<RString>,
    pub html: ROption<RString>,
    pub attachments: RVec<Attachment>,
}

/// One message handed to `Transport::send` or `Transport::compose`.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub envelope: Envelope,
    /// The exact RFC 5322 bytes, built once by the host **with the Bcc header
    /// kept** (Graph and MAPI have no envelope). An SMTP transport removes the
    /// Bcc header before DATA.
    pub mime: RVec<u8>,
    pub parts: MessageParts,
    /// The Message-ID header value, without angle brackets.
    pub message_id: RString,
    /// Stable across retries of the same request; transports that can dedupe use it.
    pub idempotency_key: RString,
    /// Per-request options as a JSON object (`{}` when none): DSN, per-user
    /// mailbox or credentials, save-to-sent. Transports ignore keys they do not know.
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
