//! The kernel data plane's WireGuard tunnel: each domain whose tunnel is `wireguard`
//! sends its VXLAN through one WireGuard device per host, so the underlay carries only
//! WireGuard messages (Noise IK, ChaCha20-Poly1305) between the domain's hosts.
//!
//! The device (`mcgwg0`) is the kernel's own `wireguard` link where the kernel has the
//! module, otherwise a userspace WireGuard TUN device run inside the agent by boringtun,
//! as wireguard-go does on such kernels ([`probe`] says which and why). Either way:
//! - the device holds the host's tunnel address (`/32`) and the route to the tunnel
//!   address pool; the domain's VXLAN device uses the tunnel address as its local
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

use ipnet::Ipv4Net;

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
pub const WG_OVERHEAD: usize = 60;
/// The tunnel address pool unless configured otherwise.
pub const DEFAULT_POOL: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 255, 0, 0), 16);

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
    /// The tunnel address pool, routed through the device.
    pub pool: Ipv4Net,
}

/// How a domain's VXLAN crosses the underlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum TunnelMode {
    /// Inside WireGuard (the default).
    #[default]
    Wireguard,
    /// Plain VXLAN, accepted only from the domain's peers' underlay addresses.
    Vxlan,
}

/// What the forwarding table says about the tunnels: per domain its mode, per peer
/// (by underlay address) its WireGuard identity, and this host's tunnel address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelView {
    /// This host's tunnel address, once the controller assigned one.
    pub local: Option<Ipv4Addr>,
    /// Per VNI; a domain not listed uses `default`.
    pub modes: BTreeMap<u32, TunnelMode>,
    /// The mode of a domain not in `modes`.
    pub default: TunnelMode,
    /// Per underlay address.
    pub peers: BTreeMap<Ipv4Addr, WgPeer>,
}

impl TunnelView {
    /// What a plane assumes before it is told anything about tunnels: plain VXLAN for
    /// every domain (the forwarding state named no tunnel, no key, no address).
    pub fn untold() -> Self {
        Self {
            default: TunnelMode::Vxlan,
            ..Self::default()
        }
    }

    /// The mode of domain `vni`.
    pub fn mode(&self, vni: u32) -> TunnelMode {
        self.modes.get(&vni).copied().unwrap_or(self.default)
    }
}
