//! The `mailhost` command line.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mailhost_plugin_api::{ErrorClass, OutgoingMessage, StepOutcome};

use crate::config::{self, Settings};
use crate::engine::{Engine, Failure};
use crate::loader::{self, PluginSet};
use crate::message::{self, AttachmentRequest, MessageRequest};
use crate::policy::{Action, Request};

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
  mailhost --config /etc/mailhost/mailhost.toml send --user alice --tenant acme --to a@example.com --subject Hi --text Hi
  mailhost check office --to admin@example.com
  mailhost policy explain --user alice --action compose
  mailhost plugins

Config: --config FILE, else $MAILHOST_CONFIG, else ./mailhost.toml, else the embedded default
(pickup into ./outbox). Plugins: --plugins DIR (repeatable), else $MAILHOST_PLUGIN_PATH, then the
executable's directory and plugins/ beside it.

Exit codes: 0 ok, 64 usage, 65 bad message, 69 refused/unavailable, 75 transient (retry later),
76 permanent, 77 auth, 78 config.";

#[derive(Debug, Parser)]
#[command(name = "mailhost", version, about = "Send mail through transport plugins: SMTP, Microsoft 365, Outlook, MAPI, pickup...", after_help = AFTER_HELP)]
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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a message through the policy's chain.
    Send(MessageArgs),
    /// Open or save a message for the user to finish (draft, dialog, web link).
    Compose(MessageArgs),
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
    /// Run the service: the HTTP API and the workers that drain the outbox.
    Serve(crate::server::cli::ServeArgs),
    /// The durable outbox of the service: list, show, retry, cancel.
    Outbox {
        #[command(subcommand)]
        command: crate::server::cli::OutboxCommand,
    },
    /// Make an API token for `serve` and print its [api.tokens] lines.
    ApiToken(crate::server::cli::ApiTokenArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the config file; every mistake with file:line:col.
    Validate,
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
}

pub(crate) fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("mailhost: cannot print JSON: {e}"),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Entry point of the binary.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_logging(cli.verbose);
    ExitCode::from(dispatch(&cli))
}

fn load_plugins(cli: &Cli) -> PluginSet {
    loader::load_dirs(&loader::search_path(&cli.plugins))
}

pub(crate) fn load_settings(cli: &Cli, plugins: &PluginSet) -> Result<Settings, u8> {
    let path = config::locate(cli.config.as_deref());
    match config::load(path.as_deref(), plugins) {
        Ok(s) => {
            for w in &s.warnings {
                eprintln!("mailhost: warning: {w}");
            }
            Ok(s)
        }
        Err(errors) => {
            eprintln!("mailhost: the configuration is invalid:\n{errors}");
            if !plugins.failures.is_empty() {
                eprintln!("(some plugins did not load; run `mailhost plugins`)");
            }
            Err(exit::CONFIG)
        }
    }
}

fn dispatch(cli: &Cli) -> u8 {
    let plugins = load_plugins(cli);
    match &cli.command {
        Command::Plugins {
            settings: Some(name),
        } => cmd_plugin_settings(cli, &plugins, name),
        Command::Plugins { settings: None } => cmd_plugins(cli, &plugins),
        // The service (crate::server::cli).
        Command::ApiToken(a) => crate::server::cli::api_token(a),
        Command::Outbox { command } => match load_settings(cli, &plugins) {
            Ok(s) => crate::server::cli::outbox(&s, command, cli.json),
            Err(code) => code,
        },
        Command::Serve(a) => match load_settings(cli, &plugins) {
            Ok(s) => crate::server::cli::serve(Engine::new(s, plugins), a),
            Err(code) => code,
        },
        Command::Config {
            command: ConfigCommand::Validate,
        } => match load_settings(cli, &plugins) {
            Ok(s) => {
                if cli.json {
                    print_json(
                        &serde_json::json!({"valid": true, "source": s.source, "accounts": s.accounts.keys().collect::<Vec<_>>(), "warnings": s.warnings}),
                    );
                } else {
                    println!(
                        "{}: valid ({} account(s), {} warning(s))",
                        s.source,
                        s.accounts.len(),
                        s.warnings.len()
                    );
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
                Command::Send(a) => cmd_message(cli, &engine, a, Action::Send),
                Command::Compose(a) => cmd_message(cli, &engine, a, Action::Compose),
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
                    let d = engine.decide(*action, &req);
                    if cli.json {
                        print_json(&d);
                    } else {
                        print!("{}", d.render());
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
                | Command::Outbox { .. }
                | Command::ApiToken(_) => exit::OK,
            };
            engine.close();
            code
        }
    }
}

/// The settings a plugin takes, from its JSON Schema: key, type, default, meaning.
fn cmd_plugin_settings(cli: &Cli, plugins: &PluginSet, name: &str) -> u8 {
    let Some(p) = plugins.get(name) else {
        eprintln!(
            "mailhost: no plugin named `{name}` is loaded (loaded: {}); run `mailhost plugins`",
            plugins.names().join(", ")
        );
        return exit::CONFIG;
    };
    let schema: serde_json::Value =
        serde_json::from_str(p.manifest().settings_schema.as_str()).unwrap_or_default();
    if cli.json {
        print_json(&schema);
        return exit::OK;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    println!(
        "[accounts.NAME] keys for plugin `{name}` (besides the host's: {}):",
        config::HOST_ACCOUNT_KEYS.join(", ")
    );
    print_properties(&schema, &required, "");
    exit::OK
}

fn print_properties(schema: &serde_json::Value, required: &[&str], prefix: &str) {
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    for (k, v) in props {
        let kind = match (v.get("enum"), v.get("type")) {
            (Some(e), _) => e
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(" | ")
                })
                .unwrap_or_default(),
            (None, Some(t)) => t.as_str().unwrap_or("").to_string(),
            _ => String::new(),
        };
        let default = v
            .get("default")
            .map(|d| format!(" (default {d})"))
            .unwrap_or_default();
        let req = if required.contains(&k.as_str()) {
            " REQUIRED"
        } else {
            ""
        };
        let desc = v.get("description").and_then(|d| d.as_str()).unwrap_or("");
        println!("  {prefix}{k}: {kind}{default}{req}\n      {desc}");
        if v.get("properties").is_some() {
            let r: Vec<&str> = v
                .get("required")
                .and_then(|r| r.as_array())
                .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            print_properties(v, &r, &format!("{prefix}{k}."));
        }
    }
}

fn cmd_plugins(cli: &Cli, plugins: &PluginSet) -> u8 {
    if cli.json {
        let loaded: Vec<_> = plugins
            .plugins
            .iter()
            .map(|p| {
                let m = p.manifest();
                serde_json::json!({"name": m.name.as_str(), "version": m.version.as_str(), "api_version": m.api_version.as_str(), "modes": m.modes.iter().map(|x| x.as_str()).collect::<Vec<_>>(), "capabilities": m.capabilities.names(), "description": m.description.as_str(), "path": p.path()})
            })
            .collect();
        let failed: Vec<_> = plugins
            .failures
            .iter()
            .map(|f| serde_json::json!({"path": f.path, "kind": f.kind.name(), "reason": f.reason}))
            .collect();
        print_json(
            &serde_json::json!({"searched": plugins.searched, "loaded": loaded, "failed": failed}),
        );
    } else {
        println!(
            "searched: {}",
            plugins
                .searched
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        if plugins.plugins.is_empty() {
            println!("no plugin loaded");
        }
        for p in &plugins.plugins {
            let m = p.manifest();
            println!(
                "{:<10} {:<8} modes: {:<24} {} — {}\n           {}",
                m.name.as_str(),
                m.version.as_str(),
                m.modes
                    .iter()
                    .map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                m.capabilities.names().join("|"),
                m.description.as_str(),
                p.path().display()
            );
        }
        for f in &plugins.failures {
            println!(
                "FAILED {}\n  {}: {}",
                f.path.display(),
                f.kind.name(),
                f.reason.replace('\n', "\n  ")
            );
        }
    }
    if plugins.failures.is_empty() {
        exit::OK
    } else {
        exit::CONFIG
    }
}

fn read_path_or_stdin(p: &PathBuf) -> std::io::Result<Vec<u8>> {
    if p.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(p)
    }
}

/// Builds the message; `eml` holds the bytes of `--eml` (read once: it may be standard input).
fn build_message(
    a: &MessageArgs,
    eml: Option<&[u8]>,
    default_from: Option<&str>,
    system_info: Option<String>,
) -> Result<OutgoingMessage, String> {
    let options: serde_json::Map<String, serde_json::Value> = match &a.options {
        Some(o) => {
            serde_json::from_str(o).map_err(|e| format!("--options is not a JSON object: {e}"))?
        }
        None => serde_json::Map::new(),
    };
    if let Some(raw) = eml {
        return message::from_eml(raw, a.envelope_from.as_deref(), &a.to, options)
            .map_err(|e| e.to_string());
    }
    let read = |p: &Option<PathBuf>| -> Result<Option<String>, String> {
        p.as_ref()
            .map(|p| {
                std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            })
            .transpose()
    };
    let mut headers = Vec::new();
    for h in &a.header {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header `{h}` is not `Name: value`"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let req = MessageRequest {
        from: a.from.clone(),
        reply_to: a.reply_to.clone(),
        to: a.to.clone(),
        cc: a.cc.clone(),
        bcc: a.bcc.clone(),
        subject: a.subject.clone(),
        text: a.text.clone().or(read(&a.text_file)?),
        html: a.html.clone().or(read(&a.html_file)?),
        attachments: a
            .attach
            .iter()
            .map(|p| AttachmentRequest {
                path: Some(p.clone()),
                ..Default::default()
            })
            .chain(system_info.map(|text| AttachmentRequest {
                filename: Some("system-info.txt".into()),
                media_type: Some("text/plain".into()),
                data: Some(text.into_bytes()),
                ..Default::default()
            }))
            .collect(),
        headers,
        envelope_from: a.envelope_from.clone(),
        idempotency_key: None,
        options,
    };
    message::build(&req, default_from).map_err(|e| e.to_string())
}

fn class_code(f: &Failure) -> u8 {
    match f.class() {
        None => exit::UNAVAILABLE,
        Some(c) => match c {
            ErrorClass::TRANSIENT => exit::TRANSIENT,
            ErrorClass::AUTH => exit::AUTH,
            ErrorClass::CONFIG => exit::CONFIG,
            ErrorClass::UNAVAILABLE | ErrorClass::UNSUPPORTED => exit::UNAVAILABLE,
            _ => exit::PERMANENT,
        },
    }
}

/// A message that could not be built: say why, exit 65.
fn not_sent(e: &str) -> u8 {
    eprintln!("mailhost: the message was not sent: {e}");
    exit::DATA
}

fn cmd_message(cli: &Cli, engine: &Engine, a: &MessageArgs, action: Action) -> u8 {
    let eml = match &a.eml {
        Some(p) => match read_path_or_stdin(p) {
            Ok(raw) => Some(raw),
            Err(e) => {
                eprintln!(
                    "mailhost: the message was not sent: cannot read {}: {e}",
                    p.display()
                );
                return exit::DATA;
            }
        },
        None => None,
    };
    // An --eml message is complete as read (no defaults apply): parse it once,
    // before the policy, whose purpose rules need its recipients.
    let from_file = match eml
        .as_deref()
        .map(|raw| build_message(a, Some(raw), None, None))
        .transpose()
    {
        Ok(m) => m,
        Err(e) => return not_sent(&e),
    };
    let recipients: Vec<String> = match &from_file {
        Some(m) => m.envelope.to.iter().map(|s| s.to_string()).collect(),
        None => a.to.iter().chain(&a.cc).chain(&a.bcc).cloned().collect(),
    };
    let req = Request {
        user: a.user.clone(),
        tenant: a.tenant.clone(),
        purpose: a.purpose.clone(),
        mode: a.mode.clone(),
        from: a.from.clone(),
        recipients,
    };
    let decision = engine.decide(action, &req);
    if let Some(r) = &decision.refused {
        eprintln!(
            "mailhost: not {}: refused by {}: {}",
            if action == Action::Send {
                "sent"
            } else {
                "composed"
            },
            r.rule,
            r.message
        );
        eprintln!("(run `mailhost policy explain` for the whole trace)");
        return exit::UNAVAILABLE;
    }
    let account_from = decision
        .chain
        .iter()
        .find_map(|c| c.account.as_ref())
        .and_then(|acc| engine.settings().accounts.get(acc))
        .and_then(|acc| acc.from.clone());
    let default_from = decision.default_from.clone().or(account_from);
    let mut args = a.clone();
    if eml.is_none() && args.to.is_empty() && args.cc.is_empty() && args.bcc.is_empty() {
        args.to = decision.default_to.clone();
    }
    let msg = match from_file {
        Some(m) => m,
        None => {
            let system_info = decision.attach_system_info.then(|| engine.system_info());
            match build_message(&args, None, default_from.as_deref(), system_info) {
                Ok(m) => m,
                Err(e) => return not_sent(&e),
            }
        }
    };
    match action {
        Action::Send => match engine.send(&decision, a.user.as_deref(), &msg) {
            Ok(d) => {
                if cli.json {
                    print_json(&d);
                } else {
                    println!(
                        "sent {} via {}: {}",
                        d.message_id, d.candidate.label, d.server_reply
                    );
                    for (addr, why) in &d.rejected {
                        println!("  rejected {addr}: {why}");
                    }
                }
                exit::OK
            }
            Err(f) => {
                if cli.json {
                    print_json(&f);
                }
                eprintln!("mailhost: not sent: {f}");
                class_code(&f)
            }
        },
        Action::Compose => match engine.compose(&decision, a.user.as_deref(), &msg) {
            Ok(c) => {
                if cli.json {
                    print_json(&c);
                } else {
                    println!("{} via {}: {}", c.kind, c.candidate.label, c.message);
                    if !c.web_link.is_empty() {
                        println!("open: {}", c.web_link);
                    }
                }
                exit::OK
            }
            Err(f) => {
                if cli.json {
                    print_json(&f);
                }
                eprintln!("mailhost: not composed: {f}");
                class_code(&f)
            }
        },
    }
}

fn cmd_check(cli: &Cli, engine: &Engine, account: &str, to: Option<&str>) -> u8 {
    let opts = match to {
        Some(t) => serde_json::json!({ "test_recipient": t }).to_string(),
        None => "{}".to_string(),
    };
    match engine.check(account, &opts) {
        Ok(report) => {
            if cli.json {
                let steps: Vec<_> = report.steps.iter().map(|s| serde_json::json!({"name": s.name.as_str(), "outcome": s.outcome.name(), "detail": s.detail.as_str(), "server_text": s.server_text.as_str(), "duration_ms": s.duration_ms})).collect();
                print_json(
                    &serde_json::json!({"account": account, "ok": report.ok(), "steps": steps}),
                );
            } else {
                for s in report.steps.iter() {
                    let mark = match s.outcome {
                        StepOutcome::OK => "ok  ",
                        StepOutcome::WARNING => "warn",
                        StepOutcome::SKIPPED => "skip",
                        _ => "FAIL",
                    };
                    println!(
                        "[{mark}] {:<12} {} ({} ms)",
                        s.name.as_str(),
                        s.detail.as_str(),
                        s.duration_ms
                    );
                    if !s.server_text.is_empty() {
                        println!(
                            "       server: {}",
                            s.server_text
                                .as_str()
                                .trim_end()
                                .replace('\n', "\n               ")
                        );
                    }
                }
                println!(
                    "{}",
                    if report.ok() {
                        "check passed"
                    } else {
                        "check FAILED"
                    }
                );
            }
            if report.ok() {
                exit::OK
            } else {
                exit::UNAVAILABLE
            }
        }
        Err(e) => {
            eprintln!("mailhost: check of `{account}` failed: {e}");
            match e.class() {
                ErrorClass::CONFIG => exit::CONFIG,
                ErrorClass::AUTH => exit::AUTH,
                ErrorClass::TRANSIENT => exit::TRANSIENT,
                _ => exit::UNAVAILABLE,
            }
        }
    }
}

fn cmd_status(cli: &Cli, engine: &Engine) -> u8 {
    let s = engine.settings();
    let accounts = engine.status();
    let world = engine.world();
    if cli.json {
        print_json(&serde_json::json!({
            "config": s.source,
            "sending_enabled": s.policy.enabled,
            "accounts": accounts,
            "probes": world.probes,
            "warnings": s.warnings.iter().map(|w| w.to_string()).chain(engine.startup_warnings.iter().cloned()).collect::<Vec<_>>(),
            "plugin_failures": engine.plugins().failures.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        }));
    } else {
        println!("config:  {}", s.source);
        println!(
            "sending: {}",
            if s.policy.enabled {
                "enabled".to_string()
            } else {
                format!(
                    "DISABLED by the kill switch (policy.enabled = false at {})",
                    s.policy.loc_of("enabled")
                )
            }
        );
        println!("accounts:");
        for a in &accounts {
            let limit = a
                .max_per_minute
                .map(|m| format!(", {}/{m} per minute", a.sent_last_minute))
                .unwrap_or_default();
            println!(
                "  {:<16} {:<8} {}{}",
                a.account,
                a.plugin,
                a.state_text(),
                limit
            );
        }
        println!("plugins:");
        for (name, p) in &world.probes {
            println!(
                "  {:<16} {}",
                name,
                if p.available {
                    format!("available {}", p.level)
                } else {
                    format!("unavailable: {}", p.reason)
                }
            );
        }
        for f in &engine.plugins().failures {
            println!("  FAILED {f}");
        }
    }
    exit::OK
}
