//! `GET /v1/messages`, `GET /v1/messages/{id}` (and its stored bytes at
//! `/raw`), and a message's retry and cancel: reading and changing what the
//! outbox holds.

use super::*;

/// A stored message and its attempts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Message)]
pub(super) struct Shown {
    #[serde(flatten)]
    message: crate::outbox::MessageRecord,
    /// The ways out decided when the message was accepted, in order
    /// (accounts by name); `chain_pos` is the one it tries next.
    ways_out: Vec<String>,
    attempts: Vec<crate::outbox::AttemptRecord>,
}

pub(super) async fn load_for(app: &App, who: &Caller, id: &str) -> Result<Shown, Problem> {
    bad_id("message", id)?;
    let got = app
        .outbox
        .store()
        .get(id)
        .await
        .map_err(|e| Problem::unavailable("outbox-unavailable", e.to_string()))?;
    match got {
        Some((m, attempts)) if who.may_touch(m.tenant.as_deref(), m.user.as_deref()) => Ok(Shown {
            ways_out: m.ways_out(),
            message: m,
            attempts,
        }),
        // Someone else's message is "not found" for this token (no probing of ids).
        _ => Err(Problem::not_found(format!("no message `{id}`"))),
    }
}

#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    operation_id = "show_message",
    summary = "A message and its attempts",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message", body = Shown),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn show(
    AxState(app): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Shown>, Problem> {
    let who = caller(&app, &headers)?;
    Ok(Json(load_for(&app, &who, &id).await?))
}

#[utoipa::path(
    get,
    path = "/v1/messages/{id}/raw",
    tag = "messages",
    operation_id = "show_message_raw",
    summary = "The message as it is stored and sent: its complete MIME",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message's bytes (headers and body, CRLF lines)", content_type = "message/rfc822", body = String),
        (status = 401, response = openapi::Unauthorized),
        (status = 404, response = openapi::NotFound),
        (status = 503, response = openapi::ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn raw(
    AxState(app): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::response::Response, Problem> {
    let who = caller(&app, &headers)?;
    let shown = load_for(&app, &who, &id).await?;
    let bytes = shown
        .message
        .mime
        .ok_or_else(|| Problem::not_found(format!("message `{id}` has no stored bytes")))?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "message/rfc822"),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only messages in this state.
    #[param(value_type = Option<crate::outbox::State>)]
    state: Option<String>,
    /// Messages per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next` cursor of the previous page.
    before: Option<String>,
    /// Only this tenant's messages (a bound token: one of its tenants).
    tenant: Option<String>,
    /// Only this user's messages (a bound token: one of its users).
    user: Option<String>,
    /// Only messages whose current way out is this account (or a mode's
    /// label, as in `ways_out`): the one a message waits for, or the one its
    /// last try went through.
    account: Option<String>,
    /// Only messages created at or after this time: RFC 3339
    /// (`2026-11-30T08:00:00Z`), a UTC date or date and time without an
    /// offset (`2026-11-30`, `2026-11-30T08:00`), or milliseconds since the epoch.
    since: Option<String>,
    /// Only messages created before this time (as `since`).
    until: Option<String>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MessagePage)]
pub(super) struct Page {
    messages: Vec<crate::outbox::MessageRecord>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/messages",
    tag = "messages",
    operation_id = "list_messages",
    summary = "List messages, newest first, a page at a time",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = Page),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 503, response = openapi::ServiceUnavailable),
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
        Some(c) => Some(crate::outbox::parse_cursor(c).ok_or_else(|| {
            Problem::bad_request("bad-query", "`before` is not a cursor from `next`")
        })?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = ListFilter {
        before,
        limit,
        ..filter_of(&who, q)?
    };
    let messages = app
        .outbox
        .store()
        .list(&filter)
        .await
        .map_err(|e| Problem::unavailable("outbox-unavailable", e.to_string()))?;
    let next = (messages.len() == limit as usize)
        .then(|| messages.last().map(|m| m.cursor()))
        .flatten();
    Ok(Json(Page { messages, next }))
}

/// The filters of `q` (its page aside), bound to what the token may see.
fn filter_of(who: &Caller, q: ListQuery) -> Result<ListFilter, Problem> {
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(State::parse(s).ok_or_else(|| {
            Problem::bad_request(
                "bad-query",
                format!("state `{}` is unknown; use queued, sending, sent, deferred, failed or cancelled", crate::limits::shown(s)),
            )
        })?),
    };
    let time = |name: &str, v: Option<&str>| {
        v.map(|v| {
            super::cli::parse_when(v)
                .map_err(|e| Problem::bad_request("bad-query", format!("`{name}`: {e}")))
        })
        .transpose()
    };
    Ok(ListFilter {
        state,
        since: time("since", q.since.as_deref())?,
        until: time("until", q.until.as_deref())?,
        tenant: if who.admin {
            q.tenant
        } else {
            who.tenant(q.tenant)?
        },
        user: if who.admin { q.user } else { who.user(q.user)? },
        account: q.account,
        ..Default::default()
    })
}

/// How many messages a retry or cancel of every match moved.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Moved {
    /// Messages moved.
    changed: u64,
    /// Where they went: `queued` (retry) or `cancelled`.
    #[schema(value_type = crate::outbox::State)]
    state: &'static str,
}

#[utoipa::path(
    post,
    path = "/v1/messages/retry",
    tag = "messages",
    operation_id = "retry_messages",
    summary = "Retry every message the filters match, now (scope send)",
    description = "The filters of `GET /v1/messages` (no `limit` or `before`). Failed messages unless `state` is `cancelled` or `deferred`. A bound token must name its tenant or user as it does to list.",
    params(ListQuery),
    responses(
        (status = 200, description = "How many were queued again", body = Moved),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 503, response = openapi::ServiceUnavailable),
    ),
    security(("bearer" = ["send"]))
)]
pub(super) async fn retry_matching(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Moved>, Problem> {
    change_matching(app, headers, query, false).await
}

#[utoipa::path(
    post,
    path = "/v1/messages/cancel",
    tag = "messages",
    operation_id = "cancel_messages",
    summary = "Cancel every queued or deferred message the filters match (scope send)",
    description = "The filters of `GET /v1/messages` (no `limit` or `before`); `state` may narrow it to `queued` or `deferred`. A bound token must name its tenant or user as it does to list.",
    params(ListQuery),
    responses(
        (status = 200, description = "How many were cancelled", body = Moved),
        (status = 400, response = openapi::BadRequest),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 503, response = openapi::ServiceUnavailable),
    ),
    security(("bearer" = ["send"]))
)]
pub(super) async fn cancel_matching(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Moved>, Problem> {
    change_matching(app, headers, query, true).await
}

async fn change_matching(
    app: Shared,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    cancel: bool,
) -> Result<Json<Moved>, Problem> {
    let who = caller(&app, &headers)?;
    who.need_send()?;
    let Query(q) = query.map_err(|e| Problem::bad_request("bad-query", e.body_text()))?;
    if q.limit.is_some() || q.before.is_some() {
        return Err(Problem::bad_request(
            "bad-query",
            "`limit` and `before` page a list; a retry or cancel takes every match of the other filters",
        ));
    }
    let mut f = filter_of(&who, q)?;
    f.state = crate::outbox::bulk_state(cancel, f.state)
        .map_err(|e| Problem::bad_request("bad-query", e))?;
    let changed = app
        .outbox
        .store()
        .change_matching(&f, cancel, now_ms())
        .await
        .map_err(|e| Problem::unavailable("outbox-unavailable", e.to_string()))?;
    if changed > 0 && !cancel {
        app.outbox.notify_enqueued();
    }
    Ok(Json(Moved {
        changed,
        state: if cancel { "cancelled" } else { "queued" },
    }))
}

pub(super) async fn change(
    app: Shared,
    headers: HeaderMap,
    id: String,
    cancel: bool,
) -> Result<Json<Shown>, Problem> {
    let who = caller(&app, &headers)?;
    who.need_send()?;
    load_for(&app, &who, &id).await?;
    let store = app.outbox.store();
    let r = if cancel {
        store.cancel(&id, now_ms()).await
    } else {
        store.retry(&id, now_ms()).await
    }
    .map_err(|e| Problem::unavailable("outbox-unavailable", e.to_string()))?;
    match r {
        Change::Done(_) => {
            if !cancel {
                // Due now: an idle worker takes it at once, not at its next poll.
                app.outbox.notify_enqueued();
            }
            Ok(Json(load_for(&app, &who, &id).await?))
        }
        Change::NotFound => Err(Problem::not_found(format!("no message `{id}`"))),
        Change::NotAllowed(s) => Err(Problem::conflict(
            "state",
            if cancel {
                format!("message `{id}` is {s}: only queued or deferred messages can be cancelled")
            } else {
                format!("message `{id}` is {s}: only failed, cancelled or deferred messages can be retried")
            },
        )),
    }
}

#[utoipa::path(
    post,
    path = "/v1/messages/{id}/retry",
    tag = "messages",
    operation_id = "retry_message",
    summary = "Retry a failed, cancelled or deferred message now (scope send)",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message, queued again", body = Shown),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn retry(
    AxState(app): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Shown>, Problem> {
    change(app, headers, id, false).await
}

#[utoipa::path(
    post,
    path = "/v1/messages/{id}/cancel",
    tag = "messages",
    operation_id = "cancel_message",
    summary = "Cancel a queued or deferred message (scope send)",
    params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The message, cancelled", body = Shown),
        (status = 401, response = openapi::Unauthorized),
        (status = 403, response = openapi::Forbidden),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = openapi::Conflict),
        (status = 503, response = openapi::ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn cancel(
    AxState(app): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Shown>, Problem> {
    change(app, headers, id, true).await
}
