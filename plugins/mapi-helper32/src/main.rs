//! `mailhost-mapi32.exe`: the 32-bit Simple MAPI helper of the `mapi` plugin.
//!
//! Started by the plugin when the default mail client's MAPI DLL is 32-bit and
//! mailhost is 64-bit; reads one request from stdin, makes the one
//! `MAPISendMailW` call, writes the answer to stdout and exits (the protocol:
//! `mailhost_mapi_helper32::protocol`). Not meant to be run by hand.

use std::process::ExitCode;

use mailhost_mapi_helper32::protocol::serve;
#[cfg(not(windows))]
use mailhost_mapi_helper32::{Answer, Failure, FailureClass};

#[cfg(windows)]
fn answer(request: &mailhost_mapi_helper32::Request) -> mailhost_mapi_helper32::Answer {
    use mailhost_mapi_helper32::{Answer, Failure, FailureClass};
    use windows::Win32::System::Com::{CoInitializeEx, CoUninitialize, COINIT_APARTMENTTHREADED};
    // SAFETY: paired with CoUninitialize below, on this thread.
    let hr = unsafe { CoInitializeEx(None, COINIT_APARTMENTTHREADED) };
    if hr.is_err() {
        return Answer::failed(Failure::new(
            FailureClass::Unavailable,
            format!("cannot initialise COM in the helper: {hr:?}"),
        ));
    }
    let ui_param = usize::try_from(request.ui_param).unwrap_or(0);
    let answer =
        match mailhost_mapi_helper32::win::send_mail_w(&request.message, request.flags, ui_param) {
            Ok(code) => Answer::returned(code),
            Err(failure) => Answer::failed(failure),
        };
    // SAFETY: initialised above on this thread.
    unsafe { CoUninitialize() };
    answer
}

#[cfg(not(windows))]
fn answer(_request: &mailhost_mapi_helper32::Request) -> Answer {
    Answer::failed(Failure::new(
        FailureClass::Unavailable,
        "requires Windows (Simple MAPI is a Windows interface)",
    ))
}

fn main() -> ExitCode {
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    match serve(&mut input, &mut output, answer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailhost-mapi32: cannot write the answer to stdout: {e}; it is meant to be started by the mapi plugin");
            ExitCode::from(2)
        }
    }
}
