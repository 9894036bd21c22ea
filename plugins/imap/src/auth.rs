//! Logging in: LOGIN, AUTHENTICATE PLAIN, XOAUTH2 and OAUTHBEARER (RFC 7628).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mailhost_plugin_api::PluginError;

use crate::client::{quote, Conn, Reply, Status};
use crate::config::MechanismChoice;
use crate::error;

/// What the connection authenticates with.
pub enum Secret {
    Password(String),
    Token(String),
}

/// A login name with its password or token.
pub struct Credentials {
    pub username: String,
    pub secret: Secret,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Login,
    Plain,
    Xoauth2,
    Oauthbearer,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Login => "LOGIN",
            Mechanism::Plain => "PLAIN",
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::Oauthbearer => "OAUTHBEARER",
        }
    }
}

/// The mechanism to use with `conn`'s capabilities.
pub fn choose(
    conn: &Conn,
    choice: MechanismChoice,
    creds: &Credentials,
    allow_plaintext: bool,
) -> Result<Mechanism, PluginError> {
    if !conn.is_tls() && !allow_plaintext {
        return Err(PluginError::config(format!(
            "imap: refusing to send a password or token to {} without TLS; use security = \"starttls\" or \"tls\" (or allow_plaintext_auth = true on a trusted network)",
            conn.addr
        )));
    }
    let offered = |m: &str| conn.has(&format!("AUTH={m}"));
    let m = match (&creds.secret, choice) {
        (Secret::Token(_), MechanismChoice::Oauthbearer) => Mechanism::Oauthbearer,
        (Secret::Token(_), MechanismChoice::Xoauth2) => Mechanism::Xoauth2,
        (Secret::Token(_), _) => {
            if offered("XOAUTH2") {
                Mechanism::Xoauth2
            } else if offered("OAUTHBEARER") {
                Mechanism::Oauthbearer
            } else {
                return Err(PluginError::unsupported(format!(
                    "imap: {} offers neither XOAUTH2 nor OAUTHBEARER (capabilities: {}); use a password instead of `oauth`",
                    conn.addr,
                    conn.caps.join(" ")
                )));
            }
        }
        (Secret::Password(_), MechanismChoice::Login) => Mechanism::Login,
        (Secret::Password(_), MechanismChoice::Plain) => Mechanism::Plain,
        (Secret::Password(_), _) => {
            if offered("PLAIN") {
                Mechanism::Plain
            } else {
                Mechanism::Login
            }
        }
    };
    if m == Mechanism::Login && conn.has("LOGINDISABLED") {
        return Err(PluginError::config(format!(
            "imap: {} does not allow LOGIN here (LOGINDISABLED); use TLS",
            conn.addr
        )));
    }
    Ok(m)
}

/// The tagged reply to the login; NO/BAD are returned, not turned into errors,
/// so that the caller may retry with a fresh token.
pub async fn login(
    conn: &mut Conn,
    mechanism: Mechanism,
    creds: &Credentials,
) -> Result<Reply, PluginError> {
    let user = &creds.username;
    let secret = match &creds.secret {
        Secret::Password(p) | Secret::Token(p) => p,
    };
    crate::config::on_the_wire("the username", user).map_err(PluginError::config)?;
    crate::config::on_the_wire("the password or token", secret).map_err(PluginError::config)?;
    let stage = format!("the {} login", mechanism.name());
    let ir = match mechanism {
        Mechanism::Login => {
            let cmd = format!("LOGIN {} {}", quote(user), quote(secret));
            return conn.command(&cmd, &stage).await;
        }
        Mechanism::Plain => format!("\0{user}\0{secret}"),
        Mechanism::Xoauth2 => format!("user={user}\x01auth=Bearer {secret}\x01\x01"),
        Mechanism::Oauthbearer => format!("n,a={user},\x01auth=Bearer {secret}\x01\x01"),
    };
    let ir = STANDARD.encode(ir);
    if conn.has("SASL-IR") {
        let cmd = format!("AUTHENTICATE {} {ir}", mechanism.name());
        // A failed XOAUTH2/OAUTHBEARER gets a challenge; the empty answer ends it.
        conn.exchange(cmd.as_bytes(), Vec::new(), &stage).await
    } else {
        let cmd = format!("AUTHENTICATE {}", mechanism.name());
        conn.exchange(cmd.as_bytes(), vec![ir.into_bytes()], &stage)
            .await
    }
}

/// Logs in or returns the classified refusal.
pub async fn authenticate(
    conn: &mut Conn,
    mechanism: Mechanism,
    creds: &Credentials,
) -> Result<Reply, PluginError> {
    let r = login(conn, mechanism, creds).await?;
    if r.status == Status::Ok {
        // The capabilities may change after login (RFC 3501 §6.2.3).
        let listed = r
            .code()
            .and_then(|c| crate::client::strip_prefix_ci(c, "CAPABILITY "))
            .map(|list| {
                list.split_ascii_whitespace()
                    .map(str::to_ascii_uppercase)
                    .collect::<Vec<_>>()
            });
        match listed {
            Some(caps) => conn.caps = caps,
            None => {
                conn.capability().await?;
            }
        }
        Ok(r)
    } else {
        Err(error::login(
            &conn.addr,
            mechanism.name(),
            &creds.username,
            &r,
        ))
    }
}
