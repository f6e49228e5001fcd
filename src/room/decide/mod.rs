//! The decision for one request: admit, hold in line, or refuse. Pure: no I/O, no clock, no lock.

use super::estimate::poll_after;
use super::persist::recover;
use super::state::{AdmitHow, EndReason, RoomState, Session, SessionId, SessionState};
use super::{Mode, Settings};

mod arrive;
mod view;

pub use arrive::{Arrival, EXPIRED_RETRY_SECONDS, Via, arrive};
use view::view_of;
pub use view::{Deadlines, View, ViewState};

/// A visitor as its valid token describes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visitor {
    pub id: SessionId,
    pub ticket: u64,
}

/// What the room did with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward to the origin. `joined`: a new session was created (set the cookie); `how`: this
    /// request admitted it; `view`: the standing an app joining through the join endpoint is sent.
    Admit {
        visitor: Visitor,
        joined: bool,
        how: Option<AdmitHow>,
        view: Option<View>,
    },
    /// Hold in line. `duplicate`: a queued visitor asked again (refresh, second tab).
    Wait {
        visitor: Visitor,
        joined: bool,
        duplicate: bool,
        view: View,
    },
    /// The room takes no visitors (`mode = "reject"`).
    Closed,
    /// The visitor's token names a session the room no longer has, and there is no free slot:
    /// their place is gone. Nothing was changed; joining again is the visitor's choice.
    Expired { view: View },
    /// A queued visitor polled sooner than its floor: how long until it is answered. Nothing was
    /// computed; the poll counted as presence.
    TooSoon { wait_ms: u64 },
    /// A new visitor from a client prefix past its join budget: the view of a visitor with no
    /// place.
    OverBudget { view: View },
    /// The standing of a session the room knows (a status poll, or an app joining with its
    /// token); `None` never comes from a known session.
    Standing { view: Option<View> },
    /// A status poll with no token the room can place.
    Unknown,
    /// The shared store did not answer: no place can be given or looked up now (the view of a
    /// visitor with no place, asking again soon).
    Unreachable { view: View },
}

/// Decides one request of a visitor (`None`: no valid token) at `now_ms`, updating the room.
pub fn decide(
    settings: &Settings,
    state: &mut RoomState,
    visitor: Option<Visitor>,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Decision {
    if let Some(v) = visitor
        && let Some(decision) = returning(settings, state, v, now_ms, rng)
    {
        return decision;
    }
    if settings.mode == Mode::Reject {
        return Decision::Closed;
    }
    join(settings, state, visitor.is_some(), now_ms, rng)
}

/// A visitor with a valid token: admitted or held in line by the session it names, which may
/// have come back from before a restart. `None` if the room does not know that session.
fn returning(
    settings: &Settings,
    state: &mut RoomState,
    v: Visitor,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Option<Decision> {
    // A token from before a restart whose session the room does not know may take its place
    // again (a new visitor admitted at once, or back in line at its ticket).
    let recovered =
        !state.sessions.contains_key(&v.id) && recover(settings, state, v, now_ms, true);
    came_back(state, &v.id, now_ms);
    let s = state.sessions.get_mut(&v.id)?;
    let visitor = Visitor {
        id: v.id,
        ticket: s.ticket,
    };
    match s.state {
        SessionState::Active => {
            s.seen_ms = now_ms;
            Some(Decision::Admit {
                visitor,
                joined: false,
                how: recovered.then_some(AdmitHow::Immediate),
                view: None,
            })
        }
        SessionState::Released => {
            s.state = SessionState::Active;
            s.seen_ms = now_ms;
            s.since_ms = now_ms;
            Some(came_in(settings, state, visitor))
        }
        // `came_back` made a missed session queued again.
        SessionState::Queued | SessionState::Missed => {
            if !recovered {
                state.counters.duplicates += 1;
            }
            let view = shown_view(settings, state, &v.id, now_ms, rng);
            Some(Decision::Wait {
                visitor,
                joined: false,
                duplicate: !recovered,
                view,
            })
        }
    }
}

/// A released visitor came in (its session is now active): its slot counts as admitted.
fn came_in(settings: &Settings, state: &mut RoomState, visitor: Visitor) -> Decision {
    state.released -= 1;
    state.active += 1;
    state.counters.admitted_released += 1;
    super::tick::arm(settings, state, visitor.id);
    Decision::Admit {
        visitor,
        joined: false,
        how: Some(AdmitHow::Released),
        view: None,
    }
}

/// A known session makes a request or polls: it is present. A missed one (its turn came while it
/// was away) goes to the front, to be released at the next tick with a free slot.
fn came_back(state: &mut RoomState, id: &SessionId, now_ms: u64) {
    let Some(s) = state.sessions.get_mut(id) else {
        return;
    };
    match s.state {
        SessionState::Queued => {
            s.seen_ms = now_ms;
            s.returned = true;
        }
        SessionState::Missed => {
            s.state = SessionState::Queued;
            s.seen_ms = now_ms;
            s.returned = true;
            let ticket = s.ticket;
            state.front.insert(ticket, *id);
            state.returns.push_back(now_ms);
        }
        // A released visitor's poll shows it is here too (its turn may still be missed).
        SessionState::Released => s.seen_ms = now_ms,
        // An admitted session's idle clock runs from its requests only.
        SessionState::Active => {}
    }
}

/// Whether a visitor arriving now would be admitted at once: not paused, nobody waiting, a free
/// slot and budget.
fn admits_at_once(settings: &Settings, state: &RoomState) -> bool {
    !settings.paused && state.waiting() == 0 && has_room(settings, state)
}

/// A new visitor: admitted at once while there is room and nobody waits, else in line. One
/// whose valid token names a session the room no longer has (`had_token`) is not put at the back
/// unasked: it is told its place expired.
fn join(
    settings: &Settings,
    state: &mut RoomState,
    had_token: bool,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Decision {
    if had_token && !admits_at_once(settings, state) {
        let view = View::without_place(ViewState::Expired, state.waiting(), poll_after(None, rng));
        return Decision::Expired { view };
    }
    let id = SessionId::random(rng);
    let ticket = state.take_ticket();
    state.counters.joined += 1;
    let visitor = Visitor { id, ticket };
    let mut session = Session {
        ticket,
        state: SessionState::Queued,
        seen_ms: now_ms,
        since_ms: now_ms,
        // Truncation intended: the progress bar takes a wrapping difference.
        released_before: state.counters.released as u32,
        next_poll_ms: 0,
        due_ms: 0,
        returned: false,
        no_showed: false,
        wait_shown_s: 0,
        slowdowns_seen: 0,
    };
    if admits_at_once(settings, state) {
        session.state = SessionState::Active;
        state.sessions.insert(id, session);
        state.active += 1;
        state.bucket.take(settings.admit_per_minute, 1);
        state.counters.admitted_immediate += 1;
        super::tick::arm(settings, state, id);
        return Decision::Admit {
            visitor,
            joined: true,
            how: Some(AdmitHow::Immediate),
            view: None,
        };
    }
    state.sessions.insert(id, session);
    state.queue.insert(ticket, id);
    super::tick::arm(settings, state, id);
    let view = shown_view(settings, state, &id, now_ms, rng);
    Decision::Wait {
        visitor,
        joined: true,
        duplicate: false,
        view,
    }
}

/// Whether one more visitor may be admitted now: a free slot and a token in the budget.
pub(super) fn has_room(settings: &Settings, state: &RoomState) -> bool {
    let slot = settings
        .active_users
        .is_none_or(|cap| state.active + state.released < cap);
    slot && state.bucket.available(settings.admit_per_minute) >= 1
}

/// The status of a known session (a poll keeps a queued visitor in line); `None` if unknown.
pub fn status(
    settings: &Settings,
    state: &mut RoomState,
    id: &SessionId,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Option<View> {
    if !state.sessions.contains_key(id) {
        return None;
    }
    came_back(state, id, now_ms);
    Some(queued_view(settings, state, id, now_ms, rng))
}

/// The standing of a known session as the event stream shows it: presence like a poll, but no
/// poll floor is set (the stream is paced by the room's tick, and a page that falls back to
/// polling is answered at once); `None` if unknown.
pub fn standing(
    settings: &Settings,
    state: &mut RoomState,
    id: &SessionId,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Option<View> {
    if !state.sessions.contains_key(id) {
        return None;
    }
    came_back(state, id, now_ms);
    Some(shown_view(settings, state, id, now_ms, rng))
}

/// How long a queued session must still wait before its next poll is answered: `Some(ms)` when
/// it polls sooner than half the `poll_after_seconds` its last answered poll was given (a join or
/// a page view sets no floor: the first poll after them is always answered). Such a poll counts
/// as presence (the visitor is plainly there) but computes nothing.
pub fn poll_too_soon(state: &mut RoomState, id: &SessionId, now_ms: u64) -> Option<u64> {
    let s = state.sessions.get_mut(id)?;
    if s.state != SessionState::Queued || now_ms >= s.next_poll_ms {
        return None;
    }
    s.seen_ms = now_ms;
    s.returned = true;
    Some(s.next_poll_ms - now_ms)
}

/// The view a poll gets, remembering the poll floor it sets for a queued session.
fn queued_view(
    settings: &Settings,
    state: &mut RoomState,
    id: &SessionId,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> View {
    let view = shown_view(settings, state, id, now_ms, rng);
    set_poll_floor(state, id, now_ms, view.poll_after_seconds);
    view
}

/// The view a visitor is shown, remembering the estimated wait it gives: while a visitor waits
/// with a place, the estimate shown never rises, unless the operator lowered capacity or rate
/// since it was last shown (the view then says when admissions slowed).
fn shown_view(
    settings: &Settings,
    state: &mut RoomState,
    id: &SessionId,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> View {
    state.note_limits(settings.active_users, settings.admit_per_minute, now_ms);
    let mut view = view_of(settings, state, id, now_ms, rng);
    let slowdowns = state.slowdowns as u16;
    let Some(s) = state.sessions.get_mut(id) else {
        return view;
    };
    match (view.state, view.position, view.estimated_wait_seconds) {
        (ViewState::Queued, Some(_), Some(wait)) => {
            let held = if s.wait_shown_s > 0 && s.slowdowns_seen == slowdowns {
                wait.min(u64::from(s.wait_shown_s))
            } else {
                wait
            };
            view.estimated_wait_seconds = Some(held);
            s.wait_shown_s = u32::try_from(held).unwrap_or(u32::MAX).max(1);
            s.slowdowns_seen = slowdowns;
        }
        _ => s.wait_shown_s = 0,
    }
    view
}

/// A queued session was just told to poll again after `poll_after_seconds`: until half of that
/// has passed, its polls are answered by [`poll_too_soon`].
pub fn set_poll_floor(state: &mut RoomState, id: &SessionId, now_ms: u64, poll_after_seconds: u64) {
    if let Some(s) = state.sessions.get_mut(id)
        && s.state == SessionState::Queued
    {
        s.next_poll_ms = now_ms + poll_after_seconds * 500;
    }
}

/// What a visitor who left gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// A place in line (or a missed turn).
    Place,
    /// An admitted slot (released or active): a session ended.
    Slot,
}

/// Gives up a place in line or an admitted slot at once. `None`: the room has no such session.
pub fn leave(state: &mut RoomState, id: &SessionId) -> Option<Left> {
    let s = state.remove(id)?;
    if matches!(s.state, SessionState::Queued | SessionState::Missed) {
        state.counters.left_queue += 1;
        return Some(Left::Place);
    }
    Some(Left::Slot)
}

/// Puts settings the room keeps in its own shape into force at once: the line is converted to
/// the policy. Called where settings change (a reload, an operator's override) and by every
/// tick, so no request ever converts the line while holding the lock.
pub fn settle(settings: &Settings, state: &mut RoomState, now_ms: u64) {
    state
        .queue
        .switch_to(settings.policy, now_ms, ms(settings.draw_every));
}

/// Ends an admitted session because the origin said so (`Anteroom-Command: revoke`).
pub fn revoke(state: &mut RoomState, id: &SessionId) -> Option<EndReason> {
    state.remove(id)?;
    Some(EndReason::Revoke)
}

/// The operator empties the line (`POST /api/v1/rooms/{name}/reset`): everyone waiting (in line,
/// at the front, or away with a missed turn) loses their place; released and admitted sessions
/// keep their slots. The tickets a restart could still bring back are closed too, so that no
/// token from before the reset takes a place ahead of those who join after it: such a visitor is
/// told their place expired (or admitted at once if the room has a free slot and nobody waits).
/// Returns how many lost their place.
pub fn reset(state: &mut RoomState) -> usize {
    let ids: Vec<SessionId> = state
        .sessions
        .iter()
        .filter(|(_, s)| matches!(s.state, SessionState::Queued | SessionState::Missed))
        .map(|(id, _)| *id)
        .collect();
    for id in &ids {
        state.remove(id);
    }
    state.recovery.clear();
    state.recovered.clear();
    ids.len()
}

pub(super) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

#[cfg(test)]
mod tests;
