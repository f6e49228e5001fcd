//! The public HTTP listener (h1 + h2c, header timeout on, connection cap) with graceful
//! shutdown. The admin listener lives in `admin`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

mod watchdog;

use crate::config::Limits;
use crate::gateway::{Gateway, Peer};
use watchdog::{InFlight, Watchdog};

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
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

/// The next connection, or `None` once `shutdown` turns. A failed accept (EMFILE and friends)
/// backs off instead of spinning.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
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

/// Accepts public connections until `shutdown`, then drains them (up to `drain_timeout`). With
/// `tls`, each connection is a TLS handshake first (bounded by `header_timeout`), then HTTP/2 or
/// HTTP/1.1 as ALPN chose. `permits` caps connections across both public listeners.
pub async fn serve_public(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    permits: Arc<Semaphore>,
    gw: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = gw.config().limits.clone();
    let builder = builder(&limits);
    let graceful = GracefulShutdown::new();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        // Finished connections leave the set as new ones come.
        while conns.try_join_next().is_some() {}
        // Above the connection cap, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let Some((stream, addr)) = accept(&listener, &mut shutdown).await else {
            break;
        };
        let _ = stream.set_nodelay(true);
        let in_flight = InFlight::default();
        let stream = Watchdog::new(
            stream,
            limits.write_timeout,
            limits.idle_timeout,
            in_flight.clone(),
        );
        let peer = Peer {
            addr,
            secure: tls.is_some(),
        };
        let gw = gw.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let gw = gw.clone();
            let busy = in_flight.enter();
            async move {
                let resp = gw.handle(peer, req).await;
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake_limit = limits.header_timeout;
        conns.spawn(async move {
            match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(tls_stream), svc);
                            let _ = watcher.watch(conn.into_owned()).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let drain = gw.config().limits.drain_timeout;
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => {
            tracing::warn!(?drain, open = conns.len(), "drain timed out; cutting the rest");
            conns.abort_all();
        }
    }
    while conns.join_next().await.is_some() {}
}
