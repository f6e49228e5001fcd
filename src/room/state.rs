//! A room's live state: sessions, the queue, counters, and the invariants that tie them together.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::bucket::Bucket;
use super::joins::JoinBudget;
use super::line::Line;
use super::persist::Recovery;
use super::queue::FifoQueue;
use super::sessions::Sessions;

/// A random 128-bit session id (never zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

impl SessionId {
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        SessionId(bytes)
    }

    pub fn from_u128(n: u128) -> Self {
        SessionId(n.to_be_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A fresh id from `rng` (which must be a CSPRNG outside tests).
    pub fn random(rng: &mut impl rand::Rng) -> Self {
        loop {
            let mut b = [0u8; 16];
            rng.fill_bytes(&mut b);
            if b != [0u8; 16] {
                return SessionId(b);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// In line (or at the front, see [`RoomState::front`]).
    Queued,
    Released,
    Active,
    /// Its turn came while it was away (released and a no-show, or skipped by a release before
    /// it ever came back): out of line, holding no slot, its ticket kept until `abandon_after`
    /// from when it was last seen. Coming back puts it at the front.
    Missed,
}

/// One visitor. Times are milliseconds on the room's clock. Kept small (56 bytes): a room
/// holds one per visitor, a million in a big sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub ticket: u64,
    /// Last poll (queued) or last request (active).
    pub seen_ms: u64,
    /// When it joined (queued), was released (released) or admitted (active).
    pub since_ms: u64,
    /// The room's release count when this session joined, truncated to 32 bits (the progress
    /// bar takes a wrapping difference, exact below four billion releases).
    pub released_before: u32,
    pub state: SessionState,
    /// Came back (a poll, a reload, any request) since it joined: only such a session is
    /// released; one that takes a ticket and never returns is skipped and never holds a slot.
    pub returned: bool,
    /// Was released once and did not come in within `release_window`: it keeps its ticket that
    /// once; a second no-show ends it (so a client that polls but never comes cannot hold a slot
    /// again and again).
    pub no_showed: bool,
    /// The estimated wait (s) this queued visitor was last shown, 0 for none: the next one shown
    /// is not longer unless the operator slowed admissions since (see `RoomState::slowdowns`).
    /// Not kept in snapshots.
    pub wait_shown_s: u32,
    /// `RoomState::slowdowns` when `wait_shown_s` was shown (truncated).
    pub slowdowns_seen: u16,
    /// A queued session's poll before this (half the `poll_after_seconds` its last answered
    /// poll was given) is answered 429 without any work. 0: none. Not kept in snapshots.
    pub next_poll_ms: u64,
    /// When the session's live timer is due (see `tick::arm`); entries of the timer heap for
    /// other times are stale and dropped. Not kept in snapshots.
    pub due_ms: u64,
}

/// How a session was admitted, for `anteroom_admitted_total{how}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitHow {
    Immediate,
    Released,
}

impl AdmitHow {
    pub fn label(self) -> &'static str {
        match self {
            AdmitHow::Immediate => "immediate",
            AdmitHow::Released => "released",
        }
    }
}

/// Why a session ended, for `anteroom_sessions_ended_total{reason}` (queued visitors who stop
/// polling are counted as abandoned instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Idle,
    MaxSession,
    Leave,
    Revoke,
    /// Released but did not come within `release_window`.
    NoShow,
}

impl EndReason {
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::MaxSession => "max_session",
            EndReason::Leave => "leave",
            EndReason::Revoke => "revoke",
            EndReason::NoShow => "no_show",
        }
    }
}

/// Lifetime totals of a room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub joined: u64,
    pub admitted_immediate: u64,
    pub admitted_released: u64,
    pub released: u64,
    pub abandoned: u64,
    pub left_queue: u64,
    pub duplicates: u64,
    /// Visitors who came back at their ticket after a restart (see `persist::recover`).
    #[serde(default)]
    pub recovered: u64,
}

/// Everything a room knows. Guarded by the room's mutex; the lock covers one decision or one
/// tick, never I/O.
#[derive(Debug)]
pub struct RoomState {
    pub sessions: Sessions,
    pub queue: Line,
    /// Next ticket to hand out; strictly increasing.
    pub next_ticket: u64,
    /// Sessions in `Active` state.
    pub active: u32,
    /// Sessions in `Released` state.
    pub released: u32,
    /// Visitors whose turn came while they were away and who came back within `abandon_after`:
    /// released before anyone in `queue`, in ticket order.
    pub front: FifoQueue,
    pub bucket: Bucket,
    /// When each session must next be looked at by the tick: (due ms, session). A session may
    /// have stale entries; the tick re-checks against the session's real times.
    pub timers: BinaryHeap<Reverse<(u64, SessionId)>>,
    /// Releases per tick over the last minute: (ms, count).
    pub releases: VecDeque<(u64, u32)>,
    pub first_release_ms: Option<u64>,
    pub counters: Counters,
    /// Ticket ranges of earlier runs that may still come back (see `persist::recover`).
    pub recovery: Vec<Recovery>,
    /// Tickets that already came back.
    pub recovered: HashSet<u64>,
    /// `next_ticket` at the last snapshot: how many tickets to reserve ahead of the next one.
    pub snapshot_ticket: u64,
    /// The reserve the last snapshot wrote: tickets below it are never handed out again.
    pub ticket_ceiling: u64,
    /// The durations every session timer was armed with (ms: session_ttl, max_session,
    /// release_window, abandon_after); `None` when unknown or mixed (a change between ticks):
    /// the next tick re-arms every session.
    pub timer_settings: Option<[Option<u64>; 4]>,
    /// The admission limits last seen (`active_users`, `admit_per_minute`), to notice when an
    /// operator lowers one.
    pub limits_seen: Option<(Option<u32>, Option<u32>)>,
    /// How many times the operator lowered capacity or rate: an estimate may then rise.
    pub slowdowns: u32,
    /// When the operator last lowered capacity or rate.
    pub slowed_at_ms: Option<u64>,
    /// The last tick's releases stopped because the `admit_per_minute` budget ran out while a
    /// slot was free and someone waited: releases go exactly at the budget's pace.
    pub budget_bound: bool,
    /// When missed visitors came back to the front, over the last minute: each takes a release
    /// without moving the line, so the line moves that much slower than releases.
    pub returns: VecDeque<u64>,
    /// New sessions per client address prefix (`max_joins_per_prefix_per_minute`); pruned by
    /// the tick. Not kept in snapshots.
    pub joins: JoinBudget,
    /// What the room did about scheduled events (see `events`).
    pub events: super::events::EventMarks,
}

impl RoomState {
    pub fn new(now_ms: u64, admit_per_minute: Option<u32>) -> Self {
        RoomState {
            sessions: Sessions::default(),
            queue: Line::default(),
            next_ticket: 1,
            active: 0,
            released: 0,
            front: FifoQueue::new(),
            bucket: Bucket::full(admit_per_minute, now_ms),
            timers: BinaryHeap::new(),
            releases: VecDeque::new(),
            first_release_ms: None,
            counters: Counters::default(),
            recovery: Vec::new(),
            recovered: HashSet::new(),
            snapshot_ticket: 1,
            ticket_ceiling: 1,
            timer_settings: None,
            limits_seen: None,
            slowdowns: 0,
            slowed_at_ms: None,
            budget_bound: false,
            returns: VecDeque::new(),
            joins: JoinBudget::default(),
            events: Default::default(),
        }
    }

    /// A new room whose line already has the policy of `settings` (tests; the gateway's rooms
    /// start from `fresh` and are settled when their settings are put into force).
    #[cfg(test)]
    pub(crate) fn for_settings(settings: &super::Settings, now_ms: u64) -> Self {
        let mut st = RoomState::new(now_ms, settings.admit_per_minute);
        super::decide::settle(settings, &mut st, now_ms);
        st
    }

    /// Whether half of the tickets reserved by the last snapshot are spent: time to write the
    /// next one early, before the reserve runs out.
    pub fn reserve_half_spent(&self) -> bool {
        let reserve = self.ticket_ceiling.saturating_sub(self.snapshot_ticket);
        self.next_ticket.saturating_sub(self.snapshot_ticket) >= reserve / 2
    }

    /// Hands out the next ticket.
    pub fn take_ticket(&mut self) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    pub fn schedule(&mut self, due_ms: u64, id: SessionId) {
        self.timers.push(Reverse((due_ms, id)));
    }

    /// Removes a session in any state, freeing its slot or its place. Returns it.
    pub fn remove(&mut self, id: &SessionId) -> Option<Session> {
        let s = self.sessions.remove(id)?;
        match s.state {
            SessionState::Queued => {
                if !self.front.remove(s.ticket) {
                    self.queue.remove(s.ticket);
                }
            }
            SessionState::Released => self.released -= 1,
            SessionState::Active => self.active -= 1,
            SessionState::Missed => {}
        }
        Some(s)
    }

    /// Notices an operator lowering `active_users` or `admit_per_minute` (a reload, the admin
    /// API): waits then honestly grow, and visitors are told why.
    pub fn note_limits(
        &mut self,
        active_users: Option<u32>,
        admit_per_minute: Option<u32>,
        now_ms: u64,
    ) {
        let now = (active_users, admit_per_minute);
        let lowered = |old: Option<u32>, new: Option<u32>| match (old, new) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => b < a,
            _ => false,
        };
        if let Some((cap, rate)) = self.limits_seen
            && (lowered(cap, active_users) || lowered(rate, admit_per_minute))
        {
            self.slowdowns = self.slowdowns.wrapping_add(1);
            self.slowed_at_ms = Some(now_ms);
        }
        self.limits_seen = Some(now);
    }

    /// Visitors waiting to be released: those at the front and those in line.
    pub fn waiting(&self) -> u64 {
        (self.front.len() + self.queue.len()) as u64
    }

    /// A queued ticket's 1-based place: behind everyone at the front. `None` when not queued or
    /// without a stable place (random queues; a lottery before the visitor's draw).
    pub fn position(&self, ticket: u64) -> Option<u64> {
        match self.front.position(ticket) {
            Some(p) => Some(p),
            None => self
                .queue
                .position(ticket)
                .map(|p| p + self.front.len() as u64),
        }
    }

    /// Whether `ticket` waits at the front or in line.
    pub fn is_waiting(&self, ticket: u64) -> bool {
        self.front.position(ticket).is_some() || self.queue.contains(ticket)
    }

    /// Checks that counts, the queue and the sessions agree. Used by tests and simulations.
    pub fn check_invariants(&self, active_users: Option<u32>) -> Result<(), String> {
        let (queued, active, released) = self.check_sessions()?;
        if queued as u64 != self.waiting() {
            return Err(format!(
                "{queued} queued sessions, {} waiting",
                self.waiting()
            ));
        }
        if active != self.active || released != self.released {
            return Err(format!(
                "counted active {} released {}, found {active} {released}",
                self.active, self.released
            ));
        }
        if let Some(cap) = active_users
            && active + released > cap
        {
            return Err(format!(
                "{} admitted over capacity {cap}",
                active + released
            ));
        }
        self.check_line()?;
        self.check_front()
    }

    /// Checks that every session's ticket was issued and that queued sessions, and only they,
    /// wait. Returns how many sessions are queued, active and released.
    fn check_sessions(&self) -> Result<(usize, u32, u32), String> {
        let mut queued = 0usize;
        let mut active = 0u32;
        let mut released = 0u32;
        for (id, s) in &self.sessions {
            match s.state {
                SessionState::Queued => {
                    queued += 1;
                    if !self.is_waiting(s.ticket) {
                        return Err(format!("queued session {id:?} has no place in line"));
                    }
                }
                SessionState::Released => released += 1,
                SessionState::Active => active += 1,
                SessionState::Missed => {
                    if self.is_waiting(s.ticket) {
                        return Err(format!("missed session {id:?} is still in line"));
                    }
                }
            }
            if s.ticket >= self.next_ticket {
                return Err(format!("ticket {} not yet issued", s.ticket));
            }
        }
        Ok((queued, active, released))
    }

    /// Checks that the line is in ticket order (fifo), its stable places are numbered from 1,
    /// and each ticket in it belongs to a queued session.
    fn check_line(&self) -> Result<(), String> {
        let mut last = 0;
        let ordered = matches!(self.queue, Line::Fifo(_));
        for (i, (ticket, id)) in self.queue.iter().enumerate() {
            if ordered && ticket <= last && last != 0 {
                return Err("queue out of ticket order".into());
            }
            last = ticket;
            // Stable places (fifo, the drawn of a lottery) come first, numbered from 1.
            if let Some(p) = self.queue.position(ticket)
                && p != i as u64 + 1
            {
                return Err(format!("ticket {ticket} at place {} says {p}", i + 1));
            }
            match self.sessions.get(&id) {
                Some(s) if s.ticket == ticket && s.state == SessionState::Queued => {}
                _ => return Err(format!("ticket {ticket} in line has no queued session")),
            }
        }
        Ok(())
    }

    /// Checks that each ticket at the front belongs to a queued session (one that came back, or
    /// an event's pre-queue in a random room).
    fn check_front(&self) -> Result<(), String> {
        for (ticket, id) in self.front.iter() {
            match self.sessions.get(&id) {
                Some(s) if s.ticket == ticket && s.state == SessionState::Queued => {}
                _ => {
                    return Err(format!(
                        "ticket {ticket} at the front has no queued session"
                    ));
                }
            }
        }
        Ok(())
    }
}
