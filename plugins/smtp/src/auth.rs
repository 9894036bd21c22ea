//! SMTP AUTH (RFC 4954): PLAIN, LOGIN and XOAUTH2 with lettre's `Auth`
//! command, and CRAM-MD5 (RFC 2195), which lettre lacks, on lettre's public
//! `command()`/`read_response()`.
//!
//! lettre has no extension point for mechanisms (`Mechanism` is a closed enum),
//! so CRAM-MD5 runs its own two-step exchange here. XOAUTH2 is also driven
//! here rather than by lettre's `auth()`: a refused token gets a `334` JSON
//! challenge that the client must answer with an empty line before the `535`
//! (lettre would give up mid-exchange), and the caller then refreshes the
//! token once.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use lettre::transport::smtp::authentication::{
    Credentials as LettreCredentials, Mechanism as LettreMechanism,
};
use lettre::transport::smtp::commands::Auth;
use mailhost_plugin_api::PluginError;
use md5::Md5;

use crate::config::MechanismChoice;
use crate::error::Stage;
use crate::session::{Line, Session};

/// A SASL mechanism the plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
    Xoauth2,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Xoauth2 => "XOAUTH2",
        }
    }

    /// Sends the secret itself over the wire (needs TLS).
    pub fn is_clear_text(self) -> bool {
        !matches!(self, Mechanism::CramMd5)
    }
}

/// What a session authenticates with.
#[derive(Clone)]
pub enum Secret {
    Password(String),
    /// An OAuth2 access token (XOAUTH2).
    Token(String),
}

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub secret: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.secret {
            Secret::Password(_) => "password",
            Secret::Token(_) => "token",
        };
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &kind)
            .finish()
    }
}

/// Chooses the mechanism for this session.
///
/// `auto`: XOAUTH2 for a token; for a password the best the server offers —
/// PLAIN, LOGIN, then CRAM-MD5 over TLS; CRAM-MD5 only on a clear-text
/// connection unless `allow_plaintext` is set.
pub fn choose(
    choice: MechanismChoice,
    creds: &Credentials,
    offered: &[String],
    tls: bool,
    allow_plaintext: bool,
    addr: &str,
) -> Result<Mechanism, PluginError> {
    let offers = |m: Mechanism| offered.iter().any(|o| o == m.name());
    let clear_ok = tls || allow_plaintext;
    let offered_text = if offered.is_empty() {
        "no AUTH at all".to_string()
    } else {
        format!("AUTH {}", offered.join(" "))
    };
    let explicit = match choice {
        MechanismChoice::Auto => None,
        MechanismChoice::Plain => Some(Mechanism::Plain),
        MechanismChoice::Login => Some(Mechanism::Login),
        MechanismChoice::CramMd5 => Some(Mechanism::CramMd5),
        MechanismChoice::Xoauth2 => Some(Mechanism::Xoauth2),
    };
    let token = matches!(creds.secret, Secret::Token(_));
    if token && explicit.is_some_and(|m| m != Mechanism::Xoauth2) {
        return Err(PluginError::config(
            "an OAuth token can only be used with mechanism = \"xoauth2\"",
        ));
    }
    let m = match explicit {
        Some(m) => m,
        None if token => Mechanism::Xoauth2,
        None => {
            let order: &[Mechanism] = if clear_ok {
                &[Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5]
            } else {
                &[Mechanism::CramMd5]
            };
            match order.iter().copied().find(|m| offers(*m)) {
                Some(m) => m,
                None if !clear_ok && (offers(Mechanism::Plain) || offers(Mechanism::Login)) => {
                    return Err(PluginError::config(format!(
                        "{addr} offers only {offered_text} on this connection without TLS, which would send the password \
                         in clear text; use security = \"starttls\" or \"tls\", or set allow_plaintext_auth = true"
                    )))
                }
                None => {
                    return Err(PluginError::config(format!(
                        "{addr} offers {offered_text}: none of PLAIN, LOGIN, CRAM-MD5 that mailhost can use with a password"
                    )))
                }
            }
        }
    };
    if !offers(m) {
        return Err(PluginError::config(format!(
            "{addr} does not offer AUTH {} (it offers {offered_text}); set `mechanism` to one it offers, or \"auto\"",
            m.name()
        )));
    }
    if m.is_clear_text() && !clear_ok {
        return Err(PluginError::config(format!(
            "AUTH {} would send the credentials in clear text to {addr} (no TLS); use security = \"starttls\" or \"tls\", \
             or set allow_plaintext_auth = true",
            m.name()
        )));
    }
    Ok(m)
}

/// Outcome of an authentication attempt that the server refused.
#[derive(Debug)]
pub struct Refused {
    pub error: PluginError,
    /// XOAUTH2: the token was refused (retry once with a fresh token).
    pub token_refused: bool,
}

/// Runs AUTH with `mechanism`; `Ok` holds the server's final reply text.
pub async fn authenticate(
    session: &mut Session,
    mechanism: Mechanism,
    creds: &Credentials,
) -> Result<String, Refused> {
    let plain = |error: PluginError| Refused {
        error,
        token_refused: false,
    };
    let secret = match &creds.secret {
        Secret::Password(p) | Secret::Token(p) => p.clone(),
    };
    let lettre_creds = LettreCredentials::new(creds.username.clone(), secret.clone());
    let reply = match mechanism {
        Mechanism::Plain | Mechanism::Login => {
            let m = if mechanism == Mechanism::Plain {
                LettreMechanism::Plain
            } else {
                LettreMechanism::Login
            };
            let first =
                Auth::new(m, lettre_creds.clone(), None).map_err(|e| plain(client_error(e)))?;
            let mut reply = session.cmd(Stage::Auth, first).await.map_err(plain)?;
            let mut rounds = 0;
            while reply.code == 334 && rounds < 4 {
                rounds += 1;
                let lettre_reply = lettre_response(&reply).map_err(plain)?;
                let next = Auth::new_from_response(m, lettre_creds.clone(), &lettre_reply)
                    .map_err(|e| {
                        plain(PluginError::permanent(format!(
                            "{}: unexpected AUTH {} challenge: {e}",
                            session.addr,
                            mechanism.name()
                        )))
                    })?;
                reply = session.cmd(Stage::Auth, next).await.map_err(plain)?;
            }
            reply
        }
        Mechanism::CramMd5 => {
            let challenge = session
                .cmd(Stage::Auth, Line("AUTH CRAM-MD5"))
                .await
                .map_err(plain)?;
            let encoded = challenge.lines.first().map(String::as_str).unwrap_or("");
            let decoded = B64.decode(encoded.trim()).map_err(|e| {
                plain(PluginError::permanent(format!(
                    "{}: the CRAM-MD5 challenge is not base64 ({e})",
                    session.addr
                )))
            })?;
            let response = cram_md5_response(&creds.username, &secret, &decoded);
            session
                .cmd(Stage::Auth, Line(&response))
                .await
                .map_err(plain)?
        }
        Mechanism::Xoauth2 => {
            let first = Auth::new(LettreMechanism::Xoauth2, lettre_creds, None)
                .map_err(|e| plain(client_error(e)))?;
            match session.cmd(Stage::Auth, first).await {
                Ok(r) if r.code == 334 => {
                    // The token was refused: the challenge is a JSON error; an empty
                    // line ends the exchange and the server answers 535.
                    let detail = r
                        .lines
                        .first()
                        .and_then(|c| B64.decode(c.trim()).ok())
                        .map(|d| String::from_utf8_lossy(&d).into_owned())
                        .unwrap_or_default();
                    let end = session.cmd(Stage::Auth, Line("")).await;
                    let mut error = match end {
                        Err(e) => e,
                        Ok(r) => PluginError::auth(format!(
                            "{}: XOAUTH2 ended with \"{r}\"",
                            session.addr
                        )),
                    };
                    if !detail.is_empty() {
                        error.message =
                            format!("{} (server's challenge: {detail})", error.message()).into();
                    }
                    error.message = format!(
                        "{}; check that the token is for scope https://outlook.office365.com/.default and the mailbox `username`",
                        error.message()
                    )
                    .into();
                    return Err(Refused {
                        error,
                        token_refused: true,
                    });
                }
                Ok(r) => r,
                Err(e) => {
                    let refused = e.code == 535;
                    return Err(Refused {
                        error: e,
                        token_refused: refused,
                    });
                }
            }
        }
    };
    if reply.code != 235 {
        return Err(plain(PluginError::auth(format!(
            "{}: AUTH {} ended with \"{reply}\" instead of 235",
            session.addr,
            mechanism.name()
        ))));
    }
    session.authenticated = Some(mechanism.name());
    Ok(reply.to_string())
}

fn client_error(e: lettre::transport::smtp::Error) -> PluginError {
    PluginError::permanent(format!("cannot build the AUTH command: {e}"))
}

fn lettre_response(
    r: &crate::error::Reply,
) -> Result<lettre::transport::smtp::response::Response, PluginError> {
    let text = format!("{}\r\n", r.raw().replace('\n', "\r\n"));
    text.parse().map_err(|e| {
        PluginError::permanent(format!("cannot parse the server's AUTH challenge: {e}"))
    })
}

/// RFC 2195: `base64(username SP hex(HMAC-MD5(password, challenge)))`.
pub fn cram_md5_response(username: &str, password: &str, challenge: &[u8]) -> String {
    let digest = match <Hmac<Md5> as Mac>::new_from_slice(password.as_bytes()) {
        Ok(mut mac) => {
            mac.update(challenge);
            mac.finalize().into_bytes()
        }
        // HMAC accepts keys of any length; this branch cannot happen.
        Err(_) => Default::default(),
    };
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    B64.encode(format!("{username} {hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cram_md5_rfc_2195_example() {
        // RFC 2195 section 2: user "tim", secret "tanstaaftanstaaf".
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        let r = cram_md5_response("tim", "tanstaaftanstaaf", challenge);
        let decoded = String::from_utf8(B64.decode(r).unwrap()).unwrap();
        assert_eq!(decoded, "tim b913a602c7eda7a495b4e6e7334d3890");
    }

    fn creds() -> Credentials {
        Credentials {
            username: "u".into(),
            secret: Secret::Password("p".into()),
        }
    }

    #[test]
    fn auto_prefers_plain_over_tls_and_cram_md5_without() {
        let offered: Vec<String> = ["LOGIN", "PLAIN", "CRAM-MD5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = choose(
            MechanismChoice::Auto,
            &creds(),
            &offered,
            true,
            false,
            "h:1",
        )
        .unwrap();
        assert_eq!(m, Mechanism::Plain);
        let m = choose(
            MechanismChoice::Auto,
            &creds(),
            &offered,
            false,
            false,
            "h:1",
        )
        .unwrap();
        assert_eq!(m, Mechanism::CramMd5);
        let only_plain = vec!["PLAIN".to_string()];
        let e = choose(
            MechanismChoice::Auto,
            &creds(),
            &only_plain,
            false,
            false,
            "h:1",
        )
        .unwrap_err();
        assert!(e.message().contains("clear text"), "{e}");
        assert_eq!(
            choose(
                MechanismChoice::Auto,
                &creds(),
                &only_plain,
                false,
                true,
                "h:1"
            )
            .unwrap(),
            Mechanism::Plain
        );
    }

    #[test]
    fn explicit_mechanism_must_be_offered() {
        let offered = vec!["PLAIN".to_string()];
        let e = choose(
            MechanismChoice::CramMd5,
            &creds(),
            &offered,
            true,
            false,
            "h:1",
        )
        .unwrap_err();
        assert!(e.message().contains("does not offer AUTH CRAM-MD5"), "{e}");
    }

    #[test]
    fn debug_hides_secret() {
        let c = Credentials {
            username: "u".into(),
            secret: Secret::Password("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
