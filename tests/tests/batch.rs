//! Batch sending as an operator uses it: `mailhost send-batch` and
//! `POST /v1/batches` with the SMTP plugin against the smtp-server peer
//! (2526: it saves every message, `rcpt-5xx@…` is refused with 550), and the
//! batch store and its pacing on SQLite and PostgreSQL with times passed in.
//! Pacing is asserted on the scheduler's slots and on recorded attempt times,
//! never on wall-clock speed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mailhost::outbox::batches::{BatchStore, NewBatch};
use mailhost::outbox::postgres::PgStore;
use mailhost::outbox::sqlite::SqliteStore;
use mailhost::outbox::{now_ms, AnyStore, NewMessage, Priority, Store};
use mailhost::server::auth::hash_token;
use mailhost_tests::smtp::saved_for;
use mailhost_tests::{copy_as, mailhost_bin, plugin_file_name, plugin_path, Service};
use serde_json::{json, Value};

const PG_URL: &str = "postgres://mailhost:mailhost@127.0.0.1:55432/mailhost";
const TOKEN: &str = "batch-token-for-tests";
const OTHER_TOKEN: &str = "other-tenant-token-for-tests";

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}-{}",
        std::process::id(),
        now_ms(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A config: one SMTP account on the smtp-server peer (2526), a SQLite outbox,
/// batches unpaced unless a test says otherwise, and API tokens.
fn setup(outbox_extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    copy_as(&plugin_path("smtp"), &plugins, &plugin_file_name("smtp"));
    let cfg = dir.path().join("mailhost.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[policy]
account = "server"
initial_backoff_ms = 200
max_backoff_ms = 1000

[accounts.server]
plugin = "smtp"
from = "ERP <erp@example.com>"
host = "127.0.0.1"
port = 2526
security = "none"
auth = "optional"
allow_plaintext_auth = true

[tenants.acme]
account = "server"

[tenants.globex]
account = "server"

[outbox]
database = "outbox.db"
lease_secs = 4
drain_secs = 10
{outbox_extra}

[api.tokens.erp]
hash = "{erp}"
scopes = ["send"]
tenants = ["acme"]

[api.tokens.other]
hash = "{other}"
scopes = ["send"]
tenants = ["globex"]
"#,
            erp = hash_token(TOKEN),
            other = hash_token(OTHER_TOKEN),
        ),
    )
    .unwrap();
    (dir, cfg)
}

fn mailhost(dir: &Path, args: &[&str]) -> Output {
    Command::new(mailhost_bin())
        .current_dir(dir)
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .args(["--config", "mailhost.toml", "--plugins", "plugins"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            text(&o.stdout),
            text(&o.stderr)
        )
    })
}

/// The message smtp-server saved for `rcpt`, parsed: (subject, text, html).
fn delivered(rcpt: &str) -> (String, Option<String>, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((eml, _)) = saved_for(rcpt) {
            let m = mail_parser::MessageParser::default().parse(&eml).unwrap();
            return (
                m.subject().unwrap_or_default().to_string(),
                m.body_text(0).map(|t| t.trim_end().to_string()),
                m.body_html(0).map(|t| t.trim_end().to_string()),
            );
        }
        assert!(Instant::now() < deadline, "nothing delivered for {rcpt}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_jsonl_batch_is_rendered_per_row_and_sent() {
    let (dir, _) = setup("");
    let d = dir.path();
    let (a, b) = (
        format!("{}@example.com", unique("jsonl-a")),
        format!("{}@example.com", unique("jsonl-b")),
    );
    std::fs::write(
        d.join("rows.jsonl"),
        format!(
            "{}\n{}\n",
            json!({"to": a, "name": "Tom & <b>Jerry</b>", "number": 1}),
            json!({"to": [b], "name": "Ann", "number": 2})
        ),
    )
    .unwrap();
    std::fs::write(d.join("body.txt"), "Dear {{ name }}, invoice {{ number }}.").unwrap();
    std::fs::write(d.join("body.html"), "<p>Dear {{ name }}</p>").unwrap();
    let o = mailhost(
        d,
        &[
            "--json",
            "send-batch",
            "rows.jsonl",
            "--subject",
            "Invoice {{ number }}",
            "--text-file",
            "body.txt",
            "--html-file",
            "body.html",
            "--rate",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let v = json_out(&o);
    assert_eq!(v["total"], 2, "{v:#}");
    assert_eq!(v["counts"]["sent"], 2, "{v:#}");
    assert_eq!(v["done"], true);
    assert_eq!(v["exit_code"], 0);
    let (subject, body, html) = delivered(&a);
    assert_eq!(subject, "Invoice 1");
    // the text part as written; the HTML part escaped
    assert_eq!(body.as_deref(), Some("Dear Tom & <b>Jerry</b>, invoice 1."));
    assert_eq!(
        html.as_deref(),
        Some("<p>Dear Tom &amp; &lt;b&gt;Jerry&lt;&#x2f;b&gt;</p>")
    );
    let (subject, body, _) = delivered(&b);
    assert_eq!(subject, "Invoice 2");
    assert_eq!(body.as_deref(), Some("Dear Ann, invoice 2."));
    // the batch is listed and shown
    let list = json_out(&mailhost(d, &["--json", "outbox", "batches"]));
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(list[0]["label"], "rows.jsonl");
    let id = list[0]["id"].as_str().unwrap();
    let shown = json_out(&mailhost(d, &["--json", "outbox", "batch", id]));
    assert_eq!(shown["counts"]["sent"], 2);
}

#[test]
fn a_csv_batch_with_a_template_file_and_an_eml_folder_are_sent() {
    let (dir, _) = setup("");
    let d = dir.path();
    let (a, b) = (
        format!("{}@example.com", unique("csv-a")),
        format!("{}@example.com", unique("csv-b")),
    );
    std::fs::write(
        d.join("rows.csv"),
        format!("to,name,amount\n{a},\"Smith, Ann\",10\n{b},Bob,20\n"),
    )
    .unwrap();
    std::fs::write(
        d.join("invoice.toml"),
        "subject = \"Amount {{ amount }}\"\ntext = \"Hello {{ name }}\"\n",
    )
    .unwrap();
    let o = mailhost(
        d,
        &[
            "send-batch",
            "rows.csv",
            "--template",
            "invoice.toml",
            "--rate",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("2 of 2 sent"),
        "{}",
        text(&o.stdout)
    );
    let (subject, body, _) = delivered(&a);
    assert_eq!(subject, "Amount 10");
    assert_eq!(body.as_deref(), Some("Hello Smith, Ann"));
    assert_eq!(delivered(&b).0, "Amount 20");

    // A folder of .eml files: each sent as it is.
    let folder = d.join("mails");
    std::fs::create_dir(&folder).unwrap();
    let rcpts: Vec<String> = (0..2)
        .map(|i| format!("{}@example.com", unique(&format!("eml{i}"))))
        .collect();
    for (i, r) in rcpts.iter().enumerate() {
        std::fs::write(
            folder.join(format!("{i}.eml")),
            format!(
                "From: erp@example.com\r\nTo: {r}\r\nSubject: As written {i}\r\nMessage-ID: <{}@example.com>\r\n\r\nbody {i}\r\n",
                unique("mid")
            ),
        )
        .unwrap();
    }
    let o = mailhost(d, &["--json", "send-batch", "mails", "--rate", "0"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    assert_eq!(json_out(&o)["counts"]["sent"], 2);
    for (i, r) in rcpts.iter().enumerate() {
        let (subject, body, _) = delivered(r);
        assert_eq!(subject, format!("As written {i}"));
        assert_eq!(body.as_deref(), Some(format!("body {i}").as_str()));
    }
    // template flags make no sense for a folder
    let o = mailhost(d, &["send-batch", "mails", "--subject", "x"]);
    assert_eq!(o.status.code(), Some(64), "stderr: {}", text(&o.stderr));
}

/// Excel's "CSV (Comma delimited)" is in the Windows code page: refused with
/// what to do and nothing queued, then sent as written with `--encoding`,
/// template file included.
#[test]
fn a_csv_in_the_windows_code_page_is_sent_with_its_encoding() {
    let (dir, _) = setup("");
    let d = dir.path();
    let a = format!("{}@example.com", unique("ansi"));
    let mut csv = format!("to;name\r\n{a};").into_bytes();
    csv.extend_from_slice(b"J\xfcrgen M\xfcller\r\n");
    std::fs::write(d.join("excel.csv"), &csv).unwrap();
    std::fs::write(d.join("body.txt"), b"Gr\xfc\xdfe, {{ name }}").unwrap();
    let args = [
        "send-batch",
        "excel.csv",
        "--subject",
        "Rechnung {{ name }}",
        "--text-file",
        "body.txt",
        "--rate",
        "0",
    ];
    let o = mailhost(d, &args);
    assert_eq!(o.status.code(), Some(65), "stdout: {}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("excel.csv: line 2 is not UTF-8"), "{err}");
    assert!(err.contains("--encoding windows-1252"), "{err}");
    assert!(saved_for(&a).is_none(), "nothing may be sent");
    let o = mailhost(d, &[&args[..], &["--encoding", "windows-1252"]].concat());
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let (subject, body, _) = delivered(&a);
    assert_eq!(subject, "Rechnung Jürgen Müller");
    assert_eq!(body.as_deref(), Some("Grüße, Jürgen Müller"));
    // Excel's "Unicode Text": UTF-16 with a byte order mark, tabs, `.txt`.
    let z = format!("{}@example.com", unique("utf16"));
    let mut utf16 = vec![0xff, 0xfe];
    for c in format!("to\tname\r\n{z}\tZoë\r\n").encode_utf16() {
        utf16.extend_from_slice(&c.to_le_bytes());
    }
    std::fs::write(d.join("Kunden.txt"), utf16).unwrap();
    let o = mailhost(
        d,
        &[
            "send-batch",
            "Kunden.txt",
            "--subject",
            "Hi {{ name }}",
            "--text",
            "x",
            "--rate",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    assert_eq!(delivered(&z).0, "Hi Zoë");
    let o = mailhost(d, &[&args[..], &["--encoding", "ebcdic-xyz"]].concat());
    assert_eq!(o.status.code(), Some(64), "stderr: {}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("not an encoding"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn one_bad_row_queues_nothing_and_every_bad_row_is_named() {
    let (dir, _) = setup("");
    let d = dir.path();
    let good = format!("{}@example.com", unique("bad-good"));
    std::fs::write(
        d.join("rows.jsonl"),
        format!(
            "{}\n{}\n{}\n{}\n",
            json!({"to": good, "name": "A"}),
            json!({"to": "not an address", "name": "B"}),
            json!({"to": "c@example.com"}),
            json!({"to": "d@example.com", "name": "x\r\nBcc: evil@example.com"}),
        ),
    )
    .unwrap();
    std::fs::write(d.join("t.txt"), "Hi {{ name }}").unwrap();
    let args = [
        "--json",
        "send-batch",
        "rows.jsonl",
        "--subject",
        "For {{ name }}",
        "--text-file",
        "t.txt",
    ];
    let o = mailhost(d, &args);
    assert_eq!(o.status.code(), Some(65), "stderr: {}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("3 bad row(s); nothing was queued"), "{err}");
    assert!(err.contains("line 2: "), "{err}");
    // strict undefined: the row and the field
    assert!(err.contains("line 3: field `name` is missing"), "{err}");
    assert!(
        err.contains("line 4: the rendered subject contains a line break"),
        "{err}"
    );
    let v = json_out(&o);
    let rows: Vec<u64> = v["error"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![2, 3, 4]);
    // nothing queued, nothing sent
    let list = json_out(&mailhost(d, &["--json", "outbox", "batches"]));
    assert_eq!(list, json!([]));
    assert!(saved_for(&good).is_none());
    // --dry-run of a good file renders the first message and queues nothing
    std::fs::write(
        d.join("ok.jsonl"),
        format!("{}\n", json!({"to": good, "name": "Zed"})),
    )
    .unwrap();
    let o = mailhost(
        d,
        &[
            "send-batch",
            "ok.jsonl",
            "--subject",
            "For {{ name }}",
            "--text-file",
            "t.txt",
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("Subject: For Zed"), "{out}");
    assert!(out.contains("Hi Zed"), "{out}");
    // the bodies may be given inline too, the HTML one escaped
    let o = mailhost(
        d,
        &[
            "send-batch",
            "ok.jsonl",
            "--subject",
            "For {{ name }}",
            "--text",
            "Hello {{ name }}",
            "--html",
            "<p>{{ name }} & co</p>",
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("Hello Zed"), "{out}");
    assert!(out.contains("<p>Zed & co</p>"), "{out}");
    // one body, one way: --text and --text-file together is a usage error
    let o = mailhost(
        d,
        &[
            "send-batch",
            "ok.jsonl",
            "--subject",
            "x",
            "--text",
            "a",
            "--text-file",
            "t.txt",
        ],
    );
    assert_eq!(o.status.code(), Some(64), "stderr: {}", text(&o.stderr));
    let list = json_out(&mailhost(d, &["--json", "outbox", "batches"]));
    assert_eq!(list, json!([]));
    assert!(saved_for(&good).is_none());
}

#[test]
fn refused_rows_set_the_exit_code_and_the_rest_is_sent() {
    let (dir, _) = setup("");
    let d = dir.path();
    let good = format!("{}@example.com", unique("mixed-good"));
    std::fs::write(
        d.join("rows.csv"),
        format!("to\n{good}\nrcpt-5xx@example.com\n"),
    )
    .unwrap();
    std::fs::write(d.join("t.txt"), "hello").unwrap();
    let o = mailhost(
        d,
        &[
            "--json",
            "send-batch",
            "rows.csv",
            "--subject",
            "Hi",
            "--text-file",
            "t.txt",
            "--rate",
            "0",
        ],
    );
    // 550 from the server: permanent
    assert_eq!(o.status.code(), Some(76), "stderr: {}", text(&o.stderr));
    let v = json_out(&o);
    assert_eq!(v["counts"]["sent"], 1, "{v:#}");
    assert_eq!(v["counts"]["failed"], 1, "{v:#}");
    assert_eq!(v["failures"]["permanent"], 1, "{v:#}");
    assert!(saved_for(&good).is_some());
}

/// A fresh database: a SQLite file, or a PostgreSQL schema dropped at the
/// end; two handles on it, as two processes would have.
async fn with_db<F, Fut>(pg: bool, f: F)
where
    F: FnOnce(AnyStore, AnyStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if pg {
        let schema = unique("batch_test").replace('-', "_");
        let open =
            || async { AnyStore::Postgres(PgStore::open(PG_URL, Some(&schema)).await.unwrap()) };
        f(open().await, open().await).await;
        let cleanup = PgStore::open(PG_URL, Some(&schema)).await.unwrap();
        cleanup.drop_schema(&schema).await.unwrap();
    } else {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let a = AnyStore::Sqlite(SqliteStore::open(&path).await.unwrap());
        let b = AnyStore::Sqlite(SqliteStore::open(&path).await.unwrap());
        f(a, b).await;
    }
}

fn new_msg(n: usize, priority: Priority) -> NewMessage {
    NewMessage {
        action: "send".into(),
        user: None,
        tenant: Some("acme".into()),
        purpose: None,
        idempotency_key: None,
        message_id: format!("<batch-store-{n}@example.com>"),
        mime: format!("Subject: {n}\r\n\r\nbody\r\n").into_bytes(),
        envelope_from: "erp@example.com".into(),
        envelope_to: vec![format!("r{n}@example.com")],
        options_json: "{}".into(),
        decision_json: r#"{"chain":[]}"#.into(),
        way_outs: "[]".into(),
        priority,
    }
}

fn batch(per_minute: u32, key: Option<&str>) -> NewBatch {
    NewBatch {
        label: Some("test".into()),
        tenant: Some("acme".into()),
        user: None,
        idempotency_key: key.map(str::to_string),
        per_minute,
    }
}

async fn pacing_and_claims(store: AnyStore, other: AnyStore) {
    let t0 = now_ms();
    let e = store
        .create_batch(
            &batch(60, Some("run-1")),
            (0..3).map(|n| new_msg(n, Priority::Batch)).collect(),
            t0,
        )
        .await
        .unwrap();
    assert!(!e.duplicate);
    // the same key: the first batch, nothing stored
    let again = store
        .create_batch(
            &batch(60, Some("run-1")),
            vec![new_msg(9, Priority::Batch)],
            t0,
        )
        .await
        .unwrap();
    assert_eq!(again.id, e.id);
    assert!(again.duplicate);
    let s = store.batch_status(&e.id).await.unwrap().unwrap();
    assert_eq!(s.batch.total, 3);
    assert_eq!(s.counts["queued"], 3);
    assert_eq!(s.batch.per_minute, 60);
    assert!(!s.done);

    // 60 a minute: one slot a second, shared by every process on the database.
    assert_eq!(store.take_batch_slot(&e.id, t0).await.unwrap(), None);
    assert_eq!(
        other.take_batch_slot(&e.id, t0 + 10).await.unwrap(),
        Some(t0 + 1000)
    );
    assert_eq!(
        store.take_batch_slot(&e.id, t0 + 999).await.unwrap(),
        Some(t0 + 1000)
    );
    assert_eq!(other.take_batch_slot(&e.id, t0 + 1000).await.unwrap(), None);
    assert_eq!(
        store.take_batch_slot(&e.id, t0 + 1001).await.unwrap(),
        Some(t0 + 2000)
    );
    // a worker that wakes late catches up at most the credit (500 ms), not the whole gap
    let late = t0 + 60_000;
    assert_eq!(store.take_batch_slot(&e.id, late).await.unwrap(), None);
    assert_eq!(
        store.take_batch_slot(&e.id, late).await.unwrap(),
        Some(late + 500)
    );

    // While the batch's next slot is ahead, a claim skips its messages and
    // takes a single message queued after them.
    let single = store
        .enqueue_batch(vec![new_msg(100, Priority::Single)])
        .await
        .unwrap();
    let claimed = store.claim("w1", 10, late, late + 10_000).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec![single[0].id.as_str()], "{claimed:#?}");
    // once the slot is due, the batch's messages are claimable again
    let due = store.take_batch_slot(&e.id, late).await.unwrap().unwrap();
    let claimed = store.claim("w1", 10, due, due + 10_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(claimed
        .iter()
        .all(|m| m.batch_id.as_deref() == Some(e.id.as_str())));
    // in file order
    let mids: Vec<&str> = claimed.iter().map(|m| m.message_id.as_str()).collect();
    let want: Vec<String> = (0..3)
        .map(|n| format!("<batch-store-{n}@example.com>"))
        .collect();
    assert_eq!(mids, want);

    // Racing for one slot from two handles at once: exactly one gets it.
    let race = store
        .create_batch(&batch(60, None), vec![new_msg(300, Priority::Batch)], t0)
        .await
        .unwrap();
    let id = race.id.as_str();
    let at = t0 + 5;
    let r = tokio::join!(
        store.take_batch_slot(id, at),
        other.take_batch_slot(id, at),
        store.take_batch_slot(id, at),
        other.take_batch_slot(id, at),
        store.take_batch_slot(id, at),
        other.take_batch_slot(id, at),
    );
    let got = [r.0, r.1, r.2, r.3, r.4, r.5]
        .into_iter()
        .map(|x| x.unwrap())
        .filter(Option::is_none)
        .count();
    assert_eq!(got, 1, "one slot, one taker");

    // an unpaced batch never waits; cancel takes what is not sent
    let free = store
        .create_batch(
            &batch(0, None),
            (0..2).map(|n| new_msg(200 + n, Priority::Batch)).collect(),
            t0,
        )
        .await
        .unwrap();
    assert_eq!(store.take_batch_slot(&free.id, t0).await.unwrap(), None);
    assert_eq!(store.take_batch_slot(&free.id, t0).await.unwrap(), None);
    assert_eq!(store.cancel_batch(&free.id, t0).await.unwrap(), 2);
    let s = store.batch_status(&free.id).await.unwrap().unwrap();
    assert_eq!(s.counts["cancelled"], 2);
    assert!(s.done);
    let list = store.list_batches(Some("acme"), None, 10).await.unwrap();
    assert_eq!(list.len(), 3);
    assert!(store
        .list_batches(Some("globex"), None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[test]
fn batches_are_paced_by_slots_and_never_hold_single_messages_sqlite() {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(with_db(false, pacing_and_claims));
}

#[test]
fn batches_are_paced_by_slots_and_never_hold_single_messages_postgres() {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(with_db(true, pacing_and_claims));
}

/// The API calls these tests make, with the batch token.
trait Api {
    fn post(&self, path: &str, ctype: &str, body: Vec<u8>) -> (u16, String, Value);
    fn get(&self, path: &str) -> Value;
    fn wait(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value;
}

impl Api for Service {
    fn post(&self, path: &str, ctype: &str, body: Vec<u8>) -> (u16, String, Value) {
        self.call("POST", path, Some(TOKEN), Some(ctype), body)
    }

    fn get(&self, path: &str) -> Value {
        let (status, _, v) = self.call("GET", path, Some(TOKEN), None, Vec::new());
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    fn wait(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.get(path);
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never became {what}: {v:#}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn assert_problem(r: &(u16, String, Value), status: u16, code: &str) {
    assert_eq!(r.0, status, "{:#}", r.2);
    assert_eq!(r.1, "application/problem+json", "{:#}", r.2);
    assert_eq!(
        r.2["type"],
        format!("urn:mailhost:problem:{code}"),
        "{:#}",
        r.2
    );
}

#[test]
fn the_api_queues_shows_lists_and_cancels_batches() {
    let (dir, _) = setup("");
    let s = Service::start(dir.path(), &[]);
    let rcpts: Vec<String> = (0..2)
        .map(|i| format!("{}@example.com", unique(&format!("api{i}"))))
        .collect();
    let body = json!({
        "name": "api batch",
        "tenant": "acme",
        "rate": 0,
        "idempotency_key": unique("key"),
        "template": {"subject": "Order {{ order }}", "html": "<p>{{ note }}</p>"},
        "rows": [
            {"to": rcpts[0], "order": 1, "note": "a<b"},
            {"to": rcpts[1], "order": 2, "note": "ok"},
        ],
    });
    let r = s.post(
        "/v1/batches",
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(r.2["total"], 2);
    assert_eq!(r.2["duplicate"], false);
    let id = r.2["id"].as_str().unwrap().to_string();
    let st = s.wait(&format!("/v1/batches/{id}"), "done", |v| v["done"] == true);
    assert_eq!(st["counts"]["sent"], 2, "{st:#}");
    assert_eq!(st["per_minute"], 0);
    assert_eq!(st["label"], "api batch");
    let (subject, _, html) = delivered(&rcpts[0]);
    assert_eq!(subject, "Order 1");
    assert_eq!(html.as_deref(), Some("<p>a&lt;b</p>"));
    // the same idempotency key: the first batch, nothing new; Location
    // names where its progress is
    let again = s.call_with_headers(
        "POST",
        "/v1/batches",
        Some(TOKEN),
        Some("application/json"),
        serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(again.0, 202, "{:#}", again.2);
    assert_eq!(again.2["id"], id.as_str());
    assert_eq!(again.2["duplicate"], true);
    let location = again.1["location"].to_str().unwrap();
    assert_eq!(location, format!("/v1/batches/{id}"));
    assert_eq!(s.get(location)["done"], true);
    // ... and as an `Idempotency-Key` header
    let key = body["idempotency_key"].as_str().unwrap().to_string();
    let mut no_key = body.clone();
    no_key.as_object_mut().unwrap().remove("idempotency_key");
    let again = s.call_with_extra(
        "POST",
        "/v1/batches",
        Some(TOKEN),
        Some("application/json"),
        &[("Idempotency-Key", &key)],
        serde_json::to_vec(&no_key).unwrap(),
    );
    assert_eq!(again.0, 202, "{:#}", again.2);
    assert_eq!(again.2["id"], id.as_str());
    assert_eq!(again.2["duplicate"], true);
    // listed for its tenant; "not found" for another tenant's token
    let list = s.get("/v1/batches");
    assert_eq!(list["batches"][0]["id"], id.as_str(), "{list:#}");
    let other = s.call(
        "GET",
        &format!("/v1/batches/{id}"),
        Some(OTHER_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&other, 404, "not-found");
    assert_problem(
        &s.call(
            "GET",
            "/v1/batches/0000-unknown",
            Some(TOKEN),
            None,
            Vec::new(),
        ),
        404,
        "not-found",
    );

    // bad rows: 400 listing them, nothing queued
    let bad = json!({
        "tenant": "acme",
        "template": {"subject": "Hi {{ name }}", "text": "x"},
        "rows": [{"to": "a@example.com", "name": "A"}, {"to": "a@example.com"}, "nope", {"name": "no to"}],
    });
    let r = s.post(
        "/v1/batches",
        "application/json",
        serde_json::to_vec(&bad).unwrap(),
    );
    assert_problem(&r, 400, "invalid-batch");
    let rows: Vec<String> = r.2["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rows, vec!["row 3", "row 4"], "{:#}", r.2);
    let bad = json!({
        "tenant": "acme",
        "template": {"subject": "Hi {{ name }}", "text": "x"},
        "rows": [{"to": "a@example.com", "name": "A"}, {"to": "a@example.com"}],
    });
    let r = s.post(
        "/v1/batches",
        "application/json",
        serde_json::to_vec(&bad).unwrap(),
    );
    assert_problem(&r, 400, "invalid-batch");
    assert_eq!(r.2["rows"][0]["at"], "row 2");
    assert_eq!(r.2["rows"][0]["field"], "name");
    assert_eq!(s.get("/v1/batches")["batches"].as_array().unwrap().len(), 1);
    assert_problem(
        &s.post("/v1/batches", "application/json", b"{nope".to_vec()),
        400,
        "bad-json",
    );
    assert_problem(
        &s.post("/v1/batches", "text/plain", b"x".to_vec()),
        415,
        "media-type",
    );
    assert_problem(
        &s.call(
            "POST",
            "/v1/batches",
            None,
            Some("application/json"),
            b"{}".to_vec(),
        ),
        401,
        "unauthorized",
    );
    // a token bound to acme may not send for globex
    let globex = json!({"tenant": "globex", "template": {"subject": "x", "text": "x"}, "rows": [{"to": "a@example.com"}]});
    assert_problem(
        &s.post(
            "/v1/batches",
            "application/json",
            serde_json::to_vec(&globex).unwrap(),
        ),
        403,
        "token-not-bound",
    );

    // a huge row, a NUL, CR/LF in a recipient: named by row
    let hostile = json!({
        "tenant": "acme",
        "template": {"subject": "x", "text": "{{ v }}"},
        "rows": [
            {"to": "a@example.com", "v": "x".repeat(100_000)},
            {"to": "a@example.com", "v": "nul\u{0}"},
            {"to": "a@example.com\r\nBcc: evil@example.com", "v": "x"},
        ],
    });
    let r = s.post(
        "/v1/batches",
        "application/json",
        serde_json::to_vec(&hostile).unwrap(),
    );
    assert_problem(&r, 400, "invalid-batch");
    let detail = r.2["detail"].as_str().unwrap();
    assert!(
        detail.contains("row 1: the row is larger than 65536 bytes"),
        "{detail}"
    );
    assert!(
        detail.contains("row 2: field `v` contains a NUL"),
        "{detail}"
    );
    assert!(
        detail.contains("row 3: field `to` contains a line break"),
        "{detail}"
    );
    assert_eq!(s.get("/v1/batches")["batches"].as_array().unwrap().len(), 1);

    // JSON Lines: the batch on line 1, then the rows; cancel what is not sent yet
    let slow = format!("{}@example.com", unique("slow"));
    let ndjson = format!(
        "{}\n{}\n{}\n{}\n",
        json!({"tenant": "acme", "rate": 1, "template": {"subject": "Slow {{ n }}", "text": "x"}}),
        json!({"to": slow, "n": 1}),
        json!({"to": "slow2@example.com", "n": 2}),
        json!({"to": "slow3@example.com", "n": 3}),
    );
    let r = s.post("/v1/batches", "application/x-ndjson", ndjson.into_bytes());
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    // one a minute: the first goes, the others wait for their slot
    s.wait(&format!("/v1/batches/{id}"), "one sent", |v| {
        v["counts"]["sent"] == 1
    });
    let c = s.call(
        "POST",
        &format!("/v1/batches/{id}/cancel"),
        Some(TOKEN),
        None,
        Vec::new(),
    );
    assert_eq!(c.0, 200, "{:#}", c.2);
    assert_eq!(c.2["counts"]["cancelled"], 2, "{:#}", c.2);
    assert_eq!(c.2["done"], true);
    assert_eq!(delivered(&slow).0, "Slow 1");
    let bad_line = format!(
        "{}\n{}\nnot json\n",
        json!({"tenant": "acme", "template": {"subject": "x", "text": "x"}}),
        json!({"to": "a@example.com"}),
    );
    let r = s.post("/v1/batches", "application/x-ndjson", bad_line.into_bytes());
    assert_problem(&r, 400, "invalid-batch");
    assert_eq!(r.2["rows"][0]["at"], "line 3", "{:#}", r.2);
}

#[test]
fn a_single_message_overtakes_a_running_batch_and_batch_sends_keep_their_spacing() {
    let (dir, _) = setup("");
    let s = Service::start(dir.path(), &[]);
    let rows: Vec<Value> = (0..3)
        .map(|i| json!({"to": format!("{}@example.com", unique(&format!("paced{i}")))}))
        .collect();
    // 30 a minute: one every 2 s
    let body = json!({"tenant": "acme", "rate": 30, "template": {"subject": "Paced", "text": "x"}, "rows": rows});
    let r = s.post(
        "/v1/batches",
        "application/json",
        serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    s.wait(&format!("/v1/batches/{id}"), "one sent", |v| {
        v["counts"]["sent"] == 1
    });
    let single = json!({"tenant": "acme", "to": [format!("{}@example.com", unique("single"))], "subject": "PIN", "text": "1234"});
    let r = s.post(
        "/v1/messages",
        "application/json",
        serde_json::to_vec(&single).unwrap(),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let single_id = r.2["id"].as_str().unwrap().to_string();
    let m = s.wait(&format!("/v1/messages/{single_id}"), "sent", |v| {
        v["state"] == "sent"
    });
    let single_at = m["attempts"][0]["at"].as_i64().unwrap();
    let st = s.wait(&format!("/v1/batches/{id}"), "done", |v| v["done"] == true);
    assert_eq!(st["counts"]["sent"], 3, "{st:#}");
    // the recorded send times of the batch's messages
    let page = s.get("/v1/messages?limit=10");
    let mut batch_at: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["batch_id"] == id.as_str())
        .map(|m| {
            let id = m["id"].as_str().unwrap();
            s.get(&format!("/v1/messages/{id}"))["attempts"][0]["at"]
                .as_i64()
                .unwrap()
        })
        .collect();
    batch_at.sort();
    assert_eq!(batch_at.len(), 3);
    // the single message went out before the batch's last one
    assert!(
        single_at < batch_at[2],
        "single at {single_at}, batch at {batch_at:?}"
    );
    // no two batch sends closer than the batch's interval (less the catch-up credit)
    for w in batch_at.windows(2) {
        assert!(w[1] - w[0] >= 2000 - 500, "batch sends at {batch_at:?}");
    }
}

#[test]
fn the_api_stops_reading_rows_past_the_bound() {
    let (dir, _) = setup("\n[limits]\nmax_batch_rows = 3\n");
    let s = Service::start(dir.path(), &[]);
    let rows = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"to": format!("r{i}@example.com")}))
            .collect()
    };
    let body = |n: usize| {
        serde_json::to_vec(
            &json!({"tenant": "acme", "template": {"subject": "x", "text": "x"}, "rows": rows(n)}),
        )
        .unwrap()
    };
    // at the bound: accepted
    let r = s.post("/v1/batches", "application/json", body(3));
    assert_eq!(r.0, 202, "{:#}", r.2);
    // one past it, and 200,000 past it: refused while reading, nothing queued
    for n in [4, 200_000] {
        let r = s.post("/v1/batches", "application/json", body(n));
        assert_problem(&r, 400, "bad-json");
        assert!(
            r.2["detail"]
                .as_str()
                .unwrap()
                .contains("more than 3 rows ([limits] max_batch_rows)"),
            "{:#}",
            r.2
        );
    }
    assert_eq!(s.get("/v1/batches")["batches"].as_array().unwrap().len(), 1);
    // rows on line 1 of a JSON Lines batch: said so, however many
    let ndjson = format!(
        "{}\n{}\n",
        json!({"tenant": "acme", "template": {"subject": "x", "text": "x"}, "rows": rows(50)}),
        json!({"to": "a@example.com"}),
    );
    let r = s.post("/v1/batches", "application/x-ndjson", ndjson.into_bytes());
    assert_problem(&r, 400, "bad-json");
    assert!(
        r.2["detail"]
            .as_str()
            .unwrap()
            .contains("rows do not belong on line 1"),
        "{:#}",
        r.2
    );
    // A file upload past the bound, and a `batch` part that holds rows.
    let head = json!({"tenant": "acme", "template": {"subject": "x", "text": "x"}}).to_string();
    for n in [4, 200_000] {
        let csv: String = std::iter::once("to\n".to_string())
            .chain((0..n).map(|i| format!("r{i}@example.com\n")))
            .collect();
        let (ctype, upload) = multipart(&[
            ("batch", None, "application/json", head.as_bytes()),
            ("rows", Some("rows.csv"), "text/csv", csv.as_bytes()),
        ]);
        let r = s.post("/v1/batches", &ctype, upload);
        assert_problem(&r, 400, "invalid-batch");
        assert!(
            r.2["detail"].as_str().unwrap().contains("max_batch_rows"),
            "{:#}",
            r.2
        );
    }
    let with_rows = String::from_utf8(body(1)).unwrap();
    let (ctype, upload) = multipart(&[
        ("batch", None, "application/json", with_rows.as_bytes()),
        ("rows", Some("rows.csv"), "text/csv", b"to\na@example.com\n"),
    ]);
    let r = s.post("/v1/batches", &ctype, upload);
    assert_problem(&r, 400, "bad-field");
    assert!(
        r.2["detail"]
            .as_str()
            .unwrap()
            .contains("the rows go in part `rows`"),
        "{:#}",
        r.2
    );
    assert_eq!(s.get("/v1/batches")["batches"].as_array().unwrap().len(), 1);
}

/// A multipart/form-data body of `(name, file name, content type, bytes)` parts.
fn multipart(parts: &[(&str, Option<&str>, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "mailhost-test-boundary-7d4e";
    let mut body = Vec::new();
    for (name, file, ctype, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let file = file
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{file}\r\nContent-Type: {ctype}\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// `POST /v1/batches` as a file upload (what `curl -F` and HTML forms
/// send): the template part and a CSV file, here one saved by Excel in the
/// Windows code page and saying so in its charset; bad uploads are refused
/// with what to do and queue nothing.
#[test]
fn the_api_takes_a_batch_as_a_file_upload() {
    let (dir, _) = setup("");
    let s = Service::start(dir.path(), &[]);
    let a = format!("{}@example.com", unique("upload"));
    let head = json!({"tenant": "acme", "rate": 0, "template": {"subject": "Rechnung {{ nr }}", "text": "Hallo {{ name }}"}})
        .to_string();
    let mut csv = format!("to;name;nr\r\n{a};").into_bytes();
    csv.extend_from_slice(b"J\xfcrgen;4711\r\n");
    let (ctype, body) = multipart(&[
        ("batch", None, "application/json", head.as_bytes()),
        (
            "rows",
            Some("excel.csv"),
            "text/csv; charset=windows-1252",
            &csv,
        ),
    ]);
    let r = s.post("/v1/batches", &ctype, body);
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(r.2["total"], 1);
    let (subject, text, _) = delivered(&a);
    assert_eq!(subject, "Rechnung 4711");
    assert_eq!(text.as_deref(), Some("Hallo Jürgen"));

    // JSON Lines told by the file name alone.
    let b = format!("{}@example.com", unique("upload-jsonl"));
    let rows = format!("{{\"to\": \"{b}\", \"nr\": 1, \"name\": \"Zoë\"}}\n");
    let (ctype, body) = multipart(&[
        ("batch", None, "application/json", head.as_bytes()),
        (
            "rows",
            Some("rows.jsonl"),
            "application/octet-stream",
            rows.as_bytes(),
        ),
    ]);
    let r = s.post("/v1/batches", &ctype, body);
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(delivered(&b).1.as_deref(), Some("Hallo Zoë"));

    let before = s.get("/v1/batches?limit=100")["batches"]
        .as_array()
        .map(Vec::len);
    // The same Windows CSV without its charset: where, and what to do.
    let (ctype, body) = multipart(&[
        ("batch", None, "application/json", head.as_bytes()),
        ("rows", Some("excel.csv"), "text/csv", &csv),
    ]);
    let r = s.post("/v1/batches", &ctype, body);
    assert_problem(&r, 400, "bad-multipart");
    let detail = r.2["detail"].as_str().unwrap();
    assert!(
        detail.contains("line 2 is not UTF-8") && detail.contains("charset=windows-1252"),
        "{detail}"
    );
    // No rows part; an unknown part; a bad row; no boundary.
    let (ctype, body) = multipart(&[("batch", None, "application/json", head.as_bytes())]);
    assert_problem(&s.post("/v1/batches", &ctype, body), 400, "bad-field");
    let (ctype, body) = multipart(&[
        ("batch", None, "application/json", head.as_bytes()),
        (
            "rows",
            Some("r.csv"),
            "text/csv",
            b"to,name,nr\nx@example.com,X,1\n",
        ),
        ("attachment", None, "text/plain", b"x"),
    ]);
    let r = s.post("/v1/batches", &ctype, body);
    assert_problem(&r, 400, "bad-field");
    assert!(
        r.2["detail"]
            .as_str()
            .unwrap()
            .contains("part `attachment` is unknown"),
        "{:#}",
        r.2
    );
    // A part name with a control character does not even parse.
    let (ctype, body) = multipart(&[("extra\u{1b}[2J", None, "text/plain", b"x")]);
    assert_problem(&s.post("/v1/batches", &ctype, body), 400, "bad-multipart");
    let (ctype, body) = multipart(&[
        ("batch", None, "application/json", head.as_bytes()),
        (
            "rows",
            None,
            "text/csv",
            b"to,name,nr\nnot-an-address,X,1\n",
        ),
    ]);
    let r = s.post("/v1/batches", &ctype, body);
    assert_problem(&r, 400, "invalid-batch");
    assert_eq!(r.2["rows"][0]["at"], "line 2", "{:#}", r.2);
    let r = s.post("/v1/batches", "multipart/form-data", b"--x\r\n".to_vec());
    assert_problem(&r, 400, "bad-multipart");
    let after = s.get("/v1/batches?limit=100")["batches"]
        .as_array()
        .map(Vec::len);
    assert_eq!(before, after, "a refused upload queues nothing");
}
