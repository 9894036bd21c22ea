//! Checks a plugin file before the dynamic loader maps it.
//!
//! The dynamic loader trusts a library's headers: a file cut short by an
//! unfinished copy (its headers intact, its segments past the end of the
//! file) is mapped, and the first touch of a missing page kills the process
//! with SIGBUS before anything is printed. So each file is parsed read-only
//! first (the `object` crate: ELF, PE, Mach-O), reading only the headers it
//! needs: it must be a shared library for this machine's architecture whose
//! every segment and section lies inside the file.

use std::fs::File;
use std::path::Path;

use object::read::elf::{FileHeader, ProgramHeader};
use object::read::{Object, ObjectSection, ObjectSegment, ReadCache};
use object::{elf, Architecture, Endianness, FileKind, ObjectKind};

use super::FailureKind;

/// A plugin file larger than this is refused unread (the largest debug
/// build of a plugin in this workspace is under 100 MB).
pub const MAX_PLUGIN_BYTES: u64 = 1024 * 1024 * 1024;

/// What to do about a damaged file (said after every "truncated" reason).
const RECOPY: &str = "copy the plugin again, to a temporary name and then by rename (copying over a plugin in use crashes the hosts using it)";

type Failure = (FailureKind, String);

/// Whether `path` is a shared library the dynamic loader can map safely.
/// A file that is no object file at all is passed on: the dynamic loader
/// refuses it with its own words, without mapping it.
pub fn plugin_file(path: &Path) -> Result<(), Failure> {
    let not_lib = |reason: String| (FailureKind::NotALibrary, reason);
    // Metadata before opening: opening a named pipe would block.
    let meta = std::fs::metadata(path).map_err(|e| {
        not_lib(format!(
            "cannot open the file ({e}); check that it exists and that the host may read it"
        ))
    })?;
    if !meta.is_file() {
        return Err(not_lib(
            "not a regular file; remove it from the plugin directory".to_string(),
        ));
    }
    let len = meta.len();
    if len > MAX_PLUGIN_BYTES {
        return Err(not_lib(format!(
            "the file has {len} bytes, more than the {MAX_PLUGIN_BYTES} a plugin may have; remove it from the plugin directory"
        )));
    }
    let file = File::open(path).map_err(|e| {
        not_lib(format!(
            "cannot open the file ({e}); check that the host may read it"
        ))
    })?;
    let cache = ReadCache::new(file);
    let data = &cache;
    let Ok(kind) = FileKind::parse(data) else {
        return Ok(());
    };
    let expected = expected_format();
    let format_ok = match kind {
        FileKind::Elf32 | FileKind::Elf64 => expected == "ELF",
        FileKind::Pe32 | FileKind::Pe64 => expected == "PE",
        FileKind::MachO32 | FileKind::MachO64 | FileKind::MachOFat32 | FileKind::MachOFat64 => {
            expected == "Mach-O"
        }
        _ => false,
    };
    if !format_ok {
        return Err(not_lib(format!(
            "a {kind:?} file, but plugins on {} are {expected} shared libraries; use the plugin built for {}-{}",
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::env::consts::OS
        )));
    }
    match kind {
        FileKind::Elf64 => elf_bounds::<elf::FileHeader64<Endianness>>(data, len)?,
        FileKind::Elf32 => elf_bounds::<elf::FileHeader32<Endianness>>(data, len)?,
        // A universal (fat) Mach-O holds several libraries: the dynamic
        // loader picks this machine's; its own checks apply.
        FileKind::MachOFat32 | FileKind::MachOFat64 => return Ok(()),
        _ => {}
    }
    let obj = object::File::parse(data).map_err(|e| {
        (
            FailureKind::Truncated,
            format!("damaged: the file ({len} bytes) cannot be read as a shared library ({e}); {RECOPY}"),
        )
    })?;
    if obj.kind() != ObjectKind::Dynamic {
        return Err(not_lib(format!(
            "not a shared library (a {:?} file); remove it from the plugin directory",
            obj.kind()
        )));
    }
    if let Some(host) = host_architecture() {
        let arch = obj.architecture();
        if arch != host {
            return Err((
                FailureKind::WrongArchitecture,
                format!(
                    "built for the {arch:?} architecture, this host is {} ({host:?}); use the plugin built for {}",
                    std::env::consts::ARCH,
                    std::env::consts::ARCH
                ),
            ));
        }
    }
    for seg in obj.segments() {
        let (offset, size) = seg.file_range();
        inside(len, offset, size, "a segment")?;
    }
    for sec in obj.sections() {
        if let Some((offset, size)) = sec.file_range() {
            let what = match sec.name() {
                Ok(n) if !n.is_empty() => format!("section {}", n.escape_debug()),
                _ => "a section".to_string(),
            };
            inside(len, offset, size, &what)?;
        }
    }
    Ok(())
}

/// `offset + size` within a file of `len` bytes, or a "truncated" failure.
fn inside(len: u64, offset: u64, size: u64, what: &str) -> Result<(), Failure> {
    let end = offset.saturating_add(size);
    if end > len {
        return Err((
            FailureKind::Truncated,
            format!("cut short: {what} ends at byte {end} but the file has {len} bytes; {RECOPY}"),
        ));
    }
    Ok(())
}

/// The ELF checks that need no section headers, so that a file cut before
/// them still says which part is missing: file type, loadable segments, and
/// where the section header table ends.
fn elf_bounds<H: FileHeader<Endian = Endianness>>(
    data: &ReadCache<File>,
    len: u64,
) -> Result<(), Failure> {
    let damaged = |what: &str| {
        (
            FailureKind::Truncated,
            format!("damaged: {what} (the file has {len} bytes); {RECOPY}"),
        )
    };
    let h = H::parse(data).map_err(|e| damaged(&format!("the ELF header cannot be read ({e})")))?;
    let e = h
        .endian()
        .map_err(|e| damaged(&format!("the ELF header cannot be read ({e})")))?;
    if h.e_type(e) != elf::ET_DYN {
        return Err((
            FailureKind::NotALibrary,
            format!(
                "an ELF file but not a shared library (ELF type {}); remove it from the plugin directory",
                h.e_type(e).0
            ),
        ));
    }
    let phoff: u64 = h.e_phoff(e).into();
    let ph_end = phoff.saturating_add(u64::from(h.e_phnum(e)) * u64::from(h.e_phentsize(e)));
    inside(len, phoff, ph_end - phoff, "the program header table")?;
    let phs = h
        .program_headers(e, data)
        .map_err(|err| damaged(&format!("the program headers cannot be read ({err})")))?;
    for ph in phs {
        if ph.p_type(e) == elf::PT_LOAD {
            inside(
                len,
                ph.p_offset(e).into(),
                ph.p_filesz(e).into(),
                "a loadable segment",
            )?;
        }
    }
    let shoff: u64 = h.e_shoff(e).into();
    if shoff != 0 {
        let size = u64::from(h.e_shnum(e)) * u64::from(h.e_shentsize(e));
        inside(len, shoff, size, "the section header table")?;
    }
    Ok(())
}

/// The object format this operating system's dynamic loader takes.
fn expected_format() -> &'static str {
    match std::env::consts::OS {
        "windows" => "PE",
        "macos" | "ios" => "Mach-O",
        _ => "ELF",
    }
}

/// This host's architecture as `object` names it (`None`: not checked).
fn host_architecture() -> Option<Architecture> {
    Some(match std::env::consts::ARCH {
        "x86_64" => Architecture::X86_64,
        "x86" => Architecture::I386,
        "aarch64" => Architecture::Aarch64,
        "arm" => Architecture::Arm,
        "riscv64" => Architecture::Riscv64,
        "powerpc64" => Architecture::PowerPc64,
        "s390x" => Architecture::S390x,
        "loongarch64" => Architecture::LoongArch64,
        _ => return None,
    })
}
