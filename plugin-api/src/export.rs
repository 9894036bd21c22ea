//! The glue a plugin author does not write: panic guards and the root module.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_CanDowncast;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RVec};

use crate::{
    Capabilities, CheckReport, ComposeOutcome, ConnState, ConnectionStatus, ExtensionBox, Host,
    HostHandle, Manifest, OutgoingMessage, PluginError, Probe, Receipt, Transport, TransportBox,
    Transport_TO,
};

/// A transport plugin: what [`crate::export_plugin!`] exports.
pub trait Plugin: 'static {
    /// The opened account.
    type Transport: TransportImpl;

    /// What the plugin is: name, modes, capabilities, settings schema.
    fn manifest() -> Manifest;

    /// Whether the plugin can work on this machine now. Cheap, no side effects.
    fn probe(_host: &Host) -> Probe {
        Probe::available("")
    }

    /// Opens an account. `settings_json` is the account's plugin settings as a
    /// JSON object, already validated against the manifest's schema.
    fn open(settings_json: &str, host: Host) -> Result<Self::Transport, PluginError>;

    /// A capability added after 1.0, by name.
    fn extension(_name: &str) -> Option<ExtensionBox> {
        None
    }
}

/// An opened account, in plain Rust. The glue guards every call against panics.
pub trait TransportImpl: Send + Sync + 'static {
    /// Delivers `message` (see [`OutgoingMessage`]: `mime` keeps the Bcc header,
    /// `envelope.to` lists every recipient). A panic becomes a `Permanent` error.
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError>;

    /// Delivers several messages at once: one result per message, in the
    /// same order. A 1.1 host calls it for a group of queued messages that
    /// go out through this account (the outbox worker), so a transport can
    /// overlap them — e.g. one thread driving several connections — where
    /// `send` per message would keep a host thread waiting for each reply.
    /// The default sends each in turn, a panic in one becoming that
    /// message's `Permanent` error. An override that panics fails every
    /// message of the call with `Permanent`, sent or not: keep it panic-free.
    fn send_many(&self, messages: &[OutgoingMessage]) -> Vec<Result<Receipt, PluginError>> {
        messages
            .iter()
            .map(|m| guard("send", || self.send(m)))
            .collect()
    }

    /// Opens or saves `message` for the user to finish (a draft, a dialog, a web
    /// link). Only for plugins with [`crate::Capabilities::COMPOSE`].
    fn compose(&self, _message: &OutgoingMessage) -> Result<ComposeOutcome, PluginError> {
        Err(PluginError::unsupported(
            "this transport cannot compose; choose a compose mode served by another plugin",
        ))
    }

    /// "Test settings": each step with the server's words. `options_json` is a
    /// JSON object: `{}`, or `{"test_recipient": "X"}` for `mailhost check
    /// ACCOUNT --to X` (then also send a test message to X). Ignore unknown keys.
    fn check(&self, options_json: &str) -> Result<CheckReport, PluginError>;

    /// The account's connection state, cheap (no network): the host reads it for
    /// `mailhost status` and autodetect. Default: `operating`.
    fn status(&self) -> ConnectionStatus {
        ConnectionStatus::new(ConnState::OPERATING, "")
    }

    /// Called once before the account is dropped: close connections.
    fn close(&self) {}
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// Runs `f`, turning a panic into a `Permanent` [`PluginError`] naming `what`.
pub fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, PluginError>) -> Result<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(PluginError::permanent(format!(
            "plugin panicked in {what}: {}; the message was not sent by this plugin — report this to the plugin's author",
            panic_text(payload.as_ref())
        ))),
    }
}

/// A [`TransportImpl`] behind the ABI, every call guarded.
struct Guarded<T>(T);

impl<T: TransportImpl> Transport for Guarded<T> {
    fn send(&self, message: &OutgoingMessage) -> RResult<Receipt, PluginError> {
        guard("send", || self.0.send(message)).into()
    }

    fn compose(&self, message: &OutgoingMessage) -> RResult<ComposeOutcome, PluginError> {
        guard("compose", || self.0.compose(message)).into()
    }

    fn check(&self, options_json: RStr<'_>) -> RResult<CheckReport, PluginError> {
        guard("check", || self.0.check(options_json.as_str())).into()
    }

    fn status(&self) -> ConnectionStatus {
        guard("status", || Ok(self.0.status()))
            .unwrap_or_else(|e| ConnectionStatus::new(ConnState::UNABLE_TO_CONNECT, e.message()))
    }

    fn close(&self) {
        let _ = guard("close", || {
            self.0.close();
            Ok(())
        });
    }
}

/// `P`'s manifest with the panic-strategy bit of the code that exported it
/// (`UNWIND`: `cfg!(panic = "unwind")` where [`crate::export_plugin!`] expanded);
/// whatever the plugin set itself for those bits is replaced.
extern "C" fn manifest_shim<P: Plugin, const UNWIND: bool>() -> RResult<Manifest, PluginError> {
    guard("manifest", || {
        let mut m = P::manifest();
        m.capabilities = m
            .capabilities
            .without(Capabilities::PANIC_UNWIND.union(Capabilities::PANIC_ABORT))
            .union(Capabilities::panic_strategy(UNWIND));
        Ok(m)
    })
    .into()
}

extern "C" fn probe_shim<P: Plugin>(host: HostHandle) -> Probe {
    crate::log::install(&host);
    let host = Host(host);
    guard("probe", || Ok(P::probe(&host))).unwrap_or_else(|e| Probe::unavailable(e.message()))
}

extern "C" fn open_shim<P: Plugin>(
    settings_json: RStr<'_>,
    host: HostHandle,
) -> RResult<TransportBox, PluginError> {
    crate::log::install(&host);
    guard("open", || {
        let t = P::open(settings_json.as_str(), Host(host))?;
        Ok(Transport_TO::from_value(Guarded(t), TD_CanDowncast))
    })
    .into()
}

/// `send_many` of a transport `open_shim::<P>` returned: exactly one result
/// per message, whatever the plugin's code answers or does.
extern "C" fn send_many_shim<P: Plugin>(
    transport: &TransportBox,
    messages: RSlice<'_, OutgoingMessage>,
) -> RVec<RResult<Receipt, PluginError>> {
    let n = messages.len();
    let all = |e: PluginError| (0..n).map(|_| RResult::RErr(e.clone())).collect();
    let Ok(t) = transport.obj.downcast_as::<Guarded<P::Transport>>() else {
        return all(PluginError::permanent(
            "send_many was given a transport this plugin did not open; report this to the host's author",
        ));
    };
    match guard("send_many", || Ok(t.0.send_many(messages.as_slice()))) {
        Ok(mut got) => {
            got.truncate(n);
            while got.len() < n {
                got.push(Err(PluginError::permanent(
                    "the plugin's send_many answered fewer results than it was given messages; report this to the plugin's author",
                )));
            }
            got.into_iter().map(RResult::from).collect()
        }
        Err(e) => all(e),
    }
}

extern "C" fn extension_shim<P: Plugin>(name: RStr<'_>) -> ROption<ExtensionBox> {
    guard("extension", || Ok(P::extension(name.as_str())))
        .ok()
        .flatten()
        .into()
}

/// Builds the root module of plugin `P`. Called once by the exported symbol.
/// The manifest's panic-strategy bit is the one this crate was compiled with
/// (Cargo compiles every crate of a build with the same strategy).
pub fn root_module<P: Plugin>() -> crate::module::v1_1::PluginModRef {
    root_module_for::<P, { cfg!(panic = "unwind") }>()
}

/// [`root_module`] with the panic strategy given: `UNWIND` is
/// `cfg!(panic = "unwind")` as seen by the crate that calls
/// [`crate::export_plugin!`].
#[doc(hidden)]
pub fn root_module_for<P: Plugin, const UNWIND: bool>() -> crate::module::v1_1::PluginModRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    crate::module::v1_1::PluginMod {
        manifest: manifest_shim::<P, UNWIND>,
        probe: probe_shim::<P>,
        open: open_shim::<P>,
        extension: extension_shim::<P>,
        send_many: send_many_shim::<P>,
    }
    .leak_into_prefix()
}

/// Opens `P` in-process as the host would, through the guarded ABI types.
/// For a plugin's own tests (rlib), so they exercise the same glue as the cdylib.
pub fn open_in_process<P: Plugin>(
    settings_json: &str,
    host: &Host,
) -> Result<TransportBox, PluginError> {
    open_shim::<P>(settings_json.into(), host.0.clone()).into_result()
}

/// The symbol abi_stable looks up in a library (`ROOT_MODULE_LOADER_NAME` of
/// abi_stable 0.11), spelled out so that [`crate::export_plugin!`] needs no
/// direct `abi_stable` dependency in the plugin crate. A test checks it.
#[doc(hidden)]
pub const ROOT_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// Exports plugin type `P` (which implements [`Plugin`]) as this library's root module.
///
/// Expands to what `#[abi_stable::export_root_module]` generates, with paths
/// through this crate, so a plugin crate depends on `mailhost-plugin-api` only.
/// Link at most one plugin crate into one program: each exports the same symbol.
///
/// ```ignore
/// mailhost_plugin_api::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The root module the host looks up (generated by `export_plugin!`).
        ///
        /// The manifest says whether this library was built with
        /// `panic = "unwind"` (the host refuses `panic = "abort"`).
        pub fn mailhost_plugin_root_module() -> $crate::v1_1::PluginModRef {
            $crate::root_module_for::<$plugin, { cfg!(panic = "unwind") }>()
        }

        #[doc(hidden)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi_stable::library::LibHeader = {
            pub extern "C" fn _sabi_erased_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(mailhost_plugin_root_module)
            }
            // SAFETY: what `#[export_root_module]` expands to: the header describes
            // 1.1's `PluginModRef`, whose layout abi_stable checks when the host
            // loads it (a 1.0 host reads it as 1.0's, a prefix of it).
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::v1_1::PluginModRef>(
                    _sabi_erased_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_symbol_matches_abi_stable() {
        assert_eq!(
            super::ROOT_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
