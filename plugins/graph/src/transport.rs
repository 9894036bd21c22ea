//! An opened Graph account: send, compose (draft + webLink), check.

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

/// Largest request body Graph takes in one request (its ~4 MB limit; 413 beyond).
pub const SINGLE_REQUEST_LIMIT: usize = 4 * 1024 * 1024;
/// Attachments from this size on go through an upload session (Graph: 3–150 MB).
pub const UPLOAD_THRESHOLD: usize = 3 * 1024 * 1024;
/// The largest attachment Exchange Online takes through an upload session.
pub const MAX_ATTACHMENT: usize = 150 * 1024 * 1024;
/// Upload chunk: a multiple of 320 KiB and at most 4 MB (12 × 320 KiB = 3.75 MiB).
pub const CHUNK: usize = 12 * 320 * 1024;
// Graph: every chunk but the last a multiple of 320 KiB, each at most 4 MB.
const _: () = assert!(CHUNK % (320 * 1024) == 0 && CHUNK <= 4 * 1024 * 1024);
/// Graph allows 4 concurrent requests per mailbox; more are queued here.
pub const MAILBOX_CONCURRENCY: usize = 4;
/// Failed chunk uploads tolerated per attachment before giving up.
const MAX_CHUNK_FAILURES: u32 = 5;

/// One permit pool per (Graph host, mailbox), shared by every account of this plugin.
fn mailbox_gate(base: &Url, mailbox: &str) -> Arc<Semaphore> {
    static GATES: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let key = format!(
        "{}:{}|{}",
        base.host_str().unwrap_or_default(),
        base.port_or_known_default().unwrap_or(443),
        mailbox.to_ascii_lowercase()
    );
    let gates = GATES.get_or_init(Default::default);
    let mut map = match gates.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    map.entry(key)
        .or_insert_with(|| Arc::new(Semaphore::new(MAILBOX_CONCURRENCY)))
        .clone()
}

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

/// A request body.
enum Payload {
    /// No body (GET).
    None,
    /// An empty body with `Content-Length: 0` (Graph answers 411 to a POST without one).
    Empty,
    Json(Vec<u8>),
    /// Base64 MIME, sent as `text/plain` as Graph requires.
    Mime(Vec<u8>),
}

/// A Graph response, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    /// `METHOD URL`, for messages.
    what: String,
}

impl Answer {
    fn request_id(&self) -> String {
        self.headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// `{id, webLink}` of a created draft.
#[derive(Debug, Deserialize)]
struct Draft {
    id: String,
    #[serde(default, rename = "webLink")]
    web_link: String,
}

#[derive(Debug, Deserialize)]
struct UploadSession {
    #[serde(rename = "uploadUrl")]
    upload_url: String,
}

#[derive(Debug, Default, Deserialize)]
struct UploadProgress {
    #[serde(default, rename = "nextExpectedRanges")]
    next_expected_ranges: Vec<String>,
}

impl UploadProgress {
    /// The first byte the server still expects.
    fn next_offset(&self) -> Option<usize> {
        let first = self.next_expected_ranges.first()?;
        first.split('-').next()?.trim().parse().ok()
    }
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

    /// `{base}users/{mailbox}/…`, each segment percent-encoded.
    fn url(&self, segments: &[&str], query: Option<&str>) -> Result<Url, PluginError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                PluginError::config(format!("graph: base_url {} cannot take a path", self.base))
            })?;
            path.pop_if_empty();
            path.extend(segments);
        }
        url.set_query(query);
        Ok(url)
    }

    /// An access token from the host's broker (a blocking call, off the async workers).
    async fn token(&self, force_refresh: bool) -> Result<String, PluginError> {
        let host = self.host.clone();
        let provider = self.config.oauth.clone();
        let scope = self.config.scope.clone();
        tokio::task::spawn_blocking(move || host.token(&provider, &scope, force_refresh))
            .await
            .map_err(|e| {
                PluginError::transient(format!("graph: the token request did not finish: {e}"))
            })?
            .map_err(|mut e| {
                e.message = format!(
                    "graph: no access token for [oauth.{}]: {}",
                    self.config.oauth, e.message
                )
                .into();
                e
            })
    }

    /// One Graph request with a bearer token, under the mailbox's concurrency
    /// limit. A 401 is answered by fetching a fresh token once and trying again.
    async fn request(
        &self,
        mailbox: &str,
        method: Method,
        segments: &[&str],
        query: Option<&str>,
        payload: &Payload,
    ) -> Result<Answer, PluginError> {
        let url = self.url(segments, query)?;
        let what = format!("{method} {url}");
        let gate = mailbox_gate(&self.base, mailbox);
        let mut refreshed = false;
        loop {
            let token = self.token(refreshed).await?;
            let answer = {
                let _permit = gate
                    .acquire()
                    .await
                    .map_err(|_| PluginError::transient("graph: the mailbox queue was closed"))?;
                let mut rb = self
                    .http
                    .request(method.clone(), url.clone())
                    .bearer_auth(&token);
                rb = match payload {
                    Payload::None => rb,
                    Payload::Empty => rb.header(CONTENT_LENGTH, "0").body(Vec::new()),
                    Payload::Json(b) => rb.header(CONTENT_TYPE, "application/json").body(b.clone()),
                    Payload::Mime(b) => rb.header(CONTENT_TYPE, "text/plain").body(b.clone()),
                };
                let resp = rb.send().await.map_err(|e| error::network(&e, &what))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| error::network(&e, &what))?
                    .to_vec();
                Answer {
                    status,
                    headers,
                    body,
                    what: what.clone(),
                }
            };
            if answer.status == StatusCode::UNAUTHORIZED && !refreshed {
                let (code, message) = error::parse_error(&answer.body);
                tracing::info!(request = %what, code = %code, reason = %message, "Graph refused the access token; fetching a fresh one");
                refreshed = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// The answer when it is a success, else its classified error.
    fn expect(&self, answer: Answer, op: Op, mailbox: &str) -> Result<Answer, PluginError> {
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(error::classify(
                answer.status,
                &answer.headers,
                &answer.body,
                op,
                &answer.what,
                mailbox,
            ))
        }
    }

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
    async fn send_large(
        &self,
        message: &OutgoingMessage,
        mailbox: &str,
        save: bool,
    ) -> Result<Sent, PluginError> {
        if !save {
            tracing::warn!(
                mailbox = %mailbox,
                "message over 4 MB: Graph sends it from a draft, which always keeps a copy in Sent Items (save_to_sent_items = false cannot be honored)"
            );
        }
        let draft = self.create_large_draft(message, mailbox).await?;
        let sent = self
            .request(
                mailbox,
                Method::POST,
                &["users", mailbox, "messages", &draft.id, "send"],
                None,
                &Payload::Empty,
            )
            .await
            .and_then(|a| self.expect(a, Op::SendDraft, mailbox));
        match sent {
            Ok(answer) => Ok(Sent {
                route: "draft-upload-send",
                server_id: draft.id,
                reply: format!("{} send (draft with upload sessions)", answer.status),
                saved_to_sent_items: true,
            }),
            Err(e) => {
                self.delete_draft(mailbox, &draft.id).await;
                Err(e)
            }
        }
    }

    /// Creates a draft from the structured parts: small attachments inline while
    /// the request stays under Graph's limit, the rest one by one, big ones
    /// through upload sessions. On failure the half-built draft is deleted.
    async fn create_large_draft(
        &self,
        message: &OutgoingMessage,
        mailbox: &str,
    ) -> Result<Draft, PluginError> {
        let atts = &message.parts.attachments;
        if let Some(a) = atts.iter().find(|a| a.data.len() > MAX_ATTACHMENT) {
            return Err(PluginError::permanent(format!(
                "graph: attachment {:?} is {} bytes; Exchange Online takes at most 150 MB per attachment — send it as a link instead",
                a.filename.as_str(),
                a.data.len()
            )));
        }
        // Plan: which small attachments fit into the draft request itself.
        let base_len = serde_json::to_vec(&message_json(message, mailbox, &[]))
            .map(|v| v.len())
            .unwrap_or(0);
        let mut budget = SINGLE_REQUEST_LIMIT.saturating_sub(base_len + 1024);
        let mut in_draft = Vec::new();
        let mut separate = Vec::new();
        let mut upload = Vec::new();
        for a in atts.iter() {
            if a.data.len() >= UPLOAD_THRESHOLD {
                upload.push(a);
                continue;
            }
            let cost = a.data.len().div_ceil(3) * 4 + a.filename.len() + a.media_type.len() + 256;
            if cost <= budget {
                budget -= cost;
                in_draft.push(a);
            } else {
                separate.push(a);
            }
        }
        // A service with a lower request limit than planned answers 413: then
        // the draft goes without attachments, and each one is added on its own.
        let mut attempts = vec![in_draft.clone()];
        if !in_draft.is_empty() {
            attempts.push(Vec::new());
        }
        let mut draft = None;
        for attempt in attempts {
            let body =
                serde_json::to_vec(&message_json(message, mailbox, &attempt)).map_err(|e| {
                    PluginError::permanent(format!("graph: cannot encode the message as JSON: {e}"))
                })?;
            let answer = self
                .request(
                    mailbox,
                    Method::POST,
                    &["users", mailbox, "messages"],
                    None,
                    &Payload::Json(body),
                )
                .await?;
            if answer.status == StatusCode::PAYLOAD_TOO_LARGE {
                if attempt.is_empty() {
                    return Err(PluginError::permanent(format!(
                        "graph: {} → 413: the message's text alone is larger than Graph takes in one request (4 MB); shorten the body or move content into attachments",
                        answer.what
                    ))
                    .with_code(413));
                }
                tracing::info!("Graph refused the draft with its small attachments as too large (413); adding them one by one");
                separate.splice(0..0, attempt.iter().copied());
                continue;
            }
            draft = Some(parse_draft(self.expect(answer, Op::Draft, mailbox)?)?);
            break;
        }
        let Some(draft) = draft else {
            return Err(PluginError::transient("graph: the draft was not created"));
        };
        let built = async {
            for a in separate {
                if !self.add_attachment(mailbox, &draft.id, a).await? {
                    // Too large for one request here: an upload session takes any size.
                    self.upload_attachment(mailbox, &draft.id, a).await?;
                }
            }
            for a in upload {
                self.upload_attachment(mailbox, &draft.id, a).await?;
            }
            Ok::<_, PluginError>(())
        }
        .await;
        if let Err(e) = built {
            self.delete_draft(mailbox, &draft.id).await;
            return Err(e);
        }
        Ok(draft)
    }

    /// `POST …/messages/{id}/attachments` with one file; `false` when the service answered 413.
    async fn add_attachment(
        &self,
        mailbox: &str,
        draft_id: &str,
        a: &Attachment,
    ) -> Result<bool, PluginError> {
        let body = serde_json::to_vec(&attachment_json(a)).map_err(|e| {
            PluginError::permanent(format!("graph: cannot encode an attachment: {e}"))
        })?;
        let answer = self
            .request(
                mailbox,
                Method::POST,
                &["users", mailbox, "messages", draft_id, "attachments"],
                None,
                &Payload::Json(body),
            )
            .await?;
        if answer.status == StatusCode::PAYLOAD_TOO_LARGE {
            return Ok(false);
        }
        self.expect(answer, Op::Draft, mailbox)?;
        Ok(true)
    }

    /// Best effort: removes a draft left behind by a failed large send.
    async fn delete_draft(&self, mailbox: &str, id: &str) {
        match self
            .request(
                mailbox,
                Method::DELETE,
                &["users", mailbox, "messages", id],
                None,
                &Payload::None,
            )
            .await
        {
            Ok(a) if a.status.is_success() => {
                tracing::info!(draft = %id, "half-built draft deleted")
            }
            Ok(a) => {
                tracing::warn!(draft = %id, status = %a.status, "could not delete the half-built draft; remove it from Drafts")
            }
            Err(e) => {
                tracing::warn!(draft = %id, error = %e.message(), "could not delete the half-built draft; remove it from Drafts")
            }
        }
    }

    /// `createUploadSession` for one attachment, then its chunks (no
    /// Authorization header on the upload URL), resuming from the server's
    /// `nextExpectedRanges` after a failed chunk.
    async fn upload_attachment(
        &self,
        mailbox: &str,
        draft_id: &str,
        a: &Attachment,
    ) -> Result<(), PluginError> {
        let size = a.data.len();
        if size == 0 {
            return Err(PluginError::permanent(format!(
                "graph: attachment {:?} is empty and cannot go through an upload session",
                a.filename.as_str()
            )));
        }
        let mut item = json!({
            "attachmentType": "file",
            "name": a.filename.as_str(),
            "size": size,
            "contentType": content_type(a),
            "isInline": a.inline,
        });
        if !a.content_id.is_empty() {
            item["contentId"] = json!(a.content_id.as_str());
        }
        let body = serde_json::to_vec(&json!({ "AttachmentItem": item })).map_err(|e| {
            PluginError::permanent(format!(
                "graph: cannot encode the upload session request: {e}"
            ))
        })?;
        let answer = self
            .request(
                mailbox,
                Method::POST,
                &[
                    "users",
                    mailbox,
                    "messages",
                    draft_id,
                    "attachments",
                    "createUploadSession",
                ],
                None,
                &Payload::Json(body),
            )
            .await?;
        let answer = self.expect(answer, Op::Draft, mailbox)?;
        let session: UploadSession = serde_json::from_slice(&answer.body).map_err(|e| {
            PluginError::transient(format!(
                "graph: {}: the answer has no uploadUrl: {e}",
                answer.what
            ))
        })?;
        let upload_url = Url::parse(&session.upload_url).map_err(|e| {
            PluginError::transient(format!(
                "graph: the upload URL {:?} is invalid: {e}",
                session.upload_url
            ))
        })?;
        if upload_url.scheme() != "https" {
            return Err(PluginError::permanent(format!(
                "graph: refusing to upload {:?} to a non-https upload URL",
                a.filename.as_str()
            )));
        }
        let gate = mailbox_gate(&self.base, mailbox);
        let mut offset = 0usize;
        let mut failures = 0u32;
        let mut chunks = 0usize;
        // Enough PUTs for every chunk twice over; a server that keeps asking for
        // the same bytes must not keep us here forever.
        let max_puts = 2 * size.div_ceil(CHUNK) + MAX_CHUNK_FAILURES as usize;
        while offset < size {
            if chunks >= max_puts {
                return Err(PluginError::transient(format!(
                    "graph: the upload session for {:?} made no progress after {chunks} chunks (stuck at byte {offset} of {size})",
                    a.filename.as_str()
                )));
            }
            let end = (offset + CHUNK).min(size);
            match self
                .put_chunk(&gate, &upload_url, &a.data[offset..end], offset, size)
                .await
            {
                Ok(ChunkResult::Done) => {
                    chunks += 1;
                    tracing::debug!(attachment = %a.filename.as_str(), size, chunks, "attachment uploaded");
                    return Ok(());
                }
                Ok(ChunkResult::Next(next)) => {
                    chunks += 1;
                    offset = next.unwrap_or(end).min(size);
                }
                Err(e) => {
                    failures += 1;
                    if failures > MAX_CHUNK_FAILURES || !(e.is_transient() || e.code == 416) {
                        return Err(e);
                    }
                    let wait = e
                        .retry_after_ms()
                        .unwrap_or(250 * u64::from(failures))
                        .min(30_000);
                    tracing::info!(
                        attachment = %a.filename.as_str(),
                        offset,
                        error = %e.message(),
                        "chunk upload failed; asking the upload session where to resume"
                    );
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    chunks += 1;
                    if let Some(next) = self.upload_status(&gate, &upload_url).await {
                        offset = next.min(size);
                    }
                }
            }
        }
        Ok(())
    }

    /// One chunk `PUT` to the upload URL, without an Authorization header.
    async fn put_chunk(
        &self,
        gate: &Semaphore,
        url: &Url,
        data: &[u8],
        start: usize,
        total: usize,
    ) -> Result<ChunkResult, PluginError> {
        let end = start + data.len() - 1;
        let what = format!("PUT upload session (bytes {start}-{end}/{total})");
        let _permit = gate
            .acquire()
            .await
            .map_err(|_| PluginError::transient("graph: the mailbox queue was closed"))?;
        let resp = self
            .http
            .put(url.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_RANGE, format!("bytes {start}-{end}/{total}"))
            .body(data.to_vec())
            .send()
            .await
            .map_err(|e| error::network(&e, &what))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| error::network(&e, &what))?;
        match status.as_u16() {
            201 => Ok(ChunkResult::Done),
            200 | 202 => {
                let progress: UploadProgress = serde_json::from_slice(&body).unwrap_or_default();
                if end + 1 >= total && progress.next_expected_ranges.is_empty() {
                    Ok(ChunkResult::Done)
                } else {
                    Ok(ChunkResult::Next(progress.next_offset()))
                }
            }
            _ => Err(error::classify(
                status,
                &headers,
                &body,
                Op::Draft,
                &what,
                "",
            )),
        }
    }

    /// Where the upload session wants the next byte (GET on the upload URL, no Authorization).
    async fn upload_status(&self, gate: &Semaphore, url: &Url) -> Option<usize> {
        let _permit = gate.acquire().await.ok()?;
        let resp = self.http.get(url.clone()).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let progress: UploadProgress = serde_json::from_slice(&resp.bytes().await.ok()?).ok()?;
        progress.next_offset()
    }

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

    async fn check(&self, options_json: &str) -> Result<CheckReport, PluginError> {
        let mut report = CheckReport::new();
        let opts = RequestOptions::from_json(options_json)?;
        let mailbox = opts
            .host
            .mailbox
            .unwrap_or_else(|| self.config.mailbox.clone());

        let started = Instant::now();
        let token = match self.token(false).await {
            Ok(t) => {
                report.push(
                    "token",
                    StepOutcome::OK,
                    &format!(
                        "[oauth.{}] issued an access token for {}",
                        self.config.oauth, self.config.scope
                    ),
                    "",
                    ms(started),
                );
                t
            }
            Err(e) => {
                report.push("token", StepOutcome::FAILED, e.message(), "", ms(started));
                report.push("permissions", StepOutcome::SKIPPED, "no token", "", 0);
                report.push("mailbox", StepOutcome::SKIPPED, "no token", "", 0);
                return Ok(report);
            }
        };

        let started = Instant::now();
        match jwt::claims(&token) {
            Ok(claims) => {
                let roles = claims.roles.join(", ");
                let server = format!(
                    "roles: [{roles}]; aud: {}; appid: {}; tid: {}; exp: {}",
                    claims.aud,
                    claims.appid.as_deref().unwrap_or("-"),
                    claims.tid.as_deref().unwrap_or("-"),
                    claims
                        .exp
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "-".into())
                );
                let has = |r: &str| claims.roles.iter().any(|x| x.eq_ignore_ascii_case(r));
                if !has("Mail.Send") {
                    report.push(
                        "permissions",
                        StepOutcome::FAILED,
                        "the token has no Mail.Send role: the app lacks the Mail.Send application permission or admin consent was not granted — add it under API permissions (Microsoft Graph, Application) and grant admin consent",
                        &server,
                        ms(started),
                    );
                } else if !has("Mail.ReadWrite") {
                    report.push(
                        "permissions",
                        StepOutcome::WARNING,
                        "Mail.Send is granted but Mail.ReadWrite is not (or lacks admin consent): sending small messages works; drafts (m365-draft) and messages over 4 MB will fail — add Mail.ReadWrite and grant admin consent",
                        &server,
                        ms(started),
                    );
                } else {
                    report.push(
                        "permissions",
                        StepOutcome::OK,
                        "Mail.Send and Mail.ReadWrite are granted",
                        &server,
                        ms(started),
                    );
                }
            }
            Err(why) => report.push(
                "permissions",
                StepOutcome::WARNING,
                &format!(
                    "cannot read the token's roles ({why}); the mailbox call below still tests it"
                ),
                "",
                ms(started),
            ),
        }

        let started = Instant::now();
        let answer = self
            .request(
                &mailbox,
                Method::GET,
                &["users", &mailbox],
                Some("$select=id,displayName,mail,userPrincipalName"),
                &Payload::None,
            )
            .await;
        match answer {
            Ok(a) if a.status.is_success() => {
                let user: Value = serde_json::from_slice(&a.body).unwrap_or_default();
                let name = user["displayName"].as_str().unwrap_or_default();
                let mail = user["mail"]
                    .as_str()
                    .or(user["userPrincipalName"].as_str())
                    .unwrap_or(&mailbox);
                report.push(
                    "mailbox",
                    StepOutcome::OK,
                    &format!("mailbox {mail} ({name}) found"),
                    &String::from_utf8_lossy(&a.body),
                    ms(started),
                );
            }
            Ok(a) if a.status == StatusCode::FORBIDDEN => {
                let (code, message) = error::parse_error(&a.body);
                report.push(
                    "mailbox",
                    StepOutcome::WARNING,
                    &format!("the app may not read user objects (needs User.Read.All), so whether {mailbox} exists is not confirmed; sending does not need it"),
                    &format!("{} {code}: {message}", a.status.as_u16()),
                    ms(started),
                );
            }
            Ok(a) => {
                let e = error::classify(
                    a.status,
                    &a.headers,
                    &a.body,
                    Op::ReadMailbox,
                    &a.what,
                    &mailbox,
                );
                let (code, message) = error::parse_error(&a.body);
                report.push(
                    "mailbox",
                    StepOutcome::FAILED,
                    e.message(),
                    &format!("{} {code}: {message}", a.status.as_u16()),
                    ms(started),
                );
            }
            Err(e) => report.push("mailbox", StepOutcome::FAILED, e.message(), "", ms(started)),
        }
        Ok(report)
    }
}

enum ChunkResult {
    Done,
    /// More to send; the server's next expected offset when it said.
    Next(Option<usize>),
}

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

fn parse_draft(answer: Answer) -> Result<Draft, PluginError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        PluginError::transient(format!(
            "graph: {}: the answer is not a message with an id: {e}",
            answer.what
        ))
    })
}

fn content_type(a: &Attachment) -> &str {
    if a.media_type.is_empty() {
        "application/octet-stream"
    } else {
        a.media_type.as_str()
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

fn recipient(m: &Mailbox) -> Value {
    match m.name() {
        Some(name) => json!({ "emailAddress": { "name": name, "address": m.email.as_str() } }),
        None => json!({ "emailAddress": { "address": m.email.as_str() } }),
    }
}

fn attachment_json(a: &Attachment) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": a.filename.as_str(),
        "contentType": content_type(a),
        "contentBytes": STANDARD.encode(a.data.as_slice()),
        "isInline": a.inline,
    });
    if !a.content_id.is_empty() {
        v["contentId"] = json!(a.content_id.as_str());
    }
    v
}

/// Graph's JSON message from the structured parts (with the given attachments).
fn message_json(message: &OutgoingMessage, mailbox: &str, attachments: &[&Attachment]) -> Value {
    let p = &message.parts;
    let body = match (p.html.as_ref().into_option(), p.text.as_ref().into_option()) {
        (Some(html), _) => json!({ "contentType": "HTML", "content": html.as_str() }),
        (None, Some(text)) => json!({ "contentType": "Text", "content": text.as_str() }),
        (None, None) => json!({ "contentType": "Text", "content": "" }),
    };
    let list = |l: &[Mailbox]| l.iter().map(recipient).collect::<Vec<_>>();
    let mut v = json!({
        "subject": p.subject.as_str(),
        "body": body,
        "toRecipients": list(&p.to),
        "ccRecipients": list(&p.cc),
        "bccRecipients": list(&p.bcc),
        "replyTo": list(&p.reply_to),
    });
    // Sending as another address than the mailbox needs Send As / Send on Behalf rights.
    if !p.from.email.is_empty() && !p.from.email.eq_ignore_ascii_case(mailbox) {
        v["from"] = recipient(&p.from);
    }
    if !message.message_id.is_empty() {
        v["internetMessageId"] =
            json!(format!("<{}>", message.message_id.trim_matches(['<', '>'])));
    }
    let headers = custom_headers(&message.mime);
    if !headers.is_empty() {
        v["internetMessageHeaders"] = headers
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
    }
    if !attachments.is_empty() {
        v["attachments"] = attachments.iter().map(|a| attachment_json(a)).collect();
    }
    v
}

/// Total size of custom headers carried into Graph's JSON form (Exchange caps headers at 256 KB).
const MAX_CUSTOM_HEADER_BYTES: usize = 64 * 1024;

/// The `X-…` header fields of the host's MIME, unfolded: Graph's JSON form
/// takes custom headers only when they are named `x-…`.
fn custom_headers(mime: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in mime.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break; // end of the header section
        }
        let text = String::from_utf8_lossy(line);
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(text.trim());
            }
            continue;
        }
        let (name, value) = text.split_once(':').unwrap_or((&text, ""));
        fields.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut total = 0;
    fields
        .into_iter()
        .filter(|(name, _)| name.len() > 2 && name[..2].eq_ignore_ascii_case("x-"))
        .filter(|(name, value)| {
            total += name.len() + value.len();
            if total > MAX_CUSTOM_HEADER_BYTES {
                tracing::warn!(header = %name, "custom header dropped: the custom headers exceed 64 KB");
                false
            } else {
                true
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_headers_are_the_x_fields_unfolded() {
        let mime = b"From: a@example.com\r\nX-ERP-Document: 4711\r\nx-long: one\r\n two\r\nSubject: hi\r\nX-: bad\r\n\r\nX-Body: not a header\r\n";
        assert_eq!(
            custom_headers(mime),
            [
                ("X-ERP-Document".to_string(), "4711".to_string()),
                ("x-long".to_string(), "one two".to_string())
            ]
        );
    }

    #[test]
    fn upload_progress_reads_the_first_range() {
        let p: UploadProgress =
            serde_json::from_str(r#"{"nextExpectedRanges":["327680-","9000-9999"]}"#).unwrap();
        assert_eq!(p.next_offset(), Some(327_680));
        assert_eq!(UploadProgress::default().next_offset(), None);
    }
}
