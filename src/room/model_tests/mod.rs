//! The engine against a naive model, property-tested.
//!
//! Random sequences of joins, polls, requests, absences (a visitor who simply stops asking while
//! time passes), leaves, revocations, ticks 100 ms to minutes apart and operator changes
//! (capacity, rate, pause, reject mode, `max_session`, `session_ttl`, `release_window`, and in
//! some cases the policy) run through `decide`, `status`, `tick`, `leave` and `revoke` with random
//! settings per case. Beside the engine runs a model that knows nothing of its data structures: a
//! list of visitors, each with its ticket, what the model thinks its state is, when it was last
//! seen (any poll or request) and whether it came back since joining; plus the rate budget in
//! exact integer arithmetic. After every step the engine must agree with the model, and the
//! model checks the rules the room promises:
//!
//! 1. No place is lost for an absence shorter than `abandon_after`: a visitor last seen less
//!    than `abandon_after` ago still has a session, unless it left, was revoked or (admitted)
//!    ended by idling or `max_session`; and only then.
//! 2. A returning visitor is never behind a later ticket: in a fifo room the line is the
//!    visitors back from a missed turn, in ticket order, then everyone else in ticket order (the
//!    positions shown are exactly that), and a tick never releases a later ticket while an
//!    earlier one that came back since joining still waits.
//! 3. No admitted session outlives its earliest deadline (idle `session_ttl`, `max_session`) past
//!    the next tick, with the settings in force at that tick.
//! 4. No slot is held past `release_window`: a released visitor who has not come is out of the
//!    released state by the first tick after its window.
//! 5. Capacity: active + released never exceeds `active_users` after a decision or a tick,
//!    except right after the operator lowers it, when the count may only fall; and admissions
//!    never outrun the `admit_per_minute` budget.
//! 6. A ticket that never came back since joining is never released.
//! 7. Only a visitor who is there is admitted: a released visitor's request admits it, a queued
//!    one's gets the waiting answer, and a new visitor is admitted at once exactly when nobody
//!    waits, the room is not paused and there is a slot and budget.

use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::tick::deadline;
use super::{
    AdmitHow, Decision, EndReason, Mode, Policy, RoomState, SessionId, SessionState, Settings,
    View, ViewState, Visitor, decide, leave, poll_too_soon, revoke, status, tick,
};

/// What a visitor does each time time passes (before the room ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stance {
    /// The waiting page: polls while waiting, comes in when released, browses when admitted.
    Present,
    /// Polls and comes in, but makes no request once admitted (the session idles out).
    Idle,
    /// An app that only ever asks for its status, in every state, and never comes in.
    Lurker,
    /// Away: a phone in a pocket, a frozen tab, a bot that never comes back. Does nothing.
    Away,
}

#[derive(Debug, Clone)]
enum Op {
    /// A visitor without a token arrives; `poll_now`: its page asks at once.
    Join {
        stance: Stance,
        poll_now: bool,
    },
    /// A status poll; `floor`: through the poll floor first, as the gateway does.
    Poll {
        who: Index,
        floor: bool,
    },
    /// A request with the visitor's token.
    Request(Index),
    Behave(Index, Stance),
    Leave(Index),
    Revoke(Index),
    /// Time passes by this many ms (everyone acts as their stance says), then the room ticks.
    Tick(u64),
    /// Time passes by this many ms, without a tick and without anyone acting.
    Wait(u64),
    Pause(bool),
    Reject(bool),
    Cap(Option<u32>),
    Rate(Option<u32>),
    MaxSession(Option<u64>),
    Ttl(u64),
    ReleaseWindow(u64),
    /// Applied only in cases that switch policies.
    Policy(Policy),
    /// The operator drops every override: capacity, rate, `max_session`, `session_ttl` and
    /// `release_window` go back to the room's configured values.
    Restore,
}

/// A room's settings for one case; `switching`: the operator may change the policy.
#[derive(Debug, Clone)]
struct Case {
    settings: Settings,
    switching: bool,
}

fn stance() -> impl Strategy<Value = Stance> {
    prop_oneof![
        4 => Just(Stance::Present),
        2 => Just(Stance::Idle),
        1 => Just(Stance::Lurker),
        2 => Just(Stance::Away),
    ]
}

/// A duration in ms: as often short (0.2 to 5 s) as long (5 s to 20 minutes).
fn span() -> impl Strategy<Value = u64> {
    prop_oneof![200u64..5_000, 5_000u64..1_200_000]
}

fn rate() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..10, 10u32..600]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        3 => Just(Policy::Fifo),
        1 => Just(Policy::Random),
        1 => Just(Policy::Lottery),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (stance(), any::<bool>()).prop_map(|(stance, poll_now)| Op::Join { stance, poll_now }),
        3 => (any::<Index>(), any::<bool>()).prop_map(|(who, floor)| Op::Poll { who, floor }),
        3 => any::<Index>().prop_map(Op::Request),
        3 => (any::<Index>(), stance()).prop_map(|(who, s)| Op::Behave(who, s)),
        1 => any::<Index>().prop_map(Op::Leave),
        1 => any::<Index>().prop_map(Op::Revoke),
        10 => prop_oneof![
            5 => 100u64..2_000,
            3 => 2_000u64..60_000,
            2 => 60_000u64..400_000,
        ]
        .prop_map(Op::Tick),
        1 => (0u64..5_000).prop_map(Op::Wait),
        1 => proptest::bool::weighted(0.3).prop_map(Op::Pause),
        1 => proptest::bool::weighted(0.15).prop_map(Op::Reject),
        1 => proptest::option::of(1u32..6).prop_map(Op::Cap),
        1 => proptest::option::of(rate()).prop_map(Op::Rate),
        1 => proptest::option::of(span()).prop_map(Op::MaxSession),
        1 => span().prop_map(Op::Ttl),
        1 => span().prop_map(Op::ReleaseWindow),
        1 => policy().prop_map(Op::Policy),
        2 => Just(Op::Restore),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        policy(),
        proptest::option::of(1u32..6),
        proptest::option::of(rate()),
        span(),
        5_000u64..=600_000,
        span(),
        proptest::option::of(span()),
        1_000u64..120_000,
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(policy, cap, rate, ttl, abandon, window, max, draw, paused, switching)| Case {
                settings: Settings {
                    // A room needs a cap of some kind.
                    active_users: if cap.is_none() && rate.is_none() {
                        Some(2)
                    } else {
                        cap
                    },
                    admit_per_minute: rate,
                    session_ttl: Duration::from_millis(ttl),
                    abandon_after: Duration::from_millis(abandon),
                    release_window: Duration::from_millis(window),
                    max_session: max.map(Duration::from_millis),
                    policy,
                    draw_every: Duration::from_millis(draw),
                    paused,
                    ..Settings::default()
                },
                switching,
            },
        )
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

/// What the model thinks of a visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum M {
    /// Waiting; `front`: back from a missed turn, released before the rest of the line.
    Queued {
        front: bool,
    },
    Released {
        at: u64,
    },
    Active {
        since: u64,
        last_request: u64,
    },
    /// Its turn came while it was away: no slot, no place in line, the ticket kept.
    Missed,
    Gone(Why),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Left,
    Revoked,
    Abandoned,
    Idle,
    MaxSession,
    NoShow,
}

#[derive(Debug, Clone)]
struct Rec {
    id: SessionId,
    ticket: u64,
    stance: Stance,
    state: M,
    /// The last poll or request, in any state: what "last seen" means in the rules.
    seen: u64,
    /// Came back (a poll or a request while waiting or missed) since joining.
    returned: bool,
    /// Was released once and did not come in: a second no-show ends the session.
    no_showed: bool,
}

impl Rec {
    fn alive(&self) -> bool {
        !matches!(self.state, M::Gone(_))
    }

    fn waiting(&self) -> bool {
        matches!(self.state, M::Queued { .. })
    }

    fn front(&self) -> bool {
        self.state == M::Queued { front: true }
    }
}

/// Rate budget tokens in exact integers: one token is `UNIT`, so a refill of `ms` at `rate` per
/// minute adds `ms * rate` units.
const UNIT: i128 = 60_000;

/// The `admit_per_minute` bucket as docs/queue.md describes it: burst one minute, refilled by the
/// tick, a rate newly set starts full, every admission spends one token.
#[derive(Debug, Clone)]
struct Budget {
    units: i128,
    last_ms: u64,
    rate: Option<u32>,
}

impl Budget {
    fn new(rate: Option<u32>, now: u64) -> Self {
        Budget {
            units: rate.map_or(0, |r| i128::from(r) * UNIT),
            last_ms: now,
            rate,
        }
    }

    fn refill(&mut self, rate: Option<u32>, now: u64) {
        let elapsed = i128::from(now.saturating_sub(self.last_ms));
        self.last_ms = now;
        if self.rate.is_none()
            && let Some(r) = rate
        {
            self.units = i128::from(r) * UNIT;
        }
        self.rate = rate;
        if let Some(r) = rate {
            let r = i128::from(r);
            self.units = (self.units + elapsed * r).min(r * UNIT);
        }
    }

    /// Whole admissions the budget allows, as (surely, possibly): the engine counts in floating
    /// point, so on an exact whole number it may see a hair less.
    fn whole(&self, rate: Option<u32>) -> (u64, u64) {
        if rate.is_none() {
            return (u64::MAX, u64::MAX);
        }
        let hi = self.units.div_euclid(UNIT).max(0);
        let lo = if self.units.rem_euclid(UNIT) == 0 {
            (hi - 1).max(0)
        } else {
            hi
        };
        (lo as u64, hi as u64)
    }

    fn take(&mut self, rate: Option<u32>, n: u64) {
        if rate.is_some() {
            self.units -= i128::from(n) * UNIT;
        }
    }
}

/// How often each path was taken, to show the generator reaches them all.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    ticks: u64,
    releases: u64,
    admitted_at_once: u64,
    came_in: u64,
    no_show_kept: u64,
    no_show_gone: u64,
    skipped: u64,
    back_to_front: u64,
    released_from_front: u64,
    abandoned: u64,
    kept_after_long_absence: u64,
    idle: u64,
    max_session: u64,
    expired_answers: u64,
    floor_hits: u64,
    over_cap: u64,
    rate_limited: u64,
}

impl Seen {
    fn counts(&self) -> [(&'static str, u64); 17] {
        [
            ("ticks", self.ticks),
            ("releases", self.releases),
            ("admissions at once", self.admitted_at_once),
            ("released visitors coming in", self.came_in),
            ("no-shows keeping their ticket", self.no_show_kept),
            ("no-shows away past abandon_after", self.no_show_gone),
            ("tickets never back passed over", self.skipped),
            ("missed visitors back at the front", self.back_to_front),
            ("releases from the front", self.released_from_front),
            ("abandoned places", self.abandoned),
            (
                "places kept over a long absence",
                self.kept_after_long_absence,
            ),
            ("idle ends", self.idle),
            ("max_session ends", self.max_session),
            ("expired answers", self.expired_answers),
            ("polls held by the floor", self.floor_hits),
            ("capacity lowered under the admitted", self.over_cap),
            ("releases held by the rate budget", self.rate_limited),
        ]
    }
}

macro_rules! ensure {
    ($m:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!("at {} ms: {}", $m.now, format!($($arg)+)));
        }
    };
}

/// The engine and the model side by side.
struct Model {
    s: Settings,
    /// The settings the room was configured with.
    configured: Settings,
    switching: bool,
    st: RoomState,
    rng: StdRng,
    now: u64,
    recs: Vec<Rec>,
    budget: Budget,
    last_ticket: u64,
    /// The policy the engine's line has (it converts at a decision or a tick).
    line_policy: Policy,
    /// The operator lowered capacity below the admitted count: it may only fall until under.
    over_cap: bool,
    last_admitted: u32,
    seen: Seen,
}

type Step = Result<(), String>;

/// Whether a new visitor is admitted at once: surely, or possibly (the engine counts the budget
/// in floating point, so on an exact whole number it may see a hair less).
#[derive(Debug, Clone, Copy)]
struct AtOnce {
    surely: bool,
    possibly: bool,
}

/// What the model expects of a tick's expiry: every visitor's state after it, the sessions
/// ended (reason, ms admitted) and the places abandoned.
struct Expiry {
    after: Vec<M>,
    ended: Vec<(EndReason, u64)>,
    abandoned: u32,
}

/// Room for releases at a tick: free slots, and the budget (surely, possibly).
#[derive(Debug, Clone, Copy)]
struct Room {
    slots: u64,
    lo: u64,
    hi: u64,
}

mod compare;
mod ticks;
mod visitors;

/// Runs one case: what it went through (up to a failure), and the first rule it broke.
fn run(case: &Case, ops: &[Op], seed: u64) -> (Seen, Result<(), String>) {
    let mut m = Model::new(case, seed);
    for (k, op) in ops.iter().enumerate() {
        if let Err(e) = m.apply(op) {
            return (m.seen, Err(format!("op #{k} {op:?}: {e}")));
        }
    }
    (m.seen, Ok(()))
}

proptest! {
    // No regression file: the test runs in a shared checkout; a failure prints its shrunk
    // sequence.
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random rooms, random visitors, random operators: the engine does what the naive model
    /// allows, and the seven rules hold after every step.
    #[test]
    fn the_engine_keeps_the_rules_of_a_naive_model(
        case in case(),
        ops in proptest::collection::vec(op(), 1..200),
        seed in any::<u64>(),
    ) {
        if let (_, Err(e)) = run(&case, &ops, seed) {
            return Err(TestCaseError::fail(format!("{e}\ncase: {case:?}")));
        }
    }
}

/// The generator reaches every path the rules are about, so the property test is not
/// vacuous: a fixed set of 60 cases, counting what happened in them (up to a failure, which is
/// the property test's to report with a shrunk sequence).
#[test]
fn the_model_test_reaches_every_path() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = (
        case(),
        proptest::collection::vec(op(), 100..200),
        any::<u64>(),
    );
    let mut total = [0u64; 17];
    let mut failed = 0;
    for _ in 0..60 {
        let (case, ops, seed) = strategy.new_tree(&mut runner).unwrap().current();
        let (seen, result) = run(&case, &ops, seed);
        failed += usize::from(result.is_err());
        for (t, (_, n)) in total.iter_mut().zip(seen.counts()) {
            *t += n;
        }
    }
    let names = Seen::default().counts().map(|(what, _)| what);
    let report: Vec<String> = names
        .iter()
        .zip(total)
        .map(|(what, n)| format!("{what}: {n}"))
        .collect();
    println!("{}; {failed} of 60 cases broke a rule", report.join(", "));
    for (what, n) in names.iter().zip(total) {
        assert!(n > 0, "no {what} in 60 cases: {report:?}");
    }
}
