use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mailhost_plugin_api::mime::strip_bcc;
use mailhost_plugin_api::wire;
use mailhost_plugin_api::{
    CheckReport, OutgoingMessage, PluginError, Receipt, StepOutcome, TransportImpl,
};
use time::OffsetDateTime;

use crate::PickupConfig;

/// An opened pickup account.
#[derive(Debug)]
pub struct PickupTransport {
    config: PickupConfig,
    seq: AtomicU64,
}

impl PickupTransport {
    pub fn new(config: PickupConfig) -> Result<Self, PluginError> {
        if config.create_dir {
            fs::create_dir_all(&config.dir).map_err(|e| {
                PluginError::config(format!(
                    "cannot create pickup directory {}: {e}; create it or fix `dir`",
                    config.dir.display()
                ))
            })?;
        }
        Ok(Self {
            config,
            seq: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// `20261123T091500123Z-<id>-<n>.eml`: sorts by time, unique per process.
    fn file_name(&self, message: &OutgoingMessage) -> String {
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}{:03}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond()
        );
        let id: String = message
            .message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        let id = if id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            id
        };
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{stamp}-{id}-{n}.eml")
    }

    fn contents(&self, message: &OutgoingMessage) -> Vec<u8> {
        let body = if self.config.keep_bcc {
            std::borrow::Cow::Borrowed(message.mime.as_slice())
        } else {
            strip_bcc(&message.mime)
        };
        let mut out = Vec::with_capacity(body.len() + 256);
        if self.config.envelope_headers {
            if let Some(from) = message.envelope.from.as_ref().into_option() {
                out.extend_from_slice(format!("X-Sender: {from}\r\n").as_bytes());
            }
            for rcpt in message.envelope.to.iter() {
                out.extend_from_slice(format!("X-Receiver: {rcpt}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(&body);
        out
    }

    fn io_error(&self, what: &str, path: &Path, e: std::io::Error) -> PluginError {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "the directory does not exist; create it or set create_dir = true"
            }
            std::io::ErrorKind::PermissionDenied => {
                "the host may not write there; fix the directory's permissions"
            }
            _ => "check the disk and the directory",
        };
        let msg = format!("pickup: cannot {what} {}: {e}; {hint}", path.display());
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                PluginError::config(msg)
            }
            _ => PluginError::transient(msg),
        }
    }

    /// Writes `bytes` to `dir/name` atomically: hidden temp file, sync, rename.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, PluginError> {
        let dir = &self.config.dir;
        let tmp = dir.join(format!(".{name}.tmp"));
        let dest = dir.join(name);
        let result = (|| {
            let mut f: File = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &dest)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(self.io_error("write", &tmp, e));
        }
        Ok(dest)
    }
}

impl TransportImpl for PickupTransport {
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        if message.envelope.to.is_empty() {
            return Err(PluginError::permanent(
                "pickup: the message has no recipient",
            ));
        }
        // The envelope becomes X-Sender/X-Receiver header lines (with
        // `envelope_headers`): a line break would add headers of its own.
        if let Some(from) = message.envelope.from.as_ref().into_option() {
            wire::request("pickup", "envelope sender", from)?;
        }
        for rcpt in message.envelope.to.iter() {
            wire::request("pickup", "recipient", rcpt)?;
        }
        let name = self.file_name(message);
        let path = self.write_atomic(&name, &self.contents(message))?;
        tracing::info!(file = %path.display(), "message written");
        Ok(Receipt {
            message_id: message.message_id.clone(),
            server_id: name.as_str().into(),
            server_reply: format!("written to {}", path.display()).into(),
            accepted: message.envelope.to.clone(),
            rejected: Default::default(),
            details_json: serde_json::json!({ "path": path }).to_string().into(),
        })
    }

    fn check(&self, _options_json: &str) -> Result<CheckReport, PluginError> {
        let mut report = CheckReport::new();
        let dir = &self.config.dir;
        let started = Instant::now();
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => report.push(
                "directory",
                StepOutcome::OK,
                &format!("{} exists", dir.display()),
                "",
                elapsed(started),
            ),
            Ok(_) => {
                report.push(
                    "directory",
                    StepOutcome::FAILED,
                    &format!(
                        "{} is not a directory; point `dir` at a directory",
                        dir.display()
                    ),
                    "",
                    elapsed(started),
                );
                return Ok(report);
            }
            Err(e) => {
                report.push(
                    "directory",
                    StepOutcome::FAILED,
                    &format!("{}: {e}; create it or set create_dir = true", dir.display()),
                    "",
                    elapsed(started),
                );
                return Ok(report);
            }
        }
        let started = Instant::now();
        let probe = format!("check-{}", uuid::Uuid::new_v4());
        match self.write_atomic(&probe, b"mailhost pickup write check\r\n") {
            Ok(path) => {
                let _ = fs::remove_file(&path);
                report.push(
                    "write",
                    StepOutcome::OK,
                    "a test file was written, renamed and removed",
                    "",
                    elapsed(started),
                );
            }
            Err(e) => report.push(
                "write",
                StepOutcome::FAILED,
                e.message(),
                "",
                elapsed(started),
            ),
        }
        Ok(report)
    }
}

fn elapsed(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}
