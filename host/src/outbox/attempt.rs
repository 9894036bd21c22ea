//! One claimed message's attempts through its chain of ways out
//! ([`process`]), run by a worker lane (worker.rs): the policy check, then
//! one try per way out, and the outcome to record.

use std::sync::Arc;
use std::time::Duration;

use mailhost_plugin_api::{ErrorClass, PluginError};

use super::stats::{OPERATING, UNABLE_TO_CONNECT};
use super::worker::{stored_chain, Deliver, Recheck, Shared};
use super::{now_ms, AttemptRecord, MessageRecord, Settle, State, Store};

/// The server's reply code in an error: the structured code when the plugin
/// gave one, else the first three-digit 2xx–5xx number in the text.
fn code_of(e: &PluginError) -> Option<String> {
    if e.code != 0 {
        return Some(e.code.to_string());
    }
    reply_code(e.message())
}

fn reply_code(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 3 && matches!(w.as_bytes()[0], b'2'..=b'5'))
        .map(str::to_string)
}

fn settle_to(
    state: State,
    next: i64,
    pos: usize,
    since: Option<i64>,
    why: Option<String>,
) -> Settle {
    Settle {
        state,
        next_attempt_at: next,
        chain_pos: pos as u32,
        position_since: since,
        last_error: why,
    }
}

/// One claimed message, on a lane's blocking thread: the policy check, then
/// one try per way out. Returns the tries and the outcome to record. The
/// few database steps run on `rt`; the plugin call runs on this thread,
/// outside any runtime.
pub(super) fn process<D: Deliver>(
    sh: &Arc<Shared<D>>,
    rt: &tokio::runtime::Handle,
    rec: &MessageRecord,
) -> (Vec<AttemptRecord>, Settle) {
    let now = now_ms();
    let pos0 = rec.chain_pos as usize;
    let chain = match stored_chain(&rec.decision_json) {
        Ok(c) => c,
        Err(why) => {
            return (
                Vec::new(),
                settle_to(State::Failed, now, pos0, None, Some(why)),
            )
        }
    };
    match sh.deliver.recheck(rec, &chain) {
        Recheck::Go => {}
        Recheck::Hold(why) => {
            let next = now + sh.cfg.hold.as_millis() as i64;
            let s = settle_to(
                State::Deferred,
                next,
                pos0,
                rec.position_since,
                Some(format!("held: {why}")),
            );
            return (Vec::new(), s);
        }
        Recheck::Refuse(why) => {
            let a = AttemptRecord {
                at: now,
                chain_pos: rec.chain_pos,
                candidate: String::new(),
                plugin: None,
                class: "refused".into(),
                code: None,
                text: why.clone(),
            };
            let s = settle_to(
                State::Failed,
                now,
                pos0,
                None,
                Some(format!("refused by policy: {why}")),
            );
            return (vec![a], s);
        }
    }
    let mut attempts: Vec<AttemptRecord> = Vec::new();
    let mut pos = pos0;
    let mut since = rec.position_since;
    let mut last_error: Option<String> = None;
    loop {
        let Some(way) = chain.get(pos).cloned() else {
            let why =
                last_error.unwrap_or_else(|| "the policy chain holds no way out to try".into());
            return (
                attempts,
                settle_to(State::Failed, now_ms(), pos, None, Some(why)),
            );
        };
        if way.is_builtin() || way.plugin.is_none() {
            pos += 1;
            since = None;
            continue;
        }
        let limits = way
            .account
            .as_deref()
            .map(|a| sh.deliver.limits(a))
            .unwrap_or_default();
        // The account's budget per minute, shared through the database.
        if let (Some(account), Some(limit)) = (&way.account, limits.max_per_minute) {
            match rt.block_on(sh.outbox.store().take_rate_slot(account, limit, now_ms())) {
                Ok(None) => {}
                Ok(Some(wait)) => {
                    let why = format!(
                        "account `{account}` reached max_per_minute = {limit}; next try in {wait} ms"
                    );
                    let s = settle_to(State::Deferred, now_ms() + wait, pos, since, Some(why));
                    return (attempts, s);
                }
                Err(e) => {
                    let next = now_ms() + sh.cfg.hold.as_millis() as i64;
                    let s = settle_to(State::Deferred, next, pos, since, Some(e.to_string()));
                    return (attempts, s);
                }
            }
        }
        let slots = sh.account_slots(way.account.as_deref().unwrap_or(&way.label));
        let permit = rt.block_on(slots.acquire_owned());
        // The account's sends in flight, across processes.
        let slot = match (&way.account, limits.max_concurrent) {
            (Some(account), Some(limit)) => match rt.block_on(sh.send_slot(account, limit)) {
                Ok(slot) => Some(slot),
                Err(why) => {
                    drop(permit);
                    let next = now_ms() + 500 + rand::random_range(0..=500i64);
                    return (
                        attempts,
                        settle_to(State::Deferred, next, pos, since, Some(why)),
                    );
                }
            },
            _ => None,
        };
        let at = now_ms();
        let t0 = std::time::Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sh.deliver.attempt(rec, &way)
        }))
        .unwrap_or_else(|_| {
            Err(PluginError::permanent(format!(
                "the call into plugin `{}` did not return (it panicked)",
                way.plugin.as_deref().unwrap_or("?")
            )))
        });
        if let Some(slot) = slot {
            rt.block_on(sh.free_slot(&slot));
        }
        drop(permit);
        let account = way.account.clone().unwrap_or_else(|| way.label.clone());
        let class = match &result {
            Ok(_) => "ok",
            Err(e) => e.class().name(),
        };
        sh.stats.record(&account, class, t0.elapsed().as_secs_f64());
        match result {
            Ok(reply) => {
                attempts.push(AttemptRecord {
                    at,
                    chain_pos: pos as u32,
                    candidate: way.label.clone(),
                    plugin: way.plugin.clone(),
                    class: "ok".into(),
                    code: reply_code(&reply),
                    text: reply,
                });
                rt.block_on(sh.note_status(&account, OPERATING, ""));
                return (attempts, settle_to(State::Sent, now_ms(), pos, since, None));
            }
            Err(e) => {
                let class = e.class();
                let text = e.to_string();
                attempts.push(AttemptRecord {
                    at,
                    chain_pos: pos as u32,
                    candidate: way.label.clone(),
                    plugin: way.plugin.clone(),
                    class: class.name().into(),
                    code: code_of(&e),
                    text: text.clone(),
                });
                last_error = Some(format!("{}: {text}", way.label));
                if class == ErrorClass::UNAVAILABLE {
                    rt.block_on(sh.note_status(&account, UNABLE_TO_CONNECT, e.message()));
                }
                if class == ErrorClass::PERMANENT {
                    return (
                        attempts,
                        settle_to(State::Failed, now_ms(), pos, since, last_error),
                    );
                }
                if class == ErrorClass::TRANSIENT {
                    let first = *since.get_or_insert(at);
                    let n = rec.attempts_count + attempts.len() as u32;
                    let wait = super::backoff(
                        n,
                        sh.cfg.initial_backoff,
                        sh.cfg.max_backoff,
                        e.retry_after_ms().map(Duration::from_millis),
                    );
                    let next = now_ms() + wait.as_millis() as i64;
                    let max_age = limits.max_age.unwrap_or(sh.cfg.max_age);
                    if next - first <= max_age.as_millis() as i64 {
                        return (
                            attempts,
                            settle_to(State::Deferred, next, pos, since, last_error),
                        );
                    }
                }
                // Auth, config, unavailable, unsupported, or a transient error past
                // the maximum age: the next way out, at once.
                pos += 1;
                since = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_are_found_in_server_text() {
        assert_eq!(
            reply_code("250 2.0.0 Ok: queued as 1234").as_deref(),
            Some("250")
        );
        assert_eq!(
            reply_code("RCPT TO <rcpt-4xx@example.com>: 450 4.2.1 try later").as_deref(),
            Some("450")
        );
        assert_eq!(reply_code("connection refused (os error 111)"), None);
        let e = PluginError::transient("Graph throttled").with_code(429);
        assert_eq!(code_of(&e).as_deref(), Some("429"));
    }
}
