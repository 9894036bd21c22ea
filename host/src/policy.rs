//! The policy layer: for one request, which ways out, in which order, and why.
//!
//! `decide` is pure: it reads the validated [`Settings`] and a [`World`] (what
//! the plugins' probes and the accounts' last status say) and returns a
//! [`Decision`] — an ordered chain of candidates and a trace of every rule, what
//! it saw and what it chose. The engine walks the chain; the error class of a
//! failed attempt decides whether it retries, moves on or stops (DESIGN §2).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{names, Settings, ACCOUNT_CANDIDATE};

/// Send or compose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// What the policy can see of the machine: probes per plugin, last status per account.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Plugin name → probe result. A plugin not listed is not loaded.
    pub probes: BTreeMap<String, ProbeResult>,
    /// Plugin name → the modes it serves (from manifests).
    pub plugin_modes: BTreeMap<String, Vec<String>>,
    /// Account name → reason, for accounts whose last status was "unable to connect".
    pub unreachable: BTreeMap<String, String>,
    /// Plugins that cannot work without an account's settings (their schema
    /// requires keys): they serve a mode only through a configured account.
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

    /// Whether `plugin` can serve `mode` now, per its probe; `Err(reason)` if not.
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
                let ok = p.level.split(',').map(str::trim).any(|l| {
                    l == mode
                        || mode.ends_with(&format!("-{l}"))
                        || (l == "full" && mode.ends_with("-simple"))
                });
                if ok {
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

/// One way out: an account (a configured plugin + settings), a desktop mode
/// served by a plugin with no account, or the host app's own editor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct TraceStep {
    pub rule: String,
    pub saw: String,
    pub chose: String,
    pub source: String,
}

/// Why nothing may be sent.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub rule: String,
    pub message: String,
}

/// The policy's answer.
#[derive(Debug, Clone, Serialize)]
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

struct Ctx<'a> {
    s: &'a Settings,
    w: &'a World,
    trace: Vec<TraceStep>,
}

impl Ctx<'_> {
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

    fn account_candidate(&self, name: &str) -> Option<Candidate> {
        self.s.accounts.get(name).map(Candidate::for_account)
    }

    fn accounts_serving(&self, mode: &str) -> Vec<String> {
        self.s
            .accounts
            .values()
            .filter(|a| a.modes.iter().any(|m| m == mode))
            .map(|a| a.name.clone())
            .collect()
    }
}

fn refuse(mut ctx: Ctx<'_>, action: Action, rule: &str, message: String, source: &str) -> Decision {
    ctx.step(rule, message.clone(), "refuse", source);
    Decision {
        action,
        chain: Vec::new(),
        trace: ctx.trace,
        refused: Some(Refusal {
            rule: rule.to_string(),
            message,
        }),
        default_from: None,
        default_to: Vec::new(),
        attach_system_info: false,
    }
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
pub fn decide(s: &Settings, w: &World, action: Action, req: &Request) -> Decision {
    let mut ctx = Ctx {
        s,
        w,
        trace: Vec::new(),
    };
    let p = &s.policy;

    // 1. Kill switch.
    if !p.enabled {
        return refuse(
            ctx,
            action,
            "kill switch",
            "sending is switched off for everyone (policy.enabled = false); nothing was queued"
                .to_string(),
            &p.loc_of("enabled"),
        );
    }
    ctx.step(
        "kill switch",
        "policy.enabled = true",
        "continue",
        p.loc_of("enabled"),
    );

    // 2. Tenant.
    let tenant = match &req.tenant {
        None => {
            let from_user = req
                .user
                .as_ref()
                .and_then(|u| s.users.get(u))
                .and_then(|u| u.tenant.clone());
            if let Some(t) = &from_user {
                ctx.step(
                    "tenant",
                    format!("no tenant in the request; user's tenant is `{t}`"),
                    format!("tenant `{t}`"),
                    "users",
                );
            }
            from_user
        }
        Some(t) => Some(t.clone()),
    };
    let tenant_cfg = match &tenant {
        Some(t) => match s.tenants.get(t) {
            Some(tc) => Some(tc),
            None => {
                return refuse(
                    ctx,
                    action,
                    "tenant",
                    format!(
                        "tenant `{t}` is not configured (configured: {})",
                        names(s.tenants.keys(), "none")
                    ),
                    "request",
                );
            }
        },
        None => None,
    };
    if let Some(tc) = tenant_cfg {
        if !tc.enabled {
            return refuse(
                ctx,
                action,
                "tenant kill switch",
                format!(
                    "sending is switched off for tenant `{}` (enabled = false)",
                    tc.name
                ),
                &tc.loc.to_string(),
            );
        }
    }

    // 3. Purpose.
    let purpose = match &req.purpose {
        Some(pn) => match s.purposes.get(pn) {
            Some(pc) => Some(pc),
            None => {
                return refuse(
                    ctx,
                    action,
                    "purpose",
                    format!(
                        "purpose `{pn}` is not configured (configured: {})",
                        names(s.purposes.keys(), "none")
                    ),
                    "request",
                );
            }
        },
        None => None,
    };
    let mut default_from = None;
    let mut default_to: Vec<String> = Vec::new();
    let mut attach_system_info = false;
    if let Some(pc) = purpose {
        let bad = forbidden_recipients(&pc.allowed_recipients, &req.recipients);
        if !bad.is_empty() {
            return refuse(
                ctx,
                action,
                "purpose recipients",
                format!(
                    "purpose `{}` may not send to {} (allowed: {})",
                    pc.name,
                    bad.join(", "),
                    pc.allowed_recipients.join(", ")
                ),
                &pc.loc.to_string(),
            );
        }
        if req.from.is_some() && !pc.allow_sender {
            return refuse(ctx, action, "purpose sender", format!("purpose `{}` does not let the request set its From (allow_sender = false); leave From out to use {}", pc.name, pc.default_from.as_deref().unwrap_or("the account's from")), &pc.loc.to_string());
        }
        default_from = pc.default_from.clone();
        ctx.step(
            "purpose",
            format!(
                "purpose `{}`: recipients {}, accounts {}",
                pc.name,
                if pc.allowed_recipients.is_empty() {
                    "any".to_string()
                } else {
                    pc.allowed_recipients.join(", ")
                },
                if pc.accounts.is_empty() {
                    "any".to_string()
                } else {
                    pc.accounts.join(", ")
                }
            ),
            "recipients allowed",
            pc.loc.to_string(),
        );
    }

    // 4. Mode: the user's choice where allowed, else the system mode.
    let (allow_user, system_mode, key) = match action {
        Action::Send => (p.allow_user_send_selection, &p.send_mode, "send_mode"),
        Action::Compose => (
            p.allow_user_compose_selection,
            &p.compose_mode,
            "compose_mode",
        ),
    };
    let allow_key = match action {
        Action::Send => "allow_user_send_selection",
        Action::Compose => "allow_user_compose_selection",
    };
    let user_cfg = req.user.as_ref().and_then(|u| s.users.get(u));
    let user_mode = req
        .mode
        .clone()
        .map(|m| (m, "request".to_string()))
        .or_else(|| {
            user_cfg.and_then(|u| {
                match action {
                    Action::Send => u.send_mode.clone(),
                    Action::Compose => u.compose_mode.clone(),
                }
                .map(|m| (m, u.loc.to_string()))
            })
        });
    let mode = match (&user_mode, allow_user) {
        (Some((m, src)), true) => {
            ctx.step(
                "user selection",
                format!("user chose `{m}`; {allow_key} = true"),
                format!("mode `{m}`"),
                src.clone(),
            );
            m.clone()
        }
        (Some((m, _)), false) => {
            ctx.step(
                "user selection",
                format!("user chose `{m}`, but {allow_key} = false"),
                format!("ignored; system {key} `{system_mode}`"),
                p.loc_of(allow_key),
            );
            system_mode.clone()
        }
        (None, _) => {
            ctx.step(
                "system mode",
                format!("no user choice; policy.{key} = `{system_mode}`"),
                format!("mode `{system_mode}`"),
                p.loc_of(key),
            );
            system_mode.clone()
        }
    };

    // 5. The system account: tenant's, else global, else by preferred sender.
    let mut system_accounts: Vec<String> = Vec::new();
    if let Some(tc) = tenant_cfg {
        match &tc.account {
            Some(a) => {
                ctx.step(
                    "tenant account",
                    format!("tenant `{}` has account `{a}`", tc.name),
                    format!("`{a}` first, global account as fallback"),
                    tc.loc.to_string(),
                );
                system_accounts.push(a.clone());
            }
            None => ctx.step(
                "tenant account",
                format!("tenant `{}` has no account", tc.name),
                "the global account",
                tc.loc.to_string(),
            ),
        }
        if default_from.is_none() {
            default_from = tc.from.clone();
        }
    }
    match &p.account {
        Some(a) => {
            if !system_accounts.contains(a) {
                system_accounts.push(a.clone());
            }
            ctx.step(
                "global account",
                format!("policy.account = `{a}`"),
                format!("`{a}`"),
                p.loc_of("account"),
            );
        }
        None => {
            let graph = ctx.accounts_serving("graph");
            let smtp = ctx.accounts_serving("smtp");
            let pick = match (graph.first(), smtp.first()) {
                (Some(g), Some(sm)) => {
                    let chosen = if p.preferred_sender == "smtp" {
                        sm.clone()
                    } else {
                        g.clone()
                    };
                    ctx.step("preferred sender", format!("policy.account unset; graph account `{g}` and smtp account `{sm}` exist; preferred_sender = `{}`", p.preferred_sender), format!("`{chosen}`"), p.loc_of("preferred_sender"));
                    Some(chosen)
                }
                (Some(only), None) | (None, Some(only)) => {
                    ctx.step(
                        "preferred sender",
                        format!("policy.account unset; only `{only}` is a graph or smtp account"),
                        format!("`{only}`"),
                        "accounts",
                    );
                    Some(only.clone())
                }
                (None, None) => {
                    if s.accounts.len() == 1 {
                        let only = s.accounts.keys().next().cloned();
                        if let Some(o) = &only {
                            ctx.step(
                                "global account",
                                format!("policy.account unset; `{o}` is the only account"),
                                format!("`{o}`"),
                                "accounts",
                            );
                        }
                        only
                    } else {
                        ctx.step(
                            "global account",
                            "policy.account unset and no single graph/smtp account",
                            "none",
                            p.loc_of("account"),
                        );
                        None
                    }
                }
            };
            if let Some(a) = pick {
                if !system_accounts.contains(&a) {
                    system_accounts.push(a);
                }
            }
        }
    }
    if let Some(u) = user_cfg {
        if default_from.is_none() {
            default_from = u.from.clone();
        }
    }

    // 6. Expand the mode into candidates.
    let mut chain: Vec<Candidate> = Vec::new();
    let push = |c: Candidate, chain: &mut Vec<Candidate>| {
        if !chain.contains(&c) {
            chain.push(c);
        }
    };
    let expand_mode = |ctx: &mut Ctx<'_>, m: &str, chain: &mut Vec<Candidate>, autodetect: bool| {
        if m == "builtin" {
            ctx.step(
                "mode builtin",
                "the host app's own editor",
                "builtin (sent later by the send mode)",
                "modes",
            );
            chain.push(Candidate {
                label: "builtin".into(),
                account: None,
                plugin: None,
                mode: "builtin".into(),
            });
            return;
        }
        if m == ACCOUNT_CANDIDATE {
            for a in &system_accounts {
                if let Some(reason) = ctx.w.unreachable.get(a) {
                    ctx.step(
                        "autodetect: account",
                        format!("account `{a}` last status: unable to connect ({reason})"),
                        "skip",
                        "status",
                    );
                    continue;
                }
                if let Some(c) = ctx.account_candidate(a) {
                    ctx.step(
                        "autodetect: account",
                        format!("account `{a}` ({})", c.plugin.as_deref().unwrap_or("")),
                        format!("`{a}`"),
                        "status",
                    );
                    if !chain.contains(&c) {
                        chain.push(c);
                    }
                }
            }
            if system_accounts.is_empty() {
                ctx.step(
                    "autodetect: account",
                    "no system or tenant account",
                    "skip",
                    "policy.account",
                );
            }
            return;
        }
        if let Some(c) = ctx.account_candidate(m) {
            ctx.step(
                "mode is an account",
                format!(
                    "`{m}` is an account ({})",
                    c.plugin.as_deref().unwrap_or("")
                ),
                format!("`{m}`"),
                ctx.s
                    .accounts
                    .get(m)
                    .map(|a| a.loc.to_string())
                    .unwrap_or_default(),
            );
            if !chain.contains(&c) {
                chain.push(c);
            }
            return;
        }
        // A mode: accounts serving it (system accounts first), else a plugin without an account.
        let mut accts = ctx.accounts_serving(m);
        accts.sort_by_key(|a| {
            system_accounts
                .iter()
                .position(|s| s == a)
                .unwrap_or(usize::MAX)
        });
        if !accts.is_empty() {
            for a in &accts {
                if autodetect {
                    if let Some(reason) = ctx.w.unreachable.get(a) {
                        ctx.step(
                            &format!("mode {m}"),
                            format!("account `{a}` last status: unable to connect ({reason})"),
                            "skip",
                            "status",
                        );
                        continue;
                    }
                }
                if let Some(c) = ctx.account_candidate(a) {
                    ctx.step(
                        &format!("mode {m}"),
                        format!("account `{a}` serves {m}"),
                        format!("`{a}`"),
                        "accounts",
                    );
                    if !chain.contains(&c) {
                        chain.push(c);
                    }
                }
            }
            return;
        }
        let plugins = ctx.w.plugins_serving(m);
        if plugins.is_empty() {
            ctx.step(
                &format!("mode {m}"),
                format!("no account and no loaded plugin serves {m}"),
                "skip",
                "plugins",
            );
            return;
        }
        for pl in plugins {
            if ctx.w.needs_account.contains(pl) {
                ctx.step(
                    &format!("mode {m}"),
                    format!(
                        "plugin `{pl}` serves {m} but needs an account, and none is configured"
                    ),
                    "skip",
                    "accounts",
                );
                continue;
            }
            match ctx.w.mode_available(pl, m) {
                Ok(why) => {
                    ctx.step(
                        &format!("mode {m}"),
                        format!("plugin `{pl}` probe: {why}"),
                        format!("`mode:{m}`"),
                        "probe",
                    );
                    let c = Candidate {
                        label: format!("mode:{m}"),
                        account: None,
                        plugin: Some(pl.to_string()),
                        mode: m.to_string(),
                    };
                    if !chain.contains(&c) {
                        chain.push(c);
                    }
                }
                Err(why) => ctx.step(
                    &format!("mode {m}"),
                    format!("plugin `{pl}`: {why}"),
                    "skip",
                    "probe",
                ),
            }
        }
    };

    let expand = |ctx: &mut Ctx<'_>, m: &str, chain: &mut Vec<Candidate>| {
        if m == "autodetect" {
            let (order, order_key) = match action {
                Action::Send => (&p.send_autodetect, "send_autodetect"),
                Action::Compose => (&p.compose_autodetect, "compose_autodetect"),
            };
            ctx.step(
                "autodetect",
                format!("candidates in order: {}", order.join(", ")),
                "probe each",
                p.loc_of(order_key),
            );
            for m in order {
                if action == Action::Compose && m == "m365-draft" && !p.allow_microsoft365_web {
                    continue;
                }
                expand_mode(ctx, m, chain, true);
            }
        } else if action == Action::Compose && m == "m365-draft" && !p.allow_microsoft365_web {
            ctx.step(
                "microsoft 365 web",
                "allow_microsoft365_web = false",
                "m365-draft is not offered",
                p.loc_of("allow_microsoft365_web"),
            );
        } else {
            expand_mode(ctx, m, chain, false);
        }
    };
    expand(&mut ctx, &mode, &mut chain);
    let user_picked = allow_user && user_mode.is_some();
    if chain.is_empty() && user_picked && mode != *system_mode {
        ctx.step(
            "user mode unavailable",
            format!("nothing can serve the user's mode `{mode}` here"),
            format!("fall back to the system {key} `{system_mode}`"),
            p.loc_of(key),
        );
        expand(&mut ctx, system_mode, &mut chain);
    }
    // A send falls back to the system accounts (tenant → global) last.
    if action == Action::Send && mode != "autodetect" {
        let before = chain.len();
        for a in &system_accounts {
            if let Some(c) = ctx.account_candidate(a) {
                push(c, &mut chain);
            }
        }
        if chain.len() > before {
            let added: Vec<String> = chain[before..].iter().map(|c| c.label.clone()).collect();
            ctx.step(
                "fallback",
                "the system accounts back up any send mode",
                format!("then {}", added.join(", ")),
                p.loc_of("account"),
            );
        }
    }

    // 7. Compose uses compose-capable ways; send uses send-capable ones.
    if action == Action::Compose {
        let compose_modes = [
            "builtin",
            "outlook",
            "mapi-full",
            "mapi-simple",
            "m365-draft",
            "imap-draft",
        ];
        chain = chain
            .into_iter()
            .map(|mut c| {
                if let Some(a) = &c.account {
                    if let Some(acc) = s.accounts.get(a) {
                        if let Some(m) = acc
                            .modes
                            .iter()
                            .find(|m| compose_modes.contains(&m.as_str()) || **m == mode)
                        {
                            c.mode = m.clone();
                        }
                    }
                }
                c
            })
            .collect();
    }

    // 8. Microsoft 365 web drafts allowed?
    if !p.allow_microsoft365_web {
        let before = chain.len();
        chain.retain(|c| c.mode != "m365-draft");
        if chain.len() != before || mode == "m365-draft" {
            ctx.step(
                "microsoft 365 web",
                "allow_microsoft365_web = false",
                "m365-draft removed",
                p.loc_of("allow_microsoft365_web"),
            );
        }
    }

    // 9. Purpose: only its accounts.
    if let Some(pc) = purpose {
        if !pc.accounts.is_empty() {
            let before: Vec<String> = chain.iter().map(|c| c.label.clone()).collect();
            chain.retain(|c| {
                c.is_builtin() || c.account.as_ref().is_some_and(|a| pc.accounts.contains(a))
            });
            if chain.is_empty() {
                for a in &pc.accounts {
                    if let Some(c) = ctx.account_candidate(a) {
                        chain.push(c);
                    }
                }
                ctx.step(
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
                ctx.step(
                    "purpose accounts",
                    format!(
                        "purpose `{}` allows only {}",
                        pc.name,
                        pc.accounts.join(", ")
                    ),
                    chain
                        .iter()
                        .map(|c| c.label.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                    pc.loc.to_string(),
                );
            }
        }
        attach_system_info = pc.attach_system_info;
        if let Some(sa) = &pc.support_address {
            let to_support = req.recipients.is_empty();
            if to_support {
                default_to.push(sa.clone());
            }
            ctx.step(
                "purpose support",
                format!(
                    "support address {sa}{}",
                    if pc.attach_system_info {
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
                    if pc.attach_system_info {
                        ", system information attached"
                    } else {
                        ""
                    }
                ),
                pc.loc.to_string(),
            );
        }
    }

    if chain.is_empty() {
        return refuse(ctx, action, "chain", format!("no way to {} is available for mode `{mode}`: see the steps above; configure an account for it or choose another mode", action.name()), &p.loc_of(key));
    }
    Decision {
        action,
        chain,
        trace: ctx.trace,
        refused: None,
        default_from,
        default_to,
        attach_system_info,
    }
}
