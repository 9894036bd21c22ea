//! The admin and interactive endpoints beside the outbox:
//!
//! - `POST /v1/accounts/{name}/check` (admin): the account's "Test settings";
//! - `GET /v1/policy/explain` (admin, or send for the users/tenants the token
//!   is bound to): the policy's decision and its trace;
//! - `POST /v1/compose` (send): a compose run now, not queued;
//! - `GET /v1/openapi.json`: the API's OpenAPI 3.1 document.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{caller, prepare, read_body, read_submission, Problem, Routing, Shared};
use crate::engine::{Composed, FailureClass};
use crate::outbox::worker::{note_account_status, OPERATING, UNABLE_TO_CONNECT};
use crate::policy::{Action, Decision, Request};
use crate::submit::Outcome;

/// The OpenAPI 3.1 document of every route (kept in step with the router by a test).
pub const OPENAPI: &str = include_str!("openapi.json");

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn need_admin(who: &super::Caller) -> Result<(), Problem> {
    if who.admin {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "scope",
            format!("API token `{}` lacks the `admin` scope", who.name),
        ))
    }
}

fn need_send(who: &super::Caller) -> Result<(), Problem> {
    if who.send {
        Ok(())
    } else {
        Err(Problem::forbidden(
            "scope",
            format!("API token `{}` lacks the `send` scope", who.name),
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckBody {
    /// Where a check that sends a test message sends it.
    to: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct StepView {
    name: String,
    outcome: &'static str,
    detail: String,
    server_text: String,
    duration_ms: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct CheckView {
    account: String,
    /// True when no step failed.
    ok: bool,
    steps: Vec<StepView>,
}

/// Runs the account's check and records the connection state it found, as the
/// workers do after a try (`/v1/status` shows it).
pub(super) async fn check(
    AxState(app): AxState<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CheckView>, Problem> {
    let who = caller(&app, &headers)?;
    need_admin(&who)?;
    if !app.engine.get().settings().accounts.contains_key(&name) {
        return Err(Problem::not_found(format!(
            "no account `{name}`; configured: {}",
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
    let report = match got {
        Ok(r) => r,
        Err(e) => {
            note_account_status(
                &app.outbox,
                &app.stats,
                &name,
                UNABLE_TO_CONNECT,
                e.message(),
            )
            .await;
            return Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "check-failed",
                "The account's check could not run",
                format!("account `{name}`: {}", e.message()),
            ));
        }
    };
    let ok = report.ok();
    let reason = report
        .steps
        .iter()
        .find(|s| s.outcome == mailhost_plugin_api::StepOutcome::FAILED)
        .map(|s| format!("{}: {}", s.name, s.detail))
        .unwrap_or_default();
    let state = if ok { OPERATING } else { UNABLE_TO_CONNECT };
    note_account_status(&app.outbox, &app.stats, &name, state, &reason).await;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExplainQuery {
    user: Option<String>,
    tenant: Option<String>,
    /// `send` (default) or `compose`.
    action: Option<String>,
    purpose: Option<String>,
    mode: Option<String>,
    from: Option<String>,
    /// Recipients, comma-separated (purpose rules look at them).
    to: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Explained {
    #[serde(flatten)]
    decision: Decision,
    /// What `mailhost policy explain` prints.
    text: String,
}

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
        need_send(&who)?;
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
pub(super) async fn compose(
    AxState(app): AxState<Shared>,
    query: Result<Query<Routing>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Composed>, Problem> {
    let who = caller(&app, &headers)?;
    let Query(query) = query.map_err(|e| Problem::bad_request("bad-query", e.body_text()))?;
    need_send(&who)?;
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

#[cfg(test)]
mod tests {
    use super::OPENAPI;

    /// `(method, path)` of every `.route(...)` in the router's source.
    fn routes() -> Vec<(String, String)> {
        let src = include_str!("mod.rs");
        let start = src.find("pub fn router(").expect("the router");
        let end = start + src[start..].find(".fallback(").expect("the router's end");
        let mut out = Vec::new();
        for part in src[start..end].split(".route(").skip(1) {
            let path = part.split('"').nth(1).expect("a route's path");
            let handlers = &part[part.find(',').expect("a route's handler")..];
            for m in ["get", "post", "put", "patch", "delete"] {
                // `get(x)` first, or `.get(x)` chained.
                if handlers.contains(&format!("{m}(")) {
                    out.push((m.to_string(), path.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_names_every_route_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        let routes = routes();
        assert!(routes.len() >= 13, "{routes:?}");
        for (m, p) in &routes {
            assert!(
                paths.get(p).and_then(|x| x.get(m)).is_some(),
                "{} {p} is routed but not in openapi.json",
                m.to_uppercase()
            );
        }
        for (p, ops) in paths {
            for m in ops.as_object().expect("path item").keys() {
                assert!(
                    routes.iter().any(|(rm, rp)| rm == m && rp == p),
                    "openapi.json has {} {p}, which is not routed",
                    m.to_uppercase()
                );
            }
        }
    }
}
