//! The join budget per client address prefix: past `max_joins_per_prefix_per_minute` new
//! sessions, a client gets the waiting answer with no place (never admitted, nothing created)
//! until its budget refills; visitors who already have a place are never budgeted; behind a
//! trusted proxy the budget follows the forwarded client address.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use support::*;

fn config(origin: &Origin, trusted: &str) -> String {
    format!(
        "{trusted}{}{}",
        base_config("50ms"),
        room(
            "shop",
            "shop.test",
            &origin.url(),
            "active_users = 1\nmax_joins_per_prefix_per_minute = 3"
        )
    )
}

#[tokio::test]
async fn past_the_budget_a_new_client_gets_no_place() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&config(&origin, "")).await;
    let mut first = gw.client("shop.test");
    assert_eq!(first.get("/", JSON).await.status, 200, "admitted");
    let mut queued = Vec::new();
    for position in 1..=2u64 {
        let mut c = gw.client("shop.test");
        let r = c.get("/", JSON).await;
        assert_eq!(r.json()["position"], position);
        queued.push(c);
    }
    // The fourth new session from 127.0.0.0/24 this minute.
    let mut over = gw.client("shop.test");
    let r = over.get("/", JSON).await;
    assert_eq!(r.status, 429);
    let j = r.json();
    assert_eq!(j["state"], "queued");
    assert!(j["position"].is_null(), "{j}");
    assert_eq!(j["queue_depth"], 2);
    assert!(j["token"].is_null(), "{j}");
    assert!(r.header("set-cookie").is_none(), "no session is created");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // The app endpoint is budgeted the same way.
    let r = over.send("POST", "/__anteroom/join", &[], "").await;
    assert!(r.json()["position"].is_null(), "{}", r.body);
    assert!(r.json()["token"].is_null(), "{}", r.body);
    // Visitors with a place keep it and are never budgeted.
    for c in &mut queued {
        let s = status(c).await;
        assert_eq!(s["state"], "queued");
        assert!(s["position"].is_u64());
    }
    assert_eq!(first.get("/page", JSON).await.status, 200);
    assert_eq!(
        origin.count(),
        2,
        "only the admitted visitor reached the origin"
    );
    let admin = gw.running.as_ref().unwrap();
    let gateway = &admin.gateway;
    let room = gateway.room("shop").unwrap();
    let settings = &gateway.config().rooms[0].settings;
    let depth = anteroom::store::Store::reading(gateway.store(), &room, settings).waiting;
    assert_eq!(depth, 2, "nothing joined past the budget");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_prefix_has_its_own_budget() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&config(&origin, "trusted_proxies = [\"127.0.0.0/8\"]\n")).await;
    let join = |xff: &'static str| {
        let mut c = gw.client("shop.test");
        async move {
            let r = c
                .send(
                    "GET",
                    "/",
                    &[("accept", JSON), ("x-forwarded-for", xff)],
                    "",
                )
                .await;
            r.status
        }
    };
    // Three new sessions from 203.0.113.0/24, then it is over budget...
    for _ in 0..3 {
        assert_ne!(join("203.0.113.7").await, 0);
    }
    let over = {
        let mut c = gw.client("shop.test");
        c.send(
            "GET",
            "/",
            &[("accept", JSON), ("x-forwarded-for", "203.0.113.99")],
            "",
        )
        .await
    };
    assert!(over.json()["position"].is_null(), "{}", over.body);
    // ...while another prefix behind the same proxy still joins.
    let other = {
        let mut c = gw.client("shop.test");
        c.send(
            "GET",
            "/",
            &[("accept", JSON), ("x-forwarded-for", "198.51.100.7")],
            "",
        )
        .await
    };
    assert!(other.json()["position"].is_u64(), "{}", other.body);
}
