//! WireGuard keys as text: Curve25519 keys are 32 bytes, written in standard base64
//! with padding (44 characters), the way `wg(8)` reads and writes them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Length of a Curve25519 key in bytes.
pub const KEY_LEN: usize = 32;

/// The key in `text`, or `None` when it is not 32 bytes of standard base64.
pub fn decode_key(text: &str) -> Option<[u8; KEY_LEN]> {
    // 44 characters decode to at most 33 bytes; anything longer is refused unread.
    if text.len() != 44 {
        return None;
    }
    let bytes = STANDARD.decode(text).ok()?;
    bytes.try_into().ok()
}

/// `key` as standard base64.
pub fn encode_key(key: &[u8; KEY_LEN]) -> String {
    STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let key = [7u8; KEY_LEN];
        let text = encode_key(&key);
        assert_eq!(text.len(), 44);
        assert_eq!(decode_key(&text), Some(key));
        assert_eq!(decode_key(""), None);
        assert_eq!(
            decode_key("not base64 at all, but forty-four chars long!"),
            None
        );
        // 33 bytes: the right length of text only with a wrong padding.
        assert_eq!(decode_key(&STANDARD.encode([1u8; 31])), None);
        assert_eq!(decode_key(&STANDARD.encode([1u8; 33])), None);
    }
}
