//! One SMTP connection: connect (no-delay socket), greeting and EHLO through
//! lettre, STARTTLS, and mail transactions with PIPELINING (RFC 2920; across
//! the messages of a chain too, see [`Session::transaction`]), DSN
//! (RFC 3461), SMTPUTF8 (RFC 6531) and SIZE (RFC 1870).
//!
//! lettre provides the connection (`AsyncSmtpConnection`), command formatting
//! and reply parsing; what lettre 0.11 lacks is built on its public
//! `command()`/`read_response()` and on the shared [`SmtpStream`]: the
//! pipelined command group is written in one piece and the replies are read in
//! order; the message data is dot-stuffed here and sent in one write with its
//! terminator.

use std::fmt::{self, Display, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Noop, Quit, Rcpt, Rset, Starttls};
use lettre::transport::smtp::extension::{
    ClientId, MailBodyParameter, MailParameter, RcptParameter,
};
use lettre::Address;
use mailhost_plugin_api::{ErrorClass, PluginError};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{connect_error, lettre_error, reply_error, timeout_error, Reply, Stage};
use crate::stream::{SmtpStream, TlsInfo};
use crate::tls::classify_tls_error;

/// What the server offers in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub pipelining: bool,
    pub dsn: bool,
    pub smtputf8: bool,
    pub eightbitmime: bool,
    pub starttls: bool,
    pub chunking: bool,
    pub enhanced_status_codes: bool,
    /// `SIZE n` (0 = no fixed limit).
    pub size: Option<u64>,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    pub fn from_ehlo(reply: &Reply) -> Self {
        let mut c = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => c.pipelining = true,
                "DSN" => c.dsn = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "8BITMIME" => c.eightbitmime = true,
                "STARTTLS" => c.starttls = true,
                "CHUNKING" => c.chunking = true,
                "ENHANCEDSTATUSCODES" => c.enhanced_status_codes = true,
                "SIZE" => c.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                _ => {
                    // `AUTH PLAIN LOGIN` and the old `AUTH=PLAIN LOGIN`.
                    if let Some(rest) = keyword.strip_prefix("AUTH") {
                        if rest.is_empty() || rest.starts_with('=') {
                            let first = rest.trim_start_matches('=');
                            for m in std::iter::once(first)
                                .chain(words)
                                .filter(|m| !m.is_empty())
                            {
                                let m = m.to_ascii_uppercase();
                                if !c.auth.contains(&m) {
                                    c.auth.push(m);
                                }
                            }
                        }
                    }
                }
            }
        }
        c
    }

    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m == mechanism)
    }

    /// One line for logs and `check()`.
    pub fn summary(&self) -> String {
        let mut s = Vec::new();
        for (on, name) in [
            (self.starttls, "STARTTLS"),
            (self.pipelining, "PIPELINING"),
            (self.dsn, "DSN"),
            (self.smtputf8, "SMTPUTF8"),
            (self.eightbitmime, "8BITMIME"),
            (self.chunking, "CHUNKING"),
            (self.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
        ] {
            if on {
                s.push(name.to_string());
            }
        }
        if let Some(n) = self.size {
            s.push(format!("SIZE {n}"));
        }
        if !self.auth.is_empty() {
            s.push(format!("AUTH {}", self.auth.join(" ")));
        }
        s.join(", ")
    }
}

/// RFC 3461 delivery status notification request, from `options_json.dsn`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    /// `SUCCESS`, `FAILURE`, `DELAY` or `NEVER`.
    pub notify: Vec<String>,
    /// `FULL` or `HDRS`.
    pub ret: Option<String>,
    pub envid: Option<String>,
}

impl Dsn {
    pub fn is_empty(&self) -> bool {
        self.notify.is_empty() && self.ret.is_none() && self.envid.is_none()
    }
}

/// One message to deliver on a session.
#[derive(Debug)]
pub struct Tx<'a> {
    pub from: Option<&'a Address>,
    pub to: &'a [Address],
    /// The bytes after DATA (Bcc header already removed), not dot-stuffed.
    pub body: &'a [u8],
    /// An address or header needs SMTPUTF8.
    pub needs_smtputf8: bool,
    pub dsn: Option<&'a Dsn>,
    /// The connection ends after this message (it is not pooled): with
    /// PIPELINING, QUIT goes out with the data (RFC 2920 allows it as the last
    /// command of a group), which saves a round trip per connection.
    pub last: bool,
}

/// A message's MAIL and RCPT commands, as they go out.
struct Envelope {
    mail: Mail,
    rcpts: Vec<Rcpt>,
}

impl Display for Envelope {
    /// MAIL, RCPT and DATA as one pipelined group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mail)?;
        for r in &self.rcpts {
            write!(f, "{r}")?;
        }
        write!(f, "{Data}")
    }
}

/// A delivered message.
#[derive(Debug)]
pub struct TxOutcome {
    /// The server's reply to the end of data.
    pub reply: Reply,
    pub accepted: Vec<String>,
    pub rejected: Vec<(String, PluginError)>,
    /// Recipients the server put off with `452` (too many recipients, RFC
    /// 5321 4.5.3.1.10) after it had accepted others: for a new transaction.
    pub deferred: Vec<(Address, PluginError)>,
    pub pipelined: bool,
    /// The envelope went out with the previous message's data.
    pub ahead: bool,
    /// Whether DSN parameters went out (`None`: none were requested).
    pub dsn_sent: Option<bool>,
}

/// A transaction that did not deliver.
#[derive(Debug)]
pub enum TxFailure {
    /// The connection was dead before the server accepted anything (a reused
    /// connection the server had closed): retry on a new one.
    Stale(PluginError),
    Failed(PluginError),
    /// The server refused every recipient (`addr`, each with its reply).
    AllRefused(String, Vec<(String, PluginError)>),
}

impl TxFailure {
    pub fn into_error(self) -> PluginError {
        match self {
            TxFailure::Stale(e) | TxFailure::Failed(e) => e,
            TxFailure::AllRefused(addr, each) => all_rejected(&addr, each),
        }
    }
}

/// The reply to RCPT when the server's limit of recipients per transaction is
/// reached (RFC 5321 4.5.3.1.10: "452 4.5.3 Too many recipients"; Postfix's
/// default limit is 1,000). The client delivers to the recipients accepted so
/// far and sends the rest in a new transaction.
pub const TOO_MANY_RECIPIENTS: u16 = 452;

/// A raw command line (`AUTH` continuations).
pub struct Line<'a>(pub &'a str);

impl Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\r\n", self.0)
    }
}

/// Resolves `host:port` (an IP address resolves to itself).
pub async fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, PluginError> {
    let addr = display_addr(host, port);
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(timeout_error(&addr, "resolving the host name", timeout)),
        Ok(Err(e)) => Err(PluginError::transient(format!(
            "cannot resolve {host}: {e}; check `host` (and DNS)"
        ))),
        Ok(Ok(addrs)) => {
            let v: Vec<SocketAddr> = addrs.collect();
            if v.is_empty() {
                Err(PluginError::transient(format!(
                    "{host} resolves to no address; check `host`"
                )))
            } else {
                Ok(v)
            }
        }
    }
}

pub fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connects to the first address that answers, with `TCP_NODELAY` on.
pub async fn tcp_connect(
    addrs: &[SocketAddr],
    shown: &str,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), PluginError> {
    let mut last = None;
    for a in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
            Err(_) => last = Some(timeout_error(shown, "connect", timeout)),
            Ok(Err(e)) => last = Some(connect_error(shown, &e)),
            Ok(Ok(s)) => {
                s.set_nodelay(true).map_err(|e| connect_error(shown, &e))?;
                return Ok((s, *a));
            }
        }
    }
    Err(last
        .unwrap_or_else(|| PluginError::transient(format!("{shown}: no address to connect to"))))
}

/// The TLS handshake of implicit TLS (or of POP3's STLS).
pub async fn tls_handshake(
    tcp: TcpStream,
    connector: &TlsConnector,
    name: ServerName<'static>,
    shown: &str,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, PluginError> {
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(timeout_error(shown, "the TLS handshake", timeout)),
        Ok(Err(e)) => Err(classify_tls_error(shown, &e)),
        Ok(Ok(s)) => Ok(s),
    }
}

/// An open SMTP session.
pub struct Session {
    conn: AsyncSmtpConnection,
    stream: SmtpStream,
    /// `host:port`, for messages.
    pub addr: String,
    pub client_id: ClientId,
    pub caps: Capabilities,
    pub greeting: Reply,
    pub ehlo: Reply,
    pub timeout: Duration,
    /// The mechanism this session authenticated with.
    pub authenticated: Option<&'static str>,
    pub created: Instant,
    /// The connection cannot be used any more.
    broken: bool,
    /// A transaction may be open (MAIL accepted, not finished): RSET first.
    dirty: bool,
    /// Messages sent on this session.
    pub sent: u64,
    /// The next message's MAIL, RCPT and DATA went out with the last
    /// message's data (see [`Session::transaction`]): its replies are the
    /// next ones to read.
    prewritten: bool,
    scratch: String,
    data: Vec<u8>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("addr", &self.addr)
            .field("tls", &self.stream.is_tls())
            .field("caps", &self.caps)
            .field("authenticated", &self.authenticated)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Reads the greeting and sends EHLO (lettre's `connect_with_transport`).
    pub async fn start(
        stream: SmtpStream,
        addr: String,
        client_id: ClientId,
        timeout: Duration,
    ) -> Result<Self, PluginError> {
        let handle = stream.handle();
        handle.start_tap();
        let r = tokio::time::timeout(
            timeout,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &client_id),
        )
        .await;
        let replies = Reply::parse_all(&handle.take_tap());
        let conn = match r {
            Err(_) => {
                let at = if replies.is_empty() {
                    "the greeting"
                } else {
                    "EHLO"
                };
                return Err(timeout_error(&addr, at, timeout));
            }
            Ok(Err(e)) => {
                let stage = if replies.first().is_some_and(|g| g.code == 220) {
                    Stage::Ehlo
                } else {
                    Stage::Greeting
                };
                return Err(lettre_error(&addr, stage, &e));
            }
            Ok(Ok(c)) => c,
        };
        let mut it = replies.into_iter();
        let greeting = it.next().unwrap_or(Reply {
            code: 220,
            lines: vec![],
        });
        let ehlo = it.next().unwrap_or(Reply {
            code: 250,
            lines: vec![],
        });
        Ok(Self {
            conn,
            stream: handle,
            caps: Capabilities::from_ehlo(&ehlo),
            addr,
            client_id,
            greeting,
            ehlo,
            timeout,
            authenticated: None,
            created: Instant::now(),
            broken: false,
            dirty: false,
            sent: 0,
            prewritten: false,
            scratch: String::with_capacity(256),
            data: Vec::new(),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.stream.tls_info()
    }

    pub fn peer(&self) -> SocketAddr {
        self.stream.peer()
    }

    /// Whether the next message's envelope went out ahead of it: such a
    /// session is in a transaction and goes back to no pool.
    pub fn prewritten(&self) -> bool {
        self.prewritten
    }

    /// False once the connection failed, timed out or the server closed it.
    pub fn usable(&self) -> bool {
        !self.broken && !self.conn.has_broken()
    }

    /// Reads one reply: `Ok(Ok)` positive, `Ok(Err)` negative; `Err` when the
    /// connection failed (it is then broken).
    async fn read_reply(&mut self, stage: Stage) -> Result<Result<Reply, Reply>, PluginError> {
        self.read_reply_within(stage, self.timeout).await
    }

    /// [`Session::read_reply`] with its own limit (the end of data also covers
    /// sending the message, which is written as the reply is awaited).
    async fn read_reply_within(
        &mut self,
        stage: Stage,
        limit: Duration,
    ) -> Result<Result<Reply, Reply>, PluginError> {
        match tokio::time::timeout(limit, self.conn.read_response()).await {
            Err(_) => {
                self.broken = true;
                Err(timeout_error(
                    &self.addr,
                    &format!("the reply to {}", stage.name()),
                    limit,
                ))
            }
            Ok(Ok(r)) => Ok(Ok(Reply::from_response(&r))),
            Ok(Err(e)) => match Reply::from_lettre(&e) {
                Some(reply) => {
                    if reply.code == 421 {
                        self.broken = true;
                    }
                    Ok(Err(reply))
                }
                None => {
                    self.broken = true;
                    Err(lettre_error(&self.addr, stage, &e))
                }
            },
        }
    }

    /// Sends one command and reads its reply; a negative reply is a classified error.
    pub async fn cmd(&mut self, stage: Stage, command: impl Display) -> Result<Reply, PluginError> {
        self.scratch.clear();
        let _ = write!(self.scratch, "{command}");
        self.stream.write_raw(self.scratch.as_bytes());
        match self.read_reply(stage).await? {
            Ok(r) => Ok(r),
            Err(r) => Err(reply_error(&self.addr, stage, &r)),
        }
    }

    /// Sends EHLO again (after STARTTLS) and takes the new capabilities.
    pub async fn ehlo(&mut self) -> Result<Reply, PluginError> {
        let r = self
            .cmd(Stage::Ehlo, Ehlo::new(self.client_id.clone()))
            .await?;
        self.caps = Capabilities::from_ehlo(&r);
        self.ehlo = r.clone();
        Ok(r)
    }

    /// `STARTTLS`, the handshake on the same socket, and EHLO again.
    /// Returns the server's reply to STARTTLS.
    pub async fn starttls(
        &mut self,
        connector: &TlsConnector,
        name: ServerName<'static>,
    ) -> Result<Reply, PluginError> {
        if !self.caps.starttls {
            return Err(PluginError::config(format!(
                "{} does not offer STARTTLS (its EHLO reply: \"{}\"), and security = \"starttls\" requires it; \
                 use the server's TLS port with security = \"tls\", or security = \"none\" only on a trusted network",
                self.addr,
                self.ehlo.text()
            )));
        }
        let reply = self.cmd(Stage::Starttls, Starttls).await?;
        match tokio::time::timeout(self.timeout, self.stream.upgrade(connector, name)).await {
            Err(_) => {
                self.broken = true;
                return Err(timeout_error(&self.addr, "the TLS handshake", self.timeout));
            }
            Ok(Err(e)) => {
                self.broken = true;
                return Err(classify_tls_error(&self.addr, &e));
            }
            Ok(Ok(())) => {}
        }
        self.ehlo().await?;
        Ok(reply)
    }

    /// RSET (or NOOP): is the connection still alive and idle?
    pub async fn probe(&mut self) -> bool {
        if !self.usable() {
            return false;
        }
        let ok = self.cmd(Stage::Rset, Rset).await.is_ok();
        if ok {
            self.dirty = false;
        } else {
            self.broken = true;
        }
        ok
    }

    pub async fn noop(&mut self) -> Result<Reply, PluginError> {
        self.cmd(Stage::Rset, Noop).await
    }

    /// Moves the connection to the runtime of the calling task (see
    /// [`crate::rt`]); `false` (and the session is broken) when it cannot be.
    pub fn adopt(&mut self) -> bool {
        if let Err(e) = self.stream.adopt() {
            tracing::debug!(server = %self.addr, error = %e, "smtp: cannot move the connection to this thread; replacing it");
            self.broken = true;
        }
        !self.broken
    }

    /// The runtime the connection is registered with.
    pub fn home(&self) -> u64 {
        self.stream.home()
    }

    /// QUIT and close (best effort, bounded by the timeout), from any of the
    /// plugin's runtimes. (Not lettre's `abort()`, which would send a second
    /// QUIT.) Dropping the session closes the socket.
    pub async fn quit(mut self) {
        if self.usable() && self.adopt() {
            let _ = tokio::time::timeout(self.timeout, self.conn.command(Quit)).await;
        }
    }

    /// Whether `tx` can go over this session at all (SMTPUTF8, 8-bit
    /// content, SIZE), before anything of it is written.
    fn admissible(&self, tx: &Tx<'_>) -> Result<(), PluginError> {
        let addr = &self.addr;
        if tx.needs_smtputf8 && !self.caps.smtputf8 {
            return Err(PluginError::unsupported(format!(
                "the message needs SMTPUTF8 (internationalized addresses, RFC 6531) and {addr} does not offer it; \
                 send it through another account"
            )));
        }
        if !tx.body.is_ascii() && !self.caps.eightbitmime && !self.caps.smtputf8 {
            return Err(PluginError::unsupported(format!(
                "the message has 8-bit content and {addr} offers neither 8BITMIME nor SMTPUTF8; \
                 encode the body (quoted-printable/base64) or use another account"
            )));
        }
        if let Some(limit) = self.caps.size.filter(|n| *n > 0) {
            if tx.body.len() as u64 > limit {
                return Err(PluginError::permanent(format!(
                    "the message is {} bytes and {addr} accepts at most {limit} (SIZE)",
                    tx.body.len()
                ))
                .with_code(552)
                .with_enhanced("5.3.4"));
            }
        }
        Ok(())
    }

    /// The MAIL and RCPT commands of `tx`, with their parameters.
    fn envelope(&self, tx: &Tx<'_>) -> Envelope {
        let mut mail_params = Vec::new();
        if self.caps.size.is_some() {
            mail_params.push(MailParameter::Size(tx.body.len()));
        }
        if !tx.body.is_ascii() {
            mail_params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        if tx.needs_smtputf8 {
            mail_params.push(MailParameter::SmtpUtfEight);
        }
        let dsn = tx.dsn.filter(|d| !d.is_empty());
        let dsn_sent = self.dsn_sent(tx);
        let mut rcpt_params = Vec::new();
        if let (Some(d), true) = (dsn, self.caps.dsn) {
            if let Some(ret) = &d.ret {
                mail_params.push(MailParameter::Other {
                    keyword: "RET".into(),
                    value: Some(ret.clone()),
                });
            }
            if let Some(envid) = &d.envid {
                mail_params.push(MailParameter::Other {
                    keyword: "ENVID".into(),
                    value: Some(envid.clone()),
                });
            }
            if !d.notify.is_empty() {
                rcpt_params.push(RcptParameter::Other {
                    keyword: "NOTIFY".into(),
                    value: Some(d.notify.join(",")),
                });
            }
        }
        let rcpts = tx
            .to
            .iter()
            .map(|a| {
                let mut p = rcpt_params.clone();
                if dsn_sent == Some(true) && AsRef::<str>::as_ref(a).is_ascii() {
                    p.push(RcptParameter::Other {
                        keyword: "ORCPT".into(),
                        value: Some(format!("rfc822;{a}")),
                    });
                }
                Rcpt::new(a.clone(), p)
            })
            .collect();
        Envelope {
            mail: Mail::new(tx.from.cloned(), mail_params),
            rcpts,
        }
    }

    /// Whether DSN parameters go out with `tx` (`None`: none were requested).
    fn dsn_sent(&self, tx: &Tx<'_>) -> Option<bool> {
        tx.dsn.filter(|d| !d.is_empty()).map(|_| self.caps.dsn)
    }

    /// Delivers one message. With PIPELINING, `next` (the message this
    /// session delivers next, if any) has its MAIL, RCPT and DATA written
    /// with this message's data: RFC 2920 (3.1) lets the message content
    /// be the first "command" of a group. The next call must then be for
    /// `next`; it reads their replies without writing them again, so a
    /// message costs one round trip instead of two.
    pub async fn transaction(
        &mut self,
        tx: &Tx<'_>,
        next: Option<&Tx<'_>>,
    ) -> Result<TxOutcome, TxFailure> {
        let addr = self.addr.clone();
        // A message whose envelope went out ahead was checked then.
        let prewritten = std::mem::take(&mut self.prewritten);
        if !prewritten {
            self.admissible(tx).map_err(TxFailure::Failed)?;
        }
        let dsn_sent = self.dsn_sent(tx);

        let pipelined = self.caps.pipelining;
        // An envelope written ahead of its turn was never followed by its
        // data: whatever ended the session, this message was not delivered.
        let reused = self.sent > 0 || prewritten;
        let mut accepted = Vec::new();
        let mut rejected: Vec<(String, PluginError)> = Vec::new();
        let mut deferred: Vec<(Address, PluginError)> = Vec::new();

        // A failure before the server has answered anything on a reused
        // connection means the connection had died while idle.
        let stale = |s: &Self, e: PluginError, first: bool| {
            if first && reused && !s.usable() {
                TxFailure::Stale(e)
            } else {
                TxFailure::Failed(e)
            }
        };

        if pipelined {
            if prewritten {
                if !self.usable() {
                    return Err(TxFailure::Stale(PluginError::transient(format!(
                        "{addr}: the connection ended before this message's turn; it was not sent"
                    ))));
                }
            } else {
                let envelope = self.envelope(tx);
                self.scratch.clear();
                if self.dirty {
                    let _ = write!(self.scratch, "{Rset}");
                }
                let _ = write!(self.scratch, "{envelope}");
                self.stream.write_raw(self.scratch.as_bytes());
            }
            let mut first = true;
            if self.dirty {
                match self.read_reply(Stage::Rset).await {
                    Err(e) => return Err(stale(self, e, true)),
                    Ok(Err(r)) if r.code == 421 => {
                        return Err(stale(self, reply_error(&addr, Stage::Rset, &r), true))
                    }
                    Ok(_) => {}
                }
                first = false;
                self.dirty = false;
            }
            self.dirty = true;
            let mail_reply = match self.read_reply(Stage::Mail).await {
                Err(e) => return Err(stale(self, e, first)),
                Ok(r) => r,
            };
            if let Err(r) = &mail_reply {
                if r.code == 421 {
                    return Err(stale(self, reply_error(&addr, Stage::Mail, r), first));
                }
            }
            for a in tx.to {
                match self
                    .read_reply(Stage::Rcpt)
                    .await
                    .map_err(TxFailure::Failed)?
                {
                    Ok(_) => accepted.push(a.to_string()),
                    Err(r) => {
                        let e = reply_error(&addr, Stage::Rcpt, &r).with_recipient(a);
                        if r.code == 421 {
                            return Err(TxFailure::Failed(e));
                        }
                        if r.code == TOO_MANY_RECIPIENTS {
                            deferred.push((a.clone(), e));
                        } else {
                            rejected.push((a.to_string(), e));
                        }
                    }
                }
            }
            let data_reply = self
                .read_reply(Stage::Data)
                .await
                .map_err(TxFailure::Failed)?;
            if let Err(r) = mail_reply {
                if data_reply.is_ok() {
                    self.end_empty_data().await;
                }
                return Err(TxFailure::Failed(reply_error(&addr, Stage::Mail, &r)));
            }
            if accepted.is_empty() {
                if data_reply.is_ok() {
                    self.end_empty_data().await;
                }
                rejected.extend(deferred.into_iter().map(|(a, e)| (a.to_string(), e)));
                return Err(TxFailure::AllRefused(addr, rejected));
            }
            if let Err(r) = data_reply {
                return Err(TxFailure::Failed(reply_error(&addr, Stage::Data, &r)));
            }
        } else {
            let mut first = true;
            if self.dirty {
                match self.cmd(Stage::Rset, Rset).await {
                    Err(e) if !self.usable() => return Err(stale(self, e, true)),
                    _ => {}
                }
                first = false;
                self.dirty = false;
            }
            let Envelope { mail, rcpts } = self.envelope(tx);
            match self.cmd(Stage::Mail, mail).await {
                Ok(_) => {}
                Err(e) => return Err(stale(self, e, first)),
            }
            self.dirty = true;
            for (a, c) in tx.to.iter().zip(rcpts) {
                match self.cmd(Stage::Rcpt, c).await {
                    Ok(_) => accepted.push(a.to_string()),
                    Err(e) if !self.usable() => return Err(TxFailure::Failed(e.with_recipient(a))),
                    Err(e) if e.code == TOO_MANY_RECIPIENTS => {
                        deferred.push((a.clone(), e.with_recipient(a)))
                    }
                    Err(e) => rejected.push((a.to_string(), e.with_recipient(a))),
                }
            }
            if accepted.is_empty() {
                rejected.extend(deferred.into_iter().map(|(a, e)| (a.to_string(), e)));
                return Err(TxFailure::AllRefused(addr, rejected));
            }
            self.cmd(Stage::Data, Data)
                .await
                .map_err(TxFailure::Failed)?;
        }

        // The data: dot-stuffed, terminated, one write.
        let mut data = std::mem::take(&mut self.data);
        dot_stuff(tx.body, &mut data);
        let quit = tx.last && self.caps.pipelining;
        if quit {
            data.extend_from_slice(b"QUIT\r\n");
        } else if let Some(next) = next {
            // Not when recipients were put off (452): they need another
            // transaction of this message first.
            if pipelined && deferred.is_empty() && self.admissible(next).is_ok() {
                let envelope = self.envelope(next);
                self.scratch.clear();
                let _ = write!(self.scratch, "{envelope}");
                data.extend_from_slice(self.scratch.as_bytes());
                self.prewritten = true;
            }
        }
        self.stream.write_raw(&data);
        data.clear();
        self.data = data;
        // Sending the data counts against the limit too: allow at least 1 MB/s on top.
        let limit = self.timeout + Duration::from_micros(tx.body.len() as u64);
        let end = self
            .read_reply_within(Stage::EndOfData, limit)
            .await
            .map_err(TxFailure::Failed)?;
        self.dirty = false;
        self.sent += 1;
        if quit {
            // The 221 (usually in the same segment as the data's reply); then
            // the session is over and dropping it closes the socket.
            let _ = self.read_reply(Stage::Quit).await;
            self.broken = true;
        }
        match end {
            Ok(reply) => Ok(TxOutcome {
                reply,
                accepted,
                rejected,
                deferred,
                pipelined,
                ahead: prewritten,
                dsn_sent,
            }),
            Err(r) => Err(TxFailure::Failed(reply_error(&addr, Stage::EndOfData, &r))),
        }
    }

    /// Ends a DATA the server accepted although nothing is to be sent.
    async fn end_empty_data(&mut self) {
        self.stream.write_raw(b".\r\n");
        let _ = self.read_reply(Stage::EndOfData).await;
    }
}

trait WithRecipient {
    fn with_recipient(self, a: &Address) -> Self;
}

impl WithRecipient for PluginError {
    fn with_recipient(mut self, a: &Address) -> Self {
        self.message = format!("recipient <{a}>: {}", self.message()).into();
        self
    }
}

/// The error when every recipient was refused: the most hopeful class
/// (transient if any refusal was), every refusal in the message.
fn all_rejected(addr: &str, rejected: Vec<(String, PluginError)>) -> PluginError {
    let pick = rejected
        .iter()
        .find(|(_, e)| e.class() == ErrorClass::TRANSIENT)
        .or_else(|| rejected.first())
        .map(|(_, e)| e.clone());
    let Some(mut err) = pick else {
        return PluginError::permanent(format!("{addr}: the message has no recipient"));
    };
    if rejected.len() > 1 {
        let all: Vec<String> = rejected
            .iter()
            .map(|(_, e)| e.message().to_string())
            .collect();
        err.message = format!(
            "{addr} refused all {} recipients: {}",
            rejected.len(),
            all.join("; ")
        )
        .into();
    }
    err
}

/// Appends `body` with leading dots doubled (RFC 5321 4.5.2) and the
/// `CRLF . CRLF` terminator (not adding a line when the body ends with CRLF).
pub fn dot_stuff(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 512 + 8);
    let mut line_start = true;
    for line in body.split_inclusive(|b| *b == b'\n') {
        if line_start && line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        line_start = line.last() == Some(&b'\n');
    }
    if body.is_empty() || body.ends_with(b"\r\n") {
        out.extend_from_slice(b".\r\n");
    } else {
        out.extend_from_slice(b"\r\n.\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_terminator() {
        let mut out = Vec::new();
        dot_stuff(b".a\r\nb\r\n..c\r\n.\r\n", &mut out);
        assert_eq!(out, b"..a\r\nb\r\n...c\r\n..\r\n.\r\n");
        out.clear();
        dot_stuff(b"no final newline", &mut out);
        assert_eq!(out, b"no final newline\r\n.\r\n");
        out.clear();
        dot_stuff(b"", &mut out);
        assert_eq!(out, b".\r\n");
    }

    #[test]
    fn capabilities_from_ehlo() {
        let r = Reply::parse_all(
            b"250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 67108864\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n250-AUTH=LOGIN\r\n250-DSN\r\n250 STARTTLS\r\n",
        );
        let c = Capabilities::from_ehlo(&r[0]);
        assert!(c.pipelining && c.dsn && c.smtputf8 && c.eightbitmime && c.starttls);
        assert_eq!(c.size, Some(67_108_864));
        assert_eq!(c.auth, vec!["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"]);
    }
}
