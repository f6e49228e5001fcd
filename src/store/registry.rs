//! What every store keeps in the instance itself: the room handles by name and the rooms'
//! clock (unix milliseconds at start, monotonic from there, so times in a snapshot stay
//! comparable across restarts). The lock is taken briefly for a lookup or an insert, never per
//! request (requests hold their room's handle).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::time::Instant;

use super::{Room, snapshot};
use crate::room::RoomState;

pub(crate) struct Registry {
    rooms: RwLock<HashMap<String, Arc<Room>>>,
    epoch: Instant,
    clock_base_ms: u64,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            rooms: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
            clock_base_ms: snapshot::unix_ms(),
        }
    }

    /// Milliseconds on the rooms' clock.
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 4);
        self.clock_base_ms.saturating_add(elapsed)
    }

    /// The handle of room `name`, made with `fresh` (given the clock) if there is none.
    pub(crate) fn get_or_make(
        &self,
        name: &str,
        fresh: impl FnOnce(u64) -> RoomState,
    ) -> Arc<Room> {
        if let Some(r) = self.find(name) {
            return r;
        }
        let now = self.now_ms();
        self.rooms
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Room::new(name, fresh(now))))
            .clone()
    }

    /// Puts `state` in as room `name` (a room restored from a snapshot).
    pub(crate) fn insert(&self, name: &str, state: RoomState) {
        self.rooms
            .write()
            .insert(name.to_string(), Arc::new(Room::new(name, state)));
    }

    pub(crate) fn find(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.read().get(name).cloned()
    }

    pub(crate) fn all(&self) -> Vec<(String, Arc<Room>)> {
        self.rooms
            .read()
            .iter()
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect()
    }
}
