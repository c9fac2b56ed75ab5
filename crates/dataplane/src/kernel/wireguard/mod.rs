//! The kernel data plane's WireGuard tunnel: each domain whose tunnel is `wireguard`
//! sends its VXLAN through one WireGuard device per host, so the underlay carries only
//! WireGuard messages (Noise IK, ChaCha20-Poly1305) between the domain's hosts.
//!
//! The device (`mcgwg0`) is the kernel's own `wireguard` link where the kernel has the
//! module, otherwise a userspace WireGuard TUN device run inside the agent by boringtun,
//! as wireguard-go does on such kernels ([`probe`] says which and why). Either way:
//! - the device holds the host's tunnel address (`/32`) and a `/32` route to each
//!   peer's; the domain's VXLAN device uses the tunnel address as its local
//!   address and its MDB entries name the peers' tunnel addresses, so every VXLAN packet
//!   is routed into the device;
//! - each peer is (public key, endpoint, allowed IPs = its tunnel address/32): what the
//!   device decrypts carries a peer's tunnel address as source, or is dropped by
//!   WireGuard itself (cryptokey routing, WireGuard paper section 2);
//! - a peer whose key changes is replaced by the new key in one
//!   configuration request (see [`uapi::set_peers`]): packets sent meanwhile wait in the
//!   new session's queue until its handshake completes, so established flows go on.
//!
//! MTU: WireGuard over IPv4 adds 60 bytes (IPv4 20, UDP 8, message header 16, Poly1305
//! tag 16). The device gets underlay MTU - 60 and the VXLAN devices riding on it
//! underlay MTU - 60 - 50 = underlay MTU - 110 ([`WG_OVERHEAD`]).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use mcgate_domain::forwarding::ForwardingTable;
use mcgate_domain::keys::decode_key;

mod device;
mod probe;
pub mod uapi;

pub use device::WgDevice;
pub use probe::{WireguardKind, WireguardSupport, probe};

/// The WireGuard device's name.
pub const DEVICE: &str = "mcgwg0";
/// WireGuard's UDP port unless configured otherwise.
pub const DEFAULT_PORT: u16 = 51820;
/// Bytes WireGuard adds around each packet over IPv4: IPv4 (20) + UDP (8) + transport
/// message header (16) + Poly1305 tag (16).
pub const WG_OVERHEAD: usize = 20 + 8 + crate::relay::wg::WG_OVERHEAD;

/// A Curve25519 key (public or private), 32 bytes. `Debug` never prints it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// One WireGuard peer: another host of a domain whose tunnel is `wireguard`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WgPeer {
    /// Its public key.
    pub public_key: Key,
    /// Where its WireGuard device listens (underlay address, UDP port).
    pub endpoint: SocketAddrV4,
    /// Its tunnel address: the only source its packets may carry.
    pub tunnel_address: Ipv4Addr,
}

/// This host's WireGuard identity (from the agent's state directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireguardHost {
    /// The private key; never leaves the host.
    pub private_key: Key,
    /// UDP port the device listens on.
    pub listen_port: u16,
}

/// How a domain's VXLAN crosses the underlay (the domain's `tunnel` setting).
pub use mcgate_domain::api::Tunnel as TunnelMode;

/// What the forwarding table says about the tunnels: per domain its mode, per peer
/// (by underlay address) its WireGuard identity, and this host's tunnel address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelView {
    /// This host's tunnel address, once the controller assigned one.
    pub local: Option<Ipv4Addr>,
    /// Per VNI.
    pub modes: BTreeMap<u32, TunnelMode>,
    /// Per underlay address; peers without a valid public key are left out.
    pub peers: BTreeMap<Ipv4Addr, WgPeer>,
}

impl TunnelView {
    /// The view of `table`. Pure.
    pub fn from_table(table: &ForwardingTable) -> Self {
        let mut v = Self::default();
        for d in table.domains() {
            v.modes.insert(d.vni, d.tunnel);
            v.local = v.local.or(d.tunnel_address);
            for p in &d.tunnel_peers {
                let Some(key) = decode_key(&p.public_key) else {
                    continue;
                };
                v.peers.insert(
                    *p.underlay.ip(),
                    WgPeer {
                        public_key: Key(key),
                        endpoint: p.wireguard,
                        tunnel_address: p.tunnel_address,
                    },
                );
            }
        }
        v
    }

    /// The mode of domain `vni` (the default, WireGuard, for a domain not in the table).
    pub fn mode(&self, vni: u32) -> TunnelMode {
        self.modes.get(&vni).copied().unwrap_or_default()
    }
}
