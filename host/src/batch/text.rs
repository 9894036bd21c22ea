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

/// A file's bytes as UTF-8. A UTF-16 byte order mark (Excel's "Unicode
/// Text") is followed on its own; other text is UTF-8 unless `encoding`
/// names another one (Excel's "CSV (Comma delimited)" is the Windows code
/// page, windows-1252 in Western Europe). `what` names the file in errors.
pub fn to_utf8(
    bytes: Vec<u8>,
    encoding: Option<&'static encoding_rs::Encoding>,
    what: &str,
) -> Result<Vec<u8>, String> {
    use encoding_rs::{UTF_16BE, UTF_16LE, UTF_8};
    let (enc, skip) = match encoding_rs::Encoding::for_bom(&bytes) {
        Some((e, n)) if e == UTF_16LE || e == UTF_16BE => (e, n),
        _ => match encoding {
            Some(e) if e != UTF_8 => (e, 0),
            _ => return Ok(bytes),
        },
    };
    let rest = bytes.get(skip..).unwrap_or_default();
    match enc.decode_without_bom_handling_and_without_replacement(rest) {
        Some(text) => Ok(text.into_owned().into_bytes()),
        None => Err(format!("{what} is not valid {} text", enc.name())),
    }
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

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn a_csv_in_a_windows_code_page_or_utf16_is_read_as_what_it_says() {
        // Excel's "CSV (Comma delimited)" on a Western European Windows.
        let ansi = b"to;name\na@example.com;J\xfcrgen M\xfcller \x80\n".to_vec();
        assert_eq!(first_bad_utf8_line(&ansi), Some(2));
        let utf8 = to_utf8(ansi.clone(), Some(encoding("windows-1252").unwrap()), "f").unwrap();
        let rows = parse(Format::Csv, &utf8, &limits()).unwrap();
        assert_eq!(rows[0].fields["name"], "Jürgen Müller €");
        // latin1 is windows-1252 (as in browsers); without a label nothing changes.
        assert_eq!(encoding("Latin1").unwrap().name(), "windows-1252");
        assert_eq!(to_utf8(ansi.clone(), None, "f").unwrap(), ansi);
        // Excel's "Unicode Text": UTF-16LE with a byte order mark, tab separated.
        let mut u16 = vec![0xff, 0xfe];
        for c in "to\tname\na@example.com\tZoë\n".encode_utf16() {
            u16.extend_from_slice(&c.to_le_bytes());
        }
        assert_eq!(Format::of(Path::new("Kunden.TXT")), Some(Format::Csv));
        assert_eq!(Format::of(Path::new("rows.tsv")), Some(Format::Csv));
        let rows = parse(Format::Csv, &to_utf8(u16, None, "f").unwrap(), &limits()).unwrap();
        assert_eq!(rows[0].fields["name"], "Zoë");
        // Bytes that the named encoding does not have.
        let e = to_utf8(
            vec![0x81, 0x20],
            Some(encoding("shift_jis").unwrap()),
            "rows.csv",
        )
        .unwrap_err();
        assert!(e.contains("rows.csv is not valid Shift_JIS text"), "{e}");
        let e = encoding("klingon\n").unwrap_err();
        assert!(e.contains("`klingon\\n` is not an encoding"), "{e}");
        assert_eq!(first_bad_utf8_line("ä\nö".as_bytes()), None);
        // A UTF-16 file cut in the middle of a character.
        let e = to_utf8(vec![0xff, 0xfe, 0x41], None, "cut.csv").unwrap_err();
        assert!(e.contains("cut.csv is not valid UTF-16LE text"), "{e}");
    }
}
