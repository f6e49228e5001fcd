//! A lottery room over HTTP: arrivals see `next_draw_at` and no place until the draw, then a
//! stable place, and they are let in by it.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::time::{Duration, SystemTime};

use support::*;

#[tokio::test]
async fn lottery_visitors_see_the_next_draw_then_a_place() {
    let origin = Origin::start().await;
    // A short session_ttl keeps the estimate, and so poll_after and its floor, short.
    let config = base_config("20ms")
        + &room(
            "drop",
            "drop.test",
            &origin.url(),
            "active_users = 1\nqueue = \"lottery\"\ndraw_every = \"1s\"\nabandon_after = \"30s\"\nsession_ttl = \"10s\"",
        );
    let gw = Gateway::start(&config).await;
    let mut first = gw.client("drop.test");
    assert_eq!(first.get("/", JSON).await.status.as_u16(), 200);
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let mut v = gw.client("drop.test");
        let r = v.get("/tickets", JSON).await;
        assert_eq!(r.status.as_u16(), 429, "{}", r.body);
        let j = r.json();
        assert_eq!(j["state"], "queued");
        assert!(j["position"].is_null(), "no place before the draw: {j}");
        let at = j["next_draw_at"]
            .as_str()
            .expect("next_draw_at before the draw");
        let at = humantime::parse_rfc3339(at).expect("RFC 3339");
        let now = SystemTime::now();
        assert!(at > now - Duration::from_secs(1) && at <= now + Duration::from_secs(3));
        waiting.push(v);
    }
    // After the draw every visitor has a distinct place and no draw to wait for.
    let mut places = Vec::new();
    for v in &mut waiting {
        let place = wait_until(Duration::from_secs(5), "the draw", || {
            let mut v = v.clone();
            async move {
                let j = v.get("/__anteroom/status", JSON).await.json();
                j["position"]
                    .as_u64()
                    .map(|p| (p, j["next_draw_at"].is_null()))
            }
        })
        .await;
        assert!(place.1, "a drawn visitor waits for no draw");
        places.push(place.0);
    }
    let mut sorted = places.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2, 3]);
    // The first place is let in once the admitted visitor leaves, at the URL they asked for.
    let left = first.send("POST", "/__anteroom/leave", &[], "").await;
    assert_eq!(left.status.as_u16(), 200);
    let i = places.iter().position(|&p| p == 1).unwrap();
    let mut front = waiting[i].clone();
    wait_until(Duration::from_secs(5), "the release", || {
        let mut v = front.clone();
        async move {
            let j = v.get("/__anteroom/status", JSON).await.json();
            (j["state"] == "released").then_some(())
        }
    })
    .await;
    let r = front.get("/tickets", JSON).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.body, "origin:/tickets");
}
