//! Several anteroom processes, one queue: real gateways share one real redis-server
//! (`[store] kind = "redis"`). Concurrent visitors spread round robin get exactly
//! `active_users` admissions and places 1..N each once; a visitor moving between instances
//! keeps their place (and their poll floor) and is let in by whichever instance they reach; the
//! lease holder killed, another instance releases; Redis away gives no place and loses none;
//! the join budget holds across instances; `anteroom check` refuses a shared store without
//! `[token] secret_env`.

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

/// A redis-server, an origin, and the configuration of room `shop` (room keys `extra`) on
/// them; `None` without a redis-server (outside CI).
async fn shop_on_redis(extra: &str) -> Option<(RedisServer, Origin, String)> {
    let redis = RedisServer::start().await?;
    let origin = Origin::start().await;
    let config = shop_config(&redis, &origin, extra, "");
    Some((redis, origin, config))
}

#[tokio::test]
async fn three_instances_admit_exactly_the_capacity_and_give_each_place_once() {
    let Some((_redis, origin, config)) =
        shop_on_redis("active_users = 10\nabandon_after = \"60s\"").await
    else {
        return;
    };
    let (mut gws, _dirs) = instances(&config, 3).await;
    let visitors: Vec<Client> = (0..300).map(|i| client(&gws[i % 3])).collect();
    let arrivals = visitors.iter().cloned().map(|mut c| {
        tokio::spawn(async move {
            let r = c.get("/", JSON).await;
            (r.status.as_u16(), c)
        })
    });
    let (mut admitted, mut queued) = (0, Vec::new());
    for a in arrivals {
        let (status, c) = a.await.unwrap();
        match status {
            200 => admitted += 1,
            429 => queued.push(c),
            other => panic!("a new visitor got {other}"),
        }
    }
    assert_eq!(
        admitted, 10,
        "exactly active_users admitted across three instances"
    );
    assert_eq!(origin.count(), 10, "the origin saw only the admitted");
    assert_eq!(queued.len(), 290);
    // Each visitor asks another instance than the one they joined on: one line.
    let mut places = Vec::new();
    for (i, c) in queued.iter().enumerate() {
        let j = on(c, &gws[(i + 1) % 3])
            .get("/__anteroom/status", JSON)
            .await
            .json();
        assert_eq!(j["state"], "queued", "{j}");
        assert_eq!(j["queue_depth"], 290, "{j}");
        places.push(j["position"].as_u64().unwrap());
    }
    let distinct: HashSet<u64> = places.iter().copied().collect();
    assert_eq!(distinct.len(), 290, "each place given once");
    assert_eq!(
        (places.iter().min(), places.iter().max()),
        (Some(&1), Some(&290))
    );
    // One store round trip per join and per poll, counted by the instances themselves.
    let (mut decides, mut polls) = (0.0, 0.0);
    for gw in &mut gws {
        let admin = gw.admin().await;
        let name = "anteroom_store_requests_total";
        decides += admin.metric(name, &[("op", "decide")]).await.unwrap_or(0.0);
        polls += admin.metric(name, &[("op", "status")]).await.unwrap_or(0.0);
    }
    assert_eq!((decides, polls), (300.0, 290.0));
}

#[tokio::test]
async fn a_visitor_moving_between_instances_keeps_their_place_and_is_let_in_anywhere() {
    let Some((_redis, origin, config)) =
        shop_on_redis("active_users = 1\nrelease_window = \"6s\"\nabandon_after = \"60s\"").await
    else {
        return;
    };
    let (gws, _dirs) = instances(&config, 3).await;
    let mut first = client(&gws[0]);
    assert_eq!(first.get("/", JSON).await.status, 200);
    let mut second = client(&gws[1]);
    assert_eq!(second.get("/", JSON).await.status, 429);
    // One poll floor per visitor, whichever instance they ask.
    let polled = on(&second, &gws[0]).get("/__anteroom/status", JSON).await;
    assert_eq!(polled.status, 200);
    let again = on(&second, &gws[2]).get("/__anteroom/status", JSON).await;
    assert_eq!(again.status, 429, "{}", again.body);
    assert!(again.header("retry-after").is_some());
    for gw in &gws {
        // The poll floor is the visitor's, whichever instance they ask: `status` waits it out.
        let j = status(&on(&second, gw)).await;
        assert_eq!(
            (j["state"].as_str(), j["position"].as_u64()),
            (Some("queued"), Some(1))
        );
    }
    // The admitted visitor leaves through a third instance; the next tick (whichever instance
    // holds the lease) releases the one waiting, who is let in by another instance again.
    let left = on(&first, &gws[2])
        .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
        .await;
    assert_eq!(left.json()["left"], true);
    let mut asking = on(&second, &gws[2]);
    wait_until(Duration::from_secs(10), "the release", || {
        let mut c = asking.clone();
        async move {
            let j = c.get("/__anteroom/status", JSON).await.json();
            (j["state"] == "released").then_some(())
        }
    })
    .await;
    let r = on(&second, &gws[0]).get("/checkout", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(origin.last().path, "/checkout");
    let r = asking.get("/more", JSON).await;
    assert_eq!(r.status, 200, "admitted on every instance");
}

#[tokio::test]
async fn check_refuses_a_shared_store_without_a_shared_secret() {
    let Some((_redis, _origin, config)) =
        shop_on_redis("active_users = 1\nqueue = \"random\"").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let config = config.replace("[token]\nsecret_env", "[token]\n#secret_env");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(Binary::path())
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("token.secret_env") && text.contains("shared store"),
        "{text}"
    );
}

/// kill -9 of the instance holding the tick's lease: another instance takes the lease when it
/// runs out and releases resume; nobody is released twice and nobody loses a place.
#[tokio::test]
async fn the_lease_holder_killed_releases_resume_on_another_instance() {
    let Some((_redis, _origin, config)) =
        shop_on_redis("active_users = 1\nrelease_window = \"6s\"\nabandon_after = \"60s\"").await
    else {
        return;
    };
    // The first instance ticks alone for a while: it holds the lease when the others start.
    let (mut first, _d1) = instances(&config, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (others, _d2) = instances(&config, 2).await;
    let mut admitted = client(&others[0]);
    assert_eq!(admitted.get("/", JSON).await.status, 200);
    let mut line = Vec::new();
    for i in 0..3 {
        let mut c = client(&others[i % 2]);
        assert_eq!(c.get("/", JSON).await.status, 429);
        // The page asks at once: the visitor is back.
        c.get("/__anteroom/status", JSON).await;
        line.push(c);
    }
    first[0].kill9();
    // Each admitted visitor leaves; the next in line must be released by a survivor, in order.
    for (i, c) in line.iter().enumerate() {
        let left = on(&admitted, &others[1])
            .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
            .await;
        assert_eq!(left.json()["left"], true, "visitor {i}");
        let asking = on(c, &others[i % 2]);
        wait_until(Duration::from_secs(10), "a release after the kill", || {
            let mut c = asking.clone();
            async move {
                let j = c.get("/__anteroom/status", JSON).await.json();
                (j["state"] == "released").then_some(())
            }
        })
        .await;
        // Released once: the others are still in line, in their order.
        for (k, later) in line.iter().enumerate().skip(i + 1) {
            let j = status(&on(later, &others[0])).await;
            assert_eq!(j["position"].as_u64(), Some((k - i) as u64), "{j}");
        }
        admitted = on(c, &others[(i + 1) % 2]);
        assert_eq!(admitted.get("/in", JSON).await.status, 200);
    }
}

/// Kendall's tau between two orders of the same items: 1.0 when they agree on every pair.
fn kendall_tau(order: &[usize]) -> f64 {
    let n = order.len();
    let (mut concordant, mut discordant) = (0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            if order[i] < order[j] {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    (concordant - discordant) as f64 / (concordant + discordant).max(1) as f64
}

/// Three processes, one slot: 24 visitors join round robin, then each round every waiting
/// visitor asks a page on a rotating instance, in reverse arrival order; whoever is let in
/// leaves at once. With one slot at most one visitor is let in per turn, so the order of
/// admissions is the order of releases: Kendall's tau with arrival order is 1.0.
#[tokio::test]
async fn releases_across_three_processes_follow_arrival_order() {
    let Some((_redis, _origin, config)) =
        shop_on_redis("active_users = 1\nabandon_after = \"60s\"").await
    else {
        return;
    };
    let (gws, _dirs) = instances(&config, 3).await;
    let mut first = client(&gws[0]);
    assert_eq!(first.get("/", JSON).await.status, 200);
    let mut waiting: Vec<(usize, Client)> = Vec::new();
    for i in 0..24 {
        let mut c = client(&gws[i % 3]);
        assert_eq!(c.get("/", JSON).await.status, 429);
        // The page asks at once (a visitor who never comes back is passed over at their turn).
        c.get("/__anteroom/status", JSON).await;
        waiting.push((i, c));
    }
    let left = first
        .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
        .await;
    assert_eq!(left.json()["left"], true);
    let mut order = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    while !waiting.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "released so far: {order:?}"
        );
        round += 1;
        let mut still = Vec::new();
        while let Some((i, c)) = waiting.pop() {
            let mut here = on(&c, &gws[(i + round) % 3]);
            let r = here.get("/shop", JSON).await;
            if r.status == 200 {
                order.push(i);
                let left = on(&here, &gws[(i + round + 1) % 3])
                    .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
                    .await;
                assert_eq!(left.json()["left"], true, "{}", left.body);
            } else {
                assert_eq!(r.status, 429, "{}", r.body);
                still.push((i, c));
            }
        }
        still.reverse();
        waiting = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(order.len(), 24);
    assert_eq!(kendall_tau(&order), 1.0, "release order {order:?}");
}

/// The join budget per client prefix is one budget across instances: a client spreading its
/// joins over three instances gets `max_joins_per_prefix_per_minute` places, no more.
#[tokio::test]
async fn the_join_budget_is_shared_by_every_instance() {
    let Some((_redis, origin, config)) = shop_on_redis(
        "active_users = 1\nmax_joins_per_prefix_per_minute = 4\nabandon_after = \"60s\"",
    )
    .await
    else {
        return;
    };
    let (gws, _dirs) = instances(&config, 3).await;
    let (mut placed, mut refused) = (0, 0);
    for i in 0..12 {
        let r = client(&gws[i % 3]).get("/", JSON).await;
        if r.status == 200 {
            placed += 1;
            continue;
        }
        assert_eq!(r.status, 429, "{}", r.body);
        let j = r.json();
        assert_eq!(j["state"], "queued", "{j}");
        match j["position"].as_u64() {
            Some(_) => placed += 1,
            None => refused += 1,
        }
    }
    assert_eq!(
        (placed, refused),
        (4, 8),
        "a minute's burst, from one address over three instances"
    );
    assert_eq!(origin.count(), 1);
}

/// An admitted visitor's requests make no store round trip once an instance has let them in
/// (their presence is marked in Redis at each tick, so a short `session_ttl` does not end a
/// busy session), and an end decided on another instance (a revoke) is learned within a tick.
#[tokio::test]
async fn admitted_requests_skip_the_store_and_a_revoke_elsewhere_is_learned_within_a_tick() {
    let Some((_redis, _origin, config)) =
        shop_on_redis("active_users = 1\nsession_ttl = \"500ms\"\nabandon_after = \"60s\"").await
    else {
        return;
    };
    let (mut gws, _dirs) = instances(&config, 2).await;
    let admin = gws[1].admin().await;
    let decides = || async {
        let name = "anteroom_store_requests_total";
        admin.metric(name, &[("op", "decide")]).await.unwrap_or(0.0)
    };
    let mut v = client(&gws[0]);
    assert_eq!(v.get("/", JSON).await.status, 200);
    let mut there = on(&v, &gws[1]);
    // Browsing for twice session_ttl through the other instance.
    for i in 0..40 {
        let r = there.get(&format!("/page{i}"), JSON).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        assert!(
            r.header("set-cookie").is_none(),
            "the same session all along"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(decides().await, 1.0, "one round trip, then none");
    // The origin ends the session through the first instance.
    assert_eq!(v.get("/revoke", JSON).await.status, 200);
    wait_until(Duration::from_secs(2), "the revoke learned", || {
        let mut c = there.clone();
        async move {
            let r = c.get("/after", JSON).await;
            (r.status != 200 || r.header("set-cookie").is_some()).then_some(())
        }
    })
    .await;
}

/// An operator's change through one instance's admin API applies on every instance within a
/// tick: the other instance's admin API shows it, and its visitors see the message. Each
/// instance's room JSON lists the live instances and the lease holder.
#[tokio::test]
async fn an_override_through_one_instance_applies_on_every_instance() {
    let Some((_redis, _origin, config)) =
        shop_on_redis("active_users = 1\nabandon_after = \"60s\"").await
    else {
        return;
    };
    let (mut gws, _dirs) = instances(&config, 2).await;
    let here = gws[0].admin().await;
    let there = gws[1].admin().await;
    here.patch_ok("shop", r#"{"message": "back at noon"}"#)
        .await;
    let want = serde_json::json!({"message": "back at noon"});
    wait_until(
        Duration::from_secs(3),
        "the override on the other instance",
        || {
            let (there, want) = (there.clone(), want.clone());
            async move { (there.room("shop").await["overrides"] == want).then_some(()) }
        },
    )
    .await;
    assert_eq!(client(&gws[1]).get("/", JSON).await.status, 200);
    let r = client(&gws[1]).get("/", JSON).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["message"], "back at noon");
    // Dropped through the other instance: gone on the first too.
    assert_eq!(
        there
            .send("DELETE", "/api/v1/rooms/shop/overrides", "")
            .await
            .status,
        200
    );
    wait_until(Duration::from_secs(3), "the overrides dropped everywhere", || {
        let here = here.clone();
        async move { (here.room("shop").await["overrides"] == serde_json::json!({})).then_some(()) }
    })
    .await;
    // Each instance's room JSON lists the live instances and which one ticks.
    for admin in [&here, &there] {
        let room = admin.room("shop").await;
        let instances = room["instances"].as_array().unwrap();
        assert_eq!(instances.len(), 2, "{room}");
        let holders = instances
            .iter()
            .filter(|i| i["lease_holder"] == true)
            .count();
        assert_eq!(holders, 1, "{room}");
        assert!(
            instances
                .iter()
                .all(|i| i["last_seen_ms_ago"].as_u64().unwrap() < 5_000)
        );
    }
}

/// `url_env`: the store's address (with a password, in production) comes from the environment,
/// read at start.
#[tokio::test]
async fn the_store_url_can_come_from_the_environment() {
    let Some((redis, _origin, config)) = shop_on_redis("active_users = 1").await else {
        return;
    };
    let config = config.replace(
        &format!("url = \"{}\"", redis.url()),
        "url_env = \"ANTEROOM_TEST_REDIS_URL\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let url = redis.url();
    let mut gw = Binary::start(&path, &[SHARED_SECRET, ("ANTEROOM_TEST_REDIS_URL", &url)]).await;
    assert_eq!(client(&gw).get("/", JSON).await.status, 200);
    assert_eq!(
        client(&gw).get("/", JSON).await.status,
        429,
        "the one slot is taken"
    );
    let admin = gw.admin().await;
    let decides = admin
        .metric("anteroom_store_requests_total", &[("op", "decide")])
        .await;
    assert_eq!(decides, Some(2.0), "both decided in Redis");
}

/// A lottery and a random line on two instances: before the draw nobody has a place and every
/// instance shows the same next draw; after it each has a place, the same on both; switched to
/// random by an operator on one instance, the other answers a newcomer with their odds.
#[tokio::test]
async fn a_lottery_and_a_random_line_work_across_instances() {
    let Some((_redis, _origin, config)) = shop_on_redis("active_users = 1\nqueue = \"lottery\"\ndraw_every = \"1s\"\nabandon_after = \"60s\"\nrelease_window = \"3s\"").await else {
        return;
    };
    let (mut gws, _dirs) = instances(&config, 2).await;
    let mut holder = client(&gws[0]);
    assert_eq!(holder.get("/", JSON).await.status, 200);
    let mut line = Vec::new();
    for i in 0..4 {
        let mut c = client(&gws[i % 2]);
        assert_eq!(c.get("/", JSON).await.status, 429);
        let j = status(&on(&c, &gws[(i + 1) % 2])).await;
        assert_eq!(j["state"], "queued", "{j}");
        assert!(j["position"].is_null(), "no place before the draw: {j}");
        assert!(j["next_draw_at"].is_string(), "{j}");
        assert!(j["estimated_wait_seconds"].is_u64(), "{j}");
        line.push(c);
    }
    let first = wait_until(Duration::from_secs(10), "the draw", || {
        let c = on(&line[0], &gws[0]);
        async move { status(&c).await["position"].as_u64() }
    })
    .await;
    let mut places = Vec::new();
    for (i, c) in line.iter().enumerate() {
        let j = status(&on(c, &gws[(i + 1) % 2])).await;
        assert!(j["next_draw_at"].is_null(), "{j}");
        places.push(j["position"].as_u64().unwrap());
    }
    assert_eq!(places[0], first, "the same place on both instances");
    let mut sorted = places.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2, 3, 4]);
    gws[0]
        .admin()
        .await
        .patch_ok("shop", r#"{"queue":"random"}"#)
        .await;
    // The other instance adopts the override within a tick: a newcomer has odds, no place.
    let mut late = client(&gws[1]);
    assert_eq!(late.get("/", JSON).await.status, 429);
    let j = wait_until(Duration::from_secs(10), "the switch", || {
        let c = late.clone();
        async move {
            let j = status(&c).await;
            j["chance_next_minute"].is_f64().then_some(j)
        }
    })
    .await;
    assert!(j["position"].is_null(), "{j}");
    assert_eq!(j["queue_depth"], 5, "{j}");
    // Those already drawn keep their places.
    let j = status(&on(&line[0], &gws[1])).await;
    assert_eq!(j["position"].as_u64(), Some(places[0]), "{j}");
}
