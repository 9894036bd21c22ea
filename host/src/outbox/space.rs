//! Back pressure on a full disk (`[outbox] min_free_mb`): below that much
//! free space on a SQLite outbox's disk, new messages and batches are
//! refused with a temporary error (the API's 503, the CLI's exit 75), as an
//! MTA stops taking mail when its queue's disk runs low (Postfix's
//! `queue_minfree`, Exchange's back pressure). What is queued still drains:
//! sending frees space. A database that fills up in the middle of a write
//! fails that write; refusing early keeps the caller's retry and the
//! queue's own writes (outcomes, attempts) going.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::OutboxError;

/// The default of `[outbox] min_free_mb`.
pub const DEFAULT_MIN_FREE_MB: u64 = 100;

/// How long one look at the disk is trusted (one `statvfs` per second at most).
const FRESH: Duration = Duration::from_secs(1);

/// Where the free space comes from: the file system, or a number in tests.
pub trait FreeSpace: Send + Sync + 'static {
    fn available(&self, dir: &std::path::Path) -> std::io::Result<u64>;
}

/// The file system's own count (`statvfs`, `GetDiskFreeSpaceExW`).
pub struct Disk;

impl FreeSpace for Disk {
    fn available(&self, dir: &std::path::Path) -> std::io::Result<u64> {
        fs4::available_space(dir)
    }
}

struct Seen {
    at: Instant,
    free: Option<u64>,
    low: bool,
}

/// Checks an outbox's disk before a new message or batch is queued.
pub struct SpaceGuard {
    dir: PathBuf,
    location: String,
    min: u64,
    source: Box<dyn FreeSpace>,
    seen: Mutex<Option<Seen>>,
}

impl std::fmt::Debug for SpaceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceGuard")
            .field("dir", &self.dir)
            .field("min", &self.min)
            .finish_non_exhaustive()
    }
}

impl SpaceGuard {
    /// A guard for the SQLite file at `db` (its folder's disk), refusing
    /// below `min_bytes` free.
    pub fn new(
        db: &std::path::Path,
        location: &str,
        min_bytes: u64,
        source: Box<dyn FreeSpace>,
    ) -> SpaceGuard {
        let dir = db
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        SpaceGuard {
            dir,
            location: location.to_string(),
            min: min_bytes,
            source,
            seen: Mutex::new(None),
        }
    }

    /// (free bytes as last seen, the minimum, refusing now), looking again
    /// when the last look is over a second old.
    pub fn state(&self) -> (Option<u64>, u64, bool) {
        let refusing = self.check().is_err();
        let free = self
            .seen
            .lock()
            .ok()
            .and_then(|s| s.as_ref().and_then(|s| s.free));
        (free, self.min, refusing)
    }

    /// `Err` when the disk has less than the minimum free. A disk whose
    /// space cannot be read lets messages through (the write says what is
    /// wrong, if anything is).
    pub fn check(&self) -> Result<(), OutboxError> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), OutboxError> {
        let Ok(mut seen) = self.seen.lock() else {
            return Ok(());
        };
        let stale = seen
            .as_ref()
            .is_none_or(|s| now.saturating_duration_since(s.at) >= FRESH);
        if stale {
            let free = self.source.available(&self.dir).ok();
            let low = free.is_some_and(|f| f < self.min);
            let was_low = seen.as_ref().is_some_and(|s| s.low);
            match (was_low, low) {
                (false, true) => tracing::warn!(
                    "outbox: {} MB free on the disk of {} (under [outbox] min_free_mb, {} MB): new messages are refused until there is more; what is queued still goes out",
                    free.unwrap_or(0) >> 20,
                    self.location,
                    self.min >> 20
                ),
                (true, false) => tracing::warn!(
                    "outbox: {} MB free on the disk of {} again: new messages are taken",
                    free.unwrap_or(0) >> 20,
                    self.location
                ),
                _ => {}
            }
            *seen = Some(Seen { at: now, free, low });
        }
        match seen.as_ref() {
            Some(Seen {
                low: true, free, ..
            }) => Err(OutboxError::LowSpace {
                location: self.location.clone(),
                free_mb: free.unwrap_or(0) >> 20,
                min_mb: self.min >> 20,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;

    struct Fixed(Arc<AtomicU64>, Arc<AtomicU64>);

    impl FreeSpace for Fixed {
        fn available(&self, _dir: &std::path::Path) -> std::io::Result<u64> {
            self.1.fetch_add(1, Ordering::Relaxed);
            Ok(self.0.load(Ordering::Relaxed))
        }
    }

    #[test]
    fn below_the_minimum_new_messages_are_refused_until_space_comes_back() {
        let free = Arc::new(AtomicU64::new(500 << 20));
        let looks = Arc::new(AtomicU64::new(0));
        let g = SpaceGuard::new(
            std::path::Path::new("/var/lib/mailhost/outbox.db"),
            "/var/lib/mailhost/outbox.db",
            100 << 20,
            Box::new(Fixed(free.clone(), looks.clone())),
        );
        assert_eq!(g.dir, PathBuf::from("/var/lib/mailhost"));
        let t0 = Instant::now();
        assert!(g.check_at(t0).is_ok());
        // Within a second the disk is not asked again.
        free.store(50 << 20, Ordering::Relaxed);
        assert!(g.check_at(t0 + Duration::from_millis(500)).is_ok());
        assert_eq!(looks.load(Ordering::Relaxed), 1);
        let e = g.check_at(t0 + FRESH).unwrap_err().to_string();
        assert!(
            e.contains("50 MB free")
                && e.contains("min_free_mb (100 MB)")
                && e.contains("/var/lib/mailhost/outbox.db"),
            "{e}"
        );
        free.store(300 << 20, Ordering::Relaxed);
        assert!(g.check_at(t0 + FRESH * 2).is_ok());
        // A bare file name is in the working folder.
        let g = SpaceGuard::new(
            std::path::Path::new("outbox.db"),
            "outbox.db",
            1,
            Box::new(Disk),
        );
        assert_eq!(g.dir, PathBuf::from("."));
        assert!(g.check().is_ok());
    }
}
