//! mailhost: one host process that sends mail through transport plugins
//! loaded at run time over a stable ABI.
//!
//! The binary is a thin layer over this library (see `main.rs`): config,
//! plugin loader, policy, message building, the engine that walks a policy
//! chain, and the CLI.

pub mod batch;
pub mod browser;
pub mod checked;
pub mod cli;
pub mod config;
pub mod copies;
pub mod digest;
pub mod discover;
pub mod engine;
pub mod limits;
pub mod live;
pub mod loader;
pub mod memory;
pub mod message;
pub mod outbox;
pub mod policy;
pub mod ratelimit;
pub mod scaffold;
pub mod secrets;
pub mod server;
pub mod services;
pub mod submit;
pub mod tokens;
