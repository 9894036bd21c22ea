//! The outbox's hot writes (enqueue, claim, outcomes) over sqlx, for the
//! PostgreSQL store (its SQL is PostgreSQL's: `BYTEA`, data-modifying `WITH`).
//! The SQLite store runs these writes on a writer thread of its own
//! (`sqlite_writer.rs`).
//! Expanded inside [`super::store::impl_store`]'s `impl Store`.

/// The three write methods of `impl Store` over sqlx's `$db`.
macro_rules! sqlx_writes {
    ($db:ty, $claim_index:expr, $claim_suffix:expr) => {
            async fn enqueue_batch(
                &self,
                msgs: Vec<$crate::outbox::NewMessage>,
            ) -> Result<Vec<$crate::outbox::Enqueued>, $crate::outbox::OutboxError> {
                use $crate::outbox::store::{idem_scope, INSERT_HEAD};
                let q = |e| self.err("enqueue", e);
                let now = $crate::outbox::now_ms();
                // Time-ordered ids (UUIDv7): a group's rows land on the last pages of the
                // id index instead of one random page each, so a commit writes fewer pages.
                let ids: Vec<String> = msgs.iter().map(|_| uuid::Uuid::now_v7().to_string()).collect();
                let scopes: Vec<String> = msgs.iter().map(|m| idem_scope(m.tenant.as_deref())).collect();
                let tos: Vec<String> = msgs
                    .iter()
                    .map(|m| serde_json::to_string(&m.envelope_to).unwrap_or_default())
                    .collect();
                let mut tx = self.pool.begin().await.map_err(q)?;
                // One multi-row INSERT per chunk (well under both databases' bind limits).
                let mut inserted = std::collections::HashSet::new();
                let index: Vec<usize> = (0..msgs.len()).collect();
                for chunk in index.chunks(400) {
                    // One statement stores the rows and, for those inserted, their bytes
                    // (in their own table, migration 0004): no extra round trip per group.
                    let mut qb = sqlx::QueryBuilder::<$db>::new("WITH data (id, mime) AS (");
                    qb.push_values(chunk, |mut b, &i| {
                        b.push("CAST(")
                            .push_bind_unseparated(&ids[i])
                            .push_unseparated(" AS TEXT)")
                            .push("CAST(")
                            .push_bind_unseparated(&msgs[i].mime)
                            .push_unseparated(" AS BYTEA)");
                    });
                    qb.push("), ins AS (");
                    qb.push(INSERT_HEAD);
                    qb.push_values(chunk, |mut b, &i| {
                        let m = &msgs[i];
                        b.push_bind(&ids[i])
                            .push_bind("queued")
                            .push_bind(&m.action)
                            .push_bind(&m.user)
                            .push_bind(&m.tenant)
                            .push_bind(&m.purpose)
                            .push_bind(&scopes[i])
                            .push_bind(&m.idempotency_key)
                            .push_bind(&m.message_id)
                            .push_bind(&m.envelope_from)
                            .push_bind(&tos[i])
                            .push_bind(&m.options_json)
                            .push_bind(&m.decision_json)
                            .push_bind(0i64)
                            .push_bind(m.priority as i64)
                            .push_bind(now)
                            .push_bind(now)
                            .push_bind(now);
                    });
                    qb.push(
                        " ON CONFLICT (idem_scope, idempotency_key) DO NOTHING RETURNING id), \
                         bytes AS (INSERT INTO outbox_mime (message, mime) \
                         SELECT data.id, data.mime FROM data JOIN ins ON ins.id = data.id) \
                         SELECT id FROM ins",
                    );
                    // Not kept prepared: its text changes with the group's size, and
                    // each connection would cache a statement per size.
                    let rows: Vec<(String,)> = qb
                        .build_query_as()
                        .persistent(false)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(q)?;
                    inserted.extend(rows.into_iter().map(|(id,)| id));
                }
                let mut out = Vec::with_capacity(msgs.len());
                for (i, m) in msgs.iter().enumerate() {
                    if inserted.contains(&ids[i]) {
                        out.push($crate::outbox::Enqueued { id: ids[i].clone(), duplicate: false });
                        continue;
                    }
                    // Its key was stored before (or earlier in this batch): the first id.
                    let first: (String,) = sqlx::query_as(
                        "SELECT id FROM outbox_messages WHERE idem_scope = $1 AND idempotency_key = $2",
                    )
                    .bind(&scopes[i])
                    .bind(&m.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(q)?;
                    out.push($crate::outbox::Enqueued { id: first.0, duplicate: true });
                }
                tx.commit().await.map_err(q)?;
                Ok(out)
            }

            async fn claim(
                &self,
                owner: &str,
                max: u32,
                now: i64,
                lease_until: i64,
            ) -> Result<Vec<$crate::outbox::MessageRecord>, $crate::outbox::OutboxError> {
                let q = |e| self.err("claim", e);
                // A worker that died left its messages in `sending`: once the lease ran out they
                // are due again. Looked for at most once a second (a claim is frequent, a death rare).
                let last = self.expired_at.load(std::sync::atomic::Ordering::Relaxed);
                if now < last || now - last >= 1_000 {
                    self.expired_at.store(now, std::sync::atomic::Ordering::Relaxed);
                    sqlx::query($crate::outbox::store::SWEEP_EXPIRED)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(q)?;
                }
                let sql = $crate::outbox::store::claim_sql($claim_index, $claim_suffix);
                let rows = sqlx::query(&sql)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(max as i64)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q)?;
                let mut out = rows
                    .iter()
                    .map(|r| Self::record(r, true))
                    .collect::<Result<Vec<_>, _>>()?;
                out.sort_by(|a, b| {
                    (a.priority, a.next_attempt_at, a.created_at, &a.id)
                        .cmp(&(b.priority, b.next_attempt_at, b.created_at, &b.id))
                });
                Ok(out)
            }


            async fn settle_batch(
                &self,
                items: &[$crate::outbox::store::SettleItem],
                now: i64,
            ) -> Result<Vec<bool>, $crate::outbox::OutboxError> {
                let q = |e| self.err("record the outcome", e);
                let mut tx = self.pool.begin().await.map_err(q)?;
                // One UPDATE per chunk of outcomes and one INSERT of their attempts
                // (statements are round trips: one per message would dominate).
                let mut counts: std::collections::HashMap<String, i64> =
                    std::collections::HashMap::with_capacity(items.len());
                for chunk in items.chunks(400) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE outbox_messages SET state = v.column3, next_attempt_at = v.column4, \
                         chain_pos = v.column5, position_since = v.column6, last_error = v.column7, \
                         attempts_count = outbox_messages.attempts_count + v.column8, \
                         lease_owner = v.column9, \
                         lease_until = CASE WHEN v.column9 IS NULL THEN NULL ELSE outbox_messages.lease_until END, \
                         updated_at = ",
                    );
                    qb.push_bind(now);
                    qb.push(" FROM (");
                    qb.push_values(chunk, |mut b, it| {
                        let s = &it.settle;
                        let lease_owner: Option<&str> =
                            (s.state == $crate::outbox::State::Sending).then_some(it.owner.as_str());
                        b.push("CAST(")
                            .push_bind_unseparated(&it.id)
                            .push_unseparated(" AS TEXT)")
                            .push("CAST(")
                            .push_bind_unseparated(&it.owner)
                            .push_unseparated(" AS TEXT)")
                            .push("CAST(")
                            .push_bind_unseparated(s.state.as_str())
                            .push_unseparated(" AS TEXT)")
                            .push("CAST(")
                            .push_bind_unseparated(s.next_attempt_at)
                            .push_unseparated(" AS BIGINT)")
                            .push("CAST(")
                            .push_bind_unseparated(s.chain_pos as i64)
                            .push_unseparated(" AS BIGINT)")
                            .push("CAST(")
                            .push_bind_unseparated(s.position_since)
                            .push_unseparated(" AS BIGINT)")
                            .push("CAST(")
                            .push_bind_unseparated(&s.last_error)
                            .push_unseparated(" AS TEXT)")
                            .push("CAST(")
                            .push_bind_unseparated(it.attempts.len() as i64)
                            .push_unseparated(" AS BIGINT)")
                            .push("CAST(")
                            .push_bind_unseparated(lease_owner)
                            .push_unseparated(" AS TEXT)");
                    });
                    qb.push(
                        ") AS v WHERE outbox_messages.id = v.column1 AND outbox_messages.lease_owner = v.column2 \
                         AND outbox_messages.state = 'sending' \
                         RETURNING outbox_messages.id, outbox_messages.attempts_count",
                    );
                    let rows: Vec<(String, i64)> =
                        qb.build_query_as().persistent(false).fetch_all(&mut *tx).await.map_err(q)?;
                    counts.extend(rows);
                }
                // The lease ran out and another worker has the message: nothing is written.
                let rows: Vec<(&str, i64, &$crate::outbox::AttemptRecord)> = items
                    .iter()
                    .filter_map(|it| counts.get(it.id.as_str()).map(|c| (it, *c)))
                    .flat_map(|(it, count)| {
                        let first = count - it.attempts.len() as i64;
                        it.attempts
                            .iter()
                            .enumerate()
                            .map(move |(i, a)| (it.id.as_str(), first + i as i64, a))
                    })
                    .collect();
                for chunk in rows.chunks(400) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO outbox_attempts (message, seq, at, chain_pos, candidate, plugin, class, code, text) ",
                    );
                    qb.push_values(chunk, |mut b, (id, seq, a)| {
                        b.push_bind(*id)
                            .push_bind(*seq)
                            .push_bind(a.at)
                            .push_bind(a.chain_pos as i64)
                            .push_bind(&a.candidate)
                            .push_bind(&a.plugin)
                            .push_bind(&a.class)
                            .push_bind(&a.code)
                            .push_bind(&a.text);
                    });
                    qb.build().persistent(false).execute(&mut *tx).await.map_err(q)?;
                }
                tx.commit().await.map_err(q)?;
                Ok(items
                    .iter()
                    .map(|it| counts.contains_key(it.id.as_str()))
                    .collect())
            }

    };
}
pub(crate) use sqlx_writes;
