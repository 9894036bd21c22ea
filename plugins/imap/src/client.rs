//! A small IMAP4rev1 client (RFC 3501) on tokio: exactly the commands this
//! plugin needs — CAPABILITY, STARTTLS, LOGIN/AUTHENTICATE, LIST, CREATE,
//! APPEND (with LITERAL+ when offered) and LOGOUT — with a timeout on every
//! read and write, and every failure classified (see [`crate::error`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mailhost_plugin_api::PluginError;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{ImapConfig, Security};
use crate::error;

/// Longest response line accepted (a LIST of a large account stays far below).
const MAX_LINE: usize = 1 << 20;

enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Taken out for the STARTTLS handshake.
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection was lost during the TLS handshake",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

/// The status of a tagged reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// A command's outcome: the untagged lines and the tagged status line.
#[derive(Debug, Clone)]
pub struct Reply {
    pub untagged: Vec<String>,
    pub status: Status,
    /// The tagged line after the status (`[APPENDUID 1 2] Append completed.`).
    pub text: String,
}

impl Reply {
    /// The response code in brackets (`APPENDUID 1 2`), if any.
    pub fn code(&self) -> Option<&str> {
        response_code(&self.text)
    }

    /// The tagged line as the server wrote it, without the tag.
    pub fn line(&self) -> String {
        let s = match self.status {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        };
        format!("{s} {}", self.text)
    }
}

/// The bracketed response code at the start of a status text.
pub fn response_code(text: &str) -> Option<&str> {
    let t = text.strip_prefix('[')?;
    Some(&t[..t.find(']')?])
}

/// What the TLS handshake negotiated, for `check()`.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// An IMAP connection.
pub struct Conn {
    io: BufReader<Stream>,
    tag: u32,
    timeout: Duration,
    /// `host:port`, for messages.
    pub addr: String,
    /// Upper-case capability atoms, as last announced.
    pub caps: Vec<String>,
    /// The greeting line, for `check()`.
    pub greeting: String,
    /// The server greeted with `PREAUTH`: already logged in (no LOGIN allowed).
    pub preauth: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

/// Quotes a string for IMAP (callers refuse CR, LF and NUL beforehand).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The rustls connector for an account (TLS 1.2+, system roots plus `ca_file`).
pub fn connector(cfg: &ImapConfig) -> Result<TlsConnector, PluginError> {
    let config = mailhost_tls::client_config(cfg.ca_file.as_deref())
        .map_err(|e| PluginError::config(format!("imap setting `ca_file`: {e}")))?;
    Ok(TlsConnector::from(Arc::new(config)))
}

fn server_name(host: &str) -> Result<ServerName<'static>, PluginError> {
    ServerName::try_from(host.to_string()).map_err(|e| {
        PluginError::config(format!(
            "imap setting `host`: {host:?} cannot be used for TLS: {e}"
        ))
    })
}

impl Conn {
    /// TCP connection (and the TLS handshake for `security = "tls"`); the
    /// greeting is read by [`Conn::greet`].
    pub async fn connect(cfg: &ImapConfig, tls: &TlsConnector) -> Result<Self, PluginError> {
        let addr = cfg.addr();
        let tcp = tokio::time::timeout(
            cfg.timeout,
            TcpStream::connect((cfg.host.as_str(), cfg.port)),
        )
        .await
        .map_err(|_| error::timeout(&addr, "connecting", cfg.timeout))?
        .map_err(|e| error::connect(&addr, &e))?;
        let _ = tcp.set_nodelay(true);
        let stream = if cfg.security == Security::Tls {
            let name = server_name(&cfg.host)?;
            let s = tokio::time::timeout(cfg.timeout, tls.connect(name, tcp))
                .await
                .map_err(|_| error::timeout(&addr, "the TLS handshake", cfg.timeout))?
                .map_err(|e| error::tls(&addr, &e))?;
            Stream::Tls(Box::new(s))
        } else {
            Stream::Tcp(tcp)
        };
        Ok(Self {
            io: BufReader::new(stream),
            tag: 0,
            timeout: cfg.timeout,
            addr,
            caps: Vec::new(),
            greeting: String::new(),
            preauth: false,
        })
    }

    /// Reads the server's greeting and its capabilities.
    pub async fn greet(&mut self) -> Result<(), PluginError> {
        let line = self.read_line("the greeting").await?;
        self.greeting = line.clone();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("* BYE") {
            return Err(PluginError::transient(format!(
                "imap: {} closed the connection at once: {line}",
                self.addr
            )));
        }
        if !(upper.starts_with("* OK") || upper.starts_with("* PREAUTH")) {
            return Err(PluginError::permanent(format!(
                "imap: {} did not greet as an IMAP server: {line:?}; check `host` and `port`",
                self.addr
            )));
        }
        self.preauth = upper.starts_with("* PREAUTH");
        let rest = line.splitn(3, ' ').nth(2).unwrap_or("");
        match response_code(rest) {
            Some(code) if code.to_ascii_uppercase().starts_with("CAPABILITY ") => {
                self.set_caps(&code["CAPABILITY ".len()..]);
            }
            _ => {
                self.capability().await?;
            }
        }
        Ok(())
    }

    fn set_caps(&mut self, list: &str) {
        self.caps = list
            .split_ascii_whitespace()
            .map(|c| c.to_ascii_uppercase())
            .collect();
    }

    pub fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.io.get_ref(), Stream::Tls(_))
    }

    pub fn tls_info(&self) -> Option<TlsInfo> {
        let Stream::Tls(tls) = self.io.get_ref() else {
            return None;
        };
        let (_, conn) = tls.get_ref();
        Some(TlsInfo {
            version: conn
                .protocol_version()
                .map(|v| format!("{v:?}").replace("TLSv1_", "TLS 1."))
                .unwrap_or_default(),
            cipher: conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
        })
    }

    /// CAPABILITY: refreshes [`Conn::caps`].
    pub async fn capability(&mut self) -> Result<Reply, PluginError> {
        let r = self.command("CAPABILITY", "CAPABILITY").await?;
        if r.status != Status::Ok {
            return Err(error::refused(&self.addr, "CAPABILITY", &r));
        }
        for u in &r.untagged {
            if let Some(list) = strip_prefix_ci(u, "* CAPABILITY ") {
                let list = list.to_string();
                self.set_caps(&list);
            }
        }
        Ok(r)
    }

    /// STARTTLS and the handshake; the capabilities are asked again afterwards.
    pub async fn starttls(&mut self, host: &str, tls: &TlsConnector) -> Result<Reply, PluginError> {
        if !self.has("STARTTLS") {
            return Err(PluginError::config(format!(
                "imap: {} does not offer STARTTLS (capabilities: {}); use security = \"tls\" (port 993) if it speaks IMAPS",
                self.addr,
                self.caps.join(" ")
            )));
        }
        let r = self.command("STARTTLS", "STARTTLS").await?;
        if r.status != Status::Ok {
            return Err(error::refused(&self.addr, "STARTTLS", &r));
        }
        if !self.io.buffer().is_empty() {
            return Err(PluginError::permanent(format!(
                "imap: {} sent data after accepting STARTTLS before the handshake; refusing to continue (possible injection)",
                self.addr
            )));
        }
        let name = server_name(host)?;
        // Swap the plain socket out for the TLS session on it.
        let old = std::mem::replace(&mut self.io, BufReader::new(Stream::Gone));
        let Stream::Tcp(tcp) = old.into_inner() else {
            return Err(PluginError::permanent(format!(
                "imap: {}: the connection is already encrypted",
                self.addr
            )));
        };
        let s = tokio::time::timeout(self.timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| error::timeout(&self.addr, "the TLS handshake", self.timeout))?
            .map_err(|e| error::tls(&self.addr, &e))?;
        self.io = BufReader::new(Stream::Tls(Box::new(s)));
        self.capability().await?;
        Ok(r)
    }

    async fn write(&mut self, bytes: &[u8], stage: &str) -> Result<(), PluginError> {
        let addr = self.addr.clone();
        let timeout = self.timeout;
        let io = self.io.get_mut();
        tokio::time::timeout(timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .map_err(|_| error::timeout(&addr, stage, timeout))?
        .map_err(|e| error::io(&addr, stage, &e))
    }

    /// One response line, literals (`{n}`) folded in as quoted strings.
    async fn read_line(&mut self, stage: &str) -> Result<String, PluginError> {
        let mut line = Vec::new();
        loop {
            let mut chunk = Vec::new();
            let n = tokio::time::timeout(
                self.timeout,
                (&mut self.io)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut chunk),
            )
            .await
            .map_err(|_| error::timeout(&self.addr, stage, self.timeout))?
            .map_err(|e| error::io(&self.addr, stage, &e))?;
            if n == 0 {
                return Err(error::closed(&self.addr, stage));
            }
            if !chunk.ends_with(b"\n") {
                return Err(PluginError::permanent(format!(
                    "imap: {} sent a response line over {MAX_LINE} bytes during {stage}",
                    self.addr
                )));
            }
            while chunk.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                chunk.pop();
            }
            if let Some(len) = literal_len(&chunk) {
                let open = chunk
                    .iter()
                    .rposition(|b| *b == b'{')
                    .unwrap_or(chunk.len());
                line.extend_from_slice(&chunk[..open]);
                if len > MAX_LINE {
                    return Err(PluginError::permanent(format!(
                        "imap: {} sent a literal of {len} bytes during {stage}",
                        self.addr
                    )));
                }
                let mut lit = vec![0; len];
                tokio::time::timeout(self.timeout, self.io.read_exact(&mut lit))
                    .await
                    .map_err(|_| error::timeout(&self.addr, stage, self.timeout))?
                    .map_err(|e| error::io(&self.addr, stage, &e))?;
                line.extend_from_slice(quote(&String::from_utf8_lossy(&lit)).as_bytes());
                continue;
            }
            line.extend_from_slice(&chunk);
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
    }

    /// A command without continuations.
    pub async fn command(&mut self, command: &str, stage: &str) -> Result<Reply, PluginError> {
        self.exchange(command.as_bytes(), Vec::new(), stage).await
    }

    /// Sends `first` with a new tag, answers each continuation request (`+`)
    /// with the next of `continuations` (an empty line when none is left, which
    /// ends a SASL exchange), and returns the tagged reply.
    pub async fn exchange(
        &mut self,
        first: &[u8],
        continuations: Vec<Vec<u8>>,
        stage: &str,
    ) -> Result<Reply, PluginError> {
        self.tag += 1;
        let tag = format!("A{:04}", self.tag);
        let mut out = Vec::with_capacity(first.len() + tag.len() + 3);
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(first);
        out.extend_from_slice(b"\r\n");
        self.write(&out, stage).await?;
        let mut conts = continuations.into_iter();
        let mut untagged = Vec::new();
        loop {
            let line = self.read_line(stage).await?;
            if line.starts_with('+') {
                let mut next = conts.next().unwrap_or_default();
                next.extend_from_slice(b"\r\n");
                self.write(&next, stage).await?;
                continue;
            }
            if let Some(rest) = line.strip_prefix(&tag).and_then(|r| r.strip_prefix(' ')) {
                let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let status = match status.to_ascii_uppercase().as_str() {
                    "OK" => Status::Ok,
                    "NO" => Status::No,
                    "BAD" => Status::Bad,
                    _ => {
                        return Err(PluginError::permanent(format!(
                            "imap: {} answered {stage} with an unknown status: {line:?}",
                            self.addr
                        )))
                    }
                };
                return Ok(Reply {
                    untagged,
                    status,
                    text: text.to_string(),
                });
            }
            if strip_prefix_ci(&line, "* BYE").is_some() {
                // The server closes the connection; the tagged reply may not come.
                untagged.push(line.clone());
                return Err(PluginError::transient(format!(
                    "imap: {} ended the connection during {stage}: {line}",
                    self.addr
                )));
            }
            untagged.push(line);
        }
    }

    /// LOGOUT, ignoring failures (the work is done).
    pub async fn logout(mut self) {
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.command("LOGOUT", "LOGOUT")).await;
        let _ = self.io.get_mut().shutdown().await;
    }
}

/// `{123}` or `{123+}` at the end of a line: a literal follows.
fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|b| *b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `s` without `prefix`, compared ASCII-case-insensitively.
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(literal_len(b"* LIST () \"/\" {5}"), Some(5));
        assert_eq!(literal_len(b"A1 APPEND x {12+}"), Some(12));
        assert_eq!(literal_len(b"* OK {x}"), None);
        assert_eq!(literal_len(b"* OK done"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn codes() {
        assert_eq!(
            response_code("[APPENDUID 17 4] Append completed."),
            Some("APPENDUID 17 4")
        );
        assert_eq!(response_code("Append completed."), None);
    }
}
