//! The helper binary and the plugin's process handling, together: a real
//! process, the real frames both ways. Off Windows the helper answers that it
//! requires Windows, through the protocol.

use std::path::Path;
use std::time::Duration;

use mailhost_mapi_helper32::client::exchange;
use mailhost_mapi_helper32::{
    FailureClass, Outcome, RecipClass, Recipient, Request, SimpleMessage,
};

fn request() -> Request {
    Request::new(
        SimpleMessage {
            subject: "Grüße".into(),
            body: "Hallo".into(),
            recipients: vec![Recipient {
                class: RecipClass::To,
                name: "Anna".into(),
                address: "SMTP:anna@example.com".into(),
            }],
            files: vec![],
        },
        1,
        0,
    )
}

#[cfg(not(windows))]
#[test]
fn the_helper_answers_through_the_protocol() {
    let helper = Path::new(env!("CARGO_BIN_EXE_mailhost-mapi32"));
    let answer = exchange(helper, &request(), Duration::from_secs(60)).unwrap();
    assert_eq!(answer.protocol, 1);
    match answer.outcome {
        Outcome::Failed { class, message } => {
            assert_eq!(class, FailureClass::Unavailable);
            assert!(message.starts_with("requires Windows"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_helper_refuses_a_garbled_request_with_an_answer() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailhost-mapi32"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\x05\x00\x00\x00{oops")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let answer: mailhost_mapi_helper32::Answer = mailhost_mapi_helper32::protocol::read_frame(
        &mut &out.stdout[..],
        mailhost_mapi_helper32::protocol::MAX_ANSWER,
    )
    .unwrap();
    match answer.outcome {
        Outcome::Failed { class, message } => {
            assert_eq!(class, FailureClass::Permanent);
            assert!(
                message.starts_with("cannot read the request: not a valid frame"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}
