//! The policy layer: for one request, which ways out, in which order, and why.
//!
//! `decide` is pure: it reads the validated [`Settings`] and a [`World`] (what
//! the plugins' manifests and probes and the accounts' last status say) and
//! returns a [`Decision`] — an ordered chain of candidates and a trace of every
//! rule, what it saw and what it chose. It looks at plugins only through their
//! modes and capabilities, never their names. The engine walks the chain; the
//! error class of a failed attempt decides what comes next: transient → retry
//! with backoff, then the next candidate; auth, config, unavailable,
//! unsupported → the next candidate at once; permanent → stop (the table is in
//! `docs/admin-guide.md`, "Failures").

use std::collections::BTreeMap;

use mailhost_plugin_api::Capabilities;
use serde::Serialize;

use crate::config::{names, PolicySettings, Purpose, Settings, Tenant, User, ACCOUNT_CANDIDATE};

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
    fn plugins_serving(&self, mode: &str) -> Vec<&str> {
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
    fn can(&self, plugin: &str, action: Action) -> Result<(), String> {
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
    fn mode_available(&self, plugin: &str, mode: &str) -> Result<String, String> {
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
fn level_offers(level: &str, mode: &str, modes: &[String]) -> bool {
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
fn bare_address(mailbox: &str) -> String {
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

/// Decides how a request goes out.
///
/// The stages run in this order, each reading what the earlier ones found in
/// the one `Ctx`: kill switch → tenant → purpose → mode → accounts → chain →
/// purpose accounts → Microsoft 365 (`allow_microsoft365_web`) → no global
/// account → purpose support address → something left. A stage that refuses
/// ends the decision; its reason is the last step of the trace.
pub fn decide(s: &Settings, w: &World, action: Action, req: &Request) -> Decision {
    let mut ctx = Ctx::new(s, w, action, req);
    let outcome = ctx.run();
    ctx.into_decision(outcome)
}

/// One decision in the making: the inputs, the trace so far, and what the
/// stages have found.
struct Ctx<'a> {
    s: &'a Settings,
    w: &'a World,
    action: Action,
    req: &'a Request,
    trace: Vec<TraceStep>,
    /// The request's tenant, or the user's (stage tenant).
    tenant: Option<&'a Tenant>,
    /// The request's purpose (stage purpose).
    purpose: Option<&'a Purpose>,
    /// The requesting user's configuration, if the user is configured.
    user: Option<&'a User>,
    /// The mode to expand, and whether it is the user's own choice (stage mode).
    mode: String,
    user_picked: bool,
    /// The tenant's account, then the global one (stage accounts).
    system_accounts: Vec<String>,
    /// The global account: `policy.account`, else the one `preferred_sender`
    /// picks among the accounts no tenant uses (stage accounts).
    global: Option<String>,
    /// The ways out so far (stage chain).
    chain: Vec<Candidate>,
    default_from: Option<String>,
    default_to: Vec<String>,
    attach_system_info: bool,
}

impl<'a> Ctx<'a> {
    fn new(s: &'a Settings, w: &'a World, action: Action, req: &'a Request) -> Self {
        Self {
            s,
            w,
            action,
            req,
            trace: Vec::new(),
            tenant: None,
            purpose: None,
            user: req.user.as_ref().and_then(|u| s.users.get(u)),
            mode: String::new(),
            user_picked: false,
            system_accounts: Vec::new(),
            global: None,
            chain: Vec::new(),
            default_from: None,
            default_to: Vec::new(),
            attach_system_info: false,
        }
    }

    fn run(&mut self) -> Result<(), Refusal> {
        self.kill_switch()?;
        self.tenant()?;
        self.purpose()?;
        self.mode();
        self.accounts();
        self.chain();
        self.purpose_accounts();
        self.microsoft365_web();
        self.no_global_account()?;
        self.purpose_support();
        self.require_chain()
    }

    fn into_decision(self, outcome: Result<(), Refusal>) -> Decision {
        match outcome {
            Ok(()) => Decision {
                action: self.action,
                chain: self.chain,
                trace: self.trace,
                refused: None,
                default_from: self.default_from,
                default_to: self.default_to,
                attach_system_info: self.attach_system_info,
            },
            Err(r) => Decision {
                action: self.action,
                chain: Vec::new(),
                trace: self.trace,
                refused: Some(r),
                default_from: None,
                default_to: Vec::new(),
                attach_system_info: false,
            },
        }
    }

    fn step(
        &mut self,
        rule: &str,
        saw: impl Into<String>,
        chose: impl Into<String>,
        source: impl Into<String>,
    ) {
        self.trace.push(TraceStep {
            rule: rule.to_string(),
            saw: saw.into(),
            chose: chose.into(),
            source: source.into(),
        });
    }

    /// Records the refusal as the last step and returns it.
    fn refuse(&mut self, rule: &str, message: String, source: impl Into<String>) -> Refusal {
        self.step(rule, message.clone(), "refuse", source);
        Refusal {
            rule: rule.to_string(),
            message,
        }
    }

    fn policy(&self) -> &'a PolicySettings {
        &self.s.policy
    }

    /// The system mode for this action and its key in `[policy]`.
    fn system_mode(&self) -> (&'a str, &'static str) {
        let p = self.policy();
        match self.action {
            Action::Send => (&p.send_mode, "send_mode"),
            Action::Compose => (&p.compose_mode, "compose_mode"),
        }
    }

    /// The candidate for a configured account: in the mode being decided when
    /// the account serves it, else in its plugin's first mode.
    fn account_candidate(&self, name: &str) -> Option<Candidate> {
        let a = self.s.accounts.get(name)?;
        let mut c = Candidate::for_account(a);
        if a.modes.contains(&self.mode) {
            c.mode = self.mode.clone();
        }
        Some(c)
    }

    /// Whether the candidate's plugin can do this action (its manifest's
    /// capabilities); if not, the trace says so under `rule`.
    fn capable(&mut self, c: &Candidate, rule: &str) -> bool {
        let Some(p) = &c.plugin else {
            return true;
        };
        match self.w.can(p, self.action) {
            Ok(()) => true,
            Err(why) => {
                self.step(rule, format!("`{}`: {why}", c.label), "skip", "manifest");
                false
            }
        }
    }

    fn accounts_serving(&self, mode: &str) -> Vec<String> {
        self.s
            .accounts
            .values()
            .filter(|a| a.modes.iter().any(|m| m == mode))
            .map(|a| a.name.clone())
            .collect()
    }

    /// Whether an account's plugin serves a Microsoft 365 mode.
    fn is_microsoft365_account(&self, name: &str) -> bool {
        self.s.accounts.get(name).is_some_and(|a| {
            a.modes
                .iter()
                .any(|m| MICROSOFT365_MODES.contains(&m.as_str()))
        })
    }

    /// Whether a mode (or an account named as a mode) goes through Microsoft 365.
    fn is_microsoft365_way(&self, mode: &str) -> bool {
        MICROSOFT365_MODES.contains(&mode) || self.is_microsoft365_account(mode)
    }

    /// The accounts that tenants have as their own.
    fn tenant_accounts(&self) -> Vec<&'a str> {
        let mut list: Vec<&str> = self
            .s
            .tenants
            .values()
            .filter_map(|t| t.account.as_deref())
            .collect();
        list.sort_unstable();
        list.dedup();
        list
    }

    /// The accounts serving `mode` whose plugin can send.
    fn senders_serving(&self, mode: &str) -> Vec<String> {
        let mut list = self.accounts_serving(mode);
        list.retain(|a| {
            self.s
                .accounts
                .get(a)
                .is_some_and(|acc| self.w.can(&acc.plugin, Action::Send).is_ok())
        });
        list
    }

    fn push(&mut self, c: Candidate) {
        if !self.chain.contains(&c) {
            self.chain.push(c);
        }
    }

    // ---- stage: kill switch ------------------------------------------------

    fn kill_switch(&mut self) -> Result<(), Refusal> {
        let p = self.policy();
        if !p.enabled {
            return Err(self.refuse(
                "kill switch",
                "sending is switched off for everyone (policy.enabled = false); nothing was queued"
                    .to_string(),
                p.loc_of("enabled"),
            ));
        }
        self.step(
            "kill switch",
            "policy.enabled = true",
            "continue",
            p.loc_of("enabled"),
        );
        Ok(())
    }

    // ---- stage: tenant -----------------------------------------------------

    /// The request's tenant, else the user's; refused when unknown or switched off.
    fn tenant(&mut self) -> Result<(), Refusal> {
        let name = match &self.req.tenant {
            Some(t) => Some(t.clone()),
            None => {
                let from_user = self.user.and_then(|u| u.tenant.clone());
                if let Some(t) = &from_user {
                    self.step(
                        "tenant",
                        format!("no tenant in the request; user's tenant is `{t}`"),
                        format!("tenant `{t}`"),
                        "users",
                    );
                }
                from_user
            }
        };
        let Some(name) = name else {
            return Ok(());
        };
        let Some(tc) = self.s.tenants.get(&name) else {
            let configured = names(self.s.tenants.keys(), "none");
            return Err(self.refuse(
                "tenant",
                format!("tenant `{name}` is not configured (configured: {configured})"),
                "request",
            ));
        };
        if !tc.enabled {
            return Err(self.refuse(
                "tenant kill switch",
                format!(
                    "sending is switched off for tenant `{}` (enabled = false)",
                    tc.name
                ),
                tc.loc.to_string(),
            ));
        }
        self.tenant = Some(tc);
        Ok(())
    }

    // ---- stage: purpose ----------------------------------------------------

    /// The purpose's recipient and sender rules, and its default From.
    fn purpose(&mut self) -> Result<(), Refusal> {
        let Some(pn) = &self.req.purpose else {
            return Ok(());
        };
        let Some(pc) = self.s.purposes.get(pn) else {
            let configured = names(self.s.purposes.keys(), "none");
            return Err(self.refuse(
                "purpose",
                format!("purpose `{pn}` is not configured (configured: {configured})"),
                "request",
            ));
        };
        let mut allowed = pc.allowed_recipients.clone();
        if !allowed.is_empty() {
            // The client's own support address is a permitted recipient where it applies.
            if let Some((sa, _)) = self.support_address(pc) {
                allowed.push(bare_address(sa));
            }
        }
        let bad = forbidden_recipients(&allowed, &self.req.recipients);
        if !bad.is_empty() {
            return Err(self.refuse(
                "purpose recipients",
                format!(
                    "purpose `{}` may not send to {} (allowed: {})",
                    pc.name,
                    bad.join(", "),
                    allowed.join(", ")
                ),
                pc.loc.to_string(),
            ));
        }
        if self.req.from.is_some() && !pc.allow_sender {
            return Err(self.refuse(
                "purpose sender",
                format!(
                    "purpose `{}` does not let the request set its From (allow_sender = false); leave From out to use {}",
                    pc.name,
                    pc.default_from.as_deref().unwrap_or("the account's from")
                ),
                pc.loc.to_string(),
            ));
        }
        let any = |list: &[String]| {
            if list.is_empty() {
                "any".to_string()
            } else {
                list.join(", ")
            }
        };
        self.default_from = pc.default_from.clone();
        self.step(
            "purpose",
            format!(
                "purpose `{}`: recipients {}, accounts {}",
                pc.name,
                any(&pc.allowed_recipients),
                any(&pc.accounts)
            ),
            "recipients allowed",
            pc.loc.to_string(),
        );
        self.purpose = Some(pc);
        Ok(())
    }

    // ---- stage: mode -------------------------------------------------------

    /// The user's choice (request, then `[users.NAME]`) where allowed, else the system mode.
    fn mode(&mut self) {
        let p = self.policy();
        let (system_mode, key) = self.system_mode();
        let (allow_user, allow_key) = match self.action {
            Action::Send => (p.allow_user_send_selection, "allow_user_send_selection"),
            Action::Compose => (
                p.allow_user_compose_selection,
                "allow_user_compose_selection",
            ),
        };
        let user_mode = self
            .req
            .mode
            .clone()
            .map(|m| (m, "request".to_string()))
            .or_else(|| {
                self.user.and_then(|u| {
                    match self.action {
                        Action::Send => u.send_mode.clone(),
                        Action::Compose => u.compose_mode.clone(),
                    }
                    .map(|m| (m, u.loc.to_string()))
                })
            });
        let m365_off = !p.allow_microsoft365_web;
        self.mode = match user_mode {
            Some((m, _)) if allow_user && m365_off && self.is_microsoft365_way(&m) => {
                self.step(
                    "microsoft 365 web",
                    format!("user chose `{m}` (Microsoft 365), but allow_microsoft365_web = false"),
                    format!("ignored; system {key} `{system_mode}`"),
                    p.loc_of("allow_microsoft365_web"),
                );
                system_mode.to_string()
            }
            Some((m, src)) if allow_user => {
                self.step(
                    "user selection",
                    format!("user chose `{m}`; {allow_key} = true"),
                    format!("mode `{m}`"),
                    src,
                );
                self.user_picked = true;
                m
            }
            Some((m, _)) => {
                self.step(
                    "user selection",
                    format!("user chose `{m}`, but {allow_key} = false"),
                    format!("ignored; system {key} `{system_mode}`"),
                    p.loc_of(allow_key),
                );
                system_mode.to_string()
            }
            None => {
                self.step(
                    "system mode",
                    format!("no user choice; policy.{key} = `{system_mode}`"),
                    format!("mode `{system_mode}`"),
                    p.loc_of(key),
                );
                system_mode.to_string()
            }
        };
    }

    // ---- stage: accounts ---------------------------------------------------

    /// The system accounts: the tenant's first, then the global one; and the
    /// default From (purpose, else tenant, else user).
    fn accounts(&mut self) {
        self.tenant_account();
        match self.policy().account.clone() {
            Some(a) => {
                if !self.system_accounts.contains(&a) {
                    self.system_accounts.push(a.clone());
                }
                self.global = Some(a.clone());
                self.step(
                    "global account",
                    format!("policy.account = `{a}`"),
                    format!("`{a}`"),
                    self.policy().loc_of("account"),
                );
            }
            None => {
                self.global = self.pick_global_account();
                if let Some(a) = self.global.clone() {
                    if !self.system_accounts.contains(&a) {
                        self.system_accounts.push(a);
                    }
                }
            }
        }
        if self.default_from.is_none() {
            self.default_from = self.user.and_then(|u| u.from.clone());
        }
    }

    fn tenant_account(&mut self) {
        let Some(tc) = self.tenant else {
            return;
        };
        match &tc.account {
            Some(a) => {
                self.step(
                    "tenant account",
                    format!("tenant `{}` has account `{a}`", tc.name),
                    format!("`{a}` first, global account as fallback"),
                    tc.loc.to_string(),
                );
                self.system_accounts.push(a.clone());
            }
            None => self.step(
                "tenant account",
                format!("tenant `{}` has no account", tc.name),
                "the global account",
                tc.loc.to_string(),
            ),
        }
        if self.default_from.is_none() {
            self.default_from = tc.from.clone();
        }
    }

    /// `policy.account` unset: the account `preferred_sender` picks among the
    /// graph and smtp accounts, else the only account — never a tenant's own
    /// account (it serves that tenant, not everyone).
    fn pick_global_account(&mut self) -> Option<String> {
        let p = self.policy();
        let tenants = self.tenant_accounts();
        let not_tenants = |mut list: Vec<String>| {
            list.retain(|a| !tenants.contains(&a.as_str()));
            list
        };
        let graph = not_tenants(self.senders_serving("graph"));
        let smtp = not_tenants(self.senders_serving("smtp"));
        let excluded = if tenants.is_empty() {
            String::new()
        } else {
            format!(
                "; tenant accounts ({}) are never the global one",
                tenants.join(", ")
            )
        };
        match (graph.first(), smtp.first()) {
            (Some(g), Some(sm)) => {
                let chosen = if p.preferred_sender == "smtp" { sm } else { g };
                self.step(
                    "preferred sender",
                    format!(
                        "policy.account unset; graph account `{g}` and smtp account `{sm}` exist; preferred_sender = `{}`{excluded}",
                        p.preferred_sender
                    ),
                    format!("`{chosen}`"),
                    p.loc_of("preferred_sender"),
                );
                return Some(chosen.clone());
            }
            (Some(only), None) | (None, Some(only)) => {
                self.step(
                    "preferred sender",
                    format!(
                        "policy.account unset; only `{only}` is a graph or smtp account{excluded}"
                    ),
                    format!("`{only}`"),
                    "accounts",
                );
                return Some(only.clone());
            }
            (None, None) => {}
        }
        let others = not_tenants(self.s.accounts.keys().cloned().collect());
        if let [only] = others.as_slice() {
            self.step(
                "global account",
                format!("policy.account unset; `{only}` is the only account{excluded}"),
                format!("`{only}`"),
                "accounts",
            );
            return Some(only.clone());
        }
        if self.s.tenants.is_empty() {
            self.step(
                "global account",
                "policy.account unset and no single graph/smtp account",
                "none",
                p.loc_of("account"),
            );
        } else {
            self.step(
                "global account",
                format!(
                    "policy.account unset and no graph or smtp account that is not a tenant's{excluded}"
                ),
                "none: with tenants configured, no send goes through an account (desktop modes still do)",
                p.loc_of("account"),
            );
        }
        None
    }

    // ---- stage: chain ------------------------------------------------------

    /// The mode expanded into candidates; a user's mode that nothing serves
    /// falls back to the system mode; a send ends with the system accounts.
    fn chain(&mut self) {
        let mode = self.mode.clone();
        self.expand(&mode);
        let (system_mode, key) = self.system_mode();
        if self.chain.is_empty() && self.user_picked && mode != system_mode {
            self.step(
                "user mode unavailable",
                format!("nothing can serve the user's mode `{mode}` here"),
                format!("fall back to the system {key} `{system_mode}`"),
                self.policy().loc_of(key),
            );
            self.expand(system_mode);
        }
        if self.action == Action::Send && mode != "autodetect" {
            self.system_fallback();
        }
    }

    /// `autodetect` expands to its configured order; any other mode to itself.
    fn expand(&mut self, m: &str) {
        let p = self.policy();
        if m == "autodetect" {
            let (order, order_key) = match self.action {
                Action::Send => (&p.send_autodetect, "send_autodetect"),
                Action::Compose => (&p.compose_autodetect, "compose_autodetect"),
            };
            self.step(
                "autodetect",
                format!("candidates in order: {}", order.join(", ")),
                "probe each",
                p.loc_of(order_key),
            );
            for m in order {
                self.expand_mode(m, true);
            }
        } else {
            self.expand_mode(m, false);
        }
    }

    /// One mode (or `builtin`, `account`, an account name) into candidates.
    fn expand_mode(&mut self, m: &str, autodetect: bool) {
        if m == "builtin" {
            self.step(
                "mode builtin",
                "the host app's own editor",
                "builtin (sent later by the send mode)",
                "modes",
            );
            self.push(Candidate {
                label: "builtin".into(),
                account: None,
                plugin: None,
                mode: "builtin".into(),
            });
        } else if m == ACCOUNT_CANDIDATE {
            self.expand_system_accounts();
        } else if self.s.accounts.contains_key(m) {
            self.expand_account(m);
        } else if !self.accounts_serving(m).is_empty() {
            self.expand_mode_accounts(m, autodetect);
        } else {
            self.expand_mode_plugins(m);
        }
    }

    /// `account` in an autodetect order: the system accounts that are not known to be down.
    fn expand_system_accounts(&mut self) {
        for a in self.system_accounts.clone() {
            if let Some(reason) = self.w.unreachable.get(&a) {
                self.step(
                    "autodetect: account",
                    format!("account `{a}` last status: unable to connect ({reason})"),
                    "skip",
                    "status",
                );
                continue;
            }
            if let Some(c) = self
                .account_candidate(&a)
                .filter(|c| self.capable(c, "autodetect: account"))
            {
                self.step(
                    "autodetect: account",
                    format!("account `{a}` ({})", c.plugin.as_deref().unwrap_or("")),
                    format!("`{a}`"),
                    "status",
                );
                self.push(c);
            }
        }
        if self.system_accounts.is_empty() {
            self.step(
                "autodetect: account",
                "no system or tenant account",
                "skip",
                "policy.account",
            );
        }
    }

    /// A mode that names an account.
    fn expand_account(&mut self, name: &str) {
        let Some(a) = self.s.accounts.get(name) else {
            return;
        };
        let c = Candidate::for_account(a);
        if !self.capable(&c, "mode is an account") {
            return;
        }
        self.step(
            "mode is an account",
            format!("`{name}` is an account ({})", a.plugin),
            format!("`{name}`"),
            a.loc.to_string(),
        );
        self.push(c);
    }

    /// The accounts serving a mode, system accounts first; in autodetect those
    /// known to be down are skipped.
    fn expand_mode_accounts(&mut self, m: &str, autodetect: bool) {
        let rule = format!("mode {m}");
        let mut accts = self.accounts_serving(m);
        accts.sort_by_key(|a| {
            self.system_accounts
                .iter()
                .position(|s| s == a)
                .unwrap_or(usize::MAX)
        });
        for a in &accts {
            if autodetect {
                if let Some(reason) = self.w.unreachable.get(a) {
                    self.step(
                        &rule,
                        format!("account `{a}` last status: unable to connect ({reason})"),
                        "skip",
                        "status",
                    );
                    continue;
                }
            }
            if let Some(mut c) = self.account_candidate(a).filter(|c| self.capable(c, &rule)) {
                c.mode = m.to_string();
                self.step(
                    &rule,
                    format!("account `{a}` serves {m}"),
                    format!("`{a}`"),
                    "accounts",
                );
                self.push(c);
            }
        }
    }

    /// A mode no account serves: the loaded plugins serving it that work
    /// without an account, if their probe offers the mode.
    fn expand_mode_plugins(&mut self, m: &str) {
        let rule = format!("mode {m}");
        let plugins = self.w.plugins_serving(m);
        if plugins.is_empty() {
            self.step(
                &rule,
                format!("no account and no loaded plugin serves {m}"),
                "skip",
                "plugins",
            );
            return;
        }
        for pl in plugins {
            if let Err(why) = self.w.can(pl, self.action) {
                self.step(&rule, why, "skip", "manifest");
                continue;
            }
            if self.w.needs_account.contains(pl) {
                self.step(
                    &rule,
                    format!(
                        "plugin `{pl}` serves {m} but needs an account, and none is configured"
                    ),
                    "skip",
                    "accounts",
                );
                continue;
            }
            match self.w.mode_available(pl, m) {
                Ok(why) => {
                    self.step(
                        &rule,
                        format!("plugin `{pl}` probe: {why}"),
                        format!("`mode:{m}`"),
                        "probe",
                    );
                    self.push(Candidate {
                        label: format!("mode:{m}"),
                        account: None,
                        plugin: Some(pl.to_string()),
                        mode: m.to_string(),
                    });
                }
                Err(why) => self.step(&rule, format!("plugin `{pl}`: {why}"), "skip", "probe"),
            }
        }
    }

    /// A send in a chosen mode ends with the system accounts (tenant → global).
    fn system_fallback(&mut self) {
        let before = self.chain.len();
        for a in self.system_accounts.clone() {
            if let Some(c) = self
                .account_candidate(&a)
                .filter(|c| self.capable(c, "fallback"))
            {
                self.push(c);
            }
        }
        if self.chain.len() > before {
            let added: Vec<String> = self.chain[before..]
                .iter()
                .map(|c| c.label.clone())
                .collect();
            self.step(
                "fallback",
                "the system accounts back up any send mode",
                format!("then {}", added.join(", ")),
                self.policy().loc_of("account"),
            );
        }
    }

    // ---- stage: purpose accounts -------------------------------------------

    /// A purpose with `accounts` keeps only those (and `builtin`); when the
    /// mode offered none of them, the purpose's accounts are the chain.
    fn purpose_accounts(&mut self) {
        let Some(pc) = self.purpose else {
            return;
        };
        if pc.accounts.is_empty() {
            return;
        }
        let before: Vec<String> = self.chain.iter().map(|c| c.label.clone()).collect();
        self.chain.retain(|c| {
            c.is_builtin() || c.account.as_ref().is_some_and(|a| pc.accounts.contains(a))
        });
        if self.chain.is_empty() {
            for a in &pc.accounts {
                if let Some(c) = self
                    .account_candidate(a)
                    .filter(|c| self.capable(c, "purpose accounts"))
                {
                    self.push(c);
                }
            }
            self.step(
                "purpose accounts",
                format!(
                    "purpose `{}` allows only {}; the mode offered {}",
                    pc.name,
                    pc.accounts.join(", "),
                    before.join(", ")
                ),
                format!("use the purpose's accounts: {}", pc.accounts.join(", ")),
                pc.loc.to_string(),
            );
        } else {
            let kept: Vec<String> = self.chain.iter().map(|c| c.label.clone()).collect();
            self.step(
                "purpose accounts",
                format!(
                    "purpose `{}` allows only {}",
                    pc.name,
                    pc.accounts.join(", ")
                ),
                kept.join(", "),
                pc.loc.to_string(),
            );
        }
    }

    // ---- stage: Microsoft 365 ---------------------------------------------

    /// `allow_microsoft365_web = false`: Microsoft 365 is not an option. No
    /// compose goes through it, and no send except through a system account
    /// (the tenant's or the global one): that is the administrator's mail
    /// server, not a choice. A user's choice of it was already ignored (stage mode).
    fn microsoft365_web(&mut self) {
        let p = self.policy();
        if p.allow_microsoft365_web {
            return;
        }
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        for c in std::mem::take(&mut self.chain) {
            let m365 = MICROSOFT365_MODES.contains(&c.mode.as_str())
                || c.account
                    .as_deref()
                    .is_some_and(|a| self.is_microsoft365_account(a));
            let system = c
                .account
                .as_ref()
                .is_some_and(|a| self.system_accounts.contains(a));
            if !m365 {
                self.chain.push(c);
            } else if system && self.action == Action::Send {
                kept.push(format!("`{}`", c.label));
                self.chain.push(c);
            } else {
                removed.push(format!("`{}`", c.label));
            }
        }
        let mut chose = Vec::new();
        if !removed.is_empty() {
            chose.push(format!("removed {}", removed.join(", ")));
        }
        if !kept.is_empty() {
            chose.push(format!("kept the system account {}", kept.join(", ")));
        }
        if chose.is_empty() {
            chose.push("nothing to remove".to_string());
        }
        self.step(
            "microsoft 365 web",
            format!(
                "allow_microsoft365_web = false: no {} through Microsoft 365 ({}){}",
                self.action.name(),
                MICROSOFT365_MODES.join(", "),
                if self.action == Action::Send {
                    " except by a system (tenant or global) account"
                } else {
                    ""
                }
            ),
            chose.join("; "),
            p.loc_of("allow_microsoft365_web"),
        );
    }

    // ---- stage: no global account ------------------------------------------

    /// Tenants configured and no global account: no send goes through an
    /// account, tenant accounts included; desktop ways (no account) remain.
    fn no_global_account(&mut self) -> Result<(), Refusal> {
        if self.action != Action::Send || self.global.is_some() || self.s.tenants.is_empty() {
            return Ok(());
        }
        let removed: Vec<String> = self
            .chain
            .iter()
            .filter(|c| c.account.is_some())
            .map(|c| format!("`{}`", c.label))
            .collect();
        // Nothing to remove and nothing left: say why, unless there is no
        // account at all (then "configure an account" is the clearer answer).
        let nothing_left = self.chain.is_empty() && !self.s.accounts.is_empty();
        if removed.is_empty() && !nothing_left {
            return Ok(());
        }
        self.chain.retain(|c| c.account.is_none());
        let source = self.policy().loc_of("account");
        if self.chain.is_empty() {
            return Err(self.refuse(
                "no global account",
                format!(
                    "sending through accounts is disabled: tenants are configured and there is no \
                     global account (policy.account is unset, and preferred_sender finds no graph or \
                     smtp account that is not a tenant's), so no account may send{}, tenant accounts \
                     included; set policy.account to the account that sends for everyone \
                     (desktop modes such as Outlook and MAPI are not affected)",
                    if removed.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", removed.join(", "))
                    }
                ),
                source,
            ));
        }
        self.step(
            "no global account",
            "tenants are configured and there is no global account: no send through an account",
            format!("removed {}; the desktop ways remain", removed.join(", ")),
            source,
        );
        Ok(())
    }

    /// A purpose's support address (the recipient when the request names
    /// none) and its system-information attachment.
    fn purpose_support(&mut self) {
        let Some(pc) = self.purpose else {
            return;
        };
        self.attach_system_info = pc.attach_system_info;
        let Some((sa, whose)) = self.support_address(pc) else {
            return;
        };
        let to_support = self.req.recipients.is_empty();
        if to_support {
            self.default_to.push(sa.to_string());
        }
        let info = pc.attach_system_info;
        let source = match self.tenant {
            Some(t) if whose.starts_with("tenant") => t.loc.to_string(),
            _ => pc.loc.to_string(),
        };
        self.step(
            "purpose support",
            format!(
                "{whose} support address {sa}{}",
                if info {
                    "; attach_system_info = true"
                } else {
                    ""
                }
            ),
            format!(
                "{}{}",
                if to_support {
                    "send to the support address"
                } else {
                    "recipients as requested"
                },
                if info {
                    ", system information attached"
                } else {
                    ""
                }
            ),
            source,
        );
    }

    /// The support address for a purpose, and whose it is: the tenant's own
    /// when the purpose allows a client-specific one and the tenant has one,
    /// else the purpose's.
    fn support_address(&self, pc: &'a Purpose) -> Option<(&'a str, String)> {
        if pc.allow_client_support_address {
            if let Some((t, sa)) = self
                .tenant
                .and_then(|t| t.support_address.as_deref().map(|sa| (t, sa)))
            {
                return Some((
                    sa,
                    format!(
                        "tenant `{}`'s own (allow_client_support_address = true)",
                        t.name
                    ),
                ));
            }
        }
        pc.support_address
            .as_deref()
            .map(|sa| (sa, format!("purpose `{}`'s", pc.name)))
    }

    /// Nothing left to try is a refusal that points at the steps above.
    fn require_chain(&mut self) -> Result<(), Refusal> {
        if !self.chain.is_empty() {
            return Ok(());
        }
        let (_, key) = self.system_mode();
        let message = format!(
            "no way to {} is available for mode `{}`: see the steps above; configure an account for it or choose another mode",
            self.action.name(),
            self.mode
        );
        let source = self.policy().loc_of(key);
        Err(self.refuse("chain", message, source))
    }
}

#[cfg(test)]
mod tests {
    use super::level_offers;

    fn modes(list: &[&str]) -> Vec<String> {
        list.iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn a_level_offers_its_mode_and_the_lesser_modes_of_its_family() {
        let desktop = modes(&["outlook", "mapi-full", "mapi-simple"]);
        let offered = |level: &str| -> Vec<&str> {
            desktop
                .iter()
                .filter(|m| level_offers(level, m, &desktop))
                .map(String::as_str)
                .collect()
        };
        assert_eq!(offered("full"), ["mapi-full", "mapi-simple"]);
        assert_eq!(offered("simple"), ["mapi-simple"]);
        assert_eq!(offered("outlook, mapi-simple"), ["outlook", "mapi-simple"]);
        assert!(offered("none").is_empty());
        assert!(offered(",").is_empty());
        // Not tied to MAPI's names: any family listed from the most capable down.
        let fax = modes(&["fax-high", "fax-low"]);
        assert!(level_offers("high", "fax-low", &fax));
        assert!(!level_offers("low", "fax-high", &fax));
    }
}
