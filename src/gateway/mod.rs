//! The public service: what every request shares (the config snapshot, the rooms' live state,
//! the keys, the origin client). `request.rs` takes one request through the steps of DESIGN
//! section 2; `answer.rs` holds `fail`, the one place that turns an error into a response.

mod answer;
pub use answer::fail;
use answer::{closed, waiting};
use request::{Ask, over_budget};
mod endpoints;
mod request;
pub mod respond;
mod room;
pub mod route;
mod state;

pub use state::{SnapshotReport, run as snapshot_loop};

pub use room::{DECISIONS, Figures, Room, UPSTREAM_ERROR_KINDS};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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
    set_poll_floor,
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
}
