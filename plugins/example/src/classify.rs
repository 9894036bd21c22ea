//! Turning HTTP results into the host's error classes.
//!
//! The class decides what the host does next (`docs/plugin-authors.md`,
//! "Error classes"):
//!
//! | class | here | host action |
//! |---|---|---|
//! | `TRANSIENT` | 408, 429, 5xx, timeouts, connection refused/reset | retry with backoff, honoring `retry_after_ms`; then the next account |
//! | `AUTH` | 401, 403 | next account at once; report "fix credentials" |
//! | `CONFIG` | bad settings, a secret that cannot be read, an untrusted TLS certificate | next account at once; report |
//! | `PERMANENT` | other 4xx, a redirect, a panic | stop: retrying or failing over would not help |
//!
//! (`UNAVAILABLE` and `UNSUPPORTED` exist too; a webhook has no use for them.)
//!
//! Always fill in `code` (the HTTP status) and, when the server sent it,
//! `retry_after_ms`; put the server's own words in the message.

use std::time::Duration;

use mailhost_plugin_api::PluginError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// At most this much of a response body goes into an error message.
const MAX_BODY_TEXT: usize = 300;

/// The result of one POST, classified. `Ok` for 2xx.
pub fn classify_status(
    where_: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
) -> Result<(), PluginError> {
    let code = status.as_u16();
    let said = server_text(status, body);
    let retry_after = retry_after_ms(headers);
    let err = match code {
        200..=299 => return Ok(()),
        408 | 429 | 500..=599 => {
            let mut e = PluginError::transient(format!(
                "webhook {where_} is busy or failing ({said}); the host will retry later"
            ));
            if let Some(ms) = retry_after {
                e = e.with_retry_after_ms(ms);
            }
            e
        }
        401 | 403 => PluginError::auth(format!(
            "webhook {where_} refused our credentials ({said}); check the Authorization header (or the secret it references) in the account's `headers`"
        )),
        300..=399 => {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(crate::payload::redacted_url)
                .unwrap_or_else(|| "an unnamed location".to_string());
            PluginError::permanent(format!(
                "webhook {where_} redirects to {to} ({said}); set `url` to the final address (a POST is not replayed across redirects)"
            ))
        }
        _ => PluginError::permanent(format!(
            "webhook {where_} rejected the message ({said}); fix the message or the receiver — retrying will not help"
        )),
    };
    Err(err.with_code(code))
}

/// `HTTP 503 Service Unavailable: <first 300 characters of the body>`.
pub fn server_text(status: StatusCode, body: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    let body = body.trim();
    let mut text = format!("HTTP {} {reason}", status.as_u16());
    if !body.is_empty() {
        let cut: String = body.chars().take(MAX_BODY_TEXT).collect();
        text.push_str(": ");
        text.push_str(&cut.replace(['\r', '\n'], " "));
        if cut.len() < body.len() {
            text.push('…');
        }
    }
    text
}

/// `Retry-After` in delay-seconds form, as milliseconds. (The HTTP-date form
/// is rare for webhooks and is ignored: the host then uses its own backoff.)
pub fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let secs: u64 = v.parse().ok()?;
    Some(secs.saturating_mul(1000))
}

/// A request that got no HTTP answer: refused, reset, timed out, or TLS failed.
pub fn classify_error(where_: &str, timeout: Duration, e: &reqwest::Error) -> PluginError {
    let detail = error_chain(e);
    if is_certificate_error(e) {
        return PluginError::config(format!(
            "webhook {where_}: the server's TLS certificate is not trusted ({detail}); set `ca_file` to the CA that signed it (or, for a test receiver only, accept_invalid_certs = true)"
        ));
    }
    if e.is_timeout() {
        return PluginError::transient(format!(
            "webhook {where_} did not answer within {} ms ({detail}); the host will retry — raise `timeout_ms` if the receiver is slow",
            timeout.as_millis()
        ));
    }
    if e.is_connect() {
        return PluginError::transient(format!(
            "cannot connect to webhook {where_} ({detail}); is the receiver running and reachable? the host will retry"
        ));
    }
    PluginError::transient(format!(
        "request to webhook {where_} failed ({detail}); the host will retry"
    ))
}

/// The error and its sources, `: `-joined (reqwest's own text is only the top).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        // `io::Error::source()` skips the error it wraps: look inside.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if is_certificate_error(inner) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::ErrorClass;
    use reqwest::header::HeaderValue;

    fn class(code: u16, headers: &HeaderMap, body: &str) -> PluginError {
        classify_status(
            "http://h:1/x",
            StatusCode::from_u16(code).unwrap(),
            headers,
            body,
        )
        .unwrap_err()
    }

    #[test]
    fn classes() {
        let none = HeaderMap::new();
        assert!(classify_status("u", StatusCode::ACCEPTED, &none, "").is_ok());
        let mut ra = HeaderMap::new();
        ra.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = class(503, &ra, "down");
        assert_eq!((e.class(), e.code), (ErrorClass::TRANSIENT, 503));
        assert_eq!(e.retry_after_ms(), Some(7000));
        assert_eq!(class(429, &none, "").class(), ErrorClass::TRANSIENT);
        assert_eq!(class(408, &none, "").class(), ErrorClass::TRANSIENT);
        assert_eq!(class(401, &none, "").class(), ErrorClass::AUTH);
        assert_eq!(class(403, &none, "").class(), ErrorClass::AUTH);
        let e = class(400, &none, "subject missing");
        assert_eq!(e.class(), ErrorClass::PERMANENT);
        assert!(
            e.message()
                .contains("HTTP 400 Bad Request: subject missing"),
            "{e}"
        );
        assert_eq!(class(302, &none, "").class(), ErrorClass::PERMANENT);
    }

    #[test]
    fn long_bodies_are_cut() {
        let body = "x".repeat(1000);
        let t = server_text(StatusCode::BAD_REQUEST, &body);
        assert!(t.len() < 400 && t.ends_with('…'), "{t}");
    }

    #[test]
    fn retry_after_date_form_is_ignored() {
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after_ms(&h), None);
    }
}
