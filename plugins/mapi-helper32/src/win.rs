//! `MAPISendMailW` from `mapi32.dll`, loaded at run time: the one place that
//! turns a [`SimpleMessage`] into `MapiMessageW`, used by the `mapi` plugin
//! in process and by the 32-bit helper.

use windows::core::{s, PCWSTR, PWSTR};
use windows::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryW};
use windows::Win32::System::Mapi::{MapiFileDescW, MapiMessageW, MapiRecipDescW};

use crate::protocol::{Failure, FailureClass};
use crate::SimpleMessage;

/// A NUL-terminated UTF-16 copy of `s`.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn pwstr(buf: &[u16]) -> PWSTR {
    PWSTR(buf.as_ptr().cast_mut())
}

/// `MAPISendMailW(lhSession, ulUIParam, lpMessage, flFlags, ulReserved)`.
type SendMailW = unsafe extern "system" fn(usize, usize, *const MapiMessageW, u32, u32) -> u32;

/// Hands `m` to `MAPISendMailW` of the system's `mapi32.dll` stub (which
/// forwards to the default mail client) and returns its code. `ui_param` is
/// the parent window (0 for none). Call it on a thread in a single-threaded
/// COM apartment: mail clients and their dialogs expect one.
pub fn send_mail_w(m: &SimpleMessage, flags: u32, ui_param: usize) -> Result<u32, Failure> {
    let dll = wide("mapi32.dll");
    // SAFETY: a NUL-terminated name; the library stays loaded (a mail client
    // may keep threads of its own running in it).
    let lib = unsafe { LoadLibraryW(PCWSTR(dll.as_ptr())) }.map_err(|e| {
        Failure::new(
            FailureClass::Unavailable,
            format!("cannot load mapi32.dll: {e}; install a mail client and make it the default"),
        )
    })?;
    // SAFETY: `lib` is a loaded module; the name is a NUL-terminated literal.
    let proc = unsafe { GetProcAddress(lib, s!("MAPISendMailW")) }.ok_or_else(|| {
        Failure::new(
            FailureClass::Unsupported,
            "mapi32.dll has no MAPISendMailW (Windows older than 8?); choose another mode",
        )
    })?;
    // SAFETY: MAPISendMailW has this signature (mapi.h, LPMAPISENDMAILW).
    let send: SendMailW = unsafe { std::mem::transmute(proc) };

    let subject = wide(&m.subject);
    let body = wide(&m.body);
    let names: Vec<Vec<u16>> = m.recipients.iter().map(|r| wide(&r.name)).collect();
    let addresses: Vec<Vec<u16>> = m.recipients.iter().map(|r| wide(&r.address)).collect();
    let mut recips: Vec<MapiRecipDescW> = m
        .recipients
        .iter()
        .enumerate()
        .map(|(i, r)| MapiRecipDescW {
            ulRecipClass: r.class as u32,
            lpszName: pwstr(&names[i]),
            lpszAddress: pwstr(&addresses[i]),
            ..Default::default()
        })
        .collect();
    let paths: Vec<Vec<u16>> = m
        .files
        .iter()
        .map(|f| wide(&f.path.to_string_lossy()))
        .collect();
    let file_names: Vec<Vec<u16>> = m.files.iter().map(|f| wide(&f.name)).collect();
    let mut files: Vec<MapiFileDescW> = (0..m.files.len())
        .map(|i| MapiFileDescW {
            // -1: not placed inside the body text.
            nPosition: u32::MAX,
            lpszPathName: pwstr(&paths[i]),
            lpszFileName: pwstr(&file_names[i]),
            ..Default::default()
        })
        .collect();
    let message = MapiMessageW {
        lpszSubject: pwstr(&subject),
        lpszNoteText: pwstr(&body),
        nRecipCount: recips.len() as u32,
        lpRecips: if recips.is_empty() {
            std::ptr::null_mut()
        } else {
            recips.as_mut_ptr()
        },
        nFileCount: files.len() as u32,
        lpFiles: if files.is_empty() {
            std::ptr::null_mut()
        } else {
            files.as_mut_ptr()
        },
        ..Default::default()
    };
    // SAFETY: every pointer in `message` points into the buffers above, which
    // outlive the call; session 0.
    Ok(unsafe { send(0, ui_param, &message, flags, 0) })
}
