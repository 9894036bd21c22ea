//! Status: each account's connection state (live), Refresh (= check), and
//! the batches' progress. The outbox view is in outbox.rs.

use axum::extract::{Path, State as AxState};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::Form;
use mailhost_plugin_api::{CheckReport, PluginError, StepOutcome};

use super::{
    csrf_field, esc, field, notice, page, url_enc, when, AdminState, Denied, Nav, Session,
};
use crate::outbox::worker::note_account_status;
use crate::outbox::{State, Store};

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
