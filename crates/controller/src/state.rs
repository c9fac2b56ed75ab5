//! The controller's shared state: the model, the store and the hub behind one lock, and
//! the two background loops (the flush that coalesces changes into stream lines, the
//! lease timer).
//!
//! The lock is a `std::sync::Mutex` held only for in-memory work: never across an
//! `.await` and never across a store commit (an fsync, which takes seconds when the
//! disk is busy), so heartbeats, membership reports and streams never wait for the
//! disk. Admin verbs take a second lock of their own, which orders their commits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mcgate_domain::api::Revision;
use mcgate_domain::model::{Effect, Model};
use mcgate_domain::validate::ModelError;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::hub::{Hub, HubLimits, Subscription};
use crate::store::{Store, StoreError};

/// An agent whose lease expired this long ago is dropped from `GET /v1/agents`.
pub const FORGET_EXPIRED_MS: u64 = 10 * 60 * 1_000;

/// Tunables of a controller.
#[derive(Debug, Clone)]
pub struct Config {
    /// An agent silent this long loses its members.
    pub lease_ms: u64,
    /// How often agents are told to heartbeat.
    pub heartbeat_ms: u64,
    /// An agent that peers report dead (its keepalives stopped) loses its members once
    /// it has also been silent this long, before its lease runs out; 0: only the lease.
    pub peer_confirm_ms: u64,
    /// How long changes are gathered before they are sent (a burst becomes few lines).
    pub coalesce_ms: u64,
    /// A stream idle this long gets a keepalive line.
    pub keepalive_ms: u64,
    /// Lines queued per agent before a lagging agent's stream is closed.
    pub stream_queue: usize,
    /// Deltas kept for resuming streams.
    pub ring_entries: usize,
    /// Bytes of deltas kept for resuming streams.
    pub ring_bytes: usize,
    /// Bounds on the HTTP connections of each listener.
    pub connections: crate::server::ConnLimits,
    /// Where agents' tunnel addresses come from.
    pub tunnel_pool: ipnet::Ipv4Net,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lease_ms: 3_000,
            heartbeat_ms: 250,
            peer_confirm_ms: 600,
            coalesce_ms: 5,
            keepalive_ms: 1_000,
            stream_queue: 1_024,
            ring_entries: 16_384,
            ring_bytes: 64 << 20,
            connections: crate::server::ConnLimits::default(),
            tunnel_pool: mcgate_domain::tunnel_pool::DEFAULT_POOL,
        }
    }
}

pub(crate) struct Inner {
    pub model: Model,
    pub hub: Hub,
    /// The etcd store's key revisions and leases (empty with the embedded store).
    pub mirror: crate::etcd::mirror::Mirror,
}

/// Where the state is kept.
pub(crate) enum Backend {
    /// One controller, one redb file.
    Embedded(Store),
    /// Replicas sharing etcd.
    Etcd(Arc<crate::etcd::replica::Replica>),
}

/// The controller: shared by every handler and background task.
pub struct Controller {
    pub(crate) config: Config,
    inner: Mutex<Inner>,
    /// Held by an admin verb from its dry run to its effects: orders the commits, and
    /// keeps domain records as the dry run saw them while the state lock is free.
    admin: Mutex<()>,
    pub(crate) backend: Backend,
    flush: Notify,
    /// The revision after the last flush's lines were queued (keepalives carry it).
    published: AtomicU64,
    start: Instant,
    /// The `/metrics` families.
    pub metrics: crate::metrics::Metrics,
    /// The join tokens and credentials.
    pub tokens: crate::auth::tokens::Tokens,
    /// Agents' traffic reports (figures only, never stored).
    pub(crate) traffic: std::sync::Mutex<mcgate_domain::traffic_book::TrafficBook>,
    /// The revision after the last flush, for those who watch the state change; also
    /// signalled, unchanged, when a lease expires.
    pub(crate) revisions: tokio::sync::watch::Sender<u64>,
    /// Wakes the lease timer when an agent's report of dead peers changed.
    lease_wake: Notify,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why an API call failed inside the controller.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The request was refused.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The controller is shutting down.
    #[error("the controller is shutting down")]
    ShuttingDown,
    /// The shared store cannot take the change now (the text says why and what next).
    #[error("{0}")]
    Unavailable(String),
}

impl Controller {
    /// Opens the store in `data_dir` and loads the domains.
    pub fn open(config: Config, data_dir: &std::path::Path) -> Result<Arc<Self>, StoreError> {
        let (store, loaded) = Store::open(data_dir)?;
        let tokens =
            crate::auth::tokens::Tokens::open(data_dir).map_err(|message| StoreError::Open {
                path: data_dir.join(crate::auth::tokens::TOKENS_FILE),
                message,
            })?;
        // Revisions and sessions of this run start above every earlier run's.
        let base = loaded.epoch << 40;
        let mut model = Model::new(base);
        model.set_tunnel_pool(config.tunnel_pool);
        model.load(loaded.domains);
        Ok(Self::assemble(
            config,
            base,
            model,
            Default::default(),
            Backend::Embedded(store),
            tokens,
        ))
    }

    /// A controller over a loaded model; stream revisions start at `base`.
    pub(crate) fn assemble(
        config: Config,
        base: u64,
        model: Model,
        mirror: crate::etcd::mirror::Mirror,
        backend: Backend,
        tokens: crate::auth::tokens::Tokens,
    ) -> Arc<Self> {
        let hub = Hub::new(
            base,
            HubLimits {
                queue: config.stream_queue,
                ring_entries: config.ring_entries,
                ring_bytes: config.ring_bytes,
            },
        );
        Arc::new(Self {
            config,
            inner: Mutex::new(Inner { model, hub, mirror }),
            admin: Mutex::new(()),
            backend,
            flush: Notify::new(),
            published: AtomicU64::new(base),
            start: Instant::now(),
            metrics: crate::metrics::Metrics::new(),
            tokens,
            traffic: Default::default(),
            revisions: tokio::sync::watch::Sender::new(base),
            lease_wake: Notify::new(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the model half-changed in a way
        // later calls trip over (every operation validates before it mutates), so keep
        // serving rather than poisoning every later request.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds since the controller started (tokio's clock, so tests can pause it).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The revision keepalives report.
    pub fn published(&self) -> Revision {
        self.published.load(Ordering::Acquire)
    }

    /// The etcd link, in etcd mode.
    pub(crate) fn etcd(&self) -> Option<&Arc<crate::etcd::replica::Replica>> {
        match &self.backend {
            Backend::Etcd(r) => Some(r),
            Backend::Embedded(_) => None,
        }
    }

    /// Queues effects for the next flush.
    pub(crate) fn push_effects(&self, g: &mut Inner, effects: Vec<Effect>) {
        if g.hub.push(effects) {
            self.flush.notify_one();
        }
    }

    /// Runs an agent-side or read operation on the model and queues its effects.
    pub(crate) fn apply<R>(
        &self,
        op: impl FnOnce(&mut Model, u64) -> Result<(R, Vec<Effect>), ModelError>,
    ) -> Result<R, OpError> {
        let now = self.now_ms();
        let mut g = self.lock();
        let (r, effects) = op(&mut g.model, now)?;
        if g.hub.push(effects) {
            self.flush.notify_one();
        }
        Ok(r)
    }

    /// Runs an admin operation that changes domain `name`'s record, commits the new
    /// record to the store, and only then lets its effects out. If the store fails
    /// nothing changes and nothing is sent.
    ///
    /// The commit runs without the state lock: `op` first runs as a dry run that learns
    /// the new record and is undone, the record is committed, and then `op` runs for
    /// real against the state of that moment (agents may have come and gone during the
    /// commit, so its effects are computed then). Only admin verbs change domain
    /// records, and they are serialised, so both runs give the same record; should they
    /// not, the record the model holds is committed too, under the lock.
    pub(crate) fn admin<R>(
        &self,
        name: &str,
        op: impl Fn(&mut Model) -> Result<(R, Vec<Effect>), ModelError>,
    ) -> Result<R, OpError> {
        let _serial = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        let (before, after) = {
            let mut g = self.lock();
            let before = g.model.domain_record(name).cloned();
            // Every operation validates before it mutates: an error leaves no change.
            op(&mut g.model)?;
            let after = g.model.domain_record(name).cloned();
            g.model.restore_domain(name, before.clone());
            (before, after)
        };
        if before != after
            && let Err(e) = self.timed_commit(name, after.as_ref())
        {
            tracing::error!(domain = name, error = %e, "store write failed");
            return Err(e.into());
        }
        let mut g = self.lock();
        let ran = op(&mut g.model);
        let now = g.model.domain_record(name).cloned();
        if now != after
            && let Err(e) = self.timed_commit(name, now.as_ref())
        {
            g.model.restore_domain(name, before);
            tracing::error!(domain = name, error = %e, "store write failed");
            return Err(e.into());
        }
        let (r, effects) = ran?;
        if g.hub.push(effects) {
            self.flush.notify_one();
        }
        Ok(r)
    }

    /// [`Self::admin`] on the blocking pool: a commit that waits for a busy disk never
    /// occupies one of the runtime's few workers, which serve heartbeats and reports.
    pub(crate) async fn admin_blocking<R: Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        op: impl Fn(&mut Model) -> Result<(R, Vec<Effect>), ModelError> + Send + 'static,
    ) -> Result<R, OpError> {
        if let Some(rep) = self.etcd() {
            return self.etcd_admin(rep, name, op).await;
        }
        let (c, name) = (Arc::clone(self), name.to_string());
        match tokio::task::spawn_blocking(move || c.admin(&name, op)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(OpError::ShuttingDown),
        }
    }

    /// `POST /v1/agents`.
    pub(crate) async fn register(
        &self,
        reg: mcgate_domain::api::AgentRegistration,
    ) -> Result<mcgate_domain::api::RegistrationReply, OpError> {
        if let Some(rep) = self.etcd() {
            return self.etcd_register(rep, reg).await;
        }
        let (lease, hb) = (self.config.lease_ms, self.config.heartbeat_ms);
        self.apply(|m, now| m.register(reg, now, lease, hb))
    }

    /// `POST /v1/agents/{host}/heartbeat`.
    pub(crate) async fn heartbeat(
        &self,
        host: &str,
        hb: &mcgate_domain::api::Heartbeat,
    ) -> Result<(), OpError> {
        if let Some(rep) = self.etcd() {
            return self.etcd_heartbeat(rep, host, hb).await;
        }
        let reports_changed = self.apply(|m, now| Ok((m.heartbeat(host, hb, now)?, Vec::new())))?;
        if reports_changed {
            self.lease_wake.notify_one();
        }
        Ok(())
    }

    /// `POST /v1/agents/{host}/membership`.
    pub(crate) async fn report(
        &self,
        host: &str,
        report: mcgate_domain::api::MembershipReport,
    ) -> Result<mcgate_domain::api::MembershipAck, OpError> {
        if let Some(rep) = self.etcd() {
            return self.etcd_report(rep, host, report).await;
        }
        self.apply(|m, now| m.report(host, report, now))
    }

    /// `DELETE /v1/agents/{host}` (and a revoked host's agent).
    pub(crate) async fn deregister(&self, host: &str) -> Result<(), OpError> {
        if let Some(rep) = self.etcd() {
            return self.etcd_deregister(rep, host).await;
        }
        self.apply(|m, _| Ok(((), m.deregister(host)?)))
    }

    fn timed_commit(
        &self,
        name: &str,
        record: Option<&mcgate_domain::model::DomainRecord>,
    ) -> Result<(), StoreError> {
        let t = std::time::Instant::now();
        let Backend::Embedded(store) = &self.backend else {
            return Err(StoreError::Io("not the embedded store".into()));
        };
        let r = store.put_domain(name, record);
        self.metrics.store_commit.observe(t.elapsed().as_secs_f64());
        r
    }

    /// The metrics text (see [`crate::metrics`]), read under the state lock.
    pub fn render_metrics(&self, openmetrics: bool) -> String {
        let now = self.now_ms();
        let published = self.published();
        let (leader, writable, etcd_members_up) = match self.etcd() {
            None => (true, true, 0),
            Some(rep) => {
                let seen = rep.seen.lock().unwrap_or_else(|p| p.into_inner());
                let up = seen.members.iter().filter(|m| m.reachable).count();
                (seen.leading, rep.writable(), up)
            }
        };
        let g = self.lock();
        let infos = g.model.agent_infos(now);
        let up: Vec<_> = infos.iter().filter(|a| a.state == "up").collect();
        let snap = crate::metrics::Snapshot {
            streams: g.hub.streams(),
            lagging: g.hub.lagging(),
            overflows: g.hub.overflows,
            agents_up: up.len(),
            agents_expired: infos.len() - up.len(),
            domains: g.model.domains().len(),
            memberships: up.iter().map(|a| a.memberships).sum(),
            revision: published,
            leader,
            writable,
            etcd_members_up,
        };
        self.metrics.render(&snap, openmetrics)
    }

    /// Reads the model.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Model, u64) -> R) -> R {
        let now = self.now_ms();
        let g = self.lock();
        f(&g.model, now)
    }

    /// Opens `host`'s stream.
    pub(crate) fn subscribe(
        &self,
        host: &str,
        since: Option<Revision>,
    ) -> Result<Subscription, OpError> {
        let mut g = self.lock();
        let Inner { model, hub, .. } = &mut *g;
        match model.agent(host) {
            None => {
                return Err(ModelError::not_found(
                    Some("host"),
                    format!("no agent named {host:?} is registered: register first"),
                )
                .into());
            }
            Some(a) if a.expired => {
                return Err(ModelError::stale(format!(
                    "the lease of host {host:?} expired: register again"
                ))
                .into());
            }
            Some(_) => {}
        }
        hub.subscribe(model, host, since)
            .ok_or(OpError::ShuttingDown)
    }

    /// Ends every stream (shutdown).
    pub fn close_streams(&self) {
        self.lock().hub.close_all();
    }

    /// Number of open streams and of streams closed for lagging.
    pub fn stream_stats(&self) -> (usize, u64) {
        let g = self.lock();
        (g.hub.streams(), g.hub.overflows)
    }

    /// Gathers changes for `coalesce_ms`, then sends them; forever.
    pub async fn flush_loop(self: Arc<Self>) {
        let pause = Duration::from_millis(self.config.coalesce_ms);
        loop {
            self.flush.notified().await;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let mut g = self.lock();
            let Inner { model, hub, .. } = &mut *g;
            let rev = hub.flush(model);
            // Published after the lines are queued: a keepalive never claims a revision
            // whose line is not yet in the agent's queue.
            self.published.store(rev, Ordering::Release);
            drop(g);
            self.revisions
                .send_if_modified(|r| std::mem::replace(r, rev) != rev);
        }
    }

    /// Expires agents whose lease ran out, at the moment it runs out; forever.
    pub async fn lease_loop(self: Arc<Self>) {
        if self.etcd().is_some() {
            // etcd expires agents' leases itself; the watch sees them go.
            return;
        }
        let lease = self.config.lease_ms;
        let confirm = self.config.peer_confirm_ms;
        // Wake at the earliest expiry, but at least this often: heartbeats only push
        // expiries later, and a new agent's expiry is a whole lease away. A report of
        // dead peers wakes it at once.
        let cap = (lease / 10).max(10);
        loop {
            let wait = {
                let now = self.now_ms();
                let g = self.lock();
                let early = (confirm > 0)
                    .then(|| g.model.next_confirmation(now, confirm))
                    .flatten();
                g.model
                    .next_expiry(lease)
                    .into_iter()
                    .chain(early)
                    .min()
                    .map_or(cap, |t| t.saturating_sub(now))
                    .min(cap)
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait.max(1))) => {}
                _ = self.lease_wake.notified() => {}
            }
            let now = self.now_ms();
            let mut g = self.lock();
            let effects = g.model.expire(now, self.config.lease_ms);
            if confirm > 0 {
                // Peers' word that a host is dead, confirmed by its own silence: its
                // members go now rather than when the lease runs out.
                let losses = g.model.confirmed_losses(now, confirm);
                let hosts: Vec<String> = losses.iter().map(|(h, _)| h.clone()).collect();
                for (host, witnesses) in &losses {
                    tracing::info!(host = %host, witnesses = ?witnesses, silent_ms = confirm, "peers report the host dead and it is silent: its members are removed before its lease runs out");
                    self.metrics.peer_confirmed_removals.inc();
                }
                let early = g.model.expire_hosts(&hosts);
                if !early.is_empty() {
                    self.revisions.send_modify(|_| {});
                }
                if g.hub.push(early) {
                    self.flush.notify_one();
                }
            }
            g.model.forget_expired(now, FORGET_EXPIRED_MS);
            let mut closed = false;
            for e in &effects {
                if let Effect::Close { host } = e {
                    tracing::info!(host = %host, "lease expired");
                    self.metrics.lease_expiries.inc();
                    closed = true;
                }
            }
            if closed {
                // Watchers of the domain's view (GET .../traffic?watch=true, the web
                // view) learn at once that a host is dead, even one with no members
                // whose expiry changes no stream.
                self.revisions.send_modify(|_| {});
            }
            if g.hub.push(effects) {
                self.flush.notify_one();
            }
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
