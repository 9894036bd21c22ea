//! Several services on one PostgreSQL outbox.

use super::*;

const PG_URL: &str = "postgres://mailhost:mailhost@127.0.0.1:55432/mailhost";

#[test]
fn two_services_on_postgres_send_each_message_once_within_the_rate_limit() {
    const N: usize = 40;
    const LIMIT: usize = 25;
    let schema = unique("obx_serve").replace('-', "_");
    let store = rt()
        .block_on(mailhost::outbox::postgres::PgStore::open(
            PG_URL,
            Some(&schema),
        ))
        .unwrap();
    let cap = tempfile::Builder::new()
        .prefix("mailhost-capture-")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(cap.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let sink_port = free_port();
    let _sink = Sink::start(sink_port, &["-d", &format!("{}/", cap.path().display())]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), sink_port, "");
    edit(
        &cfg,
        "database = \"outbox.db\"",
        &format!("database = \"{PG_URL}?options=-c%20search_path%3D{schema}\""),
    );
    edit(
        &cfg,
        &format!("port = {sink_port}\n"),
        &format!("port = {sink_port}\nmax_per_minute = {LIMIT}\n"),
    );
    let a = start(dir.path(), &[]);
    let b = start(dir.path(), &[]);
    for n in 0..N {
        let s = if n % 2 == 0 { &a } else { &b };
        let r = s.post_json(
            Some(OPS_TOKEN),
            &json!({"to": ["pg@example.com"], "subject": format!("pg {n}"), "text": "x"}),
        );
        assert_eq!(r.0, 202, "{:#}", r.2);
    }
    // every message settles: LIMIT sent within the minute, the rest deferred by the shared limit
    let deadline = Instant::now() + Duration::from_secs(60);
    let c = loop {
        let c = counts(&a);
        if c["sent"] + c["deferred"] == N as u64 {
            break c;
        }
        assert!(Instant::now() < deadline, "not settled: {c:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(c["sent"], LIMIT as u64, "{c:?}");
    let deferred = a.get("/v1/messages?state=deferred&limit=100");
    for m in deferred["messages"].as_array().unwrap() {
        assert!(
            m["last_error"].as_str().unwrap().contains("max_per_minute"),
            "{m:#}"
        );
    }
    let stats = |s: &Service| s.get("/v1/status")["worker"]["sent"].as_u64().unwrap();
    assert_eq!(stats(&a) + stats(&b), LIMIT as u64);
    // each sent message reached the sink once
    let got = captured(cap.path());
    let unique_ids: std::collections::HashSet<_> = got.iter().collect();
    assert_eq!(got.len(), LIMIT, "{got:?}");
    assert_eq!(unique_ids.len(), LIMIT);
    drop(a);
    drop(b);
    rt().block_on(store.drop_schema(&schema)).unwrap();
}

#[test]
fn account_concurrency_holds_across_two_services_and_max_age_is_per_account() {
    const N: usize = 4;
    let schema = unique("obx_slots").replace('-', "_");
    let store = rt()
        .block_on(mailhost::outbox::postgres::PgStore::open(
            PG_URL,
            Some(&schema),
        ))
        .unwrap();
    // a sink that takes a second over each DATA: sends overlap unless something stops them
    let sink_port = free_port();
    let _sink = Sink::start(sink_port, &["-w", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), sink_port, "max_age_secs = 3600");
    edit(
        &cfg,
        "database = \"outbox.db\"",
        &format!("database = \"{PG_URL}?options=-c%20search_path%3D{schema}\""),
    );
    edit(
        &cfg,
        &format!("port = {sink_port}\n"),
        &format!("port = {sink_port}\nmax_concurrent = 1\n"),
    );
    // the outbox retries for an hour, but `server` only for a second before the next way out
    edit(&cfg, "port = 2526\n", "port = 2526\nmax_age_secs = 1\n");
    let a = start(dir.path(), &[]);
    let b = start(dir.path(), &[]);
    let mut ids = Vec::new();
    for n in 0..N {
        let s = if n % 2 == 0 { &a } else { &b };
        let r = s.post_json(
            Some(OPS_TOKEN),
            &json!({"to": ["slots@example.com"], "subject": format!("slot {n}"), "text": "x"}),
        );
        assert_eq!(r.0, 202, "{:#}", r.2);
        ids.push(r.2["id"].as_str().unwrap().to_string());
    }
    let mut starts = Vec::new();
    for id in &ids {
        let m = a.wait_for(id, "sent", |m| m["state"] == "sent");
        let ok = m["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["class"] == "ok")
            .cloned()
            .unwrap();
        starts.push(ok["at"].as_i64().unwrap());
    }
    starts.sort();
    // max_concurrent = 1 across both processes: each send starts after the one
    // before it ended (each takes over a second at the sink)
    for w in starts.windows(2) {
        assert!(
            w[1] - w[0] >= 900,
            "two sends through one account overlapped: starts {starts:?}\nA:\n{}\nB:\n{}",
            a.log(),
            b.log()
        );
    }

    // `server` answers 450; its own max_age (1 s) sends the message on to `sink`
    let r = a.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": ["rcpt-4xx@example.com"], "subject": "age", "text": "x"}),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    let m = a.wait_for(&id, "sent", |m| m["state"] == "sent");
    let att = m["attempts"].as_array().unwrap();
    assert!(att.len() >= 2, "{m:#}");
    assert_eq!(att[0]["candidate"], "server");
    assert_eq!(att[0]["class"], "transient");
    assert_eq!(att.last().unwrap()["candidate"], "sink", "{m:#}");
    assert_eq!(att.last().unwrap()["class"], "ok");
    drop(a);
    drop(b);
    rt().block_on(store.drop_schema(&schema)).unwrap();
}
