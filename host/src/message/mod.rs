//! Builds the one `OutgoingMessage` every transport receives: the exact MIME
//! bytes (lettre's builder, Bcc header kept), the envelope and the structured parts.

use std::path::PathBuf;

use lettre::message::header::{
    self, ContentTransferEncoding, ContentType, HeaderName, HeaderValue,
};
use lettre::message::{Attachment as LAttachment, Mailboxes, MultiPart, SinglePart};
use lettre::Message;
use mail_parser::MimeHeaders;
use mailhost_plugin_api::abi_stable::std_types::{ROption, RString, RVec};
use mailhost_plugin_api::{Attachment, Envelope, Mailbox, MessageParts, OutgoingMessage};
use serde::{Deserialize, Serialize};

use crate::limits::Limits;

mod address;

pub use self::address::{address_of, check_envelope_address, recipient_list, sender_addresses};
use self::address::{check_line, domain_of, is_structural, parse_mailbox, to_part};

/// A file to attach: from a path, or inline bytes (base64 in JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRequest {
    /// Read the file from here (CLI); the file name defaults to its last component.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub filename: Option<String>,
    /// Defaults from the file name's extension, else `application/octet-stream`.
    #[serde(default)]
    pub media_type: Option<String>,
    /// Content, base64 in JSON (API).
    #[serde(default, with = "b64_opt")]
    pub data: Option<Vec<u8>>,
    /// For inline images referenced from HTML as `cid:...`.
    #[serde(default)]
    pub content_id: Option<String>,
}

/// A list of addresses, or one address as a plain string (what a caller
/// with a single recipient writes).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "an address or a list of addresses")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What a caller asks to send (CLI flags or the API's JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub reply_to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub cc: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub bcc: Vec<String>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentRequest>,
    /// Extra headers (`X-ERP-Document: 4711`).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// MAIL FROM, when it must differ from the From address.
    #[serde(default)]
    pub envelope_from: Option<String>,
    /// Stable across retries; defaults to the Message-ID.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Per-request transport options (DSN, per-user credentials...).
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

/// A message the host refused to build, with the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("{field}: `{value}` is not a valid address ({reason}); write it as `name@example.com` or `Name <name@example.com>`")]
    BadAddress {
        field: String,
        value: String,
        reason: String,
    },
    #[error(
        "{field} contains a line break (CR or LF), which would inject header lines; remove it"
    )]
    HeaderInjection { field: String },
    #[error("the message has no recipient: give at least one To, Cc or Bcc address")]
    NoRecipient,
    #[error("the message has no From address: give one, or set `from` on the account")]
    NoFrom,
    #[error(
        "the .eml file has no From header: an .eml is sent as it is, so add a From line to it"
    )]
    EmlNoFrom,
    #[error("header name `{0}` is invalid: use letters, digits and `-` only")]
    BadHeaderName(String),
    #[error("attachment {path}: {reason}")]
    Attachment { path: String, reason: String },
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("the .eml file is not a parsable message: {0}")]
    BadEml(String),
    #[error("option `{0}` is set by the host from its configuration ([users.NAME.accounts.ACCOUNT]); a request cannot set it")]
    HostOnlyOption(String),
    #[error("the message is {size} bytes, more than limits.max_message_bytes ({limit}); send a smaller message or raise the limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("the message has {count} recipients, more than limits.max_recipients ({limit}); split it into several messages or raise the limit")]
    TooManyRecipients { count: usize, limit: usize },
    #[error("{field} contains the control character {ch}, which a header cannot carry; remove it")]
    ControlCharacter { field: String, ch: String },
    #[error("header `{0}` is set by mailhost from the message's fields; use the matching option (--from, --to, --cc, --reply-to, --subject...) instead of --header")]
    StructuralHeader(String),
    #[error("{field}: {reason}; a name or key is at most 200 characters of text")]
    BadName { field: String, reason: String },
    #[error("{0}")]
    Read(#[from] crate::limits::ReadError),
}

/// A fresh Message-ID (without angle brackets) in the sender's domain.
pub fn new_message_id(domain: &str) -> String {
    let domain = if domain.is_empty() {
        "mailhost.invalid"
    } else {
        domain
    };
    format!("{}@{}", uuid::Uuid::new_v4().simple(), domain)
}

fn guess_media_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

fn load_attachment(a: &AttachmentRequest, limits: &Limits) -> Result<Attachment, MessageError> {
    let label = a
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .or_else(|| a.filename.clone())
        .unwrap_or_else(|| "(unnamed)".to_string());
    let data = match (&a.data, &a.path) {
        (Some(d), _) => d.clone(),
        (None, Some(p)) => {
            crate::limits::read_bounded(p, limits.max_message_bytes, "limits.max_message_bytes")?
        }
        (None, None) => {
            return Err(MessageError::Attachment {
                path: label,
                reason: "give a path or data".to_string(),
            })
        }
    };
    let filename = a
        .filename
        .clone()
        .or_else(|| {
            a.path
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "attachment.bin".to_string());
    check_line("attachment file name", &filename)?;
    let media_type = a
        .media_type
        .clone()
        .unwrap_or_else(|| guess_media_type(&filename).to_string());
    media_type
        .parse::<ContentType>()
        .map_err(|_| MessageError::Attachment {
            path: label.clone(),
            reason: format!("media type `{media_type}` is invalid; write it as `type/subtype`"),
        })?;
    Ok(Attachment {
        filename: filename.into(),
        media_type: media_type.into(),
        content_id: a.content_id.clone().unwrap_or_default().into(),
        inline: a.content_id.is_some(),
        data: data.into(),
    })
}

/// Builds the message with the default limits. `default_from` is the
/// account's `from` when the request has none.
pub fn build(
    req: &MessageRequest,
    default_from: Option<&str>,
) -> Result<OutgoingMessage, MessageError> {
    build_limited(req, default_from, &Limits::default())
}

/// A header value lettre can fold: every word of at most 900 bytes. A longer
/// word (a 100 KB subject without spaces) is written as RFC 2047 encoded
/// words, which a reader joins back without spaces, so no line exceeds 998
/// characters (RFC 5322 §2.1.1) and the text is unchanged.
fn header_text(name: &str, value: &str) -> HeaderValue {
    let header = HeaderName::new_from_ascii(name.to_string())
        .unwrap_or_else(|_| HeaderName::new_from_ascii_str("X-Invalid"));
    if value.split(' ').all(|w| w.len() <= 900) {
        return HeaderValue::new(header, value.to_string());
    }
    use base64::Engine as _;
    let mut encoded = String::with_capacity(value.len() * 4 / 3 + value.len() / 30);
    let mut chunk_start = 0;
    let mut first = true;
    let mut push = |chunk: &str, encoded: &mut String| {
        if !first {
            encoded.push_str("\r\n ");
        }
        first = false;
        encoded.push_str("=?utf-8?b?");
        encoded.push_str(&base64::engine::general_purpose::STANDARD.encode(chunk));
        encoded.push_str("?=");
    };
    for (i, _) in value.char_indices() {
        if i - chunk_start >= 45 {
            push(&value[chunk_start..i], &mut encoded);
            chunk_start = i;
        }
    }
    if chunk_start < value.len() || value.is_empty() {
        push(&value[chunk_start..], &mut encoded);
    }
    HeaderValue::dangerous_new_pre_encoded(header, value.to_string(), encoded)
}

/// Text with CRLF line endings, converted in one pass (lettre's own
/// conversion inserts once per line, quadratic for a large LF text).
fn crlf_text(t: &str) -> String {
    match String::from_utf8(crlf(t.as_bytes())) {
        Ok(s) => s,
        Err(_) => t.to_string(),
    }
}

/// A text part; a body with control characters that 7bit/quoted-printable
/// cannot carry (NUL, ...) is sent as base64.
fn text_part(text: String, ct: ContentType) -> SinglePart {
    let text = crlf_text(&text);
    let binary = text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\t' | '\x0c'));
    let b = SinglePart::builder().header(ct);
    if binary {
        b.header(ContentTransferEncoding::Base64).body(text)
    } else {
        b.body(text)
    }
}

/// Builds the message within `limits`. `default_from` is the account's `from`
/// when the request has none.
pub fn build_limited(
    req: &MessageRequest,
    default_from: Option<&str>,
    limits: &Limits,
) -> Result<OutgoingMessage, MessageError> {
    let from_text = req
        .from
        .as_deref()
        .or(default_from)
        .ok_or(MessageError::NoFrom)?;
    let count = req.to.len() + req.cc.len() + req.bcc.len();
    if count > limits.max_recipients {
        return Err(MessageError::TooManyRecipients {
            count,
            limit: limits.max_recipients,
        });
    }
    let from = parse_mailbox("from", from_text)?;
    let mut b = Message::builder().from(from.clone()).keep_bcc();
    let mut parts = MessageParts {
        from: to_part(&from),
        ..MessageParts::default()
    };
    // Each address header is set once with all its mailboxes: adding them one
    // by one makes lettre re-parse the header every time (quadratic).
    let mut reply_to = Mailboxes::new();
    for r in &req.reply_to {
        let m = parse_mailbox("reply-to", r)?;
        parts.reply_to.push(to_part(&m));
        reply_to.push(m);
    }
    let mut rcpts: Vec<String> = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut lists: [(Mailboxes, &'static str, &Vec<String>); 3] = [
        (Mailboxes::new(), "to", &req.to),
        (Mailboxes::new(), "cc", &req.cc),
        (Mailboxes::new(), "bcc", &req.bcc),
    ];
    for (boxes, field, list) in lists.iter_mut() {
        for r in list.iter() {
            let m = parse_mailbox(field, r)?;
            let a = m.email.to_string();
            if seen.insert(a.to_ascii_lowercase()) {
                rcpts.push(a);
            }
            let part = to_part(&m);
            match *field {
                "to" => parts.to.push(part),
                "cc" => parts.cc.push(part),
                _ => parts.bcc.push(part),
            }
            boxes.push(m);
        }
    }
    if rcpts.is_empty() {
        return Err(MessageError::NoRecipient);
    }
    let [(to, ..), (cc, ..), (bcc, ..)] = lists;
    if to.iter().next().is_some() {
        b = b.header(header::To::from(to));
    }
    if cc.iter().next().is_some() {
        b = b.header(header::Cc::from(cc));
    }
    if bcc.iter().next().is_some() {
        b = b.header(header::Bcc::from(bcc));
    }
    if reply_to.iter().next().is_some() {
        b = b.header(header::ReplyTo::from(reply_to));
    }
    check_line("subject", &req.subject)?;
    b = b.raw_header(header_text("Subject", &req.subject));
    parts.subject = req.subject.clone().into();
    for (name, value) in &req.headers {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(MessageError::BadHeaderName(name.escape_debug().to_string()));
        }
        if is_structural(name) {
            return Err(MessageError::StructuralHeader(name.clone()));
        }
        check_line(&format!("header {name}"), value)?;
        b = b.raw_header(header_text(name, value));
    }
    let envelope_from = match &req.envelope_from {
        Some(e) => parse_mailbox("envelope-from", e)?.email.to_string(),
        None => from.email.to_string(),
    };
    let message_id = new_message_id(&domain_of(&from));
    b = b.message_id(Some(format!("<{message_id}>")));
    let mut size: u64 = req.text.as_ref().map_or(0, |t| t.len() as u64)
        + req.html.as_ref().map_or(0, |t| t.len() as u64);
    let mut attachments: Vec<Attachment> = Vec::with_capacity(req.attachments.len());
    for a in &req.attachments {
        let att = load_attachment(a, limits)?;
        size += att.data.len() as u64;
        if size > limits.max_message_bytes {
            return Err(MessageError::TooLarge {
                size,
                limit: limits.max_message_bytes,
            });
        }
        attachments.push(att);
    }
    if size > limits.max_message_bytes {
        return Err(MessageError::TooLarge {
            size,
            limit: limits.max_message_bytes,
        });
    }
    parts.text = req.text.clone().map(RString::from).into();
    parts.html = req.html.clone().map(RString::from).into();
    parts.attachments = attachments.iter().cloned().collect();

    let text = req.text.clone();
    let html = req.html.clone();
    let body = match (text, html) {
        (Some(t), Some(h)) => Body::Multi(
            MultiPart::alternative()
                .singlepart(text_part(t, ContentType::TEXT_PLAIN))
                .singlepart(text_part(h, ContentType::TEXT_HTML)),
        ),
        (Some(t), None) => Body::Single(text_part(t, ContentType::TEXT_PLAIN)),
        (None, Some(h)) => Body::Single(text_part(h, ContentType::TEXT_HTML)),
        (None, None) => Body::Single(text_part(String::new(), ContentType::TEXT_PLAIN)),
    };
    let message = if attachments.is_empty() {
        match body {
            Body::Single(p) => b.singlepart(p),
            Body::Multi(m) => b.multipart(m),
        }
    } else {
        let mut mixed = match body {
            Body::Single(p) => MultiPart::mixed().singlepart(p),
            Body::Multi(m) => MultiPart::mixed().multipart(m),
        };
        for a in &attachments {
            let ct: ContentType = a
                .media_type
                .parse()
                .map_err(|_| MessageError::Build("media type".into()))?;
            let att = if a.inline {
                LAttachment::new_inline_with_name(a.content_id.to_string(), a.filename.to_string())
            } else {
                LAttachment::new(a.filename.to_string())
            };
            mixed = mixed.singlepart(att.body(a.data.to_vec(), ct));
        }
        b.multipart(mixed)
    }
    .map_err(|e| MessageError::Build(e.to_string()))?;

    let mime = fold_address_headers(message.formatted());
    Ok(OutgoingMessage {
        envelope: Envelope {
            from: ROption::RSome(envelope_from.into()),
            to: rcpts.into_iter().map(RString::from).collect(),
        },
        mime: mime.into(),
        parts,
        idempotency_key: req
            .idempotency_key
            .clone()
            .unwrap_or_else(|| message_id.clone())
            .into(),
        message_id: message_id.into(),
        options_json: serde_json::Value::Object(req.options.clone())
            .to_string()
            .into(),
    })
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

/// Takes a complete message (`--eml FILE` or stdin) as it is: the envelope from
/// its From/To/Cc/Bcc headers unless given, line endings made CRLF, and a
/// Message-ID and Date added when missing. The bytes are otherwise kept.
pub fn from_eml(
    raw: &[u8],
    envelope_from: Option<&str>,
    envelope_to: &[String],
    options: serde_json::Map<String, serde_json::Value>,
) -> Result<OutgoingMessage, MessageError> {
    check_eml_header(raw)?;
    let parsed = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or_else(|| MessageError::BadEml("no header section found".to_string()))?;
    let from = mailboxes(parsed.from())
        .into_iter()
        .next()
        .ok_or(MessageError::EmlNoFrom)?;
    let to = mailboxes(parsed.to());
    let cc = mailboxes(parsed.cc());
    let bcc = mailboxes(parsed.bcc());
    let mut rcpts: Vec<String> = envelope_to.to_vec();
    if rcpts.is_empty() {
        let mut seen = std::collections::HashSet::new();
        for m in to.iter().chain(&cc).chain(&bcc) {
            if seen.insert(m.email.to_ascii_lowercase()) {
                rcpts.push(m.email.to_string());
            }
        }
    }
    if rcpts.is_empty() {
        return Err(MessageError::NoRecipient);
    }
    for r in &rcpts {
        parse_mailbox("envelope recipient", r)?;
    }
    let env_from = match envelope_from {
        Some(e) => parse_mailbox("envelope-from", e)?.email.to_string(),
        None => from.email.to_string(),
    };
    let mut prefix = Vec::new();
    let message_id = match parsed.message_id() {
        Some(id) => id.to_string(),
        None => {
            let domain = from.email.rsplit('@').next().unwrap_or("");
            let id = new_message_id(domain);
            prefix.extend_from_slice(format!("Message-ID: <{id}>\r\n").as_bytes());
            id
        }
    };
    if parsed.date().is_none() {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .map_err(|e| MessageError::Build(e.to_string()))?;
        prefix.extend_from_slice(format!("Date: {now}\r\n").as_bytes());
    }
    let mut mime = prefix;
    mime.extend_from_slice(&crlf(raw));
    let parts = parts_of(&parsed, from, to, cc, bcc);
    Ok(OutgoingMessage {
        envelope: Envelope {
            from: ROption::RSome(env_from.into()),
            to: rcpts.into_iter().map(RString::from).collect(),
        },
        mime: mime.into(),
        parts,
        idempotency_key: message_id.clone().into(),
        message_id: message_id.into(),
        options_json: serde_json::Value::Object(options).to_string().into(),
    })
}

/// The mailboxes of an address header that have an address.
fn mailboxes(a: Option<&mail_parser::Address<'_>>) -> Vec<Mailbox> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address().map(|e| Mailbox::new(x.name().unwrap_or(""), e)))
            .collect()
    })
    .unwrap_or_default()
}

/// The structured parts (for Graph's JSON form, MAPI, Outlook) of a parsed message.
fn parts_of(
    parsed: &mail_parser::Message<'_>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
) -> MessageParts {
    let attachments = parsed
        .attachments()
        .map(|p| Attachment {
            filename: p.attachment_name().unwrap_or("attachment.bin").into(),
            media_type: p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_string())
                .into(),
            content_id: p.content_id().unwrap_or("").into(),
            inline: false,
            data: p.contents().to_vec().into(),
        })
        .collect::<RVec<_>>();
    MessageParts {
        from,
        reply_to: mailboxes(parsed.reply_to()).into(),
        to: to.into(),
        cc: cc.into(),
        bcc: bcc.into(),
        subject: parsed.subject().unwrap_or("").into(),
        text: parsed
            .body_text(0)
            .map(|t| RString::from(t.into_owned()))
            .into(),
        html: parsed
            .body_html(0)
            .map(|t| RString::from(t.into_owned()))
            .into(),
        attachments,
    }
}

/// A stored message as bytes and ids only, with empty `parts`: what a
/// plugin whose `send` reads only the bytes gets ([`restore`] parses them).
pub fn stored(
    mime: &[u8],
    envelope_from: Option<&str>,
    envelope_to: &[String],
    message_id: &str,
    idempotency_key: &str,
    options_json: &str,
) -> OutgoingMessage {
    OutgoingMessage {
        envelope: Envelope {
            from: envelope_from.map(RString::from).into(),
            to: envelope_to
                .iter()
                .map(|s| RString::from(s.as_str()))
                .collect(),
        },
        mime: mime.to_vec().into(),
        parts: Default::default(),
        idempotency_key: idempotency_key.into(),
        message_id: message_id.into(),
        options_json: options_json.into(),
    }
}

/// Rebuilds the message a queue stored — the exact MIME, the envelope and
/// the ids — with its structured parts parsed from the MIME again.
pub fn restore(
    mime: &[u8],
    envelope_from: Option<&str>,
    envelope_to: &[String],
    message_id: &str,
    idempotency_key: &str,
    options_json: &str,
) -> Result<OutgoingMessage, MessageError> {
    let parsed = mail_parser::MessageParser::default()
        .parse(mime)
        .ok_or_else(|| MessageError::BadEml("no header section found".to_string()))?;
    let from = mailboxes(parsed.from())
        .into_iter()
        .next()
        .ok_or(MessageError::EmlNoFrom)?;
    let parts = parts_of(
        &parsed,
        from,
        mailboxes(parsed.to()),
        mailboxes(parsed.cc()),
        mailboxes(parsed.bcc()),
    );
    Ok(OutgoingMessage {
        parts,
        ..stored(
            mime,
            envelope_from,
            envelope_to,
            message_id,
            idempotency_key,
            options_json,
        )
    })
}

/// Folds the address fields (To, Cc, Bcc, Reply-To) after commas: lettre
/// writes an address list as one line, 20 KB for 1,000 addresses, where
/// RFC 5322 allows 998 characters. The break goes before the space that
/// follows a comma, so unfolding gives back the same text.
fn fold_address_headers(mime: Vec<u8>) -> Vec<u8> {
    const FOLD_AT: usize = 76;
    let end = mime
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(mime.len(), |p| p + 2);
    let (header, body) = mime.split_at(end);
    if !header.split(|b| *b == b'\n').any(|l| l.len() > FOLD_AT + 2) {
        return mime;
    }
    let mut out = Vec::with_capacity(mime.len() + mime.len() / 30);
    for line in header.split_inclusive(|b| *b == b'\n') {
        let name_end = line.iter().position(|b| *b == b':').unwrap_or(0);
        let name = String::from_utf8_lossy(&line[..name_end]).to_ascii_lowercase();
        if line.len() <= FOLD_AT + 2 || !matches!(name.as_str(), "to" | "cc" | "bcc" | "reply-to") {
            out.extend_from_slice(line);
            continue;
        }
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            if b == b' ' && i > 0 && line[i - 1] == b',' && col > FOLD_AT / 2 {
                out.extend_from_slice(b"\r\n");
                col = 0;
            }
            out.push(b);
            col += 1;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A message sent as it is must have a header section a server accepts: no
/// NUL and no line longer than 998 characters (RFC 5322 §2.1.1).
fn check_eml_header(raw: &[u8]) -> Result<(), MessageError> {
    for (n, line) in raw.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(());
        }
        if line.contains(&0) {
            return Err(MessageError::BadEml(format!(
                "line {} of the header section contains a NUL byte",
                n + 1
            )));
        }
        if line.len() > 998 {
            return Err(MessageError::BadEml(format!(
                "line {} of the header section is {} characters long; RFC 5322 allows 998: fold it",
                n + 1,
                line.len()
            )));
        }
    }
    Ok(())
}

/// Bare LF → CRLF (SMTP requires CRLF line endings).
fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

mod b64_opt {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| {
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use mailhost_plugin_api::mime::{header_value, strip_bcc};

    fn req() -> MessageRequest {
        MessageRequest {
            from: Some("ERP <erp@example.com>".into()),
            to: vec!["a@example.com".into()],
            cc: vec!["C <c@example.com>".into()],
            bcc: vec!["hidden@example.com".into()],
            subject: "Invoice 4711".into(),
            text: Some("Hello".into()),
            ..Default::default()
        }
    }

    #[test]
    fn builds_with_bcc_kept_and_envelope_complete() {
        let m = build(&req(), None).unwrap();
        assert_eq!(
            m.envelope.to.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["a@example.com", "c@example.com", "hidden@example.com"]
        );
        assert_eq!(
            header_value(&m.mime, "bcc").as_deref(),
            Some("hidden@example.com")
        );
        assert!(header_value(&strip_bcc(&m.mime), "bcc").is_none());
        assert_eq!(
            header_value(&m.mime, "message-id").unwrap(),
            format!("<{}>", m.message_id)
        );
        assert!(m.message_id.ends_with("@example.com"));
        assert_eq!(m.parts.subject.as_str(), "Invoice 4711");
    }

    #[test]
    fn header_injection_is_refused() {
        let mut r = req();
        r.subject = "hi\r\nBcc: victim@example.com".into();
        let e = build(&r, None).unwrap_err();
        assert!(
            e.to_string().contains("subject contains a line break"),
            "{e}"
        );
        let mut r = req();
        r.to = vec!["a@example.com\r\nX: y".into()];
        assert!(matches!(
            build(&r, None),
            Err(MessageError::HeaderInjection { .. })
        ));
    }

    #[test]
    fn bad_address_and_missing_parts() {
        let mut r = req();
        r.to = vec!["not an address".into()];
        let e = build(&r, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("to: `not an address` is not a valid address"),
            "{e}"
        );
        let mut r = req();
        r.from = None;
        assert!(matches!(build(&r, None), Err(MessageError::NoFrom)));
        assert!(build(&r, Some("d@example.com")).is_ok());
        let mut r = req();
        r.to.clear();
        r.cc.clear();
        r.bcc.clear();
        assert!(matches!(build(&r, None), Err(MessageError::NoRecipient)));
    }

    #[test]
    fn eml_keeps_bytes_and_reads_envelope() {
        let raw =
            b"From: A <a@example.com>\nTo: b@example.com\nBcc: z@example.com\nSubject: x\n\nbody\n";
        let m = from_eml(raw, None, &[], Default::default()).unwrap();
        assert_eq!(m.envelope.to.len(), 2);
        assert!(m.mime.windows(2).any(|w| w == b"\r\n"));
        assert!(header_value(&m.mime, "message-id").is_some());
        assert_eq!(
            m.parts.text.as_ref().map(|s| s.as_str()).into_option(),
            Some("body\n")
        );
    }
}
