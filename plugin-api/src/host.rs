//! Services the host offers to plugins.

use std::fmt;

use abi_stable::sabi_trait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RResult, RStr, RString};
use abi_stable::StableAbi;

use crate::PluginError;

/// Severity of a log line a plugin forwards to the host.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// An error the admin must see.
    pub const ERROR: Self = Self(1);
    /// Something odd that did not stop the work.
    pub const WARN: Self = Self(2);
    /// A normal event (a message sent).
    pub const INFO: Self = Self(3);
    /// Details for diagnosis.
    pub const DEBUG: Self = Self(4);
    /// Protocol-level detail.
    pub const TRACE: Self = Self(5);

    /// The level's name (`error`, `warn`, `info`, `debug`, `trace`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ERROR => "error",
            Self::WARN => "warn",
            Self::INFO => "info",
            Self::DEBUG => "debug",
            _ => "trace",
        }
    }
}

impl fmt::Debug for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A request to the host's OAuth2 token broker.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The `[oauth.NAME]` client the account names.
    pub provider: RString,
    /// The scope, e.g. `https://graph.microsoft.com/.default` or
    /// `https://outlook.office365.com/.default` (SMTP/IMAP XOAUTH2).
    pub scope: RString,
    /// Set after the server refused the cached token (401): the broker drops
    /// it and fetches a new one.
    pub force_refresh: bool,
}

/// What the host offers every plugin. The host owns secrets and tokens; a
/// plugin never reads environment variables or token caches itself.
#[sabi_trait]
pub trait HostServices: Clone + Send + Sync {
    /// A log line from the plugin (the [`crate::log`] layer forwards `tracing` events here).
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);

    /// Resolves a secret reference (`env:NAME`, `file:PATH`, or a literal).
    fn secret(&self, reference: RStr<'_>) -> RResult<RString, PluginError>;

    /// An OAuth2 access token from the host's broker (cached until shortly before expiry).
    fn token(&self, request: &TokenRequest) -> RResult<RString, PluginError>;

    /// A host service added after 1.0, by name, with JSON in and out.
    /// Hosts answer `Unsupported` for names they do not know.
    #[sabi(last_prefix_field)]
    fn extension(&self, name: RStr<'_>, input_json: RStr<'_>) -> RResult<RString, PluginError>;
}

/// The host's services as they cross the ABI.
pub type HostHandle = HostServices_TO<'static, RArc<()>>;

/// A plugin's handle on the host, with ergonomic Rust methods.
#[derive(Clone)]
pub struct Host(pub HostHandle);

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Host")
    }
}

impl Host {
    /// Wraps any [`HostServices`] implementation (the host, or a test double in a plugin's own tests).
    pub fn new<T>(services: T) -> Self
    where
        T: HostServices + Clone + Send + Sync + 'static,
    {
        Self(HostServices_TO::from_ptr(RArc::new(services), TD_Opaque))
    }

    /// Sends a log line to the host (the [`crate::log`] layer does this for `tracing` events).
    pub fn log(&self, level: LogLevel, target: &str, message: &str) {
        self.0.log(level, target.into(), message.into());
    }

    /// Resolves a secret reference; the error names the reference, never a value.
    pub fn secret(&self, reference: &str) -> Result<String, PluginError> {
        self.0
            .secret(reference.into())
            .into_result()
            .map(String::from)
    }

    /// An access token for `provider` and `scope`.
    pub fn token(
        &self,
        provider: &str,
        scope: &str,
        force_refresh: bool,
    ) -> Result<String, PluginError> {
        self.0
            .token(&TokenRequest {
                provider: provider.into(),
                scope: scope.into(),
                force_refresh,
            })
            .into_result()
            .map(String::from)
    }

    /// Calls a host service added after 1.0, by name, with JSON in and out;
    /// `Unsupported` from a host that does not have it.
    pub fn extension(&self, name: &str, input_json: &str) -> Result<String, PluginError> {
        self.0
            .extension(name.into(), input_json.into())
            .into_result()
            .map(String::from)
    }
}
