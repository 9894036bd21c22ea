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

    const NAMES: [(Self, &'static str); 5] = [
        (Self::SEND, "send"),
        (Self::COMPOSE, "compose"),
        (Self::SAVE_COPY, "save-copy"),
        (Self::CHECK, "check"),
        (Self::SAVE_COPY_FOR_OTHERS, "save-copy-for-others"),
    ];

    pub const fn empty() -> Self {
        Self(0)
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The names of the known bits that are set, in a stable order.
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

    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }

    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = caps;
        self
    }

    pub fn modes(mut self, modes: &[&str]) -> Self {
        self.modes = modes.iter().map(|m| RString::from(*m)).collect();
        self
    }

    pub fn settings_schema(mut self, schema_json: &str) -> Self {
        self.settings_schema = schema_json.into();
        self
    }

    pub fn os(mut self, os: &[&str]) -> Self {
        self.os = os.iter().map(|m| RString::from(*m)).collect();
        self
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
    pub available: bool,
    /// When available: the level found (`full`, `simple`, a client name...), may be empty.
    pub level: RString,
    /// When unavailable: why, in words an admin can act on.
    pub reason: RString,
}

impl Probe {
    pub fn available(level: &str) -> Self {
        Self {
            available: true,
            level: level.into(),
            reason: RString::new(),
        }
    }

    pub fn unavailable(reason: &str) -> Self {
        Self {
            available: false,
            level: RString::new(),
            reason: reason.into(),
        }
    }
}
