//! A small demo origin, so that the shipped `gateway.toml` runs on a fresh machine: every path
//! answers a page saying the visitor got in.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::Limits;

use crate::gateway::respond;
use crate::proxy::Body;

/// Open demo connections at most: it is a demo, not a benchmark target.
const DEMO_CONNECTIONS: usize = 1024;

pub async fn serve(listener: TcpListener, limits: Limits, shutdown: watch::Receiver<bool>) {
    let served = Arc::new(AtomicU64::new(0));
    // The same accept loop and limits as every other listener.
    let serving = crate::server::Serving {
        tls: None,
        permits: Arc::new(Semaphore::new(DEMO_CONNECTIONS)),
        limits,
        drain: Duration::from_secs(1),
    };
    crate::server::serve(listener, serving, shutdown, move |_, req| {
        let n = served.fetch_add(1, Ordering::Relaxed) + 1;
        let page = page(&req, n);
        async move { page }
    })
    .await;
}

fn page(req: &Request<Incoming>, n: u64) -> Response<Body> {
    let path = escape(req.uri().path());
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Demo shop</title></head><body style=\"font-family:system-ui;max-width:40rem;margin:3rem auto;padding:0 1rem\">\
         <h1>Welcome to the demo shop</h1><p>You are in: the waiting room let you through to <code>{path}</code>.</p>\
         <p>This origin has served {n} requests.</p>\
         </body></html>"
    );
    // An origin's page, not the gateway's: none of the gateway's page headers.
    let mut resp = Response::new(respond::body(html));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
