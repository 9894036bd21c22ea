//! The outbox on the admin page: messages with filters, a message's
//! attempts, retry and cancel, one at a time or every match.

use axum::extract::{Path, Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{
    csrf_field, esc, field, notice, page, url_enc, when, AdminState, Denied, Nav, Session,
};
use crate::outbox::{now_ms, Change, ListFilter, State, Store};

#[derive(Debug, Default, Deserialize)]
pub(super) struct OutboxQuery {
    state: Option<String>,
    account: Option<String>,
    tenant: Option<String>,
    user: Option<String>,
    /// Created at or after (as `mailhost outbox list --since` takes it).
    since: Option<String>,
    /// Created before.
    until: Option<String>,
    /// The page after this cursor (newest first).
    before: Option<String>,
}

/// Messages on one page of the list.
const PAGE: u32 = 200;

/// The filter keys, in the order the form shows them.
const KEYS: [&str; 6] = ["state", "account", "tenant", "user", "since", "until"];

impl OutboxQuery {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "state" => self.state.as_deref(),
            "account" => self.account.as_deref(),
            "tenant" => self.tenant.as_deref(),
            "user" => self.user.as_deref(),
            "since" => self.since.as_deref(),
            "until" => self.until.as_deref(),
            "before" => self.before.as_deref(),
            _ => None,
        }
        .map(str::trim)
        .filter(|v| !v.is_empty())
    }

    /// The filters as the store takes them (no paging), or what is wrong
    /// with one (escaped for the page).
    fn filter(&self) -> Result<ListFilter, String> {
        let state = match self.get("state") {
            None => None,
            Some(x) => Some(
                State::parse(x).ok_or_else(|| format!("Unknown state <code>{}</code>.", esc(x)))?,
            ),
        };
        let time = |key: &str| -> Result<Option<i64>, String> {
            self.get(key)
                .map(|v| {
                    crate::server::cli::parse_when(v).map_err(|e| {
                        format!(
                            "{}: {}",
                            if key == "since" { "From" } else { "Until" },
                            esc(&e)
                        )
                    })
                })
                .transpose()
        };
        Ok(ListFilter {
            state,
            account: self.get("account").map(str::to_string),
            tenant: self.get("tenant").map(str::to_string),
            user: self.get("user").map(str::to_string),
            since: time("since")?,
            until: time("until")?,
            ..Default::default()
        })
    }

    /// The filters as hidden fields of a form (the bulk actions).
    fn hidden_fields(&self) -> String {
        KEYS.iter()
            .map(|k| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                    esc(self.get(k).unwrap_or(""))
                )
            })
            .collect()
    }

    /// The filters as a query string (the link to older messages).
    fn query_string(&self) -> String {
        KEYS.iter()
            .filter_map(|k| Some(format!("{k}={}", url_enc(self.get(k)?))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `GET /admin/outbox?state=&account=&tenant=&user=&since=&until=&before=`
pub(super) async fn outbox(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Query(q): Query<OutboxQuery>,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    Ok(outbox_page(&st, &s, &q, String::new()).await)
}

/// The outbox page for the filters `q`, with `top` (a notice) first.
async fn outbox_page(st: &AdminState, s: &Session, q: &OutboxQuery, top: String) -> Html<String> {
    let engine = st.engine();
    let state = q.get("state");
    let account = q.get("account");
    let mut body = top;
    // The filter form.
    let opt = |v: &str, cur: Option<&str>| {
        format!(
            "<option value=\"{v}\"{}>{}</option>",
            if cur == Some(v) { " selected" } else { "" },
            if v.is_empty() { "any" } else { v }
        )
    };
    let mut states = String::new();
    for v in [
        "",
        "queued",
        "sending",
        "sent",
        "deferred",
        "failed",
        "cancelled",
    ] {
        states.push_str(&opt(v, Some(state.unwrap_or(""))));
    }
    let mut accounts = opt("", Some(account.unwrap_or("")));
    for a in engine.settings().accounts.keys() {
        accounts.push_str(&format!(
            "<option value=\"{n}\"{sel}>{n}</option>",
            n = esc(a),
            sel = if account == Some(a.as_str()) {
                " selected"
            } else {
                ""
            }
        ));
    }
    let text = |id: &str, key: &str, label: &str, help: &str| {
        let described = if help.is_empty() {
            String::new()
        } else {
            format!(" aria-describedby=\"f-{id}-help\"")
        };
        let help = if help.is_empty() {
            String::new()
        } else {
            format!("<p class=\"help\" id=\"f-{id}-help\">{help}</p>")
        };
        format!(
            "<div class=\"field\"><label for=\"f-{id}\">{label}</label>{help}<input type=\"text\" id=\"f-{id}\" name=\"{key}\" value=\"{v}\"{described}></div>",
            v = esc(q.get(key).unwrap_or("")),
        )
    };
    body.push_str(&format!(
        "<form method=\"get\" action=\"/admin/outbox\" class=\"filters\"><div class=\"field\"><label for=\"f-state\">State</label><select id=\"f-state\" name=\"state\">{states}</select></div><div class=\"field\"><label for=\"f-account\">Account</label><select id=\"f-account\" name=\"account\">{accounts}</select></div>{tenant}{user}{since}{until}<div class=\"actions\"><button type=\"submit\">Filter</button></div></form>",
        tenant = text("tenant", "tenant", "Tenant", ""),
        user = text("user", "user", "User", ""),
        since = text("since", "since", "Created from", "UTC: 2026-11-30, 2026-11-30T08:00, or RFC 3339 with an offset"),
        until = text("until", "until", "Created before", ""),
    ));
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => {
            body.push_str(&notice(false, &e));
            return page(s, Nav::Status, "Outbox", &body);
        }
    };
    // Every message the filters match, at once (after an outage), for a
    // state that allows the move.
    if let Some(state) = filter.state {
        let fields = format!("{}{}", csrf_field(s), q.hidden_fields());
        let mut actions = String::new();
        if matches!(state, State::Failed | State::Cancelled | State::Deferred) {
            actions.push_str(&format!(
                "<form method=\"post\" action=\"/admin/outbox/retry-all\" data-confirm=\"Send every {st} message that matches these filters again, now?\">{fields}<button type=\"submit\" class=\"primary\">Retry every match</button></form>",
                st = state.as_str()
            ));
        }
        if matches!(state, State::Queued | State::Deferred) {
            actions.push_str(&format!(
                "<form method=\"post\" action=\"/admin/outbox/cancel-all\" data-confirm=\"Cancel every {st} message that matches these filters? They will not be sent.\">{fields}<button type=\"submit\" class=\"danger\">Cancel every match</button></form>",
                st = state.as_str()
            ));
        }
        if !actions.is_empty() {
            body.push_str(&format!("<div class=\"actions\">{actions}</div>"));
        }
    }
    let listed = ListFilter {
        before: q.get("before").and_then(crate::outbox::parse_cursor),
        limit: PAGE,
        ..filter
    };
    match st.app.outbox.store().list(&listed).await {
        Err(e) => body.push_str(&notice(
            false,
            &esc(&format!("the outbox cannot be read: {e}")),
        )),
        Ok(list) => {
            if list.is_empty() {
                body.push_str("<p>No messages match.</p>");
            } else {
                body.push_str("<table><thead><tr><th scope=\"col\">Created</th><th scope=\"col\">State</th><th scope=\"col\">Account</th><th scope=\"col\">To</th><th scope=\"col\">Tenant / user</th><th scope=\"col\">Tries</th><th scope=\"col\">Last error</th></tr></thead><tbody>");
                for m in &list {
                    body.push_str(&format!(
                        "<tr><td><a href=\"/admin/outbox/{id}\">{created}</a></td><td>{state}</td><td>{via}</td><td>{to}</td><td>{tenant} / {user}</td><td>{tries}</td><td>{err}</td></tr>",
                        id = url_enc(&m.id),
                        created = esc(&when(m.created_at)),
                        state = esc(m.state.as_str()),
                        via = esc(m.way_out_now().as_deref().unwrap_or("–")),
                        to = esc(&m.envelope_to.join(", ")),
                        tenant = esc(m.tenant.as_deref().unwrap_or("–")),
                        user = esc(m.user.as_deref().unwrap_or("–")),
                        tries = m.attempts_count,
                        err = esc(m.last_error.as_deref().unwrap_or("")),
                    ));
                }
                body.push_str("</tbody></table>");
                let mut nav = Vec::new();
                if q.get("before").is_some() {
                    nav.push(format!(
                        "<a href=\"/admin/outbox?{}\">Newest</a>",
                        q.query_string()
                    ));
                }
                if list.len() == PAGE as usize {
                    if let Some(last) = list.last() {
                        let filters = q.query_string();
                        let sep = if filters.is_empty() { "" } else { "&" };
                        nav.push(format!(
                            "<a href=\"/admin/outbox?{filters}{sep}before={}\" rel=\"next\">Older messages</a>",
                            url_enc(&last.cursor())
                        ));
                    }
                }
                if !nav.is_empty() {
                    body.push_str(&format!(
                        "<nav aria-label=\"Pages\" class=\"actions\">{}</nav>",
                        nav.join(" ")
                    ));
                }
            }
        }
    }
    page(s, Nav::Status, "Outbox", &body)
}

async fn message_page(st: &AdminState, s: &Session, id: &str, top: &str) -> Html<String> {
    let mut body = String::from(top);
    match st.app.outbox.store().get(id).await {
        Err(e) => body.push_str(&notice(
            false,
            &esc(&format!("the outbox cannot be read: {e}")),
        )),
        Ok(None) => body.push_str(&notice(
            false,
            &format!("No message <code>{}</code>.", esc(id)),
        )),
        Ok(Some((m, attempts))) => {
            body.push_str(&format!(
                "<dl><dt>Id</dt><dd><code>{}</code></dd><dt>Message-ID</dt><dd><code>{}</code></dd><dt>State</dt><dd id=\"message-state\">{}</dd><dt>From</dt><dd>{}</dd><dt>To</dt><dd>{}</dd><dt>Created</dt><dd>{}</dd><dt>Next try</dt><dd>{}</dd></dl>",
                esc(&m.id),
                esc(&m.message_id),
                esc(m.state.as_str()),
                esc(&m.envelope_from),
                esc(&m.envelope_to.join(", ")),
                esc(&when(m.created_at)),
                esc(&when(m.next_attempt_at)),
            ));
            body.push_str("<div class=\"actions\">");
            let u = url_enc(&m.id);
            if matches!(m.state, State::Failed | State::Cancelled | State::Deferred) {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/admin/outbox/{u}/retry\">{}<button type=\"submit\" class=\"primary\">Retry now</button></form>",
                    csrf_field(s)
                ));
            }
            if matches!(m.state, State::Queued | State::Deferred) {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/admin/outbox/{u}/cancel\" data-confirm=\"Cancel this message? It will not be sent.\">{}<button type=\"submit\" class=\"danger\">Cancel message</button></form>",
                    csrf_field(s)
                ));
            }
            body.push_str("</div><h2>Attempts</h2>");
            if attempts.is_empty() {
                body.push_str("<p>None yet.</p>");
            } else {
                body.push_str("<table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Way out</th><th scope=\"col\">Outcome</th><th scope=\"col\">Code</th><th scope=\"col\">Server said</th></tr></thead><tbody>");
                for a in &attempts {
                    body.push_str(&format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                        esc(&when(a.at)),
                        esc(&a.candidate),
                        esc(&a.class),
                        esc(a.code.as_deref().unwrap_or("")),
                        esc(&a.text)
                    ));
                }
                body.push_str("</tbody></table>");
            }
        }
    }
    body.push_str("<p><a href=\"/admin/outbox\">Back to the outbox</a></p>");
    page(s, Nav::Status, "Message", &body)
}

/// `GET /admin/outbox/{id}`
pub(super) async fn message(
    AxState(st): AxState<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    Ok(message_page(&st, &s, &id, "").await)
}

async fn change(
    st: AdminState,
    headers: HeaderMap,
    id: String,
    form: Vec<(String, String)>,
    cancel: bool,
) -> Result<Response, Denied> {
    let s = st.post_session(&headers, field(&form, "csrf"))?;
    let store = st.app.outbox.store();
    let r = if cancel {
        store.cancel(&id, now_ms()).await
    } else {
        store.retry(&id, now_ms()).await
    };
    let top = match r {
        Ok(Change::Done(_)) => {
            if !cancel {
                st.app.outbox.notify_enqueued();
            }
            tracing::info!(
                "admin: token `{}` {} message {id}",
                s.token,
                if cancel { "cancelled" } else { "retried" }
            );
            return Ok(Redirect::to(&format!("/admin/outbox/{}", url_enc(&id))).into_response());
        }
        Ok(Change::NotFound) => notice(false, &format!("No message <code>{}</code>.", esc(&id))),
        Ok(Change::NotAllowed(state)) => {
            notice(
                false,
                &esc(&if cancel {
                    format!("The message is {state}: only queued or deferred messages can be cancelled.")
                } else {
                    format!("The message is {state}: only failed, cancelled or deferred messages can be retried.")
                }),
            )
        }
        Err(e) => notice(false, &esc(&format!("the outbox cannot be changed: {e}"))),
    };
    Ok(message_page(&st, &s, &id, &top).await.into_response())
}

pub(super) async fn retry(
    AxState(st): AxState<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Denied> {
    change(st, headers, id, form, false).await
}

pub(super) async fn cancel(
    AxState(st): AxState<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Denied> {
    change(st, headers, id, form, true).await
}

/// `POST /admin/outbox/retry-all` and `/cancel-all`: every message the
/// form's filters match (its state must allow the move), then the outbox
/// page with those filters and how many moved.
async fn change_all(
    st: AdminState,
    headers: HeaderMap,
    form: Vec<(String, String)>,
    cancel: bool,
) -> Result<Response, Denied> {
    let s = st.post_session(&headers, field(&form, "csrf"))?;
    let get = |k: &str| field(&form, k).map(str::to_string);
    let q = OutboxQuery {
        state: get("state"),
        account: get("account"),
        tenant: get("tenant"),
        user: get("user"),
        since: get("since"),
        until: get("until"),
        before: None,
    };
    let top = match q.filter() {
        Err(e) => notice(false, &e),
        Ok(f) => match f.state.filter(|s| crate::outbox::movable(cancel).contains(s)) {
        None => notice(false, "Choose a state that allows it first (retry: failed, cancelled or deferred; cancel: queued or deferred)."),
        Some(state) => {
            match st.app.outbox.store().change_matching(&f, cancel, now_ms()).await {
                Ok(n) => {
                    if n > 0 && !cancel {
                        st.app.outbox.notify_enqueued();
                    }
                    tracing::info!(
                        "admin: token `{}` {} {n} {state} message(s) (account {:?}, tenant {:?}, user {:?}, created {:?}..{:?})",
                        s.token,
                        if cancel { "cancelled" } else { "retried" },
                        f.account,
                        f.tenant,
                        f.user,
                        f.since.map(when),
                        f.until.map(when),
                    );
                    notice(
                        true,
                        &format!(
                            "{n} {state} message(s) {}.",
                            if cancel { "cancelled" } else { "queued to be sent again" }
                        ),
                    )
                }
                Err(e) => notice(false, &esc(&format!("the outbox cannot be changed: {e}"))),
            }
        }
        },
    };
    // The same filters again: what is left in that state.
    Ok(outbox_page(&st, &s, &q, top).await.into_response())
}

pub(super) async fn retry_all(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Denied> {
    change_all(st, headers, form, false).await
}

pub(super) async fn cancel_all(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Denied> {
    change_all(st, headers, form, true).await
}
