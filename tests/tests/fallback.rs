//! Failover through real loaded plugins: the error class decides what the
//! engine does next (DESIGN §2), and every attempt is recorded.

use std::path::Path;

use mailhost::config::{validate, Source};
use mailhost::engine::Engine;
use mailhost::loader::{load_dirs, PluginSet};
use mailhost::message::{build, MessageRequest};
use mailhost::policy::{Action, Candidate, Request};
use mailhost_tests::{copy_as, plugin_file_name, plugin_path, profile_dir};

fn plugins(dir: &Path) -> PluginSet {
    copy_as(&plugin_path("pickup"), dir, &plugin_file_name("pickup"));
    let flaky = profile_dir().join(format!(
        "{}fixture_flaky{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    copy_as(&flaky, dir, &plugin_file_name("flaky"));
    let set = load_dirs(&[dir.to_path_buf()]);
    assert!(set.failures.is_empty(), "{:?}", set.failures);
    set
}

/// Accounts `first` and `second` are flaky ones (tenant account, then the mode's),
/// `archive` is pickup and the global account.
fn engine(dir: &Path, first: &str, second: &str) -> Engine {
    let out = dir.join("out");
    let text = format!(
        r#"
[policy]
account = "archive"
send_mode = "flaky"
max_attempts = 3
initial_backoff_ms = 1
max_backoff_ms = 50

[accounts.first]
plugin = "flaky"
{first}

[accounts.second]
plugin = "flaky"
{second}

[accounts.archive]
plugin = "pickup"
from = "erp@example.com"
dir = "{}"
"#,
        out.display()
    );
    let src = Source::from_text("fallback.toml", dir, &text);
    // Load once: copying over a library that is already mapped would corrupt it.
    let set = plugins(dir);
    let settings = validate(&src, &set).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(settings, set)
}

fn send(e: &Engine) -> Result<mailhost::engine::Delivery, mailhost::engine::Failure> {
    let d = e.decide(Action::Send, &Request::default());
    assert!(d.refused.is_none(), "{}", d.render());
    let msg = build(
        &MessageRequest {
            to: vec!["to@example.com".into()],
            subject: "failover".into(),
            text: Some("x".into()),
            ..Default::default()
        },
        Some("erp@example.com"),
    )
    .unwrap();
    e.send(&d, None, &msg)
}

fn outcomes(a: &[mailhost::engine::Attempt]) -> Vec<String> {
    a.iter()
        .map(|a| format!("{}#{}:{}", a.candidate, a.number, a.outcome))
        .collect()
}

#[test]
fn chain_is_mode_accounts_then_system_account() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), "fail_with = \"none\"", "fail_with = \"none\"");
    let d = e.decide(Action::Send, &Request::default());
    let labels: Vec<&str> = d.chain.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["first", "second", "archive"], "{}", d.render());
}

#[test]
fn transient_is_retried_then_next_account() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(
        dir.path(),
        "fail_with = \"transient\"",
        "fail_with = \"auth\"",
    );
    let d = send(&e).expect("delivered by the archive");
    assert_eq!(d.candidate.label, "archive");
    assert_eq!(
        outcomes(&d.attempts),
        [
            "first#1:transient",
            "first#2:transient",
            "first#3:transient",
            "second#1:auth",
            "archive#1:ok"
        ]
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        1
    );
}

#[test]
fn transient_then_success_on_the_same_account() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(
        dir.path(),
        "fail_with = \"transient\"\nfail_times = 1\nretry_after_ms = 20",
        "fail_with = \"none\"",
    );
    let d = send(&e).expect("delivered");
    assert_eq!(d.candidate.label, "first");
    assert_eq!(outcomes(&d.attempts), ["first#1:transient", "first#2:ok"]);
    assert_eq!(d.server_reply, "250 accepted on call 2");
}

#[test]
fn unavailable_unsupported_config_move_on_at_once() {
    for class in ["unavailable", "unsupported", "config", "auth"] {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(
            dir.path(),
            &format!("fail_with = \"{class}\""),
            "fail_with = \"none\"",
        );
        let d = send(&e).expect("delivered by second");
        assert_eq!(
            outcomes(&d.attempts),
            [format!("first#1:{class}"), "second#1:ok".to_string()]
        );
    }
}

#[test]
fn permanent_stops_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(
        dir.path(),
        "fail_with = \"permanent\"",
        "fail_with = \"none\"",
    );
    let f = send(&e).expect_err("permanent stops");
    assert_eq!(f.class, mailhost::engine::FailureClass::Permanent);
    assert_eq!(outcomes(&f.attempts), ["first#1:permanent"]);
    assert!(f.message.contains("flaky failure 1"), "{f}");
    assert!(
        !dir.path().join("out").exists()
            || std::fs::read_dir(dir.path().join("out")).unwrap().count() == 0
    );
}

#[test]
fn a_panicking_plugin_fails_the_attempt_and_the_host_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(
        dir.path(),
        "fail_with = \"panic\"\nfail_times = 1",
        "fail_with = \"none\"",
    );
    let f = send(&e).expect_err("a panic is permanent");
    assert_eq!(f.class, mailhost::engine::FailureClass::Permanent);
    assert!(
        f.message
            .contains("plugin panicked in send: flaky was told to panic"),
        "{f}"
    );
    // The host is still here and the same transport works on the next message.
    let d = send(&e).expect("second message goes through");
    assert_eq!(d.candidate.label, "first");
}

#[test]
fn all_failing_reports_every_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(
        dir.path(),
        "fail_with = \"unavailable\"",
        "fail_with = \"transient\"",
    );
    // Make the archive fail too: its directory is a file.
    std::fs::write(dir.path().join("out"), b"not a directory").unwrap();
    let f = send(&e).expect_err("nothing works");
    let o = outcomes(&f.attempts);
    assert_eq!(
        &o[..4],
        [
            "first#1:unavailable",
            "second#1:transient",
            "second#2:transient",
            "second#3:transient"
        ]
    );
    assert_eq!(o.len(), 5, "{o:?}");
    assert!(o[4].starts_with("archive#1:"), "{o:?}");
}

#[test]
fn a_retry_after_longer_than_max_backoff_moves_on_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    // max_backoff_ms is 50 in this config; the server asks for an hour.
    let e = engine(
        dir.path(),
        "fail_with = \"transient\"\nretry_after_ms = 3600000",
        "fail_with = \"none\"",
    );
    let d = send(&e).expect("delivered by second");
    assert_eq!(outcomes(&d.attempts), ["first#1:transient", "second#1:ok"]);
    assert!(
        d.attempts[0].message.contains("retry after 3600000 ms"),
        "{:?}",
        d.attempts[0]
    );
}

#[test]
fn compose_falls_back_to_the_builtin_editor() {
    let dir = tempfile::tempdir().unwrap();
    let set = plugins(dir.path());
    let text = "[policy]\ncompose_autodetect = [\"flaky\", \"builtin\"]\n\n[accounts.first]\nplugin = \"flaky\"\nfail_with = \"none\"\n";
    let settings = validate(&Source::from_text("c.toml", dir.path(), text), &set)
        .unwrap_or_else(|e| panic!("{e}"));
    let e = Engine::new(settings, set);
    // The policy reads flaky's manifest (send only) and leaves it out of the chain.
    let d = e.decide(Action::Compose, &Request::default());
    assert_eq!(
        d.chain.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(),
        ["builtin"],
        "{}",
        d.render()
    );
    assert!(
        d.render()
            .contains("`first`: plugin `flaky` cannot compose (its capabilities: send)"),
        "{}",
        d.render()
    );
    // A chain that holds it anyway (a decision made before its manifest
    // changed): the engine still moves on at once when compose is unsupported.
    let mut d = d;
    d.chain
        .insert(0, Candidate::for_account(&e.settings().accounts["first"]));
    let msg = build(
        &MessageRequest {
            to: vec!["to@example.com".into()],
            text: Some("x".into()),
            ..Default::default()
        },
        Some("erp@example.com"),
    )
    .unwrap();
    // flaky cannot compose (Unsupported): the app's own editor takes over, and the attempt is reported.
    let c = e.compose(&d, None, &msg).expect("builtin");
    assert_eq!(c.kind, "builtin");
    assert_eq!(outcomes(&c.attempts), ["first#1:unsupported"]);
    assert!(
        c.attempts[0].message.contains("cannot compose"),
        "{:?}",
        c.attempts
    );
}

#[test]
fn a_message_is_prepared_without_blocking_only_while_the_probes_are_fresh() {
    use mailhost::message::AttachmentRequest;
    use mailhost::submit::{Content, Submission};
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), "fail_with = \"none\"", "fail_with = \"none\"");
    let sub = Submission {
        action: Action::Send,
        user: None,
        tenant: None,
        purpose: None,
        mode: None,
        content: Content::Fields(Box::new(MessageRequest {
            to: vec!["to@example.com".into()],
            from: Some("erp@example.com".into()),
            subject: "inline".into(),
            text: Some("x".into()),
            ..Default::default()
        })),
        idempotency_key: None,
        options: Default::default(),
    };
    // Nothing was probed yet: the policy would run the probes and wait for them.
    assert!(e.prepare_without_blocking(&sub).is_none());
    let blocking = e.prepare(&sub).unwrap();
    // Now they are cached: the same decision, on this thread.
    let here = e
        .prepare_without_blocking(&sub)
        .expect("the probes are fresh")
        .unwrap();
    assert_eq!(here.decision.render(), blocking.decision.render());
    assert_eq!(here.message.envelope.to, blocking.message.envelope.to);
    // An attachment read from a file is I/O: not on this thread.
    let mut with_file = sub.clone();
    if let Content::Fields(r) = &mut with_file.content {
        r.attachments.push(AttachmentRequest {
            path: Some(dir.path().join("fallback.toml")),
            ..Default::default()
        });
    }
    assert!(e.prepare_without_blocking(&with_file).is_none());
    assert_eq!(sub.content_len(), 1);
}
