//! A seeded simulation of a busy room through `decide` and `tick`: thousands of visitors arrive,
//! poll, abandon, put their phone away for minutes, come in late or never, browse, leave, get
//! revoked or go idle, while the operator changes capacity, rate, pause and policy. The capacity
//! is checked after every decision and tick, the room's full invariants after every 250 ms step,
//! and no visitor away for less than `abandon_after` ever loses their place. Fairness is
//! measured: the Kendall tau between arrival and release order in fifo rooms, and how close the
//! wait estimates (given at join and at every 10th poll) come to the real wait.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{
    Arrival, Decision, Policy, Prefix, RoomState, SessionId, SessionState, Settings, Via,
    ViewState, Visitor, arrive, decide, leave, revoke, status, tick,
};

const STEP_MS: u64 = 250;

/// What a simulated visitor does next.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// In line: poll at `next`; stop polling for good at `quit` (an abandoned tab). `polls`:
    /// polls answered so far.
    Poll {
        next: u64,
        quit: Option<u64>,
        polls: u32,
    },
    /// Released: come in at `at`, or never; the release window closes at `by`.
    Come { at: u64, never: bool, by: u64 },
    /// Admitted: a request at `next` until `until`, then end as `end`.
    Browse { next: u64, until: u64, end: End },
}

#[derive(Debug, Clone, Copy)]
enum End {
    Leave,
    Revoke,
    Idle,
}

struct Agent {
    visitor: Visitor,
    plan: Plan,
}

/// One estimate shown to a visitor, against the wait that followed.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    eta: f64,
    /// Seconds from the estimate to the release.
    actual: f64,
    given_ms: u64,
    released_ms: u64,
    /// Given at join (else at a poll).
    at_join: bool,
    /// The visitor missed a turn while away (their wait is their own doing).
    missed: bool,
}

/// How visitors behave and what the operator does.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    /// Arrival probability per 250 ms step.
    arrival: f64,
    /// Steps during which visitors arrive; the run goes on until the line is empty.
    arriving_steps: u64,
    /// Share of queued visitors who abandon.
    abandon: f64,
    /// Share of released visitors who never come.
    no_show: f64,
    /// Share of polls after which the visitor puts the phone away for 30 s to 8 minutes.
    away: f64,
    /// Operator changes every 30 s (capacity, rate, pause; policy too when `switch_policy`).
    operator: bool,
    switch_policy: bool,
    /// The operator's rate overrides: from this ms on, this `admit_per_minute`.
    overrides: &'static [(u64, Option<u32>)],
    /// How many client address prefixes (/24s) new visitors come from, uniformly.
    prefixes: u8,
}

struct Sim {
    s: Settings,
    st: RoomState,
    engine_rng: StdRng,
    world: StdRng,
    now: u64,
    agents: Vec<Agent>,
    /// Visitors who took a ticket and waited, by session: their ticket.
    waited: HashMap<SessionId, u64>,
    /// Visitors who meant to abandon (excluded from fairness).
    quitters: HashSet<SessionId>,
    /// Tickets of waiting visitors in the order they were released.
    release_order: Vec<u64>,
    /// Estimates given at join and at every 10th poll, by session: (estimate s, when ms, at
    /// join).
    given: HashMap<SessionId, Vec<(u64, u64, bool)>>,
    /// Those estimates against the real wait, once the visitor was released.
    etas: Vec<Estimate>,
    /// Visitors whose turn came while they were away (excluded from the order measure: they
    /// go to the front when back, by design).
    missed: HashSet<SessionId>,
    /// Missed visitors who came back, and were checked to be ahead of every later ticket.
    returns: u64,
    /// Visitors who were released once and did not come in: a second such turn ends them.
    missed_once: HashSet<SessionId>,
    /// Visitors whose session ended at a second missed turn.
    missed_twice: u64,
    /// Absences of phone-like visitors (30 s to 8 minutes).
    absences: u64,
    /// The admitted count may exceed a capacity that was just lowered; it must then only fall.
    over_cap_since_change: bool,
    last_admitted: u32,
    checks: u64,
    /// When each client prefix's visitors took a new session.
    joins: HashMap<Prefix, Vec<u64>>,
    /// New visitors turned away by their prefix's join budget.
    over_budget: u64,
}

impl Sim {
    fn new(s: Settings, seed: u64) -> Self {
        Sim {
            st: RoomState::for_settings(&s, 0),
            s,
            engine_rng: StdRng::seed_from_u64(seed),
            world: StdRng::seed_from_u64(seed ^ 0x5eed),
            now: 0,
            agents: Vec::new(),
            waited: HashMap::new(),
            quitters: HashSet::new(),
            release_order: Vec::new(),
            given: HashMap::new(),
            etas: Vec::new(),
            missed: HashSet::new(),
            returns: 0,
            missed_once: HashSet::new(),
            missed_twice: 0,
            absences: 0,
            over_cap_since_change: false,
            last_admitted: 0,
            checks: 0,
            joins: HashMap::new(),
            over_budget: 0,
        }
    }

    fn check(&mut self) {
        let admitted = self.st.active + self.st.released;
        let cap = self.s.active_users;
        if self.over_cap_since_change {
            assert!(
                admitted <= self.last_admitted,
                "at {} ms: admitted grew from {} to {admitted} over capacity {cap:?}",
                self.now,
                self.last_admitted
            );
            if cap.is_none_or(|c| admitted <= c) {
                self.over_cap_since_change = false;
            }
        }
        if !self.over_cap_since_change
            && let Some(c) = cap
        {
            assert!(
                admitted <= c,
                "at {} ms: {admitted} admitted over {c}",
                self.now
            );
        }
        self.last_admitted = admitted;
    }

    /// The full invariants (counts, queue, sessions), after every step of the run.
    fn check_all(&mut self) {
        self.check();
        let enforced = if self.over_cap_since_change {
            None
        } else {
            self.s.active_users
        };
        if let Err(e) = self.st.check_invariants(enforced) {
            panic!("at {} ms: {e}", self.now);
        }
        self.checks += 1;
    }

    fn run(&mut self, b: Behaviour) {
        let mut step = 0u64;
        while step < b.arriving_steps || self.st.waiting() > 0 || self.st.released > 0 {
            self.now = step * STEP_MS;
            if step < b.arriving_steps && self.world.random_bool(b.arrival) {
                self.arrive(b);
            }
            self.act(b);
            if step == b.arriving_steps {
                // A room left paused would never empty.
                self.s.paused = false;
            }
            if self.now.is_multiple_of(1_000) {
                self.tick();
            }
            if b.operator && self.now.is_multiple_of(30_000) && self.now > 0 {
                self.operate(b);
            }
            for (at, rate) in b.overrides {
                if *at == self.now {
                    self.s.admit_per_minute = *rate;
                }
            }
            self.check_all();
            step += 1;
            assert!(step < 10_000_000, "the line never emptied");
        }
    }

    /// One request through `decide` now, capacity checked after it.
    fn request(&mut self, visitor: Option<Visitor>) -> Decision {
        let d = decide(
            &self.s,
            &mut self.st,
            visitor,
            self.now,
            &mut self.engine_rng,
        );
        self.check();
        d
    }

    /// A new visitor from one of the behaviour's prefixes, through `arrive` as the gateway
    /// sends a navigation: past its prefix's join budget it is turned away (and counted).
    fn arrive(&mut self, b: Behaviour) {
        let net = self.world.random_range(0..b.prefixes.max(1));
        let prefix = Prefix::of(std::net::IpAddr::from([10, 0, net, 1]));
        let arrival = Arrival {
            visitor: None,
            prefix: Some(prefix),
            via: Via::Page,
        };
        let d = arrive(
            &self.s,
            &mut self.st,
            arrival,
            self.now,
            &mut self.engine_rng,
        );
        self.check();
        if matches!(d, Decision::Admit { .. } | Decision::Wait { .. }) {
            self.joins.entry(prefix).or_default().push(self.now);
        }
        match d {
            Decision::OverBudget { view } => {
                assert_eq!(view.position, None, "no place past the budget");
                self.over_budget += 1;
            }
            Decision::Admit { visitor, .. } => {
                let plan = self.browse_plan();
                self.agents.push(Agent { visitor, plan });
            }
            Decision::Wait { visitor, view, .. } => {
                assert_eq!(view.state, self.queued_state());
                self.waited.insert(visitor.id, visitor.ticket);
                if let Some(eta) = view.estimated_wait_seconds {
                    let at = (eta, self.now, true);
                    self.given.entry(visitor.id).or_default().push(at);
                }
                let quit = self.world.random_bool(b.abandon).then(|| {
                    self.quitters.insert(visitor.id);
                    self.now + self.world.random_range(0..120_000)
                });
                // The page asks once right after it loads: the visitor is back.
                let next = self.now + 1_000;
                self.agents.push(Agent {
                    visitor,
                    plan: Plan::Poll {
                        next,
                        quit,
                        polls: 0,
                    },
                });
            }
            other => panic!("a new visitor is never closed out or expired: {other:?}"),
        }
    }

    fn queued_state(&self) -> ViewState {
        if self.s.paused {
            ViewState::Paused
        } else {
            ViewState::Queued
        }
    }

    fn browse_plan(&mut self) -> Plan {
        let end = match self.world.random_range(0..10) {
            0..4 => End::Leave,
            4..6 => End::Revoke,
            _ => End::Idle,
        };
        Plan::Browse {
            next: self.now + self.world.random_range(500..5_000),
            until: self.now + self.world.random_range(5_000..60_000),
            end,
        }
    }

    /// Every visitor whose moment has come acts; those who are done drop out.
    fn act(&mut self, b: Behaviour) {
        let mut agents = std::mem::take(&mut self.agents);
        agents.retain_mut(|a| self.act_one(a, b));
        agents.append(&mut self.agents);
        self.agents = agents;
    }

    /// One visitor acts if their moment has come. Returns whether they stay.
    fn act_one(&mut self, a: &mut Agent, b: Behaviour) -> bool {
        let now = self.now;
        match a.plan {
            Plan::Poll { quit: Some(q), .. } if q <= now => false,
            Plan::Poll { next, quit, polls } if next <= now => self.poll(a, b, quit, polls),
            Plan::Come { never: true, .. } => false,
            Plan::Come { at, by, .. } if at <= now => self.come(a, by),
            Plan::Browse { until, end, .. } if until <= now => {
                self.end_visit(&a.visitor.id, end);
                false
            }
            Plan::Browse { next, until, end } if next <= now => self.browse(a, until, end),
            _ => true,
        }
    }

    /// A visitor in line polls (`polls` answered so far; abandoning at `quit`) and plans what
    /// comes next. Returns whether they stay.
    fn poll(&mut self, a: &mut Agent, b: Behaviour, quit: Option<u64>, polls: u32) -> bool {
        let now = self.now;
        let id = a.visitor.id;
        let was_missed = self
            .st
            .sessions
            .get(&id)
            .is_some_and(|s| s.state == SessionState::Missed);
        // Away for less than `abandon_after` (8 minutes at most, against 10): the place
        // is still there, unless the visitor missed its turn a second time.
        let Some(view) = status(&self.s, &mut self.st, &id, now, &mut self.engine_rng) else {
            assert!(
                self.missed_once.contains(&id),
                "a polling visitor lost their place at {now} ms"
            );
            self.missed_twice += 1;
            return false;
        };
        self.check();
        if was_missed {
            self.check_return(&a.visitor, &view);
        }
        if polls % 10 == 9
            && let Some(eta) = view.estimated_wait_seconds
            && view.state == ViewState::Queued
        {
            self.given.entry(id).or_default().push((eta, now, false));
        }
        a.plan = self.after_poll(&view, b, quit, polls);
        true
    }

    /// What a visitor in line does after a poll answered with `view`.
    fn after_poll(
        &mut self,
        view: &super::View,
        b: Behaviour,
        quit: Option<u64>,
        polls: u32,
    ) -> Plan {
        let now = self.now;
        match view.state {
            // Comes in within 3 s, and within the release window (a phone back just
            // before it closes comes at once).
            ViewState::Released => {
                let left = view.deadlines.release_expires_in_ms.unwrap_or(0);
                Plan::Come {
                    at: now
                        + self
                            .world
                            .random_range(0..3_000)
                            .min(left.saturating_sub(1)),
                    never: self.world.random_bool(b.no_show),
                    by: now + left,
                }
            }
            ViewState::Queued | ViewState::Paused => {
                let mut next = now + view.poll_after_seconds * 1_000;
                if self.world.random_bool(b.away) {
                    self.absences += 1;
                    next = now + self.world.random_range(30_000..=480_000);
                }
                Plan::Poll {
                    next,
                    quit,
                    polls: polls + 1,
                }
            }
            other => panic!("a queued visitor polled and saw {other:?}"),
        }
    }

    /// A released visitor comes in (the release window closed at `by`): admitted, or back at
    /// the front when too late. Returns whether they stay.
    fn come(&mut self, a: &mut Agent, by: u64) -> bool {
        let now = self.now;
        let d = self.request(Some(a.visitor));
        if let Decision::Wait { view, .. } = &d
            && now >= by
        {
            // Too late (the step is 250 ms): a no-show back in time is at the front.
            let front = self.st.front.len() as u64;
            assert!(
                view.position.is_some_and(|p| p <= front),
                "a late visitor is at the front: {view:?}"
            );
            a.plan = Plan::Poll {
                next: now + view.poll_after_seconds * 1_000,
                quit: None,
                polls: 0,
            };
            return true;
        }
        assert!(
            matches!(d, Decision::Admit { how: Some(_), .. }),
            "a released visitor who came in time was not admitted: {d:?}"
        );
        a.plan = self.browse_plan();
        true
    }

    /// An admitted visitor is done browsing and ends as `end`.
    fn end_visit(&mut self, id: &SessionId, end: End) {
        match end {
            End::Leave => {
                leave(&mut self.st, id);
            }
            End::Revoke => {
                revoke(&mut self.st, id);
            }
            End::Idle => {}
        }
        self.check();
    }

    /// An admitted visitor makes a request and plans the next (browsing until `until`, then
    /// ending as `end`). Returns whether they stay.
    fn browse(&mut self, a: &mut Agent, until: u64, end: End) -> bool {
        let d = self.request(Some(a.visitor));
        // A session can end under a visitor (max_session); they would start over.
        if !matches!(d, Decision::Admit { how: None, .. }) {
            return false;
        }
        a.plan = Plan::Browse {
            next: self.now + self.world.random_range(500..5_000),
            until,
            end,
        };
        true
    }

    /// A visitor whose turn came while away is back: nobody who joined after them is ahead.
    fn check_return(&mut self, v: &Visitor, view: &super::View) {
        self.returns += 1;
        if self.s.policy != Policy::Fifo {
            return;
        }
        let earlier = self
            .st
            .front
            .iter()
            .chain(self.st.queue.iter())
            .filter(|(t, _)| *t < v.ticket)
            .count() as u64;
        let place = view.position.expect("a fifo visitor has a place");
        assert!(
            place <= earlier + 1,
            "at {} ms: ticket {} came back at place {place}, behind later tickets \
             ({earlier} earlier ones wait)",
            self.now,
            v.ticket
        );
    }

    fn tick(&mut self) {
        let r = tick(&self.s, &mut self.st, self.now, &mut self.engine_rng);
        self.check();
        for (id, s) in &self.st.sessions {
            if s.state == SessionState::Missed {
                self.missed.insert(*id);
                if s.no_showed {
                    self.missed_once.insert(*id);
                }
            }
        }
        // Every deadline is kept to the tick, the operator's changes included: nobody admitted
        // past `max_session` or idle past `session_ttl`, no slot held past `release_window`.
        for (id, s) in &self.st.sessions {
            let (due, why) = super::tick::deadline(&self.s, s);
            assert!(
                due > self.now,
                "at {} ms: {id:?} ({:?}) is past its deadline {due} ({why:?})",
                self.now,
                s.state
            );
        }
        for (id, waited_ms) in r.releases {
            if let Some(&ticket) = self.waited.get(&id) {
                self.release_order.push(ticket);
            }
            let _ = waited_ms;
            let missed = self.missed.contains(&id);
            for (eta, at, at_join) in self.given.remove(&id).unwrap_or_default() {
                self.etas.push(Estimate {
                    eta: eta as f64,
                    actual: self.now.saturating_sub(at) as f64 / 1_000.0,
                    given_ms: at,
                    released_ms: self.now,
                    at_join,
                    missed,
                });
            }
        }
    }

    fn operate(&mut self, b: Behaviour) {
        let before = self.s.active_users;
        match self.world.random_range(0..5) {
            0 => self.s.active_users = Some(self.world.random_range(5..80)),
            1 => {
                self.s.admit_per_minute = match self.s.admit_per_minute {
                    Some(_) => None,
                    None => Some(self.world.random_range(30..600)),
                }
            }
            2 => self.s.paused = !self.s.paused,
            3 if b.switch_policy => {
                self.s.policy = match self.world.random_range(0..3) {
                    0 => Policy::Fifo,
                    1 => Policy::Random,
                    _ => Policy::Lottery,
                };
                // Put into force at once, as the gateway does on an override.
                crate::room::settle(&self.s, &mut self.st, self.now);
            }
            _ => self.s.max_session = Some(Duration::from_secs(self.world.random_range(20..90))),
        }
        // The room needs a cap of some kind.
        if self.s.active_users.is_none() && self.s.admit_per_minute.is_none() {
            self.s.admit_per_minute = Some(120);
        }
        let admitted = self.st.active + self.st.released;
        if self.s.active_users != before && self.s.active_users.is_some_and(|c| admitted > c) {
            self.over_cap_since_change = true;
        }
    }

    /// Kendall tau between arrival order (tickets) and release order of waiting visitors who
    /// stayed in line: 1.0 when no pair was released out of order.
    fn kendall_tau(&self) -> (f64, usize) {
        let quit: HashSet<u64> = self
            .quitters
            .iter()
            .chain(self.missed.iter())
            .filter_map(|id| self.waited.get(id))
            .copied()
            .collect();
        let stayed: Vec<u64> = self
            .release_order
            .iter()
            .copied()
            .filter(|t| !quit.contains(t))
            .collect();
        let n = stayed.len();
        let mut discordant = 0u64;
        for i in 0..n {
            for j in i + 1..n {
                if stayed[i] > stayed[j] {
                    discordant += 1;
                }
            }
        }
        let pairs = (n as u64 * n.saturating_sub(1) as u64 / 2).max(1);
        (1.0 - 2.0 * discordant as f64 / pairs as f64, n)
    }
}

mod chaos;
mod honesty;
