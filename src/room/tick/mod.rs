//! The once-a-second work of a room: expire, release, measure. Pure: time and randomness are
//! arguments.

use std::cmp::Reverse;

use super::Settings;
use super::decide::{has_room, ms};
use super::line::Line;
use super::state::{EndReason, RoomState, Session, SessionId, SessionState};

/// What one tick did, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    pub released: u32,
    pub abandoned: u32,
    /// Sessions that ended, with how long they had been admitted (ms).
    pub ended: Vec<(EndReason, u64)>,
    /// Each release in release order: who, and the time from join to release (ms).
    pub releases: Vec<(SessionId, u64)>,
    /// Lottery rooms: visitors drawn from the pool this tick.
    pub drawn: usize,
    /// A scheduled event started or ended.
    pub event: super::events::EventStep,
}

pub fn tick(
    settings: &Settings,
    state: &mut RoomState,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> TickReport {
    let mut report = TickReport::default();
    let draw_every = ms(settings.draw_every);
    super::decide::settle(settings, state, now_ms);
    report.event = super::events::step(settings, state, rng);
    // An event's pre-queue (or its start before this tick): nobody released, nobody drawn.
    let held = super::events::hold(settings, state);
    let holding = held.is_some();
    let settings = held.as_ref().unwrap_or(settings);
    if !state.joins.is_empty() {
        state.joins.prune(now_ms);
    }
    rearm_on_change(settings, state);
    state.note_limits(settings.active_users, settings.admit_per_minute, now_ms);
    expire(settings, state, now_ms, &mut report);
    super::persist::expire_recovery(state, now_ms);
    if let Line::Lottery(q) = &mut state.queue
        && !holding
    {
        report.drawn = q.draw_if_due(now_ms, draw_every, rng);
    }
    state.bucket.refill(settings.admit_per_minute, now_ms);
    state.budget_bound = false;
    if !settings.paused {
        release(settings, state, now_ms, rng, &mut report);
    }
    while state
        .releases
        .front()
        .is_some_and(|(at, _)| now_ms.saturating_sub(*at) >= 60_000)
    {
        state.releases.pop_front();
    }
    while state
        .returns
        .front()
        .is_some_and(|at| now_ms.saturating_sub(*at) >= 60_000)
    {
        state.returns.pop_front();
    }
    report
}

/// Looks at every session whose timer is due; ends those past their deadline.
fn expire(settings: &Settings, state: &mut RoomState, now_ms: u64, report: &mut TickReport) {
    while let Some(Reverse((due, id))) = state.timers.peek().copied() {
        if due > now_ms {
            break;
        }
        state.timers.pop();
        // Gone, or a timer set before the session's deadline moved (a later arm replaced it).
        let Some(s) = state.sessions.get(&id).filter(|s| s.due_ms == due) else {
            continue;
        };
        let (deadline, reason) = deadline(settings, s);
        if deadline > now_ms {
            arm(settings, state, id);
            continue;
        }
        let admitted_for = now_ms.saturating_sub(s.since_ms);
        if reason == Some(EndReason::NoShow)
            && !s.no_showed
            && s.seen_ms + ms(settings.abandon_after) > now_ms
        {
            // A first no-show frees the slot but keeps the ticket: back within `abandon_after`,
            // the visitor goes to the front.
            if let Some(s) = state.sessions.get_mut(&id) {
                s.state = SessionState::Missed;
                s.no_showed = true;
            }
            state.released -= 1;
            report.ended.push((EndReason::NoShow, admitted_for));
            arm(settings, state, id);
            continue;
        }
        state.remove(&id);
        match reason {
            None => {
                state.counters.abandoned += 1;
                report.abandoned += 1;
            }
            Some(r) => report.ended.push((r, admitted_for)),
        }
    }
}

/// Sets `id`'s timer at the earliest of its deadlines (idle, `max_session`, release window,
/// abandonment): the one place a session's timer is set, so no cap lands late because another
/// deadline was asked first.
pub(super) fn arm(settings: &Settings, state: &mut RoomState, id: SessionId) {
    // Armed with settings other than those every timer agrees with (a change between two
    // ticks, or before the first): the next tick re-arms everyone with the settings it has.
    if state.timer_settings != Some(timer_key(settings)) {
        state.timer_settings = None;
    }
    let Some(s) = state.sessions.get_mut(&id) else {
        return;
    };
    let due = deadline(settings, s).0;
    s.due_ms = due;
    state.schedule(due, id);
}

/// Re-arms every session when the settings their deadlines come from changed (a reload or the
/// admin API): a lowered `max_session`, `session_ttl`, `release_window` or `abandon_after`
/// applies to live sessions at this tick, not when their old timers fire.
fn rearm_on_change(settings: &Settings, state: &mut RoomState) {
    let key = timer_key(settings);
    if state.timer_settings == Some(key) {
        return;
    }
    state.timer_settings = Some(key);
    let ids: Vec<SessionId> = state.sessions.iter().map(|(id, _)| *id).collect();
    for id in ids {
        arm(settings, state, id);
    }
}

/// The durations session timers are armed with (ms: session_ttl, max_session, release_window,
/// abandon_after).
pub(super) fn timer_key(settings: &Settings) -> [Option<u64>; 4] {
    [
        Some(ms(settings.session_ttl)),
        settings.max_session.map(ms),
        Some(ms(settings.release_window)),
        Some(ms(settings.abandon_after)),
    ]
}

/// When `s` must be looked at next, and why it ends then (`None`: a queued visitor abandons).
pub(super) fn deadline(settings: &Settings, s: &Session) -> (u64, Option<EndReason>) {
    match s.state {
        // Away (queued or missed) longer than `abandon_after`: the place is lost.
        SessionState::Queued | SessionState::Missed => {
            (s.seen_ms + ms(settings.abandon_after), None)
        }
        SessionState::Released => (
            s.since_ms + ms(settings.release_window),
            Some(EndReason::NoShow),
        ),
        SessionState::Active => {
            let idle = s.seen_ms + ms(settings.session_ttl);
            match settings.max_session.map(|m| s.since_ms + ms(m)) {
                Some(cap) if cap <= idle => (cap, Some(EndReason::MaxSession)),
                _ => (idle, Some(EndReason::Idle)),
            }
        }
    }
}

/// The next visitor to release: those at the front first, then the line by its policy. A
/// visitor the line picks who has not come back since joining is set aside as missed (its turn
/// came while it was away), so a ticket nobody polls never holds a slot.
fn next_to_release(state: &mut RoomState, rng: &mut impl rand::Rng) -> Option<SessionId> {
    loop {
        let (_, id) = match state.front.pop_front() {
            Some(next) => next,
            None => state.queue.pop(rng)?,
        };
        let Some(s) = state.sessions.get_mut(&id) else {
            continue;
        };
        if s.returned {
            return Some(id);
        }
        s.state = SessionState::Missed;
    }
}

/// Releases from the front of the line while there is room and budget.
fn release(
    settings: &Settings,
    state: &mut RoomState,
    now_ms: u64,
    rng: &mut impl rand::Rng,
    report: &mut TickReport,
) {
    let mut count = 0u32;
    let mut emptied = false;
    while has_room(settings, state) {
        let Some(id) = next_to_release(state, rng) else {
            emptied = true;
            break;
        };
        let Some(s) = state.sessions.get_mut(&id) else {
            continue;
        };
        report
            .releases
            .push((id, now_ms.saturating_sub(s.since_ms)));
        s.state = SessionState::Released;
        s.since_ms = now_ms;
        state.released += 1;
        state.bucket.take(settings.admit_per_minute, 1);
        arm(settings, state, id);
        count += 1;
    }
    let slot_free = settings
        .active_users
        .is_none_or(|cap| state.active + state.released < cap);
    state.budget_bound =
        !emptied && slot_free && settings.admit_per_minute.is_some() && state.waiting() > 0;
    if count > 0 {
        state.counters.released += u64::from(count);
        state.releases.push_back((now_ms, count));
        state.first_release_ms.get_or_insert(now_ms);
        report.released = count;
    }
}

#[cfg(test)]
mod tests;
