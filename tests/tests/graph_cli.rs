//! The `mailhost` binary with a Microsoft 365 account: `[oauth.NAME]` wired
//! into the token broker, the graph plugin loaded from a plugin directory,
//! against the shared Graph double. Nothing secret reaches the logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use assert_cmd::Command;
use mailhost_tests::graph::{files_containing, unique, MAILBOX, SHARED};
use mailhost_tests::{copy_as, mailhost_bin, peer_ca, peers_dir, plugin_file_name, plugin_path};

const SECRET_VAR: &str = "MAILHOST_GRAPH_TEST_SECRET";

/// A config with one graph account (and the graph plugin alone in `plugins/`).
fn setup(dir: &Path, secret: &str) -> Command {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    copy_as(&plugin_path("graph"), &plugins, &plugin_file_name("graph"));
    let ca = peer_ca();
    let config = format!(
        r#"
[policy]
account = "m365"
send_mode = "m365"
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
        .env(SECRET_VAR, secret)
        .args(["--config", "mailhost.toml", "--plugins", "plugins"]);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn send_through_the_cli_logs_no_secret_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let subject = unique("cli");
    let out = setup(dir.path(), "test-secret")
        .args([
            "-vvv",
            "send",
            "--to",
            "someone@example.com",
            "--subject",
            &subject,
            "--text",
            "from the CLI",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let stored = files_containing(&peers_dir().join("graph/sent"), &subject);
    assert_eq!(stored.len(), 1, "{stdout}");
    // Trace logging on: neither the client secret nor any access token (JWTs start with eyJ).
    assert!(!stderr.contains("test-secret") && !stdout.contains("test-secret"));
    assert!(
        !stderr.contains("eyJ") && !stdout.contains("eyJ"),
        "{stderr}"
    );
}

#[test]
fn compose_gives_a_web_link() {
    let dir = tempfile::tempdir().unwrap();
    let out = setup(dir.path(), "test-secret")
        .args([
            "compose",
            "--to",
            "someone@example.com",
            "--subject",
            &unique("cli-draft"),
            "--text",
            "finish me",
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("https://outlook.office365.com/owa/?ItemID="),
        "{stdout}"
    );
}

#[test]
fn check_and_wrong_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = setup(dir.path(), "test-secret")
        .args(["check", "m365"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for step in ["token", "permissions", "mailbox"] {
        assert!(stdout.contains(step), "{stdout}");
    }

    let secret = "definitely-wrong-4c1d";
    let out = setup(dir.path(), secret)
        .args([
            "-vvv",
            "send",
            "--to",
            "someone@example.com",
            "--subject",
            "x",
            "--text",
            "y",
        ])
        .output()
        .unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert!(
        all.contains("AADSTS7000215") && all.contains("invalid client secret"),
        "{all}"
    );
    assert!(!all.contains(secret), "{all}");
}

#[test]
fn throttled_send_is_retried_by_the_host_after_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let subject = unique("cli-throttle");
    let out = setup(dir.path(), "test-secret")
        .args([
            "send",
            "--to",
            "throttle@example.com",
            "--subject",
            &subject,
            "--text",
            "429 first",
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    // The double answered 429 (Retry-After: 1) once; the host's retry went through.
    assert_eq!(
        files_containing(&peers_dir().join("graph/sent"), &subject).len(),
        1
    );
}
