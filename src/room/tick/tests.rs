//! The tick's rules, one visitor at a time.

use super::super::decide::{Decision, ViewState, Visitor, decide, status};
use super::*;
use rand::SeedableRng;
use std::time::Duration;

fn settings(cap: u32) -> Settings {
    Settings {
        active_users: Some(cap),
        session_ttl: Duration::from_secs(10),
        abandon_after: Duration::from_secs(5),
        release_window: Duration::from_secs(3),
        ..Settings::default()
    }
}

fn visitor(d: &Decision) -> Visitor {
    match d {
        Decision::Admit { visitor, .. } | Decision::Wait { visitor, .. } => *visitor,
        other => panic!("no place: {other:?}"),
    }
}

/// A visitor who joins at `now` and whose page polls at once: only a visitor who came back
/// since joining is released.
fn arrive(s: &Settings, st: &mut RoomState, now: u64, rng: &mut impl rand::Rng) -> Visitor {
    let v = visitor(&decide(s, st, None, now, rng));
    status(s, st, &v.id, now, rng);
    v
}

#[test]
fn admits_while_there_is_room_then_queues_in_order() {
    let s = settings(2);
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let a = decide(&s, &mut st, None, 0, &mut rng);
    let b = decide(&s, &mut st, None, 0, &mut rng);
    assert!(matches!(a, Decision::Admit { joined: true, .. }));
    assert!(matches!(b, Decision::Admit { joined: true, .. }));
    for want in 1..=3 {
        match decide(&s, &mut st, None, 0, &mut rng) {
            Decision::Wait { view, .. } => assert_eq!(view.position, Some(want)),
            other => panic!("{other:?}"),
        }
    }
    st.check_invariants(s.active_users).unwrap();
}

/// `max_session` far shorter than `session_ttl`, the admitted visitor browsing all along:
/// the cap ends the session within a tick of its deadline, not at the idle deadline. Then a
/// cap lowered mid-run (a reload or the admin API) applies at the next tick.
#[test]
fn max_session_lands_on_time_even_with_a_long_session_ttl_and_when_lowered() {
    let mut s = Settings {
        session_ttl: Duration::from_secs(300),
        max_session: Some(Duration::from_secs(3)),
        ..settings(1)
    };
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let a = arrive(&s, &mut st, 0, &mut rng);
    let b = arrive(&s, &mut st, 0, &mut rng);
    let mut ended_at = None;
    for t in (100..=4_000).step_by(100) {
        decide(&s, &mut st, Some(a), t, &mut rng);
        status(&s, &mut st, &b.id, t, &mut rng);
        let r = tick(&s, &mut st, t, &mut rng);
        st.check_invariants(s.active_users).unwrap();
        if r.ended.iter().any(|(why, _)| *why == EndReason::MaxSession) {
            ended_at.get_or_insert(t);
        }
    }
    assert_eq!(ended_at, Some(3_000), "max_session ended A at {ended_at:?}");
    // B, released at 3 s, comes in; then the cap is lowered from none to 1 s at 10 s, while
    // B has been admitted 6.9 s: it ends at the next tick.
    s.max_session = None;
    decide(&s, &mut st, Some(b), 3_100, &mut rng);
    tick(&s, &mut st, 9_900, &mut rng);
    decide(&s, &mut st, Some(b), 9_950, &mut rng);
    assert!(st.sessions.contains_key(&b.id));
    s.max_session = Some(Duration::from_secs(1));
    let r = tick(&s, &mut st, 10_000, &mut rng);
    assert_eq!(r.ended, vec![(EndReason::MaxSession, 6_900)]);
    st.check_invariants(s.active_users).unwrap();
}

#[test]
fn idle_session_frees_its_slot_and_the_head_is_released() {
    let s = settings(1);
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let first = arrive(&s, &mut st, 0, &mut rng);
    let second = arrive(&s, &mut st, 0, &mut rng);
    // The queued visitor keeps polling; the admitted one goes quiet.
    for t in (1_000..=10_000).step_by(1_000) {
        status(&s, &mut st, &second.id, t, &mut rng);
        let r = tick(&s, &mut st, t, &mut rng);
        st.check_invariants(s.active_users).unwrap();
        if t < 10_000 {
            assert_eq!(r.released, 0, "at {t}");
        } else {
            assert_eq!(r.ended, vec![(EndReason::Idle, 10_000)]);
            assert_eq!(r.released, 1);
        }
    }
    assert!(!st.sessions.contains_key(&first.id));
    let d = decide(&s, &mut st, Some(second), 10_500, &mut rng);
    assert!(matches!(d, Decision::Admit { how: Some(_), .. }));
}

#[test]
fn abandoned_visitor_leaves_and_those_behind_move_up() {
    let s = settings(1);
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let admitted = arrive(&s, &mut st, 0, &mut rng);
    let q: Vec<Visitor> = (0..3).map(|_| arrive(&s, &mut st, 0, &mut rng)).collect();
    for t in (1_000..=6_000).step_by(1_000) {
        decide(&s, &mut st, Some(admitted), t, &mut rng);
        status(&s, &mut st, &q[0].id, t, &mut rng);
        status(&s, &mut st, &q[2].id, t, &mut rng);
        tick(&s, &mut st, t, &mut rng);
        st.check_invariants(s.active_users).unwrap();
    }
    assert!(!st.sessions.contains_key(&q[1].id));
    assert_eq!(st.counters.abandoned, 1);
    let v = status(&s, &mut st, &q[2].id, 6_000, &mut rng).unwrap();
    assert_eq!(v.position, Some(2));
}

#[test]
fn released_visitor_who_never_comes_frees_the_slot() {
    let s = settings(1);
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let a = arrive(&s, &mut st, 0, &mut rng);
    let b = arrive(&s, &mut st, 0, &mut rng);
    let c = arrive(&s, &mut st, 0, &mut rng);
    crate::room::leave(&mut st, &a.id);
    let r = tick(&s, &mut st, 1_000, &mut rng);
    assert_eq!(r.released, 1);
    assert_eq!(st.sessions[&b.id].state, SessionState::Released);
    for t in (2_000..=4_000).step_by(1_000) {
        status(&s, &mut st, &c.id, t, &mut rng);
        let r = tick(&s, &mut st, t, &mut rng);
        st.check_invariants(s.active_users).unwrap();
        if t == 4_000 {
            assert_eq!(r.ended, vec![(EndReason::NoShow, 3_000)]);
            assert_eq!(r.released, 1);
        }
    }
    assert_eq!(st.sessions[&c.id].state, SessionState::Released);
}

/// A released visitor away past `release_window` frees the slot for the next one; back
/// within `abandon_after`, they are at the front, released at the next tick with a free slot,
/// ahead of everyone who joined after them.
#[test]
fn a_no_show_back_within_abandon_after_goes_to_the_front() {
    let s = Settings {
        abandon_after: Duration::from_secs(600),
        ..settings(1)
    };
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let a = arrive(&s, &mut st, 0, &mut rng);
    let b = arrive(&s, &mut st, 0, &mut rng);
    let c = arrive(&s, &mut st, 0, &mut rng);
    let d = arrive(&s, &mut st, 0, &mut rng);
    crate::room::leave(&mut st, &a.id);
    assert_eq!(tick(&s, &mut st, 1_000, &mut rng).released, 1);
    // B's phone is in a pocket; C and D poll. At 4 s B's window is over: C gets the slot.
    for t in (2_000..=4_000).step_by(1_000) {
        status(&s, &mut st, &c.id, t, &mut rng);
        status(&s, &mut st, &d.id, t, &mut rng);
        tick(&s, &mut st, t, &mut rng);
        st.check_invariants(s.active_users).unwrap();
    }
    assert_eq!(st.sessions[&b.id].state, SessionState::Missed);
    assert_eq!(st.sessions[&c.id].state, SessionState::Released);
    // Five minutes later B is back: first in line, ahead of D.
    let v = status(&s, &mut st, &b.id, 300_000, &mut rng).unwrap();
    assert_eq!((v.state, v.position), (ViewState::Queued, Some(1)));
    let v = status(&s, &mut st, &d.id, 300_000, &mut rng).unwrap();
    assert_eq!(v.position, Some(2));
    st.check_invariants(s.active_users).unwrap();
    // C's slot is still taken (C came in and browses): B waits for the next free slot.
    decide(&s, &mut st, Some(c), 4_500, &mut rng);
    decide(&s, &mut st, Some(c), 300_000, &mut rng);
    assert_eq!(tick(&s, &mut st, 300_500, &mut rng).released, 0);
    crate::room::leave(&mut st, &c.id);
    let r = tick(&s, &mut st, 301_000, &mut rng);
    assert_eq!(
        r.releases.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [b.id]
    );
    assert!(matches!(
        decide(&s, &mut st, Some(b), 301_500, &mut rng),
        Decision::Admit { how: Some(_), .. }
    ));
}

/// A ticket taken by something that never comes back (a bot without a cookie jar, a link
/// previewer) is skipped by releases: it never holds a slot. It keeps its ticket until
/// `abandon_after`; back before that, it is at the front.
#[test]
fn a_ticket_that_never_came_back_is_skipped_and_holds_no_slot() {
    let s = Settings {
        abandon_after: Duration::from_secs(60),
        ..settings(1)
    };
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let a = arrive(&s, &mut st, 0, &mut rng);
    let bots: Vec<Visitor> = (0..2)
        .map(|_| visitor(&decide(&s, &mut st, None, 0, &mut rng)))
        .collect();
    let v = arrive(&s, &mut st, 0, &mut rng);
    crate::room::leave(&mut st, &a.id);
    let r = tick(&s, &mut st, 1_000, &mut rng);
    assert_eq!(
        r.releases.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [v.id]
    );
    assert!(
        bots.iter()
            .all(|b| st.sessions[&b.id].state == SessionState::Missed)
    );
    st.check_invariants(s.active_users).unwrap();
    // One bot turns out to be a person after all: back at 30 s, at the front.
    let back = status(&s, &mut st, &bots[0].id, 30_000, &mut rng).unwrap();
    assert_eq!(back.position, Some(1));
    // The other never returns: gone at `abandon_after`, counted as abandoned.
    let mut abandoned = 0;
    for t in (2_000..=61_000).step_by(1_000) {
        decide(&s, &mut st, Some(v), t, &mut rng);
        status(&s, &mut st, &bots[0].id, t.max(30_000), &mut rng);
        abandoned += tick(&s, &mut st, t, &mut rng).abandoned;
    }
    assert_eq!(abandoned, 1);
    assert!(!st.sessions.contains_key(&bots[1].id));
    assert!(st.sessions.contains_key(&bots[0].id));
}

/// A valid token whose session is gone (away past `abandon_after`) is told so when it would
/// have to wait, and nothing changes: no ticket, no session. With a free slot and nobody
/// waiting it is simply a new visitor.
#[test]
fn a_lost_place_is_said_not_silently_restarted() {
    let s = settings(1);
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let a = arrive(&s, &mut st, 0, &mut rng);
    let b = arrive(&s, &mut st, 0, &mut rng);
    let c = arrive(&s, &mut st, 0, &mut rng);
    for t in (1_000..=6_000).step_by(1_000) {
        decide(&s, &mut st, Some(a), t, &mut rng);
        status(&s, &mut st, &c.id, t, &mut rng);
        tick(&s, &mut st, t, &mut rng);
    }
    assert!(
        !st.sessions.contains_key(&b.id),
        "B was away past abandon_after"
    );
    let tickets = st.next_ticket;
    match decide(&s, &mut st, Some(b), 6_500, &mut rng) {
        Decision::Expired { view } => {
            assert_eq!(view.state, ViewState::Expired);
            assert_eq!((view.position, view.queue_depth), (None, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(st.next_ticket, tickets);
    assert!(!st.sessions.contains_key(&b.id));
    crate::room::leave(&mut st, &a.id);
    crate::room::leave(&mut st, &c.id);
    assert!(matches!(
        decide(&s, &mut st, Some(b), 7_000, &mut rng),
        Decision::Admit { joined: true, .. }
    ));
}

/// Timers armed between two ticks with settings the next tick does not have (here: before
/// the first tick, then changed) are re-armed by that tick: a cap set in between lands.
#[test]
fn a_cap_set_before_the_first_tick_lands_at_it() {
    let mut s = Settings {
        session_ttl: Duration::from_secs(271),
        ..settings(1)
    };
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    arrive(&s, &mut st, 0, &mut rng);
    s.max_session = Some(Duration::from_millis(200));
    let r = tick(&s, &mut st, 200, &mut rng);
    assert_eq!(r.ended, vec![(EndReason::MaxSession, 200)]);
}

/// A released visitor who polls (and sees it was released) is there: if it then misses the
/// window, it keeps its ticket for `abandon_after` from that poll, not from its last poll in
/// line.
#[test]
fn a_released_visitors_poll_counts_as_being_there() {
    let s = Settings {
        abandon_after: Duration::from_secs(5),
        release_window: Duration::from_millis(200),
        ..settings(1)
    };
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    let a = arrive(&s, &mut st, 0, &mut rng);
    let c = arrive(&s, &mut st, 0, &mut rng);
    crate::room::leave(&mut st, &a.id);
    tick(&s, &mut st, 100, &mut rng);
    let v = status(&s, &mut st, &c.id, 4_900, &mut rng).unwrap();
    assert_eq!(v.state, ViewState::Released);
    // Window missed; at 5.1 s C was seen 0.2 s ago: missed, not gone.
    tick(&s, &mut st, 5_100, &mut rng);
    assert_eq!(st.sessions[&c.id].state, SessionState::Missed);
}

/// A client that keeps polling but never comes in gets one missed turn back, not more: its
/// second no-show ends the session, so it cannot hold a slot again and again.
#[test]
fn a_second_missed_turn_ends_the_session() {
    let s = Settings {
        abandon_after: Duration::from_secs(600),
        release_window: Duration::from_secs(1),
        ..settings(1)
    };
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    let a = arrive(&s, &mut st, 0, &mut rng);
    let lurker = arrive(&s, &mut st, 0, &mut rng);
    let next = arrive(&s, &mut st, 0, &mut rng);
    crate::room::leave(&mut st, &a.id);
    let mut ended = Vec::new();
    let mut admitted = false;
    for t in (1_000..=8_000).step_by(500) {
        status(&s, &mut st, &lurker.id, t, &mut rng);
        // The next visitor comes in as soon as it is released, and is soon done.
        let v = status(&s, &mut st, &next.id, t, &mut rng);
        if v.is_some_and(|v| v.state == ViewState::Released) {
            let d = decide(&s, &mut st, Some(next), t, &mut rng);
            assert!(matches!(d, Decision::Admit { how: Some(_), .. }));
            crate::room::leave(&mut st, &next.id);
            admitted = true;
        }
        ended.extend(tick(&s, &mut st, t, &mut rng).ended);
        st.check_invariants(s.active_users).unwrap();
    }
    assert_eq!(
        ended
            .iter()
            .filter(|(r, _)| *r == EndReason::NoShow)
            .count(),
        2
    );
    assert!(!st.sessions.contains_key(&lurker.id));
    assert!(
        admitted,
        "the visitor behind got in between the lurker's turns"
    );
}

#[test]
fn paused_room_admits_nobody_and_keeps_places() {
    let mut s = settings(5);
    s.paused = true;
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let a = arrive(&s, &mut st, 0, &mut rng);
    let r = tick(&s, &mut st, 1_000, &mut rng);
    assert_eq!(r.released, 0);
    let v = status(&s, &mut st, &a.id, 1_000, &mut rng).unwrap();
    assert_eq!(v.position, Some(1));
    s.paused = false;
    assert_eq!(tick(&s, &mut st, 2_000, &mut rng).released, 1);
}

#[test]
fn rate_budget_caps_releases() {
    let s = Settings {
        active_users: None,
        admit_per_minute: Some(2),
        abandon_after: Duration::from_secs(120),
        ..settings(1)
    };
    let mut st = RoomState::new(0, s.admit_per_minute);
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut admitted = 0;
    for _ in 0..5 {
        match decide(&s, &mut st, None, 0, &mut rng) {
            Decision::Admit { .. } => admitted += 1,
            d => {
                status(&s, &mut st, &visitor(&d).id, 0, &mut rng);
            }
        }
    }
    assert_eq!(admitted, 2);
    assert_eq!(tick(&s, &mut st, 1_000, &mut rng).released, 0);
    assert_eq!(tick(&s, &mut st, 30_000, &mut rng).released, 1);
}

#[test]
fn random_policy_shows_no_position_and_releases_everyone() {
    let mut s = settings(1);
    s.policy = crate::room::Policy::Random;
    s.abandon_after = Duration::from_secs(600);
    let mut st = RoomState::for_settings(&s, 0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let first = arrive(&s, &mut st, 0, &mut rng);
    let queued: Vec<Visitor> = (0..5).map(|_| arrive(&s, &mut st, 0, &mut rng)).collect();
    tick(&s, &mut st, 1, &mut rng);
    let v = status(&s, &mut st, &queued[0].id, 1, &mut rng).unwrap();
    assert_eq!(v.position, None);
    assert_eq!(v.queue_depth, 5);
    assert!(v.chance_next_minute.is_some_and(|c| c > 0.0 && c <= 1.0));
    crate::room::leave(&mut st, &first.id);
    let mut released = Vec::new();
    for t in 1..=5u64 {
        let r = tick(&s, &mut st, t * 1_000, &mut rng);
        st.check_invariants(s.active_users).unwrap();
        assert_eq!(r.released, 1);
        let id = st
            .sessions
            .iter()
            .find(|(_, x)| x.state == SessionState::Released)
            .map(|(id, _)| *id)
            .unwrap();
        released.push(id);
        crate::room::leave(&mut st, &id);
    }
    assert_eq!(st.queue.len(), 0);
    let mut want: Vec<_> = queued.iter().map(|v| v.id).collect();
    want.sort();
    released.sort();
    assert_eq!(released, want);
}

#[test]
fn switching_policy_keeps_everyone_queued_and_fifo_order_returns() {
    let mut s = settings(1);
    s.abandon_after = Duration::from_secs(600);
    let mut st = RoomState::new(0, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    arrive(&s, &mut st, 0, &mut rng);
    let queued: Vec<Visitor> = (0..20).map(|_| arrive(&s, &mut st, 0, &mut rng)).collect();
    s.policy = crate::room::Policy::Random;
    tick(&s, &mut st, 1, &mut rng);
    st.check_invariants(s.active_users).unwrap();
    assert_eq!(st.queue.len(), 20);
    s.policy = crate::room::Policy::Fifo;
    tick(&s, &mut st, 2, &mut rng);
    st.check_invariants(s.active_users).unwrap();
    for (i, v) in queued.iter().enumerate() {
        let view = status(&s, &mut st, &v.id, 2, &mut rng).unwrap();
        assert_eq!(view.position, Some(i as u64 + 1));
    }
}
