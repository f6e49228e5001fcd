//! The accept loop of every test origin, written once: a listener on 127.0.0.1 port 0 that
//! accepts for as long as the test's runtime lives, each connection on a task of its own, spoken
//! to as raw bytes (origins that must misbehave on the wire) or as HTTP/1.1 by hyper.

use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// Binds 127.0.0.1 port 0 and accepts until the runtime ends. `on_accept` runs in the loop
/// itself, once per connection and in order (what it counts is counted before the next accept);
/// the future it returns runs on its own task. A failed accept is skipped.
pub async fn serve_raw<F, Fut>(mut on_accept: F) -> SocketAddr
where
    F: FnMut(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(on_accept(stream));
        }
    });
    addr
}

/// An HTTP/1.1 origin (hyper's default settings): `handler` answers every request of every
/// connection.
pub async fn serve_http<H, Fut, B>(handler: H) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let handler = Arc::new(handler);
    serve_raw(move |stream| {
        let handler = handler.clone();
        serve_connection(stream, move |req| handler(req))
    })
    .await
}

/// Serves HTTP/1.1 (hyper's default settings) on one connection, plain or TLS, until it ends;
/// how it ended is not looked at.
pub async fn serve_connection<I, H, Fut, B>(io: I, handler: H)
where
    I: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<B>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    serve_connection_with(&http1::Builder::new(), io, handler).await;
}

/// [`serve_connection`] with the HTTP/1.1 settings of `builder` (timeouts, keep-alive).
pub async fn serve_connection_with<I, H, Fut, B>(builder: &http1::Builder, io: I, handler: H)
where
    I: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<Incoming>) -> Fut,
    Fut: Future<Output = Response<B>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let answer = handler(req);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let _ = builder.serve_connection(TokioIo::new(io), svc).await;
}
