//! Forwards a plugin's `tracing` events to the host.
//!
//! A cdylib carries its own copy of `tracing`, so the host's subscriber never
//! sees events raised inside a plugin. [`install`] sets, once per plugin
//! library, a global subscriber whose only layer hands each event to
//! [`crate::HostServices::log`]. The host applies its own filter and format.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::{OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::{HostHandle, LogLevel};

static HOST: RwLock<Option<HostHandle>> = RwLock::new(None);
static INSTALLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    // Guards against a loop when plugin and host share one `tracing` (a plugin
    // linked as an rlib into a test): the host's `log` raises an event of its own.
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

/// Routes this library's `tracing` events to `host`. Called by the
/// [`crate::export_plugin!`] glue on every `open`/`probe`; only the first call
/// installs the subscriber, later calls replace the host handle. Leaves an
/// existing global subscriber alone (a plugin linked into a program that has one).
pub fn install(host: &HostHandle) {
    if let Ok(mut slot) = HOST.write() {
        *slot = Some(host.clone());
    }
    INSTALLED.get_or_init(|| {
        if tracing::dispatcher::has_been_set() {
            return false;
        }
        let subscriber = tracing_subscriber::registry().with(ForwardLayer);
        tracing::subscriber::set_global_default(subscriber).is_ok()
    });
}

fn level(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::ERROR,
        Level::WARN => LogLevel::WARN,
        Level::INFO => LogLevel::INFO,
        Level::DEBUG => LogLevel::DEBUG,
        _ => LogLevel::TRACE,
    }
}

/// The layer that forwards events; public so a plugin with its own subscriber can add it.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForwardLayer;

impl<S: Subscriber> Layer<S> for ForwardLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if FORWARDING.with(|f| f.replace(true)) {
            return;
        }
        let mut text = MessageText::default();
        event.record(&mut text);
        let meta = event.metadata();
        if let Ok(slot) = HOST.read() {
            if let Some(host) = slot.as_ref() {
                host.log(
                    level(meta.level()),
                    meta.target().into(),
                    text.0.as_str().into(),
                );
            }
        }
        FORWARDING.with(|f| f.set(false));
    }
}

/// `message` first, then `key=value` for every other field.
#[derive(Default)]
struct MessageText(String);

impl Visit for MessageText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}
