//! `smtp`: the SMTP transport plugin, built on lettre.
//!
//! * STARTTLS, implicit TLS or none; TLS 1.2+ (or 1.3 only); custom CA file;
//!   `accept_invalid_certs` only explicitly, with a warning.
//! * AUTH PLAIN, LOGIN, XOAUTH2 (tokens from the host's broker, refreshed once
//!   when refused) and CRAM-MD5; `auto` picks the best the server offers and
//!   never sends a password in clear text unless `allow_plaintext_auth`.
//! * POP-before-SMTP (USER/PASS or APOP, optional TLS).
//! * PIPELINING, DSN, SMTPUTF8, SIZE; the Bcc header is removed before DATA.
//! * A connection pool with a wait bound, idle timeout and stale-connection
//!   replacement; no-delay sockets and one write per dialogue turn (no 40 ms
//!   stall, see `stream`).
//! * Errors classified from the server's reply, with the reply code and the
//!   RFC 3463 enhanced status code kept.

pub mod auth;
pub mod check;
pub mod config;
pub mod error;
pub mod job;
pub mod pool;
pub mod pop;
pub mod rt;
pub mod session;
pub mod shared;
pub mod stream;
pub mod tls;
pub mod transport;

pub use config::SmtpConfig;
pub use job::Job;
pub use transport::SmtpTransport;

use mailhost_plugin_api::{Capabilities, Host, Manifest, Plugin, PluginError};

/// The plugin type exported to the host.
#[derive(Debug)]
pub struct Smtp;

impl Plugin for Smtp {
    type Transport = SmtpTransport;

    fn manifest() -> Manifest {
        Manifest::new("smtp", env!("CARGO_PKG_VERSION"))
            .description("sends mail over SMTP (STARTTLS/TLS, AUTH incl. XOAUTH2 and CRAM-MD5, POP-before-SMTP, PIPELINING, DSN, SMTPUTF8, pooled connections)")
            .capabilities(Capabilities::SEND | Capabilities::CHECK)
            .modes(&["smtp"])
            .settings_schema(&config::schema())
            // `send` reads the envelope and the bytes, never the parts.
            .send_reads_mime_only()
            .send_many_overlaps()
    }

    fn open(settings_json: &str, host: Host) -> Result<SmtpTransport, PluginError> {
        let config = SmtpConfig::from_json(settings_json)?;
        SmtpTransport::new(config, host)
    }
}

mailhost_plugin_api::export_plugin!(Smtp);
