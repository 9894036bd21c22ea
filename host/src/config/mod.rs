//! Configuration: TOML → raw (spans, unknown keys refused) → validated [`Settings`].
//!
//! Every mistake is reported with `file:line:col`, what is wrong and what
//! would be valid; validation collects all mistakes in one pass.
//!
//! - `raw`: the TOML as written, with spans;
//! - `settings`: the validated types the rest of the host reads;
//! - `validate`: the checks that turn one into the other (`validate/accounts.rs`:
//!   accounts and their plugin settings);
//! - `checks`: rules for every value (wire-safe strings, secrets never echoed);
//! - `source`: file text, locations and errors.

mod checks;
mod raw;
mod settings;
mod source;
mod validate;

use std::path::{Path, PathBuf};

use crate::loader::PluginSet;
pub use checks::{is_secret_key, MAX_VALUE_BYTES};
pub use settings::*;
pub use source::{ConfigError, ConfigErrors, Loc, Source};
pub(crate) use validate::names;
pub use validate::{toml_to_json, validate};

/// The configuration the binary falls back to: one pickup account writing to
/// `./outbox`, so a new user can send with no server at all.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/mailhost.toml");
pub const EMBEDDED_NAME: &str = "<embedded default config/mailhost.toml>";

/// The embedded default as `mailhost config init` writes it: its opening
/// comment (which says when the embedded text is used) replaced by one that
/// says where the file came from.
pub fn init_text() -> String {
    let body = EMBEDDED_DEFAULT
        .split_once("\n\n")
        .map(|(_, rest)| rest)
        .unwrap_or(EMBEDDED_DEFAULT);
    format!(
        "# mailhost configuration, written by `mailhost config init` (mailhost {}).\n\
         # Check it with `mailhost config validate`; the README's Configuration section\n\
         # lists every key. API tokens for `mailhost serve`: `mailhost api-token NAME --add`.\n\n{body}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Which config to read: `--config`, else `MAILHOST_CONFIG`, else
/// `./mailhost.toml` when present, else the embedded default.
pub fn locate(cli: Option<&Path>) -> Option<PathBuf> {
    named(cli).or_else(|| {
        let local = PathBuf::from("mailhost.toml");
        local.exists().then_some(local)
    })
}

/// The config file the caller named: `--config`, else `MAILHOST_CONFIG`.
pub fn named(cli: Option<&Path>) -> Option<PathBuf> {
    cli.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("MAILHOST_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// Reads and validates the config at `path` (or the embedded default when `None`).
pub fn load(path: Option<&Path>, plugins: &PluginSet) -> Result<Settings, ConfigErrors> {
    let source = match path {
        Some(p) => Source::from_file(p)?,
        None => Source::from_text(EMBEDDED_NAME, Path::new("."), EMBEDDED_DEFAULT),
    };
    validate(&source, plugins)
}
