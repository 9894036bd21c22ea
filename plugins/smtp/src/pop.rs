//! POP-before-SMTP: a POP3 login (RFC 1939 USER/PASS or APOP) that makes the
//! SMTP server trust this client's address for a while. Optional TLS: implicit
//! (POP3S) or STLS (RFC 2595).

use std::time::Duration;

use mailhost_plugin_api::PluginError;
use md5::{Digest, Md5};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsConnector;

use crate::config::{PopConfig, Security};
use crate::session::{display_addr, resolve, tcp_connect, tls_handshake};
use crate::tls::server_name;

struct Pop<S> {
    io: S,
    addr: String,
    timeout: Duration,
}

impl<S: AsyncBufRead + AsyncWrite + Unpin> Pop<S> {
    async fn line(&mut self, what: &str) -> Result<String, PluginError> {
        let mut line = String::new();
        let n = tokio::time::timeout(self.timeout, self.io.read_line(&mut line))
            .await
            .map_err(|_| {
                PluginError::transient(format!(
                    "POP-before-SMTP: {} gave no reply to {what} within {} ms",
                    self.addr,
                    self.timeout.as_millis()
                ))
            })?
            .map_err(|e| {
                PluginError::transient(format!("POP-before-SMTP: {} at {what}: {e}", self.addr))
            })?;
        if n == 0 {
            return Err(PluginError::transient(format!(
                "POP-before-SMTP: {} closed the connection at {what}",
                self.addr
            )));
        }
        Ok(line.trim_end().to_string())
    }

    /// Sends `command` (shown as `shown` in errors) and expects `+OK`.
    async fn cmd(&mut self, command: &str, shown: &str, auth: bool) -> Result<String, PluginError> {
        let w = async {
            self.io.write_all(command.as_bytes()).await?;
            self.io.write_all(b"\r\n").await?;
            self.io.flush().await
        };
        tokio::time::timeout(self.timeout, w)
            .await
            .map_err(|_| {
                PluginError::transient(format!(
                    "POP-before-SMTP: {} timed out at {shown}",
                    self.addr
                ))
            })?
            .map_err(|e| {
                PluginError::transient(format!("POP-before-SMTP: {} at {shown}: {e}", self.addr))
            })?;
        let reply = self.line(shown).await?;
        if reply.starts_with("+OK") {
            Ok(reply)
        } else if auth {
            Err(PluginError::auth(format!(
                "POP-before-SMTP: {} refused the login at {shown}: \"{reply}\"; check pop_before_smtp.username and .password",
                self.addr
            )))
        } else {
            Err(PluginError::permanent(format!(
                "POP-before-SMTP: {} answered {shown} with \"{reply}\"",
                self.addr
            )))
        }
    }
}

/// The APOP digest: `hex(MD5(timestamp || password))`.
pub fn apop_digest(timestamp: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(password.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `<...>` timestamp of a POP3 greeting, for APOP.
pub fn greeting_timestamp(greeting: &str) -> Option<&str> {
    let start = greeting.find('<')?;
    let end = start + greeting[start..].find('>')?;
    Some(&greeting[start..=end])
}

/// Logs in to the POP3 server and logs out. Returns the server's replies (for `check()`).
pub async fn login(
    cfg: &PopConfig,
    password: &str,
    connector: &TlsConnector,
    timeout: Duration,
) -> Result<String, PluginError> {
    let addr = display_addr(&cfg.host, cfg.port);
    let prefix = |e: PluginError| {
        if e.message().starts_with("POP-before-SMTP") {
            e
        } else {
            let mut e = e;
            e.message = format!("POP-before-SMTP: {}", e.message()).into();
            e
        }
    };
    let addrs = resolve(&cfg.host, cfg.port, timeout)
        .await
        .map_err(prefix)?;
    let (tcp, _) = tcp_connect(&addrs, &addr, timeout).await.map_err(prefix)?;
    let name = server_name(&cfg.host)?;
    match cfg.security {
        Security::Tls => {
            let tls = tls_handshake(tcp, connector, name, &addr, timeout)
                .await
                .map_err(prefix)?;
            let mut pop = Pop {
                io: BufReader::new(tls),
                addr,
                timeout,
            };
            let greeting = greet(&mut pop).await?;
            finish(&mut pop, cfg, &greeting, password).await
        }
        Security::None => {
            let mut pop = Pop {
                io: BufReader::new(tcp),
                addr,
                timeout,
            };
            let greeting = greet(&mut pop).await?;
            finish(&mut pop, cfg, &greeting, password).await
        }
        Security::Starttls => {
            let mut pop = Pop {
                io: BufReader::new(tcp),
                addr: addr.clone(),
                timeout,
            };
            let greeting = greet(&mut pop).await?;
            pop.cmd("STLS", "STLS", false).await.map_err(|e| {
                PluginError::config(format!(
                    "{}; the POP3 server does not do STLS: set pop_before_smtp.security = \"tls\" (port 995) or \"none\"",
                    e.message()
                ))
            })?;
            if !pop.io.buffer().is_empty() {
                return Err(PluginError::permanent(format!(
                    "POP-before-SMTP: {addr} sent data before the TLS handshake; refusing to continue"
                )));
            }
            let tcp = pop.io.into_inner();
            let tls = tls_handshake(tcp, connector, name, &addr, timeout)
                .await
                .map_err(prefix)?;
            let mut pop = Pop {
                io: BufReader::new(tls),
                addr,
                timeout,
            };
            finish(&mut pop, cfg, &greeting, password).await
        }
    }
}

async fn greet<S: AsyncBufRead + AsyncWrite + Unpin>(
    pop: &mut Pop<S>,
) -> Result<String, PluginError> {
    let greeting = pop.line("the greeting").await?;
    if greeting.starts_with("+OK") {
        Ok(greeting)
    } else {
        Err(PluginError::transient(format!(
            "POP-before-SMTP: {} greeted with \"{greeting}\"",
            pop.addr
        )))
    }
}

/// Logs in (APOP or USER/PASS) and quits.
async fn finish<S: AsyncBufRead + AsyncWrite + Unpin>(
    pop: &mut Pop<S>,
    cfg: &PopConfig,
    greeting: &str,
    password: &str,
) -> Result<String, PluginError> {
    let addr = pop.addr.clone();
    let done = if cfg.apop {
        let ts = greeting_timestamp(greeting).ok_or_else(|| {
            PluginError::config(format!(
                "POP-before-SMTP: {addr} does not offer APOP (no <timestamp> in its greeting \"{greeting}\"); \
                 set pop_before_smtp.apop = false"
            ))
        })?;
        let digest = apop_digest(ts, password);
        pop.cmd(&format!("APOP {} {digest}", cfg.username), "APOP", true)
            .await?
    } else {
        pop.cmd(&format!("USER {}", cfg.username), "USER", true)
            .await?;
        pop.cmd(&format!("PASS {password}"), "PASS", true).await?
    };
    let _ = pop.cmd("QUIT", "QUIT", false).await;
    Ok(format!("{greeting} / {done}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apop_rfc_1939_example() {
        // RFC 1939 section 7.
        let ts =
            greeting_timestamp("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>").unwrap();
        assert_eq!(ts, "<1896.697170952@dbc.mtview.ca.us>");
        assert_eq!(
            apop_digest(ts, "tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }
}
