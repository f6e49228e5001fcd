//! Listener limits that protect the gateway itself: the header read timeout is really on.

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_client_that_trickles_headers_is_cut_off_while_others_are_served() {
    let origin = Origin::start().await;
    let config = format!(
        "tick = \"50ms\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[limits]\nheader_timeout = \"300ms\"\n\n{}",
        room("shop", "shop.test", &origin.url(), "active_users = 10")
    );
    let gw = Gateway::start(&config).await;
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut closed = false;
    let mut buf = [0u8; 1024];
    // One header byte every 100 ms: never a complete head.
    for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
        // Meanwhile a normal visitor is served.
        assert_eq!(gw.client("shop.test").get("/", JSON).await.status, 200);
    }
    assert!(closed, "the slow client was never disconnected");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(
        origin
            .seen
            .lock()
            .iter()
            .filter(|s| s.headers.contains_key("x-slow"))
            .count(),
        0
    );
}

/// An HTTP/2 connection with nothing in flight and no byte either way for `idle_timeout` is
/// closed; one whose request waits on a slow origin is not.
#[tokio::test]
async fn an_idle_connection_is_closed_but_a_waiting_one_is_not() {
    let origin = Origin::start().await;
    let config = format!(
        "tick = \"50ms\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[limits]\nidle_timeout = \"300ms\"\norigin_response_timeout = \"5s\"\n\n{}",
        room(
            "shop",
            "shop.test",
            &origin.url(),
            "enabled = false\nactive_users = 10"
        )
    );
    let gw = Gateway::start(&config).await;
    let h2 = |path: &'static str| {
        http::Request::get(format!("http://shop.test{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    // A request that waits 2 s on the origin, far past idle_timeout, still gets its answer.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let resp = send.send_request(h2("/slow")).await.unwrap();
    assert_eq!(resp.status(), 200);
    // Then nothing: the connection is closed by the gateway.
    let closed = tokio::time::timeout(Duration::from_secs(3), conn).await;
    assert!(closed.is_ok(), "the idle connection was never closed");
    assert!(send.send_request(h2("/")).await.is_err());
}
