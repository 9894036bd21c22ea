//! Talking to a candidate server just far enough to know what it offers:
//! SMTP greeting, EHLO, STARTTLS or implicit TLS, EHLO again, the AUTH
//! mechanisms; IMAP greeting, CAPABILITY, STARTTLS. Never a login. Every
//! read is bounded in time, line length and line count.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{excerpt, Security};

/// Longest line accepted from a server (RFC 5321 allows 512 for a reply line).
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply (EHLO has one per extension).
pub const MAX_LINES: usize = 100;

/// The protocol probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Smtp,
    Imap,
}

/// A TLS outcome.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsInfo {
    /// `TLSv1_3`, ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The certificate is valid for the host name (system roots or --ca-file).
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a probe of one host:port found.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Where the candidate came from (`SRV _submissions._tcp.example.com`, an autoconfig URL, `guess`).
    pub source: String,
    /// The address that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
    /// The greeting, cleaned of control characters and shortened.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub greeting: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// SASL mechanisms offered once the connection is secured (upper case).
    pub auth: Vec<String>,
    /// SMTP extensions or IMAP capabilities seen last (upper case keywords).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// What went wrong, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Reached, secured as `security` says (a verified certificate), and answered as expected.
    pub verified: bool,
}

impl Probe {
    pub fn new(
        protocol: Protocol,
        host: &str,
        port: u16,
        security: Security,
        source: &str,
    ) -> Self {
        Probe {
            protocol,
            host: host.to_string(),
            port,
            security,
            source: source.to_string(),
            address: None,
            greeting: String::new(),
            tls: None,
            auth: Vec::new(),
            capabilities: Vec::new(),
            error: None,
            verified: false,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection with a bounded line reader.
struct Conn {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    step: Duration,
}

impl Conn {
    async fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                if pos > MAX_LINE {
                    return Err(format!(
                        "the server sent a line longer than {MAX_LINE} bytes"
                    ));
                }
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!(
                    "the server sent a line longer than {MAX_LINE} bytes"
                ));
            }
            let mut chunk = [0u8; 2048];
            let n = timeout(self.step, self.io.read(&mut chunk))
                .await
                .map_err(|_| format!("no answer within {} ms", self.step.as_millis()))?
                .map_err(|e| format!("reading failed: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".to_string());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), String> {
        timeout(self.step, async {
            self.io.write_all(line.as_bytes()).await?;
            self.io.write_all(b"\r\n").await?;
            self.io.flush().await
        })
        .await
        .map_err(|_| format!("could not send within {} ms", self.step.as_millis()))?
        .map_err(|e| format!("sending failed: {e}"))
    }

    /// An SMTP reply: (code, text lines). Garbage is an error, never a panic.
    async fn smtp_reply(&mut self) -> Result<(u16, Vec<String>), String> {
        let mut code = None;
        let mut lines = Vec::new();
        loop {
            if lines.len() >= MAX_LINES {
                return Err(format!("a reply of more than {MAX_LINES} lines"));
            }
            let line = self.read_line().await?;
            let b = line.as_bytes();
            if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
                return Err(format!("not an SMTP reply: `{}`", excerpt(&line)));
            }
            let c = b[..3]
                .iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
            if code.is_some_and(|first| first != c) {
                return Err(format!(
                    "a reply whose lines disagree on the code: `{}`",
                    excerpt(&line)
                ));
            }
            code = Some(c);
            lines.push(line.get(4..).unwrap_or("").to_string());
            match b.get(3) {
                Some(b'-') => continue,
                Some(b' ') | None => return Ok((c, lines)),
                Some(_) => return Err(format!("not an SMTP reply: `{}`", excerpt(&line))),
            }
        }
    }

    /// Hands over the stream for TLS. Bytes already buffered would be
    /// plaintext injected before the handshake: refused (CVE-2011-0411 class).
    fn into_io(self) -> Result<Box<dyn Io>, String> {
        if self.buf.is_empty() {
            Ok(self.io)
        } else {
            Err(
                "the server sent data after agreeing to STARTTLS (a plaintext injection); refused"
                    .into(),
            )
        }
    }
}

/// Where and how to probe.
pub struct Target<'a> {
    pub addresses: &'a [IpAddr],
    pub tls: Arc<rustls::ClientConfig>,
    pub step: Duration,
    pub helo: &'a str,
}

async fn connect(p: &mut Probe, t: &Target<'_>) -> Result<Conn, String> {
    let mut last = String::from("no address to connect to");
    for ip in t.addresses {
        let addr = SocketAddr::new(*ip, p.port);
        match timeout(t.step, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                p.address = Some(addr);
                return Ok(Conn {
                    io: Box::new(s),
                    buf: Vec::new(),
                    step: t.step,
                });
            }
            Ok(Err(e)) => last = format!("cannot connect to {addr}: {e}"),
            Err(_) => {
                last = format!(
                    "cannot connect to {addr}: no answer within {} ms",
                    t.step.as_millis()
                )
            }
        }
    }
    Err(last)
}

async fn handshake(p: &mut Probe, t: &Target<'_>, io: Box<dyn Io>) -> Result<Conn, String> {
    let mut info = TlsInfo::default();
    let name = match ServerName::try_from(p.host.clone()) {
        Ok(n) => n,
        Err(e) => {
            let msg = format!("`{}` cannot be a TLS server name: {e}", excerpt(&p.host));
            info.error = Some(msg.clone());
            p.tls = Some(info);
            return Err(msg);
        }
    };
    let connector = tokio_rustls::TlsConnector::from(t.tls.clone());
    match timeout(t.step, connector.connect(name, io)).await {
        Ok(Ok(s)) => {
            info.verified = true;
            info.version = s
                .get_ref()
                .1
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default();
            p.tls = Some(info);
            Ok(Conn {
                io: Box::new(s),
                buf: Vec::new(),
                step: t.step,
            })
        }
        Ok(Err(e)) => {
            let msg = if mailhost_tls::is_certificate_error(&e) {
                format!(
                    "TLS: the certificate is not valid for {}: {e} (a private CA: give --ca-file)",
                    p.host
                )
            } else {
                format!("TLS handshake failed: {e}")
            };
            info.error = Some(msg.clone());
            p.tls = Some(info);
            Err(msg)
        }
        Err(_) => {
            let msg = format!("TLS handshake: no answer within {} ms", t.step.as_millis());
            info.error = Some(msg.clone());
            p.tls = Some(info);
            Err(msg)
        }
    }
}

/// Probes an SMTP submission candidate; never logs in.
pub async fn smtp(mut p: Probe, t: &Target<'_>) -> Probe {
    if let Err(e) = smtp_inner(&mut p, t).await {
        p.error = Some(e);
    }
    p
}

async fn smtp_inner(p: &mut Probe, t: &Target<'_>) -> Result<(), String> {
    let mut c = connect(p, t).await?;
    if p.security == Security::Tls {
        c = handshake(p, t, c.io).await?;
    }
    let (code, lines) = c.smtp_reply().await?;
    p.greeting = excerpt(lines.first().map(String::as_str).unwrap_or(""));
    if code != 220 {
        return Err(format!(
            "the server does not accept mail now: {code} {}",
            p.greeting
        ));
    }
    let mut ext = ehlo(&mut c, t.helo).await?;
    if p.security == Security::Starttls {
        if !ext.iter().any(|e| e == "STARTTLS") {
            p.capabilities = ext;
            return Err("the server does not offer STARTTLS".to_string());
        }
        c.send("STARTTLS").await?;
        let (code, lines) = c.smtp_reply().await?;
        if code != 220 {
            return Err(format!(
                "STARTTLS refused: {code} {}",
                excerpt(&lines.join(" "))
            ));
        }
        let io = c.into_io()?;
        c = handshake(p, t, io).await?;
        ext = ehlo(&mut c, t.helo).await?;
    }
    p.auth = auth_mechanisms(&ext);
    p.capabilities = ext;
    let _ = c.send("QUIT").await;
    p.verified = p.security == Security::None || p.tls.as_ref().is_some_and(|i| i.verified);
    Ok(())
}

/// EHLO's extension keywords (upper case), plus `AUTH ...` lines kept whole.
async fn ehlo(c: &mut Conn, helo: &str) -> Result<Vec<String>, String> {
    c.send(&format!("EHLO {helo}")).await?;
    let (code, lines) = c.smtp_reply().await?;
    if code != 250 {
        return Err(format!(
            "EHLO refused: {code} {}",
            excerpt(&lines.join(" "))
        ));
    }
    Ok(lines
        .iter()
        .skip(1)
        .map(|l| excerpt(l).to_ascii_uppercase())
        .collect())
}

fn auth_mechanisms(ext: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in ext {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        // `AUTH=PLAIN LOGIN` is the pre-RFC 4954 form some servers still send.
        let rest: Vec<&str> = if first == "AUTH" {
            words.collect()
        } else if let Some(m) = first.strip_prefix("AUTH=") {
            std::iter::once(m).chain(words).collect()
        } else {
            continue;
        };
        for m in rest {
            if is_mechanism(m) && !out.iter().any(|o| o == m) && out.len() < 32 {
                out.push(m.to_string());
            }
        }
    }
    out
}

/// A SASL mechanism name (RFC 4422: upper-case letters, digits, `-` and `_`, at most 20).
fn is_mechanism(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 20
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Probes an IMAP candidate; never logs in.
pub async fn imap(mut p: Probe, t: &Target<'_>) -> Probe {
    if let Err(e) = imap_inner(&mut p, t).await {
        p.error = Some(e);
    }
    p
}

async fn imap_inner(p: &mut Probe, t: &Target<'_>) -> Result<(), String> {
    let mut c = connect(p, t).await?;
    if p.security == Security::Tls {
        c = handshake(p, t, c.io).await?;
    }
    let greeting = c.read_line().await?;
    p.greeting = excerpt(&greeting);
    let upper = greeting.to_ascii_uppercase();
    if !(upper.starts_with("* OK") || upper.starts_with("* PREAUTH")) {
        return Err(format!("not an IMAP greeting: `{}`", p.greeting));
    }
    let mut caps = capability(&mut c, "a1").await?;
    if p.security == Security::Starttls {
        if !caps.iter().any(|x| x == "STARTTLS") {
            p.capabilities = caps;
            return Err("the server does not offer STARTTLS".to_string());
        }
        c.send("a2 STARTTLS").await?;
        let (ok, text) = tagged(&mut c, "a2", &mut Vec::new()).await?;
        if !ok {
            return Err(format!("STARTTLS refused: {text}"));
        }
        let io = c.into_io()?;
        c = handshake(p, t, io).await?;
        caps = capability(&mut c, "a3").await?;
    }
    p.auth = caps
        .iter()
        .filter_map(|x| x.strip_prefix("AUTH="))
        .filter(|m| is_mechanism(m))
        .map(str::to_string)
        .take(32)
        .collect();
    p.capabilities = caps;
    let _ = c.send("a9 LOGOUT").await;
    p.verified = p.security == Security::None || p.tls.as_ref().is_some_and(|i| i.verified);
    Ok(())
}

async fn capability(c: &mut Conn, tag: &str) -> Result<Vec<String>, String> {
    c.send(&format!("{tag} CAPABILITY")).await?;
    let mut caps = Vec::new();
    let (ok, text) = tagged(c, tag, &mut caps).await?;
    if !ok {
        return Err(format!("CAPABILITY refused: {text}"));
    }
    Ok(caps)
}

/// Reads up to the tagged reply; collects `* CAPABILITY` words. (ok, text).
async fn tagged(c: &mut Conn, tag: &str, caps: &mut Vec<String>) -> Result<(bool, String), String> {
    for _ in 0..MAX_LINES {
        let line = c.read_line().await?;
        let upper = line.to_ascii_uppercase();
        if let Some(rest) = upper.strip_prefix("* CAPABILITY ") {
            for w in rest.split_whitespace().take(200) {
                let w = excerpt(w);
                if !caps.contains(&w) {
                    caps.push(w);
                }
            }
        } else if let Some(rest) = upper.strip_prefix(&format!("{} ", tag.to_ascii_uppercase())) {
            return Ok((rest.starts_with("OK"), excerpt(&line)));
        } else if upper.starts_with("* BYE") {
            return Err(format!("the server said goodbye: `{}`", excerpt(&line)));
        }
    }
    Err(format!("no tagged answer within {MAX_LINES} lines"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_lines_in_both_forms() {
        let ext = vec![
            "PIPELINING".to_string(),
            "AUTH PLAIN LOGIN CRAM-MD5".to_string(),
            "AUTH=LOGIN XOAUTH2".to_string(),
            "AUTH plain\u{0}; rm -rf".to_string(),
        ];
        assert_eq!(
            auth_mechanisms(&ext),
            ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]
        );
    }

    async fn reply_of(bytes: &[u8]) -> Result<(u16, Vec<String>), String> {
        let (mut server, client) = tokio::io::duplex(64 * 1024);
        let data = bytes.to_vec();
        tokio::spawn(async move {
            let _ = server.write_all(&data).await;
            // keep the stream open a moment so a short reply is not an EOF
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let mut c = Conn {
            io: Box::new(client),
            buf: Vec::new(),
            step: Duration::from_millis(100),
        };
        c.smtp_reply().await
    }

    #[tokio::test]
    async fn hostile_smtp_replies_are_errors_not_panics() {
        assert_eq!(
            reply_of(b"250-a.example\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
                .await
                .unwrap(),
            (
                250,
                vec!["a.example".into(), "AUTH PLAIN".into(), "8BITMIME".into()]
            )
        );
        for bad in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"25\r\n",
            b"\xff\xfe\xfd\r\n",
            b"250-a\r\n550 b\r\n",
            b"250xa\r\n",
            b"\xc3\r\n",
        ] {
            let e = reply_of(bad).await.unwrap_err();
            assert!(!e.contains('\r') && !e.contains('\n'), "{e:?}");
        }
        let long = vec![b'2'; MAX_LINE * 2];
        assert!(reply_of(&long).await.unwrap_err().contains("longer than"));
        let many = b"250-x\r\n".repeat(MAX_LINES + 5);
        assert!(reply_of(&many).await.unwrap_err().contains("more than"));
        // silence: bounded by the step timeout
        assert!(reply_of(b"")
            .await
            .unwrap_err()
            .contains("no answer within"));
    }
}
