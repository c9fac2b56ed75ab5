//! Sends the controller the host's traffic report ([`crate::traffic`]) every second, on
//! a connection of its own, to the current controller, while a session stands.
//!
//! Reports are figures for people, never state: one that fails is not resent (the next
//! one carries the cumulative counters anyway), and a failure never touches the session
//! or the lease. A controller that does not know the route (an older version: 404 or
//! 405) is asked again only every [`UNSUPPORTED_BACKOFF`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcgate_client::{Client, ClientError};
use mcgate_dataplane::Dataplane;

use crate::control::{SharedStatus, update};
use crate::controllers::Controllers;
use crate::traffic;
use crate::view::AgentView;

/// How often the report goes.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Bound on one report: shorter than the interval, so reports never queue up.
const TIMEOUT: Duration = Duration::from_millis(900);
/// How long to wait before asking a controller without the route again.
pub const UNSUPPORTED_BACKOFF: Duration = Duration::from_secs(30);

/// Runs for ever: every [`INTERVAL`], reads the data plane's counters and the
/// published view and posts the report of the current session, if any.
pub async fn run(
    controllers: Arc<Controllers>,
    host: String,
    status: SharedStatus,
    view: Arc<Mutex<AgentView>>,
    dataplane: Arc<dyn Dataplane>,
    started: Instant,
) {
    let path = format!("/v1/agents/{host}/traffic");
    let clients: Vec<Client> = controllers
        .clients()
        .iter()
        .map(|c| c.clone().keep_alive())
        .collect();
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet_until: Option<Instant> = None;
    loop {
        tick.tick().await;
        if quiet_until.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        let session = match status.lock() {
            Ok(s) => s.session,
            Err(p) => p.into_inner().session,
        };
        let Some(session) = session else {
            continue;
        };
        let stats = dataplane.stats();
        let uptime_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let report = {
            let v = match view.lock() {
                Ok(v) => v,
                Err(p) => p.into_inner(),
            };
            traffic::report(
                &v.traffic,
                &v.links,
                v.upstream.as_ref(),
                &stats,
                session,
                uptime_ms,
            )
        };
        let (pick, _) = controllers.current();
        let client = &clients[pick.index];
        let answer =
            tokio::time::timeout(TIMEOUT, client.post::<_, serde_json::Value>(&path, &report))
                .await;
        match answer {
            Ok(Ok(_)) => update(&status, |s| s.traffic_reports += 1),
            Ok(Err(ClientError::Status {
                status: 404 | 405, ..
            })) => {
                if quiet_until.is_none() {
                    tracing::info!(
                        "the controller takes no traffic reports (an older version); asking again every {}s",
                        UNSUPPORTED_BACKOFF.as_secs()
                    );
                }
                quiet_until = Some(Instant::now() + UNSUPPORTED_BACKOFF);
                update(&status, |s| s.traffic_report_failures += 1);
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "traffic report failed");
                update(&status, |s| s.traffic_report_failures += 1);
            }
            Err(_) => {
                tracing::debug!("traffic report unanswered within {TIMEOUT:?}");
                update(&status, |s| s.traffic_report_failures += 1);
            }
        }
    }
}
