//! `graph`: Microsoft 365 through Microsoft Graph, with application
//! permissions and tokens from the host's OAuth2 broker.
//!
//! * **send** (`graph` mode): `POST /users/{mailbox}/sendMail` with the host's
//!   exact MIME (base64, `text/plain`; Graph then keeps a copy in Sent Items),
//!   or the JSON form from the structured parts when `save_to_sent_items =
//!   false`. Messages over Graph's 4 MB request limit go the large route: a
//!   draft without the big attachments, an upload session per attachment of
//!   3–150 MB (chunks of 12 × 320 KiB, no Authorization header on the upload
//!   URL, resumed from `nextExpectedRanges`), then `send`.
//! * **compose** (`m365-draft` mode): the message as a draft in the mailbox;
//!   the outcome carries its `webLink` for Outlook on the web.
//! * **check**: a token, its `roles` claim (Mail.Send, Mail.ReadWrite), then a
//!   cheap `GET /users/{mailbox}`.
//!
//! At most 4 requests per mailbox are in flight at once (Graph's limit); the
//! rest wait. A 401 gets one fresh token and one retry.

mod config;
mod error;
mod jwt;
mod tls;
mod transport;

pub use config::{GraphConfig, RequestOptions, DEFAULT_BASE_URL, DEFAULT_SCOPE};
pub use transport::{
    GraphTransport, CHUNK, MAILBOX_CONCURRENCY, MAX_ATTACHMENT, SINGLE_REQUEST_LIMIT,
    UPLOAD_THRESHOLD,
};

use mailhost_plugin_api::{Capabilities, Host, Manifest, Plugin, PluginError};

/// The plugin type exported to the host.
#[derive(Debug)]
pub struct Graph;

impl Plugin for Graph {
    type Transport = GraphTransport;

    fn manifest() -> Manifest {
        Manifest::new("graph", env!("CARGO_PKG_VERSION"))
            .description("Microsoft 365 through Microsoft Graph: sendMail, large messages, Outlook-on-the-web drafts")
            .capabilities(Capabilities::SEND | Capabilities::COMPOSE | Capabilities::SAVE_COPY | Capabilities::CHECK)
            .modes(&["graph", "m365-draft"])
            .settings_schema(&config::schema())
    }

    fn open(settings_json: &str, host: Host) -> Result<GraphTransport, PluginError> {
        let config = GraphConfig::from_json(settings_json)?;
        GraphTransport::new(config, host)
    }
}

mailhost_plugin_api::export_plugin!(Graph);
