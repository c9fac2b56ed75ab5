//! Conformance scenarios in the style of holo's: each `tests/conformance/NAME.scenario`
//! is a timed list of inputs, and `NAME.expected` is everything the interface must do
//! in reply (packets sent, events, state dumps), each line stamped with its time. Run
//! with `MCGATE_BLESS=1` to write the `.expected` files from the current behaviour; they
//! are then reviewed against the RFC by hand like any other change.
//!
//! Scenario lines (`#` starts a comment):
//! - `config KEY=VALUE ...`: before any `at`; keys: version (v2|v3), robustness,
//!   fast_leave, last_member_count, query_interval (seconds), address.
//! - `at SECONDS COMMAND`: lets time run to SECONDS, then does COMMAND:
//!   - `v3 HOST TYPE GROUP [SOURCE...]`: a one-record IGMPv3 report (TYPE IS_IN, IS_EX,
//!     TO_IN, TO_EX, ALLOW or BLOCK) to 224.0.0.22;
//!   - `v2-report HOST GROUP`, `v1-report HOST GROUP`, `leave HOST GROUP`;
//!   - `v2-query ROUTER GROUP`, `v3-query ROUTER GROUP [s] [SOURCE...]`;
//!   - `state GROUP`: dump the group's state and timers;
//!   - `wait`: nothing (just let time run).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use mcgate_igmp::{Config, Event, FilterMode, Interface, SourceFilter, Version};
use mcgate_wire::igmp::{GroupRecord, IgmpRepr, QueryV3, RecordType, emit_ip_packet};

fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or_else(|_| panic!("bad address {s:?}"))
}

fn addrs<'a>(it: impl Iterator<Item = &'a str>) -> Vec<Ipv4Addr> {
    it.map(addr).collect()
}

fn list(a: impl IntoIterator<Item = Ipv4Addr>) -> String {
    let v: Vec<String> = a.into_iter().map(|a| a.to_string()).collect();
    format!("{{{}}}", v.join(","))
}

fn filter(f: &SourceFilter) -> String {
    let mode = match f.mode {
        FilterMode::Include => "include",
        FilterMode::Exclude => "exclude",
    };
    format!("{mode}{}", list(f.sources.iter().copied()))
}

fn message(m: &IgmpRepr) -> String {
    match m {
        IgmpRepr::QueryV2 {
            group,
            max_resp_time,
        } => format!("v2-query group={group} mrt={max_resp_time}"),
        IgmpRepr::QueryV3(q) => format!(
            "v3-query group={} s={} mrc={} qrv={} qqic={} sources={}",
            q.group,
            u8::from(q.suppress),
            q.max_resp_code,
            q.qrv,
            q.qqic,
            list(q.sources.iter().copied())
        ),
        other => format!("{other:?}"),
    }
}

struct Run {
    t0: Instant,
    now: Instant,
    igmp: Interface,
    out: String,
}

impl Run {
    fn stamp(&self) -> String {
        format!("{:9.3}", (self.now - self.t0).as_secs_f64())
    }

    fn collect(&mut self) {
        let stamp = self.stamp();
        while let Some(t) = self.igmp.poll_transmit() {
            writeln!(self.out, "{stamp} send {} {}", t.dst, message(&t.message)).unwrap();
        }
        while let Some(e) = self.igmp.poll_event() {
            let line = match e {
                Event::GroupChanged {
                    group,
                    filter: Some(f),
                    reporters,
                } => format!("group {group} {} reporters={}", filter(&f), list(reporters)),
                Event::GroupChanged { group, .. } => format!("group {group} gone"),
                Event::QuerierChanged { querier: Some(q) } => format!("querier {q}"),
                Event::QuerierChanged { querier: None } => "querier self".to_string(),
            };
            writeln!(self.out, "{stamp} event {line}").unwrap();
        }
    }

    fn run_until(&mut self, end: Instant) {
        while let Some(t) = self.igmp.poll_timeout() {
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

    fn state(&mut self, group: Ipv4Addr) {
        let stamp = self.stamp();
        let off = |t: Option<Instant>| match t {
            Some(t) => format!("{:.3}", (t - self.t0).as_secs_f64()),
            None => "0".to_string(),
        };
        let line = match self.igmp.group_state(group) {
            None => format!("state {group} none"),
            Some(st) => {
                let sources: Vec<String> = st
                    .sources
                    .iter()
                    .map(|(a, t)| format!("{a}:{}", off(*t)))
                    .collect();
                format!(
                    "state {group} {:?} timer={} compat=v{} sources={{{}}}",
                    st.mode,
                    off(st.group_timer),
                    st.compatibility,
                    sources.join(",")
                )
            }
        };
        writeln!(self.out, "{stamp} {line}").unwrap();
    }
}

fn record_type(s: &str) -> RecordType {
    match s {
        "IS_IN" => RecordType::ModeIsInclude,
        "IS_EX" => RecordType::ModeIsExclude,
        "TO_IN" => RecordType::ChangeToInclude,
        "TO_EX" => RecordType::ChangeToExclude,
        "ALLOW" => RecordType::AllowNewSources,
        "BLOCK" => RecordType::BlockOldSources,
        other => panic!("unknown record type {other}"),
    }
}

fn run_scenario(text: &str) -> String {
    let mut config = Config::default();
    let mut address = Ipv4Addr::new(10, 0, 0, 10);
    let mut run: Option<Run> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut w = line.split_whitespace();
        match w.next() {
            Some("config") => {
                assert!(run.is_none(), "line {}: config after start", n + 1);
                for kv in w {
                    let (k, v) = kv.split_once('=').expect("KEY=VALUE");
                    match k {
                        "version" => {
                            config.version = if v == "v2" { Version::V2 } else { Version::V3 }
                        }
                        "robustness" => config.robustness = v.parse().unwrap(),
                        "fast_leave" => config.fast_leave = v.parse().unwrap(),
                        "last_member_count" => config.last_member_count = v.parse().unwrap(),
                        "query_interval" => {
                            config.query_interval = Duration::from_secs(v.parse().unwrap());
                            config.startup_query_interval = config.query_interval / 4;
                        }
                        "address" => address = addr(v),
                        other => panic!("line {}: unknown key {other}", n + 1),
                    }
                }
            }
            Some("at") => {
                let r = run.get_or_insert_with(|| {
                    // The origin instant is arbitrary; the crate reads no clock.
                    let t0 = Instant::now();
                    let igmp = Interface::new(config.clone(), address, t0);
                    let mut r = Run {
                        t0,
                        now: t0,
                        igmp,
                        out: String::new(),
                    };
                    r.collect();
                    r
                });
                let secs: f64 = w.next().expect("time").parse().expect("seconds");
                let at = r.t0 + Duration::from_secs_f64(secs);
                assert!(at >= r.now, "line {}: time goes backwards", n + 1);
                r.run_until(at);
                let cmd = w.next().expect("command");
                let rest: Vec<&str> = w.collect();
                let send = |r: &mut Run, src: Ipv4Addr, dst: Ipv4Addr, m: IgmpRepr| {
                    r.igmp.handle_packet(r.now, &emit_ip_packet(src, dst, &m));
                    r.collect();
                };
                match (cmd, rest.as_slice()) {
                    ("v3", [host, kind, group, sources @ ..]) => {
                        let record = GroupRecord {
                            kind: record_type(kind),
                            group: addr(group),
                            sources: addrs(sources.iter().copied()),
                            aux_data: vec![],
                        };
                        let m = IgmpRepr::ReportV3 {
                            records: vec![record],
                        };
                        send(r, addr(host), Ipv4Addr::new(224, 0, 0, 22), m);
                    }
                    ("v2-report", [host, group]) => {
                        let g = addr(group);
                        send(r, addr(host), g, IgmpRepr::ReportV2 { group: g });
                    }
                    ("v1-report", [host, group]) => {
                        let g = addr(group);
                        send(r, addr(host), g, IgmpRepr::ReportV1 { group: g });
                    }
                    ("leave", [host, group]) => {
                        let g = addr(group);
                        send(
                            r,
                            addr(host),
                            Ipv4Addr::new(224, 0, 0, 2),
                            IgmpRepr::LeaveV2 { group: g },
                        );
                    }
                    ("v2-query", [from, group]) => {
                        let g = addr(group);
                        let dst = if g.is_unspecified() {
                            Ipv4Addr::new(224, 0, 0, 1)
                        } else {
                            g
                        };
                        let mrt = if g.is_unspecified() { 100 } else { 10 };
                        send(
                            r,
                            addr(from),
                            dst,
                            IgmpRepr::QueryV2 {
                                group: g,
                                max_resp_time: mrt,
                            },
                        );
                    }
                    ("v3-query", [from, group, more @ ..]) => {
                        let g = addr(group);
                        let suppress = more.first() == Some(&"s");
                        let sources = more.iter().copied().filter(|x| *x != "s");
                        let dst = if g.is_unspecified() {
                            Ipv4Addr::new(224, 0, 0, 1)
                        } else {
                            g
                        };
                        let q = QueryV3 {
                            group: g,
                            max_resp_code: if g.is_unspecified() { 100 } else { 10 },
                            suppress,
                            qrv: 2,
                            qqic: 125,
                            sources: addrs(sources),
                        };
                        send(r, addr(from), dst, IgmpRepr::QueryV3(q));
                    }
                    ("state", [group]) => r.state(addr(group)),
                    ("wait", []) => {}
                    _ => panic!("line {}: cannot read {line:?}", n + 1),
                }
            }
            _ => panic!("line {}: cannot read {line:?}", n + 1),
        }
    }
    run.map(|r| r.out).unwrap_or_default()
}

#[test]
fn conformance_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let bless = std::env::var_os("MCGATE_BLESS").is_some();
    let mut names: BTreeSet<_> = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("tests/conformance exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "scenario") {
            names.insert(path);
        }
    }
    assert!(!names.is_empty());
    let mut failures = Vec::new();
    for path in names {
        let got = run_scenario(&std::fs::read_to_string(&path).unwrap());
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
