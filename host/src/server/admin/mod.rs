//! The admin web page under `/admin`: server-rendered HTML with a little
//! vanilla JavaScript, every asset inside the binary.
//!
//! - Login with an API token of scope `admin` → a session cookie
//!   (`HttpOnly`, `SameSite=Strict`, `Secure` unless the page is reached on a
//!   loopback address over plain http); the token itself is never stored in
//!   the cookie.
//! - Every POST carries the session's CSRF token (a hidden `csrf` field, or
//!   the `X-CSRF-Token` header) and, when the browser sends one, an `Origin`
//!   that matches `Host`; the login form has its own double-submit token.
//! - Pages: status and outbox (`status.rs`), accounts with forms generated from
//!   each plugin's settings JSON Schema (`accounts.rs`), policy and users with
//!   Explain (`policy.rs`); saving edits the TOML with `toml_edit` (`edit.rs`).
//!
//! Everything rendered goes through [`esc`].

mod accounts;
pub(crate) mod edit;
mod outbox;
mod policy;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use super::Shared;
use crate::engine::Engine;
use crate::outbox::Store as _;

const CSS: &str = include_str!("assets/admin.css");
const JS: &str = include_str!("assets/admin.js");

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mh_admin";
/// The login form's double-submit cookie.
const LOGIN_COOKIE: &str = "mh_login";
/// How long a session lasts without use.
const IDLE: Duration = Duration::from_secs(8 * 3600);

/// One signed-in administrator.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The API token's name in `[api.tokens]` (never the token).
    pub token: String,
    /// The token's digest: a session ends when the config in use no longer
    /// has it with the `admin` scope (revoked, given a new token, scope removed).
    key: [u8; 32],
    pub csrf: String,
    last_seen: Instant,
}

/// The admin page's state beside the API's.
pub(crate) struct Admin {
    pub app: Shared,
    sessions: Mutex<HashMap<String, Session>>,
    /// Serialises saves so that the ETag check and the write are one step.
    pub save_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admin")
    }
}

type AdminState = Arc<Admin>;

impl Admin {
    pub fn engine(&self) -> Arc<Engine> {
        self.app.engine.get()
    }

    /// Whether the outbox is PostgreSQL (several hosts may share it).
    pub fn shared_outbox(&self) -> bool {
        self.app.outbox.store().location().starts_with("postgres")
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `/admin` routes, to merge into the API's router.
pub fn router<S: Clone + Send + Sync + 'static>(app: Shared) -> Router<S> {
    let state = Arc::new(Admin {
        app,
        sessions: Mutex::new(HashMap::new()),
        save_lock: tokio::sync::Mutex::new(()),
    });
    Router::new()
        .route("/admin", get(home))
        .route("/admin/", get(home))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/assets/admin.css", get(css))
        .route("/admin/assets/admin.js", get(js))
        .route("/admin/status", get(status::show))
        .route("/admin/status/{name}/refresh", post(status::refresh))
        .route("/admin/outbox", get(outbox::outbox))
        .route("/admin/outbox/retry-all", post(outbox::retry_all))
        .route("/admin/outbox/cancel-all", post(outbox::cancel_all))
        .route("/admin/outbox/{id}", get(outbox::message))
        .route("/admin/outbox/{id}/retry", post(outbox::retry))
        .route("/admin/outbox/{id}/cancel", post(outbox::cancel))
        .route("/admin/accounts", get(accounts::list))
        .route("/admin/accounts/new", get(accounts::new_form))
        .route("/admin/oauth/{name}/token", post(accounts::oauth_token))
        .route(
            "/admin/accounts/{name}",
            get(accounts::form).post(accounts::submit),
        )
        .route("/admin/policy", get(policy::show).post(policy::submit))
        .route(
            "/admin/users",
            get(policy::users).post(policy::users_submit),
        )
        .route("/admin/explain", get(policy::explain))
        .layer(middleware::from_fn(headers))
        .with_state(state)
}

/// Headers on every admin response: nothing cached, nothing framed, scripts
/// and styles from this origin only.
async fn headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value.
pub fn url_enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Equal without an early exit on the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether the browser reached us on a loopback name over plain http (then a
/// `Secure` cookie would not come back, except on `localhost`).
fn plain_loopback(headers: &HeaderMap) -> bool {
    if headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let secure = if plain_loopback(headers) {
        ""
    } else {
        "; Secure"
    };
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    let v = format!("{name}={value}; Path=/admin; HttpOnly; SameSite=Strict{secure}{age}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// Why a request was not let through.
#[derive(Debug)]
pub(crate) enum Denied {
    /// No valid session: a page goes to the login form.
    Login,
    /// A POST without the session's CSRF token or from another origin.
    Csrf(&'static str),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Login => Redirect::to("/admin/login").into_response(),
            Denied::Csrf(why) => (
                StatusCode::FORBIDDEN,
                Html(bare_page(
                    "Request refused",
                    &format!(
                        "<p role=\"alert\">This request was refused: {}. Reload the page and try again.</p><p><a href=\"/admin\">Back to the admin page</a></p>",
                        esc(why)
                    ),
                )),
            )
                .into_response(),
        }
    }
}

impl Admin {
    /// The session of a page request.
    pub(crate) fn session(&self, headers: &HeaderMap) -> Result<Session, Denied> {
        let id = cookie(headers, SESSION_COOKIE).ok_or(Denied::Login)?;
        let tokens = self.app.tokens_now();
        let mut all = self.sessions();
        let now = Instant::now();
        all.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        let s = all.get_mut(&id).ok_or(Denied::Login)?;
        if !tokens.find(&s.key).is_some_and(|c| c.admin) {
            tracing::info!(
                "admin: the session of token `{}` ended: the config no longer has that token with the admin scope",
                s.token
            );
            all.remove(&id);
            return Err(Denied::Login);
        }
        s.last_seen = now;
        Ok(s.clone())
    }

    /// The session of a POST, with its CSRF token and origin checked.
    pub(crate) fn post_session(
        &self,
        headers: &HeaderMap,
        form_csrf: Option<&str>,
    ) -> Result<Session, Denied> {
        let s = self.session(headers)?;
        check_origin(headers)?;
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .or(form_csrf)
            .ok_or(Denied::Csrf("the form's CSRF token is missing"))?;
        if !same(given, &s.csrf) {
            return Err(Denied::Csrf(
                "the form's CSRF token does not match this session",
            ));
        }
        Ok(s)
    }
}

fn check_origin(headers: &HeaderMap) -> Result<(), Denied> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
    if origin_host.is_empty() || origin_host != host {
        return Err(Denied::Csrf(
            "it came from another site (Origin does not match)",
        ));
    }
    Ok(())
}

/// The value of `key` in a submitted form.
pub(crate) fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A page without navigation (login, errors).
fn bare_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · mailhost admin</title><link rel=\"stylesheet\" href=\"/admin/assets/admin.css\"></head><body><header><span class=\"brand\">mailhost admin</span></header><main id=\"main\"><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    )
}

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Status,
    Accounts,
    Policy,
    Users,
}

/// A signed-in page: navigation, the logout form, the content.
pub(crate) fn page(s: &Session, nav: Nav, title: &str, body: &str) -> Html<String> {
    let item = |n: Nav, href: &str, label: &str| {
        let cur = if n == nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<li><a href=\"{href}\"{cur}>{label}</a></li>")
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · mailhost admin</title><link rel=\"stylesheet\" href=\"/admin/assets/admin.css\"><script src=\"/admin/assets/admin.js\" defer></script></head><body><a class=\"sr-only\" href=\"#main\">Skip to content</a><header><span class=\"brand\">mailhost admin</span><nav aria-label=\"Sections\"><ul>{a}{b}{c}{d}</ul></nav><form method=\"post\" action=\"/admin/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><span class=\"muted\">signed in with token <strong>{who}</strong></span> <button type=\"submit\">Log out</button></form></header><main id=\"main\"><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title),
        a = item(Nav::Status, "/admin/status", "Status"),
        b = item(Nav::Accounts, "/admin/accounts", "Accounts"),
        c = item(Nav::Policy, "/admin/policy", "Policy"),
        d = item(Nav::Users, "/admin/users", "Users"),
        csrf = esc(&s.csrf),
        who = esc(&s.token),
    ))
}

/// The hidden CSRF field for a form.
pub(crate) fn csrf_field(s: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&s.csrf)
    )
}

/// A notice box: `ok` green, otherwise red with `role=alert`.
pub(crate) fn notice(ok: bool, html: &str) -> String {
    if ok {
        format!("<div class=\"notice ok\" role=\"status\">{html}</div>")
    } else {
        format!("<div class=\"notice bad\" role=\"alert\">{html}</div>")
    }
}

async fn home(AxState(st): AxState<AdminState>, headers: HeaderMap) -> Response {
    match st.session(&headers) {
        Ok(_) => Redirect::to("/admin/status").into_response(),
        Err(_) => Redirect::to("/admin/login").into_response(),
    }
}

fn login_form(headers: &HeaderMap, error: Option<&str>, status: StatusCode) -> Response {
    let pre = random_token();
    let err = error.map(|e| notice(false, &esc(e))).unwrap_or_default();
    let body = format!(
        "{err}<form method=\"post\" action=\"/admin/login\"><input type=\"hidden\" name=\"csrf\" value=\"{pre}\"><div class=\"field\"><label for=\"token\">API token</label><p class=\"help\" id=\"token-help\">A token from <code>[api.tokens]</code> with the <code>admin</code> scope (make one with <code>mailhost api-token NAME --scope admin</code>).</p><input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required autofocus aria-describedby=\"token-help\"></div><div class=\"actions\"><button type=\"submit\" class=\"primary\">Sign in</button></div></form>"
    );
    let mut r = (status, Html(bare_page("Sign in", &body))).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(headers, LOGIN_COOKIE, &pre, Some(900)),
    );
    r
}

async fn login_page(AxState(st): AxState<AdminState>, headers: HeaderMap) -> Response {
    if st.session(&headers).is_ok() {
        return Redirect::to("/admin/status").into_response();
    }
    login_form(&headers, None, StatusCode::OK)
}

async fn login(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let pre = cookie(&headers, LOGIN_COOKIE);
    let given = field(&form, "csrf");
    let csrf_ok =
        matches!((pre.as_deref(), given), (Some(a), Some(b)) if !a.is_empty() && same(a, b));
    if !csrf_ok || check_origin(&headers).is_err() {
        return login_form(
            &headers,
            Some("the sign-in form expired or came from another site; sign in again"),
            StatusCode::FORBIDDEN,
        );
    }
    let token = field(&form, "token").unwrap_or("").trim();
    let key = super::auth::digest(token);
    let who = match st.app.tokens_now().find(&key) {
        Some(c) => c,
        None => {
            return login_form(
                &headers,
                Some("that token is not in [api.tokens] of the config (or was revoked)"),
                StatusCode::UNAUTHORIZED,
            )
        }
    };
    if !who.admin {
        return login_form(
            &headers,
            Some(&format!(
                "token `{}` lacks the `admin` scope; add \"admin\" to its scopes in [api.tokens.{}]",
                who.name, who.name
            )),
            StatusCode::FORBIDDEN,
        );
    }
    let id = random_token();
    st.sessions().insert(
        id.clone(),
        Session {
            token: who.name.clone(),
            key,
            csrf: random_token(),
            last_seen: Instant::now(),
        },
    );
    tracing::info!("admin: token `{}` signed in", who.name);
    let mut r = Redirect::to("/admin/status").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &id, None),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, "", Some(0)),
    );
    r
}

async fn logout(
    AxState(st): AxState<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, Denied> {
    st.post_session(&headers, field(&form, "csrf"))?;
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        st.sessions().remove(&id);
    }
    let mut r = Redirect::to("/admin/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", Some(0)),
    );
    Ok(r)
}

/// Milliseconds since the epoch as UTC text.
pub(crate) fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_rendered_is_escaped() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(url_enc("a b/\"<c>"), "a%20b%2F%22%3Cc%3E");
    }

    fn host(h: &str, proto: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        if let Some(p) = proto {
            m.insert("x-forwarded-proto", HeaderValue::from_str(p).unwrap());
        }
        m
    }

    #[test]
    fn cookies_are_secure_unless_on_loopback_over_plain_http() {
        for h in [
            "127.0.0.1:8025",
            "localhost:8025",
            "[::1]:8025",
            "127.0.0.1",
        ] {
            assert!(plain_loopback(&host(h, None)), "{h}");
            let c = set_cookie(&host(h, None), SESSION_COOKIE, "v", None);
            assert!(!c.to_str().unwrap().contains("Secure"), "{h}");
        }
        for (h, p) in [
            ("mail.example.com", None),
            ("127.0.0.1:8025", Some("https")),
        ] {
            assert!(!plain_loopback(&host(h, p)), "{h}");
            let c = set_cookie(&host(h, p), SESSION_COOKIE, "v", None);
            let c = c.to_str().unwrap();
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"),
                "{c}"
            );
        }
    }

    #[test]
    fn a_foreign_or_opaque_origin_is_refused() {
        let mut h = host("127.0.0.1:8025", None);
        assert!(
            check_origin(&h).is_ok(),
            "no Origin: the CSRF token decides"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8025"),
        );
        assert!(check_origin(&h).is_ok());
        for o in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            assert!(check_origin(&h).is_err(), "{o}");
        }
    }

    #[test]
    fn cookie_values_are_found_among_several() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mh_admin=abc; mh_login=x"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "mh_admi"), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
