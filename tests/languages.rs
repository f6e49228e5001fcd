//! The pages speak the visitor's language: `Accept-Language` among the room's `languages`, a
//! link's `?anteroom_lang=` (stripped before the origin, remembered in a cookie that beats the
//! header), the room's own strings and `display_name`; the status JSON stays machine values.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use parking_lot::Mutex;
use support::*;

const HOST: &str = "shop.test";

/// A gateway with one room of one place (`extra` adds keys), the place taken: the next new
/// visitor waits.
async fn full_room(origin: &str, extra: &str) -> Gateway {
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room("shop", HOST, origin, &format!("active_users = 1\n{extra}"))
    ))
    .await;
    let first = gw.client(HOST).get("/", JSON).await;
    assert_eq!(first.status, 200, "{}", first.body);
    gw
}

/// A new visitor's waiting page, asked for with `headers` besides a browser's Accept.
async fn page(c: &mut Client, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("accept", BROWSER)];
    all.extend_from_slice(headers);
    c.send("GET", path, &all, "").await
}

#[tokio::test]
async fn accept_language_de_gets_the_german_page() {
    let origin = Origin::start().await;
    let gw = full_room(&origin.url(), "").await;
    let r = page(
        &mut gw.client(HOST),
        "/",
        &[("accept-language", "de-CH, en;q=0.5")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<html lang=\"de\">"), "{}", r.body);
    assert!(r.body.contains("Sie sind Nummer"), "{}", r.body);
    assert!(
        r.body
            .contains("Sie sind in der Warteschlange für shop.test"),
        "{}",
        r.body
    );
    // The script's strings come along, in German.
    assert!(r.body.contains("Personen warten"), "{}", r.body);
    // Without the header: English.
    let r = page(&mut gw.client(HOST), "/", &[]).await;
    assert!(r.body.contains("<html lang=\"en\">"), "{}", r.body);
    assert!(r.body.contains("You are number"), "{}", r.body);
}

#[tokio::test]
async fn a_language_the_room_does_not_speak_gets_its_default() {
    let origin = Origin::start().await;
    let gw = full_room(&origin.url(), "languages = [\"en\", \"fr\"]").await;
    let r = page(&mut gw.client(HOST), "/", &[("accept-language", "de")]).await;
    assert!(r.body.contains("<html lang=\"en\">"), "{}", r.body);
    assert!(
        r.body.contains("You&#x27;re in line for shop.test"),
        "{}",
        r.body
    );
    // The switch offers the room's languages only.
    assert!(r.body.contains("hreflang=\"fr\""), "{}", r.body);
    assert!(!r.body.contains("hreflang=\"de\""), "{}", r.body);
    let r = page(
        &mut gw.client(HOST),
        "/",
        &[("accept-language", "de, fr;q=0.5")],
    )
    .await;
    assert!(r.body.contains("<html lang=\"fr\">"), "{}", r.body);
}

#[tokio::test]
async fn the_rooms_own_strings_and_display_name_show_up() {
    let origin = Origin::start().await;
    let gw = full_room(
        &origin.url(),
        "display_name = \"Der <Laden>\"\n[room.text.de]\nqueue_heading = \"Bitte warten auf {site}\"",
    )
    .await;
    let r = page(&mut gw.client(HOST), "/", &[("accept-language", "de")]).await;
    assert!(
        r.body.contains("Bitte warten auf Der &lt;Laden&gt;"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("<title>Sie sind in der Warteschlange · Der &lt;Laden&gt;</title>"),
        "{}",
        r.body
    );
    // Other languages keep their built-in heading, with the display name.
    let r = page(&mut gw.client(HOST), "/", &[("accept-language", "fr")]).await;
    assert!(
        r.body
            .contains("Vous êtes dans la file pour Der &lt;Laden&gt;"),
        "{}",
        r.body
    );
}

/// An origin that records each request's whole target (path and query).
async fn target_origin() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let addr = serve_http(move |req| {
        let log = log.clone();
        async move {
            log.lock().push(req.uri().to_string());
            Response::new(Full::new(Bytes::from_static(b"origin")))
        }
    })
    .await;
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn a_language_link_sets_the_cookie_and_never_reaches_the_origin() {
    let (url, seen) = target_origin().await;
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room("shop", HOST, &url, "active_users = 1")
    ))
    .await;
    // The admitted visitor's choice is stripped before the origin, the rest of the query kept.
    let mut admitted = gw.client(HOST);
    let r = admitted.get("/p?anteroom_lang=fr&q=1", BROWSER).await;
    assert_eq!(r.body, "origin");
    assert_eq!(
        admitted.cookies.get("anteroom_lang").map(String::as_str),
        Some("fr")
    );
    let r = admitted.get("/p?anteroom_lang=de", BROWSER).await;
    assert_eq!(r.body, "origin");
    assert_eq!(*seen.lock(), ["/p?q=1", "/p"]);
    // A waiting visitor: the page in the chosen language, remembered over Accept-Language.
    let mut c = gw.client(HOST);
    let r = page(
        &mut c,
        "/p?x=1&anteroom_lang=fr",
        &[("accept-language", "de")],
    )
    .await;
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string());
    let cookie: Vec<String> = cookie.filter(|v| v.starts_with("anteroom_lang=")).collect();
    assert_eq!(cookie.len(), 1, "{cookie:?}");
    assert!(
        cookie[0].starts_with("anteroom_lang=fr; Path=/; Max-Age="),
        "{cookie:?}"
    );
    assert!(r.body.contains("<html lang=\"fr\">"), "{}", r.body);
    // The switch's links keep the URL asked for, without the old choice.
    assert!(
        r.body.contains("&#x2f;p?x=1&amp;anteroom_lang=de\""),
        "{}",
        r.body
    );
    let r = page(&mut c, "/p", &[("accept-language", "de")]).await;
    assert!(r.body.contains("<html lang=\"fr\">"), "{}", r.body);
    // A code the room does not speak is dropped (and stripped) without a cookie.
    let r = page(&mut gw.client(HOST), "/p?anteroom_lang=xx", &[]).await;
    assert!(
        r.header("set-cookie")
            .is_none_or(|v| !v.contains("anteroom_lang")),
        "{r:?}"
    );
    assert_eq!(
        seen.lock().len(),
        2,
        "only the admitted visitor reached the origin"
    );
}

#[tokio::test]
async fn the_status_json_holds_machine_values_only() {
    let origin = Origin::start().await;
    let gw = full_room(&origin.url(), "message = \"Back at noon, folks\"").await;
    let mut c = gw.client(HOST);
    page(&mut c, "/", &[("accept-language", "de")]).await;
    // The first poll and one too soon after it (429): codes and numbers, whatever the language.
    for _ in 0..2 {
        let j = c
            .send(
                "GET",
                "/__anteroom/status",
                &[("accept", JSON), ("accept-language", "de")],
                "",
            )
            .await
            .json();
        assert_eq!(j["state"], "queued", "{j}");
        assert_eq!(
            j["message"], "Back at noon, folks",
            "the operator's words, as written"
        );
        for (k, v) in j.as_object().unwrap() {
            if let (false, Some(s)) = (k == "message", v.as_str()) {
                assert!(!s.contains(' '), "{k} = {s:?} reads like a sentence");
            }
        }
    }
    // An unknown session's answer too.
    let r = gw.client(HOST).get("/__anteroom/status", JSON).await;
    assert_eq!(r.json()["error"], "unknown_session", "{}", r.body);
}

#[tokio::test]
async fn closed_error_and_left_pages_speak_the_language() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "{}{}{}",
        base_config("50ms"),
        room(
            "shut",
            "shut.test",
            &origin.url(),
            "active_users = 1\nmode = \"reject\""
        ),
        room(
            "down",
            "down.test",
            &format!("http://{}", dead_port().await),
            "active_users = 5"
        )
    ))
    .await;
    let r = page(
        &mut gw.client("shut.test"),
        "/",
        &[("accept-language", "de")],
    )
    .await;
    assert_eq!(r.status, 503);
    assert!(
        r.body.contains("shut.test nimmt gerade keine Besucher an"),
        "{}",
        r.body
    );
    let r = page(
        &mut gw.client("down.test"),
        "/",
        &[("accept-language", "fr")],
    )
    .await;
    assert_eq!(r.status, 502);
    assert!(r.body.contains("<html lang=\"fr\">"), "{}", r.body);
    assert!(r.body.contains("Le site ne répond pas"), "{}", r.body);
}

#[tokio::test]
async fn the_no_script_left_page_is_styled_and_goes_back_where_the_visitor_was() {
    let origin = Origin::start().await;
    let gw = full_room(&origin.url(), "").await;
    let mut c = gw.client(HOST);
    let waiting = page(&mut c, "/tickets?id=7", &[("accept-language", "nl")]).await;
    // The form says where to come back to.
    assert!(
        waiting
            .body
            .contains("action=\"&#x2f;__anteroom&#x2f;leave?return=&#x2f;tickets%3Fid%3D7\""),
        "{}",
        waiting.body
    );
    let r = c
        .send(
            "POST",
            "/__anteroom/leave?return=/tickets%3Fid%3D7",
            &[("accept", BROWSER), ("accept-language", "nl")],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<html lang=\"nl\">"), "{}", r.body);
    assert!(r.body.contains("U hebt de rij verlaten"), "{}", r.body);
    assert!(r.body.contains("href=\"&#x2f;tickets?id=7\""), "{}", r.body);
    assert!(r.body.contains("rel=\"stylesheet\""), "{}", r.body);
    // Only a path of this site: anything else goes back to the front page.
    for bad in [
        "%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example",
        "%2F%5Cevil",
    ] {
        let r = gw
            .client(HOST)
            .send(
                "POST",
                &format!("/__anteroom/leave?return={bad}"),
                &[("accept", BROWSER)],
                "",
            )
            .await;
        assert!(r.body.contains("href=\"&#x2f;\""), "{bad}: {}", r.body);
    }
}

#[tokio::test]
async fn a_join_over_the_budget_says_it_is_retrying() {
    let origin = Origin::start().await;
    let gw = full_room(&origin.url(), "max_joins_per_prefix_per_minute = 1").await;
    let r = page(&mut gw.client(HOST), "/", &[("accept-language", "es")]).await;
    assert!(
        r.body
            .contains("Aún no hemos podido darte un lugar en la fila"),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=\"where\" hidden"), "{}", r.body);
}
