//! IGMP v1 (RFC 1112), v2 (RFC 2236) and v3 (RFC 3376) messages.
//!
//! The types below are the contract used by the igmp core and the agent; parsing and
//! emitting are implemented against them.

use core::net::Ipv4Addr;

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

/// Group record types of an IGMPv3 report (RFC 3376 section 4.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// MODE_IS_INCLUDE (1).
    ModeIsInclude,
    /// MODE_IS_EXCLUDE (2).
    ModeIsExclude,
    /// CHANGE_TO_INCLUDE_MODE (3).
    ChangeToInclude,
    /// CHANGE_TO_EXCLUDE_MODE (4).
    ChangeToExclude,
    /// ALLOW_NEW_SOURCES (5).
    AllowNewSources,
    /// BLOCK_OLD_SOURCES (6).
    BlockOldSources,
    /// Any other value: RFC 3376 section 4.2.12 says to ignore such records.
    Unknown(u8),
}

/// One group record of an IGMPv3 report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// The record type.
    pub kind: RecordType,
    /// The multicast address the record is about.
    pub group: Ipv4Addr,
    /// The source list.
    pub sources: Vec<Ipv4Addr>,
    /// Auxiliary data, a multiple of 4 bytes long.
    pub aux_data: Vec<u8>,
}

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
    if code < 128 {
        u32::from(code)
    } else {
        let mant = u32::from(code & 0x0f);
        let exp = u32::from((code >> 4) & 0x07);
        (mant | 0x10) << (exp + 3)
    }
}
