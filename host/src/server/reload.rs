//! SIGHUP: read the config file again and apply it without a restart, as a
//! save on the admin page does. An operator who edits the file by hand (or
//! through configuration management) reloads the way mail servers do.
//! A file that does not validate changes nothing: its errors are logged with
//! their `file:line:col`, and the service goes on with the config it has.
//! API tokens follow the file (added, rotated and revoked ones apply to the
//! next request); `[api] bind`, `[outbox]` and the request size limit are
//! read at start only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::admin::edit::{check_in_child, etag, validate, Loaded};
use crate::engine::Engine;
use crate::live::LiveEngine;

/// A reload asked for by the Windows service manager (`sc control NAME
/// paramchange`), which has no SIGHUP.
static REQUESTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// What asked for a reload, for the log.
const TRIGGER: &str = if cfg!(unix) {
    "SIGHUP"
} else {
    "service reload"
};

/// Asks the running `serve` to reload its config, as SIGHUP does.
#[cfg_attr(not(windows), allow(dead_code))]
pub fn request() {
    REQUESTED.notify_one();
}

/// Reloads on every SIGHUP (Unix) or [`request`] (the Windows service's
/// "paramchange") until aborted. `status` is what the service manager is
/// told once a reload is done.
pub async fn on_hangup(live: Arc<LiveEngine>, status: String) {
    #[cfg(not(unix))]
    {
        let _ = status;
        loop {
            REQUESTED.notified().await;
            tracing::info!("serve: the service manager asked for a reload");
            reload(&live).await;
        }
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "serve: cannot listen for SIGHUP ({e}); config changes need a restart"
                );
                return;
            }
        };
        while hup.recv().await.is_some() {
            super::notify::tell(super::notify::Event::Reloading);
            reload(&live).await;
            let done = format!(
                "{status}; config reloaded {}",
                super::cli::when(crate::outbox::now_ms())
            );
            super::notify::tell(super::notify::Event::Ready(&done));
        }
    }
}

/// Reads, checks and applies the config file the running engine came from.
pub async fn reload(live: &LiveEngine) {
    let engine = live.get();
    let settings = engine.settings();
    if settings.source == crate::config::EMBEDDED_NAME {
        tracing::warn!("serve: {TRIGGER}: the service runs on the embedded default config; there is no file to reload (start it with --config FILE)");
        return;
    }
    let path = PathBuf::from(&settings.source);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(
                "serve: {TRIGGER}: cannot read the config file {}: {e}; the running config stays",
                path.display()
            );
            return;
        }
    };
    let l = Loaded {
        etag: etag(&text),
        base_dir: settings.base_dir.clone(),
        path,
        text,
    };
    check_in_child(&l, &l.text, engine.plugins()).await;
    let fresh = match validate(&l, &l.text, engine.plugins()) {
        Ok(s) => s,
        Err(errors) => {
            tracing::error!(
                "serve: {TRIGGER}: {} does not validate; the running config stays:\n{}",
                l.path.display(),
                errors.join("\n")
            );
            return;
        }
    };
    for w in &fresh.warnings {
        tracing::warn!("serve: {w}");
    }
    let restart_only: Vec<&str> = [
        ("[api] bind", settings.api.bind != fresh.api.bind),
        (
            "[api] tls_cert/tls_key",
            (&settings.api.tls_cert, &settings.api.tls_key)
                != (&fresh.api.tls_cert, &fresh.api.tls_key),
        ),
        ("[outbox]", settings.outbox != fresh.outbox),
        (
            "[limits] max_request_bytes",
            settings.limits.max_request_bytes() != fresh.limits.max_request_bytes(),
        ),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    if !restart_only.is_empty() {
        tracing::warn!(
            "serve: {TRIGGER}: {} changed in {}; those are read at start: restart the service to apply them",
            restart_only.join(", "),
            l.path.display()
        );
    }
    let tokens = token_changes(&settings.api, &fresh.api);
    let old = live.set(Arc::new(Engine::new(fresh, engine.plugins().clone())));
    drop(old);
    tracing::info!(
        "serve: config {} reloaded ({TRIGGER}){tokens}",
        l.path.display()
    );
}

/// What a reload did to the API tokens, by name (never a hash): "" when nothing.
fn token_changes(
    before: &crate::server::auth::ApiSettings,
    after: &crate::server::auth::ApiSettings,
) -> String {
    let (old, new) = (&before.tokens, &after.tokens);
    fn pick<'a, T>(from: &'a BTreeMap<String, T>, keep: &dyn Fn(&String) -> bool) -> Vec<&'a str> {
        from.keys()
            .filter(|n| keep(n))
            .map(String::as_str)
            .collect()
    }
    let added = pick(new, &|n| !old.contains_key(n));
    let removed = pick(old, &|n| !new.contains_key(n));
    let changed = pick(new, &|n| old.get(n).is_some_and(|t| Some(t) != new.get(n)));
    let mut parts = Vec::new();
    for (what, list) in [("added", added), ("changed", changed), ("revoked", removed)] {
        if !list.is_empty() {
            parts.push(format!("{what} {}", list.join(", ")));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; API tokens {}", parts.join("; "))
    }
}
