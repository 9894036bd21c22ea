//! The one send/compose use case, shared by every caller — the CLI's direct
//! send, the HTTP API and the outbox worker:
//!
//! 1. **check the request** (host-only option keys, attachments by path, sizes);
//! 2. **decide** (the policy: kill switch, tenant, purpose, mode, chain);
//! 3. **apply the decision's defaults** (From, the support address, system information);
//! 4. **build** the one `OutgoingMessage` (or take a complete MIME message as it is);
//! 5. **check the built message** against the purpose's rules — whatever produced
//!    it (fields, extra headers, an `.eml`), so no route gets around them;
//! 6. **walk the chain** ([`Engine::deliver`], with in-call retries for the one-shot
//!    CLI), or hand the prepared message to the outbox, whose worker makes one
//!    try per way out with [`Engine::attempt`].

use mailhost_plugin_api::options::is_host_only;
use mailhost_plugin_api::{OutgoingMessage, PluginError};
use serde::Serialize;

use crate::config::Purpose;
use crate::engine::{Composed, Delivery, Engine, Failure, FailureClass};
use crate::message::{self, AttachmentRequest, MessageError, MessageRequest};
use crate::policy::{self, Action, Candidate, Decision, Refusal, Request};

/// What the message is made of.
#[derive(Debug, Clone)]
pub enum Content {
    /// Fields to build the message from (CLI flags, the API's JSON).
    Fields(Box<MessageRequest>),
    /// A complete RFC 5322 message sent as it is (`--eml`, `message/rfc822`):
    /// the envelope from its headers unless given.
    Mime {
        bytes: Vec<u8>,
        envelope_from: Option<String>,
        envelope_to: Vec<String>,
    },
}

/// One request to send or compose.
#[derive(Debug, Clone)]
pub struct Submission {
    pub action: Action,
    /// The user sending (per-user modes and credentials).
    pub user: Option<String>,
    /// The tenant (client); else the user's tenant.
    pub tenant: Option<String>,
    /// The purpose (notification, support, ...).
    pub purpose: Option<String>,
    /// A mode or account the user picked for this request (if the policy allows it).
    pub mode: Option<String>,
    pub content: Content,
    /// Stable across retries and resubmissions; defaults to the Message-ID.
    pub idempotency_key: Option<String>,
    /// Request options for the plugins (`dsn`, `save_to_sent_items`, ...).
    /// The host's own keys (`user`, `mailbox`, `credentials`) are refused:
    /// only the configuration sets them.
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl Submission {
    /// The bytes of content a request carries (text, HTML, attachments, or MIME).
    pub fn content_len(&self) -> usize {
        match &self.content {
            Content::Mime { bytes, .. } => bytes.len(),
            Content::Fields(r) => {
                r.text.as_ref().map_or(0, String::len)
                    + r.html.as_ref().map_or(0, String::len)
                    + r.attachments
                        .iter()
                        .map(|a| a.data.as_ref().map_or(0, Vec::len))
                        .sum::<usize>()
            }
        }
    }
}

/// A request that passed the policy, built and checked: ready to deliver, or to queue.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub action: Action,
    pub user: Option<String>,
    pub tenant: Option<String>,
    pub purpose: Option<String>,
    pub decision: Decision,
    pub message: OutgoingMessage,
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Sent(Delivery),
    Composed(Composed),
}

/// Why a submission did not go out.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The policy refused it (kill switch, tenant, purpose rules, nothing available).
    #[error("refused by {}: {}", .0.rule, .0.message)]
    Refused(Refusal),
    /// The request or message is invalid (bad address, injection, too large...).
    #[error("{0}")]
    Invalid(#[from] MessageError),
    /// Every way out was tried and failed.
    #[error("{0}")]
    Failed(Failure),
}

impl SubmitError {
    /// The failure class (for exit codes, HTTP statuses and the outbox).
    pub fn class(&self) -> Option<FailureClass> {
        match self {
            Self::Refused(_) => Some(FailureClass::Refused),
            Self::Invalid(_) => None,
            Self::Failed(f) => Some(f.class),
        }
    }

    /// A stable, machine-readable code: `refused`, `invalid-message`, or the class.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
            Self::Invalid(_) => "invalid-message",
            Self::Failed(f) => f.class.name(),
        }
    }
}

/// The names and keys a request gives (user, tenant, purpose, mode, keys):
/// bounded text with no control characters, see [`crate::limits::check_name`].
pub fn check_names(fields: &[(&str, Option<&str>)]) -> Result<(), MessageError> {
    for (field, value) in fields {
        if let Some(v) = value {
            crate::limits::check_name(v).map_err(|reason| MessageError::BadName {
                field: (*field).to_string(),
                reason,
            })?;
        }
    }
    Ok(())
}

/// A request to explain (`policy explain`, `GET /v1/policy/explain`): its
/// names as [`check_names`], and no control character in its From or
/// recipients (the trace shows them).
pub fn check_explain(req: &Request) -> Result<(), MessageError> {
    check_names(&[
        ("user", req.user.as_deref()),
        ("tenant", req.tenant.as_deref()),
        ("purpose", req.purpose.as_deref()),
        ("mode", req.mode.as_deref()),
    ])?;
    for (field, v) in req
        .from
        .iter()
        .map(|f| ("from", f))
        .chain(req.recipients.iter().map(|r| ("to", r)))
    {
        if let Some(c) = v.chars().find(|c| c.is_control()) {
            return Err(MessageError::ControlCharacter {
                field: field.into(),
                ch: format!("U+{:04X}", c as u32),
            });
        }
    }
    Ok(())
}

/// Refuses bad names, host-only option keys and attachments read from the
/// host's disk.
fn check_request(sub: &Submission) -> Result<(), MessageError> {
    check_names(&[
        ("user", sub.user.as_deref()),
        ("tenant", sub.tenant.as_deref()),
        ("purpose", sub.purpose.as_deref()),
        ("mode", sub.mode.as_deref()),
        ("idempotency_key", sub.idempotency_key.as_deref()),
    ])?;
    if let Some(key) = sub.options.keys().find(|k| is_host_only(k)) {
        return Err(MessageError::HostOnlyOption(key.clone()));
    }
    if let Content::Fields(req) = &sub.content {
        if let Some(key) = req.options.keys().find(|k| is_host_only(k)) {
            return Err(MessageError::HostOnlyOption(key.clone()));
        }
        if let Some(a) = req.attachments.iter().find(|a| a.path.is_some()) {
            return Err(MessageError::Attachment {
                path: a
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                reason: "attachments are passed as data; the caller reads its own files".into(),
            });
        }
    }
    Ok(())
}

fn lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// Checks the built message against the purpose: every recipient (envelope and
/// headers) must be permitted, and when the request may not set the sender,
/// From, Sender, Reply-To and the envelope sender must be the configured ones.
pub fn check_built(
    purpose: &Purpose,
    expected_from: Option<&str>,
    msg: &OutgoingMessage,
) -> Result<(), Refusal> {
    let mut recipients: Vec<String> = msg.envelope.to.iter().map(|r| r.to_string()).collect();
    for m in msg
        .parts
        .to
        .iter()
        .chain(msg.parts.cc.iter())
        .chain(msg.parts.bcc.iter())
    {
        if !recipients.iter().any(|r| r.eq_ignore_ascii_case(&m.email)) {
            recipients.push(m.email.to_string());
        }
    }
    let bad = policy::forbidden_recipients(&purpose.allowed_recipients, &recipients);
    if !bad.is_empty() {
        return Err(Refusal {
            rule: "purpose recipients".into(),
            message: format!(
                "purpose `{}` may not send to {} (allowed: {}; {})",
                purpose.name,
                bad.join(", "),
                purpose.allowed_recipients.join(", "),
                purpose.loc
            ),
        });
    }
    if purpose.allow_sender {
        return Ok(());
    }
    let expected = expected_from
        .and_then(|f| message::address_of(f).ok())
        .map(|a| lower(&a));
    let mut senders: Vec<(&str, String)> = vec![("From", lower(&msg.parts.from.email))];
    if let Some(f) = msg.envelope.from.as_ref().into_option() {
        senders.push(("envelope sender", lower(f)));
    }
    for (what, addr) in message::sender_addresses(&msg.mime) {
        senders.push((what, lower(&addr)));
    }
    for (what, addr) in senders {
        if expected.as_deref() != Some(addr.as_str()) {
            return Err(Refusal {
                rule: "purpose sender".into(),
                message: format!(
                    "purpose `{}` does not let the request set the sender (allow_sender = false at {}), \
                     but the message's {what} is {addr}; leave it out to use {}",
                    purpose.name,
                    purpose.loc,
                    expected_from.unwrap_or("the account's from")
                ),
            });
        }
    }
    Ok(())
}

impl Engine {
    /// Steps 1–5: checks the request, decides, applies the defaults, builds the
    /// message and checks it against the purpose. Nothing is sent.
    pub fn prepare(&self, sub: &Submission) -> Result<Prepared, SubmitError> {
        self.prepare_in(sub, None)
    }

    /// [`Self::prepare`] on the calling thread when nothing in it can block:
    /// no plugin probe is due (the policy would run it and wait up to
    /// `probe_timeout_ms`) and no attachment is read from a file. None
    /// otherwise: then call [`Self::prepare`] where blocking is fine. The
    /// service answers most requests this way, without a hop to a blocking
    /// thread and back.
    pub fn prepare_without_blocking(
        &self,
        sub: &Submission,
    ) -> Option<Result<Prepared, SubmitError>> {
        if let Content::Fields(r) = &sub.content {
            if r.attachments.iter().any(|a| a.path.is_some()) {
                return None;
            }
        }
        let world = self.world_if_probed()?;
        Some(self.prepare_in(sub, Some(&world)))
    }

    fn prepare_in(
        &self,
        sub: &Submission,
        world: Option<&crate::policy::World>,
    ) -> Result<Prepared, SubmitError> {
        check_request(sub)?;
        let limits = &self.settings().limits;
        let options = sub.options.clone();
        // A complete message is parsed first: the policy needs its recipients.
        let from_mime = match &sub.content {
            Content::Mime {
                bytes,
                envelope_from,
                envelope_to,
            } => {
                if bytes.len() as u64 > limits.max_message_bytes {
                    return Err(MessageError::TooLarge {
                        size: bytes.len() as u64,
                        limit: limits.max_message_bytes,
                    }
                    .into());
                }
                let mut m = message::from_eml(
                    bytes,
                    envelope_from.as_deref(),
                    &message::recipient_list(envelope_to),
                    options.clone(),
                )?;
                if let Some(k) = &sub.idempotency_key {
                    m.idempotency_key = k.clone().into();
                }
                Some(m)
            }
            Content::Fields(_) => None,
        };
        // The fields as built: a recipient typed as a list ("a@x; b@y") is
        // several recipients, for the policy and the message alike.
        let fields = match &sub.content {
            Content::Fields(r) => {
                let mut r = MessageRequest::clone(r);
                for list in [&mut r.to, &mut r.cc, &mut r.bcc] {
                    *list = message::recipient_list(list);
                }
                Some(r)
            }
            Content::Mime { .. } => None,
        };
        let recipients: Vec<String> = match (&from_mime, &fields) {
            (Some(m), _) => m.envelope.to.iter().map(|s| s.to_string()).collect(),
            (None, Some(r)) => r.to.iter().chain(&r.cc).chain(&r.bcc).cloned().collect(),
            (None, None) => Vec::new(),
        };
        if recipients.len() > limits.max_recipients {
            return Err(MessageError::TooManyRecipients {
                count: recipients.len(),
                limit: limits.max_recipients,
            }
            .into());
        }
        let req = Request {
            user: sub.user.clone(),
            tenant: sub.tenant.clone(),
            purpose: sub.purpose.clone(),
            mode: sub.mode.clone(),
            from: match &sub.content {
                Content::Fields(r) => r.from.clone(),
                Content::Mime { .. } => None,
            },
            recipients,
        };
        let decision = match world {
            Some(w) => self.decide_in(w, sub.action, &req),
            None => self.decide(sub.action, &req),
        };
        if let Some(r) = &decision.refused {
            return Err(SubmitError::Refused(r.clone()));
        }
        let default_from = decision.default_from.clone().or_else(|| {
            decision
                .chain
                .iter()
                .find_map(|c| c.account.as_ref())
                .and_then(|acc| self.settings().accounts.get(acc))
                .and_then(|acc| acc.from.clone())
        });
        let msg = match (from_mime, fields) {
            (Some(m), _) => m,
            (None, Some(mut r)) => {
                if r.to.is_empty() && r.cc.is_empty() && r.bcc.is_empty() {
                    r.to = decision.default_to.clone();
                }
                if decision.attach_system_info {
                    r.attachments.push(AttachmentRequest {
                        filename: Some("system-info.txt".into()),
                        media_type: Some("text/plain".into()),
                        data: Some(self.system_info().into_bytes()),
                        ..Default::default()
                    });
                }
                if sub.idempotency_key.is_some() {
                    r.idempotency_key = sub.idempotency_key.clone();
                }
                r.options.extend(options);
                message::build_limited(&r, default_from.as_deref(), limits)?
            }
            (None, None) => return Err(MessageError::Build("no message content".into()).into()),
        };
        if let Some(p) = sub
            .purpose
            .as_ref()
            .and_then(|p| self.settings().purposes.get(p))
        {
            check_built(p, default_from.as_deref(), &msg).map_err(SubmitError::Refused)?;
        }
        Ok(Prepared {
            action: sub.action,
            user: sub.user.clone(),
            tenant: sub.tenant.clone(),
            purpose: sub.purpose.clone(),
            decision,
            message: msg,
        })
    }

    /// Step 6 for the one-shot CLI: walks the chain with in-call retries.
    pub fn deliver(&self, p: &Prepared) -> Result<Outcome, Failure> {
        match p.action {
            Action::Send => self
                .send(&p.decision, p.user.as_deref(), &p.message)
                .map(Outcome::Sent),
            Action::Compose => self
                .compose(&p.decision, p.user.as_deref(), &p.message)
                .map(Outcome::Composed),
        }
    }

    /// The whole use case: prepare, then deliver.
    pub fn submit(&self, sub: &Submission) -> Result<Outcome, SubmitError> {
        let p = self.prepare(sub)?;
        self.deliver(&p).map_err(SubmitError::Failed)
    }

    /// The claim-time policy check of a queued message: the kill switch, the
    /// tenant's own switch, and whether the way out still exists. A refusal
    /// stops the message (it is not retried).
    pub fn recheck(&self, tenant: Option<&str>, candidate: &Candidate) -> Result<(), Refusal> {
        let s = self.settings();
        if !s.policy.enabled {
            return Err(Refusal {
                rule: "kill switch".into(),
                message: format!(
                    "sending is switched off for everyone (policy.enabled = false at {})",
                    s.policy.loc_of("enabled")
                ),
            });
        }
        if let Some(t) = tenant {
            match s.tenants.get(t) {
                None => {
                    return Err(Refusal {
                        rule: "tenant".into(),
                        message: format!("tenant `{t}` is no longer configured"),
                    })
                }
                Some(tc) if !tc.enabled => {
                    return Err(Refusal {
                        rule: "tenant kill switch".into(),
                        message: format!(
                            "sending is switched off for tenant `{t}` (enabled = false at {})",
                            tc.loc
                        ),
                    })
                }
                Some(_) => {}
            }
        }
        if let Some(a) = &candidate.account {
            if !s.accounts.contains_key(a) {
                return Err(Refusal {
                    rule: "account".into(),
                    message: format!("account `{a}` is no longer configured"),
                });
            }
        }
        if let Some(p) = &candidate.plugin {
            if self.plugins().get(p).is_none() {
                return Err(Refusal {
                    rule: "plugin".into(),
                    message: format!(
                        "plugin `{p}` is not loaded; run `mailhost plugins` to see why"
                    ),
                });
            }
        }
        Ok(())
    }

    /// One try through one way out, for the outbox worker: no retry and no
    /// sleeping on a backoff (the outbox schedules the next try), and no rate
    /// limit (the worker applies it across processes).
    pub fn attempt(
        &self,
        action: Action,
        candidate: &Candidate,
        user: Option<&str>,
        msg: &OutgoingMessage,
    ) -> Result<Outcome, PluginError> {
        match action {
            Action::Send => self.send_once(candidate, user, msg).map(Outcome::Sent),
            Action::Compose => self
                .compose_once(candidate, user, msg)
                .map(Outcome::Composed),
        }
    }

    /// [`Engine::attempt`] for several messages sent through one way out at
    /// once (one plugin call when the plugin has `send_many`). `users[i]` is
    /// the user of `msgs[i]`; one result per message, in order.
    pub fn attempt_sends(
        &self,
        candidate: &Candidate,
        users: &[Option<&str>],
        msgs: Vec<OutgoingMessage>,
    ) -> Vec<Result<Outcome, PluginError>> {
        self.send_many_once(candidate, users, msgs)
            .into_iter()
            .map(|r| r.map(Outcome::Sent))
            .collect()
    }
}
