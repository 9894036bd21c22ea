//! What the settings pages promise (issue 13, "Policy"), with real configs,
//! the `mailhost` binary and the real peers: `policy explain`, `config
//! validate` and sends through the Node smtp-server (port 2526: plain, AUTH
//! optional) and the Graph double.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use mailhost_tests::{graph, mailhost_bin, peer_ca, peers_dir, smtp};

fn mailhost() -> Command {
    let mut c = Command::new(mailhost_bin());
    c.env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env("MAILHOST_SETTINGS_SMTP_PASSWORD", "testpass")
        .env("MAILHOST_SETTINGS_OAUTH_SECRET", "test-secret");
    c
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("mailhost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `file:line:` of the first line of `text` that starts with `key`.
fn loc_of(path: &Path, text: &str, key: &str) -> String {
    let line = text
        .lines()
        .position(|l| l.trim_start().starts_with(key))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no `{key}` line"));
    format!("{}:{line}:", path.display())
}

fn explain(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = mailhost()
        .arg("--config")
        .arg(config)
        .args(["--json", "policy", "explain"])
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn chain(v: &serde_json::Value) -> Vec<String> {
    v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap().to_string())
        .collect()
}

fn trace(v: &serde_json::Value) -> String {
    v["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{} | {} | {}\n", t["rule"], t["saw"], t["chose"]))
        .collect()
}

fn validate_errors(config: &Path) -> String {
    let out = mailhost()
        .arg("--config")
        .arg(config)
        .args(["config", "validate"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "config was accepted");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An SMTP account on the Node peer's port 2526 (plain, AUTH optional).
const SMTP_ACCOUNT: &str = r#"plugin = "smtp"
from = "ERP <erp@bureau.example>"
host = "127.0.0.1"
port = 2526
security = "none"
allow_plaintext_auth = true
"#;

#[test]
fn a_tenant_support_address_is_used_where_the_support_purpose_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let help = format!("{}@acme.example", smtp::unique("help"));
    let text = format!(
        r#"[policy]
account = "bureau"

[accounts.bureau]
{SMTP_ACCOUNT}
[tenants.acme]
support_address = "Acme Helpdesk <{help}>"

[tenants.globex]

[purposes.support]
support_address = "support@vendor.example"
allow_client_support_address = true
attach_system_info = false
"#
    );
    let cfg = write(dir.path(), &text);
    let v = explain(&cfg, &["--tenant", "acme", "--purpose", "support"]);
    assert_eq!(
        v["default_to"][0],
        format!("Acme Helpdesk <{help}>"),
        "{}",
        trace(&v)
    );
    assert!(
        trace(&v)
            .contains("tenant `acme`'s own (allow_client_support_address = true) support address"),
        "{}",
        trace(&v)
    );
    let v = explain(&cfg, &["--tenant", "globex", "--purpose", "support"]);
    assert_eq!(v["default_to"][0], "support@vendor.example");

    // A send with no recipient goes to the tenant's support address.
    mailhost()
        .arg("--config")
        .arg(&cfg)
        .args([
            "send",
            "--tenant",
            "acme",
            "--purpose",
            "support",
            "--subject",
            "help, please",
            "--text",
            "the client's own helpdesk",
        ])
        .assert()
        .success();
    let (eml, _) = smtp::saved_for(&help).expect("the smtp-server peer saved it");
    assert!(String::from_utf8_lossy(&eml).contains("Subject: help, please"));

    // Without the purpose allowing it, the tenant's key is a config error at its line.
    let refused = text.replace("allow_client_support_address = true\n", "");
    let cfg = write(dir.path(), &refused);
    let err = validate_errors(&cfg);
    assert!(
        err.contains(&loc_of(&cfg, &refused, "support_address = \"Acme")),
        "{err}"
    );
    assert!(
        err.contains("tenant `acme` sets its own support_address, but no purpose allows a client-specific one"),
        "{err}"
    );
    assert!(err.contains("allow_client_support_address = true"), "{err}");
}

#[test]
fn auth_optional_requires_a_username_and_a_password_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[policy]
account = "office"

[accounts.office]
{SMTP_ACCOUNT}auth = "optional"

[users.erin.accounts.office]
username = "testuser"
password = "env:MAILHOST_SETTINGS_SMTP_PASSWORD"

[users.frank.accounts.office]
username = "frank@bureau.example"
"#
    );
    // A username without a password is valid ("password optional").
    let cfg = write(dir.path(), &text);
    mailhost()
        .arg("--config")
        .arg(&cfg)
        .args(["config", "validate"])
        .assert()
        .success();

    // With a password the send authenticates as the user.
    let to = format!("{}@example.com", smtp::unique("optional-auth"));
    mailhost()
        .arg("--config")
        .arg(&cfg)
        .args([
            "send",
            "--user",
            "erin",
            "--to",
            &to,
            "--subject",
            "as erin",
            "--text",
            "x",
        ])
        .assert()
        .success();
    let (_, meta) = smtp::saved_for(&to).expect("saved");
    assert_eq!(meta["user"], "testuser", "{meta}");

    // Without a password the send goes unauthenticated, as that user — not
    // with the account's credentials, and not with an empty PLAIN password.
    let to = format!("{}@example.com", smtp::unique("optional-noauth"));
    mailhost()
        .arg("--config")
        .arg(&cfg)
        .args([
            "send",
            "--user",
            "frank",
            "--to",
            &to,
            "--subject",
            "as frank",
            "--text",
            "x",
        ])
        .assert()
        .success();
    let (_, meta) = smtp::saved_for(&to).expect("saved");
    assert_eq!(meta["user"], serde_json::Value::Null, "{meta}");

    // With auth = "required" a user without a password is a configuration
    // error at send time, naming the user; nothing is sent.
    let required = text.replace("auth = \"optional\"", "auth = \"required\"");
    let cfg_required = write(dir.path(), &required);
    let to = format!("{}@example.com", smtp::unique("required-nopass"));
    mailhost()
        .arg("--config")
        .arg(&cfg_required)
        .args(["send", "--user", "frank", "--to", &to, "--text", "x"])
        .assert()
        .code(78)
        .stderr(predicates::str::contains(
            "user frank@bureau.example has no password",
        ));
    assert!(smtp::saved_for(&to).is_none());

    // A user of the account without a username: `config validate` names them.
    let missing =
        format!("{text}\n[users.gina.accounts.office]\nmailbox = \"gina@bureau.example\"\n");
    let cfg = write(dir.path(), &missing);
    let err = validate_errors(&cfg);
    assert!(
        err.contains(&loc_of(&cfg, &missing, "[users.gina.accounts.office]")),
        "{err}"
    );
    assert!(
        err.contains("user `gina` has no username for account `office`, which has auth = \"optional\" (username required, password optional)"),
        "{err}"
    );
    // The SMTP plugin's default for `auth` is `optional`: the same holds without the key.
    let default_auth = missing.replace("auth = \"optional\"\n", "");
    let cfg = write(dir.path(), &default_auth);
    assert!(validate_errors(&cfg).contains("user `gina` has no username"));
}

#[test]
fn no_global_account_no_sending_through_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[policy]
send_autodetect = ["account"]

[accounts.acme]
{SMTP_ACCOUNT}
[accounts.globex]
{SMTP_ACCOUNT}
[tenants.acme]
account = "acme"

[tenants.globex]
account = "globex"
"#
    );
    let cfg = write(dir.path(), &text);
    for tenant in [&[][..], &["--tenant", "acme"][..]] {
        let v = explain(&cfg, tenant);
        assert_eq!(v["refused"]["rule"], "no global account", "{}", trace(&v));
        assert!(
            v["refused"]["message"]
                .as_str()
                .unwrap()
                .contains("set policy.account"),
            "{v}"
        );
    }
    let to = format!("{}@example.com", smtp::unique("no-global"));
    let out = mailhost()
        .arg("--config")
        .arg(&cfg)
        .args([
            "send",
            "--tenant",
            "acme",
            "--to",
            &to,
            "--subject",
            "x",
            "--text",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69), "refused by policy");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sending through accounts is disabled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(smtp::saved_for(&to).is_none(), "nothing was sent");

    // With a global account the tenant's own account sends again.
    let cfg = write(
        dir.path(),
        &text.replace("[policy]\n", "[policy]\naccount = \"globex\"\n"),
    );
    let v = explain(&cfg, &["--tenant", "acme"]);
    assert_eq!(chain(&v), ["acme", "globex"], "{}", trace(&v));
}

#[test]
fn microsoft365_web_off_keeps_only_the_graph_system_account() {
    let dir = tempfile::tempdir().unwrap();
    let ca = peer_ca().display().to_string();
    let text = format!(
        r#"[policy]
account = "m365"
allow_microsoft365_web = false

[oauth.m365]
tenant = "test-tenant"
client_id = "test-client"
client_secret = "env:MAILHOST_SETTINGS_OAUTH_SECRET"
authority = "{shared}"
ca_file = "{ca}"

[accounts.m365]
plugin = "graph"
from = "ERP <testuser@example.com>"
oauth = "m365"
mailbox = "testuser@example.com"
base_url = "{shared}/v1.0"
ca_file = "{ca}"

[accounts.sales-m365]
plugin = "graph"
oauth = "m365"
mailbox = "testuser@example.com"
base_url = "{shared}/v1.0"
ca_file = "{ca}"

[accounts.office]
{SMTP_ACCOUNT}
[users.alice]
send_mode = "sales-m365"
compose_mode = "m365-draft"
"#,
        shared = graph::SHARED
    );
    let cfg = write(dir.path(), &text);

    // alice's Microsoft 365 choices are ignored; the Graph system account stays.
    let v = explain(&cfg, &["--user", "alice"]);
    assert_eq!(chain(&v), ["m365"], "{}", trace(&v));
    let t = trace(&v);
    assert!(
        t.contains("user chose `sales-m365` (Microsoft 365), but allow_microsoft365_web = false"),
        "{t}"
    );
    assert!(t.contains("kept the system account `m365`"), "{t}");
    let v = explain(&cfg, &["--user", "alice", "--action", "compose"]);
    assert_eq!(chain(&v), ["builtin"], "{}", trace(&v));
    assert!(
        trace(&v).contains(
            "user chose `m365-draft` (Microsoft 365), but allow_microsoft365_web = false"
        ),
        "{}",
        trace(&v)
    );

    // The system account still sends (to the Graph double).
    let to = graph::unique("m365-web-off");
    mailhost()
        .arg("--config")
        .arg(&cfg)
        .args([
            "send",
            "--user",
            "alice",
            "--to",
            &format!("{to}@example.com"),
            "--subject",
            "system account",
            "--text",
            "x",
        ])
        .assert()
        .success();
    let found = graph::files_containing(&peers_dir().join("graph").join("sent"), &to);
    assert!(!found.is_empty(), "the Graph double stored the message");

    // With the switch on, alice's choice wins.
    let cfg = write(
        dir.path(),
        &text.replace(
            "allow_microsoft365_web = false",
            "allow_microsoft365_web = true",
        ),
    );
    let v = explain(&cfg, &["--user", "alice"]);
    assert_eq!(chain(&v), ["sales-m365", "m365"], "{}", trace(&v));
}
