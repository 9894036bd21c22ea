//! The HTTP API: bad requests, delivery faults and idempotency, groups, bulk retry
//! and cancel, compose, account checks and the policy's explanation.

use super::*;

#[test]
fn bad_requests_get_problem_json_and_nothing_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--no-workers"]);
    let good =
        json!({"tenant": "acme", "to": ["bob@example.com"], "subject": "Hi", "text": "Hello"});

    // no token, a wrong token, a malformed header
    let r = s.post_json(None, &good);
    assert_problem(&r, 401, "unauthorized");
    assert_problem(&s.post_json(Some("wrong"), &good), 401, "unauthorized");
    let r = s.call("GET", "/v1/status", None, None, Vec::new());
    assert_problem(&r, 401, "unauthorized");
    // a tenant the token is not bound to
    let mut other = good.clone();
    other["tenant"] = json!("initech");
    assert_problem(
        &s.post_json(Some(ERP_TOKEN), &other),
        403,
        "token-not-bound",
    );
    // bad JSON, not an object, unknown field, wrong type
    let r = s.call(
        "POST",
        "/v1/messages",
        Some(ERP_TOKEN),
        Some("application/json"),
        b"{\"to\": [".to_vec(),
    );
    assert_problem(&r, 400, "bad-json");
    assert_problem(
        &s.post_json(Some(ERP_TOKEN), &json!([1, 2])),
        400,
        "bad-json",
    );
    let mut unknown = good.clone();
    unknown["sujbect"] = json!("typo");
    assert_problem(&s.post_json(Some(ERP_TOKEN), &unknown), 400, "bad-field");
    let mut wrong = good.clone();
    wrong["to"] = json!({"address": "bob@example.com"});
    assert_problem(&s.post_json(Some(ERP_TOKEN), &wrong), 400, "bad-field");
    // missing recipients
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "subject": "Hi", "text": "x"}),
    );
    assert_problem(&r, 400, "invalid-message");
    // header injection through the subject and an extra header
    let mut inj = good.clone();
    inj["subject"] = json!("Hi\r\nBcc: victim@example.com");
    assert_problem(&s.post_json(Some(ERP_TOKEN), &inj), 400, "invalid-message");
    let mut inj = good.clone();
    inj["headers"] = json!([["X-Ok", "a\r\nBcc: victim@example.com"]]);
    assert_problem(&s.post_json(Some(ERP_TOKEN), &inj), 400, "invalid-message");
    // a file on the server as attachment; host-only options
    let mut att = good.clone();
    att["attachments"] = json!([{"path": "/etc/passwd"}]);
    assert_problem(&s.post_json(Some(ERP_TOKEN), &att), 400, "attachment-path");
    let mut creds = good.clone();
    creds["options"] = json!({"credentials": {"username": "x", "password": "y"}});
    assert_problem(
        &s.post_json(Some(ERP_TOKEN), &creds),
        403,
        "host-only-option",
    );
    // the wrong media type; an oversized body
    let r = s.call(
        "POST",
        "/v1/messages",
        Some(ERP_TOKEN),
        Some("text/plain"),
        b"hello".to_vec(),
    );
    assert_problem(&r, 415, "media-type");
    let r = s.call(
        "POST",
        "/v1/messages?tennant=acme",
        Some(ERP_TOKEN),
        Some("message/rfc822"),
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\n\r\nx\r\n".to_vec(),
    );
    assert_problem(&r, 400, "bad-query");
    let r = s.call(
        "GET",
        "/v1/messages?state=lost",
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 400, "bad-query");
    // a huge or hostile time: refused, the answer does not echo it all
    let r = s.call(
        "GET",
        &format!("/v1/messages?since={}%00%0D%0A&until=1", "9".repeat(5000)),
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 400, "bad-query");
    let detail = r.2["detail"].as_str().unwrap();
    assert!(detail.len() < 300 && !detail.contains('\r'), "{detail}");
    let mut big = good.clone();
    big["text"] = json!("x".repeat(3 * 1024 * 1024));
    assert_problem(&s.post_json(Some(ERP_TOKEN), &big), 413, "body-too-large");
    // The same with no length given (chunked): read on and answered, not reset.
    {
        use std::io::{Read, Write};
        let port: u16 = s.base.rsplit(':').next().unwrap().parse().unwrap();
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let head = format!("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ERP_TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        c.write_all(head.as_bytes()).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..128 {
            c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .unwrap();
            c.write_all(&chunk).unwrap();
            c.write_all(b"\r\n").unwrap();
        }
        c.write_all(b"0\r\n\r\n").unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("body-too-large"), "{answer}");
    }
    // unknown message, unknown endpoint
    let r = s.call(
        "GET",
        "/v1/messages/0000-nope",
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 404, "not-found");
    // a huge or hostile id: not found, and the answer shows a short, escaped
    // piece of it
    for path in [
        format!("/v1/messages/{}%1B%5B2J%0D%0A", "f".repeat(4000)),
        format!("/v1/batches/{}%00", "x".repeat(4000)),
    ] {
        let r = s.call("GET", &path, Some(OPS_TOKEN), None, Vec::new());
        assert_problem(&r, 404, "not-found");
        let detail = r.2["detail"].as_str().unwrap();
        assert!(
            detail.len() < 120 && !detail.chars().any(char::is_control),
            "{detail}"
        );
    }
    assert_problem(
        &s.call("GET", "/v2/nothing", Some(OPS_TOKEN), None, Vec::new()),
        404,
        "not-found",
    );

    // a wrong field is named by its path
    for (bad, path) in [
        (json!({"to": 5}), "to: "),
        (
            json!({"attachments": [{"filename": "a.txt", "data": "!!not base64"}]}),
            "attachments[0].data: ",
        ),
    ] {
        let mut body = good.clone();
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = s.post_json(Some(ERP_TOKEN), &body);
        assert_problem(&r, 400, "bad-field");
        let detail = r.2["detail"].as_str().unwrap();
        assert!(detail.starts_with(path), "{detail}");
    }
    // names and keys: bounded text, never echoed raw
    let long = "k".repeat(300);
    for (field, value) in [
        ("user", "bob\u{1b}[2J"),
        ("tenant", "acme\r\nX-Injected: 1"),
        ("purpose", "p\u{0}"),
        ("mode", "smtp\u{7}"),
        ("idempotency_key", long.as_str()),
    ] {
        let mut bad = good.clone();
        bad[field] = json!(value);
        let r = s.post_json(Some(OPS_TOKEN), &bad);
        assert_problem(&r, 400, "invalid-message");
        let detail = r.2["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(field) && detail.len() < 200,
            "{field}: {detail}"
        );
        assert!(!detail.chars().any(char::is_control), "{detail}");
    }
    // what a bound token may not name, a state, an action: shown escaped
    let mut other = good.clone();
    other["tenant"] = json!(format!("{}\u{1b}[2J", "t".repeat(3000)));
    let r = s.post_json(Some(ERP_TOKEN), &other);
    assert_problem(&r, 403, "token-not-bound");
    let mut odd = good.clone();
    odd["action"] = json!("send\u{1b}[2J");
    for r in [
        r,
        s.post_json(Some(ERP_TOKEN), &odd),
        s.call(
            "GET",
            "/v1/messages?state=sent%1B%5B2J",
            Some(OPS_TOKEN),
            None,
            Vec::new(),
        ),
    ] {
        let detail = r.2["detail"].as_str().unwrap();
        assert!(
            detail.len() < 300 && !detail.chars().any(char::is_control),
            "{detail}"
        );
    }
    let r = s.call(
        "GET",
        "/v1/policy/explain?tenant=acme%1B%5B2J&to=a%40example.com%0D%0A",
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 400, "bad-query");
    let r = s.call(
        "POST",
        &format!("/v1/accounts/{}%1B/check", "x".repeat(3000)),
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 404, "not-found");
    let detail = r.2["detail"].as_str().unwrap();
    assert!(
        detail.len() < 200 && !detail.chars().any(char::is_control),
        "{detail}"
    );
    // a huge, a repeated, an empty or a half-quoted Idempotency-Key header
    let huge = "k".repeat(8000);
    let quoted_nul = "\"a\\x\"".to_string();
    for (values, code) in [
        // as a body key of that length is
        (vec![huge.as_str()], "invalid-message"),
        (vec!["a", "b"], "bad-field"),
        (vec!["\"\""], "bad-field"),
        (vec!["\"open"], "bad-field"),
        (vec![quoted_nul.as_str()], "bad-field"),
    ] {
        let extra: Vec<(&str, &str)> = values.iter().map(|v| ("Idempotency-Key", *v)).collect();
        let (status, headers, v) = s.call_with_extra(
            "POST",
            "/v1/messages",
            Some(ERP_TOKEN),
            Some("application/json"),
            &extra,
            serde_json::to_vec(&good).unwrap(),
        );
        let ctype = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_problem(&(status, ctype, v.clone()), 400, code);
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains("dempotency"), "{detail}");
        assert!(detail.len() < 600, "the key is not echoed whole: {detail}");
    }

    assert_eq!(total(&counts(&s)), 0, "a refused request queued something");

    // the same good request is accepted (so the refusals above were for their reasons)
    let r = s.post_json(Some(ERP_TOKEN), &good);
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(counts(&s)["queued"], 1);
    // one recipient may be a plain string
    let mut one = good.clone();
    one["to"] = json!("bob@example.com");
    let r = s.post_json(Some(ERP_TOKEN), &one);
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(counts(&s)["queued"], 2);
    // and the secret token never shows up in the log
    assert!(!s.log().contains(ERP_TOKEN));
}

#[test]
fn delivery_faults_and_idempotency_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "max_age_secs = 2");
    let s = start(dir.path(), &[]);

    // plain delivery into smtp-server, found by its recipient
    let ok_rcpt = format!("{}@example.com", unique("serve-ok"));
    let key = unique("order");
    let body = json!({"tenant": "acme", "to": [ok_rcpt], "subject": "Invoice", "text": "Hello", "idempotency_key": key});
    let r = s.post_json(Some(ERP_TOKEN), &body);
    assert_eq!(r.0, 202, "{:#}", r.2);
    assert_eq!(r.2["state"], "queued");
    assert_eq!(r.2["duplicate"], false);
    let id = r.2["id"].as_str().unwrap().to_string();
    let message_id = r.2["message_id"].as_str().unwrap().to_string();
    // the same key again: the first id, nothing new; Location names the
    // first message
    let again = s.call_with_headers(
        "POST",
        "/v1/messages",
        Some(ERP_TOKEN),
        Some("application/json"),
        serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(again.0, 202, "{:#}", again.2);
    assert_eq!(again.2["id"], id.as_str());
    assert_eq!(again.2["duplicate"], true);
    let location = again.1["location"].to_str().unwrap();
    assert_eq!(location, format!("/v1/messages/{id}"));
    assert_eq!(s.get(location)["id"], id.as_str());
    // The key as an `Idempotency-Key` header (bare or quoted) is the same
    // key; a header and a body key that differ are refused, nothing queued.
    let mut no_key = body.clone();
    no_key.as_object_mut().unwrap().remove("idempotency_key");
    for value in [key.clone(), format!("\"{key}\"")] {
        let r = s.call_with_extra(
            "POST",
            "/v1/messages",
            Some(ERP_TOKEN),
            Some("application/json"),
            &[("Idempotency-Key", &value)],
            serde_json::to_vec(&no_key).unwrap(),
        );
        assert_eq!(r.0, 202, "{:#}", r.2);
        assert_eq!(r.2["id"], id.as_str());
        assert_eq!(r.2["duplicate"], true);
    }
    let r = s.call_with_extra(
        "POST",
        "/v1/messages",
        Some(ERP_TOKEN),
        Some("application/json"),
        &[("Idempotency-Key", "another-key")],
        serde_json::to_vec(&body).unwrap(),
    );
    assert_eq!(r.0, 400, "{:#}", r.2);
    assert_eq!(r.2["type"], "urn:mailhost:problem:bad-field");
    assert!(
        r.2["detail"].as_str().unwrap().contains("differ"),
        "{:#}",
        r.2
    );
    let m = s.wait_for(&id, "sent", |m| m["state"] == "sent");
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(m["attempts"][0]["class"], "ok");
    assert_eq!(m["attempts"][0]["candidate"], "server");
    let (eml, meta) = saved_for(&ok_rcpt).expect("smtp-server saved the message");
    assert!(String::from_utf8_lossy(&eml).contains(&message_id));
    assert_eq!(meta["rcptTo"].as_array().unwrap().len(), 1, "sent once");
    // sent is final: cancel is refused with the state
    let r = s.call(
        "POST",
        &format!("/v1/messages/{id}/cancel"),
        Some(ERP_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 409, "state");

    // a complete message as message/rfc822: sent as it is, envelope from its headers
    let raw_rcpt = format!("{}@example.com", unique("serve-raw"));
    let raw = format!(
        "From: ERP <erp@example.com>\r\nTo: {raw_rcpt}\r\nSubject: raw mime\r\nMessage-ID: <{}@example.com>\r\n\r\nbody as given\r\n",
        unique("raw")
    );
    let r = s.call(
        "POST",
        "/v1/messages?tenant=acme",
        Some(ERP_TOKEN),
        Some("message/rfc822"),
        raw.into_bytes(),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let idr = r.2["id"].as_str().unwrap().to_string();
    s.wait_for(&idr, "sent", |m| m["state"] == "sent");
    let (eml, _) = saved_for(&raw_rcpt).expect("smtp-server saved the raw message");
    let eml = String::from_utf8_lossy(&eml);
    assert!(
        eml.contains("Subject: raw mime") && eml.contains("body as given"),
        "{eml}"
    );

    // 550 at RCPT → failed at once with the server's reply
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": ["rcpt-5xx@example.com"], "subject": "x", "text": "x"}),
    );
    let id550 = r.2["id"].as_str().unwrap().to_string();
    let m = s.wait_for(&id550, "failed", |m| m["state"] == "failed");
    let att = m["attempts"].as_array().unwrap();
    assert_eq!(att.len(), 1, "{m:#}");
    assert_eq!(att[0]["class"], "permanent");
    assert_eq!(att[0]["code"], "550");
    assert!(m["last_error"].as_str().unwrap().contains("550"), "{m:#}");
    // a failed message can be retried (it fails again, and is recorded again)
    let r = s.call(
        "POST",
        &format!("/v1/messages/{id550}/retry"),
        Some(ERP_TOKEN),
        None,
        Vec::new(),
    );
    assert_eq!(r.0, 200, "{:#}", r.2);
    s.wait_for(&id550, "failed twice", |m| {
        m["state"] == "failed" && m["attempts"].as_array().unwrap().len() == 2
    });

    // 450 at RCPT → deferred with backoff, tried again; after max_age (2 s) the
    // next way out (the global account, smtp-sink) takes it
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "acme", "to": ["rcpt-4xx@example.com"], "subject": "x", "text": "x"}),
    );
    let id450 = r.2["id"].as_str().unwrap().to_string();
    let m = s.wait_for(&id450, "sent", |m| m["state"] == "sent");
    let att = m["attempts"].as_array().unwrap();
    assert!(att.len() >= 3, "at least two 450s, then the sink: {m:#}");
    for a in &att[..att.len() - 1] {
        assert_eq!(a["candidate"], "server", "{m:#}");
        assert_eq!(a["class"], "transient", "{m:#}");
        assert_eq!(a["code"], "450", "{m:#}");
    }
    let last = &att[att.len() - 1];
    assert_eq!(last["candidate"], "sink", "{m:#}");
    // the ways out decided at acceptance, and the one the message went on to
    assert_eq!(m["ways_out"], json!(["server", "sink"]), "{m:#}");
    assert_eq!(m["chain_pos"], 1, "{m:#}");
    assert_eq!(last["class"], "ok", "{m:#}");
    // tries of one way out are spaced by the backoff, not made in one go
    let at: Vec<i64> = att[..att.len() - 1]
        .iter()
        .map(|a| a["at"].as_i64().unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] >= 100), "{at:?}");

    // Graph 429 with Retry-After: 1 → deferred for at least a second, then sent through the same way out
    let r = s.post_json(
        Some(ERP_TOKEN),
        &json!({"tenant": "globex", "to": [format!("throttle@example.com")], "subject": unique("throttle"), "text": "x"}),
    );
    assert_eq!(r.0, 202, "{:#}", r.2);
    let idt = r.2["id"].as_str().unwrap().to_string();
    let m = s.wait_for(&idt, "sent", |m| m["state"] == "sent");
    let att = m["attempts"].as_array().unwrap();
    assert_eq!(att.len(), 2, "{m:#}");
    assert_eq!(att[0]["candidate"], "m365");
    assert_eq!(att[0]["class"], "transient");
    assert_eq!(att[0]["code"], "429");
    assert_eq!(att[1]["candidate"], "m365");
    assert_eq!(att[1]["class"], "ok");
    let gap = att[1]["at"].as_i64().unwrap() - att[0]["at"].as_i64().unwrap();
    assert!(gap >= 1000, "Retry-After: 1 was not honoured: {gap} ms");

    // list by state, paged, and what the service saw of the accounts
    let sent = s.get("/v1/messages?state=sent&limit=2");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 2);
    let next = sent["next"].as_str().unwrap();
    let page2 = s.get(&format!("/v1/messages?state=sent&limit=2&before={next}"));
    assert!(!page2["messages"].as_array().unwrap().is_empty());
    // by account (the way out a message waits for or went through) and by time
    let ids = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let via_sink = ids(&s.get("/v1/messages?account=sink&limit=500"));
    assert!(via_sink.contains(&id450), "{via_sink:?}");
    assert!(!via_sink.contains(&id550), "{via_sink:?}");
    let via_server = ids(&s.get("/v1/messages?account=server&limit=500"));
    assert!(via_server.contains(&id550) && !via_server.contains(&id450));
    let created = s.get(&format!("/v1/messages/{id450}"))["created_at"]
        .as_i64()
        .unwrap();
    let later = ids(&s.get(&format!("/v1/messages?since={}&limit=500", created + 1)));
    assert!(!later.contains(&id450) && later.contains(&idt), "{later:?}");
    let before = ids(&s.get(&format!("/v1/messages?until={created}&limit=500")));
    assert!(
        !before.contains(&id450) && before.contains(&id550),
        "{before:?}"
    );
    let rfc =
        ids(&s.get("/v1/messages?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00%2B01:00"));
    assert!(rfc.is_empty(), "{rfc:?}");
    let r = s.call(
        "GET",
        "/v1/messages?since=yesterday",
        Some(OPS_TOKEN),
        None,
        Vec::new(),
    );
    assert_problem(&r, 400, "bad-query");
    assert!(
        r.2["detail"].as_str().unwrap().contains("RFC 3339"),
        "{:#}",
        r.2
    );
    // the stored bytes, as they went out
    let (status, ctype, raw) = rt().block_on(async {
        let r = s
            .client()
            .get(format!("{}/v1/messages/{id450}/raw", s.base))
            .bearer_auth(ERP_TOKEN)
            .send()
            .await
            .unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        (r.status().as_u16(), ct, r.text().await.unwrap())
    });
    assert_eq!((status, ctype.as_str()), (200, "message/rfc822"), "{raw}");
    assert!(
        raw.contains("Subject: x\r\n") && raw.contains("rcpt-4xx@example.com"),
        "{raw}"
    );
    let r = s.call(
        "GET",
        &format!("/v1/messages/{id450}/raw"),
        None,
        None,
        Vec::new(),
    );
    assert_eq!(r.0, 401, "{:#}", r.2);
    let st = s.get("/v1/status");
    let server = st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "server")
        .unwrap();
    assert_eq!(server["state"], "Operating", "{st:#}");

    // Prometheus text: the outbox by state, tries per account and class, latency per account
    let (status, ctype, _) = s.call("GET", "/metrics", None, None, Vec::new());
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = s.metrics();
    for line in [
        "mailhost_tries_total{account=\"server\",class=\"ok\"} 2",
        "mailhost_tries_total{account=\"server\",class=\"permanent\"} 2",
        "mailhost_tries_total{account=\"sink\",class=\"ok\"} 1",
        "mailhost_tries_total{account=\"m365\",class=\"transient\"} 1",
        "mailhost_outbox_messages{state=\"failed\"} 1",
        "mailhost_try_duration_seconds_count{account=\"m365\"} 2",
        // messages settled per account (the way out of their last try) and outcome
        "mailhost_account_messages_total{account=\"server\",outcome=\"sent\"} 2",
        "mailhost_account_messages_total{account=\"server\",outcome=\"failed\"} 2",
        "mailhost_account_messages_total{account=\"sink\",outcome=\"sent\"} 1",
        "mailhost_account_messages_total{account=\"m365\",outcome=\"deferred\"} 1",
        "mailhost_account_messages_total{account=\"m365\",outcome=\"sent\"} 1",
        "# TYPE mailhost_outbox_waiting_messages gauge",
        "mailhost_outbox_oldest_message_age_seconds{state=\"queued\"} ",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }

    // `mailhost status` shows what the service saw
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("service (outbox"), "{out}");
    assert!(out.contains("sent 4"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("server") && l.contains("Operating (seen")),
        "{out}"
    );
}

/// A lane's claimed messages that go out the same way are tried in one
/// plugin call (SMTP's `send_many`): the six queued here are claimed by the
/// one lane at once and all tried at the same moment, yet each gets its own
/// outcome from the server's own reply.
#[test]
fn a_group_goes_out_in_one_call_and_each_message_keeps_its_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "concurrency = 1\nper_account = 8");
    let ok: Vec<String> = (0..3)
        .map(|i| format!("{}@example.com", unique(&format!("group-ok{i}"))))
        .collect();
    let mut all: Vec<(String, &str)> = ok.iter().map(|r| (r.clone(), "sent")).collect();
    all.push(("rcpt-5xx@example.com".into(), "failed"));
    all.push(("data-5xx@example.com".into(), "failed"));
    all.push(("rcpt-4xx@example.com".into(), "deferred"));
    // queued with the workers off, so that one claim takes them all
    let ids: Vec<String> = {
        let s = start(dir.path(), &["--no-workers"]);
        all.iter()
            .map(|(rcpt, _)| {
                let r = s.post_json(
                    Some(ERP_TOKEN),
                    &json!({"tenant": "acme", "to": [rcpt], "subject": "group", "text": "x"}),
                );
                assert_eq!(r.0, 202, "{:#}", r.2);
                r.2["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let s = Service::start_with(
        dir.path(),
        Options {
            env: &[(SECRET_VAR, "test-secret"), ("RUST_LOG", "mailhost=debug")],
            quiet: true,
            ..Options::default()
        },
    );
    let mut tried_at = Vec::new();
    for (id, (rcpt, state)) in ids.iter().zip(&all) {
        let m = s.wait_for(id, state, |m| {
            m["state"] == *state && !m["attempts"].as_array().unwrap().is_empty()
        });
        let att = m["attempts"].as_array().unwrap();
        assert_eq!(att.len(), 1, "{rcpt}: {m:#}");
        assert_eq!(att[0]["candidate"], "server", "{m:#}");
        match rcpt.split('@').next().unwrap() {
            "rcpt-5xx" => assert_eq!(att[0]["code"], "550", "{m:#}"),
            "data-5xx" => assert_eq!(att[0]["code"], "554", "{m:#}"),
            "rcpt-4xx" => {
                assert_eq!(att[0]["class"], "transient", "{m:#}");
                assert_eq!(att[0]["code"], "450", "{m:#}");
            }
            _ => {
                assert_eq!(att[0]["class"], "ok", "{m:#}");
                let (_, meta) = saved_for(rcpt).expect("smtp-server saved the message");
                assert_eq!(meta["rcptTo"].as_array().unwrap().len(), 1, "sent once");
            }
        }
        tried_at.push(att[0]["at"].as_i64().unwrap());
    }
    // one call: every try of the group started at the same moment
    tried_at.dedup();
    assert_eq!(tried_at.len(), 1, "{tried_at:?}");
    let log = s.log();
    assert!(
        log.contains("outbox: 6 messages out through `server` in one plugin call"),
        "{log}"
    );
}

/// `mailhost check` refreshes the state `mailhost status` shows for the
/// account (when there is an outbox; none is created for it).
#[test]
fn check_refreshes_the_state_the_status_shows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    let (code, out, err) = cli(dir.path(), &["check", "server"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !dir.path().join("outbox.db").exists(),
        "check created an outbox"
    );
    let args = [
        "send",
        "--queue",
        "--to",
        "bob@example.com",
        "--subject",
        "s",
        "--text",
        "x",
    ];
    assert_eq!(cli(dir.path(), &args).0, 0);
    edit(
        &cfg,
        "[tenants.acme]\n",
        "[accounts.dead]\nplugin = \"smtp\"\nfrom = \"erp@example.com\"\nhost = \"127.0.0.1\"\nport = 1\nsecurity = \"none\"\n\n[tenants.acme]\n",
    );
    let (code, out, err) = cli(dir.path(), &["check", "server"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(dir.path(), &["check", "dead"]);
    assert_eq!(code, 69, "{out}{err}");
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name) && l.contains("(seen"))
            .unwrap_or_else(|| panic!("no state for {name}: {out}"))
            .to_string()
    };
    assert!(line("server").contains("Operating (seen"), "{out}");
    let dead = line("dead");
    assert!(dead.contains("Unable to connect: "), "{dead}");
    assert!(!dead.contains('\r'), "{dead}");
    // an account removed from the config is no longer listed
    edit(
        &cfg,
        "[accounts.dead]\nplugin = \"smtp\"\nfrom = \"erp@example.com\"\nhost = \"127.0.0.1\"\nport = 1\nsecurity = \"none\"\n\n",
        "",
    );
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("Unable to connect"), "{out}");
    // with sending switched off, every account shows Stopped
    edit(&cfg, "[policy]\n", "[policy]\nenabled = false\n");
    let (code, out, err) = cli(dir.path(), &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("server")
            && l.contains("Stopped: sending is switched off ([policy] enabled = false)")),
        "{out}"
    );
}

/// `POST /v1/messages/cancel` and `/retry`: every match of the list's
/// filters, within what the token may touch.
#[test]
fn the_api_cancels_and_retries_every_match() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--no-workers"]);
    for tenant in ["acme", "acme", "globex"] {
        let r = s.post_json(
            Some(ERP_TOKEN),
            &json!({"tenant": tenant, "to": ["bulk@example.com"], "subject": "bulk", "text": "x"}),
        );
        assert_eq!(r.0, 202, "{:#}", r.2);
    }
    let post = |path: &str, token: Option<&str>| s.call("POST", path, token, None, Vec::new());
    // a token bound to two tenants names one of them; no token
    assert_problem(
        &post("/v1/messages/cancel", Some(ERP_TOKEN)),
        400,
        "missing-field",
    );
    assert_eq!(post("/v1/messages/cancel?tenant=acme", None).0, 401);
    assert_problem(
        &post("/v1/messages/cancel?tenant=initech", Some(ERP_TOKEN)),
        403,
        "token-not-bound",
    );
    assert_problem(
        &post("/v1/messages/cancel?tenant=acme&limit=1", Some(ERP_TOKEN)),
        400,
        "bad-query",
    );
    assert_problem(
        &post("/v1/messages/retry?tenant=acme&state=sent", Some(ERP_TOKEN)),
        400,
        "bad-query",
    );
    let r = post("/v1/messages/cancel?tenant=acme", Some(ERP_TOKEN));
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2, json!({"changed": 2, "state": "cancelled"}));
    // failed ones by default: none; the cancelled ones when asked
    let r = post("/v1/messages/retry?tenant=acme", Some(ERP_TOKEN));
    assert_eq!(r.2["changed"], 0, "{:#}", r.2);
    let r = post(
        "/v1/messages/retry?tenant=acme&state=cancelled&since=2000-01-01T00:00:00Z",
        Some(ERP_TOKEN),
    );
    assert_eq!(r.2, json!({"changed": 2, "state": "queued"}));
    let c = counts(&s);
    assert_eq!((c["queued"], c["cancelled"]), (3, 0), "{c:?}");
    // a consistent copy while the service runs; never over a file
    let copy = dir.path().join("backup.db");
    let copy_arg = copy.to_str().unwrap();
    let (code, out, err) = cli(dir.path(), &["outbox", "backup", copy_arg]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = cli(dir.path(), &["outbox", "backup", copy_arg]);
    assert_eq!(code, 69);
    assert!(err.contains("exists; give a new file"), "{err}");
    let copied = rt().block_on(async {
        let store = mailhost::outbox::sqlite::SqliteStore::open(&copy)
            .await
            .unwrap();
        mailhost::outbox::Store::counts(&store).await.unwrap()
    });
    assert_eq!(copied.get("queued"), Some(&3), "{copied:?}");
    // how long the oldest open message has waited
    let st = s.get("/v1/status");
    assert!(st["oldest"]["queued"].as_i64().unwrap() > 0, "{st:#}");
    assert!(st["oldest"].get("deferred").is_none(), "{st:#}");
}

#[test]
fn desktop_compose_modes_are_unavailable_in_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    edit(&cfg, "[policy]\n", "[policy]\ncompose_mode = \"builtin\"\n");
    let s = start(dir.path(), &["--no-workers"]);
    let r = s.post_json(
        Some(OPS_TOKEN),
        &json!({"action": "compose", "from": "erp@example.com", "to": ["bob@example.com"], "subject": "x", "text": "x"}),
    );
    assert_problem(&r, 422, "desktop-compose");
    assert!(r.2["detail"].as_str().unwrap().contains("builtin"));
    let r = s.call(
        "POST",
        "/v1/compose",
        Some(OPS_TOKEN),
        Some("application/json"),
        serde_json::to_vec(&json!({"from": "erp@example.com", "to": ["bob@example.com"], "subject": "x", "text": "x"})).unwrap(),
    );
    assert_problem(&r, 422, "desktop-compose");
    assert_eq!(total(&counts(&s)), 0);
}

#[test]
fn account_checks_run_on_demand_and_record_the_connection_state() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the sink's port: its check fails.
    config(dir.path(), free_port(), "");
    let s = start(dir.path(), &["--no-workers"]);
    let check = |name: &str, token: &str, body: &[u8]| {
        s.call(
            "POST",
            &format!("/v1/accounts/{name}/check"),
            Some(token),
            Some("application/json"),
            body.to_vec(),
        )
    };

    let r = check("server", OPS_TOKEN, br#"{"to": "bob@example.com"}"#);
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2["account"], "server");
    assert_eq!(r.2["ok"], true, "{:#}", r.2);
    let steps = r.2["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{:#}", r.2);
    for st in steps {
        for k in ["name", "outcome", "detail", "server_text", "duration_ms"] {
            assert!(st.get(k).is_some(), "step without {k}: {st:#}");
        }
    }
    assert_eq!(account_state(&s, "server").0, "Operating");

    let r = check("sink", OPS_TOKEN, b"");
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2["ok"], false, "{:#}", r.2);
    assert!(r.2["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|st| st["outcome"] == "failed"));
    let (state, reason) = account_state(&s, "sink");
    assert_eq!(state, "Unable to connect");
    assert!(!reason.is_empty());

    assert_problem(&check("nope", OPS_TOKEN, b""), 404, "not-found");
    assert_problem(&check("server", ERP_TOKEN, b""), 403, "scope");
    assert_problem(&check("server", OPS_TOKEN, b"{\"cc\": 1}"), 400, "bad-json");
    assert_problem(
        &s.call("POST", "/v1/accounts/server/check", None, None, Vec::new()),
        401,
        "unauthorized",
    );
}

#[test]
fn policy_explain_answers_for_the_tenants_a_token_may_act_for() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), 2525, "");
    let s = start(dir.path(), &["--no-workers"]);
    let explain = |q: &str, token: &str| {
        s.call(
            "GET",
            &format!("/v1/policy/explain?{q}"),
            Some(token),
            None,
            Vec::new(),
        )
    };
    let r = explain("tenant=globex&to=bob@example.com", OPS_TOKEN);
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2["action"], "send");
    assert!(!r.2["trace"].as_array().unwrap().is_empty(), "{:#}", r.2);
    assert!(r.2["refused"].is_null(), "{:#}", r.2);
    assert_eq!(r.2["chain"][0]["label"], "m365", "{:#}", r.2);
    let text = r.2["text"].as_str().unwrap();
    assert!(text.contains("saw:") && text.contains("chose:"), "{text}");

    let r = explain("tenant=acme&action=compose", ERP_TOKEN);
    assert_eq!(r.0, 200, "{:#}", r.2);
    assert_eq!(r.2["action"], "compose");

    assert_problem(
        &explain("tenant=initech", ERP_TOKEN),
        403,
        "token-not-bound",
    );
    // Bound to two tenants: it must say which.
    assert_problem(&explain("", ERP_TOKEN), 400, "missing-field");
    assert_problem(
        &explain("tenant=acme&action=fly", OPS_TOKEN),
        400,
        "bad-query",
    );
    assert_problem(
        &explain("tenant=acme&colour=red", OPS_TOKEN),
        400,
        "bad-query",
    );
}

#[test]
fn compose_runs_now_and_returns_what_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 2525, "");
    // Drafts in the Graph mailbox: no desktop needed.
    edit(
        &cfg,
        "[policy]\n",
        "[policy]\ncompose_mode = \"m365-draft\"\n",
    );
    let s = start(dir.path(), &["--no-workers"]);
    let compose = |token: &str, body: &Value| {
        s.call(
            "POST",
            "/v1/compose",
            Some(token),
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
    };
    let subject = unique("compose");
    let r = compose(
        ERP_TOKEN,
        &json!({"tenant": "globex", "from": MAILBOX, "to": ["bob@example.com"], "subject": subject, "text": "draft"}),
    );
    assert_eq!(r.0, 200, "{:#}\nlog:\n{}", r.2, s.log());
    for k in ["kind", "draft_id", "web_link", "message"] {
        assert!(r.2.get(k).is_some(), "no {k}: {:#}", r.2);
    }
    assert_eq!(r.2["candidate"]["label"], "m365", "{:#}", r.2);
    // Not queued.
    assert_eq!(total(&counts(&s)), 0);

    assert_problem(
        &compose(
            ERP_TOKEN,
            &json!({"tenant": "initech", "to": ["bob@example.com"], "subject": "x", "text": "x"}),
        ),
        403,
        "token-not-bound",
    );
    assert_problem(
        &compose(
            ERP_TOKEN,
            &json!({"tenant": "globex", "action": "send", "to": ["bob@example.com"], "subject": "x", "text": "x"}),
        ),
        400,
        "bad-field",
    );
    assert_problem(
        &s.call("POST", "/v1/compose", Some(ERP_TOKEN), None, b"x".to_vec()),
        415,
        "media-type",
    );
}
