//! The opened SMTP account for the host: `send`/`check`/`status`/`close` over
//! the [`Shared`] state.
//!
//! The host calls from blocking threads. A `send` runs on the calling thread's
//! own runtime; `check`, `close` and the idle reaper run on the account's
//! background runtime (see [`crate::rt`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use mailhost_plugin_api::{
    CheckReport, ConnState, ConnectionStatus, OutgoingMessage, PluginError, Receipt, TransportImpl,
};
use tokio::runtime::Runtime;

use crate::config::SmtpConfig;
use crate::job::Job;
use crate::shared::Shared;
use mailhost_plugin_api::Host;

/// An opened SMTP account.
pub struct SmtpTransport {
    shared: Arc<Shared>,
    rt: Option<Runtime>,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("server", &self.shared.addr())
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    pub fn new(cfg: SmtpConfig, host: Host) -> Result<Self, PluginError> {
        let rt = crate::rt::background()
            .map_err(|e| PluginError::permanent(format!("smtp: cannot start its runtime: {e}")))?;
        let shared = Arc::new(Shared::new(cfg, host, rt.handle().clone())?);
        let idle = shared.cfg.pool.idle_timeout;
        if !idle.is_zero() {
            let weak: Weak<Shared> = Arc::downgrade(&shared);
            let period = (idle / 2).clamp(Duration::from_millis(50), Duration::from_secs(5));
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(period).await;
                    let Some(shared) = weak.upgrade() else { break };
                    if shared.closed.load(Ordering::Relaxed) {
                        break;
                    }
                    shared.reap().await;
                }
            });
        }
        Ok(Self {
            shared,
            rt: Some(rt),
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Runs `f` on the background runtime and waits for it on this thread.
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, PluginError>> + Send + 'static,
    ) -> Result<T, PluginError> {
        let Some(rt) = &self.rt else {
            return Err(PluginError::unavailable("the SMTP transport is closed"));
        };
        let handle = rt.spawn(f);
        rt.block_on(handle)
            .map_err(|e| PluginError::permanent(format!("smtp: the task failed: {e}")))?
    }

    /// Delivers a prepared job, on the calling thread (see [`crate::rt`]).
    pub fn send_job(&self, job: Job) -> Result<Receipt, PluginError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(PluginError::unavailable("the SMTP transport is closed"));
        }
        crate::rt::on_caller(self.shared.send(job))
    }
}

impl TransportImpl for SmtpTransport {
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        let job = Job::from_message(&self.shared.cfg, message)?;
        self.send_job(job)
    }

    /// The messages' transactions run at once on the calling thread's
    /// runtime, in chains on connections of their own from the pool (see
    /// [`chains`]): one thread waits for all their replies, where `send` per
    /// message waits for each.
    fn send_many(&self, messages: &[OutgoingMessage]) -> Vec<Result<Receipt, PluginError>> {
        let mut out: Vec<Option<Result<Receipt, PluginError>>> = Vec::new();
        out.resize_with(messages.len(), || None);
        if self.shared.closed.load(Ordering::Relaxed) {
            return messages
                .iter()
                .map(|_| Err(PluginError::unavailable("the SMTP transport is closed")))
                .collect();
        }
        let mut jobs = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            match Job::from_message(&self.shared.cfg, m) {
                Ok(job) => jobs.push((i, job)),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let chains = chains(jobs, self.shared.pool.available());
        let shared = self.shared.clone();
        let sent = crate::rt::on_caller(async move {
            let mut set = tokio::task::JoinSet::new();
            let mut index = std::collections::HashMap::new();
            for chain in chains {
                let shared = shared.clone();
                let (slots, jobs): (Vec<usize>, Vec<Job>) = chain.into_iter().unzip();
                // Boxed here: the transactions' future is several KB, and
                // `spawn` moves a future by value through a few frames before
                // it reaches the heap (a copy of its whole size each time).
                let task = set.spawn(Box::pin(async move { shared.send_chain(&jobs).await }));
                index.insert(task.id(), slots);
            }
            let mut done = Vec::with_capacity(messages.len());
            while let Some(r) = set.join_next_with_id().await {
                // Every task's id went into `index` before the first await.
                match r {
                    Ok((id, results)) => {
                        if let Some(slots) = index.get(&id) {
                            done.extend(slots.iter().copied().zip(results));
                        }
                    }
                    Err(e) => {
                        if let Some(slots) = index.get(&e.id()) {
                            for &i in slots {
                                done.push((
                                    i,
                                    Err(PluginError::permanent(format!(
                                        "smtp: the send did not finish ({e}); report this to mailhost's authors"
                                    ))),
                                ));
                            }
                        }
                    }
                }
            }
            Ok(done)
        });
        match sent {
            Ok(done) => {
                for (i, r) in done {
                    out[i] = Some(r);
                }
            }
            Err(e) => {
                for slot in out.iter_mut().filter(|s| s.is_none()) {
                    *slot = Some(Err(e.clone()));
                }
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(PluginError::permanent(
                        "smtp: a message of the group got no result",
                    ))
                })
            })
            .collect()
    }

    fn check(&self, options_json: &str) -> Result<CheckReport, PluginError> {
        let shared = self.shared.clone();
        let options = options_json.to_string();
        self.run(async move { Ok(crate::check::run(&shared, &options).await) })
    }

    fn status(&self) -> ConnectionStatus {
        self.shared.status()
    }

    fn close(&self) {
        if self.shared.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let sessions = self.shared.pool.close();
        let _ = self.run(async move {
            for s in sessions {
                s.quit().await;
            }
            Ok(())
        });
        let mut s = self.shared.status.lock().unwrap_or_else(|p| p.into_inner());
        *s = ConnectionStatus::new(ConnState::STOPPED, "closed");
    }
}

impl Drop for SmtpTransport {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Splits a group's jobs into chains, each sent on one connection with its
/// messages' envelopes pipelined with the data before them
/// ([`Shared::send_chain`]): jobs for one credential key only, in their
/// order. With as many connections `free` as jobs, each job goes alone (the
/// group takes two round trips); with fewer, the jobs are spread over them
/// (a chain of k takes k + 1 round trips, but half the writes, reads and
/// wake-ups per message of both sides), so a busy pool is used better
/// instead of being waited for.
fn chains(jobs: Vec<(usize, Job)>, free: usize) -> Vec<Vec<(usize, Job)>> {
    let per_chain = jobs.len().div_ceil(free.max(1)).max(1);
    let mut by_key: Vec<(String, Vec<(usize, Job)>)> = Vec::new();
    for (i, job) in jobs {
        let key = job.who.key();
        match by_key.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push((i, job)),
            None => by_key.push((key, vec![(i, job)])),
        }
    }
    let mut out = Vec::new();
    for (_, mut v) in by_key {
        while !v.is_empty() {
            let rest = v.split_off(per_chain.min(v.len()));
            out.push(std::mem::replace(&mut v, rest));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Who;

    fn job(who: Who) -> Job {
        Job {
            message_id: String::new(),
            from: None,
            to: Vec::new(),
            body: Vec::new(),
            needs_smtputf8: false,
            dsn: None,
            who,
        }
    }

    fn shape(jobs: Vec<(usize, Job)>, free: usize) -> Vec<Vec<usize>> {
        chains(jobs, free)
            .into_iter()
            .map(|c| c.into_iter().map(|(i, _)| i).collect())
            .collect()
    }

    #[test]
    fn a_group_is_spread_over_the_free_connections_in_order() {
        let eight = || (0..8).map(|i| (i, job(Who::Account))).collect::<Vec<_>>();
        assert_eq!(
            shape(eight(), 10),
            (0..8).map(|i| vec![i]).collect::<Vec<_>>()
        );
        assert_eq!(shape(eight(), 8).len(), 8);
        assert_eq!(
            shape(eight(), 3),
            [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]
        );
        assert_eq!(shape(eight(), 2), [vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        // None free: one chain, which waits for a connection.
        assert_eq!(shape(eight(), 0), [(0..8).collect::<Vec<_>>()]);
        assert!(shape(Vec::new(), 4).is_empty());
    }

    #[test]
    fn a_chain_holds_one_credential_key_only() {
        let user = |name: &str| Who::User {
            username: name.into(),
            password_ref: "env:PW".into(),
        };
        let jobs = vec![
            (0, job(Who::Account)),
            (1, job(user("anna"))),
            (2, job(Who::Account)),
            (3, job(user("anna"))),
            (4, job(user("ben"))),
        ];
        assert_eq!(shape(jobs, 1), [vec![0, 2], vec![1, 3], vec![4]]);
    }
}
