//! The decision for one request: admit, hold in line, or refuse. Pure: no I/O, no clock, no lock.

use super::estimate::{line_rate, lottery_wait_seconds, poll_after, release_rate, wait_seconds};
use super::line::Line;
use super::persist::recover;
use super::state::{AdmitHow, EndReason, RoomState, Session, SessionId, SessionState};
use super::{Mode, Settings};

/// A visitor as its valid token describes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visitor {
    pub id: SessionId,
    pub ticket: u64,
}

/// What the status JSON and the waiting page show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewState {
    Queued,
    Released,
    Admitted,
    Paused,
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

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Forward to the origin. `joined`: a new session was created (set the cookie); `how`: this
    /// request admitted it.
    Admit {
        visitor: Visitor,
        joined: bool,
        how: Option<AdmitHow>,
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
}

/// Decides one request of a visitor (`None`: no valid token) at `now_ms`, updating the room.
pub fn decide(
    settings: &Settings,
    state: &mut RoomState,
    visitor: Option<Visitor>,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Decision {
    // A policy change applies to the line before anyone is placed in it.
    state
        .queue
        .switch_to(settings.policy, now_ms, ms(settings.draw_every));
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

/// Gives up a place in line or an admitted slot at once. Returns whether the session existed.
pub fn leave(state: &mut RoomState, id: &SessionId) -> Option<EndReason> {
    let s = state.remove(id)?;
    if matches!(s.state, SessionState::Queued | SessionState::Missed) {
        state.counters.left_queue += 1;
    }
    Some(EndReason::Leave)
}

/// Ends an admitted session because the origin said so (`Anteroom-Command: revoke`).
pub fn revoke(state: &mut RoomState, id: &SessionId) -> Option<EndReason> {
    state.remove(id)?;
    Some(EndReason::Revoke)
}

/// Where a session stands: in line (queued, or missed until it is back) and at which place.
#[derive(Debug, Clone, Copy)]
struct Standing {
    queued: bool,
    position: Option<u64>,
}

/// What session `id` is shown at `now_ms` (a closed room's view when it is unknown).
fn view_of(
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
    let (view_state, position) = match s.state {
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
        chance_next_minute: chance_next_minute(state, at, rate),
        next_draw_in_ms,
        deadlines: Deadlines::of(settings, s, now_ms),
        slowed_ms_ago: state
            .slowed_at_ms
            .filter(|t| at.queued && *t >= s.since_ms)
            .map(|t| now_ms.saturating_sub(t)),
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
        (true, _, _) if super::estimate::no_releases(settings) => None,
        (true, Some(p), _) => wait_seconds(p, rate),
        (true, None, Line::Lottery(q)) => {
            lottery_wait_seconds(q, next_draw_in_ms.unwrap_or(0), rate)
        }
        // Without a stable place, the wait shown is the time to release everyone now in line.
        (true, None, _) => wait_seconds(state.waiting(), rate),
        (false, _, _) => Some(0),
    }
}

/// Random queues: the chance (0..=1, to a thousandth) of a visitor in line being released
/// within the next minute, with the line moving at `rate` a second.
fn chance_next_minute(state: &RoomState, at: Standing, rate: f64) -> Option<f64> {
    (at.queued && matches!(state.queue, Line::Random(_)))
        .then(|| ((rate * 60.0) / state.waiting().max(1) as f64).min(1.0))
        .map(|c| (c * 1000.0).round() / 1000.0)
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

pub(super) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    /// The floor is set by an answered poll only, holds until half the `poll_after_seconds`
    /// that poll was given, and a poll before it keeps the visitor present without moving it.
    #[test]
    fn the_poll_floor_follows_the_last_answered_poll() {
        let s = Settings {
            active_users: Some(1),
            session_ttl: Duration::from_secs(600),
            abandon_after: Duration::from_secs(600),
            ..Settings::default()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let mut st = RoomState::new(0, None);
        assert!(matches!(
            decide(&s, &mut st, None, 0, &mut rng),
            Decision::Admit { .. }
        ));
        let Decision::Wait { visitor: v, .. } = decide(&s, &mut st, None, 0, &mut rng) else {
            panic!("the second visitor waits");
        };
        // A join sets no floor; a page view neither.
        assert_eq!(poll_too_soon(&mut st, &v.id, 0), None);
        decide(&s, &mut st, Some(v), 10, &mut rng);
        assert_eq!(poll_too_soon(&mut st, &v.id, 10), None);
        let view = status(&s, &mut st, &v.id, 100, &mut rng).unwrap();
        let floor = view.poll_after_seconds * 500;
        assert_eq!(poll_too_soon(&mut st, &v.id, 101), Some(floor - 1));
        assert_eq!(
            st.sessions.get(&v.id).unwrap().seen_ms,
            101,
            "still present"
        );
        assert_eq!(poll_too_soon(&mut st, &v.id, 100 + floor - 1), Some(1));
        assert_eq!(poll_too_soon(&mut st, &v.id, 100 + floor), None);
        // An admitted session has no floor.
        let admitted = st
            .sessions
            .iter()
            .find(|(_, s)| s.state == SessionState::Active)
            .map(|(id, _)| *id)
            .unwrap();
        assert_eq!(poll_too_soon(&mut st, &admitted, 101), None);
    }

    /// The estimate shown to a waiting visitor does not rise because the measured rate wobbled
    /// (here: a longer `session_ttl` slows the turnover the estimate starts from); it rises
    /// when the operator lowers the rate, and the view then says admissions slowed.
    #[test]
    fn a_shown_estimate_rises_only_when_the_operator_slows_admissions() {
        let mut s = Settings {
            active_users: Some(1),
            session_ttl: Duration::from_secs(60),
            abandon_after: Duration::from_secs(600),
            ..Settings::default()
        };
        let mut st = RoomState::new(0, None);
        let mut rng = StdRng::seed_from_u64(3);
        let mut line = Vec::new();
        for _ in 0..6 {
            if let Decision::Wait { visitor, .. } = decide(&s, &mut st, None, 0, &mut rng) {
                line.push(visitor);
            }
        }
        let v = line[4];
        let first = status(&s, &mut st, &v.id, 1_000, &mut rng).unwrap();
        assert_eq!(first.position, Some(5));
        let shown = first.estimated_wait_seconds.unwrap();
        assert_eq!(shown, 300, "5 places at one per 60 s");
        assert_eq!(first.slowed_ms_ago, None);
        // Turnover halves (not an operator's cut of capacity or rate): the estimate holds.
        s.session_ttl = Duration::from_secs(120);
        let held = status(&s, &mut st, &v.id, 20_000, &mut rng).unwrap();
        assert_eq!(held.estimated_wait_seconds, Some(shown));
        // The operator caps the rate at one a minute (at 40 s), then stops releases (at 60 s),
        // then allows one a minute again: the estimate may now rise, and says since when.
        s.session_ttl = Duration::from_secs(60);
        s.admit_per_minute = Some(1);
        status(&s, &mut st, &v.id, 40_000, &mut rng).unwrap();
        s.admit_per_minute = Some(0);
        let cut = status(&s, &mut st, &v.id, 60_000, &mut rng).unwrap();
        assert_eq!(
            cut.estimated_wait_seconds, None,
            "no rate: no time promised"
        );
        s.admit_per_minute = Some(1);
        s.session_ttl = Duration::from_secs(600);
        let slowed = status(&s, &mut st, &v.id, 80_000, &mut rng).unwrap();
        assert!(slowed.estimated_wait_seconds.unwrap() > shown, "{slowed:?}");
        assert_eq!(slowed.slowed_ms_ago, Some(20_000), "the last cut, at 60 s");
        // A visitor who joins after the cut is not told about it.
        let late = match decide(&s, &mut st, None, 90_000, &mut rng) {
            Decision::Wait { view, .. } => view,
            other => panic!("{other:?}"),
        };
        assert_eq!(late.slowed_ms_ago, None);
    }
}
