//! Account settings: the JSON Schema the host validates with, and the typed,
//! checked form the transport uses.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use mailhost_plugin_api::{settings, wire, PluginError};
use schemars::JsonSchema;
use serde::Deserialize;

/// JSON Schema (draft 2020-12) of an SMTP account's settings, derived from
/// `Settings`: the one definition of the keys.
pub fn schema() -> String {
    settings::schema_for::<Settings>()
}

/// The default XOAUTH2 scope: Exchange Online SMTP (not Graph's).
pub const DEFAULT_OAUTH_SCOPE: &str = "https://outlook.office365.com/.default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthPolicy {
    None,
    Required,
    Optional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
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

/// `pool`: the account's connection pool.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawPool {
    /// most connections open at once
    #[schemars(range(min = 1, max = 1000), extend("default" = 10))]
    max_size: Option<u32>,
    /// close a connection idle this long; 0 = a new connection per message
    #[schemars(range(max = 86_400_000u64), extend("default" = 60000))]
    idle_timeout_ms: Option<u64>,
    /// how long a send waits for a free connection when all are busy
    #[schemars(range(max = 3_600_000u64), extend("default" = 30000))]
    wait_timeout_ms: Option<u64>,
}

/// `pop_before_smtp`: a POP3 login before each SMTP connection.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawPop {
    /// POP3 server: an IP address or a fully qualified domain name
    #[schemars(length(min = 1, max = 253), regex(pattern = HOST_PATTERN))]
    host: String,
    /// default 110, or 995 with security = "tls"
    #[schemars(range(min = 1, max = 65535))]
    port: Option<u32>,
    /// starttls: upgrade with STLS (required); tls: implicit TLS (POP3S); none: clear text
    #[schemars(extend("default" = "starttls"))]
    security: Option<Security>,
    /// the POP3 user
    #[schemars(length(min = 1, max = 256), regex(pattern = settings::ONE_LINE))]
    username: String,
    /// secret reference: env:NAME, file:PATH (or a literal, which is warned about)
    #[schemars(length(min = 1), extend("writeOnly" = true))]
    password: String,
    /// log in with APOP (MD5 digest) instead of USER/PASS
    #[serde(default)]
    apop: bool,
}

/// An IP address or a host name: letters, digits, dots, hyphens, colons.
const HOST_PATTERN: &str = r"^[A-Za-z0-9.:-]+$";
/// An EHLO name: a host name or an address literal (`[192.0.2.1]`, `[IPv6:…]`).
const HELO_PATTERN: &str = r"^[A-Za-z0-9.:\[\]-]+$";

// An SMTP account's settings as the host passes them (the account's keys
// besides the host's `plugin`, `from`, ...). The JSON Schema the host
// validates with is derived from this struct ([`schema`]): doc comments are
// the descriptions users read in `mailhost plugins --settings smtp`.
// [`SmtpConfig`] is the checked form.
/// The settings of an account that sends over SMTP.
///
/// Presets (`preset = "office365"` on the account; the host fills the keys the
/// account leaves out, and an explicit key wins): Exchange Online and Gmail
/// submission with XOAUTH2, as their providers document them.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "SMTP account",
    extend("x-presets" = {
        "gmail": {
            "host": "smtp.gmail.com",
            "mechanism": "xoauth2",
            "oauth_scope": "https://mail.google.com/",
            "port": 587,
            "security": "starttls"
        },
        "office365": {
            "host": "smtp.office365.com",
            "mechanism": "xoauth2",
            "oauth_scope": "https://outlook.office365.com/.default",
            "port": 587,
            "security": "starttls"
        }
    })
)]
struct Settings {
    /// SMTP server: an IP address or a fully qualified domain name
    #[schemars(length(min = 1, max = 253), regex(pattern = HOST_PATTERN))]
    host: String,
    /// default 587, or 465 with security = "tls"
    #[schemars(range(min = 1, max = 65535))]
    port: Option<u32>,
    /// starttls: upgrade with STARTTLS (required); tls: implicit TLS (SMTPS); none: clear text
    #[schemars(extend("default" = "starttls"))]
    security: Option<Security>,
    /// lowest TLS version: 1.2 or 1.3; 1.0 and 1.1 are refused (RFC 8996)
    #[schemars(extend("enum" = ["1.2", "1.3"], "default" = "1.2"))]
    min_tls: Option<String>,
    /// PEM file with the CA certificate(s) to trust in addition to the system's
    #[schemars(length(min = 1, max = 4096), extend("format" = "path"))]
    ca_file: Option<PathBuf>,
    /// DANGEROUS: accept any server certificate (warns on every connection)
    #[serde(default)]
    accept_invalid_certs: bool,
    /// none: never authenticate; required: always (fails without credentials); optional: when credentials are given (per account or per user)
    #[schemars(extend("default" = "optional"))]
    auth: Option<AuthPolicy>,
    /// auto: the best the server offers; PLAIN, LOGIN and XOAUTH2 only over TLS unless allow_plaintext_auth
    #[schemars(extend("default" = "auto"))]
    mechanism: Option<MechanismChoice>,
    /// allow PLAIN/LOGIN/XOAUTH2 on a connection without TLS
    #[serde(default)]
    allow_plaintext_auth: bool,
    /// the user to authenticate as
    #[schemars(length(min = 1, max = 256), regex(pattern = settings::ONE_LINE))]
    username: Option<String>,
    /// secret reference: env:NAME, file:PATH (or a literal, which is warned about)
    #[schemars(length(min = 1), extend("writeOnly" = true))]
    password: Option<String>,
    /// name of the host's [oauth.NAME] client; tokens for XOAUTH2
    #[schemars(length(min = 1, max = 128), regex(pattern = settings::ONE_LINE))]
    oauth: Option<String>,
    /// scope of the XOAUTH2 token
    #[schemars(length(min = 1, max = 1024), regex(pattern = settings::ONE_LINE), extend("format" = "uri", "default" = DEFAULT_OAUTH_SCOPE))]
    oauth_scope: Option<String>,
    /// POP-before-SMTP: a POP3 login that opens the SMTP server for this address
    pop_before_smtp: Option<RawPop>,
    /// the connection pool
    pool: Option<RawPool>,
    /// limit for connecting and for each server reply, in milliseconds
    #[schemars(range(min = 1, max = 3_600_000u64), extend("default" = 30000))]
    timeout_ms: Option<u64>,
    /// MAIL FROM address overriding the message's sender
    #[schemars(
        length(min = 3, max = 254),
        regex(pattern = r"^[^\r\n\x00<> ]+@[^\r\n\x00<> ]+$")
    )]
    envelope_from: Option<String>,
    /// name sent with EHLO (default: this machine's host name)
    #[schemars(length(min = 1, max = 255), regex(pattern = HELO_PATTERN))]
    helo_name: Option<String>,
}

impl Settings {
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
        let raw: Settings = serde_json::from_str(json)
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
        let rp = raw.pool.unwrap_or_default();
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

    fn schema_value() -> serde_json::Value {
        serde_json::from_str(&schema()).unwrap()
    }

    #[test]
    fn derived_schema_keeps_what_the_host_relies_on() {
        let v = schema_value();
        assert_eq!(v["additionalProperties"], false);
        assert_eq!(v["required"], serde_json::json!(["host"]));
        assert_eq!(v["properties"]["ca_file"]["format"], "path");
        assert_eq!(v["properties"]["password"]["writeOnly"], true);
        assert_eq!(
            v["properties"]["pop_before_smtp"]["properties"]["password"]["writeOnly"],
            true
        );
        assert_eq!(
            v["properties"]["pop_before_smtp"]["additionalProperties"],
            false
        );
        assert_eq!(v["properties"]["security"]["default"], "starttls");
        assert_eq!(
            v["properties"]["pool"]["properties"]["max_size"]["default"],
            10
        );
        assert!(v["properties"]["host"]["description"]
            .as_str()
            .unwrap()
            .contains("IP address"));
        assert!(
            !schema().contains("$ref"),
            "inlined: the host reads properties directly"
        );
        assert!(!schema().contains("null"), "a config has no null");
    }

    /// What `config validate` refuses through the schema, `open` refuses too,
    /// and the other way round for these values.
    #[test]
    fn schema_refuses_what_open_refuses() {
        let v = schema_value();
        let validator = jsonschema::validator_for(&v).unwrap();
        let long = format!(r#"{{"host":"{}"}}"#, "a".repeat(1 << 20));
        for bad in [
            r#"{"host":"h.example","min_tls":"1.0"}"#,
            r#"{"host":"h.example","min_tls":"1.4"}"#,
            r#"{"host":"h.example","port":70000}"#,
            r#"{"host":"h.example","port":0}"#,
            r#"{"host":"h.example","security":"ssl"}"#,
            r#"{"host":"h.example","auth":"sometimes"}"#,
            r#"{"host":"h.example","mechanism":"ntlm"}"#,
            r#"{"host":"h.example","helo_name":"x.example\r\nX-INJECTED-CMD"}"#,
            r#"{"host":"h.example","envelope_from":"a@b.example\nRSET"}"#,
            r#"{"host":"h.example\u0000"}"#,
            r#"{"host":"bad host"}"#,
            r#"{"host":"h.example","username":"u\r\n"}"#,
            r#"{"host":"h.example","pool":{"max_size":0}}"#,
            r#"{"host":"h.example","timeout_ms":0}"#,
            r#"{"host":"h.example","bogus":1}"#,
            long.as_str(),
        ] {
            let settings: serde_json::Value = serde_json::from_str(bad).unwrap();
            assert!(!validator.is_valid(&settings), "schema accepts {bad:.80}");
            assert!(
                SmtpConfig::from_json(bad).is_err(),
                "open accepts {bad:.80}"
            );
        }
        for good in [
            r#"{"host":"smtp.example.com"}"#,
            r#"{"host":"::1","port":2525,"security":"none","auth":"none","helo_name":"[IPv6:::1]"}"#,
            r#"{"host":"h.example","min_tls":"1.3","username":"u","password":"env:P","envelope_from":"a@b.example","pool":{"max_size":3,"idle_timeout_ms":0}}"#,
        ] {
            let settings: serde_json::Value = serde_json::from_str(good).unwrap();
            assert!(validator.is_valid(&settings), "schema refuses {good}");
            assert!(SmtpConfig::from_json(good).is_ok(), "open refuses {good}");
        }
    }
}
