//! HTTP plumbing: the per-mailbox concurrency gate, request bodies and
//! answers, URLs, bearer tokens from the host's broker (one refresh on 401).

use super::*;

/// One permit pool per (Graph host, mailbox), shared by every account of this plugin.
pub(super) fn mailbox_gate(base: &Url, mailbox: &str) -> Arc<Semaphore> {
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

/// A request body.
pub(super) enum Payload {
    /// No body (GET).
    None,
    /// An empty body with `Content-Length: 0` (Graph answers 411 to a POST without one).
    Empty,
    Json(Vec<u8>),
    /// Base64 MIME, sent as `text/plain` as Graph requires.
    Mime(Vec<u8>),
}

/// A Graph response, read whole.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
    /// `METHOD URL`, for messages.
    pub(super) what: String,
}

impl Answer {
    pub(super) fn request_id(&self) -> String {
        self.headers
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

impl Inner {
    /// `{base}users/{mailbox}/…`, each segment percent-encoded.
    pub(super) fn url(&self, segments: &[&str], query: Option<&str>) -> Result<Url, PluginError> {
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
    pub(super) async fn token(&self, force_refresh: bool) -> Result<String, PluginError> {
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
    pub(super) async fn request(
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
    pub(super) fn expect(
        &self,
        answer: Answer,
        op: Op,
        mailbox: &str,
    ) -> Result<Answer, PluginError> {
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
}
