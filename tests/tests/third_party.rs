//! The policy decides from the manifests' modes and capabilities, never from
//! plugin names: real loaded plugins whose names are not the built-in ones.
//!
//! * `relay` (fixture) serves the `smtp` mode with `SEND` only and needs an
//!   account: it is an smtp account for `preferred_sender` and `send_mode =
//!   "smtp"`, and is never part of a compose chain;
//! * `desktop` (fixture) serves `outlook`/`mapi-*` with `SEND | COMPOSE` and no
//!   required settings: a desktop client, used with no account;
//! * `graph` (the real plugin) serves `graph` and `m365-draft`.

use std::path::Path;

use mailhost::config::{validate, Source};
use mailhost::engine::Engine;
use mailhost::loader::{load_dirs, PluginSet};
use mailhost::message::{build, MessageRequest};
use mailhost::policy::{Action, Decision, Request};
use mailhost_tests::{copy_as, plugin_file_name, plugin_path, profile_dir};

fn fixture(name: &str) -> std::path::PathBuf {
    profile_dir().join(format!(
        "{}fixture_{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

fn plugins(dir: &Path) -> PluginSet {
    copy_as(&plugin_path("graph"), dir, &plugin_file_name("graph"));
    copy_as(&fixture("relay"), dir, &plugin_file_name("relay"));
    copy_as(&fixture("desktop"), dir, &plugin_file_name("desktop"));
    let set = load_dirs(&[dir.to_path_buf()]);
    assert!(set.failures.is_empty(), "{:?}", set.failures);
    set
}

fn engine(dir: &Path, set: &PluginSet, policy: &str) -> Engine {
    let out = dir.join("relay-out");
    std::fs::create_dir_all(&out).unwrap();
    let text = format!(
        r#"
[policy]
{policy}
send_autodetect = ["account", "outlook"]
compose_autodetect = ["outlook", "builtin"]

[oauth.m365]
tenant = "test-tenant"
client_id = "test-client"
client_secret = "env:MAILHOST_THIRD_PARTY_UNUSED_SECRET"

[accounts.m365]
plugin = "graph"
oauth = "m365"
mailbox = "testuser@example.com"

[accounts.relay1]
plugin = "relay"
from = "erp@example.com"
dir = "{}"

[users.erin]
compose_mode = "smtp"
"#,
        out.display()
    );
    let settings = validate(&Source::from_text("third-party.toml", dir, &text), set)
        .unwrap_or_else(|e| panic!("{e}"));
    Engine::new(settings, set.clone())
}

fn labels(d: &Decision) -> Vec<String> {
    assert!(d.refused.is_none(), "{}", d.render());
    d.chain.iter().map(|c| c.label.clone()).collect()
}

#[test]
fn a_plugin_serving_the_smtp_mode_is_an_smtp_account_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let set = plugins(dir.path());

    // preferred_sender = "smtp" picks the account whose plugin serves `smtp`.
    let e = engine(dir.path(), &set, r#"preferred_sender = "smtp""#);
    let d = e.decide(Action::Send, &Request::default());
    assert_eq!(labels(&d), ["relay1", "mode:outlook"], "{}", d.render());
    let text = d.render();
    assert!(
        text.contains("graph account `m365` and smtp account `relay1` exist"),
        "{text}"
    );
    assert!(text.contains("chain: relay1 (relay, smtp)"), "{text}");

    // And the send really goes through the third-party plugin.
    let msg = build(
        &MessageRequest {
            to: vec!["to@example.com".into()],
            subject: "through a third-party smtp-mode plugin".into(),
            text: Some("x".into()),
            ..Default::default()
        },
        Some("erp@example.com"),
    )
    .unwrap();
    let delivery = e.send(&d, None, &msg).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(delivery.candidate.label, "relay1");
    let written = std::fs::read_to_string(dir.path().join("relay-out").join("0.eml")).unwrap();
    assert!(
        written.contains("Subject: through a third-party smtp-mode plugin"),
        "{written}"
    );

    // preferred_sender = "graph" picks the account whose plugin serves `graph`.
    let e = engine(dir.path(), &set, r#"preferred_sender = "graph""#);
    let d = e.decide(Action::Send, &Request::default());
    assert_eq!(labels(&d), ["m365", "mode:outlook"], "{}", d.render());

    // send_mode = "smtp" expands to the accounts serving it, the relay's included.
    let e = engine(dir.path(), &set, "account = \"m365\"\nsend_mode = \"smtp\"");
    let d = e.decide(Action::Send, &Request::default());
    assert_eq!(labels(&d), ["relay1", "m365"], "{}", d.render());
}

#[test]
fn compose_uses_only_plugins_with_the_compose_capability() {
    let dir = tempfile::tempdir().unwrap();
    let set = plugins(dir.path());
    let e = engine(dir.path(), &set, "account = \"m365\"");

    // erin's compose mode `smtp` is served only by the relay, which cannot
    // compose: the trace says so and her mode falls back to the system mode,
    // where the desktop stand-in (no account needed) serves `outlook`.
    let d = e.decide(
        Action::Compose,
        &Request {
            user: Some("erin".into()),
            ..Request::default()
        },
    );
    assert_eq!(labels(&d), ["mode:outlook", "builtin"], "{}", d.render());
    let text = d.render();
    assert!(
        text.contains("`relay1`: plugin `relay` cannot compose (its capabilities: send, check)"),
        "{text}"
    );
    assert!(text.contains("plugin `desktop` probe: available"), "{text}");

    // m365-draft: the graph plugin composes, in the mode asked for.
    let d = e.decide(
        Action::Compose,
        &Request {
            mode: Some("m365-draft".into()),
            ..Request::default()
        },
    );
    assert_eq!(labels(&d), ["m365"], "{}", d.render());
    assert_eq!(d.chain[0].mode, "m365-draft");
}
