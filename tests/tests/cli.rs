//! The `mailhost` binary, run as a user would.

use std::path::Path;

use assert_cmd::Command;
use mailhost_tests::{copy_as, mailhost_bin, plugin_file_name, plugin_path, profile_dir};
use predicates::prelude::*;

fn mailhost(cwd: &Path) -> Command {
    let mut c = Command::new(mailhost_bin());
    c.current_dir(cwd)
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG");
    c
}

fn emls(dir: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(d) => {
            let mut v: Vec<_> = d
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn send_on_the_embedded_default_writes_a_correct_eml() {
    let dir = tempfile::tempdir().unwrap();
    let out = mailhost(dir.path())
        .args([
            "send",
            "--to",
            "you@example.com",
            "--cc",
            "Boss <boss@example.com>",
            "--bcc",
            "hidden@example.com",
            "--subject",
            "Grüße from mailhost",
            "--text",
            "It works",
        ])
        .assert()
        .success()
        .stdout(
            predicate::str::starts_with("sent ")
                .and(predicate::str::contains(" via local: written to ")),
        )
        .get_output()
        .stdout
        .clone();
    let files = emls(&dir.path().join("outbox"));
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    let id = String::from_utf8(out)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(eml.contains(&format!("Message-ID: <{id}>")), "{eml}");
    assert!(
        eml.contains("From: mailhost <mailhost@localhost.localdomain>"),
        "{eml}"
    );
    assert!(eml.contains("To: you@example.com"));
    assert!(eml.contains("Cc: Boss <boss@example.com>"));
    assert!(
        !eml.to_ascii_lowercase().contains("bcc:"),
        "Bcc header must not be in a delivered copy:\n{eml}"
    );
    assert!(
        eml.contains("Subject: =?utf-8?"),
        "non-ASCII subject is encoded: {eml}"
    );
    assert!(eml.contains("Date: "));
    assert!(eml.contains("\r\n\r\nIt works"), "{eml}");
    // Nothing half-written is left behind.
    assert!(std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
}

#[test]
fn header_injection_and_bad_addresses_are_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path())
        .args([
            "send",
            "--to",
            "you@example.com",
            "--subject",
            "hi\r\nBcc: victim@example.com",
            "--text",
            "x",
        ])
        .assert()
        .code(65)
        .stderr(predicate::str::contains(
            "subject contains a line break (CR or LF)",
        ));
    mailhost(dir.path())
        .args(["send", "--to", "not-an-address", "--text", "x"])
        .assert()
        .code(65)
        .stderr(predicate::str::contains(
            "to: `not-an-address` is not a valid address",
        ));
    mailhost(dir.path())
        .args([
            "send",
            "--to",
            "a@example.com",
            "--header",
            "X-Bad Name: v",
            "--text",
            "x",
        ])
        .assert()
        .code(65)
        .stderr(predicate::str::contains(
            "header name `X-Bad Name` is invalid",
        ));
    assert!(emls(&dir.path().join("outbox")).is_empty());
}

#[test]
fn eml_from_file_and_stdin_keeps_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let raw = "From: Sales <sales@example.com>\nTo: client@example.com\nSubject: Offer 12\nMessage-ID: <offer-12@example.com>\nDate: Mon, 23 Nov 2026 09:00:00 +0000\n\nSee attached.\n";
    std::fs::write(dir.path().join("offer.eml"), raw).unwrap();
    mailhost(dir.path())
        .args(["send", "--eml", "offer.eml"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "sent offer-12@example.com via local",
        ));
    mailhost(dir.path())
        .args(["send", "--eml", "-"])
        .write_stdin(raw.replace("offer-12", "offer-13"))
        .assert()
        .success();
    // A file that is not a sendable message: a clear error, exit 65, nothing sent.
    for (bad, says) in [
        (
            "From: a@example.com\nSubject: none\n\nbody\n",
            "the message has no recipient",
        ),
        (
            "To: b@example.com\nSubject: none\n\nbody\n",
            "the .eml file has no From header",
        ),
    ] {
        mailhost(dir.path())
            .args(["send", "--eml", "-"])
            .write_stdin(bad)
            .assert()
            .code(65)
            .stderr(predicate::str::contains(says));
    }
    let files = emls(&dir.path().join("outbox"));
    assert_eq!(files.len(), 2);
    let first = std::fs::read(&files[0]).unwrap();
    assert_eq!(
        first,
        raw.replace('\n', "\r\n").into_bytes(),
        "bytes kept, line ends made CRLF"
    );
}

#[test]
fn attachments_and_html_are_built_into_mime() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("invoice.pdf"), b"%PDF-1.4 fake").unwrap();
    mailhost(dir.path())
        .args([
            "send",
            "--to",
            "a@example.com",
            "--subject",
            "Invoice",
            "--text",
            "plain",
            "--html",
            "<b>rich</b>",
            "--attach",
            "invoice.pdf",
        ])
        .assert()
        .success();
    let eml = std::fs::read_to_string(&emls(&dir.path().join("outbox"))[0]).unwrap();
    assert!(eml.contains("multipart/mixed"));
    assert!(eml.contains("multipart/alternative"));
    assert!(eml.contains("Content-Type: application/pdf"));
    assert!(eml.contains("filename=\"invoice.pdf\""));
}

#[test]
fn kill_switch_refuses_and_queues_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mailhost.toml"), "[policy]\nenabled = false\naccount = \"local\"\n\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"a@example.com\"\ndir = \"outbox\"\n").unwrap();
    mailhost(dir.path())
        .args(["send", "--to", "a@example.com", "--text", "x"])
        .assert()
        .code(69)
        .stderr(predicate::str::contains(
            "refused by kill switch: sending is switched off for everyone (policy.enabled = false)",
        ));
    assert!(emls(&dir.path().join("outbox")).is_empty());
    mailhost(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "DISABLED by the kill switch (policy.enabled = false at mailhost.toml:2:11)",
        ));
}

#[test]
fn config_validate_reports_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[policy]\naccount = \"office\"\n\n[accounts.local]\nplugin = \"pickup\"\ndir = \"x\"\nport = 25\n").unwrap();
    mailhost(dir.path())
        .args(["--config", "bad.toml", "config", "validate"])
        .assert()
        .code(78)
        .stderr(predicate::str::contains(
            "bad.toml:2:11: policy.account names account `office`, which does not exist",
        ))
        .stderr(predicate::str::contains(
            "bad.toml:7:1: account `local`: unknown key `port` for plugin `pickup`",
        ));
    mailhost(dir.path())
        .args(["config", "validate"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "<embedded default config/mailhost.toml>: valid",
        ));
}

#[test]
fn plugins_lists_loaded_and_explains_broken_ones() {
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path())
        .arg("plugins")
        .assert()
        .success()
        .stdout(predicate::str::contains("pickup ").and(predicate::str::contains("example ")));
    let pdir = dir.path().join("plugins");
    std::fs::create_dir(&pdir).unwrap();
    copy_as(&plugin_path("pickup"), &pdir, &plugin_file_name("pickup"));
    std::fs::write(
        pdir.join(plugin_file_name("bogus")),
        "this is a text file\n",
    )
    .unwrap();
    let out = mailhost(dir.path())
        .args(["--plugins", "plugins", "plugins", "--json"])
        .assert()
        .code(78)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["loaded"][0]["name"], "pickup");
    assert_eq!(v["failed"][0]["kind"], "not-a-library");
    assert!(v["failed"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with(&plugin_file_name("bogus")));
}

#[test]
fn policy_explain_prints_the_trace_and_json() {
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path())
        .args([
            "policy", "explain", "--user", "alice", "--action", "compose",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("saw:").and(predicate::str::contains("chain: builtin")));
    let out = mailhost(dir.path())
        .args(["--json", "policy", "explain", "--action", "send"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["chain"][0]["label"], "local");
    assert!(v["trace"].as_array().unwrap().len() >= 3);
}

#[test]
fn check_and_status_on_the_default() {
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path())
        .args(["check", "local"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("[ok  ] write").and(predicate::str::contains("check passed")),
        );
    mailhost(dir.path())
        .args(["check", "nope"])
        .assert()
        .code(78)
        .stderr(predicate::str::contains("no account `nope`"));
    mailhost(dir.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "local            pickup   operating",
        ));
}

#[test]
fn help_has_examples_and_usage_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    mailhost(dir.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:").and(predicate::str::contains("Exit codes:")));
    mailhost(dir.path()).arg("sned").assert().code(64);
}

/// Exit codes follow the class of the last error.
#[test]
fn exit_codes_follow_the_error_class() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("plugins");
    std::fs::create_dir(&pdir).unwrap();
    let flaky = profile_dir().join(format!(
        "{}fixture_flaky{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    copy_as(&flaky, &pdir, &plugin_file_name("flaky"));
    for (class, code) in [
        ("transient", 75),
        ("permanent", 76),
        ("auth", 77),
        ("config", 78),
        ("unavailable", 69),
    ] {
        let cfg = format!("[policy]\naccount = \"f\"\nmax_attempts = 1\n\n[accounts.f]\nplugin = \"flaky\"\nfrom = \"a@example.com\"\nfail_with = \"{class}\"\n");
        std::fs::write(dir.path().join("f.toml"), cfg).unwrap();
        mailhost(dir.path())
            .args([
                "--plugins",
                "plugins",
                "--config",
                "f.toml",
                "send",
                "--to",
                "b@example.com",
                "--text",
                "x",
            ])
            .assert()
            .code(code)
            .stderr(predicate::str::contains(format!(
                "attempt 1 via f: {class}: flaky failure 1"
            )));
    }
}

#[test]
fn support_purpose_goes_to_its_address_with_system_information() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mailhost.toml"),
        "[policy]\naccount = \"local\"\n\n[oauth.m365]\ntenant = \"t\"\nclient_id = \"c\"\nclient_secret = \"hunter2\"\n\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"erp@example.com\"\ndir = \"outbox\"\n\n[purposes.support]\nallow_sender = true\nallowed_recipients = [\"support@vendor.example\"]\nsupport_address = \"support@vendor.example\"\nattach_system_info = true\n",
    )
    .unwrap();
    mailhost(dir.path())
        .args([
            "send",
            "--purpose",
            "support",
            "--from",
            "Clerk <clerk@example.com>",
            "--subject",
            "Printing fails",
            "--text",
            "Since today.",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("hunter2").not());
    let eml = std::fs::read_to_string(&emls(&dir.path().join("outbox"))[0]).unwrap();
    assert!(eml.contains("To: support@vendor.example"), "{eml}");
    assert!(eml.contains("From: Clerk <clerk@example.com>"), "{eml}");
    assert!(eml.contains("filename=\"system-info.txt\""), "{eml}");
    assert!(!eml.contains("hunter2"));
    // The attachment is plain text with the versions and accounts. Lettre picks 7bit or
    // quoted-printable by line length (a long plugin path forces QP), so decode it.
    let parsed = mail_parser::MessageParser::default()
        .parse(eml.as_bytes())
        .unwrap();
    let info = parsed
        .attachments()
        .find(|a| mail_parser::MimeHeaders::attachment_name(*a) == Some("system-info.txt"))
        .expect("system-info.txt attachment");
    let info = std::str::from_utf8(info.contents()).unwrap();
    assert!(info.contains("mailhost 0.1.0"), "{info}");
    assert!(info.contains("local pickup operating"), "{info}");
    assert!(!info.contains("hunter2"), "{info}");
    // Another recipient is refused by the purpose.
    mailhost(dir.path())
        .args([
            "send",
            "--purpose",
            "support",
            "--to",
            "someone@else.example",
            "--text",
            "x",
        ])
        .assert()
        .code(69)
        .stderr(predicate::str::contains(
            "may not send to someone@else.example",
        ));
}

#[test]
fn checks_found_valid_are_remembered_and_mistakes_are_always_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let facts = |c: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(c.join("checked"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let account = |dir_value: &str| {
        format!("[policy]\naccount = \"local\"\n\n[accounts.local]\nplugin = \"pickup\"\ndir = {dir_value}\n")
    };
    std::fs::write(dir.path().join("good.toml"), account("\"out\"")).unwrap();
    std::fs::write(dir.path().join("bad.toml"), account("5")).unwrap();
    mailhost(dir.path())
        .env("MAILHOST_CACHE_DIR", &cache)
        .args(["--config", "good.toml", "config", "validate"])
        .assert()
        .success();
    let first = facts(&cache);
    assert!(first.iter().any(|f| f.starts_with("schema-")), "{first:?}");
    assert_eq!(
        first.iter().filter(|f| f.starts_with("settings-")).count(),
        1,
        "{first:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache.join("checked"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // the plugin's schema is remembered as valid, yet a wrong value is still
    // reported, every time, and never remembered
    for _ in 0..2 {
        mailhost(dir.path())
            .env("MAILHOST_CACHE_DIR", &cache)
            .args(["--config", "bad.toml", "config", "validate"])
            .assert()
            .code(78)
            .stderr(predicate::str::contains("bad.toml:6:1"))
            .stderr(predicate::str::contains("5 is not of type \"string\""));
    }
    assert_eq!(facts(&cache), first);
    // the good one again: valid, from what was remembered
    mailhost(dir.path())
        .env("MAILHOST_CACHE_DIR", &cache)
        .args(["--config", "good.toml", "config", "validate"])
        .assert()
        .success();
    assert_eq!(facts(&cache), first);
    // off: nothing is written anywhere
    let off = dir.path().join("off");
    mailhost(dir.path())
        .env("MAILHOST_CACHE_DIR", "off")
        .env("HOME", &off)
        .env("XDG_CACHE_HOME", &off)
        .args(["--config", "good.toml", "config", "validate"])
        .assert()
        .success();
    assert!(!off.exists());
}

/// From nothing to a service config: `config init` writes the embedded
/// default (never over a file), `api-token --add` puts a token's hash in it.
#[test]
fn config_init_and_api_token_add_write_a_config_and_refuse_to_clobber() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("mailhost.toml");
    // no file yet: nothing to add to
    mailhost(d)
        .args(["api-token", "erp", "--add"])
        .assert()
        .code(78)
        .stderr(predicate::str::contains("mailhost config init"));
    mailhost(d)
        .args(["config", "init"])
        .assert()
        .success()
        .stdout(predicate::str::contains("mailhost.toml: written"));
    let first = std::fs::read_to_string(&cfg).unwrap();
    assert!(first.starts_with("# mailhost configuration, written by `mailhost config init`"));
    assert!(first.contains("[accounts.local]"), "{first}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&cfg).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
    }
    mailhost(d).args(["config", "validate"]).assert().success();
    // never over an existing file
    mailhost(d)
        .args(["config", "init"])
        .assert()
        .code(64)
        .stderr(predicate::str::contains("exists; nothing was written"));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), first);
    // a name that is not a bare key, an unknown scope: refused, escaped
    for args in [
        vec!["api-token", "a]b\u{1b}[2J", "--add"],
        vec!["api-token", "erp", "--scope", "root\u{7}", "--add"],
    ] {
        let out = mailhost(d)
            .args(&args)
            .assert()
            .code(64)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), first);
    // added: the token on stdout alone, its hash in the file, comments kept
    let out = mailhost(d)
        .args(["api-token", "erp", "--add", "--scope", "send"])
        .assert()
        .success()
        .get_output()
        .clone();
    let token = String::from_utf8(out.stdout).unwrap();
    let token = token.trim_end();
    assert!(token.starts_with("mh_") && !token.contains(char::is_whitespace));
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.starts_with(&first), "{text}");
    assert!(
        text.contains("[api.tokens.erp]") && !text.contains(token),
        "{text}"
    );
    assert!(text.contains(&mailhost::server::auth::hash_token(token)));
    mailhost(d).args(["config", "validate"]).assert().success();
    // printed, not added: TOML whatever the binding's text
    let out = mailhost(d)
        .args(["--json", "api-token", "x", "--user", "o\"dd]"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t: toml::Value = toml::from_str(v["toml"].as_str().unwrap()).unwrap();
    assert_eq!(t["api"]["tokens"]["x"]["users"][0].as_str(), Some("o\"dd]"));
    assert!(v["token"].as_str().unwrap().starts_with("mh_"));
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        text,
        "printing writes nothing"
    );
}

/// How many messages `mailhost outbox list FILTERS` shows in `d`.
fn listed(d: &Path, filters: &[&str]) -> usize {
    let out = mailhost(d)
        .args(["--json", "outbox", "list"])
        .args(filters)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v.as_array()
        .or_else(|| v["messages"].as_array())
        .map_or(0, Vec::len)
}

/// Processes that open one new outbox at the same moment (two `serve`, or
/// `send --queue` from several ERP jobs at once) take turns migrating it:
/// every one of them works, none reports a half-made schema.
#[test]
fn processes_opening_a_new_outbox_at_once_all_succeed() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let children: Vec<_> = (0..6)
            .map(|i| {
                std::process::Command::new(mailhost_bin())
                    .current_dir(d)
                    .env_remove("MAILHOST_CONFIG")
                    .env_remove("MAILHOST_PLUGIN_PATH")
                    .args(["send", "--queue", "--to", &format!("q{i}@example.com")])
                    .args(["--subject", "at once", "--text", "x"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(listed(d, &["--state", "queued"]), 6, "round {round}");
    }
}

/// An outbox on a PostgreSQL server that is not there: the error says why
/// (the server's refusal), not only that a pool timed out.
#[test]
fn an_unreachable_postgres_outbox_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("mailhost.toml"),
        format!(
            "{}\n[outbox]\ndatabase = \"postgres://mailhost:not-shown@127.0.0.1:1/outbox\"\n",
            std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/mailhost.toml")
            )
            .unwrap()
        ),
    )
    .unwrap();
    let out = mailhost(d)
        .args(["outbox", "list"])
        .assert()
        .code(69)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        err.contains("127.0.0.1:1") && !err.contains("not-shown"),
        "{err}"
    );
}

/// `send --queue --idempotency-key`: a script that sends again after a
/// timeout or a crash queues the message once.
#[test]
fn send_queue_with_a_key_queues_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let send = || {
        mailhost(d)
            .args(["--json", "send", "--queue", "--to", "a@example.com"])
            .args(["--subject", "Invoice 4711", "--text", "x"])
            .args(["--idempotency-key", "invoice-4711"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let first: serde_json::Value = serde_json::from_slice(&send()).unwrap();
    let again: serde_json::Value = serde_json::from_slice(&send()).unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(listed(d, &[]), 1);
    // without --queue the key means nothing: refused as a usage error
    mailhost(d)
        .args(["send", "--to", "a@example.com", "--text", "x"])
        .args(["--idempotency-key", "k"])
        .assert()
        .code(64);
}
