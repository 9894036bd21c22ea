//! Graph's JSON message form (the route when Sent Items is off, and for
//! drafts of large messages): recipients, attachments, custom `x-` headers.

use super::*;

pub(super) fn content_type(a: &Attachment) -> &str {
    if a.media_type.is_empty() {
        "application/octet-stream"
    } else {
        a.media_type.as_str()
    }
}

pub(super) fn recipient(m: &Mailbox) -> Value {
    match m.name() {
        Some(name) => json!({ "emailAddress": { "name": name, "address": m.email.as_str() } }),
        None => json!({ "emailAddress": { "address": m.email.as_str() } }),
    }
}

pub(super) fn attachment_json(a: &Attachment) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": a.filename.as_str(),
        "contentType": content_type(a),
        "contentBytes": STANDARD.encode(a.data.as_slice()),
        "isInline": a.inline,
    });
    if !a.content_id.is_empty() {
        v["contentId"] = json!(a.content_id.as_str());
    }
    v
}

/// Graph's JSON message from the structured parts (with the given attachments).
pub(super) fn message_json(
    message: &OutgoingMessage,
    mailbox: &str,
    attachments: &[&Attachment],
) -> Value {
    let p = &message.parts;
    let body = match (p.html.as_ref().into_option(), p.text.as_ref().into_option()) {
        (Some(html), _) => json!({ "contentType": "HTML", "content": html.as_str() }),
        (None, Some(text)) => json!({ "contentType": "Text", "content": text.as_str() }),
        (None, None) => json!({ "contentType": "Text", "content": "" }),
    };
    let list = |l: &[Mailbox]| l.iter().map(recipient).collect::<Vec<_>>();
    let mut v = json!({
        "subject": p.subject.as_str(),
        "body": body,
        "toRecipients": list(&p.to),
        "ccRecipients": list(&p.cc),
        "bccRecipients": list(&p.bcc),
        "replyTo": list(&p.reply_to),
    });
    // Sending as another address than the mailbox needs Send As / Send on Behalf rights.
    if !p.from.email.is_empty() && !p.from.email.eq_ignore_ascii_case(mailbox) {
        v["from"] = recipient(&p.from);
    }
    if !message.message_id.is_empty() {
        v["internetMessageId"] =
            json!(format!("<{}>", message.message_id.trim_matches(['<', '>'])));
    }
    let headers = custom_headers(&message.mime);
    if !headers.is_empty() {
        v["internetMessageHeaders"] = headers
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
    }
    if !attachments.is_empty() {
        v["attachments"] = attachments.iter().map(|a| attachment_json(a)).collect();
    }
    v
}

/// Total size of custom headers carried into Graph's JSON form (Exchange caps headers at 256 KB).
pub(super) const MAX_CUSTOM_HEADER_BYTES: usize = 64 * 1024;

/// The `X-…` header fields of the host's MIME, unfolded: Graph's JSON form
/// takes custom headers only when they are named `x-…`.
pub(super) fn custom_headers(mime: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in mime.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break; // end of the header section
        }
        let text = String::from_utf8_lossy(line);
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(text.trim());
            }
            continue;
        }
        let (name, value) = text.split_once(':').unwrap_or((&text, ""));
        fields.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut total = 0;
    fields
        .into_iter()
        .filter(|(name, _)| name.len() > 2 && name[..2].eq_ignore_ascii_case("x-"))
        .filter(|(name, value)| {
            total += name.len() + value.len();
            if total > MAX_CUSTOM_HEADER_BYTES {
                tracing::warn!(header = %name, "custom header dropped: the custom headers exceed 64 KB");
                false
            } else {
                true
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn custom_headers_are_the_x_fields_unfolded() {
        let mime = b"From: a@example.com\r\nX-ERP-Document: 4711\r\nx-long: one\r\n two\r\nSubject: hi\r\nX-: bad\r\n\r\nX-Body: not a header\r\n";
        assert_eq!(
            custom_headers(mime),
            [
                ("X-ERP-Document".to_string(), "4711".to_string()),
                ("x-long".to_string(), "one two".to_string())
            ]
        );
    }
}
