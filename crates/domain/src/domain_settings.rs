//! A domain's settings that every layer names: how its traffic crosses between hosts
//! ([`Tunnel`]), which IGMP version its querier speaks ([`IgmpMode`]) and the UDP ports
//! of both tunnels. Re-exported by [`crate::api`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The VXLAN UDP port (RFC 7348 section 5, IANA).
pub const VXLAN_PORT: u16 = 4789;

/// The WireGuard UDP port hosts listen on unless told otherwise (the protocol's usual
/// port; `wg(8)`).
pub const WIREGUARD_PORT: u16 = 51820;

/// How a domain's traffic crosses between hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tunnel {
    /// VXLAN inside WireGuard (Noise IK, ChaCha20-Poly1305): authenticated and
    /// encrypted between the hosts' own key pairs. The inner packet is IPv4/UDP from the
    /// sender's tunnel address to the receiver's, port 4789, carrying the VXLAN packet.
    #[default]
    Wireguard,
    /// Plain VXLAN (RFC 7348) on the underlay, for interop with VXLAN equipment;
    /// accepted only from the domain's peers' underlay addresses.
    Vxlan,
}

impl Tunnel {
    /// The name used in the API, topology files and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Tunnel::Wireguard => "wireguard",
            Tunnel::Vxlan => "vxlan",
        }
    }
}

/// How a domain learns its members (RFC 2236, RFC 3376).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IgmpMode {
    /// The querier speaks IGMPv2 (like the reference gateway).
    #[default]
    V2,
    /// The querier speaks IGMPv3; older hosts fall back per RFC 3376 section 7.
    V3,
    /// No IGMP: static members only.
    Off,
}

impl IgmpMode {
    /// The version the querier speaks, or `None` with IGMP off.
    pub fn version(self) -> Option<mcgate_wire::Version> {
        match self {
            IgmpMode::V2 => Some(mcgate_wire::Version::V2),
            IgmpMode::V3 => Some(mcgate_wire::Version::V3),
            IgmpMode::Off => None,
        }
    }
}
