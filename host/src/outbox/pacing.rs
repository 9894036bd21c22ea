//! Batch pacing: a batch's messages go out at its own per-minute rate
//! (`[outbox] batch_per_minute`, or the batch's own `rate`), shared by every
//! process on the database through the batch's `next_slot_at` column.
//!
//! - The claim skips batch messages whose batch's next slot is still ahead
//!   ([`CLAIMABLE`]), so a held batch never takes a claim away from single
//!   messages (which sort first anyway) or from other batches.
//! - A claimed batch message takes its batch's slot (in claim order, before it
//!   is tried; across a worker's lanes through [`Turns`]) in one atomic `UPDATE`
//!   (`BatchStore::take_batch_slot`); the slot moves on by `60000 / rate` ms.
//!   When another process took the slot first, the message goes back to
//!   `queued`, due at the next slot, without an attempt ([`hold_for_pacing`]).
//! - A worker that wakes late may catch up at most [`CREDIT_MS`] of missed
//!   slots; over any minute a batch sends at most its rate plus that credit.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::batches::BatchStore;
use super::{now_ms, MessageRecord, Outbox, Settle, State, Store};

/// The claim's condition on batch messages (inside the claim's `WHERE`,
/// `$3` being now).
pub const CLAIMABLE: &str = "(batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox_batches b \
     WHERE b.id = outbox_messages.batch_id AND b.next_slot_at > $3))";

/// How far (ms) a batch's pacing clock may lag behind now: slots missed while
/// no worker looked are caught up to this much, not more.
pub const CREDIT_MS: i64 = 500;

/// Pacing turns: the worker's lanes claim on their own, so two lanes may hold
/// messages of one batch at once. Each claim that took batch messages gets a
/// numbered turn, in the order the claims were committed, and takes its
/// messages' slots ([`hold_for_pacing`]) only in its turn: a batch's slots go
/// in claim (file) order, whichever lane runs first.
#[derive(Debug, Default)]
pub struct Turns {
    /// The turn whose claim may take slots now.
    next: Mutex<u64>,
    moved: Condvar,
    /// Numbers the claims on stores that do not (PostgreSQL): held across the claim.
    pub(crate) numbering: tokio::sync::Mutex<u64>,
}

/// How long a turn waits for the ones before it. A turn whose lane never
/// takes it (it cannot happen today) would otherwise stop every later batch
/// message of this process; past this, order may slip, nothing stops.
const TURN_WAIT: Duration = Duration::from_secs(5);

/// A turn being taken; the next turn starts when it is dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    turns: &'a Turns,
    n: u64,
}

impl Turns {
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.next.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks (a lane's thread) until turn `n` comes.
    pub fn wait(&self, n: u64) -> Turn<'_> {
        let give_up = std::time::Instant::now() + TURN_WAIT;
        let mut next = self.lock();
        while *next < n {
            let left = give_up.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "outbox: batch pacing turn {n} waited {TURN_WAIT:?} for turn {}; going ahead",
                    *next
                );
                break;
            }
            next = self
                .moved
                .wait_timeout(next, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        Turn { turns: self, n }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut next = self.turns.lock();
        *next = (*next).max(self.n + 1);
        self.turns.moved.notify_all();
    }
}

/// For a claimed batch message: takes its batch's send slot. True when the
/// slot was not free and the message went back to the queue (due at the next
/// slot): the caller stops there. A database error holds it for `retry_ms`.
pub async fn hold_for_pacing(
    outbox: &Outbox,
    owner: &str,
    rec: &MessageRecord,
    retry_ms: i64,
) -> bool {
    let Some(batch) = rec.batch_id.as_deref() else {
        return false;
    };
    let now = now_ms();
    let (next, why) = match outbox.store().take_batch_slot(batch, now).await {
        Ok(None) => return false,
        Ok(Some(at)) => (
            at,
            format!("paced: batch {batch} sends its next message at {at}"),
        ),
        Err(e) => (now + retry_ms, format!("batch pacing: {e}")),
    };
    let s = Settle {
        state: State::Queued,
        next_attempt_at: next,
        chain_pos: rec.chain_pos,
        position_since: rec.position_since,
        last_error: None,
    };
    match outbox
        .store()
        .settle(&rec.id, owner, &[], &s, now_ms())
        .await
    {
        Ok(_) => tracing::debug!(id = %rec.id, "outbox: {why}"),
        Err(e) => {
            tracing::warn!(id = %rec.id, "outbox: putting a paced batch message back failed: {e}; it is claimed again when its lease runs out")
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A later turn waits for the earlier one, whichever thread comes first.
    #[test]
    fn turns_go_in_order() {
        let turns = Arc::new(Turns::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let later = {
            let (turns, order) = (turns.clone(), order.clone());
            std::thread::spawn(move || {
                let _t = turns.wait(1);
                order.lock().unwrap().push(1);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        {
            let _t = turns.wait(0);
            order.lock().unwrap().push(0);
        }
        later.join().unwrap();
        assert_eq!(*order.lock().unwrap(), vec![0, 1]);
        // a turn already passed does not wait
        let _again = turns.wait(0);
    }
}
