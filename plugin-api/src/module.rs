//! The root module: the one symbol the host looks up in a plugin library.

use abi_stable::library::RootModule;
use abi_stable::package_version_strings;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RStr};
use abi_stable::StableAbi;

use crate::{ExtensionBox, HostHandle, Manifest, PluginError, Probe, TransportBox};

/// The base name abi_stable records in every plugin library.
pub const ROOT_BASE_NAME: &str = "mailhost_plugin";

/// The plugin's root module. A prefix type: its fields are frozen for 1.x.
///
/// Every function is guarded against panics by [`crate::export_plugin!`].
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// What the plugin is. An error here (a panic, say) keeps it from loading.
    pub manifest: extern "C" fn() -> RResult<Manifest, PluginError>,
    /// Whether the plugin can work on this machine now.
    pub probe: extern "C" fn(host: HostHandle) -> Probe,
    /// Opens an account with its settings (a JSON object already validated
    /// against the manifest's schema).
    pub open: extern "C" fn(
        settings_json: RStr<'_>,
        host: HostHandle,
    ) -> RResult<TransportBox, PluginError>,
    /// A capability added after 1.0, by name; `RNone` when the plugin lacks it.
    #[sabi(last_prefix_field)]
    pub extension: extern "C" fn(name: RStr<'_>) -> ROption<ExtensionBox>,
}

impl RootModule for PluginModRef {
    abi_stable::declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = ROOT_BASE_NAME;
    const NAME: &'static str = "mailhost plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The root module as 1.1 plugins export it: 1.0's four fields, then what
/// 1.1 adds.
///
/// abi_stable's evolution is one-way (docs/plugin-authors.md, "The ABI"): a
/// 1.0 host reads a 1.1 plugin's root module as [`PluginMod`] (a prefix
/// type may have more fields than its reader knows), but a root module
/// type that gained a field refuses a 1.0 plugin. So the host loads every
/// plugin as [`PluginMod`] first and then tries this type on the same
/// library: a 1.0 plugin is refused here, which only means it lacks what
/// 1.1 adds. Each later minor version would add a type like this one.
pub mod v1_1 {
    use super::*;
    use crate::{OutgoingMessage, Receipt};
    use abi_stable::std_types::{RSlice, RVec};

    /// 1.1's root module: [`super::PluginMod`] plus `send_many`.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
    #[sabi(missing_field(panic))]
    pub struct PluginMod {
        /// As in 1.0.
        pub manifest: extern "C" fn() -> RResult<Manifest, PluginError>,
        /// As in 1.0.
        pub probe: extern "C" fn(host: HostHandle) -> Probe,
        /// As in 1.0.
        pub open: extern "C" fn(
            settings_json: RStr<'_>,
            host: HostHandle,
        ) -> RResult<TransportBox, PluginError>,
        /// As in 1.0.
        #[sabi(last_prefix_field)]
        pub extension: extern "C" fn(name: RStr<'_>) -> ROption<ExtensionBox>,
        /// Sends several messages through a transport this plugin's `open`
        /// returned, at once: one result per message, in order
        /// ([`crate::TransportImpl::send_many`]).
        #[sabi(missing_field(option))]
        pub send_many: extern "C" fn(
            transport: &TransportBox,
            messages: RSlice<'_, OutgoingMessage>,
        ) -> RVec<RResult<Receipt, PluginError>>,
    }

    impl RootModule for PluginModRef {
        abi_stable::declare_root_module_statics! {PluginModRef}
        const BASE_NAME: &'static str = ROOT_BASE_NAME;
        const NAME: &'static str = "mailhost plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}
