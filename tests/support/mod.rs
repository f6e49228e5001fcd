//! Test support: a real origin and the real gateway on 127.0.0.1 port 0, a plain HTTP/1.1
//! client, and waiting by deadline.

#![allow(dead_code)]

mod admin;
mod binary;
mod certs;
mod clock;
mod origin;
mod raw;
mod redis;
#[allow(unused_imports)]
pub use admin::*;
#[allow(unused_imports)]
pub use binary::*;
#[allow(unused_imports)]
pub use certs::*;
#[allow(unused_imports)]
pub use clock::*;
#[allow(unused_imports)]
pub use origin::*;
#[allow(unused_imports)]
pub use raw::*;
#[allow(unused_imports)]
pub use redis::*;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};

/// What the origin saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
}

/// A real HTTP origin that records every request. `/revoke` answers with
/// `Anteroom-Command: revoke`; `/slow` waits 2 s before answering.
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Origin {
    pub async fn start() -> Origin {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let addr = serve_http(move |req| {
            let log = log.clone();
            async move { answer(req, &log).await }
        })
        .await;
        Origin { addr, seen }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .last()
            .cloned()
            .expect("origin saw no request")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn answer(req: Request<Incoming>, log: &Mutex<Vec<Seen>>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    log.lock().push(Seen {
        method: req.method().to_string(),
        path: path.clone(),
        headers: req.headers().clone(),
    });
    let _ = req.into_body().collect().await;
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut resp = Response::new(Full::new(Bytes::from(format!("origin:{path}"))));
    if path == "/revoke" {
        resp.headers_mut()
            .insert("anteroom-command", http::HeaderValue::from_static("revoke"));
    }
    resp
}

/// A port with nothing listening on it.
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// The real gateway, started from a config file written into a temporary folder.
pub struct Gateway {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub running: Option<anteroom::Running>,
}

/// `[listen]`, `tick` and `[token]` for tests; append rooms to it.
pub fn base_config(tick: &str) -> String {
    format!(
        "tick = \"{tick}\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\n\n[limits]\norigin_response_timeout = \"1s\"\norigin_connect_timeout = \"1s\"\n\n"
    )
}

/// One `[[room]]` table; `extra` adds or overrides keys (one per line).
pub fn room(name: &str, host: &str, origin: &str, extra: &str) -> String {
    format!("[[room]]\nname = \"{name}\"\nhosts = [\"{host}\"]\norigin = \"{origin}\"\n{extra}\n\n")
}

impl Gateway {
    pub async fn start(config: &str) -> Gateway {
        Gateway::start_with_env(config, &[]).await
    }

    /// A gateway that sees exactly `env` as its environment (the process's is left alone: other
    /// tests run at the same time).
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        let running = anteroom::start_with(&path, anteroom::env::Env::of(env))
            .await
            .unwrap();
        Gateway {
            addr: running.http_addr,
            dir,
            running: Some(running),
        }
    }

    pub fn client(&self, host: &str) -> Client {
        Client {
            addr: self.addr,
            host: host.to_string(),
            cookies: HashMap::new(),
        }
    }
}

/// A response, body read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One visitor: a host to ask for and a cookie jar.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub host: String,
    pub cookies: HashMap<String, String>,
}

impl Client {
    pub async fn get(&mut self, path: &str, accept: &str) -> Reply {
        self.send("GET", path, &[("accept", accept)], "").await
    }

    /// Sends one request on a fresh connection, keeping cookies the answer sets.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
        let reply = raw_send(self.addr, req).await;
        for v in reply.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
        reply
    }
}

/// Sends `req` to `addr` over a new HTTP/1.1 connection.
pub async fn raw_send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Polls `check` until it returns `Some`, failing the test after `limit`.
pub async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub const JSON: &str = "application/json";
pub const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
