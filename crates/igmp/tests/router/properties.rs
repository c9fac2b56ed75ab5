//! Property tests: arbitrary sequences of messages, bytes and waits never panic, and
//! the interface never asks to be woken in the past.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use mcgate_igmp::{Config, Event, IgmpSettings, Interface, Version};
use mcgate_wire::igmp::{GroupRecord, IgmpRepr, QueryV3, RecordType, emit_ip_packet};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Wait(u32),
    Message(Ipv4Addr, Ipv4Addr, IgmpRepr),
    Bytes(Vec<u8>),
    Reconfigure(Config),
    /// A driver whose clock stepped back by this many milliseconds.
    Backwards(u32),
}

fn small_addr(base: [u8; 3]) -> impl Strategy<Value = Ipv4Addr> + Clone {
    (0u8..4).prop_map(move |n| Ipv4Addr::new(base[0], base[1], base[2], n))
}

fn record_type() -> impl Strategy<Value = RecordType> {
    (1u8..=7).prop_map(|n| match n {
        1 => RecordType::ModeIsInclude,
        2 => RecordType::ModeIsExclude,
        3 => RecordType::ChangeToInclude,
        4 => RecordType::ChangeToExclude,
        5 => RecordType::AllowNewSources,
        6 => RecordType::BlockOldSources,
        _ => RecordType::Unknown(n),
    })
}

fn message() -> impl Strategy<Value = IgmpRepr> {
    let group = small_addr([239, 0, 0]);
    let sources = prop::collection::vec(small_addr([192, 0, 2]), 0..4);
    let record =
        (record_type(), group.clone(), sources.clone()).prop_map(|(kind, group, sources)| {
            GroupRecord {
                kind,
                group,
                sources,
                aux_data: vec![],
            }
        });
    prop_oneof![
        4 => prop::collection::vec(record, 0..3).prop_map(|records| IgmpRepr::ReportV3 { records }),
        2 => group.clone().prop_map(|group| IgmpRepr::ReportV2 { group }),
        1 => group.clone().prop_map(|group| IgmpRepr::ReportV1 { group }),
        2 => group.clone().prop_map(|group| IgmpRepr::LeaveV2 { group }),
        1 => Just(IgmpRepr::QueryV1),
        1 => (group.clone(), 1u8..=255).prop_map(|(group, max_resp_time)| IgmpRepr::QueryV2 { group, max_resp_time }),
        1 => (group, any::<u8>(), any::<bool>(), 0u8..8, any::<u8>(), sources).prop_map(
            |(group, max_resp_code, suppress, qrv, qqic, sources)| IgmpRepr::QueryV3(QueryV3 {
                group, max_resp_code, suppress, qrv, qqic, sources,
            })
        ),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let host = small_addr([10, 0, 0]);
    prop_oneof![
        3 => (0u32..300_000).prop_map(Step::Wait),
        6 => (host, message()).prop_map(|(src, m)| {
            let dst = match &m {
                IgmpRepr::ReportV3 { .. } => Ipv4Addr::new(224, 0, 0, 22),
                IgmpRepr::ReportV1 { group } | IgmpRepr::ReportV2 { group } => *group,
                IgmpRepr::LeaveV2 { .. } => Ipv4Addr::new(224, 0, 0, 2),
                _ => Ipv4Addr::new(224, 0, 0, 1),
            };
            Step::Message(src, dst, m)
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Step::Bytes),
        1 => config().prop_map(Step::Reconfigure),
        1 => (0u32..10_000).prop_map(Step::Backwards),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        (any::<bool>(), any::<bool>(), 0u8..4),
        (
            0u32..20,
            0u32..20,
            any::<bool>(),
            prop::option::of(0u64..20_000),
        ),
    )
        .prop_map(
            |((v2, fast, r), (rate, burst, other_queriers, startup_ms))| Config {
                version: if v2 { Version::V2 } else { Version::V3 },
                settings: IgmpSettings {
                    fast_leave: fast,
                    robustness: r,
                    ..IgmpSettings::default()
                },
                report_rate_limit: rate,
                report_burst: burst,
                other_queriers,
                startup_query_response_interval: startup_ms.map(Duration::from_millis),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_and_never_wakes_in_the_past(
        config in config(),
        address in small_addr([10, 0, 0]),
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut igmp = Interface::new(config, address, now);
        let mut published = std::collections::BTreeMap::new();
        for step in steps {
            match step {
                Step::Wait(ms) => {
                    let end = now + Duration::from_millis(u64::from(ms));
                    while let Some(t) = igmp.poll_timeout() {
                        prop_assert!(t >= now, "deadline {:?} before now", t - t0);
                        if t > end {
                            break;
                        }
                        now = t;
                        igmp.handle_timeout(now);
                    }
                    now = end;
                    igmp.handle_timeout(now);
                }
                Step::Message(src, dst, m) => {
                    igmp.handle_packet(now, &emit_ip_packet(src, dst, &m));
                }
                Step::Bytes(b) => igmp.handle_packet(now, &b),
                Step::Reconfigure(c) => igmp.set_config(now, c),
                Step::Backwards(ms) => {
                    let earlier = now.checked_sub(Duration::from_millis(u64::from(ms))).unwrap_or(now);
                    igmp.handle_timeout(earlier);
                }
            }
            if let Some(t) = igmp.poll_timeout() {
                prop_assert!(t > now, "timer due at {:?} left unprocessed", t - t0);
            }
            while igmp.poll_transmit().is_some() {}
            while let Some(e) = igmp.poll_event() {
                if let Event::GroupChanged { group, filter, reporters } = e {
                    match filter {
                        Some(f) => { published.insert(group, (f, reporters)); }
                        None => { published.remove(&group); }
                    }
                }
            }
            // The events replay to exactly the current table.
            let table: std::collections::BTreeMap<_, _> = igmp
                .groups()
                .map(|(g, f)| (g, (f, igmp.reporters(g))))
                .collect();
            prop_assert_eq!(&published, &table);
            for (f, _) in table.values() {
                prop_assert!(!f.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_are_dropped_or_handled(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut igmp = Interface::new(Config::default(), Ipv4Addr::new(10, 0, 0, 1), Instant::now());
        igmp.handle_packet(Instant::now(), &bytes);
    }
}
