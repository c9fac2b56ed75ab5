//! Netlink framing without I/O: building requests byte by byte, walking attributes of
//! replies without trusting their lengths, and decoding the kernel's (extended) acks.
//!
//! Layouts follow `include/uapi/linux/netlink.h`: a 16-byte `nlmsghdr`, then a family
//! header, then attributes (`nlattr`: u16 length, u16 type, payload, padded to 4 bytes).
//! Everything is in host byte order unless a field says otherwise.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `nlmsghdr` length.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `nlattr` header length.
pub(crate) const NLA_HDRLEN: usize = 4;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
#[cfg(test)]
pub(crate) const NLM_F_MULTI: u16 = 0x2;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_ROOT: u16 = 0x100;
pub(crate) const NLM_F_MATCH: u16 = 0x200;
pub(crate) const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// On an NLMSG_ERROR: the original request is not echoed back (NETLINK_CAP_ACK).
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
/// On an NLMSG_ERROR: extended-ack TLVs follow.
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;

pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;

/// Set on the type of an attribute whose payload is more attributes. Strict kernel
/// parsers (`nla_parse_nested`, used by the VXLAN MDB code) reject nests without it.
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;

pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one netlink request. Nests are closed in LIFO order by [`MsgBuilder::end_nest`].
#[derive(Debug, Clone)]
pub(crate) struct MsgBuilder {
    buf: Vec<u8>,
}

/// A nest opened by [`MsgBuilder::begin_nest`]: the offset of its header.
#[derive(Debug)]
#[must_use = "a nest must be closed with end_nest"]
pub(crate) struct Nest(usize);

impl MsgBuilder {
    pub(crate) fn new(msg_type: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by finish
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: 0 lets the kernel fill it
        Self { buf }
    }

    /// Appends a fixed family header (e.g. `ifinfomsg`), padded to 4 bytes.
    pub(crate) fn header(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    /// Appends one attribute, framed (header, payload, padding) by
    /// `netlink-packet-core`.
    pub(crate) fn attr(&mut self, attr_type: u16, payload: &[u8]) -> &mut Self {
        use netlink_packet_core::Emitable;
        // Attribute payloads built here are at most a few hundred bytes.
        let nla = netlink_packet_core::DefaultNla::new(attr_type, payload.to_vec());
        let start = self.buf.len();
        self.buf.resize(start + nla.buffer_len(), 0);
        nla.emit(&mut self.buf[start..]);
        self
    }

    pub(crate) fn attr_u8(&mut self, attr_type: u16, v: u8) -> &mut Self {
        self.attr(attr_type, &[v])
    }

    pub(crate) fn attr_u16(&mut self, attr_type: u16, v: u16) -> &mut Self {
        self.attr(attr_type, &v.to_ne_bytes())
    }

    pub(crate) fn attr_u32(&mut self, attr_type: u16, v: u32) -> &mut Self {
        self.attr(attr_type, &v.to_ne_bytes())
    }

    pub(crate) fn attr_ipv4(&mut self, attr_type: u16, addr: Ipv4Addr) -> &mut Self {
        self.attr(attr_type, &addr.octets())
    }

    /// An address attribute: 4 bytes for IPv4, 16 for IPv6.
    pub(crate) fn attr_ip(&mut self, attr_type: u16, addr: IpAddr) -> &mut Self {
        match addr {
            IpAddr::V4(a) => self.attr(attr_type, &a.octets()),
            IpAddr::V6(a) => self.attr(attr_type, &a.octets()),
        }
    }

    pub(crate) fn begin_nest(&mut self, attr_type: u16) -> Nest {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(attr_type | NLA_F_NESTED).to_ne_bytes());
        Nest(at)
    }

    pub(crate) fn end_nest(&mut self, nest: Nest) -> &mut Self {
        let len = u16::try_from(self.buf.len() - nest.0).unwrap_or(u16::MAX);
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// The finished message with its length and sequence number filled in.
    pub(crate) fn finish(&self, seq: u32) -> Vec<u8> {
        let mut out = self.buf.clone();
        let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
        out[0..4].copy_from_slice(&len.to_ne_bytes());
        out[8..12].copy_from_slice(&seq.to_ne_bytes());
        out
    }
}

/// One message of a reply datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawMsg<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    /// Everything after the 16-byte header.
    pub payload: &'a [u8],
}

/// Splits a datagram into messages. A truncated or impossible length ends the walk with
/// an error rather than a panic: these bytes come from the kernel but are still parsed
/// defensively.
pub(crate) fn split_messages(mut buf: &[u8]) -> Result<Vec<RawMsg<'_>>, String> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = read_u32(buf, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(format!(
                "message length {len} does not fit the {} bytes received",
                buf.len()
            ));
        }
        out.push(RawMsg {
            msg_type: read_u16(buf, 4).unwrap_or(0),
            flags: read_u16(buf, 6).unwrap_or(0),
            seq: read_u32(buf, 8).unwrap_or(0),
            payload: buf.get(NLMSG_HDRLEN..len).unwrap_or(&[]),
        });
        let next = align4(len).min(buf.len());
        buf = buf.get(next..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Iterates `(type without flag bits, payload)` over a run of attributes, each checked
/// with `netlink-packet-core`'s attribute framing (`NlaBuffer::new_checked`). Stops with
/// an error item on a malformed length; fewer bytes than a header at the end are
/// alignment, not an attribute.
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < NLA_HDRLEN {
            return None;
        }
        match netlink_packet_core::NlaBuffer::new_checked(self.rest) {
            Ok(nla) => {
                let (kind, len) = (nla.kind() & NLA_TYPE_MASK, usize::from(nla.length()));
                let payload = self.rest.get(NLA_HDRLEN..len).unwrap_or(&[]);
                self.rest = self.rest.get(align4(len)..).unwrap_or(&[]);
                Some(Ok((kind, payload)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(format!("malformed attribute: {e}")))
            }
        }
    }
}

pub(crate) fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([b[0], b[1]]))
}

pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn read_ipv4(payload: &[u8]) -> Option<Ipv4Addr> {
    let b: [u8; 4] = payload.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// An address of either family by its length (4 or 16 bytes).
pub(crate) fn read_ip(payload: &[u8]) -> Option<IpAddr> {
    match payload.len() {
        4 => read_ipv4(payload).map(IpAddr::V4),
        16 => <[u8; 16]>::try_from(payload)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

/// A string attribute without its trailing NUL.
pub(crate) fn read_str(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// What an NLMSG_ERROR (or the status of an NLMSG_DONE) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ack {
    /// 0 for success, else a positive errno.
    pub errno: i32,
    /// The kernel's explanation (extended ack, `NLMSGERR_ATTR_MSG`).
    pub message: Option<String>,
    /// Offset of the offending attribute in the request, if the kernel named one.
    pub bad_attr_offset: Option<u32>,
    /// Type of a required attribute that was missing.
    pub missing_attr: Option<u16>,
}

/// Decodes the payload of an NLMSG_ERROR: `int error`, the echoed request header (and
/// its payload unless `NLM_F_CAPPED`), then TLVs when `NLM_F_ACK_TLVS` is set.
pub(crate) fn parse_error(payload: &[u8], flags: u16) -> Result<Ack, String> {
    let raw = read_u32(payload, 0).ok_or("error message shorter than 4 bytes")?;
    let errno = (raw as i32).checked_neg().unwrap_or(i32::MAX);
    let mut ack = Ack {
        errno,
        message: None,
        bad_attr_offset: None,
        missing_attr: None,
    };
    if flags & NLM_F_ACK_TLVS == 0 {
        return Ok(ack);
    }
    let echoed_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        read_u32(payload, 4).ok_or("error message lacks the echoed header")? as usize
    };
    let tlv_start = 4usize.saturating_add(align4(echoed_len));
    let tlvs = payload.get(tlv_start..).unwrap_or(&[]);
    parse_ack_tlvs(tlvs, &mut ack)?;
    Ok(ack)
}

/// Decodes the payload of an NLMSG_DONE: `int error` then, with `NLM_F_ACK_TLVS`, TLVs.
pub(crate) fn parse_done(payload: &[u8], flags: u16) -> Result<Ack, String> {
    let raw = read_u32(payload, 0).unwrap_or(0);
    let mut ack = Ack {
        errno: (raw as i32).checked_neg().unwrap_or(i32::MAX),
        message: None,
        bad_attr_offset: None,
        missing_attr: None,
    };
    if flags & NLM_F_ACK_TLVS != 0 {
        parse_ack_tlvs(payload.get(4..).unwrap_or(&[]), &mut ack)?;
    }
    Ok(ack)
}

fn parse_ack_tlvs(tlvs: &[u8], ack: &mut Ack) -> Result<(), String> {
    for attr in attrs(tlvs) {
        let (t, p) = attr?;
        match t {
            NLMSGERR_ATTR_MSG => ack.message = Some(read_str(p)),
            NLMSGERR_ATTR_OFFS => ack.bad_attr_offset = read_u32(p, 0),
            NLMSGERR_ATTR_MISS_TYPE => ack.missing_attr = read_u32(p, 0).map(|v| v as u16),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_lays_out_header_attrs_and_nests() {
        let mut b = MsgBuilder::new(16, NLM_F_REQUEST | NLM_F_ACK);
        b.header(&[7, 0, 0]);
        b.attr_u8(1, 0xaa);
        let n = b.begin_nest(2);
        b.attr(3, &4789u16.to_be_bytes());
        b.end_nest(n);
        let bytes = b.finish(0x0102_0304);
        let mut want = Vec::new();
        want.extend_from_slice(&40u32.to_ne_bytes());
        want.extend_from_slice(&16u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&0x0102_0304u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[7, 0, 0, 0]); // header padded to 4
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(&[0xaa, 0, 0, 0]);
        want.extend_from_slice(&12u16.to_ne_bytes()); // nest: 4 + 8
        want.extend_from_slice(&(2u16 | NLA_F_NESTED).to_ne_bytes());
        want.extend_from_slice(&6u16.to_ne_bytes());
        want.extend_from_slice(&3u16.to_ne_bytes());
        want.extend_from_slice(&[0x12, 0xb5, 0, 0]); // 4789 big-endian
        assert_eq!(bytes, want);
    }

    #[test]
    fn attrs_stop_on_bad_length_without_panicking() {
        let good = [8u8, 0, 1, 0, 1, 2, 3, 4];
        let items: Vec<_> = attrs(&good).collect();
        assert_eq!(items, vec![Ok((1, &[1u8, 2, 3, 4][..]))]);
        for bad in [&[2u8, 0, 1, 0][..], &[200, 0, 1, 0, 0, 0, 0, 0][..]] {
            let items: Vec<_> = attrs(bad).collect();
            assert_eq!(items.len(), 1);
            assert!(items[0].is_err());
        }
        assert_eq!(attrs(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn split_messages_rejects_truncation() {
        let mut m = MsgBuilder::new(NLMSG_DONE, NLM_F_MULTI)
            .header(&0u32.to_ne_bytes())
            .finish(9);
        let msgs = split_messages(&m).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].seq, 9);
        assert_eq!(msgs[0].msg_type, NLMSG_DONE);
        m.truncate(18);
        m[0] = 40;
        assert!(split_messages(&m).is_err());
    }

    #[test]
    fn extended_ack_text_is_decoded() {
        // error -22, capped echo of a 16-byte header, then NLMSGERR_ATTR_MSG.
        let mut p = Vec::new();
        p.extend_from_slice(&(-22i32).to_ne_bytes());
        p.extend_from_slice(&[0u8; 16]);
        let text = b"vxlan: Missing remote destination IP address\0";
        let mut tlv = MsgBuilder::new(0, 0);
        tlv.attr(NLMSGERR_ATTR_MSG, text);
        tlv.attr_u32(NLMSGERR_ATTR_MISS_TYPE, 5);
        p.extend_from_slice(&tlv.finish(0)[NLMSG_HDRLEN..]);
        let ack = parse_error(&p, NLM_F_CAPPED | NLM_F_ACK_TLVS).unwrap();
        assert_eq!(ack.errno, 22);
        assert_eq!(
            ack.message.as_deref(),
            Some("vxlan: Missing remote destination IP address")
        );
        assert_eq!(ack.missing_attr, Some(5));
        let plain = parse_error(&0i32.to_ne_bytes(), 0).unwrap();
        assert_eq!(plain.errno, 0);
        assert!(parse_error(&[1, 2], 0).is_err());
    }
}
