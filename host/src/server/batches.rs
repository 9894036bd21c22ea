//! The batch endpoints:
//!
//! - `POST /v1/batches`: `application/json` (`template` + `rows`, and the
//!   routing keys), or `application/x-ndjson` (the first line the same object
//!   without `rows`, then one row per line) → 202 `{id, total, duplicate}`
//!   once the batch and every message are committed; one bad row → 400
//!   `invalid-batch` listing the rows, nothing queued;
//! - `GET /v1/batches/{id}`: messages per state, created, rate, done;
//! - `GET /v1/batches?limit=&before=&tenant=`: newest first, paged;
//! - `POST /v1/batches/{id}/cancel`: cancels the messages not yet sent.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::openapi::{
    BadRequest, Forbidden, InternalError, NotFound, PayloadTooLarge, ServiceUnavailable,
    Unauthorized, UnprocessableEntity, UnsupportedMediaType,
};
use super::problem::Problem;
use super::{caller, Shared};
use crate::batch::{
    input, prepare_all, BatchContent, BatchRequest, Row, RowError, RowErrors, Template,
};
use crate::outbox::batches::{BatchRecord, BatchStatus, BatchStore};
use crate::outbox::now_ms;

mod upload;
use upload::{multipart_batch, BatchUpload};

/// The JSON body (and the first line of an NDJSON body, without `rows`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = BatchRequest,
    example = json!({
        "name": "November invoices",
        "tenant": "acme",
        "purpose": "invoice",
        "rate": 600,
        "idempotency_key": "invoices-2026-11",
        "template": {"subject": "Invoice {{ number }}", "text": "Dear {{ name }},\nplease find invoice {{ number }} attached."},
        "rows": [
            {"to": "Ann <ann@example.org>", "name": "Ann", "number": "4711"},
            {"to": ["bob@example.org", "billing@example.org"], "name": "Bob", "number": "4712"}
        ]
    })
)]
struct BatchBody {
    /// What every message is made of (minijinja; fields as `{{ name }}`, strict: a field a row lacks is an error).
    #[schema(value_type = Template)]
    template: Option<Template>,
    /// One object per message: its recipients and the template's fields (not on line 1 of JSON Lines).
    #[serde(default)]
    #[schema(value_type = Vec<super::openapi::schemas::BatchRow>)]
    rows: Option<BoundedRows>,
    /// A label for people.
    name: Option<String>,
    /// Messages per minute (default `[outbox] batch_per_minute`; 0 = not paced; at most 60,000).
    // outbox::MAX_BATCH_PER_MINUTE (a test keeps them equal)
    #[schema(maximum = 60000)]
    rate: Option<u32>,
    /// The same key again (per tenant) answers with the first batch's id and queues nothing.
    idempotency_key: Option<String>,
    /// The user the messages are for.
    user: Option<String>,
    /// The tenant the messages are for.
    tenant: Option<String>,
    /// The purpose (policy rules).
    purpose: Option<String>,
    /// A mode or account picked for every message.
    mode: Option<String>,
}

/// Why rows were refused where only the template and options belong.
const ROWS_IN_HEAD: &str = "rows do not belong on line 1 of a JSON Lines batch (the template and options); the rows follow, one per line";

/// The JSON `rows`, read with a bound on their number: parsing stops at the
/// first row past `[limits] max_batch_rows` instead of building a huge
/// array in memory first (a JSON value takes many times its text).
#[derive(Debug)]
struct BoundedRows(Vec<serde_json::Value>);

thread_local! {
    /// The row bound for the `serde_json::from_slice` call on this thread
    /// (set around that one synchronous call by [`parse_bounded`]).
    static MAX_ROWS: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

impl<'de> Deserialize<'de> for BoundedRows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V(usize);
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BoundedRows;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of row objects")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BoundedRows, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<serde_json::Value>()? {
                    if self.0 == 0 {
                        return Err(serde::de::Error::custom(ROWS_IN_HEAD));
                    }
                    if out.len() == self.0 {
                        return Err(serde::de::Error::custom(format!(
                            "the batch has more than {} rows ([limits] max_batch_rows); split it",
                            self.0
                        )));
                    }
                    out.push(v);
                }
                Ok(BoundedRows(out))
            }
        }
        d.deserialize_seq(V(MAX_ROWS.with(|m| m.get())))
    }
}

/// Parses a batch body with `rows` bounded to `max_rows`.
fn parse_bounded(raw: &[u8], max_rows: usize) -> Result<BatchBody, serde_json::Error> {
    MAX_ROWS.with(|m| m.set(max_rows));
    let r = serde_json::from_slice(raw);
    MAX_ROWS.with(|m| m.set(usize::MAX));
    r
}

/// A batch committed to the outbox with every message.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchAccepted, example = json!({"id": "0190f5a3-1b2c-7d4e-8f90-a1b2c3d4e5f6", "total": 2, "duplicate": false}))]
struct Accepted {
    /// The batch's id (for `GET /v1/batches/{id}`).
    id: String,
    /// Messages queued.
    total: u64,
    /// True when the idempotency key was seen before: this is the first batch's id.
    duplicate: bool,
}

fn need_send(app: &Shared, who: &Caller) -> Result<(), Problem> {
    who.need_send()?;
    if !app.accepting.load(Ordering::Relaxed) {
        return Err(Problem::unavailable(
            "shutting-down",
            "the service is shutting down; send again to another instance or later",
        ));
    }
    Ok(())
}

fn too_large(limit: u64) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "The request body is too large",
        format!("the batch is larger than {limit} bytes ([limits] max_batch_bytes); split it or raise the limit"),
    )
}

fn row_problem(rows: &RowErrors) -> Problem {
    Problem::bad_request("invalid-batch", rows.to_string())
        .with("rows", serde_json::to_value(&rows.list).unwrap_or_default())
        .with("bad_rows", serde_json::json!(rows.total))
}

/// Errors about the JSON body's `rows` name them `row N` (they have no lines).
fn as_rows(rows: &mut RowErrors) {
    for e in rows.list.iter_mut().filter(|e| e.row > 0) {
        e.at = format!("row {}", e.row);
    }
}

/// JSON rows: each an object, numbered from 1 in the errors.
fn json_rows(
    rows: Vec<serde_json::Value>,
    max_rows: usize,
    max_row_bytes: u64,
) -> Result<Vec<Row>, RowErrors> {
    if rows.len() > max_rows {
        return Err(RowErrors::one(RowError::whole(format!(
            "the batch has {} rows, more than {max_rows} ([limits] max_batch_rows); split it",
            rows.len()
        ))));
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut errors = RowErrors::default();
    for (i, v) in rows.into_iter().enumerate() {
        let at = |mut e: RowError| {
            e.at = format!("row {}", i + 1);
            e
        };
        let size = serde_json::to_vec(&v).map(|b| b.len() as u64).unwrap_or(0);
        if size > max_row_bytes {
            errors.push(at(RowError::line(
                i + 1,
                format!(
                    "the row is larger than {max_row_bytes} bytes ([limits] max_batch_row_bytes)"
                ),
            )));
            continue;
        }
        match v {
            serde_json::Value::Object(o) => match input::row_of(i + 1, o) {
                Ok(r) => out.push(r),
                Err(e) => errors.push(at(e)),
            },
            _ => errors.push(at(RowError::line(i + 1, "not a JSON object"))),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `POST /v1/batches`
#[utoipa::path(
    post,
    path = "/v1/batches",
    tag = "batches",
    operation_id = "create_batch",
    summary = "Queue a batch: a template and recipient rows (scope send)",
    description = "Every row is built and checked before anything is queued: one bad row answers 400 `invalid-batch` listing the rows (their line, or `row N` for JSON `rows`) and queues nothing. The batch and every message are committed before the answer. Batch messages are paced by the batch's `rate`; single messages go ahead of them.",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The batch's idempotency key as a header: the same as `idempotency_key`; when both are given they must be equal", example = "invoices-2026-11"),
    ),
    request_body(
        description = "The template, the options and the rows: one JSON object; JSON Lines (line 1 the same object without `rows`, then one row per line); or a file upload (multipart/form-data: part `batch` the object without `rows`, part `rows` a CSV or JSON Lines file, e.g. `curl -F 'batch={...};type=application/json' -F 'rows=@invoices.csv;type=text/csv'`).",
        content(
            (BatchBody = "application/json"),
            (BatchUpload = "multipart/form-data"),
            (String = "application/x-ndjson", example = json!("{\"template\": {\"subject\": \"Invoice {{ number }}\", \"text\": \"Dear {{ name }}\"}, \"tenant\": \"acme\"}\n{\"to\": \"ann@example.org\", \"name\": \"Ann\", \"number\": \"4711\"}\n")),
        )
    ),
    responses(
        (status = 202, description = "Queued durably (every message committed)", body = Accepted,
            headers(("Location" = String, description = "The batch's progress: `/v1/batches/{id}`"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 500, response = InternalError),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn create(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let who = caller(&app, &headers)?;
    need_send(&app, &who)?;
    let limits = app.engine.get().settings().limits.clone();
    let limit = limits.max_batch_bytes;
    let raw = super::body::read_within(&headers, body, limit, |_| too_large(limit)).await?;
    let full_ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let ctype = super::body::media_type(&headers);
    let bad_json = |e: serde_json::Error| {
        Problem::bad_request("bad-json", format!("the body is not a batch: {e}"))
    };
    // JSON `rows` are numbered as rows, JSON Lines by their line.
    let (head, rows, numbered) = match ctype.as_str() {
        "application/json" => {
            let mut b = parse_bounded(&raw, limits.max_batch_rows).map_err(bad_json)?;
            let rows = b.rows.take().map(|r| r.0).ok_or_else(|| {
                Problem::bad_request("bad-field", "`rows` is missing: give one object per recipient, each with `to` and the template's fields")
            })?;
            let rows = json_rows(rows, limits.max_batch_rows, limits.max_batch_row_bytes).map_err(|e| row_problem(&e))?;
            (b, rows, true)
        }
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" => {
            let end = raw.iter().position(|b| *b == b'\n').unwrap_or(raw.len());
            let b = parse_bounded(&raw[..end], 0).map_err(|e| {
                Problem::bad_request(
                    "bad-json",
                    format!("line 1 (the batch: template and options) is not valid: {e}"),
                )
            })?;
            if b.rows.is_some() {
                return Err(Problem::bad_request(
                    "bad-field",
                    "line 1 of a JSON Lines batch holds the template and options; the rows follow, one per line",
                ));
            }
            // Keep the line numbers: line 1 becomes an empty line.
            let mut rest = Vec::with_capacity(raw.len() - end + 1);
            rest.push(b'\n');
            rest.extend_from_slice(raw.get(end + 1..).unwrap_or_default());
            let rows = input::parse(crate::batch::Format::Jsonl, &rest, &limits)
                .map_err(|e| row_problem(&e))?;
            (b, rows, false)
        }
        "multipart/form-data" => {
            let (b, rows) = multipart_batch(&full_ctype, raw, &limits).await?;
            (b, rows, false)
        }
        other => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "media-type",
                "Unsupported media type",
                format!("Content-Type `{}` is not accepted for a batch; use application/json (template + rows), application/x-ndjson, or multipart/form-data (parts `batch` and `rows`: a CSV or JSON Lines file)", crate::limits::shown(other)),
            ))
        }
    };
    let template = head.template.ok_or_else(|| {
        Problem::bad_request(
            "bad-field",
            "`template` is missing: give {\"subject\": ..., \"text\": ... and/or \"html\": ...}",
        )
    })?;
    let req = BatchRequest {
        label: head.name,
        user: who.user(head.user)?,
        tenant: who.tenant(head.tenant)?,
        purpose: head.purpose,
        mode: head.mode,
        idempotency_key: super::idempotency::merge(
            head.idempotency_key,
            super::idempotency::from_header(&headers)?,
            "the batch's `idempotency_key`",
        )?,
        per_minute: head.rate,
        content: BatchContent::Rows { template, rows },
    };
    let engine = app.engine.get();
    // The policy probes plugins: blocking.
    let prepared = tokio::task::spawn_blocking(move || prepare_all(&engine, &req))
        .await
        .map_err(|e| Problem::internal(format!("preparing the batch failed: {e}")))?;
    let prepared = match prepared.map_err(|(mut rows, refused)| {
        if numbered {
            as_rows(&mut rows);
        }
        (rows, refused)
    }) {
        Ok(p) => p,
        Err((rows, refused)) if refused > 0 && refused == rows.total => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused-by-policy",
                "Refused by policy",
                rows.to_string(),
            )
            .with("rows", serde_json::to_value(&rows.list).unwrap_or_default()))
        }
        Err((rows, _)) => return Err(row_problem(&rows)),
    };
    let total = prepared.messages.len() as u64;
    let e = app
        .outbox
        .create_batch(&prepared.batch, prepared.messages)
        .await
        .map_err(|e| {
            Problem::unavailable(
                "outbox-unavailable",
                format!("the batch was not queued: {e}"),
            )
        })?;
    let total = if e.duplicate {
        match app.outbox.store().batch_status(&e.id).await {
            Ok(Some(s)) => s.batch.total,
            _ => total,
        }
    } else {
        total
    };
    let location = format!("/v1/batches/{}", e.id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        Json(Accepted {
            id: e.id,
            total,
            duplicate: e.duplicate,
        }),
    )
        .into_response())
}

async fn load_for(app: &Shared, who: &Caller, id: &str) -> Result<BatchStatus, Problem> {
    super::bad_id("batch", id)?;
    let got = app
        .outbox
        .store()
        .batch_status(id)
        .await
        .map_err(|e| Problem::unavailable("outbox-unavailable", e.to_string()))?;
    match got {
        Some(s) if who.may_touch(s.batch.tenant.as_deref(), s.batch.user.as_deref()) => Ok(s),
        // Someone else's batch is "not found" for this token (no probing of ids).
        _ => Err(Problem::not_found(format!("no batch `{id}`"))),
    }
}

/// `GET /v1/batches/{id}`
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    tag = "batches",
    operation_id = "show_batch",
    summary = "A batch: messages per state, rate, done",
    params(("id" = String, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch", body = BatchStatus),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn show(
    AxState(app): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<BatchStatus>, Problem> {
    let who = caller(&app, &headers)?;
    Ok(Json(load_for(&app, &who, &id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Batches per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` cursor of the previous page.
    before: Option<String>,
    /// Only this tenant's batches (a bound token: one of its tenants).
    tenant: Option<String>,
}

/// A page of batches, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = BatchPage)]
pub(super) struct Page {
    batches: Vec<BatchRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// `GET /v1/batches`
#[utoipa::path(
    get,
    path = "/v1/batches",
    tag = "batches",
    operation_id = "list_batches",
    summary = "Batches, newest first, a page at a time",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of batches", body = Page),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn list(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, Problem> {
    let who = caller(&app, &headers)?;
    let Query(q) = query.map_err(|e| Problem::bad_request("bad-query", e.body_text()))?;
    let before = match q.before.as_deref() {
        None => None,
        Some(c) => Some(
            c.split_once('_')
                .and_then(|(a, i)| Some((a.parse::<i64>().ok()?, i.to_string())))
                .ok_or_else(|| {
                    Problem::bad_request("bad-query", "`before` is not a cursor from `next`")
                })?,
        ),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let tenant = if who.admin {
        q.tenant
    } else {
        who.tenant(q.tenant)?
    };
    let mut batches = app
        .outbox
        .store()
        .list_batches(tenant.as_deref(), before, limit)
        .await
        .map_err(|e| Problem::unavailable("outbox-unavailable", e.to_string()))?;
    let next = (batches.len() == limit as usize)
        .then(|| batches.last().map(|b| format!("{}_{}", b.created_at, b.id)))
        .flatten();
    batches.retain(|b| who.may_touch(b.tenant.as_deref(), b.user.as_deref()));
    Ok(Json(Page { batches, next }))
}

/// `POST /v1/batches/{id}/cancel`
#[utoipa::path(
    post,
    path = "/v1/batches/{id}/cancel",
    tag = "batches",
    operation_id = "cancel_batch",
    summary = "Cancel every message of the batch not yet sent (scope send)",
    params(("id" = String, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch after the cancel", body = BatchStatus),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn cancel(
    AxState(app): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<BatchStatus>, Problem> {
    let who = caller(&app, &headers)?;
    who.need_send()?;
    load_for(&app, &who, &id).await?;
    app.outbox
        .store()
        .cancel_batch(&id, now_ms())
        .await
        .map_err(|e| Problem::unavailable("outbox-unavailable", e.to_string()))?;
    Ok(Json(load_for(&app, &who, &id).await?))
}
