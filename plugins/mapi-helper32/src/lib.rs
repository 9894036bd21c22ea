//! Simple MAPI (`MAPISendMailW`) as the `mapi` plugin and its 32-bit helper
//! process share it.
//!
//! Simple MAPI loads the default mail client's DLL into the calling process,
//! so a 64-bit mailhost cannot call a 32-bit client. The plugin then starts
//! the helper, `mailhost-mapi32.exe` (this crate's binary, built for
//! `i686-pc-windows-gnu` and installed beside `mailhost_mapi.dll`), hands it
//! the message over stdin and reads the client's answer from stdout
//! ([`protocol`] describes the frames, [`client`] runs the helper).
//!
//! * [`SimpleMessage`]: the fields of one `MapiMessageW`, built by the plugin
//!   from the host's message; the one message type of both routes.
//! * `win::send_mail_w` (Windows only): the one function that turns a
//!   [`SimpleMessage`] into the `MapiMessageW` structures and calls
//!   `MAPISendMailW` from `mapi32.dll`, in process or in the helper.
//!
//! No abi_stable and no plugin-api here: the helper stays small and quick to
//! build for a second target.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub mod client;
pub mod protocol;
#[cfg(windows)]
pub mod win;

pub use protocol::{Answer, Failure, FailureClass, Outcome, Request};

/// The helper's file name; it is looked for beside the `mapi` plugin's DLL.
pub const HELPER_EXE: &str = "mailhost-mapi32.exe";

/// `MAPI_LOGON_UI`: the client may ask which profile or account to use.
pub const MAPI_LOGON_UI: u32 = 0x1;
/// `MAPI_DIALOG`: show the message in the client's (modal) compose window.
pub const MAPI_DIALOG: u32 = 0x8;
/// `MAPI_DIALOG_MODELESS`: a modeless compose window (Outlook 2013 and
/// later); the call returns while the window stays open. It includes
/// `MAPI_DIALOG`, so a client without it shows its modal window.
pub const MAPI_DIALOG_MODELESS: u32 = 0x4 | MAPI_DIALOG;

/// Recipient classes (`ulRecipClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum RecipClass {
    To = 1,
    Cc = 2,
    Bcc = 3,
}

/// One `MapiRecipDescW`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub class: RecipClass,
    /// `lpszName`: the display name, or the address when there is none.
    pub name: String,
    /// `lpszAddress`: `SMTP:local@domain` (resolved by the client without its address book).
    pub address: String,
}

/// One `MapiFileDescW`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// `lpszPathName`: the temporary file.
    pub path: PathBuf,
    /// `lpszFileName`: the name the recipient sees.
    pub name: String,
}

/// The fields of one `MapiMessageW`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleMessage {
    pub subject: String,
    /// `lpszNoteText`: plain text only (HTML converted), CRLF line ends.
    pub body: String,
    pub recipients: Vec<Recipient>,
    pub files: Vec<File>,
}

/// The name of a `MAPISendMailW` return code.
pub fn code_name(code: u32) -> &'static str {
    match code {
        0 => "SUCCESS_SUCCESS",
        1 => "MAPI_E_USER_ABORT",
        2 => "MAPI_E_FAILURE",
        3 => "MAPI_E_LOGIN_FAILURE",
        4 => "MAPI_E_DISK_FULL",
        5 => "MAPI_E_INSUFFICIENT_MEMORY",
        6 => "MAPI_E_ACCESS_DENIED",
        8 => "MAPI_E_TOO_MANY_SESSIONS",
        9 => "MAPI_E_TOO_MANY_FILES",
        10 => "MAPI_E_TOO_MANY_RECIPIENTS",
        11 => "MAPI_E_ATTACHMENT_NOT_FOUND",
        12 => "MAPI_E_ATTACHMENT_OPEN_FAILURE",
        13 => "MAPI_E_ATTACHMENT_WRITE_FAILURE",
        14 => "MAPI_E_UNKNOWN_RECIPIENT",
        15 => "MAPI_E_BAD_RECIPTYPE",
        17 => "MAPI_E_INVALID_MESSAGE",
        18 => "MAPI_E_TEXT_TOO_LARGE",
        19 => "MAPI_E_INVALID_SESSION",
        20 => "MAPI_E_TYPE_NOT_SUPPORTED",
        21 => "MAPI_E_AMBIGUOUS_RECIPIENT",
        22 => "MAPI_E_MESSAGE_IN_USE",
        23 => "MAPI_E_NETWORK_FAILURE",
        24 => "MAPI_E_INVALID_EDITFIELDS",
        25 => "MAPI_E_INVALID_RECIPS",
        26 => "MAPI_E_NOT_SUPPORTED",
        27 => "MAPI_E_UNICODE_NOT_SUPPORTED",
        28 => "MAPI_E_ATTACHMENT_TOO_LARGE",
        _ => "an unknown MAPI code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_names() {
        assert_eq!(code_name(0), "SUCCESS_SUCCESS");
        assert_eq!(code_name(1), "MAPI_E_USER_ABORT");
        assert_eq!(code_name(28), "MAPI_E_ATTACHMENT_TOO_LARGE");
        assert_eq!(code_name(7), "an unknown MAPI code");
    }
}
