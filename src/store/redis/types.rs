//! What the room code answers, as anteroom reads it: the kind of an answer and the figures a
//! view is built from, a room's shared figures, one request, what a tick did, what a leave gave
//! up, and why a call failed.

use std::time::Duration;

use ::redis::RedisError;

use super::layer;
use crate::room::{AdmitHow, EndReason, EventStep, Prefix, SessionId};

/// What a room operation came to, as the script answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Forward to the origin (`how`: this request admitted the session).
    Admit,
    /// In line.
    Wait,
    /// The room takes nobody (`mode = "reject"`).
    Closed,
    /// A valid token whose session the room no longer has, and no free slot.
    Expired,
    /// The standing of a known session (a status poll).
    Standing,
    /// A status poll for a session the room does not know.
    Unknown,
    /// A queued session polling before its floor (`wait_ms`): nothing computed.
    TooSoon,
    /// A new session from a prefix past its join budget (`wait_ms` until it has a join).
    OverBudget,
}

/// A session's state in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Released,
    Active,
    Missed,
}

/// One room operation's answer: what happened, and the figures a view is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub kind: Kind,
    pub session: Option<SessionId>,
    pub ticket: u64,
    /// A new session was created.
    pub joined: bool,
    pub how: Option<AdmitHow>,
    pub state: Option<State>,
    /// 1-based place in line (the front first), when queued.
    pub position: Option<u64>,
    /// Visitors waiting (in line and at the front).
    pub queue_depth: u64,
    /// The room's release count when the session joined.
    pub released_before: u64,
    /// Releases so far.
    pub released_total: u64,
    pub seen_ms: u64,
    pub since_ms: u64,
    pub active: u64,
    pub released: u64,
    /// Redis's clock at the answer.
    pub now_ms: u64,
    /// Releases over the last minute.
    pub recent_releases: u64,
    /// When the room first released anyone.
    pub first_release_ms: Option<u64>,
    /// `TooSoon` and `OverBudget`: how long until the request would be answered.
    pub wait_ms: u64,
    /// Lottery rooms: when the next draw is (Redis's clock).
    pub next_draw_ms: Option<u64>,
    /// Lottery rooms: visitors with a stable place (drawn, or at the front).
    pub drawn: u64,
    /// Lottery rooms: visitors waiting for a draw.
    pub pool: u64,
    /// The room holds everyone for a scheduled event (its pre-queue): no place is shown.
    pub holding: bool,
}

/// A room's shared figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub active: u64,
    pub released: u64,
    pub waiting: u64,
    pub joined: u64,
    pub admitted_immediate: u64,
    pub admitted_released: u64,
    pub released_total: u64,
    pub abandoned: u64,
    pub left_queue: u64,
    pub duplicates: u64,
    pub recent_releases: u64,
    pub first_release_ms: Option<u64>,
    pub now_ms: u64,
    /// The operator's overrides as JSON, when set through the shared store.
    pub overrides: Option<String>,
    /// The instance holding the tick's lease, if any.
    pub lease_holder: Option<String>,
    /// The last ticket handed out.
    pub last_ticket: u64,
    /// Visitors who lost their place when an event ended in a room closed outside events.
    pub dropped_at_end: u64,
    /// The room holds everyone for a scheduled event (its pre-queue).
    pub holding: bool,
    /// The room's settings from the newest configuration file any instance loaded.
    pub file: layer::Offered,
    /// Instances seen within the last minute, with when (Redis's clock, ms).
    pub instances: Vec<(String, u64)>,
}

/// One request to the site or the join endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// The session the request's valid token names.
    pub visitor: Option<SessionId>,
    /// The id a new session takes.
    pub fresh: SessionId,
    /// Not a page view: a queued session's request has a poll floor.
    pub poll: bool,
    /// A new session from this prefix spends one of its joins (`None`: not budgeted).
    pub budget: Option<Prefix>,
}

impl Request {
    /// A page view: no floor, no budget.
    pub fn page(visitor: Option<SessionId>, fresh: SessionId) -> Self {
        Request {
            visitor,
            fresh,
            poll: false,
            budget: None,
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ticked {
    /// Another instance took the lease since this one's fencing value: nothing was done.
    Fenced,
    Done {
        released: u64,
        active: u64,
        released_now: u64,
        waiting: u64,
        /// Lottery rooms: visitors of a draw under way still to be drawn (by `draw`).
        drawing: u64,
        /// A scheduled event started or ended.
        event: EventStep,
        /// Sessions that ended (`None`: a queued visitor abandoned).
        ended: Vec<Option<EndReason>>,
    },
}

/// A leave or a revoke: what the session gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// No such session.
    None,
    /// A place in line.
    Place,
    /// An admitted (or released) slot.
    Slot,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis answered what anteroom cannot read: {0}")]
    Reply(String),
}
