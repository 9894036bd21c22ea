//! The columns of a stored message as rows carry them: [`COLS`], the
//! position of each ([`col`], `at!`) and the reading of a row into a
//! [`super::MessageRecord`] (`read_record!`), shared by sqlx and rusqlite.

/// The columns of a record, without the MIME.
pub(crate) const COLS: &str = "id, state, action, user_name, tenant, purpose, idempotency_key, \
     message_id, envelope_from, envelope_to, options_json, decision_json, chain_pos, \
     position_since, priority, attempts_count, next_attempt_at, lease_owner, lease_until, \
     last_error, created_at, updated_at, batch_id";

/// [`COLS`] in order (a test checks they agree): rows are read by position,
/// not by name (a name is a string search through the row's columns).
pub(crate) const COL_NAMES: [&str; 23] = [
    "id",
    "state",
    "action",
    "user_name",
    "tenant",
    "purpose",
    "idempotency_key",
    "message_id",
    "envelope_from",
    "envelope_to",
    "options_json",
    "decision_json",
    "chain_pos",
    "position_since",
    "priority",
    "attempts_count",
    "next_attempt_at",
    "lease_owner",
    "lease_until",
    "last_error",
    "created_at",
    "updated_at",
    "batch_id",
];

/// The position of column `name` in a row of [`COLS`] followed by the MIME
/// (`mime` is last). At compile time; an unknown name does not compile.
pub(crate) const fn col(name: &str) -> usize {
    let mut i = 0;
    while i < COL_NAMES.len() {
        if same(COL_NAMES[i], name) {
            return i;
        }
        i += 1;
    }
    if same("mime", name) {
        return COL_NAMES.len();
    }
    panic!("not a column of COLS")
}

/// `a == b` for [`col`] (`==` on strings is not `const`).
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut j = 0;
    while j < a.len() {
        if a[j] != b[j] {
            return false;
        }
        j += 1;
    }
    true
}

/// [`col`] as a constant: `at!("state")`.
macro_rules! at {
    ($name:literal) => {{
        const I: usize = $crate::outbox::columns::col($name);
        I
    }};
}
pub(crate) use at;

/// A message's MIME, in its own table (migration 0004), as a column named `mime`.
pub(crate) const MIME_COL: &str =
    "(SELECT mime FROM outbox_mime WHERE outbox_mime.message = outbox_messages.id) AS mime";

/// A [`super::MessageRecord`] from a row of [`COLS`] (and `mime` when
/// `$with_mime`), for sqlx rows (`try_get`) and rusqlite rows (`get`) alike;
/// `$c` turns the row library's error into an [`OutboxError`](super::OutboxError). Used where a
/// `Result<_, OutboxError>` is returned.
macro_rules! read_record {
    ($r:expr, $get:ident, $c:expr, $with_mime:expr) => {{
        let state: String = $r.$get($crate::outbox::columns::at!("state")).map_err($c)?;
        let to: String = $r
            .$get($crate::outbox::columns::at!("envelope_to"))
            .map_err($c)?;
        let chain_pos: i64 = $r
            .$get($crate::outbox::columns::at!("chain_pos"))
            .map_err($c)?;
        let priority: i64 = $r
            .$get($crate::outbox::columns::at!("priority"))
            .map_err($c)?;
        let attempts_count: i64 = $r
            .$get($crate::outbox::columns::at!("attempts_count"))
            .map_err($c)?;
        $crate::outbox::MessageRecord {
            id: $r.$get($crate::outbox::columns::at!("id")).map_err($c)?,
            state: $crate::outbox::State::parse(&state).ok_or_else(|| {
                $crate::outbox::OutboxError::Corrupt {
                    what: "message state",
                    detail: format!("unknown state {state:?}"),
                }
            })?,
            action: $r
                .$get($crate::outbox::columns::at!("action"))
                .map_err($c)?,
            user: $r
                .$get($crate::outbox::columns::at!("user_name"))
                .map_err($c)?,
            tenant: $r
                .$get($crate::outbox::columns::at!("tenant"))
                .map_err($c)?,
            purpose: $r
                .$get($crate::outbox::columns::at!("purpose"))
                .map_err($c)?,
            idempotency_key: $r
                .$get($crate::outbox::columns::at!("idempotency_key"))
                .map_err($c)?,
            message_id: $r
                .$get($crate::outbox::columns::at!("message_id"))
                .map_err($c)?,
            mime: if $with_mime {
                Some($r.$get($crate::outbox::columns::at!("mime")).map_err($c)?)
            } else {
                None
            },
            envelope_from: $r
                .$get($crate::outbox::columns::at!("envelope_from"))
                .map_err($c)?,
            envelope_to: serde_json::from_str(&to).map_err(|e| {
                $crate::outbox::OutboxError::Corrupt {
                    what: "envelope recipients",
                    detail: e.to_string(),
                }
            })?,
            options_json: $r
                .$get($crate::outbox::columns::at!("options_json"))
                .map_err($c)?,
            decision_json: $r
                .$get($crate::outbox::columns::at!("decision_json"))
                .map_err($c)?,
            chain_pos: chain_pos as u32,
            position_since: $r
                .$get($crate::outbox::columns::at!("position_since"))
                .map_err($c)?,
            priority: $crate::outbox::Priority::from_i64(priority),
            attempts_count: attempts_count as u32,
            next_attempt_at: $r
                .$get($crate::outbox::columns::at!("next_attempt_at"))
                .map_err($c)?,
            lease_owner: $r
                .$get($crate::outbox::columns::at!("lease_owner"))
                .map_err($c)?,
            lease_until: $r
                .$get($crate::outbox::columns::at!("lease_until"))
                .map_err($c)?,
            last_error: $r
                .$get($crate::outbox::columns::at!("last_error"))
                .map_err($c)?,
            created_at: $r
                .$get($crate::outbox::columns::at!("created_at"))
                .map_err($c)?,
            updated_at: $r
                .$get($crate::outbox::columns::at!("updated_at"))
                .map_err($c)?,
            batch_id: $r
                .$get($crate::outbox::columns::at!("batch_id"))
                .map_err($c)?,
        }
    }};
}
pub(crate) use read_record;

#[cfg(test)]
mod tests {
    use super::{col, COLS, COL_NAMES};

    #[test]
    fn rows_are_read_by_the_position_cols_gives() {
        let listed: Vec<&str> = COLS.split(',').map(str::trim).collect();
        assert_eq!(listed, COL_NAMES);
        assert_eq!(col("id"), 0);
        assert_eq!(col("batch_id"), 22);
        assert_eq!(col("mime"), COL_NAMES.len());
    }
}
