//! What transports return: receipts, compose outcomes, check reports, status.

use std::fmt;

use abi_stable::std_types::{RString, RVec};
use abi_stable::StableAbi;

use crate::PluginError;

/// A recipient the server refused while others were accepted.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct RejectedRecipient {
    /// The recipient that was refused.
    pub address: RString,
    /// Why, classified like any error.
    pub error: PluginError,
}

/// Proof that a transport accepted a message.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Default)]
pub struct Receipt {
    /// The Message-ID the message went out with.
    pub message_id: RString,
    /// The server's id for it (SMTP queue id, Graph message id, file name), may be empty.
    pub server_id: RString,
    /// The server's final reply, verbatim (`250 2.0.0 Ok: queued as 4F2A`).
    pub server_reply: RString,
    /// Recipients the server accepted.
    pub accepted: RVec<RString>,
    /// Recipients refused while the message still went to the others.
    pub rejected: RVec<RejectedRecipient>,
    /// A JSON object with transport-specific details (`{}` when none).
    pub details_json: RString,
}

/// How a compose ended.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ComposeKind(pub u8);

impl ComposeKind {
    /// Saved as a draft (IMAP Drafts, a Graph draft); `draft_id` says where.
    pub const DRAFT_SAVED: Self = Self(1);
    /// Saved as a draft with a link to open it (Outlook on the web): `web_link`.
    pub const WEB_LINK: Self = Self(2);
    /// Shown in a desktop client's compose window for the user to finish.
    pub const SHOWN_IN_CLIENT: Self = Self(3);
    /// The user sent it from the client's dialog.
    pub const SENT_BY_USER: Self = Self(4);
    /// The user closed the dialog without sending.
    pub const CANCELLED: Self = Self(5);
    /// A copy of a message sent through another account was stored (compose
    /// with `options_json.save_copy_for`, see [`crate::Capabilities::SAVE_COPY_FOR_OTHERS`]).
    pub const COPY_SAVED: Self = Self(6);

    /// The kind's name for listings (`draft-saved`, `web-link`...).
    pub fn name(self) -> &'static str {
        match self {
            Self::DRAFT_SAVED => "draft-saved",
            Self::WEB_LINK => "web-link",
            Self::SHOWN_IN_CLIENT => "shown-in-client",
            Self::SENT_BY_USER => "sent-by-user",
            Self::CANCELLED => "cancelled",
            Self::COPY_SAVED => "copy-saved",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ComposeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `Transport::compose` did.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct ComposeOutcome {
    /// How the compose ended.
    pub kind: ComposeKind,
    /// Where the draft is (IMAP `UID`/folder, Graph message id); may be empty.
    pub draft_id: RString,
    /// A link for the user to open (Outlook on the web); may be empty.
    pub web_link: RString,
    /// One line for the user.
    pub message: RString,
    /// A JSON object with transport-specific details (`{}` when none).
    pub details_json: RString,
}

impl ComposeOutcome {
    /// An outcome of `kind` with a message for the user.
    pub fn new(kind: ComposeKind, message: &str) -> Self {
        Self {
            kind,
            draft_id: RString::new(),
            web_link: RString::new(),
            message: message.into(),
            details_json: "{}".into(),
        }
    }
}

/// The outcome of one check step.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct StepOutcome(pub u8);

impl StepOutcome {
    /// The step passed.
    pub const OK: Self = Self(1);
    /// The step passed with a remark the admin should read.
    pub const WARNING: Self = Self(2);
    /// The step failed: `mailhost check` exits 69.
    pub const FAILED: Self = Self(3);
    /// The step was not run (say why in `detail`).
    pub const SKIPPED: Self = Self(4);

    /// The outcome's name (`ok`, `warning`, `failed`, `skipped`).
    pub fn name(self) -> &'static str {
        match self {
            Self::OK => "ok",
            Self::WARNING => "warning",
            Self::FAILED => "failed",
            Self::SKIPPED => "skipped",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of a settings check ("connect", "starttls", "auth"...).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct CheckStep {
    /// The step's name (`connect`, `starttls`, `auth`...).
    pub name: RString,
    /// How it went.
    pub outcome: StepOutcome,
    /// What was seen, in words for an admin.
    pub detail: RString,
    /// The server's exact words, when there were any.
    pub server_text: RString,
    /// How long the step took, in milliseconds (0 when not measured).
    pub duration_ms: u64,
}

/// The result of `Transport::check`: the "Test settings" button.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq, Default)]
pub struct CheckReport {
    /// The steps, in the order they ran.
    pub steps: RVec<CheckStep>,
}

impl CheckReport {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a step and returns the report (builder style).
    pub fn step(
        mut self,
        name: &str,
        outcome: StepOutcome,
        detail: &str,
        server_text: &str,
    ) -> Self {
        self.push(name, outcome, detail, server_text, 0);
        self
    }

    /// Adds a step with its duration.
    pub fn push(
        &mut self,
        name: &str,
        outcome: StepOutcome,
        detail: &str,
        server_text: &str,
        duration_ms: u64,
    ) {
        self.steps.push(CheckStep {
            name: name.into(),
            outcome,
            detail: detail.into(),
            server_text: server_text.into(),
            duration_ms,
        });
    }

    /// True when no step failed.
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.outcome != StepOutcome::FAILED)
    }
}

/// Connection state of a transport.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash)]
pub struct ConnState(pub u8);

impl ConnState {
    /// Closed by the host.
    pub const STOPPED: Self = Self(1);
    /// Opened, no connection yet.
    pub const NOT_CONNECTED: Self = Self(2);
    /// Connecting now.
    pub const CONNECTING: Self = Self(3);
    /// Working: the last connection or send went through.
    pub const OPERATING: Self = Self(4);
    /// The last attempt failed: `reason` says why.
    pub const UNABLE_TO_CONNECT: Self = Self(5);

    /// The state's name for listings (`operating`, `unable-to-connect`...).
    pub fn name(self) -> &'static str {
        match self {
            Self::STOPPED => "stopped",
            Self::NOT_CONNECTED => "not-connected",
            Self::CONNECTING => "connecting",
            Self::OPERATING => "operating",
            Self::UNABLE_TO_CONNECT => "unable-to-connect",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `Transport::status`: the state and, for `UNABLE_TO_CONNECT`, why.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// The state.
    pub state: ConnState,
    /// Why (for `UNABLE_TO_CONNECT`), or other detail; may be empty.
    pub reason: RString,
    /// Unix time in milliseconds when the state was entered (0 = unknown).
    pub since_unix_ms: u64,
}

impl ConnectionStatus {
    /// A status in `state`, with a reason (may be empty).
    pub fn new(state: ConnState, reason: &str) -> Self {
        let since_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            state,
            reason: reason.into(),
            since_unix_ms,
        }
    }

    /// True unless the transport last failed to connect or is stopped.
    pub fn usable(&self) -> bool {
        self.state != ConnState::UNABLE_TO_CONNECT && self.state != ConnState::STOPPED
    }
}
