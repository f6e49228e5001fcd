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

/// The `admit_per_minute` bucket as the README describes it: burst one minute, refilled by the
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

impl Model {
    fn new(case: &Case, seed: u64) -> Self {
        let now = 1_000_000;
        Model {
            st: RoomState::new(now, case.settings.admit_per_minute),
            budget: Budget::new(case.settings.admit_per_minute, now),
            line_policy: Policy::Fifo,
            s: case.settings.clone(),
            configured: case.settings.clone(),
            switching: case.switching,
            rng: StdRng::seed_from_u64(seed),
            now,
            recs: Vec::new(),
            last_ticket: 0,
            over_cap: false,
            last_admitted: 0,
            seen: Seen::default(),
        }
    }

    /// Fifo order rules apply to the whole run: a fifo room whose policy never changes.
    fn fifo_only(&self) -> bool {
        !self.switching && self.s.policy == Policy::Fifo
    }

    /// One step, then the comparison of the engine with the model.
    fn apply(&mut self, op: &Op) -> Step {
        let who = |i: &Index| (!self.recs.is_empty()).then(|| i.index(self.recs.len()));
        match op {
            Op::Join { stance, poll_now } => {
                if let Some(i) = self.join(*stance)?
                    && *poll_now
                {
                    self.poll(i, false)?;
                }
            }
            Op::Poll { who: w, floor } => {
                if let Some(i) = who(w) {
                    self.poll(i, *floor)?;
                }
            }
            Op::Request(w) => {
                if let Some(i) = who(w) {
                    self.request(i)?;
                }
            }
            Op::Behave(w, s) => {
                if let Some(i) = who(w) {
                    self.recs[i].stance = *s;
                }
            }
            Op::Leave(w) | Op::Revoke(w) => {
                if let Some(i) = who(w) {
                    self.end(i, matches!(op, Op::Leave(_)))?;
                }
            }
            Op::Tick(dt) => {
                self.now += dt;
                self.act()?;
                self.tick()?;
            }
            Op::Wait(dt) => self.now += dt,
            _ => self.operate(op),
        }
        self.compare()
    }

    /// The operator changes a setting.
    fn operate(&mut self, op: &Op) {
        let before = self.s.active_users;
        match op {
            Op::Pause(p) => self.s.paused = *p,
            Op::Reject(r) => self.s.mode = if *r { Mode::Reject } else { Mode::Queue },
            // A room needs a cap of some kind.
            Op::Cap(cap) if cap.is_some() || self.s.admit_per_minute.is_some() => {
                self.s.active_users = *cap;
            }
            Op::Rate(rate) if rate.is_some() || self.s.active_users.is_some() => {
                self.s.admit_per_minute = *rate;
            }
            Op::MaxSession(m) => self.s.max_session = m.map(Duration::from_millis),
            Op::Ttl(t) => self.s.session_ttl = Duration::from_millis(*t),
            Op::ReleaseWindow(w) => self.s.release_window = Duration::from_millis(*w),
            Op::Policy(p) if self.switching => self.s.policy = *p,
            Op::Restore => {
                let c = &self.configured;
                self.s.active_users = c.active_users;
                self.s.admit_per_minute = c.admit_per_minute;
                self.s.max_session = c.max_session;
                self.s.session_ttl = c.session_ttl;
                self.s.release_window = c.release_window;
            }
            _ => {}
        }
        let admitted = self.admitted();
        if self.s.active_users != before && self.s.active_users.is_some_and(|c| admitted > c) {
            self.over_cap = true;
            self.seen.over_cap += 1;
        }
    }

    /// A visitor leaves (`leave`) or the origin revokes its session.
    fn end(&mut self, i: usize, leaves: bool) -> Step {
        let id = self.recs[i].id;
        let alive = self.recs[i].alive();
        let (ended, why) = if leaves {
            (leave(&mut self.st, &id), Why::Left)
        } else {
            (revoke(&mut self.st, &id), Why::Revoked)
        };
        ensure!(
            self,
            ended.is_some() == alive,
            "ending ticket {} (model: {:?}) answered {ended:?}",
            self.recs[i].ticket,
            self.recs[i].state
        );
        if alive {
            self.recs[i].state = M::Gone(why);
        }
        Ok(())
    }

    /// Everyone acts as their stance says, at the current time.
    fn act(&mut self) -> Step {
        for i in 0..self.recs.len() {
            let r = &self.recs[i];
            match (r.stance, r.state) {
                (_, M::Gone(_)) | (Stance::Away, _) => {}
                (Stance::Lurker, _) => self.poll(i, false)?,
                (Stance::Present | Stance::Idle, M::Queued { .. } | M::Missed) => {
                    self.poll(i, false)?
                }
                (Stance::Present | Stance::Idle, M::Released { .. }) => self.request(i)?,
                (Stance::Present, M::Active { .. }) => self.request(i)?,
                (Stance::Idle, M::Active { .. }) => {}
            }
        }
        Ok(())
    }

    fn queued_state(&self) -> ViewState {
        if self.s.paused {
            ViewState::Paused
        } else {
            ViewState::Queued
        }
    }

    fn admitted(&self) -> u32 {
        self.recs
            .iter()
            .filter(|r| matches!(r.state, M::Released { .. } | M::Active { .. }))
            .count() as u32
    }

    fn waiting(&self) -> usize {
        self.recs.iter().filter(|r| r.waiting()).count()
    }

    /// Whether a new visitor is admitted at once: not paused, nobody waiting, a free slot and a
    /// token in the budget.
    fn admits_at_once(&self) -> AtOnce {
        let slot = self.s.active_users.is_none_or(|c| self.admitted() < c);
        let base = !self.s.paused && self.waiting() == 0 && slot;
        let (lo, hi) = self.budget.whole(self.s.admit_per_minute);
        AtOnce {
            surely: base && lo >= 1,
            possibly: base && hi >= 1,
        }
    }

    /// A visitor without a token. Returns its record, if it got a session.
    fn join(&mut self, stance: Stance) -> Result<Option<usize>, String> {
        let at_once = self.admits_at_once();
        let sessions = self.st.sessions.len();
        let d = decide(&self.s, &mut self.st, None, self.now, &mut self.rng);
        self.line_policy = self.s.policy;
        self.joined(&d, stance, at_once, sessions)
    }

    /// The answer to a visitor with no session: closed, admitted at once or in line.
    fn joined(
        &mut self,
        d: &Decision,
        stance: Stance,
        at_once: AtOnce,
        sessions: usize,
    ) -> Result<Option<usize>, String> {
        if self.s.mode == Mode::Reject {
            ensure!(self, *d == Decision::Closed, "a closed room answered {d:?}");
            ensure!(
                self,
                self.st.sessions.len() == sessions,
                "a closed room created a session"
            );
            return Ok(None);
        }
        let (visitor, state) = self.new_session(d, at_once)?;
        ensure!(
            self,
            visitor.ticket > self.last_ticket,
            "ticket {} handed out after ticket {}",
            visitor.ticket,
            self.last_ticket
        );
        self.last_ticket = visitor.ticket;
        ensure!(
            self,
            !self.recs.iter().any(|r| r.id == visitor.id),
            "a session id was handed out twice"
        );
        self.recs.push(Rec {
            id: visitor.id,
            ticket: visitor.ticket,
            stance,
            state,
            seen: self.now,
            returned: false,
            no_showed: false,
        });
        let i = self.recs.len() - 1;
        if let Decision::Wait { view, .. } = d {
            self.check_view(i, view)?;
        }
        Ok(Some(i))
    }

    /// Rule 7 for a new session: admitted at once exactly when the model allows it.
    fn new_session(&mut self, d: &Decision, at_once: AtOnce) -> Result<(Visitor, M), String> {
        match d {
            Decision::Admit {
                visitor,
                joined: true,
                how: Some(AdmitHow::Immediate),
            } => {
                ensure!(
                    self,
                    at_once.possibly,
                    "rule 7/5: admitted at once with {} waiting, paused {}, {} admitted of \
                     {:?}, budget {:?}",
                    self.waiting(),
                    self.s.paused,
                    self.admitted(),
                    self.s.active_users,
                    self.budget.whole(self.s.admit_per_minute)
                );
                self.budget.take(self.s.admit_per_minute, 1);
                self.seen.admitted_at_once += 1;
                let (since, last_request) = (self.now, self.now);
                Ok((
                    *visitor,
                    M::Active {
                        since,
                        last_request,
                    },
                ))
            }
            Decision::Wait {
                visitor,
                joined: true,
                duplicate: false,
                view,
            } => {
                ensure!(
                    self,
                    !at_once.surely,
                    "rule 7: a new visitor waits in an empty room with a free slot and budget"
                );
                ensure!(
                    self,
                    view.state == self.queued_state(),
                    "a new visitor in line is shown {:?}",
                    view.state
                );
                Ok((*visitor, M::Queued { front: false }))
            }
            other => Err(format!("at {} ms: a new visitor got {other:?}", self.now)),
        }
    }

    /// The visitor is there: what a poll or a request does to a waiting or missed visitor.
    fn came_back(&mut self, i: usize) {
        let now = self.now;
        let r = &mut self.recs[i];
        r.seen = now;
        match r.state {
            M::Queued { .. } => r.returned = true,
            M::Missed => {
                r.returned = true;
                r.state = M::Queued { front: true };
                self.seen.back_to_front += 1;
            }
            _ => {}
        }
    }

    fn poll(&mut self, i: usize, floor: bool) -> Step {
        let id = self.recs[i].id;
        if floor && let Some(wait) = poll_too_soon(&mut self.st, &id, self.now) {
            ensure!(
                self,
                self.recs[i].waiting() && wait > 0,
                "the poll floor held back a poll of ticket {} (model: {:?})",
                self.recs[i].ticket,
                self.recs[i].state
            );
            self.came_back(i);
            self.seen.floor_hits += 1;
            return Ok(());
        }
        let view = status(&self.s, &mut self.st, &id, self.now, &mut self.rng);
        let r = self.recs[i].clone();
        let (view, want) = match (view, r.state) {
            (None, M::Gone(_)) => return Ok(()),
            (Some(view), M::Queued { .. } | M::Missed) => (view, self.queued_state()),
            (Some(view), M::Released { .. }) => (view, ViewState::Released),
            (Some(view), M::Active { .. }) => (view, ViewState::Admitted),
            (view, _) => {
                return Err(format!(
                    "at {} ms: rule 1: a poll of ticket {} ({:?}, last seen {} ms ago, \
                     abandon_after {} ms) found {view:?}",
                    self.now,
                    r.ticket,
                    r.state,
                    self.now - r.seen,
                    ms(self.s.abandon_after)
                ));
            }
        };
        self.came_back(i);
        ensure!(
            self,
            view.state == want,
            "a poll of ticket {} ({:?}) was shown {:?}",
            r.ticket,
            r.state,
            view.state
        );
        self.check_view(i, &view)
    }

    /// A request with the visitor's token (rule 7).
    fn request(&mut self, i: usize) -> Step {
        let r = self.recs[i].clone();
        let visitor = Visitor {
            id: r.id,
            ticket: r.ticket,
        };
        let at_once = self.admits_at_once();
        let sessions = self.st.sessions.len();
        let d = decide(
            &self.s,
            &mut self.st,
            Some(visitor),
            self.now,
            &mut self.rng,
        );
        self.line_policy = self.s.policy;
        match r.state {
            M::Gone(_) => self.request_gone(&r, &d, at_once, sessions),
            M::Queued { .. } | M::Missed => self.request_waiting(i, &d),
            M::Released { .. } | M::Active { .. } => self.request_admitted(i, &d),
        }
    }

    /// A token whose session is gone: told so, or (a free slot, nobody waiting) a new visitor.
    fn request_gone(&mut self, r: &Rec, d: &Decision, at_once: AtOnce, sessions: usize) -> Step {
        let Decision::Expired { view } = d else {
            return self.joined(d, r.stance, at_once, sessions).map(|_| ());
        };
        ensure!(
            self,
            self.s.mode == Mode::Queue && !at_once.surely,
            "a lost place was told expired though a new visitor would be admitted"
        );
        ensure!(
            self,
            view.state == ViewState::Expired && view.position.is_none(),
            "an expired answer shows {view:?}"
        );
        ensure!(
            self,
            self.st.sessions.len() == sessions,
            "an expired answer created a session"
        );
        self.seen.expired_answers += 1;
        Ok(())
    }

    /// A waiting (or missed) visitor asks again: it waits, at its place.
    fn request_waiting(&mut self, i: usize, d: &Decision) -> Step {
        let r = self.recs[i].clone();
        let Decision::Wait {
            visitor: v,
            joined: false,
            duplicate: true,
            view,
        } = d
        else {
            return Err(format!(
                "at {} ms: rule 7: a request of ticket {} ({:?}) got {d:?}",
                self.now, r.ticket, r.state
            ));
        };
        ensure!(
            self,
            v.id == r.id && v.ticket == r.ticket,
            "the answer names {v:?}"
        );
        self.came_back(i);
        ensure!(
            self,
            view.state == self.queued_state(),
            "a waiting visitor's request was shown {:?}",
            view.state
        );
        self.check_view(i, view)
    }

    /// A released visitor comes in; an admitted one browses on.
    fn request_admitted(&mut self, i: usize, d: &Decision) -> Step {
        let r = self.recs[i].clone();
        let (since, how) = match r.state {
            M::Released { .. } => (self.now, Some(AdmitHow::Released)),
            M::Active { since, .. } => (since, None),
            _ => unreachable!("only released or admitted visitors"),
        };
        ensure!(
            self,
            matches!(d, Decision::Admit { joined: false, how: h, .. } if *h == how),
            "rule 7: ticket {} ({:?}) asked and got {d:?}",
            r.ticket,
            r.state
        );
        self.seen.came_in += u64::from(how.is_some());
        self.recs[i].state = M::Active {
            since,
            last_request: self.now,
        };
        self.recs[i].seen = self.now;
        Ok(())
    }

    /// The waiting visitors in the order a fifo line releases them: those back from a missed
    /// turn by ticket, then the rest by ticket.
    fn fifo_order(&self) -> Vec<usize> {
        let mut front: Vec<usize> = (0..self.recs.len())
            .filter(|&i| self.recs[i].front())
            .collect();
        let mut line: Vec<usize> = (0..self.recs.len())
            .filter(|&i| self.recs[i].waiting() && !self.recs[i].front())
            .collect();
        front.sort_by_key(|&i| self.recs[i].ticket);
        line.sort_by_key(|&i| self.recs[i].ticket);
        front.extend(line);
        front
    }

    /// The place the model gives a waiting visitor: exact for fifo lines and for those at the
    /// front in any line; `None` in a random line; unknown (`Err`) in a lottery's line.
    fn model_position(&self, i: usize, order: &[usize]) -> Result<Option<u64>, ()> {
        let r = &self.recs[i];
        if !r.waiting() {
            return Ok(None);
        }
        let place = order.iter().position(|&j| j == i).map(|p| p as u64 + 1);
        match (r.front(), self.line_policy) {
            (true, _) | (false, Policy::Fifo) => Ok(place),
            (false, Policy::Random) => Ok(None),
            (false, Policy::Lottery) => Err(()),
        }
    }

    fn check_view(&self, i: usize, view: &View) -> Step {
        let order = self.fifo_order();
        if let Ok(want) = self.model_position(i, &order) {
            ensure!(
                self,
                view.position == want,
                "ticket {} ({:?}) is shown place {:?}, the model says {want:?}",
                self.recs[i].ticket,
                self.recs[i].state,
                view.position
            );
        }
        ensure!(
            self,
            view.queue_depth == self.waiting() as u64,
            "queue depth {} shown, {} waiting",
            view.queue_depth,
            self.waiting()
        );
        Ok(())
    }

    /// The room ticks at `now`: the model says who must expire and how, then checks what the
    /// engine released.
    fn tick(&mut self) -> Step {
        let s = self.s.clone();
        let expiry = self.expiry();
        let report = tick(&s, &mut self.st, self.now, &mut self.rng);
        self.line_policy = s.policy;
        self.seen.ticks += 1;
        self.check_kept(&expiry.after)?;
        self.take_expiry(&expiry.after);
        ensure!(
            self,
            report.abandoned == expiry.abandoned,
            "{} abandoned, the model says {}",
            report.abandoned,
            expiry.abandoned
        );
        let key = |e: &(EndReason, u64)| (e.0.label(), e.1);
        let (mut got, mut want) = (report.ended.clone(), expiry.ended);
        got.sort_by_key(key);
        want.sort_by_key(key);
        ensure!(
            self,
            got == want,
            "sessions ended {got:?}, the model says {want:?}"
        );
        self.budget.refill(s.admit_per_minute, self.now);
        self.releases(&report.releases)?;
        ensure!(
            self,
            report.released as usize == report.releases.len(),
            "released {} but lists {}",
            report.released,
            report.releases.len()
        );
        self.check_deadlines()
    }

    /// Who the tick must end, with the settings in force now.
    fn expiry(&self) -> Expiry {
        let (now, s) = (self.now, &self.s);
        let abandon = ms(s.abandon_after);
        let mut e = Expiry {
            after: Vec::with_capacity(self.recs.len()),
            ended: Vec::new(),
            abandoned: 0,
        };
        for r in &self.recs {
            let next = match r.state {
                M::Queued { .. } | M::Missed if now >= r.seen + abandon => {
                    e.abandoned += 1;
                    M::Gone(Why::Abandoned)
                }
                M::Released { at } if now >= at + ms(s.release_window) => {
                    e.ended.push((EndReason::NoShow, now - at));
                    if r.seen + abandon > now && !r.no_showed {
                        M::Missed
                    } else {
                        M::Gone(Why::NoShow)
                    }
                }
                M::Active {
                    since,
                    last_request,
                } => {
                    let idle = last_request + ms(s.session_ttl);
                    let (due, why, reason) = match s.max_session.map(|m| since + ms(m)) {
                        Some(cap) if cap <= idle => (cap, Why::MaxSession, EndReason::MaxSession),
                        _ => (idle, Why::Idle, EndReason::Idle),
                    };
                    if now < due {
                        r.state
                    } else {
                        e.ended.push((reason, now - since));
                        M::Gone(why)
                    }
                }
                other => other,
            };
            e.after.push(next);
        }
        e
    }

    /// Rule 1 (and 3, 4, `abandon_after`): the tick kept exactly those the model keeps.
    fn check_kept(&self, after: &[M]) -> Step {
        for (r, next) in self.recs.iter().zip(after) {
            let has = self.st.sessions.get(&r.id);
            match (next, has) {
                (M::Gone(why), Some(e)) if r.alive() => {
                    let rule = match why {
                        Why::Idle | Why::MaxSession => "rule 3",
                        Why::NoShow => "rule 4",
                        _ => "abandon_after",
                    };
                    return Err(format!(
                        "at {} ms: {rule}: ticket {} ({:?}, last seen {} ms ago) should have \
                         ended ({why:?}) but is {:?}; settings {:?}",
                        self.now,
                        r.ticket,
                        r.state,
                        self.now - r.seen,
                        e.state,
                        self.s
                    ));
                }
                (M::Gone(_), _) | (_, Some(_)) => {}
                (_, None) => {
                    return Err(format!(
                        "at {} ms: rule 1: ticket {} ({:?}, last seen {} ms ago, abandon_after \
                         {} ms) lost its session at a tick; settings {:?}",
                        self.now,
                        r.ticket,
                        r.state,
                        self.now - r.seen,
                        ms(self.s.abandon_after),
                        self.s
                    ));
                }
            }
        }
        Ok(())
    }

    fn take_expiry(&mut self, after: &[M]) {
        let abandon = ms(self.s.abandon_after);
        for (r, &next) in self.recs.iter_mut().zip(after) {
            if r.alive() && r.state != next {
                match next {
                    M::Gone(Why::Abandoned) => self.seen.abandoned += 1,
                    M::Gone(Why::Idle) => self.seen.idle += 1,
                    M::Gone(Why::MaxSession) => self.seen.max_session += 1,
                    M::Gone(Why::NoShow) => self.seen.no_show_gone += 1,
                    M::Missed => self.seen.no_show_kept += 1,
                    _ => {}
                }
            }
            if r.alive() && !matches!(next, M::Gone(_)) && self.now - r.seen > abandon / 2 {
                self.seen.kept_after_long_absence += 1;
            }
            if matches!(r.state, M::Released { .. }) && next == M::Missed {
                r.no_showed = true;
            }
            r.state = next;
        }
    }

    /// Rules 3 and 4 on the engine's own sessions: nothing is past a deadline after a tick.
    fn check_deadlines(&self) -> Step {
        let (now, s) = (self.now, &self.s);
        for (id, e) in &self.st.sessions {
            let (ttl, window) = (ms(s.session_ttl), ms(s.release_window));
            let cap = s.max_session.map_or(u64::MAX, |m| e.since_ms + ms(m));
            match e.state {
                SessionState::Active => ensure!(
                    self,
                    now < e.seen_ms + ttl && now < cap,
                    "rule 3: {id:?} admitted since {}, idle since {}, past session_ttl {ttl} or \
                     max_session {:?}",
                    e.since_ms,
                    e.seen_ms,
                    s.max_session
                ),
                SessionState::Released => ensure!(
                    self,
                    now < e.since_ms + window,
                    "rule 4: {id:?} released since {} past release_window {window}",
                    e.since_ms
                ),
                SessionState::Queued | SessionState::Missed => {}
            }
            let (due, why) = deadline(s, e);
            ensure!(
                self,
                due > now,
                "{id:?} ({:?}) is past its deadline {due} ({why:?})",
                e.state
            );
        }
        Ok(())
    }

    /// Checks the releases of a tick against the model, then takes them in.
    fn releases(&mut self, released: &[(SessionId, u64)]) -> Step {
        let rel = self.released_recs(released)?;
        let missed = self.passed_over()?;
        if self.s.paused {
            ensure!(
                self,
                rel.is_empty() && missed.is_empty(),
                "a paused room released {} and passed over {}",
                rel.len(),
                missed.len()
            );
            return Ok(());
        }
        let slots = self
            .s
            .active_users
            .map_or(u64::MAX, |c| u64::from(c.saturating_sub(self.admitted())));
        let (lo, hi) = self.budget.whole(self.s.admit_per_minute);
        let room = Room { slots, lo, hi };
        self.check_release_order(&rel, &missed, room)?;
        self.check_fifo_only(&rel)?;
        for &i in &missed {
            self.recs[i].state = M::Missed;
            self.seen.skipped += 1;
        }
        for &i in &rel {
            self.seen.released_from_front += u64::from(self.recs[i].front());
            self.recs[i].state = M::Released { at: self.now };
        }
        let n = rel.len() as u64;
        self.budget.take(self.s.admit_per_minute, n);
        self.seen.releases += n;
        Ok(())
    }

    /// The records of the released, in release order (rule 6: each came back since joining).
    fn released_recs(&self, released: &[(SessionId, u64)]) -> Result<Vec<usize>, String> {
        let mut rel: Vec<usize> = Vec::with_capacity(released.len());
        for (id, _) in released {
            let Some(i) = self.recs.iter().position(|r| r.id == *id) else {
                return Err(format!("at {} ms: released an unknown session", self.now));
            };
            let r = &self.recs[i];
            ensure!(
                self,
                r.waiting(),
                "released ticket {} which the model has {:?}",
                r.ticket,
                r.state
            );
            ensure!(
                self,
                r.returned,
                "rule 6: released ticket {} that never came back since joining",
                r.ticket
            );
            ensure!(
                self,
                !rel.contains(&i),
                "released ticket {} twice",
                r.ticket
            );
            rel.push(i);
        }
        Ok(rel)
    }

    /// Those the release passed over as away (now missed): only tickets never back, in line.
    fn passed_over(&self) -> Result<Vec<usize>, String> {
        let missed: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                self.recs[i].waiting()
                    && self
                        .st
                        .sessions
                        .get(&self.recs[i].id)
                        .is_some_and(|e| e.state == SessionState::Missed)
            })
            .collect();
        for &i in &missed {
            let r = &self.recs[i];
            ensure!(
                self,
                !r.returned && !r.front(),
                "ticket {} (back since joining: {}) was passed over as away",
                r.ticket,
                r.returned
            );
        }
        Ok(missed)
    }

    /// Rules 2, 5 and 6 on one tick's releases: the front first, then the line by its policy,
    /// as many as slots and budget allow.
    fn check_release_order(&mut self, rel: &[usize], missed: &[usize], room: Room) -> Step {
        let order = self.fifo_order();
        let front = order.iter().filter(|&&i| self.recs[i].front()).count();
        let (room_lo, room_hi) = (room.slots.min(room.lo), room.slots.min(room.hi));
        let n = rel.len() as u64;
        ensure!(
            self,
            n <= room_hi,
            "rule 5: released {n} with {} free slots and budget {}",
            room.slots,
            room.hi
        );
        for (k, (&got, &want)) in rel.iter().zip(&order[..front]).enumerate() {
            ensure!(
                self,
                got == want,
                "rule 2: release #{k} was ticket {}, but ticket {} is back at the front",
                self.recs[got].ticket,
                self.recs[want].ticket
            );
        }
        let ready = order.iter().filter(|&&i| self.recs[i].returned).count() as u64;
        match self.s.policy {
            Policy::Fifo => self.check_fifo_release(rel, missed, &order, (room_lo, room_hi))?,
            Policy::Random => {
                ensure!(
                    self,
                    n >= room_lo.min(ready) && n <= room_hi.min(ready),
                    "a random line released {n} with room {room_lo}..={room_hi} and {ready} ready"
                );
                let never_back = order.iter().filter(|&&i| !self.recs[i].returned).count();
                ensure!(
                    self,
                    n >= room_lo || missed.len() == never_back,
                    "a random line ran dry but kept tickets never back in line"
                );
            }
            Policy::Lottery => {}
        }
        // The budget, not the slots, stopped releases while someone was ready.
        if room.hi < room.slots && n < ready {
            self.seen.rate_limited += 1;
        }
        Ok(())
    }

    /// A fifo tick is exact: walking the line in order, tickets never back are passed over and
    /// the others released while there is room (the budget may be a hair short on a whole number).
    fn check_fifo_release(
        &self,
        rel: &[usize],
        missed: &[usize],
        order: &[usize],
        (room_lo, room_hi): (u64, u64),
    ) -> Step {
        let predict = |room: u64| {
            let (mut out, mut passed) = (Vec::new(), Vec::new());
            for &i in order {
                if out.len() as u64 >= room {
                    break;
                }
                if self.recs[i].returned {
                    out.push(i);
                } else {
                    passed.push(i);
                }
            }
            (out, passed)
        };
        let mut passed = missed.to_vec();
        passed.sort_by_key(|&i| self.recs[i].ticket);
        let got = (rel.to_vec(), passed);
        let (lo_guess, hi_guess) = (predict(room_lo), predict(room_hi));
        ensure!(
            self,
            got == lo_guess || got == hi_guess,
            "rules 2/6: fifo released tickets {:?} and passed over {:?}; the model releases {:?} \
             passing over {:?} (room {room_lo}..={room_hi})",
            self.tickets(&got.0),
            self.tickets(&got.1),
            self.tickets(&hi_guess.0),
            self.tickets(&hi_guess.1)
        );
        Ok(())
    }

    /// Rule 2 over a whole fifo run: nobody who came back and holds an earlier ticket is still
    /// waiting when a later ticket is released.
    fn check_fifo_only(&self, rel: &[usize]) -> Step {
        if !self.fifo_only() {
            return Ok(());
        }
        let earliest = (0..self.recs.len())
            .filter(|i| !rel.contains(i) && self.recs[*i].waiting() && self.recs[*i].returned)
            .map(|i| self.recs[i].ticket)
            .min();
        if let Some(t) = earliest {
            for &i in rel {
                ensure!(
                    self,
                    self.recs[i].ticket < t,
                    "rule 2: ticket {} released while ticket {t}, back since joining, waits",
                    self.recs[i].ticket
                );
            }
        }
        Ok(())
    }

    fn tickets(&self, recs: &[usize]) -> Vec<u64> {
        recs.iter().map(|&i| self.recs[i].ticket).collect()
    }

    /// The engine agrees with the model, and the room's rules hold, after every step.
    fn compare(&mut self) -> Step {
        self.compare_sessions()?;
        self.check_capacity()?;
        self.check_places()
    }

    /// Every visitor's session in the engine is what the model says, and there are no others.
    fn compare_sessions(&self) -> Step {
        for r in &self.recs {
            let e = self.st.sessions.get(&r.id);
            let ok = match (r.state, e) {
                (M::Gone(_), None) => true,
                (M::Gone(_), Some(_)) => false,
                (_, None) => {
                    return Err(format!(
                        "at {} ms: rule 1: ticket {} ({:?}, last seen {} ms ago) lost its session",
                        self.now,
                        r.ticket,
                        r.state,
                        self.now - r.seen
                    ));
                }
                (M::Queued { front }, Some(e)) => {
                    e.state == SessionState::Queued
                        && self.st.front.position(r.ticket).is_some() == front
                        && e.returned == r.returned
                }
                (M::Released { at }, Some(e)) => {
                    e.state == SessionState::Released && e.since_ms == at
                }
                (
                    M::Active {
                        since,
                        last_request,
                    },
                    Some(e),
                ) => {
                    e.state == SessionState::Active
                        && e.since_ms == since
                        && e.seen_ms == last_request
                }
                (M::Missed, Some(e)) => e.state == SessionState::Missed && e.returned == r.returned,
            };
            ensure!(
                self,
                ok,
                "ticket {}: the model has {:?} (back: {}), the engine {e:?}",
                r.ticket,
                r.state,
                r.returned
            );
        }
        let alive = self.recs.iter().filter(|r| r.alive()).count();
        ensure!(
            self,
            self.st.sessions.len() == alive,
            "the engine has {} sessions, the model {alive}",
            self.st.sessions.len()
        );
        Ok(())
    }

    /// The engine's counts agree; rule 5; the room's own invariants.
    fn check_capacity(&mut self) -> Step {
        let count = |f: fn(&M) -> bool| self.recs.iter().filter(|r| f(&r.state)).count();
        let active = count(|m| matches!(m, M::Active { .. })) as u32;
        let released = count(|m| matches!(m, M::Released { .. })) as u32;
        let front = count(|m| *m == M::Queued { front: true });
        let engine = (
            self.st.active,
            self.st.released,
            self.st.waiting(),
            self.st.front.len(),
        );
        let model = (active, released, self.waiting() as u64, front);
        ensure!(
            self,
            engine == model,
            "engine counts (active, released, waiting, front) {engine:?}, model {model:?}"
        );
        let admitted = active + released;
        let cap = self.s.active_users;
        if self.over_cap {
            ensure!(
                self,
                admitted <= self.last_admitted,
                "rule 5: admitted grew from {} to {admitted} over a lowered capacity {cap:?}",
                self.last_admitted
            );
            self.over_cap = cap.is_some_and(|c| admitted > c);
        }
        if !self.over_cap
            && let Some(c) = cap
        {
            ensure!(self, admitted <= c, "rule 5: {admitted} admitted over {c}");
        }
        self.last_admitted = admitted;
        let enforced = if self.over_cap { None } else { cap };
        self.st
            .check_invariants(enforced)
            .map_err(|e| format!("at {} ms: invariants: {e}", self.now))
    }

    /// Rule 2: every place as the model orders the line; those back from a missed turn ahead
    /// of every later ticket.
    fn check_places(&self) -> Step {
        let order = self.fifo_order();
        for &i in &order {
            if let Ok(want) = self.model_position(i, &order) {
                let got = self.st.position(self.recs[i].ticket);
                ensure!(
                    self,
                    got == want,
                    "ticket {} ({:?}) at place {got:?}, the model says {want:?}",
                    self.recs[i].ticket,
                    self.recs[i].state
                );
            }
        }
        if self.line_policy != Policy::Fifo {
            return Ok(());
        }
        let mut by_ticket: Vec<(u64, bool, u64)> = order
            .iter()
            .map(|&i| {
                let r = &self.recs[i];
                let place = self.st.position(r.ticket).unwrap_or(u64::MAX);
                (r.ticket, r.front(), place)
            })
            .collect();
        by_ticket.sort_unstable();
        let mut best_later = u64::MAX;
        for &(ticket, front, place) in by_ticket.iter().rev() {
            ensure!(
                self,
                !front || place < best_later,
                "rule 2: ticket {ticket}, back from a missed turn, is at place {place}, behind \
                 a later ticket at place {best_later}"
            );
            best_later = best_later.min(place);
        }
        Ok(())
    }
}

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
