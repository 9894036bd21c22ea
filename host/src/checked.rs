//! What this host already checked and found valid, remembered across
//! processes: a plugin's settings schema (valid JSON Schema) and an account's
//! settings (valid against that schema). `mailhost send` runs once per
//! message; compiling every plugin's schema again each time was about half of
//! its CPU (docs/performance.md). With this, a process compiles a schema only
//! when it meets one (or settings) it has not seen valid before.
//!
//! A fact is an empty file named by the SHA-256 of what was checked, this
//! host's version and the kind of check, in the cache directory:
//! `$MAILHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/mailhost`,
//! `~/.cache/mailhost` (Windows: `%LOCALAPPDATA%\mailhost\cache`), in a
//! `checked/` folder created with mode 0700. Only successes are remembered, so
//! a mistake is always reported; a changed schema or setting has another
//! name. `MAILHOST_CACHE_DIR=off` (or a directory that cannot be written)
//! turns it off: everything is checked every time. The plugin's own
//! `validate_settings` and the send-time checks (CR/LF on the wire, purpose
//! rules) are never skipped.

use std::path::PathBuf;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The kinds of facts.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A settings schema compiles (the text of the schema).
    Schema,
    /// Settings are valid against a schema (schema text, then settings JSON).
    Settings,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Schema => "schema",
            Kind::Settings => "settings",
        }
    }
}

fn dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = match std::env::var_os("MAILHOST_CACHE_DIR") {
            Some(v) if v == "off" || v.is_empty() => return None,
            Some(v) => PathBuf::from(v),
            None => default_base()?,
        };
        Some(base.join("checked"))
    })
    .as_ref()
}

#[cfg(windows)]
fn default_base() -> Option<PathBuf> {
    std::env::var_os("LOCALAPPDATA").map(|d| PathBuf::from(d).join("mailhost").join("cache"))
}

#[cfg(not(windows))]
fn default_base() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("mailhost"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("mailhost"))
}

fn name(kind: Kind, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    h.update(kind.tag().as_bytes());
    h.update([0]);
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("{}-{}", kind.tag(), crate::digest::hex(&h.finalize()))
}

/// Whether facts are remembered at all (a cache directory is configured;
/// `MAILHOST_CACHE_DIR=off` turns it off).
pub fn enabled() -> bool {
    dir().is_some()
}

/// Whether this check passed before (in any process of this user).
pub fn known(kind: Kind, parts: &[&[u8]]) -> bool {
    dir().is_some_and(|d| d.join(name(kind, parts)).is_file())
}

/// Remembers that this check passed. Failures to write are ignored: the
/// next process checks again.
pub fn remember(kind: Kind, parts: &[&[u8]]) {
    let Some(d) = dir() else {
        return;
    };
    if !d.is_dir() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        if b.create(d).is_err() {
            return;
        }
    }
    let _ = std::fs::write(d.join(name(kind, parts)), b"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_by_kind_and_content_and_do_not_shift() {
        let a = name(Kind::Schema, &[b"{}"]);
        assert_ne!(a, name(Kind::Settings, &[b"{}"]));
        assert_ne!(a, name(Kind::Schema, &[b"{ }"]));
        // the parts are length-prefixed: moving a byte across the boundary is another name
        assert_ne!(
            name(Kind::Settings, &[b"ab", b"c"]),
            name(Kind::Settings, &[b"a", b"bc"])
        );
        assert!(a.starts_with("schema-") && a.len() == "schema-".len() + 64);
    }
}
