//! Helpers for the IMAP plugin's integration tests (tests/tests/imap.rs):
//! opening the loaded cdylib, reading the Dovecot peer's Maildir back, and a
//! loopback proxy that cuts the connection in the middle of an APPEND.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use mailhost::loader::{load_file, LoadedPlugin};
use mailhost_plugin_api::{PluginError, TransportBox};
use serde_json::Value;

use crate::smtp::TestHost;
use crate::{peers_dir, plugin_path};

/// The imap plugin, loaded once from its cdylib.
pub fn plugin() -> &'static LoadedPlugin {
    static PLUGIN: OnceLock<LoadedPlugin> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        load_file(&plugin_path("imap"))
            .unwrap_or_else(|e| panic!("cannot load the imap plugin: {e:?}"))
    })
}

/// Opens an account through the loaded cdylib.
pub fn open(settings: &Value, host: &TestHost) -> Result<TransportBox, PluginError> {
    plugin().open(&settings.to_string(), host.handle())
}

/// The Dovecot peer's Maildir of `testuser`.
pub fn maildir() -> PathBuf {
    peers_dir()
        .join("dovecot")
        .join("mail")
        .join("testuser")
        .join("Maildir")
}

/// A message file in a Maildir folder: its folder (`.Drafts`), file name and bytes.
#[derive(Debug, Clone)]
pub struct Stored {
    pub folder: String,
    pub file: String,
    pub bytes: Vec<u8>,
}

impl Stored {
    /// The Maildir flags after `:2,` (`DS` = Draft, Seen).
    pub fn flags(&self) -> String {
        self.file
            .rsplit_once(":2,")
            .map(|(_, f)| f.to_string())
            .unwrap_or_default()
    }

    /// The UID Dovecot gave the file (from the folder's `dovecot-uidlist`).
    pub fn uid(&self) -> Option<u32> {
        let dir = if self.folder.is_empty() {
            maildir()
        } else {
            maildir().join(&self.folder)
        };
        let list = std::fs::read_to_string(dir.join("dovecot-uidlist")).ok()?;
        let base = self.file.split(':').next()?;
        list.lines().skip(1).find_map(|l| {
            let (uid, rest) = l.split_once(' ')?;
            rest.split_whitespace()
                .any(|t| t.trim_start_matches(':').split(':').next() == Some(base))
                .then(|| uid.parse().ok())
                .flatten()
        })
    }
}

/// Every stored message, in any folder, whose headers carry `needle` (a
/// unique Message-ID or subject).
pub fn stored_with(needle: &str) -> Vec<Stored> {
    let mut out = Vec::new();
    let root = maildir();
    let mut folders = vec![String::new()];
    if let Ok(rd) = std::fs::read_dir(&root) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && e.path().is_dir() {
                folders.push(name);
            }
        }
    }
    for folder in folders {
        for sub in ["cur", "new"] {
            let dir = if folder.is_empty() {
                root.join(sub)
            } else {
                root.join(&folder).join(sub)
            };
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let Ok(bytes) = std::fs::read(e.path()) else {
                    continue;
                };
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    out.push(Stored {
                        folder: folder.clone(),
                        file: e.file_name().to_string_lossy().into_owned(),
                        bytes,
                    });
                }
            }
        }
    }
    out
}

/// Dovecot keeps Maildir files with bare LF line ends: the message as it
/// would be stored.
pub fn as_stored(mime: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(mime.len());
    let mut i = 0;
    while i < mime.len() {
        if mime[i] == b'\r' && mime.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(mime[i]);
        i += 1;
    }
    out
}

/// A loopback proxy to `target` that forwards everything until the client has
/// sent `cut_after` bytes in total, then closes both sides (a server gone in
/// the middle of an APPEND). Stops accepting when dropped.
#[derive(Debug)]
pub struct CuttingProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl CuttingProxy {
    pub fn start(target: u16, cut_after: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        // server → client, as is
                        thread::spawn(move || {
                            let (mut from, mut to) = (s2, c2);
                            let mut buf = [0u8; 16384];
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 || to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(Shutdown::Both);
                        });
                        // client → server, cut after `cut_after` bytes
                        thread::spawn(move || {
                            let (mut from, mut to) = (client, server);
                            let mut sent = 0usize;
                            let mut buf = [0u8; 16384];
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                let room = cut_after.saturating_sub(sent).min(n);
                                if to.write_all(&buf[..room]).is_err() {
                                    break;
                                }
                                sent += room;
                                if room < n {
                                    break;
                                }
                            }
                            let _ = to.shutdown(Shutdown::Both);
                            let _ = from.shutdown(Shutdown::Both);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { port, stop }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A private Dovecot of the older kind (tests/peers/dovecot-plain.sh): no
/// SPECIAL-USE, folders below `INBOX.`, `INBOX.Entwürfe` and
/// `INBOX.Gesendete Elemente`. Stopped (and its files removed) when dropped.
#[derive(Debug)]
pub struct PlainDovecot {
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl PlainDovecot {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/dovecot-plain.sh");
        // A free port: bind to 0, note it, release it for Dovecot.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let status = std::process::Command::new(&script)
            .args(["start", &dir.path().to_string_lossy(), &port.to_string()])
            .env("PEERS_DIR", peers_dir())
            .status()
            .expect("run dovecot-plain.sh");
        assert!(status.success(), "dovecot-plain.sh start failed");
        Self { port, dir }
    }

    /// The Maildir folder (`.Entw&APw-rfe`) of testuser, its message files' bytes.
    pub fn messages(&self, folder: &str) -> Vec<Vec<u8>> {
        let base = self.dir.path().join("mail/testuser/Maildir").join(folder);
        let mut out = Vec::new();
        for sub in ["cur", "new"] {
            if let Ok(rd) = std::fs::read_dir(base.join(sub)) {
                for e in rd.flatten() {
                    if let Ok(b) = std::fs::read(e.path()) {
                        out.push(b);
                    }
                }
            }
        }
        out
    }
}

impl Drop for PlainDovecot {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/dovecot-plain.sh");
        let _ = std::process::Command::new(script)
            .args(["stop", &self.dir.path().to_string_lossy()])
            .status();
    }
}
