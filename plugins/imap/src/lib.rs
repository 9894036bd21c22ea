//! `imap`: the IMAP transport plugin.
//!
//! * `imap-draft` (compose): APPENDs the host-built message (Bcc kept) to
//!   Drafts with `\Draft \Seen` and returns the folder and UID (UIDPLUS).
//! * `imap` (send): "send as this mailbox" — submission through the
//!   provider's submission server with the same credentials (the SMTP plugin's
//!   code, linked as a library), then a copy in Sent (`\Seen`); a failed copy
//!   is a warning in the receipt, never a second submission.
//! * Copies for other accounts: `compose` with `options_json.save_copy_for`
//!   (the host's `save_copy_to`) stores a message sent elsewhere in Sent.
//! * Folders by SPECIAL-USE, then common names, in modified UTF-7.
//! * LOGIN, AUTHENTICATE PLAIN, XOAUTH2, OAUTHBEARER (tokens from the host);
//!   STARTTLS / implicit TLS / none, TLS 1.2+, `ca_file`; timeouts.
//!
//! The IMAP client is our own small one ([`client`]): the plugin needs eight
//! commands, and the maintained crates either hide `APPENDUID` (async-imap's
//! `append` returns nothing) or bring a second async I/O stack.

pub mod auth;
pub mod check;
pub mod client;
pub mod config;
pub mod error;
pub mod mailbox;
pub mod transport;
pub mod utf7;

pub use config::ImapConfig;
pub use transport::ImapTransport;

use mailhost_plugin_api::{Capabilities, Host, Manifest, Plugin, PluginError};

/// The plugin type exported to the host.
#[derive(Debug)]
pub struct Imap;

impl Plugin for Imap {
    type Transport = ImapTransport;

    fn manifest() -> Manifest {
        Manifest::new("imap", env!("CARGO_PKG_VERSION"))
            .description("sends as the mailbox (submission + copy in Sent) and saves drafts over IMAP (SPECIAL-USE folders, UIDPLUS, LOGIN/PLAIN/XOAUTH2, STARTTLS/TLS)")
            .capabilities(
                Capabilities::SEND
                    | Capabilities::COMPOSE
                    | Capabilities::SAVE_COPY
                    | Capabilities::CHECK
                    | Capabilities::SAVE_COPY_FOR_OTHERS,
            )
            .modes(&["imap", "imap-draft"])
            .settings_schema(config::SCHEMA)
    }

    fn open(settings_json: &str, host: Host) -> Result<ImapTransport, PluginError> {
        let config = ImapConfig::from_json(settings_json)?;
        ImapTransport::new(config, host)
    }
}

mailhost_plugin_api::export_plugin!(Imap);
