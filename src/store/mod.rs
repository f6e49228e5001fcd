//! Where rooms live: the registry of live room handles, the decisions and ticks run on each
//! room's state, the operator's overrides on disk, and snapshots. Everything above goes through
//! [`Store`]; [`Memory`] keeps each room in this process under one lock (today's behaviour).
//! A store shared by several instances implements the same trait.
//!
//! Persistence as files: `snapshot.rs` (the snapshot format and its atomic write),
//! `overrides.rs` (the overrides file), `memory.rs` (restoring at start, writing every room).

mod memory;
pub mod overrides;
pub mod redis;
mod registry;
mod room;
pub mod snapshot;

pub use memory::{Memory, SnapshotReport};
pub use room::{DECISIONS, Figures, Room, SharedFile, UPSTREAM_ERROR_KINDS};

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::config::RoomConfig;
use crate::room::{
    Arrival, Counters, Decision, EndReason, Left, Overrides, SessionId, Settings, Telemetry,
    TickReport,
};
use crate::store::redis::StoreError;

/// A room's figures at one moment, for the admin API, metrics and logs.
#[derive(Debug, Clone)]
pub struct Reading {
    pub telemetry: Telemetry,
    pub counters: Counters,
    /// Sessions the room holds (queued, released, active, missed).
    pub sessions: usize,
    /// Visitors waiting (in line or at the front).
    pub waiting: u64,
    /// A shared store: the instances seen within the last minute (empty in-process).
    pub instances: Vec<Instance>,
    /// Everyone waiting while the room holds them for an event's start (`None`: not holding).
    pub prequeue_depth: Option<u64>,
    /// Visitors who lost their place when an event ended in a room closed outside events.
    pub dropped_at_end: u64,
}

/// One instance sharing a store, as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Instance {
    pub id: String,
    pub last_seen_ms_ago: u64,
    /// It holds the room's tick lease.
    pub lease_holder: bool,
}

/// What one tick of a room did.
#[derive(Debug, Clone)]
pub struct Ticked {
    pub report: TickReport,
    pub reading: Reading,
    /// Half the tickets reserved by the last snapshot are spent: write the next one soon.
    pub reserve_low: bool,
}

/// The store an instance runs with, chosen by `[store] kind`.
pub enum Backend {
    Memory(Memory),
    /// Rooms in Redis, shared with other instances.
    Redis(Box<redis::Shared>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Backend::Memory($s) => $e,
            Backend::Redis($s) => $e,
        }
    };
}

impl Store for Backend {
    fn now_ms(&self) -> u64 {
        each!(self, s => s.now_ms())
    }
    fn room(&self, name: &str, settings: &Settings) -> Arc<Room> {
        each!(self, s => s.room(name, settings))
    }
    fn find(&self, name: &str) -> Option<Arc<Room>> {
        each!(self, s => s.find(name))
    }
    fn rooms(&self) -> Vec<(String, Arc<Room>)> {
        each!(self, s => s.rooms())
    }
    async fn arrive(&self, room: &Room, settings: &Settings, a: Arrival) -> Decision {
        each!(self, s => s.arrive(room, settings, a).await)
    }
    async fn leave(&self, room: &Room, id: &SessionId) -> Option<Left> {
        each!(self, s => s.leave(room, id).await)
    }
    async fn revoke(&self, room: &Room, id: &SessionId) -> Option<EndReason> {
        each!(self, s => s.revoke(room, id).await)
    }
    async fn reset(&self, room: &Room) -> Result<u64, StoreError> {
        each!(self, s => s.reset(room).await)
    }
    fn settle(&self, room: &Room, settings: &Settings) {
        each!(self, s => s.settle(room, settings))
    }
    fn loaded(&self, room: &Room, rc: &RoomConfig, version_ms: u64) {
        each!(self, s => s.loaded(room, rc, version_ms))
    }
    async fn tick(&self, room: &Room, settings: &Settings) -> Ticked {
        each!(self, s => s.tick(room, settings).await)
    }
    fn reading(&self, room: &Room, settings: &Settings) -> Reading {
        each!(self, s => s.reading(room, settings))
    }
    fn saved_overrides(&self) -> BTreeMap<String, Overrides> {
        each!(self, s => s.saved_overrides())
    }
    fn save_overrides(&self, all: &BTreeMap<String, Overrides>) -> std::io::Result<()> {
        each!(self, s => s.save_overrides(all))
    }
    fn persist(&self) -> std::io::Result<SnapshotReport> {
        each!(self, s => s.persist())
    }
    fn reachable(&self) -> bool {
        each!(self, s => s.reachable())
    }
    async fn take_nonce(&self, room: &Room, id: [u8; 16], expires: u64) -> bool {
        each!(self, s => s.take_nonce(room, id, expires).await)
    }
}

/// The rooms' home. Each call on a room is one atomic step of its engine; `settings` are the
/// room's settings in force (the file's, with the operator's overrides).
pub trait Store: Send + Sync {
    /// Milliseconds on the rooms' clock: unix milliseconds at start, monotonic from there, so
    /// times in a snapshot stay comparable across restarts.
    fn now_ms(&self) -> u64;
    /// The live handle of room `name`, created empty if the store has none. A room taken out of
    /// the configuration keeps its handle, so putting it back restores its line.
    fn room(&self, name: &str, settings: &Settings) -> Arc<Room>;
    /// The handle of room `name`, if the store has one.
    fn find(&self, name: &str) -> Option<Arc<Room>>;
    /// Every room the store holds, by name.
    fn rooms(&self) -> Vec<(String, Arc<Room>)>;
    /// One request's decision (see [`crate::room::arrive`]).
    fn arrive(
        &self,
        room: &Room,
        settings: &Settings,
        a: Arrival,
    ) -> impl Future<Output = Decision> + Send;
    /// A visitor gives up its place or slot.
    fn leave(&self, room: &Room, id: &SessionId) -> impl Future<Output = Option<Left>> + Send;
    /// The origin ended a session (`Anteroom-Command: revoke`).
    fn revoke(&self, room: &Room, id: &SessionId)
    -> impl Future<Output = Option<EndReason>> + Send;
    /// The operator empties the room's line (see [`crate::room::reset`]): how many visitors
    /// lost their place, or the store's error (nothing was changed then).
    fn reset(&self, room: &Room) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Puts changed settings into force at once (a reload, an override): see
    /// [`crate::room::settle`].
    fn settle(&self, room: &Room, settings: &Settings);
    /// This instance loaded its configuration file (at start or a reload; `version_ms`: the
    /// file's modification time). A shared store offers the room's settings to every instance.
    fn loaded(&self, _room: &Room, _rc: &RoomConfig, _version_ms: u64) {}
    /// One tick: expire, release, measure.
    fn tick(&self, room: &Room, settings: &Settings) -> impl Future<Output = Ticked> + Send;
    /// The room's figures now (a shared store: as of this instance's last tick).
    fn reading(&self, room: &Room, settings: &Settings) -> Reading;
    /// The overrides kept from an earlier run, by room.
    fn saved_overrides(&self) -> BTreeMap<String, Overrides>;
    /// Keeps every room's overrides (durably: they survive a restart).
    fn save_overrides(&self, all: &BTreeMap<String, Overrides>) -> std::io::Result<()>;
    /// Writes every room so that a restart finds it (blocking: run it off the async runtime).
    fn persist(&self) -> std::io::Result<SnapshotReport>;
    /// Whether the store answered its last call (`/readyz`); an in-process store always does.
    fn reachable(&self) -> bool {
        true
    }
    /// A join challenge's nonce (`id`, valid until unix second `expires`) solved here, taken
    /// across every instance sharing the store: `false` if another took it first. An
    /// in-process store has only this instance's own filter, which has taken it already.
    fn take_nonce(
        &self,
        _room: &Room,
        _id: [u8; 16],
        _expires: u64,
    ) -> impl Future<Output = bool> + Send {
        std::future::ready(true)
    }
}
