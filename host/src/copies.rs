//! Copies in Sent for other accounts.
//!
//! `save_copy_to = "mailbox"` on any account makes the host store each message
//! sent through that account in the Sent folder of the account `mailbox`,
//! whose plugin has [`Capabilities::SAVE_COPY_FOR_OTHERS`] (the IMAP plugin).
//! It is a step of its own after the send succeeded: the host calls the
//! target's `compose` with `options_json.save_copy_for = "<account sent
//! through>"` (see `mailhost_plugin_api::options::SAVE_COPY_FOR`), once, and a
//! failure is a warning on the delivery — the message is never sent again.

use std::collections::BTreeMap;

use mailhost_plugin_api::options::SAVE_COPY_FOR;
use mailhost_plugin_api::{Capabilities, ComposeKind, OutgoingMessage};
use serde::Serialize;

use crate::config::{Account, ConfigError, Loc};
use crate::engine::{Delivery, Engine};
use crate::loader::PluginSet;
use crate::policy::Candidate;

/// `save_copy_to` of an account: the account that keeps the copies, and where it was set.
#[derive(Debug, Clone, Serialize)]
pub struct CopyTarget {
    pub account: String,
    pub loc: Loc,
}

/// What became of the copy after a send.
#[derive(Debug, Clone, Serialize)]
pub struct CopyOutcome {
    /// The account that stores the copy.
    pub account: String,
    pub saved: bool,
    /// Where it went (`imap://…;UID=…`), or why it was not stored.
    pub message: String,
    /// Where the copy is (an IMAP URL), when saved.
    pub location: String,
}

/// Config errors for `save_copy_to`: the target must exist, be another
/// account, and have a plugin that can store copies for other accounts.
pub fn check_config(accounts: &BTreeMap<String, Account>, plugins: &PluginSet) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for a in accounts.values() {
        let Some(t) = &a.save_copy_to else { continue };
        let err = |message: String, hint: String| ConfigError {
            loc: t.loc.clone(),
            message,
            hint,
        };
        let capable: Vec<&str> = accounts
            .values()
            .filter(|x| {
                plugins.get(&x.plugin).is_some_and(|p| {
                    p.manifest()
                        .capabilities
                        .contains(Capabilities::SAVE_COPY_FOR_OTHERS)
                })
            })
            .map(|x| x.name.as_str())
            .collect();
        let hint = format!(
            "name an account whose plugin stores copies (e.g. plugin = \"imap\"); such accounts here: {}",
            if capable.is_empty() { "(none)".to_string() } else { capable.join(", ") }
        );
        match accounts.get(&t.account) {
            None => errors.push(err(
                format!("account `{}`: save_copy_to names account `{}`, which does not exist", a.name, t.account),
                hint,
            )),
            Some(target) if target.name == a.name => errors.push(err(
                format!("account `{}`: save_copy_to names the account itself", a.name),
                "an IMAP account files its own sent mail (its `save_to_sent` setting); remove save_copy_to here".into(),
            )),
            Some(target) if !capable.contains(&target.name.as_str()) => errors.push(err(
                format!(
                    "account `{}`: save_copy_to names `{}`, whose plugin `{}` cannot store copies for other accounts",
                    a.name, target.name, target.plugin
                ),
                hint,
            )),
            Some(_) => {}
        }
    }
    errors
}

/// The transport's own warning on a successful send (`details_json.warning`,
/// e.g. an IMAP send whose copy in Sent failed).
pub(crate) fn receipt_warnings(r: &mailhost_plugin_api::Receipt) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(r.details_json.as_str())
        .ok()
        .and_then(|d| d["warning"].as_str().map(|w| vec![w.to_string()]))
        .unwrap_or_default()
}

/// After a successful send through `delivery.candidate`: stores the copy when
/// that account has `save_copy_to`, and records the outcome on the delivery.
pub(crate) fn after_send(
    engine: &Engine,
    user: Option<&str>,
    msg: &OutgoingMessage,
    delivery: &mut Delivery,
) {
    let Some(source) = delivery.candidate.account.clone() else {
        return;
    };
    let settings = engine.settings();
    let Some(target) = settings
        .accounts
        .get(&source)
        .and_then(|a| a.save_copy_to.as_ref())
        .and_then(|t| settings.accounts.get(&t.account))
    else {
        return;
    };
    let outcome = store(engine, user, msg, &source, target);
    if !outcome.saved {
        tracing::warn!(account = %source, copy_to = %target.name, "the message was sent, but no copy was stored: {}", outcome.message);
        delivery.warnings.push(format!(
            "the message was sent, but its copy in {}'s Sent folder was not stored: {}",
            target.name, outcome.message
        ));
    }
    delivery.copy = Some(outcome);
}

fn store(
    engine: &Engine,
    user: Option<&str>,
    msg: &OutgoingMessage,
    source: &str,
    target: &Account,
) -> CopyOutcome {
    let failed = |message: String| CopyOutcome {
        account: target.name.clone(),
        saved: false,
        message,
        location: String::new(),
    };
    let candidate = Candidate::for_account(target);
    let transport = match engine.transport(&candidate) {
        Ok(t) => t,
        Err(e) => return failed(e.to_string()),
    };
    // The target's own per-user credentials, then the request for a copy.
    let mut m = engine.options_for(msg, user, Some(&target.name));
    let mut opts: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(m.options_json.as_str()).unwrap_or_default();
    opts.insert(SAVE_COPY_FOR.to_string(), source.into());
    m.options_json = serde_json::Value::Object(opts).to_string().into();
    match transport.compose(&m).into_result() {
        Ok(o) if o.kind == ComposeKind::COPY_SAVED => CopyOutcome {
            account: target.name.clone(),
            saved: true,
            message: o.message.to_string(),
            location: o.draft_id.to_string(),
        },
        Ok(o) => failed(format!(
            "the plugin of `{}` answered {:?} instead of storing a copy; it may not support save_copy_to",
            target.name, o.kind
        )),
        Err(e) => failed(e.to_string()),
    }
}
