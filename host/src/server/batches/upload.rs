//! `POST /v1/batches` as a file upload: `multipart/form-data` with a
//! `batch` part (the template and options) and a `rows` part (a CSV or JSON
//! Lines file, in the charset its Content-Type names).

use axum::http::StatusCode;
use utoipa::ToSchema;

use super::{parse_bounded, row_problem, BatchBody, ROWS_IN_HEAD};
use crate::batch::{input, text, Row};
use crate::server::problem::Problem;

/// Rows in part `batch`, however many (an empty list too).
const ROWS_IN_BATCH_PART: &str =
    "part `batch` holds the template and options; the rows go in part `rows`";

/// A batch as a file upload (`multipart/form-data`).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the parts [`multipart_batch`] reads
pub(super) struct BatchUpload {
    /// The template and options: the JSON object of `application/json` without `rows`.
    #[schema(value_type = BatchBody)]
    batch: String,
    /// The rows: CSV (`text/csv`: a header row with a `to` column; comma, semicolon or tab separated) or JSON Lines (`application/x-ndjson`), told by the part's Content-Type or file name; UTF-8 unless the Content-Type names a `charset` (`text/csv; charset=windows-1252`).
    #[schema(value_type = String, format = Binary)]
    rows: Vec<u8>,
}

/// A file upload (`multipart/form-data`, as `curl -F` and HTML forms send
/// it): part `batch` is the JSON object without `rows` (template and
/// options), part `rows` the file of rows, CSV or JSON Lines by its
/// Content-Type (`text/csv`, `application/x-ndjson`) or its file name, in
/// UTF-8 unless its Content-Type names a `charset` (a spreadsheet's
/// `text/csv; charset=windows-1252`).
pub(super) async fn multipart_batch(
    content_type: &str,
    raw: axum::body::Bytes,
    limits: &crate::limits::Limits,
) -> Result<(BatchBody, Vec<Row>), Problem> {
    let bad = |m: String| Problem::bad_request("bad-multipart", m);
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| bad(format!("the multipart body has no usable boundary: {e}")))?;
    let mut parts = multer::Multipart::with_reader(std::io::Cursor::new(raw), boundary);
    let mut head = None;
    let mut file = None;
    while let Some(field) = parts
        .next_field()
        .await
        .map_err(|e| bad(format!("the multipart body cannot be read: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let ctype = field.content_type().cloned();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| {
            bad(format!(
                "part `{}` cannot be read: {e}",
                crate::limits::shown(&name)
            ))
        })?;
        match name.as_str() {
            "batch" if head.is_none() => {
                let b = parse_bounded(&bytes, 0).map_err(|e| {
                    if e.to_string().contains(ROWS_IN_HEAD) {
                        return Problem::bad_request("bad-field", ROWS_IN_BATCH_PART);
                    }
                    Problem::bad_request(
                        "bad-json",
                        format!("part `batch` (the template and options) is not valid: {e}"),
                    )
                })?;
                if b.rows.is_some() {
                    return Err(Problem::bad_request("bad-field", ROWS_IN_BATCH_PART));
                }
                head = Some(b);
            }
            "rows" if file.is_none() => file = Some((ctype, file_name, bytes)),
            other => {
                return Err(Problem::bad_request(
                    "bad-field",
                    format!(
                        "part `{}` is unknown or repeated; send one `batch` (the template and options, JSON) and one `rows` (a CSV or JSON Lines file)",
                        crate::limits::shown(other)
                    ),
                ))
            }
        }
    }
    // The body's copy is not needed past here (a batch may be 256 MiB).
    drop(parts);
    let head = head.ok_or_else(|| {
        Problem::bad_request(
            "bad-field",
            "part `batch` is missing: the template and options as JSON, e.g. {\"template\": {\"subject\": ..., \"text\": ...}}",
        )
    })?;
    let (ctype, file_name, bytes) = file.ok_or_else(|| {
        Problem::bad_request(
            "bad-field",
            "part `rows` is missing: the CSV or JSON Lines file of rows",
        )
    })?;
    let format = match ctype.as_ref().map(|m| m.essence_str().to_ascii_lowercase()).as_deref() {
        Some("text/csv" | "application/csv") => crate::batch::Format::Csv,
        Some("application/x-ndjson" | "application/jsonl" | "application/json-lines") => {
            crate::batch::Format::Jsonl
        }
        _ => file_name
            .as_deref()
            .and_then(|n| crate::batch::Format::of(std::path::Path::new(n)))
            .ok_or_else(|| {
                Problem::bad_request(
                    "bad-field",
                    "cannot tell the format of part `rows`: give it Content-Type text/csv or application/x-ndjson, or a file name ending .csv or .jsonl",
                )
            })?,
    };
    let encoding = ctype
        .as_ref()
        .and_then(|m| m.get_param("charset"))
        .map(|c| text::encoding(c.as_str()))
        .transpose()
        .map_err(|e| bad(format!("the charset of part `rows`: {e}")))?;
    let bytes = text::to_utf8(
        Vec::from(bytes),
        encoding,
        "part `rows`",
        limits.max_batch_bytes,
        "limits.max_batch_bytes",
    )
    .map_err(|e| match e {
        text::Undecodable::Invalid(e) => bad(format!(
            "{e}; name the charset it was saved in, or send it as UTF-8"
        )),
        text::Undecodable::TooLarge(e) => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The request body is too large",
            e,
        ),
    })?;
    if let Some(line) = text::first_bad_utf8_line(&bytes) {
        return Err(bad(format!(
            "part `rows`: line {line} is not UTF-8; send it as UTF-8 or name its charset (Content-Type: text/csv; charset=windows-1252)"
        )));
    }
    let rows = input::parse(format, &bytes, limits).map_err(|e| row_problem(&e))?;
    Ok((head, rows))
}
