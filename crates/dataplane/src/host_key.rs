//! The host's WireGuard key pair: Curve25519 (RFC 7748), the static key of the Noise IK
//! handshake WireGuard runs. The private half never leaves the host: only
//! [`HostKey::public_base64`] is registered with the controller.

use boringtun::x25519::{PublicKey, StaticSecret};
use mcgate_domain::keys::{KEY_LEN, decode_key, encode_key};

/// A host's static key pair.
#[derive(Clone)]
pub struct HostKey {
    secret: StaticSecret,
    public: PublicKey,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is never printed, not even in debug logs.
        f.debug_struct("HostKey")
            .field("public", &self.public_base64())
            .finish_non_exhaustive()
    }
}

impl HostKey {
    /// A new key pair from the operating system's random number generator.
    pub fn generate() -> Self {
        Self::from_secret(StaticSecret::random_from_rng(rand_core::OsRng))
    }

    /// The key pair of private key `bytes` (clamped when used, RFC 7748 section 5).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self::from_secret(StaticSecret::from(bytes))
    }

    /// The key pair of a private key in standard base64 (as `wg genkey` prints it).
    pub fn from_base64(text: &str) -> Option<Self> {
        decode_key(text.trim()).map(Self::from_bytes)
    }

    fn from_secret(secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The private key in standard base64, for the host's own key file only.
    pub fn private_base64(&self) -> String {
        encode_key(&self.secret.to_bytes())
    }

    /// The public key in standard base64, as registered with the controller.
    pub fn public_base64(&self) -> String {
        encode_key(self.public.as_bytes())
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The private key.
    pub fn secret(&self) -> &StaticSecret {
        &self.secret
    }

    /// The X25519 shared secret with the holder of `peer_public` (RFC 7748 section 6.1):
    /// the same on both hosts, known to no one else. `None` for a low-order public key,
    /// whose shared secret anyone could compute.
    pub fn shared_secret(&self, peer_public: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
        let shared = self.secret.diffie_hellman(&PublicKey::from(*peer_public));
        shared.was_contributory().then(|| shared.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_derive_the_same_shared_secret() {
        let (a, b) = (HostKey::generate(), HostKey::generate());
        let ab = a.shared_secret(b.public().as_bytes());
        assert!(ab.is_some());
        assert_eq!(ab, b.shared_secret(a.public().as_bytes()));
        // A low-order point (here zero) gives no secret.
        assert_eq!(a.shared_secret(&[0; KEY_LEN]), None);
    }

    #[test]
    fn keys_round_trip_and_differ() {
        let a = HostKey::generate();
        let b = HostKey::generate();
        assert_ne!(a.public_base64(), b.public_base64());
        let again = HostKey::from_base64(&format!("{}\n", a.private_base64())).unwrap();
        assert_eq!(again.public_base64(), a.public_base64());
        assert!(HostKey::from_base64("short").is_none());
        assert!(!format!("{a:?}").contains(&a.private_base64()));
    }

    #[test]
    fn matches_wireguard_test_vector() {
        // RFC 7748 section 6.1: Alice's private and public keys.
        let private = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
        let key = HostKey::from_base64(private).unwrap();
        assert_eq!(
            key.public_base64(),
            "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
        );
    }
}
