//! Batch pacing: a batch's messages go out at its own per-minute rate
//! (`[outbox] batch_per_minute`, or the batch's own `rate`), shared by every
//! process on the database through the batch's `next_slot_at` column.
//!
//! - The claim skips batch messages whose batch's next slot is still ahead
//!   ([`CLAIMABLE`]), so a held batch never takes a claim away from single
//!   messages (which sort first anyway) or from other batches.
//! - A claimed batch message takes its batch's slot (in claim order, before it
//!   is handed to a task) in one atomic `UPDATE`
//!   (`BatchStore::take_batch_slot`); the slot moves on by `60000 / rate` ms.
//!   When another process took the slot first, the message goes back to
//!   `queued`, due at the next slot, without an attempt ([`hold_for_pacing`]).
//! - A worker that wakes late may catch up at most [`CREDIT_MS`] of missed
//!   slots; over any minute a batch sends at most its rate plus that credit.

use super::batches::BatchStore;
use super::{now_ms, MessageRecord, Outbox, Settle, State, Store};

/// The claim's condition on batch messages (inside the claim's `WHERE`,
/// `$3` being now).
pub const CLAIMABLE: &str = "(batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox_batches b \
     WHERE b.id = outbox_messages.batch_id AND b.next_slot_at > $3))";

/// How far (ms) a batch's pacing clock may lag behind now: slots missed while
/// no worker looked are caught up to this much, not more.
pub const CREDIT_MS: i64 = 500;

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
