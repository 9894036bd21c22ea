//! `GET /v1/status` and `GET /metrics`: the outbox's counts, the accounts'
//! connection states and this process's worker, as JSON and for Prometheus.

use super::*;

/// An account's connection state, as the service last saw it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AccountView {
    account: String,
    plugin: String,
    /// `Stopped`, `Not connected`, `Connection in progress`, `Operating` or `Unable to connect`.
    state: String,
    /// Why, for `Unable to connect`.
    reason: String,
    /// When the service last saw this state (ms since the epoch), if it did.
    updated_at: Option<i64>,
    max_per_minute: Option<u32>,
    /// The messages waiting for this account, per state (`queued`,
    /// `deferred`, `sending`), across every process on the outbox.
    waiting: std::collections::BTreeMap<String, u64>,
}

/// The service's state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Status)]
pub(super) struct StatusView {
    /// The policy's kill switch (`[policy] enabled`).
    sending_enabled: bool,
    /// False once shutdown began.
    accepting: bool,
    /// Where the outbox is (database location, without credentials).
    outbox: String,
    /// Messages in the outbox per state.
    messages: std::collections::BTreeMap<String, u64>,
    /// When the oldest message of each open state (`queued`, `deferred`,
    /// `sending`) was accepted (ms since the epoch); absent when none is.
    oldest: std::collections::BTreeMap<String, i64>,
    worker: WorkerView,
    accounts: Vec<AccountView>,
}

/// What this process's workers settled since it started.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WorkerView {
    sent: u64,
    deferred: u64,
    failed: u64,
    lost_leases: u64,
}

#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "operations",
    operation_id = "status",
    summary = "Outbox counts, worker counters, the accounts' connection states (any scope)",
    responses(
        (status = 200, description = "The status", body = StatusView),
        (status = 401, response = openapi::Unauthorized),
        (status = 503, response = openapi::ServiceUnavailable),
    ),
    security(("bearer" = ["send"]), ("bearer" = ["admin"]))
)]
pub(super) async fn status(
    AxState(app): AxState<Shared>,
    headers: HeaderMap,
) -> Result<Json<StatusView>, Problem> {
    caller(&app, &headers)?;
    let store = app.outbox.store();
    let unavailable =
        |e: crate::outbox::OutboxError| Problem::unavailable("outbox-unavailable", e.to_string());
    let messages = store.counts().await.map_err(unavailable)?;
    let seen = store.account_statuses().await.map_err(unavailable)?;
    let open = store.open_by_way_out().await.map_err(unavailable)?;
    let oldest = store.oldest_open().await.map_err(unavailable)?;
    let engine = app.engine.get();
    let accounts = engine
        .settings()
        .accounts
        .values()
        .map(|a| {
            let (state, reason, updated_at) = crate::outbox::stats::shown_state(
                engine.settings().policy.enabled,
                seen.get(&a.name),
            );
            AccountView {
                account: a.name.clone(),
                plugin: a.plugin.clone(),
                state,
                reason,
                updated_at,
                max_per_minute: a.max_per_minute,
                waiting: open.get(&a.name).cloned().unwrap_or_default(),
            }
        })
        .collect();
    let l = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    Ok(Json(StatusView {
        sending_enabled: engine.settings().policy.enabled,
        accepting: app.accepting.load(Ordering::Relaxed),
        outbox: store.location().to_string(),
        messages,
        oldest,
        worker: WorkerView {
            sent: l(&app.stats.sent),
            deferred: l(&app.stats.deferred),
            failed: l(&app.stats.failed),
            lost_leases: l(&app.stats.lost_leases),
        },
        accounts,
    }))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    summary = "Prometheus metrics (no token)",
    description = "Messages per state and the age of the oldest open one (the whole outbox); a SQLite outbox's free disk space and whether new messages are refused for lack of it; when the API's certificate runs out; this process's outcomes, tries per account and class, and try latency per account (a histogram). Counts and account names only: bind to loopback, or scrape through a proxy.",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String,
            example = "# TYPE mailhost_outbox_messages gauge\nmailhost_outbox_messages{state=\"queued\"} 3\n"),
        (status = 503, response = openapi::ServiceUnavailable),
    )
)]
/// Prometheus text format: messages per state (the whole outbox), and this
/// process's outcomes, tries per account and class, and try latency per account.
/// No token: it holds counts and account names only (bind to loopback, or scrape through a proxy).
pub(super) async fn metrics(AxState(app): AxState<Shared>) -> Response {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (counts, open, oldest) = match tokio::try_join!(
        app.outbox.store().counts(),
        app.outbox.store().open_by_way_out(),
        app.outbox.store().oldest_open()
    ) {
        Ok(c) => c,
        Err(e) => return Problem::unavailable("outbox-unavailable", e.to_string()).into_response(),
    };
    let esc = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let _ = writeln!(
        out,
        "# HELP mailhost_outbox_messages Messages in the outbox by state."
    );
    let _ = writeln!(out, "# TYPE mailhost_outbox_messages gauge");
    for (state, n) in &counts {
        let _ = writeln!(out, "mailhost_outbox_messages{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP mailhost_outbox_waiting_messages Messages not settled yet (queued, deferred, sending), by the account or way out they wait for (\"\": not known)."
    );
    let _ = writeln!(out, "# TYPE mailhost_outbox_waiting_messages gauge");
    for (account, states) in &open {
        let account = esc(account);
        for (state, n) in states {
            let _ = writeln!(
                out,
                "mailhost_outbox_waiting_messages{{account=\"{account}\",state=\"{state}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP mailhost_outbox_oldest_message_age_seconds How long the oldest message in each open state has been in the outbox (0: none): mail that waits too long."
    );
    let _ = writeln!(
        out,
        "# TYPE mailhost_outbox_oldest_message_age_seconds gauge"
    );
    let now = crate::outbox::now_ms();
    for state in ["queued", "deferred", "sending"] {
        let age = oldest
            .get(state)
            .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
        let _ = writeln!(
            out,
            "mailhost_outbox_oldest_message_age_seconds{{state=\"{state}\"}} {age}"
        );
    }
    if let Some((free, min, refusing)) = app.outbox.disk() {
        let _ = writeln!(
            out,
            "# HELP mailhost_outbox_disk_free_bytes Free space on the SQLite outbox's disk."
        );
        let _ = writeln!(out, "# TYPE mailhost_outbox_disk_free_bytes gauge");
        if let Some(free) = free {
            let _ = writeln!(out, "mailhost_outbox_disk_free_bytes {free}");
        }
        let _ = writeln!(out, "# HELP mailhost_outbox_disk_min_free_bytes [outbox] min_free_mb: below it new messages are refused.");
        let _ = writeln!(out, "# TYPE mailhost_outbox_disk_min_free_bytes gauge");
        let _ = writeln!(out, "mailhost_outbox_disk_min_free_bytes {min}");
        let _ = writeln!(out, "# HELP mailhost_outbox_refusing_new 1 while new messages are refused for lack of disk space.");
        let _ = writeln!(out, "# TYPE mailhost_outbox_refusing_new gauge");
        let _ = writeln!(out, "mailhost_outbox_refusing_new {}", u8::from(refusing));
    }
    if let Some(end) = app.certs.as_ref().and_then(|c| c.expires()) {
        let _ = writeln!(out, "# HELP mailhost_api_certificate_expiry_timestamp_seconds When the API's TLS certificate runs out (Unix time).");
        let _ = writeln!(
            out,
            "# TYPE mailhost_api_certificate_expiry_timestamp_seconds gauge"
        );
        let _ = writeln!(
            out,
            "mailhost_api_certificate_expiry_timestamp_seconds {end}"
        );
    }
    let l = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP mailhost_worker_outcomes_total Messages this process settled, by outcome."
    );
    let _ = writeln!(out, "# TYPE mailhost_worker_outcomes_total counter");
    for (k, v) in [
        ("sent", l(&app.stats.sent)),
        ("deferred", l(&app.stats.deferred)),
        ("failed", l(&app.stats.failed)),
        ("lease_lost", l(&app.stats.lost_leases)),
    ] {
        let _ = writeln!(out, "mailhost_worker_outcomes_total{{outcome=\"{k}\"}} {v}");
    }
    let accounts = app
        .stats
        .accounts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let _ = writeln!(out, "# HELP mailhost_account_messages_total Messages this process settled, by the account or way out of their last try (\"\": none, e.g. refused by the policy) and outcome.");
    let _ = writeln!(out, "# TYPE mailhost_account_messages_total counter");
    for (acc, a) in &accounts {
        for (outcome, n) in &a.outcomes {
            let _ = writeln!(
                out,
                "mailhost_account_messages_total{{account=\"{}\",outcome=\"{outcome}\"}} {n}",
                esc(acc)
            );
        }
    }
    let _ = writeln!(out, "# HELP mailhost_tries_total Tries through a way out, by account and class (ok or the error class).");
    let _ = writeln!(out, "# TYPE mailhost_tries_total counter");
    for (acc, a) in &accounts {
        for (class, n) in &a.tries {
            let _ = writeln!(
                out,
                "mailhost_tries_total{{account=\"{}\",class=\"{class}\"}} {n}",
                esc(acc)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP mailhost_try_duration_seconds How long one try through a way out took."
    );
    let _ = writeln!(out, "# TYPE mailhost_try_duration_seconds histogram");
    for (acc, a) in accounts.iter().filter(|(_, a)| a.count > 0) {
        let acc = esc(acc);
        for (le, n) in worker::LATENCY_BUCKETS.iter().zip(a.buckets.iter()) {
            let _ = writeln!(
                out,
                "mailhost_try_duration_seconds_bucket{{account=\"{acc}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "mailhost_try_duration_seconds_bucket{{account=\"{acc}\",le=\"+Inf\"}} {}",
            a.count
        );
        let _ = writeln!(
            out,
            "mailhost_try_duration_seconds_sum{{account=\"{acc}\"}} {}",
            a.sum_secs
        );
        let _ = writeln!(
            out,
            "mailhost_try_duration_seconds_count{{account=\"{acc}\"}} {}",
            a.count
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
