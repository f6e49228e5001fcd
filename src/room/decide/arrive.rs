//! One request as the room sees it, for every way a request asks for a place or its standing
//! (a page, a script or an app, the join and status endpoints; leave and revoke are their own): the poll floor, the join budget, then the decision, with
//! a token from before a restart recovered inside it. The gateway calls [`arrive`] once per
//! request, under the room's one lock.

use super::super::Settings;
use super::super::joins::Prefix;
use super::super::persist::recover;
use super::super::state::RoomState;
use super::{
    Decision, Mode, View, ViewState, Visitor, decide, poll_too_soon, set_poll_floor, standing,
    status,
};

/// How long an expired visitor's app is told to wait before joining again (it may join at once).
pub const EXPIRED_RETRY_SECONDS: u64 = 2;

/// How a request reached the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A browser navigation: admitted, held in line, or told its place expired.
    Page,
    /// Any other request to the site (a script, an app): as a page, but a queued visitor's
    /// request is a poll, with its floor.
    Fetch,
    /// The join endpoint: a new visitor joins; a token the room knows gets its standing (a poll).
    Join,
    /// The status endpoint: the standing of the session a token names (a poll).
    Status,
    /// The event stream: the standing of the session a token names, as presence, with no poll
    /// floor (the gateway paces the stream itself, at most once a tick).
    Stream,
}

/// One request: the visitor its valid token names (`None`: no valid token), the client's
/// address prefix when it has no token (only such a visitor is budgeted; the address is not
/// looked at for the others), and how it came.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub visitor: Option<Visitor>,
    pub prefix: Option<Prefix>,
    pub via: Via,
}

/// Decides one request at `now_ms`, updating the room. Everything but a page view is a poll
/// when the visitor is queued: sooner than its floor, it is answered with
/// [`Decision::TooSoon`] and nothing is computed.
pub fn arrive(
    settings: &Settings,
    state: &mut RoomState,
    a: Arrival,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Decision {
    // An event's pre-queue: everyone joins and waits, nobody is let in.
    let held = super::super::events::hold(settings, state);
    let settings = held.as_ref().unwrap_or(settings);
    if a.via != Via::Page
        && a.via != Via::Stream
        && let Some(wait_ms) = a.visitor.and_then(|v| poll_too_soon(state, &v.id, now_ms))
    {
        return Decision::TooSoon { wait_ms };
    }
    match a.via {
        Via::Page | Via::Fetch => visit(settings, state, a, now_ms, rng),
        Via::Join => join(settings, state, a, now_ms, rng),
        Via::Status | Via::Stream => status_of(settings, state, a, now_ms, rng),
    }
}

/// A request to the site: the join budget for a visitor without a token, then the decision. A
/// script's or an app's request that leaves its visitor waiting sets the poll floor.
fn visit(
    settings: &Settings,
    state: &mut RoomState,
    a: Arrival,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Decision {
    if a.visitor.is_none()
        && let Some(prefix) = a.prefix
        && let Some(view) = over_budget(settings, state, prefix, now_ms)
    {
        return Decision::OverBudget { view };
    }
    let decision = decide(settings, state, a.visitor, now_ms, rng);
    if a.via == Via::Fetch
        && let Decision::Wait {
            visitor,
            joined: false,
            view,
            ..
        } = &decision
    {
        set_poll_floor(state, &visitor.id, now_ms, view.poll_after_seconds);
    }
    decision
}

/// The join endpoint: the standing of a session the room knows (after recovery), else a new
/// session (budgeted when no token came at all), with the view an app is sent.
fn join(
    settings: &Settings,
    state: &mut RoomState,
    a: Arrival,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Decision {
    if let Some(v) = a.visitor {
        recover(settings, state, v, now_ms, false);
        if state.sessions.contains_key(&v.id) {
            return Decision::Standing {
                view: status(settings, state, &v.id, now_ms, rng),
            };
        }
    } else if let Some(prefix) = a.prefix
        && let Some(view) = over_budget(settings, state, prefix, now_ms)
    {
        return Decision::OverBudget { view };
    }
    match decide(settings, state, None, now_ms, rng) {
        Decision::Admit {
            visitor,
            joined,
            how,
            ..
        } => Decision::Admit {
            visitor,
            joined,
            how,
            view: status(settings, state, &visitor.id, now_ms, rng),
        },
        other => other,
    }
}

/// The status endpoint: the standing of the session the token names (recovered if it is from
/// before a restart). Without one: closed if the room takes nobody, expired for a valid token
/// whose session is gone (said once; joining again is one request away), else unknown.
fn status_of(
    settings: &Settings,
    state: &mut RoomState,
    a: Arrival,
    now_ms: u64,
    rng: &mut impl rand::Rng,
) -> Decision {
    let visitor = a.visitor;
    if let Some(v) = visitor {
        recover(settings, state, v, now_ms, false);
        let view = if a.via == Via::Stream {
            standing(settings, state, &v.id, now_ms, rng)
        } else {
            status(settings, state, &v.id, now_ms, rng)
        };
        if let Some(view) = view {
            return Decision::Standing { view: Some(view) };
        }
    }
    if settings.mode == Mode::Reject {
        Decision::Closed
    } else if visitor.is_some() {
        let view = View::without_place(ViewState::Expired, state.waiting(), EXPIRED_RETRY_SECONDS);
        Decision::Expired { view }
    } else {
        Decision::Unknown
    }
}

/// A new session from a prefix past its join budget (`max_joins_per_prefix_per_minute`): the
/// view of a visitor with no place, polling again when the budget has a join. Only visitors
/// without a token are budgeted (a returning one is no new place).
fn over_budget(
    settings: &Settings,
    state: &mut RoomState,
    prefix: Prefix,
    now_ms: u64,
) -> Option<View> {
    let limit = settings.max_joins_per_prefix_per_minute?;
    if settings.mode != Mode::Queue {
        return None;
    }
    let wait_ms = state.joins.take(prefix, limit, now_ms).err()?;
    Some(View::without_place(
        ViewState::Queued,
        state.waiting(),
        wait_ms.div_ceil(1000).max(1),
    ))
}
