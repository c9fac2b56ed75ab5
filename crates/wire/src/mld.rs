//! MLD messages: Multicast Listener Discovery version 1 (RFC 2710: Query, Report, Done)
//! and version 2 (RFC 3810 sections 5.1 and 5.2: Query, Version 2 Report), the IPv6
//! counterparts of IGMPv2 and IGMPv3, carried in ICMPv6.
//!
//! [`MldRepr::parse`] reads a message of either version from untrusted bytes: the ICMPv6
//! payload of an IPv6 packet, whose source and destination the checksum covers. It never
//! panics; each kind of bad message is its own [`Error`] variant, as in [`crate::igmp`],
//! so the router can count drops by reason. [`MldRepr::emit`] writes one with its
//! checksum, and [`emit_ip_packet`] wraps one in the IPv6 headers Linux puts around MLD
//! (Hop Limit 1, Hop-by-Hop Router Alert 0).
//!
//! Parsing is syntactic, like IGMP's: whether a message is acceptable where it arrived
//! (Hop Limit 1, Router Alert, a link-local source: RFC 2710 section 3, RFC 3810 sections
//! 5.1.14, 5.2.13 and 7.4) is for the router to decide, as `mcgate-igmp` does for IGMP;
//! [`MldRepr::source_is_valid`] gives the source rule of each message. MLDv2 reuses the
//! record types and the record codec of IGMPv3 ([`crate::record`]) and the 8-bit
//! QQIC encoding ([`crate::igmp::decode_code`]); only the 16-bit Maximum Response Code
//! (RFC 3810 section 5.1.3) is its own.

use core::net::Ipv6Addr;

use crate::icmpv6::{self, msg_type};
pub use crate::record::RecordType;
use crate::record::{self, Record, addrs, be16, clamp16, write_addrs};
use crate::{Error, Result, igmp, ipv6};

/// Length of an MLDv1 message (query, report, done) and of the common part of queries.
pub const MLDV1_LEN: usize = 24;
/// Length of an MLDv2 query without sources.
pub const QUERY_V2_MIN_LEN: usize = 28;
/// Length of an MLDv2 report without records.
pub const REPORT_V2_MIN_LEN: usize = 8;
/// All-nodes: general queries go here (RFC 3810 section 5.1.15).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All-routers: MLDv1 Done messages go here (RFC 2710 section 3).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// All MLDv2-capable routers: MLDv2 reports go here (RFC 3810 section 5.2.14).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);

/// One multicast address record of an MLDv2 report (RFC 3810 section 5.2.4): the IPv6
/// form of IGMPv3's group record, same fields, same record types.
pub type AddressRecord = Record<Ipv6Addr>;

/// An MLDv2 Multicast Listener Query (RFC 3810 section 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryV2 {
    /// `::` for a general query; else the multicast address asked about.
    pub group: Ipv6Addr,
    /// Maximum Response Code, in its encoded form (see [`decode_max_resp_code`]).
    pub max_resp_code: u16,
    /// S flag: suppress router-side processing (section 5.1.7).
    pub suppress: bool,
    /// Querier's Robustness Variable, 0 to 7 (0 when above 7, section 5.1.8).
    pub qrv: u8,
    /// Querier's Query Interval Code, encoded as IGMPv3's (section 5.1.9).
    pub qqic: u8,
    /// Source addresses (multicast-address-and-source-specific query).
    pub sources: Vec<Ipv6Addr>,
}

impl QueryV2 {
    /// Maximum Response Delay in milliseconds (RFC 3810 section 5.1.3).
    pub fn max_resp_delay(&self) -> u32 {
        decode_max_resp_code(self.max_resp_code)
    }

    /// Querier's Query Interval in seconds (RFC 3810 section 5.1.9).
    pub fn query_interval(&self) -> u32 {
        igmp::decode_code(self.qqic)
    }
}

/// A parsed MLD message of either version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MldRepr {
    /// An MLDv1 query (RFC 2710 section 3.6): exactly 24 bytes (RFC 3810 section 8.1).
    QueryV1 {
        /// `::` for a general query; else the multicast address asked about.
        group: Ipv6Addr,
        /// Maximum Response Delay in milliseconds.
        max_resp_delay: u16,
    },
    /// An MLDv2 query: 28 bytes or more.
    QueryV2(QueryV2),
    /// An MLDv1 report (RFC 2710 section 3.7).
    ReportV1 {
        /// The multicast address listened to.
        group: Ipv6Addr,
    },
    /// An MLDv1 done (RFC 2710 section 3.8).
    DoneV1 {
        /// The multicast address no longer listened to.
        group: Ipv6Addr,
    },
    /// An MLDv2 report (RFC 3810 section 5.2).
    ReportV2 {
        /// The multicast address records, in order.
        records: Vec<AddressRecord>,
    },
}

/// Decodes an RFC 3810 section 5.1.3 Maximum Response Code into the Maximum Response
/// Delay in milliseconds: below 32768 the value itself, else
/// `(mant | 0x1000) << (exp + 3)` with a 12-bit mantissa and a 3-bit exponent (at most
/// 8 387 584 ms for 0xffff).
pub fn decode_max_resp_code(code: u16) -> u32 {
    record::decode_float(u32::from(code), 12)
}

/// Encodes a Maximum Response Delay in milliseconds into its 16-bit code, the inverse of
/// [`decode_max_resp_code`]: exact below 32768; above, the smallest code whose delay is
/// at least `ms` (never less time than meant), saturating at 0xffff.
pub fn encode_max_resp_code(ms: u32) -> u16 {
    // At most 0xffff: the all-ones code of 12 mantissa bits.
    record::encode_float(ms, 12) as u16
}

fn addr_at(b: &[u8], off: usize) -> Result<Ipv6Addr> {
    record::addr(b, off).map_err(|_| Error::Truncated)
}

impl MldRepr {
    /// Parses an MLD message (the ICMPv6 message, nothing before it) sent from `src` to
    /// `dst`. The ICMPv6 checksum over the IPv6 pseudo-header must verify
    /// ([`Error::Checksum`]). Queries are told apart by length as RFC 3810 section 8.1
    /// says: 24 bytes is MLDv1, 28 or more MLDv2, any other length is
    /// [`Error::Malformed`] (to be ignored). An MLDv1 report or done shorter than 24
    /// bytes is [`Error::Truncated`]; counts that run past the end are
    /// [`Error::Overrun`], refused before anything is allocated; other ICMPv6 types are
    /// [`Error::UnknownType`]. The Code and reserved fields are ignored (RFC 2710
    /// section 3, RFC 3810 sections 5.1.2 and 5.2.2), and so are bytes after the last
    /// source or record. A record of an unknown type is kept as
    /// [`RecordType::Unknown`], for the router to ignore (RFC 3810 section 5.2.12);
    /// its aux data is skipped by its length.
    pub fn parse(src: Ipv6Addr, dst: Ipv6Addr, bytes: &[u8]) -> Result<MldRepr> {
        let packet = icmpv6::Packet::new_checked(bytes)?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        match packet.msg_type() {
            msg_type::MLD_QUERY => match bytes.len() {
                MLDV1_LEN => Ok(MldRepr::QueryV1 {
                    group: addr_at(bytes, 8)?,
                    max_resp_delay: be16(bytes, 4)?,
                }),
                n if n >= QUERY_V2_MIN_LEN => {
                    let flags = bytes.get(24).copied().unwrap_or(0);
                    let qqic = bytes.get(25).copied().unwrap_or(0);
                    let nsrc = usize::from(be16(bytes, 26)?);
                    Ok(MldRepr::QueryV2(QueryV2 {
                        group: addr_at(bytes, 8)?,
                        max_resp_code: be16(bytes, 4)?,
                        suppress: flags & 0x08 != 0,
                        qrv: flags & 0x07,
                        qqic,
                        sources: addrs(bytes, QUERY_V2_MIN_LEN, nsrc)?,
                    }))
                }
                n if n < MLDV1_LEN => Err(Error::Truncated),
                _ => Err(Error::Malformed),
            },
            msg_type::MLD_REPORT_V1 => Ok(MldRepr::ReportV1 {
                group: addr_at(bytes, 8)?,
            }),
            msg_type::MLD_DONE => Ok(MldRepr::DoneV1 {
                group: addr_at(bytes, 8)?,
            }),
            msg_type::MLD_REPORT_V2 => {
                if bytes.len() < REPORT_V2_MIN_LEN {
                    return Err(Error::Truncated);
                }
                Ok(MldRepr::ReportV2 {
                    records: record::parse_report(bytes)?,
                })
            }
            other => Err(Error::UnknownType(other)),
        }
    }

    /// Bytes [`MldRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            MldRepr::QueryV2(q) => QUERY_V2_MIN_LEN + 16 * clamp16(q.sources.len()),
            MldRepr::ReportV2 { records } => record::report_len(records),
            _ => MLDV1_LEN,
        }
    }

    /// Writes the message into the first [`MldRepr::buffer_len`] bytes of `buf`, with
    /// its checksum for a packet from `src` to `dst`. Code and reserved fields are zero.
    /// Lists longer than their 16-bit count field allows are cut at 65535 entries; aux
    /// data is padded with zeros to whole 32-bit words (at most 255 words).
    ///
    /// # Panics
    /// If `buf` is shorter than [`MldRepr::buffer_len`] (a caller bug).
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, buf: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        b.fill(0);
        let v1 = |b: &mut [u8], t: u8, delay: u16, group: Ipv6Addr| {
            b[0] = t;
            b[4..6].copy_from_slice(&delay.to_be_bytes());
            b[8..24].copy_from_slice(&group.octets());
        };
        match self {
            MldRepr::QueryV1 {
                group,
                max_resp_delay,
            } => v1(b, msg_type::MLD_QUERY, *max_resp_delay, *group),
            MldRepr::ReportV1 { group } => v1(b, msg_type::MLD_REPORT_V1, 0, *group),
            MldRepr::DoneV1 { group } => v1(b, msg_type::MLD_DONE, 0, *group),
            MldRepr::QueryV2(q) => {
                v1(b, msg_type::MLD_QUERY, q.max_resp_code, q.group);
                b[24] = (u8::from(q.suppress) << 3) | (q.qrv & 0x07);
                b[25] = q.qqic;
                let n = clamp16(q.sources.len());
                b[26..28].copy_from_slice(&(n as u16).to_be_bytes());
                write_addrs(b, QUERY_V2_MIN_LEN, &q.sources[..n]);
            }
            MldRepr::ReportV2 { records } => {
                b[0] = msg_type::MLD_REPORT_V2;
                record::emit_report(records, b);
            }
        }
        let sum = icmpv6::checksum(src, dst, b);
        b[2..4].copy_from_slice(&sum.to_be_bytes());
    }

    /// The MLD version this message belongs to (1 or 2).
    pub fn version(&self) -> u8 {
        match self {
            MldRepr::QueryV1 { .. } | MldRepr::ReportV1 { .. } | MldRepr::DoneV1 { .. } => 1,
            MldRepr::QueryV2(_) | MldRepr::ReportV2 { .. } => 2,
        }
    }

    /// Whether `src` is an acceptable IPv6 source for this message: queries must come
    /// from a link-local address (RFC 3810 section 5.1.14, RFC 2710 section 3: `::` is
    /// refused); reports and dones from a link-local address or, for a node that has
    /// none yet (during Duplicate Address Detection), from `::` (RFC 3810 section
    /// 5.2.13). A router acts on no message from `::` (section 7.4 asks it for a
    /// link-local source, Hop Limit 1 and the Router Alert), but a snooping switch must
    /// still see reports from `::`.
    pub fn source_is_valid(&self, src: Ipv6Addr) -> bool {
        match self {
            MldRepr::QueryV1 { .. } | MldRepr::QueryV2(_) => src.is_unicast_link_local(),
            _ => src.is_unicast_link_local() || src.is_unspecified(),
        }
    }
}

/// A whole IPv6 packet carrying `repr` as Linux sends MLD: Hop Limit 1, Traffic Class
/// and Flow Label 0, a Hop-by-Hop header with Router Alert 0 padded by PadN (RFC 2710
/// section 3, RFC 3810 section 5), then the ICMPv6 message with its checksum.
pub fn emit_ip_packet(src: Ipv6Addr, dst: Ipv6Addr, repr: &MldRepr) -> Vec<u8> {
    let ip = ipv6::Repr {
        src,
        dst,
        next_header: ipv6::NEXT_HEADER_ICMPV6,
        hop_limit: 1,
        traffic_class: 0,
        flow_label: 0,
        payload_len: repr.buffer_len(),
        router_alert: Some(ipv6::ROUTER_ALERT_MLD),
    };
    let mut buf = vec![0u8; ip.buffer_len()];
    ip.emit(&mut buf);
    repr.emit(src, dst, &mut buf[ip.header_len()..]);
    buf
}

#[cfg(test)]
#[path = "mld_tests.rs"]
mod tests;
