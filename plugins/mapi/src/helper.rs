//! The route through the 32-bit helper: when the default mail client's MAPI
//! DLL is 32-bit and mailhost 64-bit, each `MAPISendMailW` call runs in
//! `mailhost-mapi32.exe`, started beside this plugin's DLL (the protocol:
//! `mailhost_mapi_helper32::protocol`). Plain `std::process`, so it is
//! tested on every OS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mailhost_mapi_helper32::client::{exchange, HelperError};
use mailhost_mapi_helper32::protocol::PROTOCOL;
use mailhost_mapi_helper32::{FailureClass, Outcome, Request, HELPER_EXE, MAPI_DIALOG};
use mailhost_plugin_api::PluginError;

use crate::simple::{SendMail, SimpleMessage};

/// How long a send may take: the client may still ask for a profile or a
/// password (`MAPI_LOGON_UI`).
pub const SEND_LIMIT: Duration = Duration::from_secs(10 * 60);
/// How long a compose may take: the client's modal window stays open until
/// the user sends or closes it; a working day.
pub const COMPOSE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// How much of the helper's own text reaches an error message.
const TEXT_KEPT: usize = 500;

/// The time limit of a call with `flags`.
pub fn limit(flags: u32) -> Duration {
    if flags & MAPI_DIALOG != 0 {
        COMPOSE_LIMIT
    } else {
        SEND_LIMIT
    }
}

/// The helper's path beside the plugin's DLL in `plugin_dir`.
pub fn helper_path(plugin_dir: &Path) -> PathBuf {
    plugin_dir.join(HELPER_EXE)
}

/// Why the helper route cannot work when the helper is not installed.
pub fn missing(client: &str, program: &Path) -> String {
    format!(
        "the default mail client `{client}` is 32-bit and this mailhost is 64-bit: Simple MAPI then runs in the 32-bit helper {HELPER_EXE}, which is not installed ({} is missing); install it beside mailhost_mapi.dll from the same release (built for i686-pc-windows-gnu), or use a 64-bit mail client or the outlook mode",
        program.display()
    )
}

/// At most [`TEXT_KEPT`] characters of untrusted text, control characters as spaces.
fn tame(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(TEXT_KEPT)
        .collect();
    if text.chars().count() > TEXT_KEPT {
        s.push('…');
    }
    s
}

/// A helper that did not work as an error of the right class.
pub fn map_helper_error(client: &str, program: &Path, e: &HelperError) -> PluginError {
    let what = format!("mapi-simple (32-bit helper for `{client}`)");
    match e {
        HelperError::Missing { .. } => PluginError::unavailable(format!("mapi-simple: {}", missing(client, program))),
        HelperError::Start { error, .. } => PluginError::unavailable(format!(
            "{what}: cannot start {}: {error}; this Windows must be able to run 32-bit programs (WoW64), or use a 64-bit mail client or the outlook mode",
            program.display()
        )),
        HelperError::TimedOut { after } => PluginError::transient(format!(
            "{what}: the mail client did not answer within {} min and the helper was stopped; check the client (a window waiting for an answer?) and its Sent folder before retrying",
            after.as_secs() / 60
        )),
        HelperError::Crashed { .. } => PluginError::unavailable(format!(
            "{what}: {}; the mail client may have crashed in it, or 32-bit programs cannot run on this Windows (WoW64): check that the client works on its own",
            tame(&e.to_string())
        )),
        HelperError::BadAnswer { .. } => PluginError::unavailable(format!(
            "{what}: {}; reinstall {HELPER_EXE} from the same release as the mapi plugin",
            tame(&e.to_string())
        )),
    }
}

/// The helper's `failed` answer as an error of the matching class.
pub fn map_failure(client: &str, class: FailureClass, message: &str) -> PluginError {
    let text = format!(
        "mapi-simple (32-bit helper for `{client}`): {}",
        tame(message)
    );
    match class {
        FailureClass::Unavailable => PluginError::unavailable(text),
        FailureClass::Unsupported => PluginError::unsupported(text),
        FailureClass::Permanent => PluginError::permanent(text),
    }
}

/// Simple MAPI through the helper process.
#[derive(Debug, Clone)]
pub struct Helper32 {
    program: PathBuf,
    client: String,
}

impl Helper32 {
    /// The helper at `program`, for the default mail client `client`.
    pub fn new(program: PathBuf, client: &str) -> Self {
        Self {
            program,
            client: client.to_string(),
        }
    }
}

impl SendMail for Helper32 {
    fn send_mail(&self, message: &SimpleMessage, flags: u32) -> Result<u32, PluginError> {
        let request = Request::new(message.clone(), flags, 0);
        tracing::debug!(helper = %self.program.display(), "handing the call to the 32-bit helper");
        let answer = exchange(&self.program, &request, limit(flags))
            .map_err(|e| map_helper_error(&self.client, &self.program, &e))?;
        if answer.protocol != PROTOCOL {
            return Err(PluginError::unavailable(format!(
                "mapi-simple: the helper {} speaks protocol {}, this plugin {PROTOCOL}; install it from the same release as the mapi plugin",
                self.program.display(),
                answer.protocol
            )));
        }
        match answer.outcome {
            Outcome::Returned { code, .. } => Ok(code),
            Outcome::Failed { class, message } => Err(map_failure(&self.client, class, &message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailhost_plugin_api::ErrorClass;

    #[test]
    fn a_compose_may_take_a_working_day_a_send_minutes() {
        assert_eq!(limit(crate::simple::flags(true)), COMPOSE_LIMIT);
        assert_eq!(limit(crate::simple::flags(false)), SEND_LIMIT);
    }

    #[test]
    fn a_missing_helper_is_unavailable_and_says_what_to_install() {
        let dir = Path::new("/nonexistent/plugins");
        let h = Helper32::new(helper_path(dir), "Old Client");
        let m = SimpleMessage {
            subject: String::new(),
            body: String::new(),
            recipients: vec![],
            files: vec![],
        };
        let e = h.send_mail(&m, 1).unwrap_err();
        assert_eq!(e.class, ErrorClass::UNAVAILABLE);
        let text = e.message();
        assert!(
            text.contains("the default mail client `Old Client` is 32-bit")
                && text.contains("/nonexistent/plugins/mailhost-mapi32.exe is missing")
                && text.contains("install it beside mailhost_mapi.dll"),
            "{text}"
        );
    }

    #[test]
    fn helper_failures_map_to_classes() {
        let p = Path::new(r"C:\mailhost\mailhost-mapi32.exe");
        let cases = [
            (
                HelperError::Start {
                    program: p.into(),
                    error: std::io::Error::other("bad exe format"),
                },
                ErrorClass::UNAVAILABLE,
                "(WoW64)",
            ),
            (
                HelperError::TimedOut { after: SEND_LIMIT },
                ErrorClass::TRANSIENT,
                "did not answer within 10 min",
            ),
            (
                HelperError::Crashed {
                    status:
                        "exit code 0xC0000005, an access violation: the mail client crashed in it"
                            .into(),
                    stderr: String::new(),
                },
                ErrorClass::UNAVAILABLE,
                "ended without an answer (exit code 0xC0000005",
            ),
            (
                HelperError::BadAnswer {
                    reason: "a frame of 99999999 bytes".into(),
                    stderr: "x\u{7}y".repeat(400),
                },
                ErrorClass::UNAVAILABLE,
                "reinstall mailhost-mapi32.exe",
            ),
        ];
        for (e, class, text) in cases {
            let pe = map_helper_error("Old Client", p, &e);
            assert_eq!(pe.class, class, "{e:?}");
            assert!(pe.message().contains(text), "{}", pe.message());
            assert!(pe.message().contains("`Old Client`"), "{}", pe.message());
            assert!(!pe.message().contains('\u{7}'), "control characters kept");
            assert!(pe.message().len() < 1200, "untrusted text not bounded");
        }
    }

    #[test]
    fn the_helpers_failures_keep_their_class_and_are_bounded() {
        let e = map_failure("C", FailureClass::Unsupported, "no MAPISendMailW");
        assert_eq!(e.class, ErrorClass::UNSUPPORTED);
        assert_eq!(
            e.message(),
            "mapi-simple (32-bit helper for `C`): no MAPISendMailW"
        );
        let e = map_failure("C", FailureClass::Unavailable, &"\n".repeat(10_000));
        assert_eq!(e.class, ErrorClass::UNAVAILABLE);
        assert!(e.message().chars().count() < 600);
        assert_eq!(
            map_failure("C", FailureClass::Permanent, "bad").class,
            ErrorClass::PERMANENT
        );
    }
}
