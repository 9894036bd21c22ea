//! The writer thread's statements: the enqueue, the claim and the
//! outcomes, each prepared once (`prepare_cached`) and run a row at a time.

use rusqlite::{params, Row};

use super::Thread;
use crate::outbox::columns::{COLS, MIME_COL};
use crate::outbox::store::{idem_scope, SettleItem, SWEEP_EXPIRED};
use crate::outbox::{Enqueued, MessageRecord, NewMessage, OutboxError, State};

impl Thread {
    pub(super) fn enqueue(&self, msgs: &[NewMessage]) -> Result<Vec<Enqueued>, OutboxError> {
        let q = self.err("enqueue");
        let now = crate::outbox::now_ms();
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO outbox_messages (id, state, action, user_name, tenant, purpose, \
                 idem_scope, idempotency_key, message_id, envelope_from, envelope_to, \
                 options_json, decision_json, chain_pos, priority, next_attempt_at, created_at, \
                 updated_at, way_outs) VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                 ?11, ?12, 0, ?13, ?14, ?14, ?14, ?15) \
                 ON CONFLICT (idem_scope, idempotency_key) DO NOTHING",
            )
            .map_err(&q)?;
        // The bytes in their own table (migration 0004): state changes rewrite the small row only.
        let mut insert_mime = self
            .conn
            .prepare_cached("INSERT INTO outbox_mime (message, mime) VALUES (?1, ?2)")
            .map_err(&q)?;
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            // Time-ordered ids (UUIDv7): a group's rows land on the last pages
            // of the id index instead of one random page each.
            let id = uuid::Uuid::now_v7().to_string();
            let scope = idem_scope(m.tenant.as_deref());
            let to = serde_json::to_string(&m.envelope_to).map_err(|e| OutboxError::Corrupt {
                what: "envelope recipients",
                detail: e.to_string(),
            })?;
            let n = insert
                .execute(params![
                    id,
                    m.action,
                    m.user,
                    m.tenant,
                    m.purpose,
                    scope,
                    m.idempotency_key,
                    m.message_id,
                    m.envelope_from,
                    to,
                    m.options_json,
                    m.decision_json,
                    m.priority as i64,
                    now,
                    m.way_outs,
                ])
                .map_err(&q)?;
            if n == 1 {
                insert_mime.execute(params![id, m.mime]).map_err(&q)?;
                out.push(Enqueued {
                    id,
                    duplicate: false,
                });
                continue;
            }
            // Its key was stored before (or earlier in this group): the first id.
            let first: String = self
                .conn
                .prepare_cached(
                    "SELECT id FROM outbox_messages WHERE idem_scope = ?1 AND idempotency_key = ?2",
                )
                .and_then(|mut s| s.query_row(params![scope, m.idempotency_key], |r| r.get(0)))
                .map_err(&q)?;
            out.push(Enqueued {
                id: first,
                duplicate: true,
            });
        }
        Ok(out)
    }

    pub(super) fn claim(
        &mut self,
        owner: &str,
        max: u32,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<MessageRecord>, OutboxError> {
        // A worker that died left its messages in `sending`: once the lease ran out they
        // are due again. Looked for at most once a second (a claim is frequent, a death rare).
        if now < self.expired_at || now.saturating_sub(self.expired_at) >= 1_000 {
            self.expired_at = now;
            self.conn
                .prepare_cached(SWEEP_EXPIRED)
                .and_then(|mut s| s.execute(params![now]))
                .map_err(self.err("claim"))?;
        }
        // Read, then mark each by its rowid. This thread's transaction is the
        // only writer, so nothing changes between the two. One `UPDATE …
        // RETURNING` would find each row again through the id index and
        // collect its rows in a temporary table first.
        let q = self.err("claim");
        let mut out = Vec::with_capacity(max as usize);
        let mut rowids = Vec::with_capacity(max as usize);
        {
            let mut st = self.conn.prepare_cached(&self.claim_select).map_err(&q)?;
            let mut rows = st
                .query(rusqlite::named_params! { "$3": now, "$4": max as i64 })
                .map_err(&q)?;
            while let Some(row) = rows.next().map_err(&q)? {
                let rowid: i64 = row.get(ROWID_AT).map_err(&q)?;
                rowids.push(rowid);
                out.push(record(row)?);
            }
        }
        let mut mark = self
            .conn
            .prepare_cached(
                "UPDATE outbox_messages SET state = 'sending', lease_owner = ?1, \
                 lease_until = ?2, updated_at = ?3 WHERE rowid = ?4",
            )
            .map_err(&q)?;
        for (rec, rowid) in out.iter_mut().zip(rowids) {
            mark.execute(params![owner, lease_until, now, rowid])
                .map_err(&q)?;
            rec.state = State::Sending;
            rec.lease_owner = Some(owner.to_string());
            rec.lease_until = Some(lease_until);
            rec.updated_at = now;
        }
        Ok(out)
    }

    pub(super) fn settle(&self, items: &[SettleItem], now: i64) -> Result<Vec<bool>, OutboxError> {
        let q = self.err("record the outcome");
        let mut update = self
            .conn
            .prepare_cached(
                "UPDATE outbox_messages SET state = ?3, next_attempt_at = ?4, chain_pos = ?5, \
                 position_since = ?6, last_error = ?7, attempts_count = attempts_count + ?8, \
                 lease_owner = ?9, lease_until = CASE WHEN ?9 IS NULL THEN NULL ELSE lease_until END, \
                 updated_at = ?10 WHERE id = ?1 AND lease_owner = ?2 AND state = 'sending'",
            )
            .map_err(&q)?;
        // Read back apart: SQLite runs `RETURNING` through a temporary table,
        // opened (and its page cache allocated) for every row.
        let mut count_of = self
            .conn
            .prepare_cached("SELECT attempts_count FROM outbox_messages WHERE id = ?1")
            .map_err(&q)?;
        let mut attempt = self
            .conn
            .prepare_cached(
                "INSERT INTO outbox_attempts (message, seq, at, chain_pos, candidate, plugin, \
                 class, code, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(&q)?;
        let mut done = Vec::with_capacity(items.len());
        for it in items {
            let s = &it.settle;
            let lease_owner = (s.state == State::Sending).then_some(it.owner.as_str());
            let changed = update
                .execute(params![
                    it.id,
                    it.owner,
                    s.state.as_str(),
                    s.next_attempt_at,
                    s.chain_pos as i64,
                    s.position_since,
                    s.last_error,
                    it.attempts.len() as i64,
                    lease_owner,
                    now,
                ])
                .map_err(&q)?;
            // 0: the lease ran out and another worker has the message; nothing is written.
            if changed == 0 {
                done.push(false);
                continue;
            }
            if it.attempts.is_empty() {
                done.push(true);
                continue;
            }
            let first = match it.first_seq {
                Some(n) => i64::from(n),
                None => {
                    let count: i64 = count_of
                        .query_row(params![it.id], |r| r.get(0))
                        .map_err(&q)?;
                    count - it.attempts.len() as i64
                }
            };
            for (i, a) in it.attempts.iter().enumerate() {
                attempt
                    .execute(params![
                        it.id,
                        first + i as i64,
                        a.at,
                        a.chain_pos as i64,
                        a.candidate,
                        a.plugin,
                        a.class,
                        a.code,
                        a.text,
                    ])
                    .map_err(&q)?;
            }
            done.push(true);
        }
        Ok(done)
    }
}

/// The claim's read: up to `$4` due messages, `$3` being now, in claim
/// order, with their MIME and then their rowid (at [`ROWID_AT`]).
pub(super) fn claim_select() -> String {
    format!(
        "SELECT {COLS}, {MIME_COL}, rowid FROM outbox_messages INDEXED BY outbox_due \
         WHERE state IN ('queued', 'deferred') AND next_attempt_at <= $3 AND {} \
         ORDER BY priority, next_attempt_at, created_at, id LIMIT $4",
        crate::outbox::pacing::CLAIMABLE,
    )
}

/// Where the claim's read has the rowid: after [`COLS`] and the MIME.
const ROWID_AT: usize = crate::outbox::columns::COL_NAMES.len() + 1;

/// A claimed row (the claim returns `columns::COLS` and the MIME).
fn record(r: &Row<'_>) -> Result<MessageRecord, OutboxError> {
    let c = |e: rusqlite::Error| OutboxError::Corrupt {
        what: "message",
        detail: e.to_string(),
    };
    Ok(crate::outbox::columns::read_record!(r, get, c, true))
}
