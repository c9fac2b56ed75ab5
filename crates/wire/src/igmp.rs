//! IGMP v1 (RFC 1112), v2 (RFC 2236) and v3 (RFC 3376) messages.
//!
//! [`IgmpRepr::parse`] reads a message of any version from untrusted bytes (it never
//! panics; each kind of bad message is its own [`Error`] variant so the IGMP core can
//! count drops by reason), [`IgmpRepr::emit`] writes one with its checksum, and
//! [`emit_ip_packet`] wraps one in the IPv4 header Linux puts around IGMP.

use core::net::Ipv4Addr;

pub use crate::record::RecordType;
use crate::record::{self, Record, addrs, be16, clamp16, write_addrs};
use crate::{Error, Result, checksum, ipv4};

/// IGMP message type numbers (RFC 3376 section 4, RFC 2236 section 2.1).
pub mod msg_type {
    /// Membership Query (all versions).
    pub const QUERY: u8 = 0x11;
    /// Version 1 Membership Report.
    pub const REPORT_V1: u8 = 0x12;
    /// Version 2 Membership Report.
    pub const REPORT_V2: u8 = 0x16;
    /// Version 2 Leave Group.
    pub const LEAVE_V2: u8 = 0x17;
    /// Version 3 Membership Report.
    pub const REPORT_V3: u8 = 0x22;
}

/// An IGMPv3 Membership Query (RFC 3376 section 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryV3 {
    /// 0.0.0.0 for a general query.
    pub group: Ipv4Addr,
    /// Max Resp Code, in its encoded form (see [`decode_code`]).
    pub max_resp_code: u8,
    /// S flag: suppress router-side processing.
    pub suppress: bool,
    /// Querier's Robustness Variable (0 when above 7).
    pub qrv: u8,
    /// Querier's Query Interval Code, encoded form.
    pub qqic: u8,
    /// Source addresses (group-and-source-specific query).
    pub sources: Vec<Ipv4Addr>,
}

/// One group record of an IGMPv3 report (RFC 3376 section 4.2.4).
pub type GroupRecord = Record<Ipv4Addr>;

/// A parsed IGMP message of any version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgmpRepr {
    /// An IGMPv1 query: 8 bytes, Max Resp Time 0 (RFC 3376 section 7.1).
    QueryV1,
    /// An IGMPv2 query: 8 bytes, Max Resp Time non-zero, in tenths of a second.
    QueryV2 {
        /// 0.0.0.0 for a general query.
        group: Ipv4Addr,
        /// Max Resp Time in units of 1/10 s.
        max_resp_time: u8,
    },
    /// An IGMPv3 query: 12 bytes or more.
    QueryV3(QueryV3),
    /// IGMPv1 report.
    ReportV1 {
        /// The group joined.
        group: Ipv4Addr,
    },
    /// IGMPv2 report.
    ReportV2 {
        /// The group joined.
        group: Ipv4Addr,
    },
    /// IGMPv2 leave.
    LeaveV2 {
        /// The group left.
        group: Ipv4Addr,
    },
    /// IGMPv3 report.
    ReportV3 {
        /// The group records, in order.
        records: Vec<GroupRecord>,
    },
}

/// Decodes an RFC 3376 section 4.1.1 Max Resp Code (or 4.1.7 QQIC): below 128 the value
/// itself, else `(mant | 0x10) << (exp + 3)`.
pub fn decode_code(code: u8) -> u32 {
    record::decode_float(u32::from(code), 4)
}

/// Encodes a Max Resp Time (RFC 3376 section 4.1.1) or a Query Interval (4.1.7) into its
/// 8-bit code, the inverse of [`decode_code`]: values below 128 are exact; above, the
/// smallest code whose decoded value is at least `value` (so a querier never asks for
/// less time than meant), saturating at 0xff (31744).
pub fn encode_code(value: u32) -> u8 {
    // At most 0xff: the all-ones code of 4 mantissa bits.
    record::encode_float(value, 4) as u8
}

/// Length of the common IGMP header (type, code, checksum, group).
pub const HEADER_LEN: usize = 8;
/// Length of an IGMPv3 query without sources.
pub const QUERY_V3_MIN_LEN: usize = 12;
/// All-systems group: general queries go here (RFC 3376 section 4.1.12).
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// All-routers group: IGMPv2 leaves go here (RFC 2236 section 3).
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// All IGMPv3-capable multicast routers: v3 reports go here (RFC 3376 section 4.2.14).
pub const ALL_V3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

fixed_header_view!(
    /// A read view of the fixed 8-byte part of an IGMP message of any version.
    Packet,
    HEADER_LEN
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// The message type (see [`msg_type`]).
    pub fn msg_type(&self) -> u8 {
        self.header()[0]
    }

    /// Max Resp Time (v2) or Max Resp Code (v3); unused (0) in reports.
    pub fn max_resp_code(&self) -> u8 {
        self.header()[1]
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[2], h[3]])
    }

    /// The group address (queries, v1/v2 reports, leaves; reserved in v3 reports).
    pub fn group_addr(&self) -> Ipv4Addr {
        let h = self.header();
        Ipv4Addr::new(h[4], h[5], h[6], h[7])
    }

    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.buffer.as_ref())
    }
}

impl QueryV3 {
    /// Max Resp Time in tenths of a second (RFC 3376 section 4.1.1).
    pub fn max_resp_time(&self) -> u32 {
        decode_code(self.max_resp_code)
    }

    /// Querier's Query Interval in seconds (RFC 3376 section 4.1.7).
    pub fn query_interval(&self) -> u32 {
        decode_code(self.qqic)
    }
}

impl IgmpRepr {
    /// Parses an IGMP message (the IPv4 payload, nothing before it). The checksum must
    /// verify. Queries are told apart as RFC 3376 section 7.1 says: 8 bytes and Max Resp
    /// Code 0 is v1, 8 bytes otherwise v2, 12 bytes or more v3, any other length is
    /// [`Error::Malformed`] (to be ignored). Counts that run past the end are
    /// [`Error::Overrun`]; bytes after the last source or record are ignored.
    pub fn parse(bytes: &[u8]) -> Result<IgmpRepr> {
        let packet = Packet::new_checked(bytes)?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let group = packet.group_addr();
        match packet.msg_type() {
            msg_type::QUERY => match bytes.len() {
                HEADER_LEN if packet.max_resp_code() == 0 => Ok(IgmpRepr::QueryV1),
                HEADER_LEN => Ok(IgmpRepr::QueryV2 {
                    group,
                    max_resp_time: packet.max_resp_code(),
                }),
                n if n >= QUERY_V3_MIN_LEN => {
                    let flags = bytes.get(8).copied().unwrap_or(0);
                    let qqic = bytes.get(9).copied().unwrap_or(0);
                    let nsrc = usize::from(be16(bytes, 10)?);
                    Ok(IgmpRepr::QueryV3(QueryV3 {
                        group,
                        max_resp_code: packet.max_resp_code(),
                        suppress: flags & 0x08 != 0,
                        qrv: flags & 0x07,
                        qqic,
                        sources: addrs(bytes, QUERY_V3_MIN_LEN, nsrc)?,
                    }))
                }
                _ => Err(Error::Malformed),
            },
            msg_type::REPORT_V1 => Ok(IgmpRepr::ReportV1 { group }),
            msg_type::REPORT_V2 => Ok(IgmpRepr::ReportV2 { group }),
            msg_type::LEAVE_V2 => Ok(IgmpRepr::LeaveV2 { group }),
            msg_type::REPORT_V3 => Ok(IgmpRepr::ReportV3 {
                records: record::parse_report(bytes)?,
            }),
            other => Err(Error::UnknownType(other)),
        }
    }

    /// Bytes [`IgmpRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            IgmpRepr::QueryV3(q) => QUERY_V3_MIN_LEN + 4 * clamp16(q.sources.len()),
            IgmpRepr::ReportV3 { records } => record::report_len(records),
            _ => HEADER_LEN,
        }
    }

    /// Writes the message into the first [`IgmpRepr::buffer_len`] bytes of `buf`, with
    /// its checksum. Reserved fields are zero. Lists longer than their 16-bit count field
    /// allows are cut at 65535 entries; aux data is padded with zeros to whole 32-bit
    /// words (at most 255 words).
    ///
    /// # Panics
    /// If `buf` is shorter than [`IgmpRepr::buffer_len`] (a caller bug).
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut buf[..len];
        b.fill(0);
        let simple = |b: &mut [u8], t: u8, code: u8, group: Ipv4Addr| {
            b[0] = t;
            b[1] = code;
            b[4..8].copy_from_slice(&group.octets());
        };
        match self {
            IgmpRepr::QueryV1 => simple(b, msg_type::QUERY, 0, Ipv4Addr::UNSPECIFIED),
            IgmpRepr::QueryV2 {
                group,
                max_resp_time,
            } => simple(b, msg_type::QUERY, *max_resp_time, *group),
            IgmpRepr::ReportV1 { group } => simple(b, msg_type::REPORT_V1, 0, *group),
            IgmpRepr::ReportV2 { group } => simple(b, msg_type::REPORT_V2, 0, *group),
            IgmpRepr::LeaveV2 { group } => simple(b, msg_type::LEAVE_V2, 0, *group),
            IgmpRepr::QueryV3(q) => {
                simple(b, msg_type::QUERY, q.max_resp_code, q.group);
                b[8] = (u8::from(q.suppress) << 3) | (q.qrv & 0x07);
                b[9] = q.qqic;
                let n = clamp16(q.sources.len());
                b[10..12].copy_from_slice(&(n as u16).to_be_bytes());
                write_addrs(b, QUERY_V3_MIN_LEN, &q.sources[..n]);
            }
            IgmpRepr::ReportV3 { records } => {
                b[0] = msg_type::REPORT_V3;
                record::emit_report(records, b);
            }
        }
        let sum = checksum::checksum(b);
        b[2..4].copy_from_slice(&sum.to_be_bytes());
    }

    /// The IGMP version this message belongs to (1, 2 or 3).
    pub fn version(&self) -> u8 {
        match self {
            IgmpRepr::QueryV1 | IgmpRepr::ReportV1 { .. } => 1,
            IgmpRepr::QueryV2 { .. } | IgmpRepr::ReportV2 { .. } | IgmpRepr::LeaveV2 { .. } => 2,
            IgmpRepr::QueryV3(_) | IgmpRepr::ReportV3 { .. } => 3,
        }
    }
}

/// A whole IPv4 packet carrying `repr` as Linux sends IGMP: TTL 1, protocol 2, TOS 0xc0
/// (Internet Control), Don't Fragment, identification 0, and the Router Alert option
/// (RFC 2236 section 2, RFC 3376 section 4), with both checksums computed.
pub fn emit_ip_packet(src: Ipv4Addr, dst: Ipv4Addr, repr: &IgmpRepr) -> Vec<u8> {
    let ip = ipv4::Repr {
        src,
        dst,
        protocol: ipv4::PROTOCOL_IGMP,
        ttl: 1,
        tos: 0xc0,
        payload_len: repr.buffer_len(),
        router_alert: true,
        dont_frag: true,
    };
    let mut buf = vec![0u8; ip.buffer_len()];
    ip.emit(&mut buf);
    repr.emit(&mut buf[ip.header_len()..]);
    buf
}

#[cfg(test)]
#[path = "igmp_tests.rs"]
mod tests;
