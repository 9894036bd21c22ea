//! What the engine answers: a send's [`Delivery`], a compose's [`Composed`],
//! each try ([`Attempt`]), a [`Failure`] with its class, an account's
//! [`AccountStatus`]; and how a plugin's answer becomes one of them.

use std::time::Instant;

use mailhost_plugin_api::{ComposeOutcome, ErrorClass, PluginError, Receipt};
use serde::Serialize;

use crate::policy::Candidate;

/// One try of one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub candidate: String,
    pub plugin: Option<String>,
    pub number: u32,
    /// `ok`, or the error class.
    pub outcome: String,
    pub message: String,
    pub elapsed_ms: u64,
}

/// A message that went out.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub candidate: Candidate,
    pub message_id: String,
    pub server_id: String,
    pub server_reply: String,
    pub accepted: Vec<String>,
    pub rejected: Vec<(String, String)>,
    pub attempts: Vec<Attempt>,
    /// Sent, but something after it did not work (the transport's `warning`, a failed copy).
    pub warnings: Vec<String>,
    /// The copy for `save_copy_to`, when the account has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<crate::copies::CopyOutcome>,
}

/// A compose that happened.
#[derive(Debug, Clone, Serialize)]
pub struct Composed {
    pub candidate: Candidate,
    pub kind: String,
    pub draft_id: String,
    pub web_link: String,
    pub message: String,
    pub attempts: Vec<Attempt>,
}

/// What kind of failure ended a request: a policy refusal, or the class of
/// the last plugin error. Retries, failover, exit codes and HTTP statuses act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The policy refused the request (kill switch, purpose rules, nothing available).
    Refused,
    Transient,
    Auth,
    Config,
    Unavailable,
    Unsupported,
    Permanent,
}

impl FailureClass {
    /// The lower-case name used in JSON, logs and the outbox.
    pub fn name(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Transient => "transient",
            Self::Auth => "auth",
            Self::Config => "config",
            Self::Unavailable => "unavailable",
            Self::Unsupported => "unsupported",
            Self::Permanent => "permanent",
        }
    }
}

impl From<ErrorClass> for FailureClass {
    fn from(c: ErrorClass) -> Self {
        match c.normalized() {
            ErrorClass::TRANSIENT => Self::Transient,
            ErrorClass::AUTH => Self::Auth,
            ErrorClass::CONFIG => Self::Config,
            ErrorClass::UNAVAILABLE => Self::Unavailable,
            ErrorClass::UNSUPPORTED => Self::Unsupported,
            _ => Self::Permanent,
        }
    }
}

impl Serialize for FailureClass {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a request did not go out.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// `refused` (policy), or the last error's class.
    pub class: FailureClass,
    pub message: String,
    pub attempts: Vec<Attempt>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        for a in &self.attempts {
            write!(
                f,
                "\n  attempt {} via {}: {}: {}",
                a.number, a.candidate, a.outcome, a.message
            )?;
        }
        Ok(())
    }
}

/// An account's state for `mailhost status`.
#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    pub account: String,
    pub plugin: String,
    pub state: String,
    pub reason: String,
    pub max_per_minute: Option<u32>,
    pub sent_last_minute: usize,
}

impl AccountStatus {
    /// `state`, or `state: reason` when there is a reason.
    pub fn state_text(&self) -> String {
        if self.reason.is_empty() {
            self.state.clone()
        } else {
            format!("{}: {}", self.state, self.reason)
        }
    }
}

pub(super) fn err_to_attempt(c: &Candidate, n: u32, e: &PluginError, t: Instant) -> Attempt {
    Attempt {
        candidate: c.label.clone(),
        plugin: c.plugin.clone(),
        number: n,
        outcome: e.class().name().to_string(),
        message: e.to_string(),
        elapsed_ms: t.elapsed().as_millis() as u64,
    }
}

pub(super) fn ok_attempt(c: &Candidate, n: u32, t: Instant) -> Attempt {
    Attempt {
        candidate: c.label.clone(),
        plugin: c.plugin.clone(),
        number: n,
        outcome: "ok".into(),
        message: String::new(),
        elapsed_ms: t.elapsed().as_millis() as u64,
    }
}

pub(super) fn delivery(c: Candidate, r: Receipt, attempts: Vec<Attempt>) -> Delivery {
    Delivery {
        candidate: c,
        message_id: r.message_id.to_string(),
        server_id: r.server_id.to_string(),
        server_reply: r.server_reply.to_string(),
        accepted: r.accepted.iter().map(|s| s.to_string()).collect(),
        rejected: r
            .rejected
            .iter()
            .map(|x| (x.address.to_string(), x.error.to_string()))
            .collect(),
        attempts,
        warnings: crate::copies::receipt_warnings(&r),
        copy: None,
    }
}

pub(super) fn composed(c: Candidate, o: ComposeOutcome, attempts: Vec<Attempt>) -> Composed {
    Composed {
        candidate: c,
        kind: o.kind.name().to_string(),
        draft_id: o.draft_id.to_string(),
        web_link: o.web_link.to_string(),
        message: o.message.to_string(),
        attempts,
    }
}

pub(super) fn builtin_composed(c: &Candidate, attempts: Vec<Attempt>) -> Composed {
    Composed {
        candidate: c.clone(),
        kind: "builtin".into(),
        draft_id: String::new(),
        web_link: String::new(),
        message: "open the application's own editor; the message is then sent by the send mode"
            .into(),
        attempts,
    }
}
