//! `mailhost serve` as an operator runs it: the binary with a config, the
//! SMTP and Graph plugins, a SQLite outbox, and the real peers (smtp-server
//! 2526 with its fault recipients, smtp-sink, the Graph double). Waits poll
//! the API with a generous deadline; nothing asserts on elapsed time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mailhost::server::auth::hash_token;
use mailhost_tests::graph::{MAILBOX, SHARED};
use mailhost_tests::service::Options;
use mailhost_tests::smtp::{saved_for, Sink};
use mailhost_tests::{
    copy_as, free_port, mailhost_bin, peer_ca, plugin_file_name, plugin_path, Service,
};
use serde_json::{json, Value};

const ERP_TOKEN: &str = "erp-token-for-tests";
const OPS_TOKEN: &str = "ops-token-for-tests";
const SECRET_VAR: &str = "MAILHOST_SERVE_TEST_SECRET";

fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The config: `server` is smtp-server 2526, `sink` an smtp-sink (2525 unless
/// given), `m365` the Graph double. Tenant `acme` sends through `server` then
/// the global `sink`; tenant `globex` through `m365` then `sink`.
fn config(dir: &Path, sink_port: u16, outbox_extra: &str) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for p in ["smtp", "graph"] {
        copy_as(&plugin_path(p), &plugins, &plugin_file_name(p));
    }
    let ca = peer_ca();
    let text = format!(
        r#"
[limits]
max_message_bytes = 1048576

[policy]
account = "sink"
initial_backoff_ms = 200
max_backoff_ms = 1000

[oauth.m365]
tenant = "test-tenant"
client_id = "test-client"
client_secret = "env:{SECRET_VAR}"
authority = "{SHARED}"
ca_file = "{ca}"

[accounts.server]
plugin = "smtp"
from = "erp@example.com"
host = "127.0.0.1"
port = 2526
security = "none"
auth = "optional"
allow_plaintext_auth = true

[accounts.sink]
plugin = "smtp"
from = "erp@example.com"
host = "127.0.0.1"
port = {sink_port}
security = "none"
auth = "optional"
allow_plaintext_auth = true

[accounts.m365]
plugin = "graph"
from = "ERP <{MAILBOX}>"
oauth = "m365"
mailbox = "{MAILBOX}"
base_url = "{SHARED}/v1.0"
ca_file = "{ca}"

[tenants.acme]
account = "server"

[tenants.globex]
account = "m365"

[outbox]
database = "outbox.db"
lease_secs = 4
drain_secs = 10
{outbox_extra}

[api.tokens.erp]
hash = "{erp}"
scopes = ["send"]
tenants = ["acme", "globex"]

[api.tokens.ops]
hash = "{ops}"
scopes = ["admin"]
"#,
        ca = ca.display(),
        erp = hash_token(ERP_TOKEN),
        ops = hash_token(OPS_TOKEN),
    );
    let path = dir.join("mailhost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `mailhost serve` in `dir` with the Graph client secret in its environment.
fn start(dir: &Path, extra: &[&str]) -> Service {
    Service::start_with(
        dir,
        Options {
            args: extra,
            env: &[(SECRET_VAR, "test-secret")],
            ..Options::default()
        },
    )
}

/// The API calls these tests make.
trait Api {
    fn post_json(&self, token: Option<&str>, body: &Value) -> (u16, String, Value);
    fn get(&self, path: &str) -> Value;
    fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value;
    /// `GET /metrics` as text.
    fn metrics(&self) -> String;
}

impl Api for Service {
    fn post_json(&self, token: Option<&str>, body: &Value) -> (u16, String, Value) {
        self.call(
            "POST",
            "/v1/messages",
            token,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
    }

    fn get(&self, path: &str) -> Value {
        let (status, _, v) = self.call("GET", path, Some(OPS_TOKEN), None, Vec::new());
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    fn metrics(&self) -> String {
        rt().block_on(async {
            self.client()
                .get(format!("{}/metrics", self.base))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }

    /// Polls the message until `done` says so.
    fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.get(&format!("/v1/messages/{id}"));
            if done(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "message {id} never became {what}: {m:#}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn counts(s: &Service) -> HashMap<String, u64> {
    let v = s.get("/v1/status");
    serde_json::from_value(v["messages"].clone()).unwrap()
}

fn total(c: &HashMap<String, u64>) -> u64 {
    c.values().sum()
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
    assert_eq!(r.2["status"], status);
    assert!(
        r.2["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{:#}",
        r.2
    );
}

#[test]
fn bad_requests_get_problem_json_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--no-workers"]);
    let good =
        json!({"tenant": "acme", "to": ["bob@example.com"], "subject": "Hi", "text": "Hello"});

    // no token, a wrong token, a malformed header
    let r = s.post_json(None, &good);
    assert_problem(&r, 401, "unauthorized");
    assert_problem(&s.post_json(Some("wrong"), &good), 401, "unauthorized");
    let r = s.call("GET", "/v1/status", None, None, Vec::new());
    assert_problem(&r, 401, "unauthorized");
    // a tenant the token is not bound to
    let mut other = good.clone();
    other["tenant"] = json!("initech");
    assert_problem(
        &s.post_json(Some(ERP_TOKEN), &other),
        403,
        "token-not-bound",
    );
    // bad JSON, not an object, unknown field, wrong type
    let r = s.call(
        "POST",
        "/v1/messages",
        Some(ERP_TOKEN),
        Some("application/json"),
        b"{\"to\": [".to_vec(),
    );
    assert_problem(&r, 400, "bad-json");
    assert_problem(
        &s.post_json(Some(ERP_TOKEN), &json!([1, 2])),
        400,
        "bad-json",
    );
    let mut unknown = good.clone();
    unknown["sujbect"] = json!("typo");
    assert_problem(&s.post_json(Some(ERP_TOKEN), &unknown), 400, "bad-field");
    let mut wrong = good.clone();
    wrong["to"] = json!({"address": "bob@example.com"});
    assert_problem(&s.post_json(Some(ERP_TOKEN), &wrong), 400, "bad-field");
    // missing recipients
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "subject": "Hi", "text": "x"}),
    );
    assert_problem(&r, 400, "invalid-message");
    // header injection through the subject and an extra header
    let mut inj = good.clone();
    inj["subject"] = json!("Hi\r\nBcc: victim@example.com");
    assert_problem(&s.post_json(Some(ERP_TOKEN), &inj), 400, "invalid-message");
    let mut inj = good.clone();
    inj["headers"] = json!([["X-Ok", "a\r\nBcc: victim@example.com"]]);
    assert_problem(&s.post_json(Some(ERP_TOKEN), &inj), 400, "invalid-message");
    // a file on the server as attachment; host-only options
    let mut att = good.clone();
    att["attachments"] = json!([{"path": "/etc/passwd"}]);
    assert_problem(&s.post_json(Some(ERP_TOKEN), &att), 400, "attachment-path");
    let mut creds = good.clone();
    creds["options"] = json!({"credentials": {"username": "x", "password": "y"}});
    assert_problem(
        &s.post_json(Some(ERP_TOKEN), &creds),
        403,
        "host-only-option",
    );
    // the wrong media type; an oversized body
    let r = s.call(
        "POST",
        "/v1/messages",
        Some(ERP_TOKEN),
        Some("text/plain"),
        b"hello".to_vec(),
    );
    assert_problem(&r, 415, "media-type");
    let r = s.call(
        "POST",
        "/v1/messages?tennant=acme",
        Some(ERP_TOKEN),
        Some("message/rfc822"),
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n\r\nx\r\n".to_vec(),
    );
    assert_problem(&r, 400, "bad-query");
    let r = s.call(
        "GET",
        "/v1/messages?state=lost",
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 400, "bad-query");
    // a huge or hostile time: refused, the answer does not echo it all
    let r = s.call(
        "GET",
        &format!("/v1/messages?since={}%00%0D%0A&until=1", "9".repeat(5000)),
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 400, "bad-query");
    let detail = r.2["detail"].as_str().unwrap();
    assert!(detail.len() < 300 && !detail.contains('\r'), "{detail}");
    let mut big = good.clone();
    big["text"] = json!("x".repeat(3 * 1024 * 1024));
    assert_problem(&s.post_json(Some(ERP_TOKEN), &big), 413, "body-too-large");
    // The same with no length given (chunked): read on and answered, not reset.
    {
        use std::io::{Read, Write};
        let port: u16 = s.base.rsplit(':').next().unwrap().parse().unwrap();
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = format!("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ERP_TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        c.write_all(head.as_bytes()).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..128 {
            c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .unwrap();
            c.write_all(&chunk).unwrap();
            c.write_all(b"\r\n").unwrap();
        }
        c.write_all(b"0\r\n\r\n").unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("body-too-large"), "{answer}");
    }
    // unknown message, unknown endpoint
    let r = s.call(
        "GET",
        "/v1/messages/0000-nope",
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 404, "not-found");
    // a huge or hostile id: not found, and the answer shows a short, escaped
    // piece of it
    for path in [
        format!("/v1/messages/{}%1B%5B2J%0D%0A", "f".repeat(4000)),
        format!("/v1/batches/{}%00", "x".repeat(4000)),
    ] {
        let r = s.call("GET", &path, Some(OPS_TOKEN), None, Vec::new());
        assert_problem(&r, 404, "not-found");
        let detail = r.2["detail"].as_str().unwrap();
        assert!(
            detail.len() < 120 && !detail.chars().any(char::is_control),
            "{detail}"
        );
    }
    assert_problem(
        &s.call("GET", "/v2/nothing", Some(OPS_TOKEN), None, Vec::new()),
        404,
        "not-found",
    );

    // a wrong field is named by its path
    for (bad, path) in [
        (json!({"to": 5}), "to: "),
        (
            json!({"attachments": [{"filename": "a.txt", "data": "!!not base64"}]}),
            "attachments[0].data: ",
        ),
    ] {
        let mut body = good.clone();
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = s.post_json(Some(ERP_TOKEN), &body);
        assert_problem(&r, 400, "bad-field");
        let detail = r.2["detail"].as_str().unwrap();
        assert!(detail.starts_with(path), "{detail}");
    }
    // names and keys: bounded text, never echoed raw
    let long = "k".repeat(300);
    for (field, value) in [
        ("user", "bob\u{1b}[2J"),
        ("tenant", "acme\r\nX-Injected: 1"),
        ("purpose", "p\u{0}"),
        ("mode", "smtp\u{7}"),
        ("idempotency_key", long.as_str()),
    ] {
        let mut bad = good.clone();
        bad[field] = json!(value);
        let r = s.post_json(Some(OPS_TOKEN), &bad);
        assert_problem(&r, 400, "invalid-message");
        let detail = r.2["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(field) && detail.len() < 200,
            "{field}: {detail}"
        );
        assert!(!detail.chars().any(char::is_control), "{detail}");
    }
    // what a bound token may not name, a state, an action: shown escaped
    let mut other = good.clone();
    other["tenant"] = json!(format!("{}\u{1b}[2J", "t".repeat(3000)));
    let r = s.post_json(Some(ERP_TOKEN), &other);
    assert_problem(&r, 403, "token-not-bound");
    let mut odd = good.clone();
    odd["action"] = json!("send\u{1b}[2J");
    for r in [
        r,
        s.post_json(Some(ERP_TOKEN), &odd),
        s.call(
            "GET",
            "/v1/messages?state=sent%1B%5B2J",
            Some(OPS_TOKEN),
            None,
            Vec::new(),
        ),
    ] {
        let detail = r.2["detail"].as_str().unwrap();
        assert!(
            detail.len() < 300 && !detail.chars().any(char::is_control),
            "{detail}"
        );
    }
    let r = s.call(
        "GET",
        "/v1/policy/explain?tenant=acme%1B%5B2J&to=a%40example.com%0D%0A",
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 400, "bad-query");
    let r = s.call(
        "POST",
        &format!("/v1/accounts/{}%1B/check", "x".repeat(3000)),
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 404, "not-found");
    let detail = r.2["detail"].as_str().unwrap();
    assert!(
        detail.len() < 200 && !detail.chars().any(char::is_control),
        "{detail}"
    );
    // a huge, a repeated, an empty or a half-quoted Idempotency-Key header
    let huge = "k".repeat(8000);
    let quoted_nul = "\"a\\x\"".to_string();
    for (values, code) in [
        // as a body key of that length is
        (vec![huge.as_str()], "invalid-message"),
        (vec!["a", "b"], "bad-field"),
        (vec!["\"\""], "bad-field"),
        (vec!["\"open"], "bad-field"),
        (vec![quoted_nul.as_str()], "bad-field"),
    ] {
        let extra: Vec<(&str, &str)> = values.iter().map(|v| ("Idempotency-Key", *v)).collect();
        let (status, headers, v) = s.call_with_extra(
            "POST",
            "/v1/messages",
            Some(ERP_TOKEN),
            Some("application/json"),
            &extra,
            serde_json::to_vec(&good).unwrap(),
        );
        let ctype = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_problem(&(status, ctype, v.clone()), 400, code);
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains("dempotency"), "{detail}");
        assert!(detail.len() < 600, "the key is not echoed whole: {detail}");
    }

    assert_eq!(total(&counts(&s)), 0, "a refused request queued something");

    // the same good request is accepted (so the refusals above were for their reasons)
    let r = s.post_json(Some(ERP_TOKEN), &good);
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(counts(&s)["queued"], 1);
    // one recipient may be a plain string
    let mut one = good.clone();
    one["to"] = json!("bob@example.com");
    let r = s.post_json(Some(ERP_TOKEN), &one);
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(counts(&s)["queued"], 2);
    // and the secret token never shows up in the log
    assert!(!s.log().contains(ERP_TOKEN));
}

#[test]
fn delivery_faults_and_idempotency_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "max_age_secs = 2");
    let s = start(dir.path(), &[]);

    // plain delivery into smtp-server, found by its recipient
    let ok_rcpt = format!("{}@example.com", unique("serve-ok"));
    let key = unique("order");
    let body = json!({"tenant": "acme", "to": [ok_rcpt], "subject": "Invoice", "text": "Hello", "idempotency_key": key});
    let r = s.post_json(Some(ERP_TOKEN), &body);
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(r.2["state"], "queued");
    assert_eq!(r.2["duplicate"], false);
    let id = r.2["id"].as_str().unwrap().to_string();
    let message_id = r.2["message_id"].as_str().unwrap().to_string();
    // the same key again: the first id, nothing new; Location names the
    // first message
    let again = s.call_with_headers(
        "POST",
        "/v1/messages",
        Some(ERP_TOKEN),
        Some("application/json"),
        serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(again.0, 202, "{:#}", again.2);
    assert_eq!(again.2["id"], id.as_str());
    assert_eq!(again.2["duplicate"], true);
    let location = again.1["location"].to_str().unwrap();
    assert_eq!(location, format!("/v1/messages/{id}"));
    assert_eq!(s.get(location)["id"], id.as_str());
    // The key as an `Idempotency-Key` header (bare or quoted) is the same
    // key; a header and a body key that differ are refused, nothing queued.
    let mut no_key = body.clone();
    no_key.as_object_mut().unwrap().remove("idempotency_key");
    for value in [key.clone(), format!("\"{key}\"")] {
        let r = s.call_with_extra(
            "POST",
            "/v1/messages",
            Some(ERP_TOKEN),
            Some("application/json"),
            &[("Idempotency-Key", &value)],
            serde_json::to_vec(&no_key).unwrap(),
        );
        assert_eq!(r.0, 202, "{:#}", r.2);
        assert_eq!(r.2["id"], id.as_str());
        assert_eq!(r.2["duplicate"], true);
    }
    let r = s.call_with_extra(
        "POST",
        "/v1/messages",
        Some(ERP_TOKEN),
        Some("application/json"),
        &[("Idempotency-Key", "another-key")],
        serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(r.0, 400, "{:#}", r.2);
    assert_eq!(r.2["type"], "urn:mailhost:problem:bad-field");
    assert!(
        r.2["detail"].as_str().unwrap().contains("differ"),
        "{:#}",
        r.2
    );
    let m = s.wait_for(&id, "sent", |m| m["state"] == "sent");
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(m["attempts"][0]["class"], "ok");
    assert_eq!(m["attempts"][0]["candidate"], "server");
    let (eml, meta) = saved_for(&ok_rcpt).expect("smtp-server saved the message");
    assert!(String::from_utf8_lossy(&eml).contains(&message_id));
    assert_eq!(meta["rcptTo"].as_array().unwrap().len(), 1, "sent once");
    // sent is final: cancel is refused with the state
    let r = s.call(
        "POST",
        &format!("/v1/messages/{id}/cancel"),
        Some(ERP_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 409, "state");

    // a complete message as message/rfc822: sent as it is, envelope from its headers
    let raw_rcpt = format!("{}@example.com", unique("serve-raw"));
    let raw = format!(
        "From: ERP <erp@example.com>\r\nTo: {raw_rcpt}\r\nSubject: raw mime\r\nMessage-ID: <{}@example.com>\r\n\r\nbody as given\r\n",
        unique("raw")
    );
    let r = s.call(
        "POST",
        "/v1/messages?tenant=acme",
        Some(ERP_TOKEN),
        Some("message/rfc822"),
        raw.into_bytes(),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let idr = r.2["id"].as_str().unwrap().to_string();
    s.wait_for(&idr, "sent", |m| m["state"] == "sent");
    let (eml, _) = saved_for(&raw_rcpt).expect("smtp-server saved the raw message");
    let eml = String::from_utf8_lossy(&eml);
    assert!(
        eml.contains("Subject: raw mime") && eml.contains("body as given"),
        "{eml}"
    );

    // 550 at RCPT → failed at once with the server's reply
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": ["rcpt-5xx@example.com"], "subject": "x", "text": "x"}),
    );
    let id550 = r.2["id"].as_str().unwrap().to_string();
    let m = s.wait_for(&id550, "failed", |m| m["state"] == "failed");
    let att = m["attempts"].as_array().unwrap();
    assert_eq!(att.len(), 1, "{m:#}");
    assert_eq!(att[0]["class"], "permanent");
    assert_eq!(att[0]["code"], "550");
    assert!(m["last_error"].as_str().unwrap().contains("550"), "{m:#}");
    // a failed message can be retried (it fails again, and is recorded again)
    let r = s.call(
        "POST",
        &format!("/v1/messages/{id550}/retry"),
        Some(ERP_TOKEN),
        None,
        Vec::new(),
    );
    assert_eq!(r.0, 200, "{:#}", r.2);
    s.wait_for(&id550, "failed twice", |m| {
        m["state"] == "failed" && m["attempts"].as_array().unwrap().len() == 2
    });

    // 450 at RCPT → deferred with backoff, tried again; after max_age (2 s) the
    // next way out (the global account, smtp-sink) takes it
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": ["rcpt-4xx@example.com"], "subject": "x", "text": "x"}),
    );
    let id450 = r.2["id"].as_str().unwrap().to_string();
    let m = s.wait_for(&id450, "sent", |m| m["state"] == "sent");
    let att = m["attempts"].as_array().unwrap();
    assert!(att.len() >= 3, "at least two 450s, then the sink: {m:#}");
    for a in &att[..att.len() - 1] {
        assert_eq!(a["candidate"], "server", "{m:#}");
        assert_eq!(a["class"], "transient", "{m:#}");
        assert_eq!(a["code"], "450", "{m:#}");
    }
    let last = &att[att.len() - 1];
    assert_eq!(last["candidate"], "sink", "{m:#}");
    // the ways out decided at acceptance, and the one the message went on to
    assert_eq!(m["ways_out"], json!(["server", "sink"]), "{m:#}");
    assert_eq!(m["chain_pos"], 1, "{m:#}");
    assert_eq!(last["class"], "ok", "{m:#}");
    // tries of one way out are spaced by the backoff, not made in one go
    let at: Vec<i64> = att[..att.len() - 1]
        .iter()
        .map(|a| a["at"].as_i64().unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] >= 100), "{at:?}");

    // Graph 429 with Retry-After: 1 → deferred for at least a second, then sent through the same way out
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "globex", "to": [format!("throttle@example.com")], "subject": unique("throttle"), "text": "x"}),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let idt = r.2["id"].as_str().unwrap().to_string();
    let m = s.wait_for(&idt, "sent", |m| m["state"] == "sent");
    let att = m["attempts"].as_array().unwrap();
    assert_eq!(att.len(), 2, "{m:#}");
    assert_eq!(att[0]["candidate"], "m365");
    assert_eq!(att[0]["class"], "transient");
    assert_eq!(att[0]["code"], "429");
    assert_eq!(att[1]["candidate"], "m365");
    assert_eq!(att[1]["class"], "ok");
    let gap = att[1]["at"].as_i64().unwrap() - att[0]["at"].as_i64().unwrap();
    assert!(gap >= 1000, "Retry-After: 1 was not honoured: {gap} ms");

    // list by state, paged, and what the service saw of the accounts
    let sent = s.get("/v1/messages?state=sent&limit=2");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 2);
    let next = sent["next"].as_str().unwrap();
    let page2 = s.get(&format!("/v1/messages?state=sent&limit=2&before={next}"));
    assert!(!page2["messages"].as_array().unwrap().is_empty());
    // by account (the way out a message waits for or went through) and by time
    let ids = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let via_sink = ids(&s.get("/v1/messages?account=sink&limit=500"));
    assert!(via_sink.contains(&id450), "{via_sink:?}");
    assert!(!via_sink.contains(&id550), "{via_sink:?}");
    let via_server = ids(&s.get("/v1/messages?account=server&limit=500"));
    assert!(via_server.contains(&id550) && !via_server.contains(&id450));
    let created = s.get(&format!("/v1/messages/{id450}"))["created_at"]
        .as_i64()
        .unwrap();
    let later = ids(&s.get(&format!("/v1/messages?since={}&limit=500", created + 1)));
    assert!(!later.contains(&id450) && later.contains(&idt), "{later:?}");
    let before = ids(&s.get(&format!("/v1/messages?until={created}&limit=500")));
    assert!(
        !before.contains(&id450) && before.contains(&id550),
        "{before:?}"
    );
    let rfc =
        ids(&s.get("/v1/messages?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00%2B01:00"));
    assert!(rfc.is_empty(), "{rfc:?}");
    let r = s.call(
        "GET",
        "/v1/messages?since=yesterday",
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 400, "bad-query");
    assert!(
        r.2["detail"].as_str().unwrap().contains("RFC 3339"),
        "{:#}",
        r.2
    );
    // the stored bytes, as they went out
    let (status, ctype, raw) = rt().block_on(async {
        let r = s
            .client()
            .get(format!("{}/v1/messages/{id450}/raw", s.base))
            .bearer_auth(ERP_TOKEN)
            .send()
            .await
            .unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        (r.status().as_u16(), ct, r.text().await.unwrap())
    });
    assert_eq!((status, ctype.as_str()), (200, "message/rfc822"), "{raw}");
    assert!(
        raw.contains("Subject: x\r\n") && raw.contains("rcpt-4xx@example.com"),
        "{raw}"
    );
    let r = s.call(
        "GET",
        &format!("/v1/messages/{id450}/raw"),
        None,
        None,
        Vec::new(),
    );
    assert_eq!(r.0, 401, "{:#}", r.2);
    let st = s.get("/v1/status");
    let server = st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "server")
        .unwrap();
    assert_eq!(server["state"], "Operating", "{st:#}");

    // Prometheus text: the outbox by state, tries per account and class, latency per account
    let (status, ctype, _) = s.call("GET", "/metrics", None, None, Vec::new());
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = s.metrics();
    for line in [
        "mailhost_tries_total{account=\"server\",class=\"ok\"} 2",
        "mailhost_tries_total{account=\"server\",class=\"permanent\"} 2",
        "mailhost_tries_total{account=\"sink\",class=\"ok\"} 1",
        "mailhost_tries_total{account=\"m365\",class=\"transient\"} 1",
        "mailhost_outbox_messages{state=\"failed\"} 1",
        "mailhost_try_duration_seconds_count{account=\"m365\"} 2",
        // messages settled per account (the way out of their last try) and outcome
        "mailhost_account_messages_total{account=\"server\",outcome=\"sent\"} 2",
        "mailhost_account_messages_total{account=\"server\",outcome=\"failed\"} 2",
        "mailhost_account_messages_total{account=\"sink\",outcome=\"sent\"} 1",
        "mailhost_account_messages_total{account=\"m365\",outcome=\"deferred\"} 1",
        "mailhost_account_messages_total{account=\"m365\",outcome=\"sent\"} 1",
        "# TYPE mailhost_outbox_waiting_messages gauge",
        "mailhost_outbox_oldest_message_age_seconds{state=\"queued\"} ",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }

    // `mailhost status` shows what the service saw
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("service (outbox"), "{out}");
    assert!(out.contains("sent 4"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("server") && l.contains("Operating (seen")),
        "{out}"
    );
}

/// Message-IDs in the files smtp-sink captured (`-d DIR/`).
fn captured(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Ok(text) = std::fs::read(&p) else {
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            for line in text.lines() {
                if line.len() > 11 && line[..11].eq_ignore_ascii_case("message-id:") {
                    ids.push(line[11..].trim().trim_matches(['<', '>']).to_string());
                    break;
                }
            }
        }
    }
    ids
}

/// A lane's claimed messages that go out the same way are tried in one
/// plugin call (SMTP's `send_many`): the six queued here are claimed by the
/// one lane at once and all tried at the same moment, yet each gets its own
/// outcome from the server's own reply.
#[test]
fn a_group_goes_out_in_one_call_and_each_message_keeps_its_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "concurrency = 1\nper_account = 8");
    let ok: Vec<String> = (0..3)
        .map(|i| format!("{}@example.com", unique(&format!("group-ok{i}"))))
        .collect();
    let mut all: Vec<(String, &str)> = ok.iter().map(|r| (r.clone(), "sent")).collect();
    all.push(("rcpt-5xx@example.com".into(), "failed"));
    all.push(("data-5xx@example.com".into(), "failed"));
    all.push(("rcpt-4xx@example.com".into(), "deferred"));
    // queued with the workers off, so that one claim takes them all
    let ids: Vec<String> = {
        let s = start(dir.path(), &["--no-workers"]);
        all.iter()
            .map(|(rcpt, _)| {
                let r = s.post_json(
                    Some(ERP_TOKEN),
                    &json!({"tenant": "acme", "to": [rcpt], "subject": "group", "text": "x"}),
                );
                assert_eq!(r.0, 202, "{:#}", r.2);
                r.2["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let s = Service::start_with(
        dir.path(),
        Options {
            env: &[(SECRET_VAR, "test-secret"), ("RUST_LOG", "mailhost=debug")],
            quiet: true,
            ..Options::default()
        },
    );
    let mut tried_at = Vec::new();
    for (id, (rcpt, state)) in ids.iter().zip(&all) {
        let m = s.wait_for(id, state, |m| {
            m["state"] == *state && !m["attempts"].as_array().unwrap().is_empty()
        });
        let att = m["attempts"].as_array().unwrap();
        assert_eq!(att.len(), 1, "{rcpt}: {m:#}");
        assert_eq!(att[0]["candidate"], "server", "{m:#}");
        match rcpt.split('@').next().unwrap() {
            "rcpt-5xx" => assert_eq!(att[0]["code"], "550", "{m:#}"),
            "data-5xx" => assert_eq!(att[0]["code"], "554", "{m:#}"),
            "rcpt-4xx" => {
                assert_eq!(att[0]["class"], "transient", "{m:#}");
                assert_eq!(att[0]["code"], "450", "{m:#}");
            }
            _ => {
                assert_eq!(att[0]["class"], "ok", "{m:#}");
                let (_, meta) = saved_for(rcpt).expect("smtp-server saved the message");
                assert_eq!(meta["rcptTo"].as_array().unwrap().len(), 1, "sent once");
            }
        }
        tried_at.push(att[0]["at"].as_i64().unwrap());
    }
    // one call: every try of the group started at the same moment
    tried_at.dedup();
    assert_eq!(tried_at.len(), 1, "{tried_at:?}");
    let log = s.log();
    assert!(
        log.contains("outbox: 6 messages out through `server` in one plugin call"),
        "{log}"
    );
}

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

/// The binary with the test config (for the CLI side of the outbox).
fn cli(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(mailhost_bin())
        .current_dir(dir)
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .env(SECRET_VAR, "test-secret")
        .args(["--config", "mailhost.toml", "--plugins", "plugins"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in the config");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
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

/// `mailhost check` refreshes the state `mailhost status` shows for the
/// account (when there is an outbox; none is created for it).
#[test]
fn check_refreshes_the_state_the_status_shows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    let (code, out, err) = cli(dir.path(), &["check", "server"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !dir.path().join("outbox.db").exists(),
        "check created an outbox"
    );
    let args = [
        "send",
        "--queue",
        "--to",
        "bob@example.com",
        "--subject",
        "s",
        "--text",
        "x",
    ];
    assert_eq!(cli(dir.path(), &args).0, 0);
    edit(
        &cfg,
        "[tenants.acme]\n",
        "[accounts.dead]\nplugin = \"smtp\"\nfrom = \"erp@example.com\"\nhost = \"127.0.0.1\"\nport = 1\nsecurity = \"none\"\n\n[tenants.acme]\n",
    );
    let (code, out, err) = cli(dir.path(), &["check", "server"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(dir.path(), &["check", "dead"]);
    assert_eq!(code, 69, "{out}{err}");
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name) && l.contains("(seen"))
            .unwrap_or_else(|| panic!("no state for {name}: {out}"))
            .to_string()
    };
    assert!(line("server").contains("Operating (seen"), "{out}");
    let dead = line("dead");
    assert!(dead.contains("Unable to connect: "), "{dead}");
    assert!(!dead.contains('\r'), "{dead}");
    // an account removed from the config is no longer listed
    edit(
        &cfg,
        "[accounts.dead]\nplugin = \"smtp\"\nfrom = \"erp@example.com\"\nhost = \"127.0.0.1\"\nport = 1\nsecurity = \"none\"\n\n",
        "",
    );
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("Unable to connect"), "{out}");
    // with sending switched off, every account shows Stopped
    edit(&cfg, "[policy]\n", "[policy]\nenabled = false\n");
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("server")
            && l.contains("Stopped: sending is switched off ([policy] enabled = false)")),
        "{out}"
    );
}

/// `POST /v1/messages/cancel` and `/retry`: every match of the list's
/// filters, within what the token may touch.
#[test]
fn the_api_cancels_and_retries_every_match() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--no-workers"]);
    for tenant in ["acme", "acme", "globex"] {
        let r = s.post_json(
            Some(ERP_TOKEN),
            &json!({"tenant": tenant, "to": ["bulk@example.com"], "subject": "bulk", "text": "x"}),
        );
        assert_eq!(r.0, 202, "{:#}", r.2);
    }
    let post = |path: &str, token: Option<&str>| s.call("POST", path, token, None, Vec::new());
    // a token bound to two tenants names one of them; no token
    assert_problem(
        &post("/v1/messages/cancel", Some(ERP_TOKEN)),
        400,
        "missing-field",
    );
    assert_eq!(post("/v1/messages/cancel?tenant=acme", None).0, 401);
    assert_problem(
        &post("/v1/messages/cancel?tenant=initech", Some(ERP_TOKEN)),
        403,
        "token-not-bound",
    );
    assert_problem(
        &post("/v1/messages/cancel?tenant=acme&limit=1", Some(ERP_TOKEN)),
        400,
        "bad-query",
    );
    assert_problem(
        &post("/v1/messages/retry?tenant=acme&state=sent", Some(ERP_TOKEN)),
        400,
        "bad-query",
    );
    let r = post("/v1/messages/cancel?tenant=acme", Some(ERP_TOKEN));
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2, json!({"changed": 2, "state": "cancelled"}));
    // failed ones by default: none; the cancelled ones when asked
    let r = post("/v1/messages/retry?tenant=acme", Some(ERP_TOKEN));
    assert_eq!(r.2["changed"], 0, "{:#}", r.2);
    let r = post(
        "/v1/messages/retry?tenant=acme&state=cancelled&since=2000-01-01T00:00:00Z",
        Some(ERP_TOKEN),
    );
    assert_eq!(r.2, json!({"changed": 2, "state": "queued"}));
    let c = counts(&s);
    assert_eq!((c["queued"], c["cancelled"]), (3, 0), "{c:?}");
    // a consistent copy while the service runs; never over a file
    let copy = dir.path().join("backup.db");
    let copy_arg = copy.to_str().unwrap();
    let (code, out, err) = cli(dir.path(), &["outbox", "backup", copy_arg]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = cli(dir.path(), &["outbox", "backup", copy_arg]);
    assert_eq!(code, 69);
    assert!(err.contains("exists; give a new file"), "{err}");
    let copied = rt().block_on(async {
        let store = mailhost::outbox::sqlite::SqliteStore::open(&copy)
            .await
            .unwrap();
        mailhost::outbox::Store::counts(&store).await.unwrap()
    });
    assert_eq!(copied.get("queued"), Some(&3), "{copied:?}");
    // how long the oldest open message has waited
    let st = s.get("/v1/status");
    assert!(st["oldest"]["queued"].as_i64().unwrap() > 0, "{st:#}");
    assert!(st["oldest"].get("deferred").is_none(), "{st:#}");
}

/// SIGHUP reloads the config file; one that does not validate is logged
/// with its line and changes nothing.
#[test]
fn sighup_reloads_the_config_and_a_bad_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    let s = start(dir.path(), &[]);
    let wait_log = |what: &str, times: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while s.log().matches(what).count() < times {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what:?} in:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let post = || {
        s.post_json(
            Some(ERP_TOKEN),
            &json!({"tenant": "acme", "to": ["bob@example.com"], "subject": unique("hup"), "text": "x"}),
        )
    };
    assert_eq!(post().0, 202);
    // the kill switch, set by hand: after SIGHUP new mail is refused
    edit(&cfg, "[policy]\n", "[policy]\nenabled = false\n");
    s.signal("-HUP");
    wait_log("reloaded (SIGHUP)", 1);
    assert_problem(&post(), 422, "refused-by-policy");
    // every account shows Stopped while the kill switch holds the mail
    let st = s.get("/v1/status");
    for a in st["accounts"].as_array().unwrap() {
        assert_eq!(a["state"], "Stopped", "{st:#}");
        assert!(
            a["reason"]
                .as_str()
                .unwrap()
                .contains("[policy] enabled = false"),
            "{st:#}"
        );
    }
    // a file that does not validate: its error with file:line, the old config stays
    edit(
        &cfg,
        "[policy]\nenabled = false\n",
        "[policy]\nenabled = false\nbogus = 1\n",
    );
    s.signal("-HUP");
    wait_log("does not validate; the running config stays", 1);
    assert!(s.log().contains("mailhost.toml:"), "{}", s.log());
    assert_problem(&post(), 422, "refused-by-policy");
    // fixed and switched on again: new mail goes out
    edit(&cfg, "enabled = false\nbogus = 1\n", "");
    s.signal("-HUP");
    wait_log("reloaded (SIGHUP)", 2);
    let r = post();
    assert_eq!(r.0, 202, "{:#}", r.2);
    s.wait_for(r.2["id"].as_str().unwrap(), "sent", |m| {
        m["state"] == "sent"
    });
}

/// `mailhost api-token NAME --add | --replace` writes the config file; the
/// running service takes added, rotated and revoked tokens on SIGHUP.
#[test]
fn api_tokens_added_rotated_and_revoked_apply_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--no-workers"]);
    let token_cmd = |args: &[&str]| {
        let out = Command::new(mailhost_bin())
            .current_dir(dir.path())
            .env_remove("MAILHOST_PLUGIN_PATH")
            .env(SECRET_VAR, "test-secret")
            .args([
                "--config",
                "mailhost.toml",
                "--plugins",
                "plugins",
                "api-token",
            ])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr,
        )
    };
    let reloads = std::cell::Cell::new(0);
    let hup = || {
        reloads.set(reloads.get() + 1);
        s.signal("-HUP");
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.log().matches("reloaded (SIGHUP)").count() < reloads.get() {
            assert!(Instant::now() < deadline, "no reload in:\n{}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let status_with = |token: &str| s.call("GET", "/v1/status", Some(token), None, Vec::new()).0;

    // added: known after the reload, not before
    let (code, ci, err) = token_cmd(&["ci", "--add", "--scope", "admin"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(ci.starts_with("mh_") && !ci.contains('\n'), "{ci}");
    assert!(err.contains("added [api.tokens.ci]"), "{err}");
    assert!(!err.contains(&ci), "the token is on stdout only: {err}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("[api.tokens.ci]") && text.contains("[tenants.acme]"),
        "{text}"
    );
    assert!(
        !text.contains(&ci),
        "the config holds the hash, never the token"
    );
    assert_eq!(status_with(&ci), 401);
    hup();
    assert_eq!(status_with(&ci), 200);
    assert!(s.log().contains("API tokens added ci"), "{}", s.log());

    // the same name again: refused, the file unchanged
    let before = std::fs::read_to_string(&cfg).unwrap();
    let (code, _, err) = token_cmd(&["ci", "--add"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--replace"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);

    // rotated: the new token works after the reload, the old one and its
    // admin session do not; the scope stays
    let (code, ci2, err) = token_cmd(&["ci", "--replace"]);
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(ci2, ci);
    hup();
    assert_eq!(status_with(&ci), 401);
    assert_eq!(status_with(&ci2), 200, "the admin scope stayed");
    assert!(s.log().contains("API tokens changed ci"), "{}", s.log());

    // revoked by hand: gone after the reload
    let text = std::fs::read_to_string(&cfg).unwrap();
    let at = text.find("[api.tokens.ci]").unwrap();
    std::fs::write(&cfg, &text[..at]).unwrap();
    hup();
    assert_eq!(status_with(&ci2), 401);
    assert_eq!(status_with(OPS_TOKEN), 200, "the other tokens stay");
    assert!(s.log().contains("API tokens revoked ci"), "{}", s.log());

    // a binding the config does not have: refused at its line, nothing written
    let before = std::fs::read_to_string(&cfg).unwrap();
    let (code, _, err) = token_cmd(&["bad", "--add", "--tenant", "nowhere"]);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("mailhost.toml:") && err.contains("`nowhere`"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
}

#[test]
fn desktop_compose_modes_are_unavailable_in_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    edit(&cfg, "[policy]\n", "[policy]\ncompose_mode = \"builtin\"\n");
    let s = start(dir.path(), &["--no-workers"]);
    let r = s.post_json(
        Some(OPS_TOKEN),
        &json!({"action": "compose", "from": "erp@example.com", "to": ["bob@example.com"], "subject": "x", "text": "x"}),
    );
    assert_problem(&r, 422, "desktop-compose");
    assert!(r.2["detail"].as_str().unwrap().contains("builtin"));
    let r = s.call(
        "POST",
        "/v1/compose",
        Some(OPS_TOKEN),
        Some("application/json"),
        serde_json::to_vec(&json!({"from": "erp@example.com", "to": ["bob@example.com"], "subject": "x", "text": "x"})).unwrap(),
    );
    assert_problem(&r, 422, "desktop-compose");
    assert_eq!(total(&counts(&s)), 0);
}

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
fn config_validate_names_bad_api_tokens_and_unknown_outbox_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    edit(&cfg, "scopes = [\"send\"]", "scopes = [\"sudo\"]");
    let (code, _, err) = cli(dir.path(), &["config", "validate"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("mailhost.toml:"), "{err}");
    assert!(
        err.contains("[api.tokens.erp] scope `sudo` is unknown"),
        "{err}"
    );
    assert!(err.contains("send, admin"), "{err}");
    assert!(!err.contains(ERP_TOKEN));
    config(dir.path(), 2525, "lease = 3");
    let (code, _, err) = cli(dir.path(), &["config", "validate"]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("unknown field `lease`"), "{err}");
    assert!(err.contains("lease_secs"), "{err}");
}

fn account_state(s: &Service, account: &str) -> (String, String) {
    let v = s.get("/v1/status");
    let a = v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == account)
        .unwrap_or_else(|| panic!("no account {account} in {v:#}"))
        .clone();
    (
        a["state"].as_str().unwrap().to_string(),
        a["reason"].as_str().unwrap().to_string(),
    )
}

#[test]
fn account_checks_run_on_demand_and_record_the_connection_state() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the sink's port: its check fails.
    config(dir.path(), free_port(), "");
    let s = start(dir.path(), &["--no-workers"]);
    let check = |name: &str, token: &str, body: &[u8]| {
        s.call(
            "POST",
            &format!("/v1/accounts/{name}/check"),
            Some(token),
            Some("application/json"),
            body.to_vec(),
        )
    };

    let r = check("server", OPS_TOKEN, br#"{"to": "bob@example.com"}"#);
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2["account"], "server");
    assert_eq!(r.2["ok"], true, "{:#}", r.2);
    let steps = r.2["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{:#}", r.2);
    for st in steps {
        for k in ["name", "outcome", "detail", "server_text", "duration_ms"] {
            assert!(st.get(k).is_some(), "step without {k}: {st:#}");
        }
    }
    assert_eq!(account_state(&s, "server").0, "Operating");

    let r = check("sink", OPS_TOKEN, b"");
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2["ok"], false, "{:#}", r.2);
    assert!(r.2["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|st| st["outcome"] == "failed"));
    let (state, reason) = account_state(&s, "sink");
    assert_eq!(state, "Unable to connect");
    assert!(!reason.is_empty());

    assert_problem(&check("nope", OPS_TOKEN, b""), 404, "not-found");
    assert_problem(&check("server", ERP_TOKEN, b""), 403, "scope");
    assert_problem(&check("server", OPS_TOKEN, b"{\"cc\": 1}"), 400, "bad-json");
    assert_problem(
        &s.call("POST", "/v1/accounts/server/check", None, None, Vec::new()),
        401,
        "unauthorized",
    );
}

#[test]
fn policy_explain_answers_for_the_tenants_a_token_may_act_for() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--no-workers"]);
    let explain = |q: &str, token: &str| {
        s.call(
            "GET",
            &format!("/v1/policy/explain?{q}"),
            Some(token),
            None,
            Vec::new(),
        )
    };
    let r = explain("tenant=globex&to=bob@example.com", OPS_TOKEN);
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2["action"], "send");
    assert!(!r.2["trace"].as_array().unwrap().is_empty(), "{:#}", r.2);
    assert!(r.2["refused"].is_null(), "{:#}", r.2);
    assert_eq!(r.2["chain"][0]["label"], "m365", "{:#}", r.2);
    let text = r.2["text"].as_str().unwrap();
    assert!(text.contains("saw:") && text.contains("chose:"), "{text}");

    let r = explain("tenant=acme&action=compose", ERP_TOKEN);
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2["action"], "compose");

    assert_problem(
        &explain("tenant=initech", ERP_TOKEN),
        403,
        "token-not-bound",
    );
    // Bound to two tenants: it must say which.
    assert_problem(&explain("", ERP_TOKEN), 400, "missing-field");
    assert_problem(
        &explain("tenant=acme&action=fly", OPS_TOKEN),
        400,
        "bad-query",
    );
    assert_problem(
        &explain("tenant=acme&colour=red", OPS_TOKEN),
        400,
        "bad-query",
    );
}

#[test]
fn compose_runs_now_and_returns_what_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    // Drafts in the Graph mailbox: no desktop needed.
    edit(
        &cfg,
        "[policy]\n",
        "[policy]\ncompose_mode = \"m365-draft\"\n",
    );
    let s = start(dir.path(), &["--no-workers"]);
    let compose = |token: &str, body: &Value| {
        s.call(
            "POST",
            "/v1/compose",
            Some(token),
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
    };
    let subject = unique("compose");
    let r = compose(
        ERP_TOKEN,
        &json!({"tenant": "globex", "from": MAILBOX, "to": ["bob@example.com"], "subject": subject, "text": "draft"}),
    );
    assert_eq!(r.0, 200, "{:#}\nlog:\n{}", r.2, s.log());
    for k in ["kind", "draft_id", "web_link", "message"] {
        assert!(r.2.get(k).is_some(), "no {k}: {:#}", r.2);
    }
    assert_eq!(r.2["candidate"]["label"], "m365", "{:#}", r.2);
    // Not queued.
    assert_eq!(total(&counts(&s)), 0);

    assert_problem(
        &compose(
            ERP_TOKEN,
            &json!({"tenant": "initech", "to": ["bob@example.com"], "subject": "x", "text": "x"}),
        ),
        403,
        "token-not-bound",
    );
    assert_problem(
        &compose(
            ERP_TOKEN,
            &json!({"tenant": "globex", "action": "send", "to": ["bob@example.com"], "subject": "x", "text": "x"}),
        ),
        400,
        "bad-field",
    );
    assert_problem(
        &s.call("POST", "/v1/compose", Some(ERP_TOKEN), None, b"x".to_vec()),
        415,
        "media-type",
    );
}

#[test]
fn the_openapi_document_lists_routes_the_service_answers() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), free_port(), "");
    let s = start(dir.path(), &["--no-workers"]);
    let (status, ctype, doc) = s.call("GET", "/v1/openapi.json", None, None, Vec::new());
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/compose",
        "/v1/accounts/{name}/check",
        "/v1/policy/explain",
        "/v1/openapi.json",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    // A 202 says where to follow what it accepted.
    for p in ["/v1/messages", "/v1/batches"] {
        let accepted = &paths[p]["post"]["responses"]["202"];
        assert!(
            accepted["headers"]["Location"].is_object(),
            "{p}: 202 without Location: {accepted:#}"
        );
    }
    // Every documented operation reaches a handler (never the fallback).
    for (p, ops) in paths {
        let path = p.replace("{id}", "0").replace("{name}", "sink");
        for m in ops.as_object().unwrap().keys() {
            let r = s.call(&m.to_uppercase(), &path, Some(OPS_TOKEN), None, Vec::new());
            let fallback = r.0 == 404
                && r.2["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no such endpoint"));
            assert!(!fallback, "{m} {p} is documented but not routed");
        }
    }
}

/// The document with `unevaluatedProperties: false` on every object schema
/// that is not a part of another's `allOf`: an answer with a member the
/// document does not describe fails.
fn strict(mut doc: Value) -> Value {
    fn all_of_parts(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for part in o
                    .get("allOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(r) = part.get("$ref").and_then(Value::as_str) {
                        out.push(r.rsplit('/').next().unwrap().to_string());
                    }
                }
                o.values().for_each(|x| all_of_parts(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| all_of_parts(x, out)),
            _ => {}
        }
    }
    let mut parts = Vec::new();
    all_of_parts(&doc, &mut parts);
    for (name, s) in doc["components"]["schemas"].as_object_mut().unwrap() {
        if !parts.contains(name) && (s.get("properties").is_some() || s.get("allOf").is_some()) {
            s["unevaluatedProperties"] = Value::Bool(false);
        }
    }
    doc
}

/// Checks an answer of `method path` against the document: its status is
/// documented for the operation, and a JSON body fits the schema given for
/// that status and content type.
fn fits(doc: &Value, method: &str, path: &str, r: &(u16, String, Value)) {
    let at = format!("{method} {path} → {}", r.0);
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{at}: not in the document");
    let mut resp = &op["responses"][r.0.to_string()];
    assert!(resp.is_object(), "{at}: status not documented: {:#}", r.2);
    if let Some(x) = resp.get("$ref").and_then(Value::as_str) {
        resp = doc.pointer(&x[1..]).unwrap();
    }
    let ctype = r.1.split(';').next().unwrap().trim();
    let content = &resp["content"][ctype];
    assert!(
        content.is_object(),
        "{at}: content type {ctype} not documented"
    );
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [content["schema"]],
        "components": doc["components"],
    });
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&r.2).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{at}: the answer does not fit the document: {errors:#?}\n{:#}",
        r.2
    );
}

#[test]
fn every_answer_fits_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), free_port(), "");
    edit(
        &cfg,
        "[policy]\n",
        "[policy]\ncompose_mode = \"m365-draft\"\n",
    );
    let s = start(dir.path(), &["--no-workers"]);
    let (status, _, doc) = s.call("GET", "/v1/openapi.json", None, None, Vec::new());
    assert_eq!(status, 200);
    let doc = strict(doc);
    let json_body = |v: &Value| serde_json::to_vec(v).unwrap();
    let call = |method: &str,
                template: &str,
                path: &str,
                token: Option<&str>,
                ctype: Option<&str>,
                body: Vec<u8>| {
        let r = s.call(method, path, token, ctype, body);
        fits(&doc, method, template, &r);
        r
    };
    let ops = Some(OPS_TOKEN);
    let erp = Some(ERP_TOKEN);
    let json = Some("application/json");

    let key = unique("fits");
    let msg = json!({"tenant": "acme", "to": ["bob@example.com"], "subject": "Hi", "text": "Hello", "idempotency_key": key, "options": {"dsn": {"notify": ["failure"]}}});
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        erp,
        json,
        json_body(&msg),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        erp,
        json,
        json_body(&msg),
    );
    assert_eq!(r.2["duplicate"], true);
    let one = "/v1/messages/{id}";
    let got = call("GET", one, &format!("/v1/messages/{id}"), erp, None, vec![]);
    assert_eq!(got.0, 200);
    // The request's options come back as the object they were.
    assert_eq!(
        got.2["options"],
        json!({"dsn": {"notify": ["failure"]}}),
        "{:#}",
        got.2
    );
    assert_eq!(
        call(
            "GET",
            "/v1/messages",
            "/v1/messages?limit=1",
            ops,
            None,
            vec![]
        )
        .0,
        200
    );
    // raw MIME with its envelope recipients in the query, comma-separated
    let raw = "From: erp@example.com\r\nTo: header@example.com\r\nSubject: raw\r\n\r\nbody\r\n";
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages?tenant=acme&to=ann@example.com,%20bob@example.com",
        erp,
        Some("message/rfc822"),
        raw.as_bytes().to_vec(),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let raw_id = r.2["id"].as_str().unwrap();
    let m = call(
        "GET",
        one,
        &format!("/v1/messages/{raw_id}"),
        erp,
        None,
        vec![],
    );
    assert_eq!(
        m.2["envelope_to"],
        json!(["ann@example.com", "bob@example.com"])
    );
    let cancel = format!("/v1/messages/{id}/cancel");
    let retry = format!("/v1/messages/{id}/retry");
    assert_eq!(
        call(
            "POST",
            "/v1/messages/{id}/cancel",
            &cancel,
            erp,
            None,
            vec![]
        )
        .0,
        200
    );
    assert_eq!(
        call(
            "POST",
            "/v1/messages/{id}/cancel",
            &cancel,
            erp,
            None,
            vec![]
        )
        .0,
        409
    );
    assert_eq!(
        call("POST", "/v1/messages/{id}/retry", &retry, erp, None, vec![]).0,
        200
    );
    assert_eq!(
        call("GET", "/v1/status", "/v1/status", erp, None, vec![]).0,
        200
    );
    let explain = "/v1/policy/explain?tenant=acme&to=bob@example.com";
    assert_eq!(
        call("GET", "/v1/policy/explain", explain, ops, None, vec![]).0,
        200
    );
    // Nothing listens on the sink's port: the check answers with its failed steps.
    let r = call(
        "POST",
        "/v1/accounts/{name}/check",
        "/v1/accounts/sink/check",
        ops,
        json,
        vec![],
    );
    assert!(r.0 == 200 || r.0 == 502, "{:#}", r.2);
    let draft = json!({"tenant": "globex", "from": MAILBOX, "to": ["bob@example.com"], "subject": unique("fits"), "text": "draft"});
    let r = call(
        "POST",
        "/v1/compose",
        "/v1/compose",
        erp,
        json,
        json_body(&draft),
    );
    assert_eq!(r.0, 200, "{:#}", r.2);

    let batch = json!({"tenant": "acme", "template": {"subject": "Hi {{ name }}", "text": "Hello {{ name }}"},
        "rows": [{"to": "ann@example.com", "name": "Ann"}, {"to": ["bob@example.com"], "name": "Bob"}]});
    let r = call(
        "POST",
        "/v1/batches",
        "/v1/batches",
        erp,
        json,
        json_body(&batch),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let bid = r.2["id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            "GET",
            "/v1/batches/{id}",
            &format!("/v1/batches/{bid}"),
            erp,
            None,
            vec![]
        )
        .0,
        200
    );
    assert_eq!(
        call(
            "GET",
            "/v1/batches",
            "/v1/batches?tenant=acme",
            erp,
            None,
            vec![]
        )
        .0,
        200
    );
    let r = call(
        "POST",
        "/v1/batches/{id}/cancel",
        &format!("/v1/batches/{bid}/cancel"),
        erp,
        None,
        vec![],
    );
    assert_eq!(r.0, 200);
    let bad = json!({"tenant": "acme", "template": {"subject": "Hi {{ name }}"}, "rows": [{"to": "not an address", "name": "x"}]});
    let r = call(
        "POST",
        "/v1/batches",
        "/v1/batches",
        erp,
        json,
        json_body(&bad),
    );
    assert_problem(&r, 400, "invalid-batch");

    // Problems.
    assert_problem(
        &call("GET", "/v1/status", "/v1/status", None, None, vec![]),
        401,
        "unauthorized",
    );
    assert_problem(
        &call("GET", one, "/v1/messages/00000000", erp, None, vec![]),
        404,
        "not-found",
    );
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        erp,
        json,
        b"{".to_vec(),
    );
    assert_problem(&r, 400, "bad-json");
    let r = call(
        "POST",
        "/v1/messages",
        "/v1/messages",
        erp,
        Some("text/plain"),
        b"x".to_vec(),
    );
    assert_problem(&r, 415, "media-type");
    let r = call(
        "POST",
        "/v1/accounts/{name}/check",
        "/v1/accounts/sink/check",
        erp,
        json,
        vec![],
    );
    assert_problem(&r, 403, "scope");
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

/// The names of the facts (`schema-…`, `settings-…`) in a check cache.
fn facts(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache.join("checked"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The loader's debug line for each settings schema it compiles.
const COMPILING: &str = "compiling a settings JSON Schema";

#[test]
fn a_first_start_checks_the_schemas_in_a_child_and_the_service_compiles_none() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let cache = dir.path().join("cache");
    let env = [
        (SECRET_VAR, "test-secret"),
        ("MAILHOST_CACHE_DIR", cache.to_str().unwrap()),
        ("RUST_LOG", "mailhost=debug"),
    ];
    let opts = Options {
        env: &env,
        quiet: true,
        ..Options::default()
    };
    let s = Service::start_with(dir.path(), opts.clone());
    let log = s.log();
    // the service started one child and waited for it
    let child: u32 = log
        .lines()
        .find_map(|l| {
            let rest = l
                .split("checking the config in a child process (pid ")
                .nth(1)?;
            rest.split(')').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no child process in the log:\n{log}"));
    assert_ne!(child, s.pid());
    assert!(
        log.contains(&format!(
            "the config check in child process {child} ended: exit status: 0"
        )),
        "{log}"
    );
    // every schema compiled was compiled in the child, none in the service
    let compiled: Vec<&str> = log.lines().filter(|l| l.contains(COMPILING)).collect();
    assert!(compiled.len() >= 2, "one per plugin at least:\n{log}");
    for l in &compiled {
        assert!(
            l.contains(&format!("config_check{{pid={child}}}")),
            "compiled outside the child: {l}\n{log}"
        );
    }
    // and the child left what it found valid: both plugins' schemas, the
    // three accounts' settings
    let found = facts(&cache);
    assert_eq!(
        found.iter().filter(|f| f.starts_with("schema-")).count(),
        2,
        "{found:?}"
    );
    assert_eq!(
        found.iter().filter(|f| f.starts_with("settings-")).count(),
        3,
        "{found:?}"
    );
    drop(s);

    // the next start knows everything: no child, nothing compiled
    let before = log.len();
    let s = Service::start_with(dir.path(), opts);
    let log = s.log();
    let second = &log[before..];
    assert!(second.contains("mailhost::"), "no debug log:\n{second}");
    assert!(!second.contains(COMPILING), "{second}");
    assert!(!second.contains("child process"), "{second}");
    assert_eq!(facts(&cache), found);
}

#[test]
fn an_invalid_account_setting_gives_serve_the_same_error_with_or_without_the_check_child() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    edit(&cfg, "port = 2526\n", "port = \"twenty-five\"\n");
    let line = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("port = \"twenty-five\""))
        .unwrap()
        + 1;
    let serve = |cache: &str| {
        let out = Command::new(mailhost_bin())
            .current_dir(dir.path())
            .env_remove("MAILHOST_PLUGIN_PATH")
            .env_remove("RUST_LOG")
            .env(SECRET_VAR, "test-secret")
            .env("MAILHOST_CACHE_DIR", cache)
            .args(["--config", "mailhost.toml", "--plugins", "plugins", "serve"])
            .args(["--bind", &format!("127.0.0.1:{}", free_port())])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let cache = dir.path().join("cache");
    let with_child = serve(cache.to_str().unwrap());
    let in_process = serve("off");
    assert_eq!(with_child.0, Some(78), "{}", with_child.2);
    let at = format!("mailhost.toml:{line}:");
    assert_eq!(
        with_child.2.matches(&at).count(),
        1,
        "the error once, at {at}:\n{}",
        with_child.2
    );
    assert!(
        with_child.2.contains("account `server` `port`"),
        "{}",
        with_child.2
    );
    // the same answer, word for word, as checking in the one process
    assert_eq!(with_child, in_process);
    // the child did run: it remembered the two plugins' schemas
    let found = facts(&cache);
    assert_eq!(
        found.iter().filter(|f| f.starts_with("schema-")).count(),
        2,
        "{found:?}"
    );
}

/// `[api] tls_cert`/`tls_key`: the API (and the admin page) answer over
/// HTTPS only; a config with half of it names the line and does not start.
#[test]
fn https_when_the_config_gives_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), 2525, "");
    let ca = peer_ca();
    let key = ca.with_file_name("key.pem");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "{text}\n[api]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            ca.display(),
            key.display()
        ),
    )
    .unwrap();
    let s = Service::start_with(
        dir.path(),
        Options {
            env: &[(SECRET_VAR, "test-secret")],
            tls_ca: Some(&ca),
            ..Options::default()
        },
    );
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let port: u16 = s.base.rsplit(':').next().unwrap().parse().unwrap();
    // Clients that connect and say nothing, or say garbage, hold up no one.
    let silent: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    {
        use std::io::Write;
        let mut junk = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = junk.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0]);
    }
    let rcpt = format!("{}@example.com", unique("https"));
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": [rcpt], "subject": "over TLS", "text": "x"}),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    s.wait_for(&id, "sent", |m| m["state"] == "sent");
    assert!(saved_for(&rcpt).is_some());
    drop(silent);
    let metrics = s.metrics();
    let end: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mailhost_api_certificate_expiry_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no certificate expiry: {metrics}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(end > now, "{end} is not in the future");
    // Plain HTTP on that port gets no answer.
    assert!(!mailhost_tests::service::readyz(port));
    assert!(s
        .log()
        .contains(&format!("listening on https://127.0.0.1:{port}")));
    drop(s);

    // Only the certificate: the config's line, and no start.
    std::fs::write(
        &path,
        format!("{text}\n[api]\ntls_cert = \"{}\"\n", ca.display()),
    )
    .unwrap();
    let (code, _, err) = cli(dir.path(), &["config", "validate"]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("mailhost.toml:") && err.contains("only one of tls_cert and tls_key"),
        "{err}"
    );
    // A key that is not the certificate's.
    let other = dir.path().join("other.key");
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&other)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::write(
        &path,
        format!(
            "{text}\n[api]\ntls_cert = \"{}\"\ntls_key = \"other.key\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let bind = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = cli(dir.path(), &["serve", "--bind", &bind]);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("does not belong to the certificate"), "{err}");
    assert!(!err.contains("PRIVATE KEY-----\n"), "{err}");
}

/// `--log-format json`: every log line is one JSON object (for log
/// shippers), the service's own events and the settled messages alike.
#[test]
fn log_lines_as_json_for_log_shippers() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--log-format", "json"]);
    let rcpt = format!("{}@example.com", unique("jsonlog"));
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": [rcpt], "subject": "json log", "text": "x"}),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let id = r.2["id"].as_str().unwrap().to_string();
    s.wait_for(&id, "sent", |m| m["state"] == "sent");
    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "INFO"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("serve: listening on http://127.0.0.1:"))),
        "{log}"
    );
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].is_string() && l["target"].is_string()));
    assert!(!log.contains(ERP_TOKEN));
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
