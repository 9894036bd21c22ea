//! Where log lines go: standard error, as text or JSON objects
//! (`--log-format`), filtered by `-v` or `RUST_LOG`; the Windows service
//! adds the Event Log.

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-01T02:00:00Z  INFO target: message key=value`
    Text,
    /// `{"timestamp":…,"level":"INFO","target":…,"fields":{"message":…}}`
    Json,
}

/// Warnings by default; `serve` also logs its own events at info by
/// default (listening, stopping, the admin page's sign-ins and saves: rare,
/// and what an operator reads the log for), not every message it settles.
/// `extra` is one more place events go (the Windows service's Event Log).
pub(super) fn init(
    verbose: u8,
    format: LogFormat,
    serving: bool,
    extra: Option<crate::server::cli::winservice::ExtraLog>,
) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match verbose {
        0 if serving => "warn,mailhost::server=info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    let _ = tracing_subscriber::registry()
        .with(extra)
        .with(filter)
        .with(text)
        .with(json)
        .try_init();
}
