//! `[outbox]`: the batch rate, the retention and the worker's numbers in
//! their ranges, each refusal said at its key.

use super::super::raw::RawConfig;
use super::{span, Validator};

impl Validator<'_> {
    /// `[outbox]`: the batch rate is at most 1,000 a second, the retention at
    /// most 100 years, the worker's numbers in their ranges (a huge one would
    /// start thousands of threads, overflow a lease's time or fail a
    /// semaphore); said at the key.
    pub(super) fn outbox_settings(&mut self, raw: &RawConfig) -> crate::outbox::OutboxSettings {
        let Some(o) = &raw.outbox else {
            return Default::default();
        };
        let v = o.get_ref().clone();
        if let Some(n) = v.batch_per_minute {
            if n > crate::outbox::MAX_BATCH_PER_MINUTE {
                let at = self.key_in(&span(o), "batch_per_minute");
                self.err(
                    &at,
                    format!(
                        "[outbox] batch_per_minute = {n} is more than {} (1,000 a second)",
                        crate::outbox::MAX_BATCH_PER_MINUTE
                    ),
                    "give messages per minute (e.g. 600), or 0 to send batches unpaced",
                );
            }
        }
        let as_u64 = |n: Option<usize>| n.map(|n| n as u64);
        let ranges: [(&str, Option<u64>, u64, u64, &str); 6] = [
            (
                "concurrency",
                as_u64(v.concurrency),
                1,
                crate::outbox::worker::MAX_CONCURRENCY as u64,
                "give the worker lanes per process (default 8), each a thread; `serve --no-workers` runs none",
            ),
            (
                "per_account",
                as_u64(v.per_account),
                1,
                crate::outbox::worker::MAX_PER_ACCOUNT as u64,
                "give the messages of one account in flight per process (default 4)",
            ),
            (
                "messages_per_step",
                as_u64(v.messages_per_step),
                1,
                crate::outbox::worker::MAX_LANE_BATCH as u64,
                "give the messages a worker lane tries before their outcomes are committed together (default 8); a crash may send up to concurrency × 2 × this many twice",
            ),
            (
                "lease_secs",
                v.lease_secs,
                1,
                86_400,
                "give how long a claim holds a message before another process may take it, in seconds (default 120)",
            ),
            (
                "max_age_secs",
                v.max_age_secs,
                0,
                30 * 86_400,
                "give how long one way out is retried after temporary failures, in seconds (default 86400, at most 30 days)",
            ),
            (
                "drain_secs",
                v.drain_secs,
                0,
                3_600,
                "give how long a stopping service waits for the sends in flight, in seconds (default 30)",
            ),
        ];
        for (key, value, min, max, hint) in ranges {
            if let Some(n) = value.filter(|n| !(min..=max).contains(n)) {
                let at = self.key_in(&span(o), key);
                self.err(
                    &at,
                    format!("[outbox] {key} = {n} is not between {min} and {max}"),
                    hint,
                );
            }
        }
        if let Some(n) = v.retention_days {
            let max = crate::outbox::retention::MAX_RETENTION_DAYS;
            if n > max {
                let at = self.key_in(&span(o), "retention_days");
                self.err(
                    &at,
                    format!("[outbox] retention_days = {n} is more than {max} (100 years)"),
                    "give the days a sent, failed or cancelled message is kept (default 30), or 0 to keep every message",
                );
            }
        }
        v
    }
}
