//! Conformance scenarios in the style of holo's: each `tests/conformance/NAME.scenario`
//! is a timed list of inputs, and `NAME.expected` is everything the interface must do
//! in reply (packets sent, events, state dumps), each line stamped with its time. Run
//! with `MCGATE_BLESS=1` to write the `.expected` files from the current behaviour; they
//! are then reviewed against the RFC by hand like any other change.
//!
//! Scenario lines (`#` starts a comment):
//! - `config KEY=VALUE ...`: before any `at`; keys: version (v2|v3), robustness,
//!   fast_leave, last_member_count, query_interval (seconds), address, other_queriers
//!   (true on a link shared with routers), startup_response_ms, report_rate_limit,
//!   report_burst.
//! - `at SECONDS COMMAND`: lets time run to SECONDS, then does COMMAND:
//!   - `v3 HOST TYPE GROUP [SOURCE...]`: a one-record IGMPv3 report (TYPE IS_IN, IS_EX,
//!     TO_IN, TO_EX, ALLOW or BLOCK) to 224.0.0.22;
//!   - `v2-report HOST GROUP`, `v1-report HOST GROUP`, `leave HOST GROUP`;
//!   - `v2-burst HOST GROUP COUNT`: IGMPv2 reports for COUNT groups from GROUP up, at once;
//!   - `v2-query ROUTER GROUP`, `v3-query ROUTER GROUP [s] [SOURCE...]`;
//!   - `state GROUP`: dump the group's state and timers;
//!   - `stats`: dump the querier, the version and the counters of drops and recovery;
//!   - `wait`: nothing (just let time run).
//!
//! A scenario is an error, not a pass, when it has no `at` line (it would check
//! nothing), when a value cannot be read, or when its `.expected` file is missing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use mcgate_igmp::{Config, Event, FilterMode, Interface, SourceFilter, Version};
use mcgate_wire::igmp::{GroupRecord, IgmpRepr, QueryV3, RecordType, emit_ip_packet};

fn addr(s: &str) -> Result<Ipv4Addr, String> {
    s.parse().map_err(|_| format!("bad address {s:?}"))
}

fn addrs<'a>(it: impl Iterator<Item = &'a str>) -> Result<Vec<Ipv4Addr>, String> {
    it.map(addr).collect()
}

fn value<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{key}={v:?} cannot be read"))
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
                Event::RouterIgnored { from, reason } => format!("ignored {from} {reason:?}"),
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
                    "state {group} {:?} timer={} compat={} sources={{{}}}",
                    st.mode,
                    off(st.group_timer),
                    st.compatibility,
                    sources.join(",")
                )
            }
        };
        writeln!(self.out, "{stamp} {line}").unwrap();
    }

    fn stats(&mut self) {
        let stamp = self.stamp();
        let st = self.igmp.stats();
        let querier = self
            .igmp
            .querier()
            .map_or("self".to_string(), |q| q.to_string());
        writeln!(
            self.out,
            "{stamp} stats querier={querier} version={} rate_limited={} router_message={} older_version_queries={} recovery_queries={}",
            self.igmp.version(),
            st.dropped.rate_limited,
            st.dropped.router_message,
            st.older_version_queries,
            st.sent.recovery_queries,
        )
        .unwrap();
    }
}

fn record_type(s: &str) -> Result<RecordType, String> {
    Ok(match s {
        "IS_IN" => RecordType::ModeIsInclude,
        "IS_EX" => RecordType::ModeIsExclude,
        "TO_IN" => RecordType::ChangeToInclude,
        "TO_EX" => RecordType::ChangeToExclude,
        "ALLOW" => RecordType::AllowNewSources,
        "BLOCK" => RecordType::BlockOldSources,
        other => return Err(format!("unknown record type {other}")),
    })
}

fn set_config(config: &mut Config, address: &mut Ipv4Addr, k: &str, v: &str) -> Result<(), String> {
    match k {
        "version" => {
            config.version = match v {
                "v2" => Version::V2,
                "v3" => Version::V3,
                other => return Err(format!("unknown version {other:?}: write v2 or v3")),
            }
        }
        "robustness" => config.settings.robustness = value(k, v)?,
        "fast_leave" => config.settings.fast_leave = value(k, v)?,
        "last_member_count" => config.settings.last_member_count = Some(value(k, v)?),
        "query_interval" => config.settings.query_interval_ms = value::<u64>(k, v)? * 1000,
        "other_queriers" => config.other_queriers = value(k, v)?,
        "startup_response_ms" => {
            config.startup_query_response_interval = Some(Duration::from_millis(value(k, v)?))
        }
        "report_rate_limit" => config.report_rate_limit = value(k, v)?,
        "report_burst" => config.report_burst = value(k, v)?,
        "address" => *address = addr(v)?,
        other => return Err(format!("unknown key {other}")),
    }
    Ok(())
}

fn send(r: &mut Run, src: Ipv4Addr, dst: Ipv4Addr, m: IgmpRepr) {
    r.igmp.handle_packet(r.now, &emit_ip_packet(src, dst, &m));
    r.collect();
}

fn query_dst(g: Ipv4Addr) -> Ipv4Addr {
    if g.is_unspecified() {
        Ipv4Addr::new(224, 0, 0, 1)
    } else {
        g
    }
}

/// Does one `at` command.
fn command(r: &mut Run, cmd: &str, rest: &[&str]) -> Result<(), String> {
    match (cmd, rest) {
        ("v3", [host, kind, group, sources @ ..]) => {
            let record = GroupRecord {
                kind: record_type(kind)?,
                group: addr(group)?,
                sources: addrs(sources.iter().copied())?,
                aux_data: vec![],
            };
            let m = IgmpRepr::ReportV3 {
                records: vec![record],
            };
            send(r, addr(host)?, Ipv4Addr::new(224, 0, 0, 22), m);
        }
        ("v2-report", [host, group]) => {
            let g = addr(group)?;
            send(r, addr(host)?, g, IgmpRepr::ReportV2 { group: g });
        }
        ("v2-burst", [host, group, count]) => {
            let first = u32::from(addr(group)?);
            for i in 0..value::<u32>("COUNT", count)? {
                let g = Ipv4Addr::from(first + i);
                send(r, addr(host)?, g, IgmpRepr::ReportV2 { group: g });
            }
        }
        ("v1-report", [host, group]) => {
            let g = addr(group)?;
            send(r, addr(host)?, g, IgmpRepr::ReportV1 { group: g });
        }
        ("leave", [host, group]) => {
            let g = addr(group)?;
            let m = IgmpRepr::LeaveV2 { group: g };
            send(r, addr(host)?, Ipv4Addr::new(224, 0, 0, 2), m);
        }
        ("v2-query", [from, group]) => {
            let g = addr(group)?;
            let mrt = if g.is_unspecified() { 100 } else { 10 };
            let m = IgmpRepr::QueryV2 {
                group: g,
                max_resp_time: mrt,
            };
            send(r, addr(from)?, query_dst(g), m);
        }
        ("v3-query", [from, group, more @ ..]) => {
            let g = addr(group)?;
            let suppress = more.first() == Some(&"s");
            let sources = more.iter().copied().filter(|x| *x != "s");
            let q = QueryV3 {
                group: g,
                max_resp_code: if g.is_unspecified() { 100 } else { 10 },
                suppress,
                qrv: 2,
                qqic: 125,
                sources: addrs(sources)?,
            };
            send(r, addr(from)?, query_dst(g), IgmpRepr::QueryV3(q));
        }
        ("state", [group]) => r.state(addr(group)?),
        ("stats", []) => r.stats(),
        ("wait", []) => {}
        _ => return Err("cannot read the command".to_string()),
    }
    Ok(())
}

/// Runs a scenario; the error names the line that could not be run.
fn run_scenario(text: &str) -> Result<String, String> {
    let mut config = Config::default();
    let mut address = Ipv4Addr::new(10, 0, 0, 10);
    let mut run: Option<Run> = None;
    for (n, raw) in text.lines().enumerate() {
        let at_line = |e: String| format!("line {}: {e}", n + 1);
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut w = line.split_whitespace();
        match w.next() {
            Some("config") => {
                if run.is_some() {
                    return Err(at_line("config after the first `at`".to_string()));
                }
                for kv in w {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| at_line(format!("{kv:?} is not KEY=VALUE")))?;
                    set_config(&mut config, &mut address, k, v).map_err(at_line)?;
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
                let secs: f64 = value("time", w.next().unwrap_or("")).map_err(at_line)?;
                let at = r.t0 + Duration::from_secs_f64(secs);
                if at < r.now {
                    return Err(at_line("time goes backwards".to_string()));
                }
                r.run_until(at);
                let cmd = w.next().ok_or_else(|| at_line("no command".to_string()))?;
                let rest: Vec<&str> = w.collect();
                command(r, cmd, &rest).map_err(|e| at_line(format!("{e}: {line:?}")))?;
            }
            _ => return Err(at_line(format!("cannot read {line:?}"))),
        }
    }
    run.map(|r| r.out)
        .ok_or_else(|| "no `at` line: the scenario checks nothing".to_string())
}

/// Runs the scenario at `path` and compares with its `.expected` file, or writes that
/// file when `bless`.
fn check_scenario(path: &Path, bless: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{e}"))?;
    let got = run_scenario(&text)?;
    let expected_path = path.with_extension("expected");
    if bless {
        return std::fs::write(&expected_path, &got).map_err(|e| format!("{e}"));
    }
    let want = std::fs::read_to_string(&expected_path).map_err(|e| {
        format!(
            "{}: {e}; run with MCGATE_BLESS=1 to write it, then review it",
            expected_path.display()
        )
    })?;
    if got == want {
        Ok(())
    } else {
        Err(format!("--- expected\n{want}--- got\n{got}"))
    }
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
    let failures: Vec<String> = names
        .iter()
        .filter_map(|path| {
            check_scenario(path, bless)
                .err()
                .map(|e| format!("{}:\n{e}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn scenario_without_at_line_is_an_error() {
    let e = run_scenario("# nothing happens\nconfig version=v3\n").unwrap_err();
    assert!(e.contains("no `at` line"), "{e}");
    assert!(run_scenario("").is_err());
}

#[test]
fn unknown_version_is_an_error() {
    let e = run_scenario("config version=v4\nat 0 wait\n").unwrap_err();
    assert!(e.contains("line 1") && e.contains("unknown version"), "{e}");
    assert!(run_scenario("config version=3\nat 0 wait\n").is_err());
}

#[test]
fn scenario_without_expected_file_is_an_error() {
    // A scenario file of this test's own, with no `.expected` beside it.
    let dir = std::env::temp_dir().join(format!("mcgate-igmp-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lonely.scenario");
    std::fs::write(&path, "at 0 wait\n").unwrap();
    let result = check_scenario(&path, false);
    std::fs::remove_dir_all(&dir).unwrap();
    let e = result.unwrap_err();
    assert!(
        e.contains("lonely.expected") && e.contains("MCGATE_BLESS"),
        "{e}"
    );
}

#[test]
fn unreadable_lines_are_errors() {
    for bad in [
        "config robustness=many\nat 0 wait\n",
        "config colour=blue\nat 0 wait\n",
        "at 0 v3 10.0.0.101 IS_MAYBE 239.1.2.3\n",
        "at 0 v2-report 10.0.0.999 239.1.2.3\n",
        "at 2 wait\nat 1 wait\n",
        "at 0 wait\nconfig version=v2\n",
        "whenever wait\n",
    ] {
        assert!(run_scenario(bad).is_err(), "{bad:?}");
    }
}
