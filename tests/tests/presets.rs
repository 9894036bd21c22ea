//! `preset = "office365"` / `"gmail"` on an SMTP account: the plugin's presets
//! (data in its settings schema) fill host, port, security, mechanism and
//! scope; a key the account sets wins. Shown by `config validate` and
//! `plugins --settings smtp`; a send through the preset's XOAUTH2 reaches the
//! Node peer with a token from the Graph double.

use std::path::Path;

use assert_cmd::Command;
use mailhost_tests::graph::SHARED;
use mailhost_tests::smtp::{saved_for, unique};
use mailhost_tests::{mailhost_bin, peer_ca};
use predicates::prelude::*;

const SECRET_VAR: &str = "MAILHOST_PRESET_TEST_SECRET";

fn mailhost(dir: &Path, config: &str) -> Command {
    std::fs::write(dir.join("mailhost.toml"), config).unwrap();
    let mut c = Command::new(mailhost_bin());
    c.current_dir(dir)
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .env(SECRET_VAR, "test-secret")
        .args(["--config", "mailhost.toml"]);
    c
}

fn oauth() -> String {
    format!(
        r#"
[oauth.m365]
tenant = "test-tenant"
client_id = "test-client"
client_secret = "env:{SECRET_VAR}"
authority = "{SHARED}"
ca_file = "{ca}"
"#,
        ca = peer_ca().display()
    )
}

#[test]
fn office365_fills_what_the_account_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{oauth}
[accounts.exchange]
plugin = "smtp"
preset = "office365"
from = "erp@contoso.com"
username = "erp@contoso.com"
oauth = "m365"

[accounts.exchange-tls]
plugin = "smtp"
preset = "office365"
from = "erp@contoso.com"
username = "erp@contoso.com"
oauth = "m365"
port = 465
security = "tls"
"#,
        oauth = oauth()
    );
    let out = mailhost(dir.path(), &config)
        .args(["config", "validate"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(
            "account `exchange`: preset `office365` filled host = \"smtp.office365.com\", mechanism = \"xoauth2\", oauth_scope = \"https://outlook.office365.com/.default\", port = 587, security = \"starttls\"\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "account `exchange-tls`: preset `office365` filled host = \"smtp.office365.com\", mechanism = \"xoauth2\", oauth_scope = \"https://outlook.office365.com/.default\"; set explicitly: port, security\n"
        ),
        "explicit keys win: {out}"
    );

    let out = mailhost(dir.path(), &config)
        .args(["--json", "config", "validate"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let p = &v["presets"]["exchange-tls"];
    assert_eq!(p["name"], "office365");
    assert_eq!(p["filled"]["host"], "smtp.office365.com");
    assert!(p["filled"].get("port").is_none());
    assert_eq!(p["explicit"], serde_json::json!(["port", "security"]));
}

#[test]
fn gmail_and_the_presets_are_documented() {
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path(), "")
        .args(["plugins", "--settings", "smtp"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains(
                "preset = \"NAME\" fills these keys; a key the account sets wins",
            )
            .and(predicate::str::contains(
                "office365    host = \"smtp.office365.com\"",
            ))
            .and(predicate::str::contains(
                "gmail        host = \"smtp.gmail.com\"",
            ))
            .and(predicate::str::contains(
                "oauth_scope = \"https://mail.google.com/\"",
            )),
        );
    let config = format!(
        r#"{oauth}
[accounts.google]
plugin = "smtp"
preset = "gmail"
from = "erp@example.com"
username = "erp@example.com"
oauth = "m365"
"#,
        oauth = oauth()
    );
    mailhost(dir.path(), &config)
        .args(["config", "validate"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "account `google`: preset `gmail` filled host = \"smtp.gmail.com\", mechanism = \"xoauth2\", oauth_scope = \"https://mail.google.com/\", port = 587, security = \"starttls\"",
        ));
}

#[test]
fn an_unknown_preset_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[accounts.office]\nplugin = \"smtp\"\nhost = \"localhost\"\npreset = \"yahoo\"\n";
    mailhost(dir.path(), config)
        .args(["config", "validate"])
        .assert()
        .code(78)
        .stderr(
            predicate::str::contains("mailhost.toml:4:")
                .and(predicate::str::contains(
                    "plugin `smtp` has no preset `yahoo`",
                ))
                .and(predicate::str::contains("its presets: gmail, office365")),
        );
    // a plugin without presets
    let config =
        "[accounts.local]\nplugin = \"pickup\"\ndirectory = \"out\"\npreset = \"office365\"\n";
    mailhost(dir.path(), config)
        .args(["config", "validate"])
        .assert()
        .code(78)
        .stderr(predicate::str::contains("its presets: none"));
}

#[test]
fn a_send_through_the_preset_uses_xoauth2_with_the_exchange_scope() {
    // The preset's mechanism and scope; host, port and CA pointed at the peer.
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{oauth}
[accounts.exchange]
plugin = "smtp"
preset = "office365"
from = "erp@example.com"
host = "localhost"
port = 2587
ca_file = "{ca}"
auth = "required"
username = "testuser"
oauth = "m365"
"#,
        oauth = oauth(),
        ca = peer_ca().display()
    );
    let to = format!("{}@example.com", unique("preset"));
    let out = mailhost(dir.path(), &config)
        .args([
            "--json",
            "send",
            "--to",
            &to,
            "--subject",
            "preset",
            "--text",
            "hi",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, meta) = saved_for(&to).expect("captured by the Node peer");
    assert_eq!(meta["user"], "testuser");
    // an explicit Graph scope wins over the preset's: the server refuses that token
    let wrong = config.replace(
        "oauth = \"m365\"\n",
        "oauth = \"m365\"\noauth_scope = \"https://graph.microsoft.com/.default\"\n",
    );
    mailhost(dir.path(), &wrong)
        .args(["send", "--to", &to, "--subject", "preset", "--text", "hi"])
        .assert()
        .code(77);
}

#[test]
fn policy_explain_shows_what_the_preset_filled() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{oauth}
[policy]
account = "exchange"

[accounts.exchange]
plugin = "smtp"
preset = "office365"
from = "erp@contoso.com"
username = "erp@contoso.com"
oauth = "m365"
port = 465
security = "tls"
"#,
        oauth = oauth()
    );
    mailhost(dir.path(), &config)
        .args(["policy", "explain"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "  exchange: preset `office365` filled host = \"smtp.office365.com\", mechanism = \"xoauth2\", oauth_scope = \"https://outlook.office365.com/.default\"; set explicitly: port, security\n",
        ));
}
