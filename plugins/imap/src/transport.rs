//! The opened IMAP account: drafts (`imap-draft`), sending as the mailbox
//! through its submission server with a copy in Sent (`imap`), `check()` and
//! `status()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use mailhost_plugin_api::options::{HostOptions, SaveCopyFor};
use mailhost_plugin_api::{
    CheckReport, ComposeKind, ComposeOutcome, ConnState, ConnectionStatus, ErrorClass, Host,
    OutgoingMessage, PluginError, Receipt, TransportImpl,
};
use mailhost_smtp::{SmtpConfig, SmtpTransport};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio_rustls::TlsConnector;

use crate::auth::{self, Credentials, Secret};
use crate::client::Conn;
use crate::config::{on_the_wire, ImapConfig, SaveToSent, Security};
use crate::mailbox::{self, Appended, Folder, Found, Role};

/// Whose credentials a connection logs in with.
#[derive(Debug, Clone)]
pub enum Who {
    /// The account's own.
    Account,
    /// Per-user credentials from `options_json.credentials` (password: a secret reference).
    User {
        username: String,
        password_ref: String,
    },
    /// The account's token client for another mailbox (`options_json.mailbox`).
    Mailbox(String),
}

/// Reads the host's keys from `options_json`; values that would break the
/// dialogue are refused (PERMANENT: the request, not the account, is wrong).
pub fn who(cfg: &ImapConfig, options_json: &str) -> Result<Who, PluginError> {
    let options: HostOptions = if options_json.trim().is_empty() {
        HostOptions::default()
    } else {
        serde_json::from_str(options_json)
            .map_err(|e| PluginError::permanent(format!("imap: options_json is not valid: {e}")))?
    };
    if let Some(c) = options.credentials {
        on_the_wire("options_json.credentials.username", &c.username)
            .map_err(PluginError::permanent)?;
        on_the_wire("options_json.credentials.password", &c.password)
            .map_err(PluginError::permanent)?;
        if c.username.trim().is_empty() {
            return Err(PluginError::permanent(
                "imap: options_json.credentials.username is empty",
            ));
        }
        if c.password.is_empty() {
            return Err(PluginError::config(format!(
                "imap: the per-user credentials of {} have no password; IMAP needs one",
                c.username
            )));
        }
        return Ok(Who::User {
            username: c.username,
            password_ref: c.password,
        });
    }
    if let Some(m) = options.mailbox {
        on_the_wire("options_json.mailbox", &m).map_err(PluginError::permanent)?;
        if cfg.oauth.is_some() {
            return Ok(Who::Mailbox(m));
        }
    }
    Ok(Who::Account)
}

/// One connection's work, classified for `status()`.
struct Failure {
    error: PluginError,
    /// The failure came before the login succeeded (the account cannot connect).
    connecting: bool,
}

impl From<PluginError> for Failure {
    fn from(error: PluginError) -> Self {
        Self {
            error,
            connecting: false,
        }
    }
}

fn connecting(error: PluginError) -> Failure {
    Failure {
        error,
        connecting: true,
    }
}

/// Connect, TLS, login: a connection ready for mailbox commands.
async fn open_session(
    cfg: &ImapConfig,
    tls: &TlsConnector,
    creds: &Credentials,
) -> Result<Conn, Failure> {
    let mut conn = Conn::connect(cfg, tls).await.map_err(connecting)?;
    conn.greet().await.map_err(connecting)?;
    if cfg.security == Security::Starttls {
        conn.starttls(&cfg.host, tls).await.map_err(connecting)?;
    }
    if conn.preauth {
        // The server knows who we are (e.g. a trusted local connection).
        return Ok(conn);
    }
    let mech =
        auth::choose(&conn, cfg.mechanism, creds, cfg.allow_plaintext_auth).map_err(connecting)?;
    auth::authenticate(&mut conn, mech, creds)
        .await
        .map_err(connecting)?;
    Ok(conn)
}

/// Logs in, finds the folder for `role` and appends `message` with `flags`.
async fn store(
    cfg: &ImapConfig,
    tls: &TlsConnector,
    creds: &Credentials,
    role: Role,
    flags: &str,
    message: &[u8],
) -> Result<(Folder, Found, Appended), Failure> {
    let mut conn = open_session(cfg, tls, creds).await?;
    let configured = match role {
        Role::Drafts => cfg.drafts_folder.as_deref(),
        Role::Sent => cfg.sent_folder.as_deref(),
    };
    let (folder, found) = mailbox::resolve(&mut conn, role, configured, cfg.create_folders).await?;
    let appended = mailbox::append(&mut conn, &folder, flags, message).await?;
    conn.logout().await;
    Ok((folder, found, appended))
}

/// `imap://user@host:port/Folder;UIDVALIDITY=v/;UID=u` (RFC 5092).
pub fn imap_url(cfg: &ImapConfig, user: &str, folder: &Folder, a: &Appended) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:/".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    let mut url = format!(
        "imap://{}@{}/{}",
        enc(user).replace('/', "%2F").replace(':', "%3A"),
        crate::config::display_addr(&cfg.host, cfg.port),
        enc(&folder.wire)
    );
    if let Some(v) = a.uidvalidity {
        url.push_str(&format!(";UIDVALIDITY={v}"));
    }
    if let Some(u) = a.uid {
        url.push_str(&format!("/;UID={u}"));
    }
    url
}

/// An opened IMAP account.
pub struct ImapTransport {
    cfg: ImapConfig,
    host: Host,
    tls: TlsConnector,
    rt: Runtime,
    smtp: SmtpTransport,
    status: Mutex<ConnectionStatus>,
    closed: AtomicBool,
}

impl std::fmt::Debug for ImapTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapTransport")
            .field("server", &self.cfg.addr())
            .finish_non_exhaustive()
    }
}

impl ImapTransport {
    pub fn new(cfg: ImapConfig, host: Host) -> Result<Self, PluginError> {
        let tls = crate::client::connector(&cfg)?;
        let smtp_cfg = SmtpConfig::from_json(&cfg.smtp_settings().to_string()).map_err(|e| {
            PluginError::config(format!("imap setting `submission`: {}", e.message()))
        })?;
        let smtp = SmtpTransport::new(smtp_cfg, host.clone())?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mailhost-imap")
            .enable_all()
            .build()
            .map_err(|e| {
                PluginError::unavailable(format!("imap: cannot start its runtime: {e}"))
            })?;
        if cfg
            .password_ref
            .as_deref()
            .is_some_and(|p| !p.starts_with("env:") && !p.starts_with("file:"))
        {
            tracing::warn!(
                host = %cfg.host,
                "imap setting `password` is written in the settings as plain text; use env:NAME or file:PATH"
            );
        }
        Ok(Self {
            cfg,
            host,
            tls,
            rt,
            smtp,
            status: Mutex::new(ConnectionStatus::new(ConnState::NOT_CONNECTED, "")),
            closed: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &ImapConfig {
        &self.cfg
    }

    fn set_status(&self, state: ConnState, reason: &str) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if s.state == ConnState::STOPPED {
            return;
        }
        if s.state != state || s.reason.as_str() != reason {
            *s = ConnectionStatus::new(state, reason);
        }
    }

    /// Refuses calls on a closed transport, and calls from a thread that
    /// drives an async runtime (the plugin blocks; the host must call it from
    /// a blocking thread, e.g. `spawn_blocking`).
    fn ensure_open(&self) -> Result<(), PluginError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PluginError::unavailable("the IMAP transport is closed"));
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(PluginError::permanent(
                "imap: called on an async runtime thread; the plugin blocks — call it from a blocking thread (spawn_blocking)",
            ));
        }
        Ok(())
    }

    /// The login name and secret for `who` (secrets and tokens from the host).
    pub fn credentials(&self, who: &Who, force_refresh: bool) -> Result<Credentials, PluginError> {
        let token = |user: &str| -> Result<Credentials, PluginError> {
            let provider = self.cfg.oauth.as_deref().unwrap_or_default();
            let t = self
                .host
                .token(provider, &self.cfg.oauth_scope, force_refresh)?;
            Ok(Credentials {
                username: user.to_string(),
                secret: Secret::Token(t),
            })
        };
        match who {
            Who::User {
                username,
                password_ref,
            } => {
                let p = self.host.secret(password_ref).map_err(|e| {
                    PluginError::config(format!(
                        "imap: per-user password for {username}: {}",
                        e.message()
                    ))
                })?;
                Ok(Credentials {
                    username: username.clone(),
                    secret: Secret::Password(p),
                })
            }
            Who::Mailbox(m) => token(m),
            Who::Account => match (&self.cfg.username, &self.cfg.password_ref, &self.cfg.oauth) {
                (Some(u), _, Some(_)) => token(u),
                (Some(u), Some(p), None) => {
                    let p = self.host.secret(p).map_err(|e| {
                        PluginError::config(format!("imap setting `password`: {}", e.message()))
                    })?;
                    Ok(Credentials {
                        username: u.clone(),
                        secret: Secret::Password(p),
                    })
                }
                _ => Err(PluginError::config(
                    "imap: no credentials: set `username` with `password` (or `oauth`), or give per-user credentials",
                )),
            },
        }
    }

    /// Stores `message` in the folder for `role`, retrying a refused token once with a fresh one.
    pub fn store(
        &self,
        who: &Who,
        role: Role,
        flags: &str,
        message: &[u8],
    ) -> Result<(String, Folder, Found, Appended), PluginError> {
        self.ensure_open()?;
        self.set_status(ConnState::CONNECTING, "");
        let mut refreshed = false;
        loop {
            let creds = match self.credentials(who, refreshed) {
                Ok(c) => c,
                Err(e) => {
                    self.set_status(ConnState::UNABLE_TO_CONNECT, e.message());
                    return Err(e);
                }
            };
            let r = self
                .rt
                .block_on(store(&self.cfg, &self.tls, &creds, role, flags, message));
            match r {
                Ok((folder, found, appended)) => {
                    self.set_status(ConnState::OPERATING, "");
                    return Ok((creds.username, folder, found, appended));
                }
                Err(f) => {
                    let token = matches!(creds.secret, Secret::Token(_));
                    if token && !refreshed && f.error.class() == ErrorClass::AUTH {
                        refreshed = true;
                        continue;
                    }
                    if f.connecting {
                        self.set_status(ConnState::UNABLE_TO_CONNECT, f.error.message());
                    } else {
                        self.set_status(ConnState::OPERATING, "");
                    }
                    return Err(f.error);
                }
            }
        }
    }

    /// Whether a send appends its message to Sent.
    pub fn saves_to_sent(&self) -> bool {
        match self.cfg.save_to_sent {
            SaveToSent::Always => true,
            SaveToSent::Never => false,
            SaveToSent::Auto => !self.cfg.provider_files_sent(),
        }
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }

    pub(crate) fn tls(&self) -> &TlsConnector {
        &self.tls
    }

    pub(crate) fn smtp(&self) -> &SmtpTransport {
        &self.smtp
    }
}

/// `options_json.save_copy_for`: the account a message was sent through,
/// when the host asks for a copy in Sent instead of a draft.
fn copy_for(options_json: &str) -> Option<String> {
    serde_json::from_str::<SaveCopyFor>(options_json)
        .ok()
        .and_then(|o| o.save_copy_for)
}

impl ImapTransport {
    /// Stores a message already sent through `account` in Sent (`\Seen`).
    fn save_copy(
        &self,
        who: &Who,
        account: &str,
        message: &OutgoingMessage,
    ) -> Result<ComposeOutcome, PluginError> {
        let (user, folder, found, a) = self.store(who, Role::Sent, "\\Seen", &message.mime)?;
        let url = imap_url(&self.cfg, &user, &folder, &a);
        let mut out = ComposeOutcome::new(
            ComposeKind::COPY_SAVED,
            &format!(
                "a copy of the message sent through {account} is in {:?} of {user}",
                folder.name
            ),
        );
        out.draft_id = url.clone().into();
        out.details_json = json!({
            "folder": folder.name,
            "found": found.name(),
            "uid": a.uid,
            "uidvalidity": a.uidvalidity,
            "url": url,
            "sent_through": account,
        })
        .to_string()
        .into();
        Ok(out)
    }
}

fn merge_details(details: &str, extra: Value) -> String {
    let mut v: Value = serde_json::from_str(details).unwrap_or_else(|_| json!({}));
    if !v.is_object() {
        v = json!({});
    }
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v.to_string()
}

impl TransportImpl for ImapTransport {
    /// Sends as the mailbox: submission through the provider's server (the
    /// SMTP plugin's code), then a copy in Sent. A failed copy is a warning in
    /// the receipt, never a second submission.
    fn send(&self, message: &OutgoingMessage) -> Result<Receipt, PluginError> {
        self.ensure_open()?;
        let who = who(&self.cfg, &message.options_json)?;
        let mut receipt = self.smtp.send(message)?;
        if !self.saves_to_sent() {
            let why = if self.cfg.save_to_sent == SaveToSent::Never {
                "save_to_sent = \"never\""
            } else {
                "the provider files submitted mail in Sent itself"
            };
            receipt.details_json = merge_details(
                &receipt.details_json,
                json!({"sent_copy": {"saved": false, "reason": why}}),
            )
            .into();
            return Ok(receipt);
        }
        let details = match self.store(&who, Role::Sent, "\\Seen", &message.mime) {
            Ok((_, folder, found, a)) => json!({"sent_copy": {
                "saved": true,
                "folder": folder.name,
                "found": found.name(),
                "uid": a.uid,
                "uidvalidity": a.uidvalidity,
            }}),
            Err(e) => {
                let warning = format!(
                    "the message was sent, but its copy could not be stored in Sent: {}",
                    e.message()
                );
                tracing::warn!(message_id = %message.message_id, "{warning}");
                json!({"sent_copy": {"saved": false, "error_class": e.class().name()}, "warning": warning})
            }
        };
        receipt.details_json = merge_details(&receipt.details_json, details).into();
        Ok(receipt)
    }

    fn compose(&self, message: &OutgoingMessage) -> Result<ComposeOutcome, PluginError> {
        self.ensure_open()?;
        let who = who(&self.cfg, &message.options_json)?;
        if let Some(account) = copy_for(&message.options_json) {
            return self.save_copy(&who, &account, message);
        }
        let (user, folder, found, a) =
            self.store(&who, Role::Drafts, "\\Draft \\Seen", &message.mime)?;
        let url = imap_url(&self.cfg, &user, &folder, &a);
        let mut out = ComposeOutcome::new(
            ComposeKind::DRAFT_SAVED,
            &match a.uid {
                Some(uid) => format!(
                    "saved as a draft in {:?} (UID {uid}) of {user}; open the Drafts folder in your mail client to finish and send it",
                    folder.name
                ),
                None => format!(
                    "saved as a draft in {:?} of {user}; open the Drafts folder in your mail client to finish and send it",
                    folder.name
                ),
            },
        );
        out.draft_id = url.clone().into();
        out.details_json = json!({
            "folder": folder.name,
            "folder_wire": folder.wire,
            "found": found.name(),
            "uid": a.uid,
            "uidvalidity": a.uidvalidity,
            "url": url,
            "server_reply": a.reply,
        })
        .to_string()
        .into();
        Ok(out)
    }

    fn check(&self, options_json: &str) -> Result<CheckReport, PluginError> {
        self.ensure_open()?;
        Ok(crate::check::run(self, options_json))
    }

    /// The IMAP connection's state; when that is fine but the submission
    /// server could not be reached, the submission's state, named as such.
    fn status(&self) -> ConnectionStatus {
        let s = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if s.state == ConnState::STOPPED || s.state == ConnState::UNABLE_TO_CONNECT {
            return s;
        }
        let sub = self.smtp.status();
        if sub.state == ConnState::UNABLE_TO_CONNECT {
            return ConnectionStatus {
                reason: format!("submission server: {}", sub.reason).into(),
                ..sub
            };
        }
        s
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.smtp.close();
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        *s = ConnectionStatus::new(ConnState::STOPPED, "closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_values_with_line_breaks_are_refused() {
        let cfg =
            ImapConfig::from_json(r#"{"host":"h","username":"u","password":"env:P"}"#).unwrap();
        let e = who(
            &cfg,
            r#"{"credentials":{"username":"a\r\nA9 LOGOUT","password":"env:X"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.class(), ErrorClass::PERMANENT);
        assert!(matches!(
            who(
                &cfg,
                r#"{"credentials":{"username":"alice","password":"env:A"}}"#
            )
            .unwrap(),
            Who::User { .. }
        ));
        assert!(matches!(who(&cfg, "{}").unwrap(), Who::Account));
    }

    #[derive(Clone)]
    struct NoHost;
    impl mailhost_plugin_api::HostServices for NoHost {
        fn log(
            &self,
            _: mailhost_plugin_api::LogLevel,
            _: mailhost_plugin_api::abi_stable::std_types::RStr<'_>,
            _: mailhost_plugin_api::abi_stable::std_types::RStr<'_>,
        ) {
        }
        fn secret(
            &self,
            r: mailhost_plugin_api::abi_stable::std_types::RStr<'_>,
        ) -> mailhost_plugin_api::abi_stable::std_types::RResult<
            mailhost_plugin_api::abi_stable::std_types::RString,
            PluginError,
        > {
            mailhost_plugin_api::abi_stable::std_types::RResult::ROk(r.as_str().into())
        }
        fn token(
            &self,
            _: &mailhost_plugin_api::TokenRequest,
        ) -> mailhost_plugin_api::abi_stable::std_types::RResult<
            mailhost_plugin_api::abi_stable::std_types::RString,
            PluginError,
        > {
            mailhost_plugin_api::abi_stable::std_types::RResult::RErr(PluginError::config("none"))
        }
        fn extension(
            &self,
            _: mailhost_plugin_api::abi_stable::std_types::RStr<'_>,
            _: mailhost_plugin_api::abi_stable::std_types::RStr<'_>,
        ) -> mailhost_plugin_api::abi_stable::std_types::RResult<
            mailhost_plugin_api::abi_stable::std_types::RString,
            PluginError,
        > {
            mailhost_plugin_api::abi_stable::std_types::RResult::RErr(PluginError::unsupported(
                "none",
            ))
        }
    }

    #[test]
    fn opens_without_account_credentials_and_refuses_async_callers() {
        // Per-user credentials only: the account itself has none.
        let cfg = ImapConfig::from_json(r#"{"host":"127.0.0.1","port":9}"#).unwrap();
        let t = ImapTransport::new(cfg, Host::new(NoHost)).unwrap();
        assert_eq!(t.status().state, ConnState::NOT_CONNECTED);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt.block_on(async { t.ensure_open() }).unwrap_err();
        assert!(e.message().contains("spawn_blocking"), "{e}");
        t.close();
        assert_eq!(t.status().state, ConnState::STOPPED);
        assert_eq!(
            t.ensure_open().unwrap_err().class(),
            ErrorClass::UNAVAILABLE
        );
    }

    #[test]
    fn urls() {
        let cfg = ImapConfig::from_json(r#"{"host":"127.0.0.1","port":1143}"#).unwrap();
        let f = Folder {
            wire: "Entw&APw-rfe".into(),
            name: "Entwürfe".into(),
            attrs: vec![],
            delim: Some('/'),
        };
        let a = Appended {
            uidvalidity: Some(7),
            uid: Some(3),
            reply: String::new(),
        };
        assert_eq!(
            imap_url(&cfg, "a@b.c", &f, &a),
            "imap://a%40b.c@127.0.0.1:1143/Entw&APw-rfe;UIDVALIDITY=7/;UID=3"
        );
    }
}
