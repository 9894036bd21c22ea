//! TLS client settings (rustls with the `ring` provider): TLS 1.2+ or 1.3 only,
//! the system's roots plus an optional CA file, and an explicit, warned-about
//! `accept_invalid_certs`. One configuration serves implicit TLS, STARTTLS and
//! the POP3 leg.

use std::sync::Arc;

use mailhost_plugin_api::PluginError;
use mailhost_tls::{AcceptAnyCert, LazyRootsVerifier, PinningVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::config::{SmtpConfig, TlsMin};

/// Builds the TLS connector for an account.
pub fn connector(cfg: &SmtpConfig) -> Result<TlsConnector, PluginError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = match cfg.min_tls {
        TlsMin::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMin::V13 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| PluginError::config(format!("smtp: TLS setup failed: {e}")))?;

    let mut pinned: Vec<CertificateDer<'static>> = Vec::new();
    if let Some(path) = &cfg.ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| {
                PluginError::config(format!(
                    "smtp setting `ca_file`: cannot read certificates from {}: {e}; give a PEM file",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(PluginError::config(format!(
                "smtp setting `ca_file`: {} holds no PEM certificate",
                path.display()
            )));
        }
        pinned = certs;
    }

    let config = if cfg.accept_invalid_certs {
        tracing::warn!(
            host = %cfg.host,
            "smtp: accept_invalid_certs = true: the server's certificate is NOT verified; anyone on the path can read the mail and the credentials"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        // The system's roots are read on the first handshake that needs them
        // (not for a server whose certificate is pinned or issued by `ca_file`).
        let inner = LazyRootsVerifier::new(provider, pinned.clone())
            .map_err(|e| PluginError::config(format!("smtp setting `ca_file`: {e}")))?;
        let inner = Arc::new(inner);
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinningVerifier::new(inner, pinned)))
            .with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name to verify the server's certificate against.
pub fn server_name(host: &str) -> Result<ServerName<'static>, PluginError> {
    ServerName::try_from(host.to_string()).map_err(|e| {
        PluginError::config(format!(
            "smtp setting `host`: {host:?} cannot be used for TLS: {e}"
        ))
    })
}

/// Subject, issuer and expiry of a DER certificate, for `check()`.
#[derive(Debug, Clone)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
}

pub fn summarize(der: &[u8]) -> Option<CertSummary> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    Some(CertSummary {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
    })
}

/// `2027-11-23` for a Unix time.
pub fn date(unix: i64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// A TLS failure as an error class: a certificate the client refuses is a
/// settings matter (trust the CA with `ca_file`); anything else is transient.
pub fn classify_tls_error(addr: &str, e: &std::io::Error) -> PluginError {
    let text = e.to_string();
    let cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
        .unwrap_or(false)
        || text.contains("invalid peer certificate");
    if cert {
        PluginError::config(format!(
            "TLS handshake with {addr} failed: the server's certificate is not trusted ({text}); \
             if the server uses a private CA, set `ca_file` to its PEM file"
        ))
    } else if text.contains("ProtocolVersion") || text.contains("protocol version") {
        PluginError::config(format!(
            "TLS handshake with {addr} failed: no common TLS version ({text}); the server may only speak TLS 1.0/1.1, \
             which are refused (RFC 8996), or `min_tls` = \"1.3\" is more than it offers"
        ))
    } else {
        PluginError::transient(format!("TLS handshake with {addr} failed: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_795_392_000), "2026-11-23");
    }
}
