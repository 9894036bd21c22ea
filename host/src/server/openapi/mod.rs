//! The API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and their request and response types.
//!
//! It is built on the first `GET /v1/openapi.json` and kept (a service that
//! nobody asks for it never pays for it). The errors are the problem documents
//! of [`super::problem`]: one reusable response per HTTP status, listing the
//! stable codes the API answers with ([`CODES`]) with an example of each.
//!
//! Some types the API answers with live beside the outbox and the message
//! builder; their schemas are described here by [`schemas`], and a test keeps
//! them field for field equal to the types.

use std::borrow::Cow;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::problem::Problem;

/// The document of every route of [`super::router`] (but the `/admin` pages).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mailhost serve",
        version = "1",
        description = "The HTTP JSON API of `mailhost serve`: a durable outbox in front of the configured ways out.\n\n\
            Every `/v1` call but this document needs `Authorization: Bearer TOKEN`, a token from `[api.tokens]` \
            (`mailhost api-token NAME`) with the scope the operation names (`send` or `admin`; `admin` may do \
            everything `send` may). A token may be bound to tenants and users: it acts only for them, and \
            another's message or batch is not found for it.\n\n\
            Errors are `application/problem+json` (RFC 9457) with a stable `type` \
            (`urn:mailhost:problem:CODE`) and the same `code`: clients branch on it, people read `detail`. \
            The responses in `components/responses` list every code with an example."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::status::metrics,
        super::create,
        super::messages::list,
        super::messages::show,
        super::messages::raw,
        super::messages::retry_matching,
        super::messages::cancel_matching,
        super::messages::retry,
        super::messages::cancel,
        super::ops::compose,
        super::batches::create,
        super::batches::list,
        super::batches::show,
        super::batches::cancel,
        super::status::status,
        super::ops::check,
        super::ops::explain,
        serve_document,
    ),
    components(
        schemas(schemas::Problem),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            UnprocessableEntity,
            InternalError,
            BadGateway,
            ServiceUnavailable
        )
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "messages", description = "Single messages: queue (durably, before the answer), list, show, retry, cancel; compose now"),
        (name = "batches", description = "A template and recipient rows, every row checked before anything is queued, paced by the batch's own rate"),
        (name = "operations", description = "The service's state, account checks, the policy's decision"),
        (name = "probes", description = "Liveness, readiness, metrics and this document: no token")
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme; operations name the scope they need.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from [api.tokens] in the config (`mailhost api-token NAME` makes one and prints \
                         the lines). Scopes (named in each operation's security requirement): `send` (queue, \
                         compose, read and change its own messages and batches) and `admin` (everything). A \
                         token may be bound to tenants and users.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as served: built on the first request, then kept.
static DOCUMENT: OnceLock<Result<Bytes, String>> = OnceLock::new();

/// The JSON of the document.
pub fn document_json() -> Result<Bytes, String> {
    DOCUMENT
        .get_or_init(|| {
            serde_json::to_vec(&ApiDoc::openapi())
                .map(Bytes::from)
                .map_err(|e| format!("the OpenAPI document could not be written as JSON: {e}"))
        })
        .clone()
}

/// `GET /v1/openapi.json`
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "probes",
    operation_id = "openapi",
    summary = "This document (no token)",
    description = "The OpenAPI 3.1 document of every operation, generated from the service's handlers.",
    responses(
        (status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object),
        (status = 500, response = InternalError),
    )
)]
pub(super) async fn serve_document() -> Response {
    match document_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => Problem::internal(e).into_response(),
    }
}

/// One stable problem code: its status, the title it comes with, when it
/// happens (the response's description) and an example `detail`.
#[derive(Debug, Clone, Copy)]
pub struct Code {
    pub status: u16,
    pub code: &'static str,
    pub title: &'static str,
    pub when: &'static str,
    pub example: &'static str,
}

const fn code(
    status: u16,
    code: &'static str,
    title: &'static str,
    when: &'static str,
    example: &'static str,
) -> Code {
    Code {
        status,
        code,
        title,
        when,
        example,
    }
}

const INVALID: &str = "The request is invalid";

/// Every problem code the API answers with (a test keeps it equal to the handlers').
pub const CODES: &[Code] = &[
    code(400, "bad-json", INVALID, "the body is not valid JSON, or not the object the operation takes", "the body is not valid JSON: expected value at line 1 column 1"),
    code(400, "bad-field", INVALID, "a field is unknown, has the wrong type, or a required one is missing", "unknown field `subjet`, expected one of `from`, `reply_to`, `to`, ..."),
    code(400, "bad-query", INVALID, "a query parameter is unknown or invalid", "state `done` is unknown; use queued, sending, sent, deferred, failed or cancelled"),
    code(400, "invalid-message", INVALID, "the message cannot be built: a bad address, a line break in a header (injection), no recipient, no From", "to: `bob@` is not a valid address (invalid domain); write it as `name@example.com` or `Name <name@example.com>`"),
    code(400, "missing-field", INVALID, "the token acts for several tenants or users and the request names none", "API token `erp` acts for several tenants: name one with `tenant`"),
    code(400, "attachment-path", INVALID, "an attachment names a file on the server (`path`); the API takes the bytes as `data` (base64)", "attachments[].path names a file on the server, which the API does not read; send the bytes as `data` (base64)"),
    code(400, "bad-multipart", INVALID, "a batch upload (multipart/form-data) cannot be read: no boundary, a broken part, rows not in the charset they name", "part `rows`: line 2 is not UTF-8; send it as UTF-8 or name its charset (Content-Type: text/csv; charset=windows-1252)"),
    code(400, "invalid-batch", INVALID, "rows of a batch are bad: `rows` lists each (line or row, field, message), `bad_rows` counts them; nothing was queued", "line 3: to: `x` is not a valid address"),
    code(401, "unauthorized", "No valid API token", "no `Authorization: Bearer TOKEN`, or a token that is not configured (answered with `WWW-Authenticate: Bearer`)", "the API token is not known (or was revoked)"),
    code(403, "scope", "Not allowed", "the token lacks the scope the operation needs", "API token `erp` lacks the `admin` scope"),
    code(403, "token-not-bound", "Not allowed", "the request names a tenant or user the token may not act for", "API token `erp` may not act for tenant `globex`; it may act for: acme"),
    code(403, "host-only-option", "Not allowed", "the request sets an option only the config may set", "options.credentials is set by the host from the config ([users.NAME.accounts.ACCOUNT]); a request may not set it"),
    code(404, "not-found", "Not found", "no such message, batch, account or endpoint (or not one this token may see)", "no message `0190f5a2-7c1e-7d4b-9a51-3f2b8c6d9e10`"),
    code(409, "state", "Not possible in this state", "the message's state does not allow the change", "message `0190f5a2-7c1e-7d4b-9a51-3f2b8c6d9e10` is sent: only queued or deferred messages can be cancelled"),
    code(413, "body-too-large", "The request body is too large", "the body is larger than the limit that follows from [limits] (max_message_bytes, max_batch_bytes)", "the body (30000000 bytes) is larger than 27262976 bytes, the limit that follows from the config's [limits] max_message_bytes"),
    code(415, "media-type", "Unsupported media type", "the Content-Type is not one the operation takes", "Content-Type `text/plain` is not accepted; use application/json or message/rfc822"),
    code(422, "refused-by-policy", "Refused by policy", "the policy refuses the request (kill switch, a disabled tenant, a purpose rule, no way out)", "refused by policy.enabled: sending is switched off"),
    code(422, "desktop-compose", "Compose mode unavailable in the service", "the compose mode opens a window on a desktop, which the service does not have", "compose mode `outlook` opens a window on a desktop, which `mailhost serve` does not have; give this user a draft or web-link mode (e.g. Microsoft 365 drafts)"),
    code(500, "internal", "The service failed", "the service failed unexpectedly (the detail says where)", "preparing the message failed: task panicked"),
    code(502, "check-failed", "The account's check could not run", "the account's plugin could not run its check", "account `sink`: cannot open the transport: connection refused"),
    code(502, "compose-failed", "The compose failed", "the plugin or its server failed the compose", "m365: auth: the token was refused (401)"),
    code(503, "shutting-down", "The service cannot take this now", "the service is shutting down: send again to another instance or later", "the service is shutting down; send again to another instance or later"),
    code(503, "outbox-unavailable", "The service cannot take this now", "the outbox database does not answer (nothing was queued)", "the message was not queued: database is locked"),
];

/// The response of one HTTP status: every code of that status, each with an example.
fn problem_response(status: u16, summary: &str) -> utoipa::openapi::Response {
    let codes: Vec<&Code> = CODES.iter().filter(|c| c.status == status).collect();
    let list = codes
        .iter()
        .map(|c| format!("- `{}`: {}", c.code, c.when))
        .collect::<Vec<_>>()
        .join("\n");
    let examples = codes.iter().map(|c| {
        (
            c.code,
            ExampleBuilder::new()
                .summary(c.when)
                .value(Some(serde_json::json!({
                    "type": format!("urn:mailhost:problem:{}", c.code),
                    "title": c.title,
                    "status": c.status,
                    "detail": c.example,
                    "code": c.code,
                })))
                .build(),
        )
    });
    ResponseBuilder::new()
        .description(format!("{summary}. Codes:\n{list}"))
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .examples_from_iter(examples)
                .build(),
        )
        .build()
}

macro_rules! problem_responses {
    ($($name:ident = $status:literal, $summary:literal;)*) => {$(
        #[doc = $summary]
        pub struct $name;
        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<utoipa::openapi::Response>) {
                (stringify!($name), problem_response($status, $summary).into())
            }
        }
    )*};
}

problem_responses! {
    BadRequest = 400, "The request is invalid";
    Unauthorized = 401, "No valid API token";
    Forbidden = 403, "The token may not do this";
    NotFound = 404, "Not found";
    Conflict = 409, "Not possible in the message's state";
    PayloadTooLarge = 413, "The request body is too large";
    UnsupportedMediaType = 415, "Unsupported media type";
    UnprocessableEntity = 422, "Refused";
    InternalError = 500, "The service failed";
    BadGateway = 502, "The plugin or its server failed";
    ServiceUnavailable = 503, "The service cannot take this now";
}

/// Gives a type the schema of its description in [`schemas`].
macro_rules! schema_as {
    ($($real:ty => $doc:ty;)*) => {$(
        impl PartialSchema for $real {
            fn schema() -> RefOr<Schema> {
                <$doc as PartialSchema>::schema()
            }
        }
        impl ToSchema for $real {
            fn name() -> Cow<'static, str> {
                <$doc as ToSchema>::name()
            }
            fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
                <$doc as ToSchema>::schemas(out)
            }
        }
    )*};
}

schema_as! {
    crate::outbox::State => schemas::State;
    crate::outbox::MessageRecord => schemas::MessageRecord;
    crate::outbox::AttemptRecord => schemas::AttemptRecord;
    crate::outbox::batches::BatchRecord => schemas::BatchRecord;
    crate::outbox::batches::BatchStatus => schemas::BatchStatus;
    crate::engine::Composed => schemas::Composed;
}

/// Schemas of types that live beside the outbox, the message builder and the
/// engine, field for field (the test `described_types_match_their_schemas`
/// fails when a type and its description part).
#[allow(dead_code)] // Only their schemas are used.
pub mod schemas {
    use std::collections::BTreeMap;

    use utoipa::ToSchema;

    /// A problem document (RFC 9457).
    #[derive(ToSchema)]
    pub struct Problem {
        /// `urn:mailhost:problem:CODE`: stable per kind of problem.
        #[serde(rename = "type")]
        #[schema(example = "urn:mailhost:problem:bad-field")]
        pub kind: String,
        /// A short summary of the kind of problem.
        pub title: String,
        /// The HTTP status.
        pub status: u16,
        /// What went wrong here, and what to do about it.
        pub detail: String,
        /// The stable code (the last part of `type`).
        #[schema(example = "bad-field")]
        pub code: String,
        /// `invalid-batch` and a batch's `refused-by-policy`: the bad rows (the first 100).
        pub rows: Option<Vec<crate::batch::RowError>>,
        /// `invalid-batch`: how many rows are bad, listed or not.
        pub bad_rows: Option<u64>,
    }

    /// A message to queue (`POST /v1/messages`) or compose (`POST /v1/compose`):
    /// its fields, and beside them who it is for.
    #[derive(Default, serde::Serialize, ToSchema)]
    #[serde(default, deny_unknown_fields)]
    #[schema(
        example = json!({
            "tenant": "acme",
            "purpose": "invoice",
            "from": "ERP <erp@example.com>",
            "to": ["Customer <customer@example.org>"],
            "subject": "Invoice 4711",
            "text": "Please find invoice 4711 attached.",
            "attachments": [{"filename": "invoice-4711.pdf", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}],
            "headers": [["X-ERP-Document", "4711"]],
            "idempotency_key": "invoice-4711"
        })
    )]
    pub struct MessageSubmission {
        /// The user it is for (policy; the token must be allowed to act for them).
        pub user: Option<String>,
        /// The tenant it is for (policy; the token must be allowed to act for it).
        pub tenant: Option<String>,
        /// The purpose (policy rules: default From and recipients, allowed ways out).
        pub purpose: Option<String>,
        /// A mode or account picked for this message (must be in the policy's chain).
        pub mode: Option<String>,
        /// `send` (default; `POST /v1/compose` takes `compose` only).
        pub action: Option<crate::policy::Action>,
        /// From; default: the purpose's, tenant's, user's or account's.
        pub from: Option<String>,
        /// Addresses (one address may be given as a plain string; an element
        /// may be a `;`-separated list).
        pub reply_to: Vec<String>,
        /// As `reply_to`.
        pub to: Vec<String>,
        /// As `reply_to`.
        pub cc: Vec<String>,
        /// Envelope recipients that do not appear in the headers sent (as `reply_to`).
        pub bcc: Vec<String>,
        pub subject: String,
        /// The plain-text body.
        pub text: Option<String>,
        /// The HTML body.
        pub html: Option<String>,
        pub attachments: Vec<Attachment>,
        /// Extra headers as `[name, value]` pairs (`["X-ERP-Document", "4711"]`).
        #[schema(value_type = Vec<Vec<String>>)]
        pub headers: Vec<(String, String)>,
        /// MAIL FROM, when it must differ from the From address.
        pub envelope_from: Option<String>,
        /// The same key again (per tenant) answers with the first message's id and queues nothing; default: the Message-ID.
        pub idempotency_key: Option<String>,
        /// Per-request transport options (e.g. DSN); options the config sets (credentials) are refused.
        #[schema(value_type = Object)]
        pub options: serde_json::Map<String, serde_json::Value>,
    }

    /// One row of a batch: its recipients (an address or a list) and the
    /// template's fields (any other member).
    pub struct BatchRow;

    impl utoipa::PartialSchema for BatchRow {
        fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
            use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder};
            let recipients = |what: &str| {
                OneOfBuilder::new()
                    .item(String::schema())
                    .item(Vec::<String>::schema())
                    .description(Some(what))
            };
            ObjectBuilder::new()
                .description(Some(
                    "One message: its recipients and the template's fields (a field the template uses and the row lacks is an error).",
                ))
                .property("to", recipients("To: an address, or a list"))
                .required("to")
                .property("cc", recipients("Cc: an address, or a list"))
                .property("bcc", recipients("Bcc: an address, or a list"))
                .additional_properties(Some(AdditionalProperties::FreeForm(true)))
                .examples([serde_json::json!({"to": "Ann <ann@example.org>", "name": "Ann", "number": "4711"})])
                .into()
        }
    }

    impl ToSchema for BatchRow {}

    /// A file to attach, its bytes in the request.
    #[derive(Default, serde::Serialize, ToSchema)]
    #[serde(default, deny_unknown_fields)]
    pub struct Attachment {
        pub filename: Option<String>,
        /// Default: from the file name's extension, else `application/octet-stream`.
        pub media_type: Option<String>,
        /// The content, base64.
        #[schema(content_encoding = "base64")]
        pub data: Option<String>,
        /// For inline images referenced from the HTML as `cid:...`.
        pub content_id: Option<String>,
    }

    /// Where a message is in its life.
    #[derive(ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum State {
        Queued,
        Sending,
        Sent,
        Deferred,
        Failed,
        Cancelled,
    }

    /// Single messages go before batch rows.
    #[derive(ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Priority {
        Single,
        Batch,
    }

    /// A stored message.
    #[derive(ToSchema)]
    pub struct MessageRecord {
        pub id: String,
        pub state: State,
        /// `send` or `compose`.
        pub action: String,
        pub user: Option<String>,
        pub tenant: Option<String>,
        pub purpose: Option<String>,
        pub idempotency_key: Option<String>,
        /// The Message-ID header (the same on every try, so a duplicate is detectable).
        pub message_id: String,
        pub envelope_from: String,
        pub envelope_to: Vec<String>,
        /// The per-request transport options.
        #[schema(value_type = Object)]
        pub options: serde_json::Map<String, serde_json::Value>,
        /// Index of the way out (in the policy's chain) to try next.
        pub chain_pos: u32,
        /// When the current way out was first tried (ms since the epoch).
        pub position_since: Option<i64>,
        pub priority: Priority,
        pub attempts_count: u32,
        /// When the next try is due (ms since the epoch).
        pub next_attempt_at: i64,
        /// The worker that holds the message while sending it.
        pub lease_owner: Option<String>,
        pub lease_until: Option<i64>,
        /// The last try's error.
        pub last_error: Option<String>,
        /// ms since the epoch.
        pub created_at: i64,
        /// ms since the epoch.
        pub updated_at: i64,
        /// The batch the message belongs to (absent for single messages).
        #[schema(required = false)]
        pub batch_id: Option<String>,
    }

    /// One try through one way out.
    #[derive(ToSchema)]
    pub struct AttemptRecord {
        /// ms since the epoch.
        pub at: i64,
        pub chain_pos: u32,
        /// The way out: account name or candidate label.
        pub candidate: String,
        pub plugin: Option<String>,
        /// `ok`, the error class (`transient`, `permanent`, `auth`, `config`, `unavailable`, `unsupported`), or `refused` (policy).
        pub class: String,
        /// The server's code when there is one (e.g. `450`, `429`).
        pub code: Option<String>,
        /// The server's reply or the error text.
        pub text: String,
    }

    /// A stored batch.
    #[derive(ToSchema)]
    pub struct BatchRecord {
        pub id: String,
        pub label: Option<String>,
        pub tenant: Option<String>,
        pub user: Option<String>,
        pub idempotency_key: Option<String>,
        /// Messages in the batch.
        pub total: u64,
        /// Messages per minute; 0 = not paced.
        pub per_minute: u32,
        /// ms since the epoch.
        pub created_at: i64,
    }

    /// A batch and where its messages are.
    #[derive(ToSchema)]
    pub struct BatchStatus {
        #[serde(flatten)]
        pub batch: BatchRecord,
        /// Messages per state (every state, zeros included).
        pub counts: BTreeMap<String, u64>,
        /// Failed messages by the class of their last attempt (`permanent`, `auth`, `refused`, ...).
        pub failures: BTreeMap<String, u64>,
        /// Nothing is queued, sending or deferred any more.
        pub done: bool,
        /// When the earliest queued or deferred message is due (ms since the epoch); absent when none is.
        #[schema(required = false)]
        pub next_due: Option<i64>,
    }

    /// A compose that happened.
    #[derive(ToSchema)]
    pub struct Composed {
        /// The way out that composed it.
        pub candidate: crate::policy::Candidate,
        /// What it made: `draft`, `web_link`, `shown`, ...
        pub kind: String,
        /// The draft's id, when the way out made one.
        pub draft_id: String,
        /// A link that opens the draft (e.g. Outlook on the web).
        pub web_link: String,
        /// What the plugin said.
        pub message: String,
        pub attempts: Vec<Attempt>,
    }

    /// One try of one way out in a compose.
    #[derive(ToSchema)]
    pub struct Attempt {
        pub candidate: String,
        pub plugin: Option<String>,
        pub number: u32,
        /// `ok`, or the error class.
        pub outcome: String,
        pub message: String,
        pub elapsed_ms: u64,
    }
}

#[cfg(test)]
mod tests;
