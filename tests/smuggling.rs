//! Ambiguous and oversized requests, sent as raw bytes: each is refused with a 4xx before any
//! origin sees it.

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

async fn gateway(origin: &Origin) -> Gateway {
    Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room(
            "shop",
            "shop.test",
            &origin.url(),
            "enabled = false\nactive_users = 1"
        )
    ))
    .await
}

#[tokio::test]
async fn ambiguous_requests_get_400_and_never_reach_the_origin() {
    let origin = Origin::start().await;
    let gw = gateway(&origin).await;
    let cases: &[(&str, &[u8])] = &[
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        ),
        (
            "a Content-Length list",
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4, 5\r\n\r\nabcde",
        ),
        (
            "obsolete line folding",
            b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Folded: a\r\n  b\r\n\r\n",
        ),
        (
            "a bad chunk size",
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "a Transfer-Encoding other than chunked",
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        ),
        (
            "gzip then chunked on two lines",
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "gzip, chunked on one line",
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "chunked twice",
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n"),

        (
            "two Hosts",
            b"GET / HTTP/1.1\r\nHost: shop.test\r\nHost: other.test\r\n\r\n",
        ),
        (
            "a space before the colon",
            b"GET / HTTP/1.1\r\nHost: shop.test\r\nContent-Length : 3\r\n\r\nabc",
        ),
    ];
    for (what, raw) in cases {
        let answer = exchange(&gw, raw).await;
        assert_eq!(status_of(&answer), 400, "{what}: {answer}");
    }
    // A tunnel would bypass the room: refused as a method.
    let answer = exchange(
        &gw,
        b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: shop.test\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 405, "{answer}");
    assert_eq!(origin.count(), 0, "the origin saw {:?}", origin.seen.lock());
}

/// RFC 9112 section 6.3: with both, Transfer-Encoding wins. The parser drops the
/// Content-Length; the origin gets the chunked body framed one way only, and the client's
/// connection is closed after the answer, so nothing it sent after can be read as a request.
#[tokio::test]
async fn content_length_beside_chunked_is_dropped_and_the_connection_closed() {
    let origin = Origin::start().await;
    let gw = gateway(&origin).await;
    let answer = exchange_to_close(
        &gw,
        b"POST /both HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: shop.test\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(
        answer.matches("HTTP/1.1").count(),
        1,
        "a second request was read: {answer}"
    );
    let seen = origin.seen.lock().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/both");
    assert!(
        seen[0]
            .headers
            .get("content-length")
            .is_none_or(|v| v == "3"),
        "{:?}",
        seen[0].headers
    );
}

#[tokio::test]
async fn absolute_form_is_routed_by_its_authority() {
    let origin = Origin::start().await;
    let gw = gateway(&origin).await;
    let answer = exchange(
        &gw,
        b"GET http://shop.test/x HTTP/1.1\r\nHost: elsewhere.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(origin.last().path, "/x");
    // The origin sees the host the request was routed by, never the disagreeing Host.
    let hosts: Vec<_> = origin
        .last()
        .headers
        .get_all("host")
        .iter()
        .cloned()
        .collect();
    assert_eq!(hosts, vec!["shop.test"], "{:?}", origin.last().headers);
    // Two Hosts are refused even beside an absolute-form target.
    let answer = exchange(
        &gw,
        b"GET http://shop.test/y HTTP/1.1\r\nHost: shop.test\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 400, "{answer}");
    let answer = exchange(
        &gw,
        b"GET http://elsewhere.test/x HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 421, "{answer}");
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn size_limits_answer_414_431_and_413() {
    let origin = Origin::start().await;
    let config = format!(
        "{}{}",
        base_config("50ms").replace(
            "[limits]\n",
            "[limits]\nmax_header_bytes = 8192\nmax_body = \"1KB\"\n"
        ),
        room(
            "shop",
            "shop.test",
            &origin.url(),
            "enabled = false\nactive_users = 1"
        )
    );
    let gw = Gateway::start(&config).await;
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: shop.test\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(status_of(&exchange(&gw, long_uri.as_bytes()).await), 414);
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: shop.test\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    assert_eq!(status_of(&exchange(&gw, big_head.as_bytes()).await), 431);
    let declared = "POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5000\r\n\r\n";
    assert_eq!(status_of(&exchange(&gw, declared.as_bytes()).await), 413);
    // Chunked, so the size is only known while it streams.
    let mut chunked =
        b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..5 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'c'; 512]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(status_of(&exchange(&gw, &chunked).await), 413);
    assert!(
        origin
            .seen
            .lock()
            .iter()
            .all(|s| s.method != "POST" || s.path != "/"),
        "{:?}",
        origin.seen.lock()
    );
}
