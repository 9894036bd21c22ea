//! The outbox as an operator handles it: a crash mid-drain, `send --queue` and
//! `mailhost outbox`, purging, a full disk.

use super::*;

#[test]
fn sigterm_and_kill_9_mid_drain_lose_nothing() {
    const N: usize = 5_000;
    const CONCURRENCY: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    // smtp-sink runs as nobody: its capture directory must be reachable and writable for it.
    let cap = tempfile::Builder::new()
        .prefix("mailhost-capture-")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(cap.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let sink_port = free_port();
    let _sink = Sink::start(sink_port, &["-d", &format!("{}/", cap.path().display())]);
    config(
        dir.path(),
        sink_port,
        &format!("concurrency = {CONCURRENCY}"),
    );

    // queue N messages with the workers off
    let mut ids = HashMap::new();
    {
        let s = start(dir.path(), &["--no-workers"]);
        let rcpt = "bulk@example.com";
        // ten clients at once, as an ERP's workers would post
        let parts: Vec<Vec<(String, String)>> = std::thread::scope(|sc| {
            let s = &s;
            let handles: Vec<_> = (0..10)
                .map(|c| {
                    sc.spawn(move || {
                        // each client its own connection and runtime
                        let rt = rt();
                        let client = reqwest::Client::builder()
                            .tls_backend_preconfigured(
                                mailhost::tokens::tls_config(None).unwrap(),
                            )
                            .build()
                            .unwrap();
                        (0..N)
                            .filter(|n| n % 10 == c)
                            .map(|n| {
                                let body = json!({"to": [rcpt], "subject": format!("bulk {n}"), "text": "x"});
                                let (status, v) = rt.block_on(async {
                                    let r = client
                                        .post(format!("{}/v1/messages", s.base))
                                        .bearer_auth(OPS_TOKEN)
                                        .json(&body)
                                        .send()
                                        .await
                                        .unwrap();
                                    (r.status().as_u16(), r.json::<Value>().await.unwrap())
                                });
                                assert_eq!(status, 202, "{v:#}");
                                (
                                    v["message_id"].as_str().unwrap().to_string(),
                                    v["id"].as_str().unwrap().to_string(),
                                )
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        ids.extend(parts.into_iter().flatten());
        assert_eq!(counts(&s)["queued"], N as u64);
    }
    assert_eq!(ids.len(), N);

    // drain; SIGTERM part-way: it stops claiming, finishes what is in flight, releases its leases
    let mut s = start(dir.path(), &[]);
    let wait_sent = |min: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while captured(cap.path()).len() < min {
            assert!(
                Instant::now() < deadline,
                "the sink never got {min} messages"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_sent(N / 8);
    s.signal("-TERM");
    let status = s.wait_exit();
    assert!(
        status.success(),
        "serve exited with {status:?}:\n{}",
        s.log()
    );
    assert!(s.log().contains("serve: stopped"), "{}", s.log());
    drop(s);
    {
        let store = rt().block_on(mailhost::outbox::sqlite::SqliteStore::open(
            &dir.path().join("outbox.db"),
        ));
        let store = store.unwrap();
        use mailhost::outbox::Store;
        let c = rt().block_on(store.counts()).unwrap();
        assert_eq!(c["sending"], 0, "leases were not released: {c:?}");
    }
    let after_term = captured(cap.path()).len();

    // drain again; kill -9 part-way
    let s = start(dir.path(), &[]);
    wait_sent(after_term + N / 4);
    s.signal("-KILL");
    drop(s);

    // restart: everything ends up sent (leases of the dead process expire)
    let s = start(dir.path(), &[]);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let c = counts(&s);
        if c["sent"] == N as u64 {
            break;
        }
        assert!(
            c["failed"] == 0 && Instant::now() < deadline,
            "not all sent: {c:?}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = captured(cap.path());
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for m in &got {
        *seen.entry(m.as_str()).or_default() += 1;
    }
    for mid in ids.keys() {
        assert!(seen.contains_key(mid.as_str()), "lost: <{mid}>");
    }
    assert_eq!(
        seen.len(),
        N,
        "the sink got messages that were never queued"
    );
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    // The documented window (worker.rs): at most `concurrency ×
    // DUPLICATE_WINDOW_PER_LANE` messages sent but not yet recorded at the
    // crash (one kill -9 here).
    let window = CONCURRENCY * mailhost::outbox::worker::DUPLICATE_WINDOW_PER_LANE;
    assert!(
        duplicates <= window,
        "{duplicates} duplicates, more than the documented window of {window}"
    );
}

#[test]
fn send_queue_the_outbox_cli_and_the_claim_time_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    let queue = |tenant: Option<&str>| {
        let mut args = vec!["--json", "send", "--queue", "--to", "bob@example.com"];
        args.extend(["--subject", "queued", "--text", "x"]);
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        let (code, out, err) = cli(dir.path(), &args);
        assert_eq!(code, 0, "{out}{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["duplicate"], false);
        v["id"].as_str().unwrap().to_string()
    };
    let a = queue(Some("acme"));
    let b = queue(Some("acme"));

    let (code, out, _) = cli(
        dir.path(),
        &["--json", "outbox", "list", "--state", "queued"],
    );
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    // cancel, cancel again (refused, says why), retry, show
    let (code, out, _) = cli(dir.path(), &["outbox", "cancel", &b]);
    assert_eq!(code, 0);
    assert!(out.contains("cancelled"), "{out}");
    let (code, _, err) = cli(dir.path(), &["outbox", "cancel", &b]);
    assert_eq!(code, 69);
    assert!(err.contains("is cancelled"), "{err}");
    let (code, _, _) = cli(dir.path(), &["outbox", "retry", &b]);
    assert_eq!(code, 0);
    let (code, out, _) = cli(dir.path(), &["outbox", "show", &b]);
    assert_eq!(code, 0);
    assert!(out.contains("state       queued"), "{out}");
    let (code, _, err) = cli(dir.path(), &["outbox", "show", "no-such-id"]);
    assert_eq!(code, 65, "{err}");

    // the operator disables tenant acme before the service runs: its queued mail fails with the reason
    edit(
        &cfg,
        "[tenants.acme]\n",
        "[tenants.acme]\nenabled = false\n",
    );
    {
        let s = start(dir.path(), &[]);
        for id in [&a, &b] {
            let m = s.wait_for(id, "failed", |m| m["state"] == "failed");
            assert!(
                m["last_error"].as_str().unwrap().contains("tenant `acme`"),
                "{m:#}"
            );
            assert_eq!(m["attempts"][0]["class"], "refused", "{m:#}");
        }
    }
    // the kill switch holds queued mail (it goes out when sending is switched on again)
    let held = queue(None);
    edit(&cfg, "[policy]\n", "[policy]\nenabled = false\n");
    let s = start(dir.path(), &[]);
    let m = s.wait_for(&held, "held", |m| m["state"] == "deferred");
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("held: sending is switched off"),
        "{m:#}"
    );
    assert!(m["attempts"].as_array().unwrap().is_empty(), "{m:#}");
}

/// `outbox purge`: settled messages older than the days given (default
/// `[outbox] retention_days`) go; open ones stay; with retention off and no
/// `--days` it says what to do.
#[test]
fn outbox_purge_deletes_settled_messages_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let args = [
            "--json",
            "send",
            "--queue",
            "--to",
            "bob@example.com",
            "--subject",
            "s",
            "--text",
            "x",
        ];
        let (code, out, err) = cli(dir.path(), &args);
        assert_eq!(code, 0, "{out}{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  oldest: queued since 20"), "{out}");
    let (code, _, err) = cli(dir.path(), &["outbox", "cancel", &ids[0]]);
    assert_eq!(code, 0, "{err}");
    // cancelled just now: within the default 30 days
    let (code, out, err) = cli(dir.path(), &["outbox", "purge"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("removed 0 sent, failed or cancelled message(s) last changed before"),
        "{out}"
    );
    let (code, out, err) = cli(dir.path(), &["--json", "outbox", "purge", "--days", "0"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["removed"], 1, "{v}");
    let (code, _, err) = cli(dir.path(), &["outbox", "show", &ids[0]]);
    assert_eq!(code, 65, "{err}");
    let (code, out, _) = cli(dir.path(), &["outbox", "show", &ids[1]]);
    assert_eq!(code, 0);
    assert!(out.contains("state       queued"), "{out}");
    let (code, out, _) = cli(dir.path(), &["outbox", "show", "--raw", &ids[1]]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Subject: s\r\n") && out.contains("\r\n\r\nx"),
        "{out}"
    );
    // each line names the way out the message waits for
    let (code, out, _) = cli(dir.path(), &["outbox", "list", "--account", "sink"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("  queued     ") && out.contains("  via sink  <"),
        "{out}"
    );
    // the list's time filters
    let (code, out, _) = cli(
        dir.path(),
        &["outbox", "list", "--since", "2999-01-01T00:00:00Z"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("(no messages)"), "{out}");
    let (code, out, _) = cli(
        dir.path(),
        &[
            "--json",
            "outbox",
            "list",
            "--until",
            "2999-01-01T00:00:00+01:00",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "{out}"
    );
    let (code, _, err) = cli(dir.path(), &["outbox", "list", "--since", "last week"]);
    assert_eq!(code, 64);
    assert!(err.contains("--since `last week` is not a time"), "{err}");
    // cancel and retry every message a filter matches
    let (code, out, err) = cli(
        dir.path(),
        &["outbox", "cancel", "--all", "--account", "sink"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1 message(s) cancelled");
    let (code, out, _) = cli(dir.path(), &["outbox", "retry", "--all"]);
    assert_eq!(
        (code, out.trim()),
        (0, "0 message(s) queued again"),
        "failed ones only by default"
    );
    let (code, out, _) = cli(
        dir.path(),
        &["--json", "outbox", "retry", "--all", "--state", "cancelled"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["changed"],
        1,
        "{out}"
    );
    let (code, _, err) = cli(dir.path(), &["outbox", "retry", "--all", "--state", "sent"]);
    assert_eq!(code, 64);
    assert!(
        err.contains("only failed, cancelled, deferred messages can be retried"),
        "{err}"
    );
    let (code, _, err) = cli(
        dir.path(),
        &["outbox", "cancel", &ids[1], "--account", "sink"],
    );
    assert_eq!(code, 64);
    assert!(err.contains("give either an ID or --all"), "{err}");
    // retention off: only an explicit --days deletes
    edit(
        &cfg,
        "drain_secs = 10\n",
        "drain_secs = 10\nretention_days = 0\n",
    );
    let (code, _, err) = cli(dir.path(), &["outbox", "purge"]);
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("retention_days = 0 keeps every message; give --days N"),
        "{err}"
    );
}

/// `[outbox] min_free_mb`: below it on the outbox's disk, a new message or
/// batch is refused as a temporary failure (the API's 503, the CLI's exit
/// 75) saying what to do, and nothing is queued.
#[test]
fn a_disk_below_min_free_refuses_new_messages() {
    let dir = tempfile::tempdir().unwrap();
    // more than any test machine has free
    config(dir.path(), 2525, "min_free_mb = 1000000000");
    let s = start(dir.path(), &["--no-workers"]);
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": ["bob@example.com"], "subject": "Hi", "text": "x"}),
    );
    assert_problem(&r, 503, "outbox-unavailable");
    let detail = r.2["detail"].as_str().unwrap();
    assert!(
        detail.contains("min_free_mb (1000000000 MB)")
            && detail.contains("free space on that disk"),
        "{detail}"
    );
    let r = s.call(
        "POST",
        "/v1/batches",
        Some(ERP_TOKEN),
        Some("application/json"),
        serde_json::to_vec(&json!({"tenant": "acme", "template": {"subject": "s", "text": "t"}, "rows": [{"to": "a@example.com"}]})).unwrap(),
    );
    assert_problem(&r, 503, "outbox-unavailable");
    assert!(
        s.log()
            .contains("new messages are refused until there is more"),
        "{}",
        s.log()
    );
    let metrics = s.metrics();
    assert!(
        metrics.contains("mailhost_outbox_refusing_new 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "mailhost_outbox_disk_min_free_bytes {}",
            1_000_000_000u64 << 20
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("mailhost_outbox_disk_free_bytes "),
        "{metrics}"
    );
    let (code, _, err) = cli(
        dir.path(),
        &[
            "send",
            "--queue",
            "--to",
            "bob@example.com",
            "--subject",
            "x",
            "--text",
            "x",
        ],
    );
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("min_free_mb"), "{err}");
    assert_eq!(total(&counts(&s)), 0);
}
