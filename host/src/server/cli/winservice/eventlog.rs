//! The Windows Event Log side of the service: the event source's registry
//! key (written by `service install`, removed by `uninstall`) and the
//! `ReportEventW` sink behind [`super::events`]' layer.

/// The registry key of an event source in the Application log.
fn event_source_key(name: &str) -> String {
    format!("SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\{name}")
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Registers the service's name as an event source whose message table
/// is in this executable (`res/eventlog.mc`), so Event Viewer shows each
/// event's text as written.
pub(super) fn register(name: &str, exe: &std::path::Path) -> Result<(), String> {
    use windows::core::PCWSTR;
    use windows::Win32::Foundation::ERROR_SUCCESS;
    use windows::Win32::System::Registry::{
        RegCloseKey, RegCreateKeyExW, RegSetValueExW, HKEY, HKEY_LOCAL_MACHINE, KEY_SET_VALUE,
        REG_DWORD, REG_EXPAND_SZ, REG_OPTION_NON_VOLATILE,
    };
    let key = event_source_key(name);
    let key_w = wide(&key);
    let mut h = HKEY::default();
    // SAFETY: NUL-terminated names, a handle out, closed below.
    let rc = unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            PCWSTR(key_w.as_ptr()),
            None,
            PCWSTR::null(),
            REG_OPTION_NON_VOLATILE,
            KEY_SET_VALUE,
            None,
            &mut h,
            None,
        )
    };
    if rc != ERROR_SUCCESS {
        return Err(format!(
            "cannot register the event source HKLM\\{key}: {} (run it as an administrator)",
            windows::core::Error::from(rc.to_hresult()).message()
        ));
    }
    let file: Vec<u8> = wide(&exe.display().to_string())
        .iter()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    // Error, warning and information events.
    let types = 7u32.to_le_bytes();
    let name_w = |n: &str| wide(n);
    let (f, t) = (name_w("EventMessageFile"), name_w("TypesSupported"));
    // SAFETY: the key is open; the data outlive the calls.
    let rc = unsafe {
        let a = RegSetValueExW(h, PCWSTR(f.as_ptr()), None, REG_EXPAND_SZ, Some(&file));
        let b = RegSetValueExW(h, PCWSTR(t.as_ptr()), None, REG_DWORD, Some(&types));
        let _ = RegCloseKey(h);
        if a != ERROR_SUCCESS {
            a
        } else {
            b
        }
    };
    if rc != ERROR_SUCCESS {
        return Err(format!(
            "cannot write the event source HKLM\\{key}: {}",
            windows::core::Error::from(rc.to_hresult()).message()
        ));
    }
    Ok(())
}

pub(super) fn deregister(name: &str) -> Result<(), String> {
    use windows::core::PCWSTR;
    use windows::Win32::Foundation::ERROR_SUCCESS;
    use windows::Win32::System::Registry::{RegDeleteTreeW, HKEY_LOCAL_MACHINE};
    let key_w = wide(&event_source_key(name));
    // SAFETY: a NUL-terminated key name.
    let rc = unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, PCWSTR(key_w.as_ptr())) };
    if rc != ERROR_SUCCESS {
        return Err(windows::core::Error::from(rc.to_hresult()).message());
    }
    Ok(())
}

/// An event source handle, for the process's life (`ReportEventW` may be
/// called from any thread).
struct EventSource(windows::Win32::Foundation::HANDLE);

// SAFETY: an event source handle is not tied to a thread.
unsafe impl Send for EventSource {}
// SAFETY: as above; ReportEventW is thread-safe.
unsafe impl Sync for EventSource {}

impl super::events::Sink for EventSource {
    fn report(&self, kind: super::events::Kind, text: &str) {
        use windows::core::PCWSTR;
        use windows::Win32::System::EventLog::{
            ReportEventW, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE, EVENTLOG_WARNING_TYPE,
        };
        let wtype = match kind {
            super::events::Kind::Error => EVENTLOG_ERROR_TYPE,
            super::events::Kind::Warning => EVENTLOG_WARNING_TYPE,
            super::events::Kind::Information => EVENTLOG_INFORMATION_TYPE,
        };
        let text = wide(text);
        let strings = [PCWSTR(text.as_ptr())];
        // SAFETY: the handle is open; the string is NUL-terminated and outlives the call.
        let _ =
            unsafe { ReportEventW(self.0, wtype, 0, kind as u32, None, 0, Some(&strings), None) };
    }
}

/// The layer that writes the service's events to the Event Log.
pub(super) fn event_log(name: &str, log_file: &std::path::Path) -> Option<super::ExtraLog> {
    use windows::core::PCWSTR;
    use windows::Win32::System::EventLog::RegisterEventSourceW;
    let name_w = wide(name);
    // SAFETY: a NUL-terminated source name; the handle is kept for good.
    match unsafe { RegisterEventSourceW(PCWSTR::null(), PCWSTR(name_w.as_ptr())) } {
        Ok(h) if !h.is_invalid() => Some(Box::new(super::events::EventLog::new(
            EventSource(h),
            log_file,
        ))),
        Ok(_) => None,
        Err(e) => {
            eprintln!("mailhost: cannot open the Event Log for `{name}`: {}; events go to the log file only", e.message());
            None
        }
    }
}
