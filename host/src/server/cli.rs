//! The command-line side of the service: `serve`, `outbox list|show|retry|cancel|purge`,
//! `api-token`, and `send --queue`.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use crate::cli::exit;
use crate::config::Settings;
use crate::engine::Engine;
use crate::outbox::{now_ms, worker, Outbox, Store};

mod outbox;
mod token;
pub mod winservice;
pub use outbox::{outbox, OutboxCommand};
pub(crate) use outbox::{parse_when, when};
pub use token::{api_token, ApiTokenArgs};
pub use winservice::{service, ServiceCommand};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `[api] bind`, else 127.0.0.1:8025). Loopback unless you mean it.
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Serve the API only; other processes drain the outbox.
    #[arg(long)]
    pub no_workers: bool,
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
    Outbox::open(&location)
        .await
        .map(|o| o.with_min_free(settings.outbox.min_free_bytes()))
        .map_err(|e| {
            eprintln!("mailhost: {e}");
            exit::UNAVAILABLE
        })
}

/// `mailhost serve`
pub fn serve(engine: Engine, a: &ServeArgs) -> u8 {
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    serve_until(engine, a, stop_rx, None)
}

/// Where `serve` listens: `--bind`, else `[api] bind`, else 127.0.0.1:8025.
pub(crate) fn bind_address(
    given: Option<SocketAddr>,
    api: &super::auth::ApiSettings,
) -> Result<SocketAddr, String> {
    match given {
        Some(b) => Ok(b),
        None => api
            .bind
            .as_deref()
            .unwrap_or("127.0.0.1:8025")
            .parse()
            .map_err(|e| format!("[api] bind: {e}; write it like 127.0.0.1:8025")),
    }
}

/// Called once `serve` listens (and the workers run).
pub(crate) type OnReady = Box<dyn FnOnce(SocketAddr) + Send>;

/// `serve` until a signal or `stop` turns true; `ready` hears when it listens.
pub(crate) fn serve_until(
    engine: Engine,
    a: &ServeArgs,
    stop_rx: tokio::sync::watch::Receiver<bool>,
    ready: Option<OnReady>,
) -> u8 {
    let settings = engine.settings().clone();
    let bind = match bind_address(a.bind, &settings.api) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mailhost: {e}");
            return exit::CONFIG;
        }
    };
    let tls = match (&settings.api.tls_cert, &settings.api.tls_key) {
        (Some(cert), Some(key)) => {
            let at = |p: &str| settings.base_dir.join(p);
            match super::tls::Certificates::open(at(cert), at(key)) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    eprintln!("mailhost: [api] tls_cert/tls_key: {e}");
                    return exit::CONFIG;
                }
            }
        }
        _ => None,
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
            tls,
        };
        let deliver = Arc::new(crate::outbox::deliver::EngineDeliver(live.clone()));
        let bound = ready.map(|ready| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                if let Ok(addr) = rx.await {
                    ready(addr);
                }
            });
            tx
        });
        match super::serve(live.clone(), deliver, outbox, opts, stop_rx, bound).await {
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
        let oldest = store.oldest_open().await;
        Some(match (counts, seen, open, oldest) {
            (Ok(c), Ok(seen), Ok(open), Ok(oldest)) => serde_json::json!({
                "outbox": store.location(),
                "messages": c,
                "oldest": oldest
                    .into_iter()
                    .map(|(state, at)| (state, serde_json::Value::from(when(at))))
                    .collect::<serde_json::Map<_, _>>(),
                // Accounts removed from the config since are not shown.
                "accounts": seen
                    .iter()
                    .filter(|(a, _)| settings.accounts.contains_key(*a))
                    .map(|(a, recorded)| {
                        let (state, reason, at) = crate::outbox::stats::shown_state(
                            settings.policy.enabled,
                            Some(recorded),
                        );
                        serde_json::json!({
                            "account": a, "state": state, "reason": reason,
                            "at": at.map(when),
                        })
                    })
                    .collect::<Vec<_>>(),
                "waiting": waiting(open),
            }),
            (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
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
    if let Some(o) = v["oldest"].as_object().filter(|o| !o.is_empty()) {
        let parts: Vec<String> = o
            .iter()
            .map(|(state, at)| format!("{state} since {}", at.as_str().unwrap_or("")))
            .collect();
        out.push_str(&format!("  oldest: {}\n", parts.join(", ")));
    }
    for a in v["accounts"].as_array().into_iter().flatten() {
        let reason = a["reason"].as_str().unwrap_or("");
        out.push_str(&format!(
            "  {:<16} {}{}{}\n",
            a["account"].as_str().unwrap_or(""),
            a["state"].as_str().unwrap_or(""),
            if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            },
            a["at"]
                .as_str()
                .map(|at| format!(" (seen {at})"))
                .unwrap_or_default()
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
