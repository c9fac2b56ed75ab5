//! The agent's two conversations with the controller, each on its own task so that
//! neither ever holds up the other or the data plane:
//!
//! - the session: register, send a full membership snapshot, then membership changes
//!   as they happen. Heartbeats run on a task and connection of their own with a timeout
//!   shorter than the lease, so a slow report never holds up the lease. The session
//!   registers again when the controller no longer knows it (404/409: lease expired,
//!   controller restarted) or when no heartbeat got through for a whole lease; a report
//!   that merely failed or was slow is answered by resending the whole membership as a
//!   snapshot in the same session (decisions in [`crate::core::session`]). Changes made
//!   while the controller is away are kept and sent then.
//! - the stream: `GET /v1/agents/{host}/stream`, forwarded line by line to the agent;
//!   reopened whenever it breaks with `?since=` the last revision received, so the
//!   controller sends only the missed deltas (or a snapshot when it cannot). A line
//!   longer than [`MAX_STREAM_LINE`] is refused (the connection is dropped and
//!   reopened), so a broken or hostile controller cannot make the agent buffer without
//!   bound.
//!
//! All of them use the current controller of [`Controllers`]: with several replicas,
//! whichever sees the current one fail moves all of them to the next, and the session
//! carries on there (the replicas share the store). Failed attempts are retried after
//! a delay from [`crate::core::failover::Retry`] (exponential, with jitter), so that
//! agents that lost the controller together do not return together.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyDataStream;
use mcgate_client::{Client, ClientError};
use mcgate_domain::api::{
    AgentRegistration, Heartbeat, LinkMembership, MembershipAck, MembershipReport,
    RegistrationReply, StreamMessage,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::io::StreamReader;

use crate::controllers::Controllers;
use crate::core::failover::Retry;
use crate::core::session::{
    HeartbeatOutcome, HeartbeatTiming, Liveness, ReportVerdict, Verdict, after_report_failure,
};

/// The longest stream line (one JSON message) accepted, in bytes. A snapshot of a
/// domain with thousands of hosts and groups is a few MiB.
pub const MAX_STREAM_LINE: usize = 16 << 20;
/// A stream that stays silent this long is taken as dead (the controller sends
/// keepalives far more often).
const STREAM_IDLE: Duration = Duration::from_secs(45);
/// Bound on one registration or membership report, so a hung controller never stalls
/// the session (heartbeats have their own, shorter bound: see [`HeartbeatTiming`]).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent tells the session task.
#[derive(Debug)]
pub enum SessionInput {
    /// A link's membership of a group changed (`filter: None`: left).
    Membership(LinkMembership),
    /// The registration changed (links came or went): used at the next registration.
    /// Not a reason to register again: that would churn the session for nothing.
    Registration(AgentRegistration),
    /// The registration changed in a way peers must see (a new WireGuard key): register
    /// again at once.
    Reregister(AgentRegistration),
}

/// The controller connection as shown in stats.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ControllerStatus {
    /// The controller URL in use.
    pub url: String,
    /// Every controller URL given, in the order they are tried.
    pub urls: Vec<String>,
    /// Moves from one controller URL to the next after a failure.
    pub failovers: u64,
    /// "connecting", "registered" or "unreachable".
    pub state: String,
    /// The current session, if registered.
    pub session: Option<u64>,
    /// Registrations so far.
    pub registrations: u64,
    /// Membership reports accepted.
    pub reports: u64,
    /// Membership reports that failed (answered later by a snapshot in the same session).
    pub report_failures: u64,
    /// Heartbeats the controller answered.
    pub heartbeats: u64,
    /// Heartbeats that failed or went unanswered within their timeout.
    pub heartbeat_failures: u64,
    /// Whether the forwarding-state stream is connected.
    pub stream_connected: bool,
    /// Stream connections so far.
    pub stream_connects: u64,
    /// Stream connections the controller resumed from the revision asked for (`since`)
    /// rather than starting with a snapshot.
    pub stream_resumes: u64,
    /// The last revision received.
    pub revision: Option<u64>,
    /// The last error, for people.
    pub last_error: Option<String>,
    /// Stream messages refused for being longer than the limit.
    pub oversize_messages: u64,
    /// Traffic reports the controller accepted.
    pub traffic_reports: u64,
    /// Traffic reports that failed or went unanswered (figures only: never resent).
    pub traffic_report_failures: u64,
    /// Until when the lease surely holds: the send time of the last request the
    /// controller answered in this session (registration or heartbeat) plus the lease,
    /// less a tenth of it (see [`fence_at`]). The controller saw that request no
    /// earlier than it was sent, so it cannot expire the session before then.
    #[serde(skip)]
    pub lease_until: Option<std::time::Instant>,
}

/// When a gateway whose lease was renewed by a request sent at `sent` must stop
/// forwarding: a tenth of the lease before the controller can expire it at the
/// earliest, so the gateway it elects next starts after this one stopped.
pub(crate) fn fence_at(sent: std::time::Instant, lease: std::time::Duration) -> std::time::Instant {
    sent + lease - lease / 10
}

/// Until when the lease surely holds, as the session last saw it.
pub(crate) fn lease_until(status: &SharedStatus) -> Option<std::time::Instant> {
    match status.lock() {
        Ok(s) => s.lease_until,
        Err(p) => p.into_inner().lease_until,
    }
}

/// Shared, updated by both tasks, read by the admin endpoint.
pub type SharedStatus = Arc<Mutex<ControllerStatus>>;

pub(crate) fn update(status: &SharedStatus, f: impl FnOnce(&mut ControllerStatus)) {
    match status.lock() {
        Ok(mut s) => f(&mut s),
        Err(p) => f(&mut p.into_inner()),
    }
}

/// A delay before the next attempt, from the process's random generator.
fn delay(retry: &mut Retry) -> Duration {
    retry.after_failure(fastrand::u64(..))
}

async fn with_timeout<T>(
    client: &Client,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Http {
            url: client.url().to_string(),
            message: format!("no answer within {REQUEST_TIMEOUT:?}"),
        }),
    }
}

/// Whether the controller no longer knows our session (lease expired, restarted).
fn session_lost(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Status {
            status: 404 | 409,
            ..
        }
    )
}

type Mirror = BTreeMap<(String, std::net::IpAddr), LinkMembership>;

fn absorb(mirror: &mut Mirror, m: LinkMembership) {
    let key = (m.link.clone(), m.group);
    if m.filter.is_some() {
        mirror.insert(key, m);
    } else {
        mirror.remove(&key);
    }
}

/// Waits until `deadline`, taking in local changes meanwhile. `false`: the agent is gone.
async fn absorb_until(
    deadline: tokio::time::Instant,
    rx: &mut mpsc::UnboundedReceiver<SessionInput>,
    mirror: &mut Mirror,
    registration: &mut AgentRegistration,
) -> bool {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return true,
            msg = rx.recv() => match msg {
                None => return false,
                Some(SessionInput::Membership(m)) => absorb(mirror, m),
                Some(SessionInput::Registration(r) | SessionInput::Reregister(r)) => {
                    *registration = r
                }
            },
        }
    }
}

/// The peers this host's keepalives find dead, as the heartbeats tell the controller.
pub type PeersDown = tokio::sync::watch::Receiver<std::collections::BTreeSet<String>>;

/// The heartbeat task of one session; aborted when the session ends.
struct Heartbeats(tokio::task::JoinHandle<ClientError>);

impl Heartbeats {
    /// Heartbeats `session` on connections of their own (one per replica), apart from
    /// membership reports, so a slow report never holds up the lease (see
    /// [`crate::core::session`]). Each heartbeat goes to the current controller.
    fn spawn(
        controllers: &Arc<Controllers>,
        host: &str,
        session: u64,
        timing: HeartbeatTiming,
        status: SharedStatus,
        peers_down: PeersDown,
    ) -> Self {
        let clients = controllers
            .clients()
            .iter()
            .map(|c| c.clone().keep_alive())
            .collect();
        let path = format!("/v1/agents/{host}/heartbeat");
        Self(tokio::spawn(heartbeat_task(
            controllers.clone(),
            clients,
            path,
            session,
            timing,
            status,
            peers_down,
        )))
    }

    /// Resolves when the heartbeats say the session is over, with why.
    async fn ended(&mut self) -> ClientError {
        match (&mut self.0).await {
            Ok(e) => e,
            Err(e) => ClientError::Http {
                url: String::new(),
                message: format!("the heartbeat task ended: {e}"),
            },
        }
    }
}

impl Drop for Heartbeats {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn heartbeat_task(
    controllers: Arc<Controllers>,
    clients: Vec<Client>,
    path: String,
    session: u64,
    timing: HeartbeatTiming,
    status: SharedStatus,
    mut peers_down: PeersDown,
) -> ClientError {
    let mut live = Liveness::new(timing, std::time::Instant::now());
    let mut tick = tokio::time::interval(timing.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        // A change in the peers found dead goes out at once: the controller removes a
        // dead host's members only on such a report (or when the lease runs out).
        tokio::select! {
            _ = tick.tick() => {}
            Ok(()) = peers_down.changed() => {}
        }
        let hb = Heartbeat {
            session,
            peers_down: peers_down.borrow_and_update().clone(),
        };
        let (pick, _) = controllers.current();
        let client = &clients[pick.index];
        let sent = std::time::Instant::now();
        let answer = tokio::time::timeout(
            timing.timeout,
            client.post::<_, serde_json::Value>(&path, &hb),
        )
        .await;
        let (outcome, error) = match answer {
            Ok(Ok(_)) => (HeartbeatOutcome::Renewed, None),
            Ok(Err(e)) if session_lost(&e) => (HeartbeatOutcome::SessionLost, Some(e)),
            Ok(Err(e)) => (HeartbeatOutcome::NoAnswer, Some(e)),
            Err(_) => (
                HeartbeatOutcome::NoAnswer,
                Some(ClientError::Http {
                    url: client.url().to_string(),
                    message: format!("no heartbeat answer within {:?}", timing.timeout),
                }),
            ),
        };
        // A replica that does not answer loses the agent (the next heartbeat goes to
        // the next one, well within the lease); the session stands meanwhile.
        if let Some(e) = &error {
            controllers.failed(pick, e);
        }
        let verdict = live.heartbeat(std::time::Instant::now(), outcome);
        update(&status, |s| match &error {
            None => {
                s.heartbeats += 1;
                s.lease_until = Some(fence_at(sent, timing.lease));
            }
            Some(e) => {
                s.heartbeat_failures += 1;
                s.last_error = Some(e.to_string());
            }
        });
        if let (Verdict::Register, Some(e)) = (verdict, error) {
            return e;
        }
    }
}

/// Runs the session for ever.
pub async fn session_task(
    controllers: Arc<Controllers>,
    mut registration: AgentRegistration,
    mut rx: mpsc::UnboundedReceiver<SessionInput>,
    status: SharedStatus,
    registered: Arc<Notify>,
    peers_down: PeersDown,
) {
    let host = registration.host.clone();
    let path = format!("/v1/agents/{host}/membership");
    let mut mirror: Mirror = BTreeMap::new();
    let mut retry = Retry::new(controllers.len());
    loop {
        // Register, absorbing local changes while the controller is away.
        let (pick, client) = controllers.current();
        let sent = std::time::Instant::now();
        let reply: RegistrationReply =
            match with_timeout(&client, client.post("/v1/agents", &registration)).await {
                Ok(r) => r,
                Err(e) => {
                    controllers.failed(pick, &e);
                    update(&status, |s| {
                        s.state = "unreachable".into();
                        s.session = None;
                        s.last_error = Some(e.to_string());
                    });
                    let delay = delay(&mut retry);
                    tracing::debug!(error = %e, ?delay, "registration failed; retrying");
                    let deadline = tokio::time::Instant::now() + delay;
                    if !absorb_until(deadline, &mut rx, &mut mirror, &mut registration).await {
                        return;
                    }
                    continue;
                }
            };
        let session = reply.session;
        tracing::info!(session, controller = client.url(), domains = ?reply.domains, "registered with the controller");
        // The stream is refused until the host is registered: a stream task backing off
        // from those refusals reconnects now, not after its longest back-off.
        registered.notify_one();
        update(&status, |s| {
            s.state = "registered".into();
            s.session = Some(session);
            s.registrations += 1;
            s.last_error = None;
            s.lease_until = Some(fence_at(
                sent,
                std::time::Duration::from_millis(reply.lease_ms),
            ));
        });
        // The lease runs from now: heartbeat from now on, whatever the reports do.
        let timing = HeartbeatTiming::new(reply.lease_ms, reply.heartbeat_ms);
        let mut heartbeats = Heartbeats::spawn(
            &controllers,
            &host,
            session,
            timing,
            status.clone(),
            peers_down.clone(),
        );
        let mut seq = 0u64;
        let mut resnapshot = true;
        // The session lives until the heartbeats or a report say it is gone.
        let failure: Option<ClientError> = 'session: loop {
            let report = if resnapshot {
                MembershipReport {
                    session,
                    seq: seq + 1,
                    snapshot: true,
                    entries: mirror.values().cloned().collect(),
                }
            } else {
                let mut entries = Vec::new();
                let mut next = tokio::select! {
                    e = heartbeats.ended() => break Some(e),
                    msg = rx.recv() => msg,
                };
                loop {
                    match next {
                        None => return,
                        Some(SessionInput::Membership(m)) => {
                            absorb(&mut mirror, m.clone());
                            entries.push(m);
                        }
                        Some(SessionInput::Registration(r)) => registration = r,
                        Some(SessionInput::Reregister(r)) => {
                            registration = r;
                            break 'session None;
                        }
                    }
                    match rx.try_recv() {
                        Ok(m) => next = Some(m),
                        Err(_) => break,
                    }
                }
                if entries.is_empty() {
                    continue;
                }
                MembershipReport {
                    session,
                    seq: seq + 1,
                    snapshot: false,
                    entries,
                }
            };
            seq += 1;
            // The current controller, which may have changed since the last report:
            // the session goes on there (the replicas share the store).
            let (pick, client) = controllers.current();
            let sent = tokio::select! {
                e = heartbeats.ended() => break Some(e),
                r = with_timeout(&client, client.post::<_, MembershipAck>(&path, &report)) => r,
            };
            match sent {
                Ok(_) => {
                    if resnapshot {
                        retry.reset();
                    }
                    resnapshot = false;
                    update(&status, |s| s.reports += 1);
                }
                Err(e) => match after_report_failure(session_lost(&e)) {
                    ReportVerdict::Register => break Some(e),
                    ReportVerdict::Resnapshot => {
                        // A replica that failed loses the agent: the snapshot goes to
                        // the next one, in the same session (the replicas share it).
                        controllers.failed(pick, &e);
                        tracing::warn!(error = %e, "membership report failed; resending the snapshot");
                        update(&status, |s| {
                            s.report_failures += 1;
                            s.last_error = Some(e.to_string());
                        });
                        resnapshot = true;
                        let deadline = tokio::time::Instant::now() + delay(&mut retry);
                        if !absorb_until(deadline, &mut rx, &mut mirror, &mut registration).await {
                            return;
                        }
                    }
                },
            }
        };
        drop(heartbeats);
        let Some(failure) = failure else {
            tracing::info!("registration changed; registering again");
            continue;
        };
        if session_lost(&failure) {
            tracing::info!(error = %failure, "the controller no longer knows this session; registering again");
        } else {
            tracing::warn!(error = %failure, "lost the controller; registering again");
        }
        update(&status, |s| {
            s.state = "unreachable".into();
            s.session = None;
            s.last_error = Some(failure.to_string());
        });
        tokio::time::sleep(delay(&mut retry)).await;
    }
}

/// What the stream task hands the agent.
#[derive(Debug)]
pub enum StreamEvent {
    /// A new connection to the controller's stream opened; its first message follows.
    Connected,
    /// A message of the current connection.
    Message(StreamMessage),
}

/// Reads one stream connection's body as lines of at most [`MAX_STREAM_LINE`] bytes.
pub fn stream_lines(
    body: hyper::body::Incoming,
) -> FramedRead<impl tokio::io::AsyncRead, LinesCodec> {
    let bytes = BodyDataStream::new(body).map_err(std::io::Error::other);
    FramedRead::new(
        StreamReader::new(bytes),
        LinesCodec::new_with_max_length(MAX_STREAM_LINE),
    )
}

/// Why a stream connection ended.
#[derive(Debug, PartialEq, Eq)]
enum StreamEnd {
    /// The agent's loop is gone: stop.
    Stop,
    /// Reconnect; `delivered` tells whether the connection carried a message.
    Reconnect { delivered: bool },
}

/// Forwards the messages of one connection to `tx` until it ends. `resuming`: the
/// connection asked for the deltas after a revision; its first message tells whether
/// the controller resumed (deltas or a keepalive) or started over (a snapshot).
async fn forward<R: tokio::io::AsyncRead + Unpin>(
    lines: &mut FramedRead<R, LinesCodec>,
    tx: &mpsc::Sender<StreamEvent>,
    status: &SharedStatus,
    resuming: bool,
) -> StreamEnd {
    let mut delivered = false;
    loop {
        let line = match tokio::time::timeout(STREAM_IDLE, lines.next()).await {
            Ok(Some(Ok(line))) => line,
            Ok(None) => return StreamEnd::Reconnect { delivered },
            Ok(Some(Err(LinesCodecError::MaxLineLengthExceeded))) => {
                tracing::warn!(
                    limit = MAX_STREAM_LINE,
                    "a stream message is longer than the limit; reconnecting"
                );
                update(status, |s| {
                    s.last_error = Some(format!(
                        "a stream message was longer than {MAX_STREAM_LINE} bytes"
                    ));
                    s.oversize_messages += 1;
                });
                return StreamEnd::Reconnect { delivered };
            }
            Ok(Some(Err(LinesCodecError::Io(e)))) => {
                update(status, |s| s.last_error = Some(e.to_string()));
                return StreamEnd::Reconnect { delivered };
            }
            Err(_) => {
                tracing::warn!("the controller's stream went silent; reconnecting");
                return StreamEnd::Reconnect { delivered };
            }
        };
        if line.bytes().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_str::<StreamMessage>(&line) {
            Ok(msg) => {
                // Keepalives count: the controller sends one only once every line up
                // to its revision is in this stream, so resuming after it misses
                // nothing.
                let (rev, snapshot) = match &msg {
                    StreamMessage::Snapshot { revision, .. } => (*revision, true),
                    StreamMessage::Delta { revision, .. }
                    | StreamMessage::Keepalive { revision } => (*revision, false),
                };
                let resumed = resuming && !delivered && !snapshot;
                update(status, |s| {
                    s.revision = Some(rev);
                    s.stream_resumes += u64::from(resumed);
                });
                if tx.send(StreamEvent::Message(msg)).await.is_err() {
                    return StreamEnd::Stop;
                }
                delivered = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "unreadable stream message; reconnecting");
                return StreamEnd::Reconnect { delivered };
            }
        }
    }
}

/// The stream's path, resuming after `since` (the last revision received) when there
/// is one. The controller answers with the deltas after it, or with a snapshot when
/// it cannot (the revision is not its own, or too old for its ring).
pub fn stream_path(host: &str, since: Option<u64>) -> String {
    match since {
        Some(r) => format!("/v1/agents/{host}/stream?since={r}"),
        None => format!("/v1/agents/{host}/stream"),
    }
}

/// Runs the forwarding-state stream for ever, sending each message to `tx`.
pub async fn stream_task(
    controllers: Arc<Controllers>,
    host: String,
    tx: mpsc::Sender<StreamEvent>,
    status: SharedStatus,
    registered: Arc<Notify>,
) {
    let mut retry = Retry::new(controllers.len());
    loop {
        // Every reconnect asks to resume after the last revision received, also from
        // another replica (they share the store and its revisions). A controller that
        // cannot resume from it (restarted: its revisions start above every earlier
        // run's; or the host registered there since, as on a controller that does not
        // share the store) sends a snapshot, which the agent takes whatever its
        // revision.
        let since = lock_status(&status).revision;
        let path = stream_path(&host, since);
        let (pick, client) = controllers.current();
        match with_timeout(&client, client.stream_body(&path)).await {
            Ok(body) => {
                if tx.send(StreamEvent::Connected).await.is_err() {
                    return;
                }
                update(&status, |s| {
                    s.stream_connected = true;
                    s.stream_connects += 1;
                });
                let mut lines = stream_lines(body);
                let end = tokio::select! {
                    end = forward(&mut lines, &tx, &status, since.is_some()) => Some(end),
                    // The session or the heartbeats moved to another controller: the
                    // stream follows (this replica may be cut off from the store).
                    () = controllers.moved(pick) => None,
                };
                update(&status, |s| s.stream_connected = false);
                match end {
                    Some(StreamEnd::Stop) => return,
                    Some(StreamEnd::Reconnect { delivered }) => {
                        // A connection that carried messages was a success: the next
                        // failure starts the schedule over.
                        if delivered {
                            retry.reset();
                        }
                        // A stream that ended is its controller failing: move on.
                        controllers.fail(pick, "the stream ended");
                    }
                    None => retry.reset(),
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "stream connection failed");
                controllers.failed(pick, &e);
                update(&status, |s| {
                    s.stream_connected = false;
                    s.last_error = Some(e.to_string());
                });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay(&mut retry)) => {}
            () = registered.notified() => retry.reset(),
        }
    }
}

fn lock_status(status: &SharedStatus) -> std::sync::MutexGuard<'_, ControllerStatus> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod session_tests;

#[cfg(test)]
#[path = "control_failover_tests.rs"]
mod failover_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// A reconnect that asked for `since` was resumed when its first message is not a
    /// snapshot; the revision to resume from next time follows every message.
    #[tokio::test]
    async fn a_resumed_connection_is_told_by_its_first_message() {
        async fn first_lines(text: &'static [u8], resuming: bool) -> ControllerStatus {
            let (mut w, r) = tokio::io::duplex(4096);
            tokio::io::AsyncWriteExt::write_all(&mut w, text)
                .await
                .unwrap();
            drop(w);
            let mut lines = FramedRead::new(r, LinesCodec::new_with_max_length(1024));
            let (tx, _rx) = mpsc::channel(8);
            let status: SharedStatus = Arc::default();
            forward(&mut lines, &tx, &status, resuming).await;
            status.lock().unwrap().clone()
        }
        let keepalive_then_delta = b"{\"type\":\"keepalive\",\"revision\":8}\n{\"type\":\"delta\",\"revision\":9,\"changes\":[]}\n";
        let s = first_lines(keepalive_then_delta, true).await;
        assert_eq!((s.stream_resumes, s.revision), (1, Some(9)));
        let s = first_lines(keepalive_then_delta, false).await;
        assert_eq!(s.stream_resumes, 0, "nothing was asked for");
        let snapshot = b"{\"type\":\"snapshot\",\"revision\":3,\"domains\":[]}\n";
        let s = first_lines(snapshot, true).await;
        assert_eq!((s.stream_resumes, s.revision), (0, Some(3)));
        assert_eq!(stream_path("h1", Some(9)), "/v1/agents/h1/stream?since=9");
        assert_eq!(stream_path("h1", None), "/v1/agents/h1/stream");
    }

    /// A controller that sends a line over the limit: the reader stops with a counted
    /// error after buffering at most the limit, without waiting for the line's end.
    #[tokio::test]
    async fn an_over_long_stream_line_is_refused() {
        let (mut w, r) = tokio::io::duplex(64 * 1024);
        let keepalive = b"{\"type\":\"keepalive\",\"revision\":3}\n";
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            w.write_all(keepalive).await.unwrap();
            let chunk = vec![b'x'; 1 << 20];
            // Never a newline: an unbounded reader would buffer all of it.
            for _ in 0..(MAX_STREAM_LINE >> 20) + 2 {
                if w.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        });
        let mut lines = FramedRead::new(r, LinesCodec::new_with_max_length(MAX_STREAM_LINE));
        let (tx, mut rx) = mpsc::channel(4);
        let status: SharedStatus = Arc::default();
        let end = forward(&mut lines, &tx, &status, false).await;
        assert_eq!(end, StreamEnd::Reconnect { delivered: true });
        assert!(matches!(
            rx.try_recv(),
            Ok(StreamEvent::Message(StreamMessage::Keepalive {
                revision: 3
            }))
        ));
        let s = status.lock().unwrap().clone();
        assert_eq!(s.oversize_messages, 1);
        assert_eq!(s.revision, Some(3));
        drop(lines);
        writer.await.unwrap();
    }
}
