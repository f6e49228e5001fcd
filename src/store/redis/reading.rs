//! A room's figures from the shared store as this instance reads them: the admin API's and the
//! metrics' reading, and the operator's overrides set through any instance.

use super::Figures;
use crate::room::{Counters, Mode, Overrides, Settings, Telemetry, rate_of, wait_seconds};
use crate::store::{Instance, Reading, Room};

/// An operator's change made through any instance applies here at this tick.
pub(super) fn adopt_overrides(room: &Room, f: &Figures) {
    if let Some(o) = f
        .overrides
        .as_deref()
        .and_then(|j| serde_json::from_str::<Overrides>(j).ok())
        && o != *room.overrides()
    {
        tracing::info!(room = %room.name, overrides = ?o, "overrides from the shared store");
        room.set_overrides(o);
    }
}

/// A room's figures as the admin API and metrics read them.
pub(super) fn of(settings: &Settings, f: &Figures) -> Reading {
    let rate = rate_of(settings, f.recent_releases, f.first_release_ms, f.now_ms);
    let paused = settings.paused || settings.mode == Mode::Reject || f.holding;
    Reading {
        telemetry: Telemetry {
            queue_depth: f.waiting,
            active: u32::try_from(f.active).unwrap_or(u32::MAX),
            released: u32::try_from(f.released).unwrap_or(u32::MAX),
            release_rate_per_sec: rate,
            wait_at_back_seconds: if paused {
                None
            } else {
                wait_seconds(f.waiting + 1, rate)
            },
        },
        counters: Counters {
            joined: f.joined,
            admitted_immediate: f.admitted_immediate,
            admitted_released: f.admitted_released,
            released: f.released_total,
            abandoned: f.abandoned,
            left_queue: f.left_queue,
            duplicates: f.duplicates,
            recovered: 0,
        },
        sessions: usize::try_from(f.active + f.released + f.waiting).unwrap_or(usize::MAX),
        waiting: f.waiting,
        instances: f
            .instances
            .iter()
            .map(|(id, seen)| Instance {
                id: id.clone(),
                last_seen_ms_ago: f.now_ms.saturating_sub(*seen),
                lease_holder: f.lease_holder.as_deref() == Some(id.as_str()),
            })
            .collect(),
        prequeue_depth: f.holding.then_some(f.waiting),
        dropped_at_end: f.dropped_at_end,
    }
}

/// The reading of a room before this instance's first tick of it.
pub(super) fn empty(settings: &Settings) -> Reading {
    Reading {
        telemetry: Telemetry {
            queue_depth: 0,
            active: 0,
            released: 0,
            release_rate_per_sec: rate_of(settings, 0, None, 0),
            wait_at_back_seconds: None,
        },
        counters: Counters::default(),
        sessions: 0,
        waiting: 0,
        instances: Vec::new(),
        prequeue_depth: None,
        dropped_at_end: 0,
    }
}
