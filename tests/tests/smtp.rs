//! The SMTP plugin through its loaded cdylib, against the real peers
//! (../shared/peers): Postfix smtp-sink (2525 and private ports 2600+), the Node
//! smtp-server (2587 STARTTLS, 2465 TLS, 2526 plain), Dovecot POP3 (1110,
//! 1995) and the Graph double (8443) for XOAUTH2 tokens.

use mailhost_plugin_api::mime::strip_bcc;
use mailhost_plugin_api::{ConnState, ErrorClass, PluginError, Receipt, StepOutcome, TransportBox};
use mailhost_tests::peer_ca;
use mailhost_tests::smtp::{
    graph_double_broker, message, open, plugin, saved_for, unique, CappedServer, Sink, TestHost,
    Tokens,
};
use serde_json::{json, Value};

const PASS: &str = "testpass";

fn host() -> TestHost {
    TestHost::new(Tokens::None)
}

fn ca() -> String {
    peer_ca().display().to_string()
}

fn starttls_account() -> Value {
    json!({
        "host": "127.0.0.1", "port": 2587, "security": "starttls", "ca_file": ca(),
        "auth": "required", "username": "testuser", "password": PASS
    })
}

fn send(
    t: &TransportBox,
    to: &[&str],
    bcc: &[&str],
    options: Value,
) -> Result<Receipt, PluginError> {
    let m = message(
        "Sender <sender@example.com>",
        to,
        bcc,
        &unique("subject"),
        options,
    );
    t.send(&m).into_result()
}

fn rcpt(tag: &str) -> String {
    format!("{}@example.com", unique(tag))
}

fn details(r: &Receipt) -> Value {
    serde_json::from_str(r.details_json.as_str()).unwrap()
}

#[test]
fn manifest_declares_smtp_with_a_closed_schema() {
    let m = plugin().manifest();
    assert_eq!(m.name.as_str(), "smtp");
    assert!(m.modes.iter().any(|x| x.as_str() == "smtp"));
    let schema: Value = serde_json::from_str(m.settings_schema.as_str()).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["properties"]["pop_before_smtp"].is_object());
}

#[test]
fn plain_smtp_to_smtp_sink_pipelines() {
    let t = open(
        &json!({"host": "127.0.0.1", "port": 2525, "security": "none", "auth": "none"}),
        &host(),
    )
    .unwrap();
    let to = rcpt("sink");
    let r = send(&t, &[&to], &[], json!({})).unwrap();
    assert_eq!(r.accepted.len(), 1);
    assert!(r.server_reply.starts_with("250"), "{}", r.server_reply);
    assert_eq!(details(&r)["pipelining"], true);
    assert_eq!(t.status().state, ConnState::OPERATING);
    t.close();
    assert_eq!(t.status().state, ConnState::STOPPED);
}

fn auth_with(mechanism: &str) {
    let host = host();
    let mut acct = starttls_account();
    acct["mechanism"] = json!(mechanism);
    let t = open(&acct, &host).unwrap();
    let to = rcpt(&format!("auth-{mechanism}"));
    let r = send(&t, &[&to], &[], json!({})).unwrap();
    let d = details(&r);
    assert_eq!(d["tls"], true);
    assert_eq!(d["auth"], mechanism.to_ascii_uppercase());
    let (_, meta) = saved_for(&to).expect("saved by smtp-server");
    assert_eq!(meta["user"], "testuser");
    assert_eq!(meta["tls"], true);
    assert_eq!(meta["port"], 2587);
}

#[test]
fn starttls_with_auth_plain() {
    auth_with("plain");
}

#[test]
fn starttls_with_auth_login() {
    auth_with("login");
}

#[test]
fn starttls_with_auth_cram_md5() {
    auth_with("cram-md5");
}

#[test]
fn implicit_tls_with_auto_mechanism() {
    let t = open(
        &json!({"host": "127.0.0.1", "port": 2465, "security": "tls", "ca_file": ca(),
                "username": "testuser", "password": PASS, "min_tls": "1.3"}),
        &host(),
    )
    .unwrap();
    let to = rcpt("tls");
    let r = send(&t, &[&to], &[], json!({})).unwrap();
    assert_eq!(details(&r)["auth"], "PLAIN");
    let (_, meta) = saved_for(&to).unwrap();
    assert_eq!(meta["port"], 2465);
    assert_eq!(meta["tls"], true);
}

/// A message far larger than the socket and TLS buffers: the writes wait for
/// the socket many times, and the TLS records still buffered when the body is
/// handed over must go out before the client waits for the reply.
#[test]
fn large_messages_over_starttls_and_implicit_tls_arrive_byte_for_byte() {
    let implicit = json!({"host": "127.0.0.1", "port": 2465, "security": "tls", "ca_file": ca(),
                          "username": "testuser", "password": PASS});
    // Not quite random, not compressible to nothing: 6 MB of attachment.
    let data: Vec<u8> = (0u32..6 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for acct in [starttls_account(), implicit] {
        let t = open(&acct, &host()).unwrap();
        let to = rcpt("large");
        let m = mailhost::message::build(
            &mailhost::message::MessageRequest {
                from: Some("Sender <sender@example.com>".into()),
                to: vec![to.clone()],
                subject: unique("large"),
                text: Some("The scan is attached.".into()),
                attachments: vec![mailhost::message::AttachmentRequest {
                    filename: Some("scan.bin".into()),
                    media_type: Some("application/octet-stream".into()),
                    data: Some(data.clone()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert!(m.mime.len() > 8 * 1024 * 1024, "{}", m.mime.len());
        for _ in 0..2 {
            // The second goes over the pooled connection.
            t.send(&m).into_result().unwrap();
        }
        let (eml, meta) = saved_for(&to).unwrap();
        assert_eq!(meta["tls"], true, "{meta}");
        assert!(
            eml == strip_bcc(&m.mime).into_owned(),
            "saved bytes differ from the sent MIME"
        );
    }
}

#[test]
fn auto_uses_cram_md5_without_tls_and_plain_only_when_allowed() {
    let base = json!({"host": "127.0.0.1", "port": 2526, "security": "none", "username": "testuser", "password": PASS});
    let t = open(&base, &host()).unwrap();
    let r = send(&t, &[&rcpt("cram")], &[], json!({})).unwrap();
    assert_eq!(details(&r)["auth"], "CRAM-MD5");

    let mut plain = base.clone();
    plain["mechanism"] = json!("plain");
    let e = open(&plain, &host())
        .err()
        .expect("plain text auth without TLS is refused");
    assert_eq!(e.class(), ErrorClass::CONFIG);
    assert!(e.message().contains("allow_plaintext_auth"), "{e}");

    plain["allow_plaintext_auth"] = json!(true);
    let t = open(&plain, &host()).unwrap();
    let r = send(&t, &[&rcpt("plain-clear")], &[], json!({})).unwrap();
    assert_eq!(details(&r)["auth"], "PLAIN");
}

#[test]
fn wrong_password_is_auth_and_never_shows_the_secret() {
    let mut acct = starttls_account();
    acct["password"] = json!("Sup3rSecretWrong!");
    let t = open(&acct, &host()).unwrap();
    let e = send(&t, &[&rcpt("wrongpw")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert_eq!(e.code, 535);
    assert!(!e.message().contains("Sup3rSecretWrong"), "{e}");
    assert!(!format!("{e:?}").contains("Sup3rSecretWrong"));
    let st = t.status();
    assert_eq!(st.state, ConnState::UNABLE_TO_CONNECT);
    assert!(!st.reason.contains("Sup3rSecretWrong"));
}

#[test]
fn per_user_credentials_from_options() {
    // A `file:` secret, resolved by the host's own resolver (no process-wide
    // environment change in a multi-threaded test binary).
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{PASS}\n")).unwrap();
    let t = open(
        &json!({"host": "127.0.0.1", "port": 2587, "ca_file": ca(), "auth": "optional"}),
        &host(),
    )
    .unwrap();
    let to = rcpt("peruser");
    let opts = json!({"credentials": {"username": "testuser", "password": format!("file:{}", secret.path().display())}});
    send(&t, &[&to], &[], opts).unwrap();
    assert_eq!(saved_for(&to).unwrap().1["user"], "testuser");
    // Without credentials 2587 refuses unauthenticated mail (530): an Auth error.
    let e = send(&t, &[&rcpt("anon")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert_eq!(e.code, 530);
}

#[test]
fn starttls_required_but_not_offered_is_a_clear_config_error() {
    let t = open(
        &json!({"host": "127.0.0.1", "port": 2526, "security": "starttls"}),
        &host(),
    )
    .unwrap();
    let e = send(&t, &[&rcpt("nostarttls")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
    assert!(e.message().contains("does not offer STARTTLS"), "{e}");
    assert!(e.message().contains("127.0.0.1:2526"), "{e}");
}

#[test]
fn auth_before_starttls_is_refused_by_the_server_as_config() {
    // 2587 offers AUTH before STARTTLS but answers 538; with security = none
    // and plain text auth allowed the plugin tries, and the server refuses.
    let t = open(
        &json!({"host": "127.0.0.1", "port": 2587, "security": "none", "auth": "required",
                "mechanism": "plain", "allow_plaintext_auth": true, "username": "testuser", "password": PASS}),
        &host(),
    )
    .unwrap();
    let e = send(&t, &[&rcpt("538")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
    assert_eq!(e.code, 538);
}

#[test]
fn self_signed_certificate_is_refused_by_default_and_accepted_with_ca_file() {
    let mut acct = starttls_account();
    acct.as_object_mut().unwrap().remove("ca_file");
    let t = open(&acct, &host()).unwrap();
    let e = send(&t, &[&rcpt("untrusted")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
    assert!(e.message().contains("ca_file"), "{e}");

    let t = open(&starttls_account(), &host()).unwrap();
    send(&t, &[&rcpt("trusted")], &[], json!({})).unwrap();

    acct["accept_invalid_certs"] = json!(true);
    let h = host();
    let t = open(&acct, &h).unwrap();
    send(&t, &[&rcpt("invalid-ok")], &[], json!({})).unwrap();
    assert!(
        h.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("accept_invalid_certs")),
        "accept_invalid_certs warns"
    );
}

#[test]
fn old_tls_versions_are_refused_with_rfc_8996() {
    let mut acct = starttls_account();
    acct["min_tls"] = json!("1.1");
    let e = open(&acct, &host()).err().unwrap();
    assert_eq!(e.class(), ErrorClass::CONFIG);
    assert!(e.message().contains("RFC 8996"), "{e}");
}

fn fault(local: &str) -> PluginError {
    let t = open(&starttls_account(), &host()).unwrap();
    send(&t, &[&format!("{local}@example.com")], &[], json!({})).unwrap_err()
}

#[test]
fn smtp_server_faults_end_in_the_right_class() {
    let e = fault("rcpt-4xx");
    assert_eq!((e.class(), e.code), (ErrorClass::TRANSIENT, 450), "{e}");
    assert!(e.enhanced().is_some_and(|x| x.starts_with("4.")), "{e}");
    let e = fault("rcpt-5xx");
    assert_eq!((e.class(), e.code), (ErrorClass::PERMANENT, 550), "{e}");
    assert!(e.enhanced().is_some_and(|x| x.starts_with("5.")), "{e}");
    let e = fault("rcpt-421");
    assert_eq!((e.class(), e.code), (ErrorClass::TRANSIENT, 421), "{e}");
    let e = fault("data-4xx");
    assert_eq!((e.class(), e.code), (ErrorClass::TRANSIENT, 451), "{e}");
    let e = fault("data-5xx");
    assert_eq!((e.class(), e.code), (ErrorClass::PERMANENT, 554), "{e}");
}

#[test]
fn partial_rejection_delivers_to_the_others() {
    let t = open(&starttls_account(), &host()).unwrap();
    let good = rcpt("partial");
    let r = send(
        &t,
        &[&good, "rcpt-5xx@example.com", "rcpt-4xx@example.com"],
        &[],
        json!({}),
    )
    .unwrap();
    assert_eq!(
        r.accepted.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        vec![good.as_str()]
    );
    assert_eq!(r.rejected.len(), 2);
    let rej: Vec<(String, ErrorClass)> = r
        .rejected
        .iter()
        .map(|x| (x.address.to_string(), x.error.class()))
        .collect();
    assert!(rej.contains(&("rcpt-5xx@example.com".into(), ErrorClass::PERMANENT)));
    assert!(rej.contains(&("rcpt-4xx@example.com".into(), ErrorClass::TRANSIENT)));
    assert_eq!(saved_for(&good).unwrap().1["rcptTo"], json!([good]));
    // The connection stays usable after the partial refusal.
    send(&t, &[&rcpt("after-partial")], &[], json!({})).unwrap();
}

fn sink_account(port: u16) -> Value {
    json!({"host": "127.0.0.1", "port": port, "security": "none", "auth": "none", "timeout_ms": 5000})
}

fn sink_fault(port: u16, flags: &[&str]) -> PluginError {
    let _sink = Sink::start(port, flags);
    let t = open(&sink_account(port), &host()).unwrap();
    send(&t, &[&rcpt("sinkfault")], &[], json!({})).unwrap_err()
}

#[test]
fn smtp_sink_421_at_rcpt_is_transient() {
    let e = sink_fault(2601, &["-Q", "RCPT"]);
    assert_eq!((e.class(), e.code), (ErrorClass::TRANSIENT, 421), "{e}");
}

#[test]
fn smtp_sink_450_at_rcpt_is_transient() {
    let e = sink_fault(2602, &["-r", "RCPT"]);
    assert_eq!((e.class(), e.code), (ErrorClass::TRANSIENT, 450), "{e}");
}

#[test]
fn smtp_sink_500_at_mail_is_permanent() {
    let e = sink_fault(2603, &["-f", "MAIL"]);
    assert_eq!((e.class(), e.code), (ErrorClass::PERMANENT, 500), "{e}");
}

#[test]
fn smtp_sink_silent_disconnect_at_data_is_transient() {
    let e = sink_fault(2604, &["-q", "DATA"]);
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(e.message().contains("127.0.0.1:2604"), "{e}");
}

#[test]
fn server_closing_after_the_data_is_transient() {
    let e = sink_fault(2605, &["-q", "."]);
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(e.message().contains("end of data"), "{e}");
}

#[test]
fn slow_server_hits_timeout_ms() {
    let _sink = Sink::start(2606, &["-w", "3"]);
    let mut acct = sink_account(2606);
    acct["timeout_ms"] = json!(500);
    let t = open(&acct, &host()).unwrap();
    let e = send(&t, &[&rcpt("slow")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(e.message().contains("timeout_ms"), "{e}");
}

#[test]
fn connection_refused_is_transient_with_host_and_port() {
    let t = open(&sink_account(2699), &host()).unwrap();
    assert_eq!(t.status().state, ConnState::NOT_CONNECTED);
    let e = send(&t, &[&rcpt("refused")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(e.message().contains("127.0.0.1:2699"), "{e}");
    let st = t.status();
    assert_eq!(st.state, ConnState::UNABLE_TO_CONNECT);
    assert!(st.reason.contains("127.0.0.1:2699"), "{}", st.reason);
}

#[test]
fn utf8_addresses_use_smtputf8_or_fail_as_unsupported() {
    let t = open(&starttls_account(), &host()).unwrap();
    let to = format!("{}-jörg@exämple.com", unique("utf8"));
    let r = send(&t, &[&to], &[], json!({})).unwrap();
    assert_eq!(details(&r)["smtputf8"], true);
    let (_, meta) = saved_for(&to).expect("saved");
    assert_eq!(meta["smtpUtf8"], true);

    // smtp-sink does not offer SMTPUTF8.
    let t = open(&sink_account(2525), &host()).unwrap();
    let e = send(&t, &[&to], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::UNSUPPORTED, "{e}");
    assert!(e.message().contains("SMTPUTF8"), "{e}");
}

#[test]
fn bcc_header_is_stripped_but_bcc_is_delivered() {
    let t = open(&starttls_account(), &host()).unwrap();
    let to = rcpt("to");
    let hidden = rcpt("bcc");
    let m = message(
        "Sender <sender@example.com>",
        &[&to],
        &[&hidden],
        &unique("bcc"),
        json!({}),
    );
    assert!(
        String::from_utf8_lossy(&m.mime).contains(&hidden),
        "the host keeps Bcc in the MIME"
    );
    let r = t.send(&m).into_result().unwrap();
    assert_eq!(r.accepted.len(), 2);
    let (eml, meta) = saved_for(&hidden).expect("Bcc recipient is in the envelope");
    assert!(meta["rcptTo"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == &json!(to)));
    assert_eq!(
        eml,
        strip_bcc(&m.mime).into_owned(),
        "saved bytes = the sent MIME without the Bcc header"
    );
    assert!(!String::from_utf8_lossy(&eml).contains(&hidden));
}

#[test]
fn dsn_parameters_reach_the_server() {
    let t = open(&starttls_account(), &host()).unwrap();
    let to = rcpt("dsn");
    let opts = json!({"dsn": {"notify": ["success", "failure"], "ret": "hdrs", "envid": "ENV-42"}});
    let r = send(&t, &[&to], &[], opts).unwrap();
    assert_eq!(details(&r)["dsn"], "requested");
    let (_, meta) = saved_for(&to).unwrap();
    assert_eq!(meta["dsn"]["ret"], "HDRS", "{meta}");
    assert_eq!(meta["dsn"]["envid"], "ENV-42", "{meta}");
    let notify = &meta["rcptDsn"][0]["notify"];
    assert_eq!(notify, &json!(["SUCCESS", "FAILURE"]), "{meta}");
}

#[test]
fn pool_reuses_connections() {
    let t = open(&starttls_account(), &host()).unwrap();
    let first = send(&t, &[&rcpt("pool")], &[], json!({})).unwrap();
    assert_eq!(details(&first)["reused_connection"], false);
    for _ in 0..3 {
        let r = send(&t, &[&rcpt("pool")], &[], json!({})).unwrap();
        assert_eq!(details(&r)["reused_connection"], true);
    }
}

/// Sends run on the calling thread's own runtime; a pooled connection made on
/// one thread is moved to another that needs it, TLS state and all — also when
/// the thread that made it has ended.
#[test]
fn pooled_connections_move_between_threads() {
    for acct in [starttls_account(), sink_account(2525)] {
        let t = std::sync::Arc::new(open(&acct, &host()).unwrap());
        // Made on a thread that then stays alive (its runtime too) ...
        let (made, done) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let t1 = t.clone();
        let keeper = std::thread::spawn(move || {
            let r = send(&t1, &[&rcpt("move")], &[], json!({})).unwrap();
            made.0
                .send(details(&r)["reused_connection"].clone())
                .unwrap();
            done.1.recv().unwrap();
        });
        assert_eq!(made.1.recv().unwrap(), false);
        let r = send(&t, &[&rcpt("move")], &[], json!({})).unwrap();
        assert_eq!(details(&r)["reused_connection"], true, "{acct}");
        done.0.send(()).unwrap();
        keeper.join().unwrap();
        // ... and made on a thread that has ended.
        let t2 = t.clone();
        std::thread::spawn(move || {
            // The pooled connection is at home here now: take it, give it back.
            send(&t2, &[&rcpt("move")], &[], json!({})).unwrap();
        })
        .join()
        .unwrap();
        let r = send(&t, &[&rcpt("move")], &[], json!({})).unwrap();
        assert_eq!(details(&r)["reused_connection"], true, "{acct}");
        t.close();
    }
}

/// A connection per message; QUIT is pipelined with the data (RFC 2920) and
/// the message still arrives whole.
#[test]
fn no_reuse_with_idle_timeout_zero() {
    for mut acct in [sink_account(2525), starttls_account()] {
        acct["pool"] = json!({"idle_timeout_ms": 0});
        let t = open(&acct, &host()).unwrap();
        for _ in 0..3 {
            let to = rcpt("noreuse");
            let r = send(&t, &[&to], &[], json!({})).unwrap();
            assert_eq!(details(&r)["reused_connection"], false);
            assert!(
                r.server_reply.as_str().starts_with("250"),
                "{}",
                r.server_reply
            );
            if acct["port"] == 2587 {
                let (eml, meta) = saved_for(&to).unwrap();
                assert_eq!(meta["tls"], true, "{meta}");
                assert!(String::from_utf8_lossy(&eml).contains(".a line starting with a dot"));
            }
        }
        assert_eq!(t.status().state, ConnState::OPERATING, "{acct}");
    }
}

/// A group in one call over one connection (`pool.max_size = 1`): each
/// message's MAIL, RCPT and DATA go out with the data of the one before
/// (RFC 2920 3.1), and every message keeps its own outcome — refusals at
/// RCPT and after the data, and a 421 that closes the connection: the
/// messages after it go out on a new one.
#[test]
fn a_group_on_one_connection_pipelines_across_messages_and_keeps_each_outcome() {
    let mut acct = starttls_account();
    acct["pool"] = json!({"max_size": 1});
    let t = open(&acct, &host()).unwrap();
    let tos: Vec<String> = [
        "", "", "rcpt-5xx", "", "data-5xx", "", "", "data-4xx", "rcpt-4xx", "", "rcpt-421", "", "",
    ]
    .iter()
    .map(|l| {
        if l.is_empty() {
            rcpt("chain")
        } else {
            format!("{l}@example.com")
        }
    })
    .collect();
    let group: Vec<_> = tos
        .iter()
        .map(|to| {
            message(
                "Sender <sender@example.com>",
                &[to],
                &[],
                &unique("chain"),
                json!({}),
            )
        })
        .collect();
    let got = plugin().send_many(&t, &group);
    assert_eq!(got.len(), tos.len());
    let local_of = |i: usize| tos[i].split('@').next().unwrap();
    for (i, (r, to)) in got.iter().zip(&tos).enumerate() {
        let local = local_of(i);
        let want = match local {
            "rcpt-5xx" => Some((ErrorClass::PERMANENT, 550)),
            "data-5xx" => Some((ErrorClass::PERMANENT, 554)),
            "data-4xx" => Some((ErrorClass::TRANSIENT, 451)),
            "rcpt-4xx" => Some((ErrorClass::TRANSIENT, 450)),
            "rcpt-421" => Some((ErrorClass::TRANSIENT, 421)),
            _ => None,
        };
        match (r, want) {
            (Err(e), Some(w)) => assert_eq!((e.class(), e.code), w, "{i} {to}: {e}"),
            (Ok(r), None) => {
                let d = details(r);
                // A new connection after the 421; the envelope went out
                // ahead when the message before sent its data (delivered,
                // or refused after it), not after a refusal at RCPT.
                let before = i.checked_sub(1).map(local_of);
                let reused = before.is_some_and(|b| b != "rcpt-421");
                let ahead = reused && before.is_some_and(|b| !b.starts_with("rcpt-"));
                assert_eq!(d["reused_connection"], reused, "{i} {to}: {d}");
                assert_eq!(d["pipelined_with_previous"], ahead, "{i} {to}: {d}");
                let (_, meta) = saved_for(to).expect("smtp-server saved the message");
                assert_eq!(meta["rcptTo"], json!([to]), "{meta}");
                assert_eq!(meta["tls"], true, "{meta}");
            }
            (r, w) => panic!("{i} {to}: {r:?}, expected {w:?}"),
        }
    }
    // The connection is still good for more.
    send(&t, &[&rcpt("after-chain")], &[], json!({})).unwrap();
}

#[test]
fn stale_pooled_connection_is_replaced() {
    let sink = Sink::start(2607, &[]);
    let t = std::sync::Arc::new(open(&sink_account(2607), &host()).unwrap());
    // Three connections in the pool (three sends at once).
    std::thread::scope(|sc| {
        for _ in 0..3 {
            let t = t.clone();
            sc.spawn(move || send(&t, &[&rcpt("stale")], &[], json!({})).unwrap());
        }
    });
    // The server goes away and comes back: the pooled connections are dead.
    sink.stop();
    let _sink = Sink::start(2607, &[]);
    let r = send(&t, &[&rcpt("stale")], &[], json!({})).unwrap();
    assert_eq!(
        details(&r)["reused_connection"],
        false,
        "a new connection replaced the dead ones"
    );
    send(&t, &[&rcpt("stale")], &[], json!({})).unwrap();
}

#[test]
fn full_pool_waits_then_fails_transient() {
    let _sink = Sink::start(2608, &["-w", "2"]);
    let mut acct = sink_account(2608);
    acct["pool"] = json!({"max_size": 1, "wait_timeout_ms": 200});
    let t = std::sync::Arc::new(open(&acct, &host()).unwrap());
    let t2 = t.clone();
    let slow = std::thread::spawn(move || send(&t2, &[&rcpt("slow-holder")], &[], json!({})));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let e = send(&t, &[&rcpt("waiter")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(e.message().contains("pool.max_size"), "{e}");
    slow.join().unwrap().unwrap();
}

fn pop_account(pop: Value) -> Value {
    json!({"host": "127.0.0.1", "port": 2526, "security": "none", "auth": "none", "pop_before_smtp": pop})
}

#[test]
fn pop_before_smtp_user_pass_with_stls() {
    // security defaults to starttls (STLS) for the POP leg too.
    let mut acct = pop_account(
        json!({"host": "127.0.0.1", "port": 1110, "username": "testuser", "password": PASS}),
    );
    let t = open(&acct, &host()).unwrap();
    let e = send(&t, &[&rcpt("pop-untrusted")], &[], json!({})).unwrap_err();
    assert_eq!(
        e.class(),
        ErrorClass::CONFIG,
        "the peers' certificate needs ca_file: {e}"
    );
    acct["ca_file"] = json!(ca());
    let t = open(&acct, &host()).unwrap();
    send(&t, &[&rcpt("pop-plain")], &[], json!({})).unwrap();
    assert_eq!(t.status().state, ConnState::OPERATING);
}

#[test]
fn pop_before_smtp_apop_over_pop3s() {
    // The POP leg shares the account's TLS settings (here: the peers' CA).
    let mut acct = pop_account(
        json!({"host": "127.0.0.1", "port": 1995, "security": "tls", "apop": true,
                                       "username": "testuser", "password": PASS}),
    );
    acct["ca_file"] = json!(ca());
    let t = open(&acct, &host()).unwrap();
    send(&t, &[&rcpt("pop-apop")], &[], json!({})).unwrap();
}

#[test]
fn pop_before_smtp_apop_in_clear_and_wrong_password() {
    let t = open(
        &pop_account(
            json!({"host": "127.0.0.1", "port": 1110, "security": "none", "apop": true,
                             "username": "testuser", "password": PASS}),
        ),
        &host(),
    )
    .unwrap();
    send(&t, &[&rcpt("pop-apop-clear")], &[], json!({})).unwrap();

    let t = open(
        &pop_account(
            json!({"host": "127.0.0.1", "port": 1110, "security": "none",
                             "username": "testuser", "password": "wrong-pop-secret"}),
        ),
        &host(),
    )
    .unwrap();
    let e = send(&t, &[&rcpt("pop-wrong")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert!(e.message().contains("POP-before-SMTP"), "{e}");
    assert!(!e.message().contains("wrong-pop-secret"), "{e}");
    let st = t.status();
    assert_eq!(st.state, ConnState::UNABLE_TO_CONNECT);
    assert!(st.reason.contains("POP-before-SMTP"), "{}", st.reason);
}

fn xoauth2_account() -> Value {
    json!({"host": "127.0.0.1", "port": 2587, "ca_file": ca(), "auth": "required",
           "username": "testuser", "oauth": "m365"})
}

#[test]
fn xoauth2_with_the_fixed_test_token() {
    let h = TestHost::new(Tokens::Fixed("test-access-token".into()));
    let t = open(&xoauth2_account(), &h).unwrap();
    let to = rcpt("xoauth2");
    let r = send(&t, &[&to], &[], json!({})).unwrap();
    assert_eq!(details(&r)["auth"], "XOAUTH2");
    assert_eq!(saved_for(&to).unwrap().1["user"], "testuser");
    assert_eq!(
        h.token_requests(),
        vec![("https://outlook.office365.com/.default".to_string(), false)]
    );
}

#[test]
fn xoauth2_refreshes_a_refused_token_once() {
    let h = TestHost::new(Tokens::RefreshTo {
        first: "expired-token".into(),
        fresh: "test-access-token".into(),
    });
    let t = open(&xoauth2_account(), &h).unwrap();
    send(&t, &[&rcpt("xoauth2-refresh")], &[], json!({})).unwrap();
    let reqs = h.token_requests();
    assert_eq!(
        reqs.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![false, true]
    );

    let h = TestHost::new(Tokens::Fixed("always-bad".into()));
    let t = open(&xoauth2_account(), &h).unwrap();
    let e = send(&t, &[&rcpt("xoauth2-bad")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert_eq!(h.token_requests().len(), 2, "one refresh, no more");
    assert!(!e.message().contains("always-bad"), "{e}");
}

#[test]
fn xoauth2_with_a_token_from_the_graph_double() {
    let h = TestHost::new(Tokens::Broker(graph_double_broker()));
    let t = open(&xoauth2_account(), &h).unwrap();
    let to = rcpt("xoauth2-graph");
    send(&t, &[&to], &[], json!({})).unwrap();
    assert_eq!(saved_for(&to).unwrap().1["user"], "testuser");

    // A Graph-audience token is refused by the SMTP server, as Exchange does.
    let mut acct = xoauth2_account();
    acct["oauth_scope"] = json!("https://graph.microsoft.com/.default");
    let t = open(&acct, &h).unwrap();
    let e = send(&t, &[&rcpt("xoauth2-wrong-scope")], &[], json!({})).unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
}

#[test]
fn check_reports_each_step_with_the_server_words() {
    let t = open(&starttls_account(), &host()).unwrap();
    let to = rcpt("check");
    let report = t
        .check(json!({"test_recipient": to}).to_string().as_str().into())
        .into_result()
        .unwrap();
    let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "settings",
            "resolve",
            "connect",
            "greeting",
            "ehlo",
            "starttls",
            "tls",
            "ehlo",
            "auth",
            "test-mail",
            "quit"
        ],
        "{report:#?}"
    );
    assert!(report.ok(), "{report:#?}");
    let step = |n: &str| {
        report
            .steps
            .iter()
            .rev()
            .find(|s| s.name.as_str() == n)
            .unwrap()
    };
    assert!(
        step("greeting").server_text.starts_with("220"),
        "{report:#?}"
    );
    assert!(
        step("ehlo").server_text.contains("PIPELINING"),
        "{report:#?}"
    );
    assert!(
        step("tls").detail.contains("localhost"),
        "certificate subject: {report:#?}"
    );
    assert!(step("tls").detail.contains("valid until"), "{report:#?}");
    assert!(step("auth").server_text.contains("235"), "{report:#?}");
    assert!(
        step("test-mail").server_text.starts_with("250"),
        "{report:#?}"
    );
    assert!(saved_for(&to).is_some());
}

#[test]
fn check_stops_at_the_failing_step() {
    let t = open(&sink_account(2698), &host()).unwrap();
    let report = t.check("{}".into()).into_result().unwrap();
    let last = report.steps.last().unwrap();
    assert_eq!(last.name.as_str(), "connect");
    assert_eq!(last.outcome, StepOutcome::FAILED);
    assert!(last.detail.contains("127.0.0.1:2698"));
}

#[test]
fn exchange_online_basic_auth_is_warned_about() {
    let t = open(
        &json!({"host": "smtp.office365.com", "username": "erp@example.com", "password": "env:NOPE"}),
        &host(),
    )
    .unwrap();
    let st = t.status();
    assert!(st.reason.contains("5.7.30"), "{st:?}");
}

/// CR/LF that would smuggle a whole transaction to `marker` (visible in the
/// smtp-server peer's capture if it ever arrived).
fn injected_transaction(marker: &str) -> String {
    format!(
        "x.example\r\nMAIL FROM:<inj@example.com>\r\nRCPT TO:<{marker}>\r\nDATA\r\nSubject: injected\r\n\r\nx\r\n.\r\nX-INJECTED-CMD"
    )
}

#[test]
fn line_breaks_in_settings_are_refused_at_open_and_never_reach_the_server() {
    for key in ["helo_name", "envelope_from", "username"] {
        let marker = rcpt(&format!("injected-{}", key.replace('_', "-")));
        let mut account =
            json!({"host": "127.0.0.1", "port": 2526, "security": "none", "auth": "none"});
        account[key] = json!(injected_transaction(&marker));
        if key == "username" {
            account["auth"] = json!("optional");
            account["password"] = json!(PASS);
        }
        let e = open(&account, &host()).map(|_| ()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::CONFIG, "{key}: {e}");
        assert!(
            e.message().contains(&format!("`{key}`")),
            "names the key: {e}"
        );
        assert!(
            e.message().contains(r"x.example\r\nMAIL FROM"),
            "escaped: {e}"
        );
        assert!(!e.message().contains(['\r', '\n']), "never raw: {e}");
        assert!(
            saved_for(&marker).is_none(),
            "{key}: the injected mail arrived"
        );
    }
    // The same account without the line break delivers: the peer is there.
    let to = rcpt("helo-ok");
    let t = open(
        &json!({"host": "127.0.0.1", "port": 2526, "security": "none", "auth": "none", "helo_name": "client.example"}),
        &host(),
    )
    .unwrap();
    send(&t, &[&to], &[], json!({})).unwrap();
    assert!(saved_for(&to).is_some());
}

#[test]
fn line_breaks_in_the_request_are_refused_at_send_and_never_reach_the_server() {
    let t = open(
        &json!({"host": "127.0.0.1", "port": 2526, "security": "none", "auth": "optional", "allow_plaintext_auth": true}),
        &host(),
    )
    .unwrap();
    let marker = rcpt("injected-rcpt");
    let good = rcpt("injected-good");
    // An envelope recipient.
    let mut m = message("s@example.com", &[&good], &[], &unique("inj"), json!({}));
    m.envelope.to = vec![format!("{good}>\r\nRCPT TO:<{marker}").as_str().into()].into();
    let e = t.send(&m).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::PERMANENT, "{e}");
    assert!(e.message().contains("recipient"), "{e}");
    assert!(!e.message().contains(['\r', '\n']), "{e}");
    // The envelope sender.
    let mut m = message("s@example.com", &[&good], &[], &unique("inj"), json!({}));
    m.envelope.from = Some(
        format!("s@example.com>\r\nRCPT TO:<{marker}")
            .as_str()
            .into(),
    )
    .into();
    let e = t.send(&m).into_result().unwrap_err();
    assert!(e.message().contains("envelope sender"), "{e}");
    // Per-user credentials (from the host's options) and a DSN envid.
    for (field, opts) in [
        (
            "username",
            json!({"credentials": {"username": injected_transaction(&marker), "password": PASS}}),
        ),
        ("dsn.envid", json!({"dsn": {"envid": "id\r\nRSET"}})),
    ] {
        let e = send(&t, &[&good], &[], opts).unwrap_err();
        assert_eq!(e.class(), ErrorClass::PERMANENT, "{field}: {e}");
        assert!(e.message().contains(field), "{field}: {e}");
        assert!(!e.message().contains(['\r', '\n']), "{e}");
    }
    assert!(
        saved_for(&marker).is_none(),
        "the injected recipient got mail"
    );
    assert!(saved_for(&good).is_none(), "a refused request was sent");
}

fn capped_account(port: u16, idle_timeout_ms: u64) -> Value {
    json!({"host": "127.0.0.1", "port": port, "security": "none", "auth": "none",
           "pool": {"idle_timeout_ms": idle_timeout_ms}})
}

/// A message to the first of `to`, with all of `to` in the envelope (the
/// host's builder is not what these tests measure: lettre re-parses the To
/// header for every added address).
fn send_to_envelope(t: &TransportBox, to: &[&str]) -> Result<Receipt, PluginError> {
    let mut m = message("s@example.com", &to[..1], &[], &unique("many"), json!({}));
    m.envelope.to = to.iter().map(|a| (*a).into()).collect::<Vec<_>>().into();
    t.send(&m).into_result()
}

fn addresses(tag: &str, n: usize) -> Vec<String> {
    let u = unique(tag);
    (0..n).map(|i| format!("{u}-{i}@example.com")).collect()
}

#[test]
fn too_many_recipients_continue_in_new_transactions_on_the_same_connection() {
    let server = CappedServer::start(3);
    let t = open(&capped_account(server.port, 60_000), &host()).unwrap();
    let mut to = addresses("capped", 8);
    to.insert(4, "rcpt-5xx@example.com".into());
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let r = send_to_envelope(&t, &refs).unwrap();
    let good: Vec<&String> = to.iter().filter(|a| !a.starts_with("rcpt-5xx")).collect();
    let mut accepted: Vec<String> = r.accepted.iter().map(|a| a.to_string()).collect();
    accepted.sort();
    let mut want: Vec<String> = good.iter().map(|a| a.to_string()).collect();
    want.sort();
    assert_eq!(
        accepted, want,
        "every recipient but the refused one is accepted"
    );
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].address.as_str(), "rcpt-5xx@example.com");
    assert_eq!(r.rejected[0].error.class(), ErrorClass::PERMANENT);
    assert_eq!(details(&r)["transactions"], 3, "{}", r.details_json);
    let got = server.messages();
    assert_eq!(got.len(), 3, "{got:?}");
    let mut delivered: Vec<String> = got
        .iter()
        .flat_map(|m| m["rcptTo"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    delivered.sort();
    assert_eq!(delivered, want, "each recipient exactly once");
    assert!(got
        .iter()
        .all(|m| m["rcptTo"].as_array().unwrap().len() <= 3));
    assert!(
        got.iter().all(|m| m["connection"] == got[0]["connection"]),
        "one connection: {got:?}"
    );
    assert_eq!(
        got.iter()
            .map(|m| m["transaction"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn too_many_recipients_without_reuse_continue_on_a_new_connection() {
    // idle_timeout_ms = 0: QUIT goes out with the data, so the rest needs a new connection.
    let server = CappedServer::start(2);
    let t = open(&capped_account(server.port, 0), &host()).unwrap();
    let to = addresses("capped-new", 5);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let r = send_to_envelope(&t, &refs).unwrap();
    assert_eq!(r.accepted.len(), 5, "{r:?}");
    assert!(r.rejected.is_empty(), "{r:?}");
    let got = server.messages();
    assert_eq!(
        got.iter()
            .map(|m| m["rcptTo"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        [2, 2, 1]
    );
}

#[test]
fn postfix_sized_limit_with_thousands_of_recipients() {
    // Postfix's default limit (1,000) with 2,500 recipients: three transactions.
    let server = CappedServer::start(1000);
    let t = open(&capped_account(server.port, 60_000), &host()).unwrap();
    let to = addresses("capped-big", 2500);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let r = send_to_envelope(&t, &refs).unwrap();
    assert_eq!(r.accepted.len(), 2500);
    assert_eq!(details(&r)["transactions"], 3);
    let sizes: Vec<usize> = server
        .messages()
        .iter()
        .map(|m| m["rcptTo"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [1000, 1000, 500]);
}

#[test]
fn ten_thousand_recipients_in_one_pipelined_transaction() {
    // smtp-sink has no limit: one group of 10,000 RCPTs in one write, the
    // replies read while the rest is still being sent (no deadlock).
    let t = open(&sink_account(2525), &host()).unwrap();
    let to = addresses("many", 10_000);
    let refs: Vec<&str> = to.iter().map(String::as_str).collect();
    let r = send_to_envelope(&t, &refs).unwrap();
    assert_eq!(r.accepted.len(), 10_000);
    assert!(r.rejected.is_empty());
    assert_eq!(details(&r)["pipelining"], true);
    assert_eq!(details(&r)["transactions"], 1);
}

/// `mailhost config validate` refuses through the plugin's derived schema what
/// `open` would refuse, at the value's line in the file.
#[test]
fn config_validate_refuses_what_open_refuses_at_its_line() {
    use mailhost_tests::{copy_as, mailhost_bin, plugin_file_name, plugin_path};
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    copy_as(&plugin_path("smtp"), &plugins, &plugin_file_name("smtp"));
    for (key, value) in [
        ("min_tls", r#""1.0""#),
        ("helo_name", r#""x.example\r\nX-INJECTED-CMD""#),
        ("envelope_from", r#""a@b.example\nRSET""#),
        ("port", "70000"),
        ("mechanism", r#""ntlm""#),
    ] {
        let config = format!(
            "[policy]\naccount = \"office\"\n\n[accounts.office]\nplugin = \"smtp\"\nhost = \"127.0.0.1\"\n{key} = {value}\n"
        );
        std::fs::write(dir.path().join("mailhost.toml"), &config).unwrap();
        let out = std::process::Command::new(mailhost_bin())
            .current_dir(dir.path())
            .env_remove("MAILHOST_CONFIG")
            .env_remove("MAILHOST_PLUGIN_PATH")
            .args([
                "--config",
                "mailhost.toml",
                "--plugins",
                "plugins",
                "config",
                "validate",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{key} = {value} passed config validate: {err}"
        );
        assert!(
            err.contains("mailhost.toml:7:"),
            "{key}: not at its line: {err}"
        );
        assert!(err.contains(key), "{key}: {err}");
        assert!(
            !err.contains("X-INJECTED-CMD\n"),
            "raw line break in: {err}"
        );
    }
}

#[test]
fn check_refuses_a_test_recipient_with_a_line_break_and_sends_nothing() {
    let t = open(&starttls_account(), &host()).unwrap();
    let marker = rcpt("check-injected");
    let report = t
        .check(
            json!({"test_recipient": format!("ok@example.com>\r\nRCPT TO:<{marker}")})
                .to_string()
                .as_str()
                .into(),
        )
        .into_result()
        .unwrap();
    let step = report
        .steps
        .iter()
        .find(|s| s.name.as_str() == "test-mail")
        .expect("a test-mail step");
    assert_eq!(step.outcome, StepOutcome::FAILED, "{report:?}");
    assert!(step.detail.contains("test_recipient"), "{report:?}");
    assert!(!step.detail.contains(['\r', '\n']), "never raw: {report:?}");
    assert!(saved_for(&marker).is_none());
}
