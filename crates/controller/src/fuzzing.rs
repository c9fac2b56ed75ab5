//! Bodies of the controller's fuzz targets in `fuzz/` (kept here so they build and run
//! on stable Rust: a unit test replays each over its seed corpus in `fuzz/corpus/`).
//!
//! - `etcd_store`: what an etcd store holds is untrusted (anyone with etcd access, or a
//!   damaged or foreign key, can put any bytes there): arbitrary keys and values go
//!   through the replica's mirror into a model. They must be applied or counted, never
//!   panic.
//! - `controller_export`: an export file read by `mcgate controller import`.

use mcgate_domain::model::Model;

use crate::etcd::mirror::{Event, Mirror};

/// Splits `data` into events: records separated by `0xff` (never in UTF-8), each `key 0x01 value` (a
/// record without `0x01` is a delete); the key gets one of the store's prefixes from
/// its first byte so that every key kind is reached.
fn events(data: &[u8]) -> Vec<Event> {
    const KINDS: [&str; 8] = [
        "domains/",
        "agents/",
        "live/",
        "tunnels/",
        "auth/",
        "meta/",
        "election/",
        "",
    ];
    data.split(|b| *b == 0xff)
        .enumerate()
        .filter_map(|(i, rec)| {
            let (first, rest) = rec.split_first()?;
            let kind = KINDS[usize::from(*first) % KINDS.len()];
            let (key, value) = match rest.iter().position(|b| *b == 1) {
                Some(p) => (&rest[..p], Some(rest[p + 1..].to_vec())),
                None => (rest, None),
            };
            Some(Event {
                key: format!("{kind}{}", String::from_utf8_lossy(key)),
                value,
                revision: i64::try_from(i).unwrap_or(i64::MAX) + 1,
            })
        })
        .collect()
}

/// Applies arbitrary store contents to a model, twice over (as a load and as a watch).
pub fn etcd_store(data: &[u8]) {
    let mut model = Model::new(0);
    let mut mirror = Mirror::default();
    let evs = events(data);
    let _ = mirror.apply(&mut model, evs.clone(), 0);
    let again = mirror.resync(evs);
    let _ = mirror.apply(&mut model, again, 1_000);
    for host in model.agent_hosts() {
        let _ = model.host_view(&host);
    }
    for d in model.domains() {
        let _ = model.domain_state(&d.name);
    }
}

/// Reads an export file and checks it as an import would.
pub fn controller_export(data: &[u8]) {
    if let Ok(doc) = serde_json::from_slice::<crate::migrate::Export>(data) {
        let _ = crate::migrate::check(&[], &doc.domains, false);
        let _ = crate::migrate::check(&doc.domains, &doc.domains, true);
    }
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: [(&str, Target); 2] = [
    ("etcd_store", etcd_store),
    ("controller_export", controller_export),
];

#[cfg(test)]
mod tests {
    use mcgate_testbed::corpus::seeds;

    use super::*;

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
    fn the_first_store_seed_is_a_live_member_not_garbage() {
        let seeds = seeds("etcd_store");
        let (_, data) = seeds
            .iter()
            .find(|(name, _)| name.contains("domain-agent-live"))
            .expect("the seed");
        let (mut model, mut mirror) = (Model::new(0), Mirror::default());
        mirror.apply(&mut model, events(data), 0);
        assert_eq!(mirror.undecodable, 0);
        assert!(model.is_live("h1"));
        assert_eq!(model.domain_state("prod").unwrap().members.len(), 1);
    }
}
