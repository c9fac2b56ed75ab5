//! The multicast address records of IGMPv3 reports (RFC 3376 section 4.2.4) and MLDv2
//! reports (RFC 3810 section 5.2.4), and the report body that lists them.
//!
//! The two RFCs define the same layout: type, aux data length in 32-bit words, a 16-bit
//! source count, the multicast address, the sources, the aux data; a report is a type,
//! a reserved byte, the checksum, two reserved bytes, a 16-bit record count and the
//! records. Only the address length differs (4 or 16 bytes), so one [`Record`] generic
//! over [`Address`] serves both, and `igmp` and `mld` share the parser here.
//!
//! Like every parser of this crate it never panics on input: counts that run past the
//! end of the message are [`Error::Overrun`], checked before anything is allocated.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::{Error, Result};

/// The type of a group record (RFC 3376 section 4.2.12) or multicast address record
/// (RFC 3810 section 5.2.12): both RFCs number the six types alike.
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
    /// Any other value: RFC 3376 section 4.2.12 and RFC 3810 section 5.2.12 say to
    /// ignore such records.
    Unknown(u8),
}

impl From<u8> for RecordType {
    fn from(v: u8) -> Self {
        match v {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            other => RecordType::Unknown(other),
        }
    }
}

impl From<RecordType> for u8 {
    fn from(t: RecordType) -> u8 {
        match t {
            RecordType::ModeIsInclude => 1,
            RecordType::ModeIsExclude => 2,
            RecordType::ChangeToInclude => 3,
            RecordType::ChangeToExclude => 4,
            RecordType::AllowNewSources => 5,
            RecordType::BlockOldSources => 6,
            RecordType::Unknown(v) => v,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for core::net::Ipv4Addr {}
    impl Sealed for core::net::Ipv6Addr {}
}

/// An address family's addresses as they appear on the wire: [`Ipv4Addr`] (4 bytes) or
/// [`Ipv6Addr`] (16 bytes), in network byte order. Sealed: only these two.
pub trait Address: Copy + Eq + fmt::Debug + sealed::Sealed {
    /// Bytes the address takes.
    const LEN: usize;
    /// The address in `bytes`, which must be exactly [`Address::LEN`] long.
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
    /// Writes the address into `out`, which must be exactly [`Address::LEN`] long.
    fn write(self, out: &mut [u8]);
}

impl Address for Ipv4Addr {
    const LEN: usize = 4;
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 4]>::try_from(bytes).ok().map(Ipv4Addr::from)
    }
    fn write(self, out: &mut [u8]) {
        out.copy_from_slice(&self.octets());
    }
}

impl Address for Ipv6Addr {
    const LEN: usize = 16;
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 16]>::try_from(bytes).ok().map(Ipv6Addr::from)
    }
    fn write(self, out: &mut [u8]) {
        out.copy_from_slice(&self.octets());
    }
}

/// One record of a report: an IGMPv3 group record (`Record<Ipv4Addr>`, alias
/// `igmp::GroupRecord`) or an MLDv2 multicast address record (`Record<Ipv6Addr>`, alias
/// `mld::AddressRecord`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<A> {
    /// The record type.
    pub kind: RecordType,
    /// The multicast address the record is about.
    pub group: A,
    /// The source list.
    pub sources: Vec<A>,
    /// Auxiliary data, a multiple of 4 bytes long. Neither RFC defines any; receivers
    /// skip it (RFC 3810 section 5.2.10).
    pub aux_data: Vec<u8>,
}

/// The 16-bit big-endian field at `i`; [`Error::Overrun`] past the end.
pub(crate) fn be16(b: &[u8], i: usize) -> Result<u16> {
    match b.get(i..i + 2) {
        Some(&[x, y]) => Ok(u16::from_be_bytes([x, y])),
        _ => Err(Error::Overrun),
    }
}

/// The address at `off`; [`Error::Overrun`] if it runs past `b`.
pub(crate) fn addr<A: Address>(b: &[u8], off: usize) -> Result<A> {
    b.get(off..off + A::LEN)
        .and_then(A::from_bytes)
        .ok_or(Error::Overrun)
}

/// Reads `n` addresses starting at `off`; [`Error::Overrun`] if they run past `b`.
pub(crate) fn addrs<A: Address>(b: &[u8], off: usize, n: usize) -> Result<Vec<A>> {
    let bytes = b.get(off..off + A::LEN * n).ok_or(Error::Overrun)?;
    Ok(bytes
        .chunks_exact(A::LEN)
        .filter_map(A::from_bytes)
        .collect())
}

/// Writes `list` (already cut to its count) from `off` on.
pub(crate) fn write_addrs<A: Address>(b: &mut [u8], off: usize, list: &[A]) {
    for (i, a) in list.iter().enumerate() {
        let o = off + A::LEN * i;
        a.write(&mut b[o..o + A::LEN]);
    }
}

/// Counts above the 16-bit fields are cut at 65535 on emit.
pub(crate) fn clamp16(n: usize) -> usize {
    n.min(usize::from(u16::MAX))
}

/// Offset of the first record in a report.
const REPORT_HEADER_LEN: usize = 8;

impl<A: Address> Record<A> {
    /// Bytes of the fixed part: type, aux length, source count, multicast address.
    const FIXED_LEN: usize = 4 + A::LEN;

    /// Aux data length in 32-bit words as emitted: rounded up, at most 255.
    fn aux_words(&self) -> usize {
        self.aux_data.len().div_ceil(4).min(usize::from(u8::MAX))
    }

    /// Bytes this record takes in a report.
    pub fn buffer_len(&self) -> usize {
        Self::FIXED_LEN + A::LEN * clamp16(self.sources.len()) + 4 * self.aux_words()
    }

    fn emit(&self, buf: &mut [u8]) {
        let nsrc = clamp16(self.sources.len());
        let aux = self.aux_words();
        buf[0] = u8::from(self.kind);
        buf[1] = aux as u8;
        buf[2..4].copy_from_slice(&(nsrc as u16).to_be_bytes());
        self.group.write(&mut buf[4..Self::FIXED_LEN]);
        write_addrs(buf, Self::FIXED_LEN, &self.sources[..nsrc]);
        let off = Self::FIXED_LEN + A::LEN * nsrc;
        let aux_buf = &mut buf[off..off + 4 * aux];
        aux_buf.fill(0);
        let n = self.aux_data.len().min(aux_buf.len());
        aux_buf[..n].copy_from_slice(&self.aux_data[..n]);
    }
}

/// The records of a report message (`bytes` from its type byte on): the count at bytes
/// 6-7, then the records. Bytes after the last record are ignored.
pub(crate) fn parse_report<A: Address>(bytes: &[u8]) -> Result<Vec<Record<A>>> {
    let nrec = usize::from(be16(bytes, 6)?);
    // Each record takes at least its fixed part: a count the message cannot hold is
    // refused before anything is allocated for it.
    let room = bytes.len().saturating_sub(REPORT_HEADER_LEN);
    if nrec > room / Record::<A>::FIXED_LEN {
        return Err(Error::Overrun);
    }
    let mut records = Vec::with_capacity(nrec);
    let mut off = REPORT_HEADER_LEN;
    for _ in 0..nrec {
        let kind = RecordType::from(*bytes.get(off).ok_or(Error::Overrun)?);
        let aux = usize::from(*bytes.get(off + 1).ok_or(Error::Overrun)?);
        let nsrc = usize::from(be16(bytes, off + 2)?);
        let group = addr(bytes, off + 4)?;
        let src_off = off + Record::<A>::FIXED_LEN;
        let sources = addrs(bytes, src_off, nsrc)?;
        let aux_off = src_off + A::LEN * nsrc;
        let aux_data = bytes
            .get(aux_off..aux_off + 4 * aux)
            .ok_or(Error::Overrun)?
            .to_vec();
        records.push(Record {
            kind,
            group,
            sources,
            aux_data,
        });
        off = aux_off + 4 * aux;
    }
    Ok(records)
}

/// Bytes a report holding `records` takes (records past 65535 are cut).
pub(crate) fn report_len<A: Address>(records: &[Record<A>]) -> usize {
    REPORT_HEADER_LEN
        + records
            .iter()
            .take(clamp16(records.len()))
            .map(Record::buffer_len)
            .sum::<usize>()
}

/// Writes the record count and the records into `b` (of [`report_len`] bytes, zeroed);
/// the caller writes the type and the checksum.
pub(crate) fn emit_report<A: Address>(records: &[Record<A>], b: &mut [u8]) {
    let n = clamp16(records.len());
    b[6..8].copy_from_slice(&(n as u16).to_be_bytes());
    let mut off = REPORT_HEADER_LEN;
    for r in records.iter().take(n) {
        let l = r.buffer_len();
        r.emit(&mut b[off..off + l]);
        off += l;
    }
}

/// Decodes a floating-point code with `mant_bits` of mantissa and 3 of exponent below
/// a leading 1 bit (RFC 3376 section 4.1.1: 4 bits, 8-bit code; RFC 3810 section 5.1.3:
/// 12 bits, 16-bit code): below `1 << (mant_bits + 3)` the value itself, else
/// `(mant | 1 << mant_bits) << (exp + 3)`.
pub(crate) fn decode_float(code: u32, mant_bits: u32) -> u32 {
    if code < 1 << (mant_bits + 3) {
        code
    } else {
        let mant = code & ((1 << mant_bits) - 1);
        let exp = (code >> mant_bits) & 0x07;
        (mant | (1 << mant_bits)) << (exp + 3)
    }
}

/// The inverse of [`decode_float`]: exact below the threshold; above, the smallest code
/// whose decoded value is at least `value` (so a querier never asks for less time than
/// meant), saturating at the all-ones code.
pub(crate) fn encode_float(value: u32, mant_bits: u32) -> u32 {
    let threshold = 1u32 << (mant_bits + 3);
    if value < threshold {
        return value;
    }
    // decode_float is strictly increasing above the threshold, so the first exponent
    // whose mantissa range reaches `value` gives the smallest code. At that exponent the
    // rounded-up mantissa is at least 1 << mant_bits, as the previous one fell short.
    for exp in 0u32..8 {
        let mant = value.div_ceil(1 << (exp + 3));
        if mant < 2 << mant_bits {
            return threshold | (exp << mant_bits) | (mant - (1 << mant_bits));
        }
    }
    (threshold << 1) - 1
}
