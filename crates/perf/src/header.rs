//! iperf 2's UDP datagram header, so that iperf 2 and mcgate measure each other.
//!
//! iperf 2.1 (`include/payloads.h`, `struct UDP_datagram` then `struct client_hdr_v1`)
//! starts every UDP payload with, all in network byte order:
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `id` (u32) | low 32 bits of the sequence number |
//! | 4 | `tv_sec` (u32) | send time, seconds since the Unix epoch |
//! | 8 | `tv_usec` (u32) | send time, microseconds |
//! | 12 | `id2` (u32) | high 32 bits of the sequence number |
//! | 16 | `flags` (u32) | test settings; `HEADER_SEQNO64B` says `id2` is meaningful |
//!
//! Sequence numbers start at 1. The sender ends a stream with one datagram whose sequence
//! number is the negated next number (`-(last + 1)`), the FIN; a multicast sender does not
//! wait for an acknowledgement. A sender that does not set `HEADER_SEQNO64B` (iperf before
//! 2.0.10) has a signed 32-bit sequence number in `id` alone.
//!
//! mcgate sends `flags = HEADER_SEQNO64B` and zeros for every other setting, which an
//! iperf 2 receiver reads as "no test exchange, 64-bit sequence numbers".

/// `HEADER_SEQNO64B`: `id2` carries the high half of a 64-bit sequence number.
pub const HEADER_SEQNO64B: u32 = 0x0800_0000;

/// The smallest payload mcgate sends: sequence number, timestamp, high sequence, flags.
pub const MIN_SEND_LEN: usize = 20;

/// The smallest payload mcgate can read a sequence number and a timestamp from.
pub const MIN_PARSE_LEN: usize = 12;

/// The largest UDP payload over IPv4.
pub const MAX_LEN: usize = 65_507;

/// What one datagram's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Sequence number; negative for the end-of-stream marker (FIN).
    pub seq: i64,
    /// Send time, seconds since the Unix epoch.
    pub tv_sec: u32,
    /// Send time, microseconds within the second.
    pub tv_usec: u32,
}

impl Header {
    /// Send time in microseconds since the Unix epoch.
    pub fn sent_us(&self) -> i64 {
        i64::from(self.tv_sec) * 1_000_000 + i64::from(self.tv_usec)
    }
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the header at the start of a UDP payload; `None` when it is too short to hold one.
pub fn parse(data: &[u8]) -> Option<Header> {
    let id = be32(data, 0)?;
    let tv_sec = be32(data, 4)?;
    let tv_usec = be32(data, 8)?;
    let wide = be32(data, 16).is_some_and(|f| f & HEADER_SEQNO64B != 0);
    let seq = match (wide, be32(data, 12)) {
        (true, Some(id2)) => ((u64::from(id2) << 32) | u64::from(id)) as i64,
        _ => i64::from(id as i32),
    };
    Some(Header {
        seq,
        tv_sec,
        tv_usec,
    })
}

/// Prepares a payload buffer once: zeros, then the flags word. `buf` must be at least
/// [`MIN_SEND_LEN`] bytes long (the caller checks `--len`).
pub fn init_payload(buf: &mut [u8]) {
    buf.fill(0);
    if let Some(flags) = buf.get_mut(16..20) {
        flags.copy_from_slice(&HEADER_SEQNO64B.to_be_bytes());
    }
}

/// Writes the per-datagram fields (sequence number and send time) into a payload prepared
/// with [`init_payload`].
pub fn write(buf: &mut [u8], seq: i64, tv_sec: u32, tv_usec: u32) {
    let seq = seq as u64;
    let fields = [seq as u32, tv_sec, tv_usec, (seq >> 32) as u32];
    for (i, v) in fields.iter().enumerate() {
        if let Some(dst) = buf.get_mut(i * 4..i * 4 + 4) {
            dst.copy_from_slice(&v.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 20 bytes of a datagram sent by iperf 2.1.8 (`iperf -c 233.252.0.5 -u
    /// -b 10k -l 100`), captured with tcpdump: id 1, a timestamp, id2 0, and flags
    /// 0x48010098 (HEADER_EXTEND | HEADER_SEQNO64B | HEADER_LEN_BIT, length 152).
    const IPERF_2_1_8: [u8; 20] = [
        0x00, 0x00, 0x00, 0x01, 0x6b, 0x07, 0xe9, 0xd6, 0x00, 0x06, 0x30, 0x4a, 0x00, 0x00, 0x00,
        0x00, 0x48, 0x01, 0x00, 0x98,
    ];

    #[test]
    fn reads_iperf_2_1_8_datagram() {
        let h = parse(&IPERF_2_1_8).unwrap();
        assert_eq!(h.seq, 1);
        assert_eq!(h.tv_sec, 0x6b07_e9d6);
        assert_eq!(h.tv_usec, 0x0006_304a);
    }

    #[test]
    fn reads_iperf_fin_in_both_widths() {
        // 64-bit: id2 = 0xffffffff, id = -16 low half.
        let mut b = IPERF_2_1_8;
        b[0..4].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        b[12..16].copy_from_slice(&0xffff_ffffu32.to_be_bytes());
        assert_eq!(parse(&b).unwrap().seq, -16);
        // 32-bit (no HEADER_SEQNO64B): id alone is signed.
        b[16..20].copy_from_slice(&0u32.to_be_bytes());
        b[12..16].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(parse(&b).unwrap().seq, -16);
        // Only 12 bytes: still readable as the 32-bit form.
        assert_eq!(parse(&b[..12]).unwrap().seq, -16);
    }

    #[test]
    fn any_bytes_parse_without_panic() {
        let mut x: u32 = 12345;
        for len in 0..64 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let h = parse(&buf);
            assert_eq!(h.is_some(), len >= MIN_PARSE_LEN);
            if let Some(h) = h {
                let _ = h.sent_us();
            }
        }
    }

    #[test]
    fn short_payload_is_not_a_header() {
        assert_eq!(parse(&[0; 11]), None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn written_header_is_iperf_layout_and_round_trips() {
        let mut buf = [0xaau8; 32];
        init_payload(&mut buf);
        write(&mut buf, 0x1_0000_0002, 0x6b07_e9d6, 999_999);
        assert_eq!(
            &buf[..20],
            &[
                0, 0, 0, 2, 0x6b, 0x07, 0xe9, 0xd6, 0x00, 0x0f, 0x42, 0x3f, 0, 0, 0, 1, 0x08, 0, 0,
                0
            ]
        );
        assert!(buf[20..].iter().all(|&b| b == 0));
        let h = parse(&buf).unwrap();
        assert_eq!(h.seq, 0x1_0000_0002);
        assert_eq!(h.sent_us(), 0x6b07_e9d6 * 1_000_000 + 999_999);
        write(&mut buf, -5, 1, 2);
        assert_eq!(parse(&buf).unwrap().seq, -5);
    }
}
