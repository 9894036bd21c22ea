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
