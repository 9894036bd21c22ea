//! `mailhost check` (an account's "Test settings", step by step) and
//! `mailhost status` (every account's connection state, the kill switch,
//! the plugins' probes and what the service saw).

use super::*;

pub(super) fn cmd_check(cli: &Cli, engine: &Engine, account: &str, to: Option<&str>) -> u8 {
    let opts = match to {
        Some(t) => serde_json::json!({ "test_recipient": t }).to_string(),
        None => "{}".to_string(),
    };
    let got = engine.check(account, &opts);
    if engine.settings().accounts.contains_key(account) {
        let (state, reason) = crate::outbox::stats::check_outcome(&got);
        if let Err(e) = crate::server::cli::record_check(engine.settings(), account, state, &reason)
        {
            eprintln!("mailhost: warning: the account's state for `mailhost status` was not recorded: {e}");
        }
    }
    match got {
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
                    outln!(
                        "[{mark}] {:<12} {} ({} ms)",
                        s.name.as_str(),
                        s.detail.as_str(),
                        s.duration_ms
                    );
                    if !s.server_text.is_empty() {
                        outln!(
                            "       server: {}",
                            s.server_text
                                .as_str()
                                .trim_end()
                                .replace('\n', "\n               ")
                        );
                    }
                }
                outln!(
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
            let class = FailureClass::from(e.class());
            fail(
                cli,
                exit_code(Some(class)),
                class.name(),
                &format!("check of `{}` failed: {e}", crate::limits::shown(account)),
                None,
            )
        }
    }
}

pub(super) fn cmd_status(cli: &Cli, engine: &Engine) -> u8 {
    let s = engine.settings();
    let accounts = engine.status();
    let world = engine.world();
    // What `mailhost serve` saw (crate::server::cli), when there is an outbox.
    let service = crate::server::cli::service_status(s);
    if cli.json {
        print_json(&serde_json::json!({
            "config": s.source,
            "service": service,
            "sending_enabled": s.policy.enabled,
            "accounts": accounts,
            "probes": world.probes,
            "warnings": s.warnings.iter().map(|w| w.to_string()).chain(engine.startup_warnings.iter().cloned()).collect::<Vec<_>>(),
            "plugin_failures": engine.plugins().failures.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
        }));
    } else {
        outln!("config:  {}", s.source);
        outln!(
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
        outln!("accounts:");
        for a in &accounts {
            let limit = a
                .max_per_minute
                .map(|m| format!(", {}/{m} per minute", a.sent_last_minute))
                .unwrap_or_default();
            outln!(
                "  {:<16} {:<8} {}{}",
                a.account,
                a.plugin,
                a.state_text(),
                limit
            );
        }
        outln!("plugins:");
        for (name, p) in &world.probes {
            outln!(
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
            outln!("  FAILED {f}");
        }
        if let Some(v) = &service {
            outln!(
                "{}",
                crate::server::cli::render_service_status(v).trim_end()
            );
        }
    }
    exit::OK
}
