//! Helpers for a plugin's own tests (plain Rust, not part of the ABI): a host
//! double, a message builder, and loading the built library the way the host
//! does. `mailhost plugin new` writes tests that use them.

use std::path::Path;
use std::sync::{Arc, Mutex};

use abi_stable::library::lib_header_from_path;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};

use crate::{
    Envelope, Host, HostServices, HostServices_TO, LogLevel, Mailbox, MessageParts,
    OutgoingMessage, PluginError, PluginModRef, TokenRequest,
};

/// A host double for tests: records log lines; resolves `env:NAME` secrets
/// from the environment and takes any other reference as the literal value;
/// has no token broker and no extensions (both answer `Unsupported`).
#[derive(Clone, Default)]
pub struct TestHost {
    logs: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for TestHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestHost")
    }
}

impl TestHost {
    /// A new host double with no log lines.
    pub fn new() -> Self {
        Self::default()
    }

    /// The [`Host`] a plugin's `open` takes, backed by this double.
    pub fn host(&self) -> Host {
        Host(HostServices_TO::from_ptr(
            abi_stable::std_types::RArc::new(self.clone()),
            TD_Opaque,
        ))
    }

    /// The log lines so far, each `LEVEL target: message`.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl HostServices for TestHost {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        if let Ok(mut logs) = self.logs.lock() {
            logs.push(format!("{} {target}: {message}", level.name()));
        }
    }

    fn secret(&self, reference: RStr<'_>) -> RResult<RString, PluginError> {
        match reference.as_str().strip_prefix("env:") {
            Some(name) => std::env::var(name)
                .map(RString::from)
                .map_err(|_| {
                    PluginError::config(format!(
                        "secret `{reference}`: environment variable {name} is not set"
                    ))
                })
                .into(),
            None => RResult::ROk(reference.as_str().into()),
        }
    }

    fn token(&self, request: &TokenRequest) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unsupported(format!(
            "the test host has no token broker (asked for provider `{}`)",
            request.provider
        )))
    }

    fn extension(&self, name: RStr<'_>, _input_json: RStr<'_>) -> RResult<RString, PluginError> {
        RResult::RErr(PluginError::unsupported(format!(
            "the test host has no extension `{name}`"
        )))
    }
}

/// A plain-text message as the host would hand it over: `mime` holds the
/// RFC 5322 bytes (with a `Bcc:` header when `bcc` is not empty, as the host
/// keeps it), the envelope lists every recipient (To and Bcc), `options_json`
/// is `{}`, and the idempotency key is `key`.
pub fn message(
    from: &str,
    to: &[&str],
    bcc: &[&str],
    subject: &str,
    text: &str,
    key: &str,
) -> OutgoingMessage {
    let id = format!("{key}@test.invalid");
    let mut mime = format!("From: {from}\r\nTo: {}\r\n", to.join(", "));
    if !bcc.is_empty() {
        mime.push_str(&format!("Bcc: {}\r\n", bcc.join(", ")));
    }
    mime.push_str(&format!(
        "Subject: {subject}\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    ));
    let boxes =
        |list: &[&str]| -> RVec<Mailbox> { list.iter().map(|a| Mailbox::new("", a)).collect() };
    OutgoingMessage {
        envelope: Envelope {
            from: ROption::RSome(from.into()),
            to: to.iter().chain(bcc).map(|a| RString::from(*a)).collect(),
        },
        mime: mime.into_bytes().into(),
        parts: MessageParts {
            from: Mailbox::new("", from),
            to: boxes(to),
            bcc: boxes(bcc),
            subject: subject.into(),
            text: ROption::RSome(text.into()),
            ..MessageParts::default()
        },
        message_id: id.into(),
        idempotency_key: key.into(),
        options_json: "{}".into(),
    }
}

/// Loads a plugin library from `path` as the host does (`abi_stable` checks
/// the plugin-api version and every type layout) and returns its root module.
/// A library stays loaded until the process ends.
pub fn load_library(path: &Path) -> Result<PluginModRef, String> {
    lib_header_from_path(path)
        .and_then(|h| h.init_root_module::<PluginModRef>())
        .map_err(|e| format!("{} did not load: {e}", path.display()))
}

/// The plugin library Cargo built for the running test binary, for a load
/// test; `lib_name` is the crate's `[lib] name`. `cargo test` leaves it beside
/// the test binary (`target/<profile>/deps/libmailhost_<name>.so`), `cargo
/// build` in `target/<profile>/`: both are looked at, in that order.
pub fn built_library(lib_name: &str) -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let file = format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let deps = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    let candidates: Vec<std::path::PathBuf> = [Some(deps), deps.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(&file))
        .collect();
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        format!(
            "{file} is in none of {}: is `cdylib` in the crate's [lib] crate-type, and is `{lib_name}` its [lib] name?",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}
