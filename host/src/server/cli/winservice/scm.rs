//! The Windows side of `mailhost service`: the service control manager
//! (install, uninstall) and the service itself (`service run`: standard
//! error to the log file, the dispatcher, Stop/Shutdown as a graceful stop).

use std::ffi::OsString;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use windows_service::service::Service;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType, UserEventCode,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::{install_paths, run_arguments, InstallArgs, RunArgs, ServiceCommand};
use crate::cli::{exit, Cli};
use crate::engine::Engine;

pub(super) fn service(cli: &Cli, cmd: &ServiceCommand) -> u8 {
    match cmd {
        ServiceCommand::Install(a) => install(cli, a),
        ServiceCommand::Uninstall { name } => uninstall(name),
        ServiceCommand::Reload { name } => reload(name),
        ServiceCommand::Run(a) => run(cli, a),
    }
}

/// What a failed service-manager call means and what to do.
fn explain(what: &str, name: &str, e: &windows_service::Error) -> String {
    let code = match e {
        windows_service::Error::Winapi(io) => io.raw_os_error(),
        _ => None,
    };
    let hint = match code {
        Some(5) => " (access denied: run it from a command prompt opened with \"Run as administrator\")".to_string(),
        Some(1073) => format!(" (a service named `{name}` exists: remove it with `mailhost service uninstall --name {name}`, or choose another --name)"),
        Some(1060) => format!(" (no service is named `{name}`; `sc query type= service state= all` lists them)"),
        Some(1063) => " (this command is what the service manager starts; start the service with `sc start NAME`, or run `mailhost serve` in a console)".to_string(),
        _ => String::new(),
    };
    let detail = match e {
        windows_service::Error::Winapi(io) => io.to_string(),
        other => other.to_string(),
    };
    format!("{what}: {detail}{hint}")
}

/// Prints [`explain`]'s message; the exit code for a service manager that
/// refused.
fn failed(what: &str, name: &str, e: &windows_service::Error) -> u8 {
    eprintln!("mailhost: {}", explain(what, name, e));
    exit::UNAVAILABLE
}

fn install(cli: &Cli, a: &InstallArgs) -> u8 {
    let (config, log) = match install_paths(cli, a) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mailhost: {e}");
            return exit::CONFIG;
        }
    };
    // The service must start: check the config now, with its plugins.
    let plugins = crate::cli::load_plugins(cli);
    let settings = match crate::cli::load_settings(cli, &plugins) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let args = match run_arguments(cli, &config, &log, a) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mailhost: {e}");
            return exit::CONFIG;
        }
    };
    let account = match super::service_account(
        a.account.as_deref(),
        a.password_env.as_deref(),
        &a.name,
        |var| std::env::var(var).ok(),
    ) {
        Ok(acc) => acc,
        Err(e) => {
            eprintln!("mailhost: {e}");
            return exit::USAGE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("mailhost: cannot find this executable's path: {e}");
            return exit::UNAVAILABLE;
        }
    };
    let manager = match ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    ) {
        Ok(m) => m,
        Err(e) => {
            return failed("cannot open the service manager", &a.name, &e);
        }
    };
    let info = ServiceInfo {
        name: OsString::from(&a.name),
        display_name: OsString::from(if a.name == super::DEFAULT_NAME {
            "mailhost".to_string()
        } else {
            format!("mailhost ({})", a.name)
        }),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.clone(),
        launch_arguments: args,
        dependencies: vec![],
        account_name: account.name().map(OsString::from),
        account_password: match &account {
            super::Account::User { password, .. } => Some(OsString::from(password)),
            _ => None,
        },
    };
    let svc = match manager.create_service(&info, ServiceAccess::CHANGE_CONFIG) {
        Ok(s) => s,
        Err(e) => {
            return failed("cannot install the service", &a.name, &e);
        }
    };
    let _ = svc.set_description(format!(
        "Sends mail for applications: HTTP API and durable outbox (config {})",
        config.display()
    ));
    // Restarted 10 s after a failure (three times a day at most).
    let restart = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(10),
    };
    let actions = ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart.clone(), restart.clone(), restart]),
    };
    if let Err(e) = svc
        .update_failure_actions(actions)
        .and_then(|()| svc.set_failure_actions_on_non_crash_failures(true))
    {
        eprintln!(
            "mailhost: warning: {}; set \"Recovery\" in the service's properties (services.msc) by hand",
            explain("the service will not be restarted after a failure", &a.name, &e)
        );
    }
    if let Err(e) = super::eventlog::register(&a.name, &exe) {
        eprintln!("mailhost: warning: {e}; the service's events show in Event Viewer without their text formatting (the log file has them all)");
    }
    match account.name() {
        None => println!(
            "installed service `{}` (starts at boot, as LocalSystem; another account with --account, or under \"Log On\" in services.msc)",
            a.name
        ),
        Some(who) => {
            println!("installed service `{}` (starts at boot, as {who})", a.name);
            grant_folders(who, &config, &log);
        }
    }
    println!("  config: {}", config.display());
    println!("  log:    {}", log.display());
    let env = std::fs::read_to_string(&config)
        .map(|t| super::env_references(&t))
        .unwrap_or_default();
    if !env.is_empty() {
        println!(
            "  the config reads secrets from environment variables ({}): the service sees only the system's; set each with `setx /M NAME VALUE` (then restart the service), or use \"file:PATH\" secrets",
            env.join(", ")
        );
    }
    for hint in super::network_hints(&a.name, a.serve.bind, &settings.api) {
        println!("  {hint}");
    }
    println!("start it now with: sc start {}", a.name);
    exit::OK
}

/// The service named `name`, opened for `access`; an error is printed
/// with what to do, and its exit code returned.
fn open_service(name: &str, access: ServiceAccess) -> Result<Service, u8> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|e| failed("cannot open the service manager", name, &e))?;
    manager
        .open_service(name, access)
        .map_err(|e| failed("cannot open the service", name, &e))
}

fn uninstall(name: &str) -> u8 {
    let svc = match open_service(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stopped = |s: &ServiceStatus| s.current_state == ServiceState::Stopped;
    match svc.query_status() {
        Ok(s) if !stopped(&s) => {
            if let Err(e) = svc.stop() {
                return failed("cannot stop the service", name, &e);
            }
            // In-flight sends finish first (the drain deadline, 30 s by default).
            let deadline = Instant::now() + Duration::from_secs(90);
            while !svc.query_status().map(|s| stopped(&s)).unwrap_or(true) {
                if Instant::now() > deadline {
                    eprintln!("mailhost: the service `{name}` did not stop within 90 s; it is marked for removal when it does");
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        _ => {}
    }
    if let Err(e) = svc.delete() {
        return failed("cannot remove the service", name, &e);
    }
    // Its past events stay in the Application log; without the source they
    // show with a note that their description is missing.
    let _ = super::eventlog::deregister(name);
    println!("removed service `{name}` (its config, outbox and log stay where they are)");
    exit::OK
}

/// The control code `service reload` sends (a user-defined one: every
/// service takes those); the service reloads on it and on PARAMCHANGE.
const RELOAD_CODE: u32 = 128;

fn reload(name: &str) -> u8 {
    let svc = match open_service(name, ServiceAccess::USER_DEFINED_CONTROL) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let sent = UserEventCode::from_raw(RELOAD_CODE)
        .map_err(|e| windows_service::Error::ParseValue("control code", e))
        .and_then(|code| svc.notify(code));
    match sent {
        Ok(_) => {
            println!("asked service `{name}` to read its config again; its log says what changed (a config that does not validate changes nothing)");
            exit::OK
        }
        Err(e) => failed("cannot ask the service to reload", name, &e),
    }
}

/// What the service's main function runs: prepared by `run` before the
/// service manager calls it (on a thread of its own).
struct Job {
    name: String,
    engine: Result<Engine, u8>,
    serve: super::ServeArgs,
    drain: Duration,
}

static JOB: Mutex<Option<Job>> = Mutex::new(None);
static EXIT: Mutex<u8> = Mutex::new(exit::OK);

/// Standard error (`eprintln!`, the log, the config check child) goes
/// to the log file: a service has no console.
fn log_to(path: &std::path::Path) -> Result<(), String> {
    use std::os::windows::io::IntoRawHandle;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let handle = windows::Win32::Foundation::HANDLE(file.into_raw_handle());
    // SAFETY: the handle is valid and kept open for the process's life.
    unsafe {
        windows::Win32::System::Console::SetStdHandle(
            windows::Win32::System::Console::STD_ERROR_HANDLE,
            handle,
        )
    }
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// Keeps the log under [`super::LOG_MAX_BYTES`]: checked at start and
/// once a minute.
fn keep_log_small(path: std::path::PathBuf) {
    let check = move || {
        if let Ok(true) = super::rotate_if_large(&path, super::LOG_MAX_BYTES) {
            if let Err(e) = log_to(&path) {
                // Standard error is still the moved file: say so there.
                eprintln!("mailhost: cannot start a new log file {e}");
            }
        }
    };
    check();
    let _ = std::thread::Builder::new()
        .name("log-rotation".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(60));
            check();
        });
}

fn run(cli: &Cli, a: &RunArgs) -> u8 {
    if let Err(e) = log_to(&a.log) {
        eprintln!("mailhost: cannot open the service's log file {e}");
    }
    keep_log_small(a.log.clone());
    // A service starts in the system folder; relative paths in the
    // config (a pickup folder, the outbox) mean the config's folder.
    if let Some(dir) = cli.config.as_deref().and_then(std::path::Path::parent) {
        if let Err(e) = std::env::set_current_dir(dir) {
            eprintln!(
                "mailhost: cannot change to the config's folder {}: {e}",
                dir.display()
            );
        }
    }
    let (plugins, settings) = crate::cli::serve_check::load_for_serve(cli);
    let drain = settings
        .as_ref()
        .map(|s| s.outbox.drain())
        .unwrap_or(Duration::from_secs(30));
    let engine = settings.map(|s| Engine::new(s, plugins));
    if let Ok(mut job) = JOB.lock() {
        *job = Some(Job {
            name: a.name.clone(),
            engine,
            serve: a.serve.clone(),
            drain,
        });
    }
    // Returns when the service has stopped.
    if let Err(e) = service_dispatcher::start(&a.name, ffi_service_main) {
        eprintln!(
            "mailhost: {}",
            explain("cannot run as a service", &a.name, &e)
        );
        return exit::USAGE;
    }
    EXIT.lock().map(|c| *c).unwrap_or(exit::UNAVAILABLE)
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    let code = run_service();
    if let Ok(mut c) = EXIT.lock() {
        *c = code;
    }
}

fn status(state: ServiceState, code: u8, wait: Duration) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP
                | ServiceControlAccept::SHUTDOWN
                | ServiceControlAccept::PARAM_CHANGE
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: if code == 0 {
            ServiceExitCode::Win32(0)
        } else {
            ServiceExitCode::ServiceSpecific(u32::from(code))
        },
        checkpoint: 0,
        wait_hint: wait,
        process_id: None,
    }
}

fn run_service() -> u8 {
    let Some(job) = JOB.lock().ok().and_then(|mut j| j.take()) else {
        return exit::UNAVAILABLE;
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let handle: Arc<OnceLock<ServiceStatusHandle>> = Arc::new(OnceLock::new());
    let stopping = status(
        ServiceState::StopPending,
        0,
        job.drain + Duration::from_secs(10),
    );
    let h = handle.clone();
    let on_control = move |c: ServiceControl| match c {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            if let Some(h) = h.get() {
                let _ = h.set_service_status(stopping.clone());
            }
            tracing::info!("service: the service manager asked it to stop");
            let _ = stop_tx.send(true);
            ServiceControlHandlerResult::NoError
        }
        // `mailhost service reload`, `sc control NAME paramchange`: read the
        // config again, as SIGHUP does.
        ServiceControl::ParamChange => {
            crate::server::reload::request();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::UserEvent(code) if code.to_raw() == RELOAD_CODE => {
            crate::server::reload::request();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let registered = match service_control_handler::register(&job.name, on_control) {
        Ok(r) => r,
        Err(e) => {
            return failed("cannot take the service's controls", &job.name, &e);
        }
    };
    let _ = handle.set(registered);
    let _ = registered.set_service_status(status(
        ServiceState::StartPending,
        0,
        Duration::from_secs(30),
    ));
    let code = match job.engine {
        Ok(engine) => {
            let name = job.name.clone();
            let scheme = if engine.settings().api.tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            let ready: super::super::OnReady = Box::new(move |addr| {
                let _ =
                    registered.set_service_status(status(ServiceState::Running, 0, Duration::ZERO));
                tracing::info!("service `{name}`: running, listening on {scheme}://{addr}");
            });
            super::super::serve_until(engine, &job.serve, stop_rx, Some(ready))
        }
        Err(code) => {
            tracing::error!(
                "service `{}`: not started: the config does not load (exit code {code}); the service's log file says which file, line and column, and `mailhost --config FILE config validate` says the same",
                job.name
            );
            code
        }
    };
    let _ = registered.set_service_status(status(ServiceState::Stopped, code, Duration::ZERO));
    code
}

/// Gives `who` modify rights on the config's folder (the outbox, secrets
/// saved by the admin page) and the log's, with icacls; when that fails,
/// prints the command for an administrator.
fn grant_folders(who: &str, config: &std::path::Path, log: &std::path::Path) {
    let mut dirs: Vec<&std::path::Path> = Vec::new();
    for d in [config.parent(), log.parent()].into_iter().flatten() {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    for dir in dirs {
        let grant = format!("{who}:(OI)(CI)M");
        let ran = std::process::Command::new("icacls")
            .arg(dir)
            .args(["/grant", &grant])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match ran {
            Ok(s) if s.success() => println!("  {who} may now change files in {}", dir.display()),
            _ => println!(
                "  warning: could not give {who} modify rights on {}; the service needs them for its outbox and log: icacls \"{}\" /grant \"{grant}\"",
                dir.display(),
                dir.display()
            ),
        }
    }
}
