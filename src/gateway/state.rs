//! The gateway's side of snapshots: restoring rooms at start, and writing every room off the
//! request path (each room's lock is held only for a flat copy; the encoding and the disk work
//! run on a blocking thread).

use std::path::PathBuf;
use std::sync::Arc;
use tokio::time::Instant;

use serde::Serialize;

use super::{Gateway, Room};
use crate::config::Config;
use crate::metrics as m;
use crate::room::{Capture, RoomState, Settings};
use crate::snapshot::{self, Snapshot};

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

impl Gateway {
    /// Brings back every room of the snapshot in the state folder (if there is a usable one).
    /// Rooms the file no longer names are kept too, so putting them back restores their line.
    pub(super) fn restore(&self, config: &Config) {
        let dir = &config.state.dir;
        let Some(snap) = snapshot::load(dir) else {
            return;
        };
        let now = self.now_ms();
        let mut rooms = self.rooms.write();
        let mut failed = false;
        for (name, image) in snap.rooms {
            let settings = config
                .rooms
                .iter()
                .find(|r| r.name == name)
                .map_or_else(Settings::default, |r| r.settings.clone());
            let sessions = image.sessions.len();
            let age_s = now.saturating_sub(image.taken_ms) / 1000;
            match RoomState::restore(image, &settings, now) {
                Ok(state) => {
                    tracing::info!(room = %name, sessions, age_s, "room restored from the snapshot");
                    rooms.insert(name, Arc::new(Room::new(state, Default::default())));
                }
                Err(e) => {
                    failed = true;
                    tracing::error!(room = %name, error = %e, "room in the snapshot is inconsistent; it starts empty");
                }
            }
        }
        drop(rooms);
        if failed {
            snapshot::set_aside(dir, &"a room in it is inconsistent");
        }
    }

    /// Writes every room to the state folder now. One write at a time; the request path only
    /// waits for a room's flat copy.
    pub async fn write_snapshot(&self) -> std::io::Result<SnapshotReport> {
        let _one = self.snapshot_write.lock().await;
        let started = Instant::now();
        let copies = self.copy_rooms();
        let dir = self.boot.state.dir.clone();
        let path = snapshot::path(&dir).display().to_string();
        let written = encode_and_write(dir, copies.captures).await;
        let total = started.elapsed().as_secs_f64();
        match written {
            Ok((rooms, sessions, bytes)) => {
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
            Err(e) => {
                metrics::counter!(m::SNAPSHOTS, "result" => "error").increment(1);
                tracing::error!(file = %path, error = %e, "snapshot write failed");
                Err(e)
            }
        }
    }

    /// Copies every room under its lock, one room at a time.
    fn copy_rooms(&self) -> Copies {
        let rooms: Vec<(String, Arc<Room>)> = self
            .rooms
            .read()
            .iter()
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
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
}

/// The rooms' flat copies for one snapshot.
struct Copies {
    captures: Vec<(String, Capture)>,
    /// Each room's ticket reserve as copied, recorded in the room once the file is written.
    reserves: Vec<(Arc<Room>, (u64, u64))>,
    /// Longest time a room's lock was held for its copy, in seconds.
    longest_lock: f64,
}

/// Encodes the copies and writes them to `dir` on a blocking thread: how many rooms and
/// sessions, and the bytes written.
async fn encode_and_write(
    dir: PathBuf,
    captures: Vec<(String, Capture)>,
) -> std::io::Result<(usize, usize, u64)> {
    tokio::task::spawn_blocking(move || {
        let snap = Snapshot {
            written_unix_ms: snapshot::unix_ms(),
            rooms: captures.into_iter().map(|(n, c)| (n, c.image())).collect(),
        };
        let sessions = snap.rooms.iter().map(|(_, i)| i.sessions.len()).sum();
        snapshot::write(&dir, &snap).map(|bytes| (snap.rooms.len(), sessions, bytes))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
}

impl Gateway {
    /// Asks for a snapshot before the next interval.
    pub fn snapshot_soon(&self) {
        self.snapshot_soon.notify_one();
    }
}

/// Writes a snapshot every `snapshot_every` until `shutdown` turns (the final one is written by
/// the shutdown itself, after the requests in flight have finished).
pub async fn run(gw: Arc<Gateway>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
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
