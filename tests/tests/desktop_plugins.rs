//! The Windows desktop-client plugins (`outlook`, `mapi`) off Windows: they
//! load (every OS is declared), and their probe's "requires Windows" is what
//! `policy explain` shows where autodetect skips them — not the loader's
//! `wrong-os` refusal, which would hide why. (Under Windows they are tested by
//! tests/tests/windows.rs, under Wine.)
#![cfg(not(windows))]

use std::path::Path;
use std::process::Command;

use mailhost_tests::{copy_as, mailhost_bin, plugin_file_name, plugin_path};

fn mailhost(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(mailhost_bin())
        .current_dir(dir)
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .args(["--plugins", "plugins", "--config", "mailhost.toml"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn they_load_and_policy_explain_says_they_require_windows() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for p in ["outlook", "mapi", "pickup"] {
        copy_as(&plugin_path(p), &plugins, &plugin_file_name(p));
    }
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\naccount = \"local\"\nsend_mode = \"autodetect\"\ncompose_mode = \"autodetect\"\nsend_autodetect = [\"outlook\", \"mapi-full\", \"mapi-simple\", \"account\"]\n\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"erp@example.com\"\ndir = \"outbox\"\n",
    )
    .unwrap();

    let (code, out) = mailhost(dir.path(), &["--json", "plugins"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let loaded: Vec<&str> = v["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        loaded.contains(&"outlook") && loaded.contains(&"mapi"),
        "{out}"
    );

    // Autodetect skips both with the probe's reason and falls through to the account.
    let (code, out) = mailhost(
        dir.path(),
        &["--json", "policy", "explain", "--action", "send"],
    );
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let chain: Vec<&str> = v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["label"].as_str())
        .collect();
    assert_eq!(chain, ["local"], "{out}");
    let trace = v["trace"].to_string();
    assert!(
        trace.contains("plugin `outlook`: requires Windows"),
        "{out}"
    );
    assert!(trace.contains("plugin `mapi`: requires Windows"), "{out}");

    // A user who asks for Outlook is told why it is not used.
    let (code, out) = mailhost(dir.path(), &["policy", "explain", "--mode", "outlook"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("plugin `outlook`: requires Windows"), "{out}");
}
