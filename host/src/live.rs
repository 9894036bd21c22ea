//! The engine a running service uses, replaceable while it runs: the admin
//! page saves the config and swaps in an engine built from it, so the API
//! and the outbox workers apply the change without a restart. A request or
//! a send that already holds the old engine finishes with it.

use std::sync::{Arc, RwLock};

use crate::engine::Engine;

/// The current engine; cheap to read (an `Arc` clone under a read lock).
pub struct LiveEngine {
    current: RwLock<Arc<Engine>>,
}

impl std::fmt::Debug for LiveEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveEngine").field(&self.get()).finish()
    }
}

impl LiveEngine {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            current: RwLock::new(engine),
        }
    }

    /// The engine to use for one request or one send.
    pub fn get(&self) -> Arc<Engine> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `engine` in place; returns the one it replaces.
    pub fn set(&self, engine: Arc<Engine>) -> Arc<Engine> {
        // Its config was checked before it got here.
        engine.plugins().forget_validators();
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *cur, engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swapped_engine_is_what_the_next_reader_gets() {
        let plugins = crate::loader::PluginSet::default();
        let src = crate::config::Source::from_text("a.toml", std::path::Path::new("."), "");
        let settings = crate::config::validate(&src, &plugins).unwrap();
        let first = Arc::new(Engine::new(settings.clone(), plugins.clone()));
        let live = LiveEngine::new(first.clone());
        let held = live.get();
        let second = Arc::new(Engine::new(settings, plugins));
        let old = live.set(second.clone());
        assert!(Arc::ptr_eq(&old, &first));
        assert!(Arc::ptr_eq(&live.get(), &second));
        // A reader that took the engine before the swap keeps it.
        assert!(Arc::ptr_eq(&held, &first));
    }
}
