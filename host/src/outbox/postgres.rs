//! The shared outbox: PostgreSQL, for several `mailhost serve` processes on
//! one queue. Claims lock rows with `FOR UPDATE SKIP LOCKED`; a lease that
//! runs out (the worker died) puts the message back. `synchronous_commit` is
//! set `on` for every connection.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::migrations;
use super::sqlx_writes::sqlx_writes;
use super::store::{impl_store, redact_url};
use super::OutboxError;

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) location: String,
    /// When (the claim's `now`) expired leases were last taken back.
    pub(crate) expired_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// A connection error, with what to do when it was the server's
/// certificate that was refused (`sslmode=verify-ca`/`verify-full`).
fn with_tls_hint(e: &sqlx::Error) -> String {
    let text = e.to_string();
    if mailhost_tls::is_certificate_error(e) || text.contains("invalid peer certificate") {
        format!(
            "{text}; the server's certificate is not signed by a CA this host trusts: give that CA's certificate in the URL (sslrootcert=/path/ca.pem), or sslmode=require to encrypt without checking"
        )
    } else {
        text
    }
}

impl PgStore {
    /// Connects to `url` and migrates. With `schema`, everything lives in that
    /// schema (created if missing), e.g. to keep one queue per environment.
    pub async fn open(url: &str, schema: Option<&str>) -> Result<PgStore, OutboxError> {
        let mut location = redact_url(url);
        if let Some(s) = schema {
            location = format!("{location} (schema {s})");
        }
        let open = |detail: String| OutboxError::Open {
            location: location.clone(),
            detail,
        };
        let mut opts = PgConnectOptions::from_str(url)
            .map_err(|e| open(e.to_string()))?
            .options([("synchronous_commit", "on")]);
        // One connection first: its error says what is wrong (refused, a
        // password, no such database) at once, where a pool retries until
        // it times out after 30 seconds and says only that.
        {
            use sqlx::Connection as _;
            let first = tokio::time::timeout(
                std::time::Duration::from_secs(15),
                sqlx::PgConnection::connect_with(&opts),
            )
            .await
            .map_err(|_| open("no answer from the server within 15 seconds".into()))?
            .map_err(|e| open(with_tls_hint(&e)))?;
            let _ = first.close().await;
        }
        if let Some(s) = schema {
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || s.is_empty() {
                return Err(open(format!(
                    "schema name {s:?}: use letters, digits and '_' only"
                )));
            }
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts.clone())
                .await
                .map_err(|e| open(e.to_string()))?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .execute(&admin)
                .await
                .map_err(|e| open(format!("cannot create schema {s}: {e}")))?;
            admin.close().await;
            opts = opts.options([("search_path", s)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .map_err(|e| open(e.to_string()))?;
        migrations::run(migrations::POSTGRES, &pool, &location).await?;
        Ok(PgStore {
            pool,
            location,
            expired_at: Default::default(),
        })
    }

    /// Drops the schema this store was opened in (tests clean up after themselves).
    pub async fn drop_schema(&self, schema: &str) -> Result<(), OutboxError> {
        if schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(OutboxError::Query {
                location: self.location.clone(),
                what: "drop schema",
                detail: format!("schema name {schema:?}: use letters, digits and '_' only"),
            });
        }
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&self.pool)
            .await
            .map_err(|e| OutboxError::Query {
                location: self.location.clone(),
                what: "drop schema",
                detail: e.to_string(),
            })?;
        Ok(())
    }
}

impl_store!(
    PgStore,
    sqlx::Postgres,
    "",
    " FOR UPDATE SKIP LOCKED",
    Some("SELECT pg_advisory_xact_lock(hashtext($1))"),
    "(way_outs::jsonb ->> chain_pos::int)",
    sqlx_writes
);
