//! Scheduled events in the engine: the pre-queue, the shuffle at the start, and the end.
//!
//! The configuration says which event is in force now (`Settings::event`); the room keeps what
//! it did about it ([`EventMarks`]), so each step happens exactly once, snapshots included:
//!
//! - Pre-queue: the first time the room sees an event's pre-queue it notes the next ticket.
//!   Everyone who joins from then on is in the pre-queue: in line, but nobody is released or let
//!   in, and nobody is shown a place. Visitors already in line before the pre-queue opened keep
//!   their places ahead of it.
//! - Start: the first tick at or after `starts_at` shuffles the pre-queue with the room's CSPRNG
//!   (or keeps arrival order) and gives its visitors the pre-queue's tickets in the new order, so
//!   the line's own order is the drawn one. Fifo rooms keep them in line (ahead of everyone who
//!   comes later), lottery rooms put them first among the drawn, random rooms at the front (the
//!   pre-queue is released in its drawn order before the random line). Until that tick the room
//!   still holds everyone, so nobody is let in by the order before the shuffle.
//! - End: when the running event is no longer in force, a room closed outside events
//!   (`drop_at_end`) drops everyone still waiting, counted; otherwise they stay in line.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::Settings;
use super::line::Line;
use super::state::{RoomState, SessionId, SessionState};

/// The event in force for a room now, as the engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventNow {
    /// Names the event (its name and start, hashed): a moved or renamed event is another one.
    pub id: u64,
    /// Unix milliseconds.
    pub starts_at_ms: u64,
    /// `starts_at` has come (else: the pre-queue).
    pub running: bool,
    /// Shuffle the pre-queue at the start (else: arrival order).
    pub shuffle: bool,
}

/// What the room did about events, kept in snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMarks {
    /// The event whose pre-queue is open, and its first ticket.
    pub prequeue: Option<(u64, u64)>,
    /// The event that started here (its pre-queue was shuffled), until it ends.
    pub started: Option<u64>,
    /// Visitors who lost their place when an event ended in a room closed outside events.
    pub dropped: u64,
}

/// What a tick did about events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStep {
    /// An event started: how many of its pre-queue were put in line.
    pub started: Option<usize>,
    /// An event ended: how many visitors still waiting lost their place (closed outside events).
    pub dropped: Option<usize>,
}

/// Whether the room holds everyone for an event: its pre-queue, or its start before the tick
/// that shuffles.
pub fn holding(settings: &Settings, state: &RoomState) -> bool {
    settings
        .event
        .is_some_and(|e| !e.running || state.events.started != Some(e.id))
}

/// Notes a pre-queue that opened, then, while the room holds everyone, the settings to decide
/// by: the room's, paused. `None`: decide by `settings` as they are.
pub(super) fn hold(settings: &Settings, state: &mut RoomState) -> Option<Settings> {
    let e = settings.event?;
    if !e.running && state.events.prequeue.map(|(id, _)| id) != Some(e.id) {
        state.events.prequeue = Some((e.id, state.next_ticket));
    }
    holding(settings, state).then(|| Settings {
        paused: true,
        ..settings.clone()
    })
}

/// The tick's part: a start or an end, each once.
pub(super) fn step(
    settings: &Settings,
    state: &mut RoomState,
    rng: &mut impl rand::Rng,
) -> EventStep {
    let mut done = EventStep::default();
    let running = settings.event.filter(|e| e.running);
    if let Some(id) = state.events.started
        && running.map(|e| e.id) != Some(id)
    {
        state.events.started = None;
        if settings.drop_at_end {
            done.dropped = Some(drop_waiting(state));
        }
    }
    if let Some(e) = running
        && state.events.started != Some(e.id)
    {
        let first = match state.events.prequeue {
            Some((id, first)) if id == e.id => Some(first),
            _ => None,
        };
        done.started = Some(first.map_or(0, |first| start(state, first, e.shuffle, rng)));
        state.events.started = Some(e.id);
        state.events.prequeue = None;
    } else if settings.event.is_none() && state.events.prequeue.take().is_some() {
        // A pre-queue ended without its start (the operator ended the event early): in a room
        // closed outside events its visitors lose their place, as at any event's end.
        if settings.drop_at_end {
            done.dropped = Some(drop_waiting(state));
        }
    }
    done
}

/// Puts the pre-queue (queued tickets from `first` on) in line in a drawn order: its visitors
/// take its tickets in that order. Returns how many.
fn start(state: &mut RoomState, first: u64, shuffle: bool, rng: &mut impl rand::Rng) -> usize {
    let mut pre: Vec<(u64, SessionId)> = state
        .queue
        .iter()
        .chain(state.front.iter())
        .filter(|(t, _)| *t >= first)
        .collect();
    pre.sort_unstable_by_key(|(t, _)| *t);
    for (t, _) in &pre {
        if !state.front.remove(*t) {
            state.queue.remove(*t);
        }
    }
    let tickets: Vec<u64> = pre.iter().map(|(t, _)| *t).collect();
    let mut order: Vec<SessionId> = pre.into_iter().map(|(_, id)| id).collect();
    if shuffle {
        order.shuffle(rng);
    }
    let placed: Vec<(u64, SessionId)> = tickets.into_iter().zip(order).collect();
    for (t, id) in &placed {
        if let Some(s) = state.sessions.get_mut(id) {
            s.ticket = *t;
        }
    }
    let n = placed.len();
    match &mut state.queue {
        Line::Fifo(q) => placed.into_iter().for_each(|(t, id)| q.insert(t, id)),
        Line::Lottery(q) => q.append_drawn(placed),
        Line::Random(_) => placed
            .into_iter()
            .for_each(|(t, id)| state.front.insert(t, id)),
    }
    n
}

/// Everyone waiting (in line, at the front, or away with a missed turn) loses their place.
fn drop_waiting(state: &mut RoomState) -> usize {
    let ids: Vec<SessionId> = state
        .sessions
        .iter()
        .filter(|(_, s)| matches!(s.state, SessionState::Queued | SessionState::Missed))
        .map(|(id, _)| *id)
        .collect();
    for id in &ids {
        state.remove(id);
    }
    state.events.dropped += ids.len() as u64;
    ids.len()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::super::decide::{Arrival, Decision, Via, ViewState, Visitor, arrive};
    use super::super::{Policy, TickReport, tick};
    use super::*;

    const START: u64 = 100_000;

    fn settings(policy: Policy, running: bool, shuffle: bool) -> Settings {
        Settings {
            active_users: Some(1_000),
            session_ttl: Duration::from_secs(600),
            abandon_after: Duration::from_secs(600),
            policy,
            event: Some(EventNow {
                id: 7,
                starts_at_ms: START,
                running,
                shuffle,
            }),
            ..Settings::default()
        }
    }

    fn at(settings: &Settings, running: bool) -> Settings {
        let mut s = settings.clone();
        if let Some(e) = &mut s.event {
            e.running = running;
        }
        s
    }

    fn page(s: &Settings, st: &mut RoomState, v: Option<Visitor>, now: u64) -> Decision {
        let a = Arrival {
            visitor: v,
            prefix: None,
            via: Via::Page,
        };
        arrive(s, st, a, now, &mut StdRng::seed_from_u64(now))
    }

    fn joined(d: &Decision) -> Visitor {
        match d {
            Decision::Wait { visitor, .. } | Decision::Admit { visitor, .. } => *visitor,
            other => panic!("no place: {other:?}"),
        }
    }

    /// `n` visitors join the pre-queue (each back once, as the page does) and are shown the
    /// countdown, never a place; then the start: the line's order, by arrival index.
    fn prequeue_then_start(s: &Settings, n: usize, seed: u64) -> (RoomState, Vec<usize>) {
        let mut st = RoomState::new(0, None);
        super::super::decide::settle(s, &mut st, 0);
        let pre = at(s, false);
        let mut ids = Vec::new();
        for i in 0..n {
            let now = 1_000 + i as u64;
            let v = joined(&page(&pre, &mut st, None, now));
            match page(&pre, &mut st, Some(v), now) {
                Decision::Wait { view, .. } => {
                    assert_eq!(view.state, ViewState::Prequeue);
                    assert_eq!(view.position, None);
                    assert_eq!(view.estimated_wait_seconds, None);
                    assert_eq!(view.event_starts_at_ms, Some(START));
                    assert_eq!(view.queue_depth, i as u64 + 1);
                }
                other => panic!("{other:?}"),
            }
            ids.push(v.id);
        }
        // Ticks in the pre-queue release and draw nobody, with every slot free.
        let r = tick(&pre, &mut st, 50_000, &mut StdRng::seed_from_u64(seed));
        assert_eq!((r.released, r.drawn), (0, 0));
        // The start, with no free slot, so that every place can be read.
        let run = Settings {
            active_users: Some(0),
            ..at(s, true)
        };
        let r = tick(&run, &mut st, START, &mut StdRng::seed_from_u64(seed));
        assert_eq!(r.event.started, Some(n));
        st.check_invariants(s.active_users).unwrap();
        let order = released_order(&mut st, &ids);
        (st, order)
    }

    /// Positions of the pre-queue, 1..n exactly once, as arrival indexes in place order.
    fn released_order(st: &mut RoomState, ids: &[SessionId]) -> Vec<usize> {
        let mut by_place: Vec<(u64, usize)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let ticket = st.sessions.get(id).map(|s| s.ticket).unwrap_or(0);
                (st.position(ticket).unwrap_or(0), i)
            })
            .collect();
        by_place.sort_unstable();
        let places: Vec<u64> = by_place.iter().map(|(p, _)| *p).collect();
        assert_eq!(places, (1..=ids.len() as u64).collect::<Vec<_>>());
        by_place.into_iter().map(|(_, i)| i).collect()
    }

    #[test]
    fn the_prequeue_admits_nobody_and_the_start_gives_every_place_once() {
        for policy in [Policy::Fifo, Policy::Lottery, Policy::Random] {
            let s = settings(policy, true, true);
            let (mut st, order) = prequeue_then_start(&s, 20, 3);
            assert_ne!(order, (0..20).collect::<Vec<_>>(), "{policy:?}: shuffled");
            // A later arrival comes after the whole pre-queue, by the room's policy.
            let late = joined(&page(&s, &mut st, None, START + 10));
            page(&s, &mut st, Some(late), START + 10);
            let mut released = Vec::new();
            let mut now = START + 1_000;
            while released.len() < 21 {
                let r: TickReport = tick(&s, &mut st, now, &mut StdRng::seed_from_u64(now));
                released.extend(r.releases.iter().map(|(id, _)| *id));
                now += 1_000;
                assert!(now < START + 120_000, "{policy:?}: the line does not move");
            }
            assert_eq!(released.last(), Some(&late.id), "{policy:?}");
            st.check_invariants(s.active_users).unwrap();
        }
    }

    #[test]
    fn without_shuffle_the_prequeue_keeps_arrival_order() {
        let s = settings(Policy::Fifo, true, false);
        let (_, order) = prequeue_then_start(&s, 30, 9);
        assert_eq!(order, (0..30).collect::<Vec<_>>());
    }

    /// Who comes first over many starts: uniform over arrival order (chi-square, 7 visitors,
    /// 6 degrees of freedom, below the 0.1% critical value 22.46).
    #[test]
    fn the_shuffle_is_uniform() {
        let n = 7;
        let runs = 1_400;
        let mut first = vec![0u32; n];
        for seed in 0..runs {
            let (_, order) = prequeue_then_start(&settings(Policy::Fifo, true, true), n, seed);
            first[order[0]] += 1;
        }
        let expected = f64::from(runs as u32) / n as f64;
        let chi: f64 = first
            .iter()
            .map(|&o| (f64::from(o) - expected).powi(2) / expected)
            .sum();
        assert!(chi < 22.46, "chi-square {chi:.2} over {first:?}");
    }

    #[test]
    fn those_in_line_before_the_prequeue_keep_their_places_ahead() {
        let mut s = settings(Policy::Fifo, true, true);
        s.active_users = Some(1);
        let mut st = RoomState::new(0, None);
        let plain = Settings {
            event: None,
            ..s.clone()
        };
        joined(&page(&plain, &mut st, None, 10)); // takes the one slot
        let early = joined(&page(&plain, &mut st, None, 20));
        page(&plain, &mut st, Some(early), 20);
        let pre = at(&s, false);
        for i in 0..5 {
            let v = joined(&page(&pre, &mut st, None, 1_000 + i));
            page(&pre, &mut st, Some(v), 1_000 + i);
        }
        tick(&s, &mut st, START, &mut StdRng::seed_from_u64(1));
        let ticket = st.sessions.get(&early.id).map(|x| x.ticket).unwrap_or(0);
        assert_eq!(st.position(ticket), Some(1));
        st.check_invariants(s.active_users).unwrap();
    }

    #[test]
    fn the_start_happens_once_and_the_end_follows_outside_events() {
        for drop_at_end in [false, true] {
            let mut s = settings(Policy::Fifo, true, true);
            s.active_users = Some(2);
            s.drop_at_end = drop_at_end;
            let (mut st, _) = prequeue_then_start(&s, 6, 4);
            let placed: Vec<(u64, SessionId)> = st.queue.iter().collect();
            // Later ticks of the same running event never shuffle again.
            let r = tick(&s, &mut st, START + 1, &mut StdRng::seed_from_u64(99));
            assert_eq!(r.event.started, None);
            let after: Vec<(u64, SessionId)> = st.queue.iter().collect();
            assert_eq!(
                &placed[2..],
                &after[..],
                "two released, the rest in the same order"
            );
            let ended = Settings {
                event: None,
                ..s.clone()
            };
            let r = tick(
                &ended,
                &mut st,
                START + 2_000,
                &mut StdRng::seed_from_u64(5),
            );
            if drop_at_end {
                assert_eq!(r.event.dropped, Some(4));
                assert_eq!(st.waiting(), 0);
                assert_eq!(st.events.dropped, 4);
            } else {
                assert_eq!(r.event.dropped, None);
                assert_eq!(st.waiting(), 4);
            }
            assert_eq!(st.events.started, None);
            st.check_invariants(s.active_users).unwrap();
        }
    }

    /// A running event's start before its tick: still held, the place shown only after the
    /// shuffle (nobody is let in by the order before it).
    #[test]
    fn the_room_holds_until_the_tick_that_shuffles() {
        let s = settings(Policy::Fifo, true, true);
        let mut st = RoomState::new(0, None);
        let v = joined(&page(&at(&s, false), &mut st, None, 1_000));
        match page(&s, &mut st, Some(v), START) {
            Decision::Wait { view, .. } => assert_eq!(view.state, ViewState::Prequeue),
            other => panic!("{other:?}"),
        }
        tick(&s, &mut st, START, &mut StdRng::seed_from_u64(2));
        assert_eq!(st.released, 1, "released by the start's tick");
    }
}
