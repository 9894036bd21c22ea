//! Finds and loads plugin libraries, and explains every one that fails.
//!
//! Each file is loaded by absolute path with
//! `lib_header_from_path(..).init_root_module()` — not `load_from_file`, which
//! caches one module per root-module type and would hand back the first plugin
//! for every file. Libraries are never unloaded. Each file is checked first
//! (`check.rs`): a truncated library would crash the host inside the dynamic
//! loader.

mod check;
mod explain;
mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::checked;

use abi_stable::library::{lib_header_from_path, LibraryError};
use mailhost_plugin_api::{
    Capabilities, HostHandle, Manifest, OutgoingMessage, PluginError, PluginModRef, Probe, Receipt,
    TransportBox,
};

/// Environment variable with extra plugin directories (`:`-separated on Unix, `;` on Windows).
pub const PLUGIN_PATH_ENV: &str = "MAILHOST_PLUGIN_PATH";
pub use check::MAX_PLUGIN_BYTES;
pub use explain::abi_error_lines;
use explain::explain;
pub use schema::{compile_schema, parse_problems, without_compiling};

/// How a plugin file must be named on this platform, for messages.
pub fn naming_rule() -> String {
    format!(
        "plugin files are named {}mailhost_<name>{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The file name plugin `name` is looked for under (`libmailhost_<name>.so` on
/// Linux): a `-` in the name is a `_` in the file, as Cargo names the library.
pub fn plugin_file_name(name: &str) -> String {
    format!(
        "{}mailhost_{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

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
    /// A shared library for another processor architecture.
    WrongArchitecture,
    /// Cut short or damaged (a segment or header past the end of the file):
    /// refused before the dynamic loader maps it.
    Truncated,
    /// Built with `panic = "abort"`: its first panic would end the host.
    PanicAbort,
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
            Self::WrongArchitecture => "wrong-architecture",
            Self::Truncated => "truncated",
            Self::PanicAbort => "panic-abort",
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
            escape_path(&self.path),
            self.reason,
            self.kind.name()
        )
    }
}

impl std::error::Error for LoadFailure {}

/// A file in a plugin directory that is not loaded, and why (not named
/// like a plugin, a dangling or looping symbolic link, a directory).
#[derive(Debug, Clone)]
pub struct IgnoredFile {
    pub path: PathBuf,
    pub reason: String,
}

/// A loaded plugin.
#[derive(Clone)]
pub struct LoadedPlugin {
    path: PathBuf,
    manifest: Manifest,
    module: PluginModRef,
    /// The manifest's settings schema, parsed once at load.
    schema: Arc<serde_json::Value>,
    /// The schema compiled, at load when this host has not seen it valid
    /// before ([`crate::checked`]), else when first needed.
    /// Dropped again by [`PluginSet::forget_validators`] once a long-running
    /// process has checked its config (a compiled schema holds megabytes).
    validator: Arc<Mutex<Option<Arc<jsonschema::Validator>>>>,
    /// [`Manifest::sends_mime_only`].
    mime_only: bool,
    /// 1.1's `send_many` (`None`: a 1.0 plugin; [`LoadedPlugin::send_many`]
    /// then sends each message in turn).
    send_many: Option<SendMany>,
    /// [`LoadedPlugin::sends_groups`], read once at load (the worker asks per message).
    groups: bool,
}

/// The type of 1.1's `send_many` ([`mailhost_plugin_api::v1_1::PluginMod`]).
type SendMany = extern "C" fn(
    &TransportBox,
    abi_stable::std_types::RSlice<'_, OutgoingMessage>,
) -> abi_stable::std_types::RVec<
    abi_stable::std_types::RResult<Receipt, PluginError>,
>;

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

    /// True when the plugin's `send` reads only the bytes, not the parts
    /// ([`Manifest::send_reads_mime_only`]), read once at load.
    pub fn sends_mime_only(&self) -> bool {
        self.mime_only
    }

    /// A warning when the plugin does not say whether it contains its panics
    /// (built before `export_plugin!` recorded the panic strategy): if it was
    /// built with `panic = "abort"`, a panic in it ends the host. `None` for a
    /// plugin that says `panic = "unwind"` (one that says `abort` never loads).
    pub fn panic_note(&self) -> Option<String> {
        if self
            .manifest
            .capabilities
            .contains(Capabilities::PANIC_UNWIND)
        {
            return None;
        }
        Some(format!(
            "plugin `{}` does not say whether it was built with panic = \"unwind\" (it predates that check); if it was built with panic = \"abort\", a panic in it ends the host: rebuild it against the current plugin-api",
            self.manifest.name
        ))
    }

    /// The settings JSON Schema (the manifest's text, parsed once at load).
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }

    /// The schema compiled with format validation on ([`compile_schema`]);
    /// compiled on first use when the load did not need to.
    pub fn validator(&self) -> Result<Arc<jsonschema::Validator>, String> {
        let mut slot = self.validator.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = slot.as_ref() {
            return Ok(v.clone());
        }
        let v = Arc::new(compile_schema(&self.schema).map_err(|e| {
            format!(
                "plugin `{}` has an invalid settings JSON Schema: {e}",
                self.manifest.name
            )
        })?);
        *slot = Some(v.clone());
        Ok(v)
    }

    /// Whether these settings (JSON text) were found valid against this
    /// plugin's schema before, by this host ([`crate::checked`]).
    pub fn settings_known_valid(&self, settings_json: &str) -> bool {
        checked::known(
            checked::Kind::Settings,
            &[
                self.manifest.settings_schema.as_bytes(),
                settings_json.as_bytes(),
            ],
        )
    }

    /// Remembers that these settings are valid against this plugin's schema.
    pub fn remember_settings_valid(&self, settings_json: &str) {
        checked::remember(
            checked::Kind::Settings,
            &[
                self.manifest.settings_schema.as_bytes(),
                settings_json.as_bytes(),
            ],
        )
    }

    /// Asks the plugin to check account settings without connecting, through
    /// its `validate_settings` extension (docs/plugin-authors.md). `None`
    /// when the plugin has no such extension; otherwise the problems found
    /// (empty: none), each with the settings key it is about when known.
    pub fn validate_settings(&self, settings_json: &str) -> Option<Vec<SettingsProblem>> {
        let ext = (self.module.extension())(VALIDATE_SETTINGS.into()).into_option()?;
        let out = match ext
            .call("validate".into(), settings_json.into())
            .into_result()
        {
            Ok(text) => text,
            Err(e) => {
                return Some(vec![SettingsProblem::general(e.message().to_string())]);
            }
        };
        Some(parse_problems(out.as_str()))
    }

    /// Opens an account with its plugin settings (a JSON object).
    pub fn open(&self, settings_json: &str, host: HostHandle) -> Result<TransportBox, PluginError> {
        (self.module.open())(settings_json.into(), host).into_result()
    }

    /// Sends `messages` through `transport` (which this plugin opened) at
    /// once when the plugin has 1.1's `send_many`, else each in turn: one
    /// result per message, in order.
    pub fn send_many(
        &self,
        transport: &TransportBox,
        messages: &[OutgoingMessage],
    ) -> Vec<Result<Receipt, PluginError>> {
        match self.send_many {
            Some(f) => {
                let mut got: Vec<_> = f(transport, messages.into())
                    .into_iter()
                    .map(|r| r.into_result())
                    .collect();
                got.resize_with(messages.len(), || {
                    Err(PluginError::permanent(format!(
                        "plugin `{}` answered send_many with fewer results than messages",
                        self.name()
                    )))
                });
                got
            }
            None => messages
                .iter()
                .map(|m| transport.send(m).into_result())
                .collect(),
        }
    }

    /// Whether the plugin has 1.1's `send_many` (several messages per call).
    pub fn sends_many(&self) -> bool {
        self.send_many.is_some()
    }

    /// Whether a group of messages is best given to this plugin in one call:
    /// it has `send_many` and declared that it overlaps the messages
    /// ([`Manifest::overlaps_send_many`]).
    pub fn sends_groups(&self) -> bool {
        self.groups
    }

    /// Whether the plugin can work on this machine now.
    pub fn probe(&self, host: HostHandle) -> Probe {
        (self.module.probe())(host)
    }
}

pub use mailhost_plugin_api::settings::{SettingsProblem, VALIDATE_SETTINGS};

/// A path for a listing: control characters (a newline in a file name)
/// escaped as `\n`, `\u{1b}`, so one entry stays one line.
pub fn escape_path(path: &Path) -> String {
    escape_text(&path.to_string_lossy())
}

/// Text for a listing with control characters escaped (see [`escape_path`]).
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Everything found on the search path: what loaded and what did not.
#[derive(Debug, Default, Clone)]
pub struct PluginSet {
    pub plugins: Vec<LoadedPlugin>,
    pub failures: Vec<LoadFailure>,
    /// Files in the searched directories that are not plugins (see [`scan_dir`]).
    pub ignored: Vec<IgnoredFile>,
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

    /// Drops every compiled settings schema (compiled again when a config is
    /// next checked) and hands the freed heap back to the system: what a
    /// long-running process does once its config is checked.
    pub fn forget_validators(&self) {
        for p in &self.plugins {
            *p.validator.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        crate::memory::release_free_memory();
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
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().and_then(|d| d.canonicalize().ok()));
    for dir in dirs {
        let Ok(scan) = scan_dir(dir) else {
            continue;
        };
        // The executable's own directory holds other programs' files too:
        // there only what looks like a library is listed as ignored.
        let shared = exe_dir.is_some() && dir.canonicalize().ok() == exe_dir;
        set.ignored.extend(
            scan.ignored
                .into_iter()
                .filter(|i| !shared || looks_like_library(&i.path)),
        );
        set.failures.extend(scan.broken);
        for file in scan.plugins {
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
    Ok(scan_dir(dir)?.plugins)
}

/// What one plugin directory holds, every entry accounted for.
#[derive(Debug, Default)]
pub struct DirScan {
    /// Regular files (or links to them) named like plugins, sorted.
    pub plugins: Vec<PathBuf>,
    /// Entries named like plugins that cannot be loaded: a dangling or
    /// looping symbolic link, a directory, a device.
    pub broken: Vec<LoadFailure>,
    /// Entries not named like plugins, with the naming rule.
    pub ignored: Vec<IgnoredFile>,
}

/// Sorts every entry of `dir` into plugins, broken plugin entries and ignored files.
pub fn scan_dir(dir: &Path) -> std::io::Result<DirScan> {
    let mut scan = DirScan::default();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_plugin_file_name);
        // Follows symbolic links: a dangling or looping one fails here.
        let problem = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => None,
            Ok(m) if m.is_dir() => Some("a directory".to_string()),
            Ok(_) => Some("not a regular file (a device, socket or pipe)".to_string()),
            Err(e) => Some(match std::fs::read_link(&path) {
                Ok(target) if e.kind() == std::io::ErrorKind::NotFound => format!(
                    "a dangling symbolic link: its target {} does not exist",
                    escape_path(&target)
                ),
                Ok(target) => format!(
                    "a symbolic link to {} that cannot be followed ({e}; a loop?)",
                    escape_path(&target)
                ),
                Err(_) => format!("cannot be read ({e})"),
            }),
        };
        match (named, problem) {
            (true, None) => scan.plugins.push(path),
            (true, Some(p)) => scan.broken.push(LoadFailure {
                path: std::path::absolute(&path).unwrap_or(path),
                kind: FailureKind::NotALibrary,
                reason: format!("{p}; replace it with the plugin file or remove it"),
            }),
            (false, problem) => {
                let what = problem.unwrap_or_else(|| "not named like a plugin".to_string());
                scan.ignored.push(IgnoredFile {
                    reason: format!("{what}; ignored ({})", naming_rule()),
                    path,
                });
            }
        }
    }
    Ok(scan)
}

/// A name like a shared library's (`.so`, `.so.1`, `.dll`, `.dylib`) or a
/// plugin's, for the listing of the executable's own directory.
fn looks_like_library(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".so")
        || name.contains(".so.")
        || name.ends_with(".dll")
        || name.ends_with(".dylib")
        || name.contains("mailhost_")
}

/// Loads one plugin file.
pub fn load_file(path: &Path) -> Result<LoadedPlugin, LoadFailure> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let fail = |kind: FailureKind, reason: String| LoadFailure {
        path: abs.clone(),
        kind,
        reason,
    };
    check::plugin_file(&abs).map_err(|(kind, reason)| fail(kind, reason))?;
    let refused = |e: LibraryError| {
        let (kind, reason) = explain(&e);
        fail(kind, reason)
    };
    let header = lib_header_from_path(&abs).map_err(refused)?;
    let module = header.init_root_module::<PluginModRef>().map_err(refused)?;
    // What 1.1 adds, when the plugin was built against 1.1 (a 1.0 plugin's
    // root module is refused as 1.1's: it lacks the fields).
    let send_many = header
        .init_root_module::<mailhost_plugin_api::v1_1::PluginModRef>()
        .ok()
        .and_then(|m| m.send_many());
    let manifest = (module.manifest())().into_result().map_err(|e| {
        fail(
            FailureKind::ManifestFailed,
            format!("the plugin's manifest() failed: {}", e.message()),
        )
    })?;
    let (schema, validator) =
        check_manifest(&manifest).map_err(|r| fail(FailureKind::InvalidManifest, r))?;
    let caps = manifest.capabilities;
    if caps.contains(Capabilities::PANIC_ABORT) && !caps.contains(Capabilities::PANIC_UNWIND) {
        return Err(fail(
            FailureKind::PanicAbort,
            format!(
                "plugin `{}` was built with panic = \"abort\": its first panic would end the host (and every send in progress) instead of failing one message; rebuild it with panic = \"unwind\" (remove `panic = \"abort\"` from the [profile.*] sections of its Cargo.toml or workspace)",
                manifest.name
            ),
        ));
    }
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
        mime_only: manifest.sends_mime_only(),
        groups: send_many.is_some() && manifest.overlaps_send_many(),
        manifest,
        module,
        send_many,
        schema: Arc::new(schema),
        validator: Arc::new(Mutex::new(validator.map(Arc::new))),
    })
}

/// Checks the manifest; returns its settings schema, parsed, and compiled
/// unless this host found the same schema valid before ([`crate::checked`]).
fn check_manifest(
    m: &Manifest,
) -> Result<(serde_json::Value, Option<jsonschema::Validator>), String> {
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
    let text = [m.settings_schema.as_bytes()];
    if checked::known(checked::Kind::Schema, &text) {
        return Ok((schema, None));
    }
    let validator = compile_schema(&schema)
        .map_err(|e| format!("plugin `{name}` has an invalid settings JSON Schema: {e}"))?;
    checked::remember(checked::Kind::Schema, &text);
    Ok((schema, Some(validator)))
}
