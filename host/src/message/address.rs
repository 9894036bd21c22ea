//! Addresses and header lines: what may go into a header field and an SMTP
//! envelope, lists of recipients as people type them, and the sender
//! fields of a message's header section.

use lettre::message::{Mailbox as LMailbox, Mailboxes};
use mailhost_plugin_api::Mailbox;

use super::MessageError;

/// A header value: no line break (header injection) and no other control
/// character (ESC, BEL, NUL, DEL... are not text; TAB is allowed).
pub(super) fn check_line(field: &str, value: &str) -> Result<(), MessageError> {
    if value.contains(['\r', '\n']) {
        return Err(MessageError::HeaderInjection {
            field: field.to_string(),
        });
    }
    if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(MessageError::ControlCharacter {
            field: field.to_string(),
            ch: format!("U+{:04X}", c as u32),
        });
    }
    Ok(())
}

/// Header fields mailhost writes itself from the message's fields: an extra
/// header may not set them (a second From would get around a purpose's
/// sender rule, a second Content-Type would change the structure).
pub(super) const STRUCTURAL_HEADERS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "return-path",
    "received",
];

pub(super) fn is_structural(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    STRUCTURAL_HEADERS.contains(&n.as_str())
        || n.starts_with("content-")
        || n.starts_with("resent-")
}

/// An address that can go into an SMTP envelope (RFC 5321): at most 254
/// characters, a local part of at most 64, and a domain of dot-separated
/// labels (letters, digits, hyphens, or non-ASCII for SMTPUTF8) or an address literal.
pub fn check_envelope_address(field: &str, addr: &str) -> Result<(), MessageError> {
    let bad = |reason: &str| MessageError::BadAddress {
        field: field.to_string(),
        value: addr.escape_debug().to_string(),
        reason: reason.to_string(),
    };
    if addr.len() > 254 {
        return Err(bad(
            "longer than 254 characters, the SMTP path limit (RFC 5321)",
        ));
    }
    if addr.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("it contains a space or a control character"));
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return Err(bad("no @"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(bad(
            "the part before @ must be 1 to 64 characters (RFC 5321)",
        ));
    }
    if domain.starts_with('[') && domain.ends_with(']') {
        return Ok(());
    }
    if domain.is_empty() || domain.len() > 253 {
        return Err(bad("the domain must be 1 to 253 characters"));
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii());
        if !ok {
            return Err(bad(
                "the domain must be labels of letters, digits and hyphens separated by dots",
            ));
        }
    }
    Ok(())
}

pub(super) fn parse_mailbox(field: &'static str, value: &str) -> Result<LMailbox, MessageError> {
    check_line(field, value)?;
    let m = value
        .trim()
        .parse::<LMailbox>()
        .map_err(|e| MessageError::BadAddress {
            field: field.to_string(),
            value: value.escape_debug().to_string(),
            reason: if value.contains([',', ';']) {
                format!("{e}; one address per value, or a list of whole addresses separated by `;`, and a name with a comma in double quotes: \"Doe, John\" <john@example.com>")
            } else {
                e.to_string()
            },
        })?;
    check_envelope_address(field, m.email.as_ref())?;
    Ok(m)
}

/// Recipients as a person types them: each value may be a list separated
/// by `;` or `,` (`a@example.com; b@example.com`, as mail clients take
/// it). A value whose parts are not all addresses is kept whole, so that
/// its error names it as given.
pub fn recipient_list(values: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !v.contains([',', ';']) {
            out.push(v.clone());
            continue;
        }
        // `;` is never part of an address outside quotes; lettre reads the
        // comma-separated rest (quoted names with commas included).
        let mut parts = Vec::new();
        let ok = split_outside_quotes(v, ';').iter().all(|p| {
            let p = p.trim();
            p.is_empty()
                || match p.parse::<Mailboxes>() {
                    Ok(list) => {
                        parts.extend(list.into_iter().map(|m| m.to_string()));
                        true
                    }
                    Err(_) => false,
                }
        });
        if ok && !parts.is_empty() {
            out.extend(parts);
        } else {
            out.push(v.clone());
        }
    }
    out
}

/// `s` split at `sep` where it is not inside double quotes.
pub(super) fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// The address part of `Name <addr>` (or of a bare address).
pub fn address_of(value: &str) -> Result<String, MessageError> {
    Ok(parse_mailbox("from", value)?.email.to_string())
}

/// Every address in the From, Sender and Reply-To fields of a message's
/// header section (all occurrences), with the field's name.
pub fn sender_addresses(mime: &[u8]) -> Vec<(&'static str, String)> {
    use mail_parser::{HeaderName as PName, HeaderValue as PValue};
    let Some(parsed) = mail_parser::MessageParser::default().parse_headers(mime) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (label, name) in [
        ("From", PName::From),
        ("Sender", PName::Sender),
        ("Reply-To", PName::ReplyTo),
    ] {
        for v in parsed.header_values(name) {
            match v {
                PValue::Address(a) => {
                    for x in a.iter() {
                        out.push((label, x.address().unwrap_or("").to_string()));
                    }
                }
                other => out.push((label, other.as_text().unwrap_or("").to_string())),
            }
        }
    }
    out
}

pub(super) fn to_part(m: &LMailbox) -> Mailbox {
    Mailbox::new(m.name.as_deref().unwrap_or(""), m.email.as_ref())
}

pub(super) fn domain_of(m: &LMailbox) -> String {
    m.email.domain().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_recipient_list_is_split_and_anything_else_kept_whole() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            recipient_list(&v(&["a@example.com; b@example.com", "c@example.com"])),
            v(&["a@example.com", "b@example.com", "c@example.com"])
        );
        let got = recipient_list(&v(&["a@example.com, \"Doe, John\" <j@example.com>;"]));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[1].ends_with("<j@example.com>"), "{got:?}");
        // not all addresses: kept as given, for its error
        for whole in [
            "Doe, John <j@example.com>",
            "a@example.com; nope",
            "\"a;b\" <x@example.com>",
        ] {
            let got = recipient_list(&v(&[whole]));
            assert_eq!(got.len(), 1, "{whole}: {got:?}");
        }
        assert_eq!(
            split_outside_quotes("\"a;\\\"b\";c", ';'),
            vec!["\"a;\\\"b\"", "c"]
        );
    }
}
