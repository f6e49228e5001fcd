//! Which scheduled event is in force at a moment, and the room as it runs then: the event's
//! settings over the room's during the event, `outside_events` between events.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::{Event, OutsideEvents, RoomConfig};
use crate::room::{EventMove, EventNow};

/// Where an event stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before its pre-queue opens.
    Upcoming,
    Prequeue,
    Running,
    Ended,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Upcoming => "upcoming",
            Phase::Prequeue => "prequeue",
            Phase::Running => "running",
            Phase::Ended => "ended",
        }
    }
}

/// An event's times with the operator's moves (`start` and `end` from the admin API) applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub prequeue_from_ms: u64,
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
}

impl Event {
    /// The event's identity in the engine: its name (a moved event keeps its pre-queue).
    pub fn id(&self) -> u64 {
        let d = Sha256::digest(self.name.as_bytes());
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    pub fn times(&self, moved: Option<&EventMove>) -> Times {
        let starts_at_ms = moved
            .and_then(|m| m.starts_at_ms)
            .unwrap_or(self.starts_at_ms);
        let ends_at_ms = moved.and_then(|m| m.ends_at_ms).unwrap_or(self.ends_at_ms);
        Times {
            prequeue_from_ms: self.prequeue_from_ms.min(starts_at_ms),
            starts_at_ms,
            ends_at_ms,
        }
    }

    pub fn phase(&self, moved: Option<&EventMove>, now_ms: u64) -> Phase {
        let t = self.times(moved);
        if now_ms >= t.ends_at_ms {
            Phase::Ended
        } else if now_ms >= t.starts_at_ms {
            Phase::Running
        } else if now_ms >= t.prequeue_from_ms {
            Phase::Prequeue
        } else {
            Phase::Upcoming
        }
    }
}

/// The event in force (its pre-queue or running) and whether it runs, by index in `events`.
pub type InForce = Option<(usize, bool)>;

impl RoomConfig {
    /// The event in force at `now_ms`, with the operator's moves.
    pub fn event_in_force(&self, moved: &BTreeMap<String, EventMove>, now_ms: u64) -> InForce {
        self.events.iter().enumerate().find_map(|(i, e)| {
            match e.phase(moved.get(&e.name), now_ms) {
                Phase::Prequeue => Some((i, false)),
                Phase::Running => Some((i, true)),
                Phase::Upcoming | Phase::Ended => None,
            }
        })
    }

    /// This room as it runs with `in_force`: the event's settings, page and message over the
    /// room's, or what `outside_events` says between events. A room without events is as it is.
    pub fn at_event(&mut self, in_force: InForce, moved: &BTreeMap<String, EventMove>) {
        if self.events.is_empty() {
            return;
        }
        let s = &mut self.settings;
        s.drop_at_end = self.outside_events == OutsideEvents::Closed;
        let Some((i, running)) = in_force else {
            s.event = None;
            match self.outside_events {
                OutsideEvents::Queue => {}
                OutsideEvents::Open => {
                    s.active_users = None;
                    s.admit_per_minute = None;
                }
                OutsideEvents::Closed => s.mode = crate::room::Mode::Reject,
            }
            return;
        };
        let Some(e) = self.events.get(i) else {
            return;
        };
        s.event = Some(EventNow {
            id: e.id(),
            starts_at_ms: e.times(moved.get(&e.name)).starts_at_ms,
            running,
            shuffle: e.shuffle,
        });
        if running {
            s.active_users = e.active_users.or(s.active_users);
            s.admit_per_minute = e.admit_per_minute.or(s.admit_per_minute);
            s.policy = e.policy.unwrap_or(s.policy);
        }
        if let Some(page) = &e.page {
            self.page = page.clone();
        }
        if let Some(m) = &e.message {
            self.message = Some(m.clone());
        }
    }
}
