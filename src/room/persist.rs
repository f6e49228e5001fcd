//! A room's state as plain data, for snapshots: taken under the room lock as a cheap copy,
//! turned into an [`Image`] outside it, and restored whole at start. Also the other half of
//! restart safety: visitors whose tickets were handed out after the last snapshot come back at
//! their ticket when they return with a valid token.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::Settings;
use super::bucket::Bucket;
use super::decide::{Visitor, has_room, ms};
use super::line::Line;
use super::lottery::LotteryQueue;
use super::queue::FifoQueue;
use super::random::RandomQueue;
use super::state::{Counters, RoomState, Session, SessionId, SessionState};
use super::tick::deadline;

/// Tickets a room may hand out per millisecond of wall-clock time, on average over a run. A room
/// that starts without a snapshot numbers its tickets from `unix ms × this`, above any ticket an
/// earlier run can have issued, so tickets stay unique even when the state folder was lost.
pub const TICKETS_PER_MS: u64 = 1024;

/// No room hands out tickets beyond this (the wall-clock numbering reaches it in about 140,000
/// years).
pub(super) const MAX_TICKET: u64 = 1 << 62;

/// The fewest tickets reserved ahead of the last snapshot.
pub const MIN_RESERVE: u64 = 100_000;

/// A range of tickets handed out by an earlier run that this room never saw: a valid token
/// carrying one of them re-enters at its ticket, once, until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub from: u64,
    pub to: u64,
    pub until_ms: u64,
}

/// One session as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionImage {
    pub id: [u8; 16],
    pub ticket: u64,
    pub seen_ms: u64,
    pub since_ms: u64,
    pub released_before: u32,
    /// 0 queued (came back since joining), 1 released, 2 active, 3 missed, 4 queued (not yet
    /// back since joining), 5 queued at the front; after a first no-show: 6 missed, 7 at the
    /// front, 8 released.
    pub state: u8,
}

impl SessionImage {
    fn of((id, s): &(SessionId, Session), front: &HashSet<u64>) -> SessionImage {
        SessionImage {
            id: *id.as_bytes(),
            ticket: s.ticket,
            seen_ms: s.seen_ms,
            since_ms: s.since_ms,
            released_before: s.released_before,
            state: match (s.state, s.no_showed) {
                (SessionState::Queued, false) if front.contains(&s.ticket) => 5,
                (SessionState::Queued, true) if front.contains(&s.ticket) => 7,
                (SessionState::Queued, _) if !s.returned => 4,
                (SessionState::Queued, _) => 0,
                (SessionState::Released, false) => 1,
                (SessionState::Released, true) => 8,
                (SessionState::Active, _) => 2,
                (SessionState::Missed, false) => 3,
                (SessionState::Missed, true) => 6,
            },
        }
    }
}

/// The order of the line, where it is not implied by the sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineImage {
    /// Queued sessions in ticket order.
    Fifo,
    /// Queued sessions with no order.
    Random,
    /// Drawn visitors' tickets in release order; the other queued sessions wait in the pool.
    Lottery {
        drawn: Vec<u64>,
        next_draw_ms: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketImage {
    pub tokens: f64,
    pub last_refill_ms: u64,
    pub rate: Option<u32>,
}

/// Everything a room knows, as plain data. Times are on the rooms' clock (unix milliseconds in
/// the gateway), so time that passed while the gateway was down counts on restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub taken_ms: u64,
    pub next_ticket: u64,
    /// No ticket at or above this was handed out before the snapshot was written, and none below
    /// it will be after a restart.
    pub ticket_ceiling: u64,
    pub sessions: Vec<SessionImage>,
    pub line: LineImage,
    pub bucket: BucketImage,
    pub releases: Vec<(u64, u32)>,
    pub first_release_ms: Option<u64>,
    pub counters: Counters,
    pub recovery: Vec<Recovery>,
    /// Tickets that already came back through a recovery range.
    pub recovered: Vec<u64>,
}

/// What is copied under the room lock: flat copies, no per-visitor work beyond a memcpy-like
/// clone. [`Capture::image`] does the rest outside the lock.
pub struct Capture {
    taken_ms: u64,
    next_ticket: u64,
    ticket_ceiling: u64,
    sessions: Vec<(SessionId, Session)>,
    drawn: Option<(Vec<u64>, Option<u64>)>,
    /// Tickets at the front of the line.
    front: Vec<u64>,
    policy: super::Policy,
    bucket: Bucket,
    releases: Vec<(u64, u32)>,
    first_release_ms: Option<u64>,
    counters: Counters,
    recovery: Vec<Recovery>,
    recovered: Vec<u64>,
    events: super::events::EventMarks,
}

impl RoomState {
    /// A room with no history: tickets numbered from the wall clock, and every ticket below
    /// that may come back once (an earlier run whose state is gone may have issued it).
    pub fn fresh(settings: &Settings, now_ms: u64) -> RoomState {
        let mut s = RoomState::new(now_ms, settings.admit_per_minute);
        s.next_ticket = now_ms.saturating_mul(TICKETS_PER_MS).max(1);
        s.snapshot_ticket = s.next_ticket;
        s.ticket_ceiling = s.next_ticket.saturating_add(MIN_RESERVE);
        s.recovery.push(Recovery {
            from: 0,
            to: s.next_ticket,
            until_ms: now_ms + recovery_window(settings),
        });
        super::decide::settle(settings, &mut s, now_ms);
        s
    }

    /// Copies the state for a snapshot and reserves the tickets a restart must not hand out
    /// again. This runs under the room lock: it is one sequential pass writing into `buf`, which
    /// the caller allocated and touched beforehand (see [`scratch`]) so that no page is faulted
    /// in while requests wait.
    pub fn capture_into(&mut self, now_ms: u64, mut buf: Vec<(SessionId, Session)>) -> Capture {
        buf.clear();
        buf.extend_from_slice(self.sessions.table());
        let issued = self.next_ticket - self.snapshot_ticket.min(self.next_ticket);
        // Reserved only once the file holds it: see `reserve_written`.
        let ticket_ceiling = self
            .next_ticket
            .saturating_add(MIN_RESERVE.max(issued.saturating_mul(4)));
        let drawn = match &self.queue {
            Line::Lottery(q) => Some((q.drawn_tickets().collect(), q.next_draw_ms())),
            _ => None,
        };
        Capture {
            taken_ms: now_ms,
            next_ticket: self.next_ticket,
            ticket_ceiling,
            sessions: buf,
            drawn,
            front: self.front.iter().map(|(t, _)| t).collect(),
            policy: self.queue.policy(),
            bucket: self.bucket.clone(),
            releases: self.releases.iter().copied().collect(),
            first_release_ms: self.first_release_ms,
            counters: self.counters.clone(),
            recovery: self.recovery.clone(),
            recovered: self.recovered.iter().copied().collect(),
            events: self.events,
        }
    }

    /// The snapshot of `capture` is on disk: its ticket reserve now holds. A failed write
    /// changes nothing, so the reserve the file really holds is the one measured against.
    pub fn reserve_written(&mut self, capture: (u64, u64)) {
        let (next_ticket, ceiling) = capture;
        if ceiling > self.ticket_ceiling || next_ticket > self.snapshot_ticket {
            self.snapshot_ticket = next_ticket;
            self.ticket_ceiling = ceiling;
        }
    }

    /// [`RoomState::capture_into`] with a buffer allocated under the lock (tests, tools).
    pub fn capture(&mut self, now_ms: u64) -> Capture {
        self.capture_into(now_ms, Vec::new())
    }

    /// Rebuilds a room from `image` at `now_ms`: time that passed while the gateway was down
    /// counts (expiries happen on the first tick), tickets resume above everything an earlier run
    /// may have issued, and tickets issued after the snapshot may come back once.
    pub fn restore(image: Image, settings: &Settings, now_ms: u64) -> Result<RoomState, String> {
        check_ranges(&image)?;
        let mut s = RoomState::new(now_ms, settings.admit_per_minute);
        let queued = s.restore_sessions(&image, settings, now_ms)?;
        check_own_tickets(&image.sessions)?;
        s.queue = restore_line(image.line, queued)?;
        s.bucket = Bucket::restore(
            image.bucket.tokens,
            image.bucket.last_refill_ms.min(now_ms),
            image.bucket.rate,
        );
        s.releases = image.releases.into_iter().collect();
        s.first_release_ms = image.first_release_ms;
        s.counters = image.counters;
        s.recovery = image.recovery;
        s.resume_tickets(image.next_ticket, image.ticket_ceiling, settings, now_ms);
        s.recovered = image.recovered.into_iter().collect();
        // Every timer was just armed with `settings`.
        s.timer_settings = Some(super::tick::timer_key(settings));
        Ok(s)
    }

    /// Puts every session of `image` back, its timer armed with `settings`, those at the front
    /// at the front. Returns the other queued sessions in ticket order: the line is rebuilt
    /// from them.
    fn restore_sessions(
        &mut self,
        image: &Image,
        settings: &Settings,
        now_ms: u64,
    ) -> Result<Vec<(u64, SessionId)>, String> {
        self.sessions.reserve(image.sessions.len());
        // Nobody could poll or come in while the gateway was down: the downtime is not held
        // against anyone. What was already due when the snapshot was taken (a visitor who had
        // stopped polling) still happens on the first tick.
        let clock = Downtime {
            down: now_ms.saturating_sub(image.taken_ms),
            now_ms,
        };
        let mut queued: Vec<(u64, SessionId)> = Vec::new();
        for si in &image.sessions {
            let id = SessionId::from_bytes(si.id);
            let session = restore_session(si, image.next_ticket, settings, clock)?;
            match session.state {
                SessionState::Queued if matches!(si.state, 5 | 7) => {
                    self.front.insert(si.ticket, id)
                }
                SessionState::Queued => queued.push((si.ticket, id)),
                SessionState::Released => self.released += 1,
                SessionState::Active => self.active += 1,
                SessionState::Missed => {}
            }
            self.schedule(session.due_ms, id);
            if self.sessions.insert(id, session).is_some() {
                return Err("a session appears twice".into());
            }
        }
        queued.sort_unstable();
        Ok(queued)
    }

    /// Resumes ticket numbers above everything an earlier run may have issued (`next_ticket`
    /// and `ticket_ceiling` of its snapshot), drops recovery ranges whose time is up, and opens
    /// one for the tickets the earlier run may have issued after its snapshot.
    fn resume_tickets(
        &mut self,
        next_ticket: u64,
        ticket_ceiling: u64,
        settings: &Settings,
        now_ms: u64,
    ) {
        self.next_ticket = ticket_ceiling
            .max(next_ticket)
            .max(now_ms.saturating_mul(TICKETS_PER_MS));
        self.snapshot_ticket = self.next_ticket;
        self.ticket_ceiling = self.next_ticket.saturating_add(MIN_RESERVE);
        self.recovery.retain(|r| r.until_ms > now_ms);
        if self.next_ticket > next_ticket {
            self.recovery.push(Recovery {
                from: next_ticket,
                to: self.next_ticket,
                until_ms: now_ms + recovery_window(settings),
            });
        }
    }
}

/// How long the gateway was down (`down`, ms) before it restored at `now_ms`.
#[derive(Debug, Clone, Copy)]
struct Downtime {
    down: u64,
    now_ms: u64,
}

/// Refuses an image whose ticket numbers or counters are far beyond any clock-based numbering:
/// a damaged file, which would overflow later.
fn check_ranges(image: &Image) -> Result<(), String> {
    if image.next_ticket.max(image.ticket_ceiling) > MAX_TICKET {
        return Err(format!(
            "ticket numbers up to {} are out of range",
            image.next_ticket.max(image.ticket_ceiling)
        ));
    }
    let c = &image.counters;
    let counters = [
        c.joined,
        c.admitted_immediate,
        c.admitted_released,
        c.released,
        c.abandoned,
        c.left_queue,
        c.duplicates,
        c.recovered,
    ];
    if counters.iter().any(|&n| n > MAX_TICKET) {
        return Err("a counter is out of range".into());
    }
    Ok(())
}

/// The session state and `returned` flag a stored state code stands for (see
/// [`SessionImage::state`]).
fn session_state(code: u8) -> Result<(SessionState, bool), String> {
    match code {
        0 | 5 | 7 => Ok((SessionState::Queued, true)),
        4 => Ok((SessionState::Queued, false)),
        1 | 8 => Ok((SessionState::Released, true)),
        2 => Ok((SessionState::Active, true)),
        3 | 6 => Ok((SessionState::Missed, false)),
        n => Err(format!("session state {n} is unknown")),
    }
}

/// One stored session as it lives again, its timer due time computed with `settings`. Its
/// ticket must be below the image's `next_ticket`.
fn restore_session(
    si: &SessionImage,
    next_ticket: u64,
    settings: &Settings,
    clock: Downtime,
) -> Result<Session, String> {
    let (state, returned) = session_state(si.state)?;
    let no_showed = matches!(si.state, 6..=8);
    if si.ticket >= next_ticket {
        return Err(format!("ticket {} was never issued", si.ticket));
    }
    let Downtime { down, now_ms } = clock;
    let (seen, since) = match state {
        // The wait itself (since joining) keeps counting: it is what the visitor lived.
        SessionState::Queued | SessionState::Missed => {
            (si.seen_ms.saturating_add(down), si.since_ms)
        }
        // The release window and `max_session` count from release and admission.
        SessionState::Released | SessionState::Active => (
            si.seen_ms.saturating_add(down),
            si.since_ms.saturating_add(down),
        ),
    };
    let mut session = Session {
        ticket: si.ticket,
        // A clock that went back while the gateway was down does not move anyone ahead.
        seen_ms: seen.min(now_ms),
        since_ms: since.min(now_ms),
        released_before: si.released_before,
        next_poll_ms: 0,
        due_ms: 0,
        state,
        returned,
        no_showed,
        wait_shown_s: 0,
        slowdowns_seen: 0,
    };
    session.due_ms = deadline(settings, &session).0;
    Ok(session)
}

/// Every session holds its own ticket (a place is found by ticket).
fn check_own_tickets(sessions: &[SessionImage]) -> Result<(), String> {
    let mut all: Vec<u64> = sessions.iter().map(|si| si.ticket).collect();
    all.sort_unstable();
    if all.windows(2).any(|w| w[0] == w[1]) {
        return Err("two sessions share a ticket".into());
    }
    Ok(())
}

/// The line of `image`, from the queued sessions (not at the front) in ticket order.
fn restore_line(line: LineImage, queued: Vec<(u64, SessionId)>) -> Result<Line, String> {
    Ok(match line {
        LineImage::Fifo => {
            let mut q = FifoQueue::new();
            for (t, id) in queued {
                q.insert(t, id);
            }
            Line::Fifo(q)
        }
        LineImage::Random => {
            let mut q = RandomQueue::default();
            for (t, id) in queued {
                q.insert(t, id);
            }
            Line::Random(q)
        }
        LineImage::Lottery {
            drawn,
            next_draw_ms,
        } => restore_lottery(drawn, next_draw_ms, queued)?,
    })
}

/// A lottery line: the `drawn` tickets in release order (each queued, none twice), the other
/// queued sessions in the pool.
fn restore_lottery(
    drawn: Vec<u64>,
    next_draw_ms: Option<u64>,
    queued: Vec<(u64, SessionId)>,
) -> Result<Line, String> {
    let by_ticket: HashMap<u64, SessionId> = queued.iter().copied().collect();
    let mut order = Vec::with_capacity(drawn.len());
    let mut in_draw = HashSet::with_capacity(drawn.len());
    for t in drawn {
        let id = by_ticket
            .get(&t)
            .ok_or_else(|| format!("drawn ticket {t} is not queued"))?;
        if !in_draw.insert(t) {
            return Err(format!("ticket {t} drawn twice"));
        }
        order.push((t, *id));
    }
    let pool = queued.into_iter().filter(|(t, _)| !in_draw.contains(t));
    Ok(Line::Lottery(LotteryQueue::restore(
        next_draw_ms,
        order,
        pool,
    )))
}

impl Capture {
    /// (next ticket, ticket ceiling) of this capture, for [`RoomState::reserve_written`].
    pub fn reserve(&self) -> (u64, u64) {
        (self.next_ticket, self.ticket_ceiling)
    }

    /// What the room did about scheduled events, kept beside the image.
    pub fn events(&self) -> super::events::EventMarks {
        self.events
    }

    /// The plain-data image (outside the room lock: this is the per-visitor work).
    pub fn image(self) -> Image {
        let front: HashSet<u64> = self.front.into_iter().collect();
        let sessions = self
            .sessions
            .iter()
            .map(|s| SessionImage::of(s, &front))
            .collect();
        let line = match (self.policy, self.drawn) {
            (super::Policy::Lottery, Some((drawn, next_draw_ms))) => LineImage::Lottery {
                drawn,
                next_draw_ms,
            },
            (super::Policy::Random, _) => LineImage::Random,
            _ => LineImage::Fifo,
        };
        let (tokens, last_refill_ms, rate) = self.bucket.parts();
        Image {
            taken_ms: self.taken_ms,
            next_ticket: self.next_ticket,
            ticket_ceiling: self.ticket_ceiling,
            sessions,
            line,
            bucket: BucketImage {
                tokens,
                last_refill_ms,
                rate,
            },
            releases: self.releases,
            first_release_ms: self.first_release_ms,
            counters: self.counters,
            recovery: self.recovery,
            recovered: self.recovered,
        }
    }
}

/// A buffer for [`RoomState::capture_into`] with room for `sessions` and some growth, every page
/// already touched. Built outside the room lock.
pub fn scratch(sessions: usize) -> Vec<(SessionId, Session)> {
    let blank = (
        SessionId::from_bytes([0; 16]),
        Session {
            ticket: 0,
            seen_ms: 0,
            since_ms: 0,
            released_before: 0,
            next_poll_ms: 0,
            due_ms: 0,
            state: SessionState::Queued,
            returned: false,
            no_showed: false,
            wait_shown_s: 0,
            slowdowns_seen: 0,
        },
    );
    let mut buf = vec![blank; sessions + sessions / 8 + 64];
    buf.clear();
    buf
}

/// How long tickets of an earlier run may come back after a restart: as long as a visitor could
/// have stayed away without losing their place anyway.
fn recovery_window(settings: &Settings) -> u64 {
    ms(settings
        .abandon_after
        .max(settings.session_ttl)
        .max(settings.release_window))
}

/// A valid token whose session the room does not know: if its ticket is one an earlier run
/// handed out after its last snapshot (or one of a run whose state was lost), and it has not come
/// back yet, the visitor takes their place again at that ticket, ahead of everyone who joined
/// later. With `admit_if_free`, a visitor who finds nobody waiting and a free slot is admitted at
/// once, as a new visitor would be. Returns whether the visitor came back.
pub fn recover(
    settings: &Settings,
    state: &mut RoomState,
    v: Visitor,
    now_ms: u64,
    admit_if_free: bool,
) -> bool {
    if !recoverable(state, v, now_ms) {
        return false;
    }
    state.recovered.insert(v.ticket);
    state.counters.recovered += 1;
    let mut session = Session {
        ticket: v.ticket,
        seen_ms: now_ms,
        since_ms: now_ms,
        // Truncation intended: the progress bar takes a wrapping difference.
        released_before: state.counters.released as u32,
        next_poll_ms: 0,
        due_ms: 0,
        state: SessionState::Queued,
        // The token came back: the visitor is here.
        returned: true,
        no_showed: false,
        wait_shown_s: 0,
        slowdowns_seen: 0,
    };
    if admit_if_free && !settings.paused && state.waiting() == 0 && has_room(settings, state) {
        session.state = SessionState::Active;
        state.active += 1;
        state.bucket.take(settings.admit_per_minute, 1);
        state.counters.admitted_immediate += 1;
    } else {
        state.queue.insert(v.ticket, v.id);
    }
    state.sessions.insert(v.id, session);
    super::tick::arm(settings, state, v.id);
    true
}

/// Whether [`recover`] would bring `v` back now.
pub fn recoverable(state: &RoomState, v: Visitor, now_ms: u64) -> bool {
    let in_range = state
        .recovery
        .iter()
        .any(|r| r.from <= v.ticket && v.ticket < r.to && now_ms < r.until_ms);
    in_range
        && !state.sessions.contains_key(&v.id)
        && !state.recovered.contains(&v.ticket)
        && !state.is_waiting(v.ticket)
}

/// Closes recovery ranges whose time is up (called by the tick).
pub(super) fn expire_recovery(state: &mut RoomState, now_ms: u64) {
    if state.recovery.iter().any(|r| r.until_ms <= now_ms) {
        state.recovery.retain(|r| r.until_ms > now_ms);
        if state.recovery.is_empty() {
            state.recovered = HashSet::new();
        } else {
            let open = state.recovery.clone();
            state
                .recovered
                .retain(|t| open.iter().any(|r| r.from <= *t && *t < r.to));
        }
    }
}
