//! The Windows side of the registry seam, and a thread for COM calls.

use windows::core::PCWSTR;
use windows::Win32::Foundation::ERROR_SUCCESS;
use windows::Win32::System::Registry::{
    RegCloseKey, RegGetValueW, RegOpenKeyExW, HKEY, HKEY_CLASSES_ROOT, HKEY_CURRENT_USER,
    HKEY_LOCAL_MACHINE, KEY_READ, KEY_WOW64_32KEY, KEY_WOW64_64KEY, REG_ROUTINE_FLAGS,
    RRF_RT_REG_DWORD, RRF_RT_REG_SZ,
};

use crate::registry::{Hive, Registry, View};

/// A NUL-terminated UTF-16 copy of `s`.
pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// The real registry (`RegOpenKeyExW` in the asked view, then `RegGetValueW`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WinRegistry;

fn root(hive: Hive) -> HKEY {
    match hive {
        Hive::CurrentUser => HKEY_CURRENT_USER,
        Hive::LocalMachine => HKEY_LOCAL_MACHINE,
        Hive::ClassesRoot => HKEY_CLASSES_ROOT,
    }
}

/// An open key, closed when dropped.
struct Key(HKEY);

impl Key {
    fn open(hive: Hive, view: View, key: &str) -> Option<Self> {
        let access = KEY_READ
            | match view {
                View::Native => KEY_WOW64_64KEY,
                View::Wow32 => KEY_WOW64_32KEY,
            };
        let key_w = wide(key);
        let mut h = HKEY::default();
        // SAFETY: a NUL-terminated subkey name and a handle out.
        let rc = unsafe { RegOpenKeyExW(root(hive), PCWSTR(key_w.as_ptr()), None, access, &mut h) };
        (rc == ERROR_SUCCESS).then_some(Key(h))
    }

    /// `RegGetValueW` on this key into `buf` (`len` bytes); `""` is the default value.
    fn value(
        &self,
        value: &str,
        flags: REG_ROUTINE_FLAGS,
        buf: Option<*mut core::ffi::c_void>,
        len: &mut u32,
    ) -> bool {
        let value_w = wide(value);
        let name = if value.is_empty() {
            PCWSTR::null()
        } else {
            PCWSTR(value_w.as_ptr())
        };
        // SAFETY: the key is open; `buf`, when given, holds `len` bytes.
        let rc = unsafe { RegGetValueW(self.0, PCWSTR::null(), name, flags, None, buf, Some(len)) };
        rc == ERROR_SUCCESS
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: opened by RegOpenKeyExW, closed once.
        let _ = unsafe { RegCloseKey(self.0) };
    }
}

impl Registry for WinRegistry {
    fn string(&self, hive: Hive, view: View, key: &str, value: &str) -> Option<String> {
        let k = Key::open(hive, view, key)?;
        // REG_EXPAND_SZ values come back expanded under RRF_RT_REG_SZ (asking
        // for RRF_RT_REG_EXPAND_SZ without RRF_NOEXPAND is invalid).
        let flags = RRF_RT_REG_SZ;
        let mut len: u32 = 0;
        if !k.value(value, flags, None, &mut len) || len == 0 {
            return None;
        }
        let mut buf = vec![0u16; (len as usize).div_ceil(2)];
        if !k.value(value, flags, Some(buf.as_mut_ptr().cast()), &mut len) {
            return None;
        }
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        Some(String::from_utf16_lossy(&buf[..end]))
    }

    fn dword(&self, hive: Hive, view: View, key: &str, value: &str) -> Option<u32> {
        let k = Key::open(hive, view, key)?;
        let mut data: u32 = 0;
        let mut len: u32 = 4;
        k.value(
            value,
            RRF_RT_REG_DWORD,
            Some((&mut data as *mut u32).cast()),
            &mut len,
        )
        .then_some(data)
    }
}

/// Runs `f` on a new thread that joined a single-threaded COM apartment (what
/// mail clients, their dialogs and Outlook's object model expect), and waits.
pub fn on_sta_thread<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, mailhost_plugin_api::PluginError> + Send + 'static,
) -> Result<T, mailhost_plugin_api::PluginError> {
    use mailhost_plugin_api::PluginError;
    use windows::Win32::System::Com::{CoInitializeEx, CoUninitialize, COINIT_APARTMENTTHREADED};
    let what = what.to_string();
    let name = format!("mailhost-{what}");
    let worker = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            // SAFETY: paired with CoUninitialize below on this same thread.
            let hr = unsafe { CoInitializeEx(None, COINIT_APARTMENTTHREADED) };
            if hr.is_err() {
                return Err(PluginError::unavailable(format!(
                    "{what}: cannot initialise COM on its thread: {hr:?}"
                )));
            }
            let r = f();
            // SAFETY: this thread initialised COM above.
            unsafe { CoUninitialize() };
            r
        })
        .map_err(|e| PluginError::transient(format!("cannot start a thread for the call: {e}")))?;
    worker
        .join()
        .map_err(|_| PluginError::permanent("the thread of the call panicked"))?
}
