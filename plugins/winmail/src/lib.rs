//! What the Windows desktop-client plugins (`mapi`, `outlook`) share: reading
//! the registry to detect Outlook Classic, the new Outlook and the default mail
//! client's MAPI level; HTML to plain text for Simple MAPI; attachments as
//! temporary files.
//!
//! Every OS call sits behind a small trait ([`Registry`], [`Exports`]) with a
//! Windows implementation in `win` (built only on Windows), so the mapping
//! logic is unit-tested on every OS.

pub mod detect;
pub mod files;
pub mod pe;
pub mod registry;
pub mod text;
#[cfg(windows)]
pub mod win;

pub use detect::{
    default_mail_client, mapi_level, new_outlook, outlook, MailClient, MapiLevel, Outlook,
};
pub use files::AttachmentFiles;
pub use pe::{dll_bitness, Bitness, PeExports};
pub use registry::{Hive, MapRegistry, Registry, View};
pub use text::html_to_text;
#[cfg(windows)]
pub use win::WinRegistry;

/// The probe's answer on an OS without MAPI and COM.
pub const REQUIRES_WINDOWS: &str = "requires Windows";

/// Whether a DLL exports an entry point: the seam over `LoadLibraryW` and
/// `GetProcAddress` (see `win::LoadedExports`).
pub trait Exports {
    /// `Ok(true)` when `dll` loads into this process and exports `name`;
    /// `Err(reason)` when it does not load (missing, or built for the other
    /// bitness: a 64-bit host cannot load a 32-bit client's DLL).
    fn has_export(&self, dll: &str, name: &str) -> Result<bool, String>;
}
