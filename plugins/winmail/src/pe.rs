//! [`Exports`] by reading the DLL's PE export table: no `LoadLibrary`, so a
//! probe runs none of the client's code, and a DLL of the other bitness is
//! recognised instead of failing to load.

use object::read::pe::{PeFile32, PeFile64};
use object::{FileKind, Object};

use crate::Exports;

/// Reads export tables from files. `host_64bit`: the bitness of this process
/// (Simple MAPI loads the client's DLL into it, so the bitness must match).
/// `helper32`: a 64-bit host that can hand a 32-bit DLL's calls to a 32-bit
/// helper process (the `mapi` plugin's `mailhost-mapi32.exe`), so a 32-bit
/// DLL's exports count too.
#[derive(Debug, Clone, Copy)]
pub struct PeExports {
    pub host_64bit: bool,
    pub helper32: bool,
}

impl Default for PeExports {
    fn default() -> Self {
        Self {
            host_64bit: cfg!(target_pointer_width = "64"),
            helper32: false,
        }
    }
}

impl PeExports {
    /// This process's bitness, and 32-bit DLLs served by a 32-bit helper.
    pub fn with_helper32() -> Self {
        Self {
            helper32: true,
            ..Self::default()
        }
    }
}

/// Whether a DLL is 32- or 64-bit (its PE header's format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bitness {
    Bits32,
    Bits64,
}

impl Bitness {
    /// `32-bit` / `64-bit`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Bitness::Bits32 => "32-bit",
            Bitness::Bits64 => "64-bit",
        }
    }
}

/// The bitness of the DLL file `dll` (quotes around the path are allowed, as
/// the registry has them), read from its header without loading it.
pub fn dll_bitness(dll: &str) -> Result<Bitness, String> {
    let path = dll.trim().trim_matches('"');
    let data = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    bitness_of(&data)
}

/// The bitness of a PE image in memory.
pub fn bitness_of(data: &[u8]) -> Result<Bitness, String> {
    match FileKind::parse(data).map_err(|e| format!("not a readable DLL: {e}"))? {
        FileKind::Pe32 => Ok(Bitness::Bits32),
        FileKind::Pe64 => Ok(Bitness::Bits64),
        other => Err(format!("not a Windows DLL ({other:?})")),
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
            FileKind::Pe32 if !self.host_64bit || self.helper32 => {
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

    /// The smallest PE header `object` recognises: an MZ stub pointing at a
    /// `PE\0\0` signature, a COFF header and the optional header's magic.
    fn pe_header(magic: u16) -> Vec<u8> {
        let mut d = vec![0u8; 0x200];
        d[0..2].copy_from_slice(b"MZ");
        d[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        d[0x80..0x84].copy_from_slice(b"PE\0\0");
        d[0x84..0x86]
            .copy_from_slice(&(if magic == 0x10b { 0x14cu16 } else { 0x8664 }).to_le_bytes());
        d[0x98..0x9a].copy_from_slice(&magic.to_le_bytes());
        d
    }

    #[test]
    fn bitness_comes_from_the_header() {
        assert_eq!(bitness_of(&pe_header(0x10b)), Ok(Bitness::Bits32));
        assert_eq!(bitness_of(&pe_header(0x20b)), Ok(Bitness::Bits64));
        assert!(bitness_of(b"not a library")
            .unwrap_err()
            .starts_with("not a readable DLL"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client32.dll");
        std::fs::write(&f, pe_header(0x10b)).unwrap();
        assert_eq!(
            dll_bitness(&format!("\"{}\"", f.display())),
            Ok(Bitness::Bits32)
        );
        assert!(dll_bitness("/nonexistent/x.dll")
            .unwrap_err()
            .starts_with("cannot read it"));
    }

    #[test]
    fn a_32_bit_dll_counts_for_a_64_bit_host_only_with_the_helper() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client32.dll");
        std::fs::write(&f, pe_header(0x10b)).unwrap();
        let f = f.display().to_string();
        let plain = PeExports {
            host_64bit: true,
            helper32: false,
        };
        assert!(plain
            .has_export(&f, "MAPISendMailW")
            .unwrap_err()
            .contains("32-bit DLL and mailhost is 64-bit"));
        // With the helper the export table is read (this header has none).
        let helped = PeExports {
            host_64bit: true,
            helper32: true,
        };
        assert!(
            !matches!(helped.has_export(&f, "MAPISendMailW"), Err(ref e) if e.contains("32-bit DLL"))
        );
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
