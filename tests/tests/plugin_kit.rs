//! The plugin kit as an integrator meets it: `mailhost plugin new` end to end
//! (generate → build and test the crate → load → configure → send → check),
//! a plugin built with `panic = "abort"` refused everywhere it shows, an old
//! plugin without the panic bit warned about, a missing plugin explained.

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;
use mailhost::loader::{load_file, FailureKind};
use mailhost_tests::loader::{
    build_abort_fixture, build_compat, cargo_outside, copy_tree, workspace_root,
};
use mailhost_tests::{copy_as, mailhost_bin, plugin_file_name, plugin_path};
use predicates::prelude::*;

fn mailhost(cwd: &Path) -> Command {
    let mut c = Command::new(mailhost_bin());
    c.current_dir(cwd)
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG");
    c
}

fn temp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mailhost-kit-")
        .tempdir()
        .unwrap()
}

#[test]
fn a_scaffolded_plugin_builds_loads_sends_and_checks() {
    let dir = temp();
    let name = "acme-erp-transport";
    let krate = dir.path().join("acme");
    let api = workspace_root().join("plugin-api");
    mailhost(dir.path())
        .args(["plugin", "new", name, "--dir", "acme", "--api-path"])
        .arg(&api)
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "created plugin `{name}` in acme"
        )));
    // A second time into the same directory: refused, nothing overwritten.
    mailhost(dir.path())
        .args(["plugin", "new", name, "--dir", "acme"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("already exists"));

    // It builds, and its own tests (in-process and load) pass as generated.
    let target = cargo_outside(&krate, &["build"], "the scaffolded plugin");
    cargo_outside(&krate, &["test"], "the scaffolded plugin's tests");
    let lib = target
        .join("debug")
        .join(plugin_file_name("acme_erp_transport"));
    assert!(lib.is_file(), "{} missing", lib.display());

    let plugin = load_file(&lib).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(plugin.name(), name);
    assert!(plugin.panic_note().is_none());

    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    copy_as(&lib, &plugins, &plugin_file_name("acme_erp_transport"));
    copy_as(
        &plugin_path("pickup"),
        &plugins,
        &plugin_file_name("pickup"),
    );
    // Columns line up although the name is longer than ten characters.
    let out = mailhost(dir.path())
        .args(["--plugins", "plugins", "plugins"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let cols: Vec<usize> = out.lines().filter_map(|l| l.find(" modes: ")).collect();
    assert_eq!(cols.len(), 2, "{out}");
    assert_eq!(cols[0], cols[1], "misaligned:\n{out}");

    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        format!("[policy]\naccount = \"erp\"\n\n[accounts.erp]\nplugin = \"{name}\"\nfrom = \"erp@example.com\"\ndir = \"out\"\n"),
    )
    .unwrap();
    mailhost(dir.path())
        .args(["--plugins", "plugins", "config", "validate"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "valid (1 account(s), 0 warning(s))",
        ));
    mailhost(dir.path())
        .args([
            "--plugins",
            "plugins",
            "send",
            "--to",
            "a@example.com",
            "--subject",
            "From the scaffold",
            "--text",
            "hi",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(" via erp: written to "));
    let sent: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].contains("Subject: From the scaffold"),
        "{}",
        sent[0]
    );
    mailhost(dir.path())
        .args([
            "--plugins",
            "plugins",
            "check",
            "erp",
            "--to",
            "admin@example.com",
        ])
        .assert()
        .success();
    let test_message =
        std::fs::read_to_string(dir.path().join("out/check-test-message.eml")).unwrap();
    assert!(
        test_message.starts_with("To: admin@example.com\r\n"),
        "{test_message}"
    );
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused_wherever_it_shows() {
    let lib = build_abort_fixture();
    let f = load_file(&lib).unwrap_err();
    assert_eq!(f.kind, FailureKind::PanicAbort, "{f}");
    assert!(f.reason.contains("panic = \"unwind\""), "{f}");

    let dir = temp();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    copy_as(&lib, &plugins, &plugin_file_name("panic_abort"));
    mailhost(dir.path())
        .args(["--plugins", "plugins", "plugins"])
        .assert()
        .code(78)
        .stdout(predicate::str::contains(
            "panic-abort: plugin `panic-abort` was built with panic = \"abort\"",
        ));
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\naccount = \"a\"\n\n[accounts.a]\nplugin = \"panic-abort\"\nfrom = \"erp@example.com\"\n",
    )
    .unwrap();
    for args in [
        &["config", "validate"][..],
        &["send", "--to", "a@example.com", "--text", "x"][..],
    ] {
        mailhost(dir.path())
            .args(["--plugins", "plugins"])
            .args(args)
            .assert()
            .code(78)
            .stderr(
                predicate::str::contains("mailhost.toml:5:10: account `a`: its plugin is missing")
                    .and(predicate::str::contains("was built with panic = \"abort\""))
                    .and(predicate::str::contains(
                        "policy.account names account `a`, whose plugin `panic-abort` is not loaded",
                    ))
                    .and(predicate::str::contains("which does not exist").not()),
            );
    }
}

#[test]
fn a_plugin_without_the_panic_bit_loads_with_a_warning() {
    let dir = temp();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    copy_as(
        &build_compat("compat-v1"),
        &plugins,
        &plugin_file_name("compat_v1"),
    );
    mailhost(dir.path())
        .args(["--plugins", "plugins", "plugins"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "warning: plugin `compat-v1` does not say whether it was built with panic = \"unwind\"",
        ));
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\naccount = \"v1\"\n\n[accounts.v1]\nplugin = \"compat-v1\"\nfrom = \"erp@example.com\"\ntag = \"v1\"\n",
    )
    .unwrap();
    mailhost(dir.path())
        .args(["--plugins", "plugins", "config", "validate"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 warning(s)"))
        .stderr(predicate::str::contains(
            "account `v1`: plugin `compat-v1` does not say",
        ));
}

#[test]
fn a_missing_plugin_says_where_the_host_looked() {
    let dir = temp();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\naccount = \"erp\"\n\n[accounts.erp]\nplugin = \"acme\"\nfrom = \"erp@example.com\"\n",
    )
    .unwrap();
    mailhost(dir.path())
        .args(["--plugins", "plugins", "config", "validate"])
        .assert()
        .code(78)
        .stderr(
            predicate::str::contains("mailhost.toml:5:10: account `erp`: its plugin is missing: no plugin named `acme` is loaded")
                .and(predicate::str::contains(format!(
                    "the host looked for {} in: plugins (loaded plugins: (none))",
                    plugin_file_name("acme"),
                )))
                .and(predicate::str::contains(
                    "mailhost.toml:2:11: policy.account names account `erp`, whose plugin `acme` is not loaded",
                )),
        );
}

/// A copy of the plugin-api folder alone builds: no workspace to inherit from
/// (an integrator vendors it, or a registry packages it).
#[test]
fn a_copy_of_plugin_api_builds_alone() {
    let dir = temp();
    let copy = dir.path().join("mailhost-plugin-api");
    copy_tree(&workspace_root().join("plugin-api"), &copy);
    let manifest = std::fs::read_to_string(copy.join("Cargo.toml")).unwrap();
    let parsed: toml::Table = manifest.parse().unwrap();
    fn inherits(v: &toml::Value) -> bool {
        match v {
            toml::Value::Table(t) => t.contains_key("workspace") || t.values().any(inherits),
            toml::Value::Array(a) => a.iter().any(inherits),
            _ => false,
        }
    }
    assert!(
        !inherits(&toml::Value::Table(parsed.clone())),
        "plugin-api/Cargo.toml inherits from the workspace:\n{manifest}"
    );
    assert_eq!(parsed["package"]["version"].as_str(), Some("1.0.0"));
    for key in [
        "description",
        "license",
        "repository",
        "readme",
        "documentation",
    ] {
        assert!(
            parsed["package"].get(key).is_some(),
            "package.{key} missing"
        );
    }
    assert!(copy.join("README.md").is_file());
    cargo_outside(&copy, &["build"], "a copy of plugin-api");
}
