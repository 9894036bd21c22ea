//! The plugin's own tokio runtime, on a thread of its own.
//!
//! The host calls transports from blocking threads; the plugin drives its
//! async HTTP (reqwest) on this runtime. The runtime lives on its own thread
//! so that it is never dropped inside some other async context.

use std::future::Future;
use std::sync::mpsc;

use mailhost_plugin_api::PluginError;

pub struct RuntimeThread {
    handle: tokio::runtime::Handle,
    /// Dropping the sender ends the thread, which then drops the runtime.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl RuntimeThread {
    pub fn start(name: &str, workers: usize) -> Result<Self, PluginError> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_name = format!("{name}-rt");
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name(thread_name)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
            })
            .map_err(|e| PluginError::unavailable(format!("graph: cannot start a thread: {e}")))?;
        let handle = ready_rx
            .recv()
            .map_err(|_| {
                PluginError::unavailable("graph: the runtime thread ended before it started")
            })?
            .map_err(|e| {
                PluginError::unavailable(format!("graph: cannot start the tokio runtime: {e}"))
            })?;
        Ok(Self {
            handle,
            _stop: stop_tx,
        })
    }

    /// Runs `fut` (which may borrow from the caller) to completion.
    ///
    /// From a plain thread (the usual case: the host's blocking pool) it is
    /// driven with `Handle::block_on`. Inside a runtime, where that is not
    /// allowed, a scoped helper thread drives it while this thread waits.
    pub fn block<T: Send>(
        &self,
        fut: impl Future<Output = Result<T, PluginError>> + Send,
    ) -> Result<T, PluginError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.handle.block_on(fut);
        }
        std::thread::scope(|s| match s.spawn(|| self.handle.block_on(fut)).join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }
}
