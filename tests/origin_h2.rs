//! `origin_protocol`: a room speaks HTTP/2 to its origin when told to (`"h2"`: prior knowledge
//! over plain TCP, ALPN `h2` over TLS) or when an https origin picks it by ALPN (`"auto"`); the
//! default stays HTTP/1.1. Real origins on 127.0.0.1: hyper's HTTP/2 server, and a TLS origin
//! that offers h2 and HTTP/1.1.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::disallowed_types)]

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use support::*;
use tokio_rustls::TlsAcceptor;

/// What the origin answers: the version it was spoken to in, the `Host` header and the
/// authority (HTTP/2's `:authority`) it saw, and the path.
async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let hosts: Vec<&str> = req
        .headers()
        .get_all("host")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .collect();
    let host = if hosts.is_empty() {
        "-".to_string()
    } else {
        hosts.join(",")
    };
    let authority = req.uri().authority().map_or("-", |a| a.as_str());
    let body = format!(
        "{:?} host={host} authority={authority} path={}",
        req.version(),
        req.uri().path()
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// An origin that speaks only HTTP/2 with prior knowledge (h2c).
async fn h2c_origin() -> String {
    let addr = serve_raw(|tcp| async move {
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(tcp), service_fn(echo))
            .await;
    })
    .await;
    format!("http://{addr}")
}

/// An HTTPS origin offering `alpn` (h2 and HTTP/1.1 served by one auto builder).
async fn tls_origin(leaf: &Leaf, alpn: &[&[u8]]) -> String {
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let mut server = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der.clone()], key)
        .unwrap();
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let addr = serve_raw(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service_fn(echo))
                .await;
        }
    })
    .await;
    format!("https://{addr}")
}

#[tokio::test]
async fn a_room_speaks_h2_to_an_origin_that_only_speaks_h2() {
    let origin = h2c_origin().await;
    let config = format!(
        "{}{}{}",
        base_config("1s"),
        room(
            "two",
            "two.test",
            &origin,
            "active_users = 100\norigin_protocol = \"h2\""
        ),
        room("one", "one.test", &origin, "active_users = 100"),
    ) + &room(
        "named",
        "named.test",
        &origin,
        "active_users = 100\norigin_protocol = \"h2\"\norigin_host = \"internal.test\"",
    );
    let gw = Gateway::start(&config).await;
    let r = gw.client("two.test").get("/first", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The site's host as the authority, no `Host` beside it (an HTTP/2 server such as nginx
    // refuses the two together).
    assert_eq!(r.body, "HTTP/2.0 host=- authority=two.test path=/first");
    // Many at once, multiplexed on the origin connection.
    let asks = (0..20).map(|i| {
        let mut c = gw.client("two.test");
        tokio::spawn(async move { c.get(&format!("/many/{i}"), JSON).await })
    });
    for (i, a) in asks.enumerate() {
        let r = a.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body,
            format!("HTTP/2.0 host=- authority=two.test path=/many/{i}")
        );
    }
    // `origin_host` is the authority the origin sees.
    let r = gw.client("named.test").get("/n", JSON).await;
    assert_eq!(r.body, "HTTP/2.0 host=- authority=internal.test path=/n");
    // The default (HTTP/1.1) cannot talk to it: the origin's failure, a 502.
    let r = gw.client("one.test").get("/", JSON).await;
    assert_eq!(r.status, 502, "{}", r.body);
}

#[tokio::test]
async fn auto_takes_what_an_https_origin_offers_by_alpn() {
    let ca = Ca::new("origin CA");
    let leaf = ca.leaf(&["127.0.0.1"]);
    let both = tls_origin(&leaf, &[b"h2", b"http/1.1"]).await;
    let old = tls_origin(&leaf, &[b"http/1.1"]).await;
    let dir = tempfile::tempdir().unwrap();
    put(&dir, "ca.pem", &ca.pem());
    let pinned = "active_users = 100\norigin_ca = \"ca.pem\"";
    let tables = [
        room(
            "auto",
            "auto.test",
            &both,
            &format!("{pinned}\norigin_protocol = \"auto\""),
        ),
        room("plain", "plain.test", &both, pinned),
        room(
            "h2",
            "h2.test",
            &both,
            &format!("{pinned}\norigin_protocol = \"h2\""),
        ),
        room(
            "older",
            "older.test",
            &old,
            &format!("{pinned}\norigin_protocol = \"auto\""),
        ),
    ]
    .concat();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, format!("{}{tables}", base_config("1s"))).unwrap();
    let running = anteroom::start_with(&path, anteroom::env::Env::of(&[]))
        .await
        .unwrap();
    let client = |host: &str| Client {
        addr: running.http_addr,
        host: host.into(),
        cookies: Default::default(),
    };
    let expect = [
        ("auto.test", "HTTP/2.0 host=- authority=auto.test"),
        ("plain.test", "HTTP/1.1 host=plain.test authority=-"),
        ("h2.test", "HTTP/2.0 host=- authority=h2.test"),
        ("older.test", "HTTP/1.1 host=older.test authority=-"),
    ];
    for (host, seen) in expect {
        let r = client(host).get("/v", JSON).await;
        assert_eq!(r.status, 200, "{host}: {}", r.body);
        assert_eq!(r.body, format!("{seen} path=/v"), "{host}");
    }
}

#[tokio::test]
async fn an_unknown_origin_protocol_is_a_config_error_naming_the_key() {
    let config = format!(
        "{}{}",
        base_config("1s"),
        room(
            "r",
            "r.test",
            "http://127.0.0.1:9",
            "active_users = 1\norigin_protocol = \"h3\""
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &config).unwrap();
    let e = anteroom::config::load(&path).unwrap_err().to_string();
    assert!(e.contains("origin_protocol"), "{e}");
    assert!(e.contains("\"h3\""), "{e}");
}
