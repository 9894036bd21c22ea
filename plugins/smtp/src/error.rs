//! SMTP replies and their classification into [`PluginError`] classes.
//!
//! | reply / failure | class |
//! |---|---|
//! | 4xx, 421, timeouts, connection refused or reset | transient |
//! | 530/534/535 (authentication), 550 5.7.30 (basic auth off) | auth |
//! | 538, 530 "STARTTLS first" (TLS required), STARTTLS missing | config |
//! | SMTPUTF8 needed but not offered | unsupported |
//! | other 5xx | permanent |
//!
//! The reply code and the RFC 3463 enhanced status code are kept in the error.

use std::error::Error as _;
use std::fmt;
use std::io;
use std::time::Duration;

use lettre::transport::smtp::response::Response;
use mailhost_plugin_api::PluginError;

/// One SMTP reply: the code and its text lines (without the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn from_response(r: &Response) -> Self {
        Self {
            code: u16::from(r.code()),
            lines: r.message().map(str::to_string).collect(),
        }
    }

    /// The reply of a negative-completion lettre error (`read_response` turns
    /// 4xx/5xx into errors); `None` for network, parse and client errors.
    pub fn from_lettre(e: &lettre::transport::smtp::Error) -> Option<Self> {
        let code = u16::from(e.status()?);
        let text = e.source().map(|s| s.to_string()).unwrap_or_default();
        Some(Self {
            code,
            lines: vec![text],
        })
    }

    /// Parses the raw replies in `bytes` (e.g. a greeting followed by an EHLO reply).
    pub fn parse_all(bytes: &[u8]) -> Vec<Reply> {
        let text = String::from_utf8_lossy(bytes);
        let mut out = Vec::new();
        let mut current: Option<Reply> = None;
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let sep = line.as_bytes().get(3).copied();
            let rest = line.get(4..).unwrap_or("").to_string();
            let Some(code) = code else { continue };
            let r = current.get_or_insert_with(|| Reply {
                code,
                lines: Vec::new(),
            });
            r.lines.push(rest);
            if sep != Some(b'-') {
                out.extend(current.take());
            }
        }
        out.extend(current);
        out
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The RFC 3463 enhanced status code the text starts with (`5.1.1`), if any.
    pub fn enhanced(&self) -> Option<String> {
        let word = self.lines.first()?.split_whitespace().next()?;
        let mut parts = word.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        let num = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        let ok = parts.next().is_none()
            && matches!(class, "2" | "4" | "5")
            && class.as_bytes()[0] == b'0' + (self.code / 100) as u8
            && num(subject, 3)
            && num(detail, 3);
        ok.then(|| word.to_string())
    }

    /// The text lines joined with spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// The whole reply as the server sent it, one line per line.
    pub fn raw(&self) -> String {
        let n = self.lines.len();
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}{}{}", self.code, if i + 1 < n { '-' } else { ' ' }, l))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

/// Where in the dialogue something failed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Ehlo,
    Starttls,
    Auth,
    Mail,
    Rcpt,
    Data,
    EndOfData,
    Rset,
    Quit,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Starttls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        }
    }
}

fn requires_tls(reply: &Reply) -> bool {
    let t = reply.text().to_ascii_lowercase();
    reply.code == 538
        || (matches!(reply.code, 530 | 554) && (t.contains("starttls") || t.contains("tls")))
}

/// Classifies a negative reply at `stage` from `addr`.
pub fn reply_error(addr: &str, stage: Stage, reply: &Reply) -> PluginError {
    let enhanced = reply.enhanced();
    let code = reply.code;
    let base = format!("{addr} answered {} with \"{reply}\"", stage.name());
    let err = if enhanced.as_deref() == Some("5.7.30") {
        PluginError::auth(format!(
            "{base}: basic authentication is turned off for this Exchange Online tenant; \
             switch the account to XOAUTH2 (`oauth`)"
        ))
    } else if requires_tls(reply) {
        PluginError::config(format!(
            "{base}: the server requires TLS; set security = \"starttls\" or \"tls\""
        ))
    } else if matches!(code, 530 | 534 | 535) || (stage == Stage::Auth && code >= 500) {
        let hint = match code {
            534 => "the server wants a stronger mechanism; set `mechanism`",
            530 => "the server requires authentication; set `username` and `password` (or `oauth`) and auth = \"required\"",
            _ => "check the username and password (or the OAuth client and scope)",
        };
        PluginError::auth(format!("{base}: {hint}"))
    } else if (400..500).contains(&code) {
        let hint = if code == 421 {
            "the server is closing the connection; try again later"
        } else {
            "a temporary failure; try again later"
        };
        PluginError::transient(format!("{base}: {hint}"))
    } else if code >= 500 {
        PluginError::permanent(base)
    } else {
        PluginError::permanent(format!("{base}: unexpected reply"))
    };
    let err = err.with_code(code);
    match enhanced {
        Some(e) => err.with_enhanced(e),
        None => err,
    }
}

/// Classifies a lettre error during `stage`: a negative reply, or a network,
/// parse or client failure (connection lost → transient).
pub fn lettre_error(addr: &str, stage: Stage, e: &lettre::transport::smtp::Error) -> PluginError {
    if let Some(reply) = Reply::from_lettre(e) {
        return reply_error(addr, stage, &reply);
    }
    if e.is_timeout() {
        return PluginError::transient(format!("{addr}: timed out at {}: {e}", stage.name()));
    }
    let detail = e.to_string();
    let lost =
        detail.contains("incomplete response") || e.source().is_some_and(|s| s.is::<io::Error>());
    if lost || e.is_response() {
        PluginError::transient(format!(
            "{addr}: the connection broke at {} ({}); try again",
            stage.name(),
            if detail.contains("incomplete response") {
                "the server closed it without a reply".to_string()
            } else {
                detail
            }
        ))
    } else {
        PluginError::transient(format!(
            "{addr}: SMTP failure at {}: {detail}",
            stage.name()
        ))
    }
}

/// A failed TCP connect.
pub fn connect_error(addr: &str, e: &io::Error) -> PluginError {
    let hint = match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "nothing listens there; check `host` and `port`, or whether the server runs"
        }
        io::ErrorKind::TimedOut => "no answer; check `host`, `port` and firewalls",
        _ => "check `host` and `port` and the network",
    };
    PluginError::transient(format!("cannot connect to {addr}: {e}; {hint}"))
}

pub fn timeout_error(addr: &str, what: &str, limit: Duration) -> PluginError {
    PluginError::transient(format!(
        "{addr}: no reply within {} ms at {what} (timeout_ms); the server is slow or stuck, try again later",
        limit.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::ErrorClass;

    fn r(code: u16, text: &str) -> Reply {
        Reply {
            code,
            lines: vec![text.to_string()],
        }
    }

    #[test]
    fn classes() {
        let a = "h:25";
        assert_eq!(
            reply_error(a, Stage::Rcpt, &r(450, "4.2.1 busy")).class(),
            ErrorClass::TRANSIENT
        );
        assert_eq!(
            reply_error(a, Stage::Rcpt, &r(421, "4.3.2 bye")).class(),
            ErrorClass::TRANSIENT
        );
        assert_eq!(
            reply_error(a, Stage::Rcpt, &r(550, "5.1.1 no")).class(),
            ErrorClass::PERMANENT
        );
        assert_eq!(
            reply_error(a, Stage::Auth, &r(535, "5.7.8 bad")).class(),
            ErrorClass::AUTH
        );
        assert_eq!(
            reply_error(a, Stage::Mail, &r(530, "5.7.0 Authentication required")).class(),
            ErrorClass::AUTH
        );
        assert_eq!(
            reply_error(
                a,
                Stage::Auth,
                &r(538, "5.7.0 Must issue a STARTTLS command first")
            )
            .class(),
            ErrorClass::CONFIG
        );
        assert_eq!(
            reply_error(
                a,
                Stage::Mail,
                &r(530, "5.7.0 Must issue a STARTTLS command first")
            )
            .class(),
            ErrorClass::CONFIG
        );
        let e = reply_error(
            a,
            Stage::Auth,
            &r(550, "5.7.30 Basic authentication is not supported"),
        );
        assert_eq!(e.class(), ErrorClass::AUTH);
        assert_eq!(e.enhanced(), Some("5.7.30"));
        let e = reply_error(a, Stage::Rcpt, &r(550, "5.1.1 No such user here"));
        assert_eq!(e.code, 550);
        assert_eq!(e.enhanced(), Some("5.1.1"));
        assert!(e.message().contains("h:25"));
    }

    #[test]
    fn enhanced_must_match_class() {
        assert_eq!(r(550, "4.1.1 odd").enhanced(), None);
        assert_eq!(r(250, "2.0.0 Ok").enhanced().as_deref(), Some("2.0.0"));
        assert_eq!(r(250, "Ok").enhanced(), None);
    }

    #[test]
    fn parses_greeting_and_ehlo() {
        let replies =
            Reply::parse_all(b"220 mx ESMTP\r\n250-mx Hello\r\n250-PIPELINING\r\n250 DSN\r\n");
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].code, 220);
        assert_eq!(replies[1].lines, vec!["mx Hello", "PIPELINING", "DSN"]);
        assert_eq!(replies[1].raw(), "250-mx Hello\n250-PIPELINING\n250 DSN");
    }
}
