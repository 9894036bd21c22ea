//! An opened Graph account: send, compose (draft + webLink), check.
//!
//! By concern: [`http`] (plumbing: gate, tokens, requests), [`json`] (Graph's
//! JSON message form), [`upload`] (large messages through drafts and upload
//! sessions), [`check`] (the "Test settings" steps); this module holds the
//! account and the send and compose routes.

mod check;
mod http;
mod json;
mod upload;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mailhost_plugin_api::{
    Attachment, CheckReport, ComposeKind, ComposeOutcome, ConnState, ConnectionStatus, Host,
    Mailbox, OutgoingMessage, PluginError, Receipt, StepOutcome, TransportImpl,
};
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use mailhost_plugin_api::wire;
use mailhost_rt::RuntimeThread;

use crate::config::{GraphConfig, RequestOptions};
use crate::error::{self, Op};
use crate::jwt;
use crate::tls;

use self::http::{mailbox_gate, Answer, Payload};
use self::json::message_json;
use self::upload::parse_draft;

/// Largest request body Graph takes in one request (its ~4 MB limit; 413 beyond).
pub const SINGLE_REQUEST_LIMIT: usize = 4 * 1024 * 1024;
/// Attachments from this size on go through an upload session (Graph: 3–150 MB).
pub const UPLOAD_THRESHOLD: usize = 3 * 1024 * 1024;
/// The largest attachment Exchange Online takes through an upload session.
pub const MAX_ATTACHMENT: usize = 150 * 1024 * 1024;
/// Upload chunk: a multiple of 320 KiB and at most 4 MB (12 × 320 KiB = 3.75 MiB).
pub const CHUNK: usize = 12 * 320 * 1024;
// Graph: every chunk but the last a multiple of 320 KiB, each at most 4 MB.
const _: () = assert!(CHUNK.is_multiple_of(320 * 1024) && CHUNK <= 4 * 1024 * 1024);
/// Graph allows 4 concurrent requests per mailbox; more are queued here.
pub const MAILBOX_CONCURRENCY: usize = 4;
/// Failed chunk uploads tolerated per attachment before giving up.
const MAX_CHUNK_FAILURES: u32 = 5;

/// An opened Graph account.
pub struct GraphTransport {
    inner: Arc<Inner>,
    rt: RuntimeThread,
}

impl std::fmt::Debug for GraphTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphTransport")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: GraphConfig,
    host: Host,
    http: reqwest::Client,
    base: Url,
    status: Mutex<ConnectionStatus>,
}

/// Where a message went and how.
struct Sent {
    route: &'static str,
    server_id: String,
    reply: String,
    saved_to_sent_items: bool,
}

impl GraphTransport {
    pub fn new(config: GraphConfig, host: Host) -> Result<Self, PluginError> {
        let mut base = Url::parse(&config.base_url).map_err(|e| {
            PluginError::config(format!(
                "graph: base_url {} is invalid: {e}",
                config.base_url
            ))
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let tls = tls::client_config(config.ca_file.as_deref())
            .map_err(|e| PluginError::config(format!("graph: {e}")))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            // A redirect would carry the bearer token elsewhere; Graph does not redirect these calls.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout())
            .connect_timeout(config.timeout().min(Duration::from_secs(15)))
            .user_agent(concat!("mailhost-graph/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                PluginError::config(format!("graph: cannot build the HTTP client: {e}"))
            })?;
        let rt = RuntimeThread::start("mailhost-graph", 2).map_err(|e| {
            PluginError::unavailable(format!("graph: cannot start its tokio runtime: {e}"))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                host,
                http,
                base,
                status: Mutex::new(ConnectionStatus::new(ConnState::NOT_CONNECTED, "")),
            }),
            rt,
        })
    }

    /// Runs `fut` on the plugin's runtime and records the outcome in `status()`.
    fn run<T: Send>(
        &self,
        fut: impl Future<Output = Result<T, PluginError>> + Send,
    ) -> Result<T, PluginError> {
        let result = self.rt.block(fut);
        self.inner.record(&result);
        result
    }
}

impl Inner {
    fn record<T>(&self, result: &Result<T, PluginError>) {
        use mailhost_plugin_api::ErrorClass;
        let status = match result {
            Ok(_) => ConnectionStatus::new(ConnState::OPERATING, ""),
            // Throttling says Graph is there and busy, not that it cannot be reached.
            Err(e) if e.is_transient() && e.code == 429 => return,
            Err(e)
                if e.is_transient()
                    || e.class() == ErrorClass::AUTH
                    || e.class() == ErrorClass::CONFIG =>
            {
                ConnectionStatus::new(ConnState::UNABLE_TO_CONNECT, e.message())
            }
            // A refused message says nothing about the account.
            Err(_) => return,
        };
        if let Ok(mut s) = self.status.lock() {
            *s = status;
        }
    }

    fn options(&self, message: &OutgoingMessage) -> Result<(String, bool), PluginError> {
        let opts = RequestOptions::from_json(&message.options_json)?;
        let mailbox = opts
            .host
            .mailbox
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| self.config.mailbox.clone());
        let save = opts
            .save_to_sent_items
            .unwrap_or(self.config.save_to_sent_items);
        Ok((mailbox, save))
    }
}

impl Inner {
    async fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        let (mailbox, save) = self.options(message)?;
        check_recipients(message)?;
        let p = &message.parts;
        if message.envelope.to.is_empty() && p.to.is_empty() && p.cc.is_empty() && p.bcc.is_empty()
        {
            return Err(PluginError::permanent(
                "graph: the message has no recipient",
            ));
        }
        let sent = if save && !message.mime.is_empty() {
            self.send_mime(message, &mailbox).await?
        } else {
            self.send_json(message, &mailbox).await?
        };
        let sent = match sent {
            Some(s) => s,
            None => self.send_large(message, &mailbox, save).await?,
        };
        tracing::info!(mailbox = %mailbox, route = sent.route, message_id = %message.message_id, "message sent through Graph");
        let accepted = if message.envelope.to.is_empty() {
            p.to.iter()
                .chain(p.cc.iter())
                .chain(p.bcc.iter())
                .map(|m| m.email.clone())
                .collect()
        } else {
            message.envelope.to.clone()
        };
        Ok(Receipt {
            message_id: message.message_id.clone(),
            server_id: sent.server_id.as_str().into(),
            server_reply: sent.reply.as_str().into(),
            accepted,
            rejected: Default::default(),
            details_json: json!({
                "mailbox": mailbox,
                "route": sent.route,
                "saved_to_sent_items": sent.saved_to_sent_items,
            })
            .to_string()
            .into(),
        })
    }

    /// `POST /users/{mailbox}/sendMail`; `None` when Graph answers 413 (too large).
    async fn send_mail(
        &self,
        mailbox: &str,
        payload: &Payload,
    ) -> Result<Option<Answer>, PluginError> {
        let answer = self
            .request(
                mailbox,
                Method::POST,
                &["users", mailbox, "sendMail"],
                None,
                payload,
            )
            .await?;
        if answer.status == StatusCode::PAYLOAD_TOO_LARGE {
            return Ok(None);
        }
        self.expect(answer, Op::SendMail, mailbox).map(Some)
    }

    /// `sendMail` with the host's MIME, base64 as `text/plain`. `None` when too large.
    async fn send_mime(
        &self,
        message: &OutgoingMessage,
        mailbox: &str,
    ) -> Result<Option<Sent>, PluginError> {
        let b64 = STANDARD.encode(message.mime.as_slice()).into_bytes();
        if b64.len() > SINGLE_REQUEST_LIMIT {
            return Ok(None);
        }
        let Some(answer) = self.send_mail(mailbox, &Payload::Mime(b64)).await? else {
            return Ok(None);
        };
        Ok(Some(Sent {
            route: "sendMail-mime",
            server_id: answer.request_id(),
            reply: format!("{} sendMail (MIME)", answer.status),
            saved_to_sent_items: true,
        }))
    }

    /// `sendMail` with the JSON form and `saveToSentItems: false`. `None` when too large.
    async fn send_json(
        &self,
        message: &OutgoingMessage,
        mailbox: &str,
    ) -> Result<Option<Sent>, PluginError> {
        let atts: Vec<&Attachment> = message.parts.attachments.iter().collect();
        if atts.iter().any(|a| a.data.len() >= UPLOAD_THRESHOLD) {
            return Ok(None);
        }
        let body = json!({
            "message": message_json(message, mailbox, &atts),
            "saveToSentItems": false,
        });
        let bytes = serde_json::to_vec(&body).map_err(|e| {
            PluginError::permanent(format!("graph: cannot encode the message as JSON: {e}"))
        })?;
        if bytes.len() > SINGLE_REQUEST_LIMIT {
            return Ok(None);
        }
        let Some(answer) = self.send_mail(mailbox, &Payload::Json(bytes)).await? else {
            return Ok(None);
        };
        Ok(Some(Sent {
            route: "sendMail-json",
            server_id: answer.request_id(),
            reply: format!("{} sendMail (JSON, not saved to Sent Items)", answer.status),
            saved_to_sent_items: false,
        }))
    }

    /// The large-message route: a draft without the big attachments, an
    /// upload session per big attachment, then `send`.
    async fn compose(&self, message: &OutgoingMessage) -> Result<ComposeOutcome, PluginError> {
        let (mailbox, _) = self.options(message)?;
        check_recipients(message)?;
        let mut route = "mime";
        let mut draft = None;
        if !message.mime.is_empty() {
            let b64 = STANDARD.encode(message.mime.as_slice()).into_bytes();
            if b64.len() <= SINGLE_REQUEST_LIMIT {
                let answer = self
                    .request(
                        &mailbox,
                        Method::POST,
                        &["users", &mailbox, "messages"],
                        None,
                        &Payload::Mime(b64),
                    )
                    .await?;
                if answer.status != StatusCode::PAYLOAD_TOO_LARGE {
                    draft = Some(parse_draft(self.expect(answer, Op::Draft, &mailbox)?)?);
                }
            }
        }
        let draft = match draft {
            Some(d) => d,
            None => {
                route = "json-upload";
                self.create_large_draft(message, &mailbox).await?
            }
        };
        tracing::info!(mailbox = %mailbox, draft = %draft.id, "draft created in Outlook on the web");
        let mut outcome = ComposeOutcome::new(
            ComposeKind::WEB_LINK,
            &format!("the message is saved in the Drafts of {mailbox}; open the link to finish and send it"),
        );
        outcome.draft_id = draft.id.as_str().into();
        outcome.web_link = draft.web_link.as_str().into();
        outcome.details_json = json!({ "mailbox": mailbox, "route": route })
            .to_string()
            .into();
        Ok(outcome)
    }
}

/// Microsoft 365's limit of recipients (To + Cc + Bcc) of one message.
pub const MAX_RECIPIENTS: usize = 500;

/// Before any request: every address is one line (they go into the JSON form
/// and Graph's MIME parser), and the message has at most [`MAX_RECIPIENTS`].
fn check_recipients(message: &OutgoingMessage) -> Result<(), PluginError> {
    let p = &message.parts;
    if let Some(from) = message.envelope.from.as_ref().into_option() {
        wire::request("graph", "envelope sender", from)?;
    }
    for a in message.envelope.to.iter() {
        wire::request("graph", "recipient", a)?;
    }
    for m in std::iter::once(&p.from)
        .chain(p.to.iter())
        .chain(p.cc.iter())
        .chain(p.bcc.iter())
        .chain(p.reply_to.iter())
    {
        wire::request("graph", "address", &m.email)?;
    }
    let count = message
        .envelope
        .to
        .len()
        .max(p.to.len() + p.cc.len() + p.bcc.len());
    if count > MAX_RECIPIENTS {
        return Err(PluginError::permanent(format!(
            "graph: the message has {count} recipients; Microsoft 365 accepts at most \
             {MAX_RECIPIENTS} recipients per message; split the message or use an SMTP account"
        ))
        .with_enhanced("5.5.3"));
    }
    Ok(())
}

impl TransportImpl for GraphTransport {
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        self.run(self.inner.send(message))
    }

    fn compose(&self, message: &OutgoingMessage) -> Result<ComposeOutcome, PluginError> {
        self.run(self.inner.compose(message))
    }

    fn check(&self, options_json: &str) -> Result<CheckReport, PluginError> {
        self.rt.block(self.inner.check(options_json))
    }

    fn status(&self) -> ConnectionStatus {
        self.inner
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|_| ConnectionStatus::new(ConnState::NOT_CONNECTED, ""))
    }

    fn close(&self) {
        if let Ok(mut s) = self.inner.status.lock() {
            *s = ConnectionStatus::new(ConnState::STOPPED, "");
        }
    }
}
