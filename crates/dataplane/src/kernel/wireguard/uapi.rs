//! WireGuard's cross-platform configuration protocol ("UAPI", wireguard.com/xplatform):
//! the text a userspace WireGuard device (wireguard-go, boringtun) is configured with.
//! Pure: builds `set=1` requests and reads the `errno=N` answer; no I/O.
//!
//! A request is `set=1`, then `key=value` lines, then an empty line. Keys are hex.
//! Each peer section starts with `public_key=`; a section with `remove=true` deletes the
//! peer. The device answers `errno=0` (or the failing errno) and an empty line.

use std::fmt::Write as _;

use super::{Key, WgPeer};

/// Persistent keepalive, in seconds (WireGuard's usual 25): sessions stay established
/// while a domain is idle, so the first packets of a flow never wait for a handshake.
pub const KEEPALIVE_S: u16 = 25;

/// One change to the device's peers, in the order it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    /// Remove the peer with this public key (its sessions go with it).
    Remove(Key),
    /// Add the peer or update its endpoint; its allowed IPs become exactly its tunnel
    /// address (/32).
    Set(WgPeer),
}

/// Lowercase hex, as the protocol wants keys.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `set=1` with the device's private key and UDP port, replacing every peer (start).
pub fn set_interface(private_key: &Key, listen_port: u16) -> String {
    format!(
        "set=1\nprivate_key={}\nlisten_port={listen_port}\nreplace_peers=true\n\n",
        hex(&private_key.0)
    )
}

/// `set=1` applying `changes` in one request: the device applies it under one lock, so
/// a rotated key (the new peer added with the same allowed IP, the old one removed)
/// never leaves a moment without a route for the peer's tunnel address.
///
/// Additions go first, removals last: boringtun carries a section's `remove=true` over
/// to the sections after it, so a peer set after a removal would be removed too.
/// Every addition names all its fields, so nothing else carries over into it.
pub fn set_peers(changes: &[PeerChange]) -> String {
    let mut s = String::from("set=1\n");
    let sets = changes.iter().filter_map(|c| match c {
        PeerChange::Set(p) => Some(p),
        PeerChange::Remove(_) => None,
    });
    for p in sets {
        let _ = write!(
            s,
            "public_key={}\nendpoint={}\npersistent_keepalive_interval={KEEPALIVE_S}\n\
             replace_allowed_ips=true\nallowed_ip={}/32\n",
            hex(&p.public_key.0),
            p.endpoint,
            p.tunnel_address
        );
    }
    for c in changes {
        if let PeerChange::Remove(k) = c {
            let _ = write!(s, "public_key={}\nremove=true\n", hex(&k.0));
        }
    }
    s.push('\n');
    s
}

/// The errno in the device's answer: `Ok(0)` is success. Untrusted text: anything but
/// one `errno=<integer>` line is an error, never a panic.
pub fn parse_answer(answer: &str) -> Result<i32, String> {
    let mut errno = None;
    for line in answer.lines() {
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("errno=") {
            let n = v
                .trim()
                .parse::<i32>()
                .map_err(|_| format!("bad errno value {v:?}"))?;
            errno = Some(n);
        }
    }
    errno.ok_or_else(|| "the answer has no errno line".to_string())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use super::*;

    fn peer(b: u8) -> WgPeer {
        WgPeer {
            public_key: Key([b; 32]),
            endpoint: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, b), 51820),
            tunnel_address: Ipv4Addr::new(10, 255, 0, b),
        }
    }

    #[test]
    fn requests_are_the_documented_text() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        let s = set_interface(&Key([1; 32]), 51820);
        assert_eq!(
            s,
            format!(
                "set=1\nprivate_key={}\nlisten_port=51820\nreplace_peers=true\n\n",
                "01".repeat(32)
            )
        );
        let s = set_peers(&[PeerChange::Remove(Key([2; 32])), PeerChange::Set(peer(3))]);
        assert_eq!(
            s,
            format!(
                "set=1\npublic_key={}\nendpoint=10.0.0.3:51820\npersistent_keepalive_interval=25\n\
                 replace_allowed_ips=true\nallowed_ip=10.255.0.3/32\npublic_key={}\nremove=true\n\n",
                "03".repeat(32),
                "02".repeat(32)
            )
        );
    }

    #[test]
    fn answers_parse_or_fail_clearly() {
        assert_eq!(parse_answer("errno=0\n\n"), Ok(0));
        assert_eq!(parse_answer("errno=22\n\n"), Ok(22));
        assert!(parse_answer("").is_err());
        assert!(parse_answer("errno=x\n").is_err());
        assert!(parse_answer("\nerrno=0\n").is_err());
    }
}
