//! What a visitor is shown, from a shared store's answer: the same words as the engine's view
//! (`room::decide::view`), computed from the figures the script returns instead of a
//! `RoomState`; and the decision a page or a script gets from an answer.

use std::time::Duration;

use super::{Answer, Kind, State};
use crate::room::{
    Deadlines, Decision, Mode, Policy, Settings, View, ViewState, Visitor, chance_next_minute,
    lottery_wait_seconds, poll_after, rate_of, wait_seconds,
};

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

/// The view of the session `a` answers for.
pub(super) fn of(settings: &Settings, a: &Answer, rng: &mut impl rand::Rng) -> View {
    let rate = rate_of(settings, a.recent_releases, a.first_release_ms, a.now_ms);
    let (state, position) = match a.state {
        // An event's pre-queue: no place until the start.
        Some(State::Queued) if a.holding => (ViewState::Prequeue, None),
        Some(State::Queued) if settings.paused => (ViewState::Paused, a.position),
        Some(State::Queued) => (ViewState::Queued, a.position),
        // Only between a tick and the visitor's return, which makes it queued: no place yet.
        Some(State::Missed) => (ViewState::Queued, None),
        Some(State::Released) => (ViewState::Released, None),
        Some(State::Active) => (ViewState::Admitted, None),
        None => (ViewState::Closed, None),
    };
    let queued = matches!(a.state, Some(State::Queued | State::Missed));
    let no_releases = settings.paused || settings.mode == Mode::Reject || a.holding;
    // Lottery rooms, before the visitor's draw: the time until it.
    let next_draw_in_ms = match (settings.policy, queued, position) {
        (Policy::Lottery, true, None) => a.next_draw_ms.map(|t| t.saturating_sub(a.now_ms)),
        _ => None,
    };
    let estimated_wait_seconds = match (queued, position, settings.policy) {
        (true, _, _) if no_releases => None,
        (true, Some(p), _) => wait_seconds(p, rate),
        (true, None, Policy::Lottery) => {
            lottery_wait_seconds(a.drawn, a.pool, next_draw_in_ms.unwrap_or(0), rate)
        }
        // Without a stable place, the wait shown is the time to release everyone now in line.
        (true, None, _) => wait_seconds(a.queue_depth, rate),
        (false, _, _) => Some(0),
    };
    let moved = a.released_total.saturating_sub(a.released_before);
    let progress_percent = match (queued, position) {
        (true, Some(p)) => ((moved * 100) / (moved + p).max(1)).min(99) as u8,
        (true, None) => 0,
        (false, _) => 100,
    };
    View {
        state,
        position,
        queue_depth: a.queue_depth,
        estimated_wait_seconds,
        release_rate_per_minute: (rate * 60.0 * 100.0).round() / 100.0,
        poll_after_seconds: poll_after(estimated_wait_seconds, rng)
            .min((ms(settings.release_window) / 3_000).max(2)),
        progress_percent,
        chance_next_minute: (queued && settings.policy == Policy::Random)
            .then(|| chance_next_minute(a.queue_depth, rate)),
        next_draw_in_ms,
        deadlines: deadlines(settings, a),
        slowed_ms_ago: None,
        event_starts_at_ms: settings
            .event
            .filter(|_| a.holding && queued)
            .map(|e| e.starts_at_ms),
        store_fallback: None,
    }
}

fn deadlines(settings: &Settings, a: &Answer) -> Deadlines {
    let left = |at: u64| Some(at.saturating_sub(a.now_ms));
    match a.state {
        Some(State::Released) => Deadlines {
            release_expires_in_ms: left(a.since_ms + ms(settings.release_window)),
            ..Deadlines::default()
        },
        Some(State::Active) => Deadlines {
            session_expires_in_ms: left(a.seen_ms + ms(settings.session_ttl)),
            session_ends_in_ms: settings.max_session.and_then(|m| left(a.since_ms + ms(m))),
            ..Deadlines::default()
        },
        _ => Deadlines::default(),
    }
}

/// A page's or a script's answer from the store's.
pub(super) fn decision(settings: &Settings, a: &Answer) -> Decision {
    let visitor = a.session.map(|id| Visitor {
        id,
        ticket: a.ticket,
    });
    match (&a.kind, visitor) {
        (Kind::Admit, Some(visitor)) => Decision::Admit {
            visitor,
            joined: a.joined,
            how: a.how,
            view: None,
        },
        (Kind::Wait, Some(visitor)) => Decision::Wait {
            visitor,
            joined: a.joined,
            duplicate: !a.joined,
            view: of(settings, a, &mut rand::rng()),
        },
        (Kind::TooSoon, _) => Decision::TooSoon { wait_ms: a.wait_ms },
        (Kind::OverBudget, _) => Decision::OverBudget {
            view: View::without_place(
                ViewState::Queued,
                a.queue_depth,
                a.wait_ms.div_ceil(1000).max(1),
            ),
        },
        (Kind::Expired, _) => Decision::Expired {
            view: View::without_place(
                ViewState::Expired,
                a.queue_depth,
                crate::room::poll_after(None, &mut rand::rng()),
            ),
        },
        _ => Decision::Closed,
    }
}
