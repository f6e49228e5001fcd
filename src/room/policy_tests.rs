//! The lottery policy through `decide` and `tick`, and switches between policies, with a fake
//! clock and a seeded generator.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{
    Decision, Policy, RoomState, SessionState, Settings, ViewState, Visitor, decide, leave, status,
    tick,
};

fn lottery(cap: u32) -> Settings {
    Settings {
        active_users: Some(cap),
        session_ttl: Duration::from_secs(600),
        abandon_after: Duration::from_secs(600),
        release_window: Duration::from_secs(600),
        policy: Policy::Lottery,
        draw_every: Duration::from_secs(10),
        ..Settings::default()
    }
}

fn visitor(d: &Decision) -> Visitor {
    match d {
        Decision::Admit { visitor, .. } | Decision::Wait { visitor, .. } => *visitor,
        other => panic!("no place: {other:?}"),
    }
}

/// A visitor who joins at `now` and whose page polls at once, as the waiting page does: only a
/// visitor who came back since joining is released.
fn arrive(s: &Settings, st: &mut RoomState, now: u64, rng: &mut StdRng) -> Visitor {
    let v = visitor(&decide(s, st, None, now, rng));
    status(s, st, &v.id, now, rng);
    v
}

/// The ids of released sessions, in release order, over ticks from `from` to `to` (ms, step 1 s).
fn released_over(
    s: &Settings,
    st: &mut RoomState,
    from: u64,
    to: u64,
    rng: &mut StdRng,
) -> Vec<super::SessionId> {
    let mut out = Vec::new();
    for t in (from..=to).step_by(1_000) {
        let r = tick(s, st, t, rng);
        st.check_invariants(s.active_users).unwrap();
        for (id, _) in r.releases {
            leave(st, &id);
            out.push(id);
        }
    }
    out
}

#[test]
fn lottery_holds_arrivals_until_the_draw_then_releases_in_drawn_order() {
    let s = lottery(2);
    let mut st = RoomState::for_settings(&s, 0);
    let mut rng = StdRng::seed_from_u64(11);
    let first: Vec<Visitor> = (0..2).map(|_| arrive(&s, &mut st, 0, &mut rng)).collect();
    let pool: Vec<Visitor> = (0..10)
        .map(|_| arrive(&s, &mut st, 500, &mut rng))
        .collect();
    let v = status(&s, &mut st, &pool[0].id, 1_000, &mut rng).unwrap();
    assert_eq!(v.state, ViewState::Queued);
    assert_eq!(v.position, None);
    assert_eq!(v.queue_depth, 10);
    assert_eq!(v.next_draw_in_ms, Some(9_000));
    assert_eq!(v.progress_percent, 0);
    assert!(v.estimated_wait_seconds.is_some_and(|w| w >= 9));
    // Free slots do not let anyone through before the draw.
    for a in &first {
        leave(&mut st, &a.id);
    }
    assert!(released_over(&s, &mut st, 1_000, 9_000, &mut rng).is_empty());
    // The draw gives everyone a place; the first two places go at once.
    let r = tick(&s, &mut st, 10_000, &mut rng);
    assert_eq!(r.drawn, 10);
    assert_eq!(r.releases.len(), 2);
    let mut order: Vec<_> = r.releases.iter().map(|(id, _)| *id).collect();
    for (id, _) in &r.releases {
        leave(&mut st, id);
    }
    let waiting: Vec<(u64, _)> = pool
        .iter()
        .filter_map(|v| {
            let view = status(&s, &mut st, &v.id, 10_000, &mut rng)?;
            assert_eq!(view.next_draw_in_ms, None);
            Some((view.position.unwrap(), v.id))
        })
        .collect();
    let mut places: Vec<u64> = waiting.iter().map(|(p, _)| *p).collect();
    places.sort_unstable();
    assert_eq!(places, (1..=8).collect::<Vec<_>>());
    // Released in the order of those places.
    let mut by_place = waiting.clone();
    by_place.sort_unstable();
    order.extend(released_over(&s, &mut st, 11_000, 14_000, &mut rng));
    let want: Vec<_> = by_place.iter().map(|(_, id)| *id).collect();
    assert_eq!(&order[2..], &want[..]);
}

#[test]
fn arrivals_after_a_draw_wait_behind_the_drawn() {
    let s = lottery(1);
    let mut st = RoomState::for_settings(&s, 0);
    let mut rng = StdRng::seed_from_u64(12);
    let first = arrive(&s, &mut st, 0, &mut rng);
    let early: Vec<Visitor> = (0..5).map(|_| arrive(&s, &mut st, 0, &mut rng)).collect();
    tick(&s, &mut st, 10_000, &mut rng);
    let late = arrive(&s, &mut st, 10_500, &mut rng);
    let v = status(&s, &mut st, &late.id, 10_500, &mut rng).unwrap();
    assert_eq!(v.position, None);
    assert_eq!(v.next_draw_in_ms, Some(9_500));
    assert_eq!(v.queue_depth, 6);
    st.check_invariants(s.active_users).unwrap();
    leave(&mut st, &first.id);
    // Everyone drawn earlier is released before the late arrival, whatever the next draw says.
    let mut released = Vec::new();
    for t in (11_000..=40_000).step_by(1_000) {
        let r = tick(&s, &mut st, t, &mut rng);
        st.check_invariants(s.active_users).unwrap();
        for (id, _) in r.releases {
            leave(&mut st, &id);
            released.push(id);
        }
    }
    assert_eq!(released.len(), 6);
    assert_eq!(released[5], late.id);
    let mut first_five = released[..5].to_vec();
    first_five.sort();
    let mut want: Vec<_> = early.iter().map(|v| v.id).collect();
    want.sort();
    assert_eq!(first_five, want);
}

#[test]
fn fifo_to_lottery_keeps_the_order_and_back_again() {
    let mut s = lottery(1);
    s.policy = Policy::Fifo;
    let mut st = RoomState::for_settings(&s, 0);
    let mut rng = StdRng::seed_from_u64(13);
    arrive(&s, &mut st, 0, &mut rng);
    let queued: Vec<Visitor> = (0..20).map(|_| arrive(&s, &mut st, 0, &mut rng)).collect();
    s.policy = Policy::Lottery;
    tick(&s, &mut st, 1_000, &mut rng);
    st.check_invariants(s.active_users).unwrap();
    for (i, v) in queued.iter().enumerate() {
        let view = status(&s, &mut st, &v.id, 1_000, &mut rng).unwrap();
        assert_eq!(
            view.position,
            Some(i as u64 + 1),
            "place kept by the switch"
        );
    }
    let newcomer = arrive(&s, &mut st, 1_500, &mut rng);
    let view = status(&s, &mut st, &newcomer.id, 1_500, &mut rng).unwrap();
    assert_eq!(view.position, None, "a newcomer waits for the draw");
    s.policy = Policy::Random;
    tick(&s, &mut st, 2_000, &mut rng);
    assert_eq!(st.queue.len(), 21);
    s.policy = Policy::Fifo;
    tick(&s, &mut st, 3_000, &mut rng);
    st.check_invariants(s.active_users).unwrap();
    for (i, v) in queued.iter().chain([&newcomer]).enumerate() {
        let view = status(&s, &mut st, &v.id, 3_000, &mut rng).unwrap();
        assert_eq!(view.position, Some(i as u64 + 1), "ticket order restored");
    }
    assert!(
        st.sessions
            .values()
            .all(|x| x.state != SessionState::Released)
    );
}

/// 100,000 visitors join a full room; a random tenth abandon from anywhere in the line; the rest
/// are released exactly in ticket order, and positions stay exact along the way.
#[test]
fn fifo_order_is_exact_over_100k_joins_with_abandonment() {
    use rand::RngExt;
    let s = Settings {
        active_users: Some(1_000),
        abandon_after: Duration::from_secs(3_600),
        policy: Policy::Fifo,
        ..lottery(1)
    };
    let mut st = RoomState::for_settings(&s, 0);
    let mut rng = StdRng::seed_from_u64(14);
    let mut admitted = Vec::new();
    let mut queued = Vec::new();
    for _ in 0..101_000 {
        match decide(&s, &mut st, None, 0, &mut rng) {
            Decision::Admit { visitor, .. } => admitted.push(visitor),
            Decision::Wait { visitor, .. } => {
                status(&s, &mut st, &visitor.id, 0, &mut rng);
                queued.push(visitor)
            }
            other => unreachable!("{other:?}"),
        }
    }
    assert_eq!((admitted.len(), queued.len()), (1_000, 100_000));
    let mut stayed = Vec::new();
    for v in &queued {
        if rng.random_bool(0.1) {
            assert!(leave(&mut st, &v.id).is_some());
        } else {
            stayed.push(*v);
        }
    }
    st.check_invariants(s.active_users).unwrap();
    for (i, v) in stayed.iter().enumerate().step_by(997) {
        let view = status(&s, &mut st, &v.id, 0, &mut rng).unwrap();
        assert_eq!(view.position, Some(i as u64 + 1));
    }
    for a in &admitted {
        leave(&mut st, &a.id);
    }
    let mut order = Vec::with_capacity(stayed.len());
    let mut t = 0;
    while order.len() < stayed.len() {
        t += 1_000;
        let r = tick(&s, &mut st, t, &mut rng);
        assert!(!r.releases.is_empty(), "the line stalled at {t} ms");
        for (id, _) in r.releases {
            order.push(st.sessions[&id].ticket);
            leave(&mut st, &id);
        }
        // A visitor still in line moves up by exactly the releases.
        if let Some(next) = stayed.get(order.len()) {
            let view = status(&s, &mut st, &next.id, t, &mut rng).unwrap();
            assert_eq!(view.position, Some(1));
        }
    }
    let want: Vec<u64> = stayed.iter().map(|v| v.ticket).collect();
    assert_eq!(order, want);
    assert!(st.queue.is_empty());
}
