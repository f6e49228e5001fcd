//! Every listener lives by the same limits: a new connection must bring a complete request head
//! within `header_timeout`, sending a byte or not; the admin listener has its own small
//! connection cap; and neither listener can take the other's file descriptors.

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

/// Connects, sends `first` (possibly nothing) and returns how long the gateway kept the
/// connection open, or `None` if it was still open after `limit`.
async fn closed_after(addr: SocketAddr, first: &[u8], limit: Duration) -> Option<Duration> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    if !first.is_empty() {
        s.write_all(first).await.unwrap();
    }
    let mut buf = [0u8; 1024];
    loop {
        match timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            // A 408 or the like before the close is fine; keep reading to the close.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_silent_connection_lives_for_header_timeout_not_idle_timeout() {
    let origin = Origin::start().await;
    let config = format!(
        "{}{}",
        base_config("50ms")
            .replace(
                "[listen]\nhttp = \"127.0.0.1:0\"\n",
                "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n"
            )
            .replace(
                "[limits]\n",
                "[limits]\nheader_timeout = \"1s\"\nidle_timeout = \"60s\"\n"
            ),
        room("shop", "shop.test", &origin.url(), "active_users = 5")
    );
    let gw = Gateway::start(&config).await;
    let admin = gw.running.as_ref().unwrap().admin_addr.unwrap();
    let limit = Duration::from_secs(10);
    for (listener, addr) in [("public", gw.addr), ("admin", admin)] {
        let silent = closed_after(addr, b"", limit).await;
        assert!(
            silent.is_some_and(|d| d >= Duration::from_millis(900)),
            "{listener}: a connection that sent nothing was open for {silent:?}"
        );
        let partial = closed_after(addr, b"GET / HTTP/1.1\r\nHo", limit).await;
        assert!(
            partial.is_some(),
            "{listener}: a partial head was never cut off"
        );
    }
    // A head that comes within the limit is served, and the connection then lives on as
    // keep-alive.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(b"GET /late HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(origin.last().path, "/late");
}

/// Opens `n` silent connections at once and keeps those the kernel completes within a second
/// (past the gateway's cap and the listen backlog, the rest would wait for SYN retries).
async fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let tries = (0..n).map(|_| timeout(Duration::from_secs(1), TcpStream::connect(addr)));
    futures_util::future::join_all(tries)
        .await
        .into_iter()
        .filter_map(|r| r.ok()?.ok())
        .collect()
}

fn accept_failures(gw: &Binary) -> usize {
    gw.stdout_lines(|l| l.contains("accept failed")).len()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_listeners_cannot_starve_each_other_of_descriptors() {
    const HELD: usize = 300;
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "tick = \"100ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [state]\ndir = {state:?}\n\n\
             [limits]\nheader_timeout = \"30s\"\nidle_timeout = \"60s\"\nmax_connections = 10000\n\n\
             [log]\naccess = false\n\n{room}",
            state = dir.path().join("state").display().to_string(),
            room = room("fd", "fd.test", &origin.url(), "active_users = 1000"),
        ),
    )
    .unwrap();
    let mut gw = Binary::under_fd_limit(&config, 256).await;
    let admin = gw.admin().await;
    let public = Client {
        addr: gw.addr,
        host: "fd.test".into(),
        cookies: Default::default(),
    };

    // 300 silent admin connections: the admin cap (64) holds, the public side answers.
    let held = flood(admin.addr, HELD).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = timeout(Duration::from_secs(5), public.clone().get("/during", JSON))
        .await
        .expect("the public listener stopped answering while the admin port was flooded");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(held);

    // 300 silent public connections: the public cap (what 256 descriptors hold beside the
    // admin side) holds, and the admin API answers.
    let held = flood(gw.addr, HELD).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = wait_until(Duration::from_secs(5), "the admin API to answer", || {
        let admin = admin.clone();
        async move {
            let r = timeout(Duration::from_secs(1), admin.send("GET", "/healthz", "")).await;
            r.ok().map(|r| r.status).filter(|s| *s == 200)
        }
    })
    .await;
    assert_eq!(health, 200);
    assert_eq!(
        accept_failures(&gw),
        0,
        "the process ran out of descriptors\n{}",
        gw.printed()
    );
    assert!(
        gw.stdout_has(|l| l.contains("limits.max_connections lowered")),
        "{}",
        gw.printed()
    );
    drop(held);
}

/// `reuse_port`: a second gateway binds the same public port (one process per core, or a new
/// process started before the old one stops), and both answer; without it the second start
/// fails naming the listener.
#[tokio::test]
async fn reuse_port_lets_two_gateways_share_the_public_port() {
    let origin = Origin::start().await;
    let first = Gateway::start(&format!(
        "{}{}",
        base_config("1s").replace("[listen]\n", "[listen]\nreuse_port = true\n"),
        room(
            "open",
            "open.test",
            &origin.url(),
            "active_users = 5\nenabled = false"
        )
    ))
    .await;
    let port = first.addr.port();
    let shared = |reuse: bool| {
        format!(
            "{}{}",
            base_config("1s").replace(
                "[listen]\nhttp = \"127.0.0.1:0\"\n",
                &format!("[listen]\nhttp = \"127.0.0.1:{port}\"\nreuse_port = {reuse}\n")
            ),
            room(
                "open",
                "open.test",
                &origin.url(),
                "active_users = 5\nenabled = false"
            )
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, shared(false)).unwrap();
    let refused = anteroom::start(&path).await.err().unwrap().to_string();
    assert!(refused.contains("http"), "{refused}");
    let second = Gateway::start(&shared(true)).await;
    assert_eq!(second.addr, first.addr);
    // Connections spread over both; every one is answered.
    for i in 0..20 {
        let r = first.client("open.test").get(&format!("/{i}"), JSON).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(origin.count(), 20);
}
