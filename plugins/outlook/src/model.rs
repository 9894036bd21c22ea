//! Outlook's object model without the OS: the late-bound calls the plugin
//! makes (through the [`Dispatch`] seam), and COM failures as error classes.

use mailhost_plugin_api::{OutgoingMessage, PluginError};
use mailhost_winmail::AttachmentFiles;

/// An argument or property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i32),
    Bool(bool),
}

/// A failed COM call: its `HRESULT`, the server's description (from
/// `EXCEPINFO`, may be empty) and which call it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComError {
    pub hresult: u32,
    pub description: String,
    pub call: String,
}

/// A late-bound object (`IDispatch`): the seam over `GetIDsOfNames`/`Invoke`.
pub trait Dispatch {
    /// `DISPATCH_METHOD`; returns the object the method answered with, if any.
    fn call(&self, name: &str, args: &[Value]) -> Result<Option<Box<dyn Dispatch>>, ComError>;
    /// `DISPATCH_PROPERTYGET` of an object-valued property.
    fn get(&self, name: &str) -> Result<Box<dyn Dispatch>, ComError>;
    /// `DISPATCH_PROPERTYPUT`.
    fn put(&self, name: &str, value: Value) -> Result<(), ComError>;
}

/// `OlItemType.olMailItem`.
pub const OL_MAIL_ITEM: i32 = 0;

fn addresses(list: &[mailhost_plugin_api::Mailbox]) -> String {
    list.iter()
        .map(|m| m.email.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Creates a mail item on `app` (`Outlook.Application`), fills it from
/// `message` and `files`, then `Send`s it or, to compose, `Display`s it
/// (non-modal: the user goes on working and sends from Outlook).
pub fn hand_over(
    app: &dyn Dispatch,
    message: &OutgoingMessage,
    files: &AttachmentFiles,
    compose: bool,
) -> Result<(), ComError> {
    let p = &message.parts;
    let item = app
        .call("CreateItem", &[Value::Int(OL_MAIL_ITEM)])?
        .ok_or_else(|| ComError {
            hresult: 0x8000_4003, // E_POINTER
            description: "CreateItem returned no item".to_string(),
            call: "Application.CreateItem".to_string(),
        })?;
    for (name, list) in [("To", &p.to), ("CC", &p.cc), ("BCC", &p.bcc)] {
        if !list.is_empty() {
            item.put(name, Value::Str(addresses(list.as_slice())))?;
        }
    }
    item.put("Subject", Value::Str(p.subject.to_string()))?;
    match (p.html.as_ref().into_option(), p.text.as_ref().into_option()) {
        (Some(html), _) => item.put("HTMLBody", Value::Str(html.to_string()))?,
        (None, Some(text)) => item.put("Body", Value::Str(text.to_string()))?,
        (None, None) => {}
    }
    if !files.files().is_empty() {
        let attachments = item.get("Attachments")?;
        for (path, _) in files.files() {
            // The temporary file carries the attachment's name, which Outlook shows.
            attachments.call("Add", &[Value::Str(path.to_string_lossy().into_owned())])?;
        }
    }
    if compose {
        item.call("Display", &[Value::Bool(false)])?;
    } else {
        item.call("Send", &[])?;
    }
    Ok(())
}

/// A COM failure as an error of the right class, saying what to do.
pub fn map_com_error(e: &ComError) -> PluginError {
    let detail = if e.description.is_empty() {
        String::new()
    } else {
        format!(": {}", e.description)
    };
    let what = format!(
        "outlook: {} failed (HRESULT 0x{:08X}){detail}",
        e.call, e.hresult
    );
    match e.hresult {
        0x8004_0154 | 0x8004_01F3 => PluginError::unavailable(format!(
            "{what}; Outlook Classic is not registered on this machine (REGDB_E_CLASSNOTREG, CO_E_CLASSSTRING); install it or choose another mode"
        )),
        0x8008_0005 => PluginError::unavailable(format!(
            "{what}; Outlook could not be started for this program (CO_E_SERVER_EXEC_FAILURE): run mailhost and Outlook at the same elevation (both as administrator or neither)"
        )),
        0x8000_4004 => PluginError::permanent(format!(
            "{what}; Outlook's object model guard refused or the user denied access (E_ABORT); allow programmatic access in Outlook's Trust Center or keep the antivirus reported healthy"
        )),
        0x8007_0005 => PluginError::auth(format!(
            "{what}; access denied (E_ACCESSDENIED): check Outlook's programmatic access settings"
        )),
        0x8001_0001 | 0x8001_010A => PluginError::transient(format!(
            "{what}; Outlook is busy (a dialog may be open); retry when it is idle"
        )),
        0x8001_0108 | 0x8007_06BA | 0x8007_06BE => PluginError::transient(format!(
            "{what}; Outlook closed or stopped answering during the call; retry"
        )),
        0x8002_0006 | 0x8002_0003 => PluginError::unsupported(format!(
            "{what}; the object registered as Outlook.Application does not offer this member — is it Outlook Classic?"
        )),
        0x8002_0009 => PluginError::permanent(format!(
            "{what}; Outlook refused the message (for example a recipient it cannot resolve)"
        )),
        _ => PluginError::permanent(what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::{Attachment, ErrorClass, Mailbox, MessageParts};
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Records every call made through the seam, as `Object.Member(args)`.
    #[derive(Clone)]
    struct Rec {
        path: String,
        log: Rc<RefCell<Vec<String>>>,
        fail: Option<(&'static str, u32)>,
    }

    impl Rec {
        fn child(&self, name: &str) -> Box<dyn Dispatch> {
            Box::new(Rec {
                path: name.to_string(),
                ..self.clone()
            })
        }
        fn check(&self, member: &str) -> Result<(), ComError> {
            match self.fail {
                Some((m, hr)) if m == member => Err(ComError {
                    hresult: hr,
                    description: "refused".into(),
                    call: format!("{}.{member}", self.path),
                }),
                _ => Ok(()),
            }
        }
    }

    impl Dispatch for Rec {
        fn call(&self, name: &str, args: &[Value]) -> Result<Option<Box<dyn Dispatch>>, ComError> {
            self.check(name)?;
            self.log
                .borrow_mut()
                .push(format!("{}.{name}({args:?})", self.path));
            Ok((name == "CreateItem").then(|| self.child("MailItem")))
        }
        fn get(&self, name: &str) -> Result<Box<dyn Dispatch>, ComError> {
            self.check(name)?;
            self.log.borrow_mut().push(format!("{}.{name}", self.path));
            Ok(self.child(name))
        }
        fn put(&self, name: &str, value: Value) -> Result<(), ComError> {
            self.check(name)?;
            self.log
                .borrow_mut()
                .push(format!("{}.{name} = {value:?}", self.path));
            Ok(())
        }
    }

    fn app(fail: Option<(&'static str, u32)>) -> (Rec, Rc<RefCell<Vec<String>>>) {
        let log = Rc::new(RefCell::new(Vec::new()));
        (
            Rec {
                path: "Application".into(),
                log: log.clone(),
                fail,
            },
            log,
        )
    }

    fn message(html: Option<&str>) -> OutgoingMessage {
        OutgoingMessage {
            parts: MessageParts {
                to: vec![
                    Mailbox::new("Anna", "anna@example.com"),
                    Mailbox::new("", "bob@example.com"),
                ]
                .into(),
                cc: vec![Mailbox::new("", "cc@example.com")].into(),
                bcc: vec![Mailbox::new("", "bcc@example.com")].into(),
                subject: "Grüße".into(),
                text: Some("Hallo".into()).into(),
                html: html.map(Into::into).into(),
                attachments: vec![Attachment {
                    filename: "a.pdf".into(),
                    media_type: "application/pdf".into(),
                    content_id: "".into(),
                    inline: false,
                    data: b"%PDF".to_vec().into(),
                }]
                .into(),
                ..MessageParts::default()
            },
            envelope: Default::default(),
            mime: Default::default(),
            message_id: "<m@example.com>".into(),
            idempotency_key: "".into(),
            options_json: "{}".into(),
        }
    }

    #[test]
    fn send_fills_the_item_and_sends_it() {
        let base = std::env::temp_dir().join(format!("mailhost-outlook-ut-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let m = message(None);
        let files = AttachmentFiles::write(&base, m.parts.attachments.as_slice()).unwrap();
        let (a, log) = app(None);
        hand_over(&a, &m, &files, false).unwrap();
        let log = log.borrow();
        let path = files.files()[0].0.to_string_lossy().into_owned();
        assert_eq!(
            *log,
            vec![
                "Application.CreateItem([Int(0)])".to_string(),
                "MailItem.To = Str(\"anna@example.com; bob@example.com\")".into(),
                "MailItem.CC = Str(\"cc@example.com\")".into(),
                "MailItem.BCC = Str(\"bcc@example.com\")".into(),
                "MailItem.Subject = Str(\"Grüße\")".into(),
                "MailItem.Body = Str(\"Hallo\")".into(),
                "MailItem.Attachments".into(),
                format!("Attachments.Add([Str({path:?})])"),
                "MailItem.Send([])".into(),
            ]
        );
        drop(files);
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn compose_displays_non_modal_with_the_html_body() {
        let m = message(Some("<p>Hallo</p>"));
        let none = AttachmentFiles::write(std::path::Path::new("/nonexistent"), &[]).unwrap();
        let (a, log) = app(None);
        hand_over(&a, &m, &none, true).unwrap();
        let log = log.borrow();
        assert!(log.contains(&"MailItem.HTMLBody = Str(\"<p>Hallo</p>\")".to_string()));
        assert!(!log.iter().any(|l| l.starts_with("MailItem.Body")));
        assert_eq!(log.last().unwrap(), "MailItem.Display([Bool(false)])");
        assert!(!log.iter().any(|l| l.contains("Send")));
    }

    #[test]
    fn a_refused_send_names_the_call_and_maps_the_class() {
        let m = message(None);
        let none = AttachmentFiles::write(std::path::Path::new("/nonexistent"), &[]).unwrap();
        let (a, _) = app(Some(("Send", 0x8000_4004)));
        let e = hand_over(&a, &m, &none, false).unwrap_err();
        assert_eq!(e.call, "MailItem.Send");
        let pe = map_com_error(&e);
        assert_eq!(pe.class, ErrorClass::PERMANENT);
        assert!(
            pe.message()
                .contains("MailItem.Send failed (HRESULT 0x80004004): refused"),
            "{}",
            pe.message()
        );
        assert!(
            pe.message().contains("object model guard"),
            "{}",
            pe.message()
        );
    }

    #[test]
    fn com_failures_map_to_classes() {
        let cases = [
            (0x8004_0154, ErrorClass::UNAVAILABLE, "not registered"),
            (0x8008_0005, ErrorClass::UNAVAILABLE, "same elevation"),
            (0x8001_010A, ErrorClass::TRANSIENT, "busy"),
            (0x8007_06BA, ErrorClass::TRANSIENT, "stopped answering"),
            (0x8002_0006, ErrorClass::UNSUPPORTED, "Outlook Classic?"),
            (0x8002_0009, ErrorClass::PERMANENT, "refused the message"),
            (0x8007_0005, ErrorClass::AUTH, "access denied"),
            (0x8000_FFFF, ErrorClass::PERMANENT, "HRESULT 0x8000FFFF"),
        ];
        for (hr, class, text) in cases {
            let e = map_com_error(&ComError {
                hresult: hr,
                description: String::new(),
                call: "X.Y".into(),
            });
            assert_eq!(e.class, class, "{hr:08X}");
            assert!(e.message().contains(text), "{hr:08X}: {}", e.message());
        }
    }
}
