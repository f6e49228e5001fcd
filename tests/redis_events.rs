//! Scheduled events in the shared store's room code, against a real redis-server, with
//! connections standing in for instances: the pre-queue holds everyone (no place, nobody let
//! in), the start puts it in line once by the memory store's placement rules for each policy
//! (fifo in line behind those already waiting, lottery first among the drawn, random at the
//! front), the shuffle is uniform, and the end drops those waiting once, counted.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::time::Duration;

use anteroom::room::{EventNow, EventStep, Policy, SessionId, Settings};
use anteroom::store::redis::{Answer, Kind, RedisRooms, Request, Ticked};
use support::RedisServer;

async fn connect(server: &RedisServer) -> RedisRooms {
    RedisRooms::connect(&server.url(), "test", Duration::from_secs(2))
        .await
        .unwrap()
}

/// A room with no free slot (every place can be read), `policy`, and event 7 in force:
/// `running` or in its pre-queue; `None`: no event.
fn settings(policy: Policy, event: Option<(bool, bool)>) -> Settings {
    Settings {
        active_users: Some(0),
        policy,
        event: event.map(|(running, shuffle)| EventNow {
            id: 7,
            starts_at_ms: 1_000,
            running,
            shuffle,
        }),
        ..Settings::default()
    }
}

/// A new visitor who comes back once (a page view: no poll floor); their session.
async fn join(r: &RedisRooms, room: &str, s: &Settings, n: u128) -> SessionId {
    let a = r
        .decide(room, s, Request::page(None, SessionId::from_u128(n)))
        .await
        .unwrap();
    assert_eq!(a.kind, Kind::Wait, "{a:?}");
    let id = a.session.unwrap();
    again(r, room, s, id).await;
    id
}

/// A known visitor's page view.
async fn again(r: &RedisRooms, room: &str, s: &Settings, id: SessionId) -> Answer {
    let fresh = SessionId::from_u128(u128::MAX);
    let a = r
        .decide(room, s, Request::page(Some(id), fresh))
        .await
        .unwrap();
    assert_eq!((a.kind.clone(), a.session), (Kind::Wait, Some(id)), "{a:?}");
    a
}

/// One tick under the lease; what the tick said about events.
async fn tick(r: &RedisRooms, room: &str, s: &Settings) -> EventStep {
    let fence = r
        .lease(room, s, "one", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    match r.tick(room, s, &fence).await.unwrap() {
        Ticked::Done { event, .. } => event,
        Ticked::Fenced => panic!("fenced"),
    }
}

async fn position(r: &RedisRooms, room: &str, s: &Settings, id: SessionId) -> Option<u64> {
    let a = again(r, room, s, id).await;
    assert!(!a.holding, "{a:?}");
    a.position
}

/// `n` visitors join the pre-queue of `room`; each is held with no place. Their sessions, in
/// arrival order.
async fn prequeue(r: &RedisRooms, room: &str, s: &Settings, n: usize) -> Vec<SessionId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = join(r, room, s, 1_000 + i as u128).await;
        let a = again(r, room, s, id).await;
        assert!(a.holding, "{a:?}");
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn the_start_places_the_prequeue_once_by_each_policy_as_the_memory_store_does() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let r = connect(&server).await;
    for policy in [Policy::Fifo, Policy::Lottery, Policy::Random] {
        let room = format!("place-{}", policy.as_str());
        let (plain, pre, run) = (
            settings(policy, None),
            settings(policy, Some((false, true))),
            settings(policy, Some((true, true))),
        );
        let early = join(&r, &room, &plain, 1).await;
        let n = 10;
        let ids = prequeue(&r, &room, &pre, n).await;
        assert_eq!(tick(&r, &room, &pre).await, EventStep::default());
        // Everyone is held until the tick that starts the event, even by a running event.
        assert!(again(&r, &room, &run, ids[0]).await.holding);
        let step = tick(&r, &room, &run).await;
        assert_eq!(step.started, Some(n), "{policy:?}");
        assert_eq!(tick(&r, &room, &run).await, EventStep::default(), "once");

        let mut places = Vec::new();
        for id in &ids {
            places.push(position(&r, &room, &run, *id).await.unwrap());
        }
        let mut sorted = places.clone();
        sorted.sort_unstable();
        let early_at = position(&r, &room, &run, early).await;
        let late = join(&r, &room, &run, 99).await;
        let late_at = position(&r, &room, &run, late).await;
        match policy {
            // In line by the pre-queue's tickets: behind the one waiting before, ahead of later
            // arrivals.
            Policy::Fifo => {
                assert_eq!(early_at, Some(1));
                assert_eq!(sorted, (2..=n as u64 + 1).collect::<Vec<_>>());
                assert_eq!(late_at, Some(n as u64 + 2));
            }
            // First among the drawn; the earlier pool is drawn behind them, later arrivals
            // wait for a draw.
            Policy::Lottery => {
                assert_eq!(sorted, (1..=n as u64).collect::<Vec<_>>());
                assert!(early_at.is_none_or(|p| p > n as u64), "{early_at:?}");
                assert_eq!(late_at, None);
            }
            // At the front, released first in the drawn order; the random line has no places.
            Policy::Random => {
                assert_eq!(sorted, (1..=n as u64).collect::<Vec<_>>());
                assert_eq!((early_at, late_at), (None, None));
            }
        }
        let arrival: Vec<u64> = match policy {
            Policy::Fifo => (2..=n as u64 + 1).collect(),
            _ => (1..=n as u64).collect(),
        };
        assert_ne!(places, arrival, "{policy:?}: shuffled");
    }
}

#[tokio::test]
async fn without_the_shuffle_the_prequeue_keeps_arrival_order_and_the_end_drops_it_once() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let r = connect(&server).await;
    let pre = settings(Policy::Fifo, Some((false, false)));
    let run = settings(Policy::Fifo, Some((true, false)));
    let ids = prequeue(&r, "keep", &pre, 12).await;
    assert_eq!(tick(&r, "keep", &run).await.started, Some(12));
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(position(&r, "keep", &run, *id).await, Some(i as u64 + 1));
    }
    // The end in a room closed outside events: everyone waiting is dropped, counted once.
    let ended = Settings {
        drop_at_end: true,
        ..settings(Policy::Fifo, None)
    };
    assert_eq!(tick(&r, "keep", &ended).await.dropped, Some(12));
    assert_eq!(tick(&r, "keep", &ended).await, EventStep::default());
    let f = r.figures("keep", &ended, "one").await.unwrap();
    assert_eq!((f.dropped_at_end, f.waiting, f.holding), (12, 0, false));
}

/// Who comes first over many starts on Redis: uniform over arrival order (chi-square, 5
/// visitors, 4 degrees of freedom, below the 0.1% critical value 18.47).
#[tokio::test]
async fn the_shuffle_at_the_start_is_uniform() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let r = connect(&server).await;
    let pre = settings(Policy::Fifo, Some((false, true)));
    let run = settings(Policy::Fifo, Some((true, true)));
    let (n, runs) = (5, 400);
    let mut first = vec![0u32; n];
    for k in 0..runs {
        let room = format!("uniform-{k}");
        let ids = prequeue(&r, &room, &pre, n).await;
        tick(&r, &room, &run).await;
        for (i, id) in ids.iter().enumerate() {
            if position(&r, &room, &run, *id).await == Some(1) {
                first[i] += 1;
            }
        }
    }
    assert_eq!(first.iter().sum::<u32>(), runs);
    let expected = f64::from(runs) / n as f64;
    let chi: f64 = first
        .iter()
        .map(|&o| (f64::from(o) - expected).powi(2) / expected)
        .sum();
    assert!(chi < 18.47, "chi-square {chi:.2} over {first:?}");
}
