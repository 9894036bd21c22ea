//! The graph plugin, loaded as a cdylib, against the Graph double over real
//! TLS: the shared one on 127.0.0.1:8443 and private instances of the strict
//! copy in tests/peers/ (for counters, short-lived tokens, upload sessions,
//! concurrency).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mailhost::message::{AttachmentRequest, MessageRequest};
use mailhost_plugin_api::{Capabilities, ComposeKind, ErrorClass, StepOutcome};
use mailhost_tests::graph::{
    broker, broker_with, build, bytes, oauth_client, open, plugin, request, sent_one, settings,
    unique, StrictDouble, MAILBOX, SHARED,
};
use mailhost_tests::peers_dir;
use serde_json::{json, Value};

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn attachment(name: &str, media_type: &str, data: Vec<u8>) -> AttachmentRequest {
    AttachmentRequest {
        filename: Some(name.into()),
        media_type: Some(media_type.into()),
        data: Some(data),
        ..Default::default()
    }
}

#[test]
fn manifest_declares_modes_and_capabilities() {
    let m = plugin().manifest();
    assert_eq!(m.name.as_str(), "graph");
    let modes: Vec<&str> = m.modes.iter().map(|s| s.as_str()).collect();
    assert_eq!(modes, ["graph", "m365-draft"]);
    for c in [
        Capabilities::SEND,
        Capabilities::COMPOSE,
        Capabilities::SAVE_COPY,
        Capabilities::CHECK,
    ] {
        assert!(m.capabilities.contains(c), "{:?}", m.capabilities);
    }
    let schema: Value = serde_json::from_str(m.settings_schema.as_str()).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["ca_file"]["format"], "path");
}

#[test]
fn small_send_stores_the_hosts_exact_mime() {
    let t = open(&settings(SHARED), &broker(SHARED));
    let subject = unique("small");
    let mut req = request(&format!("{}@example.com", unique("rcpt")), &subject);
    req.attachments = vec![attachment(
        "note.txt",
        "text/plain",
        b"attached text\r\n".to_vec(),
    )];
    let msg = build(&req);
    let receipt = t.send(&msg).into_result().unwrap();
    assert_eq!(receipt.message_id, msg.message_id);
    let details: Value = serde_json::from_str(receipt.details_json.as_str()).unwrap();
    assert_eq!(details["route"], "sendMail-mime");
    let stored = sent_one(&peers_dir(), &subject);
    assert_eq!(stored.extension().unwrap(), "eml");
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        msg.mime.as_slice(),
        "the double stored other bytes than the host built"
    );
}

#[test]
fn bcc_recipients_are_delivered() {
    let t = open(&settings(SHARED), &broker(SHARED));
    let subject = unique("bcc");
    let bcc = format!("{}@example.com", unique("hidden"));
    let mut req = request("visible@example.com", &subject);
    req.bcc = vec![bcc.clone()];
    let msg = build(&req);
    let receipt = t.send(&msg).into_result().unwrap();
    assert!(receipt.accepted.iter().any(|a| a.as_str() == bcc));
    // MIME route: Graph reads the Bcc header of the MIME (the host keeps it for Graph).
    let eml = std::fs::read_to_string(sent_one(&peers_dir(), &subject)).unwrap();
    assert!(
        eml.lines()
            .any(|l| l.starts_with("Bcc:") && l.contains(&bcc)),
        "{eml}"
    );

    // JSON route: bccRecipients.
    let mut s = settings(SHARED);
    s["save_to_sent_items"] = json!(false);
    let t = open(&s, &broker(SHARED));
    let subject = unique("bcc-json");
    let mut req = request("visible@example.com", &subject);
    req.bcc = vec![bcc.clone()];
    t.send(&build(&req)).into_result().unwrap();
    let stored = read_json(&sent_one(&peers_dir(), &subject));
    assert_eq!(
        stored["message"]["bccRecipients"][0]["emailAddress"]["address"],
        bcc.as_str()
    );
}

#[test]
fn save_to_sent_items_false_sends_json() {
    let mut s = settings(SHARED);
    s["save_to_sent_items"] = json!(false);
    let t = open(&s, &broker(SHARED));
    let subject = unique("json");
    let mut req = request("Someone <someone@example.com>", &subject);
    req.cc = vec!["cc@example.com".into()];
    req.reply_to = vec!["replies@example.com".into()];
    req.html = Some("<p>Hello <b>there</b></p>".into());
    req.headers = vec![("X-ERP-Document".into(), "INV-4711".into())];
    let pdf = bytes(20_000, 7);
    req.attachments = vec![attachment("invoice.pdf", "application/pdf", pdf.clone())];
    let msg = build(&req);
    let receipt = t.send(&msg).into_result().unwrap();
    let details: Value = serde_json::from_str(receipt.details_json.as_str()).unwrap();
    assert_eq!(details["route"], "sendMail-json");
    assert_eq!(details["saved_to_sent_items"], false);

    let stored = read_json(&sent_one(&peers_dir(), &subject));
    assert_eq!(stored["saveToSentItems"], false);
    let m = &stored["message"];
    assert_eq!(m["subject"], subject.as_str());
    assert_eq!(m["body"]["contentType"], "HTML");
    assert_eq!(
        m["toRecipients"][0]["emailAddress"]["address"],
        "someone@example.com"
    );
    assert_eq!(m["toRecipients"][0]["emailAddress"]["name"], "Someone");
    assert_eq!(
        m["ccRecipients"][0]["emailAddress"]["address"],
        "cc@example.com"
    );
    assert_eq!(
        m["replyTo"][0]["emailAddress"]["address"],
        "replies@example.com"
    );
    assert_eq!(
        m["internetMessageId"],
        format!("<{}>", msg.message_id.as_str())
    );
    // Custom X- headers of the MIME ride along as internetMessageHeaders.
    assert_eq!(
        m["internetMessageHeaders"],
        json!([{ "name": "X-ERP-Document", "value": "INV-4711" }])
    );
    let att = &m["attachments"][0];
    assert_eq!(att["@odata.type"], "#microsoft.graph.fileAttachment");
    assert_eq!(att["name"], "invoice.pdf");
    assert_eq!(att["contentType"], "application/pdf");
    assert_eq!(
        STANDARD
            .decode(att["contentBytes"].as_str().unwrap())
            .unwrap(),
        pdf
    );

    // The same through the per-request option on an account that saves by default.
    let t = open(&settings(SHARED), &broker(SHARED));
    let subject = unique("json-option");
    let mut req = request("someone@example.com", &subject);
    req.options
        .insert("save_to_sent_items".into(), json!(false));
    t.send(&build(&req)).into_result().unwrap();
    assert_eq!(
        read_json(&sent_one(&peers_dir(), &subject))["saveToSentItems"],
        false
    );
}

#[test]
fn draft_with_web_link_in_the_users_mailbox() {
    // The account's own mailbox does not exist; the request names the user's.
    let mut s = settings(SHARED);
    s["mailbox"] = json!("nobody-here@example.com");
    let t = open(&s, &broker(SHARED));
    let subject = unique("draft");
    let mut req = request("someone@example.com", &subject);
    req.options.insert("mailbox".into(), json!(MAILBOX));
    let out = t.compose(&build(&req)).into_result().unwrap();
    assert_eq!(out.kind, ComposeKind::WEB_LINK);
    assert!(
        out.web_link
            .starts_with("https://outlook.office365.com/owa/?ItemID="),
        "{}",
        out.web_link
    );
    assert!(!out.draft_id.is_empty());
    let draft = read_json(
        &peers_dir()
            .join("graph/drafts")
            .join(format!("{}.json", out.draft_id)),
    );
    assert_eq!(draft["kind"], "mime");
    assert!(draft["payload"].as_str().unwrap().contains(&subject));
}

#[test]
fn send_only_app_gets_a_clear_error_for_drafts() {
    let b = broker_with(oauth_client(SHARED, "test-client-sendonly", "test-secret"));
    let t = open(&settings(SHARED), &b);
    let req = request("someone@example.com", &unique("sendonly"));
    let e = t.compose(&build(&req)).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert_eq!(e.code, 403);
    assert!(
        e.message().contains("Mail.ReadWrite") && e.message().contains("admin consent"),
        "{e}"
    );
    // Sending small messages works with Mail.Send alone.
    t.send(&build(&req)).into_result().unwrap();
    // check() tells in advance.
    let report = t.check("{}".into()).into_result().unwrap();
    let perms = report
        .steps
        .iter()
        .find(|s| s.name.as_str() == "permissions")
        .unwrap();
    assert_eq!(perms.outcome, StepOutcome::WARNING, "{perms:?}");
    assert!(perms.detail.contains("Mail.ReadWrite"));
}

#[test]
fn check_reports_token_roles_and_mailbox() {
    let t = open(&settings(SHARED), &broker(SHARED));
    let report = t.check("{}".into()).into_result().unwrap();
    let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["token", "permissions", "mailbox"]);
    assert!(report.ok(), "{report:?}");
    assert!(
        report.steps.iter().all(|s| s.outcome == StepOutcome::OK),
        "{report:?}"
    );
    assert!(report.steps[1].server_text.contains("Mail.Send"));

    // A mailbox that does not exist fails the last step.
    let report = t
        .check(r#"{"mailbox": "nobody@example.com"}"#.into())
        .into_result()
        .unwrap();
    let mailbox = &report.steps[2];
    assert_eq!(mailbox.outcome, StepOutcome::FAILED);
    assert!(mailbox.detail.contains("mailbox not found"), "{mailbox:?}");
}

#[test]
fn throttled_then_success_with_retry_after() {
    let t = open(&settings(SHARED), &broker(SHARED));
    let req = request("throttle@example.com", &unique("throttle"));
    let msg = build(&req);
    let e = t.send(&msg).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert_eq!(e.code, 429);
    assert_eq!(e.retry_after_ms(), Some(1000));
    assert!(e.message().contains("ApplicationThrottled"), "{e}");
    // The host's retry sends the same message again (after Retry-After).
    std::thread::sleep(std::time::Duration::from_millis(1000));
    t.send(&msg).into_result().unwrap();
}

#[test]
fn service_unavailable_is_transient() {
    let t = open(&settings(SHARED), &broker(SHARED));
    let e = t
        .send(&build(&request("graph-5xx@example.com", &unique("5xx"))))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert_eq!(e.code, 503);
    assert_eq!(e.retry_after_ms(), Some(1000));
}

#[test]
fn wrong_secret_is_auth_naming_the_cause_without_the_secret() {
    let secret = "not-the-secret-91b2";
    let t = open(
        &settings(SHARED),
        &broker_with(oauth_client(SHARED, "test-client", secret)),
    );
    let e = t
        .send(&build(&request(
            "someone@example.com",
            &unique("badsecret"),
        )))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert!(e.message().contains("AADSTS7000215"), "{e}");
    assert!(e.message().contains("invalid client secret"), "{e}");
    assert!(!e.message().contains(secret), "{e}");
    let report = t.check("{}".into()).into_result().unwrap();
    assert_eq!(report.steps[0].outcome, StepOutcome::FAILED);
    assert!(report.steps[0].detail.contains("AADSTS7000215"));
    assert!(!format!("{report:?}").contains(secret));
}

#[test]
fn bad_mailbox_is_permanent() {
    let mut s = settings(SHARED);
    s["mailbox"] = json!("nobody@example.com");
    let t = open(&s, &broker(SHARED));
    let e = t
        .send(&build(&request("someone@example.com", &unique("badmbx"))))
        .into_result()
        .unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert_eq!(e.code, 404);
    assert!(
        e.message().contains("mailbox not found") && e.message().contains("nobody@example.com"),
        "{e}"
    );
}

#[test]
fn token_is_reused_across_100_sends() {
    let double = StrictDouble::start(None);
    let b = broker(&double.url());
    let t = open(&settings(&double.url()), &b);
    for i in 0..100 {
        let msg = build(&request("someone@example.com", &format!("reuse {i}")));
        t.send(&msg).into_result().unwrap();
    }
    let stats = double.stats();
    assert_eq!(stats["sendMail"], 100);
    assert_eq!(stats["tokenRequests"], 1, "{stats}");
    assert_eq!(b.stats().requests, 1);
}

#[test]
fn expired_token_is_refreshed() {
    let double = StrictDouble::start(Some(2));
    let t = open(&settings(&double.url()), &broker(&double.url()));
    t.send(&build(&request("someone@example.com", "before expiry")))
        .into_result()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    t.send(&build(&request("someone@example.com", "after expiry")))
        .into_result()
        .unwrap();
    let stats = double.stats();
    assert_eq!(stats["tokenRequests"], 2, "{stats}");
    assert_eq!(stats["sendMail"], 2);
}

#[test]
fn revoked_token_is_refreshed_once_after_401() {
    let double = StrictDouble::start(None);
    let t = open(&settings(&double.url()), &broker(&double.url()));
    t.send(&build(&request("someone@example.com", "first")))
        .into_result()
        .unwrap();
    double.revoke_tokens();
    // Graph answers 401 to the cached token; the plugin fetches a fresh one once.
    t.send(&build(&request("someone@example.com", "after revoke")))
        .into_result()
        .unwrap();
    let stats = double.stats();
    assert_eq!(stats["tokenRequests"], 2, "{stats}");
    assert_eq!(stats["sendMail"], 2);
}

#[test]
fn token_from_another_authority_is_auth_after_one_refresh() {
    // Tokens from the shared double are unknown to a private one: 401 twice.
    let double = StrictDouble::start(None);
    let b = broker(SHARED);
    let t = open(&settings(&double.url()), &b);
    let e = t
        .send(&build(&request("someone@example.com", "foreign token")))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert_eq!(e.code, 401);
    assert!(e.message().contains("InvalidAuthenticationToken"), "{e}");
    assert_eq!(b.stats().requests, 2, "one token, then one forced refresh");
}

/// A message over 4 MB: a 9 MB attachment (three chunks), a 1 MB one and a small inline one.
fn large_request(subject: &str, big_name: &str) -> (MessageRequest, Vec<u8>, Vec<u8>) {
    let big = bytes(9 * 1024 * 1024 + 12_345, 1);
    let medium = bytes(1024 * 1024, 2);
    let mut req = request("someone@example.com", subject);
    req.bcc = vec!["hidden-large@example.com".into()];
    req.headers = vec![("X-ERP-Document".into(), "BIG-1".into())];
    req.attachments = vec![
        attachment(big_name, "application/octet-stream", big.clone()),
        attachment("medium.bin", "application/octet-stream", medium.clone()),
    ];
    (req, big, medium)
}

fn uploaded(double: &StrictDouble, stored: &Value, name: &str) -> Vec<u8> {
    let att = stored["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no uploaded {name} in {stored}"));
    std::fs::read(
        double
            .dir()
            .join("graph/uploads")
            .join(att["stored"].as_str().unwrap()),
    )
    .unwrap()
}

#[test]
fn large_message_goes_through_upload_sessions() {
    let double = StrictDouble::start(None);
    let t = open(&settings(&double.url()), &broker(&double.url()));
    let subject = unique("large");
    let (req, big, medium) = large_request(&subject, "big.bin");
    let msg = build(&req);
    assert!(msg.mime.len() > 4 * 1024 * 1024);
    let receipt = t.send(&msg).into_result().unwrap();
    let details: Value = serde_json::from_str(receipt.details_json.as_str()).unwrap();
    assert_eq!(details["route"], "draft-upload-send");

    let stats = double.stats();
    assert_eq!(stats["uploads"], 1, "{stats}");
    assert_eq!(stats["chunks"], 3, "{stats}");
    assert!(
        stats["maxChunk"].as_u64().unwrap() <= 4 * 1024 * 1024,
        "{stats}"
    );
    assert_eq!(stats["uploadAuthHeaders"], 0);
    assert_eq!(stats["sends"], 1);
    assert_eq!(stats["sendMail"], 0);

    let stored = read_json(&sent_one(double.dir(), &subject));
    let draft = &stored["draft"]["payload"];
    assert_eq!(draft["subject"], subject.as_str());
    assert_eq!(
        draft["internetMessageId"],
        format!("<{}>", msg.message_id.as_str())
    );
    assert_eq!(
        draft["bccRecipients"][0]["emailAddress"]["address"],
        "hidden-large@example.com"
    );
    assert_eq!(draft["internetMessageHeaders"][0]["value"], "BIG-1");
    // The small attachment rode in the draft request; the big one was uploaded.
    let small = &draft["attachments"][0];
    assert_eq!(small["name"], "medium.bin");
    assert_eq!(
        STANDARD
            .decode(small["contentBytes"].as_str().unwrap())
            .unwrap(),
        medium
    );
    assert_eq!(uploaded(&double, &stored, "big.bin"), big);
}

#[test]
fn upload_resumes_from_next_expected_ranges() {
    let double = StrictDouble::start(None);
    let t = open(&settings(&double.url()), &broker(&double.url()));
    let subject = unique("flaky");
    // flaky-*: the double keeps only part of the second chunk and drops the connection.
    let (req, big, _) = large_request(&subject, "flaky-big.bin");
    t.send(&build(&req)).into_result().unwrap();
    let stats = double.stats();
    assert_eq!(stats["resumes"], 1, "{stats}");
    assert!(stats["statusQueries"].as_u64().unwrap() >= 1, "{stats}");
    let stored = read_json(&sent_one(double.dir(), &subject));
    assert_eq!(uploaded(&double, &stored, "flaky-big.bin"), big);
}

#[test]
fn large_draft_for_outlook_on_the_web() {
    let double = StrictDouble::start(None);
    let t = open(&settings(&double.url()), &broker(&double.url()));
    let subject = unique("large-draft");
    let (req, _, _) = large_request(&subject, "big.bin");
    let out = t.compose(&build(&req)).into_result().unwrap();
    assert_eq!(out.kind, ComposeKind::WEB_LINK);
    assert!(out.web_link.contains("ItemID="));
    let stats = double.stats();
    assert_eq!(stats["drafts"], 1);
    assert_eq!(stats["uploads"], 1);
    assert_eq!(stats["sends"], 0, "a draft is not sent");
}

#[test]
fn concurrent_sends_stay_within_four_requests_per_mailbox() {
    let double = StrictDouble::start(None);
    let b = broker(&double.url());
    // Two accounts on the same mailbox share the limit.
    let t1 = open(&settings(&double.url()), &b);
    let t2 = open(&settings(&double.url()), &b);
    let payload = bytes(1024 * 1024, 3);
    std::thread::scope(|s| {
        for i in 0..12 {
            let t = if i % 2 == 0 { &t1 } else { &t2 };
            let payload = payload.clone();
            s.spawn(move || {
                let mut req = request("someone@example.com", &format!("concurrent {i}"));
                req.attachments = vec![attachment("part.bin", "application/octet-stream", payload)];
                t.send(&build(&req)).into_result().unwrap();
            });
        }
    });
    let stats = double.stats();
    assert_eq!(stats["sendMail"], 12, "{stats}");
    eprintln!("strict double after 12 concurrent sends: {stats}");
    assert_eq!(stats["concurrencyRejected"], 0, "{stats}");
    assert!(stats["maxInflight"].as_u64().unwrap() <= 4, "{stats}");
}

#[test]
fn many_small_attachments_over_4mb_are_added_one_by_one() {
    // Each under 3 MB (no upload session), together over Graph's 4 MB request limit.
    let double = StrictDouble::start(None);
    let t = open(&settings(&double.url()), &broker(&double.url()));
    let subject = unique("many-small");
    let parts: Vec<Vec<u8>> = (0..3).map(|i| bytes(2 * 1024 * 1024, 10 + i)).collect();
    let mut req = request("someone@example.com", &subject);
    req.attachments = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            attachment(
                &format!("part{i}.bin"),
                "application/octet-stream",
                p.clone(),
            )
        })
        .collect();
    t.send(&build(&req)).into_result().unwrap();
    let stats = double.stats();
    assert_eq!(
        (
            stats["drafts"].as_u64(),
            stats["uploads"].as_u64(),
            stats["sends"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{stats}"
    );
    let stored = read_json(&sent_one(double.dir(), &subject));
    // One rode in the draft request, the others were POSTed to /attachments.
    let mut all: Vec<&Value> = stored["draft"]["payload"]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    all.extend(stored["attachments"].as_array().unwrap().iter());
    assert_eq!(all.len(), 3, "{all:?}");
    for (i, p) in parts.iter().enumerate() {
        let a = all
            .iter()
            .find(|a| a["name"] == format!("part{i}.bin"))
            .unwrap();
        assert_eq!(
            STANDARD
                .decode(a["contentBytes"].as_str().unwrap())
                .unwrap(),
            *p
        );
    }
    assert_eq!(t.status().state, mailhost_plugin_api::ConnState::OPERATING);
}

#[test]
fn payload_too_large_takes_the_large_route() {
    // A service whose request limit is lower than 4 MB answers 413 to the MIME
    // sendMail; the plugin then builds a draft and uploads instead.
    let double = StrictDouble::start_with(&[("REQUEST_LIMIT", "1000000")]);
    let t = open(&settings(&double.url()), &broker(&double.url()));
    let subject = unique("413");
    let mut req = request("someone@example.com", &subject);
    let data = bytes(900_000, 5);
    req.attachments = vec![attachment(
        "a.bin",
        "application/octet-stream",
        data.clone(),
    )];
    let receipt = t.send(&build(&req)).into_result().unwrap();
    let details: Value = serde_json::from_str(receipt.details_json.as_str()).unwrap();
    assert_eq!(details["route"], "draft-upload-send");
    let stats = double.stats();
    assert_eq!(
        (stats["sendMail"].as_u64(), stats["sends"].as_u64()),
        (Some(0), Some(1)),
        "{stats}"
    );
    // The draft went without it (413 again), the attachment alone too (413), so
    // it went through an upload session, which takes any size.
    assert_eq!(stats["uploads"], 1, "{stats}");
    let stored = read_json(&sent_one(double.dir(), &subject));
    assert_eq!(uploaded(&double, &stored, "a.bin"), data);
}

#[test]
fn invalid_request_is_permanent_with_graphs_message() {
    let double = StrictDouble::start(None);
    let mut s = settings(&double.url());
    s["save_to_sent_items"] = json!(false);
    let t = open(&s, &broker(&double.url()));
    let mut msg = build(&request("someone@example.com", &unique("400")));
    msg.parts.to[0].email = "".into(); // a recipient Graph cannot read
    let e = t.send(&msg).into_result().unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert_eq!(e.code, 400);
    assert!(e.message().contains("ErrorInvalidRecipients"), "{e}");
}

#[test]
fn unreachable_graph_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = open(
        &settings(&format!("https://127.0.0.1:{port}")),
        &broker(SHARED),
    );
    let e = t
        .send(&build(&request("someone@example.com", "nowhere")))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(e.message().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert_eq!(
        t.status().state,
        mailhost_plugin_api::ConnState::UNABLE_TO_CONNECT
    );
}

/// `n` recipients in the structured parts and the envelope (the JSON route).
fn with_recipients(subject: &str, n: usize) -> mailhost_plugin_api::OutgoingMessage {
    let mut msg = build(&request("first@example.com", subject));
    let all: Vec<String> = (0..n).map(|i| format!("r{i}@example.com")).collect();
    msg.parts.to = all
        .iter()
        .map(|a| mailhost_plugin_api::Mailbox {
            name: "".into(),
            email: a.as_str().into(),
        })
        .collect::<Vec<_>>()
        .into();
    msg.envelope.to = all
        .iter()
        .map(|a| a.as_str().into())
        .collect::<Vec<_>>()
        .into();
    msg
}

#[test]
fn more_than_500_recipients_are_refused_before_any_request() {
    // The strict double refuses over 500 recipients as Exchange Online does.
    let double = StrictDouble::start(None);
    let mut s = settings(&double.url());
    s["save_to_sent_items"] = json!(false);
    let t = open(&s, &broker(&double.url()));
    let e = t
        .send(&with_recipients(&unique("rcpt501"), 501))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::PERMANENT, "{e}");
    assert!(
        e.message().contains(
            "Microsoft 365 accepts at most 500 recipients per message; split the message or use an SMTP account"
        ),
        "{e}"
    );
    assert!(e.message().contains("501 recipients"), "{e}");
    let e = t
        .compose(&with_recipients(&unique("draft501"), 501))
        .into_result()
        .unwrap_err();
    assert!(e.message().contains("at most 500"), "{e}");
    let stats = double.stats();
    assert_eq!(stats["tokenRequests"], 0, "a request went out: {stats}");
    assert_eq!(stats["sendMail"], 0, "{stats}");
    // Exactly 500 is allowed, and the double takes it.
    let subject = unique("rcpt500");
    t.send(&with_recipients(&subject, 500))
        .into_result()
        .unwrap();
    let stored = read_json(&sent_one(double.dir(), &subject));
    assert_eq!(
        stored["message"]["toRecipients"].as_array().unwrap().len(),
        500
    );
}

#[test]
fn line_breaks_in_addresses_are_refused_before_any_request() {
    let double = StrictDouble::start(None);
    let t = open(&settings(&double.url()), &broker(&double.url()));
    let mut msg = build(&request("someone@example.com", &unique("inj")));
    msg.envelope.to = vec!["someone@example.com\r\nBcc: spy@example.com".into()].into();
    let e = t.send(&msg).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::PERMANENT, "{e}");
    assert!(e.message().contains("recipient"), "{e}");
    assert!(!e.message().contains(['\r', '\n']), "never raw: {e}");
    assert_eq!(double.stats()["tokenRequests"], 0);
}
