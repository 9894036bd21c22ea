//! The admin and interactive endpoints beside the outbox:
//!
//! - `POST /v1/accounts/{name}/check` (admin): the account's "Test settings";
//! - `GET /v1/policy/explain` (admin, or send for the users/tenants the token
//!   is bound to): the policy's decision and its trace;
//! - `POST /v1/compose` (send): a compose run now, not queued.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::{
    BadGateway, BadRequest, Forbidden, InternalError, NotFound, PayloadTooLarge,
    ServiceUnavailable, Unauthorized, UnprocessableEntity, UnsupportedMediaType,
};
use super::{caller, prepare, read_body, read_submission, Problem, Routing, Shared};
use crate::engine::{Composed, FailureClass};
use crate::outbox::worker::note_account_status;
use crate::policy::{Action, Decision, Request};
use crate::submit::Outcome;

/// What a check may be given (or an empty body).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckBody {
    /// Where a check that sends a test message sends it (`options.test_recipient`).
    to: Option<String>,
}

/// One step of a check.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct StepView {
    /// E.g. `connect`, `tls`, `auth`, `token`, `send test message`.
    name: String,
    #[schema(value_type = String, pattern = "^(ok|warning|failed|skipped|unknown)$")]
    outcome: &'static str,
    detail: String,
    /// The server's words.
    server_text: String,
    duration_ms: u64,
}

/// An account's check: each step with its outcome and the server's words.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Check)]
pub(super) struct CheckView {
    account: String,
    /// True when no step failed.
    ok: bool,
    steps: Vec<StepView>,
}

/// Runs the account's check and records the connection state it found, as the
/// workers do after a try (`/v1/status` shows it).
#[utoipa::path(
    post,
    path = "/v1/accounts/{name}/check",
    tag = "operations",
    operation_id = "check_account",
    summary = "Run an account's check (scope admin); records the account's connection state",
    description = "The \"Test settings\" of the account: each step with its outcome and the server's words. The state it finds is what `GET /v1/status` shows next.",
    params(("name" = String, Path, description = "The account's name in the config")),
    request_body(content = Option<CheckBody>, description = "Empty, or `{\"to\": ADDRESS}` for a check that sends a test message", content_type = "application/json", example = json!({"to": "postmaster@example.com"})),
    responses(
        (status = 200, description = "The steps (`ok` false when one failed)", body = CheckView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 500, response = InternalError),
        (status = 502, response = BadGateway),
    ),
    security(("bearer" = ["admin"]))
)]
pub(super) async fn check(
    AxState(app): AxState<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CheckView>, Problem> {
    let who = caller(&app, &headers)?;
    who.need_admin()?;
    if !app.engine.get().settings().accounts.contains_key(&name) {
        return Err(Problem::not_found(format!(
            "no account `{}`; configured: {}",
            crate::limits::shown(&name),
            app.engine
                .get()
                .settings()
                .accounts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let raw = read_body(body, 64 * 1024).await?;
    let req: CheckBody = if raw.iter().all(u8::is_ascii_whitespace) {
        CheckBody::default()
    } else {
        serde_json::from_slice(&raw).map_err(|e| {
            Problem::bad_request(
                "bad-json",
                format!("the body must be {{\"to\": \"ADDRESS\"}} or empty: {e}"),
            )
        })?
    };
    let options = match &req.to {
        Some(to) => serde_json::json!({ "test_recipient": to }),
        None => serde_json::json!({}),
    }
    .to_string();
    let engine = app.engine.get();
    let account = name.clone();
    // The check talks to the server: blocking.
    let got = tokio::task::spawn_blocking(move || engine.check(&account, &options))
        .await
        .map_err(|e| Problem::internal(format!("the check failed: {e}")))?;
    let (state, reason) = crate::outbox::stats::check_outcome(&got);
    note_account_status(&app.outbox, &app.stats, &name, state, &reason).await;
    let report = got.map_err(|e| {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "check-failed",
            "The account's check could not run",
            format!("account `{name}`: {}", e.message()),
        )
    })?;
    let ok = report.ok();
    Ok(Json(CheckView {
        account: name,
        ok,
        steps: report
            .steps
            .iter()
            .map(|s| StepView {
                name: s.name.to_string(),
                outcome: s.outcome.name(),
                detail: s.detail.to_string(),
                server_text: s.server_text.to_string(),
                duration_ms: s.duration_ms,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ExplainQuery {
    /// The user (a bound token: one of its users).
    user: Option<String>,
    /// The tenant (a bound token: one of its tenants).
    tenant: Option<String>,
    /// `send` (default) or `compose`.
    #[param(value_type = Option<crate::policy::Action>)]
    action: Option<String>,
    /// The purpose.
    purpose: Option<String>,
    /// A mode or account the request would pick.
    mode: Option<String>,
    /// The From the request would set.
    from: Option<String>,
    /// Recipients, comma-separated (purpose rules look at them).
    to: Option<String>,
}

/// The policy's decision, its trace, and the trace as text.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Explained {
    #[serde(flatten)]
    decision: Decision,
    /// What `mailhost policy explain` prints.
    text: String,
}

#[utoipa::path(
    get,
    path = "/v1/policy/explain",
    tag = "operations",
    operation_id = "explain_policy",
    summary = "The policy's decision and its trace (scope admin, or send for the token's users and tenants)",
    params(ExplainQuery),
    responses(
        (status = 200, description = "The decision", body = Explained),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = InternalError),
    ),
    security(("bearer" = ["admin"]), ("bearer" = ["send"]))
)]
pub(super) async fn explain(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Explained>, Problem> {
    let who = caller(&app, &headers)?;
    let Query(q) = query.map_err(|e| Problem::bad_request("bad-query", e.body_text()))?;
    let (user, tenant) = if who.admin {
        (q.user, q.tenant)
    } else {
        who.need_send()?;
        (who.user(q.user)?, who.tenant(q.tenant)?)
    };
    let action: Action = q
        .action
        .as_deref()
        .unwrap_or("send")
        .parse()
        .map_err(|e: String| Problem::bad_request("bad-query", e))?;
    let req = Request {
        user,
        tenant,
        purpose: q.purpose,
        mode: q.mode,
        from: q.from,
        recipients: q
            .to
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    };
    crate::submit::check_explain(&req)
        .map_err(|e| Problem::bad_request("bad-query", e.to_string()))?;
    let engine = app.engine.get();
    // The policy probes plugins: blocking.
    let decision = tokio::task::spawn_blocking(move || engine.decide(action, &req))
        .await
        .map_err(|e| Problem::internal(format!("deciding failed: {e}")))?;
    let text = decision.render();
    Ok(Json(Explained { decision, text }))
}

/// `POST /v1/messages`'s body, composed now: the outcome (a draft, a web link)
/// comes back in the response instead of through the outbox.
#[utoipa::path(
    post,
    path = "/v1/compose",
    tag = "messages",
    operation_id = "compose",
    summary = "Compose now, not queued (scope send): a draft or a web link",
    description = "Takes what `POST /v1/messages` takes and composes it through the policy's compose chain at once. Compose modes that open a window on a desktop (Outlook, MAPI, the built-in editor) are refused (422 `desktop-compose`): the service has no desktop.",
    params(Routing),
    request_body(
        description = "The message: fields (JSON) or a complete message (`message/rfc822`).",
        content(
            (super::openapi::schemas::MessageSubmission = "application/json"),
            ("message/rfc822"),
        )
    ),
    responses(
        (status = 200, description = "What the compose made", body = Composed),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = UnprocessableEntity),
        (status = 500, response = InternalError),
        (status = 502, response = BadGateway),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn compose(
    AxState(app): AxState<Shared>,
    query: Result<Query<Routing>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Composed>, Problem> {
    let who = caller(&app, &headers)?;
    let Query(query) = query.map_err(|e| Problem::bad_request("bad-query", e.body_text()))?;
    who.need_send()?;
    if !app.accepting.load(Ordering::Relaxed) {
        return Err(Problem::unavailable(
            "shutting-down",
            "the service is shutting down; compose again on another instance or later",
        ));
    }
    let (mut routing, content) = read_submission(&app, query, &headers, body).await?;
    match routing.action.as_deref() {
        None | Some("compose") => routing.action = Some("compose".into()),
        Some(other) => {
            return Err(Problem::bad_request(
                "bad-field",
                format!(
                    "action `{other}` does not belong in /v1/compose (send with POST /v1/messages)"
                ),
            ))
        }
    }
    let (prepared, _) = prepare(&app, &who, routing, content).await?;
    let engine = app.engine.get();
    // Plugins block.
    let outcome = tokio::task::spawn_blocking(move || engine.deliver(&prepared))
        .await
        .map_err(|e| Problem::internal(format!("composing failed: {e}")))?;
    match outcome {
        Ok(Outcome::Composed(c)) => Ok(Json(c)),
        Ok(Outcome::Sent(_)) => Err(Problem::internal("a compose was sent instead")),
        Err(f) if f.class == FailureClass::Refused => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused-by-policy",
            "Refused by policy",
            f.to_string(),
        )),
        Err(f) => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "compose-failed",
            "The compose failed",
            f.to_string(),
        )),
    }
}
