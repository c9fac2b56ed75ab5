//! TLS to the controller (rustls): the client trusts only the domain's CA, the one the
//! controller created on its first start, never the system's roots, so a certificate
//! from any public CA cannot stand in for the controller.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

/// A connector that trusts the CA certificates of `ca_pem` (PEM text) and nothing else.
pub fn connector(ca_pem: &str) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the CA is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the CA certificate cannot be used: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err("the CA holds no PEM certificate".to_string());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name the server's certificate must carry for `authority` (`HOST:PORT`): an IP
/// address or a DNS name.
pub fn server_name(authority: &str) -> Option<ServerName<'static>> {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_authority() {
        assert_eq!(
            server_name("127.0.0.1:7400"),
            ServerName::try_from("127.0.0.1").ok()
        );
        assert_eq!(
            server_name("ctl.example:7400"),
            ServerName::try_from("ctl.example").ok()
        );
        assert_eq!(server_name("[::1]:7400"), ServerName::try_from("::1").ok());
    }

    #[test]
    fn a_ca_that_is_not_pem_is_refused() {
        assert!(connector("").is_err());
        assert!(connector("-----BEGIN CERTIFICATE-----\nzz\n-----END CERTIFICATE-----\n").is_err());
    }
}
