//! The loader against real bad files: every failure kind is produced by an
//! actual file on disk (a text file, a library without the symbol, a plugin
//! that panics, plugins built against a changed or incompatible plugin-api),
//! and the message an admin reads is asserted.
//!
//! Files are copied into a temporary directory under plugin file names
//! (`libmailhost_<name>.so`) first: the fixtures' own names never start with
//! `mailhost_`, so the loader never picks them up from a target dir.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mailhost::loader::{
    is_plugin_file_name, load_dirs, load_file, search_path, FailureKind, PLUGIN_PATH_ENV,
};
use mailhost_plugin_api::{ConnState, ErrorClass};
use mailhost_tests::loader::{build_compat, fixture_path, host, message};
use mailhost_tests::{copy_as, plugin_file_name, plugin_path};

fn temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mailhost-loader-")
        .tempdir()
        .unwrap()
}

/// Copies `src` into `dir` as the plugin file of `name`.
fn install(src: &Path, dir: &Path, name: &str) -> PathBuf {
    copy_as(src, dir, &plugin_file_name(name))
}

#[test]
fn a_text_file_is_not_a_library() {
    let dir = temp();
    let path = dir.path().join(plugin_file_name("bogus"));
    // A real text file (longer than an ELF header, so dlopen reads and rejects it).
    std::fs::write(
        &path,
        "this is a text file, not a shared library\n".repeat(50),
    )
    .unwrap();
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::NotALibrary);
    assert_eq!(f.path, path);
    assert!(
        f.reason.starts_with("not a loadable library (")
            && f.reason.contains("invalid ELF header")
            && f.reason
                .ends_with("remove the file or replace it with a plugin built for this platform"),
        "{}",
        f.reason
    );
    // What `mailhost plugins` prints: the path, the reason and the kind.
    let shown = f.to_string();
    assert!(
        shown.starts_with(&format!("{}: not a loadable library", path.display()))
            && shown.ends_with("(not-a-library)"),
        "{shown}"
    );
}

#[test]
fn a_library_without_the_root_symbol_is_not_a_plugin() {
    let dir = temp();
    let path = install(&fixture_path("fixture_nosymbol"), dir.path(), "nosymbol");
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::MissingSymbol, "{f}");
    assert_eq!(f.path, path);
    assert_eq!(
        f.reason,
        "a library without mailhost's root module: not a mailhost plugin (was it built with `export_plugin!`?); remove it from the plugin directory"
    );
}

#[test]
fn a_panicking_manifest_is_reported_not_fatal() {
    let dir = temp();
    let path = install(&fixture_path("fixture_panicky"), dir.path(), "panicky");
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::ManifestFailed, "{f}");
    assert!(
        f.reason.starts_with(
            "the plugin's manifest() failed: plugin panicked in manifest: fixture-panicky: manifest deliberately panics"
        ),
        "{}",
        f.reason
    );
    // The host is still here, and loads a good plugin afterwards.
    assert_eq!(load_file(&plugin_path("pickup")).unwrap().name(), "pickup");
}

#[test]
fn a_plugin_for_another_os_is_reported_and_not_opened() {
    let dir = temp();
    let path = install(&fixture_path("fixture_wrongos"), dir.path(), "wrongos");
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::WrongOs, "{f}");
    let other = if cfg!(target_os = "windows") {
        "macos"
    } else {
        "windows"
    };
    assert_eq!(
        f.reason,
        format!(
            "plugin `wrongos` runs on {other} only, not on {}; remove it from this machine's plugin directory",
            std::env::consts::OS
        )
    );
    assert_eq!(f.path, std::path::absolute(&path).unwrap());
}

#[test]
fn an_invalid_settings_schema_is_an_invalid_manifest() {
    let dir = temp();
    let path = install(&fixture_path("fixture_badschema"), dir.path(), "badschema");
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::InvalidManifest, "{f}");
    assert!(
        f.reason
            .starts_with("plugin `badschema` has an invalid settings JSON Schema: "),
        "{}",
        f.reason
    );
}

#[test]
fn a_panic_in_send_fails_the_message_and_the_host_keeps_running() {
    let dir = temp();
    let path = install(
        &fixture_path("fixture_panicky_send"),
        dir.path(),
        "panicky_send",
    );
    let plugin = load_file(&path).unwrap();
    assert_eq!(plugin.name(), "panicky-send");
    let t = plugin.open("{}", host()).unwrap();
    for n in 1..=2 {
        let m = message(&format!("panic {n}"), &format!("panic-{n}"));
        let e = t.send(&m).into_result().unwrap_err();
        assert_eq!(e.class(), ErrorClass::PERMANENT, "{e}");
        assert!(
            e.message().starts_with(&format!(
                "plugin panicked in send: fixture-panicky-send: send #{n} of {} blew up",
                m.message_id
            )),
            "{e}"
        );
        assert!(
            e.message().contains("report this to the plugin's author"),
            "{e}"
        );
    }
    let e = t.check("{}".into()).into_result().unwrap_err();
    assert!(
        e.message()
            .starts_with("plugin panicked in check: fixture-panicky-send: check blew up"),
        "{e}"
    );
    let s = t.status();
    assert_eq!(s.state, ConnState::UNABLE_TO_CONNECT);
    assert!(s.reason.contains("plugin panicked in status"), "{s:?}");

    // Still running: another plugin sends a message for real.
    let out = dir.path().join("out");
    let pickup = load_file(&plugin_path("pickup")).unwrap();
    let p = pickup
        .open(&serde_json::json!({ "dir": out }).to_string(), host())
        .unwrap();
    let receipt = p
        .send(&message("after the panics", "after-panics"))
        .into_result()
        .unwrap();
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "{receipt:?}");
}

#[test]
fn a_duplicate_name_names_the_first_file() {
    let dir = temp();
    let first = install(&plugin_path("pickup"), dir.path(), "pickup");
    let second = install(&plugin_path("pickup"), dir.path(), "pickup_copy");
    let set = load_dirs(&[dir.path().to_path_buf()]);
    assert_eq!(set.names(), ["pickup"]);
    assert_eq!(set.plugins[0].path(), first);
    assert_eq!(set.failures.len(), 1, "{:?}", set.failures);
    let f = &set.failures[0];
    assert_eq!(f.kind, FailureKind::DuplicateName);
    assert_eq!(f.path, second);
    assert_eq!(
        f.reason,
        format!(
            "a plugin named `pickup` was already loaded from {}; remove one of the two files",
            first.display()
        )
    );
}

#[test]
fn load_dirs_keeps_going_and_loads_the_good_ones() {
    let a = temp();
    let b = temp();
    std::fs::write(a.path().join(plugin_file_name("bogus")), "not a library").unwrap();
    install(&fixture_path("fixture_nosymbol"), a.path(), "nosymbol");
    install(&fixture_path("fixture_panicky"), a.path(), "panicky");
    install(&plugin_path("pickup"), a.path(), "pickup");
    // Not plugin file names: ignored, not reported.
    std::fs::write(a.path().join("README.txt"), "notes").unwrap();
    copy_as(&fixture_path("fixture_nosymbol"), a.path(), "libother.so");
    install(&plugin_path("example"), b.path(), "example");
    let missing = a.path().join("does-not-exist");

    let dirs = vec![a.path().to_path_buf(), missing, b.path().to_path_buf()];
    let set = load_dirs(&dirs);
    assert_eq!(set.searched, dirs);
    assert_eq!(set.names(), ["pickup", "example"]);
    let mut failures: Vec<(String, FailureKind)> = set
        .failures
        .iter()
        .map(|f| {
            (
                f.path.file_name().unwrap().to_string_lossy().into_owned(),
                f.kind,
            )
        })
        .collect();
    failures.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        failures,
        [
            (plugin_file_name("bogus"), FailureKind::NotALibrary),
            (plugin_file_name("nosymbol"), FailureKind::MissingSymbol),
            (plugin_file_name("panicky"), FailureKind::ManifestFailed),
        ]
    );
    assert!(set.get("example").is_some() && set.serving("webhook").len() == 1);
}

#[test]
fn plugin_file_names_and_the_search_path() {
    assert!(is_plugin_file_name("libmailhost_smtp.so"));
    assert!(!is_plugin_file_name("libfixture_nosymbol.so"));
    assert!(!is_plugin_file_name("libmailhost_smtp.so.1"));
    assert!(!is_plugin_file_name("mailhost_smtp.so"));

    let cli = vec![PathBuf::from("/opt/a"), PathBuf::from("/opt/b")];
    assert_eq!(search_path(&cli), cli, "--plugins replaces the defaults");

    // Only this test touches MAILHOST_PLUGIN_PATH.
    std::env::set_var(PLUGIN_PATH_ENV, "/opt/env1:/opt/env2");
    let dirs = search_path(&[]);
    std::env::remove_var(PLUGIN_PATH_ENV);
    let exe_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert_eq!(
        dirs,
        [
            PathBuf::from("/opt/env1"),
            PathBuf::from("/opt/env2"),
            exe_dir.join("plugins"),
            exe_dir,
        ]
    );
}

/// DESIGN §2's compatibility test: a plugin built against the frozen copy of
/// plugin-api 1.0.0 (tests/compat) loads in today's host and sends.
#[test]
fn a_plugin_built_against_plugin_api_1_0_0_loads_and_sends() {
    let dir = temp();
    let path = install(&build_compat("compat-v1"), dir.path(), "compat_v1");
    let plugin = load_file(&path).unwrap_or_else(|f| panic!("{f}"));
    let m = plugin.manifest();
    assert_eq!(
        (m.name.as_str(), m.api_version.as_str()),
        ("compat-v1", "1.0.0")
    );
    let t = plugin.open(r#"{"tag":"v1"}"#, host()).unwrap();
    let msg = message("Compat check", "compat-1");
    let r = t.send(&msg).into_result().unwrap();
    assert_eq!(r.server_id.as_str(), "v1");
    assert_eq!(
        r.server_reply.as_str(),
        format!(
            "compat-v1 accepted `Compat check` for 3 recipient(s), {} MIME bytes",
            msg.mime.len()
        )
    );
    assert!(t.check("{}".into()).into_result().unwrap().ok());
}

/// Only abi_stable's `Error:` lines with their Expected/Found values survive,
/// not the ~400-line layout dump.
fn assert_short_abi_reason(reason: &str) {
    let mut lines = reason.lines();
    let head = lines.next().unwrap();
    assert_eq!(
        head,
        format!(
            "built against a plugin-api whose types differ from this host's; rebuild it against plugin-api {}. abi_stable says:",
            mailhost_plugin_api::API_VERSION
        )
    );
    let rest: Vec<&str> = lines.collect();
    assert!(!rest.is_empty() && rest.len() <= 40, "{reason}");
    for chunk in rest.chunks(3) {
        assert!(
            chunk.len() == 3
                && chunk[0].starts_with("Error: ")
                && chunk[1].starts_with("Expected: ")
                && chunk[2].starts_with("Found: "),
            "not Error/Expected/Found triples:\n{reason}"
        );
    }
}

#[test]
fn a_plugin_built_against_a_changed_interface_is_an_abi_mismatch() {
    let dir = temp();
    let path = install(
        &build_compat("compat-changed"),
        dir.path(),
        "compat_changed",
    );
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::AbiMismatch, "{f}");
    assert_eq!(f.path, path);
    println!("{f}");
    assert_short_abi_reason(&f.reason);
    // The field added to `Manifest` (9 fields in 1.0.0, 10 in the plugin).
    assert!(
        f.reason
            .contains("Error: too many fields (in type Manifest)\nExpected: 9\nFound: 10"),
        "{}",
        f.reason
    );
    assert!(
        f.reason
            .contains("Error: incompatible type size (in type Manifest)\nExpected: "),
        "{}",
        f.reason
    );
}

#[test]
fn a_plugin_built_against_plugin_api_2_is_an_incompatible_version() {
    let dir = temp();
    let path = install(&build_compat("compat-v2"), dir.path(), "compat_v2");
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::IncompatibleVersion, "{f}");
    assert_eq!(
        f.reason,
        format!(
            "built against plugin-api 2.0.0, this host has {v}; rebuild the plugin against plugin-api {v}",
            v = mailhost_plugin_api::API_VERSION
        )
    );
}

/// Not a timed test: prints how long loading each plugin takes (a fresh copy
/// each time, so dlopen really maps it). The numbers go to the report.
#[test]
fn measure_plugin_load_time() {
    let dir = temp();
    let mut plugins: Vec<(&str, PathBuf)> = vec![
        ("pickup", plugin_path("pickup")),
        ("example", plugin_path("example")),
    ];
    for name in ["smtp", "graph"] {
        let p = mailhost_tests::profile_dir().join(plugin_file_name(name));
        if p.exists() {
            plugins.push((name, p));
        }
    }
    // The first load in a process also pays one-time set-up (abi_stable's
    // layout checks, the JSON Schema meta-schema): shown apart.
    let warm = install(&plugin_path("pickup"), dir.path(), "warmup");
    let t = Instant::now();
    load_file(&warm).unwrap();
    println!(
        "first plugin load in this process (pickup): {:?}",
        t.elapsed()
    );
    for (name, src) in plugins {
        let mut times = Vec::new();
        for i in 0..5 {
            let path = install(&src, dir.path(), &format!("{name}_load{i}"));
            let t = Instant::now();
            let loaded = load_file(&path).unwrap_or_else(|f| panic!("{f}"));
            times.push(t.elapsed());
            assert_eq!(loaded.name(), name);
        }
        times.sort();
        println!(
            "load time {name:<8} ({} build, {:.1} MB): median {:?}, min {:?}, max {:?}",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            std::fs::metadata(&src).unwrap().len() as f64 / 1e6,
            times[2],
            times[0],
            times[4]
        );
    }
}

/// `mailhost plugins` (the built binary) lists the good plugins and explains
/// every broken one; the guide shows this output for the two compat variants.
#[test]
fn mailhost_plugins_lists_the_good_and_explains_the_broken() {
    let dir = temp();
    install(&plugin_path("pickup"), dir.path(), "pickup");
    install(&plugin_path("example"), dir.path(), "example");
    install(
        &build_compat("compat-changed"),
        dir.path(),
        "compat_changed",
    );
    install(&build_compat("compat-v2"), dir.path(), "compat_v2");
    let out = std::process::Command::new(mailhost_tests::mailhost_bin())
        .arg("--plugins")
        .arg(dir.path())
        .arg("plugins")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout)
        .replace(&dir.path().display().to_string(), "/opt/mailhost/plugins");
    assert_eq!(out.status.code(), Some(78), "{stdout}");
    assert!(
        stdout.contains("\npickup ") && stdout.contains("\nexample "),
        "{stdout}"
    );
    let guide = std::fs::read_to_string(
        mailhost_tests::loader::workspace_root().join("docs/plugin-authors.md"),
    )
    .unwrap();
    let shown = guide
        .split("```text\nFAILED ")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .map(|b| format!("FAILED {b}"))
        .expect("the guide's `mailhost plugins` block");
    assert!(
        stdout.contains(&shown),
        "the guide's block is not what `mailhost plugins` prints.\nguide:\n{shown}\nactual:\n{stdout}"
    );
}
