//! What a visitor is shown: their state, place, estimate and deadlines, computed under the room
//! lock and rendered after it is released.

use super::super::Settings;
use super::super::estimate::{
    chance_next_minute, line_rate, lottery_wait_seconds, poll_after, release_rate, wait_seconds,
};
use super::super::line::Line;
use super::super::state::{RoomState, Session, SessionId, SessionState};
use super::ms;

/// What the status JSON and the waiting page show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewState {
    Queued,
    Released,
    Admitted,
    Paused,
    /// In a scheduled event's pre-queue: no place until the event starts.
    Prequeue,
    Closed,
    /// The place is really gone (away past `abandon_after`, or the room forgot it): the visitor
    /// is told so and may join again, never silently sent to the back.
    Expired,
}

impl ViewState {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewState::Queued => "queued",
            ViewState::Released => "released",
            ViewState::Admitted => "admitted",
            ViewState::Paused => "paused",
            ViewState::Prequeue => "prequeue",
            ViewState::Closed => "closed",
            ViewState::Expired => "expired",
        }
    }
}

/// A visitor's standing, computed under the room lock and rendered after it is released.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub state: ViewState,
    pub position: Option<u64>,
    pub queue_depth: u64,
    pub estimated_wait_seconds: Option<u64>,
    pub release_rate_per_minute: f64,
    pub poll_after_seconds: u64,
    pub progress_percent: u8,
    /// Random queues: the chance of being released within the next minute (0..=1).
    pub chance_next_minute: Option<f64>,
    /// Lottery queues, before the visitor's draw: milliseconds until the next draw.
    pub next_draw_in_ms: Option<u64>,
    pub deadlines: Deadlines,
    /// Queued: how long ago the operator lowered capacity or rate, if that happened after this
    /// visitor joined (the wait may have grown; the page says why).
    pub slowed_ms_ago: Option<u64>,
    /// A scheduled event's start (unix ms), in its pre-queue.
    pub event_starts_at_ms: Option<u64>,
    /// A shared store's room whose store did not answer: what answered instead (`"closed"`,
    /// `"open"`, `"local"`, as `[store] on_error` says).
    pub store_fallback: Option<&'static str>,
}

/// The deadlines a released or admitted visitor lives by, in milliseconds from now.
impl View {
    /// The view of a visitor with no place: no position, no estimate, ask again after
    /// `poll_after_seconds` (a closed room, a join over budget, an unknown session).
    pub fn without_place(state: ViewState, queue_depth: u64, poll_after_seconds: u64) -> Self {
        View {
            state,
            position: None,
            queue_depth,
            estimated_wait_seconds: None,
            release_rate_per_minute: 0.0,
            poll_after_seconds,
            progress_percent: 0,
            chance_next_minute: None,
            next_draw_in_ms: None,
            deadlines: Deadlines::default(),
            slowed_ms_ago: None,
            event_starts_at_ms: None,
            store_fallback: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Deadlines {
    /// Released: come in before this, or the slot goes to the next in line.
    pub release_expires_in_ms: Option<u64>,
    /// Admitted: idle longer than this (`session_ttl` from the last request) ends the session.
    pub session_expires_in_ms: Option<u64>,
    /// Admitted with `max_session`: the session ends then, whatever happens.
    pub session_ends_in_ms: Option<u64>,
}

impl Deadlines {
    fn of(settings: &Settings, s: &Session, now_ms: u64) -> Self {
        let left = |at: u64| Some(at.saturating_sub(now_ms));
        match s.state {
            SessionState::Queued | SessionState::Missed => Deadlines::default(),
            SessionState::Released => Deadlines {
                release_expires_in_ms: left(s.since_ms + ms(settings.release_window)),
                ..Deadlines::default()
            },
            SessionState::Active => Deadlines {
                session_expires_in_ms: left(s.seen_ms + ms(settings.session_ttl)),
                session_ends_in_ms: settings.max_session.and_then(|m| left(s.since_ms + ms(m))),
                ..Deadlines::default()
            },
        }
    }
}

/// Where a session stands: in line (queued, or missed until it is back) and at which place.
#[derive(Debug, Clone, Copy)]
struct Standing {
    queued: bool,
    position: Option<u64>,
}

/// What session `id` is shown at `now_ms` (a closed room's view when it is unknown).
pub(super) fn view_of(
    settings: &Settings,
    state: &RoomState,
    id: &SessionId,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> View {
    let queue_depth = state.waiting();
    let release_rate_per_minute =
        (release_rate(settings, state, now_ms) * 60.0 * 100.0).round() / 100.0;
    let rate = line_rate(settings, state, now_ms);
    let Some(s) = state.sessions.get(id) else {
        return View {
            release_rate_per_minute,
            ..View::without_place(ViewState::Closed, queue_depth, poll_after(None, rng))
        };
    };
    let prequeue = super::super::events::holding(settings, state);
    let (view_state, position) = match s.state {
        SessionState::Queued if prequeue => (ViewState::Prequeue, None),
        SessionState::Queued if settings.paused => (ViewState::Paused, state.position(s.ticket)),
        SessionState::Queued => (ViewState::Queued, state.position(s.ticket)),
        // Only between a tick and the visitor's return, which makes it queued: no place yet.
        SessionState::Missed => (ViewState::Queued, None),
        SessionState::Released => (ViewState::Released, None),
        SessionState::Active => (ViewState::Admitted, None),
    };
    let at = Standing {
        queued: matches!(s.state, SessionState::Queued | SessionState::Missed),
        position,
    };
    let next_draw_in_ms = next_draw_in(state, at, now_ms);
    let estimated_wait_seconds = estimated_wait(settings, state, at, next_draw_in_ms, rate);
    View {
        state: view_state,
        position,
        queue_depth,
        estimated_wait_seconds,
        release_rate_per_minute,
        // Never slower than a third of the release window: a visitor learns of their release
        // in time to come in.
        poll_after_seconds: poll_after(estimated_wait_seconds, rng)
            .min((ms(settings.release_window) / 3_000).max(2)),
        progress_percent: progress_percent(state, s, at),
        chance_next_minute: chance(state, at, rate),
        next_draw_in_ms,
        deadlines: Deadlines::of(settings, s, now_ms),
        slowed_ms_ago: state
            .slowed_at_ms
            .filter(|t| at.queued && *t >= s.since_ms)
            .map(|t| now_ms.saturating_sub(t)),
        event_starts_at_ms: settings
            .event
            .filter(|_| prequeue && at.queued)
            .map(|e| e.starts_at_ms),
        store_fallback: None,
    }
}

/// Lottery queues, for a visitor in line before their draw: milliseconds until the next draw.
fn next_draw_in(state: &RoomState, at: Standing, now_ms: u64) -> Option<u64> {
    match &state.queue {
        Line::Lottery(q) if at.queued && at.position.is_none() => {
            q.next_draw_ms().map(|t| t.saturating_sub(now_ms))
        }
        _ => None,
    }
}

/// The wait (s) to promise a visitor standing `at`, with the line moving at `rate` a second.
fn estimated_wait(
    settings: &Settings,
    state: &RoomState,
    at: Standing,
    next_draw_in_ms: Option<u64>,
    rate: f64,
) -> Option<u64> {
    match (at.queued, at.position, &state.queue) {
        // Paused or closed: nobody is released, so no time is promised (the state says why).
        (true, _, _) if super::super::estimate::no_releases(settings) => None,
        (true, Some(p), _) => wait_seconds(p, rate),
        (true, None, Line::Lottery(q)) => {
            let (drawn, pool) = (q.drawn_len() as u64, q.pool_len() as u64);
            lottery_wait_seconds(drawn, pool, next_draw_in_ms.unwrap_or(0), rate)
        }
        // Without a stable place, the wait shown is the time to release everyone now in line.
        (true, None, _) => wait_seconds(state.waiting(), rate),
        (false, _, _) => Some(0),
    }
}

/// Random queues: the chance of a visitor in line being released within the next minute.
fn chance(state: &RoomState, at: Standing, rate: f64) -> Option<f64> {
    (at.queued && matches!(state.queue, Line::Random(_)))
        .then(|| chance_next_minute(state.waiting(), rate))
}

/// How far along the line a visitor standing `at` has come: releases since they joined against
/// the places still ahead; 100 once out of line.
fn progress_percent(state: &RoomState, s: &Session, at: Standing) -> u8 {
    match (at.queued, at.position) {
        (true, Some(p)) => {
            let moved = u64::from((state.counters.released as u32).wrapping_sub(s.released_before));
            ((moved * 100) / (moved + p).max(1)).min(99) as u8
        }
        (true, None) => 0,
        (false, _) => 100,
    }
}
