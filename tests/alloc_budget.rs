//! The hot paths' allocation budget: a counting global allocator over the real gateway (in this
//! process) between a raw keep-alive client and a raw origin that allocate nothing per request.
//! Allocations per request are counted, not timed, so the guard has no noise: a change that
//! puts allocations back on the admitted or pass-through path fails here.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::disallowed_types)]

mod support;

use std::alloc::System;
use std::net::SocketAddr;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations so far, reallocations included, in the whole process.
fn allocations() -> u64 {
    let s = GLOBAL.stats();
    (s.allocations + s.reallocations) as u64
}

const BODY: usize = 1024;

/// An origin that answers every request on a connection with the same 1 KiB, from buffers made
/// once per connection.
async fn raw_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {BODY}\r\n\r\n").into_bytes();
    answer.extend(std::iter::repeat_n(b'x', BODY));
    let answer: &'static [u8] = answer.leak();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut have = 0;
                loop {
                    let Ok(n) = s.read(&mut buf[have..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have += n;
                    while let Some(end) = find(&buf[..have], b"\r\n\r\n") {
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                        buf.copy_within(end + 4..have, 0);
                        have -= end + 4;
                    }
                }
            });
        }
    });
    addr
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A keep-alive client that sends one fixed request and reads each answer whole into one
/// buffer. Returns the status of the last answer.
struct RawClient {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl RawClient {
    async fn new(addr: SocketAddr, request: String) -> Self {
        RawClient {
            stream: TcpStream::connect(addr).await.unwrap(),
            request: request.into_bytes(),
            buf: vec![0u8; 64 * 1024],
        }
    }

    async fn send(&mut self) -> u16 {
        self.stream.write_all(&self.request).await.unwrap();
        let mut have = 0;
        loop {
            let n = self.stream.read(&mut self.buf[have..]).await.unwrap();
            assert!(n > 0, "the connection closed");
            have += n;
            if let Some(end) = find(&self.buf[..have], b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap();
                let status: u16 = head[9..12].parse().unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("a content-length");
                while have < end + 4 + len {
                    let n = self.stream.read(&mut self.buf[have..]).await.unwrap();
                    assert!(n > 0);
                    have += n;
                }
                return status;
            }
        }
    }

    /// Allocations per request over `n` requests, after a warm-up.
    async fn allocations_per_request(&mut self, n: u64) -> f64 {
        for _ in 0..200 {
            assert_eq!(self.send().await, 200);
        }
        let before = allocations();
        for _ in 0..n {
            self.send().await;
        }
        (allocations() - before) as f64 / n as f64
    }
}

fn get(host: &str, extra: &str) -> String {
    format!("GET /page HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n{extra}\r\n")
}

/// Most allocations an admitted visitor's request and a pass-through request may make in the
/// gateway (the client's and the origin's own are measured and taken off).
const ADMITTED_BUDGET: f64 = 22.0;
const PASS_BUDGET: f64 = 22.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_and_pass_through_requests_stay_within_their_allocation_budget() {
    let origin = raw_origin().await;
    let url = format!("http://{origin}");
    let config = format!(
        "tick = \"10s\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\n\n{}{}",
        support::room("shop", "shop.test", &url, "active_users = 1000"),
        support::room(
            "open",
            "open.test",
            &url,
            "active_users = 1000\nenabled = false"
        ),
    );
    let gw = support::Gateway::start(&config).await;
    let n = 2000;

    let mut direct = RawClient::new(origin, get("shop.test", "")).await;
    let baseline = direct.allocations_per_request(n).await;

    let mut pass = RawClient::new(gw.addr, get("open.test", "")).await;
    let pass_through = pass.allocations_per_request(n).await - baseline;

    // A session: the first answer's cookie.
    let mut c = gw.client("shop.test");
    assert_eq!(c.get("/", "application/json").await.status, 200);
    let cookie: Vec<String> = c.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cookie = format!("Cookie: {}\r\n", cookie.join("; "));
    let mut admitted = RawClient::new(gw.addr, get("shop.test", &cookie)).await;
    let admitted = admitted.allocations_per_request(n).await - baseline;

    println!(
        "allocations per request: admitted {admitted:.1}, pass-through {pass_through:.1} (client and origin alone: {baseline:.1})"
    );
    assert!(
        admitted <= ADMITTED_BUDGET,
        "an admitted request allocates {admitted:.1} times (budget {ADMITTED_BUDGET})"
    );
    assert!(
        pass_through <= PASS_BUDGET,
        "a pass-through request allocates {pass_through:.1} times (budget {PASS_BUDGET})"
    );
}
