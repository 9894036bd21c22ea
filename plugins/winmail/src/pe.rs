//! [`Exports`] by reading the DLL's PE export table: no `LoadLibrary`, so a
//! probe runs none of the client's code, and a DLL of the other bitness is
//! recognised instead of failing to load.

use object::read::pe::{PeFile32, PeFile64};
use object::{FileKind, Object};

use crate::Exports;

/// Reads export tables from files. `host_64bit`: the bitness of this process
/// (Simple MAPI loads the client's DLL into it, so the bitness must match).
#[derive(Debug, Clone, Copy)]
pub struct PeExports {
    pub host_64bit: bool,
}

impl Default for PeExports {
    fn default() -> Self {
        Self {
            host_64bit: cfg!(target_pointer_width = "64"),
        }
    }
}

fn has<'d>(exports: impl Iterator<Item = object::Result<object::Export<'d>>>, name: &str) -> bool {
    exports
        .flatten()
        .any(|e| e.name().name() == Some(name.as_bytes()))
}

impl Exports for PeExports {
    fn has_export(&self, dll: &str, name: &str) -> Result<bool, String> {
        let path = dll.trim().trim_matches('"');
        let data = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
        let bad = |e: object::Error| format!("not a readable DLL: {e}");
        match FileKind::parse(&*data).map_err(bad)? {
            FileKind::Pe64 if self.host_64bit => {
                Ok(has(PeFile64::parse(&*data).map_err(bad)?.exports().map_err(bad)?, name))
            }
            FileKind::Pe32 if !self.host_64bit => {
                Ok(has(PeFile32::parse(&*data).map_err(bad)?.exports().map_err(bad)?, name))
            }
            FileKind::Pe32 => Err("it is a 32-bit DLL and mailhost is 64-bit; Simple MAPI loads the mail client into the calling program, so use a 64-bit mail client or the outlook mode".to_string()),
            FileKind::Pe64 => Err("it is a 64-bit DLL and mailhost is 32-bit; use the 64-bit mailhost".to_string()),
            other => Err(format!("not a Windows DLL ({other:?})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_non_pe_files_are_explained() {
        let e = PeExports::default().has_export("/nonexistent/x.dll", "MAPISendMailW");
        assert!(e.unwrap_err().starts_with("cannot read it:"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("text.dll");
        std::fs::write(&f, "not a library").unwrap();
        let e = PeExports::default()
            .has_export(&format!("\"{}\"", f.display()), "MAPISendMailW")
            .unwrap_err();
        assert!(e.starts_with("not a readable DLL"), "{e}");
    }

    #[cfg(not(windows))]
    #[test]
    fn an_elf_file_is_not_a_windows_dll() {
        // The test binary itself: a library format, but not PE.
        let exe = std::env::current_exe().unwrap();
        let e = PeExports::default()
            .has_export(&exe.display().to_string(), "main")
            .unwrap_err();
        assert!(e.contains("not a Windows DLL"), "{e}");
    }
}
