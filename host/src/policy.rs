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

use crate::config::{names, PolicySettings, Purpose, Settings, Tenant, User, ACCOUNT_CANDIDATE};

mod chain;
mod types;

use types::bare_address;
pub use types::{
    forbidden_recipients, Action, Candidate, Decision, ProbeResult, Refusal, Request, TraceStep,
    World, MICROSOFT365_MODES,
};

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
}

#[cfg(test)]
mod tests {
    use super::types::level_offers;

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
