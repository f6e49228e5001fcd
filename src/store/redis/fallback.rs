//! What an instance does while the shared store does not answer, as `[store] on_error` says:
//! `closed` (no place now; admitted sessions this instance knows keep going), `open` (everyone
//! let through, counted), or `local`: a line of this instance's own, with the room's capacity
//! and rate divided by the instances last seen. The local line takes visitors back at their
//! shared ticket (a token from the shared store recovers its place, as after a restart), new
//! visitors get tickets after the last shared one, and the sessions this instance had admitted
//! hold slots in it. When Redis answers again the local sessions are handed to it (`adopt`) and
//! the local line is dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::config::OnStoreError;
use crate::metrics as m;
use crate::room::{
    self, Arrival, Decision, Recovery, RoomState, SessionId, SessionState, Settings, TickReport,
    View, ViewState, Visitor,
};
use crate::store::Reading;
use crate::store::memory::reading_of;

/// How long a visitor is told to wait before asking again while the store does not answer.
const UNREACHABLE_RETRY_SECONDS: u64 = 5;

/// One session of a local line, as the shared store takes it back: id, ticket and state
/// (`'a'` admitted, `'r'` released, `'q'` in line, `'x'` ended: left or revoked).
pub(super) type Handed = (SessionId, u64, char);

/// What the shared store last said about a room: its last ticket, how many instances were
/// live, and whether it held everyone for an event.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LastSeen {
    pub last_ticket: u64,
    pub instances: usize,
    /// The room held everyone for a scheduled event (its pre-queue, or its start not yet made).
    pub holding: bool,
}

pub(super) struct Fallback {
    on_error: OnStoreError,
    /// `local`: the rooms running on this instance's own line, by name.
    local: Mutex<HashMap<String, RoomState>>,
    /// Whether any room runs locally (read on every request without a lock).
    any_local: AtomicBool,
    last_seen: Mutex<HashMap<String, LastSeen>>,
    /// `local`: sessions that left or were revoked while the store did not answer, by room.
    ended: Mutex<HashMap<String, HashSet<SessionId>>>,
    /// `local`: the admitted sessions this instance let in, by room, with when it last saw each
    /// (kept for `session_ttl`): they hold slots of a local line.
    recent: Mutex<HashMap<String, HashMap<SessionId, u64>>>,
}

impl Fallback {
    pub(super) fn new(on_error: OnStoreError) -> Self {
        Fallback {
            on_error,
            local: Mutex::new(HashMap::new()),
            any_local: AtomicBool::new(false),
            last_seen: Mutex::new(HashMap::new()),
            ended: Mutex::new(HashMap::new()),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Notes admitted sessions of `room` this instance let in at `now_ms`.
    pub(super) fn admitted(&self, room: &str, seen: &[SessionId], now_ms: u64) {
        if self.on_error != OnStoreError::Local || seen.is_empty() {
            return;
        }
        let mut recent = self.recent.lock();
        let r = match recent.get_mut(room) {
            Some(r) => r,
            None => recent.entry(room.to_string()).or_default(),
        };
        for id in seen {
            r.insert(*id, now_ms);
        }
    }

    /// Forgets admitted sessions of `room` the store says are no longer admitted, and those not
    /// seen for `ttl_ms` (called each tick).
    pub(super) fn not_admitted(&self, room: &str, gone: &[SessionId], now_ms: u64, ttl_ms: u64) {
        if self.on_error != OnStoreError::Local {
            return;
        }
        if let Some(r) = self.recent.lock().get_mut(room) {
            for id in gone {
                r.remove(id);
            }
            r.retain(|_, at| now_ms.saturating_sub(*at) < ttl_ms);
        }
    }

    /// Notes what the shared store said about `room` at a tick.
    pub(super) fn note(&self, room: &str, seen: LastSeen) {
        self.last_seen.lock().insert(room.to_string(), seen);
    }

    /// The answer for a visitor the local line of `room` knows (it stays there until the line is
    /// handed back), else `None`.
    /// `now_ms` is asked only then: the steady state pays one atomic load.
    pub(super) fn known(
        &self,
        room: &str,
        settings: &Settings,
        a: Arrival,
        now_ms: impl FnOnce() -> u64,
    ) -> Option<Decision> {
        if !self.any_local.load(Ordering::Relaxed) {
            return None;
        }
        let v = a.visitor?;
        let mut local = self.local.lock();
        let st = local.get_mut(room)?;
        if !st.sessions.contains_key(&v.id) {
            return None;
        }
        let share = self.share(room, settings);
        let d = room::arrive(&share, st, a, now_ms(), &mut rand::rng());
        Some(marked(d, "local"))
    }

    /// The answer while the store does not answer.
    pub(super) fn answer(
        &self,
        room: &str,
        settings: &Settings,
        a: Arrival,
        now_ms: u64,
    ) -> Decision {
        let label = match self.on_error {
            OnStoreError::Closed => "closed",
            OnStoreError::Open => "open",
            OnStoreError::Local => "local",
        };
        metrics::counter!(m::STORE_FALLBACK, "room" => room.to_string(), "on_error" => label)
            .increment(1);
        match self.on_error {
            // The gateway counts it unreachable with the other answers of no place.
            OnStoreError::Closed => return unreachable(),
            OnStoreError::Open => {
                metrics::counter!(m::STORE_UNREACHABLE, "room" => room.to_string()).increment(1);
                return open(a);
            }
            OnStoreError::Local => {
                metrics::counter!(m::STORE_UNREACHABLE, "room" => room.to_string()).increment(1);
            }
        }
        let share = self.share(room, settings);
        let mut local = self.local.lock();
        let st = local.entry(room.to_string()).or_insert_with(|| {
            metrics::gauge!(m::STORE_LOCAL, "room" => room.to_string()).set(1.0);
            self.any_local.store(true, Ordering::Relaxed);
            self.fresh(room, &share, now_ms)
        });
        marked(
            room::arrive(&share, st, a, now_ms, &mut rand::rng()),
            "local",
        )
    }

    /// A tick while the store does not answer: the local line of `room` (if any) releases by
    /// its share of the capacity. What the tick did and the line's reading, if it runs.
    pub(super) fn tick(
        &self,
        room: &str,
        settings: &Settings,
        now_ms: u64,
    ) -> Option<(TickReport, Reading)> {
        if !self.any_local.load(Ordering::Relaxed) {
            return None;
        }
        let share = self.share(room, settings);
        let mut local = self.local.lock();
        let st = local.get_mut(room)?;
        let report = room::tick(&share, st, now_ms, &mut rand::rng());
        Some((report, reading_of(&share, st, now_ms)))
    }

    /// A visitor of `room` leaves or is revoked (`left`: whether the store recorded it): gone
    /// from the local line, and, with `local` and the store away, remembered to be ended there.
    /// Whether the local line held them.
    pub(super) fn end(&self, room: &str, id: &SessionId, recorded: bool) -> Option<room::Left> {
        if self.on_error != OnStoreError::Local {
            return None;
        }
        if let Some(r) = self.recent.lock().get_mut(room) {
            r.remove(id);
        }
        if !recorded {
            self.ended
                .lock()
                .entry(room.to_string())
                .or_default()
                .insert(*id);
            self.any_local.store(true, Ordering::Relaxed);
        }
        let mut local = self.local.lock();
        room::leave(local.get_mut(room)?, id)
    }

    /// The operator emptied the room's line: this instance's own line (`local`) is emptied too.
    /// How many lost their place there.
    pub(super) fn reset(&self, room: &str) -> u64 {
        let mut local = self.local.lock();
        local.get_mut(room).map_or(0, |st| room::reset(st) as u64)
    }

    /// What the shared store must take back of `room`: the sessions the local line holds (but
    /// not those it was seeded with, which the store has as it had them) and those ended while
    /// it was away. The local line keeps answering until [`Fallback::handed`] says the store
    /// took them.
    pub(super) fn to_hand_back(&self, room: &str) -> Option<Vec<Handed>> {
        if !self.any_local.load(Ordering::Relaxed) {
            return None;
        }
        let local = self.local.lock();
        let ended = self.ended.lock();
        let (st, gone) = (local.get(room), ended.get(room));
        if st.is_none() && gone.is_none() {
            return None;
        }
        let kept = st.into_iter().flat_map(|st| {
            st.sessions
                .iter()
                .filter(|(_, s)| s.ticket > 0)
                .map(|(id, s)| {
                    let state = match s.state {
                        SessionState::Active => 'a',
                        SessionState::Released => 'r',
                        SessionState::Queued | SessionState::Missed => 'q',
                    };
                    (*id, s.ticket, state)
                })
        });
        let gone = gone.into_iter().flatten().map(|id| (*id, 0, 'x'));
        Some(kept.chain(gone).collect())
    }

    /// The store took back what [`Fallback::to_hand_back`] gave: the local line of `room` ends.
    pub(super) fn handed(&self, room: &str) {
        let mut local = self.local.lock();
        let mut ended = self.ended.lock();
        local.remove(room);
        ended.remove(room);
        self.any_local
            .store(!local.is_empty() || !ended.is_empty(), Ordering::Relaxed);
        metrics::gauge!(m::STORE_LOCAL, "room" => room.to_string()).set(0.0);
    }

    /// The room's settings with capacity and rate divided by the instances last seen. An event
    /// the shared store had not started when it last answered is not started here either: the
    /// local line holds everyone as in its pre-queue, and the shuffle waits for the shared store
    /// (a local start would let visitors back at their arrival tickets, unshuffled).
    fn share(&self, room: &str, settings: &Settings) -> Settings {
        let (n, holding) = self
            .last_seen
            .lock()
            .get(room)
            .map_or((1, false), |s| (s.instances.max(1), s.holding));
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let mut event = settings.event;
        if let Some(e) = &mut event
            && holding
        {
            e.running = false;
        }
        Settings {
            active_users: settings.active_users.map(|c| c.div_ceil(n)),
            admit_per_minute: settings.admit_per_minute.map(|r| r.div_ceil(n)),
            event,
            ..settings.clone()
        }
    }

    /// A new local line: tickets after the last shared one, every earlier ticket welcome back
    /// at its place, and the admitted sessions this instance saw within `session_ttl` holding
    /// slots, each until it is idle for `session_ttl` from when it was last seen.
    fn fresh(&self, room: &str, share: &Settings, now_ms: u64) -> RoomState {
        let last = self.last_seen.lock().get(room).map_or(0, |s| s.last_ticket);
        tracing::warn!(
            room,
            last_ticket = last,
            "shared store unreachable: a local line takes over"
        );
        let mut st = RoomState::new(now_ms, share.admit_per_minute);
        st.next_ticket = last + 1;
        st.recovery.push(Recovery {
            from: 0,
            to: last + 1,
            until_ms: u64::MAX,
        });
        let ttl = u64::try_from(share.session_ttl.as_millis()).unwrap_or(u64::MAX);
        let recent = self.recent.lock().get(room).cloned().unwrap_or_default();
        for (id, seen_ms) in recent {
            if now_ms.saturating_sub(seen_ms) < ttl {
                room::adopt_active(share, &mut st, id, seen_ms);
            }
        }
        room::settle(share, &mut st, now_ms);
        st
    }
}

/// `on_error = "closed"`: no place now.
pub(super) fn unreachable() -> Decision {
    let mut view = View::without_place(ViewState::Queued, 0, UNREACHABLE_RETRY_SECONDS);
    view.store_fallback = Some("closed");
    Decision::Unreachable { view }
}

/// `on_error = "open"`: let through without a session (no cookie is set); an app joining gets a
/// token the store will take as new once it answers; a waiting page is told to come in.
fn open(a: Arrival) -> Decision {
    let visitor = a.visitor.unwrap_or(Visitor {
        id: SessionId::random(&mut rand::rng()),
        ticket: 0,
    });
    let mut view = View::without_place(ViewState::Admitted, 0, UNREACHABLE_RETRY_SECONDS);
    view.store_fallback = Some("open");
    match a.via {
        room::Via::Status | room::Via::Stream => Decision::Standing { view: Some(view) },
        room::Via::Join => Decision::Admit {
            visitor,
            joined: a.visitor.is_none(),
            how: None,
            view: Some(view),
        },
        room::Via::Page | room::Via::Fetch => Decision::Admit {
            visitor,
            joined: false,
            how: None,
            view: None,
        },
    }
}

/// Marks every view of `d` as answered by `label`.
fn marked(mut d: Decision, label: &'static str) -> Decision {
    match &mut d {
        Decision::Admit {
            view: Some(view), ..
        }
        | Decision::Standing { view: Some(view) }
        | Decision::Wait { view, .. }
        | Decision::Expired { view }
        | Decision::OverBudget { view }
        | Decision::Unreachable { view } => view.store_fallback = Some(label),
        _ => {}
    }
    d
}
