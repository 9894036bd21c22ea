//! The SQLite outbox's writer: one thread of its own that holds one
//! connection (rusqlite) and runs the service's frequent writes — enqueues,
//! claims and the workers' outcomes — for every caller in the process.
//!
//! Whatever is waiting when it is free goes into **one transaction** (when a
//! job fails, each job of the group runs again alone, so only that one is
//! answered with its error), and every caller is answered after the `COMMIT`
//! (WAL, `synchronous=FULL`: on disk). So concurrent API requests, claims and
//! outcomes share one WAL sync (group commit across kinds), writers never wait
//! for each other in SQLite's busy handler, and a statement costs a function
//! call, not a round trip to a connection thread and back (sqlx-sqlite runs
//! each statement on its connection's thread and answers through a channel).
//! Statements are prepared once and kept (`prepare_cached`).
//!
//! The rarer writes (leases renewed and released, retry and cancel, batches,
//! budgets, account status) and every read stay on the sqlx pool: WAL lets
//! them read while this thread writes, and SQLite's lock orders their writes.
//!
//! An idle lane's claim that finds nothing due **waits here** (parked) until
//! an enqueue, a poke ([`Writer::poke`]: something else made messages due) or
//! its deadline (the lane's poll interval): it runs again inside the
//! enqueue's transaction, so a message just accepted is claimed in the same
//! commit, with no wake-up of the lane and no commit of its own for the claim.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::store::SettleItem;
use super::{Enqueued, MessageRecord, NewMessage, OutboxError};

mod statements;

/// Jobs one transaction takes at most (a claim or a group of outcomes is one job).
const GROUP_MAX: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, OutboxError>>;

enum Job {
    Enqueue {
        msgs: Vec<NewMessage>,
        reply: Reply<Vec<Enqueued>>,
    },
    /// A lane's outcomes, then (in the same transaction) its next messages.
    Work {
        items: Vec<SettleItem>,
        claim: Option<ClaimArgs>,
        now: i64,
        reply: Reply<Worked>,
    },
    /// Messages were made due outside this thread (a retry, a batch): run
    /// the parked claims.
    Poke,
}

/// What a claim asks for.
pub(crate) struct ClaimArgs {
    pub owner: String,
    pub max: u32,
    /// The lease's length: a claim's lease runs from when it claims (a parked
    /// claim's later).
    pub lease_ms: i64,
    /// Give a claim that took batch messages a pacing turn ([`super::pacing::Turns`]).
    pub turn: bool,
    /// A claim without outcomes that finds nothing due waits on this thread
    /// until then, for messages to claim (see the module docs).
    pub park_until: Option<Instant>,
}

/// A claim that found nothing due, waiting for messages or its deadline.
struct Parked {
    claim: ClaimArgs,
    reply: Reply<Worked>,
}

/// One flag per outcome (false: the lease was lost), the messages claimed,
/// and the claim's pacing turn: turns are numbered in commit order, for the
/// claims that asked for one and took batch messages.
pub(crate) type Worked = (Vec<bool>, Vec<MessageRecord>, Option<u64>);

/// A transaction's results: one per job, then what each woken parked claim took.
type Ran = (Vec<Out>, Vec<Vec<MessageRecord>>);

/// A job's result, held until the commit.
enum Out {
    Enqueue(Vec<Enqueued>),
    Work(Worked),
}

impl Job {
    /// Answers the caller (one who went away needs no answer).
    fn answer(self, r: Result<Out, OutboxError>) {
        let wrong = || OutboxError::Corrupt {
            what: "outbox writer",
            detail: "a job got another kind of answer".into(),
        };
        match self {
            Job::Enqueue { reply, .. } => drop(reply.send(match r {
                Ok(Out::Enqueue(v)) => Ok(v),
                Ok(_) => Err(wrong()),
                Err(e) => Err(e),
            })),
            Job::Work { reply, .. } => drop(reply.send(match r {
                Ok(Out::Work(v)) => Ok(v),
                Ok(_) => Err(wrong()),
                Err(e) => Err(e),
            })),
            Job::Poke => {}
        }
    }
}

/// The handle: cheap to clone; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Opens the (already migrated) outbox file and starts the thread.
    pub(crate) fn start(path: &Path, location: &str) -> Result<Writer, OutboxError> {
        let open = |detail: String| OutboxError::Open {
            location: location.to_string(),
            detail,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open(e.to_string()))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| open(e.to_string()))?;
        // The same durability as the pool's connections (sqlite.rs): WAL, and a
        // commit is on disk before anyone is answered. Never relaxed.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -1024;",
        )
        .map_err(|e| open(e.to_string()))?;
        conn.set_prepared_statement_cache_capacity(16);
        let (tx, rx) = mpsc::channel();
        let mut thread = Thread {
            conn,
            location: location.to_string(),
            claim_select: statements::claim_select(),
            expired_at: i64::MIN,
            turns: 0,
            parked: Vec::new(),
        };
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| open(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { tx })
    }

    /// Hands `job` to the thread now; the answer comes on the receiver. A
    /// writer that is gone drops the job and its reply with it, so the
    /// receiver reports that ([`OutboxError::Closed`] through [`answer`]).
    fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Answer<T> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(job(reply));
        rx
    }

    async fn call<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, OutboxError> {
        answer(self.submit(job)).await
    }

    pub(crate) async fn enqueue(
        &self,
        msgs: Vec<NewMessage>,
    ) -> Result<Vec<Enqueued>, OutboxError> {
        self.call(|reply| Job::Enqueue { msgs, reply }).await
    }

    pub(crate) async fn claim(
        &self,
        owner: &str,
        max: u32,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<MessageRecord>, OutboxError> {
        let claim = ClaimArgs {
            owner: owner.to_string(),
            max,
            lease_ms: lease_until - now,
            turn: false,
            park_until: None,
        };
        Ok(self.settle_and_claim(Vec::new(), Some(claim), now).await?.1)
    }

    /// Runs the parked claims: messages were made due outside this thread.
    pub(crate) fn poke(&self) {
        let _ = self.tx.send(Job::Poke);
    }

    pub(crate) async fn settle(
        &self,
        items: Vec<SettleItem>,
        now: i64,
    ) -> Result<Vec<bool>, OutboxError> {
        Ok(self.settle_and_claim(items, None, now).await?.0)
    }

    /// Outcomes, then a claim, in one transaction.
    pub(crate) async fn settle_and_claim(
        &self,
        items: Vec<SettleItem>,
        claim: Option<ClaimArgs>,
        now: i64,
    ) -> Result<Worked, OutboxError> {
        answer(self.submit_work(items, claim, now)).await
    }

    /// [`Writer::settle_and_claim`], handed to the thread before this
    /// returns: the caller goes on while it commits.
    pub(crate) fn submit_work(
        &self,
        items: Vec<SettleItem>,
        claim: Option<ClaimArgs>,
        now: i64,
    ) -> Answer<Worked> {
        self.submit(|reply| Job::Work {
            items,
            claim,
            now,
            reply,
        })
    }
}

/// A job's answer on its way.
pub(crate) type Answer<T> = oneshot::Receiver<Result<T, OutboxError>>;

/// Waits for a job's answer.
pub(crate) async fn answer<T>(rx: Answer<T>) -> Result<T, OutboxError> {
    rx.await.map_err(|_| OutboxError::Closed)?
}

struct Thread {
    conn: Connection,
    location: String,
    /// The claim's read ([`claim_select`]).
    claim_select: String,
    /// When (a claim's `now`) expired leases were last taken back.
    expired_at: i64,
    /// Pacing turns given so far.
    turns: u64,
    /// Idle lanes' claims waiting for messages (see the module docs).
    parked: Vec<Parked>,
}

impl Thread {
    fn run(&mut self, rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(GROUP_MAX);
        loop {
            // Wait for a job, or until the first parked claim's deadline.
            let deadline = self.parked.iter().filter_map(|p| p.claim.park_until).min();
            let first = match deadline {
                None => match rx.recv() {
                    Ok(j) => Some(j),
                    Err(_) => break,
                },
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(j) => Some(j),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
            };
            jobs.extend(first);
            while jobs.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            // A bug here must not end the thread (every later enqueue would
            // fail): the group's callers hear "try again", the rest goes on.
            let run =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.group(&mut jobs)));
            if run.is_err() {
                tracing::error!(
                    "outbox: the writer failed on a group; its callers were told to try again"
                );
                jobs.clear();
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }

    /// The parked claims to run with this group: all of them when messages
    /// were enqueued or a poke came, else those whose deadline passed. Those
    /// whose lane went away are dropped (nothing is claimed for them).
    fn waking(&mut self, jobs: &[Job]) -> Vec<Parked> {
        self.parked.retain(|p| !p.reply.is_closed());
        let all = jobs
            .iter()
            .any(|j| matches!(j, Job::Enqueue { .. } | Job::Poke));
        let now = Instant::now();
        let (wake, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|p| all || p.claim.park_until.is_none_or(|d| d <= now));
        self.parked = wait;
        wake
    }

    /// Answers the parked claims that ran in a committed transaction: those
    /// that claimed messages or reached their deadline; the others park again.
    fn answer_parked(&mut self, woken: Vec<(Parked, Vec<MessageRecord>)>) {
        let now = Instant::now();
        for (p, claimed) in woken {
            if claimed.is_empty() && p.claim.park_until.is_some_and(|d| d > now) {
                self.parked.push(p);
                continue;
            }
            let turn = self.turn_for(p.claim.turn, &claimed);
            let _ = p.reply.send(Ok((Vec::new(), claimed, turn)));
        }
    }

    /// The next pacing turn (numbered in commit order), for a claim that
    /// asked for one and took batch messages.
    fn turn_for(&mut self, wants: bool, claimed: &[MessageRecord]) -> Option<u64> {
        (wants && claimed.iter().any(|m| m.batch_id.is_some())).then(|| {
            self.turns += 1;
            self.turns - 1
        })
    }

    fn err(&self, what: &'static str) -> impl Fn(rusqlite::Error) -> OutboxError + '_ {
        move |e| OutboxError::Query {
            location: self.location.clone(),
            what,
            detail: e.to_string(),
        }
    }

    /// One transaction for every job waiting; answers after the commit.
    /// When a job (or the commit) fails nothing of the group was written:
    /// each job then runs again in a transaction of its own, so only the one
    /// that fails hears of it. (Savepoints per job would do the same, but
    /// they make SQLite copy every page a job touches into a statement
    /// journal first, on every group; a failure is rare.)
    fn group(&mut self, jobs: &mut Vec<Job>) {
        let waking = self.waking(jobs);
        jobs.retain(|j| !matches!(j, Job::Poke));
        if jobs.is_empty() && waking.is_empty() {
            return;
        }
        let woke = !waking.is_empty();
        match self.transaction(jobs, &waking) {
            Ok((outs, claimed)) => {
                for (job, out) in jobs.drain(..).zip(outs) {
                    self.answer(job, Ok(out));
                }
                self.answer_parked(waking.into_iter().zip(claimed).collect());
            }
            Err(e) => {
                // Parked claims wait for the next group (or their deadline).
                self.parked.extend(waking);
                if jobs.len() == 1 && !woke {
                    tracing::error!("outbox: {e}");
                    for job in jobs.drain(..) {
                        job.answer(Err(e.clone()));
                    }
                    return;
                }
                for job in jobs.drain(..) {
                    let r = self
                        .transaction(std::slice::from_ref(&job), &[])
                        .map(|(outs, _)| outs);
                    if let Err(e) = &r {
                        tracing::error!("outbox: {e}");
                    }
                    self.answer(job, r.and_then(|mut v| v.pop().ok_or(OutboxError::Closed)));
                }
            }
        }
    }

    /// Answers a job after its commit; a claim that asked for a pacing turn
    /// and took batch messages gets the next one (in commit order).
    /// A claim that may park and found nothing waits instead (see the module docs).
    fn answer(&mut self, job: Job, mut r: Result<Out, OutboxError>) {
        let job = match (job, &r) {
            (
                Job::Work {
                    items,
                    claim: Some(claim),
                    reply,
                    ..
                },
                Ok(Out::Work((_, claimed, _))),
            ) if items.is_empty()
                && claimed.is_empty()
                && claim.park_until.is_some_and(|d| d > Instant::now()) =>
            {
                self.parked.push(Parked { claim, reply });
                return;
            }
            (job, _) => job,
        };
        if let (Job::Work { claim: Some(c), .. }, Ok(Out::Work((_, claimed, turn)))) =
            (&job, &mut r)
        {
            *turn = self.turn_for(c.turn, claimed);
        }
        job.answer(r);
    }

    /// `BEGIN IMMEDIATE`, the jobs, then the parked claims woken with them,
    /// `COMMIT`; on any error `ROLLBACK` and the error.
    fn transaction(&mut self, jobs: &[Job], waking: &[Parked]) -> Result<Ran, OutboxError> {
        self.conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(self.err("begin a transaction"))?;
        let run = (|| {
            let mut outs = Vec::with_capacity(jobs.len());
            for job in jobs {
                outs.push(self.one(job)?);
            }
            let mut claimed = Vec::with_capacity(waking.len());
            if !waking.is_empty() {
                let now = super::now_ms();
                for p in waking {
                    let c = &p.claim;
                    claimed.push(self.claim(&c.owner, c.max, now, now + c.lease_ms)?);
                }
            }
            self.conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map_err(self.err("commit"))?;
            Ok((outs, claimed))
        })();
        if run.is_err() && !self.conn.is_autocommit() {
            // Nothing of it is on disk.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        run
    }

    fn one(&mut self, job: &Job) -> Result<Out, OutboxError> {
        Ok(match job {
            Job::Enqueue { msgs, .. } => Out::Enqueue(self.enqueue(msgs)?),
            Job::Poke => Out::Work((Vec::new(), Vec::new(), None)),
            Job::Work {
                items, claim, now, ..
            } => {
                let done = if items.is_empty() {
                    Vec::new()
                } else {
                    self.settle(items, *now)?
                };
                let claimed = match claim {
                    Some(c) if c.max > 0 => self.claim(&c.owner, c.max, *now, *now + c.lease_ms)?,
                    _ => Vec::new(),
                };
                Out::Work((done, claimed, None))
            }
        })
    }
}
