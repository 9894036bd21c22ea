//! `mailhost send` and `mailhost compose`: the message from the command line
//! (fields, files, an `.eml`, standard input), through the library's one
//! send/compose entry point, and what came of it.

use super::*;

/// Reads a file named on the command line (`-`: standard input), at most `limit` bytes.
fn read_input(p: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    if p.as_os_str() == "-" {
        limits::read_limited(
            std::io::stdin().lock(),
            limit,
            "standard input",
            "limits.max_message_bytes",
        )
    } else {
        limits::read_bounded(p, limit, "limits.max_message_bytes")
    }
}

/// A text file for a body part: bounded, and UTF-8 (the bad byte's offset otherwise).
fn read_text(p: &Path, limit: u64) -> Result<String, String> {
    let bytes = read_input(p, limit).map_err(|e| e.to_string())?;
    limits::utf8_text(bytes).map_err(|e| {
        format!(
            "{} is not UTF-8 text (the first invalid byte is at offset {}); convert it to UTF-8",
            p.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// The request as the command line gives it; files are read here (bounded),
/// so the library never reads a path on a caller's behalf.
fn submission(
    a: &MessageArgs,
    action: Action,
    limits: &limits::Limits,
) -> Result<Submission, String> {
    let options: serde_json::Map<String, serde_json::Value> = match &a.options {
        Some(o) => {
            serde_json::from_str(o).map_err(|e| format!("--options is not a JSON object: {e}"))?
        }
        None => serde_json::Map::new(),
    };
    let max = limits.max_message_bytes;
    let content = match &a.eml {
        Some(p) => Content::Mime {
            bytes: read_input(p, max).map_err(|e| e.to_string())?,
            envelope_from: a.envelope_from.clone(),
            envelope_to: a.to.clone(),
        },
        None => {
            let mut headers = Vec::new();
            for h in &a.header {
                let (k, v) = h.split_once(':').ok_or_else(|| {
                    format!("--header `{}` is not `Name: value`", h.escape_debug())
                })?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let mut attachments = Vec::with_capacity(a.attach.len());
            for p in &a.attach {
                attachments.push(AttachmentRequest {
                    filename: p.file_name().map(|n| n.to_string_lossy().into_owned()),
                    data: Some(
                        limits::read_bounded(p, max, "limits.max_message_bytes")
                            .map_err(|e| format!("attachment {}: {e}", p.display()))?,
                    ),
                    ..Default::default()
                });
            }
            let text = match &a.text_file {
                Some(p) => Some(read_text(p, max)?),
                None => a.text.clone(),
            };
            let html = match &a.html_file {
                Some(p) => Some(read_text(p, max)?),
                None => a.html.clone(),
            };
            Content::Fields(Box::new(MessageRequest {
                from: a.from.clone(),
                reply_to: a.reply_to.clone(),
                to: a.to.clone(),
                cc: a.cc.clone(),
                bcc: a.bcc.clone(),
                subject: a.subject.clone(),
                text,
                html,
                attachments,
                headers,
                envelope_from: a.envelope_from.clone(),
                idempotency_key: None,
                options: serde_json::Map::new(),
            }))
        }
    };
    Ok(Submission {
        action,
        user: a.user.clone(),
        tenant: a.tenant.clone(),
        purpose: a.purpose.clone(),
        mode: a.mode.clone(),
        content,
        idempotency_key: a.idempotency_key.clone(),
        options,
    })
}

pub(super) fn cmd_message(
    cli: &Cli,
    engine: &Engine,
    a: &MessageArgs,
    action: Action,
    open: bool,
) -> u8 {
    let verb = match action {
        Action::Send => "sent",
        Action::Compose => "composed",
    };
    let sub = match submission(a, action, &engine.settings().limits) {
        Ok(s) => s,
        Err(e) => {
            return fail(
                cli,
                exit::DATA,
                "invalid-message",
                &format!("the message was not {verb}: {e}"),
                None,
            )
        }
    };
    let prepared = match engine.prepare(&sub) {
        Ok(p) => p,
        Err(SubmitError::Refused(r)) => {
            let code = fail(
                cli,
                exit::UNAVAILABLE,
                "refused",
                &format!("not {verb}: refused by {}: {}", r.rule, r.message),
                None,
            );
            errln!("(run `mailhost policy explain` for the whole trace)");
            return code;
        }
        Err(e) => {
            return fail(
                cli,
                exit_code(e.class()),
                e.code(),
                &format!("the message was not {verb}: {e}"),
                None,
            )
        }
    };
    if a.queue {
        return crate::server::cli::enqueue(engine.settings(), &prepared, cli.json);
    }
    match engine.deliver(&prepared) {
        Ok(Outcome::Sent(d)) => {
            if cli.json {
                print_json(&d);
            } else {
                outln!(
                    "sent {} via {}: {}",
                    d.message_id,
                    d.candidate.label,
                    d.server_reply
                );
                for (addr, why) in &d.rejected {
                    outln!("  rejected {addr}: {why}");
                }
                if let Some(c) = d.copy.as_ref().filter(|c| c.saved) {
                    outln!("  copy in {}: {}", c.account, c.location);
                }
                for w in &d.warnings {
                    outln!("  warning: {w}");
                }
            }
            exit::OK
        }
        Ok(Outcome::Composed(c)) => {
            // --open: the web link in the desktop's default browser
            let opened = open.then(|| {
                crate::browser::open_link(&c.web_link)
                    .map_err(|e| format!("{} via {}: {e}", c.kind, c.candidate.label))
            });
            if cli.json {
                let mut v = serde_json::to_value(&c).unwrap_or_default();
                match &opened {
                    Some(Ok(cmd)) => v["opened"] = serde_json::json!({"ok": true, "command": cmd}),
                    Some(Err(e)) => v["opened"] = serde_json::json!({"ok": false, "error": e}),
                    None => {}
                }
                print_json(&v);
            } else {
                outln!("{} via {}: {}", c.kind, c.candidate.label, c.message);
                if !c.web_link.is_empty() {
                    outln!("open: {}", c.web_link);
                }
                if let Some(Ok(cmd)) = &opened {
                    outln!("opened in the default browser ({cmd})");
                }
            }
            match opened {
                Some(Err(e)) => {
                    errln!("mailhost: composed, but not opened: {e}");
                    exit::UNAVAILABLE
                }
                _ => exit::OK,
            }
        }
        Err(f) => fail(
            cli,
            exit_code(Some(f.class)),
            f.class.name(),
            &format!("not {verb}: {f}"),
            Some(&f.attempts),
        ),
    }
}
