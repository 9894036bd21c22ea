//! Helpers for the SMTP plugin's integration tests (tests/tests/smtp.rs): a
//! test `HostServices`, opening the loaded cdylib, building messages, finding
//! what the smtp-server peer saved, and private smtp-sink instances.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use mailhost::loader::{load_file, LoadedPlugin};
use mailhost::message::{build, MessageRequest};
use mailhost::services::HostEnv;
use mailhost::tokens::{OAuthClientConfig, TokenBroker};
use mailhost_plugin_api::abi_stable::std_types::{RResult, RStr, RString};
use mailhost_plugin_api::{
    Host, HostServices, LogLevel, OutgoingMessage, PluginError, TokenRequest, TransportBox,
};
use serde_json::Value;

use crate::{peer_ca, peers_dir, plugin_path};

/// How the test host answers `token()`.
#[derive(Clone, Debug)]
pub enum Tokens {
    /// No OAuth configured.
    None,
    /// This token, always.
    Fixed(String),
    /// `first` until asked with `force_refresh`, then `fresh`.
    RefreshTo { first: String, fresh: String },
    /// The host's real broker against the Graph double (tenant test-tenant).
    Broker(Arc<TokenBroker>),
}

/// A `HostServices` for tests: secrets and logs as the host does them
/// (`HostEnv`), tokens as [`Tokens`] says, every token request recorded.
#[derive(Clone, Debug)]
pub struct TestHost {
    env: HostEnv,
    tokens: Tokens,
    /// `(scope, force_refresh)` of every token request.
    pub token_requests: Arc<Mutex<Vec<(String, bool)>>>,
    /// Every log line the plugin sent.
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl TestHost {
    pub fn new(tokens: Tokens) -> Self {
        Self {
            env: HostEnv::new(Arc::new(TokenBroker::new(Default::default()))),
            tokens,
            token_requests: Arc::default(),
            logs: Arc::default(),
        }
    }

    pub fn handle(&self) -> mailhost_plugin_api::HostHandle {
        Host::new(self.clone()).0
    }

    pub fn token_requests(&self) -> Vec<(String, bool)> {
        self.token_requests.lock().unwrap().clone()
    }
}

impl HostServices for TestHost {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        self.logs
            .lock()
            .unwrap()
            .push(format!("{level:?} {target}: {message}"));
    }

    fn secret(&self, reference: RStr<'_>) -> RResult<RString, PluginError> {
        self.env.secret(reference)
    }

    fn token(&self, request: &TokenRequest) -> RResult<RString, PluginError> {
        self.token_requests
            .lock()
            .unwrap()
            .push((request.scope.to_string(), request.force_refresh));
        let r = match &self.tokens {
            Tokens::None => Err(PluginError::config("no OAuth client in this test")),
            Tokens::Fixed(t) => Ok(t.clone()),
            Tokens::RefreshTo { first, fresh } => Ok(if request.force_refresh {
                fresh.clone()
            } else {
                first.clone()
            }),
            Tokens::Broker(b) => b.token(
                request.provider.as_str(),
                request.scope.as_str(),
                request.force_refresh,
            ),
        };
        r.map(RString::from).into()
    }

    fn extension(&self, name: RStr<'_>, input_json: RStr<'_>) -> RResult<RString, PluginError> {
        self.env.extension(name, input_json)
    }
}

/// The host's token broker with one client, `m365`, pointed at the Graph double.
pub fn graph_double_broker() -> Arc<TokenBroker> {
    let mut c = OAuthClientConfig::new("m365", "test-tenant", "test-client", "test-secret");
    c.authority = "https://127.0.0.1:8443".to_string();
    c.ca_file = Some(peer_ca());
    Arc::new(TokenBroker::new(
        [("m365".to_string(), c)].into_iter().collect(),
    ))
}

/// The smtp plugin, loaded once from its cdylib.
pub fn plugin() -> &'static LoadedPlugin {
    static PLUGIN: OnceLock<LoadedPlugin> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        load_file(&plugin_path("smtp"))
            .unwrap_or_else(|e| panic!("cannot load the smtp plugin: {e:?}"))
    })
}

/// Opens an account through the loaded cdylib.
pub fn open(settings: &Value, host: &TestHost) -> Result<TransportBox, PluginError> {
    plugin().open(&settings.to_string(), host.handle())
}

/// A unique token for local parts and subjects.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A message built by the host's builder (Bcc kept, as the host does).
pub fn message(
    from: &str,
    to: &[&str],
    bcc: &[&str],
    subject: &str,
    options: Value,
) -> OutgoingMessage {
    let req = MessageRequest {
        from: Some(from.to_string()),
        to: to.iter().map(|s| s.to_string()).collect(),
        bcc: bcc.iter().map(|s| s.to_string()).collect(),
        subject: subject.to_string(),
        text: Some(format!(
            "Hello from the smtp tests.\n.a line starting with a dot\n{subject}\n"
        )),
        options: options.as_object().cloned().unwrap_or_default(),
        ..Default::default()
    };
    build(&req, None).expect("build message")
}

/// The smtp-server peer's capture directory.
pub fn mail_dir() -> PathBuf {
    peers_dir().join("smtp-server").join("mail")
}

/// The `.eml` bytes and `.json` metadata the smtp-server peer saved for the
/// message whose envelope included `recipient`.
pub fn saved_for(recipient: &str) -> Option<(Vec<u8>, Value)> {
    let mut found = None;
    for entry in std::fs::read_dir(mail_dir()).ok()? {
        let path = entry.ok()?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if !text.contains(recipient) {
            continue;
        }
        let Ok(meta) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let hit = meta["rcptTo"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r.as_str() == Some(recipient)));
        if hit {
            let eml = std::fs::read(path.with_extension("eml")).ok()?;
            found = Some((eml, meta));
        }
    }
    found
}

/// A private smtp-sink on `port` with fault flags, stopped when dropped.
#[derive(Debug)]
pub struct Sink {
    pub port: u16,
}

impl Sink {
    pub fn start(port: u16, flags: &[&str]) -> Self {
        let script = peers_script("smtp-sink.sh");
        let _ = Command::new(&script)
            .args(["stop", &port.to_string()])
            .env("PEERS_DIR", peers_dir())
            .status();
        let status = Command::new(&script)
            .arg("start")
            .arg(port.to_string())
            .args(flags)
            .env("PEERS_DIR", peers_dir())
            .status()
            .expect("run smtp-sink.sh");
        assert!(
            status.success(),
            "smtp-sink.sh start {port} {flags:?} failed"
        );
        Self { port }
    }

    pub fn stop(&self) {
        let _ = Command::new(peers_script("smtp-sink.sh"))
            .args(["stop", &self.port.to_string()])
            .env("PEERS_DIR", peers_dir())
            .status();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A script of the shared test peers (`../shared/peers/NAME`).
pub fn peers_script(name: &str) -> PathBuf {
    let root = std::env::var_os("MAILHOST_PEERS_SRC")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("MAILHOST_SHARED").map(|s| PathBuf::from(s).join("peers")))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers"));
    root.join(name)
}

/// A private SMTP server that limits recipients per transaction
/// (`tests/peers/smtp-server-capped.js`, on the shared peers' smtp-server
/// package) on an ephemeral loopback port with its own capture directory;
/// stopped when dropped.
pub struct CappedServer {
    child: std::process::Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl CappedServer {
    /// Starts one that accepts `limit` recipients per transaction and answers
    /// `452 4.5.3 Too many recipients` beyond.
    pub fn start(limit: usize) -> Self {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/smtp-server-capped.js");
        let mut child = Command::new("node")
            .arg(&script)
            .env("PEERS_DIR", dir.path())
            .env("NODE_PATH", peers_dir().join("node").join("node_modules"))
            .env("RCPT_LIMIT", limit.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start node (install the peers with shared/peers/install.sh)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the capped smtp-server did not start: {line:?} (peers started, PEERS_DIR exported?)"));
        Self { child, port, dir }
    }

    /// The metadata of every message it took, in order: `mailFrom`, `rcptTo`,
    /// `connection`, `transaction`.
    pub fn messages(&self) -> Vec<Value> {
        let mail = self.dir.path().join("smtp-server").join("mail");
        let mut files: Vec<PathBuf> = std::fs::read_dir(mail)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().and_then(|e| e.to_str()) == Some("json"));
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for CappedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
