//! A tokio runtime owned by a thread of its own.
//!
//! The host calls transports from blocking threads, and the host's token
//! broker is called from anywhere (plain threads and tokio workers). Both drive
//! their async HTTP on a runtime like this one, which lives on its own thread
//! so that it is never dropped inside some other async context (tokio panics
//! when a runtime is dropped where blocking is not allowed). Dropping the
//! [`RuntimeThread`] ends the thread, which then drops the runtime.
//!
//! ```
//! let rt = mailhost_rt::RuntimeThread::start("doc", 1).unwrap();
//! assert_eq!(rt.run(async { 1 + 1 }), Ok(2));
//! let borrowed = String::from("borrowed");
//! assert_eq!(rt.block(async { borrowed.len() }), 8);
//! ```

use std::fmt;
use std::future::Future;
use std::sync::mpsc;

/// A multi-thread tokio runtime driven by a thread of its own.
pub struct RuntimeThread {
    handle: tokio::runtime::Handle,
    /// Dropping the sender ends the thread, which then drops the runtime.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl fmt::Debug for RuntimeThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeThread").finish_non_exhaustive()
    }
}

/// The runtime stopped before a future's output arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned;

impl fmt::Display for Abandoned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the runtime stopped before the work finished")
    }
}

impl std::error::Error for Abandoned {}

impl RuntimeThread {
    /// Starts a thread `name` running a runtime with `workers` worker threads
    /// (named `name-rt`), and waits until the runtime is up.
    pub fn start(name: &str, workers: usize) -> std::io::Result<Self> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let worker_name = format!("{name}-rt");
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers.max(1))
                    .thread_name(worker_name)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
            })?;
        let handle = ready_rx.recv().map_err(|_| {
            std::io::Error::other("the runtime thread ended before its runtime started")
        })??;
        Ok(Self {
            handle,
            _stop: stop_tx,
        })
    }

    /// The runtime's handle (to spawn tasks on it).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Spawns `fut` on the runtime and waits for its output on a std channel:
    /// callable from any thread, including another runtime's workers.
    pub fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, Abandoned> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| Abandoned)
    }

    /// Runs `fut`, which may borrow from the caller, to completion.
    ///
    /// From a plain thread (the usual case: the host's blocking pool) it is
    /// driven with `Handle::block_on`. Inside a runtime, where that is not
    /// allowed, a scoped helper thread drives it while this thread waits.
    pub fn block<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.handle.block_on(fut);
        }
        std::thread::scope(|s| match s.spawn(|| self.handle.block_on(fut)).join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_works_inside_another_runtime() {
        let rt = RuntimeThread::start("test-inner", 1).unwrap();
        let outer = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let n = outer.block_on(async { rt.block(async { 7 }) });
        assert_eq!(n, 7);
        let m = outer.block_on(async { rt.run(async { 8 }) });
        assert_eq!(m, Ok(8));
    }

    #[test]
    fn dropping_it_stops_the_runtime_and_its_tasks() {
        let rt = RuntimeThread::start("test-drop", 1).unwrap();
        let (tx, rx) = mpsc::channel::<()>();
        rt.handle().spawn(async move {
            let _kept_until_the_runtime_drops_the_task = tx;
            std::future::pending::<()>().await;
        });
        drop(rt);
        // Returns once the runtime shut down and dropped the pending task.
        assert!(rx.recv().is_err());
    }
}
