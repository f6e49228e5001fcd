//! Redis away under traffic, for each `on_error`: `closed` gives new visitors the waiting answer
//! with no place, `open` forwards everyone (counted), `local` runs a line per instance with its
//! share of the capacity. No 5xx but what the policy says; when Redis is back (restarted from
//! its append-only file) every instance goes on without a restart and no place is lost.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::*;

/// A redis-server, an origin and two instances of room `shop` (room keys `extra`) whose store
/// gives up after 250 ms (the default timeout) and then does as `on_error` says; `None`
/// without a redis-server (outside CI).
async fn two_on_redis(
    extra: &str,
    on_error: &str,
) -> Option<(RedisServer, Origin, Vec<Binary>, Vec<tempfile::TempDir>)> {
    let redis = RedisServer::start().await?;
    let origin = Origin::start().await;
    let store = format!("timeout = \"250ms\"\non_error = \"{on_error}\"");
    let config = shop_config(&redis, &origin, extra, &store);
    let (gws, dirs) = instances(&config, 2).await;
    Some((redis, origin, gws, dirs))
}

/// Waits until `admin`'s room lists two live instances (each has seen the other's tick).
async fn two_instances(admin: &Admin) {
    wait_until(Duration::from_secs(5), "two instances", || {
        let admin = admin.clone();
        async move { (admin.room("shop").await["instances"].as_array()?.len() == 2).then_some(()) }
    })
    .await;
}

/// Waits until `admin`'s instance reaches Redis again (`/readyz`: its last tick did).
async fn reaching_redis(admin: &Admin) {
    wait_until(Duration::from_secs(10), "the store reached", || {
        let admin = admin.clone();
        async move { (admin.send("GET", "/readyz", "").await.status == 200).then_some(()) }
    })
    .await;
}

/// Waits until `admin`'s instance has handed its local line back to Redis.
async fn handed_back(admin: &Admin) {
    wait_until(Duration::from_secs(10), "the hand-back", || {
        let admin = admin.clone();
        async move {
            let local = admin
                .metric("anteroom_store_local", &[("room", "shop")])
                .await;
            (local == Some(0.0)).then_some(())
        }
    })
    .await;
}

/// Redis stopped under traffic (`on_error = "closed"`): new visitors get the waiting answer with
/// no place, polls a 503 with no place, never any other 5xx; when Redis is back (restarted from
/// its append-only file) every instance goes on without a restart and every place is kept.
#[tokio::test]
async fn a_redis_outage_gives_no_place_then_every_place_is_back() {
    let Some((mut redis, origin, mut gws, _dirs)) = two_on_redis(
        "active_users = 1\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
        "closed",
    )
    .await
    else {
        return;
    };
    let mut admitted = client(&gws[0]);
    assert_eq!(admitted.get("/", JSON).await.status, 200);
    let mut line = Vec::new();
    for gw in &gws {
        let mut c = client(gw);
        assert_eq!(c.get("/", JSON).await.status, 429);
        line.push(c);
    }
    let admin = gws[0].admin().await;
    assert_eq!(admin.send("GET", "/readyz", "").await.status, 200);
    redis.stop().await;
    let outage = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut answers = 0;
    while tokio::time::Instant::now() < outage {
        let mut newcomer = client(&gws[answers % 2]);
        let r = newcomer.get("/", JSON).await;
        assert_eq!(r.status, 429, "{}", r.body);
        let j = r.json();
        assert_eq!(
            (j["state"].as_str(), j["position"].as_u64()),
            (Some("queued"), None)
        );
        let r = on(&line[0], &gws[answers % 2])
            .get("/__anteroom/status", JSON)
            .await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(r.json()["position"].is_null());
        assert_eq!(r.json()["store_fallback"], "closed");
        answers += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answers >= 4, "answered while Redis was away: {answers}");
    let ready = admin.send("GET", "/readyz", "").await;
    assert_eq!(
        (ready.status.as_u16(), ready.body.as_str()),
        (503, "store unreachable\n")
    );
    assert_eq!(
        origin.count(),
        1,
        "nobody reached the origin while Redis was away"
    );
    redis.restart().await;
    for (i, c) in line.iter().enumerate() {
        let mut asking = on(c, &gws[(i + 1) % 2]);
        let want = i as u64 + 1;
        wait_until(Duration::from_secs(10), "the place back", || {
            let mut c = asking.clone();
            async move {
                let r = c.get("/__anteroom/status", JSON).await;
                (r.status == 200 && r.json()["position"].as_u64() == Some(want)).then_some(())
            }
        })
        .await;
        asking.get("/__anteroom/status", JSON).await;
    }
    let r = on(&admitted, &gws[1]).get("/after", JSON).await;
    assert_eq!(
        r.status, 200,
        "the admitted visitor is still admitted: {}",
        r.body
    );
}

/// Redis stopped for 5 s under traffic with `on_error = "open"`: everyone is let through (no
/// cookie given, counted), a waiting page is told to come in, never a 5xx; when Redis is back
/// the room queues again and the place of the visitor who waited is still theirs.
#[tokio::test]
async fn a_redis_outage_with_on_error_open_lets_everyone_through_then_queues_again() {
    let Some((mut redis, _origin, mut gws, _dirs)) = two_on_redis(
        "active_users = 1\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
        "open",
    )
    .await
    else {
        return;
    };
    assert_eq!(client(&gws[0]).get("/", JSON).await.status, 200);
    let mut waiting = client(&gws[1]);
    assert_eq!(waiting.get("/", JSON).await.status, 429);
    redis.stop().await;
    let outage = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut answers = 0;
    while tokio::time::Instant::now() < outage {
        let gw = &gws[answers % 2];
        let r = client(gw).get("/new", JSON).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.header("set-cookie").is_none(), "no session is made");
        let j = status(&on(&waiting, gw)).await;
        assert_eq!(
            (j["state"].as_str(), j["store_fallback"].as_str()),
            (Some("admitted"), Some("open")),
            "{j}"
        );
        assert_eq!(on(&waiting, gw).get("/in", JSON).await.status, 200);
        answers += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answers >= 4, "answered while Redis was away: {answers}");
    let admin = gws[0].admin().await;
    let opened = admin
        .metric(
            "anteroom_store_fallback_total",
            &[("room", "shop"), ("on_error", "open")],
        )
        .await
        .unwrap_or(0.0);
    assert!(opened >= 2.0 * answers as f64 / 2.0, "counted: {opened}");
    redis.restart().await;
    let asking = on(&waiting, &gws[0]);
    wait_until(Duration::from_secs(10), "queueing again", || {
        let c = asking.clone();
        async move {
            let j = status(&c).await;
            (j["position"].as_u64() == Some(1) && j["store_fallback"].is_null()).then_some(())
        }
    })
    .await;
    // The other instance is back at its own next tick.
    wait_until(
        Duration::from_secs(5),
        "the other instance queueing",
        || {
            let mut c = client(&gws[1]);
            async move { (c.get("/late", JSON).await.status == 429).then_some(()) }
        },
    )
    .await;
}

/// Redis stopped with `on_error = "local"`: each instance runs its own line with its share of
/// the capacity (here 2 over 2 instances: one each); those who waited keep their order, the
/// admitted visitors this instance knew hold its slot, a leave frees it and the next in line
/// is let in, marked `store_fallback = "local"`. When Redis is back the local line is handed to
/// it: the visitor let in during the outage stays admitted, the one who left is gone.
#[tokio::test]
async fn a_redis_outage_with_on_error_local_runs_a_local_line_then_hands_it_back() {
    let Some((mut redis, origin, mut gws, _dirs)) = two_on_redis(
        "active_users = 2\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
        "local",
    )
    .await
    else {
        return;
    };
    // Both admitted visitors are known to both instances (each asked both once).
    let mut admitted = Vec::new();
    for _ in 0..2 {
        let mut c = client(&gws[0]);
        assert_eq!(c.get("/", JSON).await.status, 200);
        assert_eq!(on(&c, &gws[1]).get("/", JSON).await.status, 200);
        admitted.push(c);
    }
    let mut line = Vec::new();
    for i in 0..3 {
        let mut c = client(&gws[i % 2]);
        assert_eq!(c.get("/", JSON).await.status, 429);
        line.push(c);
    }
    // Both instances have seen each other (the figures of a tick).
    let admin = gws[0].admin().await;
    let other = gws[1].admin().await;
    two_instances(&admin).await;
    redis.stop().await;
    // On instance 0: the line in its shared order, the slot held by those admitted before.
    for (i, c) in line.iter().enumerate() {
        let j = status(&on(c, &gws[0])).await;
        assert_eq!(j["store_fallback"], "local", "{j}");
        assert_eq!(j["position"].as_u64(), Some(i as u64 + 1), "{j}");
    }
    let r = client(&gws[0]).get("/", JSON).await;
    assert_eq!(r.status, 429, "a newcomer queues behind: {}", r.body);
    assert_eq!(r.json()["position"], 4);
    assert_eq!(on(&admitted[0], &gws[0]).get("/in", JSON).await.status, 200);
    // Both admitted visitors leave: instance 0's share (one slot) goes to the head of the line.
    for c in &admitted {
        let left = on(c, &gws[0])
            .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
            .await;
        assert_eq!(left.json()["left"], true, "{}", left.body);
    }
    let admitted_locally = wait_state(&on(&line[0], &gws[0]), "released").await;
    assert_eq!(admitted_locally["store_fallback"], "local");
    let mut first = on(&line[0], &gws[0]);
    assert_eq!(first.get("/checkout", JSON).await.status, 200);
    let before = origin.count();
    assert_eq!(
        admin
            .metric("anteroom_store_local", &[("room", "shop")])
            .await,
        Some(1.0)
    );
    redis.restart().await;
    // Handed back: the visitor let in during the outage is admitted on every instance; those
    // who left are gone, so the shared line releases the next; the rest keep their order.
    handed_back(&admin).await;
    // Each instance is back at its own next tick.
    reaching_redis(&other).await;
    assert_eq!(on(&line[0], &gws[1]).get("/after", JSON).await.status, 200);
    assert!(origin.count() > before);
    let j = wait_state(&on(&line[1], &gws[1]), "released").await;
    assert!(j["store_fallback"].is_null(), "{j}");
    let j = status(&on(&line[2], &gws[0])).await;
    assert_eq!(j["position"].as_u64(), Some(1), "{j}");
    for c in &admitted {
        let r = on(c, &gws[1]).get("/again", JSON).await;
        assert_ne!(
            r.status, 200,
            "a visitor who left is not admitted: {}",
            r.body
        );
    }
}

/// `on_error = "local"` under five seconds of traffic on two instances: every answer is a 200
/// or a 429, never a 5xx; the origin sees only each instance's share of the capacity; when
/// Redis is back, everyone who joined a local line during the outage has a place in the shared
/// line, each place given once, and the line released from Redis again.
#[tokio::test]
async fn a_redis_outage_under_traffic_with_on_error_local_loses_nobody() {
    let Some((mut redis, origin, mut gws, _dirs)) = two_on_redis(
        "active_users = 4\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
        "local",
    )
    .await
    else {
        return;
    };
    let admin = gws[0].admin().await;
    let other = gws[1].admin().await;
    two_instances(&admin).await;
    redis.stop().await;
    let gws = std::sync::Arc::new(gws);
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let gws = gws.clone();
            tokio::spawn(async move {
                let (mut joined, mut statuses) = (Vec::new(), Vec::new());
                let mut n = 0;
                while tokio::time::Instant::now() < until {
                    let gw = &gws[(w + n) % 2];
                    let mut c = client(gw);
                    let r = c.get("/tickets", JSON).await;
                    statuses.push(r.status.as_u16());
                    if r.status == 429 {
                        // A queued visitor polls once, on the other instance.
                        let p = on(&c, &gws[(w + n + 1) % 2])
                            .get("/__anteroom/status", JSON)
                            .await;
                        statuses.push(p.status.as_u16());
                        joined.push(c);
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (joined, statuses)
            })
        })
        .collect();
    let (mut joined, mut statuses) = (Vec::new(), Vec::new());
    for w in workers {
        let (j, s) = w.await.unwrap();
        joined.extend(j);
        statuses.extend(s);
    }
    assert!(statuses.len() > 100, "traffic: {} answers", statuses.len());
    let odd: Vec<u16> = statuses
        .iter()
        .copied()
        .filter(|s| *s != 200 && *s != 429)
        .collect();
    assert!(odd.is_empty(), "only 200 and 429 while local: {odd:?}");
    assert!(
        origin.count() <= 4,
        "each instance let in at most its share (2): {}",
        origin.count()
    );
    assert!(joined.len() > 50, "queued locally: {}", joined.len());
    redis.restart().await;
    handed_back(&admin).await;
    handed_back(&other).await;
    // Every visitor queued during the outage is in the shared line, each at their own place.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut places = HashSet::new();
    let mut in_line = 0;
    for (i, c) in joined.iter().enumerate() {
        let r = on(c, &gws[i % 2]).get("/__anteroom/status", JSON).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let j = r.json();
        assert!(j["store_fallback"].is_null(), "{j}");
        match j["state"].as_str() {
            Some("queued") => {
                in_line += 1;
                assert!(places.insert(j["position"].as_u64().unwrap()), "{j}");
            }
            Some("released" | "admitted") => {}
            other => panic!("a visitor from the outage is {other:?}: {j}"),
        }
    }
    assert_eq!(places.len(), in_line);
    assert_eq!(places.iter().max().copied(), Some(in_line as u64));
    let room = other.room("shop").await;
    assert_eq!(room["live"]["queue_depth"], in_line, "{room}");
    assert_eq!(admin.send("GET", "/readyz", "").await.status, 200);
}
