//! The controller's certificates (rcgen) and its TLS configuration (rustls).
//!
//! On its first start the controller creates a CA in its data directory: `ca.pem`
//! (the certificate every client trusts) and `ca.key` (mode 0600, never leaves the
//! directory). At every start it issues itself a fresh server certificate from that CA
//! with the names clients use to reach it (the listen address, 127.0.0.1, localhost and
//! every `--tls-san`), so changing the listen address needs no manual step. The
//! server's key lives only in memory.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA certificate's file in the data directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file in the data directory (0600).
pub const CA_KEY_FILE: &str = "ca.key";

/// The domain CA: its certificate (PEM) and its key.
pub struct Ca {
    /// The certificate, PEM: what clients trust.
    pub cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// The CA's parameters: the issuer of every server certificate is rebuilt from these
/// (name, key identifier method, key usages), so they must never change.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "mcgate controller CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl Ca {
    /// Loads the CA of `dir`, creating it on the first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, String> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path)
                .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?;
            let key_pem = std::fs::read_to_string(&key_path)
                .map_err(|e| format!("cannot read {}: {e}", key_path.display()))?;
            return Self::from_pem(cert_pem, &key_pem)
                .map_err(|e| format!("{}: {e}", key_path.display()));
        }
        let ca = Self::generate()?;
        // The key first: a certificate without its key would be useless on restart.
        mcgate_client::credentials::write_private(&key_path, ca.key_pem().as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
        mcgate_client::credentials::write_private(&cert_path, ca.cert_pem.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
        Ok(ca)
    }

    /// A new CA.
    pub fn generate() -> Result<Self, String> {
        let key = KeyPair::generate().map_err(|e| format!("cannot make the CA key: {e}"))?;
        let cert = ca_params()
            .self_signed(&key)
            .map_err(|e| format!("cannot make the CA certificate: {e}"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// The CA of a certificate and its key, both PEM.
    pub fn from_pem(cert_pem: String, key_pem: &str) -> Result<Self, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("not a CA key: {e}"))?;
        Ok(Self { cert_pem, key })
    }

    /// The CA's private key, PEM (for a store shared by replicas).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A TLS server configuration with a new certificate for `names` (IP addresses or
    /// DNS names) signed by this CA.
    pub fn server_config(&self, names: &[String]) -> Result<Arc<ServerConfig>, String> {
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| format!("a --tls-san is neither an IP address nor a DNS name: {e}"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "mcgate controller");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(|e| format!("cannot make the server key: {e}"))?;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| format!("cannot sign the server certificate: {e}"))?;
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("the server certificate cannot be used: {e}"))?;
        Ok(Arc::new(config))
    }
}

/// The names of the server certificate: the listen address's IP unless it is a
/// wildcard, 127.0.0.1, localhost, then `extra` (`--tls-san`), without repeats.
pub fn server_names(listen: std::net::SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.push("127.0.0.1".to_string());
    names.push("localhost".to_string());
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_ca_is_made_once_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ca::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Ca::load_or_create(dir.path()).unwrap();
        assert_eq!(a.cert_pem, b.cert_pem);
        b.server_config(&["127.0.0.1".into(), "ctl.example".into()])
            .unwrap();
        assert!(b.server_config(&["caf\u{e9}".into()]).is_err());
    }

    #[test]
    fn names_skip_wildcards_and_repeats() {
        let n = server_names("0.0.0.0:7400".parse().unwrap(), &["10.0.0.2".into()]);
        assert_eq!(n, ["127.0.0.1", "localhost", "10.0.0.2"]);
        let n = server_names("127.0.0.1:7400".parse().unwrap(), &[]);
        assert_eq!(n, ["127.0.0.1", "localhost"]);
    }
}
