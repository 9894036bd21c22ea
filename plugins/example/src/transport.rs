//! The opened account: what the host calls for each message.
//!
//! # Why reqwest's blocking client
//!
//! The HTTP client is `reqwest` 0.13 with its `blocking` feature, on rustls with
//! the `ring` provider. Reasons:
//!
//! * **One HTTP stack.** The host and the Graph plugin already use reqwest
//!   0.13 + rustls/ring (one HTTP and one TLS stack for the whole workspace,
//!   so feature sets do not flip between builds): in the workspace this plugin adds no new
//!   crates, and in an integrator's build it uses the crates their mailhost
//!   build has already fetched. (`ureq` 3 would also do — smaller, no tokio —
//!   but it would be a second HTTP and TLS stack to build and audit.)
//! * **Blocking fits the ABI.** [`TransportImpl`] methods are plain blocking
//!   calls; the host calls them from worker threads (`spawn_blocking`), never
//!   from inside an async task. The blocking client runs its own small tokio
//!   runtime on a thread it owns, so this crate needs no runtime of its own.
//!   (A plugin may also own a tokio runtime and `block_on` async code — the
//!   SMTP and Graph plugins do.)
//!
//! # Threads
//!
//! Every method takes `&self`: the host calls one transport from several
//! worker threads at once. `reqwest::blocking::Client` is a cheap, shareable
//! connection pool; the status lives behind a `Mutex`.
//!
//! # Panics
//!
//! The glue from `export_plugin!` wraps each method in `catch_unwind`. A bug
//! that panics here becomes `PluginError { class: PERMANENT, message: "plugin
//! panicked in send: …" }` and the host goes on. Still: return errors, do not
//! panic — a panic tells the admin nothing they can act on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use mailhost_plugin_api::abi_stable::std_types::RVec;
use mailhost_plugin_api::{
    CheckReport, ConnState, ConnectionStatus, Host, OutgoingMessage, PluginError, Receipt,
    StepOutcome, TransportImpl,
};
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode, Url};

use crate::classify::{classify_error, classify_status, error_chain, server_text};
use crate::payload::{redacted_url, WebhookPayload};
use crate::WebhookConfig;

/// The header carrying the message's idempotency key (stable across retries).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Headers the plugin sets itself; configuring them is an error.
const RESERVED_HEADERS: [&str; 5] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    IDEMPOTENCY_HEADER,
];

/// An opened webhook account.
#[derive(Debug)]
pub struct WebhookTransport {
    client: Client,
    url: Url,
    /// The URL without query or user-info: what logs and errors show.
    display: String,
    timeout: Duration,
    header_names: Vec<String>,
    status: Mutex<ConnectionStatus>,
}

/// How a secret reference may be named in an error: the reference itself for
/// `env:`/`file:`, never the value of a literal.
fn describe_reference(reference: &str) -> String {
    if reference.starts_with("env:") || reference.starts_with("file:") {
        format!("`{reference}`")
    } else {
        "a literal value".to_string()
    }
}

impl WebhookTransport {
    /// Checks the settings, resolves the secrets and builds the HTTP client.
    /// Everything that can be wrong with the settings is reported here, as a
    /// `Config` error naming the setting — not later, per message.
    pub fn open(config: WebhookConfig, host: &Host) -> Result<Self, PluginError> {
        let url = Url::parse(&config.url).map_err(|e| {
            PluginError::config(format!(
                "example: `url` is not a valid URL ({e}); write it as https://host[:port]/path"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(PluginError::config(format!(
                "example: `url` must be an http:// or https:// URL with a host, not {}",
                redacted_url(&config.url)
            )));
        }
        let shown = redacted_url(&config.url);

        // Secrets: each header value is a secret reference (`env:NAME`,
        // `file:PATH`) or a literal, resolved by the host — a plugin never reads
        // environment variables or secret files itself. The host's error names
        // the reference, never the value; so do ours.
        let mut headers = HeaderMap::new();
        for (name, reference) in &config.headers {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                PluginError::config(format!(
                    "example: `headers.{name}` is not a valid HTTP header name"
                ))
            })?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(PluginError::config(format!(
                    "example: `headers.{name}` is set by the plugin itself; remove it from the account"
                )));
            }
            let value = host.secret(reference).map_err(|e| {
                PluginError::config(format!("example: `headers.{name}`: {}", e.message()))
            })?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                PluginError::config(format!(
                    "example: `headers.{name}`: the value from {} is not a valid header value (line break or control character); fix the secret",
                    describe_reference(reference)
                ))
            })?;
            // Marks it sensitive: reqwest and `http` leave it out of Debug output.
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        if url.scheme() == "http" && !headers.is_empty() {
            tracing::warn!(
                url = %shown,
                "example: headers (maybe credentials) go to a plain-http URL; use https"
            );
        }

        // TLS: our own rustls configuration (see tls.rs) — verification on,
        // the platform's roots plus `ca_file`, unless the admin turned it off.
        if config.accept_invalid_certs {
            tracing::warn!(
                url = %shown,
                "example: accept_invalid_certs = true: the webhook's TLS certificate is NOT verified; use ca_file instead outside tests"
            );
        }
        let tls =
            crate::tls::client_config(config.ca_file.as_deref(), config.accept_invalid_certs)?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let builder = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A POST must not silently turn into a GET on a 302: report redirects.
            .redirect(Policy::none())
            .user_agent(concat!("mailhost-example/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .tls_backend_preconfigured(tls);
        let client = builder.build().map_err(|e| {
            PluginError::config(format!(
                "example: cannot set up the HTTP client: {}",
                error_chain(&e)
            ))
        })?;
        tracing::debug!(url = %shown, "example: account opened");
        Ok(Self {
            client,
            url,
            display: shown,
            timeout,
            header_names: config.headers.keys().cloned().collect(),
            status: Mutex::new(ConnectionStatus::new(ConnState::NOT_CONNECTED, "")),
        })
    }

    /// The URL as logs show it (no query, no user-info).
    pub fn url(&self) -> &str {
        &self.display
    }

    fn set_status(&self, state: ConnState, reason: &str) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if s.state != state || s.reason.as_str() != reason {
            *s = ConnectionStatus::new(state, reason);
        }
    }

    /// One request without a body (for `check`): status and body text, or the classified error.
    fn probe_request(&self, method: Method) -> Result<(StatusCode, String), PluginError> {
        let response = self
            .client
            .request(method, self.url.clone())
            .send()
            .map_err(|e| classify_error(&self.display, self.timeout, &e))?;
        let status = response.status();
        Ok((status, response.text().unwrap_or_default()))
    }
}

impl TransportImpl for WebhookTransport {
    /// POSTs the message; 2xx is delivered, everything else a classified error.
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        if message.envelope.to.is_empty() {
            return Err(PluginError::permanent(
                "example: the message has no recipient",
            ));
        }
        let body = WebhookPayload::new(message).to_json().map_err(|e| {
            PluginError::permanent(format!("example: cannot encode the message as JSON: {e}"))
        })?;
        let key = HeaderValue::from_str(&message.idempotency_key).map_err(|_| {
            PluginError::permanent(
                "example: the idempotency key is not a valid HTTP header value; use printable ASCII",
            )
        })?;
        let started = Instant::now();
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, key)
            .body(body)
            .send();
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let err = classify_error(&self.display, self.timeout, &e);
                self.set_status(ConnState::UNABLE_TO_CONNECT, err.message());
                // `tracing` events reach the host's log (the glue forwards them).
                tracing::warn!(message_id = %message.message_id, "{}", err.message());
                return Err(err);
            }
        };
        // An HTTP answer, whatever it says, means the receiver is reachable.
        self.set_status(ConnState::OPERATING, "");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().unwrap_or_default();
        if let Err(err) = classify_status(&self.display, status, &headers, &text) {
            tracing::warn!(message_id = %message.message_id, class = %err.class(), "{}", err.message());
            return Err(err);
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            message_id = %message.message_id,
            status = status.as_u16(),
            elapsed_ms,
            "example: delivered to webhook {}",
            self.display
        );
        // A receiver that answers `{"id": "..."}` gets its id into the receipt.
        let server_id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
            .unwrap_or_default();
        Ok(Receipt {
            message_id: message.message_id.clone(),
            server_id: server_id.into(),
            server_reply: server_text(status, &text).into(),
            accepted: message.envelope.to.clone(),
            rejected: RVec::new(),
            details_json: serde_json::json!({
                "url": self.display,
                "status": status.as_u16(),
                "elapsed_ms": elapsed_ms,
            })
            .to_string()
            .into(),
        })
    }

    /// The "Test settings" button: one step per thing checked, each with the
    /// server's words. Returns `Ok(report)` even when a step failed — `Err` is
    /// for a check that could not run at all.
    fn check(&self, _options_json: &str) -> Result<CheckReport, PluginError> {
        let mut report = CheckReport::new();
        let extra = if self.header_names.is_empty() {
            "no extra headers".to_string()
        } else {
            format!("headers {}", self.header_names.join(", "))
        };
        report.push(
            "settings",
            StepOutcome::OK,
            &format!(
                "POST to {}, {extra}, timeout {} ms",
                self.display,
                self.timeout.as_millis()
            ),
            "",
            0,
        );

        // HEAD first (no body), GET if the receiver does not do HEAD. Many
        // webhooks answer only POST: a 405 still proves the URL is reachable.
        let started = Instant::now();
        let mut answer = self.probe_request(Method::HEAD);
        let mut method = "HEAD";
        if let Ok((s, _)) = &answer {
            if *s == StatusCode::METHOD_NOT_ALLOWED || *s == StatusCode::NOT_IMPLEMENTED {
                answer = self.probe_request(Method::GET);
                method = "GET";
            }
        }
        let ms = started.elapsed().as_millis() as u64;
        match answer {
            Err(e) => {
                self.set_status(ConnState::UNABLE_TO_CONNECT, e.message());
                report.push("request", StepOutcome::FAILED, e.message(), "", ms);
            }
            Ok((status, body)) => {
                self.set_status(ConnState::OPERATING, "");
                let said = server_text(status, &body);
                let (outcome, detail) = match status.as_u16() {
                    200..=399 => (StepOutcome::OK, format!("{} answers {method}", self.display)),
                    405 => (
                        StepOutcome::OK,
                        format!("{} is reachable; it answers {method} with 405, as a POST-only endpoint does", self.display),
                    ),
                    401 | 403 => (
                        StepOutcome::FAILED,
                        format!("{} refused our credentials; check the Authorization header in `headers`", self.display),
                    ),
                    500..=599 => (
                        StepOutcome::FAILED,
                        format!("{} is failing ({method} got a server error); sends would be retried", self.display),
                    ),
                    _ => (
                        StepOutcome::WARNING,
                        format!("{} answers {method} with an error; check the path in `url` (some receivers answer POST only)", self.display),
                    ),
                };
                report.push("request", outcome, &detail, &said, ms);
            }
        }
        Ok(report)
    }

    /// The last thing we know: not connected yet, operating (the receiver
    /// answered), or unable to connect (with the reason).
    fn status(&self) -> ConnectionStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The host is done with the account. The client's pool closes when the
    /// transport is dropped; we only record the state.
    fn close(&self) {
        self.set_status(ConnState::STOPPED, "closed by the host");
    }
}
