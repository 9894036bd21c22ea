//! Size limits on every input: one place, documented in the README's
//! `[limits]` section, shared by the CLI, the config loader and the service.
//!
//! Every read of caller-supplied data goes through [`read_bounded`] (or takes
//! the same limit from an HTTP body), so a `/dev/zero` or a 2 GB file is
//! refused after `limit + 1` bytes instead of filling memory.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The config file itself (not settable from the config it limits).
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;
/// A `file:` secret.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// A text file's bytes as a string: UTF-8, a leading byte order mark
/// dropped (Windows editors write one; it would end up in the message).
pub fn utf8_text(mut bytes: Vec<u8>) -> Result<String, std::string::FromUtf8Error> {
    if bytes.starts_with(b"\xef\xbb\xbf") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes)
}

/// The longest user, tenant, purpose, mode, batch name or idempotency key
/// a request may give, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A name or key a request gives: at most [`MAX_NAME_CHARS`] characters and
/// no control character (it is stored, logged and shown on terminals).
/// `Err` is the part of the message after the field's name.
pub fn check_name(value: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        return Err(format!("`{}` contains a control character", shown(value)));
    }
    if value.chars().nth(MAX_NAME_CHARS).is_some() {
        return Err(format!(
            "`{}` is longer than {MAX_NAME_CHARS} characters",
            shown(value)
        ));
    }
    Ok(())
}

/// A text a caller gave, fit to be shown in an error: its first 40
/// characters, escaped (`\n`, `\u{1b}`), `…` when there were more.
pub fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .collect();
    if s.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

/// `[limits]` in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The largest message: each file read for one (`--eml`, `--text-file`,
    /// `--html-file`, `--attach`), the built MIME, and the HTTP API's body
    /// (which may be a third larger for base64).
    pub max_message_bytes: u64,
    /// Recipients (To + Cc + Bcc) of one message.
    pub max_recipients: usize,
    /// Rows of one batch (`send-batch`, `POST /v1/batches`). Every row is
    /// built before anything is queued, so the built messages of one batch
    /// are in memory at once: 100,000 rows of 2 KB are about 200 MB.
    pub max_batch_rows: usize,
    /// A batch's input: the JSON Lines or CSV file (or the whole
    /// `POST /v1/batches` body), and the `.eml` files of a folder together.
    pub max_batch_bytes: u64,
    /// One row of a batch (a JSON Lines line, a CSV record).
    pub max_batch_row_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024 * 1024,
            max_recipients: 10_000,
            max_batch_rows: 100_000,
            max_batch_bytes: 256 * 1024 * 1024,
            max_batch_row_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// The HTTP API's body limit: a message of `max_message_bytes` sent as
    /// base64 in JSON, plus room for the other fields.
    pub fn max_request_bytes(&self) -> u64 {
        self.max_message_bytes
            .saturating_mul(4)
            .saturating_div(3)
            .saturating_add(1024 * 1024)
    }
}

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is larger than {limit} bytes ({key}); use a smaller input or raise the limit")]
    TooLarge {
        what: String,
        limit: u64,
        key: &'static str,
    },
}

/// Reads at most `limit` bytes from `r`; more is an error, not a truncation.
pub fn read_limited(
    r: impl Read,
    limit: u64,
    what: &str,
    key: &'static str,
) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Io {
            what: what.to_string(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            what: what.to_string(),
            limit,
            key,
        });
    }
    Ok(buf)
}

/// Reads a file of at most `limit` bytes (a device like `/dev/zero` included).
pub fn read_bounded(path: &Path, limit: u64, key: &'static str) -> Result<Vec<u8>, ReadError> {
    let what = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| ReadError::Io {
        what: what.clone(),
        source,
    })?;
    read_limited(f, limit, &what, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_without_reading_it_all() {
        let e = read_bounded(Path::new("/dev/zero"), 1000, "limits.max_message_bytes").unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { limit: 1000, .. }), "{e}");
        assert!(e.to_string().contains("limits.max_message_bytes"));
        let ok = read_limited(&b"abc"[..], 3, "x", "k").unwrap();
        assert_eq!(ok, b"abc");
    }
}
