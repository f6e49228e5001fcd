//! The shared store's room rules against a real redis-server, with several connections standing
//! in for several anteroom instances: exact capacity under concurrent joins, each place given
//! once, fifo order across instances, the tick's lease and its fencing, and the ends of a
//! session (leave, revoke, idle, no-show and back to the front).

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use anteroom::room::{AdmitHow, Policy, SessionId, Settings};
use anteroom::store::redis::{Gone, Kind, RedisRooms, Request, State, Ticked};
use support::RedisServer;

/// Stand-ins for three instances: three connections to one server.
async fn instances(server: &RedisServer, n: usize) -> Vec<RedisRooms> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = RedisRooms::connect(&server.url(), "test", Duration::from_secs(2))
            .await
            .unwrap();
        out.push(r);
    }
    out
}

fn fresh(n: u128) -> SessionId {
    SessionId::from_u128(n + 1)
}

fn settings(active_users: u32) -> Settings {
    Settings {
        active_users: Some(active_users),
        ..Settings::default()
    }
}

#[tokio::test]
async fn concurrent_joins_on_three_instances_admit_exactly_the_capacity_and_place_each_once() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 3).await;
    let s = settings(10);
    let joins = (0..300u128).map(|i| {
        let r = rooms[(i % 3) as usize].clone();
        let s = s.clone();
        tokio::spawn(async move {
            r.decide("shop", &s, Request::page(None, fresh(i)))
                .await
                .unwrap()
        })
    });
    let mut admitted = 0;
    let mut waiting = Vec::new();
    for j in joins {
        let a = j.await.unwrap();
        assert!(a.joined);
        match a.kind {
            Kind::Admit => {
                assert_eq!(a.how, Some(AdmitHow::Immediate));
                admitted += 1;
            }
            Kind::Wait => waiting.push(a),
            other => panic!("a new visitor got {other:?}"),
        }
    }
    assert_eq!(admitted, 10, "exactly active_users admitted");
    assert_eq!(waiting.len(), 290);
    // Each place in line is given exactly once, in ticket order (arrival order at the store).
    let mut by_ticket = Vec::new();
    for (i, w) in waiting.iter().enumerate() {
        let st = rooms[i % 3]
            .status("shop", &s, w.session.unwrap())
            .await
            .unwrap();
        assert_eq!(st.kind, Kind::Standing);
        assert_eq!(st.queue_depth, 290);
        by_ticket.push((st.ticket, st.position.unwrap()));
    }
    by_ticket.sort();
    let places: Vec<u64> = by_ticket.iter().map(|(_, p)| *p).collect();
    assert_eq!(places, (1..=290).collect::<Vec<u64>>());
    let tickets: HashSet<u64> = by_ticket.iter().map(|(t, _)| *t).collect();
    assert_eq!(tickets.len(), 290, "tickets are unique");
}

#[tokio::test]
async fn releases_follow_arrival_order_across_instances_under_one_lease() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 3).await;
    let s = settings(2);
    let (mut queued, mut admitted) = (Vec::new(), Vec::new());
    for i in 0..12u128 {
        let a = rooms[(i % 3) as usize]
            .decide("line", &s, Request::page(None, fresh(i)))
            .await
            .unwrap();
        if a.kind == Kind::Admit {
            admitted.push(a.session.unwrap());
        } else {
            // The page asks at once: the visitor is back, on another instance.
            let id = a.session.unwrap();
            rooms[((i + 1) % 3) as usize]
                .status("line", &s, id)
                .await
                .unwrap();
            queued.push(id);
        }
    }
    assert_eq!(queued.len(), 10);
    for id in admitted {
        assert_eq!(rooms[2].leave("line", id).await.unwrap(), Gone::Slot);
    }
    let lease = Duration::from_secs(30);
    let fence = rooms[0]
        .lease("line", &s, "a", lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rooms[1].lease("line", &s, "b", lease).await.unwrap(), None);
    assert_eq!(
        rooms[0].lease("line", &s, "a", lease).await.unwrap(),
        Some(fence.clone()),
        "renewed, same fence"
    );
    let mut released = Vec::new();
    for round in 0..5 {
        // Each round the released visitors come in and leave, freeing both slots.
        match rooms[0].tick("line", &s, &fence).await.unwrap() {
            Ticked::Done { released: n, .. } => assert_eq!(n, 2, "round {round}"),
            Ticked::Fenced => panic!("the holder was fenced"),
        }
        for id in &queued {
            let st = rooms[2].status("line", &s, *id).await.unwrap();
            if st.state == Some(State::Released) && !released.contains(id) {
                released.push(*id);
                let a = rooms[1]
                    .decide("line", &s, Request::page(Some(*id), fresh(999)))
                    .await
                    .unwrap();
                assert_eq!((a.kind, a.how), (Kind::Admit, Some(AdmitHow::Released)));
                assert_eq!(rooms[2].leave("line", *id).await.unwrap(), Gone::Slot);
            }
        }
    }
    assert_eq!(
        released, queued,
        "released in arrival order, across instances"
    );
}

#[tokio::test]
async fn a_lease_lost_to_another_instance_fences_the_old_holder() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 2).await;
    let s = settings(1);
    let short = Duration::from_millis(100);
    let old = rooms[0]
        .lease("fence", &s, "a", short)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rooms[1].lease("fence", &s, "b", short).await.unwrap(), None);
    // The holder stops renewing (a crash): the lease runs out and another instance takes it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let new = rooms[1]
        .lease("fence", &s, "b", short)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(old, new);
    assert_eq!(
        rooms[0].tick("fence", &s, &old).await.unwrap(),
        Ticked::Fenced
    );
    assert!(matches!(
        rooms[1].tick("fence", &s, &new).await.unwrap(),
        Ticked::Done { .. }
    ));
}

#[tokio::test]
async fn a_place_is_the_same_on_every_instance_and_a_missed_turn_goes_to_the_front() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 2).await;
    let s = Settings {
        release_window: Duration::from_millis(100),
        abandon_after: Duration::from_secs(60),
        ..settings(1)
    };
    let first = rooms[0]
        .decide("moves", &s, Request::page(None, fresh(1)))
        .await
        .unwrap();
    assert_eq!(first.kind, Kind::Admit);
    let mut line = Vec::new();
    for i in 2..6u128 {
        let a = rooms[1]
            .decide("moves", &s, Request::page(None, fresh(i)))
            .await
            .unwrap();
        line.push(a.session.unwrap());
    }
    for (i, id) in line.iter().enumerate() {
        let on_a = rooms[0].status("moves", &s, *id).await.unwrap();
        let on_b = rooms[1]
            .decide("moves", &s, Request::page(Some(*id), fresh(99)))
            .await
            .unwrap();
        assert_eq!(on_a.position, Some(i as u64 + 1));
        assert_eq!((on_b.kind, on_b.position), (Kind::Wait, Some(i as u64 + 1)));
        assert!(!on_b.joined, "a refresh keeps the place");
    }
    let fence = rooms[0]
        .lease("moves", &s, "a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    // The admitted visitor leaves; the head of the line is released and never comes.
    assert_eq!(
        rooms[0]
            .leave("moves", first.session.unwrap())
            .await
            .unwrap(),
        Gone::Slot
    );
    rooms[0].tick("moves", &s, &fence).await.unwrap();
    let head = rooms[1].status("moves", &s, line[0]).await.unwrap();
    assert_eq!(head.state, Some(State::Released));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let Ticked::Done { ended, .. } = rooms[0].tick("moves", &s, &fence).await.unwrap() else {
        panic!("fenced");
    };
    assert!(
        ended.contains(&Some(anteroom::room::EndReason::NoShow)),
        "{ended:?}"
    );
    // Its slot went to the next in line at the same tick; back later, the missed visitor is at
    // the front, ahead of everyone who joined after it.
    let next = rooms[1].status("moves", &s, line[1]).await.unwrap();
    assert_eq!(next.state, Some(State::Released));
    let back = rooms[1].status("moves", &s, line[0]).await.unwrap();
    assert_eq!((back.state, back.position), (Some(State::Queued), Some(1)));
    let behind = rooms[0].status("moves", &s, line[2]).await.unwrap();
    assert_eq!(behind.position, Some(2));
}

#[tokio::test]
async fn sessions_end_by_leave_revoke_idle_and_max_session() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 1).await;
    let r = &rooms[0];
    let s = Settings {
        session_ttl: Duration::from_secs(300),
        max_session: Some(Duration::from_millis(100)),
        ..settings(3)
    };
    let mut ids = Vec::new();
    for i in 0..3u128 {
        let a = r
            .decide("ends", &s, Request::page(None, fresh(i)))
            .await
            .unwrap();
        assert_eq!(a.kind, Kind::Admit);
        ids.push(a.session.unwrap());
    }
    let full = r
        .decide("ends", &s, Request::page(None, fresh(10)))
        .await
        .unwrap();
    assert_eq!(full.kind, Kind::Wait, "the room is full");
    assert_eq!(r.leave("ends", ids[0]).await.unwrap(), Gone::Slot);
    assert_eq!(r.leave("ends", ids[0]).await.unwrap(), Gone::None);
    assert_eq!(r.revoke("ends", ids[1]).await.unwrap(), Gone::Slot);
    assert_eq!(
        r.leave("ends", full.session.unwrap()).await.unwrap(),
        Gone::Place
    );
    // max_session (100 ms) far below session_ttl (5 min) still ends the session on time.
    let fence = r
        .lease("ends", &s, "a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let Ticked::Done { ended, active, .. } = r.tick("ends", &s, &fence).await.unwrap() else {
        panic!("fenced");
    };
    assert_eq!(ended, vec![Some(anteroom::room::EndReason::MaxSession)]);
    assert_eq!(active, 0);
    let gone = r
        .decide("ends", &s, Request::page(Some(ids[2]), fresh(11)))
        .await
        .unwrap();
    assert_eq!(
        gone.kind,
        Kind::Admit,
        "a free slot and nobody waiting: admitted again"
    );
    assert!(gone.joined);
}

fn policy(active_users: u32, policy: Policy) -> Settings {
    Settings {
        policy,
        draw_every: Duration::from_millis(200),
        ..settings(active_users)
    }
}

/// Joins `n` visitors on alternating instances (none admitted: the room is full) and has each
/// page ask once from the other instance, as the waiting page does.
async fn queue_up(
    rooms: &[RedisRooms],
    room: &str,
    s: &Settings,
    ids: std::ops::Range<u128>,
) -> Vec<SessionId> {
    let mut line = Vec::new();
    for i in ids {
        let r = &rooms[(i % 2) as usize];
        let a = r
            .decide(room, s, Request::page(None, fresh(i)))
            .await
            .unwrap();
        assert_eq!(a.kind, Kind::Wait, "{a:?}");
        let id = a.session.unwrap();
        rooms[((i + 1) % 2) as usize]
            .status(room, s, id)
            .await
            .unwrap();
        line.push(id);
    }
    line
}

/// Ticks `room` (holding the lease as instance "a") until everyone in `line` was released, each
/// released visitor coming in and leaving at once: the release order. Never more admitted or
/// released than the capacity.
async fn release_all(
    rooms: &[RedisRooms],
    room: &str,
    s: &Settings,
    line: &[SessionId],
) -> Vec<SessionId> {
    let fence = rooms[0]
        .lease(room, s, "a", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("instance a holds the lease");
    let mut order = Vec::new();
    for _ in 0..line.len() * 3 {
        let Ticked::Done {
            active,
            released_now,
            ..
        } = rooms[0].tick(room, s, &fence).await.unwrap()
        else {
            panic!("fenced");
        };
        assert!(active + released_now <= u64::from(s.active_users.unwrap()));
        for id in line {
            if order.contains(id) {
                continue;
            }
            let a = rooms[1]
                .decide(room, s, Request::page(Some(*id), fresh(999)))
                .await
                .unwrap();
            if a.kind == Kind::Admit {
                assert_eq!(a.how, Some(AdmitHow::Released));
                order.push(*id);
                assert_eq!(rooms[0].leave(room, *id).await.unwrap(), Gone::Slot);
            }
        }
        if order.len() == line.len() {
            break;
        }
    }
    order
}

#[tokio::test]
async fn a_random_line_has_no_places_and_releases_uniformly_across_instances() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 2).await;
    let s = policy(1, Policy::Random);
    // 300 rooms of 5 in line: who of the five is released first must be uniform.
    let mut first = [0u32; 5];
    for room in 0..300 {
        let name = format!("random{room}");
        let holder = rooms[0]
            .decide(&name, &s, Request::page(None, fresh(100)))
            .await
            .unwrap();
        assert_eq!(holder.kind, Kind::Admit);
        let line = queue_up(&rooms, &name, &s, 0..5).await;
        if room == 0 {
            let a = rooms[1].status(&name, &s, line[0]).await.unwrap();
            assert_eq!((a.position, a.queue_depth), (None, 5), "no stable place");
        }
        rooms[1]
            .leave(&name, holder.session.unwrap())
            .await
            .unwrap();
        let order = release_all(&rooms, &name, &s, &line).await;
        assert_eq!(order.len(), 5, "everyone released once");
        first[line.iter().position(|id| *id == order[0]).unwrap()] += 1;
    }
    // Chi-square with 4 degrees of freedom; 18.47 is the 0.1% tail.
    let chi2: f64 = first
        .iter()
        .map(|&o| (f64::from(o) - 60.0).powi(2) / 60.0)
        .sum();
    assert!(
        chi2 < 18.47,
        "first releases by arrival {first:?}, chi2 {chi2:.1}"
    );
}

#[tokio::test]
async fn a_lottery_draws_its_pool_shuffled_and_gives_places_only_after_the_draw() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 2).await;
    let s = policy(1, Policy::Lottery);
    let holder = rooms[0]
        .decide("draws", &s, Request::page(None, fresh(100)))
        .await
        .unwrap();
    assert_eq!(holder.kind, Kind::Admit);
    let line = queue_up(&rooms, "draws", &s, 0..20).await;
    let before = rooms[0].status("draws", &s, line[3]).await.unwrap();
    assert_eq!(before.position, None, "no place before the draw");
    let until = before.next_draw_ms.unwrap().saturating_sub(before.now_ms);
    assert!(until <= 200, "the next draw within draw_every: {until} ms");
    assert_eq!((before.drawn, before.pool), (0, 20));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fence = rooms[0]
        .lease("draws", &s, "a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let Ticked::Done { drawing, .. } = rooms[0].tick("draws", &s, &fence).await.unwrap() else {
        panic!("fenced");
    };
    assert_eq!(drawing, 0);
    // Everyone now has a place, each given once, and the order is not the arrival order.
    let mut places = Vec::new();
    for id in &line {
        let a = rooms[0].status("draws", &s, *id).await.unwrap();
        places.push(a.position.unwrap());
    }
    let mut sorted = places.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=20).collect::<Vec<u64>>());
    assert_ne!(
        places, sorted,
        "shuffled (a 1 in 20! chance of arrival order)"
    );
    // A new arrival waits for the next draw, behind everyone drawn.
    let late = rooms[0]
        .decide("draws", &s, Request::page(None, fresh(500)))
        .await
        .unwrap();
    assert_eq!((late.position, late.drawn, late.pool), (None, 20, 1));
    // Releases follow the drawn order.
    rooms[0]
        .leave("draws", holder.session.unwrap())
        .await
        .unwrap();
    let order = release_all(&rooms, "draws", &s, &line).await;
    let mut by_place: Vec<(u64, SessionId)> = places.iter().copied().zip(line.clone()).collect();
    by_place.sort_unstable();
    let drawn: Vec<SessionId> = by_place.into_iter().map(|(_, id)| id).collect();
    assert_eq!(order, drawn);
}

#[tokio::test]
async fn a_large_draw_goes_on_in_bounded_steps_under_the_lease() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 1).await;
    let s = Settings {
        paused: true,
        ..policy(1, Policy::Lottery)
    };
    let mut line = Vec::new();
    for i in 0..2_500u128 {
        let a = rooms[0]
            .decide("big", &s, Request::page(None, fresh(i)))
            .await
            .unwrap();
        line.push(a.session.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    let fence = rooms[0]
        .lease("big", &s, "a", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let Ticked::Done { drawing, .. } = rooms[0].tick("big", &s, &fence).await.unwrap() else {
        panic!("fenced");
    };
    let batch = u64::from(anteroom::store::redis::TICK_BATCH);
    assert_eq!(drawing, 2_500 - batch, "one batch per call");
    // Those drawn so far have places; the rest of the draw none yet.
    let drawn = rooms[0].status("big", &s, line[0]).await.unwrap();
    assert_eq!((drawn.drawn, drawn.pool), (batch, 2_500 - batch));
    assert_eq!(
        rooms[0].draw("big", &s, "stale").await.unwrap(),
        0,
        "nothing drawn without the lease's fencing value"
    );
    assert_eq!(
        rooms[0].draw("big", &s, &fence).await.unwrap(),
        2_500 - 2 * batch
    );
    assert_eq!(rooms[0].draw("big", &s, &fence).await.unwrap(), 0);
    let mut places = HashSet::new();
    for id in &line {
        let a = rooms[0]
            .decide("big", &s, Request::page(Some(*id), fresh(0)))
            .await
            .unwrap();
        assert!(!a.joined);
        places.insert(a.position.unwrap());
    }
    assert_eq!(places, (1..=2_500).collect::<HashSet<u64>>());
}

/// The places of `ids` as the room with settings `s` answers a page view of each.
async fn places(r: &RedisRooms, s: &Settings, ids: &[SessionId]) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for id in ids {
        let a = r
            .decide("switch", s, Request::page(Some(*id), fresh(999)))
            .await
            .unwrap();
        out.push(a.position);
    }
    out
}

#[tokio::test]
async fn a_policy_change_keeps_everyone_queued_and_the_drawn_in_their_order() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let rooms = instances(&server, 2).await;
    let fifo = policy(1, Policy::Fifo);
    let lottery = policy(1, Policy::Lottery);
    let random = policy(1, Policy::Random);
    rooms[0]
        .decide("switch", &fifo, Request::page(None, fresh(100)))
        .await
        .unwrap();
    let line = queue_up(&rooms, "switch", &fifo, 0..6).await;
    let ordered: Vec<Option<u64>> = (1..=6).map(Some).collect();
    // fifo -> lottery: the fifo order stands as if already drawn.
    assert_eq!(places(&rooms[1], &lottery, &line).await, ordered);
    let late = queue_up(&rooms, "switch", &lottery, 6..8).await;
    assert_eq!(
        places(&rooms[1], &lottery, &late).await,
        vec![None, None],
        "in the pool"
    );
    // lottery -> fifo: the drawn keep their places, the pool lines up behind by ticket.
    assert_eq!(places(&rooms[1], &fifo, &line).await, ordered);
    assert_eq!(
        places(&rooms[1], &fifo, &late).await,
        vec![Some(7), Some(8)]
    );
    // fifo -> random: the drawn still go first; the rest have no place.
    assert_eq!(places(&rooms[1], &random, &line).await, ordered);
    assert_eq!(places(&rooms[1], &random, &late).await, vec![None, None]);
}
