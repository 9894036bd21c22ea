//! The connection pool: idle sessions kept per credential key, at most
//! `max_size` connections open, a bounded wait when all are busy, idle
//! connections closed after `idle_timeout`.
//!
//! Staleness is checked two ways: a connection idle for longer than
//! [`PROBE_AFTER`] is tested with RSET before reuse, and a reused connection
//! that turns out dead before the server accepted anything is replaced and the
//! message retried once on a new one (see `Session::transaction`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mailhost_plugin_api::PluginError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::PoolConfig;
use crate::session::Session;

/// Idle longer than this: probe with RSET before reuse.
pub const PROBE_AFTER: Duration = Duration::from_secs(2);

struct Idle {
    key: String,
    session: Session,
    since: Instant,
}

/// Sessions not in use, and the permits that bound the ones in use.
pub struct Pool {
    cfg: PoolConfig,
    idle: Mutex<VecDeque<Idle>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Self {
        Self {
            cfg,
            idle: Mutex::new(VecDeque::new()),
            permits: Arc::new(Semaphore::new(cfg.max_size)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn reuse(&self) -> bool {
        !self.cfg.idle_timeout.is_zero()
    }

    /// Waits (at most `wait_timeout`) until fewer than `max_size` sends run.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, PluginError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout(self.cfg.wait_timeout, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(PluginError::unavailable("the SMTP transport is closed")),
            Err(_) => Err(PluginError::transient(format!(
                "all {} SMTP connections (pool.max_size) stayed busy for {} ms (pool.wait_timeout_ms); try again",
                self.cfg.max_size,
                self.cfg.wait_timeout.as_millis()
            ))),
        }
    }

    /// Closes the pool for good: waiting and later sends fail.
    pub fn close(&self) -> Vec<Session> {
        self.permits.close();
        self.drain()
    }

    /// The most recently used idle session for `key` and how long it idled —
    /// one registered with runtime `home` if there is one (no move between
    /// threads, see [`crate::rt`]) —, with the sessions found expired on the way
    /// (to be closed by the caller).
    pub fn take(&self, key: &str, home: u64) -> (Option<(Session, Duration)>, Vec<Session>) {
        let mut idle = self.lock();
        let expired = Self::expire(&mut idle, self.cfg.idle_timeout);
        let pos = idle
            .iter()
            .rposition(|i| i.key == key && i.session.home() == home)
            .or_else(|| idle.iter().rposition(|i| i.key == key));
        let found = pos
            .and_then(|p| idle.remove(p))
            .map(|i| (i.session, i.since.elapsed()));
        (found, expired)
    }

    /// Makes room for a new connection: while idle + in use would exceed
    /// `max_size`, the oldest idle session (of another key) goes.
    pub fn make_room(&self) -> Vec<Session> {
        let in_use = self.cfg.max_size - self.permits.available_permits();
        let mut idle = self.lock();
        let mut out = Vec::new();
        while idle.len() + in_use > self.cfg.max_size {
            match idle.pop_front() {
                Some(i) => out.push(i.session),
                None => break,
            }
        }
        out
    }

    /// Returns a session after use; `Some` when it is not kept (no reuse,
    /// broken, in a transaction, or no room) and must be closed by the caller.
    pub fn put(&self, key: String, session: Session) -> Option<Session> {
        if !self.reuse() || !session.usable() || session.prewritten() {
            return Some(session);
        }
        let mut idle = self.lock();
        if idle.len() >= self.cfg.max_size {
            return Some(session);
        }
        idle.push_back(Idle {
            key,
            session,
            since: Instant::now(),
        });
        None
    }

    /// Removes and returns the sessions idle for longer than `idle_timeout`.
    pub fn expired(&self) -> Vec<Session> {
        Self::expire(&mut self.lock(), self.cfg.idle_timeout)
    }

    fn expire(idle: &mut VecDeque<Idle>, limit: Duration) -> Vec<Session> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < idle.len() {
            if idle[i].since.elapsed() >= limit {
                if let Some(x) = idle.remove(i) {
                    out.push(x.session);
                }
            } else {
                i += 1;
            }
        }
        out
    }

    pub fn drain(&self) -> Vec<Session> {
        self.lock().drain(..).map(|i| i.session).collect()
    }

    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    /// Connections that could be in use now without waiting.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    pub fn in_use(&self) -> usize {
        self.cfg.max_size - self.permits.available_permits()
    }

    pub fn config(&self) -> PoolConfig {
        self.cfg
    }
}
