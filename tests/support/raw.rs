//! Raw HTTP/1.1 exchanges for clients that must misbehave: bytes out, the answer's text back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Gateway;

/// Sends `raw` on a new connection and returns the gateway's answer: one whole response, or what
/// came before it closed (or 2 s passed).
pub async fn exchange(gw: &Gateway, raw: &[u8]) -> String {
    send_raw(gw.addr, raw, complete).await
}

/// Sends `raw` and reads until the gateway closes the connection.
pub async fn exchange_to_close(gw: &Gateway, raw: &[u8]) -> String {
    send_raw(gw.addr, raw, |_| false).await
}

/// Sends `raw` to `addr` and reads until `done` says the answer is whole, the connection closes
/// or 2 s pass without a byte.
pub async fn send_raw(addr: SocketAddr, raw: &[u8], done: fn(&[u8]) -> bool) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&out) {
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `out` holds one whole response with a `Content-Length` body.
pub fn complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|n| body.len() >= n)
}

pub fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
