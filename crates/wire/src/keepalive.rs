//! The agents' peer keepalive: a small UDP datagram each agent sends every peer of its
//! domains on a fixed interval, so a peer that stops sending is found dead in well under
//! a second (the asynchronous mode of BFD, RFC 5880 section 3.2, without its session
//! handshake). It carries the sender's timers, as a BFD control packet does (RFC 5880
//! section 4.1: Desired Min TX Interval, Detect Mult), so each receiver derives the
//! detection time from the sender's own values (section 6.8.4), and an authentication
//! tag the receiver checks before anything else.
//!
//! ```text
//!  0                   1                   2                   3
//! |      'M'      |      'C'      |      'G'      |      'K'      |
//! |    Version    |  Detect Mult  |     State     |   Reserved    |
//! |                 Desired Min TX Interval (microseconds)         |
//! |                 Sequence Number (64 bits, strictly increasing) |
//! |                                                                |
//! |                 Authentication tag (16 bytes)                  |
//! ```
//!
//! This module only reads and writes the bytes; the tag is computed and checked by the
//! agent (keyed BLAKE2s under a key both hosts derive from their WireGuard keys).

use crate::{Error, Result};

/// Bytes covered by the authentication tag.
pub const HEADER_LEN: usize = 20;
/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of a whole keepalive.
pub const PACKET_LEN: usize = HEADER_LEN + TAG_LEN;
/// The first four bytes of every keepalive.
pub const MAGIC: [u8; 4] = *b"MCGK";
/// The version this module reads and writes.
pub const VERSION: u8 = 1;

/// A keepalive's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// How many intervals without a keepalive make the sender dead (RFC 5880 "Detect
    /// Mult"); never zero.
    pub detect_mult: u8,
    /// The sender's interval between keepalives, in microseconds (RFC 5880 "Desired Min
    /// TX Interval"); never zero.
    pub tx_interval_us: u32,
    /// The sender is going away on purpose, for a restart (RFC 5880's AdminDown): its
    /// peers stop judging it until they hear it again, and leave it to the controller's
    /// lease. State byte 1; 0 is a live sender.
    pub admin_down: bool,
    /// Strictly increasing per sender, across restarts too (the receiver refuses a
    /// sequence number not above the last it accepted: replays count as drops).
    pub sequence: u64,
}

impl Repr {
    /// Parses a whole keepalive; returns its fields and its tag. Exact length only: a
    /// keepalive never has trailing bytes.
    pub fn parse(bytes: &[u8]) -> Result<(Repr, [u8; TAG_LEN])> {
        if bytes.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if bytes.len() != PACKET_LEN || bytes.get(..4) != Some(&MAGIC[..]) {
            return Err(Error::Malformed);
        }
        let b = |i: usize| bytes.get(i).copied().unwrap_or(0);
        if b(4) != VERSION || b(6) > 1 {
            return Err(Error::Malformed);
        }
        let mut interval = [0u8; 4];
        interval.copy_from_slice(bytes.get(8..12).ok_or(Error::Truncated)?);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(bytes.get(12..20).ok_or(Error::Truncated)?);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(bytes.get(HEADER_LEN..PACKET_LEN).ok_or(Error::Truncated)?);
        let repr = Repr {
            detect_mult: b(5),
            tx_interval_us: u32::from_be_bytes(interval),
            admin_down: b(6) == 1,
            sequence: u64::from_be_bytes(seq),
        };
        if repr.detect_mult == 0 || repr.tx_interval_us == 0 {
            return Err(Error::Malformed);
        }
        Ok((repr, tag))
    }

    /// Writes the header (everything the tag covers); the caller appends the tag.
    pub fn emit(&self, buf: &mut [u8; HEADER_LEN]) {
        buf[..4].copy_from_slice(&MAGIC);
        buf[4] = VERSION;
        buf[5] = self.detect_mult;
        buf[6..8].copy_from_slice(&[u8::from(self.admin_down), 0]);
        buf[8..12].copy_from_slice(&self.tx_interval_us.to_be_bytes());
        buf[12..20].copy_from_slice(&self.sequence.to_be_bytes());
    }

    /// The whole keepalive: the header followed by `tag`.
    pub fn to_packet(&self, tag: &[u8; TAG_LEN]) -> [u8; PACKET_LEN] {
        let mut header = [0u8; HEADER_LEN];
        self.emit(&mut header);
        let mut out = [0u8; PACKET_LEN];
        out[..HEADER_LEN].copy_from_slice(&header);
        out[HEADER_LEN..].copy_from_slice(tag);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: [u8; PACKET_LEN] = [
        b'M', b'C', b'G', b'K', 1, 3, 0, 0, // magic, version, detect mult, reserved
        0x00, 0x01, 0x86, 0xa0, // 100000 us
        0, 0, 0, 0, 0, 0, 0x01, 0x02, // sequence 258
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa,
    ];

    fn repr() -> Repr {
        Repr {
            detect_mult: 3,
            tx_interval_us: 100_000,
            admin_down: false,
            sequence: 258,
        }
    }

    #[test]
    fn emits_and_parses_the_golden_bytes() {
        assert_eq!(repr().to_packet(&[0xaa; TAG_LEN]), GOLDEN);
        assert_eq!(Repr::parse(&GOLDEN), Ok((repr(), [0xaa; TAG_LEN])));
        let mut going = GOLDEN;
        going[6] = 1;
        let parsed = Repr::parse(&going).map(|(r, _)| r);
        assert_eq!(parsed.map(|r| r.admin_down), Ok(true));
    }

    #[test]
    fn refuses_what_is_not_a_keepalive() {
        assert_eq!(
            Repr::parse(&GOLDEN[..PACKET_LEN - 1]),
            Err(Error::Truncated)
        );
        let mut long = GOLDEN.to_vec();
        long.push(0);
        assert_eq!(Repr::parse(&long), Err(Error::Malformed));
        for (i, v) in [(0, b'X'), (4, 2), (5, 0), (6, 2), (11, 0)] {
            let mut bad = GOLDEN;
            bad[i] = v;
            if i == 11 {
                bad[8..12].copy_from_slice(&[0; 4]);
            }
            assert_eq!(Repr::parse(&bad), Err(Error::Malformed), "byte {i}");
        }
    }
}
