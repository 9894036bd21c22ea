//! `check()`: the "Test settings" button, step by step with the server's words:
//! settings, connect, greeting, STARTTLS, login, capabilities, folders, and the
//! submission server (EHLO, AUTH) through the SMTP plugin's own check.

use std::time::Instant;

use mailhost_plugin_api::{CheckReport, StepOutcome, TransportImpl};

use crate::auth::{self, Secret};
use crate::client::Conn;
use crate::config::{SaveToSent, Security};
use crate::mailbox::{self, Role};
use crate::transport::{ImapTransport, Who};

struct Steps {
    report: CheckReport,
    started: Instant,
}

impl Steps {
    fn begin(&mut self) {
        self.started = Instant::now();
    }
    fn push(&mut self, name: &str, outcome: StepOutcome, detail: &str, server: &str) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.report.push(name, outcome, detail, server, ms);
        self.started = Instant::now();
    }
}

pub fn run(t: &ImapTransport, options_json: &str) -> CheckReport {
    let cfg = t.config();
    let mut steps = Steps {
        report: CheckReport::new(),
        started: Instant::now(),
    };
    let summary = format!(
        "IMAP {}, security {}; submission {}, security {}; save_to_sent {}",
        cfg.addr(),
        cfg.security.name(),
        crate::config::display_addr(&cfg.submission.host, cfg.submission.port),
        cfg.submission.security.name(),
        match cfg.save_to_sent {
            SaveToSent::Auto if t.saves_to_sent() => "auto (appends to Sent)",
            SaveToSent::Auto => "auto (the provider files sent mail itself)",
            SaveToSent::Always => "always",
            SaveToSent::Never => "never",
        }
    );
    if cfg.security == Security::None {
        steps.push(
            "settings",
            StepOutcome::WARNING,
            &format!("{summary}; security = \"none\": mail and credentials travel unencrypted"),
            "",
        );
    } else {
        steps.push("settings", StepOutcome::OK, &summary, "");
    }

    let creds = match t.credentials(&Who::Account, false) {
        Ok(c) => Some(c),
        Err(e) => {
            steps.push("credentials", StepOutcome::FAILED, e.message(), "");
            None
        }
    };

    t.runtime().block_on(async {
        steps.begin();
        let mut conn = match Conn::connect(cfg, t.tls()).await {
            Ok(c) => {
                let detail = match c.tls_info() {
                    Some(i) => format!("connected to {} with {} ({})", c.addr, i.version, i.cipher),
                    None => format!("connected to {}", c.addr),
                };
                steps.push("connect", StepOutcome::OK, &detail, "");
                c
            }
            Err(e) => {
                steps.push("connect", StepOutcome::FAILED, e.message(), "");
                return;
            }
        };
        if let Err(e) = conn.greet().await {
            steps.push("greeting", StepOutcome::FAILED, e.message(), &conn.greeting);
            return;
        }
        let greeting = conn.greeting.clone();
        steps.push("greeting", StepOutcome::OK, "the server greeted as an IMAP server", &greeting);
        if cfg.security == Security::Starttls {
            match conn.starttls(&cfg.host, t.tls()).await {
                Ok(r) => {
                    let detail = conn
                        .tls_info()
                        .map(|i| format!("upgraded to {} ({})", i.version, i.cipher))
                        .unwrap_or_default();
                    steps.push("starttls", StepOutcome::OK, &detail, &r.line());
                }
                Err(e) => {
                    steps.push("starttls", StepOutcome::FAILED, e.message(), "");
                    return;
                }
            }
        }
        let caps = format!("CAPABILITY {}", conn.caps.join(" "));
        let Some(creds) = creds else {
            steps.push("login", StepOutcome::SKIPPED, "no credentials", &caps);
            return;
        };
        let mech = match auth::choose(&conn, cfg.mechanism, &creds, cfg.allow_plaintext_auth) {
            Ok(m) => m,
            Err(e) => {
                steps.push("login", StepOutcome::FAILED, e.message(), &caps);
                return;
            }
        };
        match auth::authenticate(&mut conn, mech, &creds).await {
            Ok(r) => steps.push(
                "login",
                StepOutcome::OK,
                &format!(
                    "logged in as {} with {}{}",
                    creds.username,
                    mech.name(),
                    if matches!(creds.secret, Secret::Token(_)) { " (token from the host)" } else { "" }
                ),
                &r.line(),
            ),
            Err(e) => {
                steps.push("login", StepOutcome::FAILED, e.message(), "");
                return;
            }
        }
        // After login: servers announce UIDPLUS, SPECIAL-USE… only then.
        let caps = format!("CAPABILITY {}", conn.caps.join(" "));
        let missing: Vec<&str> = ["UIDPLUS", "SPECIAL-USE"]
            .into_iter()
            .filter(|c| !conn.has(c))
            .collect();
        if missing.is_empty() {
            steps.push(
                "capabilities",
                StepOutcome::OK,
                "the server offers what is needed",
                &caps,
            );
        } else {
            steps.push(
                "capabilities",
                StepOutcome::WARNING,
                &format!(
                    "the server lacks {}: drafts get no UID, folders are found by name",
                    missing.join(", ")
                ),
                &caps,
            );
        }
        match mailbox::list(&mut conn).await {
            Ok((folders, line)) => {
                for (role, configured) in [
                    (Role::Drafts, cfg.drafts_folder.as_deref()),
                    (Role::Sent, cfg.sent_folder.as_deref()),
                ] {
                    let name = format!("folder {}", role.attr().trim_start_matches('\\'));
                    match mailbox::pick(&folders, role, configured) {
                        Some((f, how)) => steps.push(
                            &name,
                            StepOutcome::OK,
                            &format!("{:?} ({})", f.name, how.name()),
                            &line,
                        ),
                        None if cfg.create_folders => steps.push(
                            &name,
                            StepOutcome::WARNING,
                            &format!(
                                "not found; {:?} will be created on first use",
                                mailbox::name_to_create(&folders, role, configured)
                            ),
                            &line,
                        ),
                        None => steps.push(
                            &name,
                            StepOutcome::FAILED,
                            &format!(
                                "not found (no {} folder, no common name{}); set `{}` or `create_folders = true`",
                                role.attr(),
                                configured.map(|c| format!(", no {c:?}")).unwrap_or_default(),
                                role.setting()
                            ),
                            &line,
                        ),
                    }
                }
            }
            Err(e) => steps.push("folders", StepOutcome::FAILED, e.message(), ""),
        }
        conn.logout().await;
    });

    // The submission server, checked by the SMTP plugin's own steps.
    match t.smtp().check(options_json) {
        Ok(r) => {
            for s in r.steps.iter() {
                steps.report.push(
                    &format!("submission {}", s.name),
                    s.outcome,
                    &s.detail,
                    &s.server_text,
                    s.duration_ms,
                );
            }
        }
        Err(e) => {
            steps.begin();
            steps.push("submission", StepOutcome::FAILED, e.message(), "");
        }
    }
    steps.report
}
