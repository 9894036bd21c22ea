//! The example plugin loaded from disk (its cdylib) by the host's loader, with
//! the host's own services and message builder, against real HTTP servers: a
//! hyper receiver started here, and the Graph double's HTTPS port (a real TLS
//! server with the peers' self-signed certificate) for the TLS settings.

use mailhost::loader::{load_file, LoadedPlugin};
use mailhost_plugin_api::{ConnState, ErrorClass, StepOutcome, TransportBox};
use mailhost_tests::loader::{host, message, receiver::Receiver};
use mailhost_tests::{peer_ca, plugin_path};

fn example() -> LoadedPlugin {
    load_file(&plugin_path("example")).unwrap_or_else(|f| panic!("{f}"))
}

fn open(settings: serde_json::Value) -> TransportBox {
    example()
        .open(&settings.to_string(), host())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn manifest_and_probe() {
    let p = example();
    let m = p.manifest();
    assert_eq!(m.name.as_str(), "example");
    assert_eq!(
        m.modes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        ["webhook"]
    );
    assert_eq!(m.capabilities.names(), ["send", "check"]);
    assert!(m
        .settings_schema
        .contains("\"additionalProperties\": false"));
    assert!(p.probe(host()).available);
}

#[test]
fn sends_the_hosts_message_as_json_with_a_secret_header() {
    let rx = Receiver::start();
    // A `file:` secret, resolved by the host's own resolver (no process-wide
    // environment change in a multi-threaded test binary).
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "Bearer cdylib-t0ken\n").unwrap();
    let t = open(serde_json::json!({
        "url": rx.url("/ok"),
        "headers": {"Authorization": format!("file:{}", secret.path().display())},
        "timeout_ms": 5000,
    }));
    let m = message("Invoice 4711", "cdylib-ok-1");
    let r = t.send(&m).into_result().unwrap();
    assert!(r.server_id.starts_with("wh-"), "{r:?}");
    assert_eq!(r.accepted.len(), 3);
    assert_eq!(t.status().state, ConnState::OPERATING);

    let got = rx.with_key("cdylib-ok-1");
    assert_eq!(got.len(), 1, "{:?}", rx.requests());
    let req = &got[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.header("authorization"), Some("Bearer cdylib-t0ken"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let v = req.json();
    assert_eq!(v["message_id"], m.message_id.as_str());
    assert_eq!(v["idempotency_key"], "cdylib-ok-1");
    assert_eq!(v["subject"], "Invoice 4711");
    assert_eq!(v["from"]["email"], "erp@example.com");
    assert_eq!(v["to"][0]["name"], "Alice");
    assert_eq!(v["cc"][0]["email"], "carol@example.com");
    assert_eq!(
        v["envelope"]["to"],
        serde_json::json!([
            "alice@example.com",
            "carol@example.com",
            "hidden@example.com"
        ])
    );
    assert_eq!(v["text"], "Hello from the loader tests");
    assert_eq!(v["attachments"][0]["filename"], "invoice.pdf");
    assert_eq!(v["attachments"][0]["media_type"], "application/pdf");
    use base64::Engine;
    let mime = base64::engine::general_purpose::STANDARD
        .decode(v["mime_base64"].as_str().unwrap())
        .unwrap();
    let mime = String::from_utf8_lossy(&mime);
    assert!(
        mime.contains("Subject: Invoice 4711") && !mime.contains("hidden@example.com"),
        "the Bcc header must be stripped from the raw MIME:\n{mime}"
    );
}

#[test]
fn http_errors_are_classified_for_the_host() {
    let rx = Receiver::start();
    let send = |path: &str, key: &str| {
        open(serde_json::json!({ "url": rx.url(path) }))
            .send(&message("classes", key))
            .into_result()
            .unwrap_err()
    };
    let e = send("/busy", "cdylib-503");
    assert_eq!((e.class(), e.code), (ErrorClass::TRANSIENT, 503));
    assert_eq!(e.retry_after_ms(), Some(7000));
    assert!(
        e.message().contains(&format!(
            "webhook http://{}/busy is busy or failing (HTTP 503 Service Unavailable: maintenance until 10:00)",
            rx.addr
        )),
        "{e}"
    );
    let e = send("/auth", "cdylib-401");
    assert_eq!((e.class(), e.code), (ErrorClass::AUTH, 401));
    assert!(
        e.message().contains("HTTP 401 Unauthorized: invalid token"),
        "{e}"
    );
    let e = send("/bad", "cdylib-400");
    assert_eq!((e.class(), e.code), (ErrorClass::PERMANENT, 400));
    assert!(
        e.message()
            .contains("HTTP 400 Bad Request: subject must not be empty"),
        "{e}"
    );
    // Each attempt reached the receiver with its idempotency key.
    for key in ["cdylib-503", "cdylib-401", "cdylib-400"] {
        assert_eq!(rx.with_key(key).len(), 1, "{key}");
    }
}

#[test]
fn check_through_the_cdylib() {
    let rx = Receiver::start();
    let report = open(serde_json::json!({ "url": rx.url("/post-only") }))
        .check("{}".into())
        .into_result()
        .unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.steps[1].outcome, StepOutcome::OK);
    assert_eq!(
        report.steps[1].server_text.as_str(),
        "HTTP 405 Method Not Allowed"
    );
}

/// TLS against a real HTTPS server: the Graph double on 127.0.0.1:8443, whose
/// certificate is the peers' self-signed one. It has no webhook path, so a
/// verified connection ends in its 404 — proof the TLS handshake succeeded.
#[test]
fn tls_is_verified_with_ca_file_and_refused_without() {
    let url = "https://127.0.0.1:8443/mailhost-example-webhook";
    let send = |settings: serde_json::Value, key: &str| {
        open(settings)
            .send(&message("tls", key))
            .into_result()
            .unwrap_err()
    };
    let e = send(
        serde_json::json!({ "url": url, "ca_file": peer_ca() }),
        "tls-ca",
    );
    assert_eq!((e.class(), e.code), (ErrorClass::PERMANENT, 404), "{e}");
    assert!(
        e.message().contains("HTTP 404 Not Found: {\"error\""),
        "the Graph double's own answer: {e}"
    );

    let e = send(serde_json::json!({ "url": url }), "tls-none");
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
    assert!(
        e.message()
            .contains("webhook https://127.0.0.1:8443/mailhost-example-webhook: the server's TLS certificate is not trusted")
            && e.message().contains("set `ca_file`"),
        "{e}"
    );

    let e = send(
        serde_json::json!({ "url": url, "accept_invalid_certs": true }),
        "tls-insecure",
    );
    assert_eq!((e.class(), e.code), (ErrorClass::PERMANENT, 404), "{e}");
}

/// The account in docs/plugin-authors.md is valid for the host's config
/// (checked against the example's schema by the host).
#[test]
fn the_guides_account_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    mailhost_tests::copy_as(
        &plugin_path("example"),
        dir.path(),
        &mailhost_tests::plugin_file_name("example"),
    );
    let set = mailhost::loader::load_dirs(&[dir.path().to_path_buf()]);
    assert!(set.failures.is_empty(), "{:?}", set.failures);
    let guide = std::fs::read_to_string(
        mailhost_tests::loader::workspace_root().join("docs/plugin-authors.md"),
    )
    .unwrap();
    let block = guide
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("plugin = \"example\""))
        .expect("the guide's account block");
    let src = mailhost::config::Source::from_text("plugin-authors.md", dir.path(), block);
    let settings = mailhost::config::validate(&src, &set).unwrap_or_else(|e| panic!("{e}"));
    assert!(settings.accounts.contains_key("hooks"));

    // And a typo in a plugin key is refused with its place in the file.
    let bad = block.replace("timeout_ms", "timeout_msec");
    let src = mailhost::config::Source::from_text("plugin-authors.md", dir.path(), &bad);
    let e = mailhost::config::validate(&src, &set)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("plugin-authors.md:") && e.contains("timeout_msec"),
        "{e}"
    );
}
