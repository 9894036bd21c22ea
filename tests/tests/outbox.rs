//! The outbox store against real databases: SQLite files in a temporary
//! directory and the PostgreSQL peer (one fresh schema per test, dropped at
//! the end; see ../shared/peers/README.md). Times are passed in, so lease
//! expiry and backoff are tested without waiting.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use mailhost::outbox::postgres::PgStore;
use mailhost::outbox::sqlite::SqliteStore;
use mailhost::outbox::{
    now_ms, AnyStore, AttemptRecord, Change, ListFilter, NewMessage, Outbox, Priority, Settle,
    State, Store,
};

const PG_URL: &str = "postgres://mailhost:mailhost@127.0.0.1:55432/mailhost";

fn msg(n: usize, key: Option<&str>, tenant: Option<&str>, priority: Priority) -> NewMessage {
    NewMessage {
        action: "send".into(),
        user: Some("alice".into()),
        tenant: tenant.map(str::to_string),
        purpose: None,
        idempotency_key: key.map(str::to_string),
        message_id: format!("<outbox-test-{n}@example.com>"),
        mime: format!("Subject: test {n}\r\n\r\nbody {n}\r\n").into_bytes(),
        envelope_from: "alice@example.com".into(),
        envelope_to: vec![format!("bob{n}@example.com")],
        options_json: "{}".into(),
        decision_json: r#"{"chain":[]}"#.into(),
        way_outs: "[]".into(),
        priority,
    }
}

/// A database to run one test on; PostgreSQL schemas are dropped on `done`.
struct Db {
    store: AnyStore,
    reopen: Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = AnyStore>>>>,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.db");
        let store = AnyStore::Sqlite(SqliteStore::open(&path).await.unwrap());
        Db {
            store,
            reopen: Box::new(move || {
                let p = path.clone();
                Box::pin(async move { AnyStore::Sqlite(SqliteStore::open(&p).await.unwrap()) })
            }),
            schema: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Db {
        static N: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "obx_test_{}_{}_{}",
            std::process::id(),
            now_ms(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let store = AnyStore::Postgres(PgStore::open(PG_URL, Some(&schema)).await.unwrap());
        let s2 = schema.clone();
        Db {
            store,
            reopen: Box::new(move || {
                let s = s2.clone();
                Box::pin(async move {
                    AnyStore::Postgres(PgStore::open(PG_URL, Some(&s)).await.unwrap())
                })
            }),
            schema: Some(schema),
            _dir: None,
        }
    }

    async fn another(&self) -> AnyStore {
        (self.reopen)().await
    }

    async fn done(self) {
        if let (AnyStore::Postgres(pg), Some(s)) = (&self.store, &self.schema) {
            pg.drop_schema(s).await.unwrap();
        }
    }
}

fn settle(state: State, next: i64, pos: u32) -> Settle {
    Settle {
        state,
        next_attempt_at: next,
        chain_pos: pos,
        position_since: None,
        last_error: None,
    }
}

fn attempt(at: i64, class: &str, code: Option<&str>, text: &str) -> AttemptRecord {
    AttemptRecord {
        at,
        chain_pos: 0,
        candidate: "sink".into(),
        plugin: Some("smtp".into()),
        class: class.into(),
        code: code.map(str::to_string),
        text: text.into(),
    }
}

async fn enqueue_get_and_idempotency(db: Db) {
    let s = &db.store;
    let first = s
        .enqueue_batch(vec![msg(
            1,
            Some("order-1"),
            Some("acme"),
            Priority::Single,
        )])
        .await
        .unwrap();
    assert!(!first[0].duplicate);
    // the same key again, alone and twice within one batch: the first id, nothing stored
    let again = s
        .enqueue_batch(vec![
            msg(2, Some("order-1"), Some("acme"), Priority::Single),
            msg(3, Some("order-2"), Some("acme"), Priority::Single),
            msg(4, Some("order-2"), Some("acme"), Priority::Single),
        ])
        .await
        .unwrap();
    assert_eq!(again[0].id, first[0].id);
    assert!(again[0].duplicate);
    assert!(!again[1].duplicate);
    assert_eq!(again[2].id, again[1].id);
    assert!(again[2].duplicate);
    // another tenant's key space is its own
    let other = s
        .enqueue_batch(vec![msg(
            5,
            Some("order-1"),
            Some("globex"),
            Priority::Single,
        )])
        .await
        .unwrap();
    assert_ne!(other[0].id, first[0].id);
    assert!(!other[0].duplicate);
    let counts = s.counts().await.unwrap();
    assert_eq!(counts["queued"], 3, "{counts:?}");

    let (rec, attempts) = s.get(&first[0].id).await.unwrap().unwrap();
    assert_eq!(rec.state, State::Queued);
    assert_eq!(rec.message_id, "<outbox-test-1@example.com>");
    assert_eq!(
        rec.mime.as_deref(),
        Some(&b"Subject: test 1\r\n\r\nbody 1\r\n"[..])
    );
    assert_eq!(rec.envelope_to, vec!["bob1@example.com".to_string()]);
    assert_eq!(rec.tenant.as_deref(), Some("acme"));
    assert!(attempts.is_empty());
    assert!(s.get("no-such-id").await.unwrap().is_none());

    // what was committed is there for a new connection (another process)
    let s2 = db.another().await;
    assert_eq!(s2.counts().await.unwrap()["queued"], 3);
    db.done().await;
}

async fn claim_order_leases_and_expiry(db: Db) {
    let s = &db.store;
    let ids = s
        .enqueue_batch(vec![
            msg(1, None, None, Priority::Batch),
            msg(2, None, None, Priority::Batch),
            msg(3, None, None, Priority::Single),
        ])
        .await
        .unwrap();
    let now = now_ms() + 1_000;
    // single messages go before batch rows
    let got = s.claim("w1", 1, now, now + 10_000).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, ids[2].id);
    assert_eq!(got[0].state, State::Sending);
    assert_eq!(got[0].lease_owner.as_deref(), Some("w1"));
    assert!(got[0].mime.is_some());
    // a second worker gets the others, never the leased one
    let rest = s.claim("w2", 10, now, now + 10_000).await.unwrap();
    let rest_ids: HashSet<_> = rest.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        rest_ids,
        HashSet::from([ids[0].id.clone(), ids[1].id.clone()])
    );
    assert!(s
        .claim("w3", 10, now, now + 10_000)
        .await
        .unwrap()
        .is_empty());

    // w1 dies: after its lease ran out, w3 takes the message again
    let later = now + 10_001;
    let again = s.claim("w3", 10, later, later + 10_000).await.unwrap();
    // w2's leases ran out too
    assert_eq!(again.len(), 3);
    // the dead worker's late write is refused: the lease is not its own any more
    let ok = s
        .settle(&ids[2].id, "w1", &[], &settle(State::Sent, later, 0), later)
        .await
        .unwrap();
    assert!(!ok);
    assert_eq!(
        s.get(&ids[2].id)
            .await
            .unwrap()
            .unwrap()
            .0
            .lease_owner
            .as_deref(),
        Some("w3")
    );
    // renewal keeps a lease alive; release puts everything back, due
    assert_eq!(s.renew("w3", later + 60_000).await.unwrap(), 3);
    assert!(s
        .claim("w4", 10, later + 20_000, later + 30_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.release("w3", later).await.unwrap(), 3);
    assert_eq!(s.counts().await.unwrap()["queued"], 3);
    assert_eq!(
        s.claim("w4", 10, later, later + 10_000)
            .await
            .unwrap()
            .len(),
        3
    );
    db.done().await;
}

async fn state_transitions_and_attempts(db: Db) {
    let s = &db.store;
    let ids = s
        .enqueue_batch(vec![
            msg(1, None, None, Priority::Single),
            msg(2, None, None, Priority::Single),
        ])
        .await
        .unwrap();
    let (a, b) = (ids[0].id.clone(), ids[1].id.clone());
    let now = now_ms() + 1_000;
    assert_eq!(s.claim("w", 10, now, now + 60_000).await.unwrap().len(), 2);
    // cancel is refused while a worker holds it
    assert_eq!(
        s.cancel(&a, now).await.unwrap(),
        Change::NotAllowed(State::Sending)
    );

    // a: 450 → deferred, not due before its time, then sent
    let mut d = settle(State::Deferred, now + 5_000, 0);
    d.position_since = Some(now);
    d.last_error = Some("450 4.2.1 mailbox busy".into());
    let t450 = attempt(now, "transient", Some("450"), "450 4.2.1 mailbox busy");
    assert!(s
        .settle(&a, "w", std::slice::from_ref(&t450), &d, now)
        .await
        .unwrap());
    let (rec, att) = s.get(&a).await.unwrap().unwrap();
    assert_eq!(rec.state, State::Deferred);
    assert_eq!(rec.lease_owner, None);
    assert_eq!(rec.attempts_count, 1);
    assert_eq!(rec.last_error.as_deref(), Some("450 4.2.1 mailbox busy"));
    assert_eq!(att, vec![t450.clone()]);
    assert!(s
        .claim("w", 10, now + 4_999, now + 60_000)
        .await
        .unwrap()
        .is_empty());
    let due = s.claim("w", 10, now + 5_000, now + 60_000).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].position_since, Some(now));
    let ok = attempt(now + 5_000, "ok", Some("250"), "250 2.0.0 Ok: queued");
    assert!(s
        .settle(
            &a,
            "w",
            std::slice::from_ref(&ok),
            &settle(State::Sent, now + 5_000, 0),
            now + 5_000
        )
        .await
        .unwrap());
    let (rec, att) = s.get(&a).await.unwrap().unwrap();
    assert_eq!(rec.state, State::Sent);
    assert_eq!(rec.attempts_count, 2);
    assert_eq!(att, vec![t450, ok]);
    // sent is final
    assert_eq!(
        s.retry(&a, now).await.unwrap(),
        Change::NotAllowed(State::Sent)
    );
    assert_eq!(
        s.cancel(&a, now).await.unwrap(),
        Change::NotAllowed(State::Sent)
    );

    // b: 550 → failed; retry → queued at the first way out; cancel; retry again
    let mut f = settle(State::Failed, now, 1);
    f.last_error = Some("550 5.1.1 no such user".into());
    let p = attempt(now, "permanent", Some("550"), "550 5.1.1 no such user");
    assert!(s.settle(&b, "w", &[p], &f, now).await.unwrap());
    assert_eq!(s.get(&b).await.unwrap().unwrap().0.state, State::Failed);
    assert_eq!(
        s.retry(&b, now + 1).await.unwrap(),
        Change::Done(State::Queued)
    );
    let (rec, _) = s.get(&b).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.chain_pos, rec.last_error),
        (State::Queued, 0, None)
    );
    assert_eq!(
        s.cancel(&b, now + 2).await.unwrap(),
        Change::Done(State::Cancelled)
    );
    assert!(s
        .claim("w", 10, now + 10, now + 60_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.retry(&b, now + 3).await.unwrap(),
        Change::Done(State::Queued)
    );
    assert_eq!(s.cancel("nope", now).await.unwrap(), Change::NotFound);
    assert_eq!(s.retry("nope", now).await.unwrap(), Change::NotFound);

    // list: newest first, filtered by state, paged
    let all = s
        .list(&ListFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|r| r.mime.is_none()));
    let sent = s
        .list(&ListFilter {
            state: Some(State::Sent),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, a);
    let page1 = s
        .list(&ListFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let page2 = s
        .list(&ListFilter {
            limit: 1,
            before: Some((page1[0].created_at, page1[0].id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page2.len(), 1);
    assert_ne!(page1[0].id, page2[0].id);
    db.done().await;
}

async fn two_claimers_never_share(db: Db) {
    let batch: Vec<_> = (0..300)
        .map(|n| msg(n, None, None, Priority::Single))
        .collect();
    db.store.enqueue_batch(batch).await.unwrap();
    let now = now_ms() + 1_000;
    let (s1, s2) = (db.another().await, db.another().await);
    let drain = |s: AnyStore, owner: &'static str| async move {
        let mut got = Vec::new();
        loop {
            let c = s.claim(owner, 7, now, now + 600_000).await.unwrap();
            if c.is_empty() {
                break got;
            }
            got.extend(c.into_iter().map(|r| r.id));
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(drain(s1, "one")),
        tokio::spawn(drain(s2, "two"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let sa: HashSet<_> = a.iter().cloned().collect();
    let sb: HashSet<_> = b.iter().cloned().collect();
    assert_eq!(sa.len(), a.len(), "one claimer got a message twice");
    assert_eq!(sb.len(), b.len(), "one claimer got a message twice");
    assert!(sa.is_disjoint(&sb), "two claimers got the same message");
    assert_eq!(sa.len() + sb.len(), 300);
    db.done().await;
}

async fn shared_rate_limit(db: Db) {
    let other = db.another().await;
    let now = now_ms();
    assert_eq!(db.store.take_rate_slot("sink", 3, now).await.unwrap(), None);
    assert_eq!(
        other.take_rate_slot("sink", 3, now + 10).await.unwrap(),
        None
    );
    assert_eq!(
        db.store.take_rate_slot("sink", 3, now + 20).await.unwrap(),
        None
    );
    // the fourth within the minute, from either process, waits until the first slot frees
    assert_eq!(
        other.take_rate_slot("sink", 3, now + 30).await.unwrap(),
        Some(60_000 - 30)
    );
    // another account has its own budget
    assert_eq!(
        other.take_rate_slot("graph", 3, now + 30).await.unwrap(),
        None
    );
    assert_eq!(
        db.store
            .take_rate_slot("sink", 3, now + 60_001)
            .await
            .unwrap(),
        None
    );
    db.done().await;
}

async fn shared_send_slots(db: Db) {
    let other = db.another().await;
    let now = now_ms();
    let until = now + 60_000;
    let a = db
        .store
        .take_send_slot("sink", 2, "p1", now, until)
        .await
        .unwrap();
    let b = other
        .take_send_slot("sink", 2, "p2", now, until)
        .await
        .unwrap();
    assert!(a.is_some() && b.is_some() && a != b);
    // both slots are taken, whichever process asks
    assert_eq!(
        db.store
            .take_send_slot("sink", 2, "p1", now, until)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        other
            .take_send_slot("sink", 2, "p2", now, until)
            .await
            .unwrap(),
        None
    );
    // another account has its own slots
    assert!(other
        .take_send_slot("graph", 2, "p2", now, until)
        .await
        .unwrap()
        .is_some());
    // a slot given back is free again
    db.store
        .free_send_slot(a.as_deref().unwrap())
        .await
        .unwrap();
    assert!(other
        .take_send_slot("sink", 2, "p2", now, until)
        .await
        .unwrap()
        .is_some());
    // p1 died holding a slot: it frees itself once its time has passed, and
    // renewing keeps a live process's slots
    let c = db
        .store
        .take_send_slot("mx", 1, "p1", now, now + 1_000)
        .await
        .unwrap();
    assert!(c.is_some());
    let d = other
        .take_send_slot("mx", 1, "p2", now, now + 60_000)
        .await
        .unwrap();
    assert_eq!(d, None);
    other.renew("p1", now + 1_000).await.unwrap();
    let later = other
        .take_send_slot("mx", 1, "p2", now + 1_001, now + 60_000)
        .await
        .unwrap();
    assert!(later.is_some(), "an expired slot stayed taken");
    // releasing a process's leases gives its slots back too
    other.renew("p2", now + 120_000).await.unwrap();
    assert_eq!(
        db.store
            .take_send_slot("mx", 1, "p1", now + 2_000, now + 60_000)
            .await
            .unwrap(),
        None
    );
    other.release("p2", now + 2_000).await.unwrap();
    assert!(db
        .store
        .take_send_slot("mx", 1, "p1", now + 2_000, now + 60_000)
        .await
        .unwrap()
        .is_some());
    db.done().await;
}

async fn group_commit_survives_reopen(db: Db) {
    let store = db.another().await;
    let outbox = Outbox::with_store(store);
    let mut tasks = Vec::new();
    for n in 0..64 {
        let o = outbox.clone();
        tasks.push(tokio::spawn(async move {
            o.enqueue(msg(
                n,
                Some(&format!("k{}", n % 32)),
                None,
                Priority::Single,
            ))
            .await
            .unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    let distinct: HashSet<_> = ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(distinct.len(), 32, "32 keys, each stored once");
    assert_eq!(ids.iter().filter(|e| e.duplicate).count(), 32);
    drop(outbox);
    // every answered enqueue was committed: a fresh connection sees them all
    let fresh = db.another().await;
    assert_eq!(fresh.counts().await.unwrap()["queued"], 32);
    db.done().await;
}

async fn account_status_is_shared(db: Db) {
    let now = now_ms();
    db.store
        .set_account_status("sink", "Operating", "", now)
        .await
        .unwrap();
    db.store
        .set_account_status("sink", "Unable to connect", "connection refused", now + 5)
        .await
        .unwrap();
    let seen = db.another().await.account_statuses().await.unwrap();
    assert_eq!(
        seen["sink"],
        (
            "Unable to connect".to_string(),
            "connection refused".to_string(),
            now + 5
        )
    );
    db.done().await;
}

/// The open messages count under the way out their chain position names,
/// across a claim, a move to the next way out and a retry (back to the first).
async fn open_messages_per_way_out(db: Db) {
    let s = &db.store;
    let mut m = msg(1, None, None, Priority::Single);
    m.way_outs = r#"["office","backup"]"#.into();
    let ids = s
        .enqueue_batch(vec![m.clone(), m.clone(), m])
        .await
        .unwrap();
    let n = |open: &mailhost::outbox::stats::Waiting, a: &str, st: &str| {
        open.get(a).and_then(|m| m.get(st)).copied().unwrap_or(0)
    };
    let open = s.open_by_way_out().await.unwrap();
    assert_eq!(n(&open, "office", "queued"), 3, "{open:?}");
    let now = now_ms() + 1_000;
    let claimed = s.claim("w1", 2, now, now + 60_000).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // one goes on to the second way out, deferred; the other is sent
    assert!(s
        .settle(
            &claimed[0].id,
            "w1",
            &[],
            &settle(State::Deferred, now + 60_000, 1),
            now
        )
        .await
        .unwrap());
    let open = s.open_by_way_out().await.unwrap();
    assert_eq!(n(&open, "office", "queued"), 1, "{open:?}");
    assert_eq!(n(&open, "office", "sending"), 1, "{open:?}");
    assert_eq!(n(&open, "backup", "deferred"), 1, "{open:?}");
    assert!(s
        .settle(&claimed[1].id, "w1", &[], &settle(State::Sent, now, 0), now)
        .await
        .unwrap());
    let open = s.open_by_way_out().await.unwrap();
    assert_eq!(
        open.values().flat_map(|m| m.values()).sum::<u64>(),
        2,
        "sent is not open: {open:?}"
    );
    // cancelled, then retried: from the first way out again
    let third = ids
        .iter()
        .find(|e| e.id != claimed[0].id && e.id != claimed[1].id)
        .unwrap();
    s.cancel(&third.id, now).await.unwrap();
    assert_eq!(
        n(&s.open_by_way_out().await.unwrap(), "office", "queued"),
        0
    );
    s.retry(&third.id, now).await.unwrap();
    assert_eq!(
        n(&s.open_by_way_out().await.unwrap(), "office", "queued"),
        1
    );
    db.done().await;
}

/// The list's filters by way out (the one at the message's chain position:
/// waited for, or last tried) and by creation time.
async fn list_by_account_and_time(db: Db) {
    let s = &db.store;
    let mut m = msg(1, None, None, Priority::Single);
    m.way_outs = r#"["office","backup"]"#.into();
    let first = s.enqueue_batch(vec![m.clone()]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.enqueue_batch(vec![m.clone(), m]).await.unwrap();
    let now = now_ms() + 1_000;
    let claimed = s.claim("w1", 2, now, now + 60_000).await.unwrap();
    assert_eq!(claimed[0].id, first[0].id, "oldest first");
    assert!(s
        .settle(
            &claimed[0].id,
            "w1",
            &[],
            &settle(State::Deferred, now, 1),
            now
        )
        .await
        .unwrap());
    assert!(s
        .settle(&claimed[1].id, "w1", &[], &settle(State::Sent, now, 0), now)
        .await
        .unwrap());
    let list = |account: Option<&str>, since: Option<i64>, until: Option<i64>| {
        let f = ListFilter {
            account: account.map(str::to_string),
            since,
            until,
            limit: 10,
            ..Default::default()
        };
        async move {
            let mut ids: Vec<String> = s
                .list(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(
        list(Some("backup"), None, None).await,
        vec![first[0].id.clone()]
    );
    assert_eq!(list(Some("office"), None, None).await.len(), 2);
    assert!(!list(Some("office"), None, None)
        .await
        .contains(&first[0].id));
    assert!(list(Some("nobody"), None, None).await.is_empty());
    let t0 = s.get(&first[0].id).await.unwrap().unwrap().0.created_at;
    assert_eq!(
        list(None, None, Some(t0 + 1)).await,
        vec![first[0].id.clone()]
    );
    assert_eq!(list(None, Some(t0 + 1), None).await.len(), 2);
    assert_eq!(list(Some("backup"), Some(t0 + 1), None).await.len(), 0);
    assert_eq!(list(None, Some(t0), None).await.len(), 3);
    // the oldest open message per state: the deferred first one, the queued third
    let oldest = s.oldest_open().await.unwrap();
    assert_eq!(oldest.get("deferred"), Some(&t0), "{oldest:?}");
    assert!(oldest["queued"] > t0, "{oldest:?}");
    assert!(!oldest.contains_key("sending"), "{oldest:?}");
    db.done().await;
}

/// Retry and cancel of every message a filter matches, in one statement:
/// only messages that may make the move, only those that match.
async fn change_matching_moves_only_what_matches(db: Db) {
    let s = &db.store;
    let mut office = msg(1, None, Some("acme"), Priority::Single);
    office.way_outs = r#"["office"]"#.into();
    let mut other = msg(2, None, Some("acme"), Priority::Single);
    other.way_outs = r#"["backup"]"#.into();
    let ids: Vec<String> = s
        .enqueue_batch(vec![office.clone(), office, other])
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let now = now_ms() + 1_000;
    let by = |account: &str, state: Option<State>| ListFilter {
        account: Some(account.into()),
        state,
        ..Default::default()
    };
    // cancel office's queued mail: two; backup's stays queued
    assert_eq!(
        s.change_matching(&by("office", None), true, now)
            .await
            .unwrap(),
        2
    );
    let state = |id: String| async move { s.get(&id).await.unwrap().unwrap().0.state };
    assert_eq!(state(ids[0].clone()).await, State::Cancelled);
    assert_eq!(state(ids[2].clone()).await, State::Queued);
    // again: nothing left to cancel there
    assert_eq!(
        s.change_matching(&by("office", None), true, now)
            .await
            .unwrap(),
        0
    );
    // retry failed ones only: none; then the cancelled ones
    assert_eq!(
        s.change_matching(&by("office", Some(State::Failed)), false, now)
            .await
            .unwrap(),
        0
    );
    let another_tenant = ListFilter {
        tenant: Some("globex".into()),
        state: Some(State::Cancelled),
        ..Default::default()
    };
    assert_eq!(
        s.change_matching(&another_tenant, false, now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.change_matching(&by("office", Some(State::Cancelled)), false, now)
            .await
            .unwrap(),
        2
    );
    let (m, _) = s.get(&ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (m.state, m.next_attempt_at, m.chain_pos),
        (State::Queued, now, 0)
    );
    // a message in flight is neither cancelled nor retried
    let claimed = s.claim("w1", 3, now, now + 60_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(
        s.change_matching(&ListFilter::default(), true, now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.change_matching(&ListFilter::default(), false, now)
            .await
            .unwrap(),
        0
    );
    db.done().await;
}

/// Retention: settled messages (sent, failed, cancelled) last changed before
/// the cut-off go with their attempts and bytes; open ones stay; a batch goes
/// with its last message; an idempotency key is free again once its message went.
async fn purge_deletes_settled_messages_only(db: Db) {
    use mailhost::outbox::batches::{BatchStore, NewBatch};
    let s = &db.store;
    let ids: Vec<String> = s
        .enqueue_batch(vec![
            msg(1, Some("k-1"), None, Priority::Single),
            msg(2, None, None, Priority::Single),
            msg(3, None, None, Priority::Single),
            msg(4, None, None, Priority::Single),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let now = now_ms() + 1_000;
    let batch = s
        .create_batch(
            &NewBatch {
                label: Some("old".into()),
                tenant: None,
                user: None,
                idempotency_key: None,
                per_minute: 0,
            },
            vec![msg(5, None, None, Priority::Batch)],
            now,
        )
        .await
        .unwrap();
    let claimed = s.claim("w1", 2, now, now + 60_000).await.unwrap();
    assert_eq!(claimed.len(), 2, "single messages first");
    let sent = &claimed[0].id;
    let failed = &claimed[1].id;
    let a = attempt(now, "sent", Some("250"), "queued as 1");
    assert!(s
        .settle(
            sent,
            "w1",
            std::slice::from_ref(&a),
            &settle(State::Sent, now, 0),
            now
        )
        .await
        .unwrap());
    assert!(s
        .settle(
            failed,
            "w1",
            std::slice::from_ref(&a),
            &settle(State::Failed, now, 0),
            now
        )
        .await
        .unwrap());
    let cancelled = ids.iter().find(|i| *i != sent && *i != failed).unwrap();
    assert!(matches!(
        s.cancel(cancelled, now).await.unwrap(),
        Change::Done(State::Cancelled)
    ));
    assert_eq!(s.cancel_batch(&batch.id, now).await.unwrap(), 1);

    // A cut-off before they settled deletes nothing.
    assert_eq!(s.purge(now - 86_400_000, 500).await.unwrap(), 0);
    // After: the four settled ones go (in chunks of 3), the queued one stays.
    assert_eq!(s.purge(now + 1, 3).await.unwrap(), 3);
    assert_eq!(s.purge(now + 1, 3).await.unwrap(), 1);
    assert_eq!(s.purge(now + 1, 3).await.unwrap(), 0);
    for id in [sent, failed, cancelled] {
        assert!(s.get(id).await.unwrap().is_none(), "{id} kept");
    }
    let left: Vec<String> = s
        .list(&ListFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left.contains(sent) && !left.contains(failed) && !left.contains(cancelled));
    assert!(
        s.batch_status(&batch.id).await.unwrap().is_none(),
        "empty batch kept"
    );
    let counts = s.counts().await.unwrap();
    assert_eq!(counts.get("queued").copied(), Some(1), "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), 1, "{counts:?}");
    // Message 1's key went with it, if it was one of the deleted: the same
    // key queues anew; if it is the one left, it still answers with it.
    let again = s
        .enqueue_batch(vec![msg(1, Some("k-1"), None, Priority::Single)])
        .await
        .unwrap();
    assert_eq!(again[0].duplicate, left[0] == ids[0], "{again:?}");
    db.done().await;
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Db::postgres().await).await;
            }
        }
    };
}

both!(enqueue_get_and_idempotency);
both!(claim_order_leases_and_expiry);
both!(state_transitions_and_attempts);
both!(two_claimers_never_share);
both!(shared_rate_limit);
both!(shared_send_slots);
both!(group_commit_survives_reopen);
both!(account_status_is_shared);
both!(open_messages_per_way_out);
both!(purge_deletes_settled_messages_only);
both!(list_by_account_and_time);
both!(change_matching_moves_only_what_matches);

#[tokio::test]
async fn sqlite_is_wal_and_synchronous_full() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
    let (journal, sync) = s.durability().await.unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(sync, 2, "synchronous=FULL is 2");
}

#[tokio::test]
async fn errors_name_the_place_and_hide_the_password() {
    let e = SqliteStore::open(std::path::Path::new("/nonexistent-dir/x/outbox.db"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent-dir/x/outbox.db"), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    let e = PgStore::open("postgres://mailhost:sekrit@127.0.0.1:1/mailhost", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("127.0.0.1:1"), "{e}");
    assert!(!e.contains("sekrit"), "{e}");
}

/// A test CA and a server certificate it signed for 127.0.0.1 (as a
/// managed database has: rustls takes no self-signed CA as a server's
/// certificate), made with openssl in `dir`: (ca.crt, server.crt, server.key).
fn ca_and_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl {args:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "2",
            "-subj",
            "/CN=mailhost test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

/// Turns TLS on in the PostgreSQL peer with `pair` (certificate, key), or
/// off again (`None`) so the other tests and the benchmarks measure what
/// they did.
async fn peer_tls(pair: Option<(&Path, &Path)>) {
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(PG_URL).await.unwrap();
    if let Some((cert, key)) = pair {
        let dir = mailhost_tests::peers_dir().join("postgres");
        // The server reads its key only when the key is its user's alone.
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        for (from, to) in [(cert, "tls.crt"), (key, "tls.key")] {
            let mut install = std::process::Command::new("install");
            install.args(["-m", "600"]);
            if root {
                install.args(["-o", "postgres"]);
            }
            let ok = install
                .arg(from)
                .arg(dir.join(to))
                .status()
                .unwrap()
                .success();
            assert!(ok, "install {}", from.display());
            let v = dir.join(to).display().to_string();
            let k = if to.ends_with("crt") {
                "ssl_cert_file"
            } else {
                "ssl_key_file"
            };
            sqlx::query(&format!("ALTER SYSTEM SET {k} = '{v}'"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    let switch = if pair.is_some() { "on" } else { "off" };
    sqlx::query(&format!("ALTER SYSTEM SET ssl = {switch}"))
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut c)
        .await
        .unwrap();
    // The reload is asynchronous: wait until a new session sees it.
    for _ in 0..100 {
        let mut n = sqlx::PgConnection::connect(PG_URL).await.unwrap();
        let (now,): (String,) = sqlx::query_as("SHOW ssl").fetch_one(&mut n).await.unwrap();
        if now == switch {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the PostgreSQL peer did not turn ssl {switch}; see its postgres.log");
}

/// A PostgreSQL outbox on another host is reached over TLS:
/// `sslmode=verify-full` with the CA that signed the server's certificate
/// (`sslrootcert`) connects and queues, and the session is encrypted; a
/// certificate no trusted CA signed is refused, naming the server.
#[tokio::test]
async fn a_postgres_outbox_over_tls_verifies_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_server_cert(dir.path());
    peer_tls(Some((&cert, &key))).await;
    let url = format!("{PG_URL}?sslmode=verify-full&sslrootcert={}", ca.display());
    let schema = format!("obx_tls_{}_{}", std::process::id(), now_ms());
    let opened = PgStore::open(&url, Some(&schema)).await;
    // Checked before anything can fail, so the peer is left as it was.
    let encrypted = {
        use sqlx::Connection as _;
        let mut c = sqlx::PgConnection::connect(&url).await;
        match c.as_mut() {
            Ok(c) => sqlx::query_as::<_, (bool,)>(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            )
            .fetch_one(c)
            .await
            .map(|r| r.0)
            .unwrap_or(false),
            Err(_) => false,
        }
    };
    let unverified = PgStore::open(&format!("{PG_URL}?sslmode=verify-full"), None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    peer_tls(None).await;
    let store = opened.expect("the outbox over TLS");
    assert!(encrypted, "the session is not encrypted");
    let e = unverified.expect_err("a certificate no trusted CA signed");
    assert!(e.contains("127.0.0.1:55432"), "{e}");
    assert!(e.contains("sslrootcert=/path/ca.pem"), "{e}");
    store.drop_schema(&schema).await.unwrap();
}
