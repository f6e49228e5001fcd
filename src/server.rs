//! The listeners (h1 + h2c, TLS on the public side): connection caps, header, idle and write
//! timeouts the same for every listener, and graceful shutdown. What the admin listener
//! answers lives in `admin`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

mod watchdog;

use crate::config::Limits;
use crate::gateway::{Gateway, Peer};
use crate::proxy::Body;
use watchdog::{Deadlines, InFlight, Watchdog};

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Room for the longest target and the largest headers: each is checked on its own
        // (414, 431) by the gateway.
        .max_buf_size(limits.max_header_bytes + limits.max_uri_bytes + 64);
    b.http2()
        .timer(TokioTimer::new())
        // Each stream may hold an origin connection: bounded like nginx's
        // http2_max_concurrent_streams (128).
        .max_concurrent_streams(H2_STREAMS)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// Concurrent streams of one HTTP/2 client connection.
const H2_STREAMS: u32 = 100;

/// Descriptors kept out of the public budget for everything that is not a client connection:
/// the listeners, the state folder's files, the configuration, TLS files, log output.
const RESERVED_FDS: u64 = 64;

/// The public connection cap the process's descriptor limit can hold, so that neither side
/// starves the other: the admin listener has its own small cap (`[admin] max_connections`),
/// and the public side gets what is left after it and a reserve for files, at two descriptors
/// a connection (the client's and one to the origin). The soft limit is raised to the hard one
/// first, as nginx's `worker_rlimit_nofile` would.
pub fn public_connection_cap(configured: usize, admin: usize) -> usize {
    let Ok(nofile) = rlimit::increase_nofile_limit(u64::MAX) else {
        return configured;
    };
    let cap = cap_within(nofile, configured, admin);
    if cap < configured {
        tracing::warn!(
            nofile,
            configured,
            cap,
            "limits.max_connections lowered to what the descriptor limit holds"
        );
    }
    cap
}

fn cap_within(nofile: u64, configured: usize, admin: usize) -> usize {
    let budget = nofile.saturating_sub(RESERVED_FDS + admin as u64) / 2;
    configured.min(usize::try_from(budget).unwrap_or(usize::MAX).max(1))
}

/// The next connection, or `None` once `shutdown` turns. A failed accept (EMFILE and friends)
/// backs off instead of spinning.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => return Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return None,
        }
    }
}

/// What one listener serves with: its connection cap, the limits its connections live by, and
/// how long a stop waits for them.
pub struct Serving {
    pub tls: Option<TlsAcceptor>,
    /// Caps connections; shared by the two public listeners, the admin listener has its own.
    pub permits: Arc<Semaphore>,
    pub limits: Limits,
    pub drain: Duration,
}

/// Accepts public connections until `shutdown`, then drains them (up to `drain_timeout`). With
/// `tls`, each connection is a TLS handshake first, then HTTP/2 or HTTP/1.1 as ALPN chose.
pub async fn serve_public(
    listener: TcpListener,
    serving: Serving,
    gw: Arc<Gateway>,
    shutdown: watch::Receiver<bool>,
) {
    serve(listener, serving, shutdown, move |peer, req| {
        let gw = gw.clone();
        async move { gw.handle(peer, req).await }
    })
    .await;
}

/// Accepts connections until `shutdown` and answers each request with `handle`. Every listener
/// goes through here, so each gets the same limits: a connection cap (above it new connections
/// wait in the kernel's backlog), the first head within `header_timeout` of the accept (the TLS
/// handshake included), `idle_timeout`, `write_timeout`.
pub async fn serve<H, F>(
    listener: TcpListener,
    serving: Serving,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(Peer, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let Serving {
        tls,
        permits,
        limits,
        drain,
    } = serving;
    let connections = Connections {
        builder: builder(&limits),
        graceful: GracefulShutdown::new(),
        deadlines: Deadlines::of(&limits),
        tls,
    };
    let mut conns = tokio::task::JoinSet::new();
    loop {
        // Finished connections leave the set as new ones come.
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let Some(accepted) = accept(&listener, &mut shutdown).await else {
            break;
        };
        conns.spawn(connections.connection(accepted, permit, handle.clone()));
    }
    drop(listener);
    drain_connections(connections.graceful, conns, drain).await;
}

/// What every connection of one listener is served with.
struct Connections {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
    deadlines: Deadlines,
    tls: Option<TlsAcceptor>,
}

impl Connections {
    /// Readies one accepted connection (no delay, watched for its deadlines, its requests in
    /// flight counted) and returns the task that serves it with `handle`: a TLS handshake first
    /// on a TLS listener, then HTTP/1.1 or HTTP/2. `permit` is held until the connection ends.
    fn connection<H, F>(
        &self,
        (stream, addr): (TcpStream, SocketAddr),
        permit: OwnedSemaphorePermit,
        handle: H,
    ) -> impl Future<Output = ()> + Send + use<H, F>
    where
        H: Fn(Peer, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        let _ = stream.set_nodelay(true);
        let in_flight = InFlight::default();
        let stream = Watchdog::new(stream, self.deadlines, in_flight.clone());
        let peer = Peer {
            addr,
            secure: self.tls.is_some(),
        };
        let svc = service_fn(move |req: Request<Incoming>| {
            let busy = in_flight.enter();
            let answer = handle(peer, req);
            async move {
                let resp = answer.await;
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        });
        let builder = self.builder.clone();
        let watcher = self.graceful.watcher();
        let tls = self.tls.clone();
        async move {
            match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                // The watchdog closes a handshake that outlives `header_timeout`.
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    Err(e) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                },
            }
            drop(permit);
        }
    }
}

/// Lets the open connections finish their requests, up to `drain`, then cuts the rest.
async fn drain_connections(
    graceful: GracefulShutdown,
    mut conns: tokio::task::JoinSet<()>,
    drain: Duration,
) {
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => {
            tracing::warn!(drain = %humantime::format_duration(drain), open = conns.len(), "drain timed out; cutting the rest");
            conns.abort_all();
        }
    }
    while conns.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::cap_within;

    #[test]
    fn the_public_cap_leaves_room_for_the_admin_side_and_files() {
        assert_eq!(cap_within(256, 10_000, 64), 64);
        assert_eq!(cap_within(1 << 20, 10_000, 64), 10_000);
        assert_eq!(cap_within(100, 10_000, 64), 1);
        assert_eq!(cap_within(u64::MAX, 5, 64), 5);
    }
}
