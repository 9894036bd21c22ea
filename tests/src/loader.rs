//! Helpers for the loader and example-plugin tests: test fixtures, the
//! plugin-api compatibility workspace (`tests/compat`), the example plugin
//! built outside the workspace, a webhook receiver, and a host handle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use mailhost::message::{AttachmentRequest, MessageRequest};
use mailhost::services::HostEnv;
use mailhost::tokens::TokenBroker;
use mailhost_plugin_api::{HostHandle, OutgoingMessage};

use crate::profile_dir;

/// The webhook receiver of the example plugin's own tests (a hyper server that
/// records requests), shared rather than copied.
#[path = "../../plugins/example/tests/common/receiver.rs"]
pub mod receiver;

/// The Rust blocks of the plugin authors' guide, compiled (and run, unless
/// marked `no_run`) as doctests of this crate: the guide's code stays true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/plugin-authors.md")]
pub struct PluginAuthorsGuide;

/// The workspace root (`/work/main`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `lib<name>.so`: a shared library's file name on this OS.
pub fn dll_name(lib: &str) -> String {
    format!(
        "{}{lib}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// A fixture cdylib of this workspace (`fixture_nosymbol`...), built by
/// `cargo build --workspace`.
pub fn fixture_path(lib: &str) -> PathBuf {
    let p = profile_dir().join(dll_name(lib));
    assert!(
        p.exists(),
        "{} is not built; run `cargo build --workspace` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A host handle as the host gives plugins (logs to tracing, secrets, no OAuth clients).
pub fn host() -> HostHandle {
    HostEnv::new(Arc::new(TokenBroker::new(BTreeMap::new())))
        .with_origin("loader-test")
        .handle()
}

/// A message built by the host's own builder, as every plugin receives it.
pub fn message(subject: &str, idempotency_key: &str) -> OutgoingMessage {
    mailhost::message::build(
        &MessageRequest {
            from: Some("ERP <erp@example.com>".into()),
            to: vec!["Alice <alice@example.com>".into()],
            cc: vec!["carol@example.com".into()],
            bcc: vec!["hidden@example.com".into()],
            subject: subject.into(),
            text: Some("Hello from the loader tests".into()),
            html: Some("<p>Hello from the loader tests</p>".into()),
            attachments: vec![AttachmentRequest {
                filename: Some("invoice.pdf".into()),
                media_type: Some("application/pdf".into()),
                data: Some(b"%PDF-1.4 loader test".to_vec()),
                ..Default::default()
            }],
            idempotency_key: Some(idempotency_key.into()),
            ..Default::default()
        },
        None,
    )
    .expect("test message builds")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // The outer `cargo test`'s target dir must not leak in: each build names its own.
    c.env_remove("CARGO_TARGET_DIR");
    c
}

/// Runs a cargo build; on failure, panics with cargo's output.
fn run_build(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo for {what}: {e}"));
    assert!(
        out.status.success(),
        "building {what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// One cargo build at a time from this test process (the builds share target dirs).
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Builds one plugin of the compatibility workspace `tests/compat` (`compat-v1`,
/// `compat-changed`, `compat-v2`) into `target/compat` and returns its cdylib.
/// One command per variant; a second run only checks that it is fresh.
pub fn build_compat(package: &str) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let root = workspace_root();
    let target = root.join("target").join("compat");
    let mut cmd = cargo();
    cmd.arg("build")
        .arg("--offline")
        .arg("--manifest-path")
        .arg(root.join("tests/compat/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .arg("-p")
        .arg(package);
    run_build(cmd, package);
    let lib = target
        .join("debug")
        .join(dll_name(&package.replace('-', "_")));
    assert!(lib.exists(), "{} missing after the build", lib.display());
    lib
}

/// `plugins/example/Cargo.toml` rewritten as an integrator's standalone
/// manifest: `workspace = true` replaced by the workspace's versions and
/// features, `mailhost-plugin-api` as a path dependency on `plugin_api`, no
/// `[lints] workspace = true`.
pub fn standalone_manifest(plugin_api: &Path) -> toml::Table {
    let root = workspace_root();
    let read = |p: PathBuf| -> toml::Table {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let example = read(root.join("plugins/example/Cargo.toml"));
    let ws = read(root.join("Cargo.toml"));
    let ws = ws["workspace"].as_table().expect("[workspace]");
    let ws_pkg = ws["package"].as_table().expect("[workspace.package]");
    let ws_deps = ws["dependencies"]
        .as_table()
        .expect("[workspace.dependencies]");

    let mut package = toml::Table::new();
    for (k, v) in example["package"].as_table().expect("[package]") {
        let inherited = v
            .as_table()
            .and_then(|t| t.get("workspace"))
            .and_then(|w| w.as_bool())
            == Some(true);
        // `rust-version`/`license` are the workspace's policy, not the plugin's.
        if inherited && k == "edition" {
            package.insert(k.clone(), ws_pkg[k].clone());
        } else if !inherited {
            package.insert(k.clone(), v.clone());
        }
    }
    let mut out = toml::Table::new();
    out.insert("package".into(), package.into());
    out.insert("lib".into(), example["lib"].clone());
    for section in ["dependencies", "dev-dependencies"] {
        let Some(deps) = example.get(section).and_then(|d| d.as_table()) else {
            continue;
        };
        let mut table = toml::Table::new();
        for (name, spec) in deps {
            let spec = spec.as_table().cloned().unwrap_or_default();
            let mut dep = match ws_deps.get(name) {
                Some(toml::Value::String(v)) => {
                    let mut t = toml::Table::new();
                    t.insert("version".into(), v.clone().into());
                    t
                }
                Some(toml::Value::Table(t)) => t.clone(),
                _ => panic!("{name} is not in [workspace.dependencies]"),
            };
            if name == "mailhost-plugin-api" {
                dep.insert(
                    "path".into(),
                    plugin_api.to_string_lossy().into_owned().into(),
                );
            }
            if let Some(extra) = spec.get("features").and_then(|f| f.as_array()) {
                let mut features: Vec<toml::Value> = dep
                    .get("features")
                    .and_then(|f| f.as_array())
                    .cloned()
                    .unwrap_or_default();
                for f in extra {
                    if !features.contains(f) {
                        features.push(f.clone());
                    }
                }
                dep.insert("features".into(), features.into());
            }
            // A table with only `version` is written as a plain version string.
            if dep.len() == 1 {
                if let Some(v) = dep.get("version") {
                    table.insert(name.clone(), v.clone());
                    continue;
                }
            }
            table.insert(name.clone(), dep.into());
        }
        out.insert(section.into(), table.into());
    }
    out
}

/// Copies `plugins/example` to a fresh directory outside the workspace,
/// rewrites its manifest with [`standalone_manifest`], and builds it with
/// `cargo build --offline` into `target/outside-example` (reused across runs:
/// only the copied crate itself is compiled again). Returns the cdylib.
pub fn build_example_outside() -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let root = workspace_root();
    let src = root.join("plugins/example");
    let dir = tempfile::Builder::new()
        .prefix("mailhost-example-outside-")
        .tempdir()
        .expect("temp dir");
    let krate = dir.path().join("mailhost-example");
    copy_tree(&src, &krate);
    let manifest = standalone_manifest(&root.join("plugin-api"));
    std::fs::write(
        krate.join("Cargo.toml"),
        toml::to_string(&manifest).unwrap(),
    )
    .unwrap();
    // The workspace's lock file, so the build uses the versions it has already
    // fetched (cargo drops the entries this crate does not need).
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let target = root.join("target").join("outside-example");
    let mut cmd = cargo();
    cmd.current_dir(&krate)
        .arg("build")
        .arg("--offline")
        .arg("--target-dir")
        .arg(&target);
    run_build(cmd, "plugins/example outside the workspace");
    let lib = target.join("debug").join(dll_name("mailhost_example"));
    assert!(lib.exists(), "{} missing after the build", lib.display());
    // Keep the built library, not the copied sources.
    drop(dir);
    lib
}

/// Copies a directory tree (files and folders).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The ```toml block of `docs/plugin-authors.md` whose first line is `marker`.
pub fn guide_toml_block(marker: &str) -> String {
    let guide = std::fs::read_to_string(workspace_root().join("docs/plugin-authors.md"))
        .expect("docs/plugin-authors.md");
    let mut blocks = guide.split("```toml\n").skip(1);
    blocks
        .find_map(|b| {
            let body = b.split("```").next().unwrap_or("");
            body.starts_with(marker).then(|| body.to_string())
        })
        .unwrap_or_else(|| panic!("no ```toml block starting with `{marker}` in the guide"))
}

/// Builds `tests/fixtures/abort` (its own workspace: `panic = "abort"` is a
/// workspace-wide profile setting) into `target/abort-fixture`; returns its cdylib.
pub fn build_abort_fixture() -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let root = workspace_root();
    let target = root.join("target").join("abort-fixture");
    let mut cmd = cargo();
    cmd.arg("build")
        .arg("--offline")
        .arg("--manifest-path")
        .arg(root.join("tests/fixtures/abort/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    run_build(cmd, "tests/fixtures/abort");
    let lib = target.join("debug").join(dll_name("fixture_abort"));
    assert!(lib.exists(), "{} missing after the build", lib.display());
    lib
}

/// Runs `cargo <args>` in `dir` with the workspace's lock file and the target
/// dir `target/outside-example` (shared with [`build_example_outside`], so the
/// plugin-api dependencies are compiled once), `--offline`.
pub fn cargo_outside(dir: &Path, args: &[&str], what: &str) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let root = workspace_root();
    if !dir.join("Cargo.lock").exists() {
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    let target = root.join("target").join("outside-example");
    let mut cmd = cargo();
    cmd.current_dir(dir)
        .args(args)
        .arg("--offline")
        .arg("--target-dir")
        .arg(&target);
    run_build(cmd, what);
    target
}
