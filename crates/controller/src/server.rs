//! The HTTP/1.1 accept loop: bounded, so that no client can take the controller away from
//! the others.
//!
//! - A client has [`ConnLimits::header_timeout`] to send a request's headers, on a new
//!   connection and between requests of a kept-alive one; a slow or idle client is cut
//!   off then. Agent streams are past their headers, so they are never cut.
//! - At most [`ConnLimits::max_connections`] connections are served at once. Past that,
//!   new connections wait in the kernel's backlog until one ends, and since idle ones end
//!   within the header timeout, a flood of idle connections delays `/v1/healthz` by at
//!   most that timeout and never starves it. The daemon derives the limit from its
//!   open-file limit, leaving headroom for the store and the listeners.
//! - On shutdown every connection finishes its request in flight and closes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::Origin;

/// Bounds on the connections of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_connections: 4_096,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// File descriptors kept free for the store, the listeners and the runtime.
pub const FD_HEADROOM: u64 = 64;

/// The connection limit an open-file limit of `nofile` allows (at least 16): each
/// connection holds one descriptor.
pub fn max_connections_for(nofile: u64) -> usize {
    usize::try_from(nofile.saturating_sub(FD_HEADROOM).max(16)).unwrap_or(usize::MAX)
}

/// Serves `app` on `listener` until `stop` turns true, then lets every connection finish
/// its request in flight.
/// Over TCP, each connection is TLS (`tls`) unless the caller passed none; the
/// handshake must end within the header timeout. Every request carries the listener's
/// [`Origin`] as an extension, for [`crate::auth::authorize`].
pub(crate) async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    origin: Origin,
    mut stop: watch::Receiver<bool>,
) where
    L: Listener,
    L::Io: Unpin + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connections so the set stays as small as the live ones.
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        // `Listener::accept` retries on its own after errors such as EMFILE.
        let (io, _) = tokio::select! {
            c = listener.accept() => c,
            _ = stopped(&mut stop) => break,
        };
        let app = app.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(io, app, limits, origin, stop).await,
                Some(tls) => {
                    let handshake = tokio::time::timeout(limits.header_timeout, tls.accept(io));
                    if let Ok(Ok(io)) = handshake.await {
                        connection(io, app, limits, origin, stop).await;
                    }
                }
            }
        });
    }
    while conns.join_next().await.is_some() {}
}

async fn connection<I>(
    io: I,
    app: Router,
    limits: ConnLimits,
    origin: Origin,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(origin);
        app.clone().oneshot(req)
    });
    // Vectored writes queue each stream line (a `Bytes` shared by every agent of the
    // domain) instead of copying it into a per-connection buffer that keeps its size
    // after a burst: at 5,000 streams that buffer was most of the controller's memory.
    let conn = http1::Builder::new()
        .writev(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = stop.wait_for(|v| *v).await.map(|_| ());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_headroom() {
        assert_eq!(max_connections_for(1_024), 960);
        assert_eq!(max_connections_for(10), 16);
        assert_eq!(max_connections_for(u64::MAX), usize::MAX - 64);
    }
}
