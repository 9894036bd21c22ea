//! `mailhost compose --open`: the draft's web link (Microsoft 365 through the
//! shared Graph double) handed to the desktop's opener. The opener is a real
//! `xdg-open` script placed first on PATH that records its arguments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use mailhost_tests::graph::{unique, MAILBOX, SHARED};
use mailhost_tests::{copy_as, mailhost_bin, peer_ca, plugin_file_name, plugin_path, write_script};

const SECRET_VAR: &str = "MAILHOST_OPEN_TEST_SECRET";

/// A directory with an `xdg-open` that writes its arguments to `record` and exits with `code`.
fn fake_opener(dir: &Path, code: i32) -> (PathBuf, PathBuf) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = dir.join("opened.txt");
    let script = bin.join("xdg-open");
    write_script(
        &script,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$#\" \"$@\" > '{}'\nexit {code}\n",
            record.display()
        ),
    );
    (bin, record)
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// mailhost with one graph account whose compose mode is m365-draft.
fn m365(dir: &Path) -> Command {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    copy_as(&plugin_path("graph"), &plugins, &plugin_file_name("graph"));
    let ca = peer_ca();
    let config = format!(
        r#"
[policy]
account = "m365"
compose_mode = "m365-draft"
allow_microsoft365_web = true

[oauth.m365]
tenant = "test-tenant"
client_id = "test-client"
client_secret = "env:{SECRET_VAR}"
authority = "{SHARED}"
ca_file = "{ca}"

[accounts.m365]
plugin = "graph"
from = "ERP <{MAILBOX}>"
oauth = "m365"
mailbox = "{MAILBOX}"
base_url = "{SHARED}/v1.0"
ca_file = "{ca}"
"#,
        ca = ca.display()
    );
    std::fs::write(dir.join("mailhost.toml"), config).unwrap();
    let mut c = Command::new(mailhost_bin());
    c.current_dir(dir)
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .env(SECRET_VAR, "test-secret")
        .args(["--config", "mailhost.toml", "--plugins", "plugins"]);
    c
}

fn compose_args(subject: &str) -> Vec<String> {
    [
        "compose",
        "--open",
        "--to",
        "someone@example.com",
        "--subject",
        subject,
        "--text",
        "finish me",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_draft_link_goes_to_the_default_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, record) = fake_opener(dir.path(), 0);
    let out = m365(dir.path())
        .env("PATH", path_with(&bin))
        .args(compose_args(&unique("open")))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let link = stdout
        .lines()
        .find_map(|l| l.strip_prefix("open: "))
        .unwrap_or_else(|| panic!("no link in:\n{stdout}"));
    assert!(
        link.starts_with("https://outlook.office365.com/owa/?ItemID="),
        "{link}"
    );
    // one argument, the link exactly
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        format!("1\n{link}\n")
    );
    assert!(
        stdout.contains(&format!("opened in the default browser (xdg-open {link})")),
        "{stdout}"
    );
}

#[test]
fn json_says_whether_it_was_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, record) = fake_opener(dir.path(), 0);
    let out = m365(dir.path())
        .env("PATH", path_with(&bin))
        .arg("--json")
        .args(compose_args(&unique("open-json")))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let link = v["web_link"].as_str().unwrap();
    assert_eq!(v["opened"]["ok"], true);
    assert_eq!(v["opened"]["command"], format!("xdg-open {link}"));
    assert_eq!(
        std::fs::read_to_string(&record).unwrap(),
        format!("1\n{link}\n")
    );
}

#[test]
fn a_failing_or_missing_opener_is_reported_with_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, _record) = fake_opener(dir.path(), 3);
    let out = m365(dir.path())
        .env("PATH", path_with(&bin))
        .args(compose_args(&unique("open-fails")))
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(69), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("open: https://outlook.office365.com/owa/"),
        "the draft exists: {stdout}"
    );
    assert!(
        stderr.contains("mailhost: composed, but not opened: web-link via m365")
            && stderr.contains("`xdg-open` failed (exit status: 3)")
            && stderr.contains("open the link yourself: https://outlook.office365.com/owa/"),
        "{stderr}"
    );

    // no opener at all: an empty PATH
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = m365(dir.path())
        .env("PATH", &empty)
        .arg("--json")
        .args(compose_args(&unique("open-none")))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["opened"]["ok"], false);
    let e = v["opened"]["error"].as_str().unwrap();
    assert!(
        e.contains("`xdg-open` was not found: this desktop has no default-browser opener"),
        "{e}"
    );
    assert!(text(&out.stderr).contains("composed, but not opened"));
}

#[test]
fn an_outcome_without_a_link_is_not_opened_and_says_so() {
    // the embedded default composes with `builtin` (the application's editor): no link
    let dir = tempfile::tempdir().unwrap();
    let (bin, record) = fake_opener(dir.path(), 0);
    let out = Command::new(mailhost_bin())
        .current_dir(dir.path())
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env("PATH", path_with(&bin))
        .args(compose_args("no link"))
        .args(["--from", "me@example.com"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(69), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("builtin via "), "{stdout}");
    assert!(
        stderr.contains("composed, but not opened: builtin via")
            && stderr.contains("the outcome has no web link to open"),
        "{stderr}"
    );
    assert!(!record.exists(), "the opener must not run");
}
