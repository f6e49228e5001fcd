//! WebSocket through the gateway: an admitted visitor's upgrade reaches the origin and messages
//! flow both ways; a queued visitor's upgrade never reaches it; `Upgrade: h2c` is never
//! forwarded.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket origin that echoes every text message back in upper case.
async fn echo_origin() -> String {
    let addr = serve_raw(|stream| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg
                && ws
                    .send(Message::Text(t.to_uppercase().into()))
                    .await
                    .is_err()
            {
                return;
            }
        }
    })
    .await;
    format!("http://{addr}")
}

async fn connect(
    gw: &Gateway,
    host: &str,
    cookie: Option<String>,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{host}/chat").into_client_request().unwrap();
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admitted_visitor_talks_to_the_origin_over_websocket() {
    let origin = echo_origin().await;
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room("chat", "chat.test", &origin, "active_users = 1")
    ))
    .await;
    // The first visitor is admitted by a page request (the echo origin speaks no plain HTTP, so
    // that answer is an error page, which still carries the cookie), then opens a socket with it.
    let mut first = gw.client("chat.test");
    assert_eq!(first.get("/", JSON).await.status, 502);
    let cookie = first
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .next()
        .expect("the admitted visitor's cookie");
    let mut ws = connect(&gw, "chat.test", Some(cookie)).await.unwrap();
    // Past the 101 the connection is the socket's: bare LFs and more bytes than a response
    // head may hold pass untouched.
    let big = "frame ".repeat(20_000);
    for word in ["hello", "waiting", "room", "two\nlines\n", big.as_str()] {
        ws.send(Message::Text(word.into())).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back, Message::Text(word.to_uppercase().into()));
    }
    // A second visitor has no place yet: its upgrade gets the waiting answer, not the origin.
    let queued = connect(&gw, "chat.test", None).await;
    match queued {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429);
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a queued visitor reached the origin's socket"),
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_upgrade_is_never_forwarded() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms"),
        room(
            "shop",
            "shop.test",
            &origin.url(),
            "enabled = false\nactive_users = 1"
        )
    ))
    .await;
    let reply = gw
        .client("shop.test")
        .send(
            "GET",
            "/",
            &[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
            "",
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = origin.last();
    assert!(seen.headers.get("upgrade").is_none(), "{:?}", seen.headers);
    assert!(seen.headers.get("http2-settings").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrades_pass_for_disabled_rooms_and_bypass_paths() {
    let origin = echo_origin().await;
    let gw = Gateway::start(&format!(
        "{}{}{}",
        base_config("50ms"),
        room(
            "off",
            "off.test",
            &origin,
            "enabled = false\nactive_users = 1"
        ),
        // Capacity zero in effect: one slot, taken below; only the bypass path gets through.
        room(
            "busy",
            "busy.test",
            &origin,
            "active_users = 1\nbypass = [\"/chat\"]"
        )
    ))
    .await;
    let mut taken = gw.client("busy.test");
    assert_eq!(taken.get("/", JSON).await.status, 502);
    for host in ["off.test", "busy.test"] {
        let mut ws = connect(&gw, host, None)
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        ws.send(Message::Text("ping".into())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text("PING".into())
        );
    }
}

/// A stop waits for open sockets no longer than `drain_timeout`, then cuts them: nothing of
/// the gateway keeps running after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_cuts_open_sockets_after_the_drain() {
    let origin = echo_origin().await;
    let mut gw = Gateway::start(&format!(
        "{}{}",
        base_config("50ms").replace("[limits]\n", "[limits]\ndrain_timeout = \"300ms\"\n"),
        room(
            "off",
            "off.test",
            &origin,
            "enabled = false\nactive_users = 1"
        ),
    ))
    .await;
    let mut ws = connect(&gw, "off.test", None).await.unwrap();
    ws.send(Message::Text("before".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("BEFORE".into())
    );
    gw.running.take().unwrap().shutdown().await;
    // The splice is gone: the socket ends instead of echoing.
    let _ = ws.send(Message::Text("after".into())).await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await;
    match next {
        Ok(None) | Ok(Some(Err(_))) => {}
        Ok(Some(Ok(m))) => panic!("the socket still works after the stop: {m:?}"),
        Err(_) => panic!("the socket hangs open after the stop"),
    }
}
