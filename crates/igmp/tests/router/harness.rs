//! A simulated link around one router interface: hosts and other routers send real
//! packets (built with mcgate-wire), time is `t0 + offset`, and the driver wakes the
//! interface at every deadline it asks for, as the agent does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcgate_igmp::{Config, Event, FilterMode, GroupState, Interface, SourceFilter, Transmit};
use mcgate_wire::igmp::{GroupRecord, IgmpRepr, QueryV3, RecordType, emit_ip_packet};
use mcgate_wire::ipv4;

pub use mcgate_igmp::{IgmpSettings, Version};

pub const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
pub const G: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
pub use mcgate_igmp::{ALL_ROUTERS, ALL_SYSTEMS, ALL_V3_ROUTERS as V3_ROUTERS};

/// Source number n.
pub fn s(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

/// Host number n on the link.
pub fn h(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 100 + n)
}

pub fn set(ns: &[u8]) -> BTreeSet<Ipv4Addr> {
    ns.iter().map(|n| s(*n)).collect()
}

pub fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

pub use RecordType::{
    AllowNewSources as ALLOW, BlockOldSources as BLOCK, ChangeToExclude as TO_EX,
    ChangeToInclude as TO_IN, ModeIsExclude as IS_EX, ModeIsInclude as IS_IN,
};

/// The defaults on a link shared with other routers, where queries take part in the
/// election ([`Config::other_queriers`]).
pub fn shared() -> Config {
    Config {
        other_queriers: true,
        ..Config::default()
    }
}

/// Defaults: GMI 260 s, LMQI 1 s, LMQC 2 (LMQT 2 s), QI 125 s, QRI 10 s.
pub fn gmi() -> Duration {
    Config::default().group_membership_interval()
}
pub fn lmqt() -> Duration {
    Config::default().last_member_query_time()
}

/// An IP packet with explicit TTL and Router Alert, for the validation tests.
pub fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, alert: bool, igmp: &[u8]) -> Vec<u8> {
    let ip = ipv4::Repr {
        src,
        dst,
        protocol: ipv4::PROTOCOL_IGMP,
        ttl,
        tos: 0xc0,
        payload_len: igmp.len(),
        router_alert: alert,
        dont_frag: true,
    };
    let mut buf = vec![0u8; ip.buffer_len()];
    ip.emit(&mut buf);
    buf[ip.header_len()..].copy_from_slice(igmp);
    buf
}

pub fn igmp_bytes(repr: &IgmpRepr) -> Vec<u8> {
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut b);
    b
}

/// Mode, group timer and source timers, as offsets from the start.
pub type Snapshot = (
    FilterMode,
    Option<Duration>,
    BTreeMap<Ipv4Addr, Option<Duration>>,
);

pub struct Link {
    pub t0: Instant,
    pub now: Instant,
    pub igmp: Interface,
    pub sent: Vec<(Duration, Transmit)>,
    pub events: Vec<Event>,
}

impl Link {
    /// A router at [`ROUTER`], its startup query already taken.
    pub fn new(config: Config) -> Self {
        Self::with_address(config, ROUTER)
    }

    pub fn with_address(config: Config, address: Ipv4Addr) -> Self {
        // Any fixed instant serves as the origin; the crate under test reads no clock.
        let t0 = Instant::now();
        let igmp = Interface::new(config, address, t0);
        let mut link = Self {
            t0,
            now: t0,
            igmp,
            sent: Vec::new(),
            events: Vec::new(),
        };
        link.collect();
        link.sent.clear();
        link
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// An instant `d` after the start.
    pub fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    fn collect(&mut self) {
        let e = self.elapsed();
        while let Some(t) = self.igmp.poll_transmit() {
            self.sent.push((e, t));
        }
        while let Some(ev) = self.igmp.poll_event() {
            self.events.push(ev);
        }
    }

    /// Lets `d` pass, waking the interface at each deadline it asked for.
    pub fn wait(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.igmp.poll_timeout() {
            assert!(t >= self.now, "poll_timeout in the past");
            if t > end {
                break;
            }
            self.now = t;
            self.igmp.handle_timeout(t);
            self.collect();
        }
        self.now = end;
        self.igmp.handle_timeout(end);
        self.collect();
    }

    /// Lets time run until `d` after the start.
    pub fn wait_until(&mut self, d: Duration) {
        let target = self.t0 + d;
        assert!(target >= self.now);
        self.wait(target - self.now);
    }

    pub fn deliver(&mut self, packet: &[u8]) {
        self.igmp.handle_packet(self.now, packet);
        self.collect();
    }

    pub fn send(&mut self, src: Ipv4Addr, dst: Ipv4Addr, repr: &IgmpRepr) {
        let p = emit_ip_packet(src, dst, repr);
        self.deliver(&p);
    }

    pub fn report(&mut self, host: Ipv4Addr, records: &[(RecordType, Ipv4Addr, &[u8])]) {
        let records = records
            .iter()
            .map(|(kind, group, srcs)| GroupRecord {
                kind: *kind,
                group: *group,
                sources: srcs.iter().map(|n| s(*n)).collect(),
                aux_data: Vec::new(),
            })
            .collect();
        self.send(host, V3_ROUTERS, &IgmpRepr::ReportV3 { records });
    }

    /// One IGMPv3 record about [`G`] from host 1.
    pub fn rec(&mut self, kind: RecordType, srcs: &[u8]) {
        self.report(h(1), &[(kind, G, srcs)]);
    }

    pub fn report_v2(&mut self, host: Ipv4Addr, group: Ipv4Addr) {
        self.send(host, group, &IgmpRepr::ReportV2 { group });
    }

    pub fn report_v1(&mut self, host: Ipv4Addr, group: Ipv4Addr) {
        self.send(host, group, &IgmpRepr::ReportV1 { group });
    }

    pub fn leave(&mut self, host: Ipv4Addr, group: Ipv4Addr) {
        self.send(host, ALL_ROUTERS, &IgmpRepr::LeaveV2 { group });
    }

    pub fn query_v3(&mut self, from: Ipv4Addr, group: Ipv4Addr, suppress: bool, srcs: &[u8]) {
        let q = IgmpRepr::QueryV3(QueryV3 {
            group,
            max_resp_code: if group.is_unspecified() { 100 } else { 10 },
            suppress,
            qrv: 2,
            qqic: 125,
            sources: srcs.iter().map(|n| s(*n)).collect(),
        });
        let dst = if group.is_unspecified() {
            ALL_SYSTEMS
        } else {
            group
        };
        self.send(from, dst, &q);
    }

    pub fn query_v2(&mut self, from: Ipv4Addr, group: Ipv4Addr) {
        let q = IgmpRepr::QueryV2 {
            group,
            max_resp_time: if group.is_unspecified() { 100 } else { 10 },
        };
        let dst = if group.is_unspecified() {
            ALL_SYSTEMS
        } else {
            group
        };
        self.send(from, dst, &q);
    }

    pub fn state(&self) -> Option<GroupState> {
        self.igmp.group_state(G)
    }

    /// Mode, and each source with its timer as an offset from the start (None = 0).
    pub fn snapshot(&self) -> Option<Snapshot> {
        let st = self.state()?;
        let off = |t: Option<Instant>| t.map(|t| t - self.t0);
        Some((
            st.mode,
            off(st.group_timer),
            st.sources.iter().map(|(a, t)| (*a, off(*t))).collect(),
        ))
    }

    pub fn filter(&self, group: Ipv4Addr) -> Option<SourceFilter> {
        self.igmp
            .groups()
            .find(|(g, _)| *g == group)
            .map(|(_, f)| f)
    }

    /// Queries sent so far (and forget them): (when, dst, message).
    pub fn take_sent(&mut self) -> Vec<(Duration, Ipv4Addr, IgmpRepr)> {
        std::mem::take(&mut self.sent)
            .into_iter()
            .map(|(e, t)| (e, t.dst, t.message))
            .collect()
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// Builds the expected source map of a snapshot.
pub fn srcs(list: &[(u8, Option<Duration>)]) -> BTreeMap<Ipv4Addr, Option<Duration>> {
    list.iter().map(|(n, t)| (s(*n), *t)).collect()
}

/// A v3 group-and-source-specific query as this router sends it (LMQI 1 s = code 10).
pub fn gs_query(group: Ipv4Addr, suppress: bool, sources: &[u8]) -> IgmpRepr {
    IgmpRepr::QueryV3(QueryV3 {
        group,
        max_resp_code: 10,
        suppress,
        qrv: 2,
        qqic: 125,
        sources: sources.iter().map(|n| s(*n)).collect(),
    })
}

/// The bytes of a golden fixture of mcgate-wire (`crates/wire/fixtures/<file>`, hex).
pub fn wire_fixture(file: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wire/fixtures")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    hex.chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(s, 16).expect("hex")
        })
        .collect()
}
