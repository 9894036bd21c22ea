//! The OAuth2 token broker shared by every plugin.
//!
//! Contract used by the rest of the host:
//! * `TokenBroker::new(clients)` with one [`OAuthClientConfig`] per `[oauth.NAME]`;
//! * `TokenBroker::token(provider, scope, force_refresh)` — blocking, callable
//!   from any thread (also from inside a tokio runtime), never logs a token.
//!
//! How it works:
//! * OAuth2 client credentials (`oauth2` crate) against
//!   `{authority}/{tenant}/oauth2/v2.0/token`, the secret sent in the form body
//!   as Microsoft's identity platform expects.
//! * HTTP through the workspace's one reqwest (0.13) with a rustls `ClientConfig`
//!   built here on the `ring` provider (so no process-wide provider is needed);
//!   oauth2's own `reqwest` feature, which would pull reqwest 0.12, stays off.
//! * The HTTP runs on the broker's own runtime thread; `token()` waits on a std
//!   channel, so it works from plain threads and from tokio workers alike.
//! * Tokens are cached per (client, scope) until shortly before they expire.
//!   Callers asking for the same key at the same time share one request (a
//!   per-key lock); `force_refresh` (after a 401) drops the cached token unless
//!   another caller already replaced it while this one waited.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mailhost_plugin_api::PluginError;
use mailhost_rt::RuntimeThread;
use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse,
    RequestTokenError, Scope, TokenResponse, TokenUrl,
};

/// The public cloud's authority (Microsoft Entra ID).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// How long one token request may take before it counts as a network failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh this long before expiry at most (and a fifth of the lifetime for short-lived tokens).
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Assumed lifetime when the server sends no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// One `[oauth.NAME]` client, secrets already resolved.
#[derive(Clone)]
pub struct OAuthClientConfig {
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    /// e.g. `https://login.microsoftonline.com`; tests point it at the Graph double.
    pub authority: String,
    /// Extra CA certificate (PEM) to trust for the authority, for tests and private clouds.
    pub ca_file: Option<PathBuf>,
}

impl OAuthClientConfig {
    /// A client of the public cloud ([`DEFAULT_AUTHORITY`]) with no extra CA.
    pub fn new(name: &str, tenant: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            name: name.to_string(),
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            authority: DEFAULT_AUTHORITY.to_string(),
            ca_file: None,
        }
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        let authority = if self.authority.is_empty() {
            DEFAULT_AUTHORITY
        } else {
            self.authority.trim_end_matches('/')
        };
        format!("{authority}/{}/oauth2/v2.0/token", self.tenant)
    }
}

impl fmt::Debug for OAuthClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClientConfig")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("authority", &self.authority)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Counters, for tests and the admin page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Token requests sent to an authority (successful or not).
    pub requests: u64,
    /// Calls answered from the cache.
    pub cache_hits: u64,
}

/// A cached access token. Debug never shows the token.
#[derive(Clone)]
struct Cached {
    token: String,
    /// When we stop handing it out (shortly before the server's expiry).
    refresh_at: Instant,
    /// When it was fetched.
    fetched_at: Instant,
}

/// One (client, scope) slot; its lock is held while a token is fetched, so
/// concurrent callers for the same key share one request.
type Slot = Arc<Mutex<Option<Cached>>>;

/// Shares OAuth2 access tokens among plugins.
pub struct TokenBroker {
    clients: BTreeMap<String, OAuthClientConfig>,
    slots: Mutex<HashMap<(String, String), Slot>>,
    http: Mutex<HashMap<String, reqwest::Client>>,
    runtime: OnceLock<Result<RuntimeThread, String>>,
    stats: Mutex<BrokerStats>,
}

impl Default for TokenBroker {
    fn default() -> Self {
        Self::new(BTreeMap::new())
    }
}

impl fmt::Debug for TokenBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBroker")
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TokenBroker {
    pub fn new(clients: BTreeMap<String, OAuthClientConfig>) -> Self {
        Self {
            clients,
            slots: Mutex::new(HashMap::new()),
            http: Mutex::new(HashMap::new()),
            runtime: OnceLock::new(),
            stats: Mutex::new(BrokerStats::default()),
        }
    }

    /// The configured client names.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }

    /// Request and cache counters since the broker was created.
    pub fn stats(&self) -> BrokerStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// An access token for `provider` (an `[oauth.NAME]`) and `scope`.
    ///
    /// Blocking; callable from any thread, including tokio workers (prefer
    /// `spawn_blocking` there). `force_refresh` drops the cached token first
    /// (call it after the service answered 401 to the cached one).
    pub fn token(
        &self,
        provider: &str,
        scope: &str,
        force_refresh: bool,
    ) -> Result<String, PluginError> {
        let client = self.clients.get(provider).ok_or_else(|| {
            PluginError::config(format!(
                "no OAuth client [oauth.{provider}] is configured; add one or fix the account's `oauth` key"
            ))
        })?;
        if scope.trim().is_empty() {
            return Err(PluginError::config(format!(
                "[oauth.{provider}]: a token was requested without a scope; set the account's `scope` (e.g. https://graph.microsoft.com/.default)"
            )));
        }
        let asked_at = Instant::now();
        let slot = self.slot(provider, scope);
        let mut cached = match slot.lock() {
            Ok(c) => c,
            // A caller panicked while fetching: the slot holds at worst a stale token; drop it.
            Err(poisoned) => {
                let mut c = poisoned.into_inner();
                *c = None;
                c
            }
        };
        if let Some(c) = cached.as_ref() {
            // A token fetched after this call began (by a caller we waited for) is
            // fresh even when we were asked to refresh: the 401 was for an older one.
            let fresh_enough = !force_refresh || c.fetched_at >= asked_at;
            if fresh_enough && Instant::now() < c.refresh_at {
                self.count(|s| s.cache_hits += 1);
                return Ok(c.token.clone());
            }
        }
        *cached = None;
        let fetched = self.fetch(client, scope)?;
        let token = fetched.token.clone();
        *cached = Some(fetched);
        Ok(token)
    }

    /// Drops every cached token (e.g. after the configuration changed).
    pub fn clear(&self) {
        if let Ok(slots) = self.slots.lock() {
            for slot in slots.values() {
                if let Ok(mut c) = slot.lock() {
                    *c = None;
                }
            }
        }
    }

    fn slot(&self, provider: &str, scope: &str) -> Slot {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        slots
            .entry((provider.to_string(), scope.to_string()))
            .or_default()
            .clone()
    }

    fn count(&self, f: impl FnOnce(&mut BrokerStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    fn http_client(&self, client: &OAuthClientConfig) -> Result<reqwest::Client, PluginError> {
        let mut map = match self.http.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(c) = map.get(&client.name) {
            return Ok(c.clone());
        }
        let tls = tls_config(client.ca_file.as_deref())
            .map_err(|e| PluginError::config(format!("[oauth.{}]: {e}", client.name)))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            // The token endpoint must not redirect (RFC 6749 §3.2 and SSRF hygiene).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("mailhost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                PluginError::config(format!(
                    "[oauth.{}]: cannot build the HTTP client: {e}",
                    client.name
                ))
            })?;
        map.insert(client.name.clone(), http.clone());
        Ok(http)
    }

    fn runtime(&self) -> Result<&RuntimeThread, PluginError> {
        self.runtime
            .get_or_init(|| RuntimeThread::start("mailhost-tokens", 1).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| {
                PluginError::unavailable(format!("the token broker cannot start its runtime: {e}"))
            })
    }

    /// One token request to the authority, on the broker's runtime thread.
    fn fetch(&self, client: &OAuthClientConfig, scope: &str) -> Result<Cached, PluginError> {
        let http = self.http_client(client)?;
        let token_url = TokenUrl::new(client.token_url()).map_err(|e| {
            PluginError::config(format!(
                "[oauth.{}]: the token URL {} is invalid ({e}); fix `authority` or `tenant`",
                client.name,
                client.token_url()
            ))
        })?;
        let oauth = BasicClient::new(ClientId::new(client.client_id.clone()))
            .set_client_secret(ClientSecret::new(client.client_secret.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(token_url);
        let scope_owned = scope.to_string();
        let started = Instant::now();
        self.count(|s| s.requests += 1);
        tracing::debug!(provider = %client.name, scope, "requesting an OAuth2 access token");
        let result = self.runtime()?.run(async move {
            let http = Http(http);
            oauth
                .exchange_client_credentials()
                .add_scope(Scope::new(scope_owned))
                .request_async(&http)
                .await
        });
        let result = result.map_err(|_| {
            PluginError::transient(
                "the token request was abandoned (the broker's runtime stopped); try again",
            )
        })?;
        match result {
            Ok(response) => {
                let lifetime = response.expires_in().unwrap_or(DEFAULT_LIFETIME);
                let token = response.access_token().secret().clone();
                tracing::debug!(
                    provider = %client.name,
                    scope,
                    expires_in_s = lifetime.as_secs(),
                    "access token received"
                );
                Ok(Cached {
                    token,
                    refresh_at: started + usable_for(lifetime),
                    fetched_at: Instant::now(),
                })
            }
            Err(e) => {
                let err = classify(client, scope, e);
                tracing::warn!(provider = %client.name, scope, error = %err.message(), "token request failed");
                Err(err)
            }
        }
    }
}

/// How long a token with `lifetime` is handed out: until shortly before it
/// expires (5 minutes, or a fifth of the lifetime for short-lived tokens).
fn usable_for(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(MAX_REFRESH_MARGIN.min(lifetime / 5))
}

/// oauth2's HTTP client trait over the workspace's reqwest 0.13.
struct Http(reqwest::Client);

/// A failed HTTP exchange with the authority (network, TLS, timeout).
#[derive(Debug)]
struct HttpError(String, ErrorKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Network,
    /// The authority's certificate did not verify: a configuration problem.
    Certificate,
    /// Could not even form the request.
    Invalid,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(|e| {
                HttpError(format!("invalid token request: {e}"), ErrorKind::Invalid)
            })?;
            let url = request.url().clone();
            let response = self
                .0
                .execute(request)
                .await
                .map_err(|e| http_error(&e, url.as_str()))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| http_error(&e, url.as_str()))?;
            let mut out = oauth2::http::Response::builder().status(status);
            if let Some(h) = out.headers_mut() {
                *h = headers;
            }
            out.body(body.to_vec()).map_err(|e| {
                HttpError(
                    format!("unreadable response from {url}: {e}"),
                    ErrorKind::Network,
                )
            })
        })
    }
}

fn http_error(e: &reqwest::Error, url: &str) -> HttpError {
    let kind = if mailhost_tls::is_certificate_error(e) {
        ErrorKind::Certificate
    } else {
        ErrorKind::Network
    };
    HttpError(describe_reqwest_error(e, url), kind)
}

/// The error chain of a reqwest error in one line (reqwest's top-level text
/// alone says little: "error sending request").
fn describe_reqwest_error(e: &reqwest::Error, url: &str) -> String {
    let mut text = if e.is_timeout() {
        format!(
            "timed out after {} s talking to {url}",
            REQUEST_TIMEOUT.as_secs()
        )
    } else if e.is_connect() {
        format!("cannot connect to {url}")
    } else {
        format!("request to {url} failed")
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Trusts the platform's roots and, when given, the CA certificates in
/// `ca_file` (PEM); see [`mailhost_tls::client_config`].
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    mailhost_tls::client_config(ca_file)
}

/// What an AADSTS code means and what to do about it.
pub fn aadsts_meaning(code: u32) -> Option<(&'static str, &'static str)> {
    Some(match code {
        7000215 => (
            "invalid client secret: the secret sent is not the one registered for the app",
            "copy the secret's Value (not its Secret ID) from the app registration's Certificates & secrets into client_secret",
        ),
        7000222 => (
            "the client secret has expired",
            "create a new client secret in the app registration (Certificates & secrets) and update client_secret",
        ),
        700016 => (
            "unknown application: no app with this client_id exists in the tenant",
            "check client_id (the Application (client) ID) and tenant, and that the app is consented in this tenant",
        ),
        90002 => (
            "unknown tenant: no such directory",
            "check `tenant` (the Directory (tenant) ID or a verified domain such as contoso.onmicrosoft.com) and `authority` for national clouds",
        ),
        7000218 => (
            "the request carries no client secret or assertion",
            "set client_secret for this client",
        ),
        700024 => (
            "the client assertion is not within its valid time range",
            "check the host's clock",
        ),
        1002012 => (
            "the scope is not valid for the client-credentials flow",
            "use a scope ending in /.default, e.g. https://graph.microsoft.com/.default",
        ),
        500011 => (
            "the resource (the scope's service principal) was not found in the tenant",
            "check the scope's resource URL and that the API is available in the tenant",
        ),
        7000112 => ("the application is disabled", "enable the app in the tenant (Enterprise applications)"),
        50034 | 50126 => ("the user or credentials are not valid", "check the credentials"),
        _ => return None,
    })
}

/// The first `AADSTSnnnn` number in `text`.
pub fn aadsts_code(text: &str) -> Option<u32> {
    let at = text.find("AADSTS")?;
    let digits: String = text[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Turns a failed token request into a classified error that names the
/// client, the authority's answer (AADSTS code and its meaning) and what to do.
/// The secret is never part of the text.
fn classify(
    client: &OAuthClientConfig,
    scope: &str,
    e: RequestTokenError<HttpError, BasicErrorResponse>,
) -> PluginError {
    let who = format!(
        "[oauth.{}] token request to {} (client_id {}, scope {scope})",
        client.name,
        client.token_url(),
        client.client_id
    );
    let err = match e {
        RequestTokenError::ServerResponse(resp) => {
            let error = resp.error().to_string();
            let description = resp.error_description().cloned().unwrap_or_default();
            // Microsoft's description runs on with "Trace ID: … Correlation ID: … Timestamp: …".
            let first_line = description
                .split("\r\n")
                .next()
                .unwrap_or_default()
                .split(" Trace ID:")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let server = if first_line.is_empty() {
                error.clone()
            } else {
                format!("{error}: {first_line}")
            };
            match aadsts_code(&description) {
                Some(code) => {
                    let (meaning, todo) = aadsts_meaning(code).unwrap_or((
                        "the identity platform refused the request",
                        "look the code up in Microsoft's AADSTS error reference",
                    ));
                    let text = format!(
                        "{who} refused: AADSTS{code} — {meaning}; {todo} (server said: {server})"
                    );
                    match code {
                        // The tenant, app or scope named in the configuration does not exist.
                        90002 | 1002012 | 500011 => PluginError::config(text),
                        _ => PluginError::auth(text),
                    }
                }
                None => {
                    let text = format!(
                        "{who} refused: {server}; check the client's tenant, client_id and client_secret"
                    );
                    match error.as_str() {
                        "invalid_scope" | "unsupported_grant_type" | "invalid_request" => {
                            PluginError::config(text)
                        }
                        _ => PluginError::auth(text),
                    }
                }
            }
        }
        RequestTokenError::Request(HttpError(text, ErrorKind::Certificate)) => {
            PluginError::config(format!(
                "{who}: the authority's TLS certificate is not trusted: {text}; check `authority`, or set `ca_file` to the CA that signed its certificate"
            ))
        }
        RequestTokenError::Request(HttpError(text, ErrorKind::Invalid)) => {
            PluginError::config(format!("{who}: {text}; check `authority` and `tenant`"))
        }
        RequestTokenError::Request(HttpError(text, ErrorKind::Network)) => {
            PluginError::transient(format!(
                "{who} failed: {text}; check that the authority is reachable (network, proxy)"
            ))
        }
        RequestTokenError::Parse(e, body) => {
            let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            PluginError::transient(format!(
                "{who}: the answer is not an OAuth2 token response ({e}): {snippet:?}; check `authority`"
            ))
        }
        RequestTokenError::Other(text) => PluginError::transient(format!(
            "{who}: unexpected answer: {text}; check `authority`"
        )),
    };
    scrub(err, &client.client_secret)
}

/// Belt and braces: a secret echoed by a server never leaves the broker.
fn scrub(mut err: PluginError, secret: &str) -> PluginError {
    if secret.len() >= 4 && err.message.as_str().contains(secret) {
        err.message = err.message.as_str().replace(secret, "<redacted>").into();
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::ErrorClass;

    fn client(authority: &str) -> OAuthClientConfig {
        OAuthClientConfig {
            authority: authority.to_string(),
            ..OAuthClientConfig::new("m365", "test-tenant", "test-client", "s3cr3t-value")
        }
    }

    #[test]
    fn tokens_are_refreshed_shortly_before_expiry() {
        assert_eq!(
            usable_for(Duration::from_secs(3599)),
            Duration::from_secs(3299)
        );
        assert_eq!(
            usable_for(Duration::from_secs(2)),
            Duration::from_millis(1600)
        );
        assert_eq!(usable_for(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_url_joins_authority_and_tenant() {
        assert_eq!(
            client("https://login.microsoftonline.us/").token_url(),
            "https://login.microsoftonline.us/test-tenant/oauth2/v2.0/token"
        );
        assert_eq!(
            client("").token_url(),
            "https://login.microsoftonline.com/test-tenant/oauth2/v2.0/token"
        );
    }

    #[test]
    fn debug_hides_secret() {
        let c = client("https://x");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let b = TokenBroker::new(BTreeMap::from([("m365".to_string(), c)]));
        assert!(!format!("{b:?}").contains("s3cr3t"));
    }

    #[test]
    fn unknown_provider_is_config() {
        let b = TokenBroker::default();
        let e = b
            .token("nope", "https://graph.microsoft.com/.default", false)
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::CONFIG);
        assert!(e.message().contains("[oauth.nope]"));
    }

    #[test]
    fn reads_aadsts_codes() {
        assert_eq!(
            aadsts_code("AADSTS7000215: Invalid client secret provided."),
            Some(7000215)
        );
        assert_eq!(aadsts_code("x AADSTS90002: Tenant"), Some(90002));
        assert_eq!(aadsts_code("nothing here"), None);
        for code in [7000215, 7000222, 700016, 90002] {
            assert!(aadsts_meaning(code).is_some());
        }
    }

    #[test]
    fn unreachable_authority_is_transient_and_works_inside_a_runtime() {
        // Port 9 (discard) on loopback: nothing listens there.
        let b = TokenBroker::new(BTreeMap::from([(
            "m365".to_string(),
            client("https://127.0.0.1:9"),
        )]));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(async { b.token("m365", "https://graph.microsoft.com/.default", false) })
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
        assert!(e.message().contains("127.0.0.1:9"), "{e}");
        assert!(!e.message().contains("s3cr3t"));
        assert_eq!(b.stats().requests, 1);
    }

    #[test]
    fn server_secret_echo_is_scrubbed() {
        let e = scrub(PluginError::auth("bad s3cr3t-value here"), "s3cr3t-value");
        assert_eq!(e.message(), "bad <redacted> here");
    }
}
