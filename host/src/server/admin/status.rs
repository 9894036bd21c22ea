//! Status: each account's connection state (live), Refresh (= check), and
//! the outbox with filters, a message's attempts, retry and cancel.

use axum::extract::{Path, Query, State as AxState};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use mailhost_plugin_api::{CheckReport, PluginError, StepOutcome};
use serde::Deserialize;

use super::{
    csrf_field, esc, field, notice, page, url_enc, when, AdminState, Denied, Nav, Session,
};
use crate::outbox::worker::note_account_status;
use crate::outbox::{now_ms, Change, ListFilter, State, Store};

/// The state shown while a check runs.
pub const CONNECTING: &str = "Connection in progress";

#[derive(Debug)]
pub(crate) struct AccountRow {
    pub account: String,
    pub plugin: String,
    pub state: String,
    pub reason: String,
    /// When this state was recorded (UTC text), empty if never.
    pub since: String,
}

#[derive(Debug)]
pub(crate) struct StatusRows {
    pub sending_enabled: bool,
    pub accounts: Vec<AccountRow>,
}

async fn rows(st: &AdminState) -> Result<StatusRows, String> {
    let engine = st.engine();
    let seen = st
        .app
        .outbox
        .store()
        .account_statuses()
        .await
        .map_err(|e| format!("the outbox cannot be read: {e}"))?;
    let accounts = engine
        .settings()
        .accounts
        .values()
        .map(|a| {
            let (state, reason, at) = crate::outbox::stats::shown_state(
                engine.settings().policy.enabled,
                seen.get(&a.name),
            );
            AccountRow {
                account: a.name.clone(),
                plugin: a.plugin.clone(),
                state,
                reason,
                since: at.map(when).unwrap_or_default(),
            }
        })
        .collect();
    Ok(StatusRows {
        sending_enabled: engine.settings().policy.enabled,
        accounts,
    })
}

/// The steps of a check as a table, with the server's words.
pub(crate) fn steps_html(account: &str, got: &Result<CheckReport, PluginError>) -> String {
    match got {
        Err(e) => notice(
            false,
            &format!(
                "<strong>Test of <code>{}</code> could not run.</strong><pre>{}</pre>",
                esc(account),
                esc(&e.to_string())
            ),
        ),
        Ok(r) => {
            let ok = r.ok();
            let mut rows = String::new();
            for s in r.steps.iter() {
                let outcome = s.outcome.name();
                let class = if s.outcome == StepOutcome::FAILED {
                    "step-failed"
                } else if s.outcome == StepOutcome::OK {
                    "step-ok"
                } else {
                    ""
                };
                rows.push_str(&format!(
                    "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td><code>{}</code></td><td>{} ms</td></tr>",
                    esc(s.name.as_str()),
                    esc(outcome),
                    esc(s.detail.as_str()),
                    esc(s.server_text.as_str()),
                    s.duration_ms
                ));
            }
            notice(
                ok,
                &format!(
                    "<strong>Test of <code>{}</code>: {}</strong><table class=\"steps\"><caption class=\"sr-only\">Test steps</caption><thead><tr><th scope=\"col\">Step</th><th scope=\"col\">Outcome</th><th scope=\"col\">Detail</th><th scope=\"col\">Server said</th><th scope=\"col\">Took</th></tr></thead><tbody>{rows}</tbody></table>",
                    esc(account),
                    if ok { "every step passed" } else { "a step failed" }
                ),
            )
        }
    }
}

/// Records what a check found as the account's connection state.
pub(crate) async fn record_check(
    st: &AdminState,
    account: &str,
    got: &Result<CheckReport, PluginError>,
) {
    let (state, reason) = crate::outbox::stats::check_outcome(got);
    note_account_status(&st.app.outbox, &st.app.stats, account, state, &reason).await;
}

async fn render(st: &AdminState, s: &Session, top: &str) -> Html<String> {
    let mut body = String::from(top);
    match rows(st).await {
        Err(e) => body.push_str(&notice(false, &esc(&e))),
        Ok(r) => {
            body.push_str(&format!(
                "<p>Sending: <strong id=\"kill-state\">{}</strong> · <span id=\"status-live\" class=\"muted\" aria-live=\"polite\">updates every 2 seconds</span></p>",
                if r.sending_enabled { "on" } else { "off (kill switch)" }
            ));
            body.push_str("<h2>Accounts</h2><table id=\"account-status\"><thead><tr><th scope=\"col\">Account</th><th scope=\"col\">Plugin</th><th scope=\"col\">Connection</th><th scope=\"col\">Reason</th><th scope=\"col\">Since</th><th scope=\"col\"><span class=\"sr-only\">Actions</span></th></tr></thead><tbody>");
            for a in &r.accounts {
                body.push_str(&format!(
                    "<tr data-account=\"{n}\"><th scope=\"row\"><a href=\"/admin/accounts/{u}\">{n}</a></th><td>{p}</td><td class=\"state state-{cls}\">{state}</td><td class=\"reason\">{reason}</td><td class=\"since\">{since}</td><td><form method=\"post\" action=\"/admin/status/{u}/refresh\" class=\"inline\">{csrf}<button type=\"submit\" aria-label=\"Refresh {n}\">Refresh</button></form></td></tr>",
                    n = esc(&a.account),
                    u = url_enc(&a.account),
                    p = esc(&a.plugin),
                    cls = esc(&a.state.replace(' ', "-")),
                    state = esc(&a.state),
                    reason = esc(&a.reason),
                    since = esc(&a.since),
                    csrf = csrf_field(s),
                ));
            }
            body.push_str("</tbody></table>");
        }
    }
    match st.app.outbox.store().counts().await {
        Ok(c) => {
            let parts: Vec<String> = c
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<a href=\"/admin/outbox?state={}\">{}: {v}</a>",
                        url_enc(k),
                        esc(k)
                    )
                })
                .collect();
            body.push_str(&format!(
                "<h2>Outbox</h2><p>{} · <a href=\"/admin/outbox\">all messages</a></p>",
                if parts.is_empty() {
                    "empty".to_string()
                } else {
                    parts.join(" · ")
                }
            ));
        }
        Err(e) => body.push_str(&notice(
            false,
            &esc(&format!("the outbox cannot be read: {e}")),
        )),
    }
    body.push_str(&batches_html(st).await);
    page(s, Nav::Status, "Status", &body)
}

/// How many of the newest batches the status page shows.
const BATCHES_SHOWN: u32 = 10;

/// The newest batches with their progress (counts per state, from the messages).
async fn batches_html(st: &AdminState) -> String {
    use crate::outbox::batches::BatchStore;
    let store = st.app.outbox.store();
    let list = match store.list_batches(None, None, BATCHES_SHOWN).await {
        Ok(l) => l,
        Err(e) => {
            return notice(
                false,
                &esc(&format!("the outbox's batches cannot be read: {e}")),
            )
        }
    };
    let mut out = String::from("<h2>Batches</h2>");
    if list.is_empty() {
        out.push_str("<p id=\"batches-none\">No batches yet (<code>mailhost send-batch</code>, <code>POST /v1/batches</code>).</p>");
        return out;
    }
    out.push_str("<table id=\"batch-status\"><thead><tr><th scope=\"col\">Batch</th><th scope=\"col\">Created</th><th scope=\"col\">Progress</th><th scope=\"col\">Sent</th><th scope=\"col\">Failed</th><th scope=\"col\">Cancelled</th><th scope=\"col\">Waiting</th><th scope=\"col\">Rate</th></tr></thead><tbody>");
    for b in list {
        let Ok(Some(s)) = store.batch_status(&b.id).await else {
            continue;
        };
        let waiting = s.count(State::Queued) + s.count(State::Sending) + s.count(State::Deferred);
        let total = s.batch.total.max(1);
        let name = s.batch.label.clone().unwrap_or_else(|| s.batch.id.clone());
        let rate = if s.batch.per_minute == 0 {
            "not paced".to_string()
        } else {
            format!("{}/min", s.batch.per_minute)
        };
        out.push_str(&format!(
            "<tr data-batch=\"{id}\"><th scope=\"row\" title=\"{id}\">{name}</th><td>{created}</td><td class=\"progress\"><progress max=\"{total}\" value=\"{fin}\" aria-label=\"{name}: {fin} of {total} settled\">{fin}/{total}</progress> {fin}/{total}{done}</td><td class=\"sent\">{sent}</td><td class=\"failed\">{failed}</td><td class=\"cancelled\">{cancelled}</td><td class=\"waiting\">{waiting}</td><td>{rate}</td></tr>",
            id = esc(&s.batch.id),
            name = esc(&name),
            created = esc(&when(s.batch.created_at)),
            total = total,
            fin = s.finished(),
            done = if s.done { " · done" } else { "" },
            sent = s.count(State::Sent),
            failed = s.count(State::Failed),
            cancelled = s.count(State::Cancelled),
            waiting = waiting,
            rate = esc(&rate),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// `GET /admin/status`
pub(super) async fn show(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
) -> Result<Html<String>, Denied> {
    let s = st.session(&headers)?;
    Ok(render(&st, &s, "").await)
}

/// Runs an account's check on a blocking thread.
pub(crate) async fn run_check(
    engine: std::sync::Arc<crate::engine::Engine>,
    account: &str,
    to: Option<&str>,
) -> Result<CheckReport, PluginError> {
    let options = match to {
        Some(to) => serde_json::json!({ "test_recipient": to }),
        None => serde_json::json!({}),
    }
    .to_string();
    let name = account.to_string();
    tokio::task::spawn_blocking(move || engine.check(&name, &options))
        .await
        .unwrap_or_else(|e| Err(PluginError::permanent(format!("the check stopped: {e}"))))
}

/// `POST /admin/status/{name}/refresh`: the account's check, its steps shown.
pub(super) async fn refresh(
    AxState(st): AxState<AdminState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Html<String>, Denied> {
    let s = st.post_session(&headers, field(&form, "csrf"))?;
    let engine = st.engine();
    if !engine.settings().accounts.contains_key(&name) {
        return Ok(render(
            &st,
            &s,
            &notice(
                false,
                &format!("There is no account <code>{}</code>.", esc(&name)),
            ),
        )
        .await);
    }
    note_account_status(&st.app.outbox, &st.app.stats, &name, CONNECTING, "").await;
    let got = run_check(engine, &name, None).await;
    record_check(&st, &name, &got).await;
    Ok(render(&st, &s, &steps_html(&name, &got)).await)
}

#[derive(Debug, Deserialize)]
pub(super) struct OutboxQuery {
    state: Option<String>,
    account: Option<String>,
    tenant: Option<String>,
    user: Option<String>,
}

/// `GET /admin/outbox?state=&account=&tenant=&user=`
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
    let nonempty = |v: &Option<String>| v.clone().filter(|x| !x.is_empty());
    let state = nonempty(&q.state);
    let account = nonempty(&q.account);
    let mut body = top;
    let parsed = match state.as_deref() {
        None => None,
        Some(x) => match State::parse(x) {
            Some(v) => Some(v),
            None => {
                body.push_str(&notice(
                    false,
                    &format!("Unknown state <code>{}</code>.", esc(x)),
                ));
                None
            }
        },
    };
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
        states.push_str(&opt(v, Some(state.as_deref().unwrap_or(""))));
    }
    let mut accounts = opt("", Some(account.as_deref().unwrap_or("")));
    for a in engine.settings().accounts.keys() {
        accounts.push_str(&format!(
            "<option value=\"{n}\"{sel}>{n}</option>",
            n = esc(a),
            sel = if account.as_deref() == Some(a.as_str()) {
                " selected"
            } else {
                ""
            }
        ));
    }
    body.push_str(&format!(
        "<form method=\"get\" action=\"/admin/outbox\" class=\"filters\"><div class=\"field\"><label for=\"f-state\">State</label><select id=\"f-state\" name=\"state\">{states}</select></div><div class=\"field\"><label for=\"f-account\">Account</label><select id=\"f-account\" name=\"account\">{accounts}</select></div><div class=\"field\"><label for=\"f-tenant\">Tenant</label><input type=\"text\" id=\"f-tenant\" name=\"tenant\" value=\"{t}\"></div><div class=\"field\"><label for=\"f-user\">User</label><input type=\"text\" id=\"f-user\" name=\"user\" value=\"{u}\"></div><div class=\"actions\"><button type=\"submit\">Filter</button></div></form>",
        t = esc(q.tenant.as_deref().unwrap_or("")),
        u = esc(q.user.as_deref().unwrap_or("")),
    ));
    let filter = ListFilter {
        state: parsed,
        tenant: nonempty(&q.tenant),
        user: nonempty(&q.user),
        account: account.clone(),
        before: None,
        limit: 200,
        ..Default::default()
    };
    // Every message the filters match, at once (after an outage), for a
    // state that allows the move.
    if let Some(state) = parsed {
        let hidden = |name: &str, v: &Option<String>| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                esc(v.as_deref().unwrap_or(""))
            )
        };
        let fields = format!(
            "{}{}{}{}{}",
            csrf_field(s),
            hidden("state", &Some(state.as_str().to_string())),
            hidden("account", &account),
            hidden("tenant", &nonempty(&q.tenant)),
            hidden("user", &nonempty(&q.user)),
        );
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
    match st.app.outbox.store().list(&filter).await {
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
    let get = |k: &str| {
        field(&form, k)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let q = OutboxQuery {
        state: get("state"),
        account: get("account"),
        tenant: get("tenant"),
        user: get("user"),
    };
    let state = q.state.as_deref().and_then(State::parse);
    let top = match state.filter(|s| crate::outbox::movable(cancel).contains(s)) {
        None => notice(false, "Choose a state that allows it first (retry: failed, cancelled or deferred; cancel: queued or deferred)."),
        Some(state) => {
            let f = ListFilter {
                state: Some(state),
                account: q.account.clone(),
                tenant: q.tenant.clone(),
                user: q.user.clone(),
                ..Default::default()
            };
            match st.app.outbox.store().change_matching(&f, cancel, now_ms()).await {
                Ok(n) => {
                    tracing::info!(
                        "admin: token `{}` {} {n} {state} message(s) (account {:?}, tenant {:?}, user {:?})",
                        s.token,
                        if cancel { "cancelled" } else { "retried" },
                        f.account,
                        f.tenant,
                        f.user
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
