//! Hostile and large input through the `mailhost` binary: every case ends in
//! a clear error or a correct result, within a bound, and nothing is written
//! or sent on refusal. (Config and plugin-file cases live in `config.rs` and
//! `loader.rs`; generated inputs in `robustness_props.rs`.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use mailhost_tests::{mailhost_bin, profile_dir};
use predicates::prelude::*;

/// Generous bound against hangs (the quadratic paths took 20–30 s); not a timing test.
const BOUND: Duration = Duration::from_secs(120);

fn mailhost(cwd: &Path) -> Command {
    let mut c = Command::new(mailhost_bin());
    c.current_dir(cwd)
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .args(["--plugins"])
        .arg(profile_dir())
        .timeout(BOUND);
    c
}

fn emls(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("outbox"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A config with a pickup account and purposes with rules.
fn config(dir: &Path) -> PathBuf {
    let p = dir.join("mailhost.toml");
    std::fs::write(
        &p,
        r#"
[policy]
account = "local"

[accounts.local]
plugin = "pickup"
from = "ERP <erp@example.com>"
dir = "outbox"

[purposes.notification]
allow_sender = false
allowed_recipients = ["@example.com"]
"#,
    )
    .unwrap();
    p
}

fn refused_and_nothing_written(dir: &Path, args: &[&str], code: i32, says: &str) {
    let cfg = config(dir);
    mailhost(dir)
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .assert()
        .code(code)
        .stderr(predicate::str::contains(says));
    assert!(emls(dir).is_empty(), "nothing may be written on refusal");
}

fn base<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["send", "--to", "a@example.com", "--text", "hi"];
    v.extend_from_slice(extra);
    v
}

#[test]
fn header_option_cannot_set_structural_headers() {
    for h in [
        "From: boss@evil.test",
        "Cc: x@evil.test",
        "Bcc: x@evil.test",
        "Sender: x@evil.test",
        "Reply-To: x@evil.test",
        "Content-Type: text/html",
        "MIME-Version: 2.0",
        "Message-ID: <x@y>",
    ] {
        let dir = tempfile::tempdir().unwrap();
        refused_and_nothing_written(
            dir.path(),
            &base(&["--header", h]),
            65,
            "is set by mailhost from the message's fields",
        );
    }
}

#[test]
fn purpose_rules_hold_for_eml_and_envelope_from() {
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("m.eml");
    // Another sender in the file: allow_sender = false refuses it.
    std::fs::write(
        &eml,
        "From: boss@evil.test\r\nTo: a@example.com\r\nSubject: x\r\n\r\nbody\r\n",
    )
    .unwrap();
    refused_and_nothing_written(
        dir.path(),
        &[
            "send",
            "--purpose",
            "notification",
            "--eml",
            eml.to_str().unwrap(),
        ],
        69,
        "does not let the request set the sender",
    );
    // The configured sender, but a recipient the purpose does not permit.
    std::fs::write(
        &eml,
        "From: ERP <erp@example.com>\r\nTo: a@example.com\r\nCc: x@evil.test\r\nSubject: x\r\n\r\nbody\r\n",
    )
    .unwrap();
    refused_and_nothing_written(
        dir.path(),
        &[
            "send",
            "--purpose",
            "notification",
            "--eml",
            eml.to_str().unwrap(),
        ],
        69,
        "may not send to x@evil.test",
    );
    // A second From header does not hide the sender.
    std::fs::write(
        &eml,
        "From: ERP <erp@example.com>\r\nFrom: boss@evil.test\r\nTo: a@example.com\r\nSubject: x\r\n\r\nbody\r\n",
    )
    .unwrap();
    refused_and_nothing_written(
        dir.path(),
        &[
            "send",
            "--purpose",
            "notification",
            "--eml",
            eml.to_str().unwrap(),
        ],
        69,
        "purpose",
    );
    refused_and_nothing_written(
        dir.path(),
        &base(&[
            "--purpose",
            "notification",
            "--envelope-from",
            "bounce@evil.test",
        ]),
        69,
        "envelope sender",
    );
    refused_and_nothing_written(
        dir.path(),
        &base(&["--purpose", "notification", "--reply-to", "x@evil.test"]),
        69,
        "Reply-To",
    );
    // The same file with the configured sender goes out.
    std::fs::write(
        &eml,
        "From: ERP <erp@example.com>\r\nTo: a@example.com\r\nSubject: x\r\n\r\nbody\r\n",
    )
    .unwrap();
    let cfg = config(dir.path());
    mailhost(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args([
            "send",
            "--purpose",
            "notification",
            "--eml",
            eml.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert_eq!(emls(dir.path()).len(), 1);
}

#[test]
fn host_only_options_cannot_be_set_by_a_request() {
    for opts in [
        r#"{"mailbox": "ceo@example.com"}"#,
        r#"{"credentials": {"username": "x", "password": "file:/etc/shadow"}}"#,
        r#"{"user": "alice"}"#,
        // The key's name spelled with a JSON escape is the same key.
        r#"{"\u0075ser": "alice"}"#,
        r#"{"save_copy\u005ffor": "office"}"#,
    ] {
        let dir = tempfile::tempdir().unwrap();
        refused_and_nothing_written(
            dir.path(),
            &base(&["--options", opts]),
            65,
            "is set by the host from its configuration",
        );
    }
}

#[test]
fn recipients_must_be_valid_envelope_addresses() {
    let long = format!("{}@example.com", "a".repeat(250));
    for bad in [long.as_str(), "test@iana/icann.org", "a@-x.example", "a@"] {
        let dir = tempfile::tempdir().unwrap();
        refused_and_nothing_written(
            dir.path(),
            &["send", "--to", bad, "--text", "hi"],
            65,
            "is not a valid address",
        );
    }
}

#[test]
fn control_characters_in_headers_are_refused_and_nul_in_a_body_is_encoded() {
    for subject in ["a\u{1b}[31mred", "bell\u{7}", "del\u{7f}", "vt\u{b}"] {
        let dir = tempfile::tempdir().unwrap();
        refused_and_nothing_written(
            dir.path(),
            &base(&["--subject", subject]),
            65,
            "control character",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "before\0after\n").unwrap();
    let cfg = config(dir.path());
    mailhost(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["send", "--to", "a@example.com", "--text-file"])
        .arg(&body)
        .assert()
        .success();
    let raw = std::fs::read(&emls(dir.path())[0]).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("Content-Transfer-Encoding: base64"), "{text}");
    assert!(!raw.contains(&0), "no NUL byte on the wire");
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(parsed.body_text(0).unwrap(), "before\0after\r\n");
}

fn max_line(raw: &[u8]) -> usize {
    raw.split(|b| *b == b'\n')
        .map(|l| l.len())
        .max()
        .unwrap_or(0)
}

#[test]
fn long_headers_are_folded_and_keep_their_text() {
    let dir = tempfile::tempdir().unwrap();
    let subject = "x".repeat(100_000);
    let to: Vec<String> = (0..1000).map(|i| format!("user{i}@example.com")).collect();
    let cfg = config(dir.path());
    let mut cmd = mailhost(dir.path());
    cmd.arg("--config")
        .arg(&cfg)
        .args(["send", "--subject", &subject, "--text", "hi"]);
    for t in &to {
        cmd.args(["--to", t]);
    }
    cmd.assert().success();
    let raw = std::fs::read(&emls(dir.path())[0]).unwrap();
    assert!(max_line(&raw) <= 1000, "a line of {} bytes", max_line(&raw));
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(parsed.subject().unwrap(), subject);
    assert_eq!(parsed.to().unwrap().iter().count(), 1000);
}

#[test]
fn ten_thousand_recipients_and_a_large_lf_body_are_linear() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.txt");
    // 20 MB of LF-terminated lines (quadratic CRLF conversion took 22 s for 10 MB).
    let line = "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    std::fs::write(&body, line.repeat(20 * 1024 * 1024 / line.len())).unwrap();
    let cfg = config(dir.path());
    let mut cmd = mailhost(dir.path());
    cmd.arg("--config")
        .arg(&cfg)
        .args(["send", "--text-file"])
        .arg(&body);
    for i in 0..10_000 {
        cmd.args(["--bcc", &format!("r{i}@example.com")]);
    }
    cmd.assert().success();
    let raw = std::fs::read(&emls(dir.path())[0]).unwrap();
    assert!(max_line(&raw) <= 1000);
    // The whole body arrives with CRLF line endings.
    assert!(!raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
}

#[test]
fn unbounded_inputs_are_refused_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mailhost.toml");
    std::fs::write(
        &p,
        "[policy]\naccount = \"local\"\n[accounts.local]\nplugin = \"pickup\"\nfrom = \"a@example.com\"\ndir = \"outbox\"\n[limits]\nmax_message_bytes = 100000\n",
    )
    .unwrap();
    for args in [
        vec!["send", "--to", "a@example.com", "--attach", "/dev/zero"],
        vec!["send", "--to", "a@example.com", "--text-file", "/dev/zero"],
        vec!["send", "--to", "a@example.com", "--html-file", "/dev/zero"],
        vec!["send", "--eml", "/dev/zero"],
    ] {
        mailhost(dir.path())
            .arg("--config")
            .arg(&p)
            .args(&args)
            .assert()
            .code(65)
            .stderr(predicate::str::contains("larger than 100000 bytes"));
    }
    // Standard input too.
    mailhost(dir.path())
        .arg("--config")
        .arg(&p)
        .args(["send", "--eml", "-"])
        .write_stdin(vec![b'a'; 200_000])
        .assert()
        .code(65)
        .stderr(predicate::str::contains("larger than 100000 bytes"));
    assert!(emls(dir.path()).is_empty());
}

#[test]
fn eml_with_bad_header_lines_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("m.eml");
    let long = format!(
        "From: a@example.com\r\nTo: b@example.com\r\nX-Long: {}\r\n\r\nbody\r\n",
        "y".repeat(2000)
    );
    std::fs::write(&eml, long).unwrap();
    refused_and_nothing_written(
        dir.path(),
        &["send", "--eml", eml.to_str().unwrap()],
        65,
        "RFC 5322 allows 998",
    );
    std::fs::write(
        &eml,
        b"From: a@example.com\r\nTo: b@example.com\r\nX-Nul: a\0b\r\n\r\nbody\r\n",
    )
    .unwrap();
    refused_and_nothing_written(
        dir.path(),
        &["send", "--eml", eml.to_str().unwrap()],
        65,
        "NUL",
    );
}

#[test]
fn a_closed_stdout_does_not_turn_success_into_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut child = std::process::Command::new(mailhost_bin())
        .current_dir(dir.path())
        .env_remove("MAILHOST_CONFIG")
        .arg("--plugins")
        .arg(profile_dir())
        .arg("--config")
        .arg(&cfg)
        .args(["send", "--to", "a@example.com", "--text", "hi"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the result is printed.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert_eq!(emls(dir.path()).len(), 1);
}

#[test]
fn json_errors_are_json_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let out = mailhost(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "send", "--to", "not an address", "--text", "hi"])
        .assert()
        .code(65)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], "invalid-message");
    assert_eq!(v["error"]["exit_code"], 65);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not a valid address"));
    // A usage error too.
    let out = mailhost(dir.path())
        .args(["--json", "send", "--no-such-flag"])
        .assert()
        .code(64)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], "usage");
    // A broken config.
    std::fs::write(&cfg, "[policy\n").unwrap();
    let out = mailhost(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["--json", "status"])
        .assert()
        .code(78)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], "config");
    let _ = std::io::stdout().flush();
}

/// `send-batch` with one hostile row among good ones: exit 65 (69 when the
/// bad rows are policy refusals), the error names the line, and nothing is queued or written.
#[test]
fn hostile_batch_rows_are_refused_by_line_and_nothing_is_queued() {
    let good = r#"{"to": "a@example.com", "name": "Ann"}"#;
    let huge = format!(
        r#"{{"to": "a@example.com", "name": "{}"}}"#,
        "x".repeat(100_000)
    );
    // (file, bytes, extra arguments, exit code, what stderr says)
    type Case<'a> = (&'a str, Vec<u8>, &'a [&'a str], i32, &'a str);
    let cases: Vec<Case> = vec![
        (
            "rows.jsonl",
            format!(
                "{good}\n{{\"to\": \"b@example.com\\r\\nBcc: x@evil.test\", \"name\": \"B\"}}\n"
            )
            .into_bytes(),
            &[],
            65,
            "line 2: field `to` contains a line break",
        ),
        (
            "rows.jsonl",
            format!("{good}\n{{\"to\": \"b@example.com\", \"name\": \"B\\u0000\"}}\n").into_bytes(),
            &[],
            65,
            "line 2: field `name` contains a NUL",
        ),
        (
            "rows.jsonl",
            format!("{good}\n{huge}\n").into_bytes(),
            &[],
            65,
            "line 2: the row is larger than 65536 bytes ([limits] max_batch_row_bytes)",
        ),
        (
            "rows.jsonl",
            [
                format!("{good}\n").into_bytes(),
                b"{\"to\": \"b@example.com\", \"name\": \"\xff\"}\n".to_vec(),
            ]
            .concat(),
            &[],
            65,
            "rows.jsonl: line 2 is not UTF-8",
        ),
        (
            "rows.jsonl",
            format!(
                "{good}\n{{\"to\": \"b@example.com\", \"name\": \"B\\r\\nBcc: x@evil.test\"}}\n"
            )
            .into_bytes(),
            &[],
            65,
            "line 2: the rendered subject contains a line break",
        ),
        (
            "rows.csv",
            b"to,name\na@example.com,Ann\nb@example.com\n".to_vec(),
            &[],
            65,
            "line 3: the row has 1 field(s) but the header row has 2",
        ),
        (
            "rows.csv",
            b"to,name\na@example.com,Ann\nb@example.com,B\xffb\n".to_vec(),
            &[],
            65,
            "rows.csv: line 3 is not UTF-8",
        ),
        // the purpose's rules hold on every built message
        (
            "rows.jsonl",
            format!("{good}\n{{\"to\": \"x@evil.test\", \"name\": \"X\"}}\n").into_bytes(),
            &["--purpose", "notification"],
            69,
            "line 2: refused by purpose recipients",
        ),
        (
            "rows.jsonl",
            "{\"to\": \"x@evil.test\", \"name\": \"X\"}\n"
                .as_bytes()
                .to_vec(),
            &["--purpose", "notification"],
            69,
            "line 1: refused by purpose recipients",
        ),
    ];
    for (name, bytes, extra, code, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        std::fs::write(dir.path().join(name), bytes).unwrap();
        std::fs::write(dir.path().join("t.txt"), "Hello {{ name }}").unwrap();
        mailhost(dir.path())
            .arg("--config")
            .arg(&cfg)
            .args([
                "send-batch",
                name,
                "--subject",
                "Hi {{ name }}",
                "--text-file",
                "t.txt",
            ])
            .args(extra)
            .assert()
            .code(code)
            .stderr(predicate::str::contains(says))
            .stderr(predicate::str::contains("nothing was queued"));
        assert!(
            emls(dir.path()).is_empty(),
            "{says}: nothing may be written"
        );
        mailhost(dir.path())
            .arg("--config")
            .arg(&cfg)
            .args(["--json", "outbox", "batches"])
            .assert()
            .success()
            .stdout(predicate::str::diff("[]\n"));
    }
}

/// A batch queued with `--no-wait` is sent by `--resume`; Ctrl-C leaves the
/// rest queued and says how to go on.
#[test]
fn a_queued_batch_is_resumed_and_ctrl_c_leaves_the_rest_queued() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    std::fs::write(
        dir.path().join("rows.csv"),
        "to,name\na@example.com,Ann\nb@example.com,Bob\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("t.txt"), "Hello {{ name }}").unwrap();
    let args = [
        "send-batch",
        "rows.csv",
        "--subject",
        "Hi",
        "--text-file",
        "t.txt",
    ];
    let out = mailhost(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .args(["--rate", "0", "--no-wait"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        emls(dir.path()).is_empty(),
        "--no-wait sends nothing itself"
    );
    mailhost(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args(["send-batch", "--resume", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 of 2 sent"));
    assert_eq!(emls(dir.path()).len(), 2);

    // One a minute: the first goes, then Ctrl-C.
    let child = std::process::Command::new(mailhost_bin())
        .current_dir(dir.path())
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .arg("--plugins")
        .arg(profile_dir())
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .args(["--rate", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + BOUND;
    while emls(dir.path()).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first row was not sent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(75));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 message(s) of batch"), "{err}");
    assert!(err.contains("after Ctrl-C"), "{err}");
    assert!(err.contains("mailhost send-batch --resume"), "{err}");
    assert_eq!(emls(dir.path()).len(), 3);
}

/// The outbox commands' hostile input: a huge or non-id id, a time with
/// control characters, a filter that looks like SQL. Each is refused (or
/// matches nothing) on one bounded line, and the queue is unchanged.
#[test]
fn hostile_outbox_ids_filters_and_times_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let run = |args: &[&str]| {
        let out = mailhost(dir.path())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let queued = run(&[
        "--json",
        "send",
        "--queue",
        "--to",
        "a@example.com",
        "--text",
        "hi",
    ]);
    assert_eq!(queued.0, 0, "{queued:?}");
    let huge = "7".repeat(100_000);
    let sql = "x' OR '1'='1";
    for (args, code, says) in [
        (
            vec!["outbox", "show", huge.as_str()],
            65,
            "is not a message id",
        ),
        (
            vec!["outbox", "retry", "\u{1b}[2J\r\nid"],
            65,
            "is not a message id",
        ),
        (vec!["outbox", "cancel", sql], 65, "is not a message id"),
        (
            vec!["outbox", "list", "--since", "2026-11-30\u{7}\r\nT"],
            64,
            "is not a time",
        ),
        (
            vec!["outbox", "list", "--until", huge.as_str()],
            64,
            "--until",
        ),
    ] {
        let (c, _, err) = run(&args);
        assert_eq!(c, code, "{args:.40?}: {err:.300}");
        assert!(err.contains(says), "{err:.300}");
        assert!(
            err.len() < 600,
            "the error echoes too much: {} bytes",
            err.len()
        );
        assert!(!err.contains('\u{1b}') && !err.contains('\0'), "{err:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    }
    // SQL-looking filters are values: they match nothing
    for args in [
        vec!["outbox", "cancel", "--all", "--account", sql],
        vec!["outbox", "cancel", "--all", "--tenant", sql],
    ] {
        let (c, out, err) = run(&args);
        assert_eq!((c, out.trim()), (0, "0 message(s) cancelled"), "{err}");
    }
    let (c, out, _) = run(&["--json", "outbox", "list", "--state", "queued"]);
    assert_eq!(c, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "the queue changed: {list}"
    );
}

/// A user, tenant, purpose or mode is a name: bounded text with no control
/// character. A hostile one is refused before anything is written, and no
/// error shows it raw (an ESC would drive the operator's terminal).
#[test]
fn hostile_names_are_refused_and_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = "u".repeat(201);
    for (flag, value) in [
        ("--user", "alice\u{1b}[2J"),
        ("--tenant", "acme\u{7}"),
        ("--purpose", long.as_str()),
        ("--mode", "pickup\u{1b}]0;owned\u{7}"),
    ] {
        refused_and_nothing_written(d, &base(&[flag, value]), 65, &flag[2..]);
    }
    let cfg = config(d);
    std::fs::write(d.join("rows.jsonl"), "{\"to\": \"a@example.com\"}\n").unwrap();
    for args in [
        vec!["policy", "explain", "--tenant", "t\u{1b}[2J"],
        vec!["policy", "explain", "--to", "a@example.com\u{1b}"],
        vec!["check", "no\u{1b}[2Jsuch"],
        vec![
            "send-batch",
            "rows.jsonl",
            "--subject",
            "x",
            "--text",
            "y",
            "--user",
            "a\u{1b}[2J",
        ],
    ] {
        let out = mailhost(d)
            .arg("--config")
            .arg(&cfg)
            .args(&args)
            .assert()
            .failure()
            .get_output()
            .clone();
        let all = [out.stdout, out.stderr].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(!text.contains('\u{1b}'), "{args:?}: {text}");
        assert!(
            text.contains("\\u{1b}") || text.contains("U+001B"),
            "{args:?} names it, escaped: {text}"
        );
    }
}

/// A recipient typed as a list is several recipients for the policy too: a
/// purpose's allowed recipients hold for each of them.
#[test]
fn a_typed_recipient_list_meets_the_purpose_rules_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    refused_and_nothing_written(
        dir.path(),
        &[
            "send",
            "--purpose",
            "notification",
            "--to",
            "a@example.com; evil@elsewhere.org",
            "--text",
            "hi",
        ],
        69,
        "evil@elsewhere.org",
    );
    let cfg = config(dir.path());
    mailhost(dir.path())
        .arg("--config")
        .arg(&cfg)
        .args([
            "send",
            "--purpose",
            "notification",
            "--to",
            "a@example.com; b@example.com",
        ])
        .args(["--text", "hi"])
        .assert()
        .success();
    let eml = std::fs::read_to_string(&emls(dir.path())[0]).unwrap();
    assert!(eml.contains("To: a@example.com, b@example.com"), "{eml}");
}
