//! Who is at fault, and what is never relayed: a client's stalled body is the client's (408),
//! whatever the two timeouts are; an origin answer framed two ways, with bare-LF lines or an
//! oversized head gets 502 and is counted; a body that fails mid-way is counted; a queued
//! visitor polling faster than it was told gets 429 and costs nothing.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

fn with_admin(base: String) -> String {
    base.replace(
        "[listen]\nhttp = \"127.0.0.1:0\"\n",
        "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n",
    )
}

#[tokio::test]
async fn a_stalled_body_is_the_clients_fault_whatever_the_timeouts() {
    let origin = Origin::start().await;
    for (i, (body, response)) in [("1s", "1s"), ("2s", "1s"), ("1s", "3s")]
        .into_iter()
        .enumerate()
    {
        let name = format!("stall{i}");
        let config = format!(
            "{}{}",
            with_admin(base_config("50ms")).replace(
                "origin_response_timeout = \"1s\"",
                &format!("origin_response_timeout = \"{response}\"\nbody_timeout = \"{body}\"")
            ),
            room(
                &name,
                "stall.test",
                &origin.url(),
                "enabled = false\nactive_users = 1"
            )
        );
        let gw = Gateway::start(&config).await;
        let admin = Admin::of(&gw);
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(
            b"POST /upload HTTP/1.1\r\nHost: stall.test\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .await
        .unwrap();
        let mut answer = vec![0u8; 1024];
        let n = timeout(Duration::from_secs(10), s.read(&mut answer))
            .await
            .expect("no answer to a stalled body")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "body_timeout {body}, origin_response_timeout {response}: {answer}"
        );
        let blamed = admin
            .metric(
                "anteroom_upstream_errors_total",
                &[("room", &name), ("kind", "timeout")],
            )
            .await;
        assert!(blamed.is_none_or(|v| v == 0.0), "the origin was blamed");
        let counted = admin
            .metric("anteroom_client_errors_total", &[("kind", "body_timeout")])
            .await;
        assert!(counted.is_some_and(|v| v >= 1.0), "{counted:?}");
    }
}

/// An origin speaking raw bytes: each request's path picks the answer; `keep` answers leave the
/// connection open for the next request.
async fn raw_origin() -> SocketAddr {
    serve_raw(|mut s| async move {
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let Ok(n) = s.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let (answer, keep) = canned(&path);
            if s.write_all(&answer).await.is_err() || !keep {
                return;
            }
        }
    })
    .await
}

fn canned(path: &str) -> (Vec<u8>, bool) {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec();
    let bad: &[u8] = match path {
        "/ok" => return (ok, true),
        "/interim" => {
            return (
                [
                    &b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"[..],
                    &ok,
                ]
                .concat(),
                true,
            );
        }
        "/both" => {
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nhello"
        }
        "/bare-lf" => b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
        "/bare-lf-header" => b"HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 2\r\n\r\nhi",
        "/gzip-te" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz",
        "/two-lengths" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!",
        "/huge" => {
            let big = format!(
                "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nhi",
                "b".repeat(100 * 1024)
            );
            return (big.into_bytes(), false);
        }
        "/mid-body" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    };
    (bad.to_vec(), false)
}

#[tokio::test]
async fn origin_answers_that_cannot_be_relayed_safely_get_502() {
    let origin = raw_origin().await;
    let config = format!(
        "{}{}",
        with_admin(base_config("50ms")),
        room(
            "raw",
            "raw.test",
            &format!("http://{origin}"),
            "enabled = false\nactive_users = 1"
        )
    );
    let gw = Gateway::start(&config).await;
    let admin = Admin::of(&gw);
    let mut c = gw.client("raw.test");
    // Well-formed answers pass, on a reused connection and after an interim head.
    for path in ["/ok", "/ok", "/interim", "/ok"] {
        let r = c.get(path, JSON).await;
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "hi"), "{path}");
    }
    let bad = [
        "/both",
        "/bare-lf",
        "/bare-lf-header",
        "/gzip-te",
        "/two-lengths",
        "/huge",
    ];
    for path in bad {
        let r = c.get(path, JSON).await;
        assert_eq!(r.status, 502, "{path}: {:?} {}", r.headers, r.body);
        // anteroom's own error answer, nothing of the origin's.
        assert_eq!(
            r.json()["error"],
            "origin_invalid_response",
            "{path} was relayed: {}",
            r.body
        );
        assert!(r.header("retry-after").is_some(), "{path}");
    }
    let counted = admin
        .metric(
            "anteroom_upstream_errors_total",
            &[("room", "raw"), ("kind", "invalid_response")],
        )
        .await;
    assert_eq!(counted, Some(bad.len() as f64));
    // The pool is not poisoned: the next answer is fine.
    let r = c.get("/ok", JSON).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "hi"));

    // A body cut off after its head went out can only be cut off for the client too, and is
    // counted as the origin's failure.
    let raw = "GET /mid-body HTTP/1.1\r\nHost: raw.test\r\nConnection: close\r\n\r\n";
    let answer = exchange_to_close(&gw, raw.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("only part"), "{answer}");
    let counted = wait_until(Duration::from_secs(5), "the mid-body failure", || async {
        admin
            .metric(
                "anteroom_upstream_errors_total",
                &[("room", "raw"), ("kind", "body")],
            )
            .await
            .filter(|v| *v >= 1.0)
    })
    .await;
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn polls_faster_than_half_of_poll_after_get_429_and_keep_the_place() {
    let origin = Origin::start().await;
    let config = format!(
        "{}{}",
        base_config("50ms"),
        room(
            "floor",
            "floor.test",
            &origin.url(),
            "active_users = 1\nsession_ttl = \"10s\""
        )
    );
    let gw = Gateway::start(&config).await;
    let mut first = gw.client("floor.test");
    assert_eq!(first.get("/", JSON).await.status, 200);
    let mut waiting = gw.client("floor.test");
    let joined = waiting.get("/", JSON).await.json();
    assert_eq!(joined["state"], "queued");
    // The first poll after a join is answered; it sets the floor.
    let r = waiting.get("/__anteroom/status", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let poll_after = r.json()["poll_after_seconds"].as_u64().unwrap();
    let polled_at = Instant::now();

    let r = waiting.get("/__anteroom/status", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    let j = r.json();
    assert_eq!(j["state"], "queued");
    assert!(j["error"].is_string(), "{j}");
    assert!(j.get("position").is_none(), "work was done: {j}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=poll_after).contains(&retry), "{retry} of {poll_after}");
    // Any URL is a poll for an app or a script: the same floor. A person reloading the page
    // still gets the page.
    for path in ["/", "/anything?x=1"] {
        let r = waiting.get(path, JSON).await;
        assert_eq!(r.status, 429, "{path}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{path}: {}", r.body);
        assert!(r.json().get("position").is_none(), "{path}: work was done");
    }
    let page = waiting.get("/anything", BROWSER).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("data-position=\"1\""), "{}", page.body);
    assert_eq!(origin.count(), 1, "a queued visitor reached the origin");

    // Past half of poll_after: answered, same place.
    tokio::time::sleep_until(polled_at + Duration::from_millis(poll_after * 500 + 50)).await;
    let r = waiting.get("/__anteroom/status", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["position"], 1);
    // And the floor starts again from that poll.
    let r = waiting.get("/__anteroom/status", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
}
