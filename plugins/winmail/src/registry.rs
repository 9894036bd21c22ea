//! The registry seam: string and DWORD values by hive, view and key.

use std::collections::BTreeMap;

/// A registry root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hive {
    /// `HKEY_CURRENT_USER`: the user's choices, which win.
    CurrentUser,
    /// `HKEY_LOCAL_MACHINE`: the machine's defaults.
    LocalMachine,
    /// `HKEY_CLASSES_ROOT`: COM registrations (ProgIDs, CLSIDs).
    ClassesRoot,
}

impl Hive {
    /// The short name used in messages (`HKCU`).
    pub fn name(self) -> &'static str {
        match self {
            Hive::CurrentUser => "HKCU",
            Hive::LocalMachine => "HKLM",
            Hive::ClassesRoot => "HKCR",
        }
    }
}

/// Which registry view: a 64-bit process sees the native one; 32-bit programs
/// register under `Wow6432Node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum View {
    /// The 64-bit view.
    Native,
    /// The 32-bit view (`Wow6432Node`).
    Wow32,
}

/// Reads values. `value` is the value's name; `""` is the key's default value.
pub trait Registry {
    /// A `REG_SZ`/`REG_EXPAND_SZ` value, or `None` when the key or value is missing.
    fn string(&self, hive: Hive, view: View, key: &str, value: &str) -> Option<String>;
    /// A `REG_DWORD` value, or `None` when the key or value is missing.
    fn dword(&self, hive: Hive, view: View, key: &str, value: &str) -> Option<u32>;
}

/// A registry held in memory: what a unit test sets up (keys compare without
/// case, as Windows' do).
#[derive(Debug, Default, Clone)]
pub struct MapRegistry {
    strings: BTreeMap<(Hive, View, String, String), String>,
    dwords: BTreeMap<(Hive, View, String, String), u32>,
}

fn k(hive: Hive, view: View, key: &str, value: &str) -> (Hive, View, String, String) {
    (
        hive,
        view,
        key.to_ascii_lowercase(),
        value.to_ascii_lowercase(),
    )
}

impl MapRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a string value.
    pub fn set(mut self, hive: Hive, view: View, key: &str, value: &str, data: &str) -> Self {
        self.strings
            .insert(k(hive, view, key, value), data.to_string());
        self
    }

    /// Sets a DWORD value.
    pub fn set_dword(mut self, hive: Hive, view: View, key: &str, value: &str, data: u32) -> Self {
        self.dwords.insert(k(hive, view, key, value), data);
        self
    }
}

impl Registry for MapRegistry {
    fn string(&self, hive: Hive, view: View, key: &str, value: &str) -> Option<String> {
        self.strings.get(&k(hive, view, key, value)).cloned()
    }

    fn dword(&self, hive: Hive, view: View, key: &str, value: &str) -> Option<u32> {
        self.dwords.get(&k(hive, view, key, value)).copied()
    }
}
