//! The Windows side: detection with the real registry and DLL files, and
//! `MAPISendMailW` from `mapi32.dll`, loaded at run time.

use std::path::PathBuf;

use mailhost_mapi_helper32::win::send_mail_w;
use mailhost_mapi_helper32::FailureClass;
use mailhost_plugin_api::PluginError;
use mailhost_winmail::win::on_sta_thread;
use mailhost_winmail::{dll_bitness, mapi_level, Exports, MapiLevel, PeExports, WinRegistry};
use windows::core::PCWSTR;
use windows::Win32::Foundation::HMODULE;
use windows::Win32::System::LibraryLoader::{
    GetModuleFileNameW, GetModuleHandleExW, GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
    GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
};

use crate::helper::{helper_path, missing};
use crate::simple::{route, Route, SendMail, SimpleMessage};
use crate::transport::Detected;

/// What the probe and `open` found.
#[derive(Debug)]
pub struct Detection {
    /// The probe's level: `full` (offers `mapi-full` and `mapi-simple`) or
    /// `simple` (offers `mapi-simple`).
    pub level: MapiLevel,
    pub detected: Detected,
    /// The 32-bit helper, when the calls go through it.
    pub helper: Option<PathBuf>,
}

/// The default mail client and what this version can do with it.
pub fn detect() -> Result<Detection, String> {
    // A 32-bit client's DLL counts: a 64-bit mailhost reaches it through the helper.
    let exports = PeExports::with_helper32();
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
            "Extended MAPI is offered: mode mapi-full composes in the client's modeless window (MAPI_DIALOG_MODELESS); a mapi-full send is refused (Extended MAPI sending is not built) and mapi-simple sends"
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
    let dll = client.dll_path.as_deref().unwrap_or_default();
    let bits = dll_bitness(dll).map_err(|e| format!("its DLLPath {dll}: {e}"))?;
    let helper = match route(cfg!(target_pointer_width = "64"), bits)
        .map_err(|e| format!("the default mail client `{}`: {e}", client.name))?
    {
        Route::InProcess => None,
        Route::Helper32 => {
            let program = helper_path(&plugin_dir()?);
            if !program.is_file() {
                return Err(missing(&client.name, &program));
            }
            findings.push(format!(
                "its Simple MAPI DLL is 32-bit and mailhost 64-bit: calls go through the 32-bit helper {}",
                program.display()
            ));
            Some(program)
        }
    };
    Ok(Detection {
        level,
        detected: Detected {
            client: client.name,
            findings,
        },
        helper,
    })
}

/// The directory of this plugin's DLL (where the 32-bit helper is installed).
fn plugin_dir() -> Result<PathBuf, String> {
    let mut module = HMODULE::default();
    // Any function of this DLL names the module it is in.
    let here = plugin_dir as *const () as *const u16;
    // SAFETY: FROM_ADDRESS takes an address inside a module; the handle is not
    // reference-counted (UNCHANGED_REFCOUNT) and this DLL stays loaded.
    unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            PCWSTR(here),
            &mut module,
        )
    }
    .map_err(|e| format!("cannot find the mapi plugin's own DLL: {e}"))?;
    let mut buf = vec![0u16; 32_768];
    // SAFETY: a loaded module and a buffer of the size passed.
    let n = unsafe { GetModuleFileNameW(Some(module), &mut buf) } as usize;
    if n == 0 || n >= buf.len() {
        return Err("cannot read the mapi plugin's own file name".to_string());
    }
    let dll = PathBuf::from(String::from_utf16_lossy(&buf[..n]));
    dll.parent()
        .map(|d| d.to_path_buf())
        .ok_or_else(|| format!("the mapi plugin's file {} has no directory", dll.display()))
}

/// Simple MAPI through the system's `mapi32.dll` stub, in this process.
#[derive(Debug, Clone, Copy)]
pub struct Mapi32;

impl SendMail for Mapi32 {
    fn send_mail(&self, m: &SimpleMessage, flags: u32) -> Result<u32, PluginError> {
        // A thread of its own in a single-threaded apartment: what mail
        // clients (and their dialogs) expect, whatever the host's thread is.
        let m = m.clone();
        on_sta_thread("mapi-simple", move || {
            send_mail_w(&m, flags, 0).map_err(|f| {
                let text = format!("mapi-simple: {}", f.message);
                match f.class {
                    FailureClass::Unavailable => PluginError::unavailable(text),
                    FailureClass::Unsupported => PluginError::unsupported(text),
                    FailureClass::Permanent => PluginError::permanent(text),
                }
            })
        })
    }
}
