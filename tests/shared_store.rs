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

fn shared_config(redis: &RedisServer, origin: &Origin, extra: &str) -> String {
    config_with(redis, origin, extra, "")
}

/// A store that gives up after 250 ms (the default timeout) and then does as `on_error` says.
fn outage_config(redis: &RedisServer, origin: &Origin, extra: &str, on_error: &str) -> String {
    let store = format!("timeout = \"250ms\"\non_error = \"{on_error}\"");
    config_with(redis, origin, extra, &store)
}

fn config_with(redis: &RedisServer, origin: &Origin, extra: &str, store: &str) -> String {
    format!(
        "tick = \"50ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n{}\n{}",
        redis.tables(store),
        room("shop", "shop.test", &origin.url(), extra)
    )
}

/// `n` gateways on one store, each with its own folder.
async fn instances(config: &str, n: usize) -> (Vec<Binary>, Vec<tempfile::TempDir>) {
    let (mut gws, mut dirs) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        gws.push(Binary::start(&path, &[SHARED_SECRET]).await);
        dirs.push(dir);
    }
    (gws, dirs)
}

fn client(gw: &Binary) -> Client {
    Client {
        addr: gw.addr,
        host: "shop.test".into(),
        cookies: Default::default(),
    }
}

/// The same visitor (cookies kept) asking another instance.
fn on(c: &Client, gw: &Binary) -> Client {
    Client {
        addr: gw.addr,
        ..c.clone()
    }
}

#[tokio::test]
async fn three_instances_admit_exactly_the_capacity_and_give_each_place_once() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = shared_config(
        &redis,
        &origin,
        "active_users = 10\nabandon_after = \"60s\"",
    );
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
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = shared_config(
        &redis,
        &origin,
        "active_users = 1\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
    );
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
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let config = shared_config(&redis, &origin, "active_users = 1\nqueue = \"random\"")
        .replace("[token]\nsecret_env", "[token]\n#secret_env");
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
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = shared_config(
        &redis,
        &origin,
        "active_users = 1\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
    );
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

/// Redis stopped under traffic (`on_error = "closed"`): new visitors get the waiting answer with
/// no place, polls a 503 with no place, never any other 5xx; when Redis is back (restarted from
/// its append-only file) every instance goes on without a restart and every place is kept.
#[tokio::test]
async fn a_redis_outage_gives_no_place_then_every_place_is_back() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = outage_config(
        &redis,
        &origin,
        "active_users = 1\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
        "closed",
    );
    let (mut gws, _dirs) = instances(&config, 2).await;
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

/// The join budget per client prefix is one budget across instances: a client spreading its
/// joins over three instances gets `max_joins_per_prefix_per_minute` places, no more.
#[tokio::test]
async fn the_join_budget_is_shared_by_every_instance() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = shared_config(
        &redis,
        &origin,
        "active_users = 1\nmax_joins_per_prefix_per_minute = 4\nabandon_after = \"60s\"",
    );
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
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = shared_config(
        &redis,
        &origin,
        "active_users = 1\nsession_ttl = \"500ms\"\nabandon_after = \"60s\"",
    );
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
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = shared_config(&redis, &origin, "active_users = 1\nabandon_after = \"60s\"");
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
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = shared_config(&redis, &origin, "active_users = 1").replace(
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
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = shared_config(
        &redis,
        &origin,
        "active_users = 1\nqueue = \"lottery\"\ndraw_every = \"1s\"\nabandon_after = \"60s\"\nrelease_window = \"3s\"",
    );
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

/// Redis stopped for 5 s under traffic with `on_error = "open"`: everyone is let through (no
/// cookie given, counted), a waiting page is told to come in, never a 5xx; when Redis is back
/// the room queues again and the place of the visitor who waited is still theirs.
#[tokio::test]
async fn a_redis_outage_with_on_error_open_lets_everyone_through_then_queues_again() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = outage_config(
        &redis,
        &origin,
        "active_users = 1\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
        "open",
    );
    let (mut gws, _dirs) = instances(&config, 2).await;
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
    assert_eq!(client(&gws[1]).get("/late", JSON).await.status, 429);
}

/// Redis stopped with `on_error = "local"`: each instance runs its own line with its share of
/// the capacity (here 2 over 2 instances: one each); those who waited keep their order, the
/// admitted visitors this instance knew hold its slot, a leave frees it and the next in line
/// is let in, marked `store_fallback = "local"`. When Redis is back the local line is handed to
/// it: the visitor let in during the outage stays admitted, the one who left is gone.
#[tokio::test]
async fn a_redis_outage_with_on_error_local_runs_a_local_line_then_hands_it_back() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let config = outage_config(
        &redis,
        &origin,
        "active_users = 2\nrelease_window = \"6s\"\nabandon_after = \"60s\"",
        "local",
    );
    let (mut gws, _dirs) = instances(&config, 2).await;
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
    wait_until(Duration::from_secs(5), "two instances", || {
        let admin = admin.clone();
        async move { (admin.room("shop").await["instances"].as_array()?.len() == 2).then_some(()) }
    })
    .await;
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
    wait_until(Duration::from_secs(10), "the hand-back", || {
        let admin = admin.clone();
        async move {
            (admin
                .metric("anteroom_store_local", &[("room", "shop")])
                .await
                == Some(0.0))
            .then_some(())
        }
    })
    .await;
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
