//! Where the plugin's futures run.
//!
//! A **send runs on the calling thread**: each host thread that calls `send`
//! gets its own current-thread tokio runtime (created on first use, dropped
//! when the thread ends) and drives the SMTP dialogue itself. There is no
//! hand-off to a worker thread and back, which on a busy host costs two thread
//! wake-ups per message — as much as the whole dialogue on a reused connection
//! (see docs/performance.md).
//!
//! Each transport also keeps a small **background runtime** for what has no
//! caller waiting: closing idle connections, `close()`, `check()`, and polite
//! `QUIT`s after a failed or expired connection.
//!
//! A socket is registered with the runtime that created it. Pooled connections
//! are shared by all threads, so a connection taken on another runtime is first
//! **adopted** ([`crate::stream::SmtpStream::adopt`]): its descriptor is
//! duplicated and registered here, the old registration dropped. The pool
//! prefers connections already at home, so this is rare.
//!
//! A caller's runtime is dropped by a **thread-exit destructor**, and it must
//! not wait there: `Runtime`'s own `Drop` waits for its blocking-pool threads
//! (`lookup_host`, `spawn_blocking` for the host's secrets and tokens) to
//! acknowledge shutdown. For the main thread that destructor runs at process
//! exit — on Windows inside `DLL_PROCESS_DETACH`, under the loader lock and
//! after `ExitProcess` already ended every other thread — so the
//! acknowledgement never comes and the process never exits (`mailhost send`
//! delivered, then hung). `CallerRuntime` shuts down without waiting
//! instead: idle blocking threads end on their own, and at process exit they
//! are gone already.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use mailhost_plugin_api::PluginError;
use tokio::runtime::{Builder, Runtime};

/// Runtime ids; 0 is "not on one of this plugin's runtimes".
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the runtime driving this thread (caller or background worker).
    static HOME: Cell<u64> = const { Cell::new(0) };
    /// This thread's own runtime for sends (its id is in HOME).
    static CALLER: CallerRuntime = CallerRuntime(caller_runtime());
}

/// A caller thread's runtime, shut down without waiting when the thread ends
/// (see the module docs: waiting there hangs the process at exit).
struct CallerRuntime(Option<Runtime>);

impl Drop for CallerRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn caller_runtime() -> Option<Runtime> {
    let rt = Builder::new_current_thread().enable_all().build().ok()?;
    HOME.with(|h| h.set(next_id()));
    Some(rt)
}

/// The runtime this thread runs futures on now (0 = none of ours).
pub fn home() -> u64 {
    HOME.try_with(Cell::get).unwrap_or(0)
}

/// Runs `f` to completion on the calling thread's own runtime.
pub fn on_caller<T>(f: impl Future<Output = Result<T, PluginError>>) -> Result<T, PluginError> {
    let unavailable =
        || PluginError::unavailable("smtp: cannot start a runtime on the calling thread");
    CALLER
        .try_with(|c| match &c.0 {
            Some(rt) => rt.block_on(f),
            None => Err(unavailable()),
        })
        .unwrap_or_else(|_| Err(unavailable()))
}

/// A background runtime (one worker) whose threads know their home id.
pub fn background() -> std::io::Result<Runtime> {
    let id = next_id();
    Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mailhost-smtp")
        .on_thread_start(move || HOME.with(|h| h.set(id)))
        .enable_all()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A thread whose runtime still has a busy blocking-pool thread ends at
    /// once: its runtime's destructor does not wait (at process exit on
    /// Windows that wait never ended).
    #[test]
    fn a_caller_thread_ends_without_waiting_for_its_blocking_pool() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let caller = std::thread::spawn(move || {
            on_caller(async move {
                let (tx, rx) = tokio::sync::oneshot::channel();
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(());
                    let _ = release_rx.recv();
                });
                rx.await
                    .map_err(|_| PluginError::permanent("the blocking task did not start"))
            })
        });
        // join() returns once the thread's destructors (its runtime's) ran.
        let (joined_tx, joined_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = joined_tx.send(caller.join().map(|r| r.is_ok()));
        });
        let joined = joined_rx.recv_timeout(Duration::from_secs(30));
        let _ = release_tx.send(());
        assert!(
            matches!(joined, Ok(Ok(true))),
            "the caller thread did not end: {joined:?}"
        );
    }
}
