//! Capacity under concurrent arrivals: many visitors at once on a multi-threaded runtime never
//! push the room past `active_users`, and every queued visitor gets a distinct place.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::collections::BTreeSet;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_arrivals_never_exceed_capacity() {
    let origin = Origin::start().await;
    let config = base_config("20ms")
        + &room(
            "shop",
            "shop.test",
            &origin.url(),
            "active_users = 50\nsession_ttl = \"1m\"\nabandon_after = \"1m\"",
        );
    let gw = Gateway::start(&config).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = gw.client("shop.test");
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..20 {
                    let mut visitor = c.clone();
                    answers.push(visitor.get("/", JSON).await);
                }
                answers
            })
        })
        .collect();
    let mut admitted = 0;
    let mut positions = BTreeSet::new();
    for t in tasks {
        for r in t.await.unwrap() {
            match r.status.as_u16() {
                200 => admitted += 1,
                429 => {
                    let p = r.json()["position"].as_u64().unwrap();
                    assert!(positions.insert(p), "position {p} given twice");
                }
                other => panic!("unexpected status {other}: {}", r.body),
            }
        }
    }
    assert_eq!(admitted, 50, "exactly the capacity is admitted");
    assert_eq!(origin.count(), 50);
    let want: BTreeSet<u64> = (1..=270).collect();
    assert_eq!(positions, want, "queued visitors hold places 1..=270");
}

/// Visitors keep arriving, waiting, coming in, leaving and going idle on 16 tasks while the room
/// ticks every 20 ms; an observer reads the room's state the whole time. At no observed moment
/// are more than 50 admitted (active + released), and the room does fill up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capacity_holds_at_every_observed_moment_under_churn() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let origin = Origin::start().await;
    let config = base_config("20ms")
        + &room(
            "shop",
            "shop.test",
            &origin.url(),
            "active_users = 50\nsession_ttl = \"300ms\"\nabandon_after = \"5s\"\nrelease_window = \"2s\"",
        );
    let gw = Gateway::start(&config).await;
    let gateway = gw.running.as_ref().unwrap().gateway.clone();
    let room = gateway.room("shop").unwrap();
    let settings = gateway.config().rooms[0].settings.clone();
    let done = Arc::new(AtomicBool::new(false));
    let observer = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut most, mut looks) = (0u32, 0u64);
            while !done.load(Ordering::Relaxed) {
                let admitted = {
                    let t = anteroom::store::Store::reading(gateway.store(), &room, &settings)
                        .telemetry;
                    t.active + t.released
                };
                most = most.max(admitted);
                looks += 1;
                tokio::task::yield_now().await;
            }
            (most, looks)
        })
    };
    let tasks: Vec<_> = (0..16u32)
        .map(|task| {
            let c = gw.client("shop.test");
            tokio::spawn(async move {
                let mut admitted = 0;
                for i in 0..12u32 {
                    let mut v = c.clone();
                    let mut r = v.get("/", JSON).await;
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                    while r.status.as_u16() == 429 {
                        assert!(tokio::time::Instant::now() < deadline, "never let in");
                        tokio::time::sleep(Duration::from_millis(15)).await;
                        let s = v.get("/__anteroom/status", JSON).await;
                        if s.json()["state"] == "released" {
                            r = v.get("/", JSON).await;
                        }
                    }
                    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
                    admitted += 1;
                    // Half leave at once, the rest go idle and expire.
                    if (task + i) % 2 == 0 {
                        let left = v.send("POST", "/__anteroom/leave", &[], "").await;
                        assert_eq!(left.status.as_u16(), 200);
                    }
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (most, looks) = observer.await.unwrap();
    println!("{admitted} visits; {looks} observations; at most {most} admitted at once");
    assert_eq!(admitted, 16 * 12);
    assert!(most <= 50, "{most} admitted at once over a capacity of 50");
    assert!(
        most > 16,
        "idle sessions must have filled the room, saw at most {most}"
    );
    assert!(
        looks > 100,
        "the observer must have looked often, looked {looks} times"
    );
}
