//! Capacity under concurrent arrivals: many visitors at once on a multi-threaded runtime never
//! push the room past `active_users`, and every queued visitor gets a distinct place.

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
