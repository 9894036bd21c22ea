//! The socket under lettre's `AsyncSmtpConnection`.
//!
//! lettre 0.11.23 connects without `TCP_NODELAY` and writes the message body and
//! the final `\r\n.\r\n` as two writes: with Nagle's algorithm on, the second
//! write waits for the ACK of the first, which the server delays by up to 40 ms,
//! so every message stalled 40 ms (measured: about 230 msg/s with 10 pooled
//! connections against tens of thousands without the stall; see
//! `docs/performance.md`). We connect the socket ourselves (no-delay) and
//! hand lettre a [`SmtpStream`] through `connect_with_transport`. The stream:
//!
//! * **coalesces writes**: bytes written are kept until the client next waits for
//!   a reply (a read) or shuts the stream down, so one turn of the dialogue is
//!   one `write(2)` — a pipelined `MAIL`/`RCPT`/`DATA` group, or the dot-stuffed
//!   body with its terminator;
//! * is **shared** with the session ([`SmtpStream::handle`]), which writes
//!   pipelined commands and message data directly ([`SmtpStream::write_raw`]),
//!   upgrades the socket to TLS in place after `STARTTLS`, and reads the TLS
//!   details (version, certificate chain) for `check()`;
//! * can **tap** the bytes it reads, so the session sees the greeting and the
//!   EHLO reply that lettre's `connect_with_transport` consumes.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Above this many pending bytes a write starts sending without waiting for a read.
const EAGER_FLUSH_BYTES: usize = 64 * 1024;

enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Taken out for a TLS handshake (or after a failed one).
    Gone,
}

struct Inner {
    io: Io,
    /// Bytes written but not yet sent.
    wbuf: Vec<u8>,
    /// How much of `wbuf` has been sent.
    wpos: usize,
    /// Written to the I/O object but not yet flushed (TLS records may wait in
    /// rustls for a writable socket).
    unflushed: bool,
    /// Bytes read while tapping.
    tap: Option<Vec<u8>>,
    /// The runtime the socket is registered with ([`crate::rt::home`]).
    home: u64,
}

impl Inner {
    fn io_pin(&mut self) -> io::Result<Pin<&mut (dyn AsyncRw + Unpin)>> {
        match &mut self.io {
            Io::Tcp(s) => Ok(Pin::new(s)),
            Io::Tls(s) => Ok(Pin::new(s.as_mut())),
            Io::Gone => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection was lost during a TLS handshake",
            )),
        }
    }

    /// Sends the pending bytes; `Ready(Ok)` once all are written and flushed.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.wpos < self.wbuf.len() {
            self.unflushed = true;
            while self.wpos < self.wbuf.len() {
                let (pos, len) = (self.wpos, self.wbuf.len());
                let n = {
                    let buf = std::mem::take(&mut self.wbuf);
                    let r = self.io_pin().map(|io| io.poll_write(cx, &buf[pos..len]));
                    self.wbuf = buf;
                    match r? {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(r) => r?,
                    }
                };
                if n == 0 {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the server closed the connection while we were sending",
                    )));
                }
                self.wpos += n;
            }
            self.wbuf.clear();
            self.wpos = 0;
        }
        if self.unflushed {
            // TLS keeps records in its own buffer until flushed (TCP flush is a
            // no-op). A flush that waits for the socket is resumed by the next
            // call, even though `wbuf` is empty by then.
            ready!(self.io_pin()?.poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// Replaces `tcp` with a duplicate of its socket registered with the current
/// runtime (dropping the original deregisters it from its old one).
#[cfg(unix)]
fn rebind(tcp: &mut TcpStream) -> io::Result<()> {
    use std::os::fd::AsFd;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other("not on a runtime"));
    }
    let dup = std::net::TcpStream::from(tcp.as_fd().try_clone_to_owned()?);
    dup.set_nonblocking(true)?;
    *tcp = TcpStream::from_std(dup)?;
    Ok(())
}

/// On Windows a socket stays with its first completion port: a connection
/// from another runtime is not moved but replaced by a new one.
#[cfg(not(unix))]
fn rebind(_tcp: &mut TcpStream) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "moving a connection between runtimes",
    ))
}

trait AsyncRw: AsyncRead + AsyncWrite {}
impl<T: AsyncRead + AsyncWrite> AsyncRw for T {}

/// What the TLS handshake negotiated.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// The server's certificate chain, leaf first (DER).
    pub chain: Vec<CertificateDer<'static>>,
}

/// A connected socket shared between lettre's connection and the session.
#[derive(Clone)]
pub struct SmtpStream {
    inner: Arc<Mutex<Inner>>,
    peer: SocketAddr,
}

impl fmt::Debug for SmtpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpStream")
            .field("peer", &self.peer)
            .field("tls", &self.is_tls())
            .finish()
    }
}

impl SmtpStream {
    pub fn plain(tcp: TcpStream, peer: SocketAddr) -> Self {
        Self::with_io(Io::Tcp(tcp), peer)
    }

    pub fn tls(tls: TlsStream<TcpStream>, peer: SocketAddr) -> Self {
        Self::with_io(Io::Tls(Box::new(tls)), peer)
    }

    fn with_io(io: Io, peer: SocketAddr) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                io,
                wbuf: Vec::with_capacity(4096),
                wpos: 0,
                unflushed: false,
                tap: None,
                home: crate::rt::home(),
            })),
            peer,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-call; the
        // buffers are still consistent enough to fail the connection cleanly.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Another handle on the same socket (the session keeps one, lettre the other).
    pub fn handle(&self) -> Self {
        self.clone()
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.lock().io, Io::Tls(_))
    }

    /// Registers the socket with the runtime of the calling thread, if it is
    /// registered elsewhere (a pooled connection used from another thread; see
    /// [`crate::rt`]). The descriptor is duplicated, the copy registered here and
    /// the old registration dropped; buffered bytes (ours, TLS's, lettre's) stay.
    /// Call it only from a future running on one of the plugin's runtimes.
    pub fn adopt(&self) -> io::Result<()> {
        let here = crate::rt::home();
        let mut inner = self.lock();
        if inner.home == here {
            return Ok(());
        }
        match &mut inner.io {
            Io::Tcp(tcp) => rebind(tcp)?,
            Io::Tls(tls) => rebind(tls.get_mut().0)?,
            Io::Gone => {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the connection was lost during a TLS handshake",
                ))
            }
        }
        inner.home = here;
        Ok(())
    }

    /// The runtime the socket is registered with.
    pub fn home(&self) -> u64 {
        self.lock().home
    }

    /// Queues bytes to send with the next read (one write per dialogue turn).
    pub fn write_raw(&self, bytes: &[u8]) {
        self.lock().wbuf.extend_from_slice(bytes);
    }

    /// Starts recording the bytes read (the greeting and EHLO reply lettre consumes).
    pub fn start_tap(&self) {
        self.lock().tap = Some(Vec::new());
    }

    /// Stops recording and returns what was read since [`SmtpStream::start_tap`].
    pub fn take_tap(&self) -> Vec<u8> {
        self.lock().tap.take().unwrap_or_default()
    }

    /// Replaces the plain socket with a TLS session on it (after `STARTTLS`'s 220).
    pub async fn upgrade(
        &self,
        connector: &TlsConnector,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let tcp = {
            let mut inner = self.lock();
            if inner.wpos < inner.wbuf.len() {
                return Err(io::Error::other("unsent bytes before the TLS handshake"));
            }
            match std::mem::replace(&mut inner.io, Io::Gone) {
                Io::Tcp(tcp) => tcp,
                other => {
                    inner.io = other;
                    return Err(io::Error::other("the connection is already encrypted"));
                }
            }
        };
        let tls = connector.connect(name, tcp).await?;
        self.lock().io = Io::Tls(Box::new(tls));
        Ok(())
    }

    /// The negotiated TLS version, cipher suite and the server's certificates.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        let inner = self.lock();
        let Io::Tls(tls) = &inner.io else { return None };
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
            chain: conn
                .peer_certificates()
                .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
                .unwrap_or_default(),
        })
    }
}

impl AsyncRead for SmtpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.lock();
        // The client waits for a reply: send what it wrote first. When the
        // socket takes no more (a long pipelined group, e.g. thousands of
        // RCPTs), read the replies that are already there instead of waiting:
        // a server that answers as it reads stops reading once its replies
        // are not read, and both sides would wait for each other. The rest
        // is sent on the next read.
        if let Poll::Ready(r) = inner.poll_drain(cx) {
            r?;
        }
        let before = buf.filled().len();
        ready!(inner.io_pin()?.poll_read(cx, buf))?;
        if let Some(tap) = inner.tap.as_mut() {
            tap.extend_from_slice(&buf.filled()[before..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SmtpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.lock();
        inner.wbuf.extend_from_slice(buf);
        if inner.wbuf.len() - inner.wpos >= EAGER_FLUSH_BYTES {
            // A large body: start sending now; errors surface with the next read.
            let _ = inner.poll_drain(cx);
        }
        Poll::Ready(Ok(buf.len()))
    }

    /// Deferred: the bytes go out when the client next reads (or shuts down).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.lock();
        ready!(inner.poll_drain(cx))?;
        inner.io_pin()?.poll_shutdown(cx)
    }
}

impl AsyncTokioStream for SmtpStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}
