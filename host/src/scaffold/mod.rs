//! `mailhost plugin new NAME [--dir DIR]`: writes a plugin crate outside the
//! tree, like `cargo new` — Cargo.toml (cdylib + rlib, the lib name rule,
//! `panic = "unwind"` stated), a settings struct with its schema, send and
//! check, an in-process test and a load test. It builds and loads as written.
//!
//! The templates are files beside this one (`templates/`), filled in by plain
//! `{{key}}` replacement.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

/// `mailhost plugin ...`.
#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write a new plugin crate (like `cargo new`) that builds and loads as generated.
    New {
        /// The plugin's name (`acme-erp`): lower-case letters, digits, `-`, `_`,
        /// starting with a letter. Accounts name it with `plugin = "NAME"`.
        name: String,
        /// The directory to create (default: ./mailhost-NAME). Must not exist.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A plugin-api folder to depend on by path (default: the plugin-api of
        /// the checkout this mailhost was built from, when it is still there;
        /// else a git dependency).
        #[arg(long, value_name = "DIR")]
        api_path: Option<PathBuf>,
    },
}

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("templates/lib.rs.tmpl");
const IN_PROCESS_RS: &str = include_str!("templates/tests/in_process.rs.tmpl");
const LOAD_RS: &str = include_str!("templates/tests/load.rs.tmpl");
const GITIGNORE: &str = include_str!("templates/gitignore.tmpl");

/// The plugin-api of the checkout this binary was built from.
const BUILT_FROM_API: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-api");

/// The repository a git dependency points at (the workspace's `repository`).
const GIT_URL: &str = "https://example.invalid/mailhost";

/// Why a name cannot be a plugin's, or `None` when it can.
pub fn name_problem(name: &str) -> Option<String> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if name.is_empty() || !first_ok || !rest_ok || name.len() > 64 {
        Some(format!(
            "`{}` cannot be a plugin name: use 1 to 64 lower-case letters, digits, `-` and `_`, starting with a letter (e.g. `acme-erp`)",
            name.escape_debug()
        ))
    } else {
        None
    }
}

/// `acme-erp` → `AcmeErp`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The `mailhost-plugin-api` dependency lines of the generated Cargo.toml.
fn api_dependency(api_path: Option<&Path>) -> String {
    let later = "# Once plugin-api is published on a registry (it is not yet), this becomes:\n# mailhost-plugin-api = \"1.0\"";
    match api_path {
        Some(p) => format!(
            "# plugin-api by path: a mailhost checkout's plugin-api folder (a copy of\n# that folder alone builds too). Or by git:\n# mailhost-plugin-api = {{ git = \"{GIT_URL}\" }}\n{later}\nmailhost-plugin-api = {{ path = {} }}",
            toml_string(&p.to_string_lossy())
        ),
        None => format!(
            "# plugin-api from the mailhost repository by git. Or by path, from a checkout:\n# mailhost-plugin-api = {{ path = \"../mailhost/plugin-api\" }}\n{later}\nmailhost-plugin-api = {{ git = \"{GIT_URL}\" }}"
        ),
    }
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The files of a new plugin crate: (path inside the crate, contents).
pub fn render(name: &str, api_path: Option<&Path>) -> Result<Vec<(PathBuf, String)>, String> {
    if let Some(p) = name_problem(name) {
        return Err(p);
    }
    let lib = format!("mailhost_{}", name.replace('-', "_"));
    let fill = |t: &str| {
        t.replace("{{api_dep}}", &api_dependency(api_path))
            .replace("{{crate}}", &format!("mailhost-{name}"))
            .replace("{{lib}}", &lib)
            .replace("{{type}}", &type_name(name))
            .replace("{{name}}", name)
    };
    Ok(vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (PathBuf::from("src/lib.rs"), fill(LIB_RS)),
        (PathBuf::from("tests/in_process.rs"), fill(IN_PROCESS_RS)),
        (PathBuf::from("tests/load.rs"), fill(LOAD_RS)),
        (PathBuf::from(".gitignore"), fill(GITIGNORE)),
    ])
}

/// Writes a new plugin crate; returns its directory.
pub fn create(name: &str, dir: Option<&Path>, api_path: Option<&Path>) -> Result<PathBuf, String> {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("mailhost-{name}")));
    let api = match api_path {
        Some(p) => {
            let abs =
                std::path::absolute(p).map_err(|e| format!("--api-path {}: {e}", p.display()))?;
            if !abs.join("Cargo.toml").is_file() {
                return Err(format!(
                    "--api-path {}: no Cargo.toml there; give the plugin-api folder of a mailhost checkout",
                    abs.display()
                ));
            }
            Some(abs)
        }
        None => Path::new(BUILT_FROM_API)
            .canonicalize()
            .ok()
            .filter(|p| p.join("Cargo.toml").is_file()),
    };
    let files = render(name, api.as_deref())?;
    if dir.exists() {
        return Err(format!(
            "{} already exists; choose another directory with --dir",
            dir.display()
        ));
    }
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_mapped() {
        assert!(name_problem("acme-erp").is_none());
        for bad in ["", "Acme", "1st", "a b", "-x", "a/b"] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(type_name("acme-erp_2"), "AcmeErp2");
        let files = render("acme-erp", None).unwrap();
        let cargo = &files[0].1;
        assert!(cargo.contains("name = \"mailhost_acme_erp\""), "{cargo}");
        assert!(cargo.contains("name = \"mailhost-acme-erp\""), "{cargo}");
        assert!(cargo.contains("panic = \"unwind\""), "{cargo}");
        assert!(
            files.iter().all(|(_, t)| !t.contains("{{")),
            "a placeholder was left"
        );
        let parsed: toml::Table = cargo.parse().unwrap();
        assert!(parsed["dependencies"]["mailhost-plugin-api"]
            .get("git")
            .is_some());
    }

    #[test]
    fn an_existing_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = create("acme", Some(dir.path()), None).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
    }
}
