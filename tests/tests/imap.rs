//! The IMAP plugin through its loaded cdylib, against the Dovecot peer
//! (../shared/peers): IMAP 1143 (STARTTLS) and 1993 (TLS), submission 1587
//! relaying into the Node smtp-server's capture, XOAUTH2 tokens from the Graph
//! double. Messages are read back from Dovecot's Maildir and compared byte for
//! byte (Dovecot stores lines with bare LF).

use mailhost::message::{build, MessageRequest};
use mailhost_plugin_api::mime::strip_bcc;
use mailhost_plugin_api::{
    Capabilities, ComposeKind, ConnState, ErrorClass, OutgoingMessage, StepOutcome,
};
use mailhost_tests::imap::{as_stored, open, plugin, stored_with, CuttingProxy, PlainDovecot};
use mailhost_tests::peer_ca;
use mailhost_tests::smtp::{graph_double_broker, saved_for, unique, TestHost, Tokens};
use serde_json::{json, Value};

fn host() -> TestHost {
    TestHost::new(Tokens::None)
}

fn ca() -> String {
    peer_ca().display().to_string()
}

fn account() -> Value {
    json!({
        "host": "127.0.0.1", "port": 1143, "security": "starttls", "ca_file": ca(),
        "username": "testuser", "password": "testpass",
        "submission": {"port": 1587}
    })
}

fn with(mut v: Value, extra: Value) -> Value {
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn message(to: &str, bcc: &str, subject: &str) -> OutgoingMessage {
    let req = MessageRequest {
        from: Some("Test User <testuser@example.com>".into()),
        to: vec![to.to_string()],
        bcc: vec![bcc.to_string()],
        subject: subject.to_string(),
        text: Some(format!("Hello from the imap tests.\n{subject}\n")),
        ..Default::default()
    };
    build(&req, None).unwrap()
}

fn rcpt(tag: &str) -> String {
    format!("{}@example.com", unique(tag))
}

fn details(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

#[test]
fn manifest_serves_imap_and_imap_draft_with_a_closed_schema() {
    let m = plugin().manifest();
    // The root symbol is this plugin's, not the linked SMTP plugin's.
    assert_eq!(m.name.as_str(), "imap");
    let modes: Vec<&str> = m.modes.iter().map(|s| s.as_str()).collect();
    assert_eq!(modes, ["imap", "imap-draft"]);
    assert!(m
        .capabilities
        .contains(Capabilities::SEND | Capabilities::COMPOSE | Capabilities::CHECK));
    let schema: Value = serde_json::from_str(m.settings_schema.as_str()).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["submission"]["additionalProperties"],
        false
    );
}

#[test]
fn draft_is_appended_with_flags_and_the_exact_bytes() {
    let h = host();
    let t = open(&account(), &h).unwrap();
    assert_eq!(t.status().state, ConnState::NOT_CONNECTED);
    let subject = unique("draft");
    let m = message(&rcpt("to"), &rcpt("hidden"), &subject);
    let out = t.compose(&m).into_result().unwrap();
    assert_eq!(out.kind, ComposeKind::DRAFT_SAVED);
    let d = details(&out.details_json);
    assert_eq!(d["folder"], "Drafts");
    assert_eq!(d["found"], "special-use");
    let uid = d["uid"].as_u64().expect("UIDPLUS gives the UID") as u32;
    assert!(out
        .draft_id
        .as_str()
        .starts_with("imap://testuser@127.0.0.1:1143/Drafts;UIDVALIDITY="));
    assert!(out.draft_id.as_str().ends_with(&format!("/;UID={uid}")));

    let stored = stored_with(m.message_id.as_str());
    assert_eq!(stored.len(), 1, "exactly one copy: {stored:?}");
    let s = &stored[0];
    assert_eq!(s.folder, ".Drafts");
    assert_eq!(s.flags(), "DS");
    assert_eq!(s.uid(), Some(uid));
    assert_eq!(
        s.bytes,
        as_stored(&m.mime),
        "the draft is the host-built message"
    );
    assert!(
        String::from_utf8_lossy(&s.bytes).contains("Bcc: "),
        "Bcc kept in the draft"
    );
    assert_eq!(t.status().state, ConnState::OPERATING);
}

#[test]
fn utf8_subject_and_attachment_round_trip_over_implicit_tls() {
    let h = host();
    let settings = with(account(), json!({"port": 1993, "security": "tls"}));
    let t = open(&settings, &h).unwrap();
    let subject = format!("Grüße, 東京 {}", unique("utf8"));
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let req = MessageRequest {
        from: Some("Tëst Üser <testuser@example.com>".into()),
        to: vec![rcpt("to")],
        subject: subject.clone(),
        text: Some("Anhang anbei — ünïcödé.\n".into()),
        attachments: vec![mailhost::message::AttachmentRequest {
            filename: Some("Übersicht.bin".into()),
            media_type: Some("application/octet-stream".into()),
            data: Some(data.clone()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let m = build(&req, None).unwrap();
    t.compose(&m).into_result().unwrap();
    let stored = stored_with(m.message_id.as_str());
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].bytes, as_stored(&m.mime));
}

#[test]
fn send_as_the_mailbox_submits_once_and_files_the_same_bytes_in_sent() {
    let h = host();
    let t = open(&account(), &h).unwrap();
    let (to, bcc) = (rcpt("to"), rcpt("bcc"));
    let m = message(&to, &bcc, &unique("sent"));
    let r = t.send(&m).into_result().unwrap();
    let d = details(&r.details_json);
    assert_eq!(d["sent_copy"]["saved"], true, "{d}");
    assert_eq!(d["sent_copy"]["folder"], "Sent");
    assert!(d.get("warning").is_none());

    // Delivered through Dovecot's submission into the smtp-server capture:
    // the message without Bcc, after the relays' Received lines.
    let (eml, meta) = saved_for(&to).expect("the submission relayed the message");
    let rcpts: Vec<&str> = meta["rcptTo"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(rcpts.contains(&bcc.as_str()), "Bcc in the envelope: {meta}");
    let stripped = strip_bcc(&m.mime);
    assert!(
        eml.ends_with(&stripped),
        "delivered = host-built message minus Bcc"
    );
    assert!(!String::from_utf8_lossy(&eml).contains(&format!("Bcc: {bcc}")));

    let stored = stored_with(m.message_id.as_str());
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].folder, ".Sent");
    assert_eq!(stored[0].flags(), "S");
    assert_eq!(
        stored[0].bytes,
        as_stored(&m.mime),
        "Sent holds the message with Bcc"
    );
}

#[test]
fn a_failed_copy_in_sent_is_a_warning_and_never_a_second_submission() {
    let h = host();
    let t = open(
        &with(account(), json!({"sent_folder": "No Such Folder"})),
        &h,
    )
    .unwrap();
    let to = rcpt("to");
    let m = message(&to, &rcpt("bcc"), &unique("nosent"));
    let r = t.send(&m).into_result().unwrap();
    let d = details(&r.details_json);
    assert_eq!(d["sent_copy"]["saved"], false);
    assert_eq!(d["sent_copy"]["error_class"], "config");
    let w = d["warning"].as_str().unwrap();
    assert!(
        w.contains("was sent") && w.contains("No Such Folder"),
        "{w}"
    );
    assert!(saved_for(&to).is_some());
    assert!(stored_with(m.message_id.as_str()).is_empty());
}

#[test]
fn save_to_sent_never_appends_nothing() {
    let h = host();
    let t = open(&with(account(), json!({"save_to_sent": "never"})), &h).unwrap();
    let to = rcpt("to");
    let m = message(&to, &rcpt("bcc"), &unique("never"));
    let r = t.send(&m).into_result().unwrap();
    assert_eq!(details(&r.details_json)["sent_copy"]["saved"], false);
    assert!(saved_for(&to).is_some());
    assert!(stored_with(m.message_id.as_str()).is_empty());
}

#[test]
fn wrong_password_is_an_auth_error_without_the_password() {
    let h = host();
    let t = open(&with(account(), json!({"password": "Wr0ngSecret"})), &h).unwrap();
    let m = message(&rcpt("to"), &rcpt("bcc"), &unique("badpw"));
    let e = t.compose(&m).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::AUTH, "{e}");
    assert!(
        e.message().contains("testuser") && e.message().contains("AUTHENTICATIONFAILED"),
        "{e}"
    );
    assert!(!e.message().contains("Wr0ngSecret"));
    assert_eq!(t.status().state, ConnState::UNABLE_TO_CONNECT);
    assert!(stored_with(m.message_id.as_str()).is_empty());
}

#[test]
fn tls_without_the_ca_is_refused_as_config() {
    let h = host();
    for (port, security) in [(1993, "tls"), (1143, "starttls")] {
        let mut s = with(account(), json!({"port": port, "security": security}));
        s.as_object_mut().unwrap().remove("ca_file");
        let t = open(&s, &h).unwrap();
        let e = t
            .compose(&message(&rcpt("to"), &rcpt("b"), &unique("noca")))
            .into_result()
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
        assert!(e.message().contains("ca_file"), "{e}");
        assert_eq!(t.status().state, ConnState::UNABLE_TO_CONNECT);
    }
}

#[test]
fn xoauth2_with_a_graph_double_token() {
    let h = TestHost::new(Tokens::Broker(graph_double_broker()));
    let mut s = with(account(), json!({"oauth": "m365"}));
    s.as_object_mut().unwrap().remove("password");
    let t = open(&s, &h).unwrap();
    let m = message(&rcpt("to"), &rcpt("bcc"), &unique("xoauth2"));
    let out = t.compose(&m).into_result().unwrap();
    assert_eq!(out.kind, ComposeKind::DRAFT_SAVED);
    assert_eq!(stored_with(m.message_id.as_str()).len(), 1);
    let reqs = h.token_requests();
    assert_eq!(
        reqs[0],
        ("https://outlook.office365.com/.default".to_string(), false)
    );
}

#[test]
fn a_refused_token_is_refreshed_once() {
    let h = TestHost::new(Tokens::RefreshTo {
        first: "expired-token".into(),
        fresh: "test-access-token".into(),
    });
    let mut s = with(account(), json!({"oauth": "m365", "mechanism": "xoauth2"}));
    s.as_object_mut().unwrap().remove("password");
    let t = open(&s, &h).unwrap();
    let m = message(&rcpt("to"), &rcpt("bcc"), &unique("refresh"));
    t.compose(&m).into_result().unwrap();
    let forced: Vec<bool> = h.token_requests().into_iter().map(|(_, f)| f).collect();
    assert_eq!(forced, [false, true]);
}

#[test]
fn per_user_credentials_and_line_breaks() {
    let h = host();
    let mut s = account();
    s.as_object_mut().unwrap().remove("password");
    s["username"] = json!("nobody-here");
    let t = open(&s, &h).unwrap();
    let opts =
        json!({"user": "alice", "credentials": {"username": "testuser", "password": "testpass"}});
    let mut m = message(&rcpt("to"), &rcpt("bcc"), &unique("peruser"));
    m.options_json = opts.to_string().into();
    t.compose(&m).into_result().unwrap();
    assert_eq!(stored_with(m.message_id.as_str()).len(), 1);

    let bad = json!({"credentials": {"username": "testuser\r\nA1 LOGOUT", "password": "testpass"}});
    m.options_json = bad.to_string().into();
    let e = t.compose(&m).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::PERMANENT, "{e}");

    let Err(e) = open(
        &with(
            account(),
            json!({"drafts_folder": "Drafts\r\nA1 DELETE INBOX"}),
        ),
        &h,
    ) else {
        panic!("a folder name with CR LF was accepted");
    };
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
}

#[test]
fn a_connection_cut_mid_append_is_transient_and_nothing_is_saved() {
    let proxy = CuttingProxy::start(1143, 40_000);
    let h = host();
    let s = with(
        account(),
        json!({"port": proxy.port, "security": "none", "allow_plaintext_auth": true}),
    );
    let t = open(&s, &h).unwrap();
    let req = MessageRequest {
        from: Some("testuser@example.com".into()),
        to: vec![rcpt("to")],
        subject: unique("cut"),
        text: Some("x".repeat(200_000)),
        ..Default::default()
    };
    let m = build(&req, None).unwrap();
    let e = t.compose(&m).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(e.message().contains("APPEND"), "{e}");
    assert!(stored_with(m.message_id.as_str()).is_empty());
}

#[test]
fn check_walks_every_step_with_the_servers_words() {
    let h = host();
    let t = open(&account(), &h).unwrap();
    let r = t.check("{}".into()).into_result().unwrap();
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "settings",
        "connect",
        "greeting",
        "starttls",
        "capabilities",
        "login",
        "folder Drafts",
        "folder Sent",
    ] {
        assert!(names.contains(&want), "{want} missing in {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("submission ")),
        "{names:?}"
    );
    for s in r.steps.iter() {
        assert_ne!(s.outcome, StepOutcome::FAILED, "{s:?}");
    }
    let login = r.steps.iter().find(|s| s.name.as_str() == "login").unwrap();
    assert!(login.server_text.as_str().starts_with("OK"), "{login:?}");
    let caps = r
        .steps
        .iter()
        .find(|s| s.name.as_str() == "capabilities")
        .unwrap();
    assert!(caps.server_text.as_str().contains("IMAP4REV1"));
    assert!(
        caps.server_text.as_str().contains("UIDPLUS"),
        "after login: {caps:?}"
    );
    assert_eq!(caps.outcome, StepOutcome::OK, "{caps:?}");

    let bad = open(&with(account(), json!({"password": "nope"})), &h).unwrap();
    let r = bad.check("{}".into()).into_result().unwrap();
    let login = r.steps.iter().find(|s| s.name.as_str() == "login").unwrap();
    assert_eq!(login.outcome, StepOutcome::FAILED);
    assert!(login.detail.as_str().contains("AUTHENTICATIONFAILED"));
}

#[test]
fn a_server_without_special_use_is_served_by_folder_names() {
    let server = PlainDovecot::start();
    let h = host();
    // Submission through the shared peer (same user), IMAP at the private server.
    let s = with(
        account(),
        json!({"port": server.port, "save_to_sent": "always", "submission": {"host": "127.0.0.1", "port": 1587}}),
    );
    let t = open(&s, &h).unwrap();

    let m = message(&rcpt("to"), &rcpt("bcc"), &unique("names"));
    let out = t.compose(&m).into_result().unwrap();
    let d = details(&out.details_json);
    assert_eq!(d["folder"], "INBOX.Entwürfe");
    assert_eq!(d["folder_wire"], "INBOX.Entw&APw-rfe");
    assert_eq!(d["found"], "common name");
    let drafts = server.messages(".Entw&APw-rfe");
    assert!(
        drafts.contains(&as_stored(&m.mime)),
        "the draft is in INBOX.Entwürfe"
    );

    let to = rcpt("to");
    let m = message(&to, &rcpt("bcc"), &unique("names-sent"));
    let r = t.send(&m).into_result().unwrap();
    let d = details(&r.details_json);
    assert_eq!(d["sent_copy"]["folder"], "INBOX.Gesendete Elemente", "{d}");
    assert!(saved_for(&to).is_some());
    assert!(server
        .messages(".Gesendete Elemente")
        .contains(&as_stored(&m.mime)));

    let check = t.check("{}".into()).into_result().unwrap();
    let caps = check
        .steps
        .iter()
        .find(|s| s.name.as_str() == "capabilities")
        .unwrap();
    assert_eq!(
        caps.outcome,
        StepOutcome::WARNING,
        "no SPECIAL-USE: {caps:?}"
    );

    // A configured folder that is missing: config, naming it and what exists.
    let t = open(
        &with(s.clone(), json!({"drafts_folder": "INBOX.Vorlagen"})),
        &h,
    )
    .unwrap();
    let e = t
        .compose(&message(&rcpt("to"), &rcpt("b"), &unique("missing")))
        .into_result()
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::CONFIG, "{e}");
    assert!(
        e.message().contains("INBOX.Vorlagen") && e.message().contains("INBOX.Entwürfe"),
        "{e}"
    );
    // …created when allowed to.
    let t = open(
        &with(
            s,
            json!({"drafts_folder": "INBOX.Vorlagen", "create_folders": true}),
        ),
        &h,
    )
    .unwrap();
    let m = message(&rcpt("to"), &rcpt("b"), &unique("created"));
    let out = t.compose(&m).into_result().unwrap();
    assert_eq!(details(&out.details_json)["found"], "created");
    assert!(server.messages(".Vorlagen").contains(&as_stored(&m.mime)));
}

#[test]
fn oauthbearer_with_a_token() {
    let h = TestHost::new(Tokens::Fixed("test-access-token".into()));
    let mut s = with(
        account(),
        json!({"oauth": "m365", "mechanism": "oauthbearer"}),
    );
    s.as_object_mut().unwrap().remove("password");
    let t = open(&s, &h).unwrap();
    let m = message(&rcpt("to"), &rcpt("bcc"), &unique("oauthbearer"));
    t.compose(&m).into_result().unwrap();
    assert_eq!(stored_with(m.message_id.as_str()).len(), 1);
}

#[test]
fn login_mechanism_and_a_dead_submission_server_in_status() {
    let h = host();
    // LOGIN instead of AUTHENTICATE PLAIN; a submission port where nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = with(
        account(),
        json!({"mechanism": "login", "submission": {"port": dead}}),
    );
    let t = open(&s, &h).unwrap();
    let m = message(&rcpt("to"), &rcpt("bcc"), &unique("login"));
    t.compose(&m).into_result().unwrap();
    assert_eq!(stored_with(m.message_id.as_str()).len(), 1);
    assert_eq!(t.status().state, ConnState::OPERATING);

    let m = message(&rcpt("to"), &rcpt("bcc"), &unique("nosubmission"));
    let e = t.send(&m).into_result().unwrap_err();
    assert_eq!(e.class(), ErrorClass::TRANSIENT, "{e}");
    assert!(
        stored_with(m.message_id.as_str()).is_empty(),
        "nothing in Sent for an unsent message"
    );
    let st = t.status();
    assert_eq!(st.state, ConnState::UNABLE_TO_CONNECT);
    assert!(
        st.reason.as_str().starts_with("submission server: "),
        "{st:?}"
    );
}

/// `mailhost` with a config that sends through `smtp` (the host's step
/// `save_copy_to` then files the message through the imap account).
fn copy_config(dir: &std::path::Path, smtp: Value, imap_password: &str) -> std::path::PathBuf {
    let smtp: toml::Table = serde_json::from_value(smtp).unwrap();
    let text = format!(
        r#"[policy]
account = "relay"
send_mode = "relay"

[accounts.relay]
plugin = "smtp"
from = "testuser@example.com"
save_copy_to = "mailbox"
{}
[accounts.mailbox]
plugin = "imap"
host = "127.0.0.1"
port = 1143
ca_file = {:?}
username = "testuser"
password = {:?}
"#,
        toml::to_string(&smtp).unwrap(),
        ca(),
        imap_password
    );
    let path = dir.join("copy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn mailhost_send(config: &std::path::Path, to: &str, subject: &str) -> String {
    let out = assert_cmd::Command::new(mailhost_tests::mailhost_bin())
        .env_remove("MAILHOST_CONFIG")
        .env_remove("MAILHOST_PLUGIN_PATH")
        .arg("--config")
        .arg(config)
        .args([
            "send",
            "--to",
            to,
            "--subject",
            subject,
            "--text",
            "filed elsewhere",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn save_copy_to_files_an_smtp_send_in_the_mailboxs_sent_folder() {
    let dir = tempfile::tempdir().unwrap();
    // Postfix smtp-sink: accepts anything, keeps nothing; the copy is ours to find.
    let cfg = copy_config(
        dir.path(),
        json!({"host": "127.0.0.1", "port": 2525, "security": "none", "auth": "none"}),
        "testpass",
    );
    let subject = unique("copy-sink");
    let out = mailhost_send(&cfg, &rcpt("to"), &subject);
    assert!(out.contains(" via relay: 250"), "{out}");
    assert!(
        out.contains("copy in mailbox: imap://testuser@127.0.0.1:1143/Sent;UIDVALIDITY="),
        "{out}"
    );
    let stored = stored_with(&subject);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        (stored[0].folder.as_str(), stored[0].flags().as_str()),
        (".Sent", "S")
    );
}

#[test]
fn a_failed_copy_is_a_warning_and_the_message_goes_out_once() {
    let dir = tempfile::tempdir().unwrap();
    // The Node smtp-server on 2526 captures what it gets: exactly one message.
    let cfg = copy_config(
        dir.path(),
        json!({"host": "127.0.0.1", "port": 2526, "security": "none", "auth": "none"}),
        "not-the-password",
    );
    let to = rcpt("copyfail");
    let subject = unique("copy-fail");
    let out = mailhost_send(&cfg, &to, &subject);
    assert!(out.contains(" via relay: 250"), "{out}");
    assert!(
        out.contains(
            "warning: the message was sent, but its copy in mailbox's Sent folder was not stored"
        ) && out.contains("AUTHENTICATIONFAILED"),
        "{out}"
    );
    assert!(!out.contains("not-the-password"));
    assert!(saved_for(&to).is_some());
    let captured = std::fs::read_dir(mailhost_tests::smtp::mail_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&to)))
        .count();
    assert_eq!(captured, 1, "sent once, never again because of the copy");
    assert!(stored_with(&subject).is_empty());
}

#[test]
fn the_cli_shows_the_warning_of_a_send_whose_copy_in_sent_failed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mailbox.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[policy]
account = "mailbox"
send_mode = "mailbox"

[accounts.mailbox]
plugin = "imap"
from = "testuser@example.com"
host = "127.0.0.1"
port = 1143
ca_file = {:?}
username = "testuser"
password = "testpass"
sent_folder = "Nirgendwo"
submission = {{ port = 1587 }}
"#,
            ca()
        ),
    )
    .unwrap();
    let to = rcpt("cliwarn");
    let out = mailhost_send(&cfg, &to, &unique("cli-warning"));
    assert!(out.contains(" via mailbox: 250 "), "{out}");
    assert!(
        out.contains("warning: the message was sent, but its copy could not be stored in Sent")
            && out.contains("\"Nirgendwo\""),
        "{out}"
    );
    assert!(saved_for(&to).is_some());
}
