//! The request path end to end: a real origin, the real gateway, HTTP over loopback.

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

const HOST: &str = "shop.test";

async fn one_room(origin: &Origin, extra: &str) -> Gateway {
    let config = base_config("50ms") + &room("shop", HOST, &origin.url(), extra);
    Gateway::start(&config).await
}

#[tokio::test]
async fn disabled_room_passes_through() {
    let origin = Origin::start().await;
    let gw = one_room(&origin, "active_users = 1\nenabled = false").await;
    for i in 0..5 {
        let mut c = gw.client(HOST);
        let r = c.get(&format!("/page/{i}"), BROWSER).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("origin:/page/{i}"));
        assert!(r.header("set-cookie").is_none());
    }
    assert_eq!(origin.count(), 5);
}

#[tokio::test]
async fn under_capacity_a_new_visitor_goes_straight_to_the_origin_with_a_cookie() {
    let origin = Origin::start().await;
    let gw = one_room(&origin, "active_users = 5").await;
    let mut c = gw.client(HOST);
    let r = c.get("/products?id=7", BROWSER).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "origin:/products");
    let cookie = r.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("anteroom_shop="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Coming back with the cookie: still admitted, no new cookie, and the origin never sees it.
    let r = c
        .send(
            "GET",
            "/cart",
            &[("accept", BROWSER), ("cookie", "theme=dark")],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").is_none());
    let seen = origin.last();
    let cookies: Vec<&str> = seen
        .headers
        .get_all("cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies.iter().all(|c| !c.contains("anteroom_shop")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.contains("theme=dark")),
        "{cookies:?}"
    );
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-host"], HOST);
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["host"], HOST);
}

#[tokio::test]
async fn at_capacity_visitors_queue_in_arrival_order_and_a_refresh_keeps_its_place() {
    let origin = Origin::start().await;
    let gw = one_room(&origin, "active_users = 2\nabandon_after = \"30s\"").await;
    for _ in 0..2 {
        assert_eq!(gw.client(HOST).get("/", JSON).await.status, 200);
    }
    let mut queued = Vec::new();
    for want in 1..=3u64 {
        let mut c = gw.client(HOST);
        let r = c.get("/", JSON).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(r.header("retry-after").is_some());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let j = r.json();
        assert_eq!(j["state"], "queued");
        assert_eq!(j["position"], want);
        assert_eq!(j["queue_depth"], want);
        assert!(j["token"].as_str().is_some_and(|t| !t.is_empty()));
        queued.push(c);
    }
    assert_eq!(origin.count(), 2, "queued visitors never reach the origin");
    // A refresh, the status endpoint and a second tab (same cookie) keep the same place.
    for _ in 0..3 {
        let r = queued[1].get("/other-page", BROWSER).await;
        assert!(r.body.contains("data-position=\"2\""), "{}", r.body);
    }
    let s = queued[1].get("/__anteroom/status", JSON).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.json()["position"], 2);
    assert_eq!(s.json()["queue_depth"], 3);
    // An app asking again at once is told to wait (the poll floor), and keeps its place.
    let again = queued[1].get("/other-page", JSON).await;
    assert_eq!(again.status, 429);
    assert_eq!(again.json()["state"], "queued");
    assert!(again.header("retry-after").is_some());
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn when_an_admitted_session_expires_the_head_of_the_queue_gets_in() {
    let origin = Origin::start().await;
    let gw = one_room(
        &origin,
        "active_users = 1\nsession_ttl = \"300ms\"\nabandon_after = \"10s\"",
    )
    .await;
    let mut first = gw.client(HOST);
    assert_eq!(first.get("/", JSON).await.status, 200);
    let mut second = gw.client(HOST);
    assert_eq!(second.get("/", JSON).await.json()["position"], 1);
    let state = wait_until(Duration::from_secs(5), "the head to be released", || {
        let mut c = second.clone();
        async move {
            let j = c.get("/__anteroom/status", JSON).await.json();
            (j["state"] != "queued").then(|| j["state"].clone())
        }
    })
    .await;
    assert_eq!(state, "released");
    let r = second.get("/checkout", BROWSER).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "origin:/checkout");
    // The expired visitor's session is gone and the room is full again: they are told so (not
    // put at the back unasked), the stale cookie is dropped, and asking again queues them.
    let r = first.get("/", JSON).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["state"], "expired");
    assert!(first.cookies.is_empty());
    let r = first.get("/", JSON).await;
    assert_eq!(r.json()["position"], 1);
}

#[tokio::test]
async fn an_abandoned_visitor_in_the_middle_leaves_and_those_behind_move_up() {
    let origin = Origin::start().await;
    let gw = one_room(
        &origin,
        "active_users = 1\nabandon_after = \"400ms\"\nsession_ttl = \"10s\"",
    )
    .await;
    let mut admitted = gw.client(HOST);
    admitted.get("/", JSON).await;
    let mut a = gw.client(HOST);
    let mut b = gw.client(HOST);
    let mut c = gw.client(HOST);
    for (v, want) in [(&mut a, 1), (&mut b, 2), (&mut c, 3)] {
        assert_eq!(v.get("/", JSON).await.json()["position"], want);
    }
    // a and c keep polling; b closed the tab.
    let pos = wait_until(Duration::from_secs(5), "c to move up", || {
        let (mut a, mut c) = (a.clone(), c.clone());
        async move {
            a.get("/__anteroom/status", JSON).await;
            let j = c.get("/__anteroom/status", JSON).await.json();
            (j["position"] == 2).then_some(j["queue_depth"].clone())
        }
    })
    .await;
    assert_eq!(pos, 2);
    // Polled just now: the next answer comes after the poll floor; polls before it still keep
    // a in line (abandon_after is shorter than the floor here).
    let a_pos = wait_until(Duration::from_secs(5), "a's next answer", || {
        let (mut a, mut c) = (a.clone(), c.clone());
        async move {
            c.get("/__anteroom/status", JSON).await;
            let r = a.get("/__anteroom/status", JSON).await;
            (r.status == 200).then(|| r.json()["position"].clone())
        }
    })
    .await;
    assert_eq!(a_pos, 1);
    // b comes back with its old cookie: its place is gone, and b is told so; asking again
    // joins at the back.
    let r = b.get("/", JSON).await;
    assert_eq!(r.json()["state"], "expired");
    assert!(b.cookies.is_empty());
    let r = b.get("/", JSON).await;
    assert_eq!(r.json()["position"], 3);
    assert!(r.header("set-cookie").is_some());
}

#[tokio::test]
async fn forged_tampered_and_other_room_cookies_go_to_the_back() {
    let origin = Origin::start().await;
    let config = base_config("50ms")
        + &room(
            "shop",
            HOST,
            &origin.url(),
            "active_users = 1\nabandon_after = \"30s\"",
        )
        + &room("other", "other.test", &origin.url(), "active_users = 1");
    let gw = Gateway::start(&config).await;
    gw.client(HOST).get("/", JSON).await;
    let mut first = gw.client(HOST);
    assert_eq!(first.get("/", JSON).await.json()["position"], 1);
    // A token that is valid, but for another room.
    let mut other = gw.client("other.test");
    other.get("/", JSON).await;
    let other_token = other.cookies["anteroom_other"].clone();
    // A tampered copy of a valid token of this room (last character changed).
    let good = first.cookies["anteroom_shop"].clone();
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let cases = [
        ("cookie", format!("anteroom_shop={other_token}")),
        ("cookie", format!("anteroom_shop={tampered}")),
        (
            "cookie",
            format!("anteroom_shop={}", &good[..good.len() / 2]),
        ),
        ("cookie", "anteroom_shop=%%%not-a-token".to_string()),
        ("anteroom-token", tampered.clone()),
    ];
    for (i, (name, value)) in cases.iter().enumerate() {
        let mut c = gw.client(HOST);
        let r = c
            .send("GET", "/", &[("accept", JSON), (name, value.as_str())], "")
            .await;
        assert_eq!(
            r.status, 429,
            "case {i}: never entry, never an error status"
        );
        let j = r.json();
        assert_eq!(
            j["position"],
            2 + i as u64,
            "case {i}: a new place at the back"
        );
        assert_ne!(j["token"].as_str().unwrap(), value.as_str());
    }
    assert_eq!(
        first.get("/__anteroom/status", JSON).await.json()["position"],
        1
    );
}

/// A script's POST (fetch, no navigation) gets JSON; a browser's form post gets the page, which
/// says the form was not sent. Neither reaches the origin.
#[tokio::test]
async fn a_post_from_a_queued_visitor_gets_429_json_and_never_reaches_the_origin() {
    let origin = Origin::start().await;
    let gw = one_room(&origin, "active_users = 1").await;
    gw.client(HOST).get("/", JSON).await;
    let mut c = gw.client(HOST);
    c.get("/", JSON).await;
    let before = origin.count();
    let r = c
        .send(
            "POST",
            "/checkout",
            &[
                ("accept", JSON),
                ("sec-fetch-mode", "cors"),
                ("content-type", "application/json"),
            ],
            "{\"card\":4242}",
        )
        .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["state"], "queued");
    assert_eq!(r.json()["position"], 1);
    assert!(r.header("retry-after").is_some());
    for navigation in [
        vec![("accept", BROWSER), ("sec-fetch-mode", "navigate")],
        vec![("accept", BROWSER)],
    ] {
        let mut headers = navigation.clone();
        headers.push(("content-type", "application/x-www-form-urlencoded"));
        let r = c.send("POST", "/checkout", &headers, "card=4242").await;
        assert_eq!(r.status, 200, "{navigation:?}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(r.body.contains("Your form was not sent"), "{}", r.body);
        assert!(r.body.contains("data-form=\"1\""), "{}", r.body);
        assert!(r.body.contains("data-position=\"1\""), "{}", r.body);
    }
    // A plain page view says nothing about forms.
    let page = c.get("/checkout", BROWSER).await;
    assert!(!page.body.contains("Your form was not sent"));
    assert_eq!(origin.count(), before, "the POST must not reach the origin");
}

#[tokio::test]
async fn waiting_answer_is_html_or_json_by_accept() {
    let origin = Origin::start().await;
    let gw = one_room(
        &origin,
        "active_users = 1\nmessage = \"Sale <b>starts</b> at noon\"",
    )
    .await;
    gw.client(HOST).get("/", JSON).await;
    let mut c = gw.client(HOST);
    let page = c.get("/tickets/42?seat=9", BROWSER).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.header("retry-after").is_some());
    let polls = ["/__anteroom/status", "&#x2f;__anteroom&#x2f;status"];
    assert!(
        polls.iter().any(|u| page.body.contains(u)),
        "the page polls the status"
    );
    assert!(
        page.body
            .contains("Sale &lt;b&gt;starts&lt;&#x2f;b&gt; at noon"),
        "message escaped"
    );
    assert!(!page.body.contains("<b>starts</b>"));
    let nav = c
        .send(
            "GET",
            "/",
            &[("accept", "*/*"), ("sec-fetch-mode", "navigate")],
            "",
        )
        .await;
    assert_eq!(nav.header("content-type"), Some("text/html; charset=utf-8"));
    let json = c.get("/tickets/42", JSON).await;
    assert_eq!(json.status, 429);
    assert_eq!(json.json()["position"], 1);
    let xhr = c
        .send(
            "GET",
            "/",
            &[("accept", BROWSER), ("x-requested-with", "XMLHttpRequest")],
            "",
        )
        .await;
    assert_eq!(xhr.status, 429);
    let fetch = c
        .send(
            "GET",
            "/",
            &[("accept", BROWSER), ("sec-fetch-mode", "cors")],
            "",
        )
        .await;
    assert_eq!(fetch.status, 429);
}

#[tokio::test]
async fn unknown_host_gets_421_and_reaches_no_origin() {
    let origin = Origin::start().await;
    let gw = one_room(&origin, "active_users = 1").await;
    let r = gw.client("elsewhere.test").get("/", BROWSER).await;
    assert_eq!(r.status, 421);
    // Case and port do not matter for a known host.
    let r = gw.client("SHOP.test:8080").get("/", BROWSER).await;
    assert_eq!(r.status, 200);
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn origin_down_gives_the_error_page_with_502() {
    let dead = dead_port().await;
    let gw = one_room_at(&format!("http://{dead}"), "active_users = 5").await;
    let r = gw.client(HOST).get("/", BROWSER).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("<html"));
    // The gateway keeps serving after it.
    assert_eq!(gw.client(HOST).get("/", BROWSER).await.status, 502);
}

#[tokio::test]
async fn slow_origin_gives_504() {
    let origin = Origin::start().await;
    let gw = one_room(&origin, "active_users = 5").await;
    let r = gw.client(HOST).get("/slow", BROWSER).await;
    assert_eq!(r.status, 504);
}

async fn one_room_at(origin: &str, extra: &str) -> Gateway {
    let config = base_config("50ms") + &room("shop", HOST, origin, extra);
    Gateway::start(&config).await
}

#[tokio::test]
async fn bypass_paths_skip_the_queue() {
    let origin = Origin::start().await;
    let gw = one_room(
        &origin,
        "active_users = 1\nbypass = [\"/healthz\", \"/static/*\"]",
    )
    .await;
    gw.client(HOST).get("/", JSON).await;
    for path in ["/healthz", "/static/app.css"] {
        let r = gw.client(HOST).get(path, JSON).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("set-cookie").is_none());
    }
    assert_eq!(gw.client(HOST).get("/healthz2", JSON).await.status, 429);
}

#[tokio::test]
async fn apps_join_poll_with_the_token_header_and_leave() {
    let origin = Origin::start().await;
    // A short session_ttl keeps the estimate, and so the poll floor, short.
    let gw = one_room(
        &origin,
        "active_users = 1\nabandon_after = \"30s\"\nsession_ttl = \"10s\"",
    )
    .await;
    // The first app is admitted at once by join.
    let r = gw
        .client(HOST)
        .send("POST", "/__anteroom/join", &[], "")
        .await;
    assert_eq!(r.status, 200);
    let admitted = r.json();
    assert_eq!(admitted["state"], "admitted");
    let admitted_token = admitted["token"].as_str().unwrap().to_string();
    // The second waits; its token in the header is all it needs.
    let r = gw
        .client(HOST)
        .send("POST", "/__anteroom/join", &[], "")
        .await;
    let j = r.json();
    assert_eq!(j["state"], "queued");
    assert_eq!(j["position"], 1);
    let token = j["token"].as_str().unwrap().to_string();
    let app = || gw.client(HOST);
    let s = app()
        .send(
            "GET",
            "/__anteroom/status",
            &[("anteroom-token", &token)],
            "",
        )
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.json()["position"], 1);
    // Joining again with the token keeps the place. Right after a poll it is a poll too soon:
    // 429, the place kept; asked again when told, it answers.
    let join_again = || async {
        app()
            .send(
                "POST",
                "/__anteroom/join",
                &[("anteroom-token", &token)],
                "",
            )
            .await
    };
    let soon = join_again().await;
    assert_eq!(soon.status, 429, "{}", soon.body);
    assert_eq!(soon.json()["state"], "queued");
    let wait: u64 = soon.header("retry-after").unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = join_again().await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["position"], 1);
    assert_eq!(again.json()["queue_depth"], 1);
    // No token: the status endpoint does not know the visitor.
    assert_eq!(app().get("/__anteroom/status", JSON).await.status, 404);
    // The admitted app leaves: its slot frees and the waiting app is released by the tick.
    let left = app()
        .send(
            "POST",
            "/__anteroom/leave",
            &[("anteroom-token", &admitted_token)],
            "",
        )
        .await;
    assert_eq!(left.status, 200);
    assert_eq!(left.json()["left"], true);
    wait_until(Duration::from_secs(5), "release after leave", || {
        let mut c = app();
        let token = token.clone();
        async move {
            let j = c
                .send(
                    "GET",
                    "/__anteroom/status",
                    &[("anteroom-token", &token)],
                    "",
                )
                .await
                .json();
            (j["state"] == "released").then_some(())
        }
    })
    .await;
    let r = app()
        .send(
            "GET",
            "/api/items",
            &[("anteroom-token", &token), ("accept", JSON)],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "origin:/api/items");
    assert!(
        origin.last().headers.get("anteroom-token").is_none(),
        "token header stripped"
    );
    // Unknown endpoints and methods under the prefix never reach the origin.
    let before = origin.count();
    assert_eq!(app().get("/__anteroom/nothing", JSON).await.status, 404);
    assert_eq!(
        app()
            .send("DELETE", "/__anteroom/status", &[], "")
            .await
            .status,
        405
    );
    assert_eq!(origin.count(), before);
}

#[tokio::test]
async fn the_origin_can_revoke_a_session_and_the_header_never_reaches_the_client() {
    let origin = Origin::start().await;
    let gw = one_room(&origin, "active_users = 1\nabandon_after = \"30s\"").await;
    let mut a = gw.client(HOST);
    assert_eq!(a.get("/", JSON).await.status, 200);
    let mut b = gw.client(HOST);
    assert_eq!(b.get("/", JSON).await.status, 429);
    let r = a.get("/revoke", JSON).await;
    assert_eq!(r.status, 200);
    assert!(r.header("anteroom-command").is_none());
    wait_until(Duration::from_secs(5), "b to be released", || {
        let mut b = b.clone();
        async move {
            (b.get("/__anteroom/status", JSON).await.json()["state"] == "released").then_some(())
        }
    })
    .await;
    assert_eq!(b.get("/", JSON).await.status, 200);
    assert_eq!(
        a.get("/", JSON).await.status,
        429,
        "a revoked session is gone"
    );
}

#[tokio::test]
async fn a_closed_room_answers_503_and_queues_nobody() {
    let origin = Origin::start().await;
    let gw = one_room(
        &origin,
        "active_users = 5\nmode = \"reject\"\nmessage = \"Back on Monday\"",
    )
    .await;
    let mut c = gw.client(HOST);
    let r = c.get("/", BROWSER).await;
    assert_eq!(r.status, 503);
    assert!(r.body.contains("Back on Monday"));
    assert!(r.header("set-cookie").is_none(), "nothing is queued");
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn a_paused_room_admits_nobody_new_and_keeps_places() {
    let origin = Origin::start().await;
    let gw = one_room(
        &origin,
        "active_users = 5\npaused = true\nabandon_after = \"30s\"",
    )
    .await;
    let mut a = gw.client(HOST);
    let mut b = gw.client(HOST);
    let j = a.get("/", JSON).await.json();
    assert_eq!(
        (j["state"].as_str(), j["position"].as_u64()),
        (Some("paused"), Some(1))
    );
    assert_eq!(b.get("/", JSON).await.json()["position"], 2);
    // Ticks go by: still nobody admitted, places held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        a.get("/__anteroom/status", JSON).await.json()["position"],
        1
    );
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn leaving_by_a_plain_form_post_gets_a_page_and_frees_the_place() {
    let origin = Origin::start().await;
    let gw = one_room(&origin, "active_users = 1\nabandon_after = \"30s\"").await;
    gw.client(HOST).get("/", JSON).await;
    let mut a = gw.client(HOST);
    let mut b = gw.client(HOST);
    a.get("/", JSON).await;
    assert_eq!(b.get("/", JSON).await.json()["position"], 2);
    let r = a
        .send("POST", "/__anteroom/leave", &[("accept", BROWSER)], "")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("You left the line"));
    assert!(a.cookies.is_empty(), "the cookie is cleared");
    assert_eq!(
        b.get("/__anteroom/status", JSON).await.json()["position"],
        1
    );
}

#[tokio::test]
async fn a_random_queue_shows_depth_and_odds_instead_of_a_position() {
    let origin = Origin::start().await;
    let gw = one_room(
        &origin,
        "active_users = 1\nqueue = \"random\"\nabandon_after = \"30s\"",
    )
    .await;
    gw.client(HOST).get("/", JSON).await;
    for depth in 1..=3u64 {
        let j = gw.client(HOST).get("/", JSON).await.json();
        assert_eq!(j["state"], "queued");
        assert!(j["position"].is_null());
        assert_eq!(j["queue_depth"], depth);
        let chance = j["chance_next_minute"].as_f64().unwrap();
        assert!(chance > 0.0 && chance <= 1.0, "{chance}");
    }
    assert_eq!(origin.count(), 1);
}
