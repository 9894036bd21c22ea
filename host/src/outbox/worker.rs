//! The outbox worker: claims due messages in small batches and, for each,
//! re-checks the policy, then makes **one try per way out** of its chain:
//!
//! - sent → `sent`;
//! - transient (SMTP 4xx, HTTP 429/5xx) → `deferred` with backoff and jitter,
//!   at least the server's `retry_after`, while the way out has been tried for
//!   less than `max_age`; after that the next way out is tried at once;
//! - auth / config / unavailable / unsupported → the next way out at once;
//! - permanent → `failed` with the server's reply;
//! - no way out left → `failed` with the last error.
//!
//! Every try is recorded. Plugin calls block: they run on the lanes'
//! blocking threads, `concurrency` of them. A lane's claimed messages that go
//! out the same way are tried in one plugin call when the plugin overlaps
//! them (`send_many`, attempt.rs);
//! at most `per_account` messages of one account are in flight in this
//! process. An account's `max_per_minute` and `max_concurrent` are taken from
//! the database, so they hold across processes; its `max_age_secs` overrides
//! the outbox's. The worker never sleeps on a backoff: a deferred message
//! goes back to the database with its `next_attempt_at`.
//!
//! Commit order (the duplicate window): a message is marked `sending` (with a
//! lease) before its first try. A lane tries up to `messages_per_step`
//! ([`LANE_BATCH`] by default) messages
//! (those going out the same way in one call) and then commits their outcomes
//! (`sent`, `deferred`, `failed`) in one step, shared with the other lanes'
//! (on SQLite the same commit claims its next messages). While the queue is
//! deep the lane already holds its next group (claimed by the step before)
//! and sends it while the step commits; it waits for that commit before it
//! sends the group after. A crash between a server's acceptance and the
//! commit of its outcome leaves the message `sending`; once the lease expires
//! it is sent again with the same Message-ID. So after a crash at most
//! `2 × messages_per_step` messages per lane (the group committing and the
//! group in hand; [`DUPLICATE_WINDOW_PER_LANE`] by default), `concurrency ×
//! 2 × messages_per_step` per worker process (128 with the defaults,
//! `concurrency = 8` and 8), can be delivered twice.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailhost_plugin_api::PluginError;
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{now_ms, AttemptRecord, MessageRecord, Outbox, OutboxError, Settle, State, Store};
use crate::policy::Candidate;

/// What the claim-time policy check says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Go ahead.
    Go,
    /// Keep the message queued and look again later (e.g. the kill switch is on).
    Hold(String),
    /// Never send it (tenant disabled, account removed, purpose gone).
    Refuse(String),
}

/// The engine as the worker sees it. `attempt` blocks (plugins are blocking).
pub trait Deliver: Send + Sync + 'static {
    /// The claim-time policy check for a stored message. Runs on the async
    /// worker: it must not block (it reads the config, never a plugin).
    /// `chain` is the stored chain ([`stored_chain`]), read once by the worker.
    fn recheck(&self, rec: &MessageRecord, chain: &[Candidate]) -> Recheck;
    /// The account's limits from its config.
    fn limits(&self, account: &str) -> AccountLimits;
    /// One try through one way out; the server's reply on success.
    fn attempt(&self, rec: &MessageRecord, way_out: &Candidate) -> Result<String, PluginError>;
    /// Whether messages going out through `way_out` are best tried together
    /// ([`Deliver::attempt_many`]: the plugin overlaps them). Default: no.
    fn tries_together(&self, _way_out: &Candidate) -> bool {
        false
    }
    /// One try each for several messages through the same way out, at once
    /// where the plugin can (one result per message, in order). Default:
    /// [`Deliver::attempt`] for each in turn.
    fn attempt_many(
        &self,
        recs: &[&MessageRecord],
        way_out: &Candidate,
    ) -> Vec<Result<String, PluginError>> {
        recs.iter().map(|r| self.attempt(r, way_out)).collect()
    }
}

/// An account's own limits (`[accounts.NAME]`); `None`: no limit / the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountLimits {
    /// Sends per minute, across every process on the database.
    pub max_per_minute: Option<u32>,
    /// Sends in flight at once, across every process on the database.
    pub max_concurrent: Option<u32>,
    /// Overrides [`WorkerConfig::max_age`] for this account.
    pub max_age: Option<Duration>,
}

/// How long a try waits in-process for one of its account's send slots
/// before the message goes back to the queue (it keeps its lease meanwhile).
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this process's leases (unique per process).
    pub owner: String,
    /// Plugin calls in flight at once (all accounts).
    pub concurrency: usize,
    /// Plugin calls in flight at once per account.
    pub per_account: usize,
    /// Messages a lane claims and tries per step (`messages_per_step`).
    pub lane_batch: usize,
    /// How long a claim holds a message; renewed every third of it while the process lives.
    pub lease: Duration,
    /// How often an idle worker looks for due messages (an enqueue in this process wakes it at once).
    pub poll: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long one way out is retried after transient errors before the next way out is tried.
    pub max_age: Duration,
    /// How long a held message waits before it is checked again.
    pub hold: Duration,
    /// Days settled messages are kept (None: for good; see retention.rs).
    pub retention_days: Option<u32>,
}

impl WorkerConfig {
    /// The most messages this process can have sent whose outcome is not
    /// committed yet: two groups per lane (module docs).
    pub fn duplicate_window(&self) -> usize {
        self.concurrency.max(1) * 2 * self.lane_batch.max(1)
    }

    pub fn new(owner: impl Into<String>) -> Self {
        WorkerConfig {
            owner: owner.into(),
            concurrency: 8,
            per_account: 4,
            lane_batch: LANE_BATCH,
            lease: Duration::from_secs(120),
            poll: Duration::from_millis(500),
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            max_age: Duration::from_secs(24 * 3600),
            hold: Duration::from_secs(60),
            retention_days: None,
        }
    }
}

/// A process-unique lease owner: `host-pid-random`.
pub fn owner_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let r = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &r[..8])
}

/// The part of a stored decision the worker needs.
#[derive(Deserialize)]
struct StoredDecision {
    #[serde(default)]
    chain: Vec<StoredCandidate>,
}

#[derive(Deserialize)]
struct StoredCandidate {
    label: String,
    account: Option<String>,
    plugin: Option<String>,
    mode: String,
}

/// The ways out stored with the message, in order.
pub fn stored_chain(decision_json: &str) -> Result<Vec<Candidate>, String> {
    let d: StoredDecision = serde_json::from_str(decision_json)
        .map_err(|e| format!("the stored policy decision cannot be read: {e}"))?;
    Ok(d.chain
        .into_iter()
        .map(|c| Candidate {
            label: c.label,
            account: c.account,
            plugin: c.plugin,
            mode: c.mode,
        })
        .collect())
}

pub use super::stats::{
    note_account_status, AccountStats, Stats, LATENCY_BUCKETS, OPERATING, UNABLE_TO_CONNECT,
};

/// How many claimed messages one lane sends before their outcomes are
/// committed (one commit for the group, shared with the other lanes'), unless
/// `[outbox] messages_per_step` says otherwise.
pub const LANE_BATCH: usize = 8;

/// The most `[outbox] messages_per_step` may be.
pub const MAX_LANE_BATCH: usize = 64;

/// The most `[outbox] concurrency` may be (each lane is a thread).
pub const MAX_CONCURRENCY: usize = 256;

/// The most `[outbox] per_account` may be.
pub const MAX_PER_ACCOUNT: usize = 10_000;

/// The most messages one lane can have sent whose outcome is not committed
/// yet, with the default [`LANE_BATCH`]: a crash may deliver these twice
/// (module docs; [`WorkerConfig::duplicate_window`] for a configured one).
pub const DUPLICATE_WINDOW_PER_LANE: usize = 2 * LANE_BATCH;

/// A running worker's shared parts.
pub(super) struct Shared<D> {
    pub(super) outbox: Outbox,
    pub(super) deliver: Arc<D>,
    pub(super) cfg: WorkerConfig,
    accounts: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub(super) stats: Arc<Stats>,
    /// Lanes waiting for work (they take smaller groups while others idle).
    idle: AtomicUsize,
}

/// A lane's outcome for one claimed message: the message, its tries, its new state.
type Outcome = (MessageRecord, Vec<AttemptRecord>, Settle);

/// Runs until `shutdown` turns true; then stops claiming, waits up to
/// `drain` for the messages in flight, and releases every lease it still holds.
///
/// The worker runs `concurrency` lanes. A lane is one blocking thread for the
/// worker's whole life: it takes up to `messages_per_step` due messages, tries them
/// (those going out the same way in one plugin call, which blocks its
/// thread; attempt.rs), then records their outcomes and takes its next
/// messages in **one** step (one commit on SQLite, shared with the other
/// lanes' and the API's), which runs while the lane sends the group it
/// already holds (`lane`). No thread hop per message, and a plugin that
/// keeps connections per thread (SMTP) finds its own again.
pub async fn run<D: Deliver>(
    outbox: Outbox,
    deliver: Arc<D>,
    cfg: WorkerConfig,
    stats: Arc<Stats>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) -> Result<(), OutboxError> {
    let owner = cfg.owner.clone();
    let lease = cfg.lease;
    let lanes = cfg.concurrency.max(1);
    let shared = Arc::new(Shared {
        outbox: outbox.clone(),
        deliver,
        cfg,
        accounts: Mutex::new(HashMap::new()),
        stats,
        idle: AtomicUsize::new(0),
    });
    // Keep this process's leases alive while it runs.
    let renewer = {
        let outbox = outbox.clone();
        let owner = owner.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = now_ms() + lease.as_millis() as i64;
                if let Err(e) = outbox.store().renew(&owner, until).await {
                    tracing::warn!("outbox: renewing leases failed: {e}");
                }
            }
        })
    };
    let retention = tokio::spawn(super::retention::run(
        outbox.clone(),
        shared.cfg.retention_days,
    ));
    let mut running = JoinSet::new();
    for index in 0..lanes {
        let shared = shared.clone();
        let rt = tokio::runtime::Handle::current();
        let shutdown = shutdown.clone();
        running.spawn_blocking(move || lane(index, &shared, &rt, shutdown));
    }
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    // Lanes stop taking messages; let what is in flight finish, within the deadline.
    let finished = tokio::time::timeout(drain, async {
        while running.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !finished {
        tracing::warn!(
            "outbox: {} lane(s) still in flight after {} ms; releasing their leases (their messages may be sent again: same Message-ID)",
            running.len(),
            drain.as_millis()
        );
    }
    renewer.abort();
    retention.abort();
    match outbox.store().release(&owner, now_ms()).await {
        Ok(n) if n > 0 => tracing::info!("outbox: released {n} lease(s)"),
        Ok(_) => {}
        Err(e) => tracing::error!("outbox: releasing leases failed: {e}"),
    }
    Ok(())
}

/// One lane, until shutdown. A step records the outcomes of the messages it
/// tried last and claims its next ones, in one commit; while the queue is
/// deep the lane sends the messages it already holds **while** that step
/// commits (it claims a group ahead), and waits for the step only when it
/// needs the group the step claimed. So a lane never waits for a commit while
/// it has messages to send, and after a crash at most two groups of
/// `messages_per_step` of its messages can have been sent without their outcome
/// written: the group whose step was committing and the group in hand. When
/// the queue is short it claims nothing ahead (an idle lane takes what is
/// due). At shutdown it stops after the message in hand and records what it
/// did; the messages it had not tried go back to the queue with the
/// process's other leases. An idle lane's claim waits in the store where it
/// can (SQLite's writer thread, until the lane's poll interval): a message
/// enqueued meanwhile is claimed in its enqueue's commit. Elsewhere the lane
/// sleeps until an enqueue in this process wakes it, or its poll interval.
fn lane<D: Deliver>(
    index: usize,
    sh: &Arc<Shared<D>>,
    rt: &tokio::runtime::Handle,
    mut shutdown: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering::SeqCst;
    // Tried, outcome not handed to a step yet.
    let batch = sh.cfg.lane_batch.max(1);
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch);
    // Claimed by the last step, not tried yet, with the claim's pacing turn.
    let mut in_hand: Vec<MessageRecord> = Vec::new();
    let mut hand_turn: Option<u64> = None;
    loop {
        let stopping = stopped(&shutdown);
        if stopping && !in_hand.is_empty() {
            // Never tried: their leases are released with the process's.
            // Their pacing turn passes to the claims after it.
            drop(hand_turn.take().map(|n| sh.outbox.turns().wait(n)));
            in_hand.clear();
        }
        let idle = sh.idle.load(SeqCst);
        let want = if stopping {
            0
        } else if !in_hand.is_empty() {
            // Claim a group ahead only while the queue is deep (the last
            // claim took a full group) and no lane waits for work: otherwise
            // what is due is for the idle ones.
            if in_hand.len() >= batch && idle == 0 {
                batch
            } else {
                0
            }
        } else if idle == 0 {
            batch
        } else {
            // While other lanes wait for work, take a share, not a full group:
            // a few due messages spread over lanes instead of queueing in one.
            (batch / (idle + 1)).max(1)
        };
        if outcomes.is_empty() && want == 0 {
            if in_hand.is_empty() {
                return; // stopping, and nothing left to record
            }
            let (claimed, turn) = (std::mem::take(&mut in_hand), hand_turn.take());
            outcomes = send_claimed(sh, rt, claimed, turn, &shutdown);
            continue;
        }
        // The attempts move into the step: after it only the states are logged,
        // and counted under the way out of each one's last try.
        let mut committing = std::mem::take(&mut outcomes);
        let ways: Vec<String> = committing
            .iter()
            .map(|(_, a, _)| a.last().map(|a| a.candidate.clone()).unwrap_or_default())
            .collect();
        let items = committing
            .iter_mut()
            .map(|(rec, attempts, s)| super::store::SettleItem {
                id: rec.id.clone(),
                owner: sh.cfg.owner.clone(),
                attempts: std::mem::take(attempts),
                settle: s.clone(),
                first_seq: Some(rec.attempts_count),
            })
            .collect();
        // Lane 0 looks for due messages every `poll`, the others less
        // often: an enqueue in this process, or a lane that found a full
        // group, wakes one at once.
        let wait = if index == 0 {
            sh.cfg.poll
        } else {
            sh.cfg.poll * 8
        };
        // An idle lane's claim (nothing to record, nothing in hand) waits in
        // the store for messages where the store can: on SQLite a message
        // enqueued meanwhile is claimed in its enqueue's commit.
        let park =
            (want > 0 && committing.is_empty() && in_hand.is_empty() && sh.outbox.parks_claims())
                .then_some(wait);
        if park.is_some() {
            // Counted before the claim goes out: a lane whose claim takes a
            // full group after this sees it and wakes the waiting claim (below).
            sh.idle.fetch_add(1, SeqCst);
        }
        let pending =
            sh.outbox
                .start_step(items, &sh.cfg.owner, want as u32, sh.cfg.lease, park, rt);
        if !in_hand.is_empty() {
            let (claimed, turn) = (std::mem::take(&mut in_hand), hand_turn.take());
            outcomes = send_claimed(sh, rt, claimed, turn, &shutdown);
        }
        let finished = if park.is_some() {
            let r = rt.block_on(async {
                tokio::select! {
                    r = pending.finish() => Some(r),
                    _ = shutdown.changed() => None,
                }
            });
            sh.idle.fetch_sub(1, SeqCst);
            r
        } else {
            Some(rt.block_on(pending.finish()))
        };
        // Shutdown while waiting: the claim is given up (the store claims
        // nothing for a lane that went away).
        let Some(finished) = finished else {
            continue;
        };
        match finished {
            Ok(step) => {
                sh.record_outcomes(&committing, &ways, Ok(step.done));
                if want > 0 && step.claimed.len() == want {
                    // There may be more due: wake a lane that sleeps, and
                    // the claims waiting on SQLite's writer if a lane is idle
                    // (a claim counted after this check runs after this
                    // claim's commit, and takes what is due itself).
                    if sh.idle.load(SeqCst) > 0 {
                        sh.outbox.notify_enqueued();
                    } else {
                        sh.outbox.wake_a_lane();
                    }
                }
                in_hand = step.claimed;
                hand_turn = step.turn;
            }
            Err(e) => {
                tracing::error!(
                    "outbox: recording outcomes and claiming failed: {e}; trying again in {} ms",
                    sh.cfg.poll.as_millis()
                );
                sh.record_outcomes(&committing, &ways, Err(e));
                if !outcomes.is_empty() {
                    continue; // record what was sent meanwhile
                }
                if stopping {
                    return;
                }
                rt.block_on(async {
                    tokio::select! {
                        _ = tokio::time::sleep(sh.cfg.poll) => {}
                        _ = shutdown.changed() => {}
                    }
                });
                continue;
            }
        }
        if !in_hand.is_empty() || !outcomes.is_empty() || stopping || park.is_some() {
            continue;
        }
        sh.idle.fetch_add(1, SeqCst);
        rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = sh.outbox.wait_enqueued() => {}
                _ = shutdown.changed() => {}
            }
        });
        sh.idle.fetch_sub(1, SeqCst);
    }
}

/// Tries a lane's claimed messages. Batch messages take their batch's send
/// slot first, in claim (file) order across the lanes (pacing.rs); one
/// whose slot is not free yet goes back to the queue.
fn send_claimed<D: Deliver>(
    sh: &Arc<Shared<D>>,
    rt: &tokio::runtime::Handle,
    claimed: Vec<MessageRecord>,
    turn: Option<u64>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<Outcome> {
    let ready: Vec<MessageRecord> = {
        let _turn = turn.map(|n| sh.outbox.turns().wait(n));
        let hold_ms = sh.cfg.hold.as_millis() as i64;
        claimed
            .into_iter()
            .filter(|rec| {
                !rt.block_on(super::pacing::hold_for_pacing(
                    &sh.outbox,
                    &sh.cfg.owner,
                    rec,
                    hold_ms,
                ))
            })
            .collect()
    };
    super::attempt::process_group(sh, rt, ready, || stopped(shutdown))
}

/// Shutdown was asked for (or whoever could ask is gone).
fn stopped(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

impl<D: Deliver> Shared<D> {
    pub(super) fn account_slots(&self, account: &str) -> Arc<Semaphore> {
        let mut m = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(account.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.cfg.per_account.max(1))))
            .clone()
    }

    /// One of the account's `limit` send slots in the database, waiting up to
    /// [`SLOT_WAIT`] (bounded by a third of the lease) for one to free.
    pub(super) async fn send_slot(&self, account: &str, limit: u32) -> Result<String, String> {
        let wait = SLOT_WAIT.min(self.cfg.lease / 3);
        let give_up = std::time::Instant::now() + wait;
        loop {
            let now = now_ms();
            let until = now + self.cfg.lease.as_millis() as i64;
            match self
                .outbox
                .store()
                .take_send_slot(account, limit, &self.cfg.owner, now, until)
                .await
            {
                Ok(Some(slot)) => return Ok(slot),
                Ok(None) if std::time::Instant::now() < give_up => {
                    let pause = 20 + rand::random_range(0..=60u64);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Ok(None) => {
                    return Err(format!(
                        "account `{account}` has max_concurrent = {limit} sends in flight (all processes); tried again shortly"
                    ))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    pub(super) async fn free_slot(&self, slot: &str) {
        if let Err(e) = self.outbox.store().free_send_slot(slot).await {
            tracing::warn!("outbox: giving a send slot back failed: {e}; it frees itself when its lease runs out");
        }
    }

    pub(super) async fn note_status(&self, account: &str, state: &str, reason: &str) {
        note_account_status(&self.outbox, &self.stats, account, state, reason).await
    }

    /// Counts and logs a lane's committed outcomes; `ways[i]` is the way out
    /// of `outcomes[i]`'s last try (`""`: none).
    fn record_outcomes(
        &self,
        outcomes: &[Outcome],
        ways: &[String],
        done: Result<Vec<bool>, OutboxError>,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                for (rec, _, s) in outcomes {
                    tracing::error!(id = %rec.id, "outbox: writing the outcome ({}) failed: {e}; the message is sent again when its lease runs out", s.state);
                }
                return;
            }
        };
        let mut per_account = Vec::with_capacity(outcomes.len());
        for (((rec, _, s), way), ok) in outcomes.iter().zip(ways).zip(done) {
            let state = s.state;
            if ok {
                let (c, name) = match state {
                    State::Sent => (&self.stats.sent, "sent"),
                    State::Deferred => (&self.stats.deferred, "deferred"),
                    _ => (&self.stats.failed, "failed"),
                };
                c.fetch_add(1, Relaxed);
                per_account.push((way.as_str(), name));
                tracing::info!(id = %rec.id, message_id = %rec.message_id, state = %state, "outbox: {}", s.last_error.as_deref().unwrap_or(""));
            } else {
                self.stats.lost_leases.fetch_add(1, Relaxed);
                tracing::warn!(id = %rec.id, message_id = %rec.message_id, "outbox: the lease ran out before the outcome ({state}) was written; another worker has the message");
            }
        }
        self.stats.settled(per_account.into_iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_chain_is_read_back() {
        let json = r#"{"action":"send","chain":[{"label":"sink","account":"sink","plugin":"smtp","mode":"smtp"},{"label":"builtin","account":null,"plugin":null,"mode":"builtin"}],"trace":[]}"#;
        let c = stored_chain(json).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].account.as_deref(), Some("sink"));
        assert!(c[1].is_builtin());
        assert!(stored_chain("not json")
            .unwrap_err()
            .contains("cannot be read"));
    }
}
