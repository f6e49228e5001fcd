//! What a visitor is shown, from a shared store's answer: the same words as the engine's view
//! (`room::decide::view`), computed from the figures the script returns instead of a
//! `RoomState`.

use std::time::Duration;

use super::{Answer, State};
use crate::room::{
    Deadlines, Mode, Policy, Settings, View, ViewState, chance_next_minute, lottery_wait_seconds,
    poll_after, rate_of, wait_seconds,
};

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

/// The view of the session `a` answers for.
pub(super) fn of(settings: &Settings, a: &Answer, rng: &mut impl rand::Rng) -> View {
    let rate = rate_of(settings, a.recent_releases, a.first_release_ms, a.now_ms);
    let (state, position) = match a.state {
        Some(State::Queued) if settings.paused => (ViewState::Paused, a.position),
        Some(State::Queued) => (ViewState::Queued, a.position),
        // Only between a tick and the visitor's return, which makes it queued: no place yet.
        Some(State::Missed) => (ViewState::Queued, None),
        Some(State::Released) => (ViewState::Released, None),
        Some(State::Active) => (ViewState::Admitted, None),
        None => (ViewState::Closed, None),
    };
    let queued = matches!(a.state, Some(State::Queued | State::Missed));
    let no_releases = settings.paused || settings.mode == Mode::Reject;
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
        event_starts_at_ms: None,
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
