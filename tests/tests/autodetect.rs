//! Autodetect routing through real loaded plugins: a desktop-client stand-in
//! whose probe the test sets (it tests where a message goes, not a desktop
//! client), the pickup plugin, and the SMTP plugin against the Node
//! smtp-server peer for per-user credentials. The stand-in reads its probe
//! answer from a per-process file, so the cases run in sequence in one test.

use std::path::Path;

use mailhost::config::{validate, Source};
use mailhost::engine::Engine;
use mailhost::loader::{load_dirs, PluginSet};
use mailhost::message::{build, MessageRequest};
use mailhost::policy::{Action, Request};
use mailhost_tests::{copy_as, plugin_file_name, plugin_path, profile_dir, smtp};

fn plugins(dir: &Path) -> PluginSet {
    for p in ["pickup", "smtp"] {
        copy_as(&plugin_path(p), dir, &plugin_file_name(p));
    }
    let desktop = profile_dir().join(format!(
        "{}fixture_desktop{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    copy_as(&desktop, dir, &plugin_file_name("desktop"));
    let set = load_dirs(&[dir.to_path_buf()]);
    assert!(set.failures.is_empty(), "{:?}", set.failures);
    set
}

const CONFIG: &str = r#"
[policy]
account = "office"
probe_ttl_ms = 0
probe_timeout_ms = 300
compose_autodetect = ["outlook", "mapi-full", "mapi-simple", "builtin"]

[accounts.office]
plugin = "smtp"
from = "erp@example.com"
host = "127.0.0.1"
port = 2526
security = "none"
auth = "optional"
allow_plaintext_auth = true

[users.alice]
send_mode = "outlook"

[users.dave.accounts.office]
username = "testuser"
password = "file:dave-password"
"#;

/// What the stand-in's probe answers from now on.
fn set_probe(answer: &str) {
    let file = std::env::temp_dir().join(format!(
        "mailhost-fixture-desktop-probe-{}",
        std::process::id()
    ));
    std::fs::write(file, answer).unwrap();
}

fn labels(e: &Engine, action: Action, user: Option<&str>) -> Vec<String> {
    let d = e.decide(
        action,
        &Request {
            user: user.map(String::from),
            ..Request::default()
        },
    );
    d.chain.iter().map(|c| c.label.clone()).collect()
}

#[test]
fn autodetect_routes_by_the_probes_to_a_stand_in_desktop_client_and_per_user_credentials_reach_the_server(
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dave-password"), "testpass").unwrap();
    let set = plugins(dir.path());
    let settings = validate(
        &Source::from_text("autodetect.toml", dir.path(), CONFIG),
        &set,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = Engine::new(settings, set);

    set_probe("available");
    assert_eq!(
        labels(&e, Action::Compose, None),
        [
            "mode:outlook",
            "mode:mapi-full",
            "mode:mapi-simple",
            "builtin"
        ]
    );
    assert_eq!(
        labels(&e, Action::Send, None),
        [
            "office",
            "mode:outlook",
            "mode:mapi-full",
            "mode:mapi-simple"
        ]
    );
    assert_eq!(
        labels(&e, Action::Send, Some("alice")),
        ["mode:outlook", "office"]
    );

    set_probe("available:simple");
    assert_eq!(
        labels(&e, Action::Compose, None),
        ["mode:mapi-simple", "builtin"]
    );

    set_probe("unavailable:Outlook is not installed");
    assert_eq!(labels(&e, Action::Compose, None), ["builtin"]);
    let d = e.decide(
        Action::Send,
        &Request {
            user: Some("alice".into()),
            ..Request::default()
        },
    );
    assert_eq!(
        d.chain.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(),
        ["office"]
    );
    assert!(
        d.render()
            .contains("plugin `desktop`: Outlook is not installed"),
        "{}",
        d.render()
    );

    // A probe that hangs does not hold the decision: it counts as unavailable.
    set_probe("sleep:3000");
    let d = e.decide(Action::Compose, &Request::default());
    assert_eq!(
        d.chain.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(),
        ["builtin"]
    );
    assert!(
        d.render().contains("probe did not answer within 300 ms"),
        "{}",
        d.render()
    );

    // Compose is routed to the stand-in, loaded from disk (its answer is canned).
    set_probe("available");
    let msg = build(
        &MessageRequest {
            to: vec!["x@example.com".into()],
            text: Some("t".into()),
            ..Default::default()
        },
        Some("erp@example.com"),
    )
    .unwrap();
    let d = e.decide(Action::Compose, &Request::default());
    let c = e.compose(&d, None, &msg).expect("composed");
    assert_eq!(
        (c.candidate.label.as_str(), c.kind.as_str()),
        ("mode:outlook", "shown-in-client")
    );

    // Per-user credentials: dave's own login on the office account; others anonymous.
    let send = |user: Option<&str>| {
        let to = format!("{}@example.com", smtp::unique("per-user"));
        let msg = build(
            &MessageRequest {
                to: vec![to.clone()],
                subject: "per user".into(),
                text: Some("t".into()),
                ..Default::default()
            },
            Some("erp@example.com"),
        )
        .unwrap();
        let d = e.decide(
            Action::Send,
            &Request {
                user: user.map(String::from),
                mode: Some("office".into()),
                ..Request::default()
            },
        );
        let r = e.send(&d, user, &msg).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(r.candidate.label, "office");
        smtp::saved_for(&to).expect("saved by smtp-server").1
    };
    assert_eq!(send(Some("dave"))["user"], "testuser");
    assert_eq!(send(None)["user"], serde_json::Value::Null);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!(
        "mailhost-fixture-desktop-probe-{}",
        std::process::id()
    )));
}
