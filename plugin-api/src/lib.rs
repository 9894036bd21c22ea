//! The stable plugin ABI of mailhost.
//!
//! This crate holds **types only** — no I/O. A transport plugin is a `cdylib` that
//! depends on this crate, implements [`Plugin`] and [`TransportImpl`], and calls
//! [`export_plugin!`]. The host loads it at run time through `abi_stable`, which
//! checks every type layout below against the host's copy before any call.
//!
//! # Frozen at 1.0
//!
//! `abi_stable` refuses a plugin whose types differ from the host's, and its
//! evolution is one-way (a host whose root module or trait gained a member
//! refuses an older plugin). So the layout of every `#[repr(C)]` type here is
//! frozen for the whole 1.x line. The ABI grows through **data**:
//!
//! * `options_json` on [`OutgoingMessage`], `extra_json` on [`Manifest`],
//!   `details_json` on [`Receipt`] / [`ComposeOutcome`];
//! * new [`ErrorClass`], [`Capabilities`], [`ConnState`] values (unknown ones are
//!   tolerated by both sides);
//! * named [`Extension`] objects looked up with the root module's `extension`;
//! * [`HostServices::extension`] for host services added after 1.0.
//!
//! Plain Rust helpers beside the ABI (no layout, free to grow): [`options`]
//! (the host's keys in `options_json`), [`wire`] (one-line checks for values
//! that go on the wire), [`settings`] (the settings schema derived from a serde
//! struct, feature `schema`), [`mime`], [`log`].
#![allow(non_local_definitions)] // `#[sabi_trait]` expands to impls that Rust 1.95 warns about as non-local; clippy -D warnings would fail on them

mod error;
mod export;
mod host;
mod manifest;
mod message;
mod module;
mod status;
mod transport;

pub mod log;
pub mod mime;
pub mod options;
pub mod settings;
pub mod testing;
pub mod wire;

pub use error::{ErrorClass, PluginError};
#[doc(hidden)]
pub use export::root_module_for;
pub use export::{guard, open_in_process, root_module, Plugin, TransportImpl, ROOT_SYMBOL};
pub use host::{Host, HostHandle, HostServices, HostServices_TO, LogLevel, TokenRequest};
pub use manifest::{Capabilities, Manifest, Probe};
pub use message::{Attachment, Envelope, Mailbox, MessageParts, OutgoingMessage};
pub use module::{v1_1, PluginMod, PluginModRef, ROOT_BASE_NAME};
pub use status::{
    CheckReport, CheckStep, ComposeKind, ComposeOutcome, ConnState, ConnectionStatus, Receipt,
    RejectedRecipient, StepOutcome,
};
pub use transport::{Extension, ExtensionBox, Extension_TO, Transport, TransportBox, Transport_TO};

/// Re-exported so that [`export_plugin!`] works in a crate that depends only on
/// `mailhost-plugin-api`.
pub use abi_stable;

/// The plugin-api version this crate is (`CARGO_PKG_VERSION`), recorded in each
/// plugin's [`Manifest::api_version`].
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");
