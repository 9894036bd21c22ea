//! Every example in config/ is valid, explains itself as its comments promise,
//! and sends through real servers once its endpoints point at the test peers.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use mailhost_tests::{graph, imap, mailhost_bin, peer_ca, peers_dir, smtp};
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
        "imap-mailbox.toml",
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
fn imap_mailbox_explains() {
    let cfg = example("imap-mailbox.toml");
    assert_eq!(chain(&explain(&cfg, &[])), ["mailbox"]);
    // `imap-draft` is served by the IMAP account.
    let v = explain(&cfg, &["--action", "compose"]);
    assert_eq!(chain(&v), ["mailbox"]);
    assert_eq!(v["chain"][0]["mode"], "imap-draft");
    assert_eq!(v["chain"][0]["plugin"], "imap");
    assert_eq!(
        chain(&explain(&cfg, &["--purpose", "notification"])),
        ["relay"]
    );
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
            "imap" => {
                let tls = a.get("security").and_then(|s| s.as_str()) == Some("tls");
                a.insert("host".into(), "127.0.0.1".into());
                a.insert(
                    "port".into(),
                    toml::Value::Integer(if tls { 1993 } else { 1143 }),
                );
                a.insert("ca_file".into(), ca.clone().into());
                a.insert("username".into(), "testuser".into());
                a.insert(
                    "password".into(),
                    "env:MAILHOST_EXAMPLE_SMTP_PASSWORD".into(),
                );
                let mut sub = toml::Table::new();
                sub.insert("host".into(), "127.0.0.1".into());
                sub.insert("port".into(), toml::Value::Integer(1465));
                sub.insert("security".into(), "tls".into());
                a.insert("submission".into(), sub.into());
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

#[test]
fn imap_mailbox_sends_as_the_mailbox_files_copies_and_saves_drafts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = on_peers("imap-mailbox.toml", dir.path());

    // Sent as the mailbox: submission (Dovecot 1465) into the capture, a copy in Sent.
    let to = format!("{}@example.com", smtp::unique("example-imap"));
    let out = send(&cfg, &[], &to);
    assert!(out.contains(" via mailbox: "), "{out}");
    assert!(
        smtp::saved_for(&to).is_some(),
        "relayed by the submission server"
    );
    let stored = imap::stored_with(&to);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].folder, ".Sent");

    // A notification through the relay, filed in the mailbox's Sent (save_copy_to).
    let to = format!("{}@example.com", smtp::unique("example-copy"));
    let out = send(&cfg, &["--purpose", "notification"], &to);
    assert!(out.contains(" via relay: 250 "), "{out}");
    assert!(
        out.contains("copy in mailbox: imap://testuser@127.0.0.1:1993/Sent;UIDVALIDITY="),
        "{out}"
    );
    let (_, meta) = smtp::saved_for(&to).expect("sent once through the relay");
    assert_eq!(meta["port"], 2587);
    let stored = imap::stored_with(&to);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (stored[0].folder.as_str(), stored[0].flags().as_str()),
        (".Sent", "S")
    );

    // A draft in Drafts.
    let to = format!("{}@example.com", smtp::unique("example-draft"));
    let out = mailhost()
        .env("MAILHOST_EXAMPLE_SMTP_PASSWORD", "testpass")
        .arg("--config")
        .arg(&cfg)
        .args([
            "compose",
            "--to",
            &to,
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
    assert!(out.contains("draft-saved via mailbox"), "{out}");
    let stored = imap::stored_with(&to);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (stored[0].folder.as_str(), stored[0].flags().as_str()),
        (".Drafts", "DS")
    );
}

#[test]
fn save_copy_to_must_name_an_account_that_stores_copies() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("imap-mailbox.toml")).unwrap();
    let relay_copy = "save_copy_to = \"mailbox\"";
    let mailbox_key = "save_to_sent = \"auto\"";
    for (i, (from, to, says, line)) in [
        (relay_copy, "save_copy_to = \"nowhere\"", "names account `nowhere`, which does not exist", ":37:"),
        (relay_copy, "save_copy_to = \"relay\"", "save_copy_to names the account itself", ":37:"),
        (
            mailbox_key,
            "save_copy_to = \"relay\"",
            "save_copy_to names `relay`, whose plugin `smtp` cannot store copies for other accounts",
            ":23:",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&cfg, text.replace(from, to)).unwrap();
        mailhost()
            .arg("--config")
            .arg(&cfg)
            .args(["config", "validate"])
            .assert()
            .failure()
            .stderr(predicate::str::contains(says))
            .stderr(predicate::str::contains(line));
    }
}
