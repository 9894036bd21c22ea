//! The rustls client set-up shared by the host's token broker and the plugins
//! that speak HTTPS: rustls on the `ring` provider, built per client so that no
//! process-wide provider is needed. Linked statically into each user; it is not
//! part of the plugin ABI.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The signature methods of a verifier that checks handshake signatures with
/// a crypto provider's algorithms (`$provider`, reached from `self`).
macro_rules! provider_signatures {
    ($self:ident => $provider:expr) => {
        fn verify_tls12_signature(
            &$self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &$provider.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &$self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &$provider.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&$self) -> Vec<SignatureScheme> {
            $provider.signature_verification_algorithms.supported_schemes()
        }
    };
}

/// True when the error chain holds a rejected server certificate (rustls's
/// error, possibly wrapped in `std::io::Error` by an HTTP or TLS stream), which
/// callers report as a configuration problem rather than a network one.
pub fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if is_certificate_error(inner) {
                    return true;
                }
            }
        }
        source = s.source();
    }
    false
}

/// Trusts the platform's roots and, when given, the CA certificates in `ca_file` (PEM).
///
/// A certificate from `ca_file` that a server presents as its own (a
/// self-signed certificate marked as a CA, which webpki refuses as
/// `CaUsedAsEndEntity`) is accepted as pinned when it names the server, as
/// OpenSSL-based clients do.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut extra = Vec::new();
    if let Some(path) = ca_file {
        let certs: Result<Vec<CertificateDer<'static>>, _> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?
            .collect();
        extra = certs.map_err(|e| format!("ca_file {} is not valid PEM: {e}", path.display()))?;
        if extra.is_empty() {
            return Err(format!(
                "ca_file {} holds no certificate; give a PEM file with the CA certificate",
                path.display()
            ));
        }
    }
    let inner =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra.clone(), provider.clone())
            .map_err(|e| format!("cannot set up TLS verification: {e}"))?;
    let verifier = PinningVerifier::new(Arc::new(inner), extra);
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// A verifier (the platform's, or WebPKI over chosen roots), plus `ca_file`
/// certificates accepted as pinned end-entity certificates when the server
/// presents one of them and it names the server.
#[derive(Debug)]
pub struct PinningVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl PinningVerifier {
    pub fn new(inner: Arc<dyn ServerCertVerifier>, pinned: Vec<CertificateDer<'static>>) -> Self {
        Self { inner, pinned }
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // A pinned certificate first: it needs no trust store at all (the
        // inner verifier may have to read the system's on first use).
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            if rustls::client::verify_server_name(&parsed, server_name).is_ok() {
                return Ok(ServerCertVerified::assertion());
            }
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `accept_invalid_certs = true`: any certificate is accepted, but the
/// handshake's signatures are still checked (the peer must hold the key).
/// Callers warn whenever they use it.
#[derive(Debug)]
pub struct AcceptAnyCert(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    provider_signatures!(self => self.0);
}

/// WebPKI verification over the `ca_file` certificates and the system's
/// roots, with the system store read only when it is needed: a chain is first
/// checked against the `ca_file` certificates alone, and only when that fails
/// against the system roots plus them (loaded then, once). Trust is the union
/// of both, as with one store; a one-shot send to a server with a private CA
/// no longer parses the few hundred system certificates.
#[derive(Debug)]
pub struct LazyRootsVerifier {
    provider: Arc<CryptoProvider>,
    extra: Vec<CertificateDer<'static>>,
    extra_only: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    full: std::sync::OnceLock<Result<Arc<rustls::client::WebPkiServerVerifier>, rustls::Error>>,
}

impl LazyRootsVerifier {
    /// `extra`: the `ca_file` certificates (may be empty). Fails when one of
    /// them is not usable as a trust anchor.
    pub fn new(
        provider: Arc<CryptoProvider>,
        extra: Vec<CertificateDer<'static>>,
    ) -> Result<Self, String> {
        let extra_only = if extra.is_empty() {
            None
        } else {
            let mut roots = rustls::RootCertStore::empty();
            for c in &extra {
                roots
                    .add(c.clone())
                    .map_err(|e| format!("a certificate in ca_file is not usable as a CA: {e}"))?;
            }
            Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("TLS verification setup failed: {e}"))?,
            )
        };
        Ok(Self {
            provider,
            extra,
            extra_only,
            full: std::sync::OnceLock::new(),
        })
    }

    fn full(&self) -> Result<&Arc<rustls::client::WebPkiServerVerifier>, rustls::Error> {
        self.full
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                for c in &self.extra {
                    let _ = roots.add(c.clone());
                }
                if roots.is_empty() {
                    return Err(rustls::Error::General(
                        "no trusted root certificates: the system has none and no ca_file is set"
                            .into(),
                    ));
                }
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| rustls::Error::General(format!("TLS verification setup failed: {e}")))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(v) = &self.extra_only {
            if let Ok(ok) =
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            {
                return Ok(ok);
            }
        }
        self.full()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    provider_signatures!(self => self.provider);
}
