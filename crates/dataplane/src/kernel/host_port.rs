//! Task ports are host ports: containers are hosts, not multicast routers.
//!
//! A bridge port that hears an IGMP query becomes a multicast router port (it then gets
//! every group, joined or not), and the bridge's own querier falls silent as soon as a
//! query from a lower address arrives (RFC 3376 section 6.6.2): one task sending
//! queries takes over the whole host's snooping. So every task port gets
//!
//! - `multicast_router 0` (`IFLA_BRPORT_MULTICAST_ROUTER`): never a router port;
//! - a tc ingress filter (a `clsact` qdisc and a `bpf` classifier in direct-action
//!   mode running a classic BPF program) that drops what only routers send, before the
//!   bridge sees it: IGMP queries of every version (type 0x11; RFC 1112, RFC 2236,
//!   RFC 3376), DVMRP (0x13), Multicast Router Advertisements and Terminations (0x30,
//!   0x32; RFC 4286), and PIM (IP protocol 103; RFC 7761). Reports, leaves and
//!   solicitations pass. The kernel counts the drops in the `clsact` qdisc's
//!   statistics, read back by [`Netlink::host_port_drops`].
//!
//! Classic BPF needs no compiler, no maps and no `bpf()` call: the kernel converts it,
//! and a task's every packet costs a handful of instructions (six at most for anything
//! that is not IGMP or PIM). No tc action module is needed either: the program's return
//! value is the verdict (`TC_ACT_SHOT` or `TC_ACT_UNSPEC`, "carry on").
//!
//! Messages are built with `netlink-packet-route`'s tc and link types and sent on the
//! plane's own socket.

use netlink_packet_core::{DefaultNla, Emitable, Parseable};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{LinkAttribute, LinkHeader, LinkMessage, LinkProtoInfoBridge};
use netlink_packet_route::tc::{
    TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHandle, TcHeader, TcMessage, TcOption, TcStats2,
};

use super::error::Error;
use super::nl::{MsgBuilder, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST};
use super::socket::Netlink;

const RTM_SETLINK: u16 = 19;
const RTM_NEWQDISC: u16 = 36;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;
const IFLA_BRPORT_MULTICAST_ROUTER: u16 = 25;
const IFLA_BRPORT_FAST_LEAVE: u16 = 7;
const TCA_BPF_OPS_LEN: u16 = 4;
const TCA_BPF_OPS: u16 = 5;
const ETH_P_IP: u16 = 0x0800;
/// The priority of mcgate's filter among the port's ingress filters ("MG").
pub const FILTER_PRIORITY: u16 = 0x4d47;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset when true.
    pub jt: u8,
    /// Jump offset when false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

const LDH_ABS: u16 = 0x28;
const LDB_ABS: u16 = 0x30;
const LDB_IND: u16 = 0x50;
const LDX_MSH: u16 = 0xb1;
const AND_K: u16 = 0x54;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// `TC_ACT_UNSPEC`: no verdict, the packet goes on.
pub const PASS: u32 = u32::MAX;
/// `TC_ACT_SHOT`: drop.
pub const DROP: u32 = 2;

/// The program, over the Ethernet frame (cls_bpf pushes the MAC header at ingress):
/// IPv4 PIM, and IGMP whose type masked with 0xfd is 0x11 (query, DVMRP) or 0x30
/// (router advertisement, termination), are dropped; everything else goes on.
pub const ROUTER_ONLY: [Insn; 12] = [
    insn(LDH_ABS, 0, 0, 12),   // 0: ethertype
    insn(JEQ_K, 0, 8, 0x0800), // 1: not IPv4 -> pass
    insn(LDB_ABS, 0, 0, 23),   // 2: IP protocol
    insn(JEQ_K, 7, 0, 103),    // 3: PIM -> drop
    insn(JEQ_K, 0, 5, 2),      // 4: not IGMP -> pass
    insn(LDX_MSH, 0, 0, 14),   // 5: x = IP header length
    insn(LDB_IND, 0, 0, 14),   // 6: IGMP type
    insn(AND_K, 0, 0, 0xfd),   // 7
    insn(JEQ_K, 2, 0, 0x11),   // 8: 0x11, 0x13 -> drop
    insn(JEQ_K, 1, 0, 0x30),   // 9: 0x30, 0x32 -> drop
    insn(RET_K, 0, 0, PASS),   // 10
    insn(RET_K, 0, 0, DROP),   // 11
];

fn request(msg_type: u16, extra: u16, payload: &[u8]) -> MsgBuilder {
    let mut m = MsgBuilder::new(msg_type, NLM_F_REQUEST | NLM_F_ACK | extra);
    m.header(payload);
    m
}

fn emit(msg: &impl Emitable) -> Vec<u8> {
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    buf
}

fn tc_header(port: u32, parent: TcHandle, info: u32) -> TcHeader {
    TcHeader {
        index: i32::try_from(port).unwrap_or(i32::MAX),
        parent,
        info,
        ..TcHeader::default()
    }
}

/// The `clsact` parent's ingress hook, where the filter sits.
fn ingress_hook() -> TcHandle {
    TcHandle {
        major: TcHandle::CLSACT.major,
        minor: TcHandle::MIN_INGRESS,
    }
}

/// `tcm_info` of a filter: priority and protocol (network byte order).
fn filter_info() -> u32 {
    (u32::from(FILTER_PRIORITY) << 16) | u32::from(ETH_P_IP.to_be())
}

/// RTM_SETLINK (AF_BRIDGE) setting port `port`'s `multicast_router` to `mode` (0:
/// never a router port; 1: the kernel's default, learnt from queries).
pub(crate) fn set_multicast_router(port: u32, mode: u8) -> MsgBuilder {
    set_port_byte(port, IFLA_BRPORT_MULTICAST_ROUTER, mode)
}

/// RTM_SETLINK (AF_BRIDGE) setting port `port`'s `fast_leave` (snooping acts on a leave
/// at once, with no group-specific query: right only where the port has one host).
pub(crate) fn set_fast_leave(port: u32, on: bool) -> MsgBuilder {
    set_port_byte(port, IFLA_BRPORT_FAST_LEAVE, on.into())
}

/// RTM_SETLINK (AF_BRIDGE) setting one single-byte port attribute.
fn set_port_byte(port: u32, attr: u16, value: u8) -> MsgBuilder {
    let header = LinkHeader {
        interface_family: AddressFamily::Bridge,
        index: port,
        ..LinkHeader::default()
    };
    let mut msg = LinkMessage::default();
    msg.header = header;
    msg.attributes = vec![LinkAttribute::ProtoInfoBridge(vec![
        LinkProtoInfoBridge::Other(DefaultNla::new(attr, vec![value])),
    ])];
    request(RTM_SETLINK, 0, &emit(&msg))
}

/// RTM_NEWQDISC: a `clsact` qdisc on `port` (refused with EEXIST when there is one).
pub(crate) fn add_clsact(port: u32) -> MsgBuilder {
    let mut header = tc_header(port, TcHandle::CLSACT, 0);
    header.handle = TcHandle {
        major: TcHandle::CLSACT.major,
        minor: 0,
    };
    let msg = TcMessage::from_parts(header, vec![TcAttribute::Kind("clsact".into())]);
    request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, &emit(&msg))
}

/// RTM_NEWTFILTER: the `bpf` classifier running [`ROUTER_ONLY`] in direct-action mode.
pub(crate) fn add_filter(port: u32) -> MsgBuilder {
    let mut ops = Vec::with_capacity(ROUTER_ONLY.len() * 8);
    for i in ROUTER_ONLY {
        ops.extend_from_slice(&i.code.to_ne_bytes());
        ops.extend_from_slice(&[i.jt, i.jf]);
        ops.extend_from_slice(&i.k.to_ne_bytes());
    }
    let len = (ROUTER_ONLY.len() as u16).to_ne_bytes().to_vec();
    let msg = TcMessage::from_parts(
        tc_header(port, ingress_hook(), filter_info()),
        vec![
            TcAttribute::Kind("bpf".into()),
            TcAttribute::Options(vec![
                TcOption::Bpf(TcFilterBpfOption::Other(DefaultNla::new(
                    TCA_BPF_OPS_LEN,
                    len,
                ))),
                TcOption::Bpf(TcFilterBpfOption::Other(DefaultNla::new(TCA_BPF_OPS, ops))),
                TcOption::Bpf(TcFilterBpfOption::ProgName("mcgate-host-port".into())),
                TcOption::Bpf(TcFilterBpfOption::Flags(TcBpfFlags::DirectAction)),
            ]),
        ],
    );
    request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, &emit(&msg))
}

/// RTM_DELTFILTER removing mcgate's filter on `port`.
pub(crate) fn del_filter(port: u32) -> MsgBuilder {
    let msg = TcMessage::from_parts(tc_header(port, ingress_hook(), filter_info()), vec![]);
    request(RTM_DELTFILTER, 0, &emit(&msg))
}

/// RTM_GETTFILTER dump of `port`'s ingress filters.
pub(crate) fn dump_filters(port: u32) -> MsgBuilder {
    let msg = TcMessage::from_parts(tc_header(port, ingress_hook(), 0), vec![]);
    let mut m = MsgBuilder::new(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP);
    m.header(&emit(&msg));
    m
}

/// RTM_GETQDISC dump (every device's qdiscs; filtered here).
pub(crate) fn dump_qdiscs() -> MsgBuilder {
    let msg = TcMessage::from_parts(TcHeader::default(), vec![]);
    let mut m = MsgBuilder::new(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP);
    m.header(&emit(&msg));
    m
}

/// Whether a filter dump (RTM_NEWTFILTER payloads) holds mcgate's filter: a `bpf`
/// classifier at [`FILTER_PRIORITY`]. Payloads that do not parse are skipped.
pub fn has_filter<'a>(payloads: impl IntoIterator<Item = &'a [u8]>) -> bool {
    payloads.into_iter().any(|p| {
        TcMessage::parse(p).is_ok_and(|m| {
            m.header.info >> 16 == u32::from(FILTER_PRIORITY)
                && m.attributes
                    .iter()
                    .any(|a| matches!(a, TcAttribute::Kind(k) if k == "bpf"))
        })
    })
}

/// The packets dropped by the `clsact` qdisc of device `port`, from a qdisc dump
/// (RTM_NEWQDISC payloads); `None` when it has none. Payloads that do not parse are
/// skipped.
pub fn clsact_drops<'a>(port: u32, payloads: impl IntoIterator<Item = &'a [u8]>) -> Option<u64> {
    payloads.into_iter().find_map(|p| {
        let m = TcMessage::parse(p).ok()?;
        let clsact = m.header.index == i32::try_from(port).ok()?
            && m.attributes
                .iter()
                .any(|a| matches!(a, TcAttribute::Kind(k) if k == "clsact"));
        if !clsact {
            return None;
        }
        let mut drops = 0u64;
        for a in &m.attributes {
            match a {
                TcAttribute::Stats2(s) => {
                    for q in s {
                        if let TcStats2::Queue(q) = q {
                            return Some(u64::from(q.drops));
                        }
                    }
                }
                TcAttribute::Stats(s) => drops = u64::from(s.drops),
                _ => {}
            }
        }
        Some(drops)
    })
}

impl Netlink {
    /// Makes bridge port `port` a host port (see the module docs): never a multicast
    /// router port, and router-only messages arriving on it dropped and counted.
    /// Idempotent: a port already guarded is left as it is (its counters go on).
    pub fn guard_host_port(&mut self, port: u32) -> Result<(), Error> {
        self.request(
            &set_multicast_router(port, 0),
            &format!("make bridge port #{port} a host port (multicast_router 0)"),
        )?;
        if self.host_port_guarded(port)? {
            return Ok(());
        }
        match self.request(&add_clsact(port), &format!("add a clsact qdisc on #{port}")) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => return Err(e),
        }
        self.request(
            &add_filter(port),
            &format!("add the host-port filter on #{port}"),
        )
    }

    /// Undoes [`guard_host_port`](Self::guard_host_port): removes the filter and puts
    /// `multicast_router` back to the kernel's default (1, learnt from queries). The
    /// `clsact` qdisc stays (other filters may use it).
    pub fn unguard_host_port(&mut self, port: u32) -> Result<(), Error> {
        match self.request(
            &del_filter(port),
            &format!("remove the host-port filter on #{port}"),
        ) {
            Ok(()) => {}
            // No such filter, or no qdisc at all.
            Err(e) if e.is_not_found() || e.errno() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
        self.request(
            &set_multicast_router(port, 1),
            &format!("set bridge port #{port} multicast_router back to 1"),
        )
    }

    /// Sets bridge port `port`'s `fast_leave` flag (see [`set_fast_leave`]).
    pub fn set_port_fast_leave(&mut self, port: u32, on: bool) -> Result<(), Error> {
        self.request(
            &set_fast_leave(port, on),
            &format!("set bridge port #{port} fast_leave {}", u8::from(on)),
        )
    }

    /// Whether mcgate's filter is on `port`, read back from the kernel.
    pub fn host_port_guarded(&mut self, port: u32) -> Result<bool, Error> {
        let op = format!("read the ingress filters of #{port}");
        let replies = match self.dump(&dump_filters(port), &op) {
            Ok(r) => r,
            Err(e) if e.is_not_found() || e.errno() == Some(libc::EINVAL) => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(has_filter(
            replies
                .iter()
                .filter(|r| r.msg_type == RTM_NEWTFILTER)
                .map(|r| r.payload.as_slice()),
        ))
    }

    /// Packets dropped at `port`'s ingress so far (the `clsact` qdisc's drop count:
    /// mcgate's filter, plus any other filter there that drops).
    pub fn host_port_drops(&mut self, port: u32) -> Result<u64, Error> {
        Ok(self.ingress_drops(&[port])?.first().copied().unwrap_or(0))
    }

    /// [`host_port_drops`](Self::host_port_drops) of every port in `ports`, in order,
    /// from one qdisc dump.
    pub fn ingress_drops(&mut self, ports: &[u32]) -> Result<Vec<u64>, Error> {
        let replies = self.dump(&dump_qdiscs(), "read the qdiscs")?;
        let payloads: Vec<&[u8]> = replies
            .iter()
            .filter(|r| r.msg_type == RTM_NEWQDISC)
            .map(|r| r.payload.as_slice())
            .collect();
        Ok(ports
            .iter()
            .map(|p| clsact_drops(*p, payloads.iter().copied()).unwrap_or(0))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program over `frame`, as the kernel would for the opcodes
    /// [`ROUTER_ONLY`] uses (an out-of-range load returns 0).
    fn run(prog: &[Insn], frame: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |at: usize| frame.get(at).map(|b| u32::from(*b));
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LDH_ABS => match (byte(i.k as usize), byte(i.k as usize + 1)) {
                    (Some(h), Some(l)) => a = h << 8 | l,
                    _ => return 0,
                },
                LDB_ABS => match byte(i.k as usize) {
                    Some(b) => a = b,
                    None => return 0,
                },
                LDB_IND => match byte(x as usize + i.k as usize) {
                    Some(b) => a = b,
                    None => return 0,
                },
                LDX_MSH => match byte(i.k as usize) {
                    Some(b) => x = (b & 0xf) * 4,
                    None => return 0,
                },
                AND_K => a &= i.k,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                RET_K => return i.k,
                other => panic!("opcode {other:#x} not modelled"),
            }
        }
    }

    fn frame(ethertype: u16, ihl: u8, protocol: u8, first_payload_byte: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + usize::from(ihl) * 4 + 8];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f[14] = 0x40 | ihl;
        f[14 + 9] = protocol;
        f[14 + usize::from(ihl) * 4] = first_payload_byte;
        f
    }

    #[test]
    fn router_only_messages_are_dropped_and_host_messages_pass() {
        for ihl in 5..=15 {
            for t in [0x11, 0x13, 0x30, 0x32] {
                assert_eq!(run(&ROUTER_ONLY, &frame(0x0800, ihl, 2, t)), DROP, "{t:#x}");
            }
            // Reports (v1, v2, v3), leaves and router solicitations are the host's.
            for t in [0x12, 0x16, 0x17, 0x22, 0x31] {
                assert_eq!(run(&ROUTER_ONLY, &frame(0x0800, ihl, 2, t)), PASS, "{t:#x}");
            }
            assert_eq!(run(&ROUTER_ONLY, &frame(0x0800, ihl, 103, 0x20)), DROP);
            // UDP whose first byte looks like a query is data.
            assert_eq!(run(&ROUTER_ONLY, &frame(0x0800, ihl, 17, 0x11)), PASS);
        }
        assert_eq!(run(&ROUTER_ONLY, &frame(0x86dd, 5, 2, 0x11)), PASS);
        // Cut short anywhere: no verdict the kernel would act on but "no match" (0) or
        // "pass".
        let q = frame(0x0800, 6, 2, 0x11);
        for n in 0..q.len() - 8 {
            assert_ne!(run(&ROUTER_ONLY, &q[..n]), DROP, "{n}");
        }
    }

    #[test]
    fn filter_request_carries_the_program_priority_and_protocol() {
        let bytes = add_filter(7).finish(1);
        // nlmsghdr (16) then tcmsg: family, pad, ifindex, handle, parent, info.
        let tcm = &bytes[16..36];
        assert_eq!(i32::from_ne_bytes(tcm[4..8].try_into().unwrap()), 7);
        assert_eq!(
            u32::from_ne_bytes(tcm[12..16].try_into().unwrap()),
            0xffff_fff2
        );
        let info = u32::from_ne_bytes(tcm[16..20].try_into().unwrap());
        assert_eq!(info >> 16, u32::from(FILTER_PRIORITY));
        assert_eq!((info & 0xffff) as u16, ETH_P_IP.to_be());
        let msg = TcMessage::parse(&bytes[16..]).expect("parses back");
        let text = format!("{msg:?}");
        assert!(
            text.contains("bpf") && text.contains("DirectAction"),
            "{text}"
        );
        assert!(has_filter([&bytes[16..]]));
        assert!(!has_filter([&add_clsact(7).finish(1)[16..]]));
        // Bytes that are no tc message are skipped.
        assert!(!has_filter([&[1u8, 2, 3][..]]));
        assert_eq!(clsact_drops(7, [&[1u8, 2, 3][..]]), None);
        // A clsact qdisc without statistics counts nothing yet.
        assert_eq!(clsact_drops(7, [&add_clsact(7).finish(1)[16..]]), Some(0));
        assert_eq!(clsact_drops(8, [&add_clsact(7).finish(1)[16..]]), None);
    }

    #[test]
    fn multicast_router_request_nests_the_port_attribute() {
        let bytes = set_multicast_router(9, 0).finish(1);
        // ifinfomsg: family AF_BRIDGE, index 9.
        assert_eq!(bytes[16], 7);
        assert_eq!(u32::from_ne_bytes(bytes[20..24].try_into().unwrap()), 9);
        // IFLA_PROTINFO | NLA_F_NESTED holding IFLA_BRPORT_MULTICAST_ROUTER = 0.
        let attr = &bytes[32..];
        assert_eq!(u16::from_ne_bytes([attr[2], attr[3]]), 12 | 0x8000);
        assert_eq!(u16::from_ne_bytes([attr[6], attr[7]]), 25);
        assert_eq!(attr[8], 0);
    }
}
