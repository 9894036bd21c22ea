//! Generated hostile input for the message paths: the `.eml` parser, the
//! address checks and the message builder never panic, and whatever they
//! accept is safe to put on the wire (no bare CR/LF/NUL in a header, no
//! header line over 998 characters, a valid envelope).

use mailhost::message::{build, check_envelope_address, from_eml, MessageRequest};
use proptest::prelude::*;

fn header_is_wire_safe(mime: &[u8]) {
    let end = mime
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(mime.len());
    let header = &mime[..end];
    assert!(!header.contains(&0), "NUL in the header section");
    for line in header.split(|b| *b == b'\n') {
        assert!(line.len() <= 1000, "header line of {} bytes", line.len());
        let body = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(!body.contains(&b'\r'), "bare CR in a header line");
    }
}

fn envelope_ok(m: &mailhost_plugin_api::OutgoingMessage) {
    for r in m.envelope.to.iter() {
        assert!(check_envelope_address("to", r).is_ok(), "{r:?}");
        assert!(!r.contains(['\r', '\n', '\0']));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn eml_parser_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(m) = from_eml(&raw, None, &[], Default::default()) {
            envelope_ok(&m);
        }
    }

    #[test]
    fn eml_like_text_never_panics(
        from in "[ -~]{0,60}",
        to in "[ -~\\t]{0,200}",
        extra in "[\\x00-\\x7f]{0,300}",
        body in "(?s).{0,500}",
    ) {
        let raw = format!("From: {from}\nTo: {to}\n{extra}\n\n{body}");
        if let Ok(m) = from_eml(raw.as_bytes(), None, &[], Default::default()) {
            envelope_ok(&m);
        }
    }

    #[test]
    fn address_check_never_panics(
        a in prop_oneof!["(?s).{0,300}", "[a-z\\x00-\\x20/]{1,70}@[a-z./\\x00\\r\\n-]{1,70}"],
    ) {
        if check_envelope_address("to", &a).is_ok() {
            prop_assert!(a.len() <= 254);
            prop_assert!(a.contains('@'));
            prop_assert!(!a.contains(['\r', '\n', '\0', ' ']));
            prop_assert!(!a.rsplit_once('@').unwrap().1.contains('/'));
        }
    }

    #[test]
    fn builder_output_is_wire_safe(
        subject in "(?s).{0,2000}",
        to in proptest::collection::vec("(?s).{0,80}", 1..5),
        header in ("[A-Za-z-]{0,20}", "(?s).{0,200}"),
        text in "(?s).{0,2000}",
    ) {
        let req = MessageRequest {
            from: Some("a@example.com".into()),
            to,
            subject,
            text: Some(text),
            headers: vec![header],
            ..Default::default()
        };
        if let Ok(m) = build(&req, None) {
            header_is_wire_safe(&m.mime);
            envelope_ok(&m);
        }
    }
}
