//! The Windows side: detection with the real registry and DLL files, and
//! `MAPISendMailW` from `mapi32.dll`, loaded at run time.

use mailhost_plugin_api::PluginError;
use mailhost_winmail::win::{on_sta_thread, wide};
use mailhost_winmail::{mapi_level, Exports, MapiLevel, PeExports, WinRegistry};
use windows::core::{s, PCWSTR, PWSTR};
use windows::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryW};
use windows::Win32::System::Mapi::{MapiFileDescW, MapiMessageW, MapiRecipDescW};

use crate::simple::{SendMail, SimpleMessage};
use crate::transport::Detected;

/// What the probe and `open` found.
#[derive(Debug)]
pub struct Detection {
    /// The probe's level: `simple` (offers `mapi-simple`).
    pub level: &'static str,
    pub detected: Detected,
}

/// The default mail client and what this version can do with it.
pub fn detect() -> Result<Detection, String> {
    let exports = PeExports::default();
    let (client, level) = mapi_level(&WinRegistry, &exports)?;
    let mut findings = vec![format!(
        "default mail client `{}` ({})",
        client.name,
        client.key()
    )];
    if let Some(p) = &client.dll_path {
        findings.push(format!("Simple MAPI DLL (DLLPath): {p}"));
    }
    if let Some(p) = &client.dll_path_ex {
        findings.push(format!("Extended MAPI DLL (DLLPathEx): {p}"));
    }
    if level == MapiLevel::Full {
        findings.push(
            "Extended MAPI is offered; this version sends through Simple MAPI, so mapi-full is not offered"
                .to_string(),
        );
        let simple = client
            .dll_path
            .as_deref()
            .map(|p| exports.has_export(p, "MAPISendMailW"));
        if !matches!(simple, Some(Ok(true))) {
            return Err(format!(
                "the default mail client `{}` offers Extended MAPI only, which this version does not drive (Simple MAPI: {}); use the outlook mode or an account",
                client.name,
                match simple {
                    None => "no DLLPath".to_string(),
                    Some(Ok(_)) => "no MAPISendMailW".to_string(),
                    Some(Err(e)) => e,
                }
            ));
        }
    }
    Ok(Detection {
        level: "simple",
        detected: Detected {
            client: client.name,
            findings,
        },
    })
}

/// `MAPISendMailW(lhSession, ulUIParam, lpMessage, flFlags, ulReserved)`.
type SendMailW = unsafe extern "system" fn(usize, usize, *const MapiMessageW, u32, u32) -> u32;

/// Simple MAPI through the system's `mapi32.dll` stub, which forwards to the
/// default mail client (as Wine's does).
#[derive(Debug, Clone, Copy)]
pub struct Mapi32;

fn pwstr(buf: &[u16]) -> PWSTR {
    PWSTR(buf.as_ptr().cast_mut())
}

fn call(m: &SimpleMessage, flags: u32) -> Result<u32, PluginError> {
    let dll = wide("mapi32.dll");
    // SAFETY: a NUL-terminated name; the library stays loaded (a mail client
    // may keep threads of its own running in it).
    let lib = unsafe { LoadLibraryW(PCWSTR(dll.as_ptr())) }.map_err(|e| {
        PluginError::unavailable(format!(
            "mapi-simple: cannot load mapi32.dll: {e}; install a mail client and make it the default"
        ))
    })?;
    // SAFETY: `lib` is a loaded module; the name is a NUL-terminated literal.
    let proc = unsafe { GetProcAddress(lib, s!("MAPISendMailW")) }.ok_or_else(|| {
        PluginError::unsupported(
            "mapi-simple: mapi32.dll has no MAPISendMailW (Windows older than 8?); choose another mode",
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
    // outlive the call; session 0 and no parent window.
    Ok(unsafe { send(0, 0, &message, flags, 0) })
}

impl SendMail for Mapi32 {
    fn send_mail(&self, m: &SimpleMessage, flags: u32) -> Result<u32, PluginError> {
        // A thread of its own in a single-threaded apartment: what mail
        // clients (and their dialogs) expect, whatever the host's thread is.
        let m = m.clone();
        on_sta_thread("mapi-simple", move || call(&m, flags))
    }
}
