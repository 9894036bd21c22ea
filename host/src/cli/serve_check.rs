//! `serve`'s config check in a short-lived child process, so the JSON
//! Schema library never loads in the long-running service.

use super::{exit, load_plugins, load_settings, read_settings, report_settings, Cli};
use crate::config::Settings;
use crate::loader::{self, PluginSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The hidden subcommand `serve` runs its schema checks in.
pub(super) const CHECK_FOR_SERVE: &str = "check-for-serve";

/// How long `serve` waits for that child before it checks in its own process.
const CHECK_CHILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The plugins and the config for `serve`, with the same output and answer
/// as [`load_plugins`] then [`load_settings`], but without compiling a
/// settings JSON Schema in this long-running process when it can: the schema
/// library's static data (meta-schemas, compiled format patterns) stays in a
/// process for good, about 10 MB of an idle service's memory.
///
/// With the check cache on ([`crate::checked`]), a first pass compiles
/// nothing; when every schema and account setting is known valid, its result
/// is the answer. Otherwise a short-lived child (`check-for-serve`) does the
/// checks, which remembers what it finds valid, and this process loads again
/// and finds it known. Whatever the child found or did (invalid config, no
/// child, a timeout), this process's own load is the answer and its errors
/// are the ones printed: the child costs time, never a different answer.
pub(crate) fn load_for_serve(cli: &Cli) -> (PluginSet, Result<Settings, u8>) {
    SERVE_PROCESS.store(true, Ordering::Relaxed);
    if crate::checked::enabled() {
        let ((plugins, loaded), needed) = loader::without_compiling(|| {
            let plugins = load_plugins(cli);
            let loaded = read_settings(cli, &plugins);
            (plugins, loaded)
        });
        if !needed {
            let settings = report_settings(cli, &plugins, loaded);
            return (plugins, settings);
        }
        check_in_child(cli);
    }
    let plugins = load_plugins(cli);
    let settings = load_settings(cli, &plugins);
    (plugins, settings)
}

/// Runs `check-for-serve` with this process's config and plugin directories
/// (see [`run_check_child`]).
fn check_in_child(cli: &Cli) {
    run_check_child(cli.config.as_deref(), &cli.plugins, cli.verbose);
}

/// Set when this process is `mailhost serve` itself, which can run its own
/// executable as a check child (a library user's executable cannot).
static SERVE_PROCESS: AtomicBool = AtomicBool::new(false);

/// Checks the config file at `config` (a candidate the admin page is about
/// to save) in a `check-for-serve` child, which remembers what it finds
/// valid ([`crate::checked`]), so that this service can then validate it
/// without compiling a JSON Schema. False when it could not: this process is
/// not `mailhost serve`, or the check cache is off.
pub(crate) fn check_file_in_child(config: &Path, plugin_dirs: &[PathBuf]) -> bool {
    if !SERVE_PROCESS.load(Ordering::Relaxed) || !crate::checked::enabled() {
        return false;
    }
    run_check_child(Some(config), plugin_dirs, 0);
    true
}

/// Runs `check-for-serve` for `config` with `plugin_dirs` (same working
/// directory and environment, so the same cache) and waits for it, at most
/// [`CHECK_CHILD_TIMEOUT`]. Its standard error is this process's: it prints
/// nothing but the log lines asked for (`-v`, `RUST_LOG`), each inside a
/// `config_check{pid=…}` span.
fn run_check_child(config: Option<&Path>, plugin_dirs: &[PathBuf], verbose: u8) {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(
                "cannot find this executable to check the config in a child process ({e}); checking here"
            );
            return;
        }
    };
    let mut cmd = std::process::Command::new(&exe);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    for p in plugin_dirs {
        cmd.arg("--plugins").arg(p);
    }
    for _ in 0..verbose {
        cmd.arg("-v");
    }
    cmd.arg(CHECK_FOR_SERVE)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(
                "cannot start {} to check the config in a child process ({e}); checking here",
                exe.display()
            );
            return;
        }
    };
    let pid = child.id();
    tracing::debug!("checking the config in a child process (pid {pid})");
    let deadline = std::time::Instant::now() + CHECK_CHILD_TIMEOUT;
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                tracing::debug!("the config check in child process {pid} ended: {status}");
                return;
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            Ok(None) => {
                tracing::info!(
                    "the config check in child process {pid} did not end within {} s; stopped it, checking here",
                    CHECK_CHILD_TIMEOUT.as_secs()
                );
                break;
            }
            Err(e) => {
                tracing::debug!("cannot wait for child process {pid} ({e}); checking here");
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `check-for-serve`: load the plugins and the config (checking, and
/// remembering, what was not known valid), print nothing (the parent
/// reports), exit 0 when valid, 78 when not.
pub(super) fn check_for_serve(cli: &Cli) -> u8 {
    let _span = tracing::info_span!("config_check", pid = std::process::id()).entered();
    let plugins = load_plugins(cli);
    match read_settings(cli, &plugins) {
        Ok(_) => exit::OK,
        Err(_) => exit::CONFIG,
    }
}
