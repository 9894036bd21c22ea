//! `mailhost outbox list|show|retry|cancel|purge|backup`: reading and changing what
//! the outbox holds, from the command line.

use clap::{Args, Subcommand};

use super::{open_outbox, runtime};
use crate::cli::exit;
use crate::config::Settings;
use crate::outbox::{now_ms, Change, ListFilter, State, Store};

#[derive(Debug, Clone, Subcommand)]
pub enum OutboxCommand {
    /// Messages, newest first.
    List {
        #[command(flatten)]
        filters: Filters,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One message with every attempt.
    Show {
        id: String,
        /// Write the message's stored MIME (what was or will be sent) to stdout instead.
        #[arg(long)]
        raw: bool,
    },
    /// Send a failed, cancelled or deferred message again (now); with
    /// `--all`, every one the filters match (failed ones unless `--state`
    /// says otherwise).
    Retry(Which),
    /// Do not send a queued or deferred message; with `--all`, every one
    /// the filters match.
    Cancel(Which),
    /// Batches (`send-batch`, `POST /v1/batches`), newest first.
    Batches {
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// One batch: its messages per state, its rate, whether it is done.
    Batch { id: String },
    /// Cancel every message of a batch not yet sent.
    CancelBatch { id: String },
    /// Write a consistent copy of a SQLite outbox to FILE (a new file) while
    /// the service runs. For PostgreSQL use `pg_dump`.
    Backup { file: std::path::PathBuf },
    /// Delete sent, failed and cancelled messages (with their attempts and
    /// bytes) last changed more than DAYS days ago; open messages stay. The
    /// service does this every hour with `[outbox] retention_days`.
    Purge {
        /// Days to keep (default: `[outbox] retention_days`, 30); 0 deletes every settled message.
        #[arg(long)]
        days: Option<u32>,
    },
}

/// The messages `retry` and `cancel` move: one ID, or `--all` the filters match.
#[derive(Debug, Clone, Args)]
pub struct Which {
    /// The message's id (`mailhost outbox list` shows them).
    #[arg(required_unless_present = "all")]
    id: Option<String>,
    /// Every message the filters match instead of one ID.
    #[arg(long, conflicts_with = "id")]
    all: bool,
    #[command(flatten)]
    filters: Filters,
}

/// Which messages `list`, `retry --all` and `cancel --all` take.
#[derive(Debug, Clone, Default, Args)]
pub struct Filters {
    /// queued, sending, sent, deferred, failed or cancelled.
    #[arg(long)]
    state: Option<String>,
    /// Messages of this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Messages of this user.
    #[arg(long)]
    user: Option<String>,
    /// The account (or a mode's label) a message waits for or last went through.
    #[arg(long)]
    account: Option<String>,
    /// Created at or after this time: RFC 3339 (2026-11-30T08:00:00Z), or a
    /// UTC date or date and time (2026-11-30, 2026-11-30T08:00).
    #[arg(long)]
    since: Option<String>,
    /// Created before this time (as --since).
    #[arg(long)]
    until: Option<String>,
}

impl Filters {
    fn is_empty(&self) -> bool {
        [
            &self.state,
            &self.tenant,
            &self.user,
            &self.account,
            &self.since,
            &self.until,
        ]
        .iter()
        .all(|v| v.is_none())
    }

    /// The store's filter; `Err` says which flag is wrong.
    fn to_filter(&self) -> Result<ListFilter, String> {
        let state = match self.state.as_deref() {
            None => None,
            Some(s) => Some(State::parse(s).ok_or_else(|| {
                format!("state `{s}` is unknown; use queued, sending, sent, deferred, failed or cancelled")
            })?),
        };
        let time = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|v| parse_when(v).map_err(|e| format!("{flag} {e}")))
                .transpose()
        };
        Ok(ListFilter {
            state,
            tenant: self.tenant.clone(),
            user: self.user.clone(),
            account: self.account.clone(),
            since: time("--since", &self.since)?,
            until: time("--until", &self.until)?,
            ..Default::default()
        })
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC), as the outbox commands
/// print times.
pub(crate) fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// A time given to a filter: RFC 3339 (`2026-11-30T08:00:00Z`, an offset
/// allowed), a UTC date or date and time without an offset (`2026-11-30`,
/// `2026-11-30T08:00`, `2026-11-30 08:00:00`: what a date-time field of a
/// form sends), or milliseconds since the epoch, as the API's records carry
/// them.
pub(crate) fn parse_when(s: &str) -> Result<i64, String> {
    use time::macros::format_description;
    let s = s.trim();
    if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|e| format!("`{s}`: {e}"));
    }
    let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(ms(t));
    }
    let local = s.replacen(' ', "T", 1);
    for f in [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ] {
        if let Ok(t) = time::PrimitiveDateTime::parse(&local, f) {
            return Ok(ms(t.assume_utc()));
        }
    }
    if let Ok(d) = time::Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Ok(ms(d.midnight().assume_utc()));
    }
    Err(format!(
        "`{}` is not a time; write it like 2026-11-30T08:00:00Z (RFC 3339), 2026-11-30 or 2026-11-30T08:00 (UTC), or as milliseconds since 1970",
        crate::limits::shown(s)
    ))
}

/// A message id as the outbox makes them (a UUID); `Err` is the error line.
fn check_id(id: &str) -> Result<(), String> {
    if crate::outbox::could_be_id(id) {
        return Ok(());
    }
    Err(format!(
        "`{}` is not a message id (they look like 01a22d8b-6384-71d4-9038-5ceafac0b535; `mailhost outbox list` shows them)",
        crate::limits::shown(id)
    ))
}

/// `mailhost outbox …`
pub fn outbox(settings: &Settings, cmd: &OutboxCommand, json: bool) -> u8 {
    let rt = match runtime() {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async {
        let outbox = match open_outbox(settings).await {
            Ok(o) => o,
            Err(c) => return c,
        };
        let store = outbox.store();
        let failed = |e: crate::outbox::OutboxError| {
            eprintln!("mailhost: {e}");
            exit::UNAVAILABLE
        };
        let id = match cmd {
            OutboxCommand::Show { id, .. } => Some(id),
            OutboxCommand::Retry(w) | OutboxCommand::Cancel(w) => w.id.as_ref(),
            _ => None,
        };
        if let Some(Err(e)) = id.map(|id| check_id(id)) {
            eprintln!("mailhost: {e}");
            return exit::DATA;
        }
        match cmd {
            OutboxCommand::Batches { .. }
            | OutboxCommand::Batch { .. }
            | OutboxCommand::CancelBatch { .. } => {
                crate::batch::cli::outbox_batches(&outbox, cmd, json).await
            }
            OutboxCommand::List { filters, limit } => {
                let f = match filters.to_filter() {
                    Ok(f) => ListFilter {
                        limit: *limit,
                        ..f
                    },
                    Err(e) => {
                        eprintln!("mailhost: {e}");
                        return exit::USAGE;
                    }
                };
                let list = match store.list(&f).await {
                    Ok(l) => l,
                    Err(e) => return failed(e),
                };
                if json {
                    crate::cli::print_json(&list);
                } else {
                    for m in &list {
                        println!(
                            "{}  {:<9}  {}  via {}  <{}>  to {}{}",
                            m.id,
                            m.state.as_str(),
                            when(m.created_at),
                            m.way_out_now().as_deref().unwrap_or("-"),
                            m.message_id,
                            m.envelope_to.join(", "),
                            m.last_error
                                .as_deref()
                                .map(|e| format!("  ({e})"))
                                .unwrap_or_default()
                        );
                    }
                    if list.is_empty() {
                        println!("(no messages)");
                    }
                }
                exit::OK
            }
            OutboxCommand::Show { id, raw } => match store.get(id).await {
                Ok(Some((m, _))) if *raw => {
                    use std::io::Write;
                    let bytes = m.mime.unwrap_or_default();
                    let mut out = std::io::stdout().lock();
                    match out.write_all(&bytes).and_then(|()| out.flush()) {
                        Ok(()) => exit::OK,
                        Err(e) => {
                            eprintln!("mailhost: cannot write the message to stdout: {e}");
                            exit::UNAVAILABLE
                        }
                    }
                }
                Ok(Some((m, attempts))) => {
                    if json {
                        crate::cli::print_json(&serde_json::json!({"message": m, "attempts": attempts}));
                    } else {
                        println!("id          {}", m.id);
                        println!("state       {}", m.state);
                        println!("message-id  <{}>", m.message_id);
                        println!("from        {}", m.envelope_from);
                        println!("to          {}", m.envelope_to.join(", "));
                        for (k, v) in [("user", &m.user), ("tenant", &m.tenant), ("purpose", &m.purpose), ("key", &m.idempotency_key)] {
                            if let Some(v) = v {
                                println!("{k:<11} {v}");
                            }
                        }
                        println!("created     {}", when(m.created_at));
                        let mut ways = m.ways_out();
                        if !ways.is_empty() {
                            let open = matches!(m.state, State::Queued | State::Deferred | State::Sending);
                            if let Some(next) = ways.get_mut(m.chain_pos as usize).filter(|_| open) {
                                next.push_str(" (next)");
                            }
                            println!("ways out    {}", ways.join(", "));
                        }
                        if matches!(m.state, State::Queued | State::Deferred) {
                            println!("next try    {}", when(m.next_attempt_at));
                        }
                        if let Some(e) = &m.last_error {
                            println!("last error  {e}");
                        }
                        println!("attempts    {}", attempts.len());
                        for a in &attempts {
                            println!(
                                "  {}  {}  {}  {}{}",
                                when(a.at),
                                if a.candidate.is_empty() { "-" } else { &a.candidate },
                                a.class,
                                a.code.as_deref().map(|c| format!("{c} ")).unwrap_or_default(),
                                a.text
                            );
                        }
                    }
                    exit::OK
                }
                Ok(None) => {
                    eprintln!("mailhost: no message `{id}` in {}", store.location());
                    exit::DATA
                }
                Err(e) => failed(e),
            },
            OutboxCommand::Backup { file } => {
                let crate::outbox::AnyStore::Sqlite(sqlite) = store else {
                    eprintln!("mailhost: the outbox is on PostgreSQL ({}): back it up with pg_dump", store.location());
                    return exit::USAGE;
                };
                match sqlite.backup(file).await {
                    Ok(()) => {
                        if json {
                            crate::cli::print_json(&serde_json::json!({"backup": file.display().to_string()}));
                        } else {
                            println!("{} copied to {}", store.location(), file.display());
                        }
                        exit::OK
                    }
                    Err(e) => failed(e),
                }
            }
            OutboxCommand::Purge { days } => {
                let Some(days) = days.or(settings.outbox.retention_days()) else {
                    eprintln!("mailhost: [outbox] retention_days = 0 keeps every message; give --days N to delete what was settled more than N days ago");
                    return exit::USAGE;
                };
                let before = crate::outbox::retention::cutoff(days, now_ms());
                match outbox.purge(before).await {
                    Ok(n) => {
                        if json {
                            crate::cli::print_json(&serde_json::json!({"removed": n, "before": when(before)}));
                        } else {
                            println!(
                                "removed {n} sent, failed or cancelled message(s) last changed before {} from {}",
                                when(before),
                                store.location()
                            );
                        }
                        exit::OK
                    }
                    Err(e) => failed(e),
                }
            }
            OutboxCommand::Retry(w) | OutboxCommand::Cancel(w) => {
                let cancel = matches!(cmd, OutboxCommand::Cancel(_));
                let Some(id) = w.id.as_deref().filter(|_| !w.all) else {
                    return change_all(store, &w.filters, cancel, json).await;
                };
                if !w.filters.is_empty() {
                    eprintln!("mailhost: --state, --tenant, --user, --account, --since and --until choose messages for --all; give either an ID or --all with them");
                    return exit::USAGE;
                }
                let r = if cancel {
                    store.cancel(id, now_ms()).await
                } else {
                    store.retry(id, now_ms()).await
                };
                match r {
                    Ok(Change::Done(s)) => {
                        println!("{id}: {s}");
                        exit::OK
                    }
                    Ok(Change::NotAllowed(s)) => {
                        eprintln!(
                            "mailhost: message `{id}` is {s}: {}",
                            if cancel {
                                "only queued or deferred messages can be cancelled"
                            } else {
                                "only failed, cancelled or deferred messages can be retried"
                            }
                        );
                        exit::UNAVAILABLE
                    }
                    Ok(Change::NotFound) => {
                        eprintln!("mailhost: no message `{id}` in {}", store.location());
                        exit::DATA
                    }
                    Err(e) => failed(e),
                }
            }
        }
    })
}

/// `outbox retry --all` / `cancel --all`: one statement for every message
/// the filters match; retry takes failed ones unless `--state` names another.
async fn change_all(
    store: &crate::outbox::AnyStore,
    filters: &Filters,
    cancel: bool,
    json: bool,
) -> u8 {
    let mut f = match filters.to_filter() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mailhost: {e}");
            return exit::USAGE;
        }
    };
    match crate::outbox::bulk_state(cancel, f.state) {
        Ok(state) => f.state = state,
        Err(e) => {
            eprintln!("mailhost: --{e}");
            return exit::USAGE;
        }
    }
    match store.change_matching(&f, cancel, now_ms()).await {
        Ok(n) => {
            let done = if cancel { "cancelled" } else { "queued again" };
            if json {
                crate::cli::print_json(
                    &serde_json::json!({ "changed": n, "state": if cancel { "cancelled" } else { "queued" } }),
                );
            } else {
                println!("{n} message(s) {done}");
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("mailhost: {e}");
            exit::UNAVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_when;

    #[test]
    fn times_are_rfc3339_utc_dates_or_epoch_ms() {
        let t = 1_796_025_600_000; // 2026-11-30T08:00:00Z
        for s in [
            "2026-11-30T08:00:00Z",
            "2026-11-30T09:00:00+01:00",
            "2026-11-30T08:00",
            "2026-11-30T08:00:00",
            "2026-11-30 08:00:00",
            " 1796025600000 ",
        ] {
            assert_eq!(parse_when(s), Ok(t), "{s}");
        }
        assert_eq!(parse_when("2026-11-30"), Ok(t - 8 * 3_600_000));
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-30T25:00",
            "",
            "\u{1b}[2J",
        ] {
            let e = parse_when(bad).unwrap_err();
            assert!(!e.contains('\u{1b}') && e.contains("is not a time"), "{e}");
        }
    }
}
