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
    let journal = format == LogFormat::Text && stderr_is_the_journal();
    let text = (format == LogFormat::Text && !journal).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    // Under systemd the journal stamps each line itself and reads its
    // priority from a `<N>` prefix: `journalctl -p warning` then works.
    let journald = journal.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(Priority(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_ansi(false),
            ))
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
        .with(journald)
        .with(json)
        .try_init();
}

/// The syslog priority of a level, as the journal reads it (`<3>` error …
/// `<7>` debug).
fn priority(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

/// A line format with the journal's priority prefix.
struct Priority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Priority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Whether standard error is the journal's stream: systemd names it in
/// `JOURNAL_STREAM` (device:inode), which a redirect would not match.
fn stderr_is_the_journal() -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let Some(named) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let meta = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .and_then(|f| f.metadata());
        meta.is_ok_and(|m| names_stream(&named.to_string_lossy(), m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// `JOURNAL_STREAM`'s `DEVICE:INODE` against a stream's.
#[cfg_attr(not(unix), allow(dead_code))]
fn names_stream(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        .is_some_and(|(d, i)| d == dev && i == ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_recognised_by_its_stream_and_levels_map_to_priorities() {
        assert!(names_stream("64769:123456", 64769, 123456));
        assert!(!names_stream("64769:123456", 64769, 1));
        assert!(!names_stream("64769", 64769, 123456));
        assert!(!names_stream("x:y", 0, 0));
        assert_eq!(priority(&tracing::Level::ERROR), 3);
        assert_eq!(priority(&tracing::Level::WARN), 4);
        assert_eq!(priority(&tracing::Level::INFO), 6);
        assert_eq!(priority(&tracing::Level::TRACE), 7);
    }
}
