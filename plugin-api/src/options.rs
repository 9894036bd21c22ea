//! The keys the **host** puts into [`OutgoingMessage::options_json`](crate::OutgoingMessage),
//! as one typed definition that the host and plugins share.
//!
//! These are plain serde helpers, not ABI types: `options_json` stays a JSON
//! string across the ABI, so adding a key here changes no layout.
//!
//! `options_json` mixes two kinds of keys:
//!
//! * **host-only keys** ([`HOST_ONLY_KEYS`]: `user`, `mailbox`, `credentials`,
//!   `save_copy_for`),
//!   which the host sets from its configuration (`[users.NAME.accounts.ACCOUNT]`)
//!   after the policy chose an account. A request (CLI `--options`, the HTTP API)
//!   can never set them: the host refuses such a request before anything is
//!   built, so a plugin may trust them as the admin's configuration;
//! * **request keys** that a caller may set (e.g. `dsn` for the SMTP plugin,
//!   `save_to_sent_items` for Graph); each plugin documents its own and ignores
//!   the rest.
//!
//! ```
//! use mailhost_plugin_api::options::HostOptions;
//! let json = r#"{"user":"alice","credentials":{"username":"alice@example.com","password":"env:ALICE_PW"},"dsn":{"notify":["failure"]}}"#;
//! let host: HostOptions = serde_json::from_str(json).unwrap();
//! assert_eq!(host.user.as_deref(), Some("alice"));
//! assert_eq!(host.credentials.unwrap().username, "alice@example.com");
//! ```

use serde::{Deserialize, Serialize};

/// The option keys only the host may set. A request that names one is refused.
pub const HOST_ONLY_KEYS: &[&str] = &["user", "mailbox", "credentials", SAVE_COPY_FOR];

/// The key of `options_json` on `Transport::compose` that asks a plugin with
/// [`Capabilities::SAVE_COPY_FOR_OTHERS`](crate::Capabilities::SAVE_COPY_FOR_OTHERS)
/// to store the message as a copy in its Sent folder — it was already sent
/// through the account named by the value — instead of saving a draft.
/// The plugin answers `ComposeKind::COPY_SAVED` and never sends anything.
///
/// ```
/// use mailhost_plugin_api::options::{SaveCopyFor, SAVE_COPY_FOR};
/// let o: SaveCopyFor = serde_json::from_str(r#"{"save_copy_for":"office","user":"alice"}"#).unwrap();
/// assert_eq!(o.save_copy_for.as_deref(), Some("office"));
/// assert_eq!(SAVE_COPY_FOR, "save_copy_for");
/// ```
pub const SAVE_COPY_FOR: &str = "save_copy_for";

/// The [`SAVE_COPY_FOR`] part of `options_json`; other keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveCopyFor {
    /// The account the message was sent through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_copy_for: Option<String>,
}

/// Whether `key` is one of [`HOST_ONLY_KEYS`].
pub fn is_host_only(key: &str) -> bool {
    HOST_ONLY_KEYS.contains(&key)
}

/// The host's part of `options_json`. Unknown keys (a plugin's own request
/// options) are ignored when deserializing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOptions {
    /// The user the message is sent for (`--user`, or the API token's user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The mailbox to send as, from `[users.NAME.accounts.ACCOUNT] mailbox`
    /// (Graph: another mailbox than the account's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// Per-user credentials from `[users.NAME.accounts.ACCOUNT]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<UserCredentials>,
}

/// A user's credentials for one account. `password` is a **secret reference**
/// (`env:NAME`, `file:/path`) or, when the admin wrote one, the plain text;
/// resolve it with [`HostServices::secret`](crate::HostServices) and never log it.
/// It is empty for "username required, password optional" (`auth = "optional"`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCredentials {
    /// The user name to log in with.
    pub username: String,
    #[serde(default)]
    /// The password as a secret reference (`env:NAME`, `file:PATH`): resolve it with `Host::secret`.
    pub password: String,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}
