//! The Windows side: `Outlook.Application` activated over COM and driven
//! through `IDispatch` (late binding: no type library needed, any Outlook
//! version and bitness).

use std::mem::ManuallyDrop;

use mailhost_plugin_api::{OutgoingMessage, PluginError};
use mailhost_winmail::win::{on_sta_thread, wide};
use mailhost_winmail::AttachmentFiles;
use windows::core::{GUID, PCWSTR};
use windows::Win32::System::Com::{
    CLSIDFromProgID, CoCreateInstance, IDispatch, CLSCTX_INPROC_SERVER, CLSCTX_LOCAL_SERVER,
    DISPATCH_FLAGS, DISPATCH_METHOD, DISPATCH_PROPERTYGET, DISPATCH_PROPERTYPUT, DISPPARAMS,
    EXCEPINFO,
};
use windows::Win32::System::Ole::DISPID_PROPERTYPUT;
use windows::Win32::System::Variant::VARIANT;

use crate::model::{self, map_com_error, ComError, Dispatch, Value};

/// `LOCALE_USER_DEFAULT`.
const LCID: u32 = 0x0400;
/// `DISP_E_EXCEPTION`: the server filled `EXCEPINFO`.
const DISP_E_EXCEPTION: u32 = 0x8002_0009;

/// A late-bound COM object and the name it is known by in error messages.
struct WinDispatch {
    object: IDispatch,
    name: String,
}

fn to_variant(v: &Value) -> VARIANT {
    match v {
        Value::Str(s) => VARIANT::from(s.as_str()),
        Value::Int(i) => VARIANT::from(*i),
        Value::Bool(b) => VARIANT::from(*b),
    }
}

impl WinDispatch {
    fn invoke(
        &self,
        member: &str,
        flags: DISPATCH_FLAGS,
        args: &[Value],
    ) -> Result<VARIANT, ComError> {
        let call = format!("{}.{member}", self.name);
        let fail = |e: windows::core::Error, description: String| ComError {
            hresult: e.code().0 as u32,
            description: if description.is_empty() {
                e.message()
            } else {
                description
            },
            call: call.clone(),
        };
        let wname = wide(member);
        let names = [PCWSTR(wname.as_ptr())];
        let mut dispid = 0i32;
        // SAFETY: one NUL-terminated name, one DISPID out.
        unsafe {
            self.object
                .GetIDsOfNames(&GUID::zeroed(), names.as_ptr(), 1, LCID, &mut dispid)
        }
        .map_err(|e| fail(e, String::new()))?;
        // IDispatch takes the arguments last to first.
        let mut vargs: Vec<VARIANT> = args.iter().rev().map(to_variant).collect();
        let mut named = DISPID_PROPERTYPUT;
        let put = flags == DISPATCH_PROPERTYPUT;
        let params = DISPPARAMS {
            rgvarg: if vargs.is_empty() {
                std::ptr::null_mut()
            } else {
                vargs.as_mut_ptr()
            },
            rgdispidNamedArgs: if put {
                &mut named
            } else {
                std::ptr::null_mut()
            },
            cArgs: vargs.len() as u32,
            cNamedArgs: u32::from(put),
        };
        let mut result = VARIANT::default();
        let mut excep = EXCEPINFO::default();
        // SAFETY: `params` points at `vargs`/`named`, which outlive the call.
        let r = unsafe {
            self.object.Invoke(
                dispid,
                &GUID::zeroed(),
                LCID,
                flags,
                &params,
                Some(&mut result),
                Some(&mut excep),
                None,
            )
        };
        let description = excep.bstrDescription.to_string();
        let scode = excep.scode as u32;
        // SAFETY: the BSTRs are owned by us after Invoke; each dropped once.
        unsafe {
            ManuallyDrop::drop(&mut excep.bstrSource);
            ManuallyDrop::drop(&mut excep.bstrDescription);
            ManuallyDrop::drop(&mut excep.bstrHelpFile);
        }
        match r {
            Ok(()) => Ok(result),
            Err(e) => {
                let mut err = fail(e, description);
                // The server's own code says more than "an exception occurred".
                if err.hresult == DISP_E_EXCEPTION && scode != 0 {
                    err.hresult = scode;
                }
                Err(err)
            }
        }
    }

    fn object(&self, member: &str, v: &VARIANT) -> Result<Box<dyn Dispatch>, ComError> {
        let object = IDispatch::try_from(v).map_err(|e| ComError {
            hresult: e.code().0 as u32,
            description: "the answer is not an object".to_string(),
            call: format!("{}.{member}", self.name),
        })?;
        let name = if member == "CreateItem" {
            "MailItem"
        } else {
            member
        };
        Ok(Box::new(WinDispatch {
            object,
            name: name.to_string(),
        }))
    }
}

impl Dispatch for WinDispatch {
    fn call(&self, name: &str, args: &[Value]) -> Result<Option<Box<dyn Dispatch>>, ComError> {
        let v = self.invoke(name, DISPATCH_METHOD, args)?;
        if v.is_empty() {
            return Ok(None);
        }
        Ok(self.object(name, &v).ok())
    }

    fn get(&self, name: &str) -> Result<Box<dyn Dispatch>, ComError> {
        let v = self.invoke(name, DISPATCH_PROPERTYGET, &[])?;
        self.object(name, &v)
    }

    fn put(&self, name: &str, value: Value) -> Result<(), ComError> {
        self.invoke(name, DISPATCH_PROPERTYPUT, &[value])
            .map(|_| ())
    }
}

/// `Outlook.Application`, started by COM if it is not running.
fn application() -> Result<WinDispatch, ComError> {
    let progid = wide(mailhost_winmail::detect::OUTLOOK_PROGID);
    let fail = |call: &str, e: windows::core::Error| ComError {
        hresult: e.code().0 as u32,
        description: e.message(),
        call: call.to_string(),
    };
    // SAFETY: a NUL-terminated ProgID.
    let clsid = unsafe { CLSIDFromProgID(PCWSTR(progid.as_ptr())) }
        .map_err(|e| fail("CLSIDFromProgID(Outlook.Application)", e))?;
    // Outlook registers a local (out-of-process) server (as the Wine test
    // double does); an in-process registration is taken where it is the one
    // offered, as VBScript's CreateObject would.
    // SAFETY: a CLSID from the registry.
    let object: IDispatch =
        unsafe { CoCreateInstance(&clsid, None, CLSCTX_LOCAL_SERVER | CLSCTX_INPROC_SERVER) }
            .map_err(|e| fail("CoCreateInstance(Outlook.Application)", e))?;
    Ok(WinDispatch {
        object,
        name: "Application".to_string(),
    })
}

/// Sends (`MailItem.Send`) or shows (`MailItem.Display`, non-modal) `message`
/// in Outlook, on a thread of its own in a single-threaded apartment.
pub fn hand_over(message: &OutgoingMessage, compose: bool) -> Result<(), PluginError> {
    let message = message.clone();
    on_sta_thread("outlook", move || {
        // Attachments.Add copies the file into the item: the files can go
        // when the call returns, even for a window still open.
        let files =
            AttachmentFiles::write(&std::env::temp_dir(), message.parts.attachments.as_slice())?;
        let app = application().map_err(|e| map_com_error(&e))?;
        model::hand_over(&app, &message, &files, compose).map_err(|e| map_com_error(&e))
    })
}
