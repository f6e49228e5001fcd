//! The ways past the queue that a path or a host could open: every spelling of a target is
//! decided on the path the origin will act on, and the origin receives exactly that path and
//! exactly the host the request was routed by.

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

/// What the gateway must do with one target while the room is full.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// 400, the origin sees nothing.
    Refused,
    /// The waiting answer (429 JSON), the origin sees nothing.
    Queued,
    /// anteroom's own endpoint answers, the origin sees nothing.
    Endpoint,
    /// Forwarded past the queue; the origin receives this path.
    Forwarded(&'static str),
}

use Want::*;

/// Targets, at least 40, against the prefix bypass `/static/*`, the exact bypass `/healthz` and
/// the reserved prefix `/__anteroom/`.
const CASES: &[(&str, Want)] = &[
    ("/static/app.js", Forwarded("/static/app.js")),
    ("/static/../checkout", Queued),
    ("/static/%2e%2e/checkout", Queued),
    ("/static/%2E%2E/checkout", Queued),
    ("/static/.%2e/checkout", Queued),
    ("/static/%2e./checkout", Queued),
    ("/static/..%2fcheckout", Refused),
    ("/static/..%2Fcheckout", Refused),
    ("/static/%2e%2e%2fcheckout", Refused),
    ("/static//../checkout", Queued),
    ("/static/./../checkout", Queued),
    ("/static/x/../../checkout", Queued),
    ("/static/x/../y.js", Forwarded("/static/y.js")),
    ("/static/./y.js", Forwarded("/static/y.js")),
    ("/static//y.js", Forwarded("/static/y.js")),
    ("//static/y.js", Forwarded("/static/y.js")),
    ("/static\\..\\checkout", Refused),
    ("/static/..%5ccheckout", Refused),
    ("/static/..%5Ccheckout", Refused),
    ("/static/..;/checkout", Refused),
    ("/static/.;/../checkout", Refused),
    ("/static/%2e%2e;x=1/checkout", Refused),
    ("/static;x=1/../checkout", Queued),
    ("/static/y.js;v=2", Forwarded("/static/y.js;v=2")),
    ("/static/%c0%ae%c0%ae/checkout", Refused),
    ("/static/%C0%AE%C0%AE/checkout", Refused),
    ("/static/%e0%80%ae%e0%80%ae/checkout", Refused),
    ("/static/%f0%80%80%ae/checkout", Refused),
    ("/static/%00/../checkout", Refused),
    ("/static/%zz", Refused),
    ("/static/..%3B/checkout", Refused),
    ("/static/%f8%80%80%80%ae/checkout", Refused),
    ("/static/caf\u{e9}/../y.js", Forwarded("/static/y.js")),
    ("/static/caf\u{e9}/%41", Forwarded("/static/caf\u{e9}/A")),
    (
        "/static/%252e%252e/checkout",
        Forwarded("/static/%252e%252e/checkout"),
    ),
    ("/%73tatic/y.js", Forwarded("/static/y.js")),
    ("/static/caf%c3%a9.js", Forwarded("/static/caf%C3%A9.js")),
    ("/STATIC/y.js", Queued),
    ("/static", Queued),
    ("/static/../static/y.js", Forwarded("/static/y.js")),
    ("/../static/y.js", Forwarded("/static/y.js")),
    (
        "/static/y.js?next=/../../checkout",
        Forwarded("/static/y.js"),
    ),
    ("/healthz", Forwarded("/healthz")),
    ("/./healthz", Forwarded("/healthz")),
    ("/checkout/../healthz", Forwarded("/healthz")),
    ("/healthz/../checkout", Queued),
    ("/healthz/", Queued),
    ("/__anteroom/status", Endpoint),
    ("/__anteroom//status", Endpoint),
    ("/%5f%5fanteroom/status", Endpoint),
    ("/static/../__anteroom/status", Endpoint),
    ("/x/..//__anteroom/status", Endpoint),
    ("/__anteroom/../checkout", Queued),
    ("/__anteroom/%2e%2e/checkout", Queued),
    ("/__anteroom/..%2fcheckout", Refused),
    ("/__anteroom/..;/checkout", Refused),
];

async fn full_room(origin: &Origin) -> Gateway {
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room(
            "shop",
            "shop.test",
            &origin.url(),
            "active_users = 1\nbypass = [\"/static/*\", \"/healthz\"]"
        )
    ))
    .await;
    // The one slot is taken: anyone new waits.
    let mut first = gw.client("shop.test");
    assert_eq!(first.get("/", JSON).await.status, 200);
    gw
}

#[tokio::test]
async fn every_spelling_of_a_path_is_decided_on_what_the_origin_acts_on() {
    assert!(CASES.len() >= 40);
    let origin = Origin::start().await;
    let gw = full_room(&origin).await;
    let mut wrong = Vec::new();
    for (target, want) in CASES {
        let before = origin.count();
        let raw = format!(
            "GET {target} HTTP/1.1\r\nHost: shop.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        let answer = exchange(&gw, raw.as_bytes()).await;
        let status = status_of(&answer);
        let reached = origin.count() > before;
        let ok = match want {
            Refused => status == 400 && !reached,
            Queued => status == 429 && !reached && answer.contains("\"state\":\"queued\""),
            Endpoint => !reached && status != 400 && status != 429 && !answer.contains("origin:"),
            Forwarded(path) => {
                status == 200
                    && reached
                    && origin.last().path == *path
                    && answer.ends_with(&format!("origin:{path}"))
            }
        };
        if !ok {
            let seen = reached.then(|| origin.last().path);
            wrong.push(format!(
                "{target}: wanted {want:?}, got {status}, origin saw {seen:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Headers that some origin stacks take as the real path never ride along on a bypass path.
#[tokio::test]
async fn path_override_headers_never_reach_the_origin() {
    let origin = Origin::start().await;
    let gw = full_room(&origin).await;
    let raw = "GET /static/a.css HTTP/1.1\r\nHost: shop.test\r\nX-Original-URL: /checkout\r\n\
               X-Rewrite-URL: /checkout\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(&exchange(&gw, raw.as_bytes()).await), 200);
    let seen = origin.last();
    assert_eq!(seen.path, "/static/a.css");
    assert!(
        seen.headers.get("x-original-url").is_none(),
        "{:?}",
        seen.headers
    );
    assert!(
        seen.headers.get("x-rewrite-url").is_none(),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn http2_paths_are_normalised_the_same_way() {
    let origin = Origin::start().await;
    let gw = full_room(&origin).await;
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (target, want) in [
        ("/static/%2e%2e/checkout", 429),
        ("/static/..%2fcheckout", 400),
        ("/static/./y.js", 200),
    ] {
        let req = http::Request::builder()
            .uri(format!("http://shop.test{target}"))
            .header("accept", JSON)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.status(), want, "{target}");
    }
    assert_eq!(origin.last().path, "/static/y.js");
    assert_eq!(origin.count(), 2, "{:?}", origin.seen.lock());
}

/// Two rooms on one origin: `shop` is full, `open` forwards everything. A Host naming both
/// must never reach the shop's pages through the open room.
#[tokio::test]
async fn a_host_with_userinfo_or_stray_characters_is_refused() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "{}{}{}",
        base_config("50ms"),
        room("shop", "shop.test", &origin.url(), "active_users = 1"),
        room(
            "open",
            "open.test",
            &origin.url(),
            "enabled = false\nactive_users = 1"
        )
    ))
    .await;
    let mut first = gw.client("shop.test");
    assert_eq!(first.get("/", JSON).await.status, 200);
    let before = origin.count();
    let hosts = [
        "shop.test:1@open.test",
        "queued.test@open.test",
        "shop.test@open.test:80",
        "open.test%40shop.test",
        "open.test,shop.test",
        "open.test shop.test",
        "open.test/shop",
        "open.test:80:80",
        "open.test:http",
        "[::1]@open.test",
        "shop.test..",
        "shop..test",
    ];
    for host in hosts {
        let raw = format!("GET /checkout HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = exchange(&gw, raw.as_bytes()).await;
        assert_eq!(status_of(&answer), 400, "Host: {host}: {answer}");
    }
    for authority in ["shop.test@open.test", "shop.test:1@open.test"] {
        let raw = format!(
            "GET http://{authority}/checkout HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n"
        );
        let answer = exchange(&gw, raw.as_bytes()).await;
        assert_eq!(status_of(&answer), 400, "{authority}: {answer}");
    }
    // A malformed Host is refused even when an absolute-form target routes the request.
    let raw =
        "GET http://open.test/x HTTP/1.1\r\nHost: shop.test@open.test\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(&exchange(&gw, raw.as_bytes()).await), 400);
    assert_eq!(origin.count(), before, "{:?}", origin.seen.lock());

    // What does pass reaches the origin with exactly the authority it was routed by.
    for (host, sent) in [
        ("OPEN.test:8080", "OPEN.test:8080"),
        ("open.test.", "open.test."),
    ] {
        let raw = format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        assert_eq!(status_of(&exchange(&gw, raw.as_bytes()).await), 200);
        let seen = origin.last();
        let got: Vec<_> = seen.headers.get_all("host").iter().collect();
        assert_eq!(got, vec![sent], "{host}");
    }
    let raw = "GET http://open.test/y HTTP/1.1\r\nHost: open.test\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(&exchange(&gw, raw.as_bytes()).await), 200);
    assert_eq!(origin.last().headers["host"], "open.test");
}
