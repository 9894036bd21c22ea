//! The host's side of `HostServices`: what every plugin may ask of the host.

use std::path::PathBuf;
use std::sync::Arc;

use mailhost_plugin_api::abi_stable::std_types::{RResult, RStr, RString};
use mailhost_plugin_api::{Host, HostHandle, HostServices, LogLevel, PluginError, TokenRequest};

use crate::tokens::TokenBroker;

/// Log lines, secrets and tokens for plugins.
#[derive(Clone, Debug)]
pub struct HostEnv {
    broker: Arc<TokenBroker>,
    /// Directory relative `file:` secret references are resolved against.
    base: Option<PathBuf>,
    /// The plugin (or account) this handle was given to, for log lines.
    origin: String,
    /// The mode the transport was opened for (extension `mode`).
    mode: Option<String>,
}

/// The host extension a plugin calls (`host.extension("mode", "")`) to learn
/// which of its modes a transport was opened for: `{"mode": "mapi-full"}`, or
/// `{"mode": null}` where the handle serves no transport (a probe).
pub const EXTENSION_MODE: &str = "mode";

impl HostEnv {
    pub fn new(broker: Arc<TokenBroker>) -> Self {
        Self {
            broker,
            base: None,
            origin: String::new(),
            mode: None,
        }
    }

    /// Resolve relative `file:` references against `dir` (the config file's directory).
    pub fn with_base(mut self, dir: Option<PathBuf>) -> Self {
        self.base = dir;
        self
    }

    /// The token broker behind this handle (shared by every plugin).
    pub fn broker(&self) -> &Arc<TokenBroker> {
        &self.broker
    }

    /// Tag log lines with the plugin or account this handle serves.
    pub fn with_origin(mut self, origin: &str) -> Self {
        self.origin = origin.to_string();
        self
    }

    /// The mode the transport this handle is given to serves (a plugin
    /// serving several modes, e.g. `mapi-full` and `mapi-simple`, asks).
    pub fn with_mode(mut self, mode: &str) -> Self {
        self.mode = Some(mode.to_string());
        self
    }

    /// The handle passed across the ABI.
    pub fn handle(&self) -> HostHandle {
        Host::new(self.clone()).0
    }
}

impl HostServices for HostEnv {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let (origin, target, message) = (self.origin.as_str(), target.as_str(), message.as_str());
        match level {
            LogLevel::ERROR => {
                tracing::error!(target: "plugin", origin, plugin_target = target, "{message}")
            }
            LogLevel::WARN => {
                tracing::warn!(target: "plugin", origin, plugin_target = target, "{message}")
            }
            LogLevel::INFO => {
                tracing::info!(target: "plugin", origin, plugin_target = target, "{message}")
            }
            LogLevel::DEBUG => {
                tracing::debug!(target: "plugin", origin, plugin_target = target, "{message}")
            }
            _ => tracing::trace!(target: "plugin", origin, plugin_target = target, "{message}"),
        }
    }

    fn secret(&self, reference: RStr<'_>) -> RResult<RString, PluginError> {
        crate::secrets::resolve(reference.as_str(), self.base.as_deref())
            .map(RString::from)
            .into()
    }

    fn token(&self, request: &TokenRequest) -> RResult<RString, PluginError> {
        self.broker
            .token(
                request.provider.as_str(),
                request.scope.as_str(),
                request.force_refresh,
            )
            .map(RString::from)
            .into()
    }

    fn extension(&self, name: RStr<'_>, _input_json: RStr<'_>) -> RResult<RString, PluginError> {
        if name.as_str() == EXTENSION_MODE {
            return RResult::ROk(serde_json::json!({ "mode": self.mode }).to_string().into());
        }
        RResult::RErr(PluginError::unsupported(format!(
            "this host offers no extension `{name}`; update mailhost or the plugin"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_extension_names_the_mode_a_transport_was_opened_for() {
        let env = HostEnv::new(Arc::new(TokenBroker::default()));
        let host = Host::new(env.clone());
        assert_eq!(host.extension("mode", "").unwrap(), r#"{"mode":null}"#);
        let host = Host::new(env.with_origin("mode:mapi-full").with_mode("mapi-full"));
        assert_eq!(
            host.extension("mode", "").unwrap(),
            r#"{"mode":"mapi-full"}"#
        );
        let e = host.extension("nothing-here", "").unwrap_err();
        assert!(e.message().contains("no extension `nothing-here`"));
    }
}
