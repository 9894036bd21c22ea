//! A worker lane's step ([`Outbox::start_step`]): the outcomes of the
//! messages it tried, then the claim of its next ones. On SQLite both are one
//! commit on the writer thread; on PostgreSQL the outcomes join a group
//! commit (pg_group.rs), then the claim runs. The lane goes on while the step
//! commits (worker.rs sends the group it holds meanwhile).

use std::time::Duration;

use super::{now_ms, sqlite_writer, store, AnyStore, MessageRecord, Outbox, OutboxError, Store};

/// What a lane's step ([`Outbox::start_step`]) gives back.
#[derive(Debug)]
pub struct LaneStep {
    /// One flag per outcome: false where the lease was lost (nothing written).
    pub done: Vec<bool>,
    pub claimed: Vec<MessageRecord>,
    /// The claim's pacing turn, when it took batch messages.
    pub turn: Option<u64>,
}

/// A lane's step on its way ([`Outbox::start_step`]).
pub struct PendingStep(Pending);

enum Pending {
    /// Handed to the SQLite writer thread.
    Writer(sqlite_writer::Answer<sqlite_writer::Worked>),
    /// Running as a task.
    Task(tokio::task::JoinHandle<Result<LaneStep, OutboxError>>),
}

impl PendingStep {
    /// Waits for the step's commit and its answer.
    pub async fn finish(self) -> Result<LaneStep, OutboxError> {
        match self.0 {
            Pending::Writer(rx) => {
                let (done, claimed, turn) = sqlite_writer::answer(rx).await?;
                Ok(LaneStep {
                    done,
                    claimed,
                    turn,
                })
            }
            Pending::Task(task) => task.await.map_err(|_| OutboxError::Closed)?,
        }
    }
}

impl Outbox {
    /// Whether an idle lane's claim waits in the store for messages
    /// ([`Outbox::start_step`]'s `park`): on SQLite, on the writer thread.
    pub fn parks_claims(&self) -> bool {
        matches!(&*self.store, AnyStore::Sqlite(_))
    }

    /// A lane's step on PostgreSQL: its outcomes join a group commit, then
    /// the claim runs (a failed claim is logged and claims nothing: the
    /// outcomes are written). Nothing is claimed when the outcomes could not
    /// be written. A claim that took batch messages comes with its pacing
    /// turn, numbered here ([`super::pacing::Turns`]).
    async fn settle_then_claim(
        &self,
        items: Vec<store::SettleItem>,
        owner: &str,
        max: u32,
        lease: Duration,
    ) -> Result<LaneStep, OutboxError> {
        let done = self.settle_many(items).await?;
        let mut step = LaneStep {
            done,
            claimed: Vec::new(),
            turn: None,
        };
        if max == 0 {
            return Ok(step);
        }
        let mut numbering = self.turns.numbering.lock().await;
        let now = now_ms();
        match self
            .store
            .claim(owner, max, now, now + lease.as_millis() as i64)
            .await
        {
            Ok(claimed) => {
                if claimed.iter().any(|m| m.batch_id.is_some()) {
                    step.turn = Some(*numbering);
                    *numbering += 1;
                }
                step.claimed = claimed;
            }
            Err(e) => tracing::error!("outbox: claiming failed: {e}"),
        }
        Ok(step)
    }

    /// A lane's step: records its outcomes durably (false where the lease
    /// was lost), then claims up to `max` due messages for `owner` under a
    /// lease. It is started before this returns, so the caller can go on (a
    /// lane sends its next messages) while it commits;
    /// [`PendingStep::finish`] waits for it. On SQLite both are one commit on
    /// the writer thread (shared with other callers'); otherwise the step
    /// runs as a task on `rt` (`settle_then_claim`).
    ///
    /// `park`: a step without outcomes that finds nothing due may wait that
    /// long for messages before it answers, where the store can
    /// ([`Outbox::parks_claims`]); the answer then comes with the messages
    /// enqueued meanwhile, claimed in the enqueue's commit.
    pub fn start_step(
        &self,
        items: Vec<store::SettleItem>,
        owner: &str,
        max: u32,
        lease: Duration,
        park: Option<Duration>,
        rt: &tokio::runtime::Handle,
    ) -> PendingStep {
        if let AnyStore::Sqlite(s) = &*self.store {
            let park_until = park.map(|d| std::time::Instant::now() + d);
            return PendingStep(Pending::Writer(s.settle_and_claim(
                items,
                owner,
                max,
                now_ms(),
                lease,
                park_until,
            )));
        }
        let outbox = self.clone();
        let owner = owner.to_string();
        PendingStep(Pending::Task(rt.spawn(async move {
            outbox.settle_then_claim(items, &owner, max, lease).await
        })))
    }
}
