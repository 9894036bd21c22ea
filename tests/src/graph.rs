//! Helpers for the Graph plugin's and the token broker's tests: the shared
//! Graph double (127.0.0.1:8443), private instances of the strict copy in
//! `tests/peers/graph-double-strict.js`, a broker, the loaded plugin.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use mailhost::loader::LoadedPlugin;
use mailhost::message::MessageRequest;
use mailhost::services::HostEnv;
use mailhost::tokens::{OAuthClientConfig, TokenBroker};
use mailhost_plugin_api::{OutgoingMessage, TransportBox};
use serde_json::Value;

use crate::{peer_ca, peers_dir, plugin_path};

/// The shared Graph double started by `shared/peers/graph-double.sh`.
pub const SHARED: &str = "https://127.0.0.1:8443";
pub const MAILBOX: &str = "testuser@example.com";
pub const SCOPE: &str = "https://graph.microsoft.com/.default";

/// A private instance of the strict Graph double on an ephemeral loopback
/// port, with its own state directory; stopped when dropped.
pub struct StrictDouble {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl StrictDouble {
    /// Starts one; `token_ttl` sets `expires_in` of its tokens (default 3599 s).
    pub fn start(token_ttl: Option<u64>) -> Self {
        let ttl = token_ttl.map(|t| t.to_string());
        let env: Vec<(&str, &str)> = ttl.iter().map(|t| ("TOKEN_TTL", t.as_str())).collect();
        Self::start_with(&env)
    }

    /// Starts one with extra environment (`TOKEN_TTL`, `REQUEST_LIMIT`).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        for f in ["cert.pem", "key.pem"] {
            std::fs::copy(peers_dir().join("tls").join(f), tls.join(f)).unwrap_or_else(|e| {
                panic!("copy the peers' {f} (are the peers started, PEERS_DIR exported?): {e}")
            });
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/graph-double-strict.js");
        let mut cmd = Command::new("node");
        cmd.arg(&script)
            .env("PEERS_DIR", dir.path())
            .env("GRAPH_PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .expect("start node (install it with shared/peers/install.sh)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the strict Graph double did not start: {line:?}"));
        Self { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Its state directory (`graph/sent`, `graph/drafts`, `graph/uploads`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn stats(&self) -> Value {
        get_json(&format!("{}/_stats", self.url()))
    }

    /// Forgets every token it issued (as after a key rotation): Graph answers 401.
    pub fn revoke_tokens(&self) {
        post_json(&format!("{}/_revoke", self.url()));
    }
}

impl Drop for StrictDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http(f: impl std::future::Future<Output = Value>) -> Value {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn client() -> reqwest::Client {
    let tls = mailhost::tokens::tls_config(Some(&peer_ca())).unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

/// GET → JSON (for `/_stats`).
pub fn get_json(url: &str) -> Value {
    http(async {
        client()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

fn post_json(url: &str) -> Value {
    http(async {
        client()
            .post(url)
            .body("")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

/// An OAuth client of the double at `authority` (tenant test-tenant).
pub fn oauth_client(authority: &str, client_id: &str, secret: &str) -> OAuthClientConfig {
    OAuthClientConfig {
        name: "m365".into(),
        tenant: "test-tenant".into(),
        client_id: client_id.into(),
        client_secret: secret.into(),
        authority: authority.into(),
        ca_file: Some(peer_ca()),
    }
}

/// A broker with one client `m365`.
pub fn broker_with(client: OAuthClientConfig) -> Arc<TokenBroker> {
    Arc::new(TokenBroker::new(BTreeMap::from([(
        client.name.clone(),
        client,
    )])))
}

/// A broker for `test-client` / `test-secret` at `authority`.
pub fn broker(authority: &str) -> Arc<TokenBroker> {
    broker_with(oauth_client(authority, "test-client", "test-secret"))
}

/// The graph plugin's cdylib, loaded once per test binary.
pub fn plugin() -> &'static LoadedPlugin {
    static PLUGIN: OnceLock<LoadedPlugin> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        mailhost::loader::load_file(&plugin_path("graph"))
            .unwrap_or_else(|e| panic!("load the graph plugin: {e}"))
    })
}

/// Account settings for the double at `base` (its `/v1.0`), mailbox testuser.
pub fn settings(base: &str) -> Value {
    serde_json::json!({
        "oauth": "m365",
        "mailbox": MAILBOX,
        "base_url": format!("{base}/v1.0"),
        "ca_file": peer_ca(),
    })
}

/// Opens a graph account through the loaded cdylib with a host over `broker`.
pub fn open(settings: &Value, broker: &Arc<TokenBroker>) -> TransportBox {
    let host = HostEnv::new(broker.clone()).with_origin("graph-test");
    plugin()
        .open(&settings.to_string(), host.handle())
        .unwrap_or_else(|e| panic!("open graph account: {e}"))
}

/// A unique token for this test run (recipients, subjects, Message-IDs).
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A message built by the host's builder (lettre, Bcc kept).
pub fn build(req: &MessageRequest) -> OutgoingMessage {
    mailhost::message::build(req, Some("ERP <testuser@example.com>")).unwrap()
}

/// A simple request: To `to`, subject and text, no attachments.
pub fn request(to: &str, subject: &str) -> MessageRequest {
    MessageRequest {
        to: vec![to.to_string()],
        subject: subject.to_string(),
        text: Some(format!("Hello from the graph tests: {subject}\r\n")),
        ..Default::default()
    }
}

/// Files under `dir` (not recursive) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect();
    out.sort();
    out
}

/// The one stored sent message (under `state/graph/sent`) that contains `needle`.
pub fn sent_one(state: &Path, needle: &str) -> PathBuf {
    let found = files_containing(&state.join("graph").join("sent"), needle);
    assert_eq!(
        found.len(),
        1,
        "expected one stored message with {needle:?}, found {found:?}"
    );
    found.into_iter().next().unwrap()
}

/// Deterministic pseudo-random bytes (incompressible enough, reproducible).
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
