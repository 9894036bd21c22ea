//! The durable outbox: every accepted message is committed to a database
//! before the caller is answered and before any attempt, and stays there
//! until it is sent, has failed for good or is cancelled.
//!
//! States (`State`):
//!
//! ```text
//! queued ──claim──▶ sending ──▶ sent
//!   ▲  │              │  ├────▶ failed ──retry──▶ queued
//!   │  │              │  └────▶ deferred ──claim──▶ sending
//!   │  └──cancel──▶ cancelled ──retry──▶ queued
//!   └── lease expired (the worker died) / released on shutdown
//! ```
//!
//! Storage: SQLite (the embedded default, one file, WAL, `synchronous=FULL`)
//! or PostgreSQL (several hosts on one queue, claims with
//! `FOR UPDATE SKIP LOCKED`). Both behind [`store::Store`]; [`Outbox`] adds
//! group commit (concurrent enqueues share one transaction).

mod attempt;
pub mod batches;
mod columns;
pub mod deliver;
pub mod migrations;
pub mod pacing;
mod pg_group;
pub mod postgres;
pub mod retention;
mod settings;
pub mod space;
pub mod sqlite;
mod sqlite_writer;
mod sqlx_writes;
pub mod stats;
mod step;
pub mod store;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use pg_group::Groups;

pub use settings::{OutboxSettings, DEFAULT_BATCH_PER_MINUTE, MAX_BATCH_PER_MINUTE};
pub use step::{LaneStep, PendingStep};
pub use store::{AnyStore, Store};

/// Whether `id` has the shape of an id the outbox makes (a UUID: hex digits
/// and dashes, at most 64 characters), so anything else is not looked up.
pub fn could_be_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Sending,
    Sent,
    Deferred,
    Failed,
    Cancelled,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Queued,
        State::Sending,
        State::Sent,
        State::Deferred,
        State::Failed,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Deferred => "deferred",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No worker will touch the message again (until someone retries it).
    pub fn is_final(self) -> bool {
        matches!(self, State::Sent | State::Failed | State::Cancelled)
    }

    /// The state machine: which moves are allowed.
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Queued | Deferred, Sending)
                | (Queued | Deferred, Cancelled)
                | (Sending, Sent | Deferred | Failed | Queued)
                | (Failed | Cancelled | Deferred, Queued)
        )
    }
}

/// The states a retry (`cancel` false) or a cancel of every match takes
/// messages from (a message in flight is the worker's).
pub fn movable(cancel: bool) -> &'static [State] {
    if cancel {
        &[State::Queued, State::Deferred]
    } else {
        &[State::Failed, State::Cancelled, State::Deferred]
    }
}

/// The state filter of a retry or a cancel of every match: a retry takes
/// failed messages unless `asked` names another state; `Err` says which
/// states allow the move.
pub fn bulk_state(cancel: bool, asked: Option<State>) -> Result<Option<State>, String> {
    match asked {
        None if !cancel => Ok(Some(State::Failed)),
        Some(s) if !movable(cancel).contains(&s) => {
            let names: Vec<&str> = movable(cancel).iter().map(|s| s.as_str()).collect();
            Err(format!(
                "state `{s}`: only {} messages can be {}",
                names.join(", "),
                if cancel { "cancelled" } else { "retried" }
            ))
        }
        other => Ok(other),
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Single messages (a PIN, a login mail) go before batch rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Single = 0,
    Batch = 1,
}

impl Priority {
    pub fn from_i64(v: i64) -> Priority {
        if v == 0 {
            Priority::Single
        } else {
            Priority::Batch
        }
    }
}

/// What `enqueue` stores: the built message and everything needed to send it later.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// `send` or `compose`.
    pub action: String,
    pub user: Option<String>,
    pub tenant: Option<String>,
    pub purpose: Option<String>,
    /// Unique per tenant: a second enqueue with the same key returns the first id.
    pub idempotency_key: Option<String>,
    pub message_id: String,
    pub mime: Vec<u8>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub options_json: String,
    /// The policy decision (its chain of ways out), as JSON.
    pub decision_json: String,
    /// The labels of the decision's ways out in chain order, as a JSON array
    /// (accounts by name): with `chain_pos` it says which account a message
    /// waits for, without reading its decision ([`way_outs`]).
    pub way_outs: String,
    pub priority: Priority,
}

/// [`NewMessage::way_outs`] for a chain.
pub fn way_outs(chain: &[crate::policy::Candidate]) -> String {
    serde_json::to_string(&chain.iter().map(|c| c.label.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".to_string())
}

impl NewMessage {
    /// What the outbox stores for a prepared submission (the library's
    /// `Engine::prepare`): the built MIME, the envelope and the decision.
    /// `idempotency_key` is the caller's key, if it gave one.
    pub fn from_prepared(
        p: &crate::submit::Prepared,
        idempotency_key: Option<String>,
        priority: Priority,
    ) -> Result<NewMessage, OutboxError> {
        let msg = &p.message;
        let decision_json =
            serde_json::to_string(&p.decision).map_err(|e| OutboxError::Corrupt {
                what: "policy decision",
                detail: e.to_string(),
            })?;
        Ok(NewMessage {
            action: p.action.name().to_string(),
            user: p.user.clone(),
            tenant: p.tenant.clone(),
            purpose: p.purpose.clone(),
            idempotency_key,
            message_id: msg.message_id.to_string(),
            mime: msg.mime.to_vec(),
            envelope_from: msg
                .envelope
                .from
                .as_ref()
                .map(|s| s.to_string())
                .into_option()
                .unwrap_or_default(),
            envelope_to: msg.envelope.to.iter().map(|s| s.to_string()).collect(),
            options_json: msg.options_json.to_string(),
            decision_json,
            way_outs: way_outs(&p.decision.chain),
            priority,
        })
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    pub id: String,
    /// True when the idempotency key was seen before: nothing was stored.
    pub duplicate: bool,
}

/// A stored message (without its MIME unless loaded for sending or `show`).
#[derive(Debug, Clone, Serialize)]
pub struct MessageRecord {
    pub id: String,
    pub state: State,
    pub action: String,
    pub user: Option<String>,
    pub tenant: Option<String>,
    pub purpose: Option<String>,
    pub idempotency_key: Option<String>,
    pub message_id: String,
    #[serde(skip)]
    pub mime: Option<Vec<u8>>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    /// The request's transport options as stored (JSON text); shown as the
    /// object `options`.
    #[serde(rename = "options", serialize_with = "json_object")]
    pub options_json: String,
    #[serde(skip)]
    pub decision_json: String,
    /// Index of the way out (in the decision's chain) to try next.
    pub chain_pos: u32,
    /// When the current way out was first tried (for the maximum age of retries).
    pub position_since: Option<i64>,
    pub priority: Priority,
    pub attempts_count: u32,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The batch the message belongs to (`send-batch`, `POST /v1/batches`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
}

/// Stored options text as a JSON object (an empty one when it cannot be read:
/// the text was written by this host from an object).
fn json_object<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize as _;
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(map) => map.serialize(s),
        Err(_) => serde_json::Map::new().serialize(s),
    }
}

impl MessageRecord {
    /// The labels of the ways out decided when the message was accepted, in
    /// order (accounts by name); empty when the stored decision cannot be read.
    pub fn ways_out(&self) -> Vec<String> {
        worker::stored_chain(&self.decision_json)
            .map(|c| c.into_iter().map(|c| c.label).collect())
            .unwrap_or_default()
    }

    /// The way out at the message's chain position: the one it waits for,
    /// or the one its last try went through (what the list's `account`
    /// filter matches).
    pub fn way_out_now(&self) -> Option<String> {
        self.ways_out().into_iter().nth(self.chain_pos as usize)
    }

    /// Where a newest-first list continues after this message: the `next`
    /// of `GET /v1/messages`, read back by [`parse_cursor`].
    pub fn cursor(&self) -> String {
        format!("{}_{}", self.created_at, self.id)
    }
}

/// A [`MessageRecord::cursor`] as [`ListFilter::before`] takes it.
pub fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (at, id) = c.split_once('_')?;
    could_be_id(id).then_some(())?;
    Some((at.parse().ok()?, id.to_string()))
}

/// One try through one way out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub at: i64,
    pub chain_pos: u32,
    /// The way out: account name or candidate label.
    pub candidate: String,
    pub plugin: Option<String>,
    /// `ok` or the error class (`transient`, `permanent`, `auth`, ...), or `refused` (policy).
    pub class: String,
    /// The server's code when there is one (e.g. `450`, `429`).
    pub code: Option<String>,
    /// The server's reply or the error text.
    pub text: String,
}

/// How a claimed message leaves the worker (written with its attempts in one transaction).
#[derive(Debug, Clone)]
pub struct Settle {
    pub state: State,
    pub next_attempt_at: i64,
    pub chain_pos: u32,
    pub position_since: Option<i64>,
    pub last_error: Option<String>,
}

/// `list` filter and page.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<State>,
    pub tenant: Option<String>,
    pub user: Option<String>,
    /// Only messages whose current way out is this one: the account (or a
    /// mode's label, as in `ways_out`) a message waits for, or the one its
    /// last try went through.
    pub account: Option<String>,
    /// Only messages created at or after this time (ms since the epoch).
    pub since: Option<i64>,
    /// Only messages created before this time (ms since the epoch).
    pub until: Option<i64>,
    /// Newest first; continue after this `(created_at, id)`.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// Result of `retry` / `cancel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Done(State),
    /// The message is in a state that does not allow the move.
    NotAllowed(State),
    NotFound,
}

/// What can go wrong with the outbox database.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database {location}: cannot open: {detail}; check the path/URL and that the database is reachable")]
    Open { location: String, detail: String },
    #[error("outbox database {location}: migration failed: {detail}")]
    Migrate { location: String, detail: String },
    #[error("outbox database {location}: {what} failed: {detail}")]
    Query {
        location: String,
        what: &'static str,
        detail: String,
    },
    #[error("outbox: a stored record is damaged ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("outbox is shutting down: the message was not queued; try again")]
    Closed,
    #[error("outbox database {location}: only {free_mb} MB free on its disk, under [outbox] min_free_mb ({min_mb} MB): nothing new is queued until there is more; free space on that disk or move the outbox, then send again (what is queued still goes out)")]
    LowSpace {
        location: String,
        free_mb: u64,
        min_mb: u64,
    },
}

/// The outbox: a store plus group commit for enqueues and outcomes. On
/// PostgreSQL two tasks gather concurrent calls into transactions
/// (pg_group.rs); the SQLite store's writer thread does that itself
/// (`sqlite_writer`), so calls go straight to it.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<AnyStore>,
    /// The grouping tasks (None: the store groups by itself).
    groups: Option<Groups>,
    enqueued: Arc<tokio::sync::Notify>,
    turns: Arc<pacing::Turns>,
    /// Refuses new messages when a SQLite outbox's disk runs low.
    space: Option<Arc<space::SpaceGuard>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("store", &self.store.location())
            .finish()
    }
}

impl Outbox {
    /// Opens (and migrates) the store and starts the group-commit task on the
    /// current tokio runtime. `location` is a `postgres://` URL or a SQLite file path.
    pub async fn open(location: &str) -> Result<Outbox, OutboxError> {
        let store = AnyStore::open(location).await?;
        Ok(Outbox::with_store(store))
    }

    pub fn with_store(store: AnyStore) -> Outbox {
        let store = Arc::new(store);
        let enqueued = Arc::new(tokio::sync::Notify::new());
        let groups = match &*store {
            AnyStore::Sqlite(_) => None,
            AnyStore::Postgres(_) => Some(Groups::start(&store, &enqueued)),
        };
        Outbox {
            store,
            groups,
            enqueued,
            turns: Arc::new(pacing::Turns::default()),
            space: None,
        }
    }

    /// Refuses new messages and batches while a SQLite outbox's disk has
    /// less than `min_bytes` free (`[outbox] min_free_mb`; 0: never). A
    /// PostgreSQL server watches its own disk.
    pub fn with_min_free(mut self, min_bytes: u64) -> Outbox {
        if let AnyStore::Sqlite(s) = &*self.store {
            self.space = (min_bytes > 0).then(|| {
                Arc::new(space::SpaceGuard::new(
                    std::path::Path::new(&s.location),
                    &s.location,
                    min_bytes,
                    Box::new(space::Disk),
                ))
            });
        }
        self
    }

    /// The outbox's disk, when it is watched (`min_free_mb`): (free bytes,
    /// the minimum, whether new messages are refused).
    pub fn disk(&self) -> Option<(Option<u64>, u64, bool)> {
        self.space.as_ref().map(|g| g.state())
    }

    /// `Err` when the outbox's disk is below its minimum free space.
    pub fn check_space(&self) -> Result<(), OutboxError> {
        self.space.as_ref().map_or(Ok(()), |g| g.check())
    }

    pub fn store(&self) -> &AnyStore {
        &self.store
    }

    /// Returns when this process committed an enqueue (wakes an idle worker).
    pub async fn wait_enqueued(&self) {
        self.enqueued.notified().await
    }

    /// Records an outcome durably (committed before this returns); false when
    /// the lease was lost. Concurrent calls share commits.
    pub async fn settle(&self, item: store::SettleItem) -> Result<bool, OutboxError> {
        let done = self.settle_many(vec![item]).await?;
        Ok(done.first().copied().unwrap_or(false))
    }

    /// Records several outcomes durably in one go (shared with other
    /// callers' commits); one flag per item, false where the lease was lost.
    pub async fn settle_many(
        &self,
        items: Vec<store::SettleItem>,
    ) -> Result<Vec<bool>, OutboxError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let Some(groups) = &self.groups else {
            return match &*self.store {
                AnyStore::Sqlite(s) => s.settle_owned(items, now_ms()).await,
                AnyStore::Postgres(s) => s.settle_batch(&items, now_ms()).await,
            };
        };
        let (reply, rx) = oneshot::channel();
        groups
            .settle_tx
            .send((items, reply))
            .await
            .map_err(|_| OutboxError::Closed)?;
        rx.await.map_err(|_| OutboxError::Closed)?
    }

    /// The pacing turns of this process's claims.
    pub fn turns(&self) -> &pacing::Turns {
        &self.turns
    }

    /// Wakes a lane of this process that sleeps for work, or the next one to
    /// sleep; not the claims waiting on SQLite's writer thread
    /// ([`Outbox::notify_enqueued`] wakes those too, at the cost of a trip
    /// to that thread).
    pub fn wake_a_lane(&self) {
        self.enqueued.notify_one();
    }

    /// Wakes an idle worker of this process (something was committed), and
    /// the claims waiting on SQLite's writer thread ([`Outbox::parks_claims`]).
    pub fn notify_enqueued(&self) {
        self.enqueued.notify_one();
        if let AnyStore::Sqlite(s) = &*self.store {
            s.poke();
        }
    }

    /// Stores `msg` durably (committed before this returns). Concurrent calls share commits.
    pub async fn enqueue(&self, msg: NewMessage) -> Result<Enqueued, OutboxError> {
        self.check_space()?;
        let Some(groups) = &self.groups else {
            let mut done = self.store.enqueue_batch(vec![msg]).await?;
            self.enqueued.notify_one();
            return done.pop().ok_or(OutboxError::Closed);
        };
        let (reply, rx) = oneshot::channel();
        groups
            .tx
            .send((msg, reply))
            .await
            .map_err(|_| OutboxError::Closed)?;
        rx.await.map_err(|_| OutboxError::Closed)?
    }
}

/// Exponential backoff with full jitter between `base` and `cap`, never shorter than `retry_after`.
pub fn backoff(
    attempt: u32,
    base: Duration,
    cap: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20).saturating_sub(1));
    let top = exp.min(cap).max(base);
    let half = top / 2;
    let jitter = rand::random_range(0..=half.as_millis() as u64);
    let d = half + Duration::from_millis(jitter);
    match retry_after {
        Some(ra) if ra > d => ra,
        _ => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("nope"), None);
    }

    #[test]
    fn state_machine_allows_only_the_documented_moves() {
        use State::*;
        assert!(Queued.can_become(Sending));
        assert!(Deferred.can_become(Sending));
        assert!(Sending.can_become(Sent));
        assert!(Sending.can_become(Deferred));
        assert!(Sending.can_become(Failed));
        assert!(Failed.can_become(Queued));
        assert!(Queued.can_become(Cancelled));
        assert!(!Sent.can_become(Queued));
        assert!(!Sent.can_become(Cancelled));
        assert!(!Sending.can_become(Cancelled));
        assert!(!Cancelled.can_become(Sending));
        assert!(!Queued.can_become(Sent));
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let base = Duration::from_millis(1000);
        let cap = Duration::from_millis(8000);
        for n in 1..10 {
            let d = backoff(n, base, cap, None);
            assert!(d >= base / 2 && d <= cap, "attempt {n}: {d:?}");
        }
        let d = backoff(1, base, cap, Some(Duration::from_secs(30)));
        assert_eq!(d, Duration::from_secs(30));
    }
}
