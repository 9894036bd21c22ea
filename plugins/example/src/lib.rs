//! `example`: a webhook transport, and the plugin author's tutorial.
//!
//! Each message is POSTed as one JSON document to a configured URL: envelope,
//! subject, from/to/cc, text and HTML bodies, attachments (base64), the raw
//! MIME (base64), the Message-ID, and the idempotency key — also sent as the
//! `Idempotency-Key` header so the receiver can drop a retried duplicate.
//!
//! Read this crate top to bottom with `docs/plugin-authors.md`:
//!
//! 1. **this file** — the [`Plugin`] impl: the manifest (name, modes,
//!    capabilities, settings schema), `open`, and `export_plugin!`;
//! 2. [`config`] — the account settings and their JSON Schema;
//! 3. [`payload`] — what goes over the wire;
//! 4. [`classify`] — turning HTTP results into the host's error classes;
//! 5. [`transport`] — the [`TransportImpl`](mailhost_plugin_api::TransportImpl):
//!    `send`, `check`, `status`, `close`;
//! 6. [`tls`] — what the HTTP client trusts (`ca_file`, `accept_invalid_certs`).
//!
//! # What the glue does for you
//!
//! [`mailhost_plugin_api::export_plugin!`] exports the root module the host
//! looks up, and wraps every entry point (`manifest`, `probe`, `open`, and each
//! transport method) in `catch_unwind`: a panic becomes a `Permanent`
//! `PluginError` ("plugin panicked in send: …") instead of unwinding across the
//! ABI, which would end the host process. It also installs a `tracing`
//! subscriber in this library that forwards every event to the host's log, so
//! `tracing::info!` here shows up in the host's output with the host's filter.
//! A cdylib has its own copy of `tracing`: the host's subscriber cannot see it.

pub mod classify;
pub mod config;
pub mod payload;
pub mod tls;
pub mod transport;

pub use config::WebhookConfig;
pub use transport::WebhookTransport;

use mailhost_plugin_api::{Capabilities, Host, Manifest, Plugin, PluginError, Probe};

/// The plugin type. It has no data: it only names the transport type and
/// answers the host's questions. The host never creates it; `export_plugin!`
/// calls its associated functions.
#[derive(Debug)]
pub struct Webhook;

impl Plugin for Webhook {
    /// What `open` returns: one opened account.
    type Transport = WebhookTransport;

    /// What the plugin is. The host calls this once, right after loading the
    /// file, before any account is opened — keep it cheap and free of I/O.
    fn manifest() -> Manifest {
        // `name` is what an account's `plugin = "example"` refers to, and must be
        // unique among the loaded plugins. `Manifest::new` records the
        // plugin-api version this crate was built against; the host refuses a
        // plugin built for another major version.
        Manifest::new("example", env!("CARGO_PKG_VERSION"))
            .description(
                "POSTs each message as JSON to a webhook URL (the plugin authors' example)",
            )
            // What the transport can do. `SEND` without `COMPOSE`: the glue's
            // default `compose` answers `Unsupported`, and the host moves on.
            .capabilities(Capabilities::SEND | Capabilities::CHECK)
            // The policy modes this plugin serves: `send_mode = "webhook"` picks
            // an account of this plugin. Do not reuse another plugin's mode
            // unless you really are a drop-in for it.
            .modes(&["webhook"])
            // The JSON Schema the host validates each account's settings with,
            // before `open` is ever called (and renders the admin form from).
            .settings_schema(config::SCHEMA)
        // `.os(&["windows"])` would restrict the plugin to one OS; the
        // default (none) means every OS.
    }

    /// Whether the plugin can work on this machine now. Cheap and side-effect
    /// free: no network. A webhook needs nothing local, so: always available.
    /// (Outlook's plugin, say, checks here that Outlook is installed.)
    fn probe(_host: &Host) -> Probe {
        Probe::available("")
    }

    /// Opens one account. `settings_json` is the account's plugin settings as
    /// a JSON object — the host has already removed its own keys (`plugin`,
    /// `from`, `max_per_minute`, `description`) and validated the rest against
    /// [`config::SCHEMA`]. Parse again anyway (the schema cannot say
    /// everything) and return `Config` errors that name the setting.
    ///
    /// `host` is this plugin's handle on the host: secrets (`host.secret`),
    /// OAuth2 tokens (`host.token`) and logging. Keep it if you need it later.
    fn open(settings_json: &str, host: Host) -> Result<WebhookTransport, PluginError> {
        let config = WebhookConfig::from_json(settings_json)?;
        WebhookTransport::open(config, &host)
    }
}

// Exports `Webhook` as this library's root module: the one symbol
// (`_1as_0lib_1header_0root_bmodule_bloader`) the host looks up. One per
// library — which is also why a program must never link two plugin rlibs.
mailhost_plugin_api::export_plugin!(Webhook);
