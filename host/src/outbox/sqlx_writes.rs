//! The outbox's hot writes (enqueue, claim, outcomes) over sqlx, for the
//! PostgreSQL store (its SQL is PostgreSQL's: `BYTEA`, data-modifying `WITH`).
//! The SQLite store runs these writes on a writer thread of its own
//! (`sqlite_writer`).
//! Expanded inside [`super::store::impl_store`]'s `impl Store`.

/// PostgreSQL's enqueue of a group: one array per column (`$1`–`$14`: the
/// columns a new message sets; no idempotency key twice), `$15` now. Inserts
/// the rows and, for those that are new, their bytes. A row whose key was
/// stored before is left as it is (the no-op update only locks it, so that a
/// key committed by a concurrent group is seen too) and its first id comes
/// back. Returns (id, idem_scope, idempotency_key) for every row given.
pub(crate) const ENQUEUE_UNNEST: &str = "WITH data AS (SELECT * FROM UNNEST($1::text[], \
     $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::text[], $11::text[], $12::text[], $13::int8[], $14::bytea[], \
     $16::text[]) AS d (id, action, user_name, tenant, purpose, idem_scope, idempotency_key, \
     message_id, envelope_from, envelope_to, options_json, decision_json, priority, mime, \
     way_outs)), \
     ins AS (INSERT INTO outbox_messages (id, state, action, user_name, \
     tenant, purpose, idem_scope, idempotency_key, message_id, envelope_from, envelope_to, \
     options_json, decision_json, chain_pos, priority, next_attempt_at, created_at, updated_at, \
     way_outs) \
     SELECT id, 'queued', action, user_name, tenant, purpose, idem_scope, idempotency_key, \
     message_id, envelope_from, envelope_to, options_json, decision_json, 0, priority, $15, $15, \
     $15, way_outs FROM data ON CONFLICT (idem_scope, idempotency_key) \
     DO UPDATE SET idempotency_key = EXCLUDED.idempotency_key \
     RETURNING id, idem_scope, idempotency_key), \
     bytes AS (INSERT INTO outbox_mime (message, mime) SELECT data.id, data.mime FROM data \
     JOIN ins ON ins.id = data.id) \
     SELECT id, idem_scope, idempotency_key FROM ins";

/// The three write methods of `impl Store` over sqlx's `$db`.
macro_rules! sqlx_writes {
    ($db:ty, $claim_index:expr, $claim_suffix:expr) => {
            async fn enqueue_batch(
                &self,
                msgs: Vec<$crate::outbox::NewMessage>,
            ) -> Result<Vec<$crate::outbox::Enqueued>, $crate::outbox::OutboxError> {
                use $crate::outbox::store::idem_scope;
                use $crate::outbox::sqlx_writes::ENQUEUE_UNNEST;
                let q = |e| self.err("enqueue", e);
                let now = $crate::outbox::now_ms();
                // Time-ordered ids (UUIDv7): a group's rows land on the last pages of the
                // id index instead of one random page each, so a commit writes fewer pages.
                let ids: Vec<String> = msgs.iter().map(|_| uuid::Uuid::now_v7().to_string()).collect();
                let scopes: Vec<String> = msgs.iter().map(|m| idem_scope(m.tenant.as_deref())).collect();
                // A key given twice in the group: the later ones are duplicates of the
                // first and stay out of the statement (an upsert may not touch a row twice).
                let mut keys_seen = std::collections::HashSet::new();
                let repeated: Vec<bool> = msgs
                    .iter()
                    .zip(&scopes)
                    .map(|(m, scope)| {
                        m.idempotency_key
                            .as_deref()
                            .is_some_and(|k| !keys_seen.insert((scope.as_str(), k)))
                    })
                    .collect();
                let rows_in: Vec<usize> = (0..msgs.len()).filter(|&i| !repeated[i]).collect();
                fn column<'a>(rows: &[usize], f: impl Fn(usize) -> Option<&'a str>) -> Vec<Option<&'a str>> {
                    rows.iter().map(|&i| f(i)).collect()
                }
                let tos: Vec<String> = rows_in
                    .iter()
                    .map(|&i| serde_json::to_string(&msgs[i].envelope_to).unwrap_or_default())
                    .collect();
                let priority: Vec<i64> = rows_in.iter().map(|&i| msgs[i].priority as i64).collect();
                let mime: Vec<&[u8]> = rows_in.iter().map(|&i| msgs[i].mime.as_slice()).collect();
                // One statement, whatever the group's size: its text never changes, so it
                // stays prepared, and as a single statement it commits on its own (one
                // round trip, no BEGIN and COMMIT; a duplicate's first id comes back in
                // it too). Concurrent groups share PostgreSQL's WAL flushes (pg_group.rs
                // keeps several in flight).
                let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(ENQUEUE_UNNEST)
                    .bind(column(&rows_in, |i| Some(ids[i].as_str())))
                    .bind(column(&rows_in, |i| Some(msgs[i].action.as_str())))
                    .bind(column(&rows_in, |i| msgs[i].user.as_deref()))
                    .bind(column(&rows_in, |i| msgs[i].tenant.as_deref()))
                    .bind(column(&rows_in, |i| msgs[i].purpose.as_deref()))
                    .bind(column(&rows_in, |i| Some(scopes[i].as_str())))
                    .bind(column(&rows_in, |i| msgs[i].idempotency_key.as_deref()))
                    .bind(column(&rows_in, |i| Some(msgs[i].message_id.as_str())))
                    .bind(column(&rows_in, |i| Some(msgs[i].envelope_from.as_str())))
                    .bind(&tos)
                    .bind(column(&rows_in, |i| Some(msgs[i].options_json.as_str())))
                    .bind(column(&rows_in, |i| Some(msgs[i].decision_json.as_str())))
                    .bind(&priority)
                    .bind(&mime)
                    .bind(now)
                    .bind(column(&rows_in, |i| Some(msgs[i].way_outs.as_str())))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q)?;
                // The id stored under each key given (this group's, or the first one's).
                let stored: std::collections::HashMap<(String, String), String> = rows
                    .into_iter()
                    .filter_map(|(id, scope, key)| key.map(|k| ((scope, k), id)))
                    .collect();
                let mut out = Vec::with_capacity(msgs.len());
                for (i, m) in msgs.iter().enumerate() {
                    let Some(k) = m.idempotency_key.as_deref() else {
                        out.push($crate::outbox::Enqueued { id: ids[i].clone(), duplicate: false });
                        continue;
                    };
                    let id = stored.get(&(scopes[i].clone(), k.to_string())).ok_or_else(|| {
                        $crate::outbox::OutboxError::Corrupt {
                            what: "enqueue",
                            detail: format!("no message came back for idempotency key {k:?}"),
                        }
                    })?;
                    let duplicate = repeated[i] || *id != ids[i];
                    out.push($crate::outbox::Enqueued { id: id.clone(), duplicate });
                }
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
