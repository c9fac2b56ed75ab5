//! Checks a received IPv4 or IPv6 packet before its IGMP or MLD message reaches the
//! state machine.

use core::net::{Ipv4Addr, Ipv6Addr};

use mcgate_wire::icmpv6::msg_type;
use mcgate_wire::igmp::IgmpRepr;
use mcgate_wire::ipv4::{PROTOCOL_IGMP, Packet};
use mcgate_wire::ipv6;
use mcgate_wire::mld::MldRepr;

use crate::stats::Dropped;

/// Why a packet was dropped before the state machine saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject<A> {
    BadIp,
    NotIgmp,
    BadTtl,
    NoRouterAlert,
    /// An MLD message from a source other than a link-local address (`::` included).
    BadSource,
    /// A router-only message type; `A` is its IP source.
    RouterOnly(A),
    /// The IGMP or MLD message is bad; `A` is the packet's IP source.
    Message(mcgate_wire::Error, A),
}

impl<A> Reject<A> {
    /// Counts the drop under its reason. On a link without other routers, router-only
    /// message types are counted as such rather than as unknown, and their sender is
    /// returned.
    pub(crate) fn count(self, d: &mut Dropped, other_queriers: bool) -> Option<A> {
        use mcgate_wire::Error;
        let counter = match self {
            Reject::RouterOnly(src) if !other_queriers => {
                d.router_message += 1;
                return Some(src);
            }
            Reject::BadIp => &mut d.bad_ip,
            Reject::NotIgmp => &mut d.not_igmp,
            Reject::BadTtl => &mut d.bad_ttl,
            Reject::NoRouterAlert => &mut d.no_router_alert,
            Reject::BadSource => &mut d.bad_source,
            Reject::Message(Error::Truncated, _) => &mut d.truncated,
            Reject::Message(Error::Checksum, _) => &mut d.checksum,
            Reject::Message(Error::UnknownType(_), _) | Reject::RouterOnly(_) => {
                &mut d.unknown_type
            }
            Reject::Message(Error::Malformed | Error::Overrun, _) => &mut d.malformed,
        };
        *counter += 1;
        None
    }
}

/// IGMP types only routers send: DVMRP (0x13), PIMv1 (0x14), mtrace response and query
/// (0x1e, 0x1f), Multicast Router Advertisement and Termination (RFC 4286: 0x30, 0x32).
fn is_router_only(t: u8) -> bool {
    matches!(t, 0x13 | 0x14 | 0x1e | 0x1f | 0x30 | 0x32)
}

/// ICMPv6 types only routers send: Multicast Router Advertisement and Termination
/// (RFC 4286: 151, 153).
fn is_mld_router_only(t: u8) -> bool {
    matches!(t, 151 | 153)
}

/// A packet that passed the IP-level checks.
pub(crate) struct Accepted<A, M> {
    pub(crate) src: A,
    pub(crate) dst: A,
    pub(crate) message: M,
}

/// IP-level checks of RFC 3376 section 4 and 9.1 and RFC 2236 section 2.
pub(crate) fn check(bytes: &[u8]) -> Result<Accepted<Ipv4Addr, IgmpRepr>, Reject<Ipv4Addr>> {
    let ip = Packet::new_checked(bytes).map_err(|_| Reject::BadIp)?;
    // IGMP messages are never fragmented; a fragment or a corrupt header is not one.
    if !ip.verify_checksum() || ip.is_fragment() {
        return Err(Reject::BadIp);
    }
    if ip.protocol() != PROTOCOL_IGMP {
        return Err(Reject::NotIgmp);
    }
    // Every IGMP message is sent with TTL 1; anything else was routed here.
    if ip.ttl() != 1 {
        return Err(Reject::BadTtl);
    }
    let src = ip.src_addr();
    let message = IgmpRepr::parse(ip.payload()).map_err(|e| match e {
        mcgate_wire::Error::UnknownType(t) if is_router_only(t) => Reject::RouterOnly(src),
        e => Reject::Message(e, src),
    })?;
    // RFC 3376 9.1: reports without Router Alert are ignored, as a defence against
    // forged ones. IGMPv1 messages and queries predate the option or are accepted
    // without it for interoperability.
    let needs_alert = matches!(
        message,
        IgmpRepr::ReportV2 { .. } | IgmpRepr::LeaveV2 { .. } | IgmpRepr::ReportV3 { .. }
    );
    if needs_alert && !ip.has_router_alert() {
        return Err(Reject::NoRouterAlert);
    }
    Ok(Accepted {
        src,
        dst: ip.dst_addr(),
        message,
    })
}

/// IP-level checks of an MLD message (RFC 3810 sections 5 and 7.4, RFC 2710 section
/// 3): the extension headers must walk to ICMPv6 with an MLD type, the Hop Limit be 1,
/// a Hop-by-Hop Router Alert with value 0 be present (every MLD message carries it:
/// MLD has no version before the option), the ICMPv6 checksum verify, and the source
/// be link-local (a router acts on no report from `::`).
pub(crate) fn check_mld(bytes: &[u8]) -> Result<Accepted<Ipv6Addr, MldRepr>, Reject<Ipv6Addr>> {
    let ip = ipv6::Packet::new_checked(bytes).map_err(|_| Reject::BadIp)?;
    let upper = ip.upper_layer().map_err(|_| Reject::BadIp)?;
    if upper.protocol != ipv6::NEXT_HEADER_ICMPV6 {
        return Err(Reject::NotIgmp);
    }
    let src = ip.src_addr();
    let Some(&t) = upper.payload.first() else {
        return Err(Reject::Message(mcgate_wire::Error::Truncated, src));
    };
    if is_mld_router_only(t) {
        return Err(Reject::RouterOnly(src));
    }
    if !matches!(
        t,
        msg_type::MLD_QUERY
            | msg_type::MLD_REPORT_V1
            | msg_type::MLD_DONE
            | msg_type::MLD_REPORT_V2
    ) {
        // Neighbour Discovery, echo and the rest of ICMPv6 are not MLD.
        return Err(Reject::NotIgmp);
    }
    if ip.hop_limit() != 1 {
        return Err(Reject::BadTtl);
    }
    if upper.router_alert != Some(ipv6::ROUTER_ALERT_MLD) {
        return Err(Reject::NoRouterAlert);
    }
    let dst = ip.dst_addr();
    let message = MldRepr::parse(src, dst, upper.payload).map_err(|e| Reject::Message(e, src))?;
    if src.is_unspecified() || !message.source_is_valid(src) {
        return Err(Reject::BadSource);
    }
    Ok(Accepted { src, dst, message })
}
