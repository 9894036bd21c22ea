//! The engine as the outbox worker's [`Deliver`]: the claim-time policy
//! check and one try through one way out.

use std::sync::Arc;

use mailhost_plugin_api::PluginError;

use super::worker::{Deliver, Recheck};
use super::MessageRecord;
use crate::engine::Engine;
use crate::policy::{Action, Candidate};

/// Sends stored messages through the engine's plugins.
#[derive(Clone)]
pub struct EngineDeliver(pub Arc<Engine>);

impl std::fmt::Debug for EngineDeliver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineDeliver")
    }
}

impl Deliver for EngineDeliver {
    fn recheck(&self, rec: &MessageRecord) -> Recheck {
        let s = self.0.settings();
        if !s.policy.enabled {
            return Recheck::Hold(
                "sending is switched off ([policy] enabled = false, the kill switch)".into(),
            );
        }
        if let Some(t) = &rec.tenant {
            match s.tenants.get(t) {
                None => return Recheck::Refuse(format!("tenant `{t}` is no longer configured")),
                Some(t) if !t.enabled => {
                    return Recheck::Refuse(format!(
                        "tenant `{}` is disabled ([tenants.{}] enabled = false)",
                        t.name, t.name
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(p) = &rec.purpose {
            if !s.purposes.contains_key(p) {
                return Recheck::Refuse(format!("purpose `{p}` is no longer configured"));
            }
        }
        match super::worker::stored_chain(&rec.decision_json) {
            Ok(chain) => {
                let left = chain
                    .iter()
                    .skip(rec.chain_pos as usize)
                    .any(|c| match &c.account {
                        Some(a) => s.accounts.contains_key(a),
                        None => !c.is_builtin(),
                    });
                if left {
                    Recheck::Go
                } else {
                    let names: Vec<&str> = chain.iter().map(|c| c.label.as_str()).collect();
                    Recheck::Refuse(format!(
                        "no way out of the stored chain ({}) is configured any more (account removed)",
                        names.join(", ")
                    ))
                }
            }
            Err(e) => Recheck::Refuse(e),
        }
    }

    fn max_per_minute(&self, account: &str) -> Option<u32> {
        self.0
            .settings()
            .accounts
            .get(account)
            .and_then(|a| a.max_per_minute)
    }

    fn attempt(&self, rec: &MessageRecord, way_out: &Candidate) -> Result<String, PluginError> {
        if let Some(a) = &way_out.account {
            if !self.0.settings().accounts.contains_key(a) {
                return Err(PluginError::config(format!(
                    "account `{a}` is no longer configured"
                )));
            }
        }
        let action = if rec.action == "compose" {
            Action::Compose
        } else {
            Action::Send
        };
        let msg = restore(rec)?;
        self.0.attempt(action, way_out, rec.user.as_deref(), &msg)
    }
}

/// The message as it was built, from what the outbox stored.
fn restore(rec: &MessageRecord) -> Result<mailhost_plugin_api::OutgoingMessage, PluginError> {
    let mime = rec
        .mime
        .as_deref()
        .ok_or_else(|| PluginError::permanent("the stored message has no MIME body"))?;
    let options: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&rec.options_json).unwrap_or_default();
    let env_from = (!rec.envelope_from.is_empty()).then_some(rec.envelope_from.as_str());
    let mut m = crate::message::from_eml(mime, env_from, &rec.envelope_to, options)
        .map_err(|e| PluginError::permanent(format!("the stored message cannot be read: {e}")))?;
    m.message_id = rec.message_id.clone().into();
    m.idempotency_key = rec
        .idempotency_key
        .clone()
        .unwrap_or_else(|| rec.message_id.clone())
        .into();
    Ok(m)
}
