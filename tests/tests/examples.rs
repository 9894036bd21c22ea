//! Every example in config/ is valid, explains itself as its comments promise,
//! and sends through real servers once its endpoints point at the test peers.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use mailhost_tests::{graph, mailhost_bin, peer_ca, peers_dir, smtp};
use predicates::prelude::*;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("config")
        .join(name)
}

fn mailhost() -> Command {
    let mut c = Command::new(mailhost_bin());
    c.env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH");
    c
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

#[test]
fn every_example_is_valid() {
    for name in [
        "mailhost.toml",
        "smtp-office.toml",
        "m365-outlook.toml",
        "multi-tenant.toml",
    ] {
        mailhost()
            .arg("--config")
            .arg(example(name))
            .args(["config", "validate"])
            .assert()
            .success()
            .stdout(predicate::str::contains(": valid ("));
    }
}

#[test]
fn smtp_office_explains() {
    let cfg = example("smtp-office.toml");
    assert_eq!(chain(&explain(&cfg, &[])), ["office"]);
    // Users cannot choose here.
    let v = explain(&cfg, &["--user", "alice", "--mode", "outlook"]);
    assert_eq!(chain(&v), ["office"]);
    assert!(v["trace"]
        .to_string()
        .contains("allow_user_send_selection = false"));
    assert_eq!(chain(&explain(&cfg, &["--action", "compose"])), ["builtin"]);
    let v = explain(
        &cfg,
        &[
            "--purpose",
            "scan-to-email",
            "--to",
            "someone@elsewhere.example",
        ],
    );
    assert!(v["refused"]["message"]
        .as_str()
        .unwrap()
        .contains("may not send to someone@elsewhere.example"));
}

#[test]
fn m365_outlook_explains() {
    let cfg = example("m365-outlook.toml");
    // policy.account unset, a graph and an smtp account: preferred_sender = graph.
    let v = explain(&cfg, &[]);
    assert_eq!(chain(&v)[0], "m365");
    assert!(v["trace"]
        .to_string()
        .contains("preferred_sender = `graph`"));
    // Alice chose Outlook; on a machine without Outlook her mode falls back.
    let v = explain(&cfg, &["--user", "alice"]);
    if cfg!(windows) {
        assert_eq!(chain(&v)[0], "mode:outlook");
    } else {
        assert_eq!(chain(&v)[0], "m365");
        assert!(
            v["trace"].to_string().contains("user mode unavailable"),
            "{v}"
        );
    }
    // Bob composes a Microsoft 365 web draft.
    let v = explain(&cfg, &["--user", "bob", "--action", "compose"]);
    assert_eq!(chain(&v), ["m365"]);
    assert_eq!(v["chain"][0]["mode"], "m365-draft");
}

#[test]
fn multi_tenant_explains() {
    let cfg = example("multi-tenant.toml");
    assert_eq!(
        chain(&explain(&cfg, &["--tenant", "acme"])),
        ["acme", "bureau"]
    );
    assert_eq!(chain(&explain(&cfg, &["--tenant", "globex"])), ["bureau"]);
    assert_eq!(
        chain(&explain(&cfg, &["--user", "carol"])),
        ["acme", "bureau"]
    );
    let v = explain(&cfg, &["--tenant", "initech"]);
    assert!(v["refused"]["message"]
        .as_str()
        .unwrap()
        .contains("switched off for tenant `initech`"));
    assert_eq!(
        chain(&explain(&cfg, &["--purpose", "scan-to-email"])),
        ["archive"]
    );
}

/// The example with its endpoints moved to the test peers: SMTP to the Node
/// smtp-server (STARTTLS on 2587, implicit TLS on 2465, its CA), Graph and
/// OAuth to the Graph double, pickup into `dir`. Everything else stays.
fn on_peers(name: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example(name)).unwrap();
    let mut doc: toml::Table = toml::from_str(&text).unwrap();
    let ca = peer_ca().to_string_lossy().into_owned();
    if let Some(oauth) = doc.get_mut("oauth").and_then(|o| o.as_table_mut()) {
        for (_, c) in oauth.iter_mut() {
            let c = c.as_table_mut().unwrap();
            c.insert("authority".into(), graph::SHARED.into());
            c.insert("tenant".into(), "test-tenant".into());
            c.insert("client_id".into(), "test-client".into());
            c.insert(
                "client_secret".into(),
                "env:MAILHOST_EXAMPLE_OAUTH_SECRET".into(),
            );
            c.insert("ca_file".into(), ca.clone().into());
        }
    }
    for (aname, a) in doc
        .get_mut("accounts")
        .unwrap()
        .as_table_mut()
        .unwrap()
        .iter_mut()
    {
        let a = a.as_table_mut().unwrap();
        match a["plugin"].as_str().unwrap() {
            "smtp" => {
                let tls = a.get("security").and_then(|s| s.as_str()) == Some("tls");
                a.insert("host".into(), "127.0.0.1".into());
                a.insert(
                    "port".into(),
                    toml::Value::Integer(if tls { 2465 } else { 2587 }),
                );
                a.insert("ca_file".into(), ca.clone().into());
                if a.get("mechanism").and_then(|m| m.as_str()) == Some("xoauth2") {
                    a.insert("username".into(), "testuser".into());
                } else {
                    a.insert("username".into(), "testuser".into());
                    a.insert(
                        "password".into(),
                        "env:MAILHOST_EXAMPLE_SMTP_PASSWORD".into(),
                    );
                }
            }
            "graph" => {
                a.insert("base_url".into(), format!("{}/v1.0", graph::SHARED).into());
                a.insert("mailbox".into(), "testuser@example.com".into());
                a.insert("ca_file".into(), ca.clone().into());
            }
            "pickup" => {
                a.insert(
                    "dir".into(),
                    dir.join(aname).to_string_lossy().into_owned().into(),
                );
            }
            _ => {}
        }
    }
    // Per-user Microsoft 365 mailboxes: the double knows one mailbox.
    if let Some(users) = doc.get_mut("users").and_then(|u| u.as_table_mut()) {
        for (_, u) in users.iter_mut() {
            if let Some(accts) = u.get_mut("accounts").and_then(|a| a.as_table_mut()) {
                for (_, ua) in accts.iter_mut() {
                    if let Some(t) = ua.as_table_mut() {
                        if t.contains_key("mailbox") {
                            t.insert("mailbox".into(), "testuser@example.com".into());
                        }
                    }
                }
            }
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    path
}

fn send(config: &Path, extra: &[&str], to: &str) -> String {
    let out = mailhost()
        .env("MAILHOST_EXAMPLE_SMTP_PASSWORD", "testpass")
        .env("MAILHOST_EXAMPLE_OAUTH_SECRET", "test-secret")
        .arg("--config")
        .arg(config)
        .args([
            "send",
            "--to",
            to,
            "--subject",
            "example config",
            "--text",
            "sent by the examples test",
        ])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn smtp_office_sends_through_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = on_peers("smtp-office.toml", dir.path());
    let to = format!("{}@example.com", smtp::unique("example-office"));
    let out = send(&cfg, &[], &to);
    assert!(out.contains(" via office: 250 "), "{out}");
    let (eml, meta) = smtp::saved_for(&to).expect("the smtp-server peer saved it");
    assert_eq!(meta["user"], "testuser");
    assert_eq!(meta["tls"], true);
    assert!(String::from_utf8_lossy(&eml).contains("From: \"ACME ERP\" <erp@acme.example>"));
}

#[test]
fn multi_tenant_sends_through_the_tenant_account() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = on_peers("multi-tenant.toml", dir.path());
    let to = format!("{}@example.com", smtp::unique("example-acme"));
    let out = send(&cfg, &["--tenant", "acme"], &to);
    assert!(out.contains(" via acme: "), "{out}");
    let (eml, meta) = smtp::saved_for(&to).expect("saved");
    assert_eq!(meta["port"], 2465, "acme uses implicit TLS");
    assert!(String::from_utf8_lossy(&eml).contains("From: \"ACME Corp\" <invoices@acme.example>"));
    // scan-to-email goes to the pickup archive.
    let out = send(
        &cfg,
        &["--purpose", "scan-to-email"],
        "scans@bureau.example",
    );
    assert!(out.contains(" via archive: written to "), "{out}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("archive"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn m365_outlook_sends_through_graph_and_composes_a_web_draft() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = on_peers("m365-outlook.toml", dir.path());
    let to = graph::unique("example-m365");
    let out = send(&cfg, &[], &format!("{to}@example.com"));
    assert!(out.contains(" via m365: "), "{out}");
    let found = graph::files_containing(&peers_dir().join("graph").join("sent"), &to);
    assert!(!found.is_empty(), "the Graph double stored the message");
    let out = mailhost()
        .env("MAILHOST_EXAMPLE_OAUTH_SECRET", "test-secret")
        .arg("--config")
        .arg(&cfg)
        .args([
            "compose",
            "--user",
            "bob",
            "--to",
            "x@example.com",
            "--subject",
            "draft from the example",
            "--text",
            "finish me",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("via m365") && out.contains("open: https://"),
        "{out}"
    );
}
