//! Bodies of the API fuzz targets in `fuzz/` (one per request body of the controller's
//! API), kept here so they build and run on stable Rust: a unit test runs each over its
//! seed corpus in `fuzz/corpus/api_*`.
//!
//! Each takes arbitrary bytes as the body of its route, decodes them as the controller
//! does ([`crate::decode::decode`]), and when they decode, checks that the value survives
//! a JSON round trip and applies it to a model holding one domain and one live agent, as
//! the handler would. Nothing here may panic: a panic is a bug in the decoder or the
//! model, never a property of the input.

use core::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::*;
use crate::decode::decode;
use crate::model::Model;

const NOW_MS: u64 = 1_000;
const LEASE_MS: u64 = 3_000;

/// A model with domain `prod` (subnet 10.0.2.0/24) and agent `h1` registered.
fn model() -> (Model, u64) {
    let mut m = Model::new(0);
    let spec = DomainSpec {
        name: "prod".into(),
        vni: None,
        igmp: IgmpMode::V3,
        static_sources: false,
        igmp_settings: IgmpSettings::default(),
        tunnel: Default::default(),
    };
    m.create_domain(spec).expect("a valid domain");
    let assoc = AssociationSpec {
        subnet: Some("10.0.2.0/24".parse().expect("a network")),
        host: None,
    };
    m.associate("prod", &assoc).expect("a free subnet");
    let reg = AgentRegistration {
        host: "h1".into(),
        underlay: SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 10), VXLAN_PORT),
        subnet: None,
        links: Vec::new(),
        dataplane: None,
        public_key: String::new(),
        wireguard: None,
        zone: None,
        upstream: None,
    };
    let (reply, _) = m
        .register(reg, NOW_MS, LEASE_MS, 1_000)
        .expect("a valid agent");
    (m, reply.session)
}

/// Decodes `data` as `T`; when it decodes, checks the round trip and returns the value.
fn body<T>(data: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + core::fmt::Debug,
{
    let v: T = decode(data).ok()?;
    let text = serde_json::to_vec(&v).expect("an API type always encodes");
    let again: T = decode(&text).expect("what was encoded decodes");
    assert_eq!(v, again, "JSON round trip");
    Some(v)
}

/// `POST /v1/domains`.
pub fn domain_spec(data: &[u8]) {
    if let Some(spec) = body::<DomainSpec>(data) {
        let _ = model().0.create_domain(spec);
    }
}

/// `POST` and `DELETE /v1/domains/{name}/associations`.
pub fn association(data: &[u8]) {
    if let Some(spec) = body::<AssociationSpec>(data) {
        let (mut m, _) = model();
        let _ = m.associate("prod", &spec);
        let _ = m.disassociate("prod", &spec);
    }
}

/// `POST` and `DELETE /v1/domains/{name}/members`.
pub fn static_member(data: &[u8]) {
    if let Some(spec) = body::<StaticMemberSpec>(data) {
        let (mut m, _) = model();
        let _ = m.add_static_member("prod", spec.clone());
        let _ = m.remove_static_member("prod", &spec);
    }
}

/// `POST` and `DELETE /v1/domains/{name}/sources`.
pub fn static_source(data: &[u8]) {
    if let Some(spec) = body::<StaticSourceSpec>(data) {
        let (mut m, _) = model();
        let _ = m.add_static_source("prod", spec.clone());
        let _ = m.remove_static_source("prod", &spec);
    }
}

/// `POST /v1/agents`.
pub fn registration(data: &[u8]) {
    if let Some(reg) = body::<AgentRegistration>(data) {
        let (mut m, _) = model();
        if m.register(reg.clone(), NOW_MS, LEASE_MS, 1_000).is_ok() {
            let _ = m.host_view(&reg.host);
        }
    }
}

/// `POST /v1/agents/{host}/heartbeat`.
pub fn heartbeat(data: &[u8]) {
    if let Some(hb) = body::<Heartbeat>(data) {
        let _ = model().0.heartbeat("h1", &hb, NOW_MS);
    }
}

/// `POST /v1/agents/{host}/membership`; the session is taken from the model when the body
/// names session 1, so the fuzzer reaches the membership rules.
pub fn membership(data: &[u8]) {
    if let Some(mut report) = body::<MembershipReport>(data) {
        let (mut m, session) = model();
        if report.session == 1 {
            report.session = session;
        }
        if m.report("h1", report, NOW_MS).is_ok() {
            let _ = m.host_view("h1");
            let _ = m.groups(&GroupQuery::default());
        }
    }
}

/// `POST /v1/agents/{host}/traffic`: the report, twice through the book (so a rate is
/// computed from it), then the view of its domains.
pub fn traffic_report(data: &[u8]) {
    if let Some(report) = body::<crate::traffic::TrafficReport>(data) {
        if report.check_size().is_err() {
            return;
        }
        let mut book = crate::traffic_book::TrafficBook::new();
        let mut later = report.clone();
        later.uptime_ms = later.uptime_ms.saturating_add(1000);
        book.record("h1", report.clone(), NOW_MS);
        book.record("h1", later, NOW_MS + 1000);
        let (m, _) = model();
        let hosts = m.agent_infos(NOW_MS);
        for d in report.groups.iter().map(|g| g.domain.as_str()) {
            let _ = book.view(d, 1, &hosts, &[], NOW_MS + 1000);
        }
    }
}

/// `POST /v1/tokens`: a join token's request; its host must be a valid name.
pub fn join_token_spec(data: &[u8]) {
    if let Some(spec) = body::<crate::auth_api::JoinTokenSpec>(data) {
        let _ = crate::validate::host_name("host", &spec.host);
    }
}

/// `POST /v1/credentials`.
pub fn credential_spec(data: &[u8]) {
    let _ = body::<crate::auth_api::CredentialSpec>(data);
}

/// An `Authorization: Bearer` value: the id it names, if any, is part of it.
pub fn bearer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(id) = crate::auth_api::token_id(&text) {
        assert!(text.starts_with("mcg_") && text[4..].starts_with(id));
    }
}

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every target: its name in `fuzz/` and its body.
pub const TARGETS: [(&str, Body); 11] = [
    ("api_domain_spec", domain_spec),
    ("api_association", association),
    ("api_static_member", static_member),
    ("api_static_source", static_source),
    ("api_registration", registration),
    ("api_heartbeat", heartbeat),
    ("api_membership", membership),
    ("api_join_token_spec", join_token_spec),
    ("api_credential_spec", credential_spec),
    ("api_bearer", bearer),
    ("api_traffic_report", traffic_report),
];

#[cfg(test)]
mod tests {
    use mcgate_testbed::corpus::seeds;

    use super::TARGETS;

    #[test]
    fn every_target_replays_its_seed_corpus() {
        for (target, run) in TARGETS {
            let seeds = seeds(target);
            for (_, data) in &seeds {
                run(data);
            }
            assert!(seeds.len() >= 2, "{target}: only {} seeds", seeds.len());
        }
    }

    #[test]
    fn targets_survive_truncations_and_garbage() {
        let body = br#"{"session": 1, "seq": 1, "snapshot": true, "entries": [{"link": "eth0", "group": "233.252.0.5", "filter": {"mode": "include", "sources": ["10.0.2.4"]}, "reporters": ["10.0.2.4"]}]}"#;
        for (_, run) in TARGETS {
            for cut in 0..body.len() {
                run(&body[..cut]);
            }
            run(&[0xff, 0xfe, b'{']);
            run(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
        }
    }
}
