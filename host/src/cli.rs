//! The `mailhost` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mailhost_plugin_api::StepOutcome;

use crate::config::{self, Settings};
use crate::engine::{Attempt, Engine, FailureClass};
use crate::limits::{self, ReadError};
use crate::loader::{self, PluginSet};
use crate::message::{AttachmentRequest, MessageRequest};
use crate::policy::{Action, Request};
use crate::submit::{Content, Outcome, Submission, SubmitError};

use account::{cmd_check, cmd_status};
use message::cmd_message;

/// `println!` that ignores a closed stdout: once the work is done, a caller
/// that stopped reading must not turn success into a failure (or a panic).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

/// `print!` that ignores a closed stdout (see `outln!`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        let _ = write!(o, $($t)*);
        let _ = o.flush();
    }};
}
pub(crate) use {errln, out, outln};

mod account;
mod logging;
pub use logging::LogFormat;
mod message;
mod plugins;
pub(crate) mod serve_check;

/// Exit codes (sysexits.h), so scripts can tell failures apart.
pub mod exit {
    pub const OK: u8 = 0;
    /// Bad command line.
    pub const USAGE: u8 = 64;
    /// The message is invalid (bad address, header injection, unreadable file).
    pub const DATA: u8 = 65;
    /// Policy refused, or no transport available (kill switch, purpose rules).
    pub const UNAVAILABLE: u8 = 69;
    /// A temporary failure: try again later.
    pub const TRANSIENT: u8 = 75;
    /// The server refused for good.
    pub const PERMANENT: u8 = 76;
    /// Credentials were refused.
    pub const AUTH: u8 = 77;
    /// The configuration (or a plugin it needs) is invalid.
    pub const CONFIG: u8 = 78;
}

const AFTER_HELP: &str = "\
Examples:
  mailhost send --to you@example.com --subject Hello --text 'It works'
  mailhost send --eml invoice.eml
  mailhost send-batch customers.csv --subject 'Invoice {{ number }}' --text-file invoice.txt --rate 120
  mailhost --config /etc/mailhost/mailhost.toml send --user alice --tenant acme --to a@example.com --subject Hi --text Hi
  mailhost check office --to admin@example.com
  mailhost policy explain --user alice --action compose
  mailhost plugins
  mailhost discover jo@example.com

Config: --config FILE, else $MAILHOST_CONFIG, else ./mailhost.toml, else the embedded default
(pickup into ./outbox). Plugins: --plugins DIR (repeatable), else $MAILHOST_PLUGIN_PATH, then the
executable's directory and plugins/ beside it.

Exit codes: 0 ok, 64 usage, 65 bad message, 69 refused/unavailable, 75 transient (retry later),
76 permanent, 77 auth, 78 config.";

#[derive(Debug, Parser)]
#[command(name = "mailhost", version, about = "Send mail through transport plugins loaded at run time (SMTP, Microsoft 365, pickup, or your own)", after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file (TOML).
    #[arg(long, global = true, env = "MAILHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Plugin directory; repeat for several. Replaces the default search path.
    #[arg(long = "plugins", global = true)]
    pub plugins: Vec<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log lines as text, or as JSON objects one per line (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "MAILHOST_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a message through the policy's chain.
    Send(MessageArgs),
    /// Open or save a message for the user to finish (draft, dialog, web link).
    Compose(ComposeArgs),
    /// Test an account's settings step by step ("Test settings").
    Check {
        /// The account (an [accounts.NAME] section).
        account: String,
        /// Also send a test mail to this address.
        #[arg(long)]
        to: Option<String>,
    },
    /// Every account's connection state, the kill switch and the plugins' probes.
    Status,
    /// The plugins found on the search path, and why any did not load.
    Plugins {
        /// Print the account settings a plugin takes (from its JSON Schema).
        #[arg(long, value_name = "PLUGIN")]
        settings: Option<String>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Policy commands.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Send many messages: a template and a JSON Lines or CSV file of rows, or a folder of .eml files.
    SendBatch(crate::batch::cli::SendBatchArgs),
    /// Run the service: the HTTP API and the workers that drain the outbox.
    Serve(crate::server::cli::ServeArgs),
    /// Install `serve` as a Windows service (or remove it).
    Service {
        #[command(subcommand)]
        command: crate::server::cli::ServiceCommand,
    },
    /// The durable outbox of the service: list, show, retry, cancel.
    Outbox {
        #[command(subcommand)]
        command: crate::server::cli::OutboxCommand,
    },
    /// Make an API token for `serve` and print its [api.tokens] lines.
    ApiToken(crate::server::cli::ApiTokenArgs),
    /// Plugin author commands: `plugin new NAME` writes a plugin crate.
    Plugin(crate::scaffold::PluginArgs),
    /// Find the submission (and IMAP) servers for an address and print an [accounts.NAME] block.
    Discover(crate::discover::DiscoverArgs),
    /// Loads the plugins and the config, which checks and remembers what this
    /// host had not found valid before, prints nothing and exits (0 valid, 78
    /// not): `serve` runs it as a short-lived child (see `load_for_serve`).
    #[command(name = serve_check::CHECK_FOR_SERVE, hide = true)]
    CheckForServe,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config file; every mistake with file:line:col.
    Validate,
    /// Write the embedded default config to a file to start from (`--config`,
    /// else $MAILHOST_CONFIG, else ./mailhost.toml); never overwrites.
    Init,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Explain how a request would go out: each rule, what it saw, what it chose.
    Explain {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value = "send")]
        action: Action,
        #[arg(long)]
        purpose: Option<String>,
        /// A mode the user picks for this request.
        #[arg(long)]
        mode: Option<String>,
        /// Recipients, for purpose rules.
        #[arg(long)]
        to: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ComposeArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// Open the draft's web link with the desktop's default browser (xdg-open, open, start).
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Clone, Args)]
pub struct MessageArgs {
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Vec<String>,
    #[arg(long)]
    pub cc: Vec<String>,
    #[arg(long)]
    pub bcc: Vec<String>,
    #[arg(long = "reply-to")]
    pub reply_to: Vec<String>,
    #[arg(long, default_value = "")]
    pub subject: String,
    /// Plain-text body.
    #[arg(long)]
    pub text: Option<String>,
    /// Plain-text body from a file.
    #[arg(long, conflicts_with = "text")]
    pub text_file: Option<PathBuf>,
    /// HTML body.
    #[arg(long)]
    pub html: Option<String>,
    /// HTML body from a file.
    #[arg(long, conflicts_with = "html")]
    pub html_file: Option<PathBuf>,
    /// Attach a file; repeat for several.
    #[arg(long)]
    pub attach: Vec<PathBuf>,
    /// Extra header `Name: value`; repeat for several.
    #[arg(long)]
    pub header: Vec<String>,
    /// Send a complete message from a file (`-` for standard input) instead of building one.
    #[arg(long, conflicts_with_all = ["subject", "text", "html", "text_file", "html_file", "attach", "header", "cc", "bcc", "reply_to"])]
    pub eml: Option<PathBuf>,
    /// MAIL FROM, when it must differ from From.
    #[arg(long)]
    pub envelope_from: Option<String>,
    /// The user sending (per-user modes and credentials).
    #[arg(long)]
    pub user: Option<String>,
    /// The tenant (client) sending.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The purpose (notification, support...).
    #[arg(long)]
    pub purpose: Option<String>,
    /// A mode or account chosen for this request (if the policy allows user selection).
    #[arg(long)]
    pub mode: Option<String>,
    /// Per-request transport options as a JSON object (e.g. '{"dsn":{"notify":["failure"]}}').
    #[arg(long)]
    pub options: Option<String>,
    /// Do not send now: store the message durably in the outbox (`[outbox]` in the config) for `mailhost serve` to send.
    #[arg(long)]
    pub queue: bool,
    /// With --queue: the caller's key for this message (an invoice number); the
    /// same key again queues nothing and prints the first message's id.
    #[arg(long, requires = "queue")]
    pub idempotency_key: Option<String>,
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => outln!("{s}"),
        Err(e) => errln!("mailhost: cannot print JSON: {e}"),
    }
}

/// Entry point of the binary.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // `--json` asked for JSON: a usage error is reported as JSON too.
            if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                let message = e.kind().to_string();
                print_json(
                    &serde_json::json!({"error": {"code": "usage", "exit_code": exit::USAGE, "message": message}}),
                );
            }
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let (serving, extra) = match &cli.command {
        Command::Serve(_) => (true, None),
        Command::Service {
            command: crate::server::cli::ServiceCommand::Run(a),
        } => (
            true,
            crate::server::cli::winservice::event_log(&a.name, &a.log),
        ),
        _ => (false, None),
    };
    logging::init(cli.verbose, cli.log_format, serving, extra);
    ExitCode::from(dispatch(&cli))
}

pub(crate) fn load_plugins(cli: &Cli) -> PluginSet {
    loader::load_dirs(&loader::search_path(&cli.plugins))
}

pub(crate) fn load_settings(cli: &Cli, plugins: &PluginSet) -> Result<Settings, u8> {
    report_settings(cli, plugins, read_settings(cli, plugins))
}

fn read_settings(cli: &Cli, plugins: &PluginSet) -> Result<Settings, config::ConfigErrors> {
    let path = config::locate(cli.config.as_deref());
    config::load(path.as_deref(), plugins)
}

/// Prints the config's warnings, or its errors (then the exit code).
fn report_settings(
    cli: &Cli,
    plugins: &PluginSet,
    loaded: Result<Settings, config::ConfigErrors>,
) -> Result<Settings, u8> {
    match loaded {
        Ok(s) => {
            for w in &s.warnings {
                errln!("mailhost: warning: {w}");
            }
            Ok(s)
        }
        Err(errors) => {
            let hint = if plugins.failures.is_empty() {
                ""
            } else {
                "\n(some plugins did not load; run `mailhost plugins`)"
            };
            Err(fail(
                cli,
                exit::CONFIG,
                "config",
                &format!("the configuration is invalid:\n{errors}{hint}"),
                None,
            ))
        }
    }
}

/// `mailhost config init`: the embedded default as a file to edit, with a
/// header that says where it came from (mode 0600: it will hold token hashes
/// and secret references).
fn config_init(cli: &Cli) -> u8 {
    let path = config::named(cli.config.as_deref()).unwrap_or_else(|| "mailhost.toml".into());
    let shown = path.display();
    if path.exists() {
        return fail(
            cli,
            exit::USAGE,
            "usage",
            &format!("{shown} exists; nothing was written (remove it first, or name another file with --config)"),
            None,
        );
    }
    let text = config::init_text();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(dir) {
            let e = format!(
                "cannot make the folder {}: {e}; nothing was written",
                dir.display()
            );
            return fail(cli, exit::CONFIG, "config", &e, None);
        }
    }
    if let Err(e) = crate::server::admin::edit::write_private(&path, &text) {
        return fail(
            cli,
            exit::CONFIG,
            "config",
            &format!("{e}; nothing was written"),
            None,
        );
    }
    if cli.json {
        print_json(&serde_json::json!({"written": shown.to_string()}));
    } else {
        outln!("{shown}: written (one pickup account writing .eml files into ./outbox beside it); edit it, then `mailhost config validate`");
    }
    exit::OK
}

fn dispatch(cli: &Cli) -> u8 {
    if let Command::Plugin(a) = &cli.command {
        return plugins::cmd_plugin(cli, a);
    }
    if let Command::Discover(a) = &cli.command {
        // needs neither plugins nor a config
        return crate::discover::cmd(a, cli.json);
    }
    if let Command::Config {
        command: ConfigCommand::Init,
    } = &cli.command
    {
        // needs neither plugins nor a config that loads
        return config_init(cli);
    }
    if let Command::CheckForServe = &cli.command {
        return serve_check::check_for_serve(cli);
    }
    if let Command::Serve(a) = &cli.command {
        let (plugins, settings) = serve_check::load_for_serve(cli);
        return match settings {
            Ok(s) => crate::server::cli::serve(Engine::new(s, plugins), a),
            Err(code) => code,
        };
    }
    if let Command::Service { command } = &cli.command {
        return crate::server::cli::service(cli, command);
    }
    let plugins = load_plugins(cli);
    match &cli.command {
        Command::Plugins {
            settings: Some(name),
        } => plugins::cmd_plugin_settings(cli, &plugins, name),
        Command::Plugins { settings: None } => plugins::cmd_plugins(cli, &plugins),
        // The service (crate::server::cli).
        Command::ApiToken(a) => {
            crate::server::cli::api_token(cli.config.as_deref(), &plugins, a, cli.json)
        }
        Command::Outbox { command } => match load_settings(cli, &plugins) {
            Ok(s) => crate::server::cli::outbox(&s, command, cli.json),
            Err(code) => code,
        },
        Command::SendBatch(a) => match load_settings(cli, &plugins) {
            Ok(s) => crate::batch::cli::send_batch(Engine::new(s, plugins), a, cli.json),
            Err(code) => code,
        },
        Command::Config {
            command: ConfigCommand::Validate,
        } => match load_settings(cli, &plugins) {
            Ok(s) => {
                // accounts with a preset: what it filled
                let presets: serde_json::Map<String, serde_json::Value> = s
                    .accounts
                    .values()
                    .filter_map(|a| {
                        let p = a.preset.as_ref()?;
                        Some((a.name.clone(), serde_json::to_value(p).ok()?))
                    })
                    .collect();
                if cli.json {
                    print_json(
                        &serde_json::json!({"valid": true, "source": s.source, "accounts": s.accounts.keys().collect::<Vec<_>>(), "presets": presets, "warnings": s.warnings}),
                    );
                } else {
                    outln!(
                        "{}: valid ({} account(s), {} warning(s))",
                        s.source,
                        s.accounts.len(),
                        s.warnings.len()
                    );
                    for a in s.accounts.values() {
                        if let Some(p) = &a.preset {
                            outln!("  account `{}`: {}", a.name, p.describe());
                        }
                    }
                }
                exit::OK
            }
            Err(code) => code,
        },
        _ => {
            let settings = match load_settings(cli, &plugins) {
                Ok(s) => s,
                Err(code) => return code,
            };
            // Engine start-up warnings repeat config warnings already printed; `status` shows them.
            let engine = Engine::new(settings, plugins);
            let code = match &cli.command {
                Command::Send(a) => cmd_message(cli, &engine, a, Action::Send, false),
                Command::Compose(a) => {
                    cmd_message(cli, &engine, &a.message, Action::Compose, a.open)
                }
                Command::Check { account, to } => cmd_check(cli, &engine, account, to.as_deref()),
                Command::Status => cmd_status(cli, &engine),
                Command::Policy {
                    command:
                        PolicyCommand::Explain {
                            user,
                            tenant,
                            action,
                            purpose,
                            mode,
                            to,
                        },
                } => {
                    let req = Request {
                        user: user.clone(),
                        tenant: tenant.clone(),
                        purpose: purpose.clone(),
                        mode: mode.clone(),
                        from: None,
                        recipients: to.clone(),
                    };
                    if let Err(e) = crate::submit::check_explain(&req) {
                        engine.close();
                        return fail(cli, exit::USAGE, "usage", &e.to_string(), None);
                    }
                    let d = engine.decide(*action, &req);
                    if cli.json {
                        print_json(&d);
                    } else {
                        out!("{}", d.render());
                        // the settings a preset filled, for the accounts in the chain
                        for c in &d.chain {
                            let account = c
                                .account
                                .as_ref()
                                .and_then(|n| engine.settings().accounts.get(n));
                            if let Some((a, p)) =
                                account.and_then(|a| Some((a, a.preset.as_ref()?)))
                            {
                                outln!("  {}: {}", a.name, p.describe());
                            }
                        }
                    }
                    if d.refused.is_some() {
                        exit::UNAVAILABLE
                    } else {
                        exit::OK
                    }
                }
                Command::Plugins { .. }
                | Command::Config { .. }
                | Command::Serve(_)
                | Command::Service { .. }
                | Command::SendBatch(_)
                | Command::Outbox { .. }
                | Command::ApiToken(_)
                | Command::Plugin(_)
                | Command::Discover(_)
                | Command::CheckForServe => exit::OK,
            };
            engine.close();
            code
        }
    }
}

/// The one map from a failure's class to the exit code (sysexits.h);
/// `None` is an invalid request or message.
pub fn exit_code(class: Option<FailureClass>) -> u8 {
    match class {
        None => exit::DATA,
        Some(FailureClass::Refused)
        | Some(FailureClass::Unavailable)
        | Some(FailureClass::Unsupported) => exit::UNAVAILABLE,
        Some(FailureClass::Transient) => exit::TRANSIENT,
        Some(FailureClass::Auth) => exit::AUTH,
        Some(FailureClass::Config) => exit::CONFIG,
        Some(FailureClass::Permanent) => exit::PERMANENT,
    }
}

/// Reports an error: a line on stderr, and with `--json` the same as a JSON
/// object on stdout. Returns the exit code.
fn fail(cli: &Cli, code: u8, kind: &str, message: &str, attempts: Option<&[Attempt]>) -> u8 {
    errln!("mailhost: {message}");
    if cli.json {
        let mut v =
            serde_json::json!({"error": {"code": kind, "exit_code": code, "message": message}});
        if let Some(a) = attempts {
            v["attempts"] = serde_json::to_value(a).unwrap_or_default();
        }
        print_json(&v);
    }
    code
}
