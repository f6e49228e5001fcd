//! The event stream, `GET /__anteroom/events`, through the real gateway: its first event is the
//! status endpoint's body, a visitor released by the tick hears it within about a second, idle
//! streams get heartbeats, the stream limit answers 503, the token may come in the query, and
//! a graceful stop closes open streams at once. Run against both stores where it matters.

#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use support::*;
use tokio::net::TcpStream;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

/// One thing a stream said.
#[derive(Debug)]
enum Said {
    Status(Value),
    Comment,
    End,
}

/// An open event stream (or the answer that refused one).
struct Events {
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    buf: String,
}

impl Events {
    /// `GET /__anteroom/events` (plus `query`) as `c`, with its cookies and `headers`.
    async fn open(c: &Client, query: &str, headers: &[(&str, &str)]) -> Events {
        open_at(c.addr, &c.host, &cookie_header(c), query, headers).await
    }

    /// The next event or comment, or the end of the stream; fails after `limit`.
    async fn next(&mut self, limit: Duration) -> Said {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    assert!(block.starts_with("event: status\n"), "{block}");
                    return Said::Status(serde_json::from_str(data).unwrap());
                }
                assert!(block.starts_with(':'), "{block}");
                return Said::Comment;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .expect("the stream said nothing in time");
            match frame {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.push_str(std::str::from_utf8(&d).unwrap());
                    }
                }
                _ => return Said::End,
            }
        }
    }

    /// The next status event, skipping heartbeats.
    async fn next_status(&mut self, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            match self.next(deadline - Instant::now()).await {
                Said::Status(v) => return v,
                Said::Comment => {}
                Said::End => panic!("the stream ended"),
            }
        }
    }

    /// The whole body of a refused stream.
    async fn text(self) -> String {
        let b = self.body.collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    }
}

fn cookie_header(c: &Client) -> String {
    c.cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn open_at(
    addr: SocketAddr,
    host: &str,
    cookies: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> Events {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(format!("/__anteroom/events{query}"))
        .header("host", host)
        .header("accept", "text/event-stream");
    if !cookies.is_empty() {
        req = req.header("cookie", cookies);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Events {
        status: parts.status,
        headers: parts.headers,
        body,
        buf: String::new(),
    }
}

/// A gateway with one room of one slot, ticking every 100 ms; `limits` adds `[limits]` keys.
async fn one_slot(origin: &Origin, limits: &str, store: Option<&RedisServer>) -> Gateway {
    one_slot_named("shop", origin, limits, store).await
}

/// [`one_slot`] with the room named `name` (metrics are process-wide: a test reading one uses a
/// room of its own).
async fn one_slot_named(
    name: &str,
    origin: &Origin,
    limits: &str,
    store: Option<&RedisServer>,
) -> Gateway {
    let config = format!(
        "tick = \"100ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [limits]\norigin_response_timeout = \"1s\"\n{limits}\n\n{}{}",
        store.map(|r| r.tables("") + "\n").unwrap_or_default(),
        room(
            name,
            "shop.test",
            &origin.url(),
            "active_users = 1\nsession_ttl = \"1m\""
        )
    );
    let env: Vec<(&str, &str)> = store.map(|_| SHARED_SECRET).into_iter().collect();
    Gateway::start_with_env(&config, &env).await
}

/// The first visitor holds the one slot; the second waits in line (its page seen once).
async fn holder_and_waiter(gw: &Gateway) -> (Client, Client) {
    let (holder, r) = visit(gw, "shop.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut waiter = gw.client("shop.test");
    let r = waiter.get("/", BROWSER).await;
    assert!(r.body.contains("<html"), "{}", r.body);
    (holder, waiter)
}

#[tokio::test]
async fn the_first_event_is_the_status_body() {
    let origin = Origin::start().await;
    let gw = one_slot(&origin, "", None).await;
    let (_holder, waiter) = holder_and_waiter(&gw).await;
    let mut events = Events::open(&waiter, "", &[]).await;
    assert_eq!(events.status, 200);
    assert_eq!(events.headers["content-type"], "text/event-stream");
    assert_eq!(events.headers["cache-control"], "no-store");
    let first = events.next_status(WAIT).await;
    // Opening the stream set no poll floor: the status endpoint answers at once (a page that
    // falls back to polling is not told to wait).
    let mut c = waiter.clone();
    let status = c.get("/__anteroom/status", JSON).await;
    assert_eq!(status.status, 200, "{}", status.body);
    let (Value::Object(mut a), Value::Object(mut b)) = (status.json(), first) else {
        panic!("not objects");
    };
    // When it was made and the jittered poll interval differ from one answer to the next.
    for k in ["updated_at", "poll_after_seconds"] {
        assert!(a.remove(k).is_some() && b.remove(k).is_some(), "{k}");
    }
    assert_eq!(a, b);
    assert_eq!(a["state"], "queued");
    assert_eq!(a["position"], 1);
}

/// Opens the waiter's stream, lets it idle past the one-second pace with heartbeats, frees
/// the slot and returns how long the `released` event took, and the stream after it.
async fn released_after_leave(gw: &Gateway) -> (Duration, Said) {
    let (mut holder, waiter) = holder_and_waiter(gw).await;
    let mut events = Events::open(&waiter, "", &[]).await;
    let opened = Instant::now();
    assert_eq!(events.next_status(WAIT).await["state"], "queued");
    // Heartbeats (every 200 ms here) while nothing changes, until the pace allows an event.
    while opened.elapsed() < Duration::from_millis(1100) {
        assert!(matches!(events.next(WAIT).await, Said::Comment));
    }
    let left = holder
        .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
        .await;
    assert_eq!(left.json()["left"], true, "{}", left.body);
    let freed = Instant::now();
    let released = events.next_status(WAIT).await;
    let took = freed.elapsed();
    assert_eq!(released["state"], "released", "{released}");
    (took, events.next(WAIT).await)
}

#[tokio::test]
async fn a_released_visitor_hears_it_within_a_second_and_the_stream_ends() {
    let origin = Origin::start().await;
    let gw = one_slot(&origin, "event_heartbeat = \"200ms\"", None).await;
    let (took, after) = released_after_leave(&gw).await;
    assert!(took < Duration::from_millis(1200), "took {took:?}");
    assert!(matches!(after, Said::End), "{after:?}");
}

#[tokio::test]
async fn a_released_visitor_hears_it_within_a_second_with_a_shared_store() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let gw = one_slot(&origin, "event_heartbeat = \"200ms\"", Some(&redis)).await;
    let (took, after) = released_after_leave(&gw).await;
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(matches!(after, Said::End), "{after:?}");
}

#[tokio::test]
async fn streams_over_the_limit_get_503_and_are_counted() {
    let origin = Origin::start().await;
    let gw = one_slot_named("counted", &origin, "max_event_streams = 1", None).await;
    let admin = Admin::of(&gw);
    let (_holder, waiter) = holder_and_waiter(&gw).await;
    let mut first = Events::open(&waiter, "", &[]).await;
    assert_eq!(first.next_status(WAIT).await["state"], "queued");
    let labels = [("room", "counted")];
    assert_eq!(
        admin.metric("anteroom_event_streams", &labels).await,
        Some(1.0)
    );
    let second = Events::open(&waiter, "", &[]).await;
    assert_eq!(second.status, 503);
    assert!(second.headers.contains_key("retry-after"));
    assert!(second.text().await.contains("too many event streams"));
    // The client goes: its place in the count is given back.
    drop(first);
    wait_until(WAIT, "the stream counted out", || async {
        (admin.metric("anteroom_event_streams", &labels).await == Some(0.0)).then_some(())
    })
    .await;
    let mut again = Events::open(&waiter, "", &[]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.next_status(WAIT).await["state"], "queued");
}

#[tokio::test]
async fn the_token_may_come_in_the_query_or_the_header() {
    let origin = Origin::start().await;
    let gw = one_slot(&origin, "", None).await;
    let (_holder, _) = holder_and_waiter(&gw).await;
    let mut app = gw.client("shop.test");
    let joined = app
        .send("POST", "/__anteroom/join", &[("accept", JSON)], "")
        .await
        .json();
    let token = joined["token"].as_str().unwrap().to_string();
    let addr = gw.addr;
    let mut by_query = open_at(addr, "shop.test", "", &format!("?token={token}"), &[]).await;
    let first = by_query.next_status(WAIT).await;
    assert_eq!(first["state"], "queued");
    assert_eq!(first["token"], token.as_str());
    let mut by_header = open_at(addr, "shop.test", "", "", &[("anteroom-token", &token)]).await;
    assert_eq!(
        by_header.next_status(WAIT).await["position"],
        first["position"]
    );
    // No token, or a forged one: the status endpoint's answer, no stream.
    let none = open_at(addr, "shop.test", "", "?token=forged", &[]).await;
    assert_eq!(none.status, 404);
    assert!(none.text().await.contains("unknown_session"));
}

#[tokio::test]
async fn a_graceful_stop_closes_open_streams_at_once() {
    let origin = Origin::start().await;
    let mut gw = one_slot(&origin, "drain_timeout = \"10s\"", None).await;
    let (_holder, waiter) = holder_and_waiter(&gw).await;
    let mut events = Events::open(&waiter, "", &[]).await;
    assert_eq!(events.next_status(WAIT).await["state"], "queued");
    let started = Instant::now();
    let running = gw.running.take().unwrap();
    let stopped = tokio::spawn(running.shutdown());
    assert!(matches!(events.next(WAIT).await, Said::End));
    assert!(tokio::time::timeout(WAIT, stopped).await.unwrap().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
