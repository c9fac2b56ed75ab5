//! The controller's writes in etcd mode: a dry run on the cache, a guarded transaction,
//! a wait for the watch (see the module doc of [`crate::etcd`]).

use std::sync::Arc;
use std::time::Duration;

use mcgate_domain::api::{
    AgentRegistration, Heartbeat, MembershipAck, MembershipReport, RegistrationReply,
};
use mcgate_domain::model::{Effect, Model, StoredAgent};
use mcgate_domain::validate::ModelError;

use super::conn::{self, Failure};
use super::keys::{Key, Live};
use super::replica::{Commit, Replica, Write};
use crate::state::{Controller, Inner, OpError};

/// Tries of a write whose guards another replica's write broke.
const TRIES: usize = 5;
/// How long a write keeps trying while etcd elects a leader or a member is down.
const RIDE_OUT: Duration = Duration::from_secs(5);

/// A write as a dry run found it.
pub(crate) struct Plan<R> {
    result: R,
    guards: Vec<(String, i64)>,
    writes: Vec<Write>,
}

impl<R> Plan<R> {
    fn nothing(result: R) -> Self {
        Self {
            result,
            guards: Vec::new(),
            writes: Vec::new(),
        }
    }
}

fn guard(inner: &Inner, k: Key<'_>) -> (String, i64) {
    (k.rel(), inner.mirror.rev(&k))
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A random session no replica repeats (53 bits: exact in every JSON reader).
fn new_session() -> u64 {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    (u64::from_le_bytes(b) & ((1 << 53) - 1)).max(1)
}

/// The stored form of an agent, or `None` when it has no record.
fn stored(m: &Model, host: &str) -> Option<StoredAgent> {
    m.agent(host).map(StoredAgent::from_record)
}

impl Controller {
    /// Runs `plan` (a dry run under the state lock) and commits what it found, again
    /// when another replica changed the keys it read in between.
    async fn replicate<R>(
        &self,
        rep: &Replica,
        plan: impl Fn(&mut Inner, u64) -> Result<Plan<R>, ModelError>,
    ) -> Result<R, OpError> {
        let started = tokio::time::Instant::now();
        let mut stale = 0;
        // Whether a try timed out: etcd may still apply it once it has a leader again.
        let mut uncertain = false;
        loop {
            let p = {
                let now = self.now_ms();
                let mut g = self.lock();
                plan(&mut g, now)?
            };
            if p.writes.is_empty() {
                return Ok(p.result);
            }
            let ops = p.writes.iter().map(Write::op).collect();
            match rep.commit(&p.guards, &[], ops).await {
                Ok(Commit::Done(rev)) => {
                    rep.wait_applied(rev).await?;
                    return Ok(p.result);
                }
                Ok(Commit::Stale(newest)) => {
                    stale += 1;
                    if stale >= TRIES {
                        return Err(ModelError::conflict(
                            None,
                            "other controller replicas kept changing the same objects; try again"
                                .to_string(),
                        )
                        .into());
                    }
                    // See the other replica's change, then plan again on top of it (a
                    // deleted guard key leaves no revision to wait for: plan again now).
                    match newest {
                        Some(rev) => rep.wait_applied(rev).await?,
                        None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                // Ride out an etcd leader election or a member that just died; a call
                // whose outcome is unknown is read back before it is tried again.
                Err(e) if started.elapsed() < RIDE_OUT => match conn::failure(&e) {
                    Failure::NoLeader | Failure::NotSent => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Failure::Uncertain => {
                        uncertain = true;
                        if let Ok(Some(rev)) = rep.took(&p.writes).await {
                            rep.wait_applied(rev).await?;
                            return Ok(p.result);
                        }
                    }
                    Failure::Other => return Err(conn::unavailable(&e)),
                },
                Err(e) => {
                    return Err(match conn::failure(&e) {
                        Failure::NoLeader | Failure::NotSent => rep.cannot_write(uncertain),
                        _ => conn::unavailable(&e),
                    });
                }
            }
        }
    }

    /// An admin verb on domain `name` (etcd mode of [`Controller::admin`]).
    pub(crate) async fn etcd_admin<R>(
        &self,
        rep: &Replica,
        name: &str,
        op: impl Fn(&mut Model) -> Result<(R, Vec<Effect>), ModelError>,
    ) -> Result<R, OpError> {
        self.replicate(rep, |g, _| {
            let before = g.model.domain_record(name).cloned();
            let ran = op(&mut g.model);
            let after = g.model.domain_record(name).cloned();
            g.model.restore_domain(name, before.clone());
            let (r, _) = ran?;
            if before == after {
                return Ok(Plan::nothing(r));
            }
            let dk = rep.key(&Key::Domain(name));
            let write = match &after {
                Some(rec) => Write::put(dk, json(rec)),
                None => Write::delete(dk),
            };
            Ok(Plan {
                result: r,
                guards: vec![guard(g, Key::Domain(name)), guard(g, Key::Config)],
                writes: vec![
                    write,
                    Write::put(rep.key(&Key::Config), Vec::new()).unchecked(),
                ],
            })
        })
        .await
    }

    /// `POST /v1/agents` in etcd mode: a new session on a new etcd lease.
    pub(crate) async fn etcd_register(
        &self,
        rep: &Replica,
        reg: AgentRegistration,
    ) -> Result<RegistrationReply, OpError> {
        let (lease_ms, hb_ms) = (self.config.lease_ms, self.config.heartbeat_ms);
        // etcd leases are whole seconds, at least 2 (etcd's floor).
        let ttl_s = i64::try_from(lease_ms.div_ceil(1_000).max(2)).unwrap_or(i64::MAX);
        let lease = rep.grant(ttl_s).await?;
        let session = new_session();
        let host = reg.host.clone();
        let old_lease = self.lock().mirror.live(&host).map(|l| l.lease);
        let r = self
            .replicate(rep, |g, now| {
                let before = g.model.agent(&host).cloned();
                g.model.set_next_session(session);
                let ran = g.model.register(reg.clone(), now, lease_ms, hb_ms);
                let after = stored(&g.model, &host);
                g.model.restore_agent(&host, before.clone());
                let (reply, _) = ran?;
                let Some(after) = after else {
                    return Err(ModelError::stale("the registration vanished".to_string()));
                };
                let addr = after.tunnel_address.to_string();
                let live = Live { session, lease };
                let mut writes = vec![
                    Write::put(rep.key(&Key::Agent(&host)), json(&after)),
                    Write::put(rep.key(&Key::Tunnel(&addr)), host.clone().into_bytes()),
                    Write::put(rep.key(&Key::Live(&host)), json(&live)).leased(lease),
                ];
                if let Some(b) = &before
                    && b.tunnel_address != after.tunnel_address
                {
                    let old = b.tunnel_address.to_string();
                    writes.push(Write::delete(rep.key(&Key::Tunnel(&old))));
                }
                Ok(Plan {
                    result: reply,
                    guards: vec![guard(g, Key::Agent(&host)), guard(g, Key::Tunnel(&addr))],
                    writes,
                })
            })
            .await;
        match &r {
            Ok(_) => {
                if let Some(old) = old_lease.filter(|o| *o != lease) {
                    rep.revoke(old).await;
                }
            }
            Err(_) => rep.revoke(lease).await,
        }
        r
    }

    /// `POST /v1/agents/{host}/membership` in etcd mode.
    pub(crate) async fn etcd_report(
        &self,
        rep: &Replica,
        host: &str,
        report: MembershipReport,
    ) -> Result<MembershipAck, OpError> {
        self.replicate(rep, |g, now| {
            let before = g.model.agent(host).cloned();
            let ran = g.model.report(host, report.clone(), now);
            let after = stored(&g.model, host);
            g.model.restore_agent(host, before.clone());
            let (ack, _) = ran?;
            if before.as_ref().map(StoredAgent::from_record) == after {
                return Ok(Plan::nothing(ack));
            }
            let Some(after) = after else {
                return Ok(Plan::nothing(ack));
            };
            Ok(Plan {
                result: ack,
                guards: vec![guard(g, Key::Agent(host)), guard(g, Key::Live(host))],
                writes: vec![Write::put(rep.key(&Key::Agent(host)), json(&after))],
            })
        })
        .await
    }

    /// `POST /v1/agents/{host}/heartbeat` in etcd mode: renews the session's lease.
    pub(crate) async fn etcd_heartbeat(
        &self,
        rep: &Replica,
        host: &str,
        hb: &Heartbeat,
    ) -> Result<(), OpError> {
        let lease = {
            let now = self.now_ms();
            let mut g = self.lock();
            g.model.heartbeat(host, hb, now)?;
            g.mirror
                .live(host)
                .filter(|l| l.session == hb.session)
                .map(|l| l.lease)
        };
        let alive = match lease {
            Some(l) => rep.renew(l).await?,
            None => false,
        };
        if alive {
            Ok(())
        } else {
            Err(ModelError::stale(format!(
                "the lease of host {host:?} expired: register again and send a snapshot"
            ))
            .into())
        }
    }

    /// `DELETE /v1/agents/{host}` (and a revoked host) in etcd mode.
    pub(crate) async fn etcd_deregister(&self, rep: &Replica, host: &str) -> Result<(), OpError> {
        let lease = self.lock().mirror.live(host).map(|l| l.lease);
        self.replicate(rep, |g, _| {
            let Some(a) = g.model.agent(host) else {
                return Err(ModelError::not_found(
                    Some("host"),
                    format!("no agent named {host:?} is registered: register first"),
                ));
            };
            let addr = a.tunnel_address.to_string();
            Ok(Plan {
                result: (),
                guards: vec![guard(g, Key::Agent(host))],
                writes: vec![
                    Write::delete(rep.key(&Key::Agent(host))),
                    Write::delete(rep.key(&Key::Live(host))),
                    Write::delete(rep.key(&Key::Tunnel(&addr))),
                ],
            })
        })
        .await?;
        if let Some(l) = lease {
            rep.revoke(l).await;
        }
        Ok(())
    }

    /// Applies one watch response (events of whole revisions) and lets its effects out.
    pub(crate) fn apply_store_events(self: &Arc<Self>, events: Vec<super::mirror::Event>) {
        let now = self.now_ms();
        let mut g = self.lock();
        let Inner { model, mirror, .. } = &mut *g;
        let out = mirror.apply(model, events, now);
        if let Some((value, rev)) = out.tokens {
            self.tokens.set_shared(value.as_deref(), rev);
        }
        for e in &out.effects {
            if let Effect::Close { host } = e
                && !model.is_live(host)
                && model.agent(host).is_some()
            {
                tracing::info!(host = %host, "lease expired");
                self.metrics.lease_expiries.inc();
            }
        }
        self.push_effects(&mut g, out.effects);
    }
}
