//! `[outbox]` in the config: where the outbox is, and how the service's
//! workers, batches and retention use it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{retention, worker};

/// `[outbox]` in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSettings {
    /// A SQLite file (relative to the config's directory) or a `postgres://`
    /// URL; `env:NAME` / `file:PATH` references work (a URL may hold a
    /// password). Default: `outbox.db` beside the config.
    #[serde(default)]
    pub database: Option<String>,
    /// Plugin calls in flight at once per process (default 8).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Plugin calls in flight at once per account and process (default 4).
    #[serde(default)]
    pub per_account: Option<usize>,
    /// Messages a worker lane claims and tries before their outcomes are
    /// committed together (default 8, at most [`worker::MAX_LANE_BATCH`]).
    /// More is fewer commits per message; a crash may send up to
    /// `concurrency × 2 × messages_per_step` messages twice.
    #[serde(default)]
    pub messages_per_step: Option<usize>,
    /// How long a claim holds a message before another process may take it (default 120).
    #[serde(default)]
    pub lease_secs: Option<u64>,
    /// How long one way out is retried after temporary failures before the
    /// next way out is tried (default 86400).
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    /// How long a stopping service waits for sends in flight (default 30).
    #[serde(default)]
    pub drain_secs: Option<u64>,
    /// Messages per minute of one batch (`send-batch`, `POST /v1/batches`)
    /// unless the batch names its own rate; 0 = not paced (default 60).
    #[serde(default)]
    pub batch_per_minute: Option<u32>,
    /// Days a sent, failed or cancelled message is kept after its last
    /// change; 0 = for good (default 30).
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Below this much free space (MB) on a SQLite outbox's disk, new
    /// messages and batches are refused with a temporary error; 0 = never
    /// (default 100).
    #[serde(default)]
    pub min_free_mb: Option<u64>,
}

/// A `postgres://` URL whose certificate files (`sslrootcert`, `sslcert`,
/// `sslkey`) are relative: made relative to the config's folder, as every
/// other path in the config is (the driver would read them from the
/// working folder). Any other URL is returned as it is.
fn certificate_paths_from(db: &str, base_dir: &std::path::Path) -> String {
    const FILES: [&str; 3] = ["sslrootcert", "sslcert", "sslkey"];
    let Ok(mut url) = url::Url::parse(db) else {
        return db.to_string();
    };
    let relative = |k: &str, v: &str| FILES.contains(&k) && std::path::Path::new(v).is_relative();
    if !url.query_pairs().any(|(k, v)| relative(&k, &v)) {
        return db.to_string();
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if relative(&k, &v) {
                base_dir.join(v.as_ref()).display().to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

/// The default of `[outbox] batch_per_minute`.
pub const DEFAULT_BATCH_PER_MINUTE: u32 = 60;
/// The highest batch rate: 1,000 a second.
pub const MAX_BATCH_PER_MINUTE: u32 = 60_000;

impl OutboxSettings {
    /// The database to open: a `postgres://` URL or a SQLite path.
    pub fn location(&self, base_dir: &std::path::Path) -> Result<String, String> {
        let Some(db) = &self.database else {
            return Ok(base_dir.join("outbox.db").display().to_string());
        };
        let db = crate::secrets::resolve(db, Some(base_dir))
            .map_err(|e| format!("[outbox] database: {}", e.message()))?;
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return Ok(certificate_paths_from(&db, base_dir));
        }
        let p = std::path::Path::new(&db);
        Ok(if p.is_relative() {
            base_dir.join(p).display().to_string()
        } else {
            db
        })
    }

    /// The worker's settings; backoff from `[policy]`.
    pub fn worker(
        &self,
        owner: String,
        policy: &crate::config::PolicySettings,
    ) -> worker::WorkerConfig {
        let mut w = worker::WorkerConfig::new(owner);
        // The config's check refuses values out of range; these hold anyway.
        if let Some(n) = self.concurrency {
            w.concurrency = n.clamp(1, worker::MAX_CONCURRENCY);
        }
        if let Some(n) = self.per_account {
            w.per_account = n.clamp(1, worker::MAX_PER_ACCOUNT);
        }
        if let Some(n) = self.messages_per_step {
            w.lane_batch = n.clamp(1, worker::MAX_LANE_BATCH);
        }
        if let Some(s) = self.lease_secs {
            w.lease = Duration::from_secs(s.clamp(3, 86_400));
        }
        if let Some(s) = self.max_age_secs {
            w.max_age = Duration::from_secs(s.min(30 * 86_400));
        }
        w.retention_days = self.retention_days();
        w.initial_backoff = Duration::from_millis(policy.initial_backoff_ms.max(1));
        w.max_backoff =
            Duration::from_millis(policy.max_backoff_ms.max(policy.initial_backoff_ms).max(1));
        w
    }

    /// `min_free_mb` in bytes (0: no minimum).
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb
            .unwrap_or(super::space::DEFAULT_MIN_FREE_MB)
            .saturating_mul(1 << 20)
    }

    /// A batch's rate when it names none.
    pub fn batch_rate(&self) -> u32 {
        self.batch_per_minute.unwrap_or(DEFAULT_BATCH_PER_MINUTE)
    }

    /// Days settled messages are kept (None: for good).
    pub fn retention_days(&self) -> Option<u32> {
        Some(
            self.retention_days
                .unwrap_or(retention::DEFAULT_RETENTION_DAYS),
        )
        .filter(|d| *d > 0)
    }

    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_secs.unwrap_or(30).min(3_600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_certificate_files_in_a_postgres_url_are_the_configs_folder() {
        let base = std::path::Path::new("/etc/mailhost");
        let url =
            "postgres://mail:p%40ss@db.example:5432/mail?sslmode=verify-full&sslrootcert=ca.pem";
        let got = certificate_paths_from(url, base);
        let parsed = url::Url::parse(&got).unwrap();
        assert_eq!(parsed.password(), Some("p%40ss"));
        let q: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(
            q,
            vec![
                ("sslmode".into(), "verify-full".into()),
                ("sslrootcert".into(), "/etc/mailhost/ca.pem".into())
            ]
        );
        // absolute, or none: untouched
        let abs = "postgres://db.example/mail?sslrootcert=/srv/ca.pem";
        assert_eq!(certificate_paths_from(abs, base), abs);
        let plain = "postgres://mail@db.example/mail";
        assert_eq!(certificate_paths_from(plain, base), plain);
        // a folder with a space stays one value
        let got = certificate_paths_from(
            "postgres://db.example/mail?sslrootcert=ca.pem",
            std::path::Path::new("/etc/mail host"),
        );
        let v = url::Url::parse(&got)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "sslrootcert")
            .map(|(_, v)| v.into_owned());
        assert_eq!(v.as_deref(), Some("/etc/mail host/ca.pem"));
    }
}
