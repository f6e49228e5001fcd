//! A scheduled event across restarts of the real binary: a SIGTERM during the pre-queue loses
//! nobody; a gateway down across `starts_at` shuffles at its first tick after, giving places
//! 1..N exactly once; a `kill -9` after that keeps the drawn order (the shuffle happens once).

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::*;

const HOST: &str = "drop.test";
const COOKIE: &str = "anteroom_drop";

/// A known token's status JSON, waiting as told when asked again before the poll floor.
async fn known(addr: SocketAddr, token: &str) -> Value {
    let mut c = Client {
        addr,
        host: HOST.to_string(),
        cookies: Default::default(),
    };
    loop {
        let r = c
            .send(
                "GET",
                "/__anteroom/status",
                &[("accept", JSON), ("anteroom-token", token)],
                "",
            )
            .await;
        if r.status == 429 {
            let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        assert_eq!(r.status, 200, "status: {}", r.body);
        return r.json();
    }
}

/// Each token's place, once every one of them has one.
async fn places(addr: SocketAddr, tokens: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    for t in tokens {
        let j = wait_until(LIMIT, "a place after the start", || async {
            let j = known(addr, t).await;
            (j["state"] == "queued").then_some(j)
        })
        .await;
        out.push(j["position"].as_u64().unwrap_or_else(|| panic!("{j}")));
    }
    out
}

async fn start(config: &Path) -> Binary {
    Binary::start(config, &[]).await
}

#[tokio::test]
async fn a_restart_in_the_prequeue_or_across_the_start_loses_nobody_and_shuffles_once() {
    let origin = Origin::start().await;
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state").display().to_string();
    let pre = (unix_ms() + 1_500).div_ceil(1000) * 1000;
    let starts = pre + 5_000;
    let text = format!(
        "tick = \"100ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\n\n\
         [state]\ndir = {state:?}\nsnapshot_every = \"200ms\"\n\n\
         [[room]]\nname = \"drop\"\nhosts = [\"{HOST}\"]\norigin = \"{}\"\n\
         active_users = 1\nsession_ttl = \"1h\"\nabandon_after = \"1h\"\n\n\
         [[room.event]]\nname = \"drop\"\nprequeue_from = \"{}\"\nstarts_at = \"{}\"\n\
         ends_at = \"{}\"\n",
        origin.url(),
        rfc3339_at(pre, 0),
        rfc3339_at(starts, 0),
        rfc3339_at(starts + 3_600_000, 0)
    );
    let config = root.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();

    // Before the pre-queue: the holder takes the one slot (so the start releases nobody).
    let mut a = start(&config).await;
    let mut holder = Client {
        addr: a.addr,
        host: HOST.to_string(),
        cookies: Default::default(),
    };
    assert_eq!(holder.get("/", JSON).await.status, 200);
    sleep_until_ms(pre + 100).await;
    let mut tokens = Vec::new();
    for _ in 0..8 {
        let mut c = Client {
            addr: a.addr,
            host: HOST.to_string(),
            cookies: Default::default(),
        };
        let r = c.get("/", JSON).await;
        assert_eq!(r.json()["state"], "prequeue", "{}", r.body);
        tokens.push(c.cookies.get(COOKIE).cloned().unwrap());
    }

    // SIGTERM in the pre-queue: everyone is back, still waiting for the start.
    a.stop().await;
    let mut b = start(&config).await;
    for t in &tokens {
        let j = known(b.addr, t).await;
        assert_eq!(j["state"], "prequeue", "{j}");
        assert_eq!(j["queue_depth"], 8, "{j}");
    }

    // Down across the start: the first tick after it puts everyone in line, places 1..8 once,
    // drawn (arrival order has one chance in 40,320: the pre-queue was known after restarts).
    b.stop().await;
    sleep_until_ms(starts + 500).await;
    let mut c = start(&config).await;
    let first = places(c.addr, &tokens).await;
    let mut sorted = first.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=8).collect::<Vec<u64>>(), "{first:?}");
    assert_ne!(first, sorted, "shuffled");

    // kill -9 after a snapshot: the same places, not a second shuffle.
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.kill9();
    let mut d = start(&config).await;
    assert_eq!(places(d.addr, &tokens).await, first);
    // The holder still holds its slot.
    let h = known(d.addr, holder.cookies.get(COOKIE).unwrap()).await;
    assert_eq!(h["state"], "admitted", "{h}");
    d.stop().await;
}
