//! The engine as the outbox worker's [`Deliver`]: the claim-time policy
//! check and one try through one way out.

use std::sync::Arc;

use mailhost_plugin_api::PluginError;

use super::worker::{AccountLimits, Deliver, Recheck};
use super::MessageRecord;
use crate::policy::{Action, Candidate};
use crate::submit::Outcome;

/// Sends stored messages through the engine's plugins.
#[derive(Clone)]
pub struct EngineDeliver(pub Arc<crate::live::LiveEngine>);

impl std::fmt::Debug for EngineDeliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineDeliver")
    }
}

impl Deliver for EngineDeliver {
    fn recheck(&self, rec: &MessageRecord, chain: &[Candidate]) -> Recheck {
        let engine = self.0.get();
        let s = engine.settings();
        // The kill switch holds mail: it goes out once sending is switched on again.
        if !s.policy.enabled {
            return Recheck::Hold(format!(
                "sending is switched off (policy.enabled = false at {})",
                s.policy.loc_of("enabled")
            ));
        }
        // The library's claim-time check, for each way out still ahead: a
        // disabled tenant stops the message; a removed account or a plugin
        // that is gone only takes that way out away.
        let mut last = None;
        for c in chain.iter().skip(rec.chain_pos as usize) {
            match engine.recheck(rec.tenant.as_deref(), c) {
                Ok(()) => return Recheck::Go,
                Err(r) if r.rule.starts_with("tenant") => {
                    return Recheck::Refuse(format!("{}: {}", r.rule, r.message))
                }
                Err(r) => last = Some(format!("{}: {}", r.rule, r.message)),
            }
        }
        Recheck::Refuse(last.unwrap_or_else(|| "the stored policy chain holds no way out".into()))
    }

    fn limits(&self, account: &str) -> AccountLimits {
        match self.0.get().settings().accounts.get(account) {
            Some(a) => AccountLimits {
                max_per_minute: a.max_per_minute,
                max_concurrent: a.max_concurrent,
                max_age: a.max_age_secs.map(std::time::Duration::from_secs),
            },
            None => AccountLimits::default(),
        }
    }

    fn attempt(&self, rec: &MessageRecord, way_out: &Candidate) -> Result<String, PluginError> {
        if let Some(e) = gone(&self.0.get(), way_out) {
            return Err(e);
        }
        let action = if rec.action == "compose" {
            Action::Compose
        } else {
            Action::Send
        };
        let engine = self.0.get();
        // A send through a plugin that reads only the bytes needs no parse.
        let msg = Self::outgoing(&engine, rec, way_out, action)?;
        engine
            .attempt(action, way_out, rec.user.as_deref(), &msg)
            .map(reply_of)
    }

    fn tries_together(&self, way_out: &Candidate) -> bool {
        way_out
            .plugin
            .as_deref()
            .and_then(|p| self.0.get().plugins().get(p).map(|p| p.sends_groups()))
            .unwrap_or(false)
    }

    /// Sends go through the plugin's `send_many` in one call (composes, if
    /// any, one by one).
    fn attempt_many(
        &self,
        recs: &[&MessageRecord],
        way_out: &Candidate,
    ) -> Vec<Result<String, PluginError>> {
        if recs.iter().any(|r| r.action == "compose") {
            return recs.iter().map(|r| self.attempt(r, way_out)).collect();
        }
        let engine = self.0.get();
        if let Some(e) = gone(&engine, way_out) {
            return recs.iter().map(|_| Err(e.clone())).collect();
        }
        let mut users = Vec::with_capacity(recs.len());
        let mut ready = Vec::with_capacity(recs.len());
        let built: Vec<Result<(), PluginError>> = recs
            .iter()
            .map(|r| {
                let m = Self::outgoing(&engine, r, way_out, Action::Send)?;
                users.push(r.user.as_deref());
                ready.push(m);
                Ok(())
            })
            .collect();
        let mut sent = engine.attempt_sends(way_out, &users, ready).into_iter();
        built
            .into_iter()
            .map(|m| match m {
                Ok(()) => sent
                    .next()
                    .unwrap_or_else(|| {
                        Err(PluginError::permanent(
                            "the engine answered fewer results than messages",
                        ))
                    })
                    .map(reply_of),
                Err(e) => Err(e),
            })
            .collect()
    }
}

impl EngineDeliver {
    /// What a plugin needs of a stored message: the bytes only when it reads
    /// only those, else the parts parsed again.
    fn outgoing(
        engine: &crate::engine::Engine,
        rec: &MessageRecord,
        way_out: &Candidate,
        action: Action,
    ) -> Result<mailhost_plugin_api::OutgoingMessage, PluginError> {
        let bytes_only = action == Action::Send
            && way_out
                .plugin
                .as_deref()
                .and_then(|p| engine.plugins().get(p))
                .is_some_and(|p| p.sends_mime_only());
        if bytes_only {
            as_stored(rec)
        } else {
            restore(rec)
        }
    }
}

/// The error for a way out whose account left the config since the message was queued.
fn gone(engine: &crate::engine::Engine, way_out: &Candidate) -> Option<PluginError> {
    let a = way_out.account.as_deref()?;
    (!engine.settings().accounts.contains_key(a))
        .then(|| PluginError::config(format!("account `{a}` is no longer configured")))
}

/// The server's reply for the attempt record.
fn reply_of(o: Outcome) -> String {
    match o {
        Outcome::Sent(d) => {
            let mut reply = d.server_reply;
            for (addr, why) in &d.rejected {
                reply.push_str(&format!("; rejected {addr}: {why}"));
            }
            reply
        }
        Outcome::Composed(c) if c.web_link.is_empty() => c.message,
        Outcome::Composed(c) => format!("{} ({})", c.message, c.web_link),
    }
}

/// The message as it was built, with its exact bytes and ids but no parts:
/// for a plugin whose `send` reads only those
/// ([`mailhost_plugin_api::Manifest::send_reads_mime_only`]).
fn as_stored(rec: &MessageRecord) -> Result<mailhost_plugin_api::OutgoingMessage, PluginError> {
    let mime = rec
        .mime
        .as_deref()
        .ok_or_else(|| PluginError::permanent("the stored message has no MIME body"))?;
    Ok(crate::message::stored(
        mime,
        (!rec.envelope_from.is_empty()).then_some(rec.envelope_from.as_str()),
        &rec.envelope_to,
        &rec.message_id,
        rec.idempotency_key.as_deref().unwrap_or(&rec.message_id),
        &rec.options_json,
    ))
}

/// The message as it was built, from what the outbox stored: the exact
/// bytes and ids, the structured parts parsed again ([`crate::message::restore`]).
fn restore(rec: &MessageRecord) -> Result<mailhost_plugin_api::OutgoingMessage, PluginError> {
    let mime = rec
        .mime
        .as_deref()
        .ok_or_else(|| PluginError::permanent("the stored message has no MIME body"))?;
    let env_from = (!rec.envelope_from.is_empty()).then_some(rec.envelope_from.as_str());
    let key = rec.idempotency_key.as_deref().unwrap_or(&rec.message_id);
    crate::message::restore(
        mime,
        env_from,
        &rec.envelope_to,
        &rec.message_id,
        key,
        &rec.options_json,
    )
    .map_err(|e| PluginError::permanent(format!("the stored message cannot be read: {e}")))
}
