//! `check()`, the "Test settings" button: each step of a connection with its
//! outcome and the server's exact words — settings, POP-before-SMTP, resolve,
//! connect, TLS (version, certificate subject and expiry), greeting, EHLO
//! capabilities, STARTTLS, AUTH, an optional test mail, QUIT.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use lettre::Address;
use mailhost_plugin_api::{wire, CheckReport, PluginError, StepOutcome};
use serde::Deserialize;

use crate::config::{Security, EXCHANGE_BASIC_AUTH_WARNING};
use crate::job::Who;
use crate::session::{self, Session, Tx};
use crate::shared::Shared;
use crate::stream::{SmtpStream, TlsInfo};
use crate::tls;

#[derive(Debug, Default, Deserialize)]
struct CheckOptions {
    test_recipient: Option<String>,
    from: Option<String>,
}

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

    fn fail(&mut self, name: &str, e: &PluginError) {
        self.push(name, StepOutcome::FAILED, &e.to_string(), "");
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn tls_step(steps: &mut Steps, info: Option<TlsInfo>, accept_invalid: bool) {
    let Some(info) = info else {
        steps.push("tls", StepOutcome::FAILED, "no TLS session", "");
        return;
    };
    let mut outcome = StepOutcome::OK;
    let mut detail = format!("{} with {}", info.version, info.cipher);
    match info.chain.first().and_then(|c| tls::summarize(c)) {
        Some(c) => {
            let days = (c.not_after - now_unix()).div_euclid(86_400);
            detail.push_str(&format!(
                "; certificate subject \"{}\", issuer \"{}\", valid until {} ({days} days)",
                c.subject,
                c.issuer,
                tls::date(c.not_after)
            ));
            if days < 0 {
                outcome = StepOutcome::WARNING;
                detail.push_str("; the certificate has EXPIRED");
            } else if days < 14 {
                outcome = StepOutcome::WARNING;
                detail.push_str("; the certificate expires soon");
            }
        }
        None => detail.push_str("; the server's certificate could not be read"),
    }
    if accept_invalid {
        outcome = StepOutcome::WARNING;
        detail.push_str("; NOT verified (accept_invalid_certs = true)");
    }
    steps.push("tls", outcome, &detail, "");
}

/// Runs the check. Never fails: a failed step ends the report.
pub async fn run(shared: &Shared, options_json: &str) -> CheckReport {
    let mut steps = Steps {
        report: CheckReport::new(),
        started: Instant::now(),
    };
    let options: CheckOptions = serde_json::from_str(if options_json.trim().is_empty() {
        "{}"
    } else {
        options_json
    })
    .unwrap_or_default();
    let cfg = &shared.cfg;
    let addr = cfg.addr();

    // Settings.
    let mut warnings = Vec::new();
    if cfg.accept_invalid_certs {
        warnings.push(
            "accept_invalid_certs = true: the server's certificate is not verified".to_string(),
        );
    }
    if cfg.security == Security::None {
        warnings.push("security = \"none\": mail and credentials travel unencrypted".to_string());
    }
    if cfg.basic_auth_to_exchange_online() {
        warnings.push(EXCHANGE_BASIC_AUTH_WARNING.to_string());
    }
    let summary = format!(
        "{addr}, security {}, auth {:?}, mechanism {:?}",
        cfg.security.name(),
        cfg.auth,
        cfg.mechanism
    );
    if warnings.is_empty() {
        steps.push("settings", StepOutcome::OK, &summary, "");
    } else {
        steps.push(
            "settings",
            StepOutcome::WARNING,
            &format!("{summary}; {}", warnings.join("; ")),
            "",
        );
    }

    // POP-before-SMTP.
    if cfg.pop.is_some() {
        steps.begin();
        match shared.pop_login().await {
            Ok(reply) => steps.push(
                "pop-before-smtp",
                StepOutcome::OK,
                "logged in to the POP3 server",
                reply.as_deref().unwrap_or(""),
            ),
            Err(e) => {
                shared.unable(&e);
                steps.fail("pop-before-smtp", &e);
                return steps.report;
            }
        }
    }

    macro_rules! step {
        ($name:expr, $e:expr) => {
            match $e {
                Ok(v) => v,
                Err(e) => {
                    shared.unable(&e);
                    steps.fail($name, &e);
                    return steps.report;
                }
            }
        };
    }

    steps.begin();
    let addrs = step!(
        "resolve",
        session::resolve(&cfg.host, cfg.port, cfg.timeout).await
    );
    let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    steps.push(
        "resolve",
        StepOutcome::OK,
        &format!("{} → {}", cfg.host, list.join(", ")),
        "",
    );

    let (tcp, peer) = step!(
        "connect",
        session::tcp_connect(&addrs, &addr, cfg.timeout).await
    );
    steps.push(
        "connect",
        StepOutcome::OK,
        &format!("connected to {peer}"),
        "",
    );

    let stream = if cfg.security == Security::Tls {
        let name = step!("tls", tls::server_name(&cfg.host));
        let t = step!(
            "tls",
            session::tls_handshake(tcp, &shared.connector, name, &addr, cfg.timeout).await
        );
        let s = SmtpStream::tls(t, peer);
        tls_step(&mut steps, s.tls_info(), cfg.accept_invalid_certs);
        s
    } else {
        SmtpStream::plain(tcp, peer)
    };

    let mut s: Session = step!(
        "greeting",
        Session::start(stream, addr.clone(), shared.client_id.clone(), cfg.timeout).await
    );
    steps.push(
        "greeting",
        StepOutcome::OK,
        "the server greeted",
        &s.greeting.raw(),
    );
    steps.push("ehlo", StepOutcome::OK, &s.caps.summary(), &s.ehlo.raw());

    if cfg.security == Security::Starttls {
        let name = step!("starttls", tls::server_name(&cfg.host));
        let reply = step!("starttls", s.starttls(&shared.connector, name).await);
        steps.push(
            "starttls",
            StepOutcome::OK,
            "the connection is encrypted",
            &reply.to_string(),
        );
        tls_step(&mut steps, s.tls_info(), cfg.accept_invalid_certs);
        steps.push("ehlo", StepOutcome::OK, &s.caps.summary(), &s.ehlo.raw());
    }

    let creds = step!("auth", shared.credentials(&Who::Account).await);
    match creds {
        None => steps.push(
            "auth",
            StepOutcome::SKIPPED,
            "no credentials configured (auth is optional or none)",
            "",
        ),
        Some(c) => {
            let user = c.username.clone();
            let reply = step!("auth", shared.login(&mut s, Some(c)).await);
            match reply {
                Some(r) => {
                    let outcome = if cfg.basic_auth_to_exchange_online() {
                        StepOutcome::WARNING
                    } else {
                        StepOutcome::OK
                    };
                    let mut detail = format!("authenticated as {user}");
                    if outcome == StepOutcome::WARNING {
                        detail.push_str("; ");
                        detail.push_str(EXCHANGE_BASIC_AUTH_WARNING);
                    }
                    steps.push("auth", outcome, &detail, &r);
                }
                None => steps.push(
                    "auth",
                    StepOutcome::WARNING,
                    "the server offers no AUTH; mail goes out unauthenticated",
                    "",
                ),
            }
        }
    }
    shared.operating();

    if let Some(rcpt) = options.test_recipient.as_deref() {
        steps.begin();
        let to = step!(
            "test-mail",
            wire::request("smtp", "test_recipient", rcpt).and_then(|()| rcpt
                .parse::<Address>()
                .map_err(|e| PluginError::permanent(format!("test_recipient {rcpt:?}: {e}"))))
        );
        let from_text = options
            .from
            .clone()
            .or_else(|| cfg.envelope_from.clone())
            .or_else(|| cfg.username.clone().filter(|u| u.contains('@')))
            .unwrap_or_else(|| rcpt.to_string());
        let from = step!(
            "test-mail",
            wire::request("smtp", "from", &from_text).and_then(|()| from_text
                .parse::<Address>()
                .map_err(|e| PluginError::permanent(format!("sender {from_text:?}: {e}"))))
        );
        let body = test_message(&from, &to, &cfg.host);
        let to_list = [to];
        let tx = Tx {
            from: Some(&from),
            to: &to_list,
            body: body.as_bytes(),
            needs_smtputf8: !AsRef::<str>::as_ref(&from).is_ascii()
                || !AsRef::<str>::as_ref(&to_list[0]).is_ascii(),
            dsn: None,
            last: false,
        };
        match s.transaction(&tx, None).await {
            Ok(out) => steps.push(
                "test-mail",
                StepOutcome::OK,
                &format!("a test message from {from} to {rcpt} was accepted"),
                &out.reply.to_string(),
            ),
            Err(f) => {
                let e = f.into_error();
                steps.fail("test-mail", &e);
            }
        }
    }

    steps.begin();
    s.quit().await;
    steps.push("quit", StepOutcome::OK, "closed the connection", "");
    steps.report
}

fn test_message(from: &Address, to: &Address, server: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let domain = from.domain();
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: mailhost SMTP settings test\r\nMessage-ID: <check-{nanos}@{domain}>\r\n\
         Date: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         This is a test message sent by mailhost's settings check through {server}.\r\n",
        rfc2822_now()
    )
}

fn rfc2822_now() -> String {
    let now = now_unix();
    let date = tls::date(now);
    let secs = now.rem_euclid(86_400);
    let (y, m, d) = (&date[0..4], &date[5..7], &date[8..10]);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mi: usize = m.parse().unwrap_or(1);
    let month = months.get(mi.saturating_sub(1)).copied().unwrap_or("Jan");
    format!(
        "{} {month} {y} {:02}:{:02}:{:02} +0000",
        d.trim_start_matches('0'),
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}
