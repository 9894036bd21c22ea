//! What the policy sees (plugins' probes, cached; transports that cannot
//! connect) and the decision made on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailhost_plugin_api::{ConnState, TransportBox};

use super::Engine;
use crate::policy::{self, Action, Decision, ProbeResult, Request, World};

impl Engine {
    /// A plugin's probe, cached for `probe_ttl_ms`; a probe that takes longer
    /// than `probe_timeout_ms` counts as unavailable (its result is cached when it arrives).
    fn probe(&self, plugin: &str) -> ProbeResult {
        if let Some(r) = self.cached_probe(plugin) {
            return r;
        }
        let Some(p) = self.plugins.get(plugin).cloned() else {
            return ProbeResult {
                available: false,
                level: String::new(),
                reason: format!("plugin `{plugin}` is not loaded"),
            };
        };
        let handle = self.env.clone().with_origin(plugin).handle();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pr = p.probe(handle);
            let _ = tx.send(ProbeResult {
                available: pr.available,
                level: pr.level.to_string(),
                reason: pr.reason.to_string(),
            });
        });
        let timeout = Duration::from_millis(self.settings.policy.probe_timeout_ms);
        match rx.recv_timeout(timeout) {
            Ok(r) => {
                self.lock()
                    .probes
                    .insert(plugin.to_string(), (Instant::now(), r.clone()));
                r
            }
            Err(_) => ProbeResult {
                available: false,
                level: String::new(),
                reason: format!(
                    "probe did not answer within {} ms (policy.probe_timeout_ms)",
                    timeout.as_millis()
                ),
            },
        }
    }

    /// A plugin's probe from the cache, while it is younger than `probe_ttl_ms`.
    fn cached_probe(&self, plugin: &str) -> Option<ProbeResult> {
        let ttl = Duration::from_millis(self.settings.policy.probe_ttl_ms);
        match self.lock().probes.get(plugin) {
            Some((at, r)) if at.elapsed() < ttl => Some(r.clone()),
            _ => None,
        }
    }

    /// What the policy sees now (runs the probes that are due: may block).
    pub fn world(&self) -> World {
        let probed = self.world_from(|n| Some(self.probe(n)));
        // The closure always answers.
        probed.unwrap_or_else(|| self.plugin_world.clone())
    }

    /// What the policy sees now when no probe is due; None when one is
    /// ([`Self::world`] runs it, which may block for `probe_timeout_ms`).
    pub fn world_if_probed(&self) -> Option<World> {
        self.world_from(|n| match self.cached_probe(n) {
            Some(r) => Some(r),
            // Answered at once, without the plugin.
            None if self.plugins.get(n).is_none() => Some(self.probe(n)),
            None => None,
        })
    }

    fn world_from(&self, probe: impl Fn(&str) -> Option<ProbeResult>) -> Option<World> {
        let mut w = self.plugin_world.clone();
        let names: Vec<String> = w.plugin_modes.keys().cloned().collect();
        for n in names {
            let r = probe(&n)?;
            w.probes.insert(n, r);
        }
        let opened: Vec<(String, Arc<TransportBox>)> = self
            .lock()
            .transports
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (label, t) in opened {
            let st = t.status();
            if st.state == ConnState::UNABLE_TO_CONNECT {
                w.unreachable.insert(label, st.reason.to_string());
            }
        }
        Some(w)
    }

    pub fn decide(&self, action: Action, req: &Request) -> Decision {
        self.decide_in(&self.world(), action, req)
    }

    pub(crate) fn decide_in(&self, world: &World, action: Action, req: &Request) -> Decision {
        policy::decide(&self.settings, world, action, req)
    }
}
