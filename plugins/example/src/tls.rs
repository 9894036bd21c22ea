//! TLS for the webhook client: rustls on the `ring` provider, built here and
//! handed to reqwest (`tls_backend_preconfigured`), so nothing process-wide is
//! installed and the plugin decides exactly what it trusts.
//!
//! * By default: the platform's roots (rustls-platform-verifier), plus the
//!   certificates in `ca_file`.
//! * A `ca_file` certificate that the server presents **as its own** (a
//!   self-signed receiver whose certificate is marked as a CA — webpki refuses
//!   that as `CaUsedAsEndEntity`) is accepted as pinned when it names the
//!   server, as OpenSSL-based clients do.
//! * `accept_invalid_certs = true` skips certificate verification (handshake
//!   signatures are still checked). For test receivers only; `open` warns.

use std::path::Path;
use std::sync::Arc;

use mailhost_plugin_api::PluginError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The rustls client configuration for one account.
pub fn client_config(
    ca_file: Option<&Path>,
    accept_invalid_certs: bool,
) -> Result<rustls::ClientConfig, PluginError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    let verifier: Arc<dyn ServerCertVerifier> = if accept_invalid_certs {
        Arc::new(NoCertificateVerification(provider.clone()))
    } else {
        let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(
            extra.clone(),
            provider.clone(),
        )
        .map_err(|e| {
            PluginError::config(format!("example: cannot set up TLS verification: {e}"))
        })?;
        Arc::new(PinningVerifier {
            inner,
            pinned: extra,
        })
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        // TLS 1.2 and 1.3 only (RFC 8996 retired 1.0 and 1.1).
        .with_safe_default_protocol_versions()
        .map_err(|e| PluginError::config(format!("example: cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, PluginError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            PluginError::config(format!(
                "example: cannot read `ca_file` {}: {e}; give the path of a PEM file the host may read",
                path.display()
            ))
        })?
        .collect();
    let certs = certs.map_err(|e| {
        PluginError::config(format!(
            "example: `ca_file` {} is not valid PEM: {e}",
            path.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(PluginError::config(format!(
            "example: `ca_file` {} holds no certificate; give a PEM file with the CA certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The platform verifier, plus `ca_file` certificates accepted as pinned
/// end-entity certificates.
#[derive(Debug)]
struct PinningVerifier {
    inner: rustls_platform_verifier::Verifier,
    pinned: Vec<CertificateDer<'static>>,
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
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(e)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                // The very certificate the admin gave us: accept it if it
                // names the server we connected to.
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name).map_err(|_| e)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
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

/// `accept_invalid_certs = true`: any certificate, but the handshake's
/// signatures are still verified (the peer must hold the certificate's key).
#[derive(Debug)]
struct NoCertificateVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateVerification {
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

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
