//! HTTPS for the API and the admin page: `[api] tls_cert` and `tls_key`
//! (PEM files). Bearer tokens and the admin page's sign-in cross the
//! network in the clear without it, so a service bound beyond loopback
//! should have it (or a TLS proxy in front; `serve` warns otherwise).
//!
//! A renewed certificate is picked up without a restart: the files are
//! looked at again at most once a minute, on a handshake, and a new pair
//! that does not load is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How often the files are looked at for a renewed certificate.
const RECHECK: Duration = Duration::from_secs(60);
/// A client has this long to finish its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Handshakes under way at once (more wait for a slot: bounded memory).
const HANDSHAKES: usize = 256;

/// Reads a certificate chain and its private key; the error says which file
/// and what to do (never anything of the key's contents).
pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "the certificate {} is not PEM: {e}; give the certificate (and its chain) as -----BEGIN CERTIFICATE----- blocks",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no certificate: give the certificate (and its chain) as -----BEGIN CERTIFICATE----- blocks",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{} holds no private key: give it as a -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY) block, unencrypted",
            key.display()
        ),
        e => format!("cannot read the private key {}: {e}", key.display()),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, private, &provider)
        .map(Arc::new)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key {} does not belong to the certificate {}: give the key the certificate was issued for",
                key.display(),
                cert.display()
            ),
            e => format!(
                "the private key {} cannot be used: {e}; give an RSA, ECDSA or Ed25519 key",
                key.display()
            ),
        })
}

/// A certificate's end of validity: (Unix seconds, as written).
pub fn not_after(cert: &CertificateDer<'_>) -> Option<(i64, String)> {
    use x509_cert::der::Decode;
    let c = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    let t = c.tbs_certificate.validity.not_after;
    Some((
        i64::try_from(t.to_unix_duration().as_secs()).ok()?,
        t.to_string(),
    ))
}

/// Warn this long before the certificate runs out.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// What to say about a certificate that ends at `end` (Unix seconds), `now`.
fn expiry_problem(path: &Path, end: (i64, &str), now: i64) -> Option<(bool, String)> {
    let left = end.0 - now;
    if left <= 0 {
        Some((
            true,
            format!(
                "the API certificate {} expired on {}: clients refuse it; renew it (the new pair in the same files is picked up within a minute)",
                path.display(),
                end.1
            ),
        ))
    } else if left < EXPIRY_WARNING.as_secs() as i64 {
        Some((
            false,
            format!(
                "the API certificate {} expires on {} (in {} days): renew it before then (the new pair in the same files is picked up within a minute)",
                path.display(),
                end.1,
                left / 86_400
            ),
        ))
    } else {
        None
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The pair in use, and the files it came from.
#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    stamp: Option<(SystemTime, SystemTime)>,
    checked: Instant,
    /// When the expiry was last warned about (once a day at most).
    warned: Option<Instant>,
}

/// Gives every handshake the current pair, reloading renewed files.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

fn stamp(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

impl Certificates {
    pub fn open(cert: PathBuf, key: PathBuf) -> Result<Certificates, String> {
        let stamp = stamp(&cert, &key);
        let loaded = load(&cert, &key)?;
        let certs = Certificates {
            cert,
            key,
            current: Mutex::new(Current {
                key: loaded,
                stamp,
                checked: Instant::now(),
                warned: None,
            }),
        };
        if let Ok(mut c) = certs.current.lock() {
            certs.warn_expiry(&mut c, Instant::now());
        }
        Ok(certs)
    }

    /// The end of validity of the certificate in use (Unix seconds).
    pub fn expires(&self) -> Option<i64> {
        let c = self.current.lock().ok()?;
        not_after(c.key.cert.first()?).map(|e| e.0)
    }

    /// Logs a certificate that has run out or soon will, once a day.
    fn warn_expiry(&self, c: &mut Current, now: Instant) {
        if c.warned
            .is_some_and(|w| now.saturating_duration_since(w) < Duration::from_secs(86_400))
        {
            return;
        }
        let Some(end) = c.key.cert.first().and_then(not_after) else {
            return;
        };
        if let Some((expired, text)) = expiry_problem(&self.cert, (end.0, &end.1), unix_now()) {
            c.warned = Some(now);
            if expired {
                tracing::error!("serve: {text}");
            } else {
                tracing::warn!("serve: {text}");
            }
        }
    }

    /// The pair for a handshake at `now`, after a look at the files when
    /// the last one is older than [`RECHECK`].
    fn get(&self, now: Instant) -> Option<Arc<CertifiedKey>> {
        let mut c = self.current.lock().ok()?;
        if now.saturating_duration_since(c.checked) >= RECHECK {
            c.checked = now;
            let s = stamp(&self.cert, &self.key);
            if s.is_some() && s != c.stamp {
                c.stamp = s;
                match load(&self.cert, &self.key) {
                    Ok(k) => {
                        c.key = k;
                        c.warned = None;
                        tracing::info!(
                            "serve: loaded the renewed certificate {}",
                            self.cert.display()
                        );
                    }
                    Err(e) => tracing::error!(
                        "serve: the changed certificate does not load, the one before stays in use: {e}"
                    ),
                }
            }
            self.warn_expiry(&mut c, now);
        }
        Some(c.key.clone())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get(Instant::now())
    }
}

/// The server side of TLS: HTTP/1.1 over TLS 1.2 or 1.3.
pub fn acceptor(certs: Arc<Certificates>) -> Result<TlsAcceptor, String> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_no_client_auth()
    .with_cert_resolver(certs);
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener whose connections are TLS: TCP connections are accepted and
/// their handshakes run apart, so a slow or silent client holds up no one.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tracing::debug!("serve: accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!("serve: TLS handshake with {peer} failed: {e}")
                        }
                        Err(_) => tracing::debug!("serve: TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local, task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accepting task ended (it does not, short of a runtime
            // shutting down): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Whether `addr` reaches beyond this machine.
pub fn beyond_loopback(addr: &std::net::SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        let ok = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
            ])
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl req");
        (cert, key)
    }

    #[test]
    fn a_pair_loads_and_bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl(dir.path(), "a", "a.example");
        let (_, other_key) = openssl(dir.path(), "b", "b.example");
        assert!(load(&cert, &key).is_ok());
        let e = load(&cert, &other_key).unwrap_err();
        assert!(e.contains("does not belong to the certificate"), "{e}");
        let e = load(&dir.path().join("missing.crt"), &key).unwrap_err();
        assert!(e.contains("cannot read the certificate"), "{e}");
        // the key file given as the certificate, and the other way round
        let e = load(&key, &key).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = load(&cert, &cert).unwrap_err();
        assert!(e.contains("holds no private key"), "{e}");
        // nothing of the key's text in any message
        let key_text = std::fs::read_to_string(&key).unwrap();
        let secret_line = key_text.lines().nth(1).unwrap();
        assert!(!e.contains(secret_line));
    }

    #[test]
    fn a_certificate_near_its_end_is_warned_about_and_its_end_read() {
        let p = Path::new("api.crt");
        let day = 86_400;
        assert!(expiry_problem(p, (100 * day, "x"), 0).is_none());
        let (expired, text) = expiry_problem(p, (10 * day, "2027-01-11T00:00:00Z"), 0).unwrap();
        assert!(!expired);
        assert!(
            text.contains("api.crt expires on 2027-01-11T00:00:00Z (in 10 days)"),
            "{text}"
        );
        let (expired, text) = expiry_problem(p, (10, "then"), 11).unwrap();
        assert!(expired && text.contains("expired on then"), "{text}");
        // openssl's two days: read from the certificate itself
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl(dir.path(), "a", "a.example");
        let pair = load(&cert, &key).unwrap();
        let (end, shown) = not_after(&pair.cert[0]).unwrap();
        let left = end - unix_now();
        assert!((day..=2 * day + 60).contains(&left), "{left} s, {shown}");
        assert!(shown.ends_with('Z'), "{shown}");
        let certs = Certificates::open(cert, key).unwrap();
        assert_eq!(certs.expires(), Some(end));
    }

    #[test]
    fn a_renewed_pair_is_used_after_the_recheck_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = openssl(dir.path(), "a", "a.example");
        let certs = Certificates::open(cert.clone(), key.clone()).unwrap();
        let t0 = Instant::now();
        let first = certs.get(t0).unwrap();
        // renewed: another pair in the same files (a later mtime)
        std::thread::sleep(Duration::from_millis(20));
        let (c2, k2) = openssl(dir.path(), "b", "b.example");
        std::fs::copy(&c2, &cert).unwrap();
        std::fs::copy(&k2, &key).unwrap();
        let later = |s| t0 + RECHECK * s;
        assert!(Arc::ptr_eq(
            &first,
            &certs.get(t0 + Duration::from_secs(1)).unwrap()
        ));
        let renewed = certs.get(later(1)).unwrap();
        assert!(!Arc::ptr_eq(&first, &renewed), "not reloaded");
        assert_eq!(renewed.cert, load(&c2, &k2).unwrap().cert);
        // half-written renewal: the key does not match yet; the pair before stays
        std::thread::sleep(Duration::from_millis(20));
        std::fs::copy(&c2, &cert).unwrap();
        let (_, k3) = openssl(dir.path(), "c", "c.example");
        std::fs::copy(&k3, &key).unwrap();
        let kept = certs.get(later(2)).unwrap();
        assert!(Arc::ptr_eq(&renewed, &kept));
    }
}
