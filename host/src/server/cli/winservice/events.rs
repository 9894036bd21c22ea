//! What the Windows service writes to the Event Log (Application log,
//! source = the service's name): its errors and warnings, and its own
//! events at info (running, stopping, reloads, the admin page's sign-ins
//! and saves), as Event Viewer and monitoring tools read them. The log file
//! keeps everything; the Event Log gets at most [`BURST`] events at once and
//! then one per [`REFILL`], so a failing relay cannot flood it.
//!
//! The mapping is here, on every system; the Windows call
//! (`ReportEventW`) is behind [`Sink`] in `scm.rs`.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Event types, with the event ids of the message table (`res/eventlog.mc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Error = 1,
    Warning = 2,
    Information = 3,
}

/// Where events go: the Event Log on Windows, a list in tests.
pub trait Sink: Send + Sync + 'static {
    fn report(&self, kind: Kind, text: &str);
}

/// Events written at once before the Event Log is rationed.
pub const BURST: u32 = 30;
/// One more event may be written per this time once the burst is spent.
pub const REFILL: Duration = Duration::from_secs(10);
/// An event's text is cut here (the Event Log takes about 31,000 characters).
const MAX_CHARS: usize = 8_000;

struct Budget {
    tokens: u32,
    since: Instant,
    /// Events left out since the last one written.
    skipped: u64,
}

/// The tracing layer that writes to a [`Sink`].
pub struct EventLog<K: Sink> {
    sink: K,
    /// Named when events are left out: it has them all.
    log_file: String,
    budget: Mutex<Budget>,
}

impl<K: Sink> EventLog<K> {
    pub fn new(sink: K, log_file: &std::path::Path) -> EventLog<K> {
        EventLog {
            sink,
            log_file: log_file.display().to_string(),
            budget: Mutex::new(Budget {
                tokens: BURST,
                since: Instant::now(),
                skipped: 0,
            }),
        }
    }

    /// Writes `text` if the budget allows it at `now` (first a line on
    /// what was left out before it).
    fn write(&self, kind: Kind, text: &str, now: Instant) {
        let Ok(mut b) = self.budget.lock() else {
            return;
        };
        let refills = now.saturating_duration_since(b.since).as_secs() / REFILL.as_secs();
        if refills >= u64::from(BURST) {
            b.tokens = BURST;
            b.since = now;
        } else if refills > 0 {
            // Less than BURST: fits in u32.
            let n = refills as u32;
            b.tokens = BURST.min(b.tokens + n);
            b.since += REFILL * n;
        }
        if b.tokens == 0 {
            b.skipped += 1;
            return;
        }
        b.tokens -= 1;
        if b.skipped > 0 {
            self.sink.report(
                Kind::Warning,
                &format!(
                    "{} not written to the Event Log (at most {BURST} at once, then one every {} s); the service's log file {} has all of them",
                    if b.skipped == 1 {
                        "1 more event was".to_string()
                    } else {
                        format!("{} more events were", b.skipped)
                    },
                    REFILL.as_secs(),
                    self.log_file
                ),
            );
            b.skipped = 0;
        }
        drop(b);
        self.sink.report(kind, text);
    }
}

/// Which events go to the Event Log, and as what.
pub fn kind_of(level: &Level, target: &str) -> Option<Kind> {
    match *level {
        Level::ERROR => Some(Kind::Error),
        Level::WARN => Some(Kind::Warning),
        // The service's own events, not every message it settles.
        Level::INFO if target.starts_with("mailhost::server") => Some(Kind::Information),
        _ => None,
    }
}

/// An event as one line: its message, then its fields (`key=value`).
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

impl Text {
    fn line(self) -> String {
        let mut s = self.message;
        s.push_str(&self.fields);
        // No control characters but line breaks (Event Viewer shows those).
        let mut s: String = s
            .chars()
            .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
            .collect();
        if let Some((at, _)) = s.char_indices().nth(MAX_CHARS) {
            s.truncate(at);
            s.push_str(" …");
        }
        s
    }
}

impl<S: Subscriber, K: Sink> Layer<S> for EventLog<K> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let Some(kind) = kind_of(meta.level(), meta.target()) else {
            return;
        };
        let mut text = Text::default();
        event.record(&mut text);
        self.write(kind, &text.line(), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct List(Arc<Mutex<Vec<(Kind, String)>>>);

    impl Sink for List {
        fn report(&self, kind: Kind, text: &str) {
            self.0.lock().unwrap().push((kind, text.to_string()));
        }
    }

    #[test]
    fn errors_warnings_and_the_services_own_events_are_written() {
        let list = List::default();
        let layer = EventLog::new(
            list.clone(),
            std::path::Path::new("C:\\mh\\mailhost-service.log"),
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "mailhost::outbox::worker", id = "0193", "outbox: writing the outcome failed: disk full");
            tracing::warn!(target: "plugin", origin = "smtp", "relay said 421\r\nbye\x1b[31m");
            tracing::info!(target: "mailhost::server::cli::winservice::scm", "service `mailhost`: running, listening on http://127.0.0.1:8025");
            // Not the service's own: the log file has these.
            tracing::info!(target: "mailhost::outbox::worker", "sent 0193");
            tracing::debug!(target: "mailhost::server", "request");
        });
        let got = list.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                (
                    Kind::Error,
                    "outbox: writing the outcome failed: disk full id=0193".to_string()
                ),
                (
                    Kind::Warning,
                    "relay said 421\nbye[31m origin=smtp".to_string()
                ),
                (
                    Kind::Information,
                    "service `mailhost`: running, listening on http://127.0.0.1:8025".to_string()
                ),
            ]
        );
        assert_eq!(Kind::Error as u32, 1);
        assert_eq!(Kind::Information as u32, 3);
    }

    #[test]
    fn a_flood_is_rationed_and_what_was_left_out_is_counted() {
        let list = List::default();
        let log = EventLog::new(list.clone(), std::path::Path::new("svc.log"));
        let t0 = Instant::now();
        for i in 0..100 {
            log.write(Kind::Warning, &format!("w{i}"), t0);
        }
        assert_eq!(list.0.lock().unwrap().len(), BURST as usize);
        // 25 s later two more may go: a count of the 70 left out, then the event.
        log.write(
            Kind::Error,
            "later",
            t0 + REFILL * 2 + Duration::from_secs(5),
        );
        let got = list.0.lock().unwrap().clone();
        assert_eq!(got.len(), BURST as usize + 2);
        let (kind, text) = &got[BURST as usize];
        assert_eq!(*kind, Kind::Warning);
        assert!(
            text.starts_with("70 more events were not written to the Event Log")
                && text.contains("svc.log has all of them"),
            "{text}"
        );
        assert_eq!(got[BURST as usize + 1], (Kind::Error, "later".to_string()));
        // One token was left; after it the next is rationed again.
        let t1 = t0 + REFILL * 2 + Duration::from_secs(5);
        log.write(Kind::Error, "a", t1);
        log.write(Kind::Error, "b", t1);
        assert_eq!(list.0.lock().unwrap().len(), BURST as usize + 3);
        // A quiet hour fills the budget again, to BURST and no more.
        let t2 = t1 + Duration::from_secs(3600);
        for i in 0..40 {
            log.write(Kind::Error, &format!("e{i}"), t2);
        }
        // (the count of the one left out, "b", comes first)
        let got = list.0.lock().unwrap().clone();
        assert_eq!(got.len(), BURST as usize * 2 + 4);
        assert!(got[BURST as usize + 3]
            .1
            .starts_with("1 more event was not written"));
        // A long text is cut.
        let long = "x".repeat(20_000);
        let mut t = Text {
            message: long,
            fields: String::new(),
        };
        t.message.push('y');
        assert_eq!(t.line().chars().count(), MAX_CHARS + 2);
    }
}
