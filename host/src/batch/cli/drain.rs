//! `mailhost send-batch` without `--no-wait`: the outbox worker runs in this
//! process until the batch is done, with a progress bar (or plain lines when
//! stderr is not a terminal).

use super::*;

/// Runs the outbox worker in this process until the batch is done, only
/// deferred messages far in the future are left, or Ctrl-C.
pub(super) async fn drain(engine: &Arc<Engine>, outbox: &Outbox, id: &str, json: bool) -> u8 {
    let settings = engine.settings();
    let mut cfg = settings.outbox.worker(worker::owner_id(), &settings.policy);
    // Deleting old messages is the service's work, not a batch command's.
    cfg.retention_days = None;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let deliver = Arc::new(crate::outbox::deliver::EngineDeliver(Arc::new(
        crate::live::LiveEngine::new(engine.clone()),
    )));
    let stats = Arc::new(worker::Stats::default());
    let w = tokio::spawn(worker::run(
        outbox.clone(),
        deliver,
        cfg,
        stats,
        stop_rx,
        settings.outbox.drain(),
    ));
    let mut progress = Progress::new(id);
    let mut interrupted = false;
    let mut last: Option<BatchStatus> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        match outbox.store().batch_status(id).await {
            Ok(Some(s)) => {
                progress.show(&s);
                let stop = s.done || left_to_service(&s);
                last = Some(s);
                if stop {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => errln!("mailhost: reading batch {id}: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut ctrl_c => { interrupted = true; break; }
        }
    }
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = w.await {
        errln!("mailhost: the outbox worker: {e}");
    }
    // The final counts, after the worker settled what it had in flight.
    if let Ok(Some(s)) = outbox.store().batch_status(id).await {
        last = Some(s);
    }
    progress.finish();
    let Some(s) = last else {
        return report(
            json,
            exit::DATA,
            "not-found",
            &format!("no batch `{id}`"),
            None,
        );
    };
    let code = batch_exit_code(&s);
    if json {
        let mut v = serde_json::to_value(&s).unwrap_or_default();
        v["exit_code"] = serde_json::json!(code);
        v["interrupted"] = serde_json::json!(interrupted);
        print_json(&v);
    } else {
        outln!("{}", summary(&s));
    }
    let open = s.count(State::Queued) + s.count(State::Sending) + s.count(State::Deferred);
    if open > 0 {
        errln!(
            "mailhost: {open} message(s) of batch {id} are still queued (durably){}; send them with `mailhost send-batch --resume {id}` or let `mailhost serve` send them; drop them with `mailhost outbox cancel-batch {id}`",
            if interrupted { " after Ctrl-C" } else { "" }
        );
    }
    code
}

/// Only deferred messages are left, and the first is due later than the drain waits.
fn left_to_service(s: &BatchStatus) -> bool {
    s.count(State::Queued) == 0
        && s.count(State::Sending) == 0
        && s.next_due
            .is_some_and(|t| t - now_ms() > WAIT_FOR_DEFERRED_MS)
}

/// A progress bar on a terminal; plain lines when stderr is not one.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    id: String,
    last_line: String,
    last_at: std::time::Instant,
}

impl Progress {
    fn new(id: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg} (eta {eta})",
            ) {
                b.set_style(style);
            }
            b
        });
        Progress {
            bar,
            id: id.to_string(),
            last_line: String::new(),
            last_at: std::time::Instant::now(),
        }
    }

    fn show(&mut self, s: &BatchStatus) {
        let msg = format!(
            "sent {}, failed {}, deferred {}",
            s.count(State::Sent),
            s.count(State::Failed),
            s.count(State::Deferred)
        );
        match &self.bar {
            Some(b) => {
                b.set_length(s.batch.total);
                b.set_position(s.finished());
                b.set_message(msg);
            }
            None => {
                let line = format!(
                    "batch {}: {}/{} done ({msg})",
                    self.id,
                    s.finished(),
                    s.batch.total
                );
                if line != self.last_line
                    && (self.last_at.elapsed() >= Duration::from_secs(1) || s.done)
                {
                    errln!("{line}");
                    self.last_line = line;
                    self.last_at = std::time::Instant::now();
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.abandon();
        }
    }
}
