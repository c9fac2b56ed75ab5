//! The agent's control loop: attached links and their queriers, local membership, the
//! controller's view, and the forwarding table handed to the data plane.
//!
//! One task owns all of this state; the IGMP sockets, the controller session and the
//! stream feed it through channels. The data plane runs on its own threads and only ever
//! receives whole new tables, so nothing here can stall forwarding.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcgate_client::Client;
use mcgate_dataplane::kernel::plane::QuerierSettings;
use mcgate_dataplane::{Dataplane, DataplaneConfig, LinkSpec};
use mcgate_domain::SourceFilter;
use mcgate_domain::api::{
    AgentRegistration, Change, IgmpMode, IgmpSettings, LinkInfo, LinkMembership, StreamMessage,
};
use mcgate_domain::forwarding::{Applied, DomainView, ForwardingTable, LocalMembership};
use mcgate_igmp::{Config as IgmpConfig, Event, Ignored};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::admin::{self, AdminState};
use crate::config::AgentConfig;
use crate::control::{self, ControllerStatus, SessionInput, SharedStatus, StreamEvent};
use crate::link::{IgmpFrame, Link};
use crate::netdev::{self, NetDev};

/// How often attached links are looked for (links come and go with containers).
const RESCAN: Duration = Duration::from_secs(1);
/// How long to wait for the controller's domain settings before running the querier
/// with defaults (so a host whose controller is away still learns its members).
const SETTINGS_GRACE: Duration = Duration::from_secs(3);
/// After a stream reconnect, hosts missing from the new snapshot are still forwarded to
/// for this long (they may simply not have re-registered with a restarted controller
/// yet); see `DomainView::merged_with_stale`.
const STALE_HOLD: Duration = Duration::from_secs(10);

/// Why the agent cannot run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The underlay address is not on this host.
    #[error(
        "the underlay address {0} is not assigned to any interface of this host: give the \
         address other hosts reach this one at"
    )]
    NoUnderlay(Ipv4Addr),
    /// The data plane could not start.
    #[error(transparent)]
    Dataplane(#[from] mcgate_dataplane::DataplaneError),
    /// The controller URL is unusable.
    #[error(transparent)]
    Client(#[from] mcgate_client::ClientError),
    /// The admin endpoint could not be opened.
    #[error("cannot open the admin endpoint {addr}: {source}")]
    Admin {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// One group of one link, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct LinkGroupView {
    /// The group.
    pub group: Ipv4Addr,
    /// The link's filter.
    pub filter: SourceFilter,
    /// Hosts that reported it.
    pub reporters: Vec<Ipv4Addr>,
}

/// One attached link, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct LinkView {
    /// Name.
    pub name: String,
    /// Index.
    pub ifindex: u32,
    /// IPv4 address, if any.
    pub address: Option<Ipv4Addr>,
    /// Whether this agent is the link's querier (false when IGMP is off).
    pub querier: bool,
    /// The querier's version, when IGMP runs.
    pub igmp_version: Option<u8>,
    /// IGMP counters (received by type, queries sent, drops by reason).
    pub igmp: Option<mcgate_igmp::Stats>,
    /// Queries the kernel refused to send.
    pub query_send_errors: u64,
    /// Groups with members on the link.
    pub groups: Vec<LinkGroupView>,
}

/// One domain, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct DomainSummary {
    /// Name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// IGMP mode.
    pub igmp: IgmpMode,
    /// Only registered sources may send.
    pub static_sources: bool,
    /// Other hosts of the domain.
    pub peers: Vec<String>,
    /// Groups with members somewhere in the domain.
    pub groups: usize,
    /// Memberships (host, group) of other hosts in this host's view: what its data
    /// plane forwards to.
    pub remote_members: usize,
}

/// The agent's state as shown by the admin endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentView {
    /// Host name.
    pub host: String,
    /// VXLAN endpoint.
    pub underlay: Option<SocketAddrV4>,
    /// The interface holding the underlay address.
    pub underlay_interface: String,
    /// "v2", "v3", "off", or "default" while the controller has not said.
    pub igmp_mode: String,
    /// Attached links.
    pub links: Vec<LinkView>,
    /// Domains this host belongs to.
    pub domains: Vec<DomainSummary>,
    /// Forwarding tables computed so far.
    pub tables_computed: u64,
    /// Why this data plane runs (asked for, or what `auto` found).
    pub dataplane_chosen_because: String,
}

/// What the querier should run, from the domain settings.
#[derive(Debug, Clone, PartialEq)]
enum IgmpPlan {
    /// Not known yet: wait for the controller (up to the grace period).
    Unknown,
    /// Static membership only.
    Off,
    /// Run the querier with this config.
    On(IgmpConfig),
}

fn igmp_config(mode: IgmpMode, s: &IgmpSettings) -> IgmpPlan {
    let Some(version) = mode.version() else {
        return IgmpPlan::Off;
    };
    IgmpPlan::On(IgmpConfig {
        version,
        settings: s.clone(),
        ..IgmpConfig::default()
    })
}

struct State {
    host: String,
    attach: Vec<String>,
    underlay: SocketAddrV4,
    underlay_if: String,
    underlay_mtu: usize,
    subnet: Option<String>,
    dataplane_name: &'static str,
    links: BTreeMap<String, Link>,
    membership: LocalMembership,
    view: DomainView,
    /// The view before the last stream reconnect, and until when it is merged in.
    stale: Option<(DomainView, Instant)>,
    /// Stream connections so far.
    connections: u64,
    /// The next snapshot is the first of a reconnected stream.
    reconnected: bool,
    igmp: IgmpPlan,
    grace_over: bool,
    dataplane: Arc<dyn Dataplane>,
    session: mpsc::UnboundedSender<SessionInput>,
    igmp_tx: mpsc::Sender<IgmpFrame>,
    table_dirty: bool,
    tables: u64,
    /// Static members last handed to the data plane.
    statics: BTreeSet<(String, Ipv4Addr)>,
    shared: Arc<Mutex<AgentView>>,
}

impl State {
    fn registration(&self) -> AgentRegistration {
        AgentRegistration {
            host: self.host.clone(),
            underlay: self.underlay,
            subnet: self
                .subnet
                .as_ref()
                .and_then(|s| serde_json::from_value(serde_json::Value::String(s.clone())).ok()),
            links: self
                .links
                .values()
                .map(|l| LinkInfo {
                    name: l.dev.name.clone(),
                    address: l.dev.address,
                })
                .collect(),
            dataplane: Some(self.dataplane_name.to_string()),
        }
    }

    /// The querier config to use now: the controller's, or defaults after the grace
    /// period (IGMPv3, which also serves v1/v2 hosts through RFC 3376 section 7).
    fn effective_igmp(&self) -> Option<IgmpConfig> {
        match &self.igmp {
            IgmpPlan::On(c) => Some(c.clone()),
            IgmpPlan::Off => None,
            IgmpPlan::Unknown if self.grace_over => Some(IgmpConfig::default()),
            IgmpPlan::Unknown => None,
        }
    }

    fn rescan(&mut self) {
        let now = Instant::now();
        let found: BTreeMap<String, NetDev> = netdev::scan(&self.attach)
            .into_iter()
            .filter(|d| d.name != self.underlay_if)
            .map(|d| (d.name.clone(), d))
            .collect();
        let mut changed = false;
        let gone: Vec<String> = self
            .links
            .iter()
            .filter(|(name, l)| found.get(*name).is_none_or(|d| d.ifindex != l.dev.ifindex))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            tracing::info!(link = %name, "link gone; detaching");
            self.links.remove(&name);
            self.forget_link_members(&name);
            changed = true;
        }
        let config = self.effective_igmp();
        for (name, dev) in found {
            if let Some(l) = self.links.get_mut(&name) {
                if l.dev.address != dev.address || l.dev.mac != dev.mac {
                    l.dev = dev;
                }
                continue;
            }
            match Link::open(dev.clone(), self.igmp_tx.clone()) {
                Ok(mut link) => {
                    tracing::info!(link = %name, ifindex = dev.ifindex, "attached to link");
                    link.set_igmp(config.as_ref(), now);
                    self.links.insert(name.clone(), link);
                    self.drain_link(&name);
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(link = %name, error = %e, "cannot attach to link; will retry")
                }
            }
        }
        if changed {
            self.dataplane.set_links(
                self.links
                    .values()
                    .map(|l| LinkSpec {
                        name: l.dev.name.clone(),
                        ifindex: l.dev.ifindex,
                    })
                    .collect(),
            );
            let _ = self
                .session
                .send(SessionInput::Registration(self.registration()));
            self.table_dirty = true;
        }
        if let Some((_, mtu, _)) = netdev::underlay_interface(*self.underlay.ip())
            && mtu != self.underlay_mtu
        {
            tracing::info!(mtu, "underlay MTU changed");
            self.underlay_mtu = mtu;
            self.dataplane.set_underlay_mtu(mtu);
        }
    }

    fn forget_link_members(&mut self, link: &str) {
        let groups: Vec<Ipv4Addr> = self
            .membership
            .keys()
            .filter(|(l, _)| l == link)
            .map(|(_, g)| *g)
            .collect();
        for group in groups {
            self.set_member(link, group, None, Vec::new());
        }
    }

    fn set_member(
        &mut self,
        link: &str,
        group: Ipv4Addr,
        filter: Option<SourceFilter>,
        reporters: Vec<Ipv4Addr>,
    ) {
        let key = (link.to_string(), group);
        let filter = filter.filter(|f| !f.is_empty());
        match &filter {
            Some(f) => {
                if self.membership.get(&key) == Some(f) {
                    // Only the reporters changed: worth telling the controller (group
                    // table), not worth a new forwarding table.
                    let _ = self.session.send(SessionInput::Membership(LinkMembership {
                        link: link.to_string(),
                        group,
                        filter,
                        reporters,
                    }));
                    return;
                }
                tracing::info!(link, %group, filter = ?f, "membership");
                self.membership.insert(key, f.clone());
            }
            None => {
                if self.membership.remove(&key).is_none() {
                    return;
                }
                tracing::info!(link, %group, "membership ended");
            }
        }
        self.table_dirty = true;
        let _ = self.session.send(SessionInput::Membership(LinkMembership {
            link: link.to_string(),
            group,
            filter,
            reporters,
        }));
    }

    fn drain_link(&mut self, name: &str) {
        let Some(link) = self.links.get_mut(name) else {
            return;
        };
        for ev in link.drain() {
            match ev {
                Event::GroupChanged {
                    group,
                    filter,
                    reporters,
                } => self.set_member(name, group, filter, reporters),
                Event::QuerierChanged { querier } => match querier {
                    Some(q) => {
                        tracing::info!(link = name, querier = %q, "another querier took over")
                    }
                    None => tracing::info!(link = name, "this agent is the querier"),
                },
                Event::RouterIgnored { from, reason } => match reason {
                    Ignored::OlderVersionQuery(v) => tracing::warn!(
                        link = name,
                        querier = %from,
                        "an IGMP{} querier is on the link; the configured version stays (RFC 3376 7.3.1)",
                        v.number()
                    ),
                    Ignored::HostsOnlyLink => tracing::warn!(
                        link = name,
                        host = %from,
                        "a host sent IGMP queries or router messages; dropped, as containers are hosts, not routers"
                    ),
                },
            }
        }
    }

    fn on_igmp(&mut self, f: IgmpFrame) {
        let now = Instant::now();
        let Some(link) = self.links.get_mut(&f.link) else {
            return;
        };
        if link.dev.ifindex != f.ifindex {
            return;
        }
        link.handle_frame(now, &f.frame);
        self.drain_link(&f.link);
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .filter_map(|l| l.igmp.as_ref().and_then(|i| i.poll_timeout()))
            .min()
    }

    fn on_timeout(&mut self) {
        let now = Instant::now();
        let names: Vec<String> = self.links.keys().cloned().collect();
        for name in names {
            if let Some(i) = self.links.get_mut(&name).and_then(|l| l.igmp.as_mut())
                && i.poll_timeout().is_some_and(|t| t <= now)
            {
                i.handle_timeout(now);
            }
            self.drain_link(&name);
        }
    }

    fn apply_igmp_plan(&mut self) {
        let now = Instant::now();
        let config = self.effective_igmp();
        // A data plane that runs its own querier (the kernel one, on the bridge) speaks
        // the same version and timers as the agent's.
        if let Some(c) = &config {
            self.dataplane.set_querier(QuerierSettings {
                version: c.version.number(),
                robustness: u32::from(c.settings.robustness),
                query_interval: c.query_interval(),
                query_response_interval: c.query_response_interval(),
                last_member_interval: c.settings.last_member_interval(),
                last_member_count: u32::from(c.settings.last_member_count()),
            });
        }
        let names: Vec<String> = self.links.keys().cloned().collect();
        for name in names {
            let had = self.links.get(&name).is_some_and(|l| l.igmp.is_some());
            if let Some(l) = self.links.get_mut(&name) {
                l.set_igmp(config.as_ref(), now);
            }
            if had && config.is_none() {
                self.forget_link_members(&name);
            }
            self.drain_link(&name);
        }
    }

    fn on_stream_event(&mut self, ev: StreamEvent) {
        match ev {
            StreamEvent::Connected => {
                self.reconnected = self.connections > 0;
                self.connections += 1;
            }
            StreamEvent::Message(msg) => self.on_stream(msg),
        }
    }

    fn on_stream(&mut self, msg: StreamMessage) {
        if matches!(msg, StreamMessage::Snapshot { .. }) && std::mem::take(&mut self.reconnected) {
            // The first snapshot after a reconnect may come from a restarted controller
            // that has not heard from every host yet: keep forwarding to the hosts it
            // lacks for a while. The hold keeps the union of what was known.
            let old = match self.stale.take() {
                Some((old, _)) => self.view.merged_with_stale(&old),
                None => self.view.clone(),
            };
            self.stale = Some((old, Instant::now() + STALE_HOLD));
            self.table_dirty = true;
        }
        match &msg {
            StreamMessage::Snapshot { revision, domains } => tracing::info!(
                revision,
                domains = domains.len(),
                peers = domains.iter().map(|d| d.peers.len()).sum::<usize>(),
                "forwarding state snapshot"
            ),
            StreamMessage::Delta { changes, .. } => {
                for c in changes {
                    match c {
                        Change::PeerUp { domain, peer } => {
                            tracing::info!(domain, host = %peer.host, underlay = %peer.underlay, "peer up")
                        }
                        Change::PeerDown { domain, host } => {
                            tracing::info!(domain, host, "peer down")
                        }
                        _ => {}
                    }
                }
            }
            StreamMessage::Keepalive { .. } => {}
        }
        if self.view.apply(&msg) == Applied::Unchanged {
            return;
        }
        self.table_dirty = true;
        let plan = match self.view.igmp() {
            Some((mode, settings)) => igmp_config(mode, &settings),
            None => IgmpPlan::Unknown,
        };
        let modes: BTreeSet<String> = self
            .view
            .domains()
            .map(|d| format!("{:?}/{:?}", d.domain.igmp, d.domain.igmp_settings))
            .collect();
        if modes.len() > 1 {
            tracing::warn!(
                "this host is in domains with different IGMP settings; the querier uses those of the first domain by name"
            );
        }
        if plan != self.igmp && plan != IgmpPlan::Unknown {
            tracing::info!(plan = ?plan, "IGMP settings from the controller");
            self.igmp = plan;
            self.apply_igmp_plan();
        }
    }

    fn end_grace(&mut self) {
        self.grace_over = true;
        if self.igmp == IgmpPlan::Unknown {
            tracing::info!(
                "no domain settings from the controller yet; running the querier with defaults"
            );
            self.apply_igmp_plan();
        }
    }

    fn flush(&mut self) {
        if self.table_dirty {
            self.table_dirty = false;
            let names: Vec<String> = self.links.keys().cloned().collect();
            let table = match &self.stale {
                Some((old, _)) => ForwardingTable::compute(
                    &self.view.merged_with_stale(old),
                    &self.host,
                    &names,
                    &self.membership,
                ),
                None => ForwardingTable::compute(&self.view, &self.host, &names, &self.membership),
            };
            self.dataplane.set_table(Arc::new(table));
            self.tables += 1;
            let statics = self.static_members(&names);
            if statics != self.statics {
                self.dataplane.set_static_members(statics.clone());
                self.statics = statics;
            }
        }
        self.publish();
    }

    /// This host's static members as (link, group), on attached links only.
    fn static_members(&self, links: &[String]) -> BTreeSet<(String, Ipv4Addr)> {
        let mut out = BTreeSet::new();
        for d in self.view.domains() {
            for m in d.static_members.iter().filter(|m| m.host == self.host) {
                match &m.interface {
                    Some(l) if links.contains(l) => {
                        out.insert((l.clone(), m.group));
                    }
                    Some(_) => {}
                    None => {
                        for l in links {
                            out.insert((l.clone(), m.group));
                        }
                    }
                }
            }
        }
        out
    }

    fn publish(&self) {
        let links = self
            .links
            .values()
            .map(|l| LinkView {
                name: l.dev.name.clone(),
                ifindex: l.dev.ifindex,
                address: l.dev.address,
                querier: l.igmp.as_ref().is_some_and(|i| i.is_querier()),
                igmp_version: l.igmp.as_ref().map(|i| i.version().number()),
                igmp: l.igmp.as_ref().map(|i| i.stats().clone()),
                query_send_errors: l.send_errors,
                groups: self
                    .membership
                    .iter()
                    .filter(|((link, _), _)| link == &l.dev.name)
                    .map(|((_, group), filter)| LinkGroupView {
                        group: *group,
                        filter: filter.clone(),
                        reporters: l
                            .igmp
                            .as_ref()
                            .map(|i| i.reporters(*group))
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect();
        let domains = self
            .view
            .domains()
            .map(|d| DomainSummary {
                name: d.domain.name.clone(),
                vni: d.domain.vni,
                igmp: d.domain.igmp,
                static_sources: d.domain.static_sources,
                peers: d
                    .peers
                    .iter()
                    .filter(|p| p.host != self.host)
                    .map(|p| p.host.clone())
                    .collect(),
                groups: d
                    .members
                    .iter()
                    .map(|m| m.group)
                    .collect::<BTreeSet<_>>()
                    .len(),
                remote_members: d.members.iter().filter(|m| m.host != self.host).count(),
            })
            .collect();
        let igmp_mode = match &self.igmp {
            IgmpPlan::Unknown => "default".to_string(),
            IgmpPlan::Off => "off".to_string(),
            IgmpPlan::On(c) => c.version.to_string(),
        };
        let chosen = match self.shared.lock() {
            Ok(v) => v.dataplane_chosen_because.clone(),
            Err(p) => p.into_inner().dataplane_chosen_because.clone(),
        };
        let view = AgentView {
            dataplane_chosen_because: chosen,
            host: self.host.clone(),
            underlay: Some(self.underlay),
            underlay_interface: self.underlay_if.clone(),
            igmp_mode,
            links,
            domains,
            tables_computed: self.tables,
        };
        match self.shared.lock() {
            Ok(mut v) => *v = view,
            Err(p) => *p.into_inner() = view,
        }
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    use tokio::signal::unix::{SignalKind, signal};

    let ip = *cfg.underlay.ip();
    let (underlay_if, underlay_mtu, subnet) =
        netdev::underlay_interface(ip).ok_or(AgentError::NoUnderlay(ip))?;
    let client = Client::new(&cfg.controller)?;
    let links_now: Vec<LinkSpec> = netdev::scan(&cfg.attach)
        .into_iter()
        .filter(|d| d.name != underlay_if)
        .map(|d| LinkSpec {
            name: d.name,
            ifindex: d.ifindex,
        })
        .collect();
    let choice = mcgate_dataplane::choose::choose(cfg.dataplane, &links_now)?;
    tracing::info!(
        asked = cfg.dataplane.as_str(),
        dataplane = choice.kind.as_str(),
        reason = %choice.reason,
        "data plane chosen"
    );
    let dataplane: Arc<dyn Dataplane> = Arc::from(mcgate_dataplane::start(
        choice.kind,
        DataplaneConfig {
            underlay: cfg.underlay,
            underlay_mtu,
        },
    )?);
    tracing::info!(
        host = %cfg.host,
        underlay = %cfg.underlay,
        interface = %underlay_if,
        mtu = underlay_mtu,
        dataplane = dataplane.name(),
        "agent starting"
    );

    let status: SharedStatus = Arc::new(Mutex::new(ControllerStatus {
        url: cfg.controller.clone(),
        state: "connecting".into(),
        ..ControllerStatus::default()
    }));
    let shared = Arc::new(Mutex::new(AgentView {
        dataplane_chosen_because: choice.reason.clone(),
        ..AgentView::default()
    }));

    let admin_listener = match &cfg.admin {
        Some(addr) => Some(
            admin::bind(addr)
                .await
                .map_err(|source| AgentError::Admin {
                    addr: format!("{addr:?}"),
                    source,
                })?,
        ),
        None => None,
    };

    let (session_tx, session_rx) = mpsc::unbounded_channel();
    let (stream_tx, mut stream_rx) = mpsc::channel(256);
    let (igmp_tx, mut igmp_rx) = mpsc::channel(1024);

    let mut state = State {
        host: cfg.host.clone(),
        attach: cfg.attach.clone(),
        underlay: cfg.underlay,
        underlay_if,
        underlay_mtu,
        subnet: Some(subnet.network_string()),
        dataplane_name: dataplane.name(),
        links: BTreeMap::new(),
        membership: LocalMembership::new(),
        view: DomainView::new(),
        stale: None,
        connections: 0,
        reconnected: false,
        igmp: IgmpPlan::Unknown,
        grace_over: false,
        dataplane: dataplane.clone(),
        session: session_tx,
        igmp_tx,
        table_dirty: true,
        tables: 0,
        statics: BTreeSet::new(),
        shared: shared.clone(),
    };
    state.rescan();
    state.flush();

    let session = tokio::spawn(control::session_task(
        client.clone(),
        state.registration(),
        session_rx,
        status.clone(),
    ));
    let deregister_client = client.clone();
    let stream = tokio::spawn(control::stream_task(
        client,
        cfg.host.clone(),
        stream_tx,
        status.clone(),
    ));
    let admin_task = admin_listener.map(|l| {
        tokio::spawn(admin::serve(
            l,
            AdminState {
                view: shared,
                status,
                dataplane: dataplane.clone(),
            },
        ))
    });

    let mut sigterm = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    let mut rescan = tokio::time::interval(RESCAN);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let grace = tokio::time::sleep(SETTINGS_GRACE);
    tokio::pin!(grace);
    let far = Instant::now() + Duration::from_secs(3600);
    loop {
        let next = state.next_timeout().unwrap_or(far);
        let stale_until = state.stale.as_ref().map_or(far, |(_, t)| *t);
        tokio::select! {
            Some(f) = igmp_rx.recv() => state.on_igmp(f),
            Some(ev) = stream_rx.recv() => state.on_stream_event(ev),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => state.on_timeout(),
            _ = rescan.tick() => state.rescan(),
            _ = &mut grace, if !state.grace_over => state.end_grace(),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(stale_until)), if state.stale.is_some() => {
                tracing::info!("hold-down after the controller reconnect is over");
                state.stale = None;
                state.table_dirty = true;
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        state.flush();
    }
    tracing::info!("agent stopping");
    session.abort();
    stream.abort();
    // Tell the controller at once, so other hosts stop sending here now rather than
    // when the lease runs out. Best effort: a controller that is away just lets the
    // lease expire.
    let path = format!("/v1/agents/{}", cfg.host);
    let goodbye = deregister_client.delete::<(), serde_json::Value>(&path, None);
    match tokio::time::timeout(Duration::from_secs(1), goodbye).await {
        Ok(Ok(_)) => tracing::info!("deregistered from the controller"),
        Ok(Err(e)) => tracing::info!(error = %e, "could not deregister; the lease will expire"),
        Err(_) => tracing::info!("the controller did not answer; the lease will expire"),
    }
    if let Some(t) = admin_task {
        t.abort();
    }
    if let Some(crate::config::AdminAddr::Unix(path)) = &cfg.admin {
        let _ = std::fs::remove_file(path);
    }
    drop(state);
    dataplane.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcgate_igmp::Version;

    #[test]
    fn domain_settings_become_querier_config() {
        let s = IgmpSettings {
            robustness: 3,
            query_interval_ms: 120_000,
            ..IgmpSettings::default()
        };
        let IgmpPlan::On(c) = igmp_config(IgmpMode::V2, &s) else {
            panic!("v2 runs the querier");
        };
        assert_eq!(c.version, Version::V2);
        assert_eq!(c.settings.robustness, 3);
        assert_eq!(c.settings.last_member_count(), 3);
        assert_eq!(c.query_interval(), Duration::from_secs(120));
        assert_eq!(c.settings.startup_query_interval(), Duration::from_secs(30));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(igmp_config(IgmpMode::Off, &s), IgmpPlan::Off);
    }
}
