//! Durable enqueue, in one run on one machine:
//!
//! * through the outbox alone (`Outbox::enqueue`: group commit, committed
//!   before the answer), 10 concurrent clients, on SQLite (WAL,
//!   `synchronous=FULL`) and on the PostgreSQL peer (a fresh schema, dropped after);
//! * through the HTTP API (`POST /v1/messages`, JSON fields: token check,
//!   policy, MIME build, enqueue), 10 concurrent clients, on both.
//!
//! Prints msg/s (goals from the issue: ≥ 20,000 on SQLite, ≥ 10,000 on
//! PostgreSQL through the API).
//!
//! ```sh
//! cargo build -p mailhost-pickup && PEERS_DIR=$PWD/target/peers cargo bench -p mailhost-tests --bench outbox
//! MAILHOST_BENCH_MESSAGES=50000 cargo bench -p mailhost-tests --bench outbox
//! MAILHOST_BENCH_ONLY="sqlite outbox" cargo bench -p mailhost-tests --bench outbox   # one of the four runs
//! MAILHOST_BENCH_SMOKE=1 cargo bench -p mailhost-tests --bench outbox   # a few messages (CI)
//! ```
//! Run under `cargo test --benches` (no `--bench` argument) it is a smoke run too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a failure is a panic

use std::sync::Arc;
use std::time::Instant;

use mailhost::config::{validate, Source};
use mailhost::engine::Engine;
use mailhost::loader::load_dirs;
use mailhost::outbox::deliver::EngineDeliver;
use mailhost::outbox::postgres::PgStore;
use mailhost::outbox::sqlite::SqliteStore;
use mailhost::outbox::worker::WorkerConfig;
use mailhost::outbox::{AnyStore, NewMessage, Outbox, Priority, Store};
use mailhost::server::auth::hash_token;
use mailhost::server::{serve, ServeOptions};
use mailhost_tests::{copy_as, plugin_file_name, plugin_path};

const CLIENTS: usize = 10;
const PG_URL: &str = "postgres://mailhost:mailhost@127.0.0.1:55432/mailhost";
const TOKEN: &str = "bench-token";

fn messages() -> usize {
    let smoke = std::env::var_os("MAILHOST_BENCH_SMOKE").is_some()
        || !std::env::args().any(|a| a == "--bench");
    if smoke {
        return 200;
    }
    std::env::var("MAILHOST_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn new_message(n: usize) -> NewMessage {
    NewMessage {
        action: "send".into(),
        user: None,
        tenant: None,
        purpose: None,
        idempotency_key: Some(format!("bench-{n}")),
        message_id: format!("bench-{n}@example.com"),
        mime: vec![b'x'; 2048],
        envelope_from: "erp@example.com".into(),
        envelope_to: vec!["bob@example.com".into()],
        options_json: "{}".into(),
        decision_json: r#"{"chain":[]}"#.into(),
        way_outs: "[]".into(),
        priority: Priority::Single,
    }
}

async fn store_enqueue(outbox: Outbox, total: usize) -> f64 {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let o = outbox.clone();
        tasks.push(tokio::spawn(async move {
            for n in (c..total).step_by(CLIENTS) {
                o.enqueue(new_message(n)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let queued = outbox.store().counts().await.unwrap()["queued"];
    assert_eq!(queued as usize, total);
    total as f64 / secs
}

async fn api_enqueue(engine: Arc<Engine>, outbox: Outbox, total: usize) -> f64 {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let opts = ServeOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        worker: WorkerConfig::new("bench"),
        drain: std::time::Duration::from_secs(1),
        workers: false,
        tls: None,
    };
    let engine = Arc::new(mailhost::live::LiveEngine::new(engine));
    let deliver = Arc::new(EngineDeliver(engine.clone()));
    let server = tokio::spawn(serve(
        engine,
        deliver,
        outbox.clone(),
        opts,
        stop_rx,
        Some(bound_tx),
    ));
    let addr = bound_rx.await.unwrap();
    let url = format!("http://{addr}/v1/messages");
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(mailhost::tokens::tls_config(None).unwrap())
        .build()
        .unwrap();
    let body = |n: usize| {
        serde_json::json!({
            "to": ["bob@example.com"], "subject": format!("bench {n}"),
            "text": "x".repeat(2000), "idempotency_key": format!("api-{n}")
        })
        .to_string()
    };
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for n in (c..total).step_by(CLIENTS) {
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(body(n))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    server.await.unwrap().unwrap();
    let queued = outbox.store().counts().await.unwrap()["queued"];
    assert_eq!(queued as usize, total);
    total as f64 / secs
}

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    copy_as(
        &plugin_path("pickup"),
        &plugins,
        &plugin_file_name("pickup"),
    );
    let set = load_dirs(&[plugins]);
    let text = format!(
        r#"
[policy]
account = "archive"

[accounts.archive]
plugin = "pickup"
from = "erp@example.com"
dir = "{}"

[api.tokens.bench]
hash = "{}"
scopes = ["send"]
"#,
        dir.join("out").display(),
        hash_token(TOKEN)
    );
    let settings = validate(&Source::from_text("bench.toml", dir, &text), &set).unwrap();
    Arc::new(Engine::new(settings, set))
}

fn main() {
    let total = messages();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    rt.block_on(async {
        let mut results = Vec::new();
        // MAILHOST_BENCH_ONLY=sqlite (or `postgres`, `api`, `outbox only`): the runs whose name has it.
        let only = std::env::var("MAILHOST_BENCH_ONLY").unwrap_or_default();
        for (kind, api) in [("sqlite", false), ("sqlite", true), ("postgres", false), ("postgres", true)] {
            let what = if api { "HTTP API" } else { "outbox only" };
            if !format!("{kind} {what}").contains(only.as_str()) {
                continue;
            }
            let schema = format!("obx_bench_{}_{}", std::process::id(), results.len());
            let store = if kind == "sqlite" {
                let path = dir.path().join(format!("bench-{}.db", results.len()));
                AnyStore::Sqlite(SqliteStore::open(&path).await.unwrap())
            } else {
                AnyStore::Postgres(PgStore::open(PG_URL, Some(&schema)).await.unwrap())
            };
            let outbox = Outbox::with_store(store);
            let rate = if api {
                api_enqueue(engine.clone(), outbox.clone(), total).await
            } else {
                store_enqueue(outbox.clone(), total).await
            };
            if let AnyStore::Postgres(pg) = outbox.store() {
                pg.drop_schema(&schema).await.unwrap();
            }
            println!("durable enqueue, {kind:<8} {what:<11} {CLIENTS} clients, {total} msgs: {rate:>9.0} msg/s");
            results.push(rate);
        }
    });
    engine.close();
}
