//! Batches in the outbox: one `outbox_batches` row per batch, its messages
//! (priority `Batch`) pointing to it through `batch_id`. A batch is stored with
//! all its messages in one transaction; its status is counted from them.

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;

use super::{AnyStore, Enqueued, NewMessage, Outbox, OutboxError};

/// What `create_batch` stores beside the messages.
#[derive(Debug, Clone)]
pub struct NewBatch {
    /// A name for people (`--name`, the file name).
    pub label: Option<String>,
    pub tenant: Option<String>,
    pub user: Option<String>,
    /// Unique per tenant: a second batch with the same key answers with the first batch's id.
    pub idempotency_key: Option<String>,
    /// Messages per minute (0: not paced).
    pub per_minute: u32,
}

/// A stored batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRecord {
    pub id: String,
    pub label: Option<String>,
    pub tenant: Option<String>,
    pub user: Option<String>,
    pub idempotency_key: Option<String>,
    pub total: u64,
    pub per_minute: u32,
    pub created_at: i64,
}

/// A batch and where its messages are.
#[derive(Debug, Clone, Serialize)]
pub struct BatchStatus {
    #[serde(flatten)]
    pub batch: BatchRecord,
    /// Messages per state (every state, zeros included).
    pub counts: BTreeMap<String, u64>,
    /// Failed messages by the class of their last attempt (`permanent`, `auth`, `refused`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Nothing is queued, sending or deferred any more.
    pub done: bool,
    /// When the earliest queued or deferred message is due (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due: Option<i64>,
}

impl BatchStatus {
    pub fn count(&self, state: super::State) -> u64 {
        self.counts.get(state.as_str()).copied().unwrap_or(0)
    }

    /// Messages no worker will touch again.
    pub fn finished(&self) -> u64 {
        use super::State::*;
        self.count(Sent) + self.count(Failed) + self.count(Cancelled)
    }
}

/// The batch side of the store. Every method commits before it returns.
pub trait BatchStore: Send + Sync {
    /// Stores the batch and all its messages in one transaction. A batch whose
    /// (tenant, idempotency key) is stored already is not stored again: its id
    /// comes back with `duplicate` set.
    fn create_batch(
        &self,
        batch: &NewBatch,
        msgs: Vec<NewMessage>,
        now: i64,
    ) -> impl Future<Output = Result<Enqueued, OutboxError>> + Send;

    fn batch_status(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<BatchStatus>, OutboxError>> + Send;

    /// Newest first; continue after `before` = `(created_at, id)`. `tenant`
    /// limits the list to one tenant's batches.
    fn list_batches(
        &self,
        tenant: Option<&str>,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<BatchRecord>, OutboxError>> + Send;

    /// Cancels the batch's queued and deferred messages; how many.
    fn cancel_batch(
        &self,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<u64, OutboxError>> + Send;

    /// Takes the batch's next send slot (see [`super::pacing`]): `Ok(None)`
    /// when taken (or the batch is not paced), `Ok(Some(at))` when the next
    /// slot is at `at`.
    fn take_batch_slot(
        &self,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<i64>, OutboxError>> + Send;
}

const BATCH_COLS: &str =
    "id, label, tenant, user_name, idempotency_key, total, per_minute, created_at";

const INSERT_MSG: &str = "INSERT INTO outbox_messages (id, state, action, user_name, \
     tenant, purpose, idem_scope, idempotency_key, message_id, envelope_from, envelope_to, \
     options_json, decision_json, chain_pos, priority, next_attempt_at, created_at, updated_at, batch_id, \
     way_outs) ";

macro_rules! impl_batch_store {
    ($ty:ty, $db:ty) => {
        impl BatchStore for $ty {
            async fn create_batch(
                &self,
                batch: &NewBatch,
                msgs: Vec<NewMessage>,
                now: i64,
            ) -> Result<Enqueued, OutboxError> {
                let q = |e| self.batch_err("store a batch", e);
                let id = uuid::Uuid::now_v7().to_string();
                let scope = super::store::idem_scope(batch.tenant.as_deref());
                let mut tx = self.pool.begin().await.map_err(q)?;
                let inserted: Option<(String,)> = sqlx::query_as(
                    "INSERT INTO outbox_batches (id, label, tenant, user_name, idem_scope, idempotency_key, \
                     total, per_minute, next_slot_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                     ON CONFLICT (idem_scope, idempotency_key) DO NOTHING RETURNING id",
                )
                .bind(&id)
                .bind(&batch.label)
                .bind(&batch.tenant)
                .bind(&batch.user)
                .bind(&scope)
                .bind(&batch.idempotency_key)
                .bind(msgs.len() as i64)
                .bind(batch.per_minute as i64)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(q)?;
                if inserted.is_none() {
                    let (first,): (String,) = sqlx::query_as(
                        "SELECT id FROM outbox_batches WHERE idem_scope = $1 AND idempotency_key = $2",
                    )
                    .bind(&scope)
                    .bind(&batch.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(q)?;
                    tx.rollback().await.map_err(q)?;
                    return Ok(Enqueued { id: first, duplicate: true });
                }
                // Time-ordered ids made in file order (uuid's `now_v7` is
                // monotonic within a process): claims that tie on time take
                // the rows in file order, and the ids look like every other.
                let ids: Vec<String> = (0..msgs.len())
                    .map(|_| uuid::Uuid::now_v7().to_string())
                    .collect();
                let index: Vec<usize> = (0..msgs.len()).collect();
                for chunk in index.chunks(400) {
                    // Per chunk: bounded extra memory whatever the batch's size.
                    let extra: Vec<(String, String)> = chunk
                        .iter()
                        .map(|&n| {
                            let m = &msgs[n];
                            (
                                super::store::idem_scope(m.tenant.as_deref()),
                                serde_json::to_string(&m.envelope_to).unwrap_or_default(),
                            )
                        })
                        .collect();
                    let mut qb = sqlx::QueryBuilder::<$db>::new(INSERT_MSG);
                    qb.push_values(chunk.iter().zip(&extra), |mut b, (&n, (scope, to))| {
                        let m = &msgs[n];
                        b.push_bind(&ids[n])
                            .push_bind("queued")
                            .push_bind(&m.action)
                            .push_bind(&m.user)
                            .push_bind(&m.tenant)
                            .push_bind(&m.purpose)
                            .push_bind(scope)
                            .push_bind(&m.idempotency_key)
                            .push_bind(&m.message_id)
                            .push_bind(&m.envelope_from)
                            .push_bind(to)
                            .push_bind(&m.options_json)
                            .push_bind(&m.decision_json)
                            .push_bind(0i64)
                            .push_bind(super::Priority::Batch as i64)
                            .push_bind(now)
                            .push_bind(now)
                            .push_bind(now)
                            .push_bind(&id)
                            .push_bind(&m.way_outs);
                    });
                    // Not kept prepared: its text changes with the chunk's size.
                    qb.build().persistent(false).execute(&mut *tx).await.map_err(q)?;
                    // The bytes, in their own table (migration 0004).
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO outbox_mime (message, mime) ");
                    qb.push_values(chunk, |mut b, &n| {
                        b.push_bind(&ids[n]).push_bind(&msgs[n].mime);
                    });
                    qb.build().persistent(false).execute(&mut *tx).await.map_err(q)?;
                }
                tx.commit().await.map_err(q)?;
                Ok(Enqueued { id, duplicate: false })
            }

            async fn batch_status(&self, id: &str) -> Result<Option<BatchStatus>, OutboxError> {
                let q = |e| self.batch_err("read a batch", e);
                let sql = format!("SELECT {BATCH_COLS} FROM outbox_batches WHERE id = $1");
                let Some(row) = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(q)?
                else {
                    return Ok(None);
                };
                let batch = batch_record::<$db>(&row)?;
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT state, COUNT(*) FROM outbox_messages WHERE batch_id = $1 GROUP BY state",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(q)?;
                let mut counts: BTreeMap<String, u64> = super::State::ALL
                    .iter()
                    .map(|s| (s.as_str().to_string(), 0))
                    .collect();
                for (s, n) in rows {
                    counts.insert(s, n as u64);
                }
                // The class of each failed message's last attempt.
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT a.class, COUNT(*) FROM outbox_messages m JOIN outbox_attempts a \
                     ON a.message = m.id AND a.seq = m.attempts_count - 1 \
                     WHERE m.batch_id = $1 AND m.state = 'failed' GROUP BY a.class",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(q)?;
                let failures: BTreeMap<String, u64> =
                    rows.into_iter().map(|(c, n)| (c, n as u64)).collect();
                let (next_due,): (Option<i64>,) = sqlx::query_as(
                    "SELECT MIN(next_attempt_at) FROM outbox_messages \
                     WHERE batch_id = $1 AND state IN ('queued', 'deferred')",
                )
                .bind(id)
                .fetch_one(&self.pool)
                .await
                .map_err(q)?;
                let open = ["queued", "sending", "deferred"]
                    .iter()
                    .map(|s| counts.get(*s).copied().unwrap_or(0))
                    .sum::<u64>();
                Ok(Some(BatchStatus {
                    batch,
                    counts,
                    failures,
                    done: open == 0,
                    next_due,
                }))
            }

            async fn list_batches(
                &self,
                tenant: Option<&str>,
                before: Option<(i64, String)>,
                limit: u32,
            ) -> Result<Vec<BatchRecord>, OutboxError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {BATCH_COLS} FROM outbox_batches WHERE 1 = 1"
                ));
                if let Some(t) = tenant {
                    qb.push(" AND tenant = ").push_bind(t.to_string());
                }
                if let Some((at, id)) = before {
                    qb.push(" AND (created_at < ")
                        .push_bind(at)
                        .push(" OR (created_at = ")
                        .push_bind(at)
                        .push(" AND id < ")
                        .push_bind(id)
                        .push("))");
                }
                qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .push_bind(limit.clamp(1, 1000) as i64);
                let rows = qb
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| self.batch_err("list batches", e))?;
                rows.iter().map(batch_record::<$db>).collect()
            }

            async fn cancel_batch(&self, id: &str, now: i64) -> Result<u64, OutboxError> {
                let r = sqlx::query(
                    "UPDATE outbox_messages SET state = 'cancelled', updated_at = $2 \
                     WHERE batch_id = $1 AND state IN ('queued', 'deferred')",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(|e| self.batch_err("cancel a batch", e))?;
                Ok(r.rows_affected())
            }

            async fn take_batch_slot(&self, id: &str, now: i64) -> Result<Option<i64>, OutboxError> {
                let q = |e| self.batch_err("take a batch send slot", e);
                // One statement: the row lock (PostgreSQL) or the write lock
                // (SQLite) makes it atomic across processes.
                let sql = format!(
                    "UPDATE outbox_batches SET next_slot_at = \
                     CASE WHEN next_slot_at > $2 - {credit} THEN next_slot_at ELSE $2 - {credit} END \
                     + (60000 + per_minute - 1) / per_minute \
                     WHERE id = $1 AND per_minute > 0 AND next_slot_at <= $2 RETURNING id",
                    credit = super::pacing::CREDIT_MS
                );
                let taken: Option<(String,)> = sqlx::query_as(&sql)
                    .bind(id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(q)?;
                if taken.is_some() {
                    return Ok(None);
                }
                let row: Option<(i64, i64)> = sqlx::query_as(
                    "SELECT per_minute, next_slot_at FROM outbox_batches WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(q)?;
                Ok(match row {
                    // Not paced, or the batch row is gone: nothing to wait for.
                    None | Some((0, _)) => None,
                    Some((_, at)) if at <= now => None,
                    Some((_, at)) => Some(at),
                })
            }
        }

        impl $ty {
            fn batch_err(&self, what: &'static str, e: sqlx::Error) -> OutboxError {
                OutboxError::Query {
                    location: self.location.clone(),
                    what,
                    detail: e.to_string(),
                }
            }
        }
    };
}

fn batch_record<DB: sqlx::Database>(r: &DB::Row) -> Result<BatchRecord, OutboxError>
where
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<String>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> &'r str: sqlx::ColumnIndex<DB::Row>,
{
    use sqlx::Row;
    let c = |e: sqlx::Error| OutboxError::Corrupt {
        what: "batch",
        detail: e.to_string(),
    };
    Ok(BatchRecord {
        id: r.try_get("id").map_err(c)?,
        label: r.try_get("label").map_err(c)?,
        tenant: r.try_get("tenant").map_err(c)?,
        user: r.try_get("user_name").map_err(c)?,
        idempotency_key: r.try_get("idempotency_key").map_err(c)?,
        total: r.try_get::<i64, _>("total").map_err(c)?.max(0) as u64,
        per_minute: r
            .try_get::<i64, _>("per_minute")
            .map_err(c)?
            .clamp(0, u32::MAX as i64) as u32,
        created_at: r.try_get("created_at").map_err(c)?,
    })
}

impl_batch_store!(super::sqlite::SqliteStore, sqlx::Sqlite);
impl_batch_store!(super::postgres::PgStore, sqlx::Postgres);

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Postgres($s) => $e,
        }
    };
}

impl BatchStore for AnyStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        msgs: Vec<NewMessage>,
        now: i64,
    ) -> Result<Enqueued, OutboxError> {
        dispatch!(self, s => s.create_batch(batch, msgs, now).await)
    }
    async fn batch_status(&self, id: &str) -> Result<Option<BatchStatus>, OutboxError> {
        dispatch!(self, s => s.batch_status(id).await)
    }
    async fn list_batches(
        &self,
        tenant: Option<&str>,
        before: Option<(i64, String)>,
        limit: u32,
    ) -> Result<Vec<BatchRecord>, OutboxError> {
        dispatch!(self, s => s.list_batches(tenant, before, limit).await)
    }
    async fn cancel_batch(&self, id: &str, now: i64) -> Result<u64, OutboxError> {
        dispatch!(self, s => s.cancel_batch(id, now).await)
    }
    async fn take_batch_slot(&self, id: &str, now: i64) -> Result<Option<i64>, OutboxError> {
        dispatch!(self, s => s.take_batch_slot(id, now).await)
    }
}

impl Outbox {
    /// Stores a batch and its messages durably (one transaction) and wakes this process's worker.
    pub async fn create_batch(
        &self,
        batch: &NewBatch,
        msgs: Vec<NewMessage>,
    ) -> Result<Enqueued, OutboxError> {
        self.check_space()?;
        let e = self
            .store()
            .create_batch(batch, msgs, super::now_ms())
            .await?;
        self.notify_enqueued();
        Ok(e)
    }
}
