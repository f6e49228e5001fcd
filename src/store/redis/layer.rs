//! A room's settings from the configuration file, shared through Redis: every instance that
//! loads its file (at start or a reload) offers the room's settings with the file's modification
//! time, Redis keeps the newest, and each instance puts it in force at its next tick. Hosts,
//! pages and upstreams stay each instance's own; what a room admits is the same everywhere.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use serde::{Deserialize, Serialize};

use crate::config::RoomConfig;
use crate::room::{Mode, Policy, Settings};
use crate::store::{Room, SharedFile};

/// The shared form: durations in milliseconds, names as the file spells them.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    enabled: bool,
    message: Option<String>,
    active_users: Option<u32>,
    admit_per_minute: Option<u32>,
    session_ttl_ms: u64,
    abandon_after_ms: u64,
    release_window_ms: u64,
    max_session_ms: Option<u64>,
    queue: String,
    draw_every_ms: u64,
    paused: bool,
    reject: bool,
    max_joins_per_prefix_per_minute: Option<u32>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The room's settings from this instance's file, as JSON.
pub(super) fn encode(rc: &RoomConfig) -> String {
    let s = &rc.settings;
    let wire = Wire {
        enabled: rc.enabled,
        message: rc.message.clone(),
        active_users: s.active_users,
        admit_per_minute: s.admit_per_minute,
        session_ttl_ms: ms(s.session_ttl),
        abandon_after_ms: ms(s.abandon_after),
        release_window_ms: ms(s.release_window),
        max_session_ms: s.max_session.map(ms),
        queue: s.policy.as_str().to_string(),
        draw_every_ms: ms(s.draw_every),
        paused: s.paused,
        reject: s.mode == Mode::Reject,
        max_joins_per_prefix_per_minute: s.max_joins_per_prefix_per_minute,
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

/// Settings another instance shared; `None` for anything unreadable (a newer anteroom's form,
/// a damaged key): the room then keeps its own file's.
pub(super) fn decode(json: &str, from: &str, version_ms: u64) -> Option<SharedFile> {
    let w: Wire = serde_json::from_str(json).ok()?;
    let settings = Settings {
        active_users: w.active_users,
        admit_per_minute: w.admit_per_minute,
        session_ttl: Duration::from_millis(w.session_ttl_ms),
        abandon_after: Duration::from_millis(w.abandon_after_ms),
        release_window: Duration::from_millis(w.release_window_ms),
        max_session: w.max_session_ms.map(Duration::from_millis),
        policy: Policy::parse(&w.queue)?,
        draw_every: Duration::from_millis(w.draw_every_ms),
        paused: w.paused,
        mode: if w.reject { Mode::Reject } else { Mode::Queue },
        max_joins_per_prefix_per_minute: w.max_joins_per_prefix_per_minute,
        event: None,
        drop_at_end: false,
    };
    Some(SharedFile {
        settings,
        enabled: w.enabled,
        message: w.message,
        from: from.to_string(),
        version_ms,
    })
}

/// The version a file offers: its modification time in unix milliseconds (the time of the load
/// when it has none, so a file without one still takes part).
pub fn version_of(file: &std::path::Path) -> u64 {
    let at = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    at.duration_since(UNIX_EPOCH).map(ms).unwrap_or_default()
}

/// The newest file's settings as Redis keeps them (JSON, the instance that offered them, their
/// version).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offered {
    pub json: String,
    pub from: String,
    pub version_ms: u64,
}

/// Each room's settings from this instance's file, offered to the others at the room's next
/// tick after every load.
#[derive(Debug, Default)]
pub(super) struct OwnFiles(Mutex<HashMap<String, OwnFile>>);

#[derive(Debug, Clone)]
struct OwnFile {
    json: String,
    version_ms: u64,
    /// Whether Redis has seen them since the last load.
    offered: bool,
}

impl OwnFiles {
    /// This instance loaded its file: `rc`'s settings are to be offered.
    pub(super) fn loaded(&self, room: &str, rc: &RoomConfig, version_ms: u64) {
        let own = OwnFile {
            json: encode(rc),
            version_ms,
            offered: false,
        };
        self.0.lock().insert(room.to_string(), own);
    }

    /// The offer to send for `room` (from instance `me`), if one is waiting.
    pub(super) fn to_offer(&self, room: &str, me: &str) -> Option<Offered> {
        let files = self.0.lock();
        let f = files.get(room).filter(|f| !f.offered)?;
        Some(Offered {
            json: f.json.clone(),
            from: me.to_string(),
            version_ms: f.version_ms,
        })
    }

    /// `offer` reached Redis; a newer load since then is offered at the next tick.
    pub(super) fn offered(&self, room: &str, offer: &Offered) {
        if let Some(f) = self.0.lock().get_mut(room)
            && f.json == offer.json
            && f.version_ms == offer.version_ms
        {
            f.offered = true;
        }
    }

    /// The room's own settings as offered, once Redis has seen them.
    pub(super) fn offered_json(&self, room: &str) -> Option<String> {
        let files = self.0.lock();
        files
            .get(room)
            .filter(|f| f.offered)
            .map(|f| f.json.clone())
    }
}

/// Puts the newest file's settings in force on `room`: none when they are the same as this
/// instance's file (`own`, in force already), else the other file's.
pub(super) fn adopt(room: &Room, offered: &Offered, own: &str) {
    if offered.json.is_empty() {
        return;
    }
    let next = if offered.json == own {
        None
    } else {
        decode(&offered.json, &offered.from, offered.version_ms)
    };
    if next.as_ref() != room.shared_file().as_deref() {
        match &next {
            Some(f) => tracing::info!(
                room = %room.name,
                from = %f.from,
                version_ms = f.version_ms,
                "settings from a newer configuration file of another instance"
            ),
            None => tracing::info!(room = %room.name, "settings from this instance's file"),
        }
        room.set_shared_file(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_shared_form() {
        let text = "[[room]]\nname = \"shop\"\nhosts = [\"shop.example\"]\norigin = \"http://127.0.0.1:9\"\nactive_users = 2\n";
        let config =
            crate::config::parse(std::path::Path::new("gateway.toml"), text).expect("parses");
        let mut rc = (*config.rooms[0]).clone();
        rc.enabled = false;
        rc.message = Some("Doors at nine".into());
        rc.settings.active_users = Some(7);
        rc.settings.admit_per_minute = None;
        rc.settings.max_session = Some(Duration::from_millis(1500));
        rc.settings.policy = Policy::Lottery;
        rc.settings.mode = Mode::Reject;
        rc.settings.paused = true;
        let back = decode(&encode(&rc), "a1", 42).expect("decodes");
        assert_eq!(back.settings, rc.settings);
        assert!(!back.enabled);
        assert_eq!(back.message.as_deref(), Some("Doors at nine"));
        assert_eq!((back.from.as_str(), back.version_ms), ("a1", 42));
        assert!(decode("{\"enabled\":true}", "a1", 1).is_none());
        assert!(decode("not json", "a1", 1).is_none());
    }
}
