//! What the policy reads and answers: the [`Request`], the [`World`] it sees,
//! the [`Decision`] with its chain of [`Candidate`]s and its trace.

use std::collections::BTreeMap;

use mailhost_plugin_api::Capabilities;
use serde::Serialize;

/// The modes that go through Microsoft 365 on the web — sending with Graph,
/// drafts in Outlook on the web — whichever plugin serves them: what
/// `policy.allow_microsoft365_web` governs.
pub const MICROSOFT365_MODES: &[&str] = &["graph", "m365-draft"];

/// Send or compose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Send,
    Compose,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Compose => "compose",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "send" => Ok(Self::Send),
            "compose" => Ok(Self::Compose),
            _ => Err(format!("action `{s}` is not `send` or `compose`")),
        }
    }
}

/// Who asks, for whom, and what.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Request {
    pub user: Option<String>,
    pub tenant: Option<String>,
    pub purpose: Option<String>,
    /// A mode (or account) the user picked for this request.
    pub mode: Option<String>,
    /// The From the request sets, if any.
    pub from: Option<String>,
    /// Every recipient (for purpose rules).
    pub recipients: Vec<String>,
}

/// What a plugin's probe said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub available: bool,
    /// Level, or a comma-separated list of the modes available (`mapi-simple`).
    pub level: String,
    pub reason: String,
}

/// What the policy can see of the machine: what each loaded plugin's manifest
/// says (modes, capabilities, whether it needs an account), its probe, and the
/// accounts' last status. The policy decides from these, never from a plugin's
/// name, so a third-party plugin with the same modes and capabilities is
/// treated like a built-in one.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Plugin name → probe result. A plugin not listed is not loaded.
    pub probes: BTreeMap<String, ProbeResult>,
    /// Plugin name → the modes it serves, in its manifest's order (a family of
    /// modes from the most to the least capable: `mapi-full`, `mapi-simple`).
    pub plugin_modes: BTreeMap<String, Vec<String>>,
    /// Plugin name → its manifest's capabilities: only `SEND` plugins are in a
    /// send chain, only `COMPOSE` plugins in a compose chain. A plugin not
    /// listed can do neither.
    pub capabilities: BTreeMap<String, Capabilities>,
    /// Account name → reason, for accounts whose last status was "unable to connect".
    pub unreachable: BTreeMap<String, String>,
    /// Plugins that cannot work without an account's settings (their schema
    /// requires keys): they serve a mode only through a configured account.
    /// The others (desktop clients) can serve their modes with no account.
    pub needs_account: std::collections::BTreeSet<String>,
}

impl World {
    /// Plugins serving `mode`, in name order.
    pub(super) fn plugins_serving(&self, mode: &str) -> Vec<&str> {
        self.plugin_modes
            .iter()
            .filter(|(_, modes)| modes.iter().any(|m| m == mode))
            .map(|(p, _)| p.as_str())
            .collect()
    }

    /// The capability `action` needs from a plugin.
    fn needed(action: Action) -> Capabilities {
        match action {
            Action::Send => Capabilities::SEND,
            Action::Compose => Capabilities::COMPOSE,
        }
    }

    /// Whether `plugin`'s manifest says it can do `action`; `Err(reason)` if not.
    pub(super) fn can(&self, plugin: &str, action: Action) -> Result<(), String> {
        match self.capabilities.get(plugin) {
            None => Err(format!("plugin `{plugin}` is not loaded")),
            Some(c) if c.contains(Self::needed(action)) => Ok(()),
            Some(c) => Err(format!(
                "plugin `{plugin}` cannot {} (its capabilities: {})",
                action.name(),
                match c.names() {
                    n if n.is_empty() => "none".to_string(),
                    n => n.join(", "),
                }
            )),
        }
    }

    /// Whether `plugin` can serve `mode` now, per its probe; `Err(reason)` if not.
    ///
    /// A probe's level is a comma-separated list; an entry offers `mode` when
    /// it is the mode itself, or when it names the suffix of one of the
    /// plugin's modes (`full` → `mapi-full`): then it offers that mode and the
    /// modes listed after it in the manifest with the same prefix (`full`
    /// offers `mapi-full` and `mapi-simple`; `simple` only `mapi-simple`).
    pub(super) fn mode_available(&self, plugin: &str, mode: &str) -> Result<String, String> {
        match self.probes.get(plugin) {
            None => Err(format!("plugin `{plugin}` is not loaded")),
            Some(p) if !p.available => Err(if p.reason.is_empty() {
                "probe says unavailable".to_string()
            } else {
                p.reason.clone()
            }),
            Some(p) => {
                if p.level.is_empty() {
                    return Ok("available".to_string());
                }
                let modes = self
                    .plugin_modes
                    .get(plugin)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if level_offers(&p.level, mode, modes) {
                    Ok(format!("available (level {})", p.level))
                } else {
                    Err(format!(
                        "probe level is `{}`, which does not offer {mode}",
                        p.level
                    ))
                }
            }
        }
    }
}

/// Whether a probe's `level` offers `mode` among a plugin's `modes` (see
/// [`World::mode_available`]).
pub(super) fn level_offers(level: &str, mode: &str, modes: &[String]) -> bool {
    level
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .any(|l| {
            if l == mode {
                return true;
            }
            let suffix = format!("-{l}");
            let Some(i) = modes.iter().position(|m| m.ends_with(&suffix)) else {
                return false;
            };
            let prefix = &modes[i][..modes[i].len() - l.len()];
            modes[i..]
                .iter()
                .any(|m| m == mode && m.starts_with(prefix))
        })
}

/// One way out: an account (a configured plugin + settings), a desktop mode
/// served by a plugin with no account, or the host app's own editor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    /// The account name, or `mode:<mode>` for a plugin used without an account, or `builtin`.
    pub label: String,
    pub account: Option<String>,
    pub plugin: Option<String>,
    pub mode: String,
}

impl Candidate {
    /// The candidate for a configured account, in the first mode its plugin serves.
    pub fn for_account(a: &crate::config::Account) -> Self {
        Self {
            label: a.name.clone(),
            account: Some(a.name.clone()),
            plugin: Some(a.plugin.clone()),
            mode: a.modes.first().cloned().unwrap_or_else(|| a.plugin.clone()),
        }
    }

    pub fn is_builtin(&self) -> bool {
        self.mode == "builtin"
    }
}

/// One rule: what it looked at, what it saw, what it chose, and where it is configured.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TraceStep {
    pub rule: String,
    pub saw: String,
    pub chose: String,
    pub source: String,
}

/// Why nothing may be sent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Refusal {
    pub rule: String,
    pub message: String,
}

/// The policy's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub action: Action,
    pub chain: Vec<Candidate>,
    pub trace: Vec<TraceStep>,
    pub refused: Option<Refusal>,
    /// The From to use when the request sets none (purpose, tenant, user default).
    pub default_from: Option<String>,
    /// Recipients to use when the request names none (a support purpose's address).
    pub default_to: Vec<String>,
    /// Attach a system-information file (a support purpose).
    pub attach_system_info: bool,
}

impl Decision {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, t) in self.trace.iter().enumerate() {
            out.push_str(&format!(
                "{:>2}. {}\n      saw:   {}\n      chose: {}\n      from:  {}\n",
                i + 1,
                t.rule,
                t.saw,
                t.chose,
                t.source
            ));
        }
        if let Some(r) = &self.refused {
            out.push_str(&format!("REFUSED by {}: {}\n", r.rule, r.message));
        } else {
            let chain: Vec<String> = self
                .chain
                .iter()
                .map(|c| match &c.plugin {
                    Some(p) => format!("{} ({p}, {})", c.label, c.mode),
                    None => c.label.clone(),
                })
                .collect();
            out.push_str(&format!("chain: {}\n", chain.join(" -> ")));
        }
        out
    }
}

/// The address part of `Name <user@example.com>`, lower-case (as purposes list them).
pub(super) fn bare_address(mailbox: &str) -> String {
    mailbox
        .parse::<lettre::message::Mailbox>()
        .map(|m| m.email.to_string())
        .unwrap_or_else(|_| mailbox.to_string())
        .to_ascii_lowercase()
}

/// Recipients a purpose does not permit.
pub fn forbidden_recipients(allowed: &[String], recipients: &[String]) -> Vec<String> {
    if allowed.is_empty() {
        return Vec::new();
    }
    recipients
        .iter()
        .filter(|r| {
            let r = r.to_ascii_lowercase();
            let domain = r.rsplit('@').next().unwrap_or("").to_string();
            !allowed.iter().any(|a| {
                if let Some(d) = a.strip_prefix('@') {
                    domain == d
                } else if a.contains('@') {
                    *a == r
                } else {
                    domain == *a || domain.ends_with(&format!(".{a}"))
                }
            })
        })
        .cloned()
        .collect()
}
