//! One room's live handle beside its configuration: the engine state (in this process), the
//! operator's overrides and the request figures the admin API shows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

use crate::config::RoomConfig;
use crate::config::schedule::InForce;
use crate::metrics as m;
use crate::room::{Overrides, RoomState, Settings};

/// Request decisions, the bounded values of `anteroom_requests_total{decision}`.
pub const DECISIONS: [&str; 6] = ["admit", "queue", "bypass", "endpoint", "disabled", "closed"];
/// Upstream error kinds, the bounded values of `anteroom_upstream_errors_total{kind}`.
/// `invalid_response`: framing or a head that cannot be relayed safely; `body`: the origin's
/// response body failed after its head was sent on.
pub const UPSTREAM_ERROR_KINDS: [&str; 4] = ["connect", "timeout", "invalid_response", "body"];

/// Lifetime request figures of a room, for the admin API, and the room's metric handles: each
/// series resolved once (at the room's first request), so a request counts itself with atomic
/// adds, never a label string or a registry lookup.
#[derive(Debug)]
pub struct Figures {
    room: String,
    requests: [AtomicU64; DECISIONS.len()],
    upstream_errors: [AtomicU64; UPSTREAM_ERROR_KINDS.len()],
    metrics: OnceLock<Handles>,
}

/// The room's series of the metrics a request touches.
#[derive(Debug)]
struct Handles {
    requests: [metrics::Counter; DECISIONS.len()],
    upstream_errors: [metrics::Counter; UPSTREAM_ERROR_KINDS.len()],
    upstream_duration: metrics::Histogram,
    pow_issued: metrics::Counter,
    pow_failed: [metrics::Counter; crate::pow::Refusal::ALL.len()],
}

impl Figures {
    fn new(room: &str) -> Self {
        Figures {
            room: room.to_string(),
            requests: Default::default(),
            upstream_errors: Default::default(),
            metrics: OnceLock::new(),
        }
    }

    fn handles(&self) -> &Handles {
        self.metrics.get_or_init(|| {
            let room = self.room.clone();
            Handles {
                requests: DECISIONS.map(
                    |d| metrics::counter!(m::REQUESTS, "room" => room.clone(), "decision" => d),
                ),
                upstream_errors: UPSTREAM_ERROR_KINDS.map(
                    |k| metrics::counter!(m::UPSTREAM_ERRORS, "room" => room.clone(), "kind" => k),
                ),
                upstream_duration: metrics::histogram!(m::UPSTREAM_DURATION, "room" => room.clone()),
                pow_issued: metrics::counter!(m::POW_CHALLENGES_ISSUED, "room" => room.clone()),
                pow_failed: crate::pow::Refusal::ALL.map(|r| {
                    metrics::counter!(m::POW_FAILED, "room" => room.clone(), "reason" => r.reason())
                }),
            }
        })
    }

    /// One request, by the decision it got (`anteroom_requests_total{room,decision}` too).
    pub fn count_request(&self, decision: &str) {
        if let Some(i) = DECISIONS.iter().position(|d| *d == decision) {
            self.requests[i].fetch_add(1, Ordering::Relaxed);
            self.handles().requests[i].increment(1);
        }
    }

    /// One failure of the origin (`anteroom_upstream_errors_total{room,kind}` too).
    pub fn count_upstream_error(&self, kind: &str) {
        if let Some(i) = UPSTREAM_ERROR_KINDS.iter().position(|k| *k == kind) {
            self.upstream_errors[i].fetch_add(1, Ordering::Relaxed);
            self.handles().upstream_errors[i].increment(1);
        }
    }

    /// A join challenge issued (`anteroom_pow_challenges_issued_total{room}`).
    pub fn count_challenge(&self) {
        self.handles().pow_issued.increment(1);
    }

    /// A join challenge's answer refused (`anteroom_pow_failed_total{room,reason}`).
    pub fn count_refusal(&self, refusal: crate::pow::Refusal) {
        if let Some(i) = crate::pow::Refusal::ALL.iter().position(|r| *r == refusal) {
            self.handles().pow_failed[i].increment(1);
        }
    }

    /// How long the origin took to answer (`anteroom_upstream_duration_seconds{room}`).
    pub fn record_upstream(&self, seconds: f64) {
        self.handles().upstream_duration.record(seconds);
    }

    pub fn requests(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DECISIONS
            .iter()
            .zip(&self.requests)
            .map(|(d, n)| (*d, n.load(Ordering::Relaxed)))
    }

    pub fn upstream_errors(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        UPSTREAM_ERROR_KINDS
            .iter()
            .zip(&self.upstream_errors)
            .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
    }
}

/// A room's settings from the newest configuration file among the instances sharing a store:
/// they stand in for this instance's file until it loads a newer one.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedFile {
    pub settings: Settings,
    pub enabled: bool,
    pub message: Option<String>,
    /// The instance that loaded the file.
    pub from: String,
    /// The file's modification time (unix ms): the newest file wins.
    pub version_ms: u64,
}

/// The room's configuration with the overrides applied, and what it was computed from.
struct Effective {
    base: Arc<RoomConfig>,
    shared: Option<Arc<SharedFile>>,
    overrides: Arc<Overrides>,
    /// The scheduled event in force when it was computed.
    event: InForce,
    room: Arc<RoomConfig>,
}

/// A room's live handle. The mutex guards the line, the sessions, the counters and the join
/// budget; it is held for one decision or one tick, never across I/O or an `.await` (the store
/// takes it). Overrides are swapped whole.
pub struct Room {
    /// The room's name: its key in the store.
    pub name: String,
    pub(super) state: Mutex<RoomState>,
    overrides: ArcSwap<Overrides>,
    shared: ArcSwapOption<SharedFile>,
    effective: ArcSwapOption<Effective>,
    pub figures: Figures,
    /// Bumped by the tick when the room's figures changed: wakes the room's event streams (an
    /// idle stream waits on it and costs nothing).
    pulse: tokio::sync::watch::Sender<u64>,
    /// The figures the last pulse was for (a hash; see [`Room::publish`]).
    published: AtomicU64,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("overrides", &self.overrides.load())
            .field("shared", &self.shared.load())
            .finish_non_exhaustive()
    }
}

impl Room {
    pub fn new(name: &str, state: RoomState) -> Self {
        Room {
            name: name.to_string(),
            state: Mutex::new(state),
            overrides: ArcSwap::from_pointee(Overrides::default()),
            shared: ArcSwapOption::empty(),
            effective: ArcSwapOption::empty(),
            figures: Figures::new(name),
            pulse: tokio::sync::watch::Sender::new(0),
            published: AtomicU64::new(0),
        }
    }

    /// Wakes the room's event streams if `figures` (a hash of what a visitor's standing depends
    /// on) differ from the last published.
    pub fn publish(&self, figures: u64) {
        if self.published.swap(figures, Ordering::Relaxed) != figures {
            self.pulse.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// Wakes the room's event streams now (a graceful stop).
    pub fn wake_streams(&self) {
        self.pulse.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// What an event stream waits on: changes with every publish that changed the figures.
    pub fn pulse(&self) -> tokio::sync::watch::Receiver<u64> {
        self.pulse.subscribe()
    }

    pub fn overrides(&self) -> Arc<Overrides> {
        self.overrides.load_full()
    }

    /// Replaces the overrides; the next request and the next tick use them.
    pub fn set_overrides(&self, overrides: Overrides) {
        self.overrides.store(Arc::new(overrides));
    }

    /// The settings another instance's newer file gives this room (a shared store), if any.
    pub fn shared_file(&self) -> Option<Arc<SharedFile>> {
        self.shared.load_full()
    }

    /// Puts another instance's file in force here (`None`: this instance's own file).
    pub fn set_shared_file(&self, shared: Option<SharedFile>) {
        self.shared.store(shared.map(Arc::new));
    }

    /// The configuration in force for this room: `base` (from the file, or the newer file of
    /// another instance) with the overrides.
    pub fn effective(&self, base: &Arc<RoomConfig>) -> Arc<RoomConfig> {
        let overrides = self.overrides.load_full();
        let shared = self.shared.load_full();
        if overrides.is_empty() && shared.is_none() && base.events.is_empty() {
            return base.clone();
        }
        let event = if base.events.is_empty() {
            None
        } else {
            base.event_in_force(&overrides.events, crate::store::snapshot::unix_ms())
        };
        if let Some(e) = self.effective.load().as_ref()
            && Arc::ptr_eq(&e.base, base)
            && Arc::ptr_eq(&e.overrides, &overrides)
            && same(&e.shared, &shared)
            && e.event == event
        {
            return e.room.clone();
        }
        let room = Arc::new(apply(base, shared.as_deref(), &overrides, event));
        self.effective.store(Some(Arc::new(Effective {
            base: base.clone(),
            shared,
            overrides,
            event,
            room: room.clone(),
        })));
        room
    }
}

fn same(a: &Option<Arc<SharedFile>>, b: &Option<Arc<SharedFile>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn apply(
    base: &RoomConfig,
    shared: Option<&SharedFile>,
    o: &Overrides,
    event: InForce,
) -> RoomConfig {
    let mut r = base.clone();
    if let Some(f) = shared {
        r.settings = f.settings.clone();
        r.enabled = f.enabled;
        r.message = f.message.clone();
    }
    // The event's settings (or outside_events') under the operator's overrides.
    r.at_event(event, &o.events);
    r.settings = o.apply(&r.settings);
    if let Some(e) = o.enabled {
        r.enabled = e;
    }
    if let Some(m) = &o.message {
        // An empty message override hides the file's message.
        r.message = (!m.is_empty()).then(|| m.clone());
    }
    r
}
