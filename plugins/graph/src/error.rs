//! Graph's answers turned into classified [`PluginError`]s.

use std::time::{Duration, SystemTime};

use mailhost_plugin_api::PluginError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;

/// What a Graph request was for; names the permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `sendMail` (needs Mail.Send).
    SendMail,
    /// Create a draft, add attachments, upload sessions (need Mail.ReadWrite).
    Draft,
    /// `POST /messages/{id}/send` (needs Mail.Send; the draft needed Mail.ReadWrite).
    SendDraft,
    /// `GET /users/{id}` (needs User.Read.All or User.ReadBasic.All).
    ReadMailbox,
}

impl Op {
    pub fn permission(self) -> &'static str {
        match self {
            Op::SendMail | Op::SendDraft => "Mail.Send",
            Op::Draft => "Mail.ReadWrite",
            Op::ReadMailbox => "User.Read.All",
        }
    }

    fn why(self) -> &'static str {
        match self {
            Op::SendMail | Op::SendDraft => "sending mail",
            Op::Draft => "drafts (m365-draft compose) and messages over 4 MB (upload sessions)",
            Op::ReadMailbox => "reading the mailbox's user object",
        }
    }
}

/// `{"error": {"code", "message"}}`, Graph's error body.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Graph's error code and message from a response body (empty when there is none).
pub fn parse_error(body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.error.code.is_empty() || !b.error.message.is_empty() => {
            (b.error.code, b.error.message)
        }
        _ => {
            let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
            (String::new(), text.trim().to_string())
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, in milliseconds.
pub fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let when = httpdate(value)?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64,
    )
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form Retry-After uses.
fn httpdate(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: u64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), years >= 1970.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Classifies a Graph error response. `what` names the request ("POST
/// https://…/users/x/sendMail") for the message; `mailbox` the mailbox.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    op: Op,
    what: &str,
    mailbox: &str,
) -> PluginError {
    let (code, message) = parse_error(body);
    let server = match (code.is_empty(), message.is_empty()) {
        (true, true) => status.to_string(),
        (true, false) => message.clone(),
        (false, true) => code.clone(),
        (false, false) => format!("{code}: {message}"),
    };
    let request_id = headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(|id| format!(" (request-id {id})"))
        .unwrap_or_default();
    let head = format!("graph: {what} → {} {server}{request_id}", status.as_u16());
    let err = match status.as_u16() {
        429 | 503 | 504 => PluginError::transient(format!(
            "{head}; Graph is throttling or busy, the message will be retried later"
        )),
        401 => PluginError::auth(format!(
            "{head}; Graph refused the access token even after a fresh one was fetched: check that the [oauth] client's tenant is the mailbox's tenant and that the scope matches base_url's cloud"
        )),
        403 => PluginError::auth(format!(
            "{head}; the app lacks the {perm} application permission for {why} (or admin consent was not granted, or an application access policy excludes mailbox {mailbox}): add {perm} under API permissions in the app registration and grant admin consent",
            perm = op.permission(),
            why = op.why()
        )),
        404 if code == "ErrorInvalidUser" => {
            PluginError::permanent(format!(
                "{head}; mailbox not found: {mailbox} is not a user in the app's tenant — fix `mailbox` (user id or UPN)"
            ))
        }
        400 => PluginError::permanent(format!("{head}; Graph refused the request as invalid")),
        413 => PluginError::permanent(format!(
            "{head}; the request is larger than Graph accepts even through an upload session"
        )),
        s if s >= 500 => PluginError::transient(format!("{head}; a server-side error, retried later")),
        _ => PluginError::permanent(head),
    };
    let mut err = err.with_code(status.as_u16());
    if err.is_transient() {
        if let Some(ms) = retry_after_ms(headers) {
            err = err.with_retry_after_ms(ms);
        }
    }
    err
}

/// A network failure (connect, timeout, reset) on a Graph request: transient.
/// A server certificate that does not verify is a configuration problem.
pub fn network(e: &reqwest::Error, what: &str) -> PluginError {
    if mailhost_tls::is_certificate_error(e) {
        let mut text = format!("graph: {what}: the server's TLS certificate is not trusted");
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text.push_str(
            "; check base_url, or set ca_file to the CA that signed the server's certificate",
        );
        return PluginError::config(text);
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut text = format!("graph: {what} {kind}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.push_str("; check the network and base_url (and ca_file for a private CA)");
    PluginError::transient(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::ErrorClass;
    use reqwest::header::HeaderValue;

    fn headers(retry: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        h
    }

    #[test]
    fn throttling_is_transient_with_retry_after() {
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &headers("7"),
            br#"{"error":{"code":"ApplicationThrottled","message":"over limit"}}"#,
            Op::SendMail,
            "POST x",
            "m@x",
        );
        assert_eq!(e.class(), ErrorClass::TRANSIENT);
        assert_eq!(e.retry_after_ms(), Some(7000));
        assert_eq!(e.code, 429);
        assert!(e.message().contains("ApplicationThrottled: over limit"));
    }

    #[test]
    fn forbidden_names_the_permission() {
        let e = classify(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#,
            Op::Draft,
            "POST x",
            "m@x",
        );
        assert_eq!(e.class(), ErrorClass::AUTH);
        assert!(e.message().contains("Mail.ReadWrite"));
        assert!(e.message().contains("admin consent"));
    }

    #[test]
    fn invalid_user_is_permanent_mailbox_not_found() {
        let e = classify(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            br#"{"error":{"code":"ErrorInvalidUser","message":"The requested user 'x' is invalid."}}"#,
            Op::SendMail,
            "POST x",
            "nobody@example.com",
        );
        assert!(e.is_permanent());
        assert!(e.message().contains("mailbox not found"));
    }

    #[test]
    fn http_date_retry_after() {
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(
            retry_after_ms(&headers("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(0)
        );
        assert_eq!(retry_after_ms(&headers("soon")), None);
    }

    #[test]
    fn non_json_body_is_kept_short() {
        let (code, msg) = parse_error(b"<html>bad gateway</html>");
        assert!(code.is_empty());
        assert_eq!(msg, "<html>bad gateway</html>");
    }
}
