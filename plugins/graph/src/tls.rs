//! TLS for Graph: the shared rustls set-up (platform roots, `ca_file` pinning).

pub use mailhost_tls::client_config;
