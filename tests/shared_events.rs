//! Scheduled events on the shared store: real gateway processes on one real redis-server, with
//! events a few seconds ahead. Visitors of the pre-queue on either instance see the countdown
//! state and no place, and nobody is let in; at `starts_at` the pre-queue gets places 1..N
//! exactly once across both instances (a drawn order, or arrival order without the shuffle);
//! the end drops those waiting in a room closed outside events, counted on every instance; the
//! operator's start and end work from any instance; instances stopped across `starts_at` and a
//! `kill -9` after it never shuffle twice.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// How long a step waits for anything.
const WAIT: Duration = Duration::from_secs(15);

/// Milliseconds rounded up to the next whole second (the file's times are to the second).
fn next_second(ms: u64) -> u64 {
    ms.div_ceil(1000) * 1000
}

fn event(name: &str, prequeue_from: u64, starts_at: u64, ends_at: u64, extra: &str) -> String {
    format!(
        "[[room.event]]\nname = \"{name}\"\nprequeue_from = \"{}\"\nstarts_at = \"{}\"\nends_at = \"{}\"\n{extra}\n",
        rfc3339_at(prequeue_from, 1),
        rfc3339_at(starts_at, 1),
        rfc3339_at(ends_at, 1)
    )
}

/// Room `shop` with one slot, long session and abandon times, `extra` keys and `events`.
fn config(redis: &RedisServer, origin: &Origin, extra: &str, events: &str) -> String {
    config_with(redis, origin, extra, events, "")
}

/// The same with `[store]` keys `store`.
fn config_with(
    redis: &RedisServer,
    origin: &Origin,
    extra: &str,
    events: &str,
    store: &str,
) -> String {
    shop_config(
        redis,
        origin,
        &format!(
            "active_users = 1\nsession_ttl = \"1h\"\nabandon_after = \"1h\"\nrelease_window = \"10m\"\n{extra}\n{events}"
        ),
        store,
    )
}

/// `n` new visitors, joining one after the other on alternate instances; each asks its status
/// once on the other instance (it came back, as the page does) and is in the pre-queue.
async fn join_prequeue(gws: &[Binary], n: usize) -> Vec<Client> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut c = client(&gws[i % gws.len()]);
        let r = c.get("/", JSON).await;
        assert_eq!(r.status, 429, "{}", r.body);
        let j = status(&on(&c, &gws[(i + 1) % gws.len()])).await;
        assert_eq!(j["state"], "prequeue", "{j}");
        assert!(j["position"].is_null(), "{j}");
        assert!(j["estimated_wait_seconds"].is_null(), "{j}");
        assert!(j["event_starts_at"].is_string(), "{j}");
        assert_eq!(j["queue_depth"], i as u64 + 1, "{j}");
        out.push(c);
    }
    out
}

/// Each visitor's rank once the event started, asked on alternate instances: 0 for one
/// released, else the place in line.
async fn ranks(gws: &[Binary], visitors: &[Client]) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, c) in visitors.iter().enumerate() {
        let asking = on(c, &gws[i % gws.len()]);
        let rank = wait_until(WAIT, "a place after the start", || {
            let asking = asking.clone();
            async move {
                let j = status(&asking).await;
                match j["state"].as_str() {
                    Some("released") => Some(0),
                    Some("queued") => j["position"].as_u64(),
                    _ => None,
                }
            }
        })
        .await;
        out.push(rank);
    }
    out
}

/// Both instances' room JSON satisfies `check`.
async fn on_both(admins: &[Admin], what: &str, check: impl Fn(&Value) -> bool) {
    for admin in admins {
        wait_until(WAIT, what, || async {
            let j = admin.room("shop").await;
            check(&j).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn two_instances_hold_the_prequeue_shuffle_once_and_drop_the_waiting_at_the_end() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let pre = next_second(unix_ms() + 2_500);
    let start = pre + 3_000;
    let end = start + 5_000;
    let text = config(
        &redis,
        &origin,
        "outside_events = \"closed\"",
        &event("drop", pre, start, end, ""),
    );
    let (mut gws, _dirs) = instances(&text, 2).await;
    let admins = vec![gws[0].admin().await, gws[1].admin().await];
    // Closed before the pre-queue.
    assert_eq!(client(&gws[1]).get("/", JSON).await.status, 503);

    sleep_until_ms(pre + 200).await;
    let n = 10;
    let visitors = join_prequeue(&gws, n).await;
    on_both(&admins, "the pre-queue's depth on both instances", |j| {
        j["prequeue_depth"] == n as u64 && j["events"][0]["phase"] == "prequeue"
    })
    .await;
    assert_eq!(origin.count(), 0, "nobody let in during the pre-queue");

    // The start: one released (the one slot), the others in line, each rank once.
    sleep_until_ms(start).await;
    let got = ranks(&gws, &visitors).await;
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..n as u64).collect::<Vec<_>>(), "{got:?}");
    assert_ne!(got, (0..n as u64).collect::<Vec<_>>(), "shuffled: {got:?}");
    on_both(&admins, "no pre-queue after the start", |j| {
        j["prequeue_depth"] == 0
    })
    .await;

    // The end, in a room closed outside events: those still waiting lose their place, counted
    // once (the released visitor keeps their turn).
    sleep_until_ms(end).await;
    on_both(&admins, "places dropped at the end", |j| {
        j["event_dropped_total"] == n as u64 - 1 && j["live"]["queue_depth"] == 0
    })
    .await;
    for admin in &admins {
        let dropped = admin
            .metric("anteroom_event_dropped_total", &[("room", "shop")])
            .await;
        assert_eq!(dropped, Some(n as f64 - 1.0));
    }
    let waiting = visitors
        .iter()
        .zip(&got)
        .find(|(_, r)| **r > 0)
        .map(|(c, _)| c.clone())
        .unwrap();
    assert_eq!(on(&waiting, &gws[1]).get("/", JSON).await.status, 503);
    for gw in &mut gws {
        gw.stop().await;
    }
}

/// The operator's buttons pressed on different instances: a start on one puts the pre-queue in
/// line in arrival order (`shuffle_at_start = false`) on both; an end on the other drops those
/// still waiting (closed outside events).
#[tokio::test]
async fn the_operator_starts_on_one_instance_and_ends_on_the_other() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let now = unix_ms();
    let text = config(
        &redis,
        &origin,
        "outside_events = \"closed\"",
        &event(
            "launch",
            now - 1_000,
            now + 3_600_000,
            now + 7_200_000,
            "shuffle_at_start = false",
        ),
    );
    let (mut gws, _dirs) = instances(&text, 2).await;
    let admins = vec![gws[0].admin().await, gws[1].admin().await];
    let n = 6;
    let visitors = join_prequeue(&gws, n).await;

    let r = admins[1]
        .send("POST", "/api/v1/rooms/shop/events/launch/start", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        ranks(&gws, &visitors).await,
        (0..n as u64).collect::<Vec<_>>(),
        "arrival order"
    );
    on_both(&admins, "the event running everywhere", |j| {
        j["events"][0]["phase"] == "running"
    })
    .await;

    let r = admins[0]
        .send("POST", "/api/v1/rooms/shop/events/launch/end", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    on_both(&admins, "places dropped at the operator's end", |j| {
        j["event_dropped_total"] == n as u64 - 1
            && j["live"]["queue_depth"] == 0
            && j["events"][0]["phase"] == "ended"
    })
    .await;
    assert_eq!(client(&gws[1]).get("/", JSON).await.status, 503);
    assert_eq!(origin.count(), 0);
    for gw in &mut gws {
        gw.stop().await;
    }
}

/// Both instances stopped across `starts_at`: the first one back shuffles at its first tick;
/// killed, the other one back releases in that same order (no second shuffle).
#[tokio::test]
async fn instances_restarted_across_the_start_shuffle_once() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let pre = next_second(unix_ms() + 2_500);
    let start = pre + 3_000;
    let text = config(
        &redis,
        &origin,
        "",
        &event("drop", pre, start, start + 600_000, ""),
    );
    let (mut gws, dirs) = instances(&text, 2).await;
    let paths: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("gateway.toml")).collect();
    // The one slot is taken before the pre-queue, so that every place can be read after it.
    let mut holder = client(&gws[0]);
    assert_eq!(holder.get("/", JSON).await.status, 200);

    sleep_until_ms(pre + 200).await;
    let n = 8;
    let visitors = join_prequeue(&gws, n).await;
    for gw in &mut gws {
        gw.stop().await;
    }
    sleep_until_ms(start + 300).await;

    let mut first = restart(&paths[0]).await;
    let got = ranks(std::slice::from_ref(&first), &visitors).await;
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=n as u64).collect::<Vec<_>>(), "{got:?}");
    assert_ne!(got, (1..=n as u64).collect::<Vec<_>>(), "shuffled: {got:?}");
    first.kill9();

    // The other instance takes over the tick: the holder leaves, the first in the drawn order
    // is released and everyone else moves up one, in the same order.
    let second = restart(&paths[1]).await;
    let left = on(&holder, &second)
        .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
        .await;
    assert_eq!(left.json()["left"], true, "{}", left.body);
    let next = got.iter().position(|r| *r == 1).unwrap();
    wait_state(&on(&visitors[next], &second), "released").await;
    let want: Vec<u64> = got.iter().map(|r| r - 1).collect();
    let after = ranks(std::slice::from_ref(&second), &visitors).await;
    assert_eq!(after, want, "the drawn order kept: {got:?}");
    assert_eq!(origin.count(), 1, "only the holder was let in");
}

/// Redis away across `starts_at` (`on_store_error = "local"`): the instance's own line keeps
/// holding everyone as a pre-queue (never starting the event by arrival tickets); once Redis is
/// back the start is made there, once, with the visitor who joined during the outage in it.
#[tokio::test]
async fn redis_away_at_the_start_holds_everyone_until_it_is_back() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let pre = next_second(unix_ms() + 2_000);
    let start = pre + 3_000;
    let text = config_with(
        &redis,
        &origin,
        "",
        &event("drop", pre, start, start + 600_000, ""),
        "timeout = \"250ms\"\non_error = \"local\"",
    );
    let (mut gws, _dirs) = instances(&text, 1).await;
    let admin = gws[0].admin().await;
    let mut holder = client(&gws[0]);
    assert_eq!(holder.get("/", JSON).await.status, 200);
    sleep_until_ms(pre + 200).await;
    let mut visitors = join_prequeue(&gws, 5).await;
    on_both(
        std::slice::from_ref(&admin),
        "the pre-queue seen at a tick",
        |j| j["prequeue_depth"] == 5,
    )
    .await;

    redis.stop().await;
    let mut late = client(&gws[0]);
    let r = late.get("/", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    visitors.push(late);
    sleep_until_ms(start + 500).await;
    for c in &visitors {
        let j = status(c).await;
        assert_eq!(
            (j["state"].as_str(), j["store_fallback"].as_str()),
            (Some("prequeue"), Some("local")),
            "{j}"
        );
        assert!(j["position"].is_null(), "{j}");
    }
    assert_eq!(origin.count(), 1, "only the holder was let in");

    redis.restart().await;
    let got = ranks(&gws, &visitors).await;
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=6).collect::<Vec<u64>>(), "{got:?}");
    assert_eq!(origin.count(), 1);
    gws[0].stop().await;
}

/// The binary started again on its own configuration file.
async fn restart(path: &Path) -> Binary {
    Binary::start(path, &[SHARED_SECRET]).await
}
