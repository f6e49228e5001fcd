//! Every answer anteroom makes follows what the client asked for: a closed room and a failing
//! origin answer apps with JSON they can act on (status fields, `Retry-After`,
//! `poll_after_seconds`) and browsers with a page; released and admitted visitors learn their
//! deadlines as RFC 3339 times.

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

fn at(j: &serde_json::Value, key: &str) -> SystemTime {
    let s = j[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing: {j}"));
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{key} = {s:?}: {e}"))
}

#[tokio::test]
async fn a_closed_room_answers_apps_with_json_and_browsers_with_a_page() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room(
            "shut",
            "shut.test",
            &origin.url(),
            "active_users = 1\nmode = \"reject\"\nmessage = \"back at noon\""
        )
    ))
    .await;
    let mut app = gw.client("shut.test");
    for path in ["/", "/__anteroom/status"] {
        let r = app.get(path, JSON).await;
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let j = r.json();
        assert_eq!(j["state"], "closed", "{path}: {j}");
        assert_eq!(j["message"], "back at noon");
        assert!(j["position"].is_null() && j["estimated_wait_seconds"].is_null());
        let poll = j["poll_after_seconds"].as_u64().unwrap();
        assert_eq!(r.header("retry-after"), Some(poll.to_string().as_str()));
    }
    let page = app.get("/", BROWSER).await;
    assert_eq!(page.status, 503);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.header("retry-after").is_some());
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn origin_failures_answer_apps_with_json_and_browsers_with_a_page() {
    let dead = dead_port().await;
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room(
            "down",
            "down.test",
            &format!("http://{dead}"),
            "active_users = 5"
        )
    ))
    .await;
    let mut c = gw.client("down.test");
    let r = c.get("/", JSON).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["error"], "origin_unreachable", "{j}");
    let poll = j["poll_after_seconds"].as_u64().unwrap();
    assert_eq!(r.header("retry-after"), Some(poll.to_string().as_str()));
    let page = c.get("/", BROWSER).await;
    assert_eq!(page.status, 502);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
}

#[tokio::test]
async fn released_and_admitted_visitors_learn_their_deadlines() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room(
            "times",
            "times.test",
            &origin.url(),
            "active_users = 1\nsession_ttl = \"1m\"\nmax_session = \"10m\"\n\
             release_window = \"30s\"\nabandon_after = \"5m\""
        )
    ))
    .await;
    let mut first = gw.client("times.test");
    assert_eq!(first.get("/", JSON).await.status, 200);
    let admitted = status(&first).await;
    assert_eq!(admitted["state"], "admitted");
    let now = SystemTime::now();
    let idle = at(&admitted, "session_expires_at");
    let hard = at(&admitted, "session_ends_at");
    assert!(idle > now + Duration::from_secs(50) && idle <= now + Duration::from_secs(61));
    assert!(hard > now + Duration::from_secs(590) && hard <= now + Duration::from_secs(601));
    assert!(admitted["release_expires_at"].is_null());
    at(&admitted, "updated_at");

    let mut second = gw.client("times.test");
    let queued = second.get("/", JSON).await.json();
    assert_eq!(queued["state"], "queued");
    assert!(queued["release_expires_at"].is_null() && queued["session_expires_at"].is_null());
    first.send("POST", "/__anteroom/leave", &[], "").await;
    let released = wait_state(&second, "released").await;
    let now = SystemTime::now();
    let by = at(&released, "release_expires_at");
    assert!(by > now + Duration::from_secs(25) && by <= now + Duration::from_secs(31));
    assert!(released["session_expires_at"].is_null());
}

/// While paused nobody is let in: no time is promised, and the page says why.
#[tokio::test]
async fn a_paused_line_promises_no_time() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room(
            "still",
            "still.test",
            &origin.url(),
            "active_users = 5\npaused = true\nsession_ttl = \"10s\""
        )
    ))
    .await;
    let mut v = gw.client("still.test");
    let j = v.get("/", JSON).await.json();
    assert_eq!(j["state"], "paused");
    assert!(j["estimated_wait_seconds"].is_null(), "{j}");
    let page = v.get("/", BROWSER).await.body;
    assert!(page.contains("id=\"wait-line\" hidden"), "{page}");
    assert!(page.contains("The line is paused"));
}

/// An operator's rate cut binds the estimate at once, even after releases were measured at a
/// far higher rate.
#[tokio::test]
async fn a_rate_cut_is_in_the_estimate_at_once() {
    let origin = Origin::start().await;
    let config = format!(
        "{}{}",
        base_config("50ms").replace(
            "[listen]\nhttp = \"127.0.0.1:0\"\n",
            "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n"
        ),
        room(
            "cut",
            "cut.test",
            &origin.url(),
            "active_users = 5\nadmit_per_minute = 6000\nsession_ttl = \"300ms\"\n\
             release_window = \"300ms\"\nabandon_after = \"10m\""
        )
    );
    let gw = Gateway::start(&config).await;
    let admin = Admin::of(&gw);
    let mut line = Vec::new();
    for _ in 0..60 {
        let mut v = gw.client("cut.test");
        v.get("/", JSON).await;
        // Back once (only a visitor who came back since joining is released).
        status(&v).await;
        line.push(v);
    }
    // Nobody comes in when released: releases churn at several a second.
    let last = line.pop().unwrap();
    wait_until(
        Duration::from_secs(10),
        "releases to be measured",
        || async {
            let j = admin.room("cut").await;
            (j["live"]["released_total"].as_u64().unwrap_or(0) >= 10).then_some(())
        },
    )
    .await;
    let fast = status(&last).await;
    assert!(
        fast["release_rate_per_minute"].as_f64().unwrap() > 60.0,
        "{fast}"
    );
    let r = admin.patch("cut", r#"{"admit_per_minute": 1}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let slow = status(&last).await;
    let position = slow["position"].as_u64().unwrap();
    let wait = slow["estimated_wait_seconds"].as_u64().unwrap();
    assert!(
        wait >= position * 60,
        "position {position} at 1 a minute was told {wait} s: {slow}"
    );
    // The estimate grew because the operator slowed admissions, and the answer says so.
    assert!(fast["admissions_slowed_at"].is_null(), "{fast}");
    assert!(slow["admissions_slowed_at"].is_string(), "{slow}");
}
