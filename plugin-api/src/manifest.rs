//! What a plugin says about itself before it is opened.

use std::fmt;

use abi_stable::std_types::{RString, RVec};
use abi_stable::StableAbi;

/// A bit set of what a plugin can do. Unknown bits are ignored by the host.
#[repr(transparent)]
#[derive(StableAbi, Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// `Transport::send` delivers a message.
    pub const SEND: Self = Self(1);
    /// `Transport::compose` opens or saves a message for the user to finish.
    pub const COMPOSE: Self = Self(1 << 1);
    /// The transport can keep a copy in the sender's Sent folder.
    pub const SAVE_COPY: Self = Self(1 << 2);
    /// `Transport::check` tests the settings step by step.
    pub const CHECK: Self = Self(1 << 3);
    /// The transport can store a copy of a message sent through **another**
    /// account in its Sent folder (an account's `save_copy_to`): the host calls
    /// `Transport::compose` with [`crate::options::SAVE_COPY_FOR`] in
    /// `options_json`, and the plugin stores the message instead of making a
    /// draft, answering [`crate::ComposeKind::COPY_SAVED`]. Added in 1.0 as a
    /// new value; no layout changed.
    pub const SAVE_COPY_FOR_OTHERS: Self = Self(1 << 4);

    /// The plugin was built with `panic = "unwind"` (Rust's default): a panic
    /// inside it becomes a `Permanent` error and the host goes on. Set by
    /// [`crate::export_plugin!`], never by hand; not listed by [`Self::names`].
    pub const PANIC_UNWIND: Self = Self(1 << 5);
    /// The plugin was built with `panic = "abort"`: its first panic would end
    /// the whole host process (SIGABRT), so the host refuses to load it. Set by
    /// [`crate::export_plugin!`], never by hand; not listed by [`Self::names`].
    ///
    /// A plugin with neither bit was built before these bits existed (plugin-api
    /// 1.0.0 as first released): the host loads it with a warning.
    pub const PANIC_ABORT: Self = Self(1 << 6);

    /// The bit for the panic strategy this code is compiled with
    /// (`cfg!(panic = "unwind")`): [`Self::PANIC_UNWIND`] or [`Self::PANIC_ABORT`].
    pub const fn panic_strategy(unwind: bool) -> Self {
        if unwind {
            Self::PANIC_UNWIND
        } else {
            Self::PANIC_ABORT
        }
    }

    /// `self` without the bits of `other`.
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    const NAMES: [(Self, &'static str); 5] = [
        (Self::SEND, "send"),
        (Self::COMPOSE, "compose"),
        (Self::SAVE_COPY, "save-copy"),
        (Self::CHECK, "check"),
        (Self::SAVE_COPY_FOR_OTHERS, "save-copy-for-others"),
    ];

    /// No capability.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The bits of both.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// True when every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the known capability bits that are set, in a stable order
    /// (`send`, `compose`, `save-copy`, `check`; the panic-strategy bits are
    /// not capabilities a policy chooses by and are left out).
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.names().join("|"))
    }
}

/// The `extra_json` key of [`Manifest::send_reads_mime_only`].
pub const SEND_READS_MIME_ONLY: &str = "send_reads_mime_only";

/// The `extra_json` key of [`Manifest::send_many_overlaps`].
pub const SEND_MANY_OVERLAPS: &str = "send_many_overlaps";

/// What a plugin is: returned by the root module's `manifest` before anything is opened.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Unique plugin name, as an account's `plugin = "..."` names it (`smtp`, `graph`).
    pub name: RString,
    /// The plugin's own version.
    pub version: RString,
    /// The plugin-api version the plugin was built against ([`crate::API_VERSION`]).
    pub api_version: RString,
    /// One line for `mailhost plugins` and the admin page.
    pub description: RString,
    /// What the plugin can do (send, compose, check...) and the panic strategy it
    /// was built with, which `export_plugin!` sets.
    pub capabilities: Capabilities,
    /// The policy modes this plugin serves (`smtp`, `graph`, `mapi-full`, `m365-draft`...).
    pub modes: RVec<RString>,
    /// JSON Schema (draft 2020-12) of the plugin's own account settings; the host
    /// validates each account with it (`additionalProperties: false` is expected).
    pub settings_schema: RString,
    /// Operating systems the plugin works on (`linux`, `windows`, `macos`); empty = any.
    pub os: RVec<RString>,
    /// A JSON object for fields added after 1.0 (`{}` when none).
    pub extra_json: RString,
}

impl Manifest {
    /// A manifest with the given name and version, the current api version,
    /// no capabilities, no modes, an empty-object schema and `{}` extras.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            api_version: crate::API_VERSION.into(),
            description: RString::new(),
            capabilities: Capabilities::empty(),
            modes: RVec::new(),
            settings_schema: r#"{"type":"object","additionalProperties":false}"#.into(),
            os: RVec::new(),
            extra_json: "{}".into(),
        }
    }

    /// Sets the one-line description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }

    /// Sets the capabilities (`SEND | CHECK`...).
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = caps;
        self
    }

    /// Sets the policy modes the plugin serves.
    pub fn modes(mut self, modes: &[&str]) -> Self {
        self.modes = modes.iter().map(|m| RString::from(*m)).collect();
        self
    }

    /// Sets the settings JSON Schema (a JSON text).
    pub fn settings_schema(mut self, schema_json: &str) -> Self {
        self.settings_schema = schema_json.into();
        self
    }

    /// Sets the operating systems the plugin runs on (empty: any).
    pub fn os(mut self, os: &[&str]) -> Self {
        self.os = os.iter().map(|m| RString::from(*m)).collect();
        self
    }

    /// Declares that `Transport::send` reads only the envelope, `mime`, the
    /// ids and the options of an [`crate::OutgoingMessage`], never its `parts`
    /// (an SMTP relay, a pickup folder). The host may then hand `send` a
    /// message whose `parts` are empty instead of parsing stored MIME again
    /// (the outbox does: it keeps only the bytes). `compose` always gets the
    /// parts. Recorded in `extra_json` as `"send_reads_mime_only": true`.
    pub fn send_reads_mime_only(self) -> Self {
        self.with_extra_flag(SEND_READS_MIME_ONLY)
    }

    /// True when the plugin declared [`Manifest::send_reads_mime_only`].
    pub fn sends_mime_only(&self) -> bool {
        self.extra_flag(SEND_READS_MIME_ONLY)
    }

    /// Declares that the transport's `send_many` overlaps the messages it is
    /// given ([`crate::TransportImpl::send_many`], e.g. several connections
    /// at once), so the host's outbox worker hands it a group in one call.
    /// Without it the worker calls `send` per message from several threads,
    /// which is what a transport that sends one message at a time is best
    /// served by. Recorded in `extra_json` as `"send_many_overlaps": true`.
    pub fn send_many_overlaps(self) -> Self {
        self.with_extra_flag(SEND_MANY_OVERLAPS)
    }

    /// True when the plugin declared [`Manifest::send_many_overlaps`].
    pub fn overlaps_send_many(&self) -> bool {
        self.extra_flag(SEND_MANY_OVERLAPS)
    }

    /// Sets `key` to `true` in `extra_json`, keeping the other extras.
    fn with_extra_flag(mut self, key: &str) -> Self {
        let mut extra: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(self.extra_json.as_str()).unwrap_or_default();
        extra.insert(key.into(), serde_json::Value::Bool(true));
        self.extra_json = serde_json::Value::Object(extra).to_string().into();
        self
    }

    /// A `true` flag in `extra_json` (anything else, or malformed JSON: false).
    fn extra_flag(&self, key: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(self.extra_json.as_str())
            .ok()
            .and_then(|v| v.get(key).and_then(|b| b.as_bool()))
            .unwrap_or(false)
    }

    /// True when the plugin declares it runs on `os` (or declares no OS at all).
    pub fn supports_os(&self, os: &str) -> bool {
        self.os.is_empty() || self.os.iter().any(|o| o.as_str() == os)
    }
}

/// Whether a plugin can work on this machine now (Outlook installed? the
/// default mail client's MAPI level?). Cheap and free of side effects.
///
/// Whether an *account* is reachable is not a probe: the host reads the
/// account's last `Transport::status`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// True when the plugin can work on this machine now.
    pub available: bool,
    /// When available: the level found (`full`, `simple`, a client name...), may be empty.
    pub level: RString,
    /// When unavailable: why, in words an admin can act on.
    pub reason: RString,
}

impl Probe {
    /// Available, at `level` (may be empty).
    pub fn available(level: &str) -> Self {
        Self {
            available: true,
            level: level.into(),
            reason: RString::new(),
        }
    }

    /// Unavailable, and why (words an admin can act on).
    pub fn unavailable(reason: &str) -> Self {
        Self {
            available: false,
            level: RString::new(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Capabilities, Manifest};

    #[test]
    fn mime_only_send_is_declared_in_the_extras() {
        let m = Manifest::new("x", "1.0.0");
        assert!(!m.sends_mime_only());
        let m = m.send_reads_mime_only();
        assert!(m.sends_mime_only());
        assert_eq!(m.extra_json.as_str(), r#"{"send_reads_mime_only":true}"#);
        // other extras are kept; a malformed extra reads as "not declared"
        let mut m = Manifest::new("x", "1.0.0");
        m.extra_json = r#"{"later":1}"#.into();
        let m = m.send_reads_mime_only();
        assert!(m.extra_json.as_str().contains(r#""later":1"#));
        assert!(m.sends_mime_only());
        // the two flags side by side
        assert!(!m.overlaps_send_many());
        let m = m.send_many_overlaps();
        assert!(m.overlaps_send_many() && m.sends_mime_only());
        let mut m = Manifest::new("x", "1.0.0");
        m.extra_json = "not json".into();
        assert!(!m.sends_mime_only());
    }

    #[test]
    fn panic_bits_are_not_listed_as_capabilities() {
        let c = Capabilities::SEND | Capabilities::panic_strategy(true);
        assert_eq!(c.names(), ["send"]);
        assert!(c.contains(Capabilities::PANIC_UNWIND));
        assert_eq!(
            Capabilities::panic_strategy(false),
            Capabilities::PANIC_ABORT
        );
        assert_eq!(c.without(Capabilities::PANIC_UNWIND), Capabilities::SEND);
        // The glue records the strategy this crate is compiled with.
        let m = (crate::root_module::<Probe>().manifest())()
            .into_result()
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            m.capabilities.contains(Capabilities::PANIC_UNWIND)
                && !m.capabilities.contains(Capabilities::PANIC_ABORT),
            "{:?}",
            m.capabilities.0
        );
    }

    struct Probe;
    struct Nothing;
    impl crate::TransportImpl for Nothing {
        fn send(&self, _m: &crate::OutgoingMessage) -> Result<crate::Receipt, crate::PluginError> {
            Err(crate::PluginError::unsupported("test"))
        }
        fn check(&self, _o: &str) -> Result<crate::CheckReport, crate::PluginError> {
            Ok(crate::CheckReport::new())
        }
    }
    impl crate::Plugin for Probe {
        type Transport = Nothing;
        fn manifest() -> super::Manifest {
            // A plugin that sets the abort bit itself is overridden by the glue.
            super::Manifest::new("probe", "0").capabilities(Capabilities::PANIC_ABORT)
        }
        fn open(_s: &str, _h: crate::Host) -> Result<Nothing, crate::PluginError> {
            Ok(Nothing)
        }
    }
}
