//! The address family the router runs: IGMP over IPv4 ([`Igmp`]) or MLD over IPv6
//! ([`Mld`]). RFC 3810 sections 6 to 8 are RFC 3376 sections 5 to 7 with other names,
//! so one state machine serves both; a [`Family`] supplies only what differs: its
//! addresses, the acceptance checks of a received packet, the translation of its wire
//! messages into the family-neutral [`Message`], and the encoding of one back.
//!
//! Versions are kept as IGMP's [`Version`] inside the state machine: MLDv1 (RFC 2710)
//! behaves as IGMPv2 and MLDv2 as IGMPv3 (RFC 3810 section 8 mirrors RFC 3376 section
//! 7.3 without the v1 case), so an `Mld` router's [`Version::V2`] is MLDv1 and its
//! [`Version::V3`] is MLDv2; [`Version::V1`] never occurs there.

use core::fmt;
use core::hash::Hash;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use mcgate_wire::Version;
use mcgate_wire::igmp::{self, IgmpRepr};
use mcgate_wire::mld::{self, MldRepr};
use mcgate_wire::record::{Address, Record};

use crate::stats::Dropped;

/// A received message as the state machine sees it, whatever its family and version:
/// times are [`Duration`]s, never wire codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<A> {
    /// A query of any version.
    Query(Query<A>),
    /// An IGMPv1 or IGMPv2 report, or an MLDv1 report (as [`Version::V2`]).
    OldReport {
        /// The version of the report.
        version: Version,
        /// The group reported.
        group: A,
    },
    /// An IGMPv2 leave or an MLDv1 done.
    Leave {
        /// The group left.
        group: A,
    },
    /// An IGMPv3 or MLDv2 report.
    Report(Vec<Record<A>>),
}

/// A query, received or to send, in family-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<A> {
    /// The version of the query (for MLD: [`Version::V2`] is MLDv1, [`Version::V3`] MLDv2).
    pub version: Version,
    /// The group asked about; unspecified for a general query.
    pub group: A,
    /// Maximum Response Time (IGMP) or Maximum Response Delay (MLD).
    pub max_resp: Duration,
    /// The S flag: Suppress Router-Side Processing.
    pub suppress: bool,
    /// Querier's Robustness Variable (0: not given).
    pub qrv: u8,
    /// Querier's Query Interval (zero: not given).
    pub qqi: Duration,
    /// The sources asked about.
    pub sources: Vec<A>,
}

/// A received packet that passed the family's acceptance checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted<A> {
    /// The IP source.
    pub src: A,
    /// The IP destination.
    pub dst: A,
    /// The message.
    pub message: Message<A>,
}

/// The MLD version a router speaks: the user-facing name of what [`Version`] stands for
/// on an MLD interface (`Config::version` and the group compatibility modes), since
/// MLDv1 behaves as IGMPv2 and MLDv2 as IGMPv3 (RFC 3810 section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MldVersion {
    /// MLDv1 (RFC 2710).
    V1,
    /// MLDv2 (RFC 3810).
    V2,
}

impl MldVersion {
    /// The [`Version`] the state machine runs for this MLD version.
    pub fn version(self) -> Version {
        match self {
            MldVersion::V1 => Version::V2,
            MldVersion::V2 => Version::V3,
        }
    }

    /// The MLD version a [`Version`] stands for; `None` for IGMPv1, which has none.
    pub fn from_version(v: Version) -> Option<Self> {
        match v {
            Version::V1 => None,
            Version::V2 => Some(MldVersion::V1),
            Version::V3 => Some(MldVersion::V2),
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Igmp {}
    impl Sealed for super::Mld {}
}

/// What differs between IGMP and MLD. Sealed: implemented by [`Igmp`] and [`Mld`] only.
pub trait Family:
    sealed::Sealed
    + Copy
    + Clone
    + fmt::Debug
    + Default
    + PartialEq
    + Eq
    + PartialOrd
    + Ord
    + Hash
    + Send
    + Sync
    + 'static
{
    /// The family's addresses.
    type Addr: Address + Ord + Hash + fmt::Display + Send + Sync + 'static;
    /// The family's wire message, as [`crate::Transmit`] carries it.
    type Message: Clone + fmt::Debug + PartialEq + Eq + Send + Sync + 'static;

    /// The unspecified address (0.0.0.0 or `::`).
    const UNSPECIFIED: Self::Addr;
    /// Where general queries go: 224.0.0.1 or ff02::1.
    const ALL_NODES: Self::Addr;
    /// Where leaves and dones go: 224.0.0.2 or ff02::2.
    const ALL_ROUTERS: Self::Addr;
    /// Where IGMPv3 and MLDv2 reports go: 224.0.0.22 or ff02::16.
    const REPORT_DESTINATION: Self::Addr;

    /// Whether `a` is a multicast address.
    fn is_multicast(a: Self::Addr) -> bool;
    /// Whether `group` is link-scope (224.0.0.0/24; ff02::/16 and smaller scopes): hosts
    /// report such groups, but they carry no membership a router keeps.
    fn is_link_scope(group: Self::Addr) -> bool;
    /// Whether `a` is the unspecified address.
    fn is_unspecified(a: Self::Addr) -> bool {
        a == Self::UNSPECIFIED
    }
    /// The acceptance checks of a received IP packet (header included). A drop is
    /// counted in `dropped`; the `Err` carries the sender of a router-only message on a
    /// link without other queriers, for a warning.
    fn accept(
        bytes: &[u8],
        dropped: &mut Dropped,
        other_queriers: bool,
    ) -> Result<Accepted<Self::Addr>, Option<Self::Addr>>;
    /// The wire message and whole IP packet of `query` sent from `src` to `dst`.
    fn emit_query(
        src: Self::Addr,
        dst: Self::Addr,
        query: &Query<Self::Addr>,
    ) -> (Self::Message, Vec<u8>);
    /// `message` sent from `src` to where its kind goes (a report to the group or to
    /// 224.0.0.22 / ff02::16, a leave or done to the all-routers address, a query to
    /// its group or all nodes): that destination, the wire message and the whole IP
    /// packet (TTL or Hop Limit 1, Router Alert). An [`Message::OldReport`] of IGMPv1
    /// is an IGMPv1 report; MLD's only older report is MLDv1's.
    fn emit(src: Self::Addr, message: Message<Self::Addr>) -> (Self::Addr, Self::Message, Vec<u8>);
    /// Record bytes that fit one IGMPv3 or MLDv2 report on a 1500-byte link, after the
    /// IP header with its Router Alert and the report's own header.
    const MAX_REPORT_PAYLOAD: usize;
}

/// Where a query goes: its group, or all nodes for a general query (RFC 3376 4.1.12,
/// RFC 3810 5.1.15).
fn query_destination<F: Family>(q: &Query<F::Addr>) -> F::Addr {
    if F::is_unspecified(q.group) {
        F::ALL_NODES
    } else {
        q.group
    }
}

/// IGMP over IPv4 (RFC 3376, RFC 2236).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Igmp;

/// MLD over IPv6 (RFC 3810, RFC 2710).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mld;

fn tenths(d: Duration) -> u32 {
    u32::try_from(d.as_millis() / 100).unwrap_or(u32::MAX)
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// 4.1.6 / RFC 3810 5.1.8: a robustness above 7 is sent as 0.
fn qrv(robustness: u8) -> u8 {
    if robustness > 7 { 0 } else { robustness }
}

/// A checked packet in neutral form, or its drop counted.
fn neutral<A, M>(
    checked: Result<crate::packet::Accepted<A, M>, crate::packet::Reject<A>>,
    convert: fn(M) -> Message<A>,
    dropped: &mut Dropped,
    other_queriers: bool,
) -> Result<Accepted<A>, Option<A>> {
    match checked {
        Ok(p) => Ok(Accepted {
            src: p.src,
            dst: p.dst,
            message: convert(p.message),
        }),
        Err(reason) => Err(reason.count(dropped, other_queriers)),
    }
}

impl Family for Igmp {
    type Addr = Ipv4Addr;
    type Message = IgmpRepr;

    const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
    const ALL_NODES: Ipv4Addr = igmp::ALL_SYSTEMS;
    const ALL_ROUTERS: Ipv4Addr = igmp::ALL_ROUTERS;
    const REPORT_DESTINATION: Ipv4Addr = igmp::ALL_V3_ROUTERS;
    // IPv4 header with Router Alert (24 bytes), report header (8).
    const MAX_REPORT_PAYLOAD: usize = 1500 - 24 - 8;

    fn is_multicast(a: Ipv4Addr) -> bool {
        a.is_multicast()
    }

    fn is_link_scope(group: Ipv4Addr) -> bool {
        mcgate_wire::is_link_local_group(group)
    }

    fn accept(
        bytes: &[u8],
        dropped: &mut Dropped,
        other_queriers: bool,
    ) -> Result<Accepted<Ipv4Addr>, Option<Ipv4Addr>> {
        neutral(
            crate::packet::check(bytes),
            igmp_message,
            dropped,
            other_queriers,
        )
    }

    fn emit(src: Ipv4Addr, m: Message<Ipv4Addr>) -> (Ipv4Addr, IgmpRepr, Vec<u8>) {
        let (dst, message) = match m {
            Message::Query(q) => {
                let dst = query_destination::<Self>(&q);
                let (message, packet) = Self::emit_query(src, dst, &q);
                return (dst, message, packet);
            }
            Message::OldReport {
                version: Version::V1,
                group,
            } => (group, IgmpRepr::ReportV1 { group }),
            Message::OldReport { group, .. } => (group, IgmpRepr::ReportV2 { group }),
            Message::Leave { group } => (igmp::ALL_ROUTERS, IgmpRepr::LeaveV2 { group }),
            Message::Report(records) => (igmp::ALL_V3_ROUTERS, IgmpRepr::ReportV3 { records }),
        };
        let packet = igmp::emit_ip_packet(src, dst, &message);
        (dst, message, packet)
    }

    fn emit_query(src: Ipv4Addr, dst: Ipv4Addr, q: &Query<Ipv4Addr>) -> (IgmpRepr, Vec<u8>) {
        let message = if q.version >= Version::V3 {
            IgmpRepr::QueryV3(igmp::QueryV3 {
                group: q.group,
                max_resp_code: igmp::encode_code(tenths(q.max_resp)),
                suppress: q.suppress,
                qrv: qrv(q.qrv),
                qqic: igmp::encode_code(secs(q.qqi)),
                sources: q.sources.clone(),
            })
        } else {
            IgmpRepr::QueryV2 {
                group: q.group,
                max_resp_time: u8::try_from(tenths(q.max_resp)).unwrap_or(u8::MAX).max(1),
            }
        };
        // From our address, 0.0.0.0 included (a querier without an address).
        let packet = igmp::emit_ip_packet(src, dst, &message);
        (message, packet)
    }
}

/// The neutral form of an IGMP message.
pub(crate) fn igmp_message(msg: IgmpRepr) -> Message<Ipv4Addr> {
    match msg {
        IgmpRepr::QueryV1 => Message::Query(Query {
            version: Version::V1,
            group: Ipv4Addr::UNSPECIFIED,
            max_resp: Duration::ZERO,
            suppress: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: Vec::new(),
        }),
        IgmpRepr::QueryV2 {
            group,
            max_resp_time,
        } => Message::Query(Query {
            version: Version::V2,
            group,
            max_resp: Duration::from_millis(u64::from(max_resp_time) * 100),
            suppress: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: Vec::new(),
        }),
        IgmpRepr::QueryV3(q) => Message::Query(Query {
            version: Version::V3,
            group: q.group,
            max_resp: Duration::from_millis(u64::from(igmp::decode_code(q.max_resp_code)) * 100),
            suppress: q.suppress,
            qrv: q.qrv,
            qqi: Duration::from_secs(u64::from(igmp::decode_code(q.qqic))),
            sources: q.sources,
        }),
        IgmpRepr::ReportV1 { group } => Message::OldReport {
            version: Version::V1,
            group,
        },
        IgmpRepr::ReportV2 { group } => Message::OldReport {
            version: Version::V2,
            group,
        },
        IgmpRepr::LeaveV2 { group } => Message::Leave { group },
        IgmpRepr::ReportV3 { records } => Message::Report(records),
    }
}

impl Family for Mld {
    type Addr = Ipv6Addr;
    type Message = MldRepr;

    const UNSPECIFIED: Ipv6Addr = Ipv6Addr::UNSPECIFIED;
    const ALL_NODES: Ipv6Addr = mld::ALL_NODES;
    const ALL_ROUTERS: Ipv6Addr = mld::ALL_ROUTERS;
    const REPORT_DESTINATION: Ipv6Addr = mld::ALL_MLDV2_ROUTERS;
    // IPv6 header (40), Hop-by-Hop with Router Alert (8), report header (8).
    const MAX_REPORT_PAYLOAD: usize = 1500 - 40 - 8 - 8;

    fn is_multicast(a: Ipv6Addr) -> bool {
        a.is_multicast()
    }

    fn is_link_scope(group: Ipv6Addr) -> bool {
        mcgate_wire::is_link_scope_group(group)
    }

    fn accept(
        bytes: &[u8],
        dropped: &mut Dropped,
        other_queriers: bool,
    ) -> Result<Accepted<Ipv6Addr>, Option<Ipv6Addr>> {
        neutral(
            crate::packet::check_mld(bytes),
            mld_message,
            dropped,
            other_queriers,
        )
    }

    fn emit(src: Ipv6Addr, m: Message<Ipv6Addr>) -> (Ipv6Addr, MldRepr, Vec<u8>) {
        // MLD has one older version: MLDv1 (RFC 2710), whatever `version` says.
        let (dst, message) = match m {
            Message::Query(q) => {
                let dst = query_destination::<Self>(&q);
                let (message, packet) = Self::emit_query(src, dst, &q);
                return (dst, message, packet);
            }
            Message::OldReport { group, .. } => (group, MldRepr::ReportV1 { group }),
            Message::Leave { group } => (mld::ALL_ROUTERS, MldRepr::DoneV1 { group }),
            Message::Report(records) => (mld::ALL_MLDV2_ROUTERS, MldRepr::ReportV2 { records }),
        };
        let packet = mld::emit_ip_packet(src, dst, &message);
        (dst, message, packet)
    }

    fn emit_query(src: Ipv6Addr, dst: Ipv6Addr, q: &Query<Ipv6Addr>) -> (MldRepr, Vec<u8>) {
        let message = if q.version >= Version::V3 {
            MldRepr::QueryV2(mld::QueryV2 {
                group: q.group,
                max_resp_code: mld::encode_max_resp_code(millis(q.max_resp)),
                suppress: q.suppress,
                qrv: qrv(q.qrv),
                // QQIC has the same 8-bit floating-point code as IGMPv3's (5.1.9).
                qqic: igmp::encode_code(secs(q.qqi)),
                sources: q.sources.clone(),
            })
        } else {
            MldRepr::QueryV1 {
                group: q.group,
                max_resp_delay: u16::try_from(millis(q.max_resp)).unwrap_or(u16::MAX),
            }
        };
        // From our link-local address (RFC 3810 5.1.14, 7.6.2).
        let packet = mld::emit_ip_packet(src, dst, &message);
        (message, packet)
    }
}

/// The neutral form of an MLD message: MLDv1 as IGMPv2, MLDv2 as IGMPv3.
pub(crate) fn mld_message(msg: MldRepr) -> Message<Ipv6Addr> {
    match msg {
        MldRepr::QueryV1 {
            group,
            max_resp_delay,
        } => Message::Query(Query {
            version: Version::V2,
            group,
            max_resp: Duration::from_millis(u64::from(max_resp_delay)),
            suppress: false,
            qrv: 0,
            qqi: Duration::ZERO,
            sources: Vec::new(),
        }),
        MldRepr::QueryV2(q) => Message::Query(Query {
            version: Version::V3,
            group: q.group,
            max_resp: Duration::from_millis(u64::from(q.max_resp_delay())),
            suppress: q.suppress,
            qrv: q.qrv,
            qqi: Duration::from_secs(u64::from(q.query_interval())),
            sources: q.sources,
        }),
        MldRepr::ReportV1 { group } => Message::OldReport {
            version: Version::V2,
            group,
        },
        MldRepr::DoneV1 { group } => Message::Leave { group },
        MldRepr::ReportV2 { records } => Message::Report(records),
    }
}
