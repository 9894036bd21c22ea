//! A lane's claimed messages through their chains of ways out
//! ([`process_group`]), run by a worker lane (worker.rs): the policy check,
//! then one try per way out, and the outcome to record. The messages of a
//! group that go out the same way are tried in one plugin call. The few
//! database steps run on the lane's runtime handle; the plugin calls run on
//! the lane's thread, outside any runtime.

use std::sync::Arc;
use std::time::Duration;

use mailhost_plugin_api::{ErrorClass, PluginError};

use super::stats::{OPERATING, UNABLE_TO_CONNECT};
use super::worker::{stored_chain, AccountLimits, Deliver, Recheck, Shared};
use super::{now_ms, AttemptRecord, MessageRecord, Settle, State, Store};
use crate::policy::Candidate;

/// The server's reply code in an error: the structured code when the plugin
/// gave one, else the first three-digit 2xx–5xx number in the text.
fn code_of(e: &PluginError) -> Option<String> {
    if e.code != 0 {
        return Some(e.code.to_string());
    }
    reply_code(e.message())
}

fn reply_code(text: &str) -> Option<String> {
    // A reply code stands alone: after the start, a space or `:`/`(`/`[`,
    // and before the end, a space, `-` (a multi-line reply) or closing
    // punctuation. Digits inside a word (a file name, a hex id) are not one.
    let b = text.as_bytes();
    (0..b.len().saturating_sub(2)).find_map(|i| {
        let code = &b[i..i + 3];
        let before_ok = i == 0 || matches!(b[i - 1], b' ' | b'\t' | b':' | b'(' | b'[' | b'\n');
        let after_ok = b.get(i + 3).is_none_or(|c| {
            matches!(
                c,
                b' ' | b'-' | b'\r' | b'\n' | b')' | b']' | b',' | b';' | b'.'
            )
        });
        (before_ok
            && after_ok
            && matches!(code[0], b'2'..=b'5')
            && code.iter().all(u8::is_ascii_digit))
        .then(|| String::from_utf8_lossy(code).into_owned())
    })
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

/// A message's outcome: its tries and the state to record.
pub(super) type Done = (Vec<AttemptRecord>, Settle);

/// Where a message stands in its chain between tries.
pub(super) struct Walk {
    chain: Vec<Candidate>,
    attempts: Vec<AttemptRecord>,
    pos: usize,
    since: Option<i64>,
    last_error: Option<String>,
}

/// A lane's claimed messages, in order, each with its outcome (the ones
/// left untried because `stop()` said so are not in the answer).
///
/// Messages whose next try goes out the same way, through a plugin that
/// overlaps a group ([`Deliver::tries_together`]) and an account with no
/// limit to take per try (`max_per_minute`, `max_concurrent`), are tried in
/// **one** plugin call ([`Deliver::attempt_many`]: SMTP overlaps them on one
/// thread); a message that such a try leaves for a later way out goes
/// on alone, as does every other message.
pub(super) fn process_group<D: Deliver>(
    sh: &Arc<Shared<D>>,
    rt: &tokio::runtime::Handle,
    recs: Vec<MessageRecord>,
    stop: impl Fn() -> bool,
) -> Vec<(MessageRecord, Vec<AttemptRecord>, Settle)> {
    let mut out = Vec::with_capacity(recs.len());
    // Per way out (by label, in claim order): the messages that go together.
    let mut groups: Vec<Together> = Vec::new();
    let mut alone: Vec<(MessageRecord, Walk)> = Vec::new();
    for rec in recs {
        let mut w = match start(sh, &rec) {
            Ok(w) => w,
            Err((attempts, s)) => {
                out.push((rec, attempts, s));
                continue;
            }
        };
        skip_builtin(&mut w);
        let together = (rec.action == "send")
            .then(|| w.chain.get(w.pos).cloned())
            .flatten()
            .filter(|way| sh.deliver.tries_together(way))
            .and_then(|way| {
                let limits = sh.deliver.limits(way.account.as_deref()?);
                (limits.max_per_minute.is_none() && limits.max_concurrent.is_none())
                    .then_some((way, limits))
            });
        match together {
            Some((way, limits)) => match groups.iter_mut().find(|g| g.way.label == way.label) {
                Some(g) => g.members.push((rec, w)),
                None => groups.push(Together {
                    way,
                    limits,
                    members: vec![(rec, w)],
                }),
            },
            None => alone.push((rec, w)),
        }
    }
    for Together {
        way,
        limits,
        members,
    } in groups
    {
        if members.len() == 1 {
            alone.extend(members);
            continue;
        }
        let slots = sh.account_slots(way.account.as_deref().unwrap_or(&way.label));
        let mut members = members.into_iter().peekable();
        while members.peek().is_some() {
            if stop() {
                return out;
            }
            // No more at once than the account's sends in flight in this process.
            let n = slots
                .available_permits()
                .clamp(1, sh.cfg.per_account.max(1));
            let chunk: Vec<(MessageRecord, Walk)> = members.by_ref().take(n).collect();
            // (The account's semaphore is never closed: acquiring only waits.)
            let Ok(permits) = rt.block_on(slots.clone().acquire_many_owned(chunk.len() as u32))
            else {
                return out;
            };
            let at = now_ms();
            let t0 = std::time::Instant::now();
            let refs: Vec<&MessageRecord> = chunk.iter().map(|(r, _)| r).collect();
            tracing::debug!(
                "outbox: {} messages out through `{}` in one plugin call",
                refs.len(),
                way.label
            );
            let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sh.deliver.attempt_many(&refs, &way)
            }))
            .unwrap_or_default();
            drop(permits);
            let elapsed = t0.elapsed();
            let mut results = results.into_iter();
            for (rec, mut w) in chunk {
                let result = results.next().unwrap_or_else(|| {
                    Err(PluginError::permanent(format!(
                        "the call into plugin `{}` did not return (it panicked)",
                        way.plugin.as_deref().unwrap_or("?")
                    )))
                });
                let done = match after_try(sh, rt, &rec, &mut w, &way, &limits, at, elapsed, result)
                {
                    Some(done) => done,
                    None => walk_on(sh, rt, &rec, w),
                };
                out.push((rec, done.0, done.1));
            }
        }
    }
    for (rec, w) in alone {
        if stop() {
            break;
        }
        let (attempts, s) = walk_on(sh, rt, &rec, w);
        out.push((rec, attempts, s));
    }
    out
}

/// Messages of a lane's group whose next try goes out the same way.
struct Together {
    way: Candidate,
    limits: AccountLimits,
    members: Vec<(MessageRecord, Walk)>,
}

/// The stored chain and the claim-time policy check: the walk to go on
/// with, or the outcome already (held, refused, an unreadable chain).
fn start<D: Deliver>(sh: &Arc<Shared<D>>, rec: &MessageRecord) -> Result<Walk, Done> {
    let now = now_ms();
    let pos0 = rec.chain_pos as usize;
    let chain = match stored_chain(&rec.decision_json) {
        Ok(c) => c,
        Err(why) => {
            return Err((
                Vec::new(),
                settle_to(State::Failed, now, pos0, None, Some(why)),
            ))
        }
    };
    match sh.deliver.recheck(rec, &chain) {
        Recheck::Go => Ok(Walk {
            chain,
            attempts: Vec::new(),
            pos: pos0,
            since: rec.position_since,
            last_error: None,
        }),
        Recheck::Hold(why) => {
            let next = now + sh.cfg.hold.as_millis() as i64;
            let s = settle_to(
                State::Deferred,
                next,
                pos0,
                rec.position_since,
                Some(format!("held: {why}")),
            );
            Err((Vec::new(), s))
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
            Err((vec![a], s))
        }
    }
}

/// Steps over ways out that no plugin sends through (`builtin`).
fn skip_builtin(w: &mut Walk) {
    while let Some(way) = w.chain.get(w.pos) {
        if !(way.is_builtin() || way.plugin.is_none()) {
            break;
        }
        w.pos += 1;
        w.since = None;
    }
}

/// One try per way out from `w.pos` on, until the message is done.
fn walk_on<D: Deliver>(
    sh: &Arc<Shared<D>>,
    rt: &tokio::runtime::Handle,
    rec: &MessageRecord,
    mut w: Walk,
) -> Done {
    loop {
        skip_builtin(&mut w);
        let Some(way) = w.chain.get(w.pos).cloned() else {
            let why = w
                .last_error
                .unwrap_or_else(|| "the policy chain holds no way out to try".into());
            return (
                w.attempts,
                settle_to(State::Failed, now_ms(), w.pos, None, Some(why)),
            );
        };
        let (pos, since) = (w.pos, w.since);
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
                    return (w.attempts, s);
                }
                Err(e) => {
                    let next = now_ms() + sh.cfg.hold.as_millis() as i64;
                    let s = settle_to(State::Deferred, next, pos, since, Some(e.to_string()));
                    return (w.attempts, s);
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
                        w.attempts,
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
        if let Some(done) = after_try(sh, rt, rec, &mut w, &way, &limits, at, t0.elapsed(), result)
        {
            return done;
        }
    }
}

/// Records a try's result in `w` and says what it means: the outcome when
/// the message is done (sent, deferred, failed), `None` to go on with the
/// next way out (`w.pos` moved on).
#[allow(clippy::too_many_arguments)] // one try's facts, each used once
fn after_try<D: Deliver>(
    sh: &Arc<Shared<D>>,
    rt: &tokio::runtime::Handle,
    rec: &MessageRecord,
    w: &mut Walk,
    way: &Candidate,
    limits: &AccountLimits,
    at: i64,
    elapsed: Duration,
    result: Result<String, PluginError>,
) -> Option<Done> {
    let pos = w.pos;
    let account = way.account.clone().unwrap_or_else(|| way.label.clone());
    let class = match &result {
        Ok(_) => "ok",
        Err(e) => e.class().name(),
    };
    sh.stats.record(&account, class, elapsed.as_secs_f64());
    match result {
        Ok(reply) => {
            w.attempts.push(AttemptRecord {
                at,
                chain_pos: pos as u32,
                candidate: way.label.clone(),
                plugin: way.plugin.clone(),
                class: "ok".into(),
                code: reply_code(&reply),
                text: reply,
            });
            rt.block_on(sh.note_status(&account, OPERATING, ""));
            let s = settle_to(State::Sent, now_ms(), pos, w.since, None);
            Some((std::mem::take(&mut w.attempts), s))
        }
        Err(e) => {
            let class = e.class();
            let text = e.to_string();
            w.attempts.push(AttemptRecord {
                at,
                chain_pos: pos as u32,
                candidate: way.label.clone(),
                plugin: way.plugin.clone(),
                class: class.name().into(),
                code: code_of(&e),
                text: text.clone(),
            });
            w.last_error = Some(format!("{}: {text}", way.label));
            if class == ErrorClass::UNAVAILABLE {
                rt.block_on(sh.note_status(&account, UNABLE_TO_CONNECT, e.message()));
            }
            if class == ErrorClass::PERMANENT {
                let s = settle_to(State::Failed, now_ms(), pos, w.since, w.last_error.clone());
                return Some((std::mem::take(&mut w.attempts), s));
            }
            if class == ErrorClass::TRANSIENT {
                let first = *w.since.get_or_insert(at);
                let n = rec.attempts_count + w.attempts.len() as u32;
                let wait = super::backoff(
                    n,
                    sh.cfg.initial_backoff,
                    sh.cfg.max_backoff,
                    e.retry_after_ms().map(Duration::from_millis),
                );
                let next = now_ms() + wait.as_millis() as i64;
                let max_age = limits.max_age.unwrap_or(sh.cfg.max_age);
                if next - first <= max_age.as_millis() as i64 {
                    let s = settle_to(State::Deferred, next, pos, w.since, w.last_error.clone());
                    return Some((std::mem::take(&mut w.attempts), s));
                }
            }
            // Auth, config, unavailable, unsupported, or a transient error past
            // the maximum age: the next way out, at once.
            w.pos += 1;
            w.since = None;
            None
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
        // digits inside a word are not a code
        assert_eq!(
            reply_code("written to ./outbox/20261130T205926871Z-f23068f4910-d261a594_x-0.eml"),
            None
        );
        assert_eq!(reply_code("250-PIPELINING").as_deref(), Some("250"));
        assert_eq!(
            reply_code("server said: 554 5.7.1 rejected").as_deref(),
            Some("554")
        );
        let e = PluginError::transient("Graph throttled").with_code(429);
        assert_eq!(code_of(&e).as_deref(), Some("429"));
    }
}
