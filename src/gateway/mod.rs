//! The public service: one request at a time through the steps of DESIGN section 2. The inner
//! handler returns `Result`; `fail` is the one place that turns an error into a response.

mod answer;
pub use answer::fail;
use answer::{closed, waiting};
mod endpoints;
pub mod respond;
mod room;
pub mod route;
mod state;

pub use state::{SnapshotReport, run as snapshot_loop};

pub use room::{DECISIONS, Figures, Room, UPSTREAM_ERROR_KINDS};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use crate::config::reload::ReloadStatus;
use crate::config::{Config, RoomConfig};
use crate::error::GatewayError;
use crate::metrics as m;
use crate::pages::{self, RESERVED_PREFIX};
use crate::proxy::{self, Body, Forward, OriginClient, headers};
use crate::room::{
    Decision, Mode, Overrides, Prefix, RoomState, View, ViewState, Visitor, decide, poll_too_soon,
    recoverable, set_poll_floor,
};
use crate::token::{Claims, Keys};

/// Who is asking: the TCP peer, and whether the connection is TLS (cookies get `Secure`, the
/// origin sees `X-Forwarded-Proto: https`).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub secure: bool,
}

/// Everything the public service shares: the config snapshot (swapped whole), the rooms' state
/// (keyed by room name, outside the config so that a reload never touches a queue), the token
/// keys and the origin client.
pub struct Gateway {
    config: ArcSwap<Config>,
    rooms: RwLock<HashMap<String, Arc<Room>>>,
    keys: Keys,
    client: OriginClient,
    /// The rooms' millisecond clock: unix milliseconds at `epoch`, then monotonic from there, so
    /// times in a snapshot stay comparable across restarts.
    epoch: Instant,
    clock_base_ms: u64,
    /// One snapshot write at a time.
    snapshot_write: tokio::sync::Mutex<()>,
    /// Wakes the snapshot loop early (a room spent half its reserved tickets).
    snapshot_soon: tokio::sync::Notify,
    /// Spliced upgraded connections, for the drain.
    upgrades: proxy::Upgrades,
    /// The result of the last configuration load.
    reload_status: Mutex<ReloadStatus>,
    /// Serializes changes to the overrides and their file.
    overrides_write: Mutex<()>,
    /// The configuration at start (restart-only keys are compared against it).
    boot: Arc<Config>,
}

impl Gateway {
    pub fn new(config: Config, keys: Keys) -> Result<Arc<Self>, crate::StartError> {
        let client = proxy::client(&config.limits, crate::tls::client_config(None)?);
        let config = Arc::new(config);
        let gw = Gateway {
            boot: config.clone(),
            config: ArcSwap::new(config),
            rooms: RwLock::new(HashMap::new()),
            keys,
            client,
            epoch: Instant::now(),
            clock_base_ms: crate::snapshot::unix_ms(),
            snapshot_write: tokio::sync::Mutex::new(()),
            snapshot_soon: tokio::sync::Notify::new(),
            upgrades: proxy::Upgrades::default(),
            reload_status: Mutex::new(ReloadStatus::loaded()),
            overrides_write: Mutex::new(()),
        };
        let config = gw.config();
        let mut saved = crate::admin::persist::load(&config.state.dir);
        gw.restore(&config);
        gw.sync_rooms(&config);
        for (name, room) in gw.rooms.read().iter() {
            if let Some(o) = saved.remove(name) {
                tracing::info!(room = %name, overrides = ?o, "overrides restored");
                room.set_overrides(o);
            }
        }
        Ok(Arc::new(gw))
    }

    /// Waits for upgraded connections (WebSockets) until `deadline`, then cuts them.
    pub async fn close_upgrades(&self, deadline: tokio::time::Instant) {
        self.upgrades.close(deadline).await;
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Swaps in a new configuration: new rooms start empty, rooms kept by name keep their line.
    /// Requests in flight finish on the configuration they started with.
    pub fn swap(&self, config: Config) {
        self.sync_rooms(&config);
        self.config.store(Arc::new(config));
    }

    /// Changes one room's overrides: `change` maps the current ones to the new ones (or refuses),
    /// the result is written to the state folder, then applied. Changes are serialized, so two
    /// concurrent changes both land. Returns (before, after).
    pub fn update_overrides<E: From<std::io::Error>>(
        &self,
        room: &Room,
        name: &str,
        change: impl FnOnce(&Overrides) -> Result<Overrides, E>,
    ) -> Result<(Overrides, Overrides), E> {
        let _writing = self.overrides_write.lock();
        let before = (*room.overrides()).clone();
        let after = change(&before)?;
        let mut all: std::collections::BTreeMap<String, Overrides> = self
            .rooms
            .read()
            .iter()
            .map(|(n, r)| (n.clone(), (*r.overrides()).clone()))
            .collect();
        all.insert(name.to_string(), after.clone());
        crate::admin::persist::save(&self.boot.state.dir, &all)?;
        room.set_overrides(after.clone());
        Ok((before, after))
    }

    /// The configuration the process started with: what the listeners were built from.
    pub fn boot_config(&self) -> &Config {
        &self.boot
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reload_status.lock().clone()
    }

    pub fn set_reload_status(&self, status: ReloadStatus) {
        *self.reload_status.lock() = status;
    }

    /// Milliseconds on the rooms' clock.
    pub fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 4);
        self.clock_base_ms.saturating_add(elapsed)
    }

    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.read().get(name).cloned()
    }

    /// Creates state for rooms new in `config`, keeps the rest as they are.
    fn sync_rooms(&self, config: &Config) {
        let now = self.now_ms();
        let mut rooms = self.rooms.write();
        for r in &config.rooms {
            rooms.entry(r.name.clone()).or_insert_with(|| {
                Arc::new(Room::new(
                    RoomState::fresh(&r.settings, now),
                    Default::default(),
                ))
            });
        }
    }

    /// Answers one public request. Never fails: errors become pages here.
    pub async fn handle(&self, peer: Peer, req: Request<Incoming>) -> Response<Body> {
        let config = self.config();
        // The path only: a query string may carry what visitors would not want logged.
        let access = config.access_log.then(|| {
            (
                Instant::now(),
                req.method().clone(),
                req.uri().path().to_string(),
            )
        });
        // Every answer anteroom makes itself follows what the client asked for.
        let html = pages::wants_html(req.method(), req.headers());
        let resp = match self.inner(&config, peer, req, html).await {
            Ok(resp) => resp,
            Err(e) => fail(&config, e, html),
        };
        if let Some((started, method, path)) = access {
            tracing::info!(
                target: "anteroom::access",
                peer = %peer.addr,
                %method,
                path,
                status = resp.status().as_u16(),
                ms = started.elapsed().as_secs_f64() * 1e3,
                "request"
            );
        }
        resp
    }

    async fn inner(
        &self,
        config: &Config,
        peer: Peer,
        req: Request<Incoming>,
        html: bool,
    ) -> Result<Response<Body>, GatewayError> {
        route::check_request(&req, &config.limits)?;
        // Behind a trusted TLS-terminating proxy the visitor is on HTTPS: cookies get `Secure`.
        let peer = Peer {
            secure: peer.secure
                || route::forwarded_https(&config.trusted_proxies, peer.addr.ip(), req.headers()),
            ..peer
        };
        let host = route::host_of(&req)?;
        // Every decision below, and the origin, see the one normal form of the path.
        let mut req = req;
        route::normalise_target(&mut req)?;
        let Some(file_room) = config.room_for_host(&host) else {
            return Err(GatewayError::UnknownHost(host));
        };
        let room = self
            .room(&file_room.name)
            .ok_or_else(|| GatewayError::UnknownHost(host.clone()))?;
        // The operator's overrides over the file, for the whole request.
        let room_cfg = &room.effective(file_room);
        let name = room_cfg.name.clone();
        if !room_cfg.enabled {
            count_request(&room, &name, "disabled");
            return self
                .pass(config, room_cfg, &room, peer, &host, req, None)
                .await;
        }
        if req.uri().path().starts_with(RESERVED_PREFIX) {
            count_request(&room, &name, "endpoint");
            return self.endpoint(room_cfg, &room, peer, req);
        }
        if room_cfg.bypass.iter().any(|b| b.matches(req.uri().path())) {
            count_request(&room, &name, "bypass");
            return self
                .pass(config, room_cfg, &room, peer, &host, req, None)
                .await;
        }
        let (visitor, sent_token) = self.visitor(room_cfg, req.headers(), peer.secure);
        let client = route::client_ip(&config.trusted_proxies, peer.addr.ip(), req.headers());
        // A request that is not a navigation is an app's or a script's: a poll, with its floor.
        let poll = !html;
        let decision = match self.decide_request(room_cfg, &room, visitor, client, poll) {
            Outcome::Decided(d) => d,
            Outcome::OverBudget(view) => {
                count_request(&room, &name, "queue");
                metrics::counter!(m::JOINS_OVER_BUDGET, "room" => name.clone()).increment(1);
                return waiting(config, room_cfg, &req, html, &view, None);
            }
            Outcome::TooSoon(wait_ms) => {
                count_request(&room, &name, "queue");
                return Ok(answer::too_fast(room_cfg, wait_ms));
            }
        };
        match decision {
            Decision::Admit {
                visitor,
                joined,
                how,
            } => {
                count_request(&room, &name, "admit");
                if let Some(how) = how {
                    metrics::counter!(m::ADMITTED, "room" => name.clone(), "how" => how.label())
                        .increment(1);
                }
                let token = joined.then(|| self.token(room_cfg, visitor));
                // A new session keeps its place even when the origin fails this once.
                let mut resp = match self
                    .pass(config, room_cfg, &room, peer, &host, req, Some(visitor))
                    .await
                {
                    Ok(r) => r,
                    Err(e) => fail(config, e, html),
                };
                if let Some(t) = token {
                    let cookie = room_cfg.cookie_name_for(peer.secure);
                    respond::set_cookie(&mut resp, &cookie, &t, peer.secure);
                }
                Ok(resp)
            }
            Decision::Wait {
                visitor,
                joined,
                duplicate,
                view,
            } => {
                count_request(&room, &name, "queue");
                if duplicate {
                    metrics::counter!(m::DUPLICATE_REQUESTS, "room" => name.clone()).increment(1);
                }
                let token = match sent_token {
                    Some(t) if !joined => t,
                    _ => self.token(room_cfg, visitor),
                };
                let mut resp = waiting(config, room_cfg, &req, html, &view, Some(&token))?;
                if joined {
                    let cookie = room_cfg.cookie_name_for(peer.secure);
                    respond::set_cookie(&mut resp, &cookie, &token, peer.secure);
                }
                Ok(resp)
            }
            Decision::Closed => {
                count_request(&room, &name, "closed");
                closed(config, room_cfg, !poll)
            }
            Decision::Expired { view } => {
                count_request(&room, &name, "queue");
                metrics::counter!(m::PLACES_EXPIRED, "room" => name.clone()).increment(1);
                let mut resp = waiting(config, room_cfg, &req, html, &view, None)?;
                // The next request without the stale token is a new visitor: joining again.
                respond::clear_cookie(&mut resp, &room_cfg.cookie_name_for(peer.secure));
                Ok(resp)
            }
        }
    }

    /// The room's answer to one request, under its lock: the poll floor and the join budget
    /// first, then the decision. `poll`: the request is an app's or a script's, not a page view.
    fn decide_request(
        &self,
        rc: &RoomConfig,
        room: &Room,
        visitor: Option<Visitor>,
        client: std::net::IpAddr,
        poll: bool,
    ) -> Outcome {
        let now = self.now_ms();
        let mut state = room.state.lock();
        if poll && let Some(wait_ms) = visitor.and_then(|v| poll_too_soon(&mut state, &v.id, now)) {
            return Outcome::TooSoon(wait_ms);
        }
        if let Some(view) = over_budget(rc, room, &state, visitor, client, now) {
            return Outcome::OverBudget(view);
        }
        let decision = decide(&rc.settings, &mut state, visitor, now, &mut rand::rng());
        if poll
            && let Decision::Wait {
                visitor,
                joined: false,
                view,
                ..
            } = &decision
        {
            set_poll_floor(&mut state, &visitor.id, now, view.poll_after_seconds);
        }
        Outcome::Decided(decision)
    }

    /// The visitor a request's token names (cookie, or `Anteroom-Token` for apps), with the token
    /// string. A token that fails to verify counts as none and is counted. Only the cookie name
    /// of this connection is read (`secure`: see `RoomConfig::cookie_name_for`).
    fn visitor(
        &self,
        room: &RoomConfig,
        headers: &HeaderMap,
        secure: bool,
    ) -> (Option<Visitor>, Option<String>) {
        let raw = headers
            .get(headers::TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| headers::cookie(headers, &room.cookie_name_for(secure)));
        let Some(raw) = raw else { return (None, None) };
        match self.keys.decode(room.id, raw) {
            Some(c) => (
                Some(Visitor {
                    id: c.session,
                    ticket: c.ticket,
                }),
                Some(raw.to_string()),
            ),
            None => {
                metrics::counter!(m::INVALID_TOKENS, "room" => room.name.clone()).increment(1);
                (None, None)
            }
        }
    }

    fn token(&self, room: &RoomConfig, v: Visitor) -> String {
        let issued_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.keys.encode(&Claims {
            room_id: room.id,
            session: v.id,
            ticket: v.ticket,
            issued_at,
        })
    }

    /// Forwards to the room's origin; acts on `Anteroom-Command: revoke` and hides it.
    #[allow(clippy::too_many_arguments)]
    async fn pass(
        &self,
        config: &Config,
        room_cfg: &Arc<RoomConfig>,
        room: &Arc<Room>,
        peer: Peer,
        host: &str,
        req: Request<Incoming>,
        visitor: Option<Visitor>,
    ) -> Result<Response<Body>, GatewayError> {
        let started = Instant::now();
        let forward = Forward {
            origin: &room_cfg.origin,
            peer: peer.addr.ip(),
            trusted_peer: config
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&peer.addr.ip())),
            proto: if peer.secure { "https" } else { "http" },
            host,
            cookie_name: &room_cfg.cookie_name,
            response_timeout: config.limits.origin_response_timeout,
            max_body: config.limits.max_body,
            body_timeout: config.limits.body_timeout,
            upgrades: &self.upgrades,
        };
        let client = room_cfg.origin.client.as_ref().unwrap_or(&self.client);
        let result = proxy::forward(client, forward, req).await;
        let name = room_cfg.name.clone();
        metrics::histogram!(m::UPSTREAM_DURATION, "room" => name.clone())
            .record(started.elapsed().as_secs_f64());
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                // The origin's failures only; a client's bad or slow body is not the origin's.
                let kind = match e {
                    GatewayError::OriginTimeout => Some("timeout"),
                    GatewayError::OriginDown(_) => Some("connect"),
                    GatewayError::OriginInvalid(_) => Some("invalid_response"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    room.figures.count_upstream_error(kind);
                    metrics::counter!(m::UPSTREAM_ERRORS, "room" => name, "kind" => kind)
                        .increment(1);
                }
                return Err(e);
            }
        };
        let (mut parts, body) = resp.into_parts();
        let command = parts.headers.remove(headers::COMMAND_HEADER);
        if let (Some(cmd), Some(v)) = (command, visitor)
            && cmd.as_bytes().eq_ignore_ascii_case(b"revoke")
        {
            let ended = {
                let mut state = room.state.lock();
                crate::room::revoke(&mut state, &v.id)
            };
            if let Some(reason) = ended {
                metrics::counter!(m::SESSIONS_ENDED, "room" => name, "reason" => reason.label())
                    .increment(1);
            }
        }
        // The head is on its way: a failure of the body from here can only be cut off, and
        // is counted as the origin's.
        let (watched, rc) = (room.clone(), room_cfg.clone());
        let body = body.map_err(move |e| {
            tracing::warn!(room = %rc.name, error = %e, "origin response body failed");
            watched.figures.count_upstream_error("body");
            metrics::counter!(m::UPSTREAM_ERRORS, "room" => rc.name.clone(), "kind" => "body")
                .increment(1);
            crate::proxy::BoxError::from(e)
        });
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

/// What the room says to one request before anything is sent.
enum Outcome {
    Decided(Decision),
    /// A new session from a prefix past its join budget: the view of a visitor with no place.
    OverBudget(View),
    /// A queued visitor's poll before its floor: how long until it is answered.
    TooSoon(u64),
}

fn count_request(room: &Room, name: &str, decision: &'static str) {
    room.figures.count_request(decision);
    metrics::counter!(m::REQUESTS, "room" => name.to_string(), "decision" => decision).increment(1);
}

/// A new session from a client prefix past its join budget (`max_joins_per_prefix_per_minute`):
/// the view of a visitor with no place, polling again when the budget has a join. Returning
/// visitors (known sessions, tokens coming back after a restart) are never budgeted. `None`:
/// go on and decide.
fn over_budget(
    rc: &RoomConfig,
    room: &Room,
    state: &RoomState,
    visitor: Option<Visitor>,
    client: std::net::IpAddr,
    now: u64,
) -> Option<View> {
    let limit = rc.settings.max_joins_per_prefix_per_minute?;
    let joining =
        visitor.is_none_or(|v| !state.sessions.contains_key(&v.id) && !recoverable(state, v, now));
    if !joining || rc.settings.mode != Mode::Queue {
        return None;
    }
    let wait_ms = room
        .joins
        .lock()
        .take(Prefix::of(client), limit, now)
        .err()?;
    Some(View::without_place(
        ViewState::Queued,
        state.waiting(),
        wait_ms.div_ceil(1000).max(1),
    ))
}
