//! In-process tests: the plugin opened through the rlib with
//! `open_in_process`, which runs the same guarded glue as the cdylib, against a
//! real HTTP server (hyper) that records what it receives.
//!
//! This is how a plugin author tests without the host: a small `HostServices`
//! implementation (logs, secrets) and hand-built `OutgoingMessage`s.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed helper is a failed test

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use common::receiver::Receiver;
use mailhost_example::Webhook;
use mailhost_plugin_api::abi_stable::std_types::{ROption, RResult, RStr, RString};
use mailhost_plugin_api::{
    open_in_process, Attachment, ConnState, Envelope, ErrorClass, Host, HostServices, LogLevel,
    Mailbox, MessageParts, OutgoingMessage, PluginError, StepOutcome, TokenRequest, TransportBox,
};

/// The smallest host: records log lines, resolves `env:` references and
/// literals, has no token broker.
#[derive(Clone, Default)]
struct TestHost {
    logs: Arc<Mutex<Vec<String>>>,
}

impl HostServices for TestHost {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        self.logs
            .lock()
            .unwrap()
            .push(format!("{level:?} {target}: {message}"));
    }

    fn secret(&self, reference: RStr<'_>) -> RResult<RString, PluginError> {
        match reference.as_str().strip_prefix("env:") {
            Some(name) => std::env::var(name)
                .map(RString::from)
                .map_err(|_| {
                    PluginError::config(format!("secret `{reference}`: {name} is not set"))
                })
                .into(),
            None => RResult::ROk(reference.as_str().into()),
        }
    }

    fn token(&self, _request: &TokenRequest) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unsupported(
            "no token broker in this test host",
        ))
    }

    fn extension(&self, name: RStr<'_>, _input: RStr<'_>) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unsupported(format!("no extension {name}")))
    }
}

/// One test host for the whole binary: the plugin's log forwarding is global
/// to the library, so every test's events go to the last host given to `open`.
fn host() -> (Host, Arc<Mutex<Vec<String>>>) {
    static HOST: OnceLock<TestHost> = OnceLock::new();
    let h = HOST.get_or_init(TestHost::default).clone();
    let logs = h.logs.clone();
    (Host::new(h), logs)
}

fn open(settings: serde_json::Value) -> Result<TransportBox, PluginError> {
    open_in_process::<Webhook>(&settings.to_string(), &host().0)
}

fn message(id: &str) -> OutgoingMessage {
    let mime = format!(
        "From: ERP <erp@example.com>\r\nTo: a@example.com\r\nCc: c@example.com\r\nBcc: hidden@example.com\r\nSubject: Invoice 4711\r\nMessage-ID: <{id}>\r\n\r\nHello\r\n"
    );
    OutgoingMessage {
        envelope: Envelope {
            from: ROption::RSome("erp@example.com".into()),
            to: ["a@example.com", "c@example.com", "hidden@example.com"]
                .into_iter()
                .map(RString::from)
                .collect(),
        },
        mime: mime.into_bytes().into(),
        parts: MessageParts {
            from: Mailbox::new("ERP", "erp@example.com"),
            to: vec![Mailbox::new("", "a@example.com")].into(),
            cc: vec![Mailbox::new("C", "c@example.com")].into(),
            bcc: vec![Mailbox::new("", "hidden@example.com")].into(),
            subject: "Invoice 4711".into(),
            text: ROption::RSome("Hello".into()),
            html: ROption::RSome("<p>Hello</p>".into()),
            attachments: vec![Attachment {
                filename: "invoice.pdf".into(),
                media_type: "application/pdf".into(),
                content_id: "".into(),
                inline: false,
                data: b"%PDF-1.4 test".to_vec().into(),
            }]
            .into(),
            ..MessageParts::default()
        },
        message_id: id.into(),
        idempotency_key: format!("key-{id}").into(),
        options_json: "{}".into(),
    }
}

#[test]
fn send_posts_the_message_as_json_with_secret_headers() {
    let rx = Receiver::start();
    std::env::set_var("EXAMPLE_IN_PROCESS_AUTH", "Bearer t0ken-in-process");
    let t = open(serde_json::json!({
        "url": rx.url("/ok"),
        "headers": {"Authorization": "env:EXAMPLE_IN_PROCESS_AUTH", "X-Tenant": "acme"},
    }))
    .unwrap();
    assert_eq!(t.status().state, ConnState::NOT_CONNECTED);
    let m = message("inproc-1@example.com");
    let receipt = t.send(&m).into_result().unwrap();
    assert_eq!(receipt.server_id.as_str(), "wh-1");
    assert!(
        receipt.server_reply.starts_with("HTTP 202 Accepted"),
        "{receipt:?}"
    );
    assert_eq!(receipt.accepted.len(), 3);
    assert_eq!(t.status().state, ConnState::OPERATING);

    let got = rx.with_key("key-inproc-1@example.com");
    assert_eq!(got.len(), 1, "{:?}", rx.requests());
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/ok"));
    assert_eq!(r.header("authorization"), Some("Bearer t0ken-in-process"));
    assert_eq!(r.header("x-tenant"), Some("acme"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r
        .header("user-agent")
        .unwrap()
        .starts_with("mailhost-example/"));
    let v = r.json();
    assert_eq!(v["message_id"], "inproc-1@example.com");
    assert_eq!(v["idempotency_key"], "key-inproc-1@example.com");
    assert_eq!(v["envelope"]["from"], "erp@example.com");
    assert_eq!(v["envelope"]["to"][2], "hidden@example.com");
    assert_eq!(v["subject"], "Invoice 4711");
    assert_eq!(v["cc"][0]["name"], "C");
    assert_eq!(v["html"], "<p>Hello</p>");
    let b64 = base64::engine::general_purpose::STANDARD;
    let pdf = b64
        .decode(v["attachments"][0]["data_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(pdf, b"%PDF-1.4 test");
    let mime = String::from_utf8(b64.decode(v["mime_base64"].as_str().unwrap()).unwrap()).unwrap();
    assert!(
        mime.contains("Subject: Invoice 4711") && !mime.contains("Bcc:"),
        "{mime}"
    );

    // `tracing::info!` in the plugin reached the host's `log`.
    let logs = host().1;
    let logs = logs.lock().unwrap();
    assert!(
        logs.iter().any(|l| l
            .starts_with("info mailhost_example::transport: example: delivered to webhook")
            && l.contains("inproc-1@example.com")),
        "{logs:#?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("t0ken-in-process")),
        "a secret was logged"
    );
}

#[test]
fn http_answers_become_error_classes() {
    let rx = Receiver::start();
    let send = |path: &str| {
        let t = open(serde_json::json!({"url": rx.url(path)})).unwrap();
        t.send(&message(&format!("cls{path}@example.com")))
            .into_result()
            .unwrap_err()
    };
    let e = send("/busy");
    assert_eq!((e.class(), e.code), (ErrorClass::TRANSIENT, 503));
    assert_eq!(e.retry_after_ms(), Some(7000));
    assert!(
        e.message()
            .contains("HTTP 503 Service Unavailable: maintenance until 10:00"),
        "{e}"
    );
    let e = send("/auth");
    assert_eq!((e.class(), e.code), (ErrorClass::AUTH, 401));
    assert!(e.message().contains("invalid token"), "{e}");
    let e = send("/bad");
    assert_eq!((e.class(), e.code), (ErrorClass::PERMANENT, 400));
    assert!(
        e.message()
            .contains("HTTP 400 Bad Request: subject must not be empty"),
        "{e}"
    );
    let e = send("/nowhere");
    assert_eq!((e.class(), e.code), (ErrorClass::PERMANENT, 404));
}

#[test]
fn connection_refused_is_transient_and_shows_in_status() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = open(
        serde_json::json!({"url": format!("http://127.0.0.1:{port}/hook"), "timeout_ms": 2000}),
    )
    .unwrap();
    let e = t
        .send(&message("refused@example.com"))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT);
    assert!(
        e.message().contains(&format!(
            "cannot connect to webhook http://127.0.0.1:{port}/hook"
        )),
        "{e}"
    );
    let s = t.status();
    assert_eq!(s.state, ConnState::UNABLE_TO_CONNECT);
    assert!(s.reason.contains("cannot connect"), "{s:?}");
    let report = t.check("{}".into()).into_result().unwrap();
    assert!(!report.ok());
    t.close();
    assert_eq!(t.status().state, ConnState::STOPPED);
}

#[test]
fn check_reports_each_step_with_the_servers_words() {
    let rx = Receiver::start();
    let t =
        open(serde_json::json!({"url": rx.url("/post-only"), "headers": {"X-A": "1"}})).unwrap();
    let report = t.check("{}".into()).into_result().unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.steps.len(), 2);
    assert!(report.steps[0].detail.contains("headers X-A"), "{report:?}");
    let step = &report.steps[1];
    assert_eq!(step.outcome, StepOutcome::OK);
    assert_eq!(step.server_text.as_str(), "HTTP 405 Method Not Allowed");
    assert!(step.detail.contains("answers GET with 405"), "{step:?}");
    let methods: Vec<String> = rx.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD", "GET"]);

    let t = open(serde_json::json!({"url": rx.url("/auth")})).unwrap();
    let report = t.check("{}".into()).into_result().unwrap();
    assert_eq!(report.steps[1].outcome, StepOutcome::FAILED);
    assert_eq!(
        report.steps[1].server_text.as_str(),
        "HTTP 401 Unauthorized"
    );
}

#[test]
fn bad_settings_are_config_errors_naming_the_setting() {
    let e = open(serde_json::json!({"url": "ftp://h.example/x"}))
        .err()
        .unwrap();
    assert_eq!(e.class(), ErrorClass::CONFIG);
    assert!(
        e.message()
            .contains("`url` must be an http:// or https:// URL"),
        "{e}"
    );

    let e = open(serde_json::json!({"url": "http://127.0.0.1:1/", "headers": {"Authorization": "env:EXAMPLE_UNSET_SECRET_VAR"}}))
        .err()
        .unwrap();
    assert_eq!(e.class(), ErrorClass::CONFIG);
    assert!(
        e.message().contains("`headers.Authorization`")
            && e.message().contains("EXAMPLE_UNSET_SECRET_VAR"),
        "{e}"
    );

    let e = open(
        serde_json::json!({"url": "http://127.0.0.1:1/", "headers": {"Idempotency-Key": "x"}}),
    )
    .err()
    .unwrap();
    assert!(e.message().contains("set by the plugin itself"), "{e}");

    // A literal secret with a line break: the error must not echo it.
    let e = open(serde_json::json!({"url": "http://127.0.0.1:1/", "headers": {"Authorization": "Bearer s3cr3t\r\nX: y"}}))
        .err()
        .unwrap();
    assert!(
        e.message().contains("a literal value") && !e.message().contains("s3cr3t"),
        "{e}"
    );

    let e =
        open(serde_json::json!({"url": "https://127.0.0.1:1/", "ca_file": "/nonexistent/ca.pem"}))
            .err()
            .unwrap();
    assert!(
        e.message()
            .contains("cannot read `ca_file` /nonexistent/ca.pem"),
        "{e}"
    );

    let e = open(serde_json::json!({"url": "http://127.0.0.1:1/", "colour": "red"}))
        .err()
        .unwrap();
    assert!(e.message().contains("unknown field `colour`"), "{e}");
}
