//! rustls on the `ring` provider, built here so that no process-wide provider is needed.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Trusts the platform's roots and, when given, the CA certificates in `ca_file` (PEM).
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
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| format!("cannot set up TLS verification: {e}"))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}
