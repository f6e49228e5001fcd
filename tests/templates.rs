//! Operators' templates: a room's own error page answers when its origin is down, and a
//! template reading a variable its page does not have is refused on reload while the old
//! configuration keeps serving.

// Tests unwrap and share `pub` helpers through `mod support`.
#![allow(unreachable_pub, clippy::unwrap_used, clippy::disallowed_types)]

mod support;

use support::*;

/// Admin listener on, no admin token (loopback is served).
fn with_admin(rooms: &str) -> String {
    base_config("50ms").replace(
        "http = \"127.0.0.1:0\"\n",
        "http = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n",
    ) + rooms
}

#[tokio::test]
async fn a_rooms_error_page_answers_when_its_origin_is_down() {
    let dead = dead_port().await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("down.html");
    std::fs::write(
        &page,
        "<!doctype html><html lang=\"{{ lang }}\"><title>{{ title }}</title>\n\
         <p>Our shop is resting ({{ status }}): {{ detail }}</p></html>\n",
    )
    .unwrap();
    let extra = format!(
        "active_users = 5\nerror_page = {:?}",
        page.display().to_string()
    );
    let config = base_config("50ms")
        + &room("down", "down.test", &format!("http://{dead}"), &extra)
        + &room(
            "plain",
            "plain.test",
            &format!("http://{dead}"),
            "active_users = 5",
        );
    let gw = Gateway::start(&config).await;
    let mut c = gw.client("down.test");
    let r = c.get("/", BROWSER).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("Our shop is resting (502): "), "{}", r.body);
    assert!(r.body.contains("lang=\"en\""), "{}", r.body);
    // Apps still get JSON; another room keeps the built-in page, which tries again by itself.
    let j = c.get("/", JSON).await;
    assert_eq!(j.json()["error"], "origin_unreachable", "{}", j.body);
    let built_in = gw.client("plain.test").get("/", BROWSER).await;
    assert_eq!(built_in.status, 502);
    assert!(!built_in.body.contains("resting"), "{}", built_in.body);
    assert!(built_in.body.contains("Math.random()"), "{}", built_in.body);
    assert!(
        built_in
            .body
            .contains("<noscript><meta http-equiv=\"refresh\"")
    );
}

#[tokio::test]
async fn a_template_typo_is_refused_on_reload_and_the_old_page_keeps_serving() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("shop.html");
    std::fs::write(&page, "<p>Place {{ position }}</p>\n").unwrap();
    let extra = format!("active_users = 1\npage = {:?}", page.display().to_string());
    let gw = Gateway::start(&with_admin(&room(
        "shop",
        "shop.test",
        &origin.url(),
        &extra,
    )))
    .await;
    let admin = Admin::of(&gw);
    let (_first, r) = visit(&gw, "shop.test").await;
    assert_eq!(r.status, 200);
    let mut second = gw.client("shop.test");
    assert!(second.get("/", BROWSER).await.body.contains("Place 1"));

    // A typo on line 3: refused, naming the file, the line and the variable.
    std::fs::write(&page, "<p>\nPlace\n{{ postion }}</p>\n").unwrap();
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let j = r.json();
    let e = &j["errors"][0];
    assert_eq!(e["key"], "room[0].page", "{j}");
    let message = e["message"].as_str().unwrap();
    let want = format!("{}:3: unknown variable `postion`", page.display());
    assert!(message.contains(&want), "{message}");
    assert!(message.contains("did you mean `position`?"), "{message}");
    // The page compiled before the typo still answers.
    assert!(second.get("/", BROWSER).await.body.contains("Place 1"));
}

/// A template that loads (its sample has a place) but fails for a visitor without one: the
/// visitor gets the built-in page, never a 500.
#[tokio::test]
async fn a_page_failing_for_one_visitor_falls_back_to_the_built_in_page() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("shop.html");
    std::fs::write(&page, "<p>Next after you: {{ position + 1 }}</p>\n").unwrap();
    let extra = format!(
        "active_users = 1\nqueue = \"random\"\npage = {:?}",
        page.display().to_string()
    );
    let gw =
        Gateway::start(&(base_config("50ms") + &room("shop", "shop.test", &origin.url(), &extra)))
            .await;
    let (_first, r) = visit(&gw, "shop.test").await;
    assert_eq!(r.status, 200);
    let mut second = gw.client("shop.test");
    let j = second.get("/", JSON).await;
    assert_eq!(j.json()["position"], serde_json::Value::Null, "{}", j.body);
    let r = second.get("/", BROWSER).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("Next after you"), "{}", r.body);
    assert!(r.body.contains("id=\"room\""), "{}", r.body);
}
