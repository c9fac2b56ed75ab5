//! The agent's driver: the tokio loop that feeds [`AgentCore`] what happens (IGMP
//! frames, the controller's stream, link rescans, the clock) and executes what it asks
//! for (send a query, tell the controller, hand the data plane a table, save the state
//! file). The decisions are the core's; this loop only waits and executes.
//!
//! The IGMP sockets, the controller session and the stream feed the loop through
//! channels. The data plane runs on its own threads and only ever receives whole new
//! tables, so nothing here can stall forwarding.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mcgate_dataplane::DataplaneKind;
use mcgate_dataplane::choose::Requested;
use mcgate_dataplane::{Dataplane, DataplaneConfig, LinkSpec, WireguardConfig};
use mcgate_sys::packet::Filter;
use tokio::sync::{mpsc, watch};

use crate::admin::{self, AdminState, RotateRequest};
use crate::config::AgentConfig;
use crate::control::{self, ControllerStatus, SessionInput, SharedStatus};
use crate::controllers::Controllers;
use crate::core::{Action, AgentCore, HostIdentity};
use crate::host_key;
use crate::link::{IgmpFrame, LinkSocket};
use crate::liveness_task::{Liveness, PeerKey};
use crate::netdev::{self, NetDev};
use crate::persist::{self, SavedMembership};
use crate::view::AgentView;

/// How often attached links are looked for (links come and go with containers, and
/// get their addresses after they appear).
const RESCAN: Duration = Duration::from_secs(1);
/// Frames queued from the IGMP sockets towards the loop; beyond this they are dropped
/// and counted (`queue_full`).
const IGMP_QUEUE: usize = 8192;
/// Frames handled per loop turn before the state is published again.
const IGMP_BATCH: usize = 256;

/// How long a stopping agent waits to repeat its upstream leave (RFC 3376 5.1: the
/// Robustness Variable - 1 repeats fall within the 1 s Unsolicited Report Interval each;
/// beyond this they are given up, the first copy having gone out at once).
const UPSTREAM_LEAVE_WAIT: Duration = Duration::from_millis(1500);

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
    /// The WireGuard key cannot be loaded or stored.
    #[error(transparent)]
    Key(#[from] host_key::KeyError),
    /// The upstream interface is the one holding the underlay address.
    #[error(
        "the upstream interface {0} holds the underlay address: give the interface on the \
         upstream multicast network, not the one other hosts reach this one through"
    )]
    UpstreamIsUnderlay(String),
    /// The kernel data plane was asked for with an upstream interface.
    #[error(
        "--upstream needs the userspace data plane (the relay takes the upstream traffic \
         into the domain): give --dataplane userspace or auto"
    )]
    UpstreamNeedsRelay,
    /// The peer keepalive socket could not be bound.
    #[error(
        "cannot bind the peer keepalive socket on {addr}: {source} (is the port free? choose \
         another with --liveness-port, the same on every host, or 0 to turn keepalives off)"
    )]
    Liveness {
        /// The address.
        addr: SocketAddrV4,
        /// The cause.
        source: std::io::Error,
    },
    /// The state directory cannot be used.
    #[error("cannot use the state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The I/O side of the agent: sockets, channels, the data plane, the state file.
struct Driver {
    core: AgentCore,
    sockets: BTreeMap<String, LinkSocket>,
    /// The upstream interface's IGMP socket, while it exists.
    upstream_socket: Option<LinkSocket>,
    upstream: Option<String>,
    attach: Vec<String>,
    underlay_ip: Ipv4Addr,
    underlay_if: String,
    igmp_tx: mpsc::Sender<IgmpFrame>,
    dataplane: Arc<dyn Dataplane>,
    session: mpsc::UnboundedSender<SessionInput>,
    shared: Arc<Mutex<AgentView>>,
    state_dir: Option<PathBuf>,
    /// The peer keepalives, when they run, and the peers last handed to them.
    liveness: Option<Arc<Liveness>>,
    liveness_peers: Vec<PeerKey>,
}

impl Driver {
    /// Opens the IGMP socket of every link matching `--attach`, closes those of gone or
    /// re-created links, and tells the core which links are attached, with their
    /// current addresses.
    fn rescan(&mut self) {
        let found: Vec<NetDev> = netdev::scan(&self.attach)
            .into_iter()
            .filter(|d| d.name != self.underlay_if && Some(&d.name) != self.upstream.as_ref())
            .collect();
        self.sockets.retain(|name, s| {
            found
                .iter()
                .any(|d| &d.name == name && d.ifindex == s.ifindex)
        });
        let mut attached = Vec::with_capacity(found.len());
        for dev in found {
            if !self.sockets.contains_key(&dev.name) {
                match LinkSocket::open(
                    &dev.name,
                    dev.ifindex,
                    Filter::Membership,
                    self.igmp_tx.clone(),
                ) {
                    Ok(s) => {
                        self.sockets.insert(dev.name.clone(), s);
                    }
                    Err(e) => {
                        tracing::warn!(link = %dev.name, error = %e, "cannot attach to link; will retry");
                        continue;
                    }
                }
            }
            attached.push(dev);
        }
        self.core.handle_links(Instant::now(), attached);
        self.rescan_upstream();
        if let Some((_, mtu, _)) = netdev::underlay_interface(self.underlay_ip) {
            self.core.handle_underlay_mtu(mtu);
        }
    }

    /// Opens (or re-opens, for a re-created interface) the upstream interface's IGMP
    /// socket and tells the core what is there.
    fn rescan_upstream(&mut self) {
        let Some(name) = self.upstream.clone() else {
            return;
        };
        let dev = netdev::scan(std::slice::from_ref(&name))
            .into_iter()
            .find(|d| d.name == name);
        if self.upstream_socket.as_ref().map(|s| s.ifindex) != dev.as_ref().map(|d| d.ifindex) {
            self.upstream_socket = None;
        }
        let dev = match dev {
            Some(d) if self.upstream_socket.is_none() => {
                match LinkSocket::open(&d.name, d.ifindex, Filter::Igmp, self.igmp_tx.clone()) {
                    Ok(s) => {
                        self.upstream_socket = Some(s);
                        Some(d)
                    }
                    Err(e) => {
                        tracing::warn!(link = %name, error = %e, "cannot open the upstream interface; will retry");
                        None
                    }
                }
            }
            other => other,
        };
        self.core.handle_upstream_link(Instant::now(), dev);
    }

    /// While stopping: sends the repeats of the upstream leave as they fall due, until
    /// none is left or `until`.
    async fn finish_upstream_leave(&mut self, until: Instant) {
        while let Some(at) = self.core.upstream_leave_timeout() {
            if at > until {
                tracing::info!("stopping without the last repeats of the upstream leave");
                return;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            self.core.handle_upstream_leave_timeout(Instant::now());
            self.execute();
        }
    }

    /// The socket frames for `link` go out of.
    fn socket(&self, link: &str, ifindex: u32) -> Option<&LinkSocket> {
        match self.upstream.as_deref() {
            Some(u) if u == link => self.upstream_socket.as_ref(),
            _ => self.sockets.get(link),
        }
        .filter(|s| s.ifindex == ifindex)
    }

    /// Does what the core asks, then publishes the state for the admin endpoint.
    fn execute(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Transmit {
                    link,
                    ifindex,
                    frame,
                } => {
                    let Some(sock) = self.socket(&link, ifindex) else {
                        continue;
                    };
                    if let Err(e) = sock.send(&frame) {
                        tracing::debug!(link = %link, error = %e, "cannot send a query");
                        self.core.handle_send_error(&link);
                    }
                }
                Action::Session(input) => {
                    let _ = self.session.send(input);
                }
                Action::SetTable(t) => {
                    self.follow_peers(&t);
                    self.dataplane.set_table(t);
                }
                Action::SetLinks(l) => self.dataplane.set_links(l),
                Action::SetStaticMembers(m) => self.dataplane.set_static_members(m),
                Action::SetQuerier(v, s) => self.dataplane.set_querier(v, s),
                Action::SetUnderlayMtu(m) => self.dataplane.set_underlay_mtu(m),
                Action::Save(m) => self.save(&m),
            }
        }
        self.publish();
    }

    /// Hands the keepalives the table's peers when they changed.
    fn follow_peers(&mut self, table: &mcgate_domain::forwarding::ForwardingTable) {
        let Some(l) = &self.liveness else {
            return;
        };
        let peers: Vec<PeerKey> = table
            .tunnel_peers()
            .into_values()
            .map(|p| PeerKey {
                host: p.host.clone(),
                address: *p.underlay.ip(),
                public_key: p.public_key.clone(),
            })
            .collect();
        if peers != self.liveness_peers {
            l.set_peers(peers.clone());
            self.liveness_peers = peers;
        }
    }

    /// A new WireGuard key pair: stored (with a state directory), handed to the data
    /// plane, then registered. Returns the new public key.
    fn rotate_key(&mut self) -> Result<String, String> {
        let (key, _) =
            host_key::load_or_create(self.state_dir.as_deref(), true).map_err(|e| e.to_string())?;
        let public = key.public_base64();
        tracing::info!(public_key = %public, "WireGuard key rotated");
        if let Some(l) = &self.liveness {
            l.set_key(key.clone());
        }
        self.dataplane.set_key(key);
        self.core.set_public_key(public.clone());
        Ok(public)
    }

    fn save(&self, membership: &SavedMembership) {
        let Some(dir) = &self.state_dir else {
            return;
        };
        if let Err(e) = persist::save(dir, &self.core.host.name, membership, SystemTime::now()) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the state file");
        }
    }

    fn publish(&self) {
        let mut view = self.core.view();
        for l in &mut view.links {
            if let Some(s) = self.sockets.get(&l.name) {
                l.igmp_frames = s.counters();
                l.mld.frames = s.mld_counters();
            }
        }
        if let (Some(u), Some(s)) = (view.upstream.as_mut(), &self.upstream_socket) {
            u.igmp_frames = s.counters();
        }
        match self.shared.lock() {
            Ok(mut v) => *v = view,
            Err(p) => *p.into_inner() = view,
        }
    }
}

/// The membership saved by the previous run, if usable.
fn restore(cfg: &AgentConfig) -> Result<SavedMembership, AgentError> {
    let Some(dir) = &cfg.state_dir else {
        return Ok(SavedMembership::default());
    };
    std::fs::create_dir_all(dir).map_err(|source| AgentError::StateDir {
        path: dir.clone(),
        source,
    })?;
    match persist::load(dir, &cfg.host, SystemTime::now()) {
        Ok(Some(m)) => {
            tracing::info!(
                links = m.links.len(),
                groups = m.links.iter().map(|l| l.groups.len()).sum::<usize>(),
                "membership restored from the state file"
            );
            Ok(m)
        }
        Ok(None) => Ok(SavedMembership::default()),
        Err(e) => {
            tracing::warn!("{e}");
            Ok(SavedMembership::default())
        }
    }
}

fn with_upstream(core: AgentCore, cfg: &AgentConfig) -> AgentCore {
    match &cfg.upstream {
        Some(u) => core
            .with_upstream(u.clone(), cfg.upstream_groups.clone(), fastrand::u64(..))
            .with_upstream_egress(cfg.upstream_egress.clone()),
        None => core,
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    use tokio::signal::unix::{SignalKind, signal};

    let ip = *cfg.underlay.ip();
    let (underlay_if, underlay_mtu, subnet) =
        netdev::underlay_interface(ip).ok_or(AgentError::NoUnderlay(ip))?;
    if cfg.upstream.as_deref() == Some(underlay_if.as_str()) {
        return Err(AgentError::UpstreamIsUnderlay(underlay_if));
    }
    // Per controller URL, one kept-alive connection for the session's registrations
    // and reports (the heartbeats and the stream each have their own).
    let clients: Vec<_> = crate::join::clients(&cfg)?
        .into_iter()
        .map(mcgate_client::Client::keep_alive)
        .collect();
    let saved = restore(&cfg)?;
    let links_now: Vec<LinkSpec> = netdev::scan(&cfg.attach)
        .into_iter()
        .filter(|d| d.name != underlay_if && Some(&d.name) != cfg.upstream.as_ref())
        .map(|d| {
            let routers = netdev::matches_any(&cfg.router_links, &d.name);
            LinkSpec {
                single_host: d.single_host() && !routers,
                egress: Vec::new(),
                routers,
                name: d.name,
                ifindex: d.ifindex,
                standby: Vec::new(),
            }
        })
        .collect();
    let requested = match (&cfg.upstream, cfg.dataplane) {
        (None, r) => r,
        // The relay takes the upstream traffic into the domain; the kernel plane
        // bridges task links only.
        (Some(_), Requested::Auto) => Requested::Kind(DataplaneKind::Userspace),
        (Some(_), Requested::Kind(DataplaneKind::Kernel)) => {
            return Err(AgentError::UpstreamNeedsRelay);
        }
        (Some(_), r) => r,
    };
    if let Some(u) = &cfg.upstream {
        if cfg.upstream_groups.is_empty() {
            tracing::warn!(
                upstream = %u,
                "no --upstream-groups given: nothing is reported on the upstream interface and no upstream traffic is joined"
            );
        } else {
            tracing::info!(upstream = %u, groups = ?cfg.upstream_groups.iter().map(ToString::to_string).collect::<Vec<_>>(), "IGMP proxy towards the upstream interface (RFC 4605)");
        }
        if !cfg.upstream_egress.is_empty() {
            tracing::info!(upstream = %u, egress = ?cfg.upstream_egress.iter().map(ToString::to_string).collect::<Vec<_>>(), "the domain's traffic to these groups leaves on the upstream interface (TTL decremented)");
        }
    }
    let choice = mcgate_dataplane::choose::choose(requested, &links_now)?;
    tracing::info!(
        asked = cfg.dataplane.as_str(),
        dataplane = choice.kind.as_str(),
        reason = %choice.reason,
        "data plane chosen"
    );
    let (key, new_key) = host_key::load_or_create(cfg.state_dir.as_deref(), cfg.rotate_key)?;
    tracing::info!(
        public_key = %key.public_base64(),
        new = new_key,
        kept = cfg.state_dir.is_some(),
        "WireGuard key pair"
    );
    let public_key = key.public_base64();
    // Peers found dead by their keepalives: the loop takes them out of the table, the
    // heartbeats tell the controller.
    let (down_tx, mut down_rx) = watch::channel(BTreeSet::new());
    let liveness = match cfg.liveness_port {
        Some(port) => {
            let addr = SocketAddrV4::new(ip, port);
            let l = Liveness::start(addr, cfg.liveness, key.clone(), down_tx.clone())
                .map_err(|source| AgentError::Liveness { addr, source })?;
            tracing::info!(%addr, interval = ?cfg.liveness.tx_interval, multiplier = cfg.liveness.detect_mult, "peer keepalives");
            Some(Arc::new(l))
        }
        None => {
            tracing::info!(
                "peer keepalives off: peers judge this host by the controller's lease alone"
            );
            None
        }
    };
    let dataplane: Arc<dyn Dataplane> = Arc::from(mcgate_dataplane::start(
        choice.kind,
        DataplaneConfig {
            underlay: cfg.underlay,
            underlay_mtu,
            wireguard: Some(WireguardConfig {
                key,
                listen: cfg.wireguard(),
            }),
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
        state: "connecting".into(),
        ..ControllerStatus::default()
    }));
    let controllers = Arc::new(Controllers::new(clients, status.clone()));
    let shared = Arc::new(Mutex::new(AgentView::default()));

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
    let (igmp_tx, mut igmp_rx) = mpsc::channel(IGMP_QUEUE);

    let host = HostIdentity {
        name: cfg.host.clone(),
        zone: cfg.zone.clone(),
        underlay: cfg.underlay,
        underlay_if: underlay_if.clone(),
        subnet: Some(subnet.network_string()),
        dataplane: dataplane.name(),
        dataplane_chosen_because: choice.reason.clone(),
        public_key,
        wireguard: cfg.wireguard(),
    };
    let mut d = Driver {
        core: with_upstream(
            AgentCore::new(host, underlay_mtu, saved, Instant::now())
                .with_router_links(cfg.router_links.clone()),
            &cfg,
        ),
        sockets: BTreeMap::new(),
        upstream_socket: None,
        upstream: cfg.upstream.clone(),
        attach: cfg.attach.clone(),
        underlay_ip: ip,
        underlay_if,
        igmp_tx,
        dataplane: dataplane.clone(),
        session: session_tx,
        shared: shared.clone(),
        state_dir: cfg.state_dir.clone(),
        liveness: liveness.clone(),
        liveness_peers: Vec::new(),
    };
    d.rescan();
    // The first registration already carries the links (and the restored membership
    // follows in the session's first snapshot).
    let registration = d.core.registration();
    d.execute();

    // Each registration wakes the stream task (the controller refuses the stream of a
    // host it does not know).
    let registered = Arc::new(tokio::sync::Notify::new());
    let session = tokio::spawn(control::session_task(
        controllers.clone(),
        registration,
        session_rx,
        status.clone(),
        registered.clone(),
        down_rx.clone(),
    ));
    let stream = tokio::spawn(control::stream_task(
        controllers.clone(),
        cfg.host.clone(),
        stream_tx,
        status.clone(),
        registered,
    ));
    let traffic = tokio::spawn(crate::traffic_task::run(
        controllers.clone(),
        cfg.host.clone(),
        status.clone(),
        shared.clone(),
        dataplane.clone(),
        Instant::now(),
    ));
    let lease_status = status.clone();
    let (rotate_tx, mut rotate_rx) = mpsc::channel::<RotateRequest>(4);
    let admin_task = admin_listener.map(|l| {
        tokio::spawn(admin::serve(
            l,
            AdminState {
                view: shared,
                status,
                dataplane: dataplane.clone(),
                rotate: rotate_tx,
                liveness: liveness.clone(),
            },
        ))
    });

    let mut sigterm = signal(SignalKind::terminate()).map_err(AgentError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(AgentError::Signals)?;
    let mut rescan = tokio::time::interval(RESCAN);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Armed only while the core has a deadline: with none (no link, IGMP off) the
        // loop sleeps until something arrives, however long that takes.
        let deadline = d.core.poll_timeout();
        let wake = tokio::time::Instant::from_std(deadline.unwrap_or_else(Instant::now));
        tokio::select! {
            Some(f) = igmp_rx.recv() => {
                d.core.handle_frame(Instant::now(), &f.link, f.ifindex, &f.frame);
                for _ in 1..IGMP_BATCH {
                    let Ok(f) = igmp_rx.try_recv() else { break };
                    d.core.handle_frame(Instant::now(), &f.link, f.ifindex, &f.frame);
                }
            }
            Some(ev) = stream_rx.recv() => d.core.handle_stream(Instant::now(), ev),
            Ok(()) = down_rx.changed() => {
                let down = down_rx.borrow_and_update().clone();
                d.core.handle_peers_down(down);
            }
            _ = tokio::time::sleep_until(wake), if deadline.is_some() => {
                // A renewal since the last turn moves the fence's deadline first.
                d.core.handle_lease(Instant::now(), control::lease_until(&lease_status));
                d.core.handle_timeout(Instant::now());
            }
            _ = rescan.tick() => d.rescan(),
            Some(answer) = rotate_rx.recv() => {
                let _ = answer.send(d.rotate_key());
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        // A gateway forwards only while its lease surely holds (fencing).
        d.core
            .handle_lease(Instant::now(), control::lease_until(&lease_status));
        d.execute();
    }
    tracing::info!("agent stopping");
    // Leave upstream first (the leave goes out now; its repeats below), so the upstream
    // router stops forwarding within its last-member queries.
    let stopping = Instant::now();
    d.core.leave_upstream(stopping);
    d.execute();
    if let Some(l) = &liveness {
        // Peers stop judging this host (no report, no false alarm): a successor, or
        // the deregistration below, or the lease, settles it.
        l.goodbye();
    }
    session.abort();
    stream.abort();
    traffic.abort();
    if d.state_dir.is_some() {
        // A restart follows (an upgrade, a rolling update): the next agent resumes
        // from the state file and this host's registration, so other hosts keep
        // sending here meanwhile. If no agent returns, the lease runs out.
        let m = d.core.saved_membership();
        d.save(&m);
        tracing::info!("state saved; keeping the registration for the next agent");
    } else {
        // Tell the controller at once, so other hosts stop sending here now rather
        // than when the lease runs out. Best effort: a controller that is away just
        // lets the lease expire.
        let path = format!("/v1/agents/{}", cfg.host);
        let (_, client) = controllers.current();
        let goodbye = client.delete::<(), serde_json::Value>(&path, None);
        match tokio::time::timeout(Duration::from_secs(1), goodbye).await {
            Ok(Ok(_)) => tracing::info!("deregistered from the controller"),
            Ok(Err(e)) => {
                tracing::info!(error = %e, "could not deregister; the lease will expire")
            }
            Err(_) => tracing::info!("the controller did not answer; the lease will expire"),
        }
    }
    d.finish_upstream_leave(stopping + UPSTREAM_LEAVE_WAIT)
        .await;
    if let Some(t) = admin_task {
        t.abort();
    }
    if let Some(crate::config::AdminAddr::Unix(path)) = &cfg.admin {
        let _ = std::fs::remove_file(path);
    }
    let successor = d.state_dir.is_some();
    drop(d);
    if successor {
        // The next agent takes over what forwards without this process (the kernel
        // data plane's devices and tables), so receivers keep their streams meanwhile.
        dataplane.detach();
    } else {
        dataplane.shutdown();
    }
    Ok(())
}
