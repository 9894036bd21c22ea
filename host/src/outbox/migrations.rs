//! The schema, embedded in the binary (one list per database kind) and applied
//! with sqlx's migrator, which records what ran in `_sqlx_migrations`.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// (version, description, SQL)
type Script = (i64, &'static str, &'static str);

pub const SQLITE: &[Script] = &[
    (
        1,
        "outbox",
        include_str!("migrations/sqlite/0001_outbox.sql"),
    ),
    (
        2,
        "batches",
        include_str!("migrations/sqlite/0002_batches.sql"),
    ),
    (
        3,
        "send slots, claim order",
        include_str!("migrations/sqlite/0003_send_slots.sql"),
    ),
    (
        4,
        "MIME in a table of its own",
        include_str!("migrations/sqlite/0004_mime_table.sql"),
    ),
    (
        5,
        "batch index for batch messages only",
        include_str!("migrations/sqlite/0005_batch_index.sql"),
    ),
    (
        6,
        "fewer writes per message",
        include_str!("migrations/sqlite/0006_fewer_writes_per_message.sql"),
    ),
    (
        7,
        "ways out per message",
        include_str!("migrations/sqlite/0007_way_outs.sql"),
    ),
];

pub const POSTGRES: &[Script] = &[
    (
        1,
        "outbox",
        include_str!("migrations/postgres/0001_outbox.sql"),
    ),
    (
        2,
        "batches",
        include_str!("migrations/postgres/0002_batches.sql"),
    ),
    (
        3,
        "send slots, claim order",
        include_str!("migrations/postgres/0003_send_slots.sql"),
    ),
    (
        4,
        "MIME in a table of its own",
        include_str!("migrations/postgres/0004_mime_table.sql"),
    ),
    (
        5,
        "batch index for batch messages only",
        include_str!("migrations/postgres/0005_batch_index.sql"),
    ),
    (
        6,
        "fewer writes per message",
        include_str!("migrations/postgres/0006_fewer_writes_per_message.sql"),
    ),
    (
        7,
        "ways out per message",
        include_str!("migrations/postgres/0007_way_outs.sql"),
    ),
];

#[derive(Debug)]
struct Embedded(&'static [Script]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator for one database kind.
pub async fn migrator(scripts: &'static [Script]) -> Result<Migrator, String> {
    Migrator::new(Embedded(scripts))
        .await
        .map_err(|e| e.to_string())
}

/// Brings the database behind `conn` (a pool of either backend) up to the
/// embedded `scripts`; an error names the database at `location`.
pub async fn run<'a, A>(
    scripts: &'static [Script],
    conn: A,
    location: &str,
) -> Result<(), super::OutboxError>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let failed = |detail: String| super::OutboxError::Migrate {
        location: location.to_string(),
        detail,
    };
    migrator(scripts)
        .await
        .map_err(failed)?
        .run(conn)
        .await
        .map_err(|e| failed(e.to_string()))
}
