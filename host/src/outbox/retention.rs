//! How long settled messages stay in the outbox (`[outbox] retention_days`).
//!
//! A sent, failed or cancelled message keeps its row, attempts and MIME so
//! `outbox show`, `GET /v1/messages/{id}` and a retry can read them. Without
//! an end, a service that sends every day grows its database forever (2 KB
//! and more per message) and every count in `/metrics` reads more rows. The
//! service deletes settled messages last changed more than `retention_days`
//! ago, in small transactions so the drain and the API wait at most for one
//! of them; `mailhost outbox purge` does it on demand. Open messages (queued,
//! deferred, sending) are never deleted, however old.

use std::time::Duration;

use super::{now_ms, Outbox, OutboxError, Store};

/// The default of `[outbox] retention_days`.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The longest retention that can be set (0 keeps messages for good).
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Messages deleted per transaction.
const CHUNK: u32 = 500;
/// How often the service looks for messages to delete.
const EVERY: Duration = Duration::from_secs(3600);

const DAY_MS: i64 = 86_400_000;

/// Deletes up to `$2` settled messages last changed before `$1` (their
/// attempts and MIME go with them: `ON DELETE CASCADE`). `created_at` is never
/// after `updated_at`, so the state index narrows the search; no order, so a
/// chunk reads only the rows it deletes.
pub(crate) const PURGE_MESSAGES: &str = "DELETE FROM outbox_messages WHERE id IN (\
     SELECT id FROM outbox_messages WHERE state IN ('sent', 'failed', 'cancelled') \
     AND created_at < $1 AND updated_at < $1 LIMIT $2)";

/// Batches created before `$1` with no message left.
pub(crate) const PURGE_BATCHES: &str = "DELETE FROM outbox_batches WHERE created_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM outbox_messages m WHERE m.batch_id = outbox_batches.id)";

/// The cut-off for messages kept `days` days: last changed before it goes.
pub fn cutoff(days: u32, now: i64) -> i64 {
    now.saturating_sub(i64::from(days).saturating_mul(DAY_MS))
}

impl Outbox {
    /// Deletes every settled message last changed before `before`, a chunk
    /// per transaction, and the batches left empty. The number deleted.
    pub async fn purge(&self, before: i64) -> Result<u64, OutboxError> {
        let mut total = 0;
        loop {
            let n = self.store().purge(before, CHUNK).await?;
            total += n;
            if n < u64::from(CHUNK) {
                return Ok(total);
            }
            // Let the drain's and the API's writes in between chunks.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The service's retention: at start and then every hour, deletes what is
/// older than `days` days (None: keeps everything). Runs until aborted.
pub async fn run(outbox: Outbox, days: Option<u32>) {
    let Some(days) = days.filter(|d| *d > 0) else {
        return;
    };
    loop {
        match outbox.purge(cutoff(days, now_ms())).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "outbox: removed {n} sent, failed or cancelled message(s) settled more than {days} day(s) ago ([outbox] retention_days)"
            ),
            Err(e) => tracing::warn!("outbox: removing old messages failed (tried again in an hour): {e}"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_days_before_now_and_never_overflows() {
        assert_eq!(cutoff(1, 100 * DAY_MS), 99 * DAY_MS);
        assert_eq!(cutoff(0, 5), 5);
        assert_eq!(cutoff(MAX_RETENTION_DAYS, i64::MIN + 1), i64::MIN);
    }
}
