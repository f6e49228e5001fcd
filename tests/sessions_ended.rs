//! Sessions end four ways, each freeing the slot at once and counted by reason in
//! `anteroom_sessions_ended_total{reason}`: idle, max_session, leave and the origin's revoke
//! (whose header never reaches the client).

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::time::Duration;

use support::*;

/// `anteroom_sessions_ended_total{room="ends", reason}`, or 0. Each test has a room of its own:
/// the metrics are the process's.
async fn ended(admin: &Admin, reason: &str) -> f64 {
    admin
        .metric(
            "anteroom_sessions_ended_total",
            &[("room", "ends"), ("reason", reason)],
        )
        .await
        .unwrap_or(0.0)
}

#[tokio::test]
async fn every_way_a_session_ends_frees_the_slot_and_is_counted() {
    let origin = Origin::start().await;
    let config = format!(
        "tick = \"20ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n{}",
        room(
            "ends",
            "ends.test",
            &origin.url(),
            "active_users = 4\nsession_ttl = \"300ms\"\nmax_session = \"600ms\"\nabandon_after = \"30s\"",
        )
    );
    let gw = Gateway::start(&config).await;
    let admin = Admin::of(&gw);
    let mut visitors: Vec<Client> = (0..4).map(|_| gw.client("ends.test")).collect();
    for v in &mut visitors {
        assert_eq!(v.get("/", JSON).await.status.as_u16(), 200);
    }
    let mut fifth = gw.client("ends.test");
    let r = fifth.get("/", JSON).await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.json()["position"], 1);

    // Leave: the slot frees at once and the fifth visitor is released by the next tick.
    let left = visitors[0].send("POST", "/__anteroom/leave", &[], "").await;
    assert_eq!(left.json()["left"], true);
    wait_until(Duration::from_secs(5), "the fifth to be released", || {
        let mut v = fifth.clone();
        async move {
            let j = v.get("/__anteroom/status", JSON).await.json();
            (j["state"] == "released").then_some(())
        }
    })
    .await;
    assert_eq!(fifth.get("/", JSON).await.status.as_u16(), 200);

    // Revoke: the origin ends the session; the client never sees the command.
    let r = visitors[1].get("/revoke", JSON).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.header("anteroom-command").is_none());
    let status = visitors[1].get("/__anteroom/status", JSON).await;
    assert_eq!(
        status.json()["state"],
        "expired",
        "a revoked session is gone"
    );

    // Max session: a visitor who keeps browsing is still ended at the hard cap; idle: one who
    // stops is ended after session_ttl.
    let mut busy = visitors[2].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    // A request that lands just after the cap carries a stale token; with a free slot and
    // nobody waiting it is admitted as a new session (a new cookie), which then goes quiet.
    let mut renewed = 0.0;
    while busy.get("/__anteroom/status", JSON).await.json()["state"] == "admitted" {
        assert!(tokio::time::Instant::now() < deadline, "no hard cap");
        let r = busy.get("/", JSON).await;
        assert_eq!(r.status.as_u16(), 200);
        if r.header("set-cookie").is_some() {
            renewed = 1.0;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (reason, want) in [("leave", 1.0), ("revoke", 1.0)] {
        assert_eq!(ended(&admin, reason).await, want, "{reason}");
    }
    wait_until(
        Duration::from_secs(5),
        "idle and max_session counts",
        || async {
            let idle = ended(&admin, "idle").await;
            let cap = ended(&admin, "max_session").await;
            // The fourth visitor and the fifth went quiet (and a renewed third, if any); the
            // third hit the cap.
            (idle == 2.0 + renewed && cap == 1.0).then_some(())
        },
    )
    .await;
}

/// `max_session` far shorter than `session_ttl`, the admitted visitor browsing all along: the
/// cap ends the session on time (not when the idle timer would fire), the visitor's old cookie
/// does not bring it back, and the one waiting gets in. Then a cap added by a reload applies to
/// a live session at the next tick.
#[tokio::test]
async fn max_session_is_kept_even_when_session_ttl_is_far_longer() {
    let origin = Origin::start().await;
    let room_keys = |cap: &str| {
        format!("active_users = 1\nsession_ttl = \"5m\"\nabandon_after = \"30s\"\n{cap}")
    };
    let config = |cap: &str| {
        format!(
            "tick = \"50ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n{}",
            room("capped", "capped.test", &origin.url(), &room_keys(cap))
        )
    };
    let gw = Gateway::start(&config("max_session = \"1s\"")).await;
    let admin = Admin::of(&gw);
    let mut a = gw.client("capped.test");
    assert_eq!(a.get("/", JSON).await.status, 200);
    let a_cookies = a.cookies.clone();
    let mut b = gw.client("capped.test");
    assert_eq!(b.get("/", JSON).await.status, 429);
    let started = tokio::time::Instant::now();
    // A browses every 200 ms with its first cookie until the origin stops answering it.
    let cut_after = wait_until(Duration::from_secs(5), "max_session to end A", || {
        let mut a = a.clone();
        a.cookies = a_cookies.clone();
        async move {
            let r = a.get("/browse", JSON).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            (r.status != 200).then(|| started.elapsed())
        }
    })
    .await;
    assert!(
        cut_after < Duration::from_secs(3),
        "A was admitted for {cut_after:?} under max_session = 1s"
    );
    let capped = admin
        .metric(
            "anteroom_sessions_ended_total",
            &[("room", "capped"), ("reason", "max_session")],
        )
        .await;
    assert!(capped.is_some_and(|n| n >= 1.0), "{capped:?}");
    let state = wait_state(&b, "released").await;
    assert_eq!(state["state"], "released");
    assert_eq!(b.get("/", JSON).await.status, 200);

    // No cap in the file; B browses for a while; a reload sets one it is already past.
    std::fs::write(gw.dir.path().join("gateway.toml"), config("")).unwrap();
    assert_eq!(admin.send("POST", "/api/v1/reload", "").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(b.get("/still-here", JSON).await.status, 200);
    std::fs::write(
        gw.dir.path().join("gateway.toml"),
        config("max_session = \"1s\""),
    )
    .unwrap();
    assert_eq!(admin.send("POST", "/api/v1/reload", "").await.status, 200);
    wait_until(Duration::from_secs(2), "the lowered cap to end B", || {
        let mut b = b.clone();
        async move { (b.get("/after-reload", JSON).await.status != 200).then_some(()) }
    })
    .await;
}
