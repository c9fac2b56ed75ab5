//! `--rate`: how fast the sender goes, in bits or packets per second.

use std::time::Duration;

/// A sending rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// UDP payload bits per second (what iperf 2's `-b` means).
    Bits(f64),
    /// Datagrams per second.
    Packets(f64),
}

/// Parses `10k`, `1m`, `2.5g`, `100000` (bits per second, decimal SI suffixes) or
/// `50kpps`, `1000pps` (datagrams per second). `None` when it does not parse or is not a
/// positive finite number.
pub fn parse(text: &str) -> Option<Rate> {
    let t = text.trim().to_ascii_lowercase();
    let (body, pps) = match t.strip_suffix("pps") {
        Some(b) => (b, true),
        None => (t.strip_suffix("bps").unwrap_or(&t), false),
    };
    let (num, mult) = match body.chars().last()? {
        'k' => (&body[..body.len() - 1], 1e3),
        'm' => (&body[..body.len() - 1], 1e6),
        'g' => (&body[..body.len() - 1], 1e9),
        't' => (&body[..body.len() - 1], 1e12),
        _ => (body, 1.0),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let v = num.parse::<f64>().ok()? * mult;
    if !v.is_finite() || v <= 0.0 {
        return None;
    }
    Some(if pps { Rate::Packets(v) } else { Rate::Bits(v) })
}

impl Rate {
    /// Datagrams per second for datagrams of `len` payload bytes.
    pub fn packets_per_second(&self, len: usize) -> f64 {
        match *self {
            Rate::Bits(b) => b / (len.max(1) as f64 * 8.0),
            Rate::Packets(p) => p,
        }
    }

    /// Time between two datagrams of `len` bytes.
    pub fn gap(&self, len: usize) -> Duration {
        Duration::from_secs_f64(1.0 / self.packets_per_second(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("10k"), Some(Rate::Bits(10e3)));
        assert_eq!(parse("1m"), Some(Rate::Bits(1e6)));
        assert_eq!(parse("2.5g"), Some(Rate::Bits(2.5e9)));
        assert_eq!(parse("2.5G"), Some(Rate::Bits(2.5e9)));
        assert_eq!(parse("100000"), Some(Rate::Bits(1e5)));
        assert_eq!(parse("50kpps"), Some(Rate::Packets(50e3)));
        assert_eq!(parse("1000pps"), Some(Rate::Packets(1000.0)));
        assert_eq!(parse("10mbps"), Some(Rate::Bits(1e7)));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "", "k", "fast", "-1m", "0", "1x", "1.2.3k", "pps", "1e9", "nan",
        ] {
            assert_eq!(parse(bad), None, "{bad:?} parsed");
        }
    }

    #[test]
    fn ten_kbit_at_1470_bytes_is_one_datagram_every_1_176_s() {
        let gap = parse("10k").unwrap().gap(1470);
        assert!((gap.as_secs_f64() - 1.176).abs() < 1e-9, "{gap:?}");
        assert_eq!(parse("50kpps").unwrap().gap(64), Duration::from_micros(20));
    }
}
