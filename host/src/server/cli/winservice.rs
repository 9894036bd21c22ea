//! `mailhost service install|uninstall`: `mailhost serve` as a Windows
//! service. The service control manager starts it at boot, stops it
//! gracefully (as Ctrl+C does in a console: no new messages, in-flight sends
//! finish within `[outbox] drain_timeout_ms`, the rest stays queued) and
//! restarts it after a failure. It logs to a file, since a service has no
//! console. Other systems have their own service managers: systemd's unit is
//! `config/mailhost.service`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ServeArgs;
use crate::cli::{exit, Cli};

/// The service's name unless `--name` gives another.
pub const DEFAULT_NAME: &str = "mailhost";

#[derive(Debug, Clone, Subcommand)]
pub enum ServiceCommand {
    /// Register `mailhost serve` with this config as a Windows service:
    /// started at boot, restarted after a failure, logging to a file.
    Install(InstallArgs),
    /// Stop the service (gracefully, as `sc stop` does) and remove it.
    Uninstall {
        /// The service's name.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Ask the running service to read its config again (as SIGHUP and
    /// `systemctl reload` do elsewhere; `sc control NAME paramchange` too).
    Reload {
        /// The service's name.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// What the service manager starts (in a console, run `mailhost serve`).
    #[command(hide = true)]
    Run(RunArgs),
}

#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// The service's name (several services may run with different configs).
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// The log file (default: mailhost-service.log beside the config).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// The account it runs as: LocalSystem (the default), LocalService,
    /// NetworkService, `virtual` (NT SERVICE\NAME, its own account), a
    /// managed service account (DOMAIN\name$), or DOMAIN\user with
    /// --password-env. Other than LocalSystem, it is given modify rights on
    /// the config's folder (outbox, log) with icacls.
    #[arg(long)]
    pub account: Option<String>,
    /// The environment variable that holds the --account user's password
    /// (never on the command line, where other users could read it).
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Who a service runs as (its `Debug` leaves the password out).
#[derive(Clone, PartialEq, Eq)]
pub enum Account {
    /// The default: every right on the machine.
    LocalSystem,
    /// A built-in, virtual or managed account: no password.
    Named(String),
    /// A user account, with its password.
    User { name: String, password: String },
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::LocalSystem => f.write_str("LocalSystem"),
            Account::Named(n) => write!(f, "Named({n:?})"),
            Account::User { name, .. } => write!(f, "User({name:?}, password: <hidden>)"),
        }
    }
}

impl Account {
    /// The account's name for the service manager (`None`: LocalSystem).
    pub fn name(&self) -> Option<&str> {
        match self {
            Account::LocalSystem => None,
            Account::Named(n) | Account::User { name: n, .. } => Some(n),
        }
    }
}

/// The account `--account` names for service `service`; `password` reads
/// the environment variable `--password-env` names.
#[cfg_attr(not(windows), allow(dead_code))]
fn service_account(
    given: Option<&str>,
    password_env: Option<&str>,
    service: &str,
    password: impl Fn(&str) -> Option<String>,
) -> Result<Account, String> {
    let Some(given) = given.map(str::trim) else {
        return Ok(Account::LocalSystem);
    };
    if given.is_empty() || given.len() > 256 || given.chars().any(char::is_control) {
        return Err(format!(
            "--account `{}` is not an account name",
            crate::limits::shown(given)
        ));
    }
    let lower = given.to_ascii_lowercase();
    let named = |n: String| Ok(Account::Named(n));
    match lower.as_str() {
        "localsystem" | "nt authority\\system" => return Ok(Account::LocalSystem),
        "localservice" => return named("NT AUTHORITY\\LocalService".into()),
        "networkservice" => return named("NT AUTHORITY\\NetworkService".into()),
        "virtual" => return named(format!("NT SERVICE\\{service}")),
        _ => {}
    }
    // Built-in and virtual accounts, and managed service accounts (`$`),
    // have no password.
    if lower.starts_with("nt authority\\")
        || lower.starts_with("nt service\\")
        || given.ends_with('$')
    {
        return named(given.to_string());
    }
    let Some(var) = password_env else {
        return Err(format!(
            "the account `{given}` needs its password: put it in an environment variable and give the variable's name with --password-env VAR (or use LocalService, NetworkService or virtual, which need none)"
        ));
    };
    match password(var) {
        Some(p) if !p.is_empty() => Ok(Account::User {
            name: given.to_string(),
            password: p,
        }),
        _ => Err(format!(
            "--password-env {var}: the variable is not set or empty; set it to the password of `{given}` for this command"
        )),
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// Standard error (the log, and any error before it) goes to this file.
    #[arg(long)]
    pub log: PathBuf,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// A service name: what `sc` and the registry accept, and nothing a
/// terminal would act on.
fn check_service_name(name: &str) -> Result<(), String> {
    crate::limits::check_name(name).map_err(|e| format!("--name {e}"))?;
    if name.is_empty() || name.len() > 256 || name.contains(['/', '\\']) {
        return Err(format!(
            "--name `{}` is not a service name: give 1 to 256 characters without / or \\",
            crate::limits::shown(name)
        ));
    }
    Ok(())
}

/// `mailhost service ...`
pub fn service(cli: &Cli, cmd: &ServiceCommand) -> u8 {
    let name = match cmd {
        ServiceCommand::Install(a) => &a.name,
        ServiceCommand::Uninstall { name } | ServiceCommand::Reload { name } => name,
        ServiceCommand::Run(a) => &a.name,
    };
    if let Err(e) = check_service_name(name) {
        eprintln!("mailhost: {e}");
        return exit::USAGE;
    }
    imp::service(cli, cmd)
}

/// The command line the service manager runs: this executable with the
/// config and plugin directories made absolute (a service starts in the
/// system folder), then `service run`.
#[cfg_attr(not(windows), allow(dead_code))]
fn run_arguments(
    cli: &Cli,
    config: &std::path::Path,
    log: &std::path::Path,
    a: &InstallArgs,
) -> Result<Vec<std::ffi::OsString>, String> {
    let absolute =
        |p: &std::path::Path| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut args: Vec<std::ffi::OsString> = vec!["--config".into(), absolute(config)?.into()];
    // The plugin directories this command searched (its --plugins, or
    // MAILHOST_PLUGIN_PATH and the executable's folders): the service's
    // environment is not the installer's.
    for dir in crate::loader::search_path(&cli.plugins) {
        args.push("--plugins".into());
        args.push(absolute(&dir)?.into());
    }
    for _ in 0..cli.verbose {
        args.push("-v".into());
    }
    if cli.log_format == crate::cli::LogFormat::Json {
        args.extend(["--log-format", "json"].map(Into::into));
    }
    args.extend(["service", "run", "--name"].map(Into::into));
    args.push(a.name.clone().into());
    args.push("--log".into());
    args.push(absolute(log)?.into());
    if let Some(bind) = a.serve.bind {
        args.push("--bind".into());
        args.push(bind.to_string().into());
    }
    if a.serve.no_workers {
        args.push("--no-workers".into());
    }
    Ok(args)
}

/// What to do for a service reached from other machines: Windows Firewall
/// blocks what it has no rule for, and plain HTTP carries the tokens in
/// the clear. Nothing for a service on loopback.
#[cfg_attr(not(windows), allow(dead_code))]
fn network_hints(
    name: &str,
    bind: Option<std::net::SocketAddr>,
    api: &crate::server::auth::ApiSettings,
) -> Vec<String> {
    let bind = super::bind_address(bind, api).ok();
    let Some(addr) = bind.filter(crate::server::tls::beyond_loopback) else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "it listens on {addr}, beyond this machine: let other machines reach it through Windows Firewall with: netsh advfirewall firewall add rule name=\"mailhost ({name})\" dir=in action=allow protocol=TCP localport={}",
        addr.port()
    )];
    if api.tls_cert.is_none() {
        out.push("warning: without [api] tls_cert and tls_key, API tokens and the admin sign-in cross the network in the clear".to_string());
    }
    out
}

/// The environment variables a config reads secrets from (`"env:NAME"`):
/// a service does not see the installing session's variables.
#[cfg_attr(not(windows), allow(dead_code))]
fn env_references(config_text: &str) -> Vec<String> {
    let mut names: Vec<String> = config_text
        .split("\"env:")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && rest[name.len()..].starts_with('"')).then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The config file a service is installed with, and its log file.
#[cfg_attr(not(windows), allow(dead_code))]
fn install_paths(cli: &Cli, a: &InstallArgs) -> Result<(PathBuf, PathBuf), String> {
    let Some(config) = crate::config::locate(cli.config.as_deref()) else {
        return Err("a service needs a config file: write one with `mailhost config init`, then give it with --config PATH".into());
    };
    let config = std::path::absolute(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    let log = match &a.log {
        Some(l) => l.clone(),
        None => config
            .parent()
            .map(|d| d.join("mailhost-service.log"))
            .unwrap_or_else(|| PathBuf::from("mailhost-service.log")),
    };
    Ok((config, log))
}

/// A service log grows past this, then it is moved to `NAME.1` (the one
/// before that is dropped) and a new one is started.
pub const LOG_MAX_BYTES: u64 = 16 << 20;

/// Moves `log` to `log.1` (replacing it) when it is larger than `max`;
/// true when it did. Windows lets a file open for writing be renamed (Rust
/// opens files sharing delete access), so the service then switches its
/// standard error to a new file.
#[cfg_attr(not(windows), allow(dead_code))]
fn rotate_if_large(log: &std::path::Path, max: u64) -> std::io::Result<bool> {
    if std::fs::metadata(log)?.len() <= max {
        return Ok(false);
    }
    let mut old = log.as_os_str().to_owned();
    old.push(".1");
    std::fs::rename(log, old)?;
    Ok(true)
}

#[cfg(not(windows))]
mod imp {
    use super::ServiceCommand;
    use crate::cli::{exit, Cli};

    pub(super) fn service(_cli: &Cli, _cmd: &ServiceCommand) -> u8 {
        eprintln!(
            "mailhost: `service` installs a Windows service. Here, run `mailhost serve` under the system's service manager: for systemd, config/mailhost.service is a unit (see its comments)"
        );
        exit::USAGE
    }
}

#[cfg(windows)]
mod eventlog;
pub mod events;

/// A log layer besides the log file's (on the registry, under the filter).
pub type ExtraLog =
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static>;

/// The service's Event Log writer (source: the service's name); none off
/// Windows, or when the Event Log cannot be opened (the log file says so).
pub fn event_log(name: &str, log_file: &std::path::Path) -> Option<ExtraLog> {
    #[cfg(windows)]
    {
        eventlog::event_log(name, log_file)
    }
    #[cfg(not(windows))]
    {
        let _ = (name, log_file);
        None
    }
}
#[cfg(windows)]
mod scm;
#[cfg(windows)]
use scm as imp;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("mailhost").chain(args.iter().copied()))
    }

    #[test]
    fn the_service_runs_serve_with_absolute_paths_and_the_same_options() {
        let c = cli(&[
            "--config",
            "conf/mailhost.toml",
            "--plugins",
            "plugins",
            "-v",
            "service",
            "install",
            "--name",
            "mh-acme",
            "--bind",
            "127.0.0.1:9025",
            "--no-workers",
        ]);
        let crate::cli::Command::Service {
            command: ServiceCommand::Install(a),
        } = &c.command
        else {
            panic!("{:?}", c.command);
        };
        let (config, log) = install_paths(&c, a).unwrap();
        assert!(
            config.is_absolute() && config.ends_with("conf/mailhost.toml"),
            "{config:?}"
        );
        assert_eq!(log, config.parent().unwrap().join("mailhost-service.log"));
        let args: Vec<String> = run_arguments(&c, &config, &log, a)
            .unwrap()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let cwd = std::env::current_dir().unwrap();
        let expect = [
            "--config".to_string(),
            config.display().to_string(),
            "--plugins".into(),
            cwd.join("plugins").display().to_string(),
            "-v".into(),
            "service".into(),
            "run".into(),
            "--name".into(),
            "mh-acme".into(),
            "--log".into(),
            log.display().to_string(),
            "--bind".into(),
            "127.0.0.1:9025".into(),
            "--no-workers".into(),
        ];
        assert_eq!(args, expect);
        // What the service manager runs parses back to the same service.
        let back = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let crate::cli::Command::Service {
            command: ServiceCommand::Run(r),
        } = &back.command
        else {
            panic!("{:?}", back.command);
        };
        assert_eq!((r.name.as_str(), r.serve.no_workers), ("mh-acme", true));
        assert_eq!(back.config.as_deref(), Some(config.as_path()));
    }

    #[test]
    fn the_account_is_named_for_the_service_manager_and_a_user_needs_a_password() {
        let none = |_: &str| None;
        let acc = |g: Option<&str>| service_account(g, None, "mh", none);
        assert_eq!(acc(None).unwrap(), Account::LocalSystem);
        assert_eq!(acc(Some("localsystem")).unwrap().name(), None);
        assert_eq!(
            acc(Some("LocalService")).unwrap().name(),
            Some("NT AUTHORITY\\LocalService")
        );
        assert_eq!(
            acc(Some("networkservice")).unwrap().name(),
            Some("NT AUTHORITY\\NetworkService")
        );
        assert_eq!(acc(Some("virtual")).unwrap().name(), Some("NT SERVICE\\mh"));
        assert_eq!(
            acc(Some("CORP\\mailsvc$")).unwrap().name(),
            Some("CORP\\mailsvc$")
        );
        // a user: its password from the named variable, never the command line
        let e = acc(Some("CORP\\mail")).unwrap_err();
        assert!(e.contains("--password-env VAR"), "{e}");
        let e = service_account(Some("CORP\\mail"), Some("PW"), "mh", none).unwrap_err();
        assert!(
            e.contains("--password-env PW: the variable is not set"),
            "{e}"
        );
        let u = service_account(Some("CORP\\mail"), Some("PW"), "mh", |v| {
            (v == "PW").then(|| "s3cret".to_string())
        })
        .unwrap();
        assert_eq!(
            u,
            Account::User {
                name: "CORP\\mail".into(),
                password: "s3cret".into()
            }
        );
        assert!(!format!("{u:?}").contains("s3cret"));
        assert!(acc(Some("bad\nname")).is_err());
        assert!(acc(Some("  ")).is_err());
    }

    #[test]
    fn a_service_beyond_loopback_is_told_about_the_firewall_and_tls() {
        let mut api = crate::server::auth::ApiSettings::default();
        assert!(network_hints("mailhost", None, &api).is_empty());
        assert!(
            network_hints("mailhost", Some("127.0.0.1:8025".parse().unwrap()), &api).is_empty()
        );
        api.bind = Some("0.0.0.0:8443".into());
        let h = network_hints("mh", None, &api);
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(
            h[0].contains("name=\"mailhost (mh)\" dir=in action=allow protocol=TCP localport=8443"),
            "{h:?}"
        );
        assert!(h[1].contains("tls_cert"), "{h:?}");
        api.tls_cert = Some("api.crt".into());
        api.tls_key = Some("api.key".into());
        // --bind wins over the config's
        let h = network_hints("mh", Some("10.0.0.5:9000".parse().unwrap()), &api);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h[0].contains("localport=9000"), "{h:?}");
    }

    #[test]
    fn secrets_from_the_environment_are_named() {
        let text = "[oauth.m365]\nclient_secret = \"env:M365_SECRET\"\n[outbox]\ndatabase = \"env:MAILHOST_OUTBOX_URL\"\npassword = \"env:M365_SECRET\"\n# \"env:not a name\"\nx = \"file:pw\"\n";
        assert_eq!(
            env_references(text),
            vec!["M365_SECRET", "MAILHOST_OUTBOX_URL"]
        );
        assert!(env_references("password = \"literal\"").is_empty());
    }

    #[test]
    fn a_large_log_is_moved_aside_and_one_old_log_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mailhost-service.log");
        std::fs::write(&log, "small").unwrap();
        assert!(!rotate_if_large(&log, 10).unwrap());
        std::fs::write(&log, "a line longer than ten bytes").unwrap();
        assert!(rotate_if_large(&log, 10).unwrap());
        assert!(!log.exists());
        let old = dir.path().join("mailhost-service.log.1");
        assert_eq!(
            std::fs::read_to_string(&old).unwrap(),
            "a line longer than ten bytes"
        );
        std::fs::write(&log, "the next one, also long").unwrap();
        assert!(rotate_if_large(&log, 10).unwrap());
        assert_eq!(
            std::fs::read_to_string(&old).unwrap(),
            "the next one, also long"
        );
        assert!(rotate_if_large(&dir.path().join("none.log"), 10).is_err());
    }

    #[test]
    fn service_names_are_checked_and_other_systems_are_pointed_to_systemd() {
        assert!(check_service_name("mailhost-acme").is_ok());
        for bad in ["", "a/b", "a\\b", "x\u{1b}[31m"] {
            assert!(check_service_name(bad).is_err(), "{bad:?}");
        }
        if !cfg!(windows) {
            let c = cli(&["service", "uninstall"]);
            let crate::cli::Command::Service { command } = &c.command else {
                panic!();
            };
            assert_eq!(service(&c, command), exit::USAGE);
        }
    }
}
