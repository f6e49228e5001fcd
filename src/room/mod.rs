//! One waiting room's engine: settings, state, the pure decision and the pure tick.
//!
//! Nothing here does I/O, reads a clock or takes a lock: time and randomness are arguments, so
//! fairness and capacity can be tested with a fake clock and a seeded generator.

mod adopt;
mod bucket;
mod decide;
mod estimate;
mod events;
mod joins;
mod line;
mod lottery;
#[cfg(test)]
mod model_tests;
mod overrides;
mod persist;
#[cfg(test)]
mod policy_tests;
mod queue;
mod random;
mod sessions;
#[cfg(test)]
mod sim;
mod state;
mod tick;

pub use adopt::adopt_active;
pub use bucket::Bucket;
pub use decide::{
    Arrival, Deadlines, Decision, EXPIRED_RETRY_SECONDS, Left, Via, View, ViewState, Visitor,
    arrive, decide, leave, poll_too_soon, reset, revoke, set_poll_floor, settle, standing, status,
};
pub use estimate::{
    Telemetry, chance_next_minute, lottery_wait_seconds, poll_after, rate_of, telemetry,
    wait_seconds,
};
pub use events::{EventMarks, EventNow, EventStep, holding};
pub use joins::{JoinBudget, Prefix};
pub use line::Line;
pub use lottery::LotteryQueue;
pub use overrides::{EventMove, Overrides};
pub use persist::{
    BucketImage, Capture, Image, LineImage, MIN_RESERVE, Recovery, SessionImage, TICKETS_PER_MS,
    recover, recoverable, scratch,
};
pub use queue::FifoQueue;
pub use random::RandomQueue;
pub use sessions::Sessions;
pub use state::{AdmitHow, Counters, EndReason, RoomState, Session, SessionId, SessionState};
pub use tick::{TickReport, tick};

use std::time::Duration;

/// How a room decides, taken from the configuration (and, later, admin overrides).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Sessions admitted at once (active + released); `None`: no concurrency cap.
    pub active_users: Option<u32>,
    /// Releases per minute (token bucket, burst one minute); `None`: no rate cap.
    pub admit_per_minute: Option<u32>,
    pub session_ttl: Duration,
    pub abandon_after: Duration,
    pub release_window: Duration,
    pub max_session: Option<Duration>,
    pub policy: Policy,
    /// Lottery rooms: time between draws.
    pub draw_every: Duration,
    pub paused: bool,
    pub mode: Mode,
    /// New sessions per client address prefix per minute (`None`: no budget).
    pub max_joins_per_prefix_per_minute: Option<u32>,
    /// The scheduled event in force now (its pre-queue, or running), if any.
    pub event: Option<EventNow>,
    /// Outside events the room is closed: those still waiting when an event ends lose their place.
    pub drop_at_end: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            active_users: Some(100),
            admit_per_minute: None,
            session_ttl: Duration::from_secs(300),
            abandon_after: Duration::from_secs(600),
            release_window: Duration::from_secs(60),
            max_session: None,
            policy: Policy::Fifo,
            draw_every: Duration::from_secs(60),
            paused: false,
            mode: Mode::Queue,
            max_joins_per_prefix_per_minute: None,
            event: None,
            drop_at_end: false,
        }
    }
}

/// The order in which queued visitors are released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Fifo,
    Random,
    Lottery,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "fifo" => Some(Policy::Fifo),
            "random" => Some(Policy::Random),
            "lottery" => Some(Policy::Lottery),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Fifo => "fifo",
            Policy::Random => "random",
            Policy::Lottery => "lottery",
        }
    }
}

/// `mode = "queue"` holds visitors in line; `mode = "reject"` closes the room to new visitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Queue,
    Reject,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "queue" => Some(Mode::Queue),
            "reject" => Some(Mode::Reject),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Queue => "queue",
            Mode::Reject => "reject",
        }
    }
}
