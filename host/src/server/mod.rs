//! `mailhost serve`: the HTTP JSON API in front of the durable outbox, and
//! the outbox workers that drain it.
//!
//! - `POST /v1/messages` (JSON as `MessageRequest` plus `user`, `tenant`,
//!   `purpose`, `mode`; or raw MIME as `message/rfc822` with those in the
//!   query) → 202 `{id, message_id, duplicate}` once the message is committed;
//! - `GET /v1/messages/{id}`, `GET /v1/messages?state=&limit=&before=`;
//! - `POST /v1/messages/{id}/retry`, `POST /v1/messages/{id}/cancel`;
//! - `POST /v1/compose` (a compose run now, not queued);
//! - `POST /v1/batches`, `GET /v1/batches/{id}`, `GET /v1/batches`,
//!   `POST /v1/batches/{id}/cancel` (see `batches.rs`);
//! - `POST /v1/accounts/{name}/check`, `GET /v1/policy/explain` (see `ops.rs`);
//! - `GET /v1/status`, `GET /v1/openapi.json`, `GET /healthz`, `GET /readyz`,
//!   `GET /metrics`.
//! - `/admin`: the admin web page (session cookie, not a token; see [`admin`]).
//!
//! Every `/v1` call needs `Authorization: Bearer TOKEN` (`[api.tokens]`).
//! Errors are `application/problem+json` (RFC 9457).

pub mod admin;
pub mod auth;
mod batches;
mod body;
pub mod cli;
mod idempotency;
mod messages;
mod notify;
pub mod openapi;
mod ops;
pub mod problem;
mod reload;
mod signals;
mod status;
pub mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};

use self::body::{read_body, read_within, too_large};
use crate::live::LiveEngine;
use crate::message::MessageRequest;
use crate::outbox::worker::{self, Deliver, Stats, WorkerConfig};
use crate::outbox::{now_ms, Change, ListFilter, NewMessage, Outbox, Priority, State, Store};
use crate::policy::Action;
use crate::submit::{self, Submission, SubmitError};
use auth::{Caller, LiveTokens, Tokens};
use problem::Problem;

/// The shared state of the API handlers.
pub struct App {
    /// Replaced when the admin page saves the config.
    pub engine: Arc<LiveEngine>,
    pub outbox: Outbox,
    /// The API tokens of the config in use.
    pub tokens: LiveTokens,
    pub max_body: usize,
    pub stats: Arc<Stats>,
    /// False once shutdown began (readyz answers 503, submissions are refused).
    pub accepting: AtomicBool,
    /// The API's certificate when it serves HTTPS (for `/metrics`).
    pub certs: Option<Arc<tls::Certificates>>,
}

type Shared = Arc<App>;

/// The API's routes.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/messages", post(create).get(messages::list))
        .route("/v1/messages/retry", post(messages::retry_matching))
        .route("/v1/messages/cancel", post(messages::cancel_matching))
        .route("/v1/messages/{id}", get(messages::show))
        .route("/v1/messages/{id}/raw", get(messages::raw))
        .route("/v1/messages/{id}/retry", post(messages::retry))
        .route("/v1/messages/{id}/cancel", post(messages::cancel))
        .route("/v1/batches", post(batches::create).get(batches::list))
        .route("/v1/batches/{id}", get(batches::show))
        .route("/v1/batches/{id}/cancel", post(batches::cancel))
        .route("/v1/status", get(status::status))
        .route("/v1/accounts/{name}/check", post(ops::check))
        .route("/v1/policy/explain", get(ops::explain))
        .route("/v1/compose", post(ops::compose))
        .route("/v1/openapi.json", get(openapi::serve_document))
        .route("/metrics", get(status::metrics))
        .merge(admin::router(app.clone()))
        .fallback(fallback)
        // The body is read with our own limit so that an oversized body gets a problem document.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

async fn fallback() -> Problem {
    Problem::not_found("no such endpoint; see the API section of the README")
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    summary = "Liveness (no token)",
    responses((status = 200, description = "The process answers", content_type = "text/plain", body = String, example = "ok\n"))
)]
async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    summary = "Readiness (no token): the outbox answers and the service is not shutting down",
    responses(
        (status = 200, description = "Ready", content_type = "text/plain", body = String, example = "ready\n"),
        (status = 503, response = openapi::ServiceUnavailable),
    )
)]
async fn readyz(AxState(app): AxState<Shared>) -> Response {
    if !app.accepting.load(Ordering::Relaxed) {
        return Problem::unavailable("shutting-down", "the service is shutting down")
            .into_response();
    }
    // Reads the outbox (an index probe per open state), so a probe every few
    // seconds costs nothing, however many messages are kept.
    match app.outbox.store().oldest_open().await {
        Ok(_) => "ready\n".into_response(),
        Err(e) => Problem::unavailable("outbox-unavailable", e.to_string()).into_response(),
    }
}

fn caller(app: &App, headers: &HeaderMap) -> Result<Caller, Problem> {
    let v = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    app.tokens_now().check(v)
}

impl App {
    /// The API tokens of the config in use now.
    pub fn tokens_now(&self) -> Arc<Tokens> {
        self.tokens.of(&self.engine.get())
    }
}

/// A JSON value as `T`; an error names the field it is about
/// (`attachments[0].data: …`, `to: invalid type …`).
pub(crate) fn field_values<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> Result<T, Problem> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        Problem::bad_request(
            "bad-field",
            if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            },
        )
    })
}

/// Who the message is for, beside its content.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Routing {
    /// `message/rfc822` bodies: the user it is for (JSON bodies carry it beside the fields).
    user: Option<String>,
    /// `message/rfc822` bodies: the tenant it is for.
    tenant: Option<String>,
    /// `message/rfc822` bodies: the purpose (policy rules).
    purpose: Option<String>,
    /// `message/rfc822` bodies: a mode or account picked for this message.
    mode: Option<String>,
    /// `send` (default) or `compose`.
    #[param(value_type = Option<crate::policy::Action>)]
    action: Option<String>,
    /// `message/rfc822` bodies: the idempotency key (JSON carries it in the message).
    idempotency_key: Option<String>,
    /// `message/rfc822` bodies: envelope recipients instead of the headers', comma-separated.
    to: Option<String>,
    /// `message/rfc822` bodies: the envelope sender instead of the From.
    envelope_from: Option<String>,
}

const ROUTING_KEYS: &[&str] = &["user", "tenant", "purpose", "mode", "action"];

/// A message committed to the outbox.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "0190f5a2-7c1e-7d4b-9a51-3f2b8c6d9e10", "message_id": "<0190f5a2.4711@example.com>", "state": "queued", "duplicate": false}))]
struct Accepted {
    /// The outbox's id (for `GET /v1/messages/{id}`).
    id: String,
    /// The Message-ID header, the same on every try.
    message_id: String,
    state: State,
    /// True when the idempotency key was seen before: this is the first message's id, nothing new was queued.
    duplicate: bool,
}

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    operation_id = "create_message",
    summary = "Queue a message (scope send)",
    description = "The message is checked, built and committed to the outbox durably before the answer; the workers send it. \
        A JSON body carries the fields and the routing keys beside them; a `message/rfc822` body is sent as it is, \
        with the routing keys in the query. The same `idempotency_key` again answers with the first message (`duplicate`) and queues nothing.",
    params(
        Routing,
        ("Idempotency-Key" = Option<String>, Header, description = "The idempotency key as a header (a bare value, or a quoted string as in the IETF draft): the same as `idempotency_key`; when both are given they must be equal", example = "inv-4711"),
    ),
    request_body(
        description = "The message: fields (JSON) or a complete message (`message/rfc822`).",
        content(
            (openapi::schemas::MessageSubmission = "application/json"),
            ("message/rfc822", example = json!("From: erp@example.com\r\nTo: customer@example.org\r\nSubject: Invoice 4711\r\n\r\nPlease find invoice 4711 attached.\r\n")),
        )
    ),
    responses(
        (status = 202, description = "Committed to the outbox", body = Accepted,
            headers(("Location" = String, description = "The message's state: `/v1/messages/{id}`"))),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 415, response = openapi::UnsupportedMediaType),
        (status = 422, response = openapi::UnprocessableEntity),
        (status = 500, response = openapi::InternalError),
        (status = 503, response = openapi::ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
async fn create(
    AxState(app): AxState<Shared>,
    query: Result<Query<Routing>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let who = caller(&app, &headers)?;
    let Query(query) = query.map_err(|e| Problem::bad_request("bad-query", e.body_text()))?;
    who.need_send()?;
    if !app.accepting.load(Ordering::Relaxed) {
        return Err(Problem::unavailable(
            "shutting-down",
            "the service is shutting down; send again to another instance or later",
        ));
    }
    let (routing, content) = read_submission(&app, query, &headers, body).await?;
    let accepted = accept(&app, &who, routing, content).await?;
    let location = format!("/v1/messages/{}", accepted.id);
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::LOCATION, location)],
        Json(accepted),
    )
        .into_response())
}

/// The submission in a `POST /v1/messages` (or `/v1/compose`) request:
/// JSON fields with the routing keys beside them, or raw MIME with the
/// routing in the query.
async fn read_submission(
    app: &App,
    query: Routing,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Routing, Content), Problem> {
    let raw = read_within(headers, body, app.max_body as u64, |len| {
        too_large(app.max_body, len)
    })
    .await?;
    let ctype = body::media_type(headers);
    let (mut routing, mut content) = match ctype.as_str() {
        "application/json" => {
            let mut v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
                Problem::bad_request("bad-json", format!("the body is not valid JSON: {e}"))
            })?;
            let obj = v.as_object_mut().ok_or_else(|| {
                Problem::bad_request("bad-json", "the body must be a JSON object")
            })?;
            let mut routing = serde_json::Map::new();
            for k in ROUTING_KEYS {
                if let Some(x) = obj.remove(*k) {
                    routing.insert((*k).to_string(), x);
                }
            }
            let routing: Routing = field_values(serde_json::Value::Object(routing))?;
            let req: MessageRequest = field_values(v)?;
            (routing, Content::Fields(Box::new(req)))
        }
        "message/rfc822" => (query, Content::Mime(raw.to_vec())),
        "" => return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media-type",
            "Unsupported media type",
            "set Content-Type: application/json (fields) or message/rfc822 (a complete message)",
        )),
        other => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "media-type",
                "Unsupported media type",
                format!(
                    "Content-Type `{}` is not accepted; use application/json or message/rfc822",
                    crate::limits::shown(other)
                ),
            ))
        }
    };
    let header = idempotency::from_header(headers)?;
    match &mut content {
        Content::Fields(r) => {
            r.idempotency_key = idempotency::merge(
                r.idempotency_key.take(),
                header,
                "the body's `idempotency_key`",
            )?;
        }
        Content::Mime(_) => {
            routing.idempotency_key = idempotency::merge(
                routing.idempotency_key.take(),
                header,
                "the query's `idempotency_key`",
            )?;
        }
    }
    Ok((routing, content))
}

/// What a submission carries.
enum Content {
    Fields(Box<MessageRequest>),
    Mime(Vec<u8>),
}

/// Checks the caller's bindings and prepares the message with the library's
/// one use case (`Engine::prepare`: decide, defaults, build, purpose checks);
/// a compose through a desktop mode is refused (the service has no desktop).
async fn prepare(
    app: &Shared,
    who: &Caller,
    routing: Routing,
    content: Content,
) -> Result<(submit::Prepared, Option<String>), Problem> {
    let tenant = who.tenant(routing.tenant)?;
    let user = who.user(routing.user)?;
    let action = match routing.action.as_deref().unwrap_or("send") {
        "send" => Action::Send,
        "compose" => Action::Compose,
        other => {
            return Err(Problem::bad_request(
                "bad-field",
                format!(
                    "action `{}` is unknown; use send or compose",
                    crate::limits::shown(other)
                ),
            ))
        }
    };
    if let Content::Fields(req) = &content {
        if req.attachments.iter().any(|a| a.path.is_some()) {
            return Err(Problem::bad_request(
                "attachment-path",
                "attachments[].path names a file on the server, which the API does not read; send the bytes as `data` (base64)",
            ));
        }
        if let Some(k) = req
            .options
            .keys()
            .find(|k| mailhost_plugin_api::options::is_host_only(k))
        {
            return Err(Problem::forbidden(
                "host-only-option",
                format!("options.{k} is set by the host from the config ([users.NAME.accounts.ACCOUNT]); a request may not set it"),
            ));
        }
    }
    let key = match &content {
        Content::Fields(r) => r.idempotency_key.clone(),
        Content::Mime(_) => routing.idempotency_key.clone(),
    };
    let sub = Submission {
        action,
        user,
        tenant,
        purpose: routing.purpose,
        mode: routing.mode,
        content: match content {
            Content::Fields(r) => submit::Content::Fields(r),
            Content::Mime(bytes) => submit::Content::Mime {
                bytes,
                envelope_from: routing.envelope_from,
                envelope_to: routing
                    .to
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
            },
        },
        idempotency_key: key.clone(),
        options: serde_json::Map::new(),
    };
    let engine = app.engine.get();
    // A small message is built here when nothing in it can block (no probe
    // is due); else, and for large ones, on a blocking thread.
    let here = (sub.content_len() <= PREPARE_HERE_MAX)
        .then(|| engine.prepare_without_blocking(&sub))
        .flatten();
    let prepared = match here {
        Some(r) => r,
        None => tokio::task::spawn_blocking(move || engine.prepare(&sub))
            .await
            .map_err(|e| Problem::internal(format!("preparing the message failed: {e}")))?,
    }
    .map_err(submit_problem)?;
    if action == Action::Compose {
        if let Some(c) = prepared.decision.chain.iter().find(|c| is_desktop(&c.mode)) {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "desktop-compose",
                "Compose mode unavailable in the service",
                format!(
                    "compose mode `{}` opens a window on a desktop, which `mailhost serve` does not have; give this user a draft or web-link mode (e.g. Microsoft 365 drafts)",
                    c.mode
                ),
            ));
        }
    }
    Ok((prepared, key))
}

/// The content (bytes) up to which a message is built on the request's own
/// task: a few hundred microseconds of work at most.
const PREPARE_HERE_MAX: usize = 256 * 1024;

/// Prepares the message and queues it durably.
async fn accept(
    app: &Shared,
    who: &Caller,
    routing: Routing,
    content: Content,
) -> Result<Accepted, Problem> {
    let (prepared, key) = prepare(app, who, routing, content).await?;
    let new = NewMessage::from_prepared(&prepared, key, Priority::Single)
        .map_err(|e| Problem::internal(e.to_string()))?;
    let message_id = new.message_id.clone();
    let e = app.outbox.enqueue(new).await.map_err(|e| {
        Problem::unavailable(
            "outbox-unavailable",
            format!("the message was not queued: {e}"),
        )
    })?;
    let (state, message_id) = if e.duplicate {
        match app.outbox.store().get(&e.id).await {
            Ok(Some((r, _))) => (r.state, r.message_id),
            _ => (State::Queued, message_id),
        }
    } else {
        (State::Queued, message_id)
    };
    Ok(Accepted {
        id: e.id,
        message_id,
        state,
        duplicate: e.duplicate,
    })
}

/// Compose modes that open a window on the desktop (none in a service).
fn is_desktop(mode: &str) -> bool {
    mode == "builtin" || mode == "outlook" || mode.starts_with("mapi")
}

/// The library's refusal as a problem document.
fn submit_problem(e: SubmitError) -> Problem {
    match e {
        SubmitError::Refused(r) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused-by-policy",
            "Refused by policy",
            format!("refused by {}: {}", r.rule, r.message),
        ),
        SubmitError::Invalid(m) => Problem::bad_request("invalid-message", m.to_string()),
        SubmitError::Failed(f) => Problem::internal(format!("unexpected delivery failure: {f}")),
    }
}

/// An id that cannot be one of ours (`what`: "message", "batch") is not
/// found, without asking the database.
pub(crate) fn bad_id(what: &str, id: &str) -> Result<(), Problem> {
    if !crate::outbox::could_be_id(id) {
        return Err(Problem::not_found(format!(
            "no {what} `{}`",
            crate::limits::shown(id)
        )));
    }
    Ok(())
}

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: SocketAddr,
    pub worker: WorkerConfig,
    /// How long in-flight sends may take to finish after SIGTERM/SIGINT.
    pub drain: Duration,
    /// Run the workers (false: API only, another process drains).
    pub workers: bool,
    /// HTTPS with these certificates (`[api] tls_cert`/`tls_key`), else HTTP.
    pub tls: Option<Arc<tls::Certificates>>,
}

/// Runs the API and the workers until SIGTERM/SIGINT (or `stop` turns true).
pub async fn serve<D: Deliver>(
    engine: Arc<LiveEngine>,
    deliver: Arc<D>,
    outbox: Outbox,
    opts: ServeOptions,
    mut stop: watch::Receiver<bool>,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), String> {
    let max_body = engine.get().settings().limits.max_request_bytes();
    let tokens = LiveTokens::default();
    if tokens.of(&engine.get()).is_empty() {
        tracing::warn!("serve: no [api.tokens] in the config: every /v1 request is refused (401); make one with `mailhost api-token NAME`");
    }
    let stats = Arc::new(Stats::default());
    let app = Arc::new(App {
        engine,
        outbox: outbox.clone(),
        tokens,
        max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
        stats: stats.clone(),
        accepting: AtomicBool::new(true),
        certs: opts.tls.clone(),
    });
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e}; pick another address with --bind",
                opts.bind
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    tracing::info!(
        "serve: listening on {scheme}://{addr}, outbox {}",
        outbox.store().location()
    );
    if opts.tls.is_none() && tls::beyond_loopback(&addr) {
        tracing::warn!(
            "serve: {addr} is reachable from other machines over plain HTTP: API tokens and the admin page's sign-in cross the network unencrypted; set [api] tls_cert and tls_key, or put a TLS proxy in front and bind to 127.0.0.1"
        );
    }
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    let (wstop_tx, wstop_rx) = watch::channel(false);
    let worker = opts.workers.then(|| {
        tokio::spawn(worker::run(
            outbox.clone(),
            deliver,
            opts.worker.clone(),
            stats,
            wstop_rx,
            opts.drain,
        ))
    });
    let status = format!(
        "listening on {scheme}://{addr}, outbox {}{}",
        outbox.store().location(),
        if opts.workers { "" } else { " (no workers)" }
    );
    let reloader = tokio::spawn(reload::on_hangup(app.engine.clone(), status.clone()));
    notify::tell(notify::Event::Ready(&status));
    let app2 = app.clone();
    let shutdown = async move {
        signals::wait_for_stop(&mut stop).await;
        notify::tell(notify::Event::Stopping);
        tracing::info!("serve: stopping: no new messages, finishing what is in flight");
        app2.accepting.store(false, Ordering::Relaxed);
        let _ = wstop_tx.send(true);
    };
    match &opts.tls {
        Some(certs) => {
            let listener = tls::TlsListener::new(listener, tls::acceptor(certs.clone())?)
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            axum::serve(listener, router(app))
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, router(app))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
    .map_err(|e| format!("the HTTP server failed: {e}"))?;
    if let Some(w) = worker {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(e) => return Err(format!("the outbox worker failed: {e}")),
        }
    }
    reloader.abort();
    tracing::info!("serve: stopped");
    Ok(())
}
