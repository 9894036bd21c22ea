//! The chain's ways out: expanding each mode into accounts and plugins,
//! autodetect's fallback, the purpose's accounts and support address, and
//! the rules that check the chain once it is built.

use super::*;

impl<'a> Ctx<'a> {
    /// The mode expanded into candidates; a user's mode that nothing serves
    /// falls back to the system mode; a send ends with the system accounts.
    pub(super) fn chain(&mut self) {
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
    pub(super) fn expand(&mut self, m: &str) {
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
    pub(super) fn expand_mode(&mut self, m: &str, autodetect: bool) {
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
    pub(super) fn expand_system_accounts(&mut self) {
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
    pub(super) fn expand_account(&mut self, name: &str) {
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
    pub(super) fn expand_mode_accounts(&mut self, m: &str, autodetect: bool) {
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
    pub(super) fn expand_mode_plugins(&mut self, m: &str) {
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
    pub(super) fn system_fallback(&mut self) {
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
    pub(super) fn purpose_accounts(&mut self) {
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
    pub(super) fn microsoft365_web(&mut self) {
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
    pub(super) fn no_global_account(&mut self) -> Result<(), Refusal> {
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
    pub(super) fn purpose_support(&mut self) {
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
    pub(super) fn support_address(&self, pc: &'a Purpose) -> Option<(&'a str, String)> {
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

    /// Nothing left to try is a refusal that says what each way out lacked
    /// (the trace's skipped steps), so a caller who sees only the refusal (an
    /// API client, `mailhost send`) knows what to fix.
    pub(super) fn require_chain(&mut self) -> Result<(), Refusal> {
        if !self.chain.is_empty() {
            return Ok(());
        }
        let (_, key) = self.system_mode();
        let message = format!(
            "no way to {} is available for mode `{}`{}; configure an account for it or choose another mode",
            self.action.name(),
            self.mode,
            skipped_summary(&self.trace),
        );
        let source = self.policy().loc_of(key);
        Err(self.refuse("chain", message, source))
    }
}

/// The skipped ways out of a trace, as `: rule (why); …`, at most
/// [`SKIPPED_SHOWN`] of them (the whole trace is `policy explain`'s).
fn skipped_summary(trace: &[TraceStep]) -> String {
    let skipped: Vec<&TraceStep> = trace.iter().filter(|t| t.chose == "skip").collect();
    if skipped.is_empty() {
        return String::new();
    }
    let mut out = String::from(": ");
    for (i, t) in skipped.iter().take(SKIPPED_SHOWN).enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        let rule = t.rule.strip_prefix("autodetect: ").unwrap_or(&t.rule);
        out.push_str(&format!("{rule} ({})", t.saw));
    }
    if skipped.len() > SKIPPED_SHOWN {
        out.push_str(&format!(
            "; {} more in `mailhost policy explain`",
            skipped.len() - SKIPPED_SHOWN
        ));
    }
    out
}

/// Skipped ways out a refusal names.
const SKIPPED_SHOWN: usize = 6;
