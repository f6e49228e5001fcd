//! CORS on the public endpoints, through the real gateway: a preflight from one of the room's
//! `cors_origins` is answered with the CORS headers, one from any other origin without them;
//! actual answers to an allowed origin may be read (token and retry headers exposed); the
//! origin's own paths never get CORS headers from anteroom; and an `OPTIONS` never takes a
//! place or a slot, on any path.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::disallowed_types)]

mod support;

use support::*;

const APP: &str = "https://app.example.com";

async fn start(origin: &Origin, extra: &str) -> Gateway {
    let config = base_config("100ms")
        + &room(
            "shop",
            "shop.test",
            &origin.url(),
            &format!("active_users = 1\ncors_origins = [\"{APP}\"]\n{extra}"),
        );
    Gateway::start(&config).await
}

fn preflight_headers(origin: &str) -> Vec<(&str, &str)> {
    vec![
        ("origin", origin),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "anteroom-token"),
    ]
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_on_every_public_endpoint() {
    let origin = Origin::start().await;
    let gw = start(&origin, "").await;
    for what in ["join", "status", "leave", "events"] {
        let mut c = gw.client("shop.test");
        let path = format!("/__anteroom/{what}");
        let r = c.send("OPTIONS", &path, &preflight_headers(APP), "").await;
        assert_eq!(r.status, 204, "{what}: {}", r.body);
        assert_eq!(r.header("access-control-allow-origin"), Some(APP), "{what}");
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some("GET, POST, OPTIONS")
        );
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("Anteroom-Token, Content-Type")
        );
        assert_eq!(r.header("access-control-max-age"), Some("600"));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("vary"), Some("Origin"));
        assert!(
            r.header("set-cookie").is_none(),
            "{what}: a preflight joined"
        );
    }
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_cors_headers() {
    let origin = Origin::start().await;
    let gw = start(&origin, "").await;
    for other in ["https://evil.example", "http://app.example.com", "null"] {
        let mut c = gw.client("shop.test");
        let r = c
            .send("OPTIONS", "/__anteroom/join", &preflight_headers(other), "")
            .await;
        assert_eq!(r.status, 204);
        for (name, _) in &r.headers {
            assert!(
                !name.as_str().starts_with("access-control-"),
                "{other}: {name}"
            );
        }
    }
}

#[tokio::test]
async fn answers_to_an_allowed_origin_may_be_read_others_not() {
    let origin = Origin::start().await;
    let gw = start(&origin, "").await;
    let mut app = gw.client("shop.test");
    let joined = app
        .send(
            "POST",
            "/__anteroom/join",
            &[("origin", APP), ("accept", JSON)],
            "",
        )
        .await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    assert_eq!(joined.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        joined.header("access-control-expose-headers"),
        Some("Anteroom-Token, Retry-After")
    );
    assert_eq!(
        joined.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(joined.header("vary"), Some("Origin"));
    let token = joined.json()["token"].as_str().unwrap().to_string();
    let mut bare = gw.client("shop.test");
    let status = bare
        .send(
            "GET",
            "/__anteroom/status",
            &[
                ("origin", APP),
                ("anteroom-token", &token),
                ("accept", JSON),
            ],
            "",
        )
        .await;
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.header("access-control-allow-origin"), Some(APP));
    // Another origin: the same answer, nothing a browser would let its script read.
    let mut other = gw.client("shop.test");
    let r = other
        .send(
            "POST",
            "/__anteroom/join",
            &[("origin", "https://evil.example"), ("accept", JSON)],
            "",
        )
        .await;
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(r.header("vary"), Some("Origin"));
    // The origin's own paths are the origin's business: anteroom adds nothing.
    let site = app.send("GET", "/page", &[("origin", APP)], "").await;
    assert_eq!(site.body, "origin:/page");
    assert!(site.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn options_never_joins_the_line() {
    let origin = Origin::start().await;
    let gw = start(&origin, "").await;
    // An empty room with a free slot: an OPTIONS takes neither the slot nor a session.
    let mut probe = gw.client("shop.test");
    let r = probe.send("OPTIONS", "/anything", &[], "").await;
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").is_none());
    assert_eq!(
        origin.count(),
        0,
        "an unknown visitor's OPTIONS was forwarded"
    );
    // The slot is still free: the first real visitor goes in at once.
    let (mut holder, first) = visit(&gw, "shop.test").await;
    assert_eq!(first.body, "origin:/");
    // A full room: OPTIONS on any path, with or without preflight headers, takes no place.
    for path in ["/", "/checkout", "/__anteroom/join", "/__anteroom/status"] {
        let mut c = gw.client("shop.test");
        let r = c.send("OPTIONS", path, &preflight_headers(APP), "").await;
        assert_eq!(r.status, 204, "{path}");
        assert!(r.header("set-cookie").is_none(), "{path}");
    }
    let (waiter, _) = visit(&gw, "shop.test").await;
    let standing = status(&waiter).await;
    assert_eq!(standing["position"], 1, "{standing}");
    assert_eq!(standing["queue_depth"], 1, "{standing}");
    // The admitted visitor's OPTIONS is the origin's to answer.
    let seen = origin.count();
    let r = holder.send("OPTIONS", "/api", &[], "").await;
    assert_eq!(r.body, "origin:/api");
    assert_eq!(origin.count(), seen + 1);
    assert_eq!(origin.last().method, "OPTIONS");
}
