//! One message, prepared for SMTP on the caller's thread: the envelope parsed
//! and checked (one line each, valid addresses), the Bcc header removed, the
//! request options read (the host's per-user credentials, `dsn`).

use std::str::FromStr;

use lettre::Address;
use mailhost_plugin_api::mime::strip_bcc;
use mailhost_plugin_api::options::HostOptions;
use mailhost_plugin_api::wire;
use mailhost_plugin_api::{OutgoingMessage, PluginError};
use serde::Deserialize;

use crate::config::{AuthPolicy, SmtpConfig};
use crate::session::{Dsn, Tx};

/// What this plugin reads from `options_json`: the host's keys (per-user
/// credentials, through plugin-api's one definition) and its own request key
/// `dsn`; other keys are ignored.
#[derive(Debug, Default, Deserialize)]
struct Options {
    #[serde(flatten)]
    host: HostOptions,
    dsn: Option<DsnOptions>,
}

#[derive(Debug, Deserialize)]
struct DsnOptions {
    notify: Option<Vec<String>>,
    ret: Option<String>,
    envid: Option<String>,
}

/// Whose credentials a connection authenticates with.
#[derive(Debug, Clone)]
pub enum Who {
    /// The account's own (or none).
    Account,
    /// Per-user credentials from `options_json.credentials` (password is a secret reference).
    User {
        username: String,
        password_ref: String,
    },
}

impl Who {
    pub(crate) fn key(&self) -> String {
        match self {
            Who::Account => String::new(),
            Who::User { username, .. } => format!("user:{username}"),
        }
    }
}

/// One message, prepared on the caller's thread.
#[derive(Debug)]
pub struct Job {
    pub message_id: String,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub body: Vec<u8>,
    pub needs_smtputf8: bool,
    pub dsn: Option<Dsn>,
    pub who: Who,
}

impl Job {
    /// The transaction that delivers this job; `last` when the connection
    /// ends after it.
    pub fn tx(&self, last: bool) -> Tx<'_> {
        Tx {
            from: self.from.as_ref(),
            to: &self.to,
            body: &self.body,
            needs_smtputf8: self.needs_smtputf8,
            dsn: self.dsn.as_ref(),
            last,
        }
    }
}

fn parse_address(what: &str, a: &str) -> Result<Address, PluginError> {
    wire::request("smtp", what, a)?;
    Address::from_str(a.trim()).map_err(|e| {
        PluginError::permanent(format!("{what} {a:?} is not a valid e-mail address: {e}"))
    })
}

fn parse_dsn(d: DsnOptions) -> Result<Dsn, PluginError> {
    let mut notify = Vec::new();
    for n in d.notify.unwrap_or_default() {
        let up = n.to_ascii_uppercase();
        if !matches!(up.as_str(), "SUCCESS" | "FAILURE" | "DELAY" | "NEVER") {
            return Err(PluginError::permanent(format!(
                "options_json.dsn.notify: {n:?} is not one of success, failure, delay, never"
            )));
        }
        notify.push(up);
    }
    if notify.len() > 1 && notify.iter().any(|n| n == "NEVER") {
        return Err(PluginError::permanent(
            "options_json.dsn.notify: \"never\" cannot be combined with others",
        ));
    }
    let ret = match d.ret.map(|r| r.to_ascii_uppercase()) {
        None => None,
        Some(r) if r == "FULL" || r == "HDRS" => Some(r),
        Some(r) => {
            return Err(PluginError::permanent(format!(
                "options_json.dsn.ret: {r:?} is not full or hdrs"
            )))
        }
    };
    if let Some(e) = &d.envid {
        wire::request("smtp", "options_json.dsn.envid", e)?;
        if e.is_empty() || e.len() > 100 || !e.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(PluginError::permanent(
                "options_json.dsn.envid: give 1-100 printable ASCII characters without spaces",
            ));
        }
    }
    Ok(Dsn {
        notify,
        ret,
        envid: d.envid,
    })
}

fn header_section(mime: &[u8]) -> &[u8] {
    let end = mime
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| mime.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(mime.len());
    &mime[..end]
}

impl Job {
    pub fn from_message(cfg: &SmtpConfig, msg: &OutgoingMessage) -> Result<Self, PluginError> {
        let options: Options = if msg.options_json.trim().is_empty() {
            Options::default()
        } else {
            serde_json::from_str(msg.options_json.as_str())
                .map_err(|e| PluginError::permanent(format!("options_json is not valid: {e}")))?
        };
        let from = match cfg.envelope_from.as_deref() {
            Some(f) => Some(parse_address("envelope_from", f)?),
            None => match msg.envelope.from.as_ref().into_option() {
                Some(f) if !f.trim().is_empty() => Some(parse_address("envelope sender", f)?),
                _ => None,
            },
        };
        if msg.envelope.to.is_empty() {
            return Err(PluginError::permanent("the message has no recipient"));
        }
        let to = msg
            .envelope
            .to
            .iter()
            .map(|a| parse_address("recipient", a))
            .collect::<Result<Vec<_>, _>>()?;
        let body = strip_bcc(&msg.mime).into_owned();
        let needs_smtputf8 = from
            .iter()
            .chain(to.iter())
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii())
            || !header_section(&body).is_ascii();
        let dsn = options.dsn.map(parse_dsn).transpose()?;
        let who = match options.host.credentials {
            Some(c) if cfg.auth != AuthPolicy::None => {
                wire::request("smtp", "per-user credentials username", &c.username)?;
                Who::User {
                    username: c.username,
                    password_ref: c.password,
                }
            }
            Some(_) => {
                tracing::warn!(
                    "smtp: per-user credentials ignored: the account has auth = \"none\""
                );
                Who::Account
            }
            None => Who::Account,
        };
        Ok(Self {
            message_id: msg.message_id.to_string(),
            from,
            to,
            body,
            needs_smtputf8,
            dsn,
            who,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_options() {
        let d = parse_dsn(DsnOptions {
            notify: Some(vec!["success".into(), "failure".into()]),
            ret: Some("hdrs".into()),
            envid: Some("abc".into()),
        })
        .unwrap();
        assert_eq!(d.notify, vec!["SUCCESS", "FAILURE"]);
        assert_eq!(d.ret.as_deref(), Some("HDRS"));
        assert!(parse_dsn(DsnOptions {
            notify: Some(vec!["never".into(), "success".into()]),
            ret: None,
            envid: None
        })
        .is_err());
    }
}
