//! Account settings: the JSON Schema the host validates with, and the typed,
//! checked form the transport uses.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use mailhost_plugin_api::PluginError;
use serde::Deserialize;

/// JSON Schema (draft 2020-12) of an IMAP account's settings.
pub const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "IMAP account",
  "type": "object",
  "additionalProperties": false,
  "required": ["host"],
  "properties": {
    "host": {"type": "string", "minLength": 1, "description": "IMAP server: an IP address or a fully qualified domain name"},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "default 143, or 993 with security = \"tls\""},
    "security": {"enum": ["starttls", "tls", "none"], "default": "starttls", "description": "starttls: upgrade with STARTTLS (required); tls: implicit TLS (IMAPS); none: clear text"},
    "ca_file": {"type": "string", "minLength": 1, "description": "PEM file with the CA certificate(s) to trust in addition to the system's"},
    "mechanism": {"enum": ["auto", "login", "plain", "xoauth2", "oauthbearer"], "default": "auto", "description": "auto: XOAUTH2/OAUTHBEARER with `oauth`, else AUTHENTICATE PLAIN when offered, else LOGIN"},
    "allow_plaintext_auth": {"type": "boolean", "default": false, "description": "allow a password or token on a connection without TLS"},
    "username": {"type": "string", "minLength": 1, "description": "login name (per-user credentials override it)"},
    "password": {"type": "string", "minLength": 1, "description": "secret reference: env:NAME, file:PATH (or a literal, which is warned about)"},
    "oauth": {"type": "string", "minLength": 1, "description": "name of the host's [oauth.NAME] client; tokens for XOAUTH2/OAUTHBEARER"},
    "oauth_scope": {"type": "string", "minLength": 1, "default": "https://outlook.office365.com/.default", "description": "scope of the token"},
    "drafts_folder": {"type": "string", "minLength": 1, "description": "Drafts folder (UTF-8 name); default: the folder marked \\Drafts, then common names"},
    "sent_folder": {"type": "string", "minLength": 1, "description": "Sent folder (UTF-8 name); default: the folder marked \\Sent, then common names"},
    "create_folders": {"type": "boolean", "default": false, "description": "create the Drafts/Sent folder when none is found"},
    "save_to_sent": {"enum": ["auto", "always", "never"], "default": "auto", "description": "after a send: append the message to Sent; auto skips providers that file submitted mail themselves (Gmail, Exchange Online/Outlook.com)"},
    "submission": {
      "type": "object",
      "description": "the provider's submission server (RFC 6409) used to send as the mailbox, with the same credentials",
      "additionalProperties": false,
      "properties": {
        "host": {"type": "string", "minLength": 1, "description": "default: the IMAP host"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "default 587, or 465 with security = \"tls\""},
        "security": {"enum": ["starttls", "tls", "none"], "default": "starttls", "description": "starttls: port 587 with STARTTLS; tls: implicit TLS (port 465); none: clear text"}
      }
    },
    "timeout_ms": {"type": "integer", "minimum": 1, "default": 30000, "description": "limit for connecting and for each server reply"}
  }
}"#;

/// The default token scope: Exchange Online IMAP/SMTP (not Graph's).
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
pub enum MechanismChoice {
    Auto,
    Login,
    Plain,
    Xoauth2,
    Oauthbearer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveToSent {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubmission {
    host: Option<String>,
    port: Option<u32>,
    security: Option<Security>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    host: String,
    port: Option<u32>,
    security: Option<Security>,
    ca_file: Option<PathBuf>,
    mechanism: Option<MechanismChoice>,
    #[serde(default)]
    allow_plaintext_auth: bool,
    username: Option<String>,
    password: Option<String>,
    oauth: Option<String>,
    oauth_scope: Option<String>,
    drafts_folder: Option<String>,
    sent_folder: Option<String>,
    #[serde(default)]
    create_folders: bool,
    save_to_sent: Option<SaveToSent>,
    submission: Option<RawSubmission>,
    timeout_ms: Option<u64>,
}

/// The submission server (RFC 6409) the account sends through.
#[derive(Debug, Clone)]
pub struct Submission {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// Validated settings of one IMAP account.
#[derive(Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub ca_file: Option<PathBuf>,
    pub mechanism: MechanismChoice,
    pub allow_plaintext_auth: bool,
    pub username: Option<String>,
    /// A secret reference, resolved through the host when used.
    pub password_ref: Option<String>,
    pub oauth: Option<String>,
    pub oauth_scope: String,
    pub drafts_folder: Option<String>,
    pub sent_folder: Option<String>,
    pub create_folders: bool,
    pub save_to_sent: SaveToSent,
    pub submission: Submission,
    pub timeout: Duration,
}

impl fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field(
                "password_ref",
                &self.password_ref.as_ref().map(|_| "<redacted>"),
            )
            .field("oauth", &self.oauth)
            .field("submission", &self.submission)
            .finish_non_exhaustive()
    }
}

/// Refuses a value that would break the IMAP or SMTP dialogue (CR, LF, NUL).
pub fn on_the_wire(what: &str, value: &str) -> Result<(), String> {
    if value.contains(['\r', '\n', '\0']) {
        Err(format!(
            "{what} contains a line break or NUL character, which cannot be sent to the server; remove it"
        ))
    } else {
        Ok(())
    }
}

fn port(what: &str, p: Option<u32>, default: u16) -> Result<u16, PluginError> {
    match p {
        None => Ok(default),
        Some(p) => u16::try_from(p).ok().filter(|p| *p != 0).ok_or_else(|| {
            PluginError::config(format!(
                "imap setting `{what}`: {p} is not a port (1-65535)"
            ))
        }),
    }
}

impl ImapConfig {
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        let raw: RawConfig = serde_json::from_str(json)
            .map_err(|e| PluginError::config(format!("imap settings: {e}")))?;
        let security = raw.security.unwrap_or(Security::Starttls);
        let default_port = if security == Security::Tls { 993 } else { 143 };
        let sub = raw.submission.unwrap_or(RawSubmission {
            host: None,
            port: None,
            security: None,
        });
        let sub_security = sub.security.unwrap_or(Security::Starttls);
        let sub_default = if sub_security == Security::Tls {
            465
        } else {
            587
        };
        let cfg = ImapConfig {
            port: port("port", raw.port, default_port)?,
            security,
            ca_file: raw.ca_file,
            mechanism: raw.mechanism.unwrap_or(MechanismChoice::Auto),
            allow_plaintext_auth: raw.allow_plaintext_auth,
            username: raw.username,
            password_ref: raw.password,
            oauth: raw.oauth,
            oauth_scope: raw
                .oauth_scope
                .unwrap_or_else(|| DEFAULT_OAUTH_SCOPE.to_string()),
            drafts_folder: raw.drafts_folder,
            sent_folder: raw.sent_folder,
            create_folders: raw.create_folders,
            save_to_sent: raw.save_to_sent.unwrap_or(SaveToSent::Auto),
            submission: Submission {
                host: sub.host.unwrap_or_else(|| raw.host.clone()),
                port: port("submission.port", sub.port, sub_default)?,
                security: sub_security,
            },
            timeout: Duration::from_millis(raw.timeout_ms.unwrap_or(30_000).max(1)),
            host: raw.host,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), PluginError> {
        let texts = [
            ("host", Some(&self.host)),
            ("username", self.username.as_ref()),
            ("password", self.password_ref.as_ref()),
            ("oauth", self.oauth.as_ref()),
            ("oauth_scope", Some(&self.oauth_scope)),
            ("drafts_folder", self.drafts_folder.as_ref()),
            ("sent_folder", self.sent_folder.as_ref()),
            ("submission.host", Some(&self.submission.host)),
        ];
        for (what, value) in texts {
            if let Some(v) = value {
                on_the_wire(&format!("imap setting `{what}`"), v).map_err(PluginError::config)?;
                if v.trim().is_empty() {
                    return Err(PluginError::config(format!(
                        "imap setting `{what}` is empty; give a value or leave the key out"
                    )));
                }
            }
        }
        if self.password_ref.is_some() && self.oauth.is_some() {
            return Err(PluginError::config(
                "imap settings: both `password` and `oauth` are set; keep one (oauth for XOAUTH2/OAUTHBEARER tokens)",
            ));
        }
        let token_mech = matches!(
            self.mechanism,
            MechanismChoice::Xoauth2 | MechanismChoice::Oauthbearer
        );
        if token_mech && self.oauth.is_none() {
            return Err(PluginError::config(
                "imap setting `mechanism`: XOAUTH2/OAUTHBEARER need `oauth` (the host's [oauth.NAME] client) for tokens",
            ));
        }
        if self.oauth.is_some()
            && matches!(
                self.mechanism,
                MechanismChoice::Login | MechanismChoice::Plain
            )
        {
            return Err(PluginError::config(
                "imap setting `mechanism`: login/plain take a password, but `oauth` is set; use mechanism = \"xoauth2\" or \"auto\"",
            ));
        }
        if self.oauth.is_some() && self.username.is_none() {
            return Err(PluginError::config(
                "imap settings: `oauth` needs `username` (the mailbox the token is for)",
            ));
        }
        Ok(())
    }

    /// `host:port` of the IMAP server.
    pub fn addr(&self) -> String {
        display_addr(&self.host, self.port)
    }

    /// Whether the provider files submitted mail in Sent by itself (Gmail,
    /// Exchange Online and Outlook.com), so that `save_to_sent = "auto"` skips the APPEND.
    pub fn provider_files_sent(&self) -> bool {
        let hosts = [
            self.host.to_ascii_lowercase(),
            self.submission.host.to_ascii_lowercase(),
        ];
        hosts.iter().any(|h| {
            let h = h.trim_end_matches('.');
            [
                "imap.gmail.com",
                "smtp.gmail.com",
                "imap.googlemail.com",
                "smtp.googlemail.com",
                "outlook.office365.com",
                "smtp.office365.com",
                "imap-mail.outlook.com",
                "smtp-mail.outlook.com",
                "outlook.office.com",
            ]
            .contains(&h)
        })
    }

    /// The SMTP plugin's settings for the submission leg: same credentials,
    /// AUTH required (RFC 6409).
    pub fn smtp_settings(&self) -> serde_json::Value {
        let mut s = serde_json::json!({
            "host": self.submission.host,
            "port": self.submission.port,
            "security": self.submission.security.name(),
            "auth": "required",
            "timeout_ms": self.timeout.as_millis() as u64,
        });
        let mut put = |k: &str, v: serde_json::Value| {
            if let Some(o) = s.as_object_mut() {
                o.insert(k.to_string(), v);
            }
        };
        if let Some(ca) = &self.ca_file {
            put("ca_file", ca.display().to_string().into());
        }
        if let Some(u) = &self.username {
            put("username", u.clone().into());
        }
        if let Some(p) = &self.password_ref {
            put("password", p.clone().into());
        }
        if let Some(o) = &self.oauth {
            put("oauth", o.clone().into());
            put("oauth_scope", self.oauth_scope.clone().into());
        }
        let mech = match self.mechanism {
            MechanismChoice::Auto => "auto",
            MechanismChoice::Login => "login",
            MechanismChoice::Plain => "plain",
            // The SMTP plugin speaks XOAUTH2 for either token mechanism.
            MechanismChoice::Xoauth2 | MechanismChoice::Oauthbearer => "xoauth2",
        };
        put("mechanism", mech.into());
        if self.allow_plaintext_auth {
            put("allow_plaintext_auth", true.into());
        }
        s
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = ImapConfig::from_json(
            r#"{"host":"mail.example.com","username":"u","password":"env:P"}"#,
        )
        .unwrap();
        assert_eq!(c.port, 143);
        assert_eq!(c.security, Security::Starttls);
        assert_eq!(c.submission.host, "mail.example.com");
        assert_eq!(c.submission.port, 587);
        assert_eq!(c.save_to_sent, SaveToSent::Auto);
        let c = ImapConfig::from_json(
            r#"{"host":"h","security":"tls","submission":{"security":"tls"}}"#,
        )
        .unwrap();
        assert_eq!((c.port, c.submission.port), (993, 465));
    }

    #[test]
    fn refuses_line_breaks_and_unknown_keys() {
        for bad in [
            r#"{"host":"h","username":"a\r\nA1 LOGOUT"}"#,
            r#"{"host":"h","drafts_folder":"x\u0000"}"#,
            r#"{"host":"h","password":"env:X\n"}"#,
            r#"{"host":"h","submission":{"host":"a\rb"}}"#,
            r#"{"host":"h","colour":"blue"}"#,
        ] {
            let e = ImapConfig::from_json(bad).unwrap_err();
            assert_eq!(e.class(), mailhost_plugin_api::ErrorClass::CONFIG, "{bad}");
        }
    }

    #[test]
    fn known_providers_file_sent_mail() {
        let g = ImapConfig::from_json(r#"{"host":"imap.gmail.com"}"#).unwrap();
        assert!(g.provider_files_sent());
        let o = ImapConfig::from_json(r#"{"host":"outlook.office365.com"}"#).unwrap();
        assert!(o.provider_files_sent());
        let d = ImapConfig::from_json(r#"{"host":"127.0.0.1"}"#).unwrap();
        assert!(!d.provider_files_sent());
    }

    #[test]
    fn smtp_leg_has_the_same_credentials() {
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let c = ImapConfig::from_json(
            &serde_json::json!({"host":"127.0.0.1","port":1143,"username":"u","password":"env:P","ca_file":ca,"submission":{"port":1587}}).to_string(),
        )
        .unwrap();
        let s = c.smtp_settings();
        assert_eq!(s["host"], "127.0.0.1");
        assert_eq!(s["port"], 1587);
        assert_eq!(s["username"], "u");
        assert_eq!(s["password"], "env:P");
        assert_eq!(s["auth"], "required");
        assert_eq!(s["ca_file"], ca);
        mailhost_smtp::SmtpConfig::from_json(&s.to_string()).unwrap();
    }
}
