//! Accounts: the host's keys, then the plugin's, checked against the
//! plugin's schema (formats on), its own `validate_settings`, and the rules
//! every value obeys (no CR/LF/NUL, a sane length, secrets never echoed).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::super::checks::{is_secret_key, secret_schema_error, wire_problems};
use super::super::raw::{RawAccount, RawConfig, S};
use super::super::settings::*;
use super::{names, span, toml_to_json, Validator};
use crate::loader::LoadedPlugin;

/// Plugin keys whose literal values are secrets and should be references.
const SECRET_KEYS: &[&str] = &["password", "client_secret", "secret", "api_key", "token"];

impl Validator<'_> {
    fn all_modes(&self) -> Vec<String> {
        let mut modes: Vec<String> = SEND_MODES
            .iter()
            .chain(COMPOSE_MODES)
            .map(|m| m.to_string())
            .collect();
        for p in &self.plugins.plugins {
            modes.extend(p.manifest().modes.iter().map(|m| m.to_string()));
        }
        modes.sort();
        modes.dedup();
        modes
    }

    pub(super) fn accounts(
        &mut self,
        raw: &RawConfig,
        oauth: &BTreeMap<String, OAuthSettings>,
    ) -> BTreeMap<String, Account> {
        let modes = self.all_modes();
        let mut out = BTreeMap::new();
        for (name, table) in &raw.accounts {
            if modes.iter().any(|m| m == name.get_ref()) {
                self.err(
                    &span(name),
                    format!("account `{}` is named after a mode", name.get_ref()),
                    "rename it (e.g. `office-smtp`): a send mode could not tell the two apart",
                );
                continue;
            }
            if let Some(a) = self.account(name, table, oauth) {
                out.insert(a.name.clone(), a);
            }
        }
        out
    }

    fn account(
        &mut self,
        name: &S<String>,
        table: &S<RawAccount>,
        oauth: &BTreeMap<String, OAuthSettings>,
    ) -> Option<Account> {
        let aname = name.get_ref().clone();
        let t = table.get_ref();
        let get = |k: &str| t.iter().find(|(key, _)| key.get_ref() == k);
        let Some((_, plugin_v)) = get("plugin") else {
            let names = self.plugins.names().join(", ");
            self.err(
                &span(name),
                format!("account `{aname}` has no `plugin` key"),
                format!("add `plugin = \"...\"` naming a loaded plugin: {names}"),
            );
            return None;
        };
        let Some(plugin_name) = plugin_v.get_ref().as_str() else {
            self.err(
                &span(plugin_v),
                "`plugin` must be a string",
                "e.g. plugin = \"smtp\"",
            );
            return None;
        };
        let Some(plugin) = self.plugins.get(plugin_name) else {
            let loaded: Vec<String> = self.plugins.names().iter().map(|n| n.to_string()).collect();
            let loaded = names(loaded.iter(), "(none)");
            let searched: Vec<String> = self
                .plugins
                .searched
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            let searched = names(searched.iter(), "(no directory)");
            let looked = format!(
                "the host looked for {} in: {searched} (loaded plugins: {loaded})",
                crate::loader::plugin_file_name(plugin_name)
            );
            let failed = self.plugins.failures.iter().find(|f| {
                f.path
                    .to_string_lossy()
                    .contains(&format!("mailhost_{}", plugin_name.replace('-', "_")))
            });
            let hint = match failed {
                Some(f) => format!(
                    "{looked}; {} is there but did not load: {}",
                    f.path.display(),
                    f.reason.lines().next().unwrap_or("")
                ),
                None => format!(
                    "{looked}; install the plugin file in one of them, or pass --plugins DIR (`mailhost plugins` lists what loaded)"
                ),
            };
            self.err(
                &span(plugin_v),
                format!("account `{aname}`: its plugin is missing: no plugin named `{plugin_name}` is loaded"),
                hint,
            );
            let at = self.loc(&span(plugin_v));
            self.unloaded.insert(aname, (plugin_name.to_string(), at));
            return None;
        };
        if let Some(note) = plugin.panic_note() {
            self.warn(
                &span(plugin_v),
                format!("account `{aname}`: {note}"),
                format!("the plugin file is {}", plugin.path().display()),
            );
        }
        let manifest = plugin.manifest();
        let schema = plugin.schema();
        // Every string in the table, nested ones included, whatever the
        // plugin: no CR/LF/NUL (a protocol line of its own), a sane length.
        for (key, value) in t {
            let mut problems = Vec::new();
            wire_problems(value.get_ref(), key.get_ref(), &mut problems);
            for (path, p) in problems {
                self.err(
                    &span(value),
                    format!("account `{aname}` `{path}` {p}"),
                    "write it on one line, without control characters",
                );
            }
        }
        let mut from = None;
        let mut max_per_minute = None;
        let mut max_concurrent = None;
        let mut max_age_secs = None;
        let mut description = String::new();
        let mut save_copy_to = None;
        let mut preset: Option<(String, Range<usize>)> = None;
        let mut settings = serde_json::Map::new();
        let mut spans: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for (key, value) in t {
            let k = key.get_ref().as_str();
            spans.insert(k.to_string(), span(key));
            match k {
                "plugin" => {}
                "from" => match value.get_ref().as_str() {
                    Some(s) => {
                        let sv = S::new(span(value), s.to_string());
                        from = self.address("from", &sv);
                    }
                    None => self.err(
                        &span(value),
                        "`from` must be a string",
                        "e.g. from = \"ERP <erp@example.com>\"",
                    ),
                },
                "max_per_minute" => match value.get_ref().as_integer() {
                    Some(n) if (1..=1_000_000).contains(&n) => max_per_minute = Some(n as u32),
                    _ => self.err(
                        &span(value),
                        "`max_per_minute` must be a whole number from 1 to 1000000",
                        "messages per minute this account may send; leave it out for no limit",
                    ),
                },
                "max_concurrent" => match value.get_ref().as_integer() {
                    Some(n) if (1..=10_000).contains(&n) => max_concurrent = Some(n as u32),
                    _ => self.err(
                        &span(value),
                        "`max_concurrent` must be a whole number from 1 to 10000",
                        "sends in flight at once through this account, across every `mailhost serve` on the outbox; leave it out for no limit",
                    ),
                },
                "max_age_secs" => match value.get_ref().as_integer() {
                    Some(n) if (1..=30 * 86_400).contains(&n) => max_age_secs = Some(n as u64),
                    _ => self.err(
                        &span(value),
                        "`max_age_secs` must be a whole number of seconds from 1 to 2592000 (30 days)",
                        "how long the outbox retries this account after temporary failures before the next way out; leave it out for `[outbox] max_age_secs`",
                    ),
                },
                "description" => {
                    description = value.get_ref().as_str().unwrap_or_default().to_string()
                }
                "preset" => match value.get_ref().as_str() {
                    Some(p) => preset = Some((p.to_string(), span(value))),
                    None => self.err(
                        &span(value),
                        "`preset` must be a string",
                        format!("e.g. preset = \"office365\"; `mailhost plugins --settings {plugin_name}` lists the plugin's presets"),
                    ),
                },
                "save_copy_to" => match value.get_ref().as_str() {
                    Some(a) => {
                        save_copy_to = Some(crate::copies::CopyTarget {
                            account: a.to_string(),
                            loc: self.loc(&span(value)),
                        })
                    }
                    None => self.err(
                        &span(value),
                        "`save_copy_to` must be an account name",
                        "e.g. save_copy_to = \"mailbox\" (an account with plugin = \"imap\")",
                    ),
                },
                _ => {
                    let declared_secret = schema
                        .get("properties")
                        .and_then(|p| p.get(k))
                        .is_some_and(|p| {
                            p.get("writeOnly") == Some(&serde_json::Value::Bool(true))
                                || p.get("format").and_then(|f| f.as_str()) == Some("secret")
                        });
                    if SECRET_KEYS.contains(&k) || declared_secret {
                        if let Some(s) = value.get_ref().as_str() {
                            self.secret_ref(
                                &format!("[accounts.{aname}] {k}"),
                                &S::new(span(value), s.to_string()),
                            );
                        }
                    }
                    // Secrets in nested tables (`pop_before_smtp = { password = ... }`).
                    let mut nested = Vec::new();
                    nested_secrets(value.get_ref(), k, &mut nested);
                    for (path, s) in nested {
                        self.secret_ref(
                            &format!("[accounts.{aname}] {path}"),
                            &S::new(span(value), s.to_string()),
                        );
                    }
                    if k == "oauth" {
                        if let Some(o) = value.get_ref().as_str() {
                            if !oauth.contains_key(o) {
                                self.err(&span(value), format!("account `{aname}`: no OAuth client `[oauth.{o}]` is configured"), format!("add an [oauth.{o}] section or use one of: {}", names(oauth.keys(), "(none configured)")));
                            }
                        }
                    }
                    settings.insert(k.to_string(), toml_to_json(value.get_ref()));
                }
            }
        }
        let preset = preset.and_then(|(p, at)| {
            self.apply_preset(
                &aname,
                plugin_name,
                schema,
                &p,
                &at,
                &mut settings,
                &mut spans,
            )
        });
        for (key, path) in resolve_paths(&mut settings, schema, &self.src.base_dir) {
            let at = spans.get(&key).cloned().unwrap_or_else(|| span(name));
            let what = format!("account `{aname}` `{key}`");
            if is_directory_property(schema, &key) {
                // A directory the plugin writes to may be created on first use: its parent must exist.
                if let Some(parent) = path.parent().filter(|p| !p.exists()) {
                    self.warn(
                        &at,
                        format!(
                            "{what}: neither {} nor its parent directory exists",
                            path.display()
                        ),
                        format!("create {} or correct the path", parent.display()),
                    );
                }
            } else {
                self.file_exists(&what, &at, &path);
            }
        }
        let settings = serde_json::Value::Object(settings);
        let before = self.errors.len();
        self.schema_check(&aname, name, plugin, &settings, &spans);
        if self.errors.len() == before {
            self.plugin_check(&aname, name, plugin, &settings, &spans);
        }
        Some(Account {
            name: aname,
            plugin: plugin_name.to_string(),
            from,
            max_per_minute,
            max_concurrent,
            max_age_secs,
            description,
            save_copy_to,
            settings,
            modes: manifest.modes.iter().map(|m| m.to_string()).collect(),
            loc: self.loc(&span(name)),
            preset,
        })
    }

    /// Fills the keys that the plugin's preset sets (`x-presets` in its
    /// schema) and the account leaves out: a key the account sets wins. The
    /// filled keys are then checked like written ones, located at `preset`.
    #[allow(clippy::too_many_arguments)]
    fn apply_preset(
        &mut self,
        aname: &str,
        plugin_name: &str,
        schema: &serde_json::Value,
        preset: &str,
        at: &Range<usize>,
        settings: &mut serde_json::Map<String, serde_json::Value>,
        spans: &mut BTreeMap<String, Range<usize>>,
    ) -> Option<AppliedPreset> {
        let presets = schema.get("x-presets").and_then(|p| p.as_object());
        let Some(values) = presets
            .and_then(|p| p.get(preset))
            .and_then(|v| v.as_object())
        else {
            let known = presets
                .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "none".to_string());
            self.err(
                at,
                format!(
                    "account `{aname}`: plugin `{plugin_name}` has no preset `{}`",
                    preset.escape_debug()
                ),
                format!("its presets: {known} (`mailhost plugins --settings {plugin_name}`)"),
            );
            return None;
        };
        let mut filled = serde_json::Map::new();
        let mut explicit = Vec::new();
        for (k, v) in values {
            if settings.contains_key(k) {
                explicit.push(k.clone());
            } else {
                settings.insert(k.clone(), v.clone());
                spans.insert(k.clone(), at.clone());
                filled.insert(k.clone(), v.clone());
            }
        }
        Some(AppliedPreset {
            name: preset.to_string(),
            filled,
            explicit,
        })
    }

    /// Asks the plugin itself (its `validate_settings` extension, when it
    /// has one) whether it would refuse these settings at `open`.
    fn plugin_check(
        &mut self,
        aname: &str,
        at_name: &S<String>,
        plugin: &LoadedPlugin,
        settings: &serde_json::Value,
        spans: &BTreeMap<String, Range<usize>>,
    ) {
        let Some(problems) = plugin.validate_settings(&settings.to_string()) else {
            return;
        };
        for p in problems {
            let at = p
                .key
                .as_ref()
                .and_then(|k| spans.get(k))
                .cloned()
                .unwrap_or_else(|| span(at_name));
            let key = p.key.map(|k| format!(" `{k}`")).unwrap_or_default();
            self.err(
                &at,
                format!(
                    "account `{aname}`{key}: plugin `{}` refuses this: {}",
                    plugin.name(),
                    crate::loader::escape_text(&p.message)
                ),
                format!(
                    "run `mailhost plugins --settings {}` for the valid settings",
                    plugin.name()
                ),
            );
        }
    }

    fn schema_check(
        &mut self,
        aname: &str,
        at_name: &S<String>,
        plugin_ref: &LoadedPlugin,
        settings: &serde_json::Value,
        spans: &BTreeMap<String, Range<usize>>,
    ) {
        let schema = plugin_ref.schema();
        let plugin = plugin_ref.name();
        // Unknown keys first, with the list of valid ones (clearer than the schema's words).
        let props: Vec<String> = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let closed = schema.get("additionalProperties") == Some(&serde_json::Value::Bool(false));
        let mut unknown = Vec::new();
        if let Some(obj) = settings.as_object() {
            for k in obj.keys() {
                if closed && !props.contains(k) {
                    unknown.push(k.clone());
                }
            }
        }
        for k in &unknown {
            let at = spans.get(k).cloned().unwrap_or_else(|| span(at_name));
            let mut valid: Vec<String> = HOST_ACCOUNT_KEYS.iter().map(|s| s.to_string()).collect();
            valid.extend(props.iter().cloned());
            self.err(
                &at,
                format!("account `{aname}`: unknown key `{k}` for plugin `{plugin}`"),
                format!("valid keys: {}", valid.join(", ")),
            );
        }
        // Settings this host found valid against this schema before need no
        // compiled schema at all (crate::checked): most one-shot sends.
        let settings_json = settings.to_string();
        if unknown.is_empty() && plugin_ref.settings_known_valid(&settings_json) {
            return;
        }
        let validator = match plugin_ref.validator() {
            Ok(v) => v,
            Err(e) => {
                self.err(
                    &span(at_name),
                    format!("account `{aname}`: {e}"),
                    "the plugin is broken: ask its author for a fixed build".to_string(),
                );
                return;
            }
        };
        let before = self.errors.len();
        for e in validator.iter_errors(settings) {
            let path = e.instance_path.to_string();
            let first = path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("")
                .to_string();
            if matches!(
                e.kind,
                jsonschema::error::ValidationErrorKind::AdditionalProperties { .. }
            ) && path.is_empty()
                && !unknown.is_empty()
            {
                continue;
            }
            let at = spans.get(&first).cloned().unwrap_or_else(|| span(at_name));
            let key = if path.is_empty() {
                String::new()
            } else {
                format!(" `{}`", path.trim_start_matches('/').replace('/', "."))
            };
            let hint = describe_property(schema, &first);
            let segments: Vec<&str> = path
                .trim_start_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            let property = property_at(schema, &segments);
            // A secret by its key (anywhere on the path), by its schema, or
            // inside the value the error would quote (a table holding a password).
            let secret = segments.iter().any(|s| is_secret_key(s, None))
                || is_secret_key(&first, Some(schema))
                || property.is_some_and(|p| {
                    p.get("writeOnly") == Some(&serde_json::Value::Bool(true))
                        || p.get("format").and_then(|f| f.as_str()) == Some("secret")
                })
                || holds_secret(&e.instance);
            if secret {
                let msg = secret_schema_error(&e, property);
                self.err(&at, format!("account `{aname}`{key} {msg}"), hint);
            } else {
                let text = e.to_string();
                // A value with a line break or a huge one is not quoted: it is
                // reported by the one-line and length checks at the same place.
                let unquotable = |v: &serde_json::Value| {
                    v.as_str().is_some_and(|t| {
                        t.len() > 512 || t.chars().any(|c| c.is_control() && c != '\t')
                    })
                };
                if text.len() > 1024 || unquotable(&e.instance) {
                    if !self.reported_at(&at) {
                        let msg = secret_schema_error(&e, property).replace(
                            "(the value is not shown: it is a secret)",
                            "(the value is not shown: it is too long or holds control characters)",
                        );
                        self.err(&at, format!("account `{aname}`{key} {msg}"), hint);
                    }
                } else {
                    self.err(&at, format!("account `{aname}`{key}: {text}"), hint);
                }
            }
        }
        if unknown.is_empty() && self.errors.len() == before {
            plugin_ref.remember_settings_valid(&settings_json);
        }
    }
}

/// The schema's description, type and allowed values of a property, as a hint.
fn describe_property(schema: &serde_json::Value, key: &str) -> String {
    let Some(p) = schema.get("properties").and_then(|p| p.get(key)) else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(d) = p.get("description").and_then(|d| d.as_str()) {
        parts.push(d.to_string());
    }
    if let Some(e) = p.get("enum").and_then(|e| e.as_array()) {
        parts.push(format!(
            "one of: {}",
            e.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let (Some(min), Some(max)) = (p.get("minimum"), p.get("maximum")) {
        parts.push(format!("from {min} to {max}"));
    }
    if let Some(t) = p.get("type") {
        parts.push(format!("type {t}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("`{key}`: {}", parts.join("; "))
    }
}

/// String values under secret-named keys inside the tables of `v` (not `v`
/// itself), with their `a.b` paths.
fn nested_secrets<'v>(v: &'v toml::Value, path: &str, out: &mut Vec<(String, &'v str)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let here = format!("{path}.{k}");
                match x {
                    toml::Value::String(s) if SECRET_KEYS.contains(&k.as_str()) => {
                        out.push((here, s.as_str()))
                    }
                    _ => nested_secrets(x, &here, out),
                }
            }
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                nested_secrets(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The schema of the value at `segments` (object keys through `properties`,
/// array indices through `items`), when the schema says.
fn property_at<'s>(
    schema: &'s serde_json::Value,
    segments: &[&str],
) -> Option<&'s serde_json::Value> {
    let mut at = schema;
    for seg in segments {
        at = if seg.parse::<usize>().is_ok() && at.get("items").is_some() {
            at.get("items")?
        } else {
            at.get("properties")?.get(*seg)?
        };
    }
    Some(at)
}

/// Whether a value holds a secret-named key anywhere (so an error quoting
/// the whole value would show it).
fn holds_secret(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(o) => o
            .iter()
            .any(|(k, x)| is_secret_key(k, None) || holds_secret(x)),
        serde_json::Value::Array(a) => a.iter().any(holds_secret),
        _ => false,
    }
}

/// A `"format": "path"` property that names a directory (key `dir` or
/// `*_dir`, or "directory" in its description) rather than a file to read.
fn is_directory_property(schema: &serde_json::Value, key: &str) -> bool {
    let described = schema
        .get("properties")
        .and_then(|p| p.get(key))
        .and_then(|p| p.get("description"))
        .and_then(|d| d.as_str())
        .is_some_and(|d| d.starts_with("directory"));
    key == "dir" || key.ends_with("_dir") || described
}

/// Plugin settings whose schema says `"format": "path"` are made absolute
/// against the config file's directory (a plugin does not know where the config is).
/// Returns each (key, resolved path), for the check that the file exists.
fn resolve_paths(
    settings: &mut serde_json::Map<String, serde_json::Value>,
    schema: &serde_json::Value,
    base: &Path,
) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return out;
    };
    for (k, p) in props {
        if p.get("format").and_then(|f| f.as_str()) != Some("path") {
            continue;
        }
        if let Some(serde_json::Value::String(v)) = settings.get_mut(k) {
            let path = Path::new(v.as_str());
            if path.is_relative() && !v.is_empty() {
                *v = base.join(path).to_string_lossy().into_owned();
            }
            if !v.is_empty() {
                out.push((k.clone(), PathBuf::from(v.as_str())));
            }
        }
    }
    out
}
