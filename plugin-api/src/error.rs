//! Classified errors that cross the ABI.

use std::fmt;

use abi_stable::std_types::{ROption, RString};
use abi_stable::StableAbi;

/// What kind of failure a [`PluginError`] is; retries and failover act on it.
///
/// A `#[repr(transparent)]` newtype over `u8`, not an enum, so a class added
/// after 1.0 is a new value rather than a layout change. An unknown value is
/// treated as [`ErrorClass::PERMANENT`] (see [`ErrorClass::normalized`]).
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ErrorClass(pub u8);

impl ErrorClass {
    /// Try again later: SMTP 4xx/421, HTTP 429/5xx, timeouts, resets.
    /// The host retries with backoff (honouring `retry_after_ms`), then tries
    /// the next way out of the policy chain; the CLI exits 75.
    pub const TRANSIENT: Self = Self(1);
    /// Never retry: SMTP 5xx, HTTP 400, a plugin panic.
    /// The host stops and reports the message as failed; the CLI exits 76.
    pub const PERMANENT: Self = Self(2);
    /// Credentials refused: SMTP 535, HTTP 401/403, AADSTS errors.
    /// The host tries the next way out at once (no retry); the CLI exits 77.
    pub const AUTH: Self = Self(3);
    /// The account's settings are wrong or a secret is missing.
    /// The host tries the next way out at once; the CLI exits 78.
    pub const CONFIG: Self = Self(4);
    /// The transport cannot be used here (Outlook not installed, server unreachable at probe).
    /// The host tries the next way out at once; the CLI exits 69.
    pub const UNAVAILABLE: Self = Self(5);
    /// The transport cannot do what the message needs (SMTPUTF8, compose on a send-only plugin).
    /// The host tries the next way out at once; the CLI exits 69.
    pub const UNSUPPORTED: Self = Self(6);

    /// Every class this version knows, in a stable order.
    pub const ALL: [Self; 6] = [
        Self::TRANSIENT,
        Self::PERMANENT,
        Self::AUTH,
        Self::CONFIG,
        Self::UNAVAILABLE,
        Self::UNSUPPORTED,
    ];

    /// A known class as itself; an unknown value (from a newer plugin) as `PERMANENT`.
    pub fn normalized(self) -> Self {
        if Self::ALL.contains(&self) {
            self
        } else {
            Self::PERMANENT
        }
    }

    /// The lower-case name used in logs, JSON and the CLI.
    pub fn name(self) -> &'static str {
        match self.normalized() {
            Self::TRANSIENT => "transient",
            Self::AUTH => "auth",
            Self::CONFIG => "config",
            Self::UNAVAILABLE => "unavailable",
            Self::UNSUPPORTED => "unsupported",
            _ => "permanent",
        }
    }

    /// The class for a name as [`ErrorClass::name`] prints it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Debug for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if Self::ALL.contains(self) {
            f.write_str(self.name())
        } else {
            write!(f, "unknown({})", self.0)
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An error returned by a plugin, classified so that the host knows whether to
/// retry, fail over to the next account, or stop.
///
/// `message` says what failed and what to do; it never contains a secret.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What kind of failure, which decides what the host does next (see [`ErrorClass`]).
    pub class: ErrorClass,
    /// The server's reply code (SMTP 550, HTTP 429), or 0 when there was none.
    pub code: u16,
    /// The RFC 3463 enhanced status code (`5.1.1`), when the server gave one.
    pub enhanced: ROption<RString>,
    /// How long the server asked us to wait (HTTP `Retry-After`), in milliseconds.
    pub retry_after_ms: ROption<u64>,
    /// What failed, where, and what to do about it.
    pub message: RString,
}

impl PluginError {
    /// An error of `class` with a message and nothing else.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            code: 0,
            enhanced: ROption::RNone,
            retry_after_ms: ROption::RNone,
            message: RString::from(message.into()),
        }
    }

    /// A [`ErrorClass::TRANSIENT`] error: the host retries later.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::TRANSIENT, message)
    }
    /// A [`ErrorClass::PERMANENT`] error: the host gives up on the message.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::PERMANENT, message)
    }
    /// An [`ErrorClass::AUTH`] error: credentials were refused.
    pub fn auth(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::AUTH, message)
    }
    /// A [`ErrorClass::CONFIG`] error: name the setting that is wrong.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::CONFIG, message)
    }
    /// An [`ErrorClass::UNAVAILABLE`] error: this transport cannot be used here.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::UNAVAILABLE, message)
    }
    /// An [`ErrorClass::UNSUPPORTED`] error: this transport cannot do what was asked.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::UNSUPPORTED, message)
    }

    /// Sets the server's reply code.
    pub fn with_code(mut self, code: u16) -> Self {
        self.code = code;
        self
    }

    /// Sets the RFC 3463 enhanced status code.
    pub fn with_enhanced(mut self, enhanced: impl Into<String>) -> Self {
        self.enhanced = ROption::RSome(RString::from(enhanced.into()));
        self
    }

    /// Sets the server's requested delay before a retry.
    pub fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = ROption::RSome(ms);
        self
    }

    /// The class, with unknown values read as `PERMANENT`.
    pub fn class(&self) -> ErrorClass {
        self.class.normalized()
    }

    /// The RFC 3463 enhanced status code, when the server gave one.
    pub fn enhanced(&self) -> Option<&str> {
        self.enhanced.as_ref().map(|s| s.as_str()).into_option()
    }

    /// How long the server asked to wait, in milliseconds, when it said.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after_ms.into_option()
    }

    /// What failed, where, and what to do about it.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }

    /// True when the host may try the same account again later.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::TRANSIENT
    }

    /// True when no other account should be tried either.
    pub fn is_permanent(&self) -> bool {
        self.class() == ErrorClass::PERMANENT
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        let mut extra = Vec::new();
        if self.code != 0 {
            extra.push(format!("code {}", self.code));
        }
        if let Some(e) = self.enhanced() {
            extra.push(e.to_string());
        }
        if let Some(ms) = self.retry_after_ms() {
            extra.push(format!("retry after {ms} ms"));
        }
        extra.push(format!("class {}", self.class));
        write!(f, " [{}]", extra.join(", "))
    }
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginError")
            .field("class", &self.class)
            .field("code", &self.code)
            .field("enhanced", &self.enhanced())
            .field("retry_after_ms", &self.retry_after_ms())
            .field("message", &self.message.as_str())
            .finish()
    }
}

impl std::error::Error for PluginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_class_is_permanent() {
        let e = PluginError::new(ErrorClass(200), "from the future");
        assert_eq!(e.class(), ErrorClass::PERMANENT);
        assert_eq!(format!("{:?}", ErrorClass(200)), "unknown(200)");
        assert!(e.is_permanent());
    }

    #[test]
    fn names_round_trip() {
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn display_carries_codes() {
        let e = PluginError::transient("mailbox busy")
            .with_code(450)
            .with_enhanced("4.2.1")
            .with_retry_after_ms(1000);
        assert_eq!(
            e.to_string(),
            "mailbox busy [code 450, 4.2.1, retry after 1000 ms, class transient]"
        );
    }
}
