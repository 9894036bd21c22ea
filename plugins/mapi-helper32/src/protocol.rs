//! The helper's request/answer protocol over stdin/stdout.
//!
//! One request, one answer, then the helper exits. Each is a **frame**: a
//! 4-byte little-endian length, then that many bytes of UTF-8 JSON. The
//! request is at most [`MAX_REQUEST`] bytes (the helper refuses more), the
//! answer at most [`MAX_ANSWER`] bytes (the plugin refuses more: the answer
//! is untrusted input).
//!
//! Request (plugin → helper):
//!
//! ```json
//! {"protocol": 1, "flags": 9, "ui_param": 0,
//!  "message": {"subject": "Angebot", "body": "Hallo\r\n",
//!              "recipients": [{"class": "to", "name": "Anna", "address": "SMTP:anna@example.com"}],
//!              "files": [{"path": "C:\\Users\\anna\\AppData\\Local\\Temp\\mailhost-attachments-…\\0\\a.pdf",
//!                         "name": "a.pdf"}]}}
//! ```
//!
//! `flags` are `MAPISendMailW`'s (`MAPI_LOGON_UI` 0x1, `MAPI_DIALOG` 0x8),
//! `ui_param` the parent window (`HWND`, 0 for none), `class` one of `to`,
//! `cc`, `bcc`; the attachment files exist while the call runs.
//!
//! Answer (helper → plugin), one of:
//!
//! ```json
//! {"protocol": 1, "outcome": "returned", "code": 0, "name": "SUCCESS_SUCCESS"}
//! {"protocol": 1, "outcome": "failed", "class": "unavailable", "message": "cannot load mapi32.dll: …"}
//! ```
//!
//! `returned`: `MAPISendMailW` ran and returned `code` (`name` is for people;
//! the plugin maps the code itself). `failed`: it could not be called
//! (`class` `unavailable`: no Simple MAPI here; `unsupported`: no
//! `MAPISendMailW`; `permanent`: the request was unusable). A helper that ends
//! without an answer has crashed.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::SimpleMessage;

/// The protocol version both sides speak.
pub const PROTOCOL: u32 = 1;
/// The largest request the helper reads (the body text and paths, no file contents).
pub const MAX_REQUEST: u32 = 16 * 1024 * 1024;
/// The largest answer the plugin reads.
pub const MAX_ANSWER: u32 = 64 * 1024;

/// What the plugin asks the helper to do: one `MAPISendMailW` call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub protocol: u32,
    pub flags: u32,
    /// `ulUIParam`: the parent window (`HWND`), 0 for none.
    pub ui_param: u64,
    pub message: SimpleMessage,
}

impl Request {
    /// A request in this version of the protocol.
    pub fn new(message: SimpleMessage, flags: u32, ui_param: u64) -> Self {
        Self {
            protocol: PROTOCOL,
            flags,
            ui_param,
            message,
        }
    }
}

/// Why `MAPISendMailW` could not be called, as a class the plugin maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// No Simple MAPI here (no `mapi32.dll`, COM not usable, …).
    Unavailable,
    /// `mapi32.dll` has no `MAPISendMailW`.
    Unsupported,
    /// The request could not be used (unreadable, another protocol version).
    Permanent,
}

/// A call that could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The outcome of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// `MAPISendMailW` returned `code`.
    Returned { code: u32, name: String },
    /// It could not be called.
    Failed {
        class: FailureClass,
        message: String,
    },
}

/// The helper's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub protocol: u32,
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Answer {
    /// `MAPISendMailW` returned `code`.
    pub fn returned(code: u32) -> Self {
        Self {
            protocol: PROTOCOL,
            outcome: Outcome::Returned {
                code,
                name: crate::code_name(code).to_string(),
            },
        }
    }

    /// The call could not be made.
    pub fn failed(failure: Failure) -> Self {
        Self {
            protocol: PROTOCOL,
            outcome: Outcome::Failed {
                class: failure.class,
                message: failure.message,
            },
        }
    }
}

/// Why a frame could not be read or written.
#[derive(Debug)]
pub enum FrameError {
    /// The stream ended before a whole frame (the other side is gone).
    Closed,
    /// The length prefix says more than the reader accepts.
    TooLarge { len: u32, max: u32 },
    /// Not JSON of the expected shape.
    Invalid(String),
    /// Reading or writing failed.
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => f.write_str("the stream ended before a whole frame"),
            FrameError::TooLarge { len, max } => {
                write!(f, "a frame of {len} bytes, more than the {max} accepted")
            }
            FrameError::Invalid(e) => write!(f, "not a valid frame: {e}"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// `value` as one frame: the length, then the JSON.
pub fn encode<T: Serialize>(value: &T, max: u32) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(value).map_err(|e| FrameError::Invalid(e.to_string()))?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|&l| l <= max)
        .ok_or(FrameError::TooLarge {
            len: u32::try_from(json.len()).unwrap_or(u32::MAX),
            max,
        })?;
    let mut frame = Vec::with_capacity(4 + json.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

/// Writes `value` as one frame and flushes.
pub fn write_frame<T: Serialize>(
    w: &mut impl Write,
    value: &T,
    max: u32,
) -> Result<(), FrameError> {
    let frame = encode(value, max)?;
    w.write_all(&frame)
        .and_then(|()| w.flush())
        .map_err(FrameError::Io)
}

/// Reads one frame of at most `max` bytes of JSON; reads nothing past it.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read, max: u32) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    read_all(r, &mut len)?;
    let len = u32::from_le_bytes(len);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut json = vec![0u8; len as usize];
    read_all(r, &mut json)?;
    serde_json::from_slice(&json).map_err(|e| FrameError::Invalid(e.to_string()))
}

fn read_all(r: &mut impl Read, buf: &mut [u8]) -> Result<(), FrameError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Closed,
        _ => FrameError::Io(e),
    })
}

/// The helper's side: reads one request from `input`, answers it with `call`
/// (unless it is unusable) on `output`. `Err` only when no answer could be
/// written.
pub fn serve(
    input: &mut impl Read,
    output: &mut impl Write,
    call: impl FnOnce(&Request) -> Answer,
) -> Result<(), FrameError> {
    let answer = match read_frame::<Request>(input, MAX_REQUEST) {
        Ok(request) if request.protocol != PROTOCOL => Answer::failed(Failure::new(
            FailureClass::Permanent,
            format!(
                "the request speaks protocol {}, this helper {PROTOCOL}: install the helper from the same release as the mapi plugin",
                request.protocol
            ),
        )),
        Ok(request) => call(&request),
        Err(e) => Answer::failed(Failure::new(
            FailureClass::Permanent,
            format!("cannot read the request: {e}"),
        )),
    };
    write_frame(output, &answer, MAX_ANSWER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{File, RecipClass, Recipient};

    fn message() -> SimpleMessage {
        SimpleMessage {
            subject: "Grüße".into(),
            body: "Zeile 1\r\nZeile 2".into(),
            recipients: vec![
                Recipient {
                    class: RecipClass::To,
                    name: "Anna Ärger".into(),
                    address: "SMTP:anna@example.com".into(),
                },
                Recipient {
                    class: RecipClass::Bcc,
                    name: "hidden@example.com".into(),
                    address: "SMTP:hidden@example.com".into(),
                },
            ],
            files: vec![File {
                path: r"C:\Temp\mailhost-attachments-1\0\Rechnung 1.pdf".into(),
                name: "Rechnung 1.pdf".into(),
            }],
        }
    }

    #[test]
    fn a_request_is_a_length_and_the_documented_json() {
        let frame = encode(&Request::new(message(), 9, 0), MAX_REQUEST).unwrap();
        let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let v: serde_json::Value = serde_json::from_slice(&frame[4..]).unwrap();
        assert_eq!(v["protocol"], 1);
        assert_eq!(v["flags"], 9);
        assert_eq!(v["ui_param"], 0);
        assert_eq!(v["message"]["subject"], "Grüße");
        assert_eq!(v["message"]["recipients"][1]["class"], "bcc");
        assert_eq!(
            v["message"]["recipients"][0]["address"],
            "SMTP:anna@example.com"
        );
        assert_eq!(
            v["message"]["files"][0]["path"],
            r"C:\Temp\mailhost-attachments-1\0\Rechnung 1.pdf"
        );
        let back: Request = read_frame(&mut &frame[..], MAX_REQUEST).unwrap();
        assert_eq!(back, Request::new(message(), 9, 0));
    }

    #[test]
    fn answers_are_the_documented_json() {
        let frame = encode(&Answer::returned(1), MAX_ANSWER).unwrap();
        assert_eq!(
            &frame[4..],
            br#"{"protocol":1,"outcome":"returned","code":1,"name":"MAPI_E_USER_ABORT"}"#
        );
        let failed = Answer::failed(Failure::new(FailureClass::Unavailable, "no mapi32.dll"));
        let frame = encode(&failed, MAX_ANSWER).unwrap();
        assert_eq!(
            &frame[4..],
            br#"{"protocol":1,"outcome":"failed","class":"unavailable","message":"no mapi32.dll"}"#
        );
        assert_eq!(
            read_frame::<Answer>(&mut &frame[..], MAX_ANSWER).unwrap(),
            failed
        );
    }

    #[test]
    fn bad_frames_are_refused_without_reading_past_them() {
        // Too large: refused from the length alone.
        let mut big = Vec::from(100_000u32.to_le_bytes());
        big.extend_from_slice(b"{}");
        let e = read_frame::<Answer>(&mut &big[..], MAX_ANSWER).unwrap_err();
        assert!(
            matches!(e, FrameError::TooLarge { len: 100_000, max } if max == MAX_ANSWER),
            "{e}"
        );
        // Cut short, empty, not JSON, an unknown outcome, an unknown field.
        let e = read_frame::<Answer>(&mut &[5u8, 0, 0, 0, b'{'][..], MAX_ANSWER).unwrap_err();
        assert!(matches!(e, FrameError::Closed), "{e}");
        let e = read_frame::<Answer>(&mut &[][..], MAX_ANSWER).unwrap_err();
        assert!(matches!(e, FrameError::Closed), "{e}");
        for json in [
            &b"nope"[..],
            br#"{"protocol":1,"outcome":"exploded"}"#,
            br#"{"protocol":1,"flags":0,"ui_param":0,"message":{"subject":"","body":"","recipients":[],"files":[],"extra":1}}"#,
        ] {
            let mut frame = Vec::from((json.len() as u32).to_le_bytes());
            frame.extend_from_slice(json);
            assert!(matches!(
                read_frame::<Answer>(&mut &frame[..], MAX_ANSWER),
                Err(FrameError::Invalid(_))
            ));
            assert!(matches!(
                read_frame::<Request>(&mut &frame[..], MAX_REQUEST),
                Err(FrameError::Invalid(_))
            ));
        }
        // A frame that does not fit is not written.
        let huge = "x".repeat(MAX_ANSWER as usize);
        let e = encode(
            &Answer::failed(Failure::new(FailureClass::Permanent, huge)),
            MAX_ANSWER,
        )
        .unwrap_err();
        assert!(matches!(e, FrameError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn serve_answers_one_request_with_the_call() {
        let input = encode(&Request::new(message(), 1, 0), MAX_REQUEST).unwrap();
        let mut output = Vec::new();
        let mut seen = None;
        serve(&mut &input[..], &mut output, |r| {
            seen = Some(r.clone());
            Answer::returned(14)
        })
        .unwrap();
        assert_eq!(seen.unwrap().message, message());
        assert_eq!(
            read_frame::<Answer>(&mut &output[..], MAX_ANSWER).unwrap(),
            Answer::returned(14)
        );
    }

    #[test]
    fn serve_refuses_garbage_and_other_versions_without_calling() {
        let mut other = Request::new(message(), 1, 0);
        other.protocol = 2;
        for input in [
            b"\x03\x00\x00\x00abc".to_vec(),
            Vec::new(),
            encode(&other, MAX_REQUEST).unwrap(),
        ] {
            let mut output = Vec::new();
            serve(&mut &input[..], &mut output, |_| {
                panic!("called with an unusable request")
            })
            .unwrap();
            let a: Answer = read_frame(&mut &output[..], MAX_ANSWER).unwrap();
            match a.outcome {
                Outcome::Failed { class, message } => {
                    assert_eq!(class, FailureClass::Permanent);
                    assert!(
                        message.starts_with("cannot read the request")
                            || message.contains("speaks protocol 2"),
                        "{message}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
