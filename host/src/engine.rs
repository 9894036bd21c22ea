//! Walks a policy decision: opens transports, applies rate limits, retries
//! transient failures with backoff, fails over on the error class, records
//! every attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailhost_plugin_api::abi_stable::std_types::RString;
use mailhost_plugin_api::options::{is_host_only, HostOptions, UserCredentials, HOST_ONLY_KEYS};
use mailhost_plugin_api::{
    CheckReport, ConnState, ConnectionStatus, ErrorClass, OutgoingMessage, PluginError, Receipt,
    TransportBox,
};

mod outcome;
mod world;

use outcome::{builtin_composed, composed, delivery, err_to_attempt, ok_attempt};
pub use outcome::{AccountStatus, Attempt, Composed, Delivery, Failure, FailureClass};

use crate::config::Settings;
use crate::loader::PluginSet;
use crate::policy::{Candidate, Decision, ProbeResult, World};
use crate::ratelimit::SlidingWindow;
use crate::services::HostEnv;
use crate::tokens::{OAuthClientConfig, TokenBroker};

#[derive(Default)]
struct Cache {
    transports: BTreeMap<String, Arc<TransportBox>>,
    probes: BTreeMap<String, (Instant, ProbeResult)>,
    sent: BTreeMap<String, SlidingWindow>,
}

/// The part of the [`World`] the manifests fix: each plugin's modes and
/// capabilities, and which plugins need an account's settings (their schema
/// requires keys). The policy decides from these alone, never from names.
fn manifest_world(plugins: &PluginSet) -> World {
    let mut w = World::default();
    for p in &plugins.plugins {
        w.plugin_modes.insert(
            p.name().to_string(),
            p.manifest().modes.iter().map(|m| m.to_string()).collect(),
        );
        w.capabilities
            .insert(p.name().to_string(), p.manifest().capabilities);
        let schema = p.schema();
        if schema
            .get("required")
            .and_then(|r| r.as_array())
            .is_some_and(|r| !r.is_empty())
        {
            w.needs_account.insert(p.name().to_string());
        }
    }
    w
}

/// The host's engine over one validated config and one set of loaded plugins.
pub struct Engine {
    settings: Settings,
    plugins: PluginSet,
    env: HostEnv,
    /// What the loaded plugins' manifests say (modes, whether they need an
    /// account); fixed for the engine's life, so read once.
    plugin_world: World,
    cache: Mutex<Cache>,
    /// Problems found while starting (an OAuth secret that does not resolve).
    pub startup_warnings: Vec<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("accounts", &self.settings.accounts.keys())
            .finish()
    }
}

impl Engine {
    pub fn new(settings: Settings, plugins: PluginSet) -> Self {
        let mut warnings = Vec::new();
        let mut clients = BTreeMap::new();
        for (name, o) in &settings.oauth {
            match crate::secrets::resolve(&o.client_secret, Some(&settings.base_dir)) {
                Ok(secret) => {
                    clients.insert(
                        name.clone(),
                        OAuthClientConfig {
                            name: name.clone(),
                            tenant: o.tenant.clone(),
                            client_id: o.client_id.clone(),
                            client_secret: secret,
                            authority: o.authority.clone(),
                            ca_file: o.ca_file.clone(),
                        },
                    );
                }
                Err(e) => warnings.push(format!("[oauth.{name}] at {}: {}", o.loc, e.message())),
            }
        }
        let broker = Arc::new(TokenBroker::new(clients));
        let env = HostEnv::new(broker).with_base(Some(settings.base_dir.clone()));
        let plugin_world = manifest_world(&plugins);
        Self {
            settings,
            plugins,
            env,
            cache: Mutex::new(Cache::default()),
            startup_warnings: warnings,
            plugin_world,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn plugins(&self) -> &PluginSet {
        &self.plugins
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens (once) the transport behind a candidate.
    pub(crate) fn transport(&self, c: &Candidate) -> Result<Arc<TransportBox>, PluginError> {
        if let Some(t) = self.lock().transports.get(&c.label) {
            return Ok(t.clone());
        }
        let plugin_name = c
            .plugin
            .as_deref()
            .ok_or_else(|| PluginError::unsupported(format!("`{}` is not a transport", c.label)))?;
        let plugin = self.plugins.get(plugin_name).ok_or_else(|| {
            PluginError::unavailable(format!(
                "plugin `{plugin_name}` is not loaded; run `mailhost plugins` to see why"
            ))
        })?;
        let settings = match &c.account {
            Some(a) => self
                .settings
                .accounts
                .get(a)
                .map(|acc| acc.settings.to_string())
                .unwrap_or_else(|| "{}".to_string()),
            None => "{}".to_string(),
        };
        let t = plugin
            .open(
                &settings,
                self.env
                    .clone()
                    .with_origin(&c.label)
                    .with_mode(&c.mode)
                    .handle(),
            )
            .map_err(|mut e| {
                e.message = RString::from(format!(
                    "opening `{}` ({plugin_name}): {}",
                    c.label, e.message
                ));
                e
            })?;
        let t = Arc::new(t);
        self.lock().transports.insert(c.label.clone(), t.clone());
        Ok(t)
    }

    /// Waits for a free slot under the account's `max_per_minute`.
    fn rate_limit(&self, account: &str) {
        let Some(limit) = self
            .settings
            .accounts
            .get(account)
            .and_then(|a| a.max_per_minute)
        else {
            return;
        };
        loop {
            let wait = {
                let mut cache = self.lock();
                let w = cache
                    .sent
                    .entry(account.to_string())
                    .or_insert_with(|| SlidingWindow::per_minute(limit));
                match w.try_acquire(Instant::now()) {
                    Ok(()) => return,
                    Err(wait) => wait,
                }
            };
            tracing::info!(
                account,
                limit,
                wait_ms = wait.as_millis() as u64,
                "rate limit reached; waiting"
            );
            std::thread::sleep(wait.max(Duration::from_millis(10)));
        }
    }

    /// The message as the plugin behind `account` sees it: the request's
    /// options without any host-only key, plus the host's own (the user, and
    /// the per-user credentials and mailbox configured for that account).
    pub(crate) fn options_for(
        &self,
        msg: &OutgoingMessage,
        user: Option<&str>,
        account: Option<&str>,
    ) -> OutgoingMessage {
        let mut m = msg.clone();
        if let Some(json) = self.plugin_options(msg.options_json.as_str(), user, account) {
            m.options_json = json.into();
        }
        m
    }

    /// [`Engine::options_for`]'s `options_json`, or `None` when it is the
    /// request's unchanged: no host-only key to take out, no per-user settings
    /// to add (most messages: no JSON is parsed for them).
    fn plugin_options(
        &self,
        options_json: &str,
        user: Option<&str>,
        account: Option<&str>,
    ) -> Option<String> {
        let ua = match (user, account) {
            (Some(u), Some(a)) => self.settings.users.get(u).and_then(|u| u.accounts.get(a)),
            _ => None,
        };
        // A key's name not in the text (and no escape that could spell it):
        // the key is not there either.
        if ua.is_none()
            && !options_json.contains('\\')
            && !HOST_ONLY_KEYS.iter().any(|k| options_json.contains(k))
        {
            return None;
        }
        let mut opts: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(options_json).unwrap_or_default();
        let had_host_keys = opts.keys().any(|k| is_host_only(k));
        opts.retain(|k, _| !is_host_only(k));
        let Some(ua) = ua else {
            return had_host_keys.then(|| serde_json::Value::Object(opts).to_string());
        };
        let host = HostOptions {
            user: user.map(str::to_string),
            mailbox: ua.mailbox.clone(),
            credentials: ua.username.as_ref().map(|name| UserCredentials {
                username: name.clone(),
                password: ua.password.clone().unwrap_or_default(),
            }),
        };
        if let Ok(serde_json::Value::Object(h)) = serde_json::to_value(&host) {
            opts.extend(h);
        }
        Some(serde_json::Value::Object(opts).to_string())
    }

    /// How long to wait before retrying after a transient error: the server's
    /// `retry_after` when it gave one, else exponential backoff with jitter.
    /// `None` when the server asks for longer than `max_backoff_ms`: then the
    /// next way out is tried instead of holding the message.
    fn backoff(&self, attempt: u32, e: &PluginError) -> Option<Duration> {
        let p = &self.settings.policy;
        if let Some(ms) = e.retry_after_ms() {
            return (ms <= p.max_backoff_ms).then(|| Duration::from_millis(ms));
        }
        let exp = p
            .initial_backoff_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
        let base = exp.min(p.max_backoff_ms);
        let jitter = (uuid::Uuid::new_v4().as_u128() % (base as u128 / 4 + 1)) as u64;
        Some(Duration::from_millis((base + jitter).min(p.max_backoff_ms)))
    }

    /// Walks the chain with `op`, retrying transient errors and failing over by class.
    fn walk<T>(
        &self,
        decision: &Decision,
        user: Option<&str>,
        msg: &OutgoingMessage,
        op: impl Fn(&TransportBox, &OutgoingMessage) -> Result<T, PluginError>,
    ) -> Result<(Candidate, T, Vec<Attempt>), Failure> {
        if let Some(r) = &decision.refused {
            return Err(Failure {
                class: FailureClass::Refused,
                message: format!("refused by {}: {}", r.rule, r.message),
                attempts: Vec::new(),
            });
        }
        let mut attempts = Vec::new();
        let mut last: Option<PluginError> = None;
        'chain: for c in &decision.chain {
            if c.is_builtin() {
                continue;
            }
            let t0 = Instant::now();
            let transport = match self.transport(c) {
                Ok(t) => t,
                Err(e) => {
                    attempts.push(err_to_attempt(c, 1, &e, t0));
                    let stop = e.is_permanent();
                    last = Some(e);
                    if stop {
                        break 'chain;
                    }
                    continue;
                }
            };
            let m = self.options_for(msg, user, c.account.as_deref());
            for n in 1..=self.settings.policy.max_attempts {
                if let Some(a) = &c.account {
                    self.rate_limit(a);
                }
                let t0 = Instant::now();
                match op(&transport, &m) {
                    Ok(v) => {
                        attempts.push(ok_attempt(c, n, t0));
                        return Ok((c.clone(), v, attempts));
                    }
                    Err(e) => {
                        attempts.push(err_to_attempt(c, n, &e, t0));
                        tracing::warn!(candidate = %c.label, attempt = n, class = e.class().name(), "attempt failed: {}", e.message());
                        let class = e.class();
                        if class == ErrorClass::PERMANENT {
                            last = Some(e);
                            break 'chain;
                        }
                        let retry =
                            class == ErrorClass::TRANSIENT && n < self.settings.policy.max_attempts;
                        let wait = if retry { self.backoff(n, &e) } else { None };
                        last = Some(e);
                        if let Some(wait) = wait {
                            std::thread::sleep(wait);
                            continue;
                        }
                        continue 'chain;
                    }
                }
            }
        }
        let e = last.unwrap_or_else(|| {
            PluginError::unavailable("the policy chain holds no transport to try")
        });
        Err(Failure {
            class: e.class().into(),
            message: e.to_string(),
            attempts,
        })
    }

    /// Sends through the decision's chain.
    pub fn send(
        &self,
        decision: &Decision,
        user: Option<&str>,
        msg: &OutgoingMessage,
    ) -> Result<Delivery, Failure> {
        let (c, r, attempts): (Candidate, Receipt, Vec<Attempt>) =
            self.walk(decision, user, msg, |t, m| t.send(m).into_result())?;
        let mut d = delivery(c, r, attempts);
        crate::copies::after_send(self, user, msg, &mut d);
        Ok(d)
    }

    /// One send through one way out: no retry, no rate limit (see `Engine::attempt`).
    pub(crate) fn send_once(
        &self,
        c: &Candidate,
        user: Option<&str>,
        msg: &OutgoingMessage,
    ) -> Result<Delivery, PluginError> {
        if c.is_builtin() {
            return Err(PluginError::unsupported(
                "`builtin` is the application's own editor; it does not send",
            ));
        }
        let t = self.transport(c)?;
        let m = self.options_for(msg, user, c.account.as_deref());
        let t0 = Instant::now();
        let r = t.send(&m).into_result()?;
        let mut d = delivery(c.clone(), r, vec![ok_attempt(c, 1, t0)]);
        crate::copies::after_send(self, user, msg, &mut d);
        Ok(d)
    }

    /// Several sends through one way out in one plugin call (1.1's
    /// `send_many`; a 1.0 plugin gets them one by one): one result per
    /// message, in order. `msgs` pairs each message with its user.
    pub(crate) fn send_many_once(
        &self,
        c: &Candidate,
        users: &[Option<&str>],
        mut msgs: Vec<OutgoingMessage>,
    ) -> Vec<Result<Delivery, PluginError>> {
        let all = |e: PluginError| msgs.iter().map(|_| Err(e.clone())).collect();
        if c.is_builtin() {
            return all(PluginError::unsupported(
                "`builtin` is the application's own editor; it does not send",
            ));
        }
        let t = match self.transport(c) {
            Ok(t) => t,
            Err(e) => return all(e),
        };
        let Some(plugin) = c.plugin.as_deref().and_then(|p| self.plugins.get(p)) else {
            return all(PluginError::unavailable(format!(
                "`{}` has no loaded plugin; run `mailhost plugins` to see why",
                c.label
            )));
        };
        // The plugin's options in place; the request's are put back after
        // the send (a copy to a Sent folder is made from the message as
        // requested).
        let requested: Vec<Option<RString>> = msgs
            .iter_mut()
            .zip(users.iter().chain(std::iter::repeat(&None)))
            .map(|(m, user)| {
                let json =
                    self.plugin_options(m.options_json.as_str(), *user, c.account.as_deref())?;
                Some(std::mem::replace(&mut m.options_json, json.into()))
            })
            .collect();
        let t0 = Instant::now();
        let got = plugin.send_many(&t, &msgs);
        for (m, requested) in msgs.iter_mut().zip(requested) {
            if let Some(json) = requested {
                m.options_json = json;
            }
        }
        got.into_iter()
            .zip(&msgs)
            .zip(users.iter().chain(std::iter::repeat(&None)))
            .map(|((r, msg), user)| {
                let mut d = delivery(c.clone(), r?, vec![ok_attempt(c, 1, t0)]);
                crate::copies::after_send(self, *user, msg, &mut d);
                Ok(d)
            })
            .collect()
    }

    /// One compose through one way out; `builtin` hands the message to the app's editor.
    pub(crate) fn compose_once(
        &self,
        c: &Candidate,
        user: Option<&str>,
        msg: &OutgoingMessage,
    ) -> Result<Composed, PluginError> {
        if c.is_builtin() {
            return Ok(builtin_composed(c, Vec::new()));
        }
        let t = self.transport(c)?;
        let m = self.options_for(msg, user, c.account.as_deref());
        let t0 = Instant::now();
        let o = t.compose(&m).into_result()?;
        Ok(composed(c.clone(), o, vec![ok_attempt(c, 1, t0)]))
    }

    /// Composes through the decision's chain; `builtin` first in the chain means the app's own editor.
    pub fn compose(
        &self,
        decision: &Decision,
        user: Option<&str>,
        msg: &OutgoingMessage,
    ) -> Result<Composed, Failure> {
        // The app's own editor ends the chain: what comes after it is never tried,
        // and it takes over when every way before it failed (but not after a
        // permanent refusal, which stops everything).
        let builtin_at = decision.chain.iter().position(Candidate::is_builtin);
        let mut head = decision.clone();
        if let Some(i) = builtin_at {
            head.chain.truncate(i);
            if i == 0 && decision.refused.is_none() {
                return Ok(builtin_composed(&decision.chain[0], Vec::new()));
            }
        }
        match self.walk(&head, user, msg, |t, m| t.compose(m).into_result()) {
            Ok((c, o, attempts)) => Ok(composed(c, o, attempts)),
            Err(f) => match builtin_at {
                Some(i) if !matches!(f.class, FailureClass::Permanent | FailureClass::Refused) => {
                    Ok(builtin_composed(&decision.chain[i], f.attempts))
                }
                _ => Err(f),
            },
        }
    }

    /// An access token for `[oauth.provider]` and `scope` from the host's
    /// broker (cached like the plugins' tokens); the admin page's "get a
    /// token now". Blocking.
    pub fn oauth_token(&self, provider: &str, scope: &str) -> Result<String, PluginError> {
        self.env.broker().token(provider, scope, true)
    }

    /// Runs an account's settings check.
    pub fn check(&self, account: &str, options_json: &str) -> Result<CheckReport, PluginError> {
        let acc = self.settings.accounts.get(account).ok_or_else(|| {
            PluginError::config(format!(
                "no account `{}` in {}; configured: {}",
                crate::limits::shown(account),
                self.settings.source,
                self.settings
                    .accounts
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let c = Candidate::for_account(acc);
        let t = self.transport(&c)?;
        t.check(options_json.into()).into_result()
    }

    /// Every account's state; opens each account to ask it.
    pub fn status(&self) -> Vec<AccountStatus> {
        let mut out = Vec::new();
        for acc in self.settings.accounts.values() {
            let c = Candidate::for_account(acc);
            let st = match self.transport(&c) {
                Ok(t) => t.status(),
                Err(e) => ConnectionStatus::new(ConnState::UNABLE_TO_CONNECT, e.message()),
            };
            let sent = self
                .lock()
                .sent
                .get_mut(&acc.name)
                .map(|w| w.count(Instant::now()))
                .unwrap_or(0);
            out.push(AccountStatus {
                account: acc.name.clone(),
                plugin: acc.plugin.clone(),
                state: st.state.name().to_string(),
                reason: st.reason.to_string(),
                max_per_minute: acc.max_per_minute,
                sent_last_minute: sent,
            });
        }
        out
    }

    /// A plain-text report for support requests: versions, OS, plugins and
    /// accounts with their state. Never holds a secret or a setting value.
    pub fn system_info(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("mailhost {}\n", env!("CARGO_PKG_VERSION")));
        out.push_str(&format!(
            "plugin-api {}\n",
            mailhost_plugin_api::API_VERSION
        ));
        out.push_str(&format!(
            "os {} {}\n",
            std::env::consts::OS,
            std::env::consts::ARCH
        ));
        out.push_str(&format!("config {}\n", self.settings.source));
        out.push_str(&format!(
            "sending {}\n",
            if self.settings.policy.enabled {
                "enabled"
            } else {
                "disabled (kill switch)"
            }
        ));
        out.push_str("plugins:\n");
        for p in &self.plugins.plugins {
            let m = p.manifest();
            out.push_str(&format!(
                "  {} {} (api {}) {}\n",
                m.name,
                m.version,
                m.api_version,
                p.path().display()
            ));
        }
        for f in &self.plugins.failures {
            out.push_str(&format!(
                "  FAILED {} ({})\n",
                f.path.display(),
                f.kind.name()
            ));
        }
        out.push_str("accounts:\n");
        for a in self.status() {
            out.push_str(&format!(
                "  {} {} {}\n",
                a.account,
                a.plugin,
                a.state_text()
            ));
        }
        out
    }

    /// Closes every opened transport.
    pub fn close(&self) {
        let ts: Vec<Arc<TransportBox>> = std::mem::take(&mut self.lock().transports)
            .into_values()
            .collect();
        for t in ts {
            t.close();
        }
    }
}
