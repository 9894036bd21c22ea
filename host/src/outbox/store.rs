//! The outbox store: one trait, two databases. The SQL is shared (sqlx binds
//! `$N` on SQLite too); the differences are the arguments of `impl_store!`:
//! the claim's index hint and row locking, the lock that serialises the shared
//! rate limit, and who runs the frequent writes (SQLite's writer thread,
//! PostgreSQL's sqlx pool).

use std::collections::BTreeMap;
use std::future::Future;

use super::columns::{COLS, MIME_COL};
use super::stats::Waiting;
use super::{
    AttemptRecord, Change, Enqueued, ListFilter, MessageRecord, NewMessage, OutboxError, Settle,
};

/// Everything the service needs from its database. Every method commits before it returns.
pub trait Store: Send + Sync {
    /// Human-readable location (file path, or URL without password) for errors.
    fn location(&self) -> &str;

    /// Inserts `msgs` in one transaction; a message whose (tenant, idempotency key)
    /// is already stored is not inserted and answers with the first id.
    fn enqueue_batch(
        &self,
        msgs: Vec<NewMessage>,
    ) -> impl Future<Output = Result<Vec<Enqueued>, OutboxError>> + Send;

    /// Takes up to `max` due messages (queued or deferred with `next_attempt_at <= now`,
    /// single messages first) into `sending` under a lease for `owner` until `lease_until`.
    /// Messages whose lease expired (a dead worker) are put back first (looked
    /// for at most once a second of `now`).
    fn claim(
        &self,
        owner: &str,
        max: u32,
        now: i64,
        lease_until: i64,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, OutboxError>> + Send;

    /// Extends every lease `owner` holds.
    fn renew(
        &self,
        owner: &str,
        lease_until: i64,
    ) -> impl Future<Output = Result<u64, OutboxError>> + Send;

    /// Writes the attempts and the new state in one transaction, only while
    /// `owner` still holds the lease. False when it does not (the lease expired
    /// and another worker took the message): nothing is written.
    fn settle(
        &self,
        id: &str,
        owner: &str,
        attempts: &[AttemptRecord],
        settle: &Settle,
        now: i64,
    ) -> impl Future<Output = Result<bool, OutboxError>> + Send;

    /// Several outcomes in one transaction (group commit of the workers'
    /// marks); one answer per item, as [`Store::settle`] gives.
    fn settle_batch(
        &self,
        items: &[SettleItem],
        now: i64,
    ) -> impl Future<Output = Result<Vec<bool>, OutboxError>> + Send;

    /// Puts every message `owner` holds back to `queued` (graceful shutdown).
    fn release(
        &self,
        owner: &str,
        now: i64,
    ) -> impl Future<Output = Result<u64, OutboxError>> + Send;

    /// One message with its MIME and attempts.
    fn get(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(MessageRecord, Vec<AttemptRecord>)>, OutboxError>> + Send;

    /// Newest first, without MIME.
    fn list(
        &self,
        filter: &ListFilter,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, OutboxError>> + Send;

    /// failed / cancelled / deferred → queued, due now.
    fn retry(&self, id: &str, now: i64)
        -> impl Future<Output = Result<Change, OutboxError>> + Send;

    /// Every message that matches `f` (its page aside) and may make the
    /// move: failed / cancelled / deferred → queued, due now (`cancel`
    /// false), or queued / deferred → cancelled. How many moved.
    fn change_matching(
        &self,
        f: &ListFilter,
        cancel: bool,
        now: i64,
    ) -> impl Future<Output = Result<u64, OutboxError>> + Send;

    /// queued / deferred → cancelled.
    fn cancel(
        &self,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Change, OutboxError>> + Send;

    /// Messages per state.
    fn counts(&self) -> impl Future<Output = Result<BTreeMap<String, u64>, OutboxError>> + Send;

    /// The creation time of the oldest message per open state (queued,
    /// deferred, sending): how long mail has been waiting.
    fn oldest_open(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, i64>, OutboxError>> + Send;

    /// The open messages (queued, deferred, sending) per way out they wait
    /// for (an account's name or a candidate's label; `""` when not known)
    /// and state.
    fn open_by_way_out(&self) -> impl Future<Output = Result<Waiting, OutboxError>> + Send;

    /// Takes one send from `account`'s per-minute budget, shared by every process
    /// on this database. `Ok(None)` when taken; `Ok(Some(ms))` when the budget is
    /// spent: try again in `ms`.
    fn take_rate_slot(
        &self,
        account: &str,
        per_minute: u32,
        now: i64,
    ) -> impl Future<Output = Result<Option<i64>, OutboxError>> + Send;

    /// Takes one of an account's `limit` send slots (its `max_concurrent`),
    /// shared by every process on this database: `Some(slot)` when taken,
    /// `None` when all are in use. A slot held by a process that died frees
    /// itself at `until` (renewed with the leases, see [`Store::renew`]).
    fn take_send_slot(
        &self,
        account: &str,
        limit: u32,
        owner: &str,
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<Option<String>, OutboxError>> + Send;

    /// Gives a slot from [`Store::take_send_slot`] back.
    fn free_send_slot(&self, slot: &str) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// Deletes up to `limit` settled messages (sent, failed, cancelled) last
    /// changed before `before`, with their attempts and MIME; when fewer were
    /// left, also the batches created before it that have no message left.
    /// The number of messages deleted (see retention.rs).
    fn purge(
        &self,
        before: i64,
        limit: u32,
    ) -> impl Future<Output = Result<u64, OutboxError>> + Send;

    /// Records what the service saw of an account's connection.
    fn set_account_status(
        &self,
        account: &str,
        state: &str,
        reason: &str,
        now: i64,
    ) -> impl Future<Output = Result<(), OutboxError>> + Send;

    /// account → (state, reason, updated_at)
    fn account_statuses(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, (String, String, i64)>, OutboxError>> + Send;
}

/// One outcome for [`Store::settle_batch`].
#[derive(Debug, Clone)]
pub struct SettleItem {
    pub id: String,
    pub owner: String,
    pub attempts: Vec<AttemptRecord>,
    pub settle: Settle,
    /// The message's attempt count when it was claimed, where the caller
    /// knows it: the number of its first new attempt (no one else records
    /// attempts while the lease is held). None: read from the row.
    pub first_seq: Option<u32>,
}

/// The statements of one per-account budget kept in the database
/// (`take_budget` in [`impl_store`]): `$1` is the account.
pub(crate) struct BudgetSql {
    /// Drops the entries at or before `$2`.
    pub expire: &'static str,
    /// The entries left and the oldest one's time.
    pub count: &'static str,
}

/// `max_per_minute`: one row per send in the last minute.
pub(crate) const RATE: BudgetSql = BudgetSql {
    expire: "DELETE FROM outbox_rate WHERE account = $1 AND at <= $2",
    count: "SELECT COUNT(*), MIN(at) FROM outbox_rate WHERE account = $1",
};

/// `max_concurrent`: one row per send in flight, until its lease runs out.
pub(crate) const SEND_SLOTS: BudgetSql = BudgetSql {
    expire: "DELETE FROM outbox_send_slots WHERE account = $1 AND until <= $2",
    count: "SELECT COUNT(*), MIN(until) FROM outbox_send_slots WHERE account = $1",
};

/// [`Store::change_matching`]'s retry: what [`Store::retry`] sets besides
/// the state, up to the time it binds.
pub(crate) const RETRY_SET: &str = "\
     chain_pos = CASE WHEN state = 'deferred' THEN chain_pos ELSE 0 END, \
     position_since = CASE WHEN state = 'deferred' THEN position_since ELSE NULL END, \
     last_error = NULL, next_attempt_at = ";

/// Puts back the messages of a worker that died (`sending` past its lease); `$1` is now.
pub(crate) const SWEEP_EXPIRED: &str = "UPDATE outbox_messages SET state = 'queued', lease_owner = NULL, \
     lease_until = NULL, next_attempt_at = $1, updated_at = $1 WHERE state = 'sending' AND lease_until < $1";

/// The claim: takes up to `$4` due messages for owner `$1` until `$2`, `$3`
/// being now, and returns them with their MIME. `index` follows the table
/// name in the inner SELECT, `suffix` ends it (see [`impl_store`]).
pub(crate) fn claim_sql(index: &str, suffix: &str) -> String {
    format!(
        "UPDATE outbox_messages SET state = 'sending', lease_owner = $1, lease_until = $2, \
         updated_at = $3 WHERE id IN (SELECT id FROM outbox_messages{index} \
         WHERE state IN ('queued', 'deferred') AND next_attempt_at <= $3 AND {} \
         ORDER BY priority, next_attempt_at, created_at, id LIMIT $4{suffix}) \
         RETURNING {COLS}, {MIME_COL}",
        super::pacing::CLAIMABLE,
    )
}

/// The idempotency scope: keys are unique per tenant (one tenant cannot learn another's ids).
pub(crate) fn idem_scope(tenant: Option<&str>) -> String {
    tenant.unwrap_or("").to_string()
}

/// A URL without its password, for errors and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// Defines the Store methods for one concrete store over one sqlx database.
/// `$claim_index` follows the table name in the claim's inner SELECT (SQLite,
/// without statistics, would otherwise pick the state index and sort every
/// due message for each claim);
/// `$claim_suffix` goes at the end of the claim's inner SELECT (row locks);
/// `$rate_lock` is run first in the rate-limit transaction (None: the DELETE
/// that starts it takes SQLite's write lock);
/// `$way_out_now` is the SQL for the label at `chain_pos` in `way_outs` (the
/// way out a message waits for or last went through).
macro_rules! impl_store {
    ($ty:ty, $db:ty, $claim_index:expr, $claim_suffix:expr, $rate_lock:expr, $way_out_now:expr, $writes:ident) => {
        impl $crate::outbox::store::Store for $ty {
            fn location(&self) -> &str {
                &self.location
            }

            $writes!($db, $claim_index, $claim_suffix);

            async fn renew(
                &self,
                owner: &str,
                lease_until: i64,
            ) -> Result<u64, $crate::outbox::OutboxError> {
                let r = sqlx::query(
                    "UPDATE outbox_messages SET lease_until = $2 WHERE lease_owner = $1 AND state = 'sending'",
                )
                .bind(owner)
                .bind(lease_until)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err("renew leases", e))?;
                sqlx::query("UPDATE outbox_send_slots SET until = $2 WHERE owner = $1")
                    .bind(owner)
                    .bind(lease_until)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err("renew send slots", e))?;
                Ok(r.rows_affected())
            }

            async fn settle(
                &self,
                id: &str,
                owner: &str,
                attempts: &[$crate::outbox::AttemptRecord],
                s: &$crate::outbox::Settle,
                now: i64,
            ) -> Result<bool, $crate::outbox::OutboxError> {
                let item = $crate::outbox::store::SettleItem {
                    id: id.to_string(),
                    owner: owner.to_string(),
                    attempts: attempts.to_vec(),
                    settle: s.clone(),
                    first_seq: None,
                };
                let done = self.settle_batch(std::slice::from_ref(&item), now).await?;
                Ok(done.first().copied().unwrap_or(false))
            }

            async fn release(&self, owner: &str, now: i64) -> Result<u64, $crate::outbox::OutboxError> {
                let r = sqlx::query(
                    "UPDATE outbox_messages SET state = 'queued', lease_owner = NULL, lease_until = NULL, \
                     updated_at = $2 WHERE lease_owner = $1 AND state = 'sending'",
                )
                .bind(owner)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err("release leases", e))?;
                sqlx::query("DELETE FROM outbox_send_slots WHERE owner = $1")
                    .bind(owner)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err("release send slots", e))?;
                Ok(r.rows_affected())
            }

            async fn get(
                &self,
                id: &str,
            ) -> Result<
                Option<($crate::outbox::MessageRecord, Vec<$crate::outbox::AttemptRecord>)>,
                $crate::outbox::OutboxError,
            > {
                use sqlx::Row;
                let q = |e| self.err("read a message", e);
                let sql = format!(
                    "SELECT {}, {} FROM outbox_messages WHERE id = $1",
                    $crate::outbox::columns::COLS,
                    $crate::outbox::columns::MIME_COL
                );
                let Some(row) = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(q)?
                else {
                    return Ok(None);
                };
                let rec = Self::record(&row, true)?;
                let rows = sqlx::query(
                    "SELECT at, chain_pos, candidate, plugin, class, code, text FROM outbox_attempts \
                     WHERE message = $1 ORDER BY seq",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(q)?;
                let c = |e: sqlx::Error| $crate::outbox::OutboxError::Corrupt {
                    what: "attempt",
                    detail: e.to_string(),
                };
                let mut attempts = Vec::with_capacity(rows.len());
                for r in &rows {
                    attempts.push($crate::outbox::AttemptRecord {
                        at: r.try_get("at").map_err(c)?,
                        chain_pos: r.try_get::<i64, _>("chain_pos").map_err(c)? as u32,
                        candidate: r.try_get("candidate").map_err(c)?,
                        plugin: r.try_get("plugin").map_err(c)?,
                        class: r.try_get("class").map_err(c)?,
                        code: r.try_get("code").map_err(c)?,
                        text: r.try_get("text").map_err(c)?,
                    });
                }
                Ok(Some((rec, attempts)))
            }

            async fn list(
                &self,
                f: &$crate::outbox::ListFilter,
            ) -> Result<Vec<$crate::outbox::MessageRecord>, $crate::outbox::OutboxError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM outbox_messages WHERE 1 = 1",
                    $crate::outbox::columns::COLS
                ));
                Self::push_filter(&mut qb, f);
                if let Some((at, id)) = &f.before {
                    qb.push(" AND (created_at < ")
                        .push_bind(*at)
                        .push(" OR (created_at = ")
                        .push_bind(*at)
                        .push(" AND id < ")
                        .push_bind(id.clone())
                        .push("))");
                }
                qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .push_bind(f.limit.clamp(1, 1000) as i64);
                let rows = qb
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| self.err("list messages", e))?;
                rows.iter().map(|r| Self::record(r, false)).collect()
            }

            async fn retry(&self, id: &str, now: i64) -> Result<$crate::outbox::Change, $crate::outbox::OutboxError> {
                let r = sqlx::query(&format!(
                    "UPDATE outbox_messages SET {}$2, state = 'queued', updated_at = $2 \
                     WHERE id = $1 AND state IN ('failed', 'cancelled', 'deferred')",
                    $crate::outbox::store::RETRY_SET
                ))
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err("retry", e))?;
                self.change(id, r.rows_affected(), $crate::outbox::State::Queued).await
            }

            async fn change_matching(
                &self,
                f: &$crate::outbox::ListFilter,
                cancel: bool,
                now: i64,
            ) -> Result<u64, $crate::outbox::OutboxError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE outbox_messages SET ");
                if !cancel {
                    qb.push($crate::outbox::store::RETRY_SET).push_bind(now).push(", ");
                }
                qb.push(if cancel { "state = 'cancelled'" } else { "state = 'queued'" })
                    .push(", updated_at = ")
                    .push_bind(now)
                    .push(" WHERE state IN (");
                let mut states = qb.separated(", ");
                for s in $crate::outbox::movable(cancel) {
                    states.push_bind(s.as_str());
                }
                qb.push(")");
                Self::push_filter(&mut qb, f);
                let r = qb
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err(if cancel { "cancel messages" } else { "retry messages" }, e))?;
                Ok(r.rows_affected())
            }

            async fn cancel(&self, id: &str, now: i64) -> Result<$crate::outbox::Change, $crate::outbox::OutboxError> {
                let r = sqlx::query(
                    "UPDATE outbox_messages SET state = 'cancelled', updated_at = $2 \
                     WHERE id = $1 AND state IN ('queued', 'deferred')",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err("cancel", e))?;
                self.change(id, r.rows_affected(), $crate::outbox::State::Cancelled).await
            }

            async fn counts(&self) -> Result<std::collections::BTreeMap<String, u64>, $crate::outbox::OutboxError> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT state, COUNT(*) FROM outbox_messages GROUP BY state")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| self.err("count messages", e))?;
                let mut out: std::collections::BTreeMap<String, u64> = $crate::outbox::State::ALL
                    .iter()
                    .map(|s| (s.as_str().to_string(), 0))
                    .collect();
                for (s, n) in rows {
                    out.insert(s, n as u64);
                }
                Ok(out)
            }

            async fn oldest_open(&self) -> Result<std::collections::BTreeMap<String, i64>, $crate::outbox::OutboxError> {
                // The state index (state, created_at): one probe per state.
                let mut out = std::collections::BTreeMap::new();
                for state in ["queued", "deferred", "sending"] {
                    let (at,): (Option<i64>,) = sqlx::query_as(
                        "SELECT MIN(created_at) FROM outbox_messages WHERE state = $1",
                    )
                    .bind(state)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| self.err("find the oldest open message", e))?;
                    if let Some(at) = at {
                        out.insert(state.to_string(), at);
                    }
                }
                Ok(out)
            }

            async fn open_by_way_out(
                &self,
            ) -> Result<$crate::outbox::stats::Waiting, $crate::outbox::OutboxError> {
                // Grouped by the chain's labels and the position in it: as
                // many groups as distinct chains, each read once here.
                let rows: Vec<(Option<String>, i64, String, i64)> = sqlx::query_as(
                    "SELECT way_outs, chain_pos, state, COUNT(*) FROM outbox_messages \
                     WHERE state IN ('queued', 'deferred', 'sending') \
                     GROUP BY way_outs, chain_pos, state",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("count open messages", e))?;
                Ok($crate::outbox::stats::by_way_out(rows))
            }

            async fn take_rate_slot(
                &self,
                account: &str,
                per_minute: u32,
                now: i64,
            ) -> Result<Option<i64>, $crate::outbox::OutboxError> {
                let insert = sqlx::query("INSERT INTO outbox_rate (account, at) VALUES ($1, $2)")
                    .bind(account)
                    .bind(now);
                let taken = self
                    .take_budget("rate limit", &$crate::outbox::store::RATE, account, per_minute, now - 60_000, insert)
                    .await?;
                Ok(taken
                    .err()
                    .map(|oldest| oldest.map(|o| o + 60_000 - now).unwrap_or(1_000).max(1)))
            }

            async fn take_send_slot(
                &self,
                account: &str,
                limit: u32,
                owner: &str,
                now: i64,
                until: i64,
            ) -> Result<Option<String>, $crate::outbox::OutboxError> {
                let slot = uuid::Uuid::new_v4().to_string();
                let insert = sqlx::query(
                    "INSERT INTO outbox_send_slots (slot, account, owner, until) VALUES ($1, $2, $3, $4)",
                )
                .bind(slot.clone())
                .bind(account)
                .bind(owner)
                .bind(until);
                // Slots of processes that died (their `until` passed) are free again.
                let taken = self
                    .take_budget("send slot", &$crate::outbox::store::SEND_SLOTS, account, limit, now, insert)
                    .await?;
                Ok(taken.ok().map(|()| slot))
            }

            async fn free_send_slot(&self, slot: &str) -> Result<(), $crate::outbox::OutboxError> {
                sqlx::query("DELETE FROM outbox_send_slots WHERE slot = $1")
                    .bind(slot)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err("free a send slot", e))?;
                Ok(())
            }

            async fn purge(&self, before: i64, limit: u32) -> Result<u64, $crate::outbox::OutboxError> {
                let r = sqlx::query($crate::outbox::retention::PURGE_MESSAGES)
                    .bind(before)
                    .bind(i64::from(limit))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.err("remove old messages", e))?;
                if r.rows_affected() < u64::from(limit) {
                    sqlx::query($crate::outbox::retention::PURGE_BATCHES)
                        .bind(before)
                        .execute(&self.pool)
                        .await
                        .map_err(|e| self.err("remove old batches", e))?;
                }
                Ok(r.rows_affected())
            }

            async fn set_account_status(
                &self,
                account: &str,
                state: &str,
                reason: &str,
                now: i64,
            ) -> Result<(), $crate::outbox::OutboxError> {
                sqlx::query(
                    "INSERT INTO outbox_account_status (account, state, reason, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account) DO UPDATE SET state = excluded.state, reason = excluded.reason, \
                     updated_at = excluded.updated_at",
                )
                .bind(account)
                .bind(state)
                .bind(reason)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| self.err("record account status", e))?;
                Ok(())
            }

            async fn account_statuses(
                &self,
            ) -> Result<std::collections::BTreeMap<String, (String, String, i64)>, $crate::outbox::OutboxError> {
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT account, state, reason, updated_at FROM outbox_account_status ORDER BY account",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err("read account status", e))?;
                Ok(rows.into_iter().map(|(a, s, r, t)| (a, (s, r, t))).collect())
            }
        }

        impl $ty {
            /// One more use of an account's budget shared through the database (a
            /// rate per minute, send slots): in one transaction, lock the account
            /// (PostgreSQL), drop the entries at or before `expired`, count the rest
            /// and run `insert` when they are fewer than `limit`. `Err` with the
            /// oldest remaining entry's time when the budget is used up.
            async fn take_budget<'q>(
                &self,
                what: &'static str,
                sql: &$crate::outbox::store::BudgetSql,
                account: &str,
                limit: u32,
                expired: i64,
                insert: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            ) -> Result<Result<(), Option<i64>>, $crate::outbox::OutboxError> {
                let q = |e| self.err(what, e);
                let mut tx = self.pool.begin().await.map_err(q)?;
                let lock: Option<&str> = $rate_lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).bind(account).execute(&mut *tx).await.map_err(q)?;
                }
                sqlx::query(sql.expire)
                    .bind(account)
                    .bind(expired)
                    .execute(&mut *tx)
                    .await
                    .map_err(q)?;
                let (n, oldest): (i64, Option<i64>) = sqlx::query_as(sql.count)
                    .bind(account)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(q)?;
                if n >= limit as i64 {
                    tx.rollback().await.map_err(q)?;
                    return Ok(Err(oldest));
                }
                insert.execute(&mut *tx).await.map_err(q)?;
                tx.commit().await.map_err(q)?;
                Ok(Ok(()))
            }

            /// The conditions of `f` but its page (`before`, `limit`), each as ` AND …`.
            fn push_filter(qb: &mut sqlx::QueryBuilder<'_, $db>, f: &$crate::outbox::ListFilter) {
                if let Some(s) = f.state {
                    qb.push(" AND state = ").push_bind(s.as_str());
                }
                if let Some(t) = &f.tenant {
                    qb.push(" AND tenant = ").push_bind(t.clone());
                }
                if let Some(u) = &f.user {
                    qb.push(" AND user_name = ").push_bind(u.clone());
                }
                if let Some(a) = &f.account {
                    qb.push(concat!(" AND ", $way_out_now, " = ")).push_bind(a.clone());
                }
                if let Some(t) = f.since {
                    qb.push(" AND created_at >= ").push_bind(t);
                }
                if let Some(t) = f.until {
                    qb.push(" AND created_at < ").push_bind(t);
                }
            }

            fn err(&self, what: &'static str, e: sqlx::Error) -> $crate::outbox::OutboxError {
                $crate::outbox::OutboxError::Query {
                    location: self.location.clone(),
                    what,
                    detail: e.to_string(),
                }
            }

            async fn change(
                &self,
                id: &str,
                changed: u64,
                to: $crate::outbox::State,
            ) -> Result<$crate::outbox::Change, $crate::outbox::OutboxError> {
                if changed > 0 {
                    return Ok($crate::outbox::Change::Done(to));
                }
                let row: Option<(String,)> = sqlx::query_as("SELECT state FROM outbox_messages WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.err("read a message", e))?;
                Ok(match row.and_then(|(s,)| $crate::outbox::State::parse(&s)) {
                    Some(s) => $crate::outbox::Change::NotAllowed(s),
                    None => $crate::outbox::Change::NotFound,
                })
            }

            fn record(
                r: &<$db as sqlx::Database>::Row,
                with_mime: bool,
            ) -> Result<$crate::outbox::MessageRecord, $crate::outbox::OutboxError> {
                use sqlx::Row;
                let c = |e: sqlx::Error| $crate::outbox::OutboxError::Corrupt {
                    what: "message",
                    detail: e.to_string(),
                };
                Ok($crate::outbox::columns::read_record!(r, try_get, c, with_mime))
            }
        }
    };
}
pub(crate) use impl_store;

/// The store the configuration names.
#[derive(Debug)]
pub enum AnyStore {
    Sqlite(super::sqlite::SqliteStore),
    Postgres(super::postgres::PgStore),
}

impl AnyStore {
    /// `postgres://…` / `postgresql://…` → PostgreSQL; anything else is a SQLite file path.
    pub async fn open(location: &str) -> Result<AnyStore, OutboxError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Ok(AnyStore::Postgres(
                super::postgres::PgStore::open(location, None).await?,
            ))
        } else {
            Ok(AnyStore::Sqlite(
                super::sqlite::SqliteStore::open(std::path::Path::new(location)).await?,
            ))
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Postgres($s) => $e,
        }
    };
}

impl Store for AnyStore {
    fn location(&self) -> &str {
        dispatch!(self, s => s.location())
    }
    async fn enqueue_batch(&self, msgs: Vec<NewMessage>) -> Result<Vec<Enqueued>, OutboxError> {
        dispatch!(self, s => s.enqueue_batch(msgs).await)
    }
    async fn claim(
        &self,
        owner: &str,
        max: u32,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<MessageRecord>, OutboxError> {
        dispatch!(self, s => s.claim(owner, max, now, lease_until).await)
    }
    async fn renew(&self, owner: &str, lease_until: i64) -> Result<u64, OutboxError> {
        dispatch!(self, s => s.renew(owner, lease_until).await)
    }
    async fn settle(
        &self,
        id: &str,
        owner: &str,
        attempts: &[AttemptRecord],
        settle: &Settle,
        now: i64,
    ) -> Result<bool, OutboxError> {
        dispatch!(self, s => s.settle(id, owner, attempts, settle, now).await)
    }
    async fn settle_batch(&self, items: &[SettleItem], now: i64) -> Result<Vec<bool>, OutboxError> {
        dispatch!(self, s => s.settle_batch(items, now).await)
    }
    async fn release(&self, owner: &str, now: i64) -> Result<u64, OutboxError> {
        dispatch!(self, s => s.release(owner, now).await)
    }
    async fn get(
        &self,
        id: &str,
    ) -> Result<Option<(MessageRecord, Vec<AttemptRecord>)>, OutboxError> {
        dispatch!(self, s => s.get(id).await)
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<MessageRecord>, OutboxError> {
        dispatch!(self, s => s.list(filter).await)
    }
    async fn retry(&self, id: &str, now: i64) -> Result<Change, OutboxError> {
        dispatch!(self, s => s.retry(id, now).await)
    }
    async fn change_matching(
        &self,
        f: &ListFilter,
        cancel: bool,
        now: i64,
    ) -> Result<u64, OutboxError> {
        dispatch!(self, s => s.change_matching(f, cancel, now).await)
    }
    async fn cancel(&self, id: &str, now: i64) -> Result<Change, OutboxError> {
        dispatch!(self, s => s.cancel(id, now).await)
    }
    async fn counts(&self) -> Result<BTreeMap<String, u64>, OutboxError> {
        dispatch!(self, s => s.counts().await)
    }
    async fn oldest_open(&self) -> Result<BTreeMap<String, i64>, OutboxError> {
        dispatch!(self, s => s.oldest_open().await)
    }
    async fn open_by_way_out(&self) -> Result<Waiting, OutboxError> {
        dispatch!(self, s => s.open_by_way_out().await)
    }
    async fn take_rate_slot(
        &self,
        account: &str,
        per_minute: u32,
        now: i64,
    ) -> Result<Option<i64>, OutboxError> {
        dispatch!(self, s => s.take_rate_slot(account, per_minute, now).await)
    }
    async fn take_send_slot(
        &self,
        account: &str,
        limit: u32,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<String>, OutboxError> {
        dispatch!(self, s => s.take_send_slot(account, limit, owner, now, until).await)
    }
    async fn free_send_slot(&self, slot: &str) -> Result<(), OutboxError> {
        dispatch!(self, s => s.free_send_slot(slot).await)
    }
    async fn purge(&self, before: i64, limit: u32) -> Result<u64, OutboxError> {
        dispatch!(self, s => s.purge(before, limit).await)
    }
    async fn set_account_status(
        &self,
        account: &str,
        state: &str,
        reason: &str,
        now: i64,
    ) -> Result<(), OutboxError> {
        dispatch!(self, s => s.set_account_status(account, state, reason, now).await)
    }
    async fn account_statuses(
        &self,
    ) -> Result<BTreeMap<String, (String, String, i64)>, OutboxError> {
        dispatch!(self, s => s.account_statuses().await)
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://mailhost:secret@127.0.0.1:55432/mailhost"),
            "postgres://mailhost:***@127.0.0.1:55432/mailhost"
        );
        assert_eq!(redact_url("/var/lib/outbox.db"), "/var/lib/outbox.db");
    }
}
