//! `mailhost plugin new`, `mailhost plugins` and `mailhost plugins --settings NAME`.

use super::{exit, fail, print_json, Cli};
use crate::config;
use crate::loader::{self, escape_path, escape_text, PluginSet};

/// `mailhost plugin new`: a plugin crate that builds and loads as written.
pub(super) fn cmd_plugin(cli: &Cli, a: &crate::scaffold::PluginArgs) -> u8 {
    let crate::scaffold::PluginCommand::New {
        name,
        dir,
        api_path,
    } = &a.command;
    match crate::scaffold::create(name, dir.as_deref(), api_path.as_deref()) {
        Ok(d) => {
            if cli.json {
                print_json(&serde_json::json!({"created": d, "plugin": name}));
            } else {
                outln!(
                    "created plugin `{name}` in {}\nnext: cd {} && cargo test   (builds {} and loads it)\nthen: copy target/debug/{} into a plugin directory and add an account with plugin = \"{name}\"",
                    d.display(),
                    d.display(),
                    loader::plugin_file_name(name),
                    loader::plugin_file_name(name)
                );
            }
            exit::OK
        }
        Err(e) => fail(cli, exit::USAGE, "usage", &e, None),
    }
}

/// The settings a plugin takes, from its JSON Schema: key, type, default, meaning.
pub(super) fn cmd_plugin_settings(cli: &Cli, plugins: &PluginSet, name: &str) -> u8 {
    let Some(p) = plugins.get(name) else {
        return fail(
            cli,
            exit::CONFIG,
            "config",
            &format!(
                "no plugin named `{}` is loaded (loaded: {}); run `mailhost plugins`",
                name.escape_debug(),
                plugins.names().join(", ")
            ),
            None,
        );
    };
    let schema = p.schema();
    if cli.json {
        print_json(&schema);
        return exit::OK;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    outln!(
        "[accounts.NAME] keys for plugin `{name}` (besides the host's: {}):",
        config::HOST_ACCOUNT_KEYS.join(", ")
    );
    print_properties(schema, &required, "");
    if let Some(presets) = schema.get("x-presets").and_then(|p| p.as_object()) {
        outln!("presets (preset = \"NAME\" fills these keys; a key the account sets wins):");
        for (preset, values) in presets {
            let keys: Vec<String> = values
                .as_object()
                .map(|o| o.iter().map(|(k, v)| format!("{k} = {v}")).collect())
                .unwrap_or_default();
            outln!("  {preset:<12} {}", keys.join(", "));
        }
    }
    exit::OK
}

fn print_properties(schema: &serde_json::Value, required: &[&str], prefix: &str) {
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    for (k, v) in props {
        let kind = match (v.get("enum"), v.get("type")) {
            (Some(e), _) => e
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(" | ")
                })
                .unwrap_or_default(),
            (None, Some(t)) => t.as_str().unwrap_or("").to_string(),
            _ => String::new(),
        };
        let default = v
            .get("default")
            .map(|d| format!(" (default {d})"))
            .unwrap_or_default();
        let req = if required.contains(&k.as_str()) {
            " REQUIRED"
        } else {
            ""
        };
        let desc = v.get("description").and_then(|d| d.as_str()).unwrap_or("");
        outln!("  {prefix}{k}: {kind}{default}{req}\n      {desc}");
        if v.get("properties").is_some() {
            let r: Vec<&str> = v
                .get("required")
                .and_then(|r| r.as_array())
                .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            print_properties(v, &r, &format!("{prefix}{k}."));
        }
    }
}

pub(super) fn cmd_plugins(cli: &Cli, plugins: &PluginSet) -> u8 {
    if cli.json {
        let loaded: Vec<_> = plugins
            .plugins
            .iter()
            .map(|p| {
                let m = p.manifest();
                serde_json::json!({"name": m.name.as_str(), "version": m.version.as_str(), "api_version": m.api_version.as_str(), "modes": m.modes.iter().map(|x| x.as_str()).collect::<Vec<_>>(), "capabilities": m.capabilities.names(), "description": m.description.as_str(), "path": p.path(), "warning": p.panic_note()})
            })
            .collect();
        let failed: Vec<_> = plugins
            .failures
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "kind": f.kind.name(), "reason": f.reason}))
            .collect();
        let ignored: Vec<_> = plugins
            .ignored
            .iter()
            .map(|i| serde_json::json!({"path": i.path.to_string_lossy(), "reason": i.reason}))
            .collect();
        print_json(
            &serde_json::json!({"searched": plugins.searched, "loaded": loaded, "failed": failed, "ignored": ignored}),
        );
    } else {
        outln!(
            "searched: {}",
            plugins
                .searched
                .iter()
                .map(|p| escape_path(p))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if plugins.plugins.is_empty() {
            outln!("no plugin loaded");
        }
        // Columns as wide as their longest entry (at least the old widths),
        // so a long plugin name does not push its row out of line.
        let rows: Vec<[String; 3]> = plugins
            .plugins
            .iter()
            .map(|p| {
                let m = p.manifest();
                [
                    escape_text(m.name.as_str()),
                    escape_text(m.version.as_str()),
                    escape_text(
                        &m.modes
                            .iter()
                            .map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                ]
            })
            .collect();
        let width = |i: usize, min: usize| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .fold(min, usize::max)
        };
        let (wn, wv, wm) = (width(0, 10), width(1, 8), width(2, 24));
        for (p, [name, version, modes]) in plugins.plugins.iter().zip(&rows) {
            let m = p.manifest();
            outln!(
                "{name:<wn$} {version:<wv$} modes: {modes:<wm$} {} — {}\n{:indent$}{}",
                m.capabilities.names().join("|"),
                escape_text(m.description.as_str()),
                "",
                escape_path(p.path()),
                indent = wn + 1
            );
            if let Some(note) = p.panic_note() {
                outln!("{:indent$}warning: {note}", "", indent = wn + 1);
            }
        }
        for f in &plugins.failures {
            outln!(
                "FAILED {}\n  {}: {}",
                escape_path(&f.path),
                f.kind.name(),
                f.reason.replace('\n', "\n  ")
            );
        }
        for i in &plugins.ignored {
            outln!("IGNORED {}\n  {}", escape_path(&i.path), i.reason);
        }
    }
    if plugins.failures.is_empty() {
        exit::OK
    } else {
        exit::CONFIG
    }
}
