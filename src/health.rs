//! `anteroom health`: one `GET /healthz` to the admin listener, for a container's HEALTHCHECK
//! (a distroless image has no curl). Blocking, bounded by a timeout, HTTP/1.1 by hand: one
//! request line and the status line back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether the admin listener at `addr` answers `/healthz` with 200 within `timeout`.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    // A wildcard listener is asked on loopback.
    let addr = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    if line.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!(
            "/healthz answered {:?}",
            line.lines().next().unwrap_or("")
        ))
    }
}
