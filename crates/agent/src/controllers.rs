//! The controller replicas the agent may talk to, and the one it talks to now: a thin
//! shell around [`Failover`] (the decisions) holding one client per URL, shared by the
//! session, its heartbeats and the stream. Whichever of them sees the current replica
//! fail tells it here; the others pick the new one up at their next request (the
//! stream, which holds one long request, is woken through [`Controllers::moved`]).

use std::sync::Mutex;

use mcgate_client::{Client, ClientError};
use tokio::sync::watch;

use crate::control::{SharedStatus, update};
use crate::core::failover::{Failover, Pick, is_controller_failure};

/// The replicas and the choice among them.
#[derive(Debug)]
pub struct Controllers {
    clients: Vec<Client>,
    failover: Mutex<Failover>,
    /// The current pick's generation, for tasks that wait on one request.
    moved: watch::Sender<u64>,
    status: SharedStatus,
}

/// Whether `e` says the controller itself is unusable (no answer, or a 5xx), rather
/// than answering about the request.
pub fn is_failure(e: &ClientError) -> bool {
    let status = match e {
        ClientError::Status { status, .. } => Some(*status),
        _ => None,
    };
    is_controller_failure(status)
}

impl Controllers {
    /// The replicas, one client per URL (at least one), starting with the first.
    pub fn new(clients: Vec<Client>, status: SharedStatus) -> Self {
        let failover = Failover::new(clients.len());
        update(&status, |s| {
            s.urls = clients.iter().map(|c| c.url().to_string()).collect();
            s.url = s.urls.first().cloned().unwrap_or_default();
        });
        Self {
            failover: Mutex::new(failover),
            moved: watch::Sender::new(0),
            clients,
            status,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Failover> {
        self.failover.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many URLs there are.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there are none (never, once built from a checked config).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The clients, one per URL, in order.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The controller to use now, and its client.
    pub fn current(&self) -> (Pick, Client) {
        let pick = self.lock().current();
        (pick, self.clients[pick.index].clone())
    }

    /// Whether the agent moved on from `seen`.
    pub fn moved_from(&self, seen: Pick) -> bool {
        self.lock().moved_from(seen)
    }

    /// A request to the controller picked as `seen` failed with `e`. When that says
    /// the controller is unusable, the agent moves to the next one (unless it already
    /// did). Returns whether `e` was such a failure.
    pub fn failed(&self, seen: Pick, e: &ClientError) -> bool {
        if !is_failure(e) {
            return false;
        }
        self.fail(seen, &e.to_string());
        true
    }

    /// The controller picked as `seen` is unusable (`why`, for people): move on.
    pub fn fail(&self, seen: Pick, why: &str) {
        let (now, moved, failovers) = {
            let mut f = self.lock();
            let (now, moved) = f.failed(seen);
            (now, moved, f.failovers())
        };
        if !moved {
            return;
        }
        let from = self.clients[seen.index].url();
        let to = self.clients[now.index].url().to_string();
        tracing::warn!(from, to = %to, reason = why, "moving to another controller");
        update(&self.status, |s| {
            s.url = to;
            s.failovers = failovers;
        });
        self.moved.send_replace(now.generation);
    }

    /// Resolves once the agent has moved on from `seen`.
    pub async fn moved(&self, seen: Pick) {
        let mut rx = self.moved.subscribe();
        // The sender lives as long as `self`, so this only ends by a move.
        let _ = rx.wait_for(|g| *g != seen.generation).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_error(status: u16) -> ClientError {
        ClientError::Status {
            status,
            message: String::new(),
            field: None,
        }
    }

    #[tokio::test]
    async fn a_failure_moves_every_user_and_shows_in_the_status() {
        let a = Client::new("unix:/run/a.sock").unwrap();
        let b = a.with_url("unix:/run/b.sock").unwrap();
        let status = SharedStatus::default();
        let c = Controllers::new(vec![a, b], status.clone());
        let (p, client) = c.current();
        assert_eq!(client.url(), "unix:/run/a.sock");
        assert_eq!(status.lock().unwrap().url, "unix:/run/a.sock");
        // An answer about the request (the session is gone) moves nothing.
        assert!(!c.failed(p, &status_error(404)));
        assert!(!c.moved_from(p));
        let waiter = c.moved(p);
        assert!(c.failed(p, &status_error(503)));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the move wakes a waiting stream");
        let (p2, client) = c.current();
        assert_eq!(client.url(), "unix:/run/b.sock");
        // The same failure seen by another task does not move again.
        assert!(c.failed(p, &status_error(503)));
        assert_eq!(c.current().0, p2);
        let s = status.lock().unwrap();
        assert_eq!((s.url.as_str(), s.failovers), ("unix:/run/b.sock", 1));
    }
}
