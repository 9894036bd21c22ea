//! The transport trait object every plugin returns from `open`.

use abi_stable::sabi_trait;
use abi_stable::std_types::{RBox, RResult, RStr, RString};

use crate::{CheckReport, ComposeOutcome, ConnectionStatus, OutgoingMessage, PluginError, Receipt};

/// An opened account: what the host calls for each message.
///
/// Plugin authors do not implement this directly: implement
/// [`crate::TransportImpl`] and let [`crate::export_plugin!`] wrap it, so every
/// call is guarded against panics (a panic that crosses the ABI ends the host).
///
/// All methods take `&self`: the host calls one transport from several worker
/// threads at once, so it keeps its own pool and locks.
#[sabi_trait]
pub trait Transport: Send + Sync {
    /// Delivers the message. Returns a receipt, or a classified error.
    fn send(&self, message: &OutgoingMessage) -> RResult<Receipt, PluginError>;

    /// Opens or saves the message for the user to finish (draft, dialog, web link).
    fn compose(&self, message: &OutgoingMessage) -> RResult<ComposeOutcome, PluginError>;

    /// Tests the settings step by step. `options_json` may hold
    /// `{"test_recipient": "..."}` for a test mail.
    fn check(&self, options_json: RStr<'_>) -> RResult<CheckReport, PluginError>;

    /// The current connection state.
    fn status(&self) -> ConnectionStatus;

    /// Releases connections; the transport is not used afterwards.
    #[sabi(last_prefix_field)]
    fn close(&self);
}

/// An opened transport as it crosses the ABI.
pub type TransportBox = Transport_TO<'static, RBox<()>>;

/// A capability added after 1.0, looked up by name through the root module's
/// `extension`, with JSON in and out.
#[sabi_trait]
pub trait Extension: Send + Sync {
    #[sabi(last_prefix_field)]
    /// Calls `method` of the extension with a JSON input; answers JSON.
    fn call(&self, method: RStr<'_>, input_json: RStr<'_>) -> RResult<RString, PluginError>;
}

/// An extension object as it crosses the ABI.
pub type ExtensionBox = Extension_TO<'static, RBox<()>>;
