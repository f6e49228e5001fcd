//! Open event streams on one core: N visitors join a room whose one slot is taken, each opens
//! `GET /__anteroom/events`, then the slot frees and the tick moves everyone up one place (one
//! event per stream). Prints the resident memory per open stream and the CPU time and wall time
//! of that one fan-out.
//!
//! `cargo run --release --example sse_streams [N]` (default 8000)
//!
//! The gateway and the N clients share this process and its one-thread runtime, so both figures
//! include the clients' side (a socket and an 8 KB read buffer each): an upper bound of the
//! gateway's. Each stream takes two descriptors here: `ulimit -n` caps N at about half of it.

// A measurement, not the gateway: it times with the process clock and unwraps what it made.
#![allow(clippy::disallowed_types, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "shop.test";

/// Resident memory (bytes) and CPU time (seconds, user + system) of this process.
fn usage() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap())
        .unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    (kb * 1024.0, ticks / 100.0)
}

/// One request on a fresh connection; the body of the answer.
async fn ask(addr: SocketAddr, method: &str, path: &str, token: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: application/json\r\n\
         Anteroom-Token: {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

fn token_of(body: &str) -> String {
    let j: serde_json::Value = serde_json::from_str(body).unwrap();
    j["token"].as_str().unwrap().to_string()
}

/// Opens one stream; counts every `status` event it reads into `events`.
async fn listen(addr: SocketAddr, token: String, events: Arc<AtomicUsize>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /__anteroom/events?token={token} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let seen = buf[..n]
            .windows(13)
            .filter(|w| w == b"event: status")
            .count();
        events.fetch_add(seen, Ordering::Relaxed);
    }
}

async fn until(events: &AtomicUsize, want: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while events.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(8000);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "tick = \"1s\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[log]\naccess = false\n\
         [limits]\nmax_event_streams = {}\nmax_connections = {}\n\
         [[room]]\nname = \"shop\"\nhosts = [\"{HOST}\"]\norigin = \"http://127.0.0.1:9\"\n\
         active_users = 1\nsession_ttl = \"1h\"\nabandon_after = \"1h\"\n",
        n + 10,
        n + 100
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let running = anteroom::start_with(&path, anteroom::env::Env::of(&[]))
        .await
        .unwrap();
    let addr = running.http_addr;
    let holder = token_of(&ask(addr, "POST", "/__anteroom/join", "").await);
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(token_of(&ask(addr, "POST", "/__anteroom/join", "").await));
    }
    let events = Arc::new(AtomicUsize::new(0));
    let (rss_before, _) = usage();
    for t in tokens {
        tokio::spawn(listen(addr, t, events.clone()));
    }
    until(&events, n, Duration::from_secs(120)).await;
    let opened = events.load(Ordering::Relaxed);
    let (rss_open, cpu_before) = usage();
    let started = Instant::now();
    ask(addr, "POST", "/__anteroom/leave", &holder).await;
    until(&events, 2 * n, Duration::from_secs(30)).await;
    let took = started.elapsed();
    let (_, cpu_after) = usage();
    let got = events.load(Ordering::Relaxed) - opened;
    println!("streams open: {opened} of {n}");
    println!(
        "resident memory per open stream: {:.1} KB (gateway and client)",
        (rss_open - rss_before) / n as f64 / 1024.0
    );
    println!(
        "one fan-out (the line moves up one): {got} events, CPU {:.0} ms, wall {:.0} ms from the \
         leave (includes waiting for the next tick, 1 s)",
        (cpu_after - cpu_before) * 1000.0,
        took.as_secs_f64() * 1000.0
    );
    let _ = running.shutdown().await;
}
