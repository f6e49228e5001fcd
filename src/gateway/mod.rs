//! The public service: what every request shares (the configuration in force with each room's
//! live handle, the store, the keys, the origin clients). `request.rs` takes one request
//! through the steps of DESIGN section 2; `answer.rs` holds `fail`, the one place that turns an
//! error into a response.

mod answer;
mod challenge;
mod cors;
use answer::{ErrorPages, closed, waiting};
use request::Ask;
mod endpoints;
mod push;
mod request;
pub mod respond;
pub mod route;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::{Config, ReloadStatus, RoomConfig};
use crate::error::GatewayError;
use crate::metrics as m;
use crate::pages::{self, RESERVED_PREFIX};
use crate::proxy::{self, Body, Forward, OriginClient, headers};
use crate::room::{Arrival, Decision, Overrides, Prefix, Via, Visitor};
use crate::store::{Backend, Room, SnapshotReport, Store};
use crate::token::{Claims, Keys};

/// Who is asking: the TCP peer, and whether the connection is TLS (cookies get `Secure`, the
/// origin sees `X-Forwarded-Proto: https`).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub secure: bool,
}

/// One configuration load as requests use it, swapped whole: the configuration, each room's
/// live handle and origin client (by the index of `config.rooms`), and the answers rendered
/// once per load.
pub(crate) struct Current {
    pub(crate) config: Arc<Config>,
    rooms: Vec<Arc<Room>>,
    /// A room's own client (`origin_ca`), else `None` for the shared one.
    clients: Vec<Option<OriginClient>>,
    /// Each room's closed page, rendered once for the room as overrides make it.
    closed: Vec<answer::ClosedCache>,
    /// The error pages, rendered once.
    errors: answer::ErrorPages,
}

/// Everything the public service shares: the configuration in force (swapped whole, rooms'
/// handles included, so a request finds its room without a lock), the store where the rooms'
/// state lives (outside the configuration: a reload never touches a line), the token keys and
/// the origin client.
pub struct Gateway {
    current: ArcSwap<Current>,
    /// The configuration alone, for the TLS handshake (`tls::server_config`).
    tls_config: Arc<ArcSwap<Config>>,
    store: Arc<Backend>,
    keys: Keys,
    /// Issues and checks join challenges (keys derived from `keys`, the replay filter).
    challenges: crate::pow::Challenges,
    client: OriginClient,
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
    /// The open event streams.
    streams: push::Streams,
    /// This gateway, for the tasks of its event streams (which must not keep it alive).
    me: std::sync::Weak<Gateway>,
}

impl Gateway {
    /// A gateway over `store`: the overrides the store kept are put back on their rooms.
    pub fn new(
        config: Config,
        keys: Keys,
        store: Arc<Backend>,
    ) -> Result<Arc<Self>, crate::StartError> {
        let client = proxy::client(
            &config.limits,
            crate::certs::client_config(None)?,
            crate::config::OriginProtocol::Http1,
            None,
        );
        let config = Arc::new(config);
        let gw = Gateway {
            boot: config.clone(),
            current: ArcSwap::from_pointee(Current::empty(config.clone(), ErrorPages::none())),
            tls_config: Arc::new(ArcSwap::new(config.clone())),
            store,
            challenges: crate::pow::Challenges::new(&keys, crate::pow::MAX_SEEN),
            keys,
            client,
            snapshot_soon: tokio::sync::Notify::new(),
            upgrades: proxy::Upgrades::default(),
            reload_status: Mutex::new(ReloadStatus::loaded()),
            overrides_write: Mutex::new(()),
            streams: push::Streams::default(),
            me: std::sync::Weak::new(),
        };
        // Every room of the file has a handle; rooms kept only by the store (taken out of the
        // file, restored from a snapshot) get their overrides back too.
        for rc in &config.rooms {
            gw.store.room(&rc.name, &rc.settings);
        }
        for (name, o) in gw.store.saved_overrides() {
            if let Some(room) = gw.store.find(&name) {
                let overrides = serde_json::to_string(&o).unwrap_or_default();
                tracing::info!(room = %name, %overrides, "overrides restored");
                room.set_overrides(o);
            }
        }
        gw.swap_arc(config);
        Ok(Arc::new_cyclic(|me| Gateway {
            me: me.clone(),
            ..gw
        }))
    }

    /// Waits for upgraded connections (WebSockets) until `deadline`, then cuts them.
    pub async fn close_upgrades(&self, deadline: tokio::time::Instant) {
        self.upgrades.close(deadline).await;
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.current.load().config.clone()
    }

    /// The configuration in force as the TLS handshake reads it.
    pub fn tls_config(&self) -> Arc<ArcSwap<Config>> {
        self.tls_config.clone()
    }

    /// The store the rooms live in.
    pub fn store(&self) -> &Backend {
        &self.store
    }

    /// Swaps in a new configuration: new rooms start empty, rooms kept by name keep their line,
    /// and changed settings (a policy) are put into force now. Requests in flight finish on the
    /// configuration they started with.
    pub fn swap(&self, config: Config) {
        self.swap_arc(Arc::new(config));
    }

    fn swap_arc(&self, config: Arc<Config>) {
        let current = Arc::new(Current::load(config.clone(), &self.store));
        self.tls_config.store(config.clone());
        self.current.store(current.clone());
        let version = crate::store::redis::version_of(&config.file);
        for rc in &config.rooms {
            m::zero_room(&rc.name);
        }
        for (rc, room) in config.rooms.iter().zip(&current.rooms) {
            self.store.loaded(room, rc, version);
        }
        // After the swap, so that a tick reading the new configuration agrees.
        for (rc, room) in config.rooms.iter().zip(&current.rooms) {
            self.store.settle(room, &room.effective(rc).settings);
        }
    }

    /// Changes one room's overrides: `change` maps the current ones to the new ones (or refuses),
    /// the result is kept by the store, then applied. Changes are serialized, so two concurrent
    /// changes both land. Returns (before, after). Blocking (the store writes a file).
    pub fn update_overrides<E: From<std::io::Error>>(
        &self,
        rc: &Arc<RoomConfig>,
        room: &Room,
        change: impl FnOnce(&Overrides) -> Result<Overrides, E>,
    ) -> Result<(Overrides, Overrides), E> {
        let _writing = self.overrides_write.lock();
        // The configuration in force now, not the caller's (a reload may have landed since).
        let rc = self
            .config()
            .rooms
            .iter()
            .find(|r| r.name == rc.name)
            .unwrap_or(rc)
            .clone();
        let rc = &rc;
        let before = (*room.overrides()).clone();
        let after = change(&before)?;
        let mut all: BTreeMap<String, Overrides> = self
            .store
            .rooms()
            .into_iter()
            .map(|(n, r)| (n, (*r.overrides()).clone()))
            .collect();
        all.insert(rc.name.clone(), after.clone());
        self.store.save_overrides(&all)?;
        room.set_overrides(after.clone());
        self.store.settle(room, &room.effective(rc).settings);
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

    /// The live handle of room `name`, if the store has it.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.store.find(name)
    }

    /// Writes every room to the state folder now (on the blocking pool). One write at a time;
    /// the request path only waits for a room's flat copy.
    pub async fn write_snapshot(&self) -> std::io::Result<SnapshotReport> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.persist())
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
    }

    /// Asks for a snapshot before the next interval.
    pub fn snapshot_soon(&self) {
        self.snapshot_soon.notify_one();
    }
}

impl Current {
    fn empty(config: Arc<Config>, errors: ErrorPages) -> Self {
        Current {
            errors,
            config,
            rooms: Vec::new(),
            clients: Vec::new(),
            closed: Vec::new(),
        }
    }

    /// The rooms of `config` with their handles from `store` and their origin clients.
    fn load(config: Arc<Config>, store: &Backend) -> Self {
        let rooms = config
            .rooms
            .iter()
            .map(|rc| store.room(&rc.name, &rc.settings))
            .collect();
        let clients = config
            .rooms
            .iter()
            .map(|rc| {
                // A room of its own CA or its own protocol has its own client; the rest share one.
                let (tls, protocol) = (rc.origin.tls.as_ref(), rc.origin.protocol);
                if tls.is_none() && protocol == crate::config::OriginProtocol::Http1 {
                    return None;
                }
                let tls = match tls {
                    Some(tls) => (**tls).clone(),
                    None => crate::certs::client_config(None).ok()?,
                };
                let target = (protocol != crate::config::OriginProtocol::Http1)
                    .then(|| rc.origin.authority.clone());
                Some(proxy::client(&config.limits, tls, protocol, target))
            })
            .collect();
        let closed = config.rooms.iter().map(|_| Default::default()).collect();
        Current {
            rooms,
            clients,
            closed,
            ..Current::empty(config.clone(), ErrorPages::render(&config.pages))
        }
    }
}

/// Writes a snapshot every `snapshot_every` until `shutdown` turns (the final one is written by
/// the shutdown itself, after the requests in flight have finished).
pub async fn snapshot_loop(gw: Arc<Gateway>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        let every = gw.config().state.snapshot_every;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = gw.snapshot_soon.notified() => {}
            _ = shutdown.changed() => return,
        }
        // A failure is logged and counted; the next interval tries again.
        let _ = gw.write_snapshot().await;
    }
}
