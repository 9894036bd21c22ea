//! A batch file's text as UTF-8: a UTF-16 file by its byte order mark, a
//! file in a Windows code page by the encoding its sender names
//! (`send-batch --encoding`, a `charset` on an upload's part).

/// The encoding a `--encoding` label names (a WHATWG label: `windows-1252`,
/// `latin1`, `iso-8859-15`, `windows-1250`, `utf-16le`, `shift_jis`, ...).
pub fn encoding(label: &str) -> Result<&'static encoding_rs::Encoding, String> {
    encoding_rs::Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        format!(
            "`{}` is not an encoding this host knows; use a name such as windows-1252, iso-8859-15, windows-1250 or utf-16le",
            crate::limits::shown(label)
        )
    })
}

/// Why a file's bytes could not be read as UTF-8.
#[derive(Debug)]
pub enum Undecodable {
    /// The bytes are not text in the encoding (the caller says how to name another).
    Invalid(String),
    /// The text grew past the caller's limit as UTF-8 (a code page's
    /// letters take two or three bytes each): nothing larger was kept.
    TooLarge(String),
}

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undecodable::Invalid(m) | Undecodable::TooLarge(m) => f.write_str(m),
        }
    }
}

/// A file's bytes as UTF-8. A UTF-16 byte order mark (Excel's "Unicode
/// Text") is followed on its own; other text is UTF-8 unless `encoding`
/// names another one (Excel's "CSV (Comma delimited)" is the Windows code
/// page, windows-1252 in Western Europe). `what` names the file in errors;
/// the UTF-8 text may be at most `limit` bytes (`limit_name` is the setting
/// that gives it), and no more than that is ever held while decoding.
pub fn to_utf8(
    bytes: Vec<u8>,
    encoding: Option<&'static encoding_rs::Encoding>,
    what: &str,
    limit: u64,
    limit_name: &str,
) -> Result<Vec<u8>, Undecodable> {
    use encoding_rs::{DecoderResult, UTF_16BE, UTF_16LE, UTF_8};
    let (enc, skip) = match encoding_rs::Encoding::for_bom(&bytes) {
        Some((e, n)) if e == UTF_16LE || e == UTF_16BE => (e, n),
        _ => match encoding {
            Some(e) if e != UTF_8 => (e, 0),
            _ => return Ok(bytes),
        },
    };
    let mut rest = bytes.get(skip..).unwrap_or_default();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut out: Vec<u8> = Vec::with_capacity(rest.len().min(limit).saturating_add(16));
    let too_large = || {
        Undecodable::TooLarge(format!(
            "{what}, read as {}, is larger than {limit} bytes as UTF-8 ([{}); split it or raise the limit",
            enc.name(),
            limit_name.replacen('.', "] ", 1)
        ))
    };
    loop {
        // Room for the next piece: at least what one call needs to move on.
        let want = decoder
            .max_utf8_buffer_length_without_replacement(rest.len().min(64 * 1024))
            .unwrap_or(usize::MAX);
        if out.len() >= limit && !rest.is_empty() {
            return Err(too_large());
        }
        let start = out.len();
        out.resize(start.saturating_add(want.max(16)), 0);
        let piece = rest.len().min(64 * 1024);
        let last = piece == rest.len();
        let (result, read, written) = decoder.decode_to_utf8_without_replacement(
            rest.get(..piece).unwrap_or_default(),
            out.get_mut(start..).unwrap_or_default(),
            last,
        );
        out.truncate(start + written);
        rest = rest.get(read..).unwrap_or_default();
        match result {
            DecoderResult::Malformed(..) => {
                return Err(Undecodable::Invalid(format!(
                    "{what} is not valid {} text",
                    enc.name()
                )))
            }
            DecoderResult::InputEmpty if last && rest.is_empty() => break,
            DecoderResult::InputEmpty | DecoderResult::OutputFull => {}
        }
        if out.len() > limit {
            return Err(too_large());
        }
    }
    if out.len() > limit {
        return Err(too_large());
    }
    Ok(out)
}

/// Where UTF-8 text first goes wrong, as a line number (1-based), or `None`
/// when it is valid UTF-8.
pub fn first_bad_utf8_line(bytes: &[u8]) -> Option<usize> {
    let at = std::str::from_utf8(bytes).err()?.valid_up_to();
    Some(
        bytes
            .get(..at)
            .unwrap_or_default()
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1,
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::batch::input::parse;
    use crate::batch::Format;
    use crate::limits::Limits;

    const L: &str = "limits.max_batch_bytes";

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn a_csv_in_a_windows_code_page_or_utf16_is_read_as_what_it_says() {
        // Excel's "CSV (Comma delimited)" on a Western European Windows.
        let ansi = b"to;name\na@example.com;J\xfcrgen M\xfcller \x80\n".to_vec();
        assert_eq!(first_bad_utf8_line(&ansi), Some(2));
        let utf8 = to_utf8(
            ansi.clone(),
            Some(encoding("windows-1252").unwrap()),
            "f",
            1 << 20,
            L,
        )
        .unwrap();
        let rows = parse(Format::Csv, &utf8, &limits()).unwrap();
        assert_eq!(rows[0].fields["name"], "Jürgen Müller €");
        // latin1 is windows-1252 (as in browsers); without a label nothing changes.
        assert_eq!(encoding("Latin1").unwrap().name(), "windows-1252");
        assert_eq!(to_utf8(ansi.clone(), None, "f", 1 << 20, L).unwrap(), ansi);
        // Excel's "Unicode Text": UTF-16LE with a byte order mark, tab separated.
        let mut u16 = vec![0xff, 0xfe];
        for c in "to\tname\na@example.com\tZoë\n".encode_utf16() {
            u16.extend_from_slice(&c.to_le_bytes());
        }
        assert_eq!(Format::of(Path::new("Kunden.TXT")), Some(Format::Csv));
        assert_eq!(Format::of(Path::new("rows.tsv")), Some(Format::Csv));
        let rows = parse(
            Format::Csv,
            &to_utf8(u16, None, "f", 1 << 20, L).unwrap(),
            &limits(),
        )
        .unwrap();
        assert_eq!(rows[0].fields["name"], "Zoë");
        // Bytes that the named encoding does not have.
        let e = to_utf8(
            vec![0x81, 0x20],
            Some(encoding("shift_jis").unwrap()),
            "rows.csv",
            1 << 20,
            L,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rows.csv is not valid Shift_JIS text"), "{e}");
        let e = encoding("klingon\n").unwrap_err();
        assert!(e.contains("`klingon\\n` is not an encoding"), "{e}");
        assert_eq!(first_bad_utf8_line("ä\nö".as_bytes()), None);
        // A UTF-16 file cut in the middle of a character.
        let e = to_utf8(vec![0xff, 0xfe, 0x41], None, "cut.csv", 1 << 20, L)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.csv is not valid UTF-16LE text"), "{e}");
    }

    #[test]
    fn decoding_never_holds_more_than_the_limit() {
        // 1,000 euro signs: one byte each in windows-1252, three in UTF-8.
        let cp = vec![0x80u8; 1000];
        let w1252 = Some(encoding("windows-1252").unwrap());
        let ok = to_utf8(cp.clone(), w1252, "rows.csv", 3000, L).unwrap();
        assert_eq!(ok.len(), 3000);
        assert_eq!(std::str::from_utf8(&ok).unwrap().chars().count(), 1000);
        let e = to_utf8(cp, w1252, "rows.csv", 2999, L).unwrap_err();
        assert!(matches!(e, Undecodable::TooLarge(_)), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("rows.csv, read as windows-1252, is larger than 2999 bytes as UTF-8 ([limits] max_batch_bytes)"),
            "{e}"
        );
        // A large file stops early: the output never grows far past the limit.
        let big = vec![0x80u8; 4 << 20];
        let e = to_utf8(big, w1252, "big.csv", 100_000, L).unwrap_err();
        assert!(matches!(e, Undecodable::TooLarge(_)), "{e}");
        // Decoding in pieces keeps characters split across a piece boundary
        // (UTF-16: 65,537 bytes of input puts half a character at the cut).
        let mut u16 = vec![0xff, 0xfe];
        let text: String = std::iter::repeat_n('€', 40_000).collect();
        for c in text.encode_utf16() {
            u16.extend_from_slice(&c.to_le_bytes());
        }
        let out = to_utf8(u16, None, "u.txt", 1 << 20, L).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), text);
        // Shift_JIS, two bytes a character, cut by pieces at odd offsets.
        let mut sjis = b"x".to_vec();
        sjis.extend(std::iter::repeat_n([0x82u8, 0xa0], 50_000).flatten());
        let out = to_utf8(
            sjis,
            Some(encoding("shift_jis").unwrap()),
            "j.csv",
            1 << 20,
            L,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("x{}", "あ".repeat(50_000))
        );
    }
}
