//! Finds and loads plugin libraries, and explains every one that fails.
//!
//! Each file is loaded by absolute path with
//! `lib_header_from_path(..).init_root_module()` — not `load_from_file`, which
//! caches one module per root-module type and would hand back the first plugin
//! for every file (FACTS.md). Libraries are never unloaded.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use mailhost_plugin_api::{HostHandle, Manifest, PluginError, PluginModRef, Probe, TransportBox};

/// Environment variable with extra plugin directories (`:`-separated on Unix, `;` on Windows).
pub const PLUGIN_PATH_ENV: &str = "MAILHOST_PLUGIN_PATH";

/// Why a plugin file did not load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Not a loadable library (a text file named `.so`, a library for another platform).
    NotALibrary,
    /// A library, but without mailhost's root-module symbol: not a mailhost plugin.
    MissingSymbol,
    /// Built against a plugin-api whose types differ from the host's.
    AbiMismatch,
    /// Built against an incompatible plugin-api version.
    IncompatibleVersion,
    /// Another plugin with the same name loaded first.
    DuplicateName,
    /// The plugin's `manifest()` failed or panicked.
    ManifestFailed,
    /// The manifest is unusable (empty name, invalid settings schema).
    InvalidManifest,
    /// The plugin says it does not run on this operating system.
    WrongOs,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::NotALibrary => "not-a-library",
            Self::MissingSymbol => "missing-symbol",
            Self::AbiMismatch => "abi-mismatch",
            Self::IncompatibleVersion => "incompatible-version",
            Self::DuplicateName => "duplicate-name",
            Self::ManifestFailed => "manifest-failed",
            Self::InvalidManifest => "invalid-manifest",
            Self::WrongOs => "wrong-os",
        }
    }
}

/// A plugin file that did not load, and why.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub path: PathBuf,
    pub kind: FailureKind,
    /// What went wrong and what to do, for `mailhost plugins`.
    pub reason: String,
}

impl fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.path.display(),
            self.reason,
            self.kind.name()
        )
    }
}

impl std::error::Error for LoadFailure {}

/// A loaded plugin.
#[derive(Clone)]
pub struct LoadedPlugin {
    path: PathBuf,
    manifest: Manifest,
    module: PluginModRef,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name.as_str())
            .field("path", &self.path)
            .finish()
    }
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        self.manifest.name.as_str()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Opens an account with its plugin settings (a JSON object).
    pub fn open(&self, settings_json: &str, host: HostHandle) -> Result<TransportBox, PluginError> {
        (self.module.open())(settings_json.into(), host).into_result()
    }

    /// Whether the plugin can work on this machine now.
    pub fn probe(&self, host: HostHandle) -> Probe {
        (self.module.probe())(host)
    }
}

/// Everything found on the search path: what loaded and what did not.
#[derive(Debug, Default, Clone)]
pub struct PluginSet {
    pub plugins: Vec<LoadedPlugin>,
    pub failures: Vec<LoadFailure>,
    /// The directories searched, in order.
    pub searched: Vec<PathBuf>,
}

impl PluginSet {
    pub fn get(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    /// Plugins serving `mode`, in load order.
    pub fn serving(&self, mode: &str) -> Vec<&LoadedPlugin> {
        self.plugins
            .iter()
            .filter(|p| p.manifest.modes.iter().any(|m| m.as_str() == mode))
            .collect()
    }

    pub fn names(&self) -> Vec<&str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }
}

/// The directories to search: `cli_dirs` when given (they replace the
/// defaults), else `MAILHOST_PLUGIN_PATH`, then the executable's directory and
/// `plugins/` beside it.
pub fn search_path(cli_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if !cli_dirs.is_empty() {
        dirs.extend(cli_dirs.iter().cloned());
    } else {
        if let Some(v) = std::env::var_os(PLUGIN_PATH_ENV) {
            dirs.extend(std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()));
        }
        if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push(exe_dir.join("plugins"));
            dirs.push(exe_dir);
        }
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let key = d.canonicalize().unwrap_or_else(|_| d.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
    dirs
}

/// True for `libmailhost_*.so` / `mailhost_*.dll` / `libmailhost_*.dylib`.
pub fn is_plugin_file_name(name: &str) -> bool {
    let rest = match name.strip_prefix(std::env::consts::DLL_PREFIX) {
        Some(r) => r,
        None => return false,
    };
    rest.starts_with("mailhost_") && rest.ends_with(std::env::consts::DLL_SUFFIX)
}

/// Loads every plugin file in `dirs` (missing directories are skipped), keeps
/// going past failures, and reports each with its path.
pub fn load_dirs(dirs: &[PathBuf]) -> PluginSet {
    let mut set = PluginSet {
        searched: dirs.to_vec(),
        ..PluginSet::default()
    };
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let Ok(files) = plugin_files(dir) else {
            continue;
        };
        for file in files {
            match load_file(&file) {
                Ok(p) => {
                    if let Some(first) = by_name.get(p.name()) {
                        set.failures.push(LoadFailure {
                            reason: format!(
                                "a plugin named `{}` was already loaded from {}; remove one of the two files",
                                p.name(),
                                first.display()
                            ),
                            path: p.path,
                            kind: FailureKind::DuplicateName,
                        });
                    } else {
                        by_name.insert(p.name().to_string(), p.path.clone());
                        set.plugins.push(p);
                    }
                }
                Err(f) => set.failures.push(f),
            }
        }
    }
    set
}

/// The plugin files (`libmailhost_<name>.so` and the like) in `dir`, sorted.
pub fn plugin_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_plugin_file_name)
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Loads one plugin file.
pub fn load_file(path: &Path) -> Result<LoadedPlugin, LoadFailure> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let fail = |kind: FailureKind, reason: String| LoadFailure {
        path: abs.clone(),
        kind,
        reason,
    };
    let module = lib_header_from_path(&abs)
        .and_then(|h| h.init_root_module::<PluginModRef>())
        .map_err(|e| {
            let (kind, reason) = explain(&e);
            fail(kind, reason)
        })?;
    let manifest = (module.manifest())().into_result().map_err(|e| {
        fail(
            FailureKind::ManifestFailed,
            format!("the plugin's manifest() failed: {}", e.message()),
        )
    })?;
    check_manifest(&manifest).map_err(|r| fail(FailureKind::InvalidManifest, r))?;
    if !manifest.supports_os(std::env::consts::OS) {
        let os: Vec<&str> = manifest.os.iter().map(|o| o.as_str()).collect();
        return Err(fail(
            FailureKind::WrongOs,
            format!(
                "plugin `{}` runs on {} only, not on {}; remove it from this machine's plugin directory",
                manifest.name,
                os.join(", "),
                std::env::consts::OS
            ),
        ));
    }
    Ok(LoadedPlugin {
        path: abs,
        manifest,
        module,
    })
}

fn check_manifest(m: &Manifest) -> Result<(), String> {
    let name = m.name.as_str();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "plugin name `{name}` is invalid: use lower-case letters, digits, `-` and `_`"
        ));
    }
    let host_major = mailhost_plugin_api::API_VERSION
        .split('.')
        .next()
        .unwrap_or("1");
    let plugin_major = m.api_version.split('.').next().unwrap_or("");
    if plugin_major != host_major {
        return Err(format!(
            "plugin `{name}` says it was built for plugin-api {}, this host has {}; rebuild the plugin",
            m.api_version,
            mailhost_plugin_api::API_VERSION
        ));
    }
    let schema: serde_json::Value = serde_json::from_str(m.settings_schema.as_str())
        .map_err(|e| format!("plugin `{name}` has a settings schema that is not JSON: {e}"))?;
    jsonschema::validator_for(&schema)
        .map_err(|e| format!("plugin `{name}` has an invalid settings JSON Schema: {e}"))?;
    Ok(())
}

/// Maps abi_stable's error to a kind and a short reason an admin can act on.
fn explain(e: &LibraryError) -> (FailureKind, String) {
    match e {
        LibraryError::OpenError { err, .. } => (
            FailureKind::NotALibrary,
            format!("not a loadable library ({err}); remove the file or replace it with a plugin built for this platform"),
        ),
        LibraryError::GetSymbolError { .. } => (
            FailureKind::MissingSymbol,
            "a library without mailhost's root module: not a mailhost plugin (was it built with `export_plugin!`?); remove it from the plugin directory".to_string(),
        ),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => (
            FailureKind::IncompatibleVersion,
            format!(
                "built against plugin-api {actual_version}, this host has {expected_version}; rebuild the plugin against plugin-api {expected_version}"
            ),
        ),
        LibraryError::ParseVersionError(v) => (
            FailureKind::IncompatibleVersion,
            format!("the plugin's plugin-api version cannot be read ({v}); rebuild the plugin"),
        ),
        LibraryError::AbiInstability(err) => (
            FailureKind::AbiMismatch,
            format!(
                "built against a plugin-api whose types differ from this host's; rebuild it against plugin-api {}. abi_stable says:\n{}",
                mailhost_plugin_api::API_VERSION,
                abi_error_lines(&err.to_string())
            ),
        ),
        LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => (
            FailureKind::AbiMismatch,
            format!("built with an incompatible abi_stable ({e}); rebuild the plugin"),
        ),
        LibraryError::RootModule { err, .. } => (
            FailureKind::ManifestFailed,
            format!("the plugin's root module failed to initialise: {err}"),
        ),
        LibraryError::Many(list) => {
            let parts: Vec<(FailureKind, String)> = list.iter().map(explain).collect();
            let kind = parts.first().map(|p| p.0).unwrap_or(FailureKind::AbiMismatch);
            (kind, parts.into_iter().map(|p| p.1).collect::<Vec<_>>().join("\n"))
        }
    }
}

/// From abi_stable's long layout dump (hundreds of lines), only the `Error:`
/// lines — each naming the type it is about — with their `Expected:` and
/// `Found:` values on the same line:
///
/// ```text
/// Error: incompatible type size (in type Manifest)
/// Expected: 264
/// Found: 296
/// ```
pub fn abi_error_lines(dump: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    // The innermost type of the current "N error(s)inside:" path.
    let mut path_type: Option<&str> = None;
    let mut in_path = false;
    // "Expected"/"Found"/"Extra" waiting for its (indented) value lines.
    let mut pending: Option<(&str, Vec<&str>)> = None;
    let flush = |pending: &mut Option<(&str, Vec<&str>)>, out: &mut Vec<String>| {
        if let Some((label, values)) = pending.take() {
            let value = values.into_iter().take(3).collect::<Vec<_>>().join(" ");
            if label == "Extra" {
                out.push(format!("Error: {value}"));
            } else {
                out.push(format!("{label}: {value}"));
            }
        }
    };
    for line in dump.lines() {
        let t = line.trim();
        if t.ends_with("error(s)inside:") {
            flush(&mut pending, &mut out);
            in_path = true;
            path_type = None;
            continue;
        }
        if in_path {
            if t.starts_with("Layout of") || t.starts_with("Error:") {
                in_path = false;
            } else {
                if let Some(ty) = line.strip_prefix("    type:") {
                    path_type = Some(ty.trim());
                }
                continue;
            }
        }
        if pending.is_some() && line.starts_with("    ") && !t.is_empty() {
            if let Some((_, values)) = pending.as_mut() {
                values.push(t);
            }
            continue;
        }
        flush(&mut pending, &mut out);
        if let Some(e) = t.strip_prefix("Error:") {
            let e = e.trim();
            if !e.is_empty() {
                out.push(match path_type {
                    Some(ty) => format!("Error: {e} (in type {ty})"),
                    None => format!("Error: {e}"),
                });
            }
        } else if let Some(label) = ["Expected", "Found", "Extra"]
            .into_iter()
            .find(|l| t.strip_prefix(l) == Some(":"))
        {
            pending = Some((label, Vec::new()));
        }
    }
    flush(&mut pending, &mut out);
    if out.is_empty() {
        dump.lines().take(12).collect::<Vec<_>>().join("\n")
    } else {
        out.dedup();
        out.into_iter().take(40).collect::<Vec<_>>().join("\n")
    }
}
