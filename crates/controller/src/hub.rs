//! The forwarding-state streams: per-agent subscriptions, the ring of recent deltas for
//! resuming, and the flush that turns the model's effects into NDJSON lines.
//!
//! Scale rules: each domain's delta is serialized once per flush and the same [`Bytes`]
//! is handed to every agent of the domain; the state lock is never held waiting on an
//! agent (each has a bounded queue, and an agent whose queue is full has its stream
//! closed: it reconnects, resuming from the ring or taking a snapshot).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use bytes::Bytes;
use mcgate_domain::SourceFilter;
use mcgate_domain::api::{Change, Revision, StreamMessage};
use mcgate_domain::model::{Effect, Model};
use tokio::sync::mpsc;

/// Who a ring entry is for.
#[derive(Debug, Clone)]
enum Audience {
    /// Every agent of the domain.
    Domain(String),
    /// This host was sent a snapshot: resuming across it means re-snapshotting.
    Resnapshot(String),
}

#[derive(Debug)]
struct RingEntry {
    revision: Revision,
    audience: Audience,
    bytes: Bytes,
}

#[derive(Debug)]
struct Subscriber {
    tx: mpsc::Sender<Bytes>,
}

/// Bounds of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Lines queued per agent before its stream is closed.
    pub queue: usize,
    /// Deltas kept for resuming.
    pub ring_entries: usize,
    /// Bytes of deltas kept for resuming.
    pub ring_bytes: usize,
}

/// Streams and the resume ring. Lives inside the controller's state lock.
#[derive(Debug)]
pub struct Hub {
    limits: HubLimits,
    revision: Revision,
    /// Every entry with a revision above this is still in the ring.
    floor: Revision,
    ring: VecDeque<RingEntry>,
    ring_bytes: usize,
    pending: Vec<Effect>,
    subs: HashMap<String, Subscriber>,
    closed: bool,
    /// Streams closed because their agent fell behind.
    pub overflows: u64,
}

/// What a subscription starts with.
#[derive(Debug)]
pub struct Subscription {
    /// Lines to send first (a snapshot, or the deltas missed).
    pub first: Vec<Bytes>,
    /// Later lines.
    pub rx: mpsc::Receiver<Bytes>,
    /// Whether `first` resumes (deltas) rather than a snapshot.
    pub resumed: bool,
}

impl Hub {
    /// A hub whose revisions start after `base`.
    pub fn new(base: Revision, limits: HubLimits) -> Self {
        Self {
            limits,
            revision: base,
            floor: base,
            ring: VecDeque::new(),
            ring_bytes: 0,
            pending: Vec::new(),
            subs: HashMap::new(),
            closed: false,
            overflows: 0,
        }
    }

    /// The last revision assigned.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Queues effects for the next flush; returns whether any were queued.
    pub fn push(&mut self, effects: Vec<Effect>) -> bool {
        let any = !effects.is_empty();
        self.pending.extend(effects);
        any
    }

    /// Number of open streams.
    pub fn streams(&self) -> usize {
        self.subs.len()
    }

    /// Streams whose agent is more than half a queue behind: the ones at risk of being
    /// closed for lagging.
    pub fn lagging(&self) -> usize {
        self.subs
            .values()
            .filter(|s| s.tx.max_capacity() - s.tx.capacity() > s.tx.max_capacity() / 2)
            .count()
    }

    /// Ends every stream and refuses new ones (shutdown).
    pub fn close_all(&mut self) {
        self.closed = true;
        self.subs.clear();
    }

    /// Opens `host`'s stream, resuming after `since` when the ring still holds every
    /// delta after it and the host took no snapshot since; otherwise with a snapshot.
    /// The caller checked the host is live. Replaces the host's previous stream.
    pub fn subscribe(
        &mut self,
        model: &Model,
        host: &str,
        since: Option<Revision>,
    ) -> Option<Subscription> {
        if self.closed {
            return None;
        }
        let resume = since.and_then(|s| self.resume(model, host, s));
        let resumed = resume.is_some();
        let first = match resume {
            Some(lines) => lines,
            None => vec![snapshot_line(
                model,
                host,
                self.revision,
                &mut HashMap::new(),
            )],
        };
        let (tx, rx) = mpsc::channel(self.limits.queue);
        self.subs.insert(host.to_string(), Subscriber { tx });
        Some(Subscription { first, rx, resumed })
    }

    fn resume(&self, model: &Model, host: &str, since: Revision) -> Option<Vec<Bytes>> {
        if since < self.floor || since > self.revision {
            return None;
        }
        let domains: BTreeSet<String> = model.domains_of(host).into_iter().collect();
        let mut lines = Vec::new();
        for e in self.ring.iter().filter(|e| e.revision > since) {
            match &e.audience {
                Audience::Resnapshot(h) if h == host => return None,
                Audience::Resnapshot(_) => {}
                Audience::Domain(d) => {
                    if domains.contains(d) {
                        lines.push(e.bytes.clone());
                    }
                }
            }
        }
        Some(lines)
    }

    /// Turns the pending effects into lines: one delta per touched domain, shared by all
    /// its agents, then a snapshot for each host whose domains changed. Returns the
    /// revision reached.
    pub fn flush(&mut self, model: &Model) -> Revision {
        let effects = std::mem::take(&mut self.pending);
        let mut per_domain: Vec<(String, Vec<Change>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut resnap: BTreeSet<String> = BTreeSet::new();
        let mut close: BTreeSet<String> = BTreeSet::new();
        for e in effects {
            match e {
                Effect::Delta { domain, change } => {
                    let i = *index.entry(domain.clone()).or_insert_with(|| {
                        per_domain.push((domain, Vec::new()));
                        per_domain.len() - 1
                    });
                    per_domain[i].1.push(change);
                }
                Effect::Resnapshot { host } => {
                    resnap.insert(host);
                }
                Effect::Close { host } => {
                    close.insert(host);
                }
            }
        }
        for host in &close {
            if !model.is_live(host) {
                self.subs.remove(host);
            }
        }
        for (domain, changes) in per_domain {
            let changes = group_member_runs(coalesce(changes));
            self.revision += 1;
            let line = encode(&StreamMessage::Delta {
                revision: self.revision,
                changes,
            });
            for host in model.live_hosts_of(&domain) {
                if !resnap.contains(&host) {
                    self.send(&host, line.clone());
                }
            }
            self.record(Audience::Domain(domain), line);
        }
        let mut cache = HashMap::new();
        for host in resnap {
            self.revision += 1;
            if self.subs.contains_key(&host) && model.is_live(&host) {
                let line = snapshot_line(model, &host, self.revision, &mut cache);
                self.send(&host, line);
            }
            self.record(Audience::Resnapshot(host), Bytes::new());
        }
        self.revision
    }

    fn send(&mut self, host: &str, line: Bytes) {
        let Some(sub) = self.subs.get(host) else {
            return;
        };
        match sub.tx.try_send(line) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The agent fell behind: close its stream; it reconnects and resumes or
                // re-snapshots. Never wait here: the state lock is held.
                self.subs.remove(host);
                self.overflows += 1;
                tracing::warn!(host, "agent stream fell behind; closed it");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The agent hung up.
                self.subs.remove(host);
            }
        }
    }

    fn record(&mut self, audience: Audience, bytes: Bytes) {
        self.ring_bytes += bytes.len();
        self.ring.push_back(RingEntry {
            revision: self.revision,
            audience,
            bytes,
        });
        while self.ring.len() > self.limits.ring_entries || self.ring_bytes > self.limits.ring_bytes
        {
            let Some(old) = self.ring.pop_front() else {
                break;
            };
            self.ring_bytes -= old.bytes.len();
            self.floor = old.revision;
        }
    }
}

/// Keeps only the last change per key (a join then a leave in one batch is one leave),
/// in the order of those last changes. Every change is a "set", so this is exact.
fn coalesce(changes: Vec<Change>) -> Vec<Change> {
    if changes.len() < 2 {
        return changes;
    }
    let mut last: HashMap<String, usize> = HashMap::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        last.insert(key(c), i);
    }
    changes
        .into_iter()
        .enumerate()
        .filter(|(i, c)| last.get(&key(c)) == Some(i))
        .map(|(_, c)| c)
        .collect()
}

/// Folds each run of consecutive `member` changes of one host with one filter into one
/// `members` change. Only consecutive runs: a change between two members (a peer down,
/// say) keeps its place, so applying the result in order gives the same state.
fn group_member_runs(changes: Vec<Change>) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::with_capacity(changes.len());
    for c in changes {
        if let (
            Some(last),
            Change::Member {
                domain,
                host,
                group,
                filter,
            },
        ) = (out.last_mut(), &c)
            && extend_run(last, domain, host, *group, filter)
        {
            continue;
        }
        out.push(c);
    }
    out
}

/// Adds `group` to `last` when `last` is a member or members change of the same domain,
/// host and filter; returns whether it did.
fn extend_run(
    last: &mut Change,
    domain: &str,
    host: &str,
    group: IpAddr,
    filter: &Option<SourceFilter<IpAddr>>,
) -> bool {
    match last {
        Change::Members {
            domain: d,
            host: h,
            groups,
            filter: f,
        } if d == domain && h == host && f == filter => {
            groups.push(group);
            true
        }
        Change::Member {
            domain: d,
            host: h,
            group: first,
            filter: f,
        } if d == domain && h == host && f == filter => {
            let first = *first;
            *last = Change::Members {
                domain: domain.to_string(),
                host: host.to_string(),
                groups: vec![first, group],
                filter: filter.clone(),
            };
            true
        }
        _ => false,
    }
}

fn key(c: &Change) -> String {
    match c {
        Change::Domain { domain } => format!("d/{}", domain.name),
        Change::DomainRemoved { name } => format!("d/{name}"),
        Change::PeerUp { peer, .. } => format!("p/{}", peer.host),
        Change::PeerDown { host, .. } => format!("p/{host}"),
        Change::Member { host, group, .. } => format!("m/{host}/{group}"),
        // The model emits single member changes; runs are folded after coalescing.
        Change::Members { host, groups, .. } => format!("ms/{host}/{groups:?}"),
        Change::StaticMember { member, .. } => format!(
            "sm/{}/{}/{}",
            member.group,
            member.host,
            member.interface.as_deref().unwrap_or("")
        ),
        Change::StaticSource { source, .. } => format!("ss/{}/{}", source.group, source.address),
        Change::Gateway { range, .. } => format!("g/{range}"),
    }
}

/// One NDJSON line.
pub fn encode(msg: &StreamMessage) -> Bytes {
    let mut v = serde_json::to_vec(msg).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// A snapshot line for `host`, serializing each domain's state once per `cache`.
fn snapshot_line(
    model: &Model,
    host: &str,
    revision: Revision,
    cache: &mut HashMap<String, Bytes>,
) -> Bytes {
    let mut parts: BTreeMap<String, Bytes> = BTreeMap::new();
    for d in model.domains_of(host) {
        let bytes = cache
            .entry(d.clone())
            .or_insert_with(|| {
                model
                    .domain_state(&d)
                    .and_then(|s| serde_json::to_vec(&s).ok())
                    .map(Bytes::from)
                    .unwrap_or_default()
            })
            .clone();
        if !bytes.is_empty() {
            parts.insert(d, bytes);
        }
    }
    // {"type":"snapshot","revision":R,"domains":[...]} built from the cached parts.
    let mut out =
        format!("{{\"type\":\"snapshot\",\"revision\":{revision},\"domains\":[").into_bytes();
    for (i, p) in parts.values().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"]}\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcgate_domain::api::*;

    #[test]
    fn coalesce_keeps_the_last_change_per_key() {
        let m = |host: &str, f: bool| Change::Member {
            domain: "d".into(),
            host: host.into(),
            group: [239, 1, 1, 1].into(),
            filter: f.then(mcgate_domain::SourceFilter::any_source),
        };
        let out = coalesce(vec![m("a", true), m("b", true), m("a", false)]);
        assert_eq!(out, vec![m("b", true), m("a", false)]);
    }

    #[test]
    fn runs_of_one_hosts_member_changes_become_one_members_change() {
        let any = Some(mcgate_domain::SourceFilter::any_source());
        let m = |host: &str, g: u8, filter: &Option<SourceFilter<IpAddr>>| Change::Member {
            domain: "d".into(),
            host: host.into(),
            group: [239, 1, 1, g].into(),
            filter: filter.clone(),
        };
        let down = Change::PeerDown {
            domain: "d".into(),
            host: "a".into(),
        };
        let out = group_member_runs(vec![
            m("a", 1, &any),
            m("a", 2, &any),
            m("a", 3, &any),
            m("a", 4, &None),
            m("b", 5, &None),
            down.clone(),
            m("a", 6, &any),
            m("a", 7, &any),
        ]);
        let ms = |groups: &[u8], filter: &Option<SourceFilter<IpAddr>>| Change::Members {
            domain: "d".into(),
            host: "a".into(),
            groups: groups.iter().map(|&g| [239, 1, 1, g].into()).collect(),
            filter: filter.clone(),
        };
        assert_eq!(
            out,
            vec![
                ms(&[1, 2, 3], &any),
                m("a", 4, &None),
                m("b", 5, &None),
                down,
                ms(&[6, 7], &any),
            ]
        );
        // Applying either form gives the same view.
        let line = |changes| StreamMessage::Delta {
            revision: 1,
            changes,
        };
        let snapshot = StreamMessage::Snapshot {
            revision: 0,
            domains: vec![
                one_domain_model(AssociationSpec {
                    subnet: None,
                    host: Some("a".into()),
                })
                .domain_state("d")
                .unwrap(),
            ],
        };
        let mut plain = mcgate_domain::forwarding::DomainView::new();
        plain.apply(&snapshot);
        let mut grouped = plain.clone();
        let input: Vec<Change> = (1..=7u8).map(|g| m("a", g, &any)).collect();
        plain.apply(&line(input.clone()));
        grouped.apply(&line(group_member_runs(input)));
        assert_eq!(plain, grouped);
        assert_eq!(plain.domains().next().unwrap().members.len(), 7);
    }

    /// A model with IGMPv2 domain "d" and one association.
    fn one_domain_model(association: AssociationSpec) -> Model {
        let mut model = Model::new(0);
        model
            .create_domain(DomainSpec {
                name: "d".into(),
                vni: None,
                igmp: IgmpMode::V2,
                static_sources: false,
                igmp_settings: IgmpSettings::default(),
                tunnel: Default::default(),
            })
            .unwrap();
        model.associate("d", &association).unwrap();
        model
    }

    fn two_host_model() -> Model {
        let mut model = one_domain_model(AssociationSpec {
            subnet: Some("10.0.0.0/16".parse().unwrap()),
            host: None,
        });
        for (h, ip) in [("a", [10, 0, 0, 1]), ("b", [10, 0, 0, 2])] {
            let reg = AgentRegistration {
                host: h.into(),
                underlay: std::net::SocketAddrV4::new(ip.into(), VXLAN_PORT),
                subnet: None,
                links: vec![],
                dataplane: None,
                public_key: String::new(),
                wireguard: None,
                zone: None,
                upstream: None,
            };
            model.register(reg, 0, 3_000, 1_000).unwrap();
        }
        model
    }

    fn join(model: &mut Model, seq: u64, group: u8) -> Vec<Effect> {
        let session = model.agent("a").unwrap().session;
        let report = MembershipReport {
            session,
            seq,
            snapshot: false,
            entries: vec![LinkMembership {
                link: "l".into(),
                group: [239, 1, 1, group].into(),
                filter: Some(mcgate_domain::SourceFilter::any_source()),
                reporters: vec![],
            }],
        };
        model.report("a", report, 0).unwrap().1
    }

    #[test]
    fn a_lagging_agent_loses_its_stream_and_the_others_do_not_wait() {
        let mut model = two_host_model();
        let limits = HubLimits {
            queue: 4,
            ring_entries: 100,
            ring_bytes: 1 << 20,
        };
        let mut hub = Hub::new(0, limits);
        let mut fast = hub.subscribe(&model, "a", None).unwrap();
        let slow = hub.subscribe(&model, "b", None).unwrap();
        for seq in 1..=10 {
            let fx = join(&mut model, seq, seq as u8);
            hub.push(fx);
            hub.flush(&model);
            // The fast agent reads every line as it comes.
            while fast.rx.try_recv().is_ok() {}
        }
        assert_eq!(hub.overflows, 1);
        assert_eq!(hub.streams(), 1, "only the lagging stream was closed");
        drop(slow);
        // It resumes from the ring: the missed deltas, no snapshot.
        let resumed = hub.subscribe(&model, "b", Some(2)).unwrap();
        assert!(resumed.resumed);
        assert_eq!(resumed.first.len(), 8);
        // A revision older than the ring's floor re-snapshots.
        let mut small = Hub::new(
            0,
            HubLimits {
                ring_entries: 2,
                ..limits
            },
        );
        for seq in 11..=15 {
            small.push(join(&mut model, seq, seq as u8));
            small.flush(&model);
        }
        assert!(!small.subscribe(&model, "b", Some(1)).unwrap().resumed);
        assert!(small.subscribe(&model, "b", Some(4)).unwrap().resumed);
    }

    #[test]
    fn snapshot_line_is_a_stream_message() {
        let model = one_domain_model(AssociationSpec {
            subnet: None,
            host: Some("h".into()),
        });
        let line = snapshot_line(&model, "h", 9, &mut HashMap::new());
        let msg: StreamMessage = serde_json::from_slice(&line).unwrap();
        match msg {
            StreamMessage::Snapshot { revision, domains } => {
                assert_eq!(revision, 9);
                assert_eq!(domains.len(), 1);
                assert_eq!(domains[0].domain.name, "d");
            }
            other => panic!("{other:?}"),
        }
    }
}
