#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a failed test

//! The plugin opened in-process through the same guarded glue as the cdylib
//! (`open_in_process`), against the running peers (smtp-sink 2525, Node
//! smtp-server 2526). The full suite runs through the cdylib in
//! tests/tests/smtp.rs.

use std::sync::Arc;

use mailhost::message::{build, MessageRequest};
use mailhost::services::HostEnv;
use mailhost::tokens::TokenBroker;
use mailhost_plugin_api::{open_in_process, ConnState, ErrorClass, Host, StepOutcome};
use mailhost_smtp::Smtp;

fn host() -> Host {
    Host(HostEnv::new(Arc::new(TokenBroker::new(Default::default()))).handle())
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}@example.com", uuid::Uuid::new_v4())
}

fn message(to: &str) -> mailhost_plugin_api::OutgoingMessage {
    build(
        &MessageRequest {
            from: Some("sender@example.com".into()),
            to: vec![to.into()],
            subject: "in-process".into(),
            text: Some("hello\n".into()),
            ..Default::default()
        },
        None,
    )
    .unwrap()
}

#[test]
fn sends_to_smtp_sink_in_process() {
    let t = open_in_process::<Smtp>(
        r#"{"host":"127.0.0.1","port":2525,"security":"none","auth":"none"}"#,
        &host(),
    )
    .unwrap();
    assert_eq!(t.status().state, ConnState::NOT_CONNECTED);
    let r = t.send(&message(&unique("inproc"))).into_result().unwrap();
    assert!(r.server_reply.starts_with("250"), "{}", r.server_reply);
    let d: serde_json::Value = serde_json::from_str(r.details_json.as_str()).unwrap();
    assert_eq!(d["pipelining"], true);
    assert_eq!(t.status().state, ConnState::OPERATING);
    t.close();
    assert_eq!(t.status().state, ConnState::STOPPED);
    let e = t
        .send(&message(&unique("closed")))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::UNAVAILABLE);
}

#[test]
fn check_in_process_with_cram_md5_in_clear() {
    let t = open_in_process::<Smtp>(
        r#"{"host":"127.0.0.1","port":2526,"security":"none","username":"testuser","password":"testpass"}"#,
        &host(),
    )
    .unwrap();
    let report = t.check("{}".into()).into_result().unwrap();
    assert!(report.ok(), "{report:#?}");
    let auth = report
        .steps
        .iter()
        .find(|s| s.name.as_str() == "auth")
        .unwrap();
    assert_eq!(auth.outcome, StepOutcome::OK);
    assert!(auth.server_text.contains("CRAM-MD5"), "{report:#?}");
    let settings = &report.steps[0];
    assert_eq!(
        settings.outcome,
        StepOutcome::WARNING,
        "security = none warns"
    );
}

#[test]
fn bad_settings_are_config_errors() {
    let e = open_in_process::<Smtp>(r#"{"host":"127.0.0.1","min_tls":"1.0"}"#, &host())
        .err()
        .unwrap();
    assert_eq!(e.class(), ErrorClass::CONFIG);
    assert!(e.message().contains("RFC 8996"));
    let e = open_in_process::<Smtp>(r#"{"host":"127.0.0.1","unknown":true}"#, &host())
        .err()
        .unwrap();
    assert_eq!(e.class(), ErrorClass::CONFIG);
}
