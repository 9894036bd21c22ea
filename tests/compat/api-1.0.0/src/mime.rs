//! Small pure helpers on the host's MIME bytes, for transports.

use std::borrow::Cow;

/// The message without its `Bcc` header field (and the field's folded
/// continuation lines). The host builds the MIME with the Bcc header kept
/// (Graph and MAPI need it); SMTP and pickup transports must not pass it on.
/// Only the header section is touched; the body is returned byte for byte.
pub fn strip_bcc(mime: &[u8]) -> Cow<'_, [u8]> {
    let end = header_end(mime);
    let header = &mime[..end];
    if !has_field(header, b"bcc") {
        return Cow::Borrowed(mime);
    }
    let mut out = Vec::with_capacity(mime.len());
    let mut dropping = false;
    for line in header.split_inclusive(|b| *b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation {
            dropping = field_name_is(line, b"bcc");
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&mime[end..]);
    Cow::Owned(out)
}

/// The first value of header field `name` (case-insensitive), unfolded, or `None`.
pub fn header_value(mime: &[u8], name: &str) -> Option<String> {
    let header = &mime[..header_end(mime)];
    let mut value: Option<Vec<u8>> = None;
    for line in header.split_inclusive(|b| *b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        match (&mut value, continuation) {
            (Some(v), true) => v.extend_from_slice(trim_eol(line)),
            (Some(_), false) => break,
            (None, false) if field_name_is(line, name.as_bytes()) => {
                let colon = line.iter().position(|b| *b == b':').unwrap_or(0);
                value = Some(trim_eol(&line[colon + 1..]).to_vec());
            }
            _ => {}
        }
    }
    value.map(|v| String::from_utf8_lossy(&v).trim().to_string())
}

/// Offset just past the blank line that ends the header section (or the whole length).
fn header_end(mime: &[u8]) -> usize {
    let mut pos = 0;
    for line in mime.split_inclusive(|b| *b == b'\n') {
        pos += line.len();
        if line == b"\r\n" || line == b"\n" {
            return pos - line.len();
        }
    }
    mime.len()
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut l = line;
    while let Some((last, rest)) = l.split_last() {
        if *last == b'\n' || *last == b'\r' {
            l = rest;
        } else {
            break;
        }
    }
    l
}

fn field_name_is(line: &[u8], name: &[u8]) -> bool {
    match line.iter().position(|b| *b == b':') {
        Some(colon) => line[..colon].trim_ascii_end().eq_ignore_ascii_case(name),
        None => false,
    }
}

fn has_field(header: &[u8], name: &[u8]) -> bool {
    header
        .split(|b| *b == b'\n')
        .any(|l| !matches!(l.first(), Some(b' ' | b'\t')) && field_name_is(l, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@example.com\r\nBcc: secret@example.com,\r\n other@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nBcc: this is body text\r\n";

    #[test]
    fn strips_folded_bcc_and_keeps_body() {
        let out = strip_bcc(MSG);
        assert_eq!(
            &*out,
            &b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nBcc: this is body text\r\n"[..]
        );
    }

    #[test]
    fn leaves_message_without_bcc_untouched() {
        let m = b"From: a@example.com\r\nTo: b@example.com\r\n\r\nbody\r\n";
        assert!(matches!(strip_bcc(m), Cow::Borrowed(_)));
    }

    #[test]
    fn reads_unfolded_header_values() {
        assert_eq!(
            header_value(MSG, "BCC").as_deref(),
            Some("secret@example.com, other@example.com")
        );
        assert_eq!(header_value(MSG, "subject").as_deref(), Some("hi"));
        assert_eq!(header_value(MSG, "x-none"), None);
    }
}
