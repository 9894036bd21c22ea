//! What the outbox workers did, for `/v1/status` and `/metrics`, and the
//! connection state of each account as the service saw it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{now_ms, Outbox, Store};

/// Counters of what the worker did (for status and `/metrics`).
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: std::sync::atomic::AtomicU64,
    pub deferred: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub lost_leases: std::sync::atomic::AtomicU64,
    /// Per account: tries by class, and the time tries took.
    pub accounts: Mutex<std::collections::BTreeMap<String, AccountStats>>,
    /// account → last status written, so the database is written only on
    /// change (shared by the workers and the API's account check, so that
    /// neither skips a write the other made stale).
    seen: Mutex<HashMap<String, String>>,
}

/// The persisted connection state of an account that works.
pub const OPERATING: &str = "Operating";
/// The persisted connection state of an account that could not be reached.
pub const UNABLE_TO_CONNECT: &str = "Unable to connect";

/// The state of an account nothing has tried yet.
pub const NOT_CONNECTED: &str = "Not connected";
/// The state of every account while the kill switch holds all mail.
pub const STOPPED: &str = "Stopped";

/// An account's state as `mailhost status`, `/v1/status` and the admin page
/// show it: `Stopped` while sending is switched off (`[policy] enabled =
/// false`), else what the service last recorded (`Not connected` when it
/// recorded nothing). (state, reason, when it was recorded)
pub fn shown_state(
    sending_enabled: bool,
    recorded: Option<&(String, String, i64)>,
) -> (String, String, Option<i64>) {
    if !sending_enabled {
        return (
            STOPPED.into(),
            "sending is switched off ([policy] enabled = false)".into(),
            None,
        );
    }
    match recorded {
        Some((state, reason, at)) => (state.clone(), reason.clone(), Some(*at)),
        None => (NOT_CONNECTED.into(), String::new(), None),
    }
}

/// The connection state an account check found: `Operating`, or `Unable to
/// connect` with the failed step (and the server's reply, on one line, cut
/// at 300 characters) or the error that stopped the check.
pub fn check_outcome(
    got: &Result<mailhost_plugin_api::CheckReport, mailhost_plugin_api::PluginError>,
) -> (&'static str, String) {
    match got {
        Ok(r) if r.ok() => (OPERATING, String::new()),
        Ok(r) => {
            let failed = r
                .steps
                .iter()
                .find(|s| s.outcome == mailhost_plugin_api::StepOutcome::FAILED);
            let reason = failed
                .map(|s| {
                    let server = s
                        .server_text
                        .as_str()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    if server.is_empty() {
                        format!("{}: {}", s.name, s.detail)
                    } else {
                        format!("{}: {} ({server})", s.name, s.detail)
                    }
                })
                .unwrap_or_default();
            (UNABLE_TO_CONNECT, reason.chars().take(300).collect())
        }
        Err(e) => (UNABLE_TO_CONNECT, e.message().chars().take(300).collect()),
    }
}

/// Records an account's connection state in the outbox (what `/v1/status`
/// shows), writing only when it changed since this process last wrote it.
pub async fn note_account_status(
    outbox: &Outbox,
    stats: &Stats,
    account: &str,
    state: &str,
    reason: &str,
) {
    let key = format!("{state}\n{reason}");
    {
        let mut seen = stats.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(account) == Some(&key) {
            return;
        }
        seen.insert(account.to_string(), key);
    }
    if let Err(e) = outbox
        .store()
        .set_account_status(account, state, reason, now_ms())
        .await
    {
        tracing::warn!("outbox: recording the status of account `{account}` failed: {e}");
    }
}

/// Upper bounds (seconds) of the try-latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// One account's tries in this process.
#[derive(Debug, Default, Clone)]
pub struct AccountStats {
    /// class (`ok`, `transient`, ...) → tries
    pub tries: std::collections::BTreeMap<String, u64>,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`], then the total count and sum.
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum_secs: f64,
    /// Messages this process settled whose last try went this way:
    /// `sent`, `deferred`, `failed` → count.
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
}

impl Stats {
    /// Counts settled messages under the way out of their last try (`""`:
    /// settled without a try, e.g. held or refused by the policy).
    pub(crate) fn settled<'a>(&self, outcomes: impl Iterator<Item = (&'a str, &'static str)>) {
        let mut m = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        for (account, outcome) in outcomes {
            if let Some(a) = m.get_mut(account) {
                *a.outcomes.entry(outcome).or_default() += 1;
            } else {
                let a = m.entry(account.to_string()).or_default();
                *a.outcomes.entry(outcome).or_default() += 1;
            }
        }
    }

    pub(crate) fn record(&self, account: &str, class: &str, secs: f64) {
        let mut m = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let a = m.entry(account.to_string()).or_default();
        *a.tries.entry(class.to_string()).or_default() += 1;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *le {
                a.buckets[i] += 1;
            }
        }
        a.count += 1;
        a.sum_secs += secs;
    }
}

/// Open messages per way out (account name or candidate label, `""` when
/// not known), then per state (`queued`, `deferred`, `sending`).
pub type Waiting = std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>;

/// Sums [`super::Store::open_by_way_out`]'s groups (labels as JSON, position,
/// state, count) per way out and state. A position past the labels, or
/// labels that are not a JSON array of strings, count as `""` (not known).
pub(crate) fn by_way_out(rows: Vec<(Option<String>, i64, String, i64)>) -> Waiting {
    let mut out = Waiting::new();
    for (labels, pos, state, n) in rows {
        let label = labels
            .as_deref()
            .and_then(|l| serde_json::from_str::<Vec<String>>(l).ok())
            .and_then(|l| usize::try_from(pos).ok().and_then(|p| l.into_iter().nth(p)))
            .unwrap_or_default();
        *out.entry(label).or_default().entry(state).or_default() += n.max(0) as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_messages_count_under_the_way_out_at_their_position() {
        let chain = Some(r#"["office","mode:pickup"]"#.to_string());
        let got = by_way_out(vec![
            (chain.clone(), 0, "queued".into(), 3),
            (chain.clone(), 1, "deferred".into(), 2),
            (Some(r#"["office"]"#.into()), 0, "queued".into(), 4),
            (chain, 5, "queued".into(), 1),
            (None, 0, "sending".into(), 1),
            (Some("not json".into()), 0, "sending".into(), 1),
        ]);
        let n = |a: &str, s: &str| got.get(a).and_then(|m| m.get(s)).copied();
        assert_eq!(n("office", "queued"), Some(7));
        assert_eq!(n("mode:pickup", "deferred"), Some(2));
        assert_eq!(n("", "queued"), Some(1));
        assert_eq!(n("", "sending"), Some(2));
        assert_eq!(got.values().map(|m| m.len()).sum::<usize>(), 4);
    }
}
