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

    // MAILHOST_PLUGIN_PATH is read by a child process (the built binary):
    // setting it in this multi-threaded test process would race other tests.
    let exe = mailhost_tests::mailhost_bin();
    let out = std::process::Command::new(&exe)
        .env(PLUGIN_PATH_ENV, "/opt/env1:/opt/env2")
        .args(["--json", "plugins"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let exe_dir = exe.parent().unwrap().to_path_buf();
    let searched: Vec<PathBuf> = v["searched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    assert_eq!(
        searched,
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
    // A 1.0 plugin has no send_many: the host sends a group one by one.
    assert!(!plugin.sends_many());
    let two = [
        message("Compat 1", "compat-2"),
        message("Compat 2", "compat-3"),
    ];
    let got = plugin.send_many(&t, &two);
    assert_eq!(got.len(), 2);
    for (r, m) in got.into_iter().zip(&two) {
        assert!(r
            .unwrap()
            .server_reply
            .as_str()
            .contains(&format!("`{}`", m.parts.subject.as_str())));
    }
}

/// A plugin built against today's plugin-api (1.1) loads in the 1.0 way and
/// also offers `send_many`: one result per message, in order, each message
/// delivered; a panic in one message's send fails that message only.
#[test]
fn a_1_1_plugin_sends_a_group_in_one_call_and_a_panic_fails_only_its_message() {
    let dir = temp();
    let out = dir.path().join("out");
    let pickup = load_file(&plugin_path("pickup")).unwrap();
    assert!(pickup.sends_many());
    // pickup keeps the default send_many (one after the other): the outbox
    // gives it messages one per call; SMTP overlaps a group and says so.
    assert!(!pickup.sends_groups());
    assert!(load_file(&plugin_path("smtp")).unwrap().sends_groups());
    let t = pickup
        .open(&serde_json::json!({ "dir": out }).to_string(), host())
        .unwrap();
    let group: Vec<_> = (0..5)
        .map(|i| message(&format!("group {i}"), &format!("group-{i}")))
        .collect();
    let got = pickup.send_many(&t, &group);
    assert_eq!(got.len(), 5);
    let ids: Vec<String> = got
        .into_iter()
        .map(|r| r.unwrap().server_id.to_string())
        .collect();
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 5, "{ids:?}");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 5, "{ids:?}");
    assert!(pickup.send_many(&t, &[]).is_empty());

    // The default send_many guards each message: each panic is that message's error.
    let plugin = load_file(&install(
        &fixture_path("fixture_panicky_send"),
        dir.path(),
        "panicky_send",
    ))
    .unwrap();
    assert!(plugin.sends_many());
    let t = plugin.open("{}", host()).unwrap();
    let got = plugin.send_many(&t, &group[..2]);
    assert_eq!(got.len(), 2);
    for (i, r) in got.into_iter().enumerate() {
        let e = r.unwrap_err();
        assert_eq!(e.class(), ErrorClass::PERMANENT);
        assert!(
            e.message().contains(&format!("send #{} of", i + 1)),
            "{}",
            e.message()
        );
    }
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

// ---- damaged files, foreign architectures, everything in the folder (issues 9 and 15) ----

/// The first `len` bytes of the pickup plugin, as a plugin file in `dir`.
fn truncated_pickup(dir: &Path, name: &str, len: usize) -> PathBuf {
    let bytes = std::fs::read(plugin_path("pickup")).unwrap();
    assert!(bytes.len() > len);
    let path = dir.join(plugin_file_name(name));
    std::fs::write(&path, &bytes[..len]).unwrap();
    path
}

const RECOPY: &str = "copy the plugin again, to a temporary name and then by rename (copying over a plugin in use crashes the hosts using it)";

#[test]
fn truncated_plugin_files_are_refused_before_the_dynamic_loader_maps_them() {
    let dir = temp();
    let full = std::fs::metadata(plugin_path("pickup")).unwrap().len() as usize;
    // What a half-finished copy leaves: 4 KB, 1 MB, and all but the end
    // (segments whole, the section header table cut).
    for (name, len, what) in [
        ("cut4k", 4096, "a loadable segment ends at byte "),
        ("cut1m", 1024 * 1024, "a loadable segment ends at byte "),
        (
            "cutend",
            full - 100,
            "the section header table ends at byte ",
        ),
    ] {
        let path = truncated_pickup(dir.path(), name, len);
        let f = load_file(&path).unwrap_err();
        assert_eq!(f.kind, FailureKind::Truncated, "{f}");
        assert_eq!(f.kind.name(), "truncated");
        assert!(
            f.reason.starts_with(&format!("cut short: {what}"))
                && f.reason
                    .contains(&format!(" but the file has {len} bytes; "))
                && f.reason.ends_with(RECOPY),
            "{}",
            f.reason
        );
    }
    // The binary lists them all and goes on (no SIGBUS), with a good plugin beside.
    install(&plugin_path("pickup"), dir.path(), "pickup");
    let out = std::process::Command::new(mailhost_tests::mailhost_bin())
        .arg("--plugins")
        .arg(dir.path())
        .arg("plugins")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}");
    assert!(stdout.contains("\npickup "), "{stdout}");
    assert_eq!(
        stdout.matches("\n  truncated: cut short: ").count(),
        3,
        "{stdout}"
    );
}

#[test]
fn a_file_with_only_an_elf_header_is_damaged_not_fatal() {
    let dir = temp();
    let path = truncated_pickup(dir.path(), "header", 64);
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::Truncated, "{f}");
    assert!(
        f.reason.contains("the program header table ends at byte")
            && f.reason.contains("but the file has 64 bytes"),
        "{}",
        f.reason
    );
}

#[test]
fn a_plugin_for_another_architecture_is_named_so() {
    let dir = temp();
    let path = install(&plugin_path("pickup"), dir.path(), "arm");
    // e_machine (ELF header offset 18, little-endian): EM_AARCH64 = 183, or
    // EM_X86_64 = 62 when this host is itself aarch64.
    let mut bytes = std::fs::read(&path).unwrap();
    let (machine, name) = if cfg!(target_arch = "aarch64") {
        (62u16, "X86_64")
    } else {
        (183u16, "Aarch64")
    };
    bytes[18..20].copy_from_slice(&machine.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let f = load_file(&path).unwrap_err();
    assert_eq!(f.kind, FailureKind::WrongArchitecture, "{f}");
    assert_eq!(
        f.reason,
        format!(
            "built for the {name} architecture, this host is {arch} ({host}); use the plugin built for {arch}",
            arch = std::env::consts::ARCH,
            host = if cfg!(target_arch = "aarch64") { "Aarch64" } else { "X86_64" },
        )
    );
    assert!(f.to_string().ends_with("(wrong-architecture)"));
}

#[cfg(unix)]
#[test]
fn every_file_in_a_plugin_folder_is_accounted_for_and_names_are_escaped() {
    let dir = temp();
    let d = dir.path();
    install(&plugin_path("pickup"), d, "pickup");
    std::fs::write(d.join("README.txt"), "notes").unwrap();
    std::fs::write(d.join("mailhost_smtp.so"), "wrong prefix").unwrap();
    std::fs::create_dir(d.join("old")).unwrap();
    std::os::unix::fs::symlink(
        "/nonexistent/libmailhost_x.so",
        d.join(plugin_file_name("gone")),
    )
    .unwrap();
    std::os::unix::fs::symlink("loop-b", d.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", d.join("loop-b")).unwrap();
    // A newline and an escape character in a name must not split the listing.
    std::fs::write(d.join("evil\nFAILED fake\u{1b}[2J.txt"), "x").unwrap();

    let set = load_dirs(&[d.to_path_buf()]);
    assert_eq!(set.names(), ["pickup"]);
    let gone = set
        .failures
        .iter()
        .find(|f| f.path.ends_with(plugin_file_name("gone")))
        .unwrap();
    assert_eq!(gone.kind, FailureKind::NotALibrary);
    assert_eq!(
        gone.reason,
        "a dangling symbolic link: its target /nonexistent/libmailhost_x.so does not exist; replace it with the plugin file or remove it"
    );
    let ignored: Vec<(String, &str)> = set
        .ignored
        .iter()
        .map(|i| {
            (
                i.path.file_name().unwrap().to_string_lossy().into_owned(),
                i.reason.as_str(),
            )
        })
        .collect();
    let rule = "ignored (plugin files are named libmailhost_<name>.so)";
    let names: Vec<&str> = ignored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "README.txt",
            "evil\nFAILED fake\u{1b}[2J.txt",
            "loop-a",
            "loop-b",
            "mailhost_smtp.so",
            "old"
        ]
    );
    for (name, reason) in &ignored {
        let want = match name.as_str() {
            "old" => format!("a directory; {rule}"),
            "loop-a" | "loop-b" => String::from("a symbolic link to loop-"),
            _ => format!("not named like a plugin; {rule}"),
        };
        assert!(reason.starts_with(&want), "{name}: {reason}");
        if name.starts_with("loop") {
            assert!(
                reason.contains("cannot be followed") && reason.ends_with(rule),
                "{reason}"
            );
        }
    }

    // The binary's text listing: one entry per file, the odd name escaped.
    let out = std::process::Command::new(mailhost_tests::mailhost_bin())
        .arg("--plugins")
        .arg(d)
        .arg("plugins")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}");
    assert!(
        stdout.contains("evil\\nFAILED fake\\u{1b}[2J.txt\n"),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
    assert_eq!(stdout.matches("\nIGNORED ").count(), 6, "{stdout}");
    assert_eq!(stdout.matches("\nFAILED ").count(), 1, "{stdout}");
    // And the JSON listing.
    let out = std::process::Command::new(mailhost_tests::mailhost_bin())
        .arg("--plugins")
        .arg(d)
        .args(["--json", "plugins"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ignored"].as_array().unwrap().len(), 6, "{v}");
    assert_eq!(v["failed"][0]["kind"], "not-a-library", "{v}");
}

#[test]
fn the_settings_schema_is_parsed_once_and_validates_formats() {
    let dir = temp();
    let path = install(
        &fixture_path("fixture_validating"),
        dir.path(),
        "validating",
    );
    let p = load_file(&path).unwrap_or_else(|f| panic!("{f}"));
    let text: serde_json::Value =
        serde_json::from_str(p.manifest().settings_schema.as_str()).unwrap();
    assert_eq!(p.schema(), &text);
    assert!(p
        .validator()
        .unwrap()
        .is_valid(&serde_json::json!({"url": "https://x.example/"})));
    assert!(!p
        .validator()
        .unwrap()
        .is_valid(&serde_json::json!({"url": "not a url"})));
    // The plugin's own check, without connecting.
    let problems = p
        .validate_settings(r#"{"url":"https://x.example/","level":"1.1"}"#)
        .expect("the fixture has validate_settings");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key.as_deref(), Some("level"));
    assert_eq!(
        p.validate_settings(r#"{"url":"https://x.example/","level":"1.2"}"#),
        Some(Vec::new())
    );
    // A plugin without the extension says so.
    let pickup = load_file(&plugin_path("pickup")).unwrap();
    assert_eq!(pickup.validate_settings("{}"), None);
}
