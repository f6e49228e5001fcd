//! The queue keeps its promises to a visitor who is not always there: a phone in a pocket keeps
//! its place for `abandon_after`, a turn that came while it was away is waiting at the front when
//! it comes back, a ticket that never comes back never holds a slot, and a place that is really
//! gone is said so (page and JSON), never silently replaced by one at the back.

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

/// A room of one slot whose release window (3 s) is just longer than a poll at the front of the
/// line (2 s, or 1 s after the poll floor), so a turn is missed quickly, and whose absences are
/// short or long as the test needs.
async fn one_slot(name: &str, host: &str, abandon_after: &str) -> (Origin, Gateway) {
    let origin = Origin::start().await;
    let config = format!(
        "{}{}",
        base_config("20ms"),
        room(
            name,
            host,
            &origin.url(),
            &format!(
                "active_users = 1\nsession_ttl = \"30s\"\nrelease_window = \"3s\"\n\
                 abandon_after = \"{abandon_after}\""
            )
        )
    );
    (origin, Gateway::start(&config).await)
}

/// A visitor who joins a full room with JSON and whose app polls once, as a page does on load.
async fn join(gw: &Gateway, host: &str) -> Client {
    let mut c = gw.client(host);
    let r = c.get("/", JSON).await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.body);
    answered(&c).await;
    c
}

/// The visitor's next answered status. Polls every 200 ms: an early poll is answered 429 (the
/// poll floor) but still counts as the visitor being there, as a page that keeps asking is.
async fn answered(c: &Client) -> serde_json::Value {
    let mut c = c.clone();
    loop {
        let r = c.get("/__anteroom/status", JSON).await;
        if r.status == 200 {
            return r.json();
        }
        assert_eq!(r.status.as_u16(), 429, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until the visitor's state is `want`.
async fn answered_state(c: &Client, want: &str) -> serde_json::Value {
    wait_until(Duration::from_secs(10), want, || async {
        let j = answered(c).await;
        (j["state"] == want).then_some(j)
    })
    .await
}

async fn leave(c: &mut Client) {
    let r = c
        .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
        .await;
    assert_eq!(r.json()["left"], true, "{}", r.body);
}

/// B's turn comes while B's phone is in a pocket: after `release_window` the slot goes to C, who
/// comes in. B comes back well within `abandon_after`: at the front, ahead of D who joined after
/// B, and let in as soon as the slot frees.
#[tokio::test]
async fn a_turn_missed_while_away_is_waiting_at_the_front() {
    let (origin, gw) = one_slot("away", "away.test", "10m").await;
    let mut a = gw.client("away.test");
    assert_eq!(a.get("/", JSON).await.status.as_u16(), 200);
    let mut b = join(&gw, "away.test").await;
    let mut c = join(&gw, "away.test").await;
    let mut d = join(&gw, "away.test").await;
    leave(&mut a).await;
    // B does not poll; C and D do. C is released once B's window has passed.
    answered_state(&c, "released").await;
    assert_eq!(c.get("/shop", JSON).await.status.as_u16(), 200);
    assert_eq!(origin.last().path, "/shop");
    let back = answered(&b).await;
    assert_eq!(back["state"], "queued", "{back}");
    assert_eq!(back["position"], 1, "{back}");
    assert_eq!(answered(&d).await["position"], 2);
    leave(&mut c).await;
    answered_state(&b, "released").await;
    assert_eq!(answered(&d).await["state"], "queued");
    let r = b.get("/cart", JSON).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(origin.last().path, "/cart");
    // D is next, once B is done.
    leave(&mut b).await;
    answered_state(&d, "released").await;
    assert_eq!(d.get("/", JSON).await.status.as_u16(), 200);
}

/// A ticket taken by a client that never comes back (no cookie jar, a link previewer) is
/// skipped when its turn comes: the slot goes to the visitor behind it at once, never held for
/// `release_window`.
#[tokio::test]
async fn a_ticket_that_never_comes_back_never_holds_the_slot() {
    let (_origin, gw) = one_slot("bots", "bots.test", "10m").await;
    let mut a = gw.client("bots.test");
    assert_eq!(a.get("/", JSON).await.status.as_u16(), 200);
    for _ in 0..5 {
        let mut bot = gw.client("bots.test");
        assert_eq!(bot.get("/", JSON).await.status.as_u16(), 429);
    }
    let person = join(&gw, "bots.test").await;
    assert_eq!(answered(&person).await["position"], 6);
    leave(&mut a).await;
    // Five bots ahead, each would hold the slot 3 s if released (15 s in all, longer than the
    // test waits): the person is released at the next tick instead.
    let j = answered_state(&person, "released").await;
    assert!(j["release_expires_at"].is_string(), "{j}");
}

/// Away longer than `abandon_after`: the place is gone. The page says so with a button that
/// joins again at the same URL, the JSON says `expired`, the stale cookie is dropped, and no
/// ticket is taken until the visitor asks again.
#[tokio::test]
async fn a_lost_place_is_said_and_joining_again_is_one_request() {
    // Longer than the poll floor (half of 2 s at least), which C's polls must keep to.
    let (origin, gw) = one_slot("lost", "lost.test", "3s").await;
    let mut a = gw.client("lost.test");
    assert_eq!(a.get("/", JSON).await.status.as_u16(), 200);
    let b = join(&gw, "lost.test").await;
    let c = join(&gw, "lost.test").await;
    // A keeps browsing, C keeps polling; B goes quiet for longer than abandon_after.
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(3_500);
    while tokio::time::Instant::now() < quiet_until {
        assert_eq!(a.get("/", JSON).await.status.as_u16(), 200);
        answered(&c).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = origin.count();

    // The page, at the URL asked for.
    let mut page = b.clone();
    let r = page
        .send("GET", "/tickets?id=7", &[("accept", BROWSER)], "")
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert!(
        r.body.contains("<title>Your place has expired</title>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("id=\"rejoin\" href=\"&#x2f;tickets?id=7\""),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("http-equiv=\"refresh\""),
        "no silent rejoin"
    );
    assert!(page.cookies.is_empty(), "the stale cookie is dropped");
    // The JSON, for an app and for the page's own poll.
    let mut app = b.clone();
    let j = app.get("/tickets", JSON).await.json();
    assert_eq!(j["state"], "expired", "{j}");
    assert!(j["position"].is_null() && j["token"].is_null(), "{j}");
    let mut poll = b.clone();
    let r = poll.get("/__anteroom/status", JSON).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.json()["state"], "expired");
    assert!(poll.cookies.is_empty());
    // Nothing was taken: C is still first, the origin saw nothing.
    let j = answered(&c).await;
    assert_eq!(j["position"], 1, "{j}");
    assert_eq!(origin.count(), seen);

    // Join again: the page's button is a plain reload of the same URL, now without the cookie.
    let r = page
        .send("GET", "/tickets?id=7", &[("accept", BROWSER)], "")
        .await;
    assert!(
        r.body.contains("<title>You&#x27;re in line · "),
        "{}",
        r.body
    );
    let again = answered(&page).await;
    assert_eq!(
        (again["state"].as_str(), again["position"].as_u64()),
        (Some("queued"), Some(2))
    );
}
