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

mod api;
mod openapi;
mod operations;
mod outbox;
mod postgres;

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
