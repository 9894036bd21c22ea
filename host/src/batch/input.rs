//! Reading a batch's rows: JSON Lines (one object per line), CSV with a
//! header row, or a folder of `.eml` files. Pure and bounded: every error
//! names the line (or file) it is about.

use std::path::Path;

use serde_json::{Map, Value};

use super::{RowError, RowErrors};
use crate::limits::Limits;

/// One recipient row of a JSON Lines or CSV batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The line the row starts on (1-based).
    pub line: usize,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    /// Every field of the row (`to`, `cc` and `bcc` included), for the template.
    pub fields: Map<String, Value>,
}

/// One `.eml` file of a folder batch, sent as it is.
#[derive(Debug, Clone)]
pub struct EmlFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The input formats of a file batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    /// From the file name: `.csv`/`.tsv`/`.txt` → CSV (the separator is read
    /// from the header row), `.jsonl`/`.ndjson`/`.json` → JSON Lines.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            // `.tsv`, and `.txt` as Excel names its "Unicode Text" (tab separated).
            "csv" | "tsv" | "txt" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// Parses rows in `format`, checking the limits; every bad row is listed (up to a bound).
pub fn parse(format: Format, bytes: &[u8], limits: &Limits) -> Result<Vec<Row>, RowErrors> {
    if bytes.len() as u64 > limits.max_batch_bytes {
        return Err(RowErrors::one(RowError::whole(format!(
            "the batch is larger than {} bytes ([limits] max_batch_bytes); split it or raise the limit",
            limits.max_batch_bytes
        ))));
    }
    // A byte order mark (Windows editors write one) is not part of the first row.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let rows = match format {
        Format::Jsonl => parse_jsonl(bytes, limits),
        Format::Csv => parse_csv(bytes, limits),
    }?;
    if rows.is_empty() {
        return Err(RowErrors::one(RowError::whole(
            "the batch has no rows: give one recipient row per line",
        )));
    }
    Ok(rows)
}

fn too_many(limits: &Limits) -> RowError {
    RowError::whole(format!(
        "the batch has more than {} rows ([limits] max_batch_rows); split it or raise the limit",
        limits.max_batch_rows
    ))
}

fn row_too_large(line: usize, limits: &Limits) -> RowError {
    RowError::line(
        line,
        format!(
            "the row is larger than {} bytes ([limits] max_batch_row_bytes)",
            limits.max_batch_row_bytes
        ),
    )
}

/// JSON Lines: one object per non-empty line.
pub fn parse_jsonl(bytes: &[u8], limits: &Limits) -> Result<Vec<Row>, RowErrors> {
    let mut rows = Vec::new();
    let mut errors = RowErrors::default();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if rows.len() + errors.total >= limits.max_batch_rows {
            errors.push(too_many(limits));
            break;
        }
        if raw.len() as u64 > limits.max_batch_row_bytes {
            errors.push(row_too_large(line, limits));
            continue;
        }
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                errors.push(RowError::line(
                    line,
                    format!(
                        "not valid UTF-8 (at byte {} of the line); save the file as UTF-8",
                        e.valid_up_to() + 1
                    ),
                ));
                continue;
            }
        };
        let obj = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                errors.push(RowError::line(
                    line,
                    "not a JSON object; write one object per line, like {\"to\": \"a@example.com\", \"name\": \"Ann\"}",
                ));
                continue;
            }
            Err(e) => {
                errors.push(RowError::line(line, format!("not valid JSON: {e}")));
                continue;
            }
        };
        match row_of(line, obj) {
            Ok(r) => rows.push(r),
            Err(e) => errors.push(e),
        }
    }
    errors.into_result(rows)
}

/// The separator of a CSV file, read from its header line: the comma, the
/// semicolon (what spreadsheet programs write where the comma is the
/// decimal mark) or the tab, whichever the line holds most of outside
/// quotes; the comma when it holds none (a file with only a `to` column).
fn delimiter(bytes: &[u8]) -> u8 {
    let header = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
                c.1 += 1;
            }
        }
    }
    // The first of the most frequent: the comma wins a tie.
    counts
        .iter()
        .fold(
            (b',', 0),
            |best, &(d, n)| if n > best.1 { (d, n) } else { best },
        )
        .0
}

/// How a separator is named in an error.
fn delimiter_name(d: u8) -> &'static str {
    match d {
        b';' => "a semicolon",
        b'\t' => "a tab",
        _ => "a comma",
    }
}

/// CSV with a header row; a `to` column is required; `cc`/`bcc` columns are
/// optional; several addresses in one cell are separated by `;` (quote the
/// cell in a file separated by semicolons). The separator is found from
/// the header line (comma, semicolon or tab: whichever it holds most of
/// outside quotes); a UTF-8 byte order mark is skipped.
pub fn parse_csv(bytes: &[u8], limits: &Limits) -> Result<Vec<Row>, RowErrors> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let sep = delimiter(bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .delimiter(sep)
        .from_reader(bytes);
    let headers = match rdr.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(RowErrors::one(csv_error(1, &e, sep))),
    };
    let mut names = Vec::with_capacity(headers.len());
    for (i, h) in headers.iter().enumerate() {
        match std::str::from_utf8(h) {
            Ok(n) => names.push(n.trim().trim_start_matches('\u{feff}').to_string()),
            Err(_) => {
                return Err(RowErrors::one(RowError::line(
                    1,
                    format!(
                        "header column {} is not valid UTF-8; save the file as UTF-8 (in Excel: Save As \"CSV UTF-8\"; in LibreOffice: character set Unicode (UTF-8))",
                        i + 1
                    ),
                )))
            }
        }
    }
    if !names.iter().any(|n| n == "to") {
        return Err(RowErrors::one(RowError::line(
            1,
            format!(
                "the header row has no `to` column (read as separated by {}, it has: {}); the first line names the columns, one of them `to`",
                delimiter_name(sep),
                names.join(", ")
            ),
        )));
    }
    if let Some(d) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return Err(RowErrors::one(RowError::line(
            1,
            format!("the header row names column `{}` twice", d.1),
        )));
    }
    let mut rows = Vec::new();
    let mut errors = RowErrors::default();
    let mut rec = csv::ByteRecord::new();
    loop {
        let line = rdr.position().line() as usize;
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e.position().map(|p| p.line() as usize).unwrap_or(line);
                errors.push(csv_error(at, &e, sep));
                // A ragged row does not stop the reader; other errors (I/O) do.
                if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    continue;
                }
                break;
            }
        }
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(line);
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        if rows.len() + errors.total >= limits.max_batch_rows {
            errors.push(too_many(limits));
            break;
        }
        if rec.as_slice().len() as u64 > limits.max_batch_row_bytes {
            errors.push(row_too_large(line, limits));
            continue;
        }
        let mut obj = Map::new();
        let mut bad = None;
        for (name, value) in names.iter().zip(rec.iter()) {
            match std::str::from_utf8(value) {
                Ok(v) => {
                    let v = if matches!(name.as_str(), "to" | "cc" | "bcc") {
                        let list: Vec<Value> = v
                            .split(';')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(|s| Value::String(s.to_string()))
                            .collect();
                        Value::Array(list)
                    } else {
                        Value::String(v.to_string())
                    };
                    obj.insert(name.clone(), v);
                }
                Err(_) => {
                    bad = Some(RowError::field(
                        line,
                        name,
                        "is not valid UTF-8; save the file as UTF-8 (in Excel: Save As \"CSV UTF-8\"; in LibreOffice: character set Unicode (UTF-8))",
                    ));
                    break;
                }
            }
        }
        if let Some(e) = bad {
            errors.push(e);
            continue;
        }
        match row_of(line, obj) {
            Ok(r) => rows.push(r),
            Err(e) => errors.push(e),
        }
    }
    errors.into_result(rows)
}

fn csv_error(line: usize, e: &csv::Error, sep: u8) -> RowError {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => RowError::line(
            line,
            format!(
                "the row has {len} field(s) but the header row has {expected_len} (fields separated by {}); quote values that hold one",
                delimiter_name(sep)
            ),
        ),
        csv::ErrorKind::Utf8 { .. } => {
            RowError::line(line, "not valid UTF-8; save the file as UTF-8 (in Excel: Save As \"CSV UTF-8\"; in LibreOffice: character set Unicode (UTF-8))")
        }
        _ => RowError::line(line, format!("not valid CSV: {e}")),
    }
}

/// The recipients of a row, and its fields checked: no NUL anywhere, no line break in a recipient.
pub(crate) fn row_of(line: usize, fields: Map<String, Value>) -> Result<Row, RowError> {
    for (k, v) in &fields {
        if k.contains('\0') || has_nul(v) {
            return Err(RowError::field(line, k, "contains a NUL character"));
        }
    }
    let list = |key: &str| -> Result<Vec<String>, RowError> {
        let out: Vec<String> = match fields.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(RowError::field(line, key, "must hold addresses (strings)")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(RowError::field(
                    line,
                    key,
                    "must be an address or a list of addresses",
                ))
            }
        };
        if out.iter().any(|a| a.contains(['\r', '\n'])) {
            return Err(RowError::field(
                line,
                key,
                "contains a line break (CR or LF), which would inject header lines",
            ));
        }
        Ok(out)
    };
    let (to, cc, bcc) = (list("to")?, list("cc")?, list("bcc")?);
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        return Err(RowError::field(
            line,
            "to",
            "is missing or empty: every row needs a recipient",
        ));
    }
    Ok(Row {
        line,
        to,
        cc,
        bcc,
        fields,
    })
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The `.eml` files of a folder (sorted by name), each bounded by
/// `max_message_bytes`, all together by `max_batch_bytes`.
pub fn read_eml_dir(dir: &Path, limits: &Limits) -> Result<Vec<EmlFile>, RowErrors> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        RowErrors::one(RowError::whole(format!(
            "cannot read the folder {}: {e}",
            dir.display()
        )))
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case("eml"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(RowErrors::one(RowError::whole(format!(
            "the folder {} holds no .eml files",
            dir.display()
        ))));
    }
    if paths.len() > limits.max_batch_rows {
        return Err(RowErrors::one(too_many(limits)));
    }
    let mut out = Vec::with_capacity(paths.len());
    let mut errors = RowErrors::default();
    let mut total: u64 = 0;
    for (i, p) in paths.iter().enumerate() {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match crate::limits::read_bounded(p, limits.max_message_bytes, "limits.max_message_bytes") {
            Ok(bytes) => {
                total += bytes.len() as u64;
                if total > limits.max_batch_bytes {
                    errors.push(RowError::whole(format!(
                        "the .eml files together are larger than {} bytes ([limits] max_batch_bytes); split the folder or raise the limit",
                        limits.max_batch_bytes
                    )));
                    break;
                }
                out.push(EmlFile { name, bytes });
            }
            Err(e) => errors.push(RowError::file(i + 1, &name, e.to_string())),
        }
    }
    errors.into_result(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spreadsheet_csv_with_semicolons_a_bom_and_crlf_is_read() {
        let csv = "\u{feff}to;name;amount\r\nanna@example.com;Anna;12,50\r\n\"bob@example.com;cc@example.com\";\"Bob; Jr.\";7,00\r\n";
        let rows = parse_csv(csv.as_bytes(), &limits()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].fields["amount"], "12,50");
        assert_eq!(rows[1].fields["name"], "Bob; Jr.");
        assert_eq!(rows[1].to.len(), 2);
        assert_eq!(delimiter(b"to\tname\n"), b'\t');
        assert_eq!(delimiter(b"to\n"), b',');
        assert_eq!(delimiter(b"\"a;b\",to,x\n"), b',');
        let e = parse_csv(b"to;name\na@example.com;A;extra\n", &limits()).unwrap_err();
        assert!(e.to_string().contains("separated by a semicolon"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_row_or_a_body() {
        let jsonl = "\u{feff}{\"to\": \"a@example.com\", \"name\": \"A\"}\r\n";
        let rows = parse(Format::Jsonl, jsonl.as_bytes(), &limits()).unwrap();
        assert_eq!(rows[0].fields["name"], "A");
        let body = crate::limits::utf8_text("\u{feff}Hello".as_bytes().to_vec()).unwrap();
        assert_eq!(body, "Hello");
        assert!(crate::limits::utf8_text(vec![0xef, 0xbb]).is_err());
    }

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn jsonl_rows_take_to_cc_bcc_and_fields() {
        let src = b"{\"to\": \"a@example.com\", \"name\": \"Ann\"}\n\n{\"to\": [\"b@example.com\", \"c@example.com\"], \"cc\": \"d@example.com\", \"n\": 3}\r\n";
        let rows = parse(Format::Jsonl, src, &limits()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 1);
        assert_eq!(rows[0].to, vec!["a@example.com"]);
        assert_eq!(rows[0].fields["name"], "Ann");
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].to.len(), 2);
        assert_eq!(rows[1].cc, vec!["d@example.com"]);
    }

    #[test]
    fn jsonl_lists_every_bad_line() {
        let src = b"{\"to\": \"a@example.com\"}\nnot json\n[1]\n{\"name\": \"no to\"}\n{\"to\": \"x@example.com\\r\\nBcc: evil@example.com\"}\n{\"to\": \"a@example.com\", \"v\": \"nul\\u0000\"}\n\xff\xfe\n";
        let e = parse(Format::Jsonl, src, &limits()).unwrap_err();
        let lines: Vec<usize> = e.list.iter().map(|r| r.row).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7], "{e}");
        let text = e.to_string();
        assert!(text.contains("line 2: not valid JSON"), "{text}");
        assert!(text.contains("line 4: field `to`"), "{text}");
        assert!(
            text.contains("line 5: field `to` contains a line break"),
            "{text}"
        );
        assert!(text.contains("line 6: field `v` contains a NUL"), "{text}");
        assert!(text.contains("line 7: not valid UTF-8"), "{text}");
    }

    #[test]
    fn limits_bound_rows_row_size_and_file_size() {
        let mut l = limits();
        l.max_batch_rows = 2;
        let src = b"{\"to\": \"a@example.com\"}\n{\"to\": \"b@example.com\"}\n{\"to\": \"c@example.com\"}\n";
        let e = parse(Format::Jsonl, src, &l).unwrap_err();
        assert!(e.to_string().contains("max_batch_rows"), "{e}");
        let mut l = limits();
        l.max_batch_row_bytes = 30;
        let src = b"{\"to\": \"a@example.com\"}\n{\"to\": \"b@example.com\", \"pad\": \"xxxxxxxxxxxxxxxx\"}\n";
        let e = parse(Format::Jsonl, src, &l).unwrap_err();
        assert_eq!(e.list[0].row, 2);
        assert!(e.to_string().contains("max_batch_row_bytes"), "{e}");
        let mut l = limits();
        l.max_batch_bytes = 10;
        let e = parse(Format::Csv, b"to\na@example.com\n", &l).unwrap_err();
        assert!(e.to_string().contains("max_batch_bytes"), "{e}");
    }

    #[test]
    fn csv_needs_a_to_column_and_equal_rows() {
        let rows = parse(
            Format::Csv,
            b"to,name,cc\na@example.com,\"Ann, Jr.\",\nb@example.com;c@example.com,Bob,d@example.com\n",
            &limits(),
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].fields["name"], "Ann, Jr.");
        assert!(rows[0].cc.is_empty());
        assert_eq!(rows[1].to, vec!["b@example.com", "c@example.com"]);
        assert_eq!(rows[1].line, 3);
        let e = parse(Format::Csv, b"email,name\na@example.com,Ann\n", &limits()).unwrap_err();
        assert!(
            e.to_string()
                .contains("line 1: the header row has no `to` column"),
            "{e}"
        );
        let e = parse(
            Format::Csv,
            b"to,name\na@example.com,Ann\nb@example.com\nc@example.com,Cy,extra\n",
            &limits(),
        )
        .unwrap_err();
        let lines: Vec<usize> = e.list.iter().map(|r| r.row).collect();
        assert_eq!(lines, vec![3, 4], "{e}");
        assert!(
            e.to_string()
                .contains("line 3: the row has 1 field(s) but the header row has 2"),
            "{e}"
        );
    }

    #[test]
    fn csv_bad_utf8_and_nul_name_the_line_and_field() {
        let e = parse(
            Format::Csv,
            b"to,name\na@example.com,Ann\nb@example.com,B\xffb\nc@example.com,C\x00\n",
            &limits(),
        )
        .unwrap_err();
        let t = e.to_string();
        assert!(t.contains("line 3: field `name` is not valid UTF-8"), "{t}");
        assert!(t.contains("line 4: field `name` contains a NUL"), "{t}");
    }

    #[test]
    fn an_eml_folder_is_read_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.eml"), b"From: a@example.com\r\n\r\nb").unwrap();
        std::fs::write(dir.path().join("a.eml"), b"From: a@example.com\r\n\r\na").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let files = read_eml_dir(dir.path(), &limits()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["a.eml", "b.eml"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(read_eml_dir(empty.path(), &limits())
            .unwrap_err()
            .to_string()
            .contains("no .eml files"));
    }
}
