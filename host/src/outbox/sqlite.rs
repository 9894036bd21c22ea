//! The embedded outbox: one SQLite file (WAL, `synchronous=FULL`: a commit
//! is on disk before the caller is answered; never relaxed).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::migrations;
use super::sqlite_writer::Writer;
use super::store::{impl_store, SettleItem};
use super::{Enqueued, MessageRecord, NewMessage, OutboxError};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    pub(crate) location: String,
    /// Runs the enqueues, claims and outcomes (`sqlite_writer`).
    writer: Writer,
}

/// The file whose lock serialises migrations of the outbox at `db`.
fn lock_file(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-migrate.lock");
    std::path::PathBuf::from(name)
}

/// Waits (off the runtime's threads) for the exclusive lock on
/// [`lock_file`]; it is released when the returned file is dropped.
async fn migration_turn(db: &Path) -> std::io::Result<std::fs::File> {
    let lock = lock_file(db);
    tokio::task::spawn_blocking(move || {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)?;
        f.lock()?;
        Ok(f)
    })
    .await
    .map_err(std::io::Error::other)?
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the outbox file at `path`.
    pub async fn open(path: &Path) -> Result<SqliteStore, OutboxError> {
        let location = path.display().to_string();
        let open = |detail: String| OutboxError::Open {
            location: location.clone(),
            detail,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(open(format!(
                    "the directory {} does not exist",
                    dir.display()
                )));
            }
        }
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| open(e.to_string()))?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // 1 MB of page cache per connection (SQLite's default is 2 MB):
            // a claim reads the due index's first pages and the rows it takes.
            .pragma("cache_size", "-1024");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A file opened in this process: no ping before every statement.
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .map_err(|e| open(e.to_string()))?;
        {
            // Two processes opening one new (or older) outbox at once, two
            // `serve` or a `send --queue` beside one, would both run the same
            // migration: sqlx takes no lock on SQLite (it does on
            // PostgreSQL). A lock on a file beside the database makes them
            // take turns; the second finds the schema done.
            let _turn = migration_turn(path)
                .await
                .map_err(|e| open(format!("cannot lock {}: {e}", lock_file(path).display())))?;
            migrations::run(migrations::SQLITE, &pool, &location).await?;
        }
        let writer = Writer::start(path, &location)?;
        Ok(SqliteStore {
            pool,
            location,
            writer,
        })
    }

    /// A consistent copy of the outbox at `to` (a new file), made while the
    /// service runs: SQLite's `VACUUM INTO` reads one snapshot, so enqueues
    /// and sends go on meanwhile. Copying the file itself could catch a
    /// commit half in the WAL.
    pub async fn backup(&self, to: &Path) -> Result<(), OutboxError> {
        let q = |detail: String| OutboxError::Query {
            location: self.location.clone(),
            what: "back up",
            detail,
        };
        if to.exists() {
            return Err(q(format!(
                "{} exists; give a new file (a backup never overwrites)",
                to.display()
            )));
        }
        let to_text = to
            .to_str()
            .ok_or_else(|| q(format!("{} is not a UTF-8 path", to.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(to_text)
            .execute(&self.pool)
            .await
            .map_err(|e| q(format!("{} ({e})", to.display())))?;
        Ok(())
    }

    /// The pragmas in force on a pooled connection: (journal_mode, synchronous).
    pub async fn durability(&self) -> Result<(String, i64), OutboxError> {
        let q = |e: sqlx::Error| OutboxError::Query {
            location: self.location.clone(),
            what: "read pragmas",
            detail: e.to_string(),
        };
        let mut c = self.pool.acquire().await.map_err(q)?;
        let (jm,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&mut *c)
            .await
            .map_err(q)?;
        let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&mut *c)
            .await
            .map_err(q)?;
        Ok((jm, sync))
    }
}

impl SqliteStore {
    /// Outcomes, handed over without a copy (the writer thread owns them).
    pub(crate) async fn settle_owned(
        &self,
        items: Vec<SettleItem>,
        now: i64,
    ) -> Result<Vec<bool>, OutboxError> {
        self.writer.settle(items, now).await
    }

    /// Outcomes, then a claim, in one commit (a lane's step, worker.rs);
    /// with the claim's pacing turn when it took batch messages.
    /// Handed to the writer thread before this returns; the answer comes
    /// after the commit. A claim without outcomes that finds nothing due
    /// waits on the writer thread until `park_until` for messages to be
    /// enqueued (`sqlite_writer`); the answer comes then.
    pub(crate) fn settle_and_claim(
        &self,
        items: Vec<SettleItem>,
        owner: &str,
        max: u32,
        now: i64,
        lease: std::time::Duration,
        park_until: Option<std::time::Instant>,
    ) -> super::sqlite_writer::Answer<super::sqlite_writer::Worked> {
        let claim = super::sqlite_writer::ClaimArgs {
            owner: owner.to_string(),
            max,
            lease_ms: lease.as_millis() as i64,
            turn: true,
            park_until,
        };
        self.writer.submit_work(items, Some(claim), now)
    }

    /// Runs the claims that wait on the writer thread: messages were made
    /// due other than by an enqueue of this process (a retry, a batch).
    pub(crate) fn poke(&self) {
        self.writer.poke();
    }
}

/// The three frequent writes go to the writer thread.
macro_rules! writer_writes {
    ($db:ty, $claim_index:expr, $claim_suffix:expr) => {
        async fn enqueue_batch(&self, msgs: Vec<NewMessage>) -> Result<Vec<Enqueued>, OutboxError> {
            self.writer.enqueue(msgs).await
        }

        async fn claim(
            &self,
            owner: &str,
            max: u32,
            now: i64,
            lease_until: i64,
        ) -> Result<Vec<MessageRecord>, OutboxError> {
            self.writer.claim(owner, max, now, lease_until).await
        }

        async fn settle_batch(
            &self,
            items: &[SettleItem],
            now: i64,
        ) -> Result<Vec<bool>, OutboxError> {
            self.writer.settle(items.to_vec(), now).await
        }
    };
}

// The claim's index and suffix are the writer's (`sqlite_writer`).
impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    "",
    "",
    None,
    "json_extract(way_outs, '$[' || chain_pos || ']')",
    writer_writes
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Store;

    /// An outbox at `path` with only the first `upto` migrations of the schema.
    async fn old_outbox(path: &std::path::Path, upto: usize) -> sqlx::SqlitePool {
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .unwrap()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
        migrations::run(&migrations::SQLITE[..upto], &pool, "old")
            .await
            .unwrap();
        pool
    }

    /// An outbox written before migration 0004 (MIME in the message row)
    /// keeps every message's bytes after the upgrade: get and claim return them.
    #[tokio::test]
    async fn an_outbox_from_before_the_mime_table_keeps_every_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let pool = old_outbox(&path, 3).await;
        for (id, n) in [("m-1", 1), ("m-2", 2)] {
            sqlx::query(
                "INSERT INTO outbox_messages (id, state, action, idem_scope, message_id, mime, \
                 envelope_from, envelope_to, options_json, decision_json, priority, \
                 next_attempt_at, created_at, updated_at) \
                 VALUES ($1, 'queued', 'send', '', $2, $3, 'a@example.com', '[\"b@example.com\"]', \
                 '{}', '{\"chain\":[]}', 0, 0, 0, 0)",
            )
            .bind(id)
            .bind(format!("<{id}@example.com>"))
            .bind(format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes())
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        let (rec, _) = store.get("m-1").await.unwrap().unwrap();
        assert_eq!(
            rec.mime.as_deref(),
            Some(&b"Subject: 1\r\n\r\nbody 1\r\n"[..])
        );
        let claimed = store.claim("w", 10, 1, 1_000_000).await.unwrap();
        let bytes: Vec<_> = claimed.iter().map(|r| r.mime.clone().unwrap()).collect();
        assert_eq!(
            bytes,
            vec![
                b"Subject: 1\r\n\r\nbody 1\r\n".to_vec(),
                b"Subject: 2\r\n\r\nbody 2\r\n".to_vec()
            ]
        );
    }

    /// An outbox from before migration 0006 keeps its attempts (moved to a
    /// WITHOUT ROWID table), and expired leases are found through the state
    /// index once the lease index is gone.
    #[tokio::test]
    async fn an_outbox_from_before_0006_keeps_its_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let pool = old_outbox(&path, 5).await;
        sqlx::query(
            "INSERT INTO outbox_messages (id, state, action, idem_scope, message_id, \
             envelope_from, envelope_to, options_json, decision_json, priority, attempts_count, \
             next_attempt_at, created_at, updated_at) \
             VALUES ('m-1', 'deferred', 'send', '', '<m-1@example.com>', 'a@example.com', \
             '[\"b@example.com\"]', '{}', '{\"chain\":[]}', 0, 2, 0, 0, 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO outbox_mime (message, mime) VALUES ('m-1', x'00')")
            .execute(&pool)
            .await
            .unwrap();
        for (seq, code) in [(0, "450"), (1, "421")] {
            sqlx::query(
                "INSERT INTO outbox_attempts (message, seq, at, chain_pos, candidate, plugin, \
                 class, code, text) VALUES ('m-1', $1, $1, 0, 'relay', 'smtp', 'transient', $2, 'busy')",
            )
            .bind(seq)
            .bind(code)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        let (_, attempts) = store.get("m-1").await.unwrap().unwrap();
        let codes: Vec<_> = attempts.iter().map(|a| a.code.as_deref()).collect();
        assert_eq!(codes, vec![Some("450"), Some("421")]);
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!(
            "EXPLAIN QUERY PLAN {}",
            crate::outbox::store::SWEEP_EXPIRED
        ))
        .bind(1_i64)
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert!(
            plan.iter().any(|p| p.3.contains("outbox_by_state")),
            "{plan:?}"
        );
    }

    /// Messages stored before migration 0007 get their ways out from their
    /// decision, so the open ones count under the account they wait for; a
    /// decision that is not JSON counts as not known and does not stop the
    /// upgrade.
    #[tokio::test]
    async fn an_outbox_from_before_0007_counts_its_messages_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let pool = old_outbox(&path, 6).await;
        let chain = r#"{"chain":[{"label":"office","account":"office"},{"label":"mode:pickup","account":null}]}"#;
        for (id, state, pos, decision) in [
            ("m-1", "queued", 0, chain),
            ("m-2", "deferred", 1, chain),
            ("m-3", "queued", 0, "not json"),
            ("m-4", "sent", 0, chain),
        ] {
            sqlx::query(
                "INSERT INTO outbox_messages (id, state, action, idem_scope, message_id, \
                 envelope_from, envelope_to, options_json, decision_json, chain_pos, priority, \
                 next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, 'send', '', $1, 'a@example.com', '[\"b@example.com\"]', '{}', \
                 $3, $4, 0, 0, 0, 0)",
            )
            .bind(id)
            .bind(state)
            .bind(decision)
            .bind(pos)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        let open = store.open_by_way_out().await.unwrap();
        let n = |a: &str, s: &str| open.get(a).and_then(|m| m.get(s)).copied();
        assert_eq!(n("office", "queued"), Some(1));
        assert_eq!(n("mode:pickup", "deferred"), Some(1));
        assert_eq!(n("", "queued"), Some(1));
        assert_eq!(open.values().map(|m| m.len()).sum::<usize>(), 3, "{open:?}");
    }

    /// The batch queries find their rows through the batch index, which holds
    /// batch messages only (migration 0005).
    #[tokio::test]
    async fn batch_queries_use_the_batch_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("outbox.db"))
            .await
            .unwrap();
        for sql in [
            "SELECT state, COUNT(*) FROM outbox_messages WHERE batch_id = $1 GROUP BY state",
            "SELECT id FROM outbox_messages WHERE batch_id = $1 AND state IN ('queued', 'deferred')",
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .bind("b-1")
                    .fetch_all(&store.pool)
                    .await
                    .unwrap();
            assert!(
                plan.iter().any(|p| p.3.contains("outbox_by_batch")),
                "{sql}: {plan:?}"
            );
        }
    }

    fn msg(n: usize, message_id: &str) -> NewMessage {
        NewMessage {
            action: "send".into(),
            user: None,
            tenant: None,
            purpose: None,
            idempotency_key: Some(format!("k-{n}")),
            message_id: message_id.into(),
            mime: format!("Subject: {n}\r\n\r\nbody\r\n").into_bytes(),
            envelope_from: "a@example.com".into(),
            envelope_to: vec!["b@example.com".into()],
            options_json: "{}".into(),
            decision_json: r#"{"chain":[]}"#.into(),
            way_outs: "[]".into(),
            priority: crate::outbox::Priority::Single,
        }
    }

    /// Requests that share the writer's transaction do not share a failure:
    /// one whose insert the database refuses gets the error, the others are stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_fails_fails_alone_in_a_shared_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let store = SqliteStore::open(&path).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER poison BEFORE INSERT ON outbox_messages \
             WHEN NEW.message_id = '<poison@example.com>' \
             BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let outbox = crate::outbox::Outbox::with_store(crate::outbox::AnyStore::Sqlite(store));
        for _round in 0..20 {
            let mut tasks = Vec::new();
            for n in 0..8 {
                let o = outbox.clone();
                let id = if n == 3 {
                    "<poison@example.com>".to_string()
                } else {
                    format!("<m{n}-{}@example.com>", uuid::Uuid::new_v4())
                };
                let mut m = msg(n, &id);
                m.idempotency_key = None;
                tasks.push(tokio::spawn(async move { (n, o.enqueue(m).await) }));
            }
            for t in tasks {
                let (n, r) = t.await.unwrap();
                if n == 3 {
                    let e = r.unwrap_err().to_string();
                    assert!(e.contains("refused by a test trigger"), "{e}");
                } else {
                    let id = r.unwrap().id;
                    let (rec, _) = outbox.store().get(&id).await.unwrap().unwrap();
                    assert!(rec.mime.is_some());
                }
            }
        }
        let counts = outbox.store().counts().await.unwrap();
        assert_eq!(counts.get("queued").copied(), Some(20 * 7));
    }

    /// An idle lane's claim waits on the writer thread for messages: one
    /// enqueued meanwhile is claimed in the enqueue's own commit; with
    /// nothing to claim it answers empty at its deadline; a claim whose lane
    /// went away claims nothing; a message made due through the pool (a
    /// retry) waits for a poke.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_claim_waits_for_the_next_enqueue() {
        use crate::outbox::sqlite_writer::answer;
        use crate::outbox::{now_ms, Change, State};
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("outbox.db"))
            .await
            .unwrap();
        let lease = Duration::from_secs(60);
        let park = |d: Duration| {
            store.settle_and_claim(
                Vec::new(),
                "w1",
                8,
                now_ms(),
                lease,
                Some(Instant::now() + d),
            )
        };
        let state = |id: String| {
            let store = &store;
            async move { store.get(&id).await.unwrap().unwrap().0.state }
        };

        // Nothing due: the answer comes at the deadline, empty.
        let t0 = Instant::now();
        let (_, claimed, _) = answer(park(Duration::from_millis(150))).await.unwrap();
        assert!(claimed.is_empty());
        assert!(
            t0.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t0.elapsed()
        );

        // An enqueue while it waits: claimed with it, long before the deadline.
        let waiting = park(Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t0 = Instant::now();
        let m1 = store
            .enqueue_batch(vec![msg(1, "<p1@example.com>")])
            .await
            .unwrap();
        let (_, claimed, _) = tokio::time::timeout(Duration::from_secs(5), answer(waiting))
            .await
            .expect("the enqueue did not wake the waiting claim")
            .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, m1[0].id);
        let (rec, _) = store.get(&m1[0].id).await.unwrap().unwrap();
        assert_eq!(rec.state, State::Sending);
        assert_eq!(rec.lease_owner.as_deref(), Some("w1"));
        // The lease runs from the claim, not from when the claim began to wait.
        assert!(rec.lease_until.unwrap() >= now_ms() + 59_000);

        // A lane that went away: nothing is claimed for it.
        let gone = park(Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(gone);
        let m2 = store
            .enqueue_batch(vec![msg(2, "<p2@example.com>")])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(state(m2[0].id.clone()).await, State::Queued);

        // Something due: the claim takes it at once.
        let (_, claimed, _) = tokio::time::timeout(
            Duration::from_secs(5),
            answer(park(Duration::from_secs(30))),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, m2[0].id);

        // Made due through the pool (cancelled, then retried): a poke runs it.
        let m3 = store
            .enqueue_batch(vec![msg(3, "<p3@example.com>")])
            .await
            .unwrap();
        let id = m3[0].id.clone();
        assert!(matches!(
            store.cancel(&id, now_ms()).await.unwrap(),
            Change::Done(_)
        ));
        let mut waiting = park(Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            store.retry(&id, now_ms()).await.unwrap(),
            Change::Done(_)
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(waiting.try_recv().is_err(), "answered before the poke");
        store.poke();
        let (_, claimed, _) = tokio::time::timeout(Duration::from_secs(5), answer(waiting))
            .await
            .expect("the poke did not run the waiting claim")
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, id);
    }

    /// The service's retention (`[outbox] retention_days`): settled messages
    /// last changed before the cut-off go with their attempts and bytes, in
    /// chunks through the state index; open ones stay however old, and so do
    /// settled ones changed since.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_deletes_old_settled_messages_only() {
        use crate::outbox::retention;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("outbox.db"))
            .await
            .unwrap();
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", retention::PURGE_MESSAGES))
                .bind(1_i64)
                .bind(500_i64)
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert!(
            plan.iter().any(|p| p.3.contains("outbox_by_state")),
            "{plan:?}"
        );
        let ids: Vec<String> = store
            .enqueue_batch(
                (0..4)
                    .map(|n| msg(n, &format!("<r{n}@example.com>")))
                    .collect(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        let now = crate::outbox::now_ms();
        let claimed = store.claim("w", 3, now, now + 60_000).await.unwrap();
        assert_eq!(claimed.len(), 3);
        let attempt = crate::outbox::AttemptRecord {
            at: now,
            chain_pos: 0,
            candidate: "relay".into(),
            plugin: Some("smtp".into()),
            class: "sent".into(),
            code: Some("250".into()),
            text: "ok".into(),
        };
        for (id, state) in [
            (&ids[0], crate::outbox::State::Sent),
            (&ids[1], crate::outbox::State::Failed),
            (&ids[2], crate::outbox::State::Sent),
        ] {
            let s = crate::outbox::Settle {
                state,
                next_attempt_at: now,
                chain_pos: 0,
                position_since: None,
                last_error: None,
            };
            assert!(store
                .settle(id, "w", std::slice::from_ref(&attempt), &s, now)
                .await
                .unwrap());
        }
        // 0 (sent), 1 (failed) and 3 (queued) were last changed 40 days ago; 2 was sent now.
        let old = now - 40 * 86_400_000;
        for id in [&ids[0], &ids[1], &ids[3]] {
            sqlx::query(
                "UPDATE outbox_messages SET created_at = $2, updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(old)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        let outbox = crate::outbox::Outbox::with_store(crate::outbox::AnyStore::Sqlite(store));
        // The service's loop: its first pass runs at once.
        let service = tokio::spawn(retention::run(outbox.clone(), Some(30)));
        let s = outbox.store();
        for _ in 0..200 {
            if s.get(&ids[0]).await.unwrap().is_none() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        service.abort();
        assert!(
            s.get(&ids[0]).await.unwrap().is_none(),
            "old sent message kept"
        );
        assert!(
            s.get(&ids[1]).await.unwrap().is_none(),
            "old failed message kept"
        );
        assert!(s.get(&ids[2]).await.unwrap().is_some(), "a recent one went");
        assert!(s.get(&ids[3]).await.unwrap().is_some(), "an open one went");
        let crate::outbox::AnyStore::Sqlite(sqlite) = s else {
            panic!("not SQLite")
        };
        let pool = &sqlite.pool;
        for table in ["outbox_attempts", "outbox_mime"] {
            let (n,): (i64,) = sqlx::query_as(&format!(
                "SELECT COUNT(*) FROM {table} WHERE message IN ($1, $2)"
            ))
            .bind(&ids[0])
            .bind(&ids[1])
            .fetch_one(pool)
            .await
            .unwrap();
            assert_eq!(n, 0, "{table} kept rows of deleted messages");
        }
        // Nothing older is left: a second pass deletes nothing.
        assert_eq!(
            outbox
                .purge(retention::cutoff(30, crate::outbox::now_ms()))
                .await
                .unwrap(),
            0
        );
        // Every settled message, as `outbox purge --days 0` asks.
        assert_eq!(outbox.purge(crate::outbox::now_ms() + 1).await.unwrap(), 1);
    }
}
