//! A small plugin as a third party built it against plugin-api 1.0.0. The same
//! file is compiled as compat-v1 (frozen 1.0.0), compat-changed (1.0.0 with a
//! changed `Manifest`) and compat-v2 (package version 2.0.0); the manifest's
//! name is the package's name.
//!
//! `send` accepts every message and answers with what it received, so the
//! loader test can see that the host's `OutgoingMessage` arrived intact.

use mailhost_plugin_api::{
    Capabilities, CheckReport, Host, Manifest, OutgoingMessage, Plugin, PluginError, Receipt,
    StepOutcome, TransportImpl,
};

pub struct Compat;

pub struct CompatTransport {
    tag: String,
}

impl TransportImpl for CompatTransport {
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        let subject = message.parts.subject.as_str();
        Ok(Receipt {
            message_id: message.message_id.clone(),
            server_id: self.tag.as_str().into(),
            server_reply: format!(
                "{} accepted `{subject}` for {} recipient(s), {} MIME bytes",
                env!("CARGO_PKG_NAME"),
                message.envelope.to.len(),
                message.mime.len()
            )
            .into(),
            accepted: message.envelope.to.clone(),
            rejected: Default::default(),
            details_json: "{}".into(),
        })
    }

    fn check(&self, _options_json: &str) -> Result<CheckReport, PluginError> {
        Ok(CheckReport::new().step("noop", StepOutcome::OK, "nothing to check", ""))
    }
}

impl Plugin for Compat {
    type Transport = CompatTransport;

    fn manifest() -> Manifest {
        Manifest::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
            .description("compatibility-test plugin built against an old or changed plugin-api")
            .capabilities(Capabilities::SEND | Capabilities::CHECK)
            .modes(&["compat"])
            .settings_schema(
                r#"{"type":"object","additionalProperties":false,"properties":{"tag":{"type":"string"}}}"#,
            )
    }

    fn open(settings_json: &str, _host: Host) -> Result<CompatTransport, PluginError> {
        // No serde here: the plugin depends on plugin-api only.
        let tag = settings_json
            .split("\"tag\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("")
            .to_string();
        Ok(CompatTransport { tag })
    }
}

mailhost_plugin_api::export_plugin!(Compat);
