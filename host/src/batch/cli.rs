//! `mailhost send-batch FILE`: validates and builds every row, queues the
//! batch durably in the outbox, then (unless `--no-wait`) drains it in this
//! process with the outbox worker while showing progress.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{
    input, prepare_all, text, BatchContent, BatchRequest, Format, RowError, RowErrors, Template,
};
use crate::cli::{exit, exit_code, print_json};
use crate::engine::{Engine, FailureClass};
use crate::outbox::batches::{BatchStatus, BatchStore};
use crate::outbox::{now_ms, worker, Outbox, State, Store};
use crate::server::cli::when;

/// `println!` that ignores a closed stdout (a reader that stopped listening
/// must not turn a queued or sent batch into a failure).
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

mod drain;
use drain::drain;

#[derive(Debug, Clone, Args)]
pub struct SendBatchArgs {
    /// JSON Lines (`.jsonl`, one object per line), CSV (`.csv`, `.tsv`,
    /// `.txt`: a header row with a `to` column; comma, semicolon or tab
    /// separated) or a folder of `.eml` files (each sent as it is).
    #[arg(required_unless_present = "resume")]
    pub file: Option<PathBuf>,
    /// The file's format when its name does not tell: jsonl or csv.
    #[arg(long)]
    pub format: Option<String>,
    /// The text encoding of the file and the template files when it is not
    /// UTF-8, e.g. windows-1252 (what Excel's "CSV (Comma delimited)" writes
    /// in Western Europe), windows-1250, iso-8859-15. A UTF-16 file with a
    /// byte order mark (Excel's "Unicode Text") is read without it.
    #[arg(long, value_name = "NAME")]
    pub encoding: Option<String>,
    /// The subject template (e.g. 'Invoice {{ number }}').
    #[arg(long)]
    pub subject: Option<String>,
    /// The plain-text body template, in a file.
    #[arg(long, conflicts_with = "text")]
    pub text_file: Option<PathBuf>,
    /// The plain-text body template, given here (e.g. 'Dear {{ name }}').
    #[arg(long)]
    pub text: Option<String>,
    /// The HTML body template, in a file (fields are HTML-escaped).
    #[arg(long, conflicts_with = "html")]
    pub html_file: Option<PathBuf>,
    /// The HTML body template, given here (fields are HTML-escaped).
    #[arg(long)]
    pub html: Option<String>,
    /// A TOML file with `subject`, `text` and/or `html` (and optionally `from`)
    /// instead of --subject/--text(-file)/--html(-file).
    #[arg(long, conflicts_with_all = ["subject", "text_file", "html_file", "text", "html"])]
    pub template: Option<PathBuf>,
    /// From (default: the account's).
    #[arg(long)]
    pub from: Option<String>,
    /// A name for the batch (default: the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Messages per minute for this batch (default: `[outbox] batch_per_minute`; 0 = not paced).
    #[arg(long)]
    pub rate: Option<u32>,
    /// The same key again (per tenant) answers with the first batch instead of queueing a second.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Send as this user (their modes and account, where the policy allows).
    #[arg(long)]
    pub user: Option<String>,
    /// Send for this tenant (its account, with fallback to the global one).
    #[arg(long)]
    pub tenant: Option<String>,
    /// A purpose from `[purposes]` (its permitted recipients apply to every row).
    #[arg(long)]
    pub purpose: Option<String>,
    /// Ask for a send mode (e.g. smtp, graph), where user selection is allowed.
    #[arg(long)]
    pub mode: Option<String>,
    /// Validate and render every row, print the first message; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Queue the batch and return; `mailhost serve` sends it.
    #[arg(long)]
    pub no_wait: bool,
    /// Send what is left of a queued batch (after Ctrl-C, or a batch queued with --no-wait).
    #[arg(long, value_name = "BATCH_ID", conflicts_with_all = ["file", "dry_run", "no_wait"])]
    pub resume: Option<String>,
}

/// How long the drain waits for a deferred message (a temporary failure, an
/// account's rate limit) before it leaves the rest to the service.
const WAIT_FOR_DEFERRED_MS: i64 = 120_000;

fn report(json: bool, code: u8, kind: &str, message: &str, rows: Option<&RowErrors>) -> u8 {
    errln!("mailhost: {message}");
    if json {
        let mut v =
            serde_json::json!({"error": {"code": kind, "exit_code": code, "message": message}});
        if let Some(r) = rows {
            v["error"]["rows"] = serde_json::to_value(&r.list).unwrap_or_default();
            v["error"]["bad_rows"] = serde_json::json!(r.total);
        }
        print_json(&v);
    }
    code
}

/// Reads the batch's input and template from the command line.
fn request(
    engine: &Engine,
    a: &SendBatchArgs,
) -> Result<BatchRequest, (u8, String, Option<RowErrors>)> {
    let limits = &engine.settings().limits;
    let usage = |m: String| (exit::USAGE, m, None);
    let data = |e: RowErrors| (exit::DATA, e.to_string(), Some(e));
    let Some(file) = &a.file else {
        return Err(usage("give the batch file (or --resume BATCH_ID)".into()));
    };
    let content = if file.is_dir() {
        if a.subject.is_some()
            || a.text_file.is_some()
            || a.html_file.is_some()
            || a.text.is_some()
            || a.html.is_some()
            || a.template.is_some()
            || a.from.is_some()
            || a.encoding.is_some()
        {
            return Err(usage(format!(
                "{} is a folder of .eml files, which are sent as they are: leave out --subject, --text, --text-file, --html, --html-file, --template, --from and --encoding",
                file.display()
            )));
        }
        BatchContent::Eml(input::read_eml_dir(file, limits).map_err(data)?)
    } else {
        let format = match a.format.as_deref() {
            Some("jsonl") | Some("ndjson") => Format::Jsonl,
            Some("csv") => Format::Csv,
            Some(other) => return Err(usage(format!("--format {other} is unknown; use jsonl or csv"))),
            None => Format::of(file).ok_or_else(|| {
                usage(format!(
                    "cannot tell the format of {} from its name; name it .jsonl, .csv, .tsv or .txt, or give --format jsonl|csv",
                    file.display()
                ))
            })?,
        };
        let encoding = a
            .encoding
            .as_deref()
            .map(text::encoding)
            .transpose()
            .map_err(|e| usage(format!("--encoding {e}")))?;
        let whole = |m: String| data(RowErrors::one(RowError::whole(m)));
        let bytes =
            crate::limits::read_bounded(file, limits.max_batch_bytes, "limits.max_batch_bytes")
                .map_err(|e| whole(e.to_string()))?;
        let bytes = text::to_utf8(
            bytes,
            encoding,
            &file.display().to_string(),
            limits.max_batch_bytes,
            "limits.max_batch_bytes",
        )
        .map_err(|e| match e {
            text::Undecodable::Invalid(e) => whole(format!(
                "{e}; give the encoding it was saved in with --encoding, or save it as UTF-8"
            )),
            text::Undecodable::TooLarge(e) => whole(e),
        })?;
        if let Some(line) = text::first_bad_utf8_line(&bytes) {
            let how = if format == Format::Csv {
                "Save the file as UTF-8 (in Excel: Save As \"CSV UTF-8\"; in LibreOffice: character set Unicode (UTF-8)), or give the encoding it was saved in, e.g. --encoding windows-1252 (Excel's \"CSV (Comma delimited)\" in Western Europe)"
            } else {
                "Save the file as UTF-8, or give the encoding it was saved in, e.g. --encoding windows-1252"
            };
            return Err(whole(format!(
                "{}: line {line} is not UTF-8. {how}",
                file.display()
            )));
        }
        let rows = input::parse(format, &bytes, limits).map_err(data)?;
        let read = |p: &PathBuf| -> Result<String, (u8, String, Option<RowErrors>)> {
            let b = crate::limits::read_bounded(
                p,
                limits.max_message_bytes,
                "limits.max_message_bytes",
            )
            .map_err(|e| (exit::DATA, format!("template: {e}"), None))?;
            let b = text::to_utf8(
                b,
                encoding,
                &format!("template {}", p.display()),
                limits.max_message_bytes,
                "limits.max_message_bytes",
            )
            .map_err(|e| match e {
                text::Undecodable::Invalid(e) => (exit::DATA, format!("{e}; give the encoding it was saved in with --encoding, or save it as UTF-8"), None),
                text::Undecodable::TooLarge(e) => (exit::DATA, e, None),
            })?;
            crate::limits::utf8_text(b).map_err(|_| {
                (
                    exit::DATA,
                    format!(
                        "template {} is not valid UTF-8; save it as UTF-8, or give the encoding it was saved in (--encoding windows-1252)",
                        p.display()
                    ),
                    None,
                )
            })
        };
        let mut template = match &a.template {
            Some(p) => toml::from_str::<Template>(&read(p)?).map_err(|e| {
                (
                    exit::DATA,
                    format!("template {}: {}; write `subject = \"...\"` and `text = \"...\"` and/or `html = \"...\"`", p.display(), e.message()),
                    None,
                )
            })?,
            None => Template {
                subject: a.subject.clone().unwrap_or_default(),
                text: match &a.text {
                    Some(t) => Some(t.clone()),
                    None => a.text_file.as_ref().map(read).transpose()?,
                },
                html: match &a.html {
                    Some(h) => Some(h.clone()),
                    None => a.html_file.as_ref().map(read).transpose()?,
                },
                from: None,
            },
        };
        if a.from.is_some() {
            template.from = a.from.clone();
        }
        if template.text.is_none() && template.html.is_none() {
            return Err(usage(
                "a JSON Lines or CSV batch needs a template: --subject with --text (or --text-file) and/or --html (or --html-file), or --template FILE".into(),
            ));
        }
        BatchContent::Rows { template, rows }
    };
    Ok(BatchRequest {
        label: a
            .name
            .clone()
            .or_else(|| file.file_name().map(|n| n.to_string_lossy().into_owned())),
        user: a.user.clone(),
        tenant: a.tenant.clone(),
        purpose: a.purpose.clone(),
        mode: a.mode.clone(),
        idempotency_key: a.idempotency_key.clone(),
        per_minute: a.rate,
        content,
    })
}

/// `mailhost send-batch`
pub fn send_batch(engine: Engine, a: &SendBatchArgs, json: bool) -> u8 {
    let engine = Arc::new(engine);
    let code = run(&engine, a, json);
    engine.close();
    code
}

fn run(engine: &Arc<Engine>, a: &SendBatchArgs, json: bool) -> u8 {
    let prepared = if a.resume.is_some() {
        None
    } else {
        let req = match request(engine, a) {
            Ok(r) => r,
            Err((code, m, rows)) => {
                let kind = if code == exit::USAGE {
                    "usage"
                } else {
                    "invalid-batch"
                };
                return report(
                    json,
                    code,
                    kind,
                    &format!("the batch was not queued: {m}"),
                    rows.as_ref(),
                );
            }
        };
        match prepare_all(engine, &req) {
            Ok(p) => Some(p),
            Err((rows, refused)) => {
                // Every row refused by the policy: the policy's exit code.
                let (code, kind) = if refused == rows.total {
                    (exit::UNAVAILABLE, "refused")
                } else {
                    (exit::DATA, "invalid-batch")
                };
                return report(
                    json,
                    code,
                    kind,
                    &format!("the batch was not queued: {rows}"),
                    Some(&rows),
                );
            }
        }
    };
    if a.dry_run {
        let Some(p) = prepared else {
            return exit::USAGE;
        };
        let first = p
            .messages
            .first()
            .map(|m| String::from_utf8_lossy(&m.mime).into_owned())
            .unwrap_or_default();
        if json {
            print_json(&serde_json::json!({
                "dry_run": true, "rows": p.messages.len(), "per_minute": p.batch.per_minute, "first": first
            }));
        } else {
            outln!(
                "dry run: {} message(s) valid, nothing queued; rate {}; the first message:\n",
                p.messages.len(),
                rate_text(p.batch.per_minute)
            );
            outln!("{first}");
        }
        return exit::OK;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("mailhost: cannot start the async runtime: {e}");
            return exit::CONFIG;
        }
    };
    let code = rt.block_on(async {
        let settings = engine.settings();
        let location = match settings.outbox.location(&settings.base_dir) {
            Ok(l) => l,
            Err(e) => return report(json, exit::CONFIG, "config", &format!("{}: {e}", settings.source), None),
        };
        let outbox = match Outbox::open(&location).await {
            Ok(o) => o.with_min_free(settings.outbox.min_free_bytes()),
            Err(e) => return report(json, exit::UNAVAILABLE, "outbox-unavailable", &e.to_string(), None),
        };
        let id = match (prepared, &a.resume) {
            (Some(p), _) => {
                let n = p.messages.len();
                match outbox.create_batch(&p.batch, p.messages).await {
                Ok(e) => {
                    if e.duplicate {
                        errln!("mailhost: a batch with this idempotency key is queued already: {} (nothing new queued)", e.id);
                    } else if !json {
                        errln!("queued batch {} ({n} message(s), rate {}) in {}", e.id, rate_text(p.batch.per_minute), outbox.store().location());
                    }
                    e.id
                }
                Err(e) => return report(json, exit::TRANSIENT, "outbox-unavailable", &format!("the batch was not queued: {e}"), None),
            }},
            (None, Some(id)) => id.clone(),
            (None, None) => return exit::USAGE,
        };
        let status = match outbox.store().batch_status(&id).await {
            Ok(Some(s)) => s,
            Ok(None) => return report(json, exit::DATA, "not-found", &format!("no batch `{id}` in {}", outbox.store().location()), None),
            Err(e) => return report(json, exit::UNAVAILABLE, "outbox-unavailable", &e.to_string(), None),
        };
        if a.no_wait {
            if json {
                print_json(&status);
            } else {
                outln!("{id}");
                errln!("queued; `mailhost serve` sends it (or `mailhost send-batch --resume {id}`); `mailhost outbox batch {id}` shows where it is");
            }
            return exit::OK;
        }
        drain(engine, &outbox, &id, json).await
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    code
}

fn rate_text(per_minute: u32) -> String {
    if per_minute == 0 {
        "not paced".into()
    } else {
        format!("{per_minute}/min")
    }
}

/// 0 when every message was sent; else the class of the failures (the most
/// frequent failure class; rows still open are temporary, cancelled ones refused).
pub fn batch_exit_code(s: &BatchStatus) -> u8 {
    if s.count(State::Sent) == s.batch.total {
        return exit::OK;
    }
    let class = |name: &str| match name {
        "transient" => FailureClass::Transient,
        "auth" => FailureClass::Auth,
        "config" => FailureClass::Config,
        "unavailable" => FailureClass::Unavailable,
        "unsupported" => FailureClass::Unsupported,
        "refused" => FailureClass::Refused,
        _ => FailureClass::Permanent,
    };
    if let Some((name, _)) = s.failures.iter().max_by_key(|(_, n)| **n) {
        return exit_code(Some(class(name)));
    }
    if s.count(State::Failed) > 0 {
        return exit::PERMANENT;
    }
    let open = s.count(State::Queued) + s.count(State::Sending) + s.count(State::Deferred);
    if open > 0 {
        return exit::TRANSIENT;
    }
    // Only cancelled messages are missing.
    exit_code(Some(FailureClass::Refused))
}

/// One line: the batch and its counts.
pub fn summary(s: &BatchStatus) -> String {
    let counts: Vec<String> = s
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let mut out = format!(
        "batch {}: {} of {} sent ({})",
        s.batch.id,
        s.count(State::Sent),
        s.batch.total,
        counts.join(", ")
    );
    if !s.failures.is_empty() {
        let f: Vec<String> = s.failures.iter().map(|(k, n)| format!("{n} {k}")).collect();
        out.push_str(&format!("; failures: {}", f.join(", ")));
    }
    out
}

/// `mailhost outbox batches | batch ID | cancel-batch ID`
pub async fn outbox_batches(
    outbox: &Outbox,
    cmd: &crate::server::cli::OutboxCommand,
    json: bool,
) -> u8 {
    use crate::server::cli::OutboxCommand;
    let store = outbox.store();
    let failed = |e: crate::outbox::OutboxError| {
        errln!("mailhost: {e}");
        exit::UNAVAILABLE
    };
    match cmd {
        OutboxCommand::Batches { limit, tenant } => {
            let list = match store.list_batches(tenant.as_deref(), None, *limit).await {
                Ok(l) => l,
                Err(e) => return failed(e),
            };
            if json {
                print_json(&list);
                return exit::OK;
            }
            for b in &list {
                outln!(
                    "{}  {}  {:>7} message(s)  {}  {}",
                    b.id,
                    when(b.created_at),
                    b.total,
                    rate_text(b.per_minute),
                    b.label.as_deref().unwrap_or("")
                );
            }
            if list.is_empty() {
                outln!("(no batches)");
            }
            exit::OK
        }
        OutboxCommand::Batch { id } => match store.batch_status(id).await {
            Ok(Some(s)) => {
                if json {
                    print_json(&s);
                } else {
                    outln!("{}", summary(&s));
                    outln!("created     {}", when(s.batch.created_at));
                    outln!("rate        {}", rate_text(s.batch.per_minute));
                    if let Some(l) = &s.batch.label {
                        outln!("name        {l}");
                    }
                    outln!("done        {}", if s.done { "yes" } else { "no" });
                }
                exit::OK
            }
            Ok(None) => {
                errln!("mailhost: no batch `{id}` in {}", store.location());
                exit::DATA
            }
            Err(e) => failed(e),
        },
        OutboxCommand::CancelBatch { id } => {
            match store.batch_status(id).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    errln!("mailhost: no batch `{id}` in {}", store.location());
                    return exit::DATA;
                }
                Err(e) => return failed(e),
            }
            match store.cancel_batch(id, now_ms()).await {
                Ok(n) => {
                    if json {
                        print_json(&serde_json::json!({"id": id, "cancelled": n}));
                    } else {
                        outln!("batch {id}: {n} message(s) cancelled (those sending or sent are not touched)");
                    }
                    exit::OK
                }
                Err(e) => failed(e),
            }
        }
        _ => exit::USAGE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::batches::BatchRecord;

    fn status(counts: &[(&str, u64)], failures: &[(&str, u64)]) -> BatchStatus {
        let mut c: std::collections::BTreeMap<String, u64> = State::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for (k, n) in counts {
            c.insert(k.to_string(), *n);
        }
        BatchStatus {
            batch: BatchRecord {
                id: "b".into(),
                label: None,
                tenant: None,
                user: None,
                idempotency_key: None,
                total: counts.iter().map(|(_, n)| n).sum(),
                per_minute: 60,
                created_at: 0,
            },
            counts: c,
            failures: failures.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            done: true,
            next_due: None,
        }
    }

    #[test]
    fn the_exit_code_is_the_class_of_the_failures() {
        assert_eq!(batch_exit_code(&status(&[("sent", 3)], &[])), exit::OK);
        assert_eq!(
            batch_exit_code(&status(&[("sent", 1), ("failed", 2)], &[("permanent", 2)])),
            exit::PERMANENT
        );
        assert_eq!(
            batch_exit_code(&status(&[("failed", 3)], &[("auth", 2), ("permanent", 1)])),
            exit::AUTH
        );
        assert_eq!(
            batch_exit_code(&status(&[("failed", 1)], &[("refused", 1)])),
            exit::UNAVAILABLE
        );
        assert_eq!(
            batch_exit_code(&status(&[("sent", 1), ("deferred", 1)], &[])),
            exit::TRANSIENT
        );
        assert_eq!(
            batch_exit_code(&status(&[("sent", 1), ("cancelled", 1)], &[])),
            exit::UNAVAILABLE
        );
    }
}
