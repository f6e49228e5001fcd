//! The admin listener: the admin API (rooms, overrides, reload, config), `/metrics`, `/healthz`
//! and `/readyz`. Bearer-token auth from the env var the file names, else loopback peers only;
//! Host checked against DNS rebinding; JSON bodies only; no CORS headers.

mod events;
mod ready;
mod rooms;
mod sessions;

pub use ready::Readiness;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ReloadStatus;
use crate::gateway::{Gateway, respond};
use crate::proxy::Body;
use crate::reload::ReloadHandle;
use crate::store::Store;

/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

/// What the admin handlers share.
#[derive(Clone)]
pub struct Admin {
    pub gw: Arc<Gateway>,
    pub reload: ReloadHandle,
}

/// The admin listener's handler, from before the gateway is built until after the public
/// listeners drained: until [`Slot::fill`] gives it the API, it answers `/healthz`, `/readyz`
/// (503, why) and `/metrics`, and 503 to the rest.
pub struct Slot {
    pub ready: Arc<Readiness>,
    admin: OnceLock<Admin>,
}

impl Slot {
    pub fn new(ready: Arc<Readiness>) -> Arc<Slot> {
        Arc::new(Slot {
            ready,
            admin: OnceLock::new(),
        })
    }

    /// The gateway is built: the API answers from now on.
    pub fn fill(&self, admin: Admin) {
        let _ = self.admin.set(admin);
    }

    async fn handle(&self, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
        // Read-only and free of secrets: a scraper may use any name for the host.
        match req.uri().path() {
            "/healthz" => return respond::plain(StatusCode::OK, "ok\n"),
            "/readyz" => return self.readyz(),
            "/metrics" => return metrics_text(),
            _ => {}
        }
        match self.admin.get() {
            Some(admin) => admin.handle(peer, req).await,
            None => error(StatusCode::SERVICE_UNAVAILABLE, "starting"),
        }
    }

    /// 200 `ready`, or 503 and why not: `starting`, `restoring`, `draining`, `store unreachable`.
    fn readyz(&self) -> Response<Body> {
        let why = self.ready.not_ready().or_else(|| {
            let admin = self.admin.get()?;
            (!admin.gw.store().reachable()).then_some("store unreachable")
        });
        let (status, text) = match why {
            Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
            None => (StatusCode::OK, "ready\n".to_string()),
        };
        let mut r = Response::new(respond::body(text));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        r
    }
}

/// Serves the admin listener until `shutdown` (sent once the public listeners drained), with
/// the public side's header, idle and write timeouts and its own connection cap
/// (`[admin] max_connections`), both in `serving`.
pub async fn serve(
    listener: TcpListener,
    serving: crate::server::Serving,
    slot: Arc<Slot>,
    shutdown: watch::Receiver<bool>,
) {
    crate::server::serve(listener, serving, shutdown, move |peer, req| {
        let slot = slot.clone();
        async move { slot.handle(peer.addr, req).await }
    })
    .await;
}

/// Who made a change, for the log: the token's id (a short hash, never the token) or loopback.
#[derive(Debug, Clone)]
pub struct Who(String);

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One authorized API call, beside its method and path.
struct Call {
    body: Bytes,
    /// The query string (`""`: none).
    query: String,
    who: Who,
}

/// The methods the API answers on `segments` (the `Allow` header of a 405), `None`: no such
/// path.
fn allowed(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["api", "v1", "rooms"] | ["api", "v1", "config"] => "GET",
        ["api", "v1", "rooms", _] => "GET, PATCH",
        ["api", "v1", "rooms", _, "overrides"] => "DELETE",
        ["api", "v1", "rooms", _, "events", _, "start" | "end"]
        | ["api", "v1", "rooms", _, "revoke" | "reset"]
        | ["api", "v1", "reload" | "snapshot"] => "POST",
        _ => return None,
    })
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    respond::json(status, &json!({ "error": message.into() }))
}

impl Admin {
    async fn handle(&self, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        if !host_allowed(req.headers()) {
            return error(StatusCode::FORBIDDEN, "host not allowed");
        }
        let Some(who) = self.authorize(peer, req.headers()) else {
            return error(StatusCode::UNAUTHORIZED, "unauthorized");
        };
        let method = req.method().clone();
        let query = req.uri().query().unwrap_or("").to_string();
        let body = match read_json_body(req).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let call = Call { body, query, who };
        self.route(method, &segments, call).await
    }

    /// The API call `method` on `segments` (the path split at `/`), by an authorized caller.
    async fn route(&self, method: Method, segments: &[&str], call: Call) -> Response<Body> {
        let Call { body, query, who } = call;
        match (method, segments) {
            (Method::GET, ["api", "v1", "rooms"]) => self.list_rooms(),
            (Method::GET, ["api", "v1", "rooms", name]) => self.room_json(name),
            (Method::PATCH, ["api", "v1", "rooms", name]) => {
                let name = name.to_string();
                self.blocking(move |a| a.patch(&name, &body, &who)).await
            }
            (Method::DELETE, ["api", "v1", "rooms", name, "overrides"]) => {
                let name = name.to_string();
                self.blocking(move |a| a.drop_overrides(&name, &who)).await
            }
            (
                Method::POST,
                [
                    "api",
                    "v1",
                    "rooms",
                    name,
                    "events",
                    event,
                    action @ ("start" | "end"),
                ],
            ) => {
                let (name, event) = (name.to_string(), event.to_string());
                let button = if *action == "start" {
                    events::Button::Start
                } else {
                    events::Button::End
                };
                self.blocking(move |a| a.press(&name, &event, button, &who))
                    .await
            }
            (Method::POST, ["api", "v1", "rooms", name, "revoke"]) => {
                self.revoke(name, &body, &who).await
            }
            (Method::POST, ["api", "v1", "rooms", name, "reset"]) => {
                self.reset(name, &query, &who).await
            }
            (Method::POST, ["api", "v1", "reload"]) => self.reload(&who).await,
            (Method::GET, ["api", "v1", "config"]) => self.config_json(),
            (Method::POST, ["api", "v1", "snapshot"]) => self.snapshot(&who).await,
            (_, segments) => match allowed(segments) {
                Some(allow) => respond::method_not_allowed(allow),
                None => error(StatusCode::NOT_FOUND, "not found"),
            },
        }
    }

    /// With a token configured (the env var the file names, non-empty): the bearer token, compared
    /// in constant time. Without: loopback peers only.
    fn authorize(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<Who> {
        let config = self.gw.config();
        let Some(token) = config.admin_token.as_deref() else {
            return peer
                .ip()
                .is_loopback()
                .then(|| Who(format!("loopback {peer}")));
        };
        let sent = headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        if !same_secret(sent, token) {
            return None;
        }
        Some(Who(format!("token {}", token_id(token))))
    }

    /// Runs a handler that writes and fsyncs the overrides file on the blocking pool, so that a
    /// slow disk never stalls a thread serving visitors (on one core, every visitor).
    async fn blocking(
        &self,
        f: impl FnOnce(&Admin) -> Response<Body> + Send + 'static,
    ) -> Response<Body> {
        let admin = self.clone();
        tokio::task::spawn_blocking(move || f(&admin))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "admin change did not finish");
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the change did not finish",
                )
            })
    }

    async fn reload(&self, who: &Who) -> Response<Body> {
        tracing::info!(%who, "reload asked");
        match self.reload.reload().await {
            Some(s) => {
                let code = if s.ok {
                    StatusCode::OK
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                respond::json(code, &reload_json(&s))
            }
            None => error(StatusCode::SERVICE_UNAVAILABLE, "stopping"),
        }
    }

    /// Writes a snapshot now (before a deploy, say) and tells how it went.
    async fn snapshot(&self, who: &Who) -> Response<Body> {
        tracing::info!(%who, "snapshot asked");
        match self.gw.write_snapshot().await {
            Ok(r) => respond::json(StatusCode::OK, &r),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("snapshot failed: {e}"),
            ),
        }
    }

    fn config_json(&self) -> Response<Body> {
        let config = self.gw.config();
        let status = self.gw.reload_status();
        respond::json(
            StatusCode::OK,
            &json!({
                "file": config.file.display().to_string(),
                "rooms": config.rooms.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
                "last_reload": reload_json(&status),
            }),
        )
    }
}

fn reload_json(s: &ReloadStatus) -> serde_json::Value {
    json!({
        "result": if s.ok { "ok" } else { "error" },
        "at": humantime::format_rfc3339_seconds(s.at).to_string(),
        "errors": s.errors.iter().map(|e| json!({
            "file": e.file.display().to_string(),
            "line": e.line,
            "key": e.key,
            "message": e.message,
            "text": e.to_string(),
        })).collect::<Vec<_>>(),
        "needs_restart": s.needs_restart,
    })
}

/// Compares two secrets without leaking where they differ or how long they are: both are hashed,
/// then every byte of the digests is compared.
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::Digest;
    let (da, db) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A short, stable id of a token for logs: the first 8 hex digits of its SHA-256.
fn token_id(token: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(token.as_bytes());
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// DNS rebinding defence: the admin API answers only a Host that is an IP literal or
/// `localhost`, never another name.
fn host_allowed(headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        // HTTP/1.0 without Host: nothing to rebind.
        return true;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Reads a request body: empty, or JSON (`Content-Type: application/json`) up to 64 KiB.
async fn read_json_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    let json_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("bodies are limited to {MAX_BODY} bytes"),
            ));
        }
    };
    if !body.is_empty() && json_type != Some(true) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON with Content-Type: application/json",
        ));
    }
    Ok(body)
}

fn metrics_text() -> Response<Body> {
    match crate::metrics::install() {
        Some(h) => {
            crate::metrics::process();
            let mut r = Response::new(respond::body(h.render()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        None => respond::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n",
        ),
    }
}
