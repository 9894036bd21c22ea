//! The command-line side of the service: `serve`, `outbox list|show|retry|cancel|purge`,
//! `api-token`, and `send --queue`.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::cli::exit;
use crate::config::Settings;
use crate::engine::Engine;
use crate::outbox::{now_ms, worker, Change, ListFilter, Outbox, State, Store};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `[api] bind`, else 127.0.0.1:8025). Loopback unless you mean it.
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Serve the API only; other processes drain the outbox.
    #[arg(long)]
    pub no_workers: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum OutboxCommand {
    /// Messages, newest first.
    List {
        /// queued, sending, sent, deferred, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// The account (or a mode's label) a message waits for or last went through.
        #[arg(long)]
        account: Option<String>,
        /// Created at or after this time (RFC 3339, e.g. 2026-11-30T08:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Created before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
    },
    /// One message with every attempt.
    Show {
        id: String,
        /// Write the message's stored MIME (what was or will be sent) to stdout instead.
        #[arg(long)]
        raw: bool,
    },
    /// Send a failed, cancelled or deferred message again (now).
    Retry { id: String },
    /// Do not send a queued or deferred message.
    Cancel { id: String },
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
    /// Delete sent, failed and cancelled messages (with their attempts and
    /// bytes) last changed more than DAYS days ago; open messages stay. The
    /// service does this every hour with `[outbox] retention_days`.
    Purge {
        /// Days to keep (default: `[outbox] retention_days`, 30); 0 deletes every settled message.
        #[arg(long)]
        days: Option<u32>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ApiTokenArgs {
    /// The token's name in [api.tokens.NAME].
    pub name: String,
    /// send and/or admin.
    #[arg(long = "scope", default_value = "send")]
    pub scopes: Vec<String>,
    /// Bind it to a tenant; repeat for several.
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// Bind it to a user; repeat for several.
    #[arg(long = "user")]
    pub users: Vec<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("mailhost: cannot start the async runtime: {e}");
            exit::CONFIG
        })
}

async fn open_outbox(settings: &Settings) -> Result<Outbox, u8> {
    let location = settings.outbox.location(&settings.base_dir).map_err(|e| {
        eprintln!("mailhost: {}: {e}", settings.source);
        exit::CONFIG
    })?;
    Outbox::open(&location).await.map_err(|e| {
        eprintln!("mailhost: {e}");
        exit::UNAVAILABLE
    })
}

/// `mailhost api-token NAME`: a new token, printed once, and the lines for the config.
pub fn api_token(a: &ApiTokenArgs) -> u8 {
    for s in &a.scopes {
        if !super::auth::SCOPES.contains(&s.as_str()) {
            eprintln!("mailhost: scope `{s}` is unknown; use send or admin");
            return exit::USAGE;
        }
    }
    let token = super::auth::new_token();
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("# The token (shown once; give it to the API client, keep it secret):");
    println!("# {token}");
    println!("[api.tokens.{}]", a.name);
    println!("hash = \"{}\"", super::auth::hash_token(&token));
    println!("scopes = [{}]", list(&a.scopes));
    if !a.tenants.is_empty() {
        println!("tenants = [{}]", list(&a.tenants));
    }
    if !a.users.is_empty() {
        println!("users = [{}]", list(&a.users));
    }
    exit::OK
}

/// `mailhost serve`
pub fn serve(engine: Engine, a: &ServeArgs) -> u8 {
    let settings = engine.settings().clone();
    let bind = match a.bind {
        Some(b) => b,
        None => match settings
            .api
            .bind
            .as_deref()
            .unwrap_or("127.0.0.1:8025")
            .parse()
        {
            Ok(b) => b,
            Err(e) => {
                eprintln!("mailhost: [api] bind: {e}; write it like 127.0.0.1:8025");
                return exit::CONFIG;
            }
        },
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(c) => return c,
    };
    // The config is checked: the compiled settings schemas are not needed
    // until the admin page checks a new one.
    engine.plugins().forget_validators();
    let engine = Arc::new(engine);
    // The admin page may swap in an engine built from a saved config.
    let live = Arc::new(crate::live::LiveEngine::new(engine.clone()));
    let code = rt.block_on(async {
        let outbox = match open_outbox(&settings).await {
            Ok(o) => o,
            Err(c) => return c,
        };
        let opts = super::ServeOptions {
            bind,
            worker: settings.outbox.worker(worker::owner_id(), &settings.policy),
            drain: settings.outbox.drain(),
            workers: !a.no_workers,
        };
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let deliver = Arc::new(crate::outbox::deliver::EngineDeliver(live.clone()));
        match super::serve(live.clone(), deliver, outbox, opts, stop_rx, None).await {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("mailhost: serve: {e}");
                exit::UNAVAILABLE
            }
        }
    });
    // A plugin call that never returns must not keep the process alive past the drain.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    let current = live.get();
    if !Arc::ptr_eq(&current, &engine) {
        current.close();
    }
    engine.close();
    code
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
/// allowed) or milliseconds since the epoch, as the API's records carry them.
pub(crate) fn parse_when(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|e| format!("`{s}`: {e}"));
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            let shown: String = s.chars().take(40).collect();
            format!("`{shown}` is not a time; write it like 2026-11-30T08:00:00Z (RFC 3339) or as milliseconds since 1970")
        })
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
        match cmd {
            OutboxCommand::Batches { .. }
            | OutboxCommand::Batch { .. }
            | OutboxCommand::CancelBatch { .. } => {
                crate::batch::cli::outbox_batches(&outbox, cmd, json).await
            }
            OutboxCommand::List {
                state,
                limit,
                tenant,
                user,
                account,
                since,
                until,
            } => {
                let state = match state.as_deref().map(|s| (s, State::parse(s))) {
                    None => None,
                    Some((_, Some(s))) => Some(s),
                    Some((s, None)) => {
                        eprintln!("mailhost: state `{s}` is unknown; use queued, sending, sent, deferred, failed or cancelled");
                        return exit::USAGE;
                    }
                };
                let mut times = [None, None];
                for (slot, (flag, v)) in times.iter_mut().zip([("--since", since), ("--until", until)]) {
                    if let Some(v) = v {
                        match parse_when(v) {
                            Ok(t) => *slot = Some(t),
                            Err(e) => {
                                eprintln!("mailhost: {flag} {e}");
                                return exit::USAGE;
                            }
                        }
                    }
                }
                let f = ListFilter {
                    state,
                    tenant: tenant.clone(),
                    user: user.clone(),
                    account: account.clone(),
                    since: times[0],
                    until: times[1],
                    limit: *limit,
                    ..Default::default()
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
                            "{}  {:<9}  {}  <{}>  to {}{}",
                            m.id,
                            m.state.as_str(),
                            when(m.created_at),
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
            OutboxCommand::Retry { id } | OutboxCommand::Cancel { id } => {
                let cancel = matches!(cmd, OutboxCommand::Cancel { .. });
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

/// `mailhost send --queue`: stores the prepared message in the outbox for the service to send.
pub fn enqueue(settings: &Settings, prepared: &crate::submit::Prepared, json: bool) -> u8 {
    let key = prepared.message.idempotency_key.to_string();
    // The message's own key defaults to its Message-ID: only a caller's key dedupes.
    let key = (!key.is_empty() && key != prepared.message.message_id.as_str()).then_some(key);
    let new = match crate::outbox::NewMessage::from_prepared(
        prepared,
        key,
        crate::outbox::Priority::Single,
    ) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("mailhost: not queued: {e}");
            return exit::DATA;
        }
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(c) => return c,
    };
    rt.block_on(async {
        let outbox = match open_outbox(settings).await {
            Ok(o) => o,
            Err(c) => return c,
        };
        let message_id = new.message_id.clone();
        match outbox.enqueue(new).await {
            Ok(e) => {
                if json {
                    crate::cli::print_json(&serde_json::json!({"id": e.id, "message_id": message_id, "duplicate": e.duplicate}));
                } else if e.duplicate {
                    println!("already queued as {} (same idempotency key); nothing new queued", e.id);
                } else {
                    println!("queued {} <{message_id}> in {}", e.id, outbox.store().location());
                }
                exit::OK
            }
            Err(e) => {
                eprintln!("mailhost: not queued: {e}");
                exit::TRANSIENT
            }
        }
    })
}

/// What the service saw, for `mailhost status`: messages per state and each
/// account's connection state as the workers last recorded it. `None` when
/// there is no outbox yet (a SQLite file is never created just to look).
pub fn service_status(settings: &Settings) -> Option<serde_json::Value> {
    let location = existing_outbox(settings)?;
    let rt = runtime().ok()?;
    rt.block_on(async {
        let outbox = match Outbox::open(&location).await {
            Ok(o) => o,
            Err(e) => return Some(serde_json::json!({ "error": e.to_string() })),
        };
        let store = outbox.store();
        let counts = store.counts().await;
        let seen = store.account_statuses().await;
        let open = store.open_by_way_out().await;
        Some(match (counts, seen, open) {
            (Ok(c), Ok(seen), Ok(open)) => serde_json::json!({
                "outbox": store.location(),
                "messages": c,
                "accounts": seen
                    .into_iter()
                    .map(|(a, (state, reason, at))| serde_json::json!({
                        "account": a, "state": state, "reason": reason, "at": when(at)
                    }))
                    .collect::<Vec<_>>(),
                "waiting": waiting(open),
            }),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                serde_json::json!({ "error": e.to_string() })
            }
        })
    })
}

/// The outbox's location when there is one to read: a PostgreSQL URL, or a
/// SQLite file that exists (none is created just to look or to record).
fn existing_outbox(settings: &Settings) -> Option<String> {
    let location = settings.outbox.location(&settings.base_dir).ok()?;
    let is_pg = location.starts_with("postgres://") || location.starts_with("postgresql://");
    (is_pg || std::path::Path::new(&location).exists()).then_some(location)
}

/// `mailhost check` refreshes the connection state the service shows
/// (`mailhost status`, `/v1/status`, the admin page) when there is an
/// outbox: the check saw the account just now. `Err` says why it could not
/// (within 10 s); the check's own answer stands either way.
pub fn record_check(
    settings: &Settings,
    account: &str,
    state: &str,
    reason: &str,
) -> Result<(), String> {
    let Some(location) = existing_outbox(settings) else {
        return Ok(());
    };
    let rt = runtime().map_err(|_| "no async runtime".to_string())?;
    rt.block_on(async {
        let write = async {
            let outbox = Outbox::open(&location).await.map_err(|e| e.to_string())?;
            outbox
                .store()
                .set_account_status(account, state, reason, now_ms())
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), write)
            .await
            .map_err(|_| {
                format!(
                    "outbox {}: no answer within 10 s",
                    crate::outbox::store::redact_url(&location)
                )
            })?
    })
}

/// The open messages per way out, as `[{"account", "queued", ...}]`.
fn waiting(open: crate::outbox::stats::Waiting) -> serde_json::Value {
    open.into_iter()
        .map(|(account, states)| {
            let mut m: serde_json::Map<String, serde_json::Value> =
                states.into_iter().map(|(s, n)| (s, n.into())).collect();
            m.insert("account".into(), account.into());
            serde_json::Value::Object(m)
        })
        .collect()
}

/// [`service_status`] as text lines.
pub fn render_service_status(v: &serde_json::Value) -> String {
    if let Some(e) = v["error"].as_str() {
        return format!("service: cannot read the outbox: {e}\n");
    }
    let mut out = format!("service (outbox {}):\n", v["outbox"].as_str().unwrap_or(""));
    if let Some(m) = v["messages"].as_object() {
        let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out.push_str(&format!("  messages: {}\n", parts.join(", ")));
    }
    for a in v["accounts"].as_array().into_iter().flatten() {
        let reason = a["reason"].as_str().unwrap_or("");
        out.push_str(&format!(
            "  {:<16} {}{} (seen {})\n",
            a["account"].as_str().unwrap_or(""),
            a["state"].as_str().unwrap_or(""),
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            },
            a["at"].as_str().unwrap_or("")
        ));
    }
    let waiting: Vec<String> = v["waiting"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            let states: Vec<String> = ["queued", "deferred", "sending"]
                .iter()
                .filter_map(|s| w[*s].as_u64().map(|n| format!("{n} {s}")))
                .collect();
            let account = w["account"].as_str().unwrap_or("");
            let account = if account.is_empty() {
                "(not known)"
            } else {
                account
            };
            format!("{account} ({})", states.join(", "))
        })
        .collect();
    if !waiting.is_empty() {
        out.push_str(&format!("  waiting: {}\n", waiting.join("; ")));
    }
    out
}
