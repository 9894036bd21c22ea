//! Account settings: the JSON Schema the host validates with, and the typed,
//! checked form the transport uses.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use mailhost_plugin_api::{wire, PluginError};
use serde::Deserialize;

/// JSON Schema (draft 2020-12) of an SMTP account's settings.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "SMTP account",
  "type": "object",
  "additionalProperties": false,
  "required": ["host"],
  "properties": {
    "host": {"type": "string", "minLength": 1, "description": "SMTP server: an IP address or a fully qualified domain name"},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "default 587, or 465 with security = \"tls\""},
    "security": {"enum": ["starttls", "tls", "none"], "default": "starttls", "description": "starttls: upgrade with STARTTLS (required); tls: implicit TLS (SMTPS); none: clear text"},
    "min_tls": {"type": "string", "pattern": "^1\\.[0-9]$", "default": "1.2", "description": "lowest TLS version: 1.2 or 1.3; 1.0 and 1.1 are refused (RFC 8996)"},
    "ca_file": {"type": "string", "minLength": 1, "description": "PEM file with the CA certificate(s) to trust in addition to the system's"},
    "accept_invalid_certs": {"type": "boolean", "default": false, "description": "DANGEROUS: accept any server certificate (warns on every connection)"},
    "auth": {"enum": ["none", "required", "optional"], "default": "optional", "description": "none: never authenticate; required: always (fails without credentials); optional: when credentials are given (per account or per user)"},
    "mechanism": {"enum": ["auto", "plain", "login", "cram-md5", "xoauth2"], "default": "auto", "description": "auto: the best the server offers; PLAIN, LOGIN and XOAUTH2 only over TLS unless allow_plaintext_auth"},
    "allow_plaintext_auth": {"type": "boolean", "default": false, "description": "allow PLAIN/LOGIN/XOAUTH2 on a connection without TLS"},
    "username": {"type": "string", "minLength": 1},
    "password": {"type": "string", "minLength": 1, "description": "secret reference: env:NAME, file:PATH (or a literal, which is warned about)"},
    "oauth": {"type": "string", "minLength": 1, "description": "name of the host's [oauth.NAME] client; tokens for XOAUTH2"},
    "oauth_scope": {"type": "string", "minLength": 1, "default": "https://outlook.office365.com/.default", "description": "scope of the XOAUTH2 token"},
    "pop_before_smtp": {
      "type": "object",
      "additionalProperties": false,
      "required": ["host", "username", "password"],
      "properties": {
        "host": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "default 110, or 995 with security = \"tls\""},
        "security": {"enum": ["none", "tls", "starttls"], "default": "starttls"},
        "username": {"type": "string", "minLength": 1},
        "password": {"type": "string", "minLength": 1, "description": "secret reference"},
        "apop": {"type": "boolean", "default": false, "description": "log in with APOP (MD5 digest) instead of USER/PASS"}
      }
    },
    "pool": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "max_size": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10, "description": "most connections open at once"},
        "idle_timeout_ms": {"type": "integer", "minimum": 0, "default": 60000, "description": "close a connection idle this long; 0 = a new connection per message"},
        "wait_timeout_ms": {"type": "integer", "minimum": 0, "default": 30000, "description": "how long a send waits for a free connection when all are busy"}
      }
    },
    "timeout_ms": {"type": "integer", "minimum": 1, "default": 30000, "description": "limit for connecting and for each server reply"},
    "envelope_from": {"type": "string", "minLength": 1, "description": "MAIL FROM address overriding the message's sender"},
    "helo_name": {"type": "string", "minLength": 1, "description": "name sent with EHLO (default: this machine's host name)"}
  }
}"#;

/// The default XOAUTH2 scope: Exchange Online SMTP (not Graph's).
pub const DEFAULT_OAUTH_SCOPE: &str = "https://outlook.office365.com/.default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Starttls,
    Tls,
    None,
}

impl Security {
    pub fn name(self) -> &'static str {
        match self {
            Security::Starttls => "starttls",
            Security::Tls => "tls",
            Security::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthPolicy {
    None,
    Required,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MechanismChoice {
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "plain")]
    Plain,
    #[serde(rename = "login")]
    Login,
    #[serde(rename = "cram-md5")]
    CramMd5,
    #[serde(rename = "xoauth2")]
    Xoauth2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMin {
    V12,
    V13,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    max_size: Option<u32>,
    idle_timeout_ms: Option<u64>,
    wait_timeout_ms: Option<u64>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPop {
    host: String,
    port: Option<u32>,
    security: Option<Security>,
    username: String,
    password: String,
    #[serde(default)]
    apop: bool,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    host: String,
    port: Option<u32>,
    security: Option<Security>,
    min_tls: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    accept_invalid_certs: bool,
    auth: Option<AuthPolicy>,
    mechanism: Option<MechanismChoice>,
    #[serde(default)]
    allow_plaintext_auth: bool,
    username: Option<String>,
    password: Option<String>,
    oauth: Option<String>,
    oauth_scope: Option<String>,
    pop_before_smtp: Option<RawPop>,
    pool: Option<RawPool>,
    timeout_ms: Option<u64>,
    envelope_from: Option<String>,
    helo_name: Option<String>,
}

impl RawConfig {
    /// Every setting that goes into a command line (EHLO, MAIL FROM, AUTH,
    /// POP3 USER/APOP) or a token request is one line: no CR, LF or NUL.
    fn check_one_line(&self) -> Result<(), PluginError> {
        let one = |key: &str, v: &Option<String>| match v {
            Some(v) => wire::setting("smtp", key, v),
            None => Ok(()),
        };
        wire::setting("smtp", "host", &self.host)?;
        one("helo_name", &self.helo_name)?;
        one("envelope_from", &self.envelope_from)?;
        one("username", &self.username)?;
        one("oauth", &self.oauth)?;
        one("oauth_scope", &self.oauth_scope)?;
        if let Some(p) = &self.pop_before_smtp {
            wire::setting("smtp", "pop_before_smtp.host", &p.host)?;
            wire::setting("smtp", "pop_before_smtp.username", &p.username)?;
        }
        Ok(())
    }
}

/// POP-before-SMTP settings.
#[derive(Clone)]
pub struct PopConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: String,
    /// A secret reference, resolved through the host when used.
    pub password_ref: String,
    pub apop: bool,
}

impl fmt::Debug for PopConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PopConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password_ref", &"<redacted>")
            .field("apop", &self.apop)
            .finish()
    }
}

/// Connection pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub max_size: usize,
    /// `Duration::ZERO`: no reuse, a connection per message.
    pub idle_timeout: Duration,
    pub wait_timeout: Duration,
}

/// Validated settings of one SMTP account.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub min_tls: TlsMin,
    pub ca_file: Option<PathBuf>,
    pub accept_invalid_certs: bool,
    pub auth: AuthPolicy,
    pub mechanism: MechanismChoice,
    pub allow_plaintext_auth: bool,
    pub username: Option<String>,
    /// A secret reference (`env:`, `file:` or a literal), resolved through the host.
    pub password_ref: Option<String>,
    pub oauth: Option<String>,
    pub oauth_scope: String,
    pub pop: Option<PopConfig>,
    pub pool: PoolConfig,
    pub timeout: Duration,
    pub envelope_from: Option<String>,
    pub helo_name: Option<String>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("min_tls", &self.min_tls)
            .field("ca_file", &self.ca_file)
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("auth", &self.auth)
            .field("mechanism", &self.mechanism)
            .field("allow_plaintext_auth", &self.allow_plaintext_auth)
            .field("username", &self.username)
            .field(
                "password_ref",
                &self.password_ref.as_ref().map(|_| "<redacted>"),
            )
            .field("oauth", &self.oauth)
            .field("oauth_scope", &self.oauth_scope)
            .field("pop", &self.pop)
            .field("pool", &self.pool)
            .field("timeout", &self.timeout)
            .field("envelope_from", &self.envelope_from)
            .field("helo_name", &self.helo_name)
            .finish()
    }
}

fn bad(setting: &str, what: impl fmt::Display) -> PluginError {
    PluginError::config(format!("smtp setting `{setting}`: {what}"))
}

fn parse_port(setting: &str, value: Option<u32>, default: u16) -> Result<u16, PluginError> {
    match value {
        None => Ok(default),
        Some(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Some(p) => Err(bad(setting, format!("{p} is not a port; use 1-65535"))),
    }
}

/// An IP address, or a host name made of letters, digits, hyphens and dots.
fn check_host(setting: &str, host: &str) -> Result<(), PluginError> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let h = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if h.is_empty() || h.len() > 253 || !h.split('.').all(label_ok) {
        return Err(bad(
            setting,
            format!("{host:?} is neither an IP address nor a valid host name (FQDN)"),
        ));
    }
    Ok(())
}

impl SmtpConfig {
    /// Parses and checks the account settings (a JSON object).
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        let raw: RawConfig = serde_json::from_str(json)
            .map_err(|e| PluginError::config(format!("smtp settings are invalid: {e}")))?;
        raw.check_one_line()?;
        let host = raw.host.trim().to_string();
        check_host("host", &host)?;
        let security = raw.security.unwrap_or(Security::Starttls);
        let default_port = if security == Security::Tls { 465 } else { 587 };
        let port = parse_port("port", raw.port, default_port)?;
        let min_tls = match raw.min_tls.as_deref().unwrap_or("1.2") {
            "1.2" => TlsMin::V12,
            "1.3" => TlsMin::V13,
            v @ ("1.0" | "1.1") => {
                return Err(bad(
                    "min_tls",
                    format!("TLS {v} is deprecated and refused (RFC 8996); use \"1.2\" or \"1.3\""),
                ))
            }
            v => {
                return Err(bad(
                    "min_tls",
                    format!("{v:?} is not a TLS version; use \"1.2\" or \"1.3\""),
                ))
            }
        };
        if let Some(ca) = &raw.ca_file {
            if !ca.is_file() {
                return Err(bad(
                    "ca_file",
                    format!(
                        "{} is not a readable file; give the PEM file of the CA",
                        ca.display()
                    ),
                ));
            }
        }
        let auth = raw.auth.unwrap_or(AuthPolicy::Optional);
        let mechanism = raw.mechanism.unwrap_or(MechanismChoice::Auto);
        if raw.oauth.is_some() && raw.password.is_some() {
            return Err(bad(
                "oauth",
                "give either `oauth` (XOAUTH2) or `password`, not both",
            ));
        }
        if mechanism == MechanismChoice::Xoauth2 && raw.oauth.is_none() && auth != AuthPolicy::None
        {
            return Err(bad(
                "mechanism",
                "xoauth2 needs `oauth` (the host's [oauth.NAME] client that issues the tokens)",
            ));
        }
        if raw.oauth.is_some()
            && !matches!(mechanism, MechanismChoice::Auto | MechanismChoice::Xoauth2)
        {
            return Err(bad(
                "mechanism",
                "with `oauth` the mechanism is xoauth2 (or auto)",
            ));
        }
        let has_creds = raw.username.is_some() && (raw.password.is_some() || raw.oauth.is_some());
        if (raw.password.is_some() || raw.oauth.is_some()) && raw.username.is_none() {
            return Err(bad(
                "username",
                "a password or oauth client is set but no username",
            ));
        }
        if auth == AuthPolicy::None && has_creds {
            tracing::warn!("smtp: auth = \"none\": the configured credentials are not used");
        }
        if security == Security::None
            && !raw.allow_plaintext_auth
            && auth != AuthPolicy::None
            && matches!(
                mechanism,
                MechanismChoice::Plain | MechanismChoice::Login | MechanismChoice::Xoauth2
            )
        {
            return Err(bad(
                "mechanism",
                "PLAIN, LOGIN and XOAUTH2 send the credentials in clear text and security = \"none\"; \
                 use security = \"starttls\" or \"tls\", mechanism = \"cram-md5\", or set allow_plaintext_auth = true",
            ));
        }
        let pop = match raw.pop_before_smtp {
            None => None,
            Some(p) => {
                let host = p.host.trim().to_string();
                check_host("pop_before_smtp.host", &host)?;
                let security = p.security.unwrap_or(Security::Starttls);
                let default_port = if security == Security::Tls { 995 } else { 110 };
                Some(PopConfig {
                    host,
                    port: parse_port("pop_before_smtp.port", p.port, default_port)?,
                    security,
                    username: p.username,
                    password_ref: p.password,
                    apop: p.apop,
                })
            }
        };
        let rp = raw.pool.unwrap_or(RawPool {
            max_size: None,
            idle_timeout_ms: None,
            wait_timeout_ms: None,
        });
        let max_size = rp.max_size.unwrap_or(10);
        if !(1..=1000).contains(&max_size) {
            return Err(bad(
                "pool.max_size",
                format!("{max_size} is out of range 1-1000"),
            ));
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(30_000);
        if timeout_ms == 0 {
            return Err(bad("timeout_ms", "must be at least 1"));
        }
        if let Some(from) = &raw.envelope_from {
            if from.parse::<lettre::Address>().is_err() {
                return Err(bad(
                    "envelope_from",
                    format!("{from:?} is not an e-mail address"),
                ));
            }
        }
        Ok(Self {
            host,
            port,
            security,
            min_tls,
            ca_file: raw.ca_file,
            accept_invalid_certs: raw.accept_invalid_certs,
            auth,
            mechanism,
            allow_plaintext_auth: raw.allow_plaintext_auth,
            username: raw.username,
            password_ref: raw.password,
            oauth: raw.oauth,
            oauth_scope: raw
                .oauth_scope
                .unwrap_or_else(|| DEFAULT_OAUTH_SCOPE.to_string()),
            pop,
            pool: PoolConfig {
                max_size: max_size as usize,
                idle_timeout: Duration::from_millis(rp.idle_timeout_ms.unwrap_or(60_000)),
                wait_timeout: Duration::from_millis(rp.wait_timeout_ms.unwrap_or(30_000)),
            },
            timeout: Duration::from_millis(timeout_ms),
            envelope_from: raw.envelope_from,
            helo_name: raw.helo_name,
        })
    }

    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// True when the account authenticates with a password against Exchange Online,
    /// where basic auth is off from the end of December 2026 (`550 5.7.30`).
    pub fn basic_auth_to_exchange_online(&self) -> bool {
        let h = self.host.to_ascii_lowercase();
        let h = h.strip_suffix('.').unwrap_or(&h);
        let exchange = h == "office365.com" || h.ends_with(".office365.com");
        exchange
            && self.auth != AuthPolicy::None
            && self.oauth.is_none()
            && self.password_ref.is_some()
    }
}

/// The warning for basic auth against Exchange Online.
pub const EXCHANGE_BASIC_AUTH_WARNING: &str =
    "this account uses basic authentication (a password) against Exchange Online, \
     which Microsoft turns off by default at the end of December 2026 (then `550 5.7.30`); \
     switch to XOAUTH2: set `oauth` to an [oauth.NAME] client with the SMTP.SendAsApp permission";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = SmtpConfig::from_json(r#"{"host":"smtp.example.com"}"#).unwrap();
        assert_eq!(c.port, 587);
        assert_eq!(c.security, Security::Starttls);
        assert_eq!(c.min_tls, TlsMin::V12);
        assert_eq!(c.auth, AuthPolicy::Optional);
        assert_eq!(c.pool.max_size, 10);
        let c = SmtpConfig::from_json(r#"{"host":"127.0.0.1","security":"tls"}"#).unwrap();
        assert_eq!(c.port, 465);
    }

    #[test]
    fn refuses_old_tls_with_rfc_8996() {
        for v in ["1.0", "1.1"] {
            let e = SmtpConfig::from_json(&format!(r#"{{"host":"h.example","min_tls":"{v}"}}"#))
                .unwrap_err();
            assert!(e.message().contains("RFC 8996"), "{e}");
            assert!(e.message().contains("min_tls"), "{e}");
        }
    }

    #[test]
    fn refuses_bad_hosts_ports_and_unknown_keys() {
        assert!(SmtpConfig::from_json(r#"{"host":"bad host"}"#).is_err());
        assert!(SmtpConfig::from_json(r#"{"host":"h.example","port":70000}"#).is_err());
        assert!(SmtpConfig::from_json(r#"{"host":"h.example","port":0}"#).is_err());
        assert!(SmtpConfig::from_json(r#"{"host":"h.example","bogus":1}"#).is_err());
        assert!(SmtpConfig::from_json(r#"{"host":"::1"}"#).is_ok());
    }

    #[test]
    fn plaintext_auth_needs_opt_in() {
        let j = r#"{"host":"h.example","security":"none","mechanism":"plain","username":"u","password":"env:P"}"#;
        let e = SmtpConfig::from_json(j).unwrap_err();
        assert!(e.message().contains("allow_plaintext_auth"), "{e}");
        let j = r#"{"host":"h.example","security":"none","mechanism":"plain","allow_plaintext_auth":true,"username":"u","password":"env:P"}"#;
        assert!(SmtpConfig::from_json(j).is_ok());
    }

    #[test]
    fn debug_hides_password_reference() {
        let c =
            SmtpConfig::from_json(r#"{"host":"h.example","username":"u","password":"hunter2"}"#)
                .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn exchange_online_basic_auth_is_detected() {
        let c = SmtpConfig::from_json(
            r#"{"host":"smtp.office365.com","username":"u","password":"env:P"}"#,
        )
        .unwrap();
        assert!(c.basic_auth_to_exchange_online());
        let c =
            SmtpConfig::from_json(r#"{"host":"smtp.office365.com","username":"u","oauth":"m365"}"#)
                .unwrap();
        assert!(!c.basic_auth_to_exchange_online());
    }

    #[test]
    fn refuses_line_breaks_in_every_wire_setting_naming_the_key() {
        for (key, json) in [
            (
                "helo_name",
                r#"{"host":"h.example","helo_name":"x.example\r\nX-INJECTED-CMD"}"#,
            ),
            (
                "envelope_from",
                r#"{"host":"h.example","envelope_from":"a@b.example\nRSET"}"#,
            ),
            ("host", r#"{"host":"h.example\r\nRSET"}"#),
            (
                "username",
                r#"{"host":"h.example","username":"u\u0000x","password":"env:P"}"#,
            ),
            (
                "pop_before_smtp.username",
                r#"{"host":"h.example","pop_before_smtp":{"host":"p.example","username":"u\r\nDELE 1","password":"env:P"}}"#,
            ),
        ] {
            let e = SmtpConfig::from_json(json).unwrap_err();
            assert_eq!(e.class(), mailhost_plugin_api::ErrorClass::CONFIG, "{e}");
            assert!(e.message().contains(&format!("`{key}`")), "{key}: {e}");
            assert!(
                !e.message().contains('\n') && !e.message().contains('\r'),
                "raw value in {e}"
            );
        }
    }

    #[test]
    fn schema_is_json() {
        let v: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(v["additionalProperties"], false);
    }
}
