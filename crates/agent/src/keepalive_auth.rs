//! Authentication of the peer keepalives ([`mcgate_wire::keepalive`]): a 16-byte keyed
//! BLAKE2s tag (RFC 7693, the MAC WireGuard's own messages carry) under a key only the
//! two hosts have, derived from their WireGuard static keys by X25519 (the static-static
//! Diffie-Hellman of Noise IK). A task, or anyone else on the underlay, cannot make a
//! keepalive a host accepts, so it can neither fake a dead peer's life nor, by the
//! sequence numbers, replay one.
//!
//! The tag also covers the sender's public key, so a host's own keepalive reflected back
//! to it does not pass as its peer's (both directions share the key).

use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, KeyInit, Mac, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use mcgate_dataplane::HostKey;
use mcgate_domain::keys::KEY_LEN;
use mcgate_wire::keepalive::{HEADER_LEN, TAG_LEN};

/// Separates this key from any other use of the same shared secret.
const LABEL: &[u8] = b"mcgate peer keepalive v1";

/// The key two hosts share for their keepalives.
#[derive(Clone, PartialEq, Eq)]
pub struct PairKey([u8; 32]);

impl std::fmt::Debug for PairKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairKey(..)")
    }
}

impl PairKey {
    /// The key `own` shares with the holder of `peer_public`; `None` for a public key
    /// that gives no secret (a low-order point).
    pub fn derive(own: &HostKey, peer_public: &[u8; KEY_LEN]) -> Option<Self> {
        let shared = own.shared_secret(peer_public)?;
        let mut h = Blake2s256::new();
        Digest::update(&mut h, LABEL);
        Digest::update(&mut h, shared);
        Some(Self(h.finalize().into()))
    }

    fn mac(&self, sender: &[u8; KEY_LEN], header: &[u8; HEADER_LEN]) -> Blake2sMac<U16> {
        let mut m = <Blake2sMac<U16> as KeyInit>::new_from_slice(&self.0)
            .expect("a 32-byte key fits BLAKE2s");
        Update::update(&mut m, sender);
        Update::update(&mut m, header);
        m
    }

    /// The tag of a keepalive with `header` sent by the holder of `sender`.
    pub fn tag(&self, sender: &[u8; KEY_LEN], header: &[u8; HEADER_LEN]) -> [u8; TAG_LEN] {
        self.mac(sender, header).finalize_fixed().into()
    }

    /// Whether `tag` is right for `header` from `sender` (compared in constant time).
    pub fn verify(&self, sender: &[u8; KEY_LEN], header: &[u8; HEADER_LEN], tag: &[u8]) -> bool {
        self.mac(sender, header).verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pair_can_tag_and_the_sender_is_bound() {
        let (a, b, c) = (
            HostKey::generate(),
            HostKey::generate(),
            HostKey::generate(),
        );
        let (pa, pb) = (*a.public().as_bytes(), *b.public().as_bytes());
        let ab = PairKey::derive(&a, &pb).unwrap();
        let ba = PairKey::derive(&b, &pa).unwrap();
        assert_eq!(ab, ba);
        let header = [7u8; HEADER_LEN];
        let tag = ab.tag(&pa, &header);
        assert!(ba.verify(&pa, &header, &tag));
        // Reflected: the same bytes claimed by the other end.
        assert!(!ba.verify(&pb, &header, &tag));
        // Changed header, short tag.
        let mut other = header;
        other[19] ^= 1;
        assert!(!ba.verify(&pa, &other, &tag));
        assert!(!ba.verify(&pa, &header, &tag[..8]));
        // A third host shares another key.
        let cb = PairKey::derive(&c, &pb).unwrap();
        assert!(!cb.verify(&pa, &header, &tag));
        assert!(PairKey::derive(&a, &[0; KEY_LEN]).is_none());
    }
}
