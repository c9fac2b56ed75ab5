//! The relay's per-packet decision, with no I/O: which attached links get a copy, which
//! remote hosts get a tunnelled one, or why the frame goes nowhere.
//!
//! The driver ([`super`]) receives a batch, calls [`from_link`] or [`from_tunnel`] per
//! frame with the forwarding table it holds, and executes the [`Plan`]. Everything that
//! decides where a packet goes is here, so that it is tested without sockets:
//!
//! - the frame is checked with `mcgate-wire`'s views ([`inspect`](crate::inspect));
//! - a domain that allows only registered sources forwards nothing else (RFC 3376's
//!   source filters are applied per remote host and per link);
//! - link-local groups (224.0.0.0/24, RFC 5771) and IPv6 groups of scope 0 to 2
//!   (ff02::/16 and below, RFC 4291 section 2.7) never cross hosts;
//! - a tunnelled copy must fit the underlay MTU once encapsulated (never fragmented);
//!   the frame's length counts its own IPv4 or IPv6 header (40 bytes for IPv6);
//! - the tunnel accepts RFC 7348 VXLAN with the I flag, from the domain's peers only:
//!   for `tunnel = "wireguard"` domains only inside WireGuard, from the tunnel address
//!   of the peer whose key authenticated it; for `tunnel = "vxlan"` only in the clear,
//!   from a peer's underlay address;
//! - no loops: a captured frame is never delivered back to its own link, and a
//!   tunnelled one is never sent back into the tunnel.

use std::net::{Ipv4Addr, SocketAddrV4};

use mcgate_domain::api::Tunnel;
use mcgate_domain::forwarding::{DomainTable, ForwardingTable, Verdict, is_link_scope};
use mcgate_sys::packet::{VNET_HDR_LEN, VnetHdr};
use mcgate_wire::vxlan;

use crate::counters::DropReason;
use crate::inspect::{McastFrame, inspect};

/// Outer IPv4 (20) + UDP (8) + VXLAN (8) bytes added to each inner frame.
pub const ENCAP_OVERHEAD: usize = 20 + 8 + vxlan::HEADER_LEN;
/// What WireGuard adds on top: the inner IPv4 + UDP headers (28) and the transport
/// message's header and tag (32).
pub const WIREGUARD_OVERHEAD: usize =
    ENCAP_OVERHEAD + super::inner::INNER_HEADER_LEN + super::wg::WG_OVERHEAD;

/// One tunnelled copy: the domain's VNI and the remote host's VXLAN endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelCopy {
    /// VXLAN network identifier of the domain (RFC 7348 section 5).
    pub vni: u32,
    /// The remote host's underlay address and UDP port.
    pub dst: SocketAddrV4,
    /// For a WireGuard domain: the inner packet's source (this host's tunnel address)
    /// and destination (the remote host's); `None`: plain VXLAN to `dst`.
    pub inner: Option<(Ipv4Addr, Ipv4Addr)>,
}

/// How a tunnelled packet arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Plain VXLAN from this outer source address (`None`: unknown).
    Underlay(Option<Ipv4Addr>),
    /// Inside WireGuard, authenticated as the peer with this tunnel address.
    Wireguard(Ipv4Addr),
}

/// Whether `via` is how domain `d` accepts traffic, from one of its peers.
fn accepts(d: &DomainTable, via: Via) -> Result<(), DropReason> {
    match (d.tunnel, via) {
        (Tunnel::Vxlan, Via::Underlay(peer)) => peer
            .filter(|ip| d.peers.contains(ip))
            .map(|_| ())
            .ok_or(DropReason::UnknownPeer),
        (Tunnel::Wireguard, Via::Wireguard(addr)) => d
            .tunnel_peers
            .iter()
            .any(|p| p.tunnel_address == addr)
            .then_some(())
            .ok_or(DropReason::UnknownPeer),
        (Tunnel::Wireguard, Via::Underlay(_)) => Err(DropReason::Unencrypted),
        (Tunnel::Vxlan, Via::Wireguard(_)) => Err(DropReason::TunnelMismatch),
    }
}

/// What to do with one frame. Reused from frame to frame: [`Plan::clear`] keeps the
/// vectors' capacity, so the per-packet path does not allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Tunnelled copies, in domain then host order.
    pub tunnel: Vec<TunnelCopy>,
    /// Local deliveries: indices into the attached links, each at most once.
    pub deliver: Vec<usize>,
    /// Tunnelled copies not sent because they would exceed the underlay MTU.
    pub too_big: u64,
    /// Copies for WireGuard peers not sent because the peer (or this host) has no key
    /// or tunnel address yet.
    pub unencryptable: u64,
    /// Why the frame reached nobody (`None` when a copy went out, or when every
    /// copy was too big, which `too_big` counts).
    pub dropped: Option<DropReason>,
}

impl Plan {
    /// Empties the plan, keeping its storage.
    pub fn clear(&mut self) {
        self.tunnel.clear();
        self.deliver.clear();
        self.too_big = 0;
        self.unencryptable = 0;
        self.dropped = None;
    }

    fn copies(&self) -> usize {
        self.tunnel.len() + self.deliver.len()
    }

    fn deliver_once(&mut self, link: usize) {
        if !self.deliver.contains(&link) {
            self.deliver.push(link);
        }
    }
}

/// Checks a frame captured on a task link: the `virtio_net_hdr` the capture socket puts
/// first, then the frame after it. `truncated`: the frame was longer than the receive
/// slot. Returns the header (for checksum completion) and the multicast frame.
pub fn parse_capture(bytes: &[u8], truncated: bool) -> Result<(VnetHdr, McastFrame), DropReason> {
    let vnet = VnetHdr::parse(bytes).ok_or(DropReason::Malformed)?;
    if truncated {
        return Err(DropReason::Truncated);
    }
    // A segmentation-offload super-packet: larger than any MTU on the way.
    if vnet.gso_type != 0 {
        return Err(DropReason::TooBig);
    }
    let frame = bytes.get(VNET_HDR_LEN..).unwrap_or(&[]);
    Ok((vnet, inspect(frame)?))
}

/// Plans a frame `m` that a local task sent on attached link `ingress`: one tunnelled
/// copy per remote host whose filter admits the source (none for link-local groups),
/// one local copy per other attached link whose filter admits it, over every domain of
/// the host. `link_index` maps a link name to its index among the attached links
/// (`None`: not attached). `mtu` is the underlay MTU.
pub fn from_link(
    table: &ForwardingTable,
    link_index: &dyn Fn(&str) -> Option<usize>,
    ingress: usize,
    m: &McastFrame,
    mtu: usize,
    plan: &mut Plan,
) {
    plan.clear();
    if table.domains().is_empty() {
        plan.dropped = Some(DropReason::NoDomain);
        return;
    }
    let link_local = is_link_scope(m.group);
    let (group, source) = (m.group, m.source);
    let mut refused = false;
    for d in table.domains() {
        if d.check_source(group, source) != Verdict::Forward {
            refused = true;
            continue;
        }
        let Some(route) = d.route(group) else {
            continue;
        };
        if !link_local {
            let overhead = match d.tunnel {
                Tunnel::Vxlan => ENCAP_OVERHEAD,
                Tunnel::Wireguard => WIREGUARD_OVERHEAD,
            };
            for r in route.remotes.iter().filter(|r| r.filter.allows(source)) {
                let copy = match (d.tunnel, d.tunnel_address) {
                    (Tunnel::Vxlan, _) => TunnelCopy {
                        vni: d.vni,
                        dst: r.underlay,
                        inner: None,
                    },
                    (Tunnel::Wireguard, Some(local))
                        if !r.public_key.is_empty() && !r.tunnel_address.is_unspecified() =>
                    {
                        TunnelCopy {
                            vni: d.vni,
                            dst: r.wireguard,
                            inner: Some((local, r.tunnel_address)),
                        }
                    }
                    // No key or tunnel address yet (an agent of an older version, or
                    // before the controller assigned one): never in the clear.
                    (Tunnel::Wireguard, _) => {
                        plan.unencryptable += 1;
                        continue;
                    }
                };
                if m.len + overhead > mtu {
                    plan.too_big += 1;
                } else {
                    plan.tunnel.push(copy);
                }
            }
        }
        for l in route.locals.iter().filter(|l| l.filter.allows(source)) {
            match link_index(&l.link) {
                Some(out) if out != ingress => plan.deliver_once(out),
                _ => {}
            }
        }
    }
    if plan.copies() == 0 && plan.too_big == 0 && plan.unencryptable == 0 {
        plan.dropped = Some(if refused {
            DropReason::SourceNotAllowed
        } else {
            DropReason::NoMembers
        });
    }
}

/// A VXLAN datagram that passed the tunnel's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnelled {
    /// Its VNI.
    pub vni: u32,
    /// The inner frame; it starts [`vxlan::HEADER_LEN`] bytes into the datagram.
    pub frame: McastFrame,
}

/// Plans a VXLAN datagram (the UDP payload) that arrived `via` the underlay or
/// WireGuard: accepted only with the I flag (RFC 7348 section 5), a VNI of one of the
/// host's domains, the way that domain tunnels and a sender among that domain's peers
/// (its underlay address, or the tunnel address its key is bound to); the inner frame is delivered
/// unchanged to the attached links whose filter admits its source, never to the tunnel.
/// `Err` is a drop before the inner frame is known; a drop after it is
/// [`Plan::dropped`].
pub fn from_tunnel(
    table: &ForwardingTable,
    link_index: &dyn Fn(&str) -> Option<usize>,
    via: Via,
    datagram: &[u8],
    plan: &mut Plan,
) -> Result<Tunnelled, DropReason> {
    plan.clear();
    let header = vxlan::Header::new_checked(datagram).map_err(|_| DropReason::Malformed)?;
    if !header.has_valid_flags() {
        return Err(DropReason::BadVxlan);
    }
    let vni = header.vni();
    let d = table.by_vni(vni).ok_or(DropReason::NoDomain)?;
    accepts(d, via)?;
    let frame = inspect(header.payload())?;
    let done = Tunnelled { vni, frame };
    if is_link_scope(frame.group) {
        plan.dropped = Some(DropReason::LinkLocal);
        return Ok(done);
    }
    let (group, source) = (frame.group, frame.source);
    if d.check_source(group, source) != Verdict::Forward {
        plan.dropped = Some(DropReason::SourceNotAllowed);
        return Ok(done);
    }
    if let Some(route) = d.route(group) {
        for l in route.locals.iter().filter(|l| l.filter.allows(source)) {
            if let Some(out) = link_index(&l.link) {
                plan.deliver_once(out);
            }
        }
    }
    if plan.copies() == 0 {
        plan.dropped = Some(DropReason::NoMembers);
    }
    Ok(done)
}

/// Offset of the IPv4 header in the Ethernet frames the relay forwards (inspected as
/// Ethernet II without a VLAN tag). Egress is IPv4 only: the upstream network speaks
/// IGMP, and an IPv6 frame never leaves on an upstream interface.
const IP_AT: usize = 14;

/// The copy of `frame` (an inspected multicast frame, `len` bytes) that leaves on the
/// upstream interface: a routed hop (RFC 1812 section 5.3.1), so its TTL is decremented
/// and its header checksum updated incrementally (RFC 1624 eqn. 3); a packet whose TTL
/// is 1 or less is not forwarded ([`DropReason::TtlExpired`]).
pub fn egress_copy(frame: &[u8], len: usize) -> Result<Vec<u8>, DropReason> {
    let frame = frame.get(..len).ok_or(DropReason::Malformed)?;
    let ttl = *frame.get(IP_AT + 8).ok_or(DropReason::Malformed)?;
    if ttl <= 1 {
        return Err(DropReason::TtlExpired);
    }
    let mut out = frame.to_vec();
    let word = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let old = word(&out, IP_AT + 8);
    out[IP_AT + 8] = ttl - 1;
    let new = word(&out, IP_AT + 8);
    let check = word(&out, IP_AT + 10);
    // HC' = ~(~HC + ~m + m'), in one's complement arithmetic.
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let check = !(sum as u16);
    out[IP_AT + 10..IP_AT + 12].copy_from_slice(&check.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
