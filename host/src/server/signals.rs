//! What stops `serve`: SIGTERM or SIGINT (Ctrl+C) on Unix; Ctrl+C,
//! Ctrl+Break, the console closing and a system shutdown on Windows; or the
//! caller's `stop` flag.

use tokio::sync::watch;

/// SIGTERM, SIGINT, or `stop` turning true.
pub(super) async fn wait_for_stop(stop: &mut watch::Receiver<bool>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    // Windows: Ctrl+Break, the console closing and the system shutting down
    // stop it the same way (Windows ends the process about 5 seconds after a
    // close and 20 after a shutdown; the outbox keeps what is not finished).
    // Not a logoff: a service hears every user's logoff.
    #[cfg(windows)]
    let term = async {
        use tokio::signal::windows;
        let brk = async {
            match windows::ctrl_break() {
                Ok(mut s) => s.recv().await,
                Err(_) => std::future::pending().await,
            }
        };
        let close = async {
            match windows::ctrl_close() {
                Ok(mut s) => s.recv().await,
                Err(_) => std::future::pending().await,
            }
        };
        let down = async {
            match windows::ctrl_shutdown() {
                Ok(mut s) => s.recv().await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = brk => {}
            _ = close => {}
            _ = down => {}
        }
    };
    #[cfg(not(any(unix, windows)))]
    let term = std::future::pending::<()>();
    let flag = async {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
        _ = flag => {}
    }
}
