//! The in-process store: every room's state in this process under one lock per room, restored
//! from the snapshot in the state folder at start and written back to it (each room's lock is
//! held only for a flat copy; the encoding and the disk work follow outside it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

use super::registry::Registry;
use super::snapshot::{self, Snapshot};
use super::{Reading, Room, Store, Ticked, overrides};
use crate::metrics as m;
use crate::room::{
    self, Arrival, Capture, Decision, EndReason, Left, Overrides, RoomState, SessionId, Settings,
};
use crate::store::redis::StoreError;

/// What one snapshot write did.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    pub rooms: usize,
    pub sessions: usize,
    pub bytes: u64,
    /// Longest time any room's lock was held to copy it.
    pub longest_lock_ms: f64,
    /// The whole write, copy to fsync.
    pub total_ms: f64,
    pub path: String,
}

/// Rooms in this process, each under its own lock.
pub struct Memory {
    rooms: Registry,
    /// The state folder: snapshots and overrides.
    dir: PathBuf,
    /// One snapshot write at a time.
    writing: Mutex<()>,
}

impl Memory {
    /// An empty store keeping its files in `dir`.
    pub fn new(dir: &Path) -> Self {
        Memory {
            rooms: Registry::new(),
            dir: dir.to_path_buf(),
            writing: Mutex::new(()),
        }
    }

    /// Brings back every room of the snapshot in the state folder (if there is a usable one).
    /// `settings` gives a room's settings by name (`None`: a room the file no longer names,
    /// kept too, so putting it back restores its line).
    pub fn restore(&self, settings: impl Fn(&str) -> Option<Settings>) {
        let Some(snap) = snapshot::load(&self.dir) else {
            return;
        };
        let now = self.now_ms();
        let mut failed = false;
        let marks: std::collections::HashMap<String, crate::room::EventMarks> =
            snap.events.into_iter().collect();
        for (name, image) in snap.rooms {
            let settings = settings(&name).unwrap_or_default();
            let sessions = image.sessions.len();
            let age_s = now.saturating_sub(image.taken_ms) / 1000;
            match RoomState::restore(image, &settings, now) {
                Ok(mut state) => {
                    state.events = marks.get(&name).copied().unwrap_or_default();
                    tracing::info!(room = %name, sessions, age_s, "room restored from the snapshot");
                    self.rooms.insert(&name, state);
                }
                Err(e) => {
                    failed = true;
                    tracing::error!(room = %name, error = %e, "room in the snapshot is inconsistent; it starts empty");
                }
            }
        }
        if failed {
            snapshot::set_aside(&self.dir, &"a room in it is inconsistent");
        }
    }

    /// Copies every room under its lock, one room at a time.
    fn copy_rooms(&self) -> Copies {
        let rooms = self.rooms();
        let mut longest_lock = 0f64;
        let mut captures = Vec::with_capacity(rooms.len());
        let mut reserves = Vec::with_capacity(rooms.len());
        for (name, room) in rooms {
            // Read the size and let go of the lock before allocating.
            let n = room.state.lock().sessions.len();
            let buf = crate::room::scratch(n);
            let locked = Instant::now();
            let capture = room.state.lock().capture_into(self.now_ms(), buf);
            longest_lock = longest_lock.max(locked.elapsed().as_secs_f64());
            reserves.push((room, capture.reserve()));
            captures.push((name, capture));
        }
        Copies {
            captures,
            reserves,
            longest_lock,
        }
    }

    /// Encodes the copies and writes them: how many rooms and sessions, and the bytes written.
    fn write(&self, captures: Vec<(String, Capture)>) -> std::io::Result<(usize, usize, u64)> {
        let events = captures
            .iter()
            .filter(|(_, c)| c.events() != Default::default())
            .map(|(n, c)| (n.clone(), c.events()))
            .collect();
        let snap = Snapshot {
            written_unix_ms: snapshot::unix_ms(),
            rooms: captures.into_iter().map(|(n, c)| (n, c.image())).collect(),
            events,
        };
        let sessions = snap.rooms.iter().map(|(_, i)| i.sessions.len()).sum();
        snapshot::write(&self.dir, &snap).map(|bytes| (snap.rooms.len(), sessions, bytes))
    }
}

/// The rooms' flat copies for one snapshot.
struct Copies {
    captures: Vec<(String, Capture)>,
    /// Each room's ticket reserve as copied, recorded in the room once the file is written.
    reserves: Vec<(Arc<Room>, (u64, u64))>,
    /// Longest time a room's lock was held for its copy, in seconds.
    longest_lock: f64,
}

pub(super) fn reading_of(settings: &Settings, st: &RoomState, now: u64) -> Reading {
    Reading {
        telemetry: room::telemetry(settings, st, now),
        counters: st.counters.clone(),
        sessions: st.sessions.len(),
        waiting: st.waiting(),
        instances: Vec::new(),
        prequeue_depth: room::holding(settings, st).then(|| st.waiting()),
        dropped_at_end: st.events.dropped,
    }
}

impl Store for Memory {
    fn now_ms(&self) -> u64 {
        self.rooms.now_ms()
    }

    fn room(&self, name: &str, settings: &Settings) -> Arc<Room> {
        self.rooms
            .get_or_make(name, |now| RoomState::fresh(settings, now))
    }

    fn find(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.find(name)
    }

    fn rooms(&self) -> Vec<(String, Arc<Room>)> {
        self.rooms.all()
    }

    async fn arrive(&self, room: &Room, settings: &Settings, a: Arrival) -> Decision {
        let now = self.now_ms();
        let mut st = room.state.lock();
        room::arrive(settings, &mut st, a, now, &mut rand::rng())
    }

    async fn leave(&self, room: &Room, id: &SessionId) -> Option<Left> {
        room::leave(&mut room.state.lock(), id)
    }

    async fn revoke(&self, room: &Room, id: &SessionId) -> Option<EndReason> {
        room::revoke(&mut room.state.lock(), id)
    }

    async fn reset(&self, room: &Room) -> Result<u64, StoreError> {
        Ok(room::reset(&mut room.state.lock()) as u64)
    }

    fn settle(&self, room: &Room, settings: &Settings) {
        let now = self.now_ms();
        room::settle(settings, &mut room.state.lock(), now);
    }

    async fn tick(&self, room: &Room, settings: &Settings) -> Ticked {
        let now = self.now_ms();
        let mut st = room.state.lock();
        let report = room::tick(settings, &mut st, now, &mut rand::rng());
        Ticked {
            report,
            reading: reading_of(settings, &st, now),
            reserve_low: st.reserve_half_spent(),
        }
    }

    fn reading(&self, room: &Room, settings: &Settings) -> Reading {
        let now = self.now_ms();
        reading_of(settings, &room.state.lock(), now)
    }

    fn saved_overrides(&self) -> BTreeMap<String, Overrides> {
        overrides::load(&self.dir)
    }

    fn save_overrides(&self, all: &BTreeMap<String, Overrides>) -> std::io::Result<()> {
        overrides::save(&self.dir, all)
    }

    fn persist(&self) -> std::io::Result<SnapshotReport> {
        let _one = self.writing.lock();
        let started = Instant::now();
        let copies = self.copy_rooms();
        let path = snapshot::path(&self.dir).display().to_string();
        let written = self.write(copies.captures);
        let total = started.elapsed().as_secs_f64();
        let (rooms, sessions, bytes) = written.inspect_err(|e| {
            metrics::counter!(m::SNAPSHOTS, "result" => "error").increment(1);
            tracing::error!(file = %path, error = %e, "snapshot write failed");
        })?;
        for (room, reserve) in copies.reserves {
            room.state.lock().reserve_written(reserve);
        }
        metrics::counter!(m::SNAPSHOTS, "result" => "ok").increment(1);
        metrics::histogram!(m::SNAPSHOT_DURATION).record(total);
        metrics::gauge!(m::SNAPSHOT_BYTES).set(bytes as f64);
        metrics::gauge!(m::SNAPSHOT_LAST_SUCCESS).set(snapshot::unix_ms() as f64 / 1e3);
        Ok(SnapshotReport {
            rooms,
            sessions,
            bytes,
            longest_lock_ms: copies.longest_lock * 1e3,
            total_ms: total * 1e3,
            path,
        })
    }
}
