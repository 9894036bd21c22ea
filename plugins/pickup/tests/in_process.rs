//! The pickup plugin through the rlib, with the same guarded ABI glue as the cdylib.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use mailhost_pickup::Pickup;
use mailhost_plugin_api::abi_stable::std_types::{RResult, RStr, RString};
use mailhost_plugin_api::{
    open_in_process, Envelope, ErrorClass, Host, HostServices, LogLevel, OutgoingMessage,
    PluginError, StepOutcome, TokenRequest,
};

#[derive(Clone)]
struct TestHost;

impl HostServices for TestHost {
    fn log(&self, _level: LogLevel, _target: RStr<'_>, _message: RStr<'_>) {}
    fn secret(&self, r: RStr<'_>) -> RResult<RString, PluginError> {
        RResult::ROk(r.into())
    }
    fn token(&self, _r: &TokenRequest) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unsupported("no tokens here"))
    }
    fn extension(&self, _n: RStr<'_>, _i: RStr<'_>) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unsupported("none"))
    }
}

fn message(id: &str) -> OutgoingMessage {
    let mime = format!("From: a@example.com\r\nTo: b@example.com\r\nBcc: c@example.com\r\nMessage-ID: <{id}>\r\nSubject: t\r\n\r\nbody\r\n");
    OutgoingMessage {
        envelope: Envelope {
            from: Some(RString::from("a@example.com")).into(),
            to: vec!["b@example.com".into(), "c@example.com".into()].into(),
        },
        mime: mime.into_bytes().into(),
        parts: Default::default(),
        message_id: id.into(),
        idempotency_key: id.into(),
        options_json: "{}".into(),
    }
}

fn settings(dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"{{"dir": {}{extra}}}"#,
        serde_json::to_string(&dir).unwrap()
    )
}

#[test]
fn writes_one_complete_eml_without_bcc() {
    let dir = tempfile::tempdir().unwrap();
    let t = open_in_process::<Pickup>(&settings(dir.path(), ""), &Host::new(TestHost)).unwrap();
    let r = t.send(&message("m1@example.com")).into_result().unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("-m1_example.com-0.eml"), "{name}");
    assert_eq!(r.server_id.as_str(), name);
    let body = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(body, "From: a@example.com\r\nTo: b@example.com\r\nMessage-ID: <m1@example.com>\r\nSubject: t\r\n\r\nbody\r\n");
    assert_eq!(r.accepted.len(), 2);
}

#[test]
fn envelope_headers_and_keep_bcc() {
    let dir = tempfile::tempdir().unwrap();
    let t = open_in_process::<Pickup>(
        &settings(
            dir.path(),
            r#", "envelope_headers": true, "keep_bcc": true"#,
        ),
        &Host::new(TestHost),
    )
    .unwrap();
    t.send(&message("m2@example.com")).into_result().unwrap();
    let f = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let body = std::fs::read_to_string(f).unwrap();
    assert!(body.starts_with("X-Sender: a@example.com\r\nX-Receiver: b@example.com\r\nX-Receiver: c@example.com\r\nFrom:"), "{body}");
    assert!(body.contains("Bcc: c@example.com"));
}

#[test]
fn unknown_setting_is_a_config_error() {
    let e = open_in_process::<Pickup>(r#"{"dir": "x", "speed": 3}"#, &Host::new(TestHost))
        .err()
        .unwrap();
    assert_eq!(e.class(), ErrorClass::CONFIG);
    assert!(e.message().contains("unknown field `speed`"), "{e}");
}

#[test]
fn check_reports_each_step_and_unwritable_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let t = open_in_process::<Pickup>(&settings(dir.path(), ""), &Host::new(TestHost)).unwrap();
    let rep = t.check("{}".into()).into_result().unwrap();
    let names: Vec<_> = rep
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.outcome))
        .collect();
    assert_eq!(
        names,
        [("directory", StepOutcome::OK), ("write", StepOutcome::OK)]
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the check leaves nothing behind"
    );

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let t = open_in_process::<Pickup>(
        &settings(&file, r#", "create_dir": false"#),
        &Host::new(TestHost),
    )
    .unwrap();
    let rep = t.check("{}".into()).into_result().unwrap();
    assert!(!rep.ok());
    assert!(rep.steps[0].detail.contains("is not a directory"));
    let e = t
        .send(&message("m3@example.com"))
        .into_result()
        .unwrap_err();
    assert!(e.message().starts_with("pickup: cannot write"), "{e}");
}

#[test]
fn missing_directory_without_create_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    let t = open_in_process::<Pickup>(
        &settings(&gone, r#", "create_dir": false"#),
        &Host::new(TestHost),
    )
    .unwrap();
    let e = t
        .send(&message("m4@example.com"))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG);
    assert!(e.message().contains("set create_dir = true"), "{e}");
}

/// A line break in an envelope address would become header lines of its own
/// (`X-Receiver: b@example.com\r\nX-Injected: 1`): refused, nothing written.
#[test]
fn refuses_line_breaks_in_the_envelope_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = open_in_process::<Pickup>(
        &settings(dir.path(), r#", "envelope_headers": true"#),
        &Host::new(TestHost),
    )
    .unwrap();
    let mut m = message("inj@example.com");
    m.envelope.to = vec!["b@example.com\r\nX-Injected: 1".into()].into();
    let e = t.send(&m).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::PERMANENT, "{e}");
    assert!(e.message().contains("recipient"), "{e}");
    assert!(e.message().contains(r"\r\nX-Injected"), "escaped: {e}");
    assert!(!e.message().contains('\n'), "never raw: {e}");
    let mut m = message("inj2@example.com");
    m.envelope.from = Some(RString::from("a@example.com\0")).into();
    let e = t.send(&m).into_result().unwrap_err();
    assert!(e.message().contains("envelope sender"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
