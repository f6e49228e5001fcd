//! `cookie_prefix_host = true`: over TLS the session cookie is `__Host-<cookie_name>`, `Secure`,
//! `Path=/`, no `Domain`, and that name (only) carries the session back; over plain HTTP the room
//! keeps its usual name.

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
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const HOST: &str = "shop.test";

/// A CA, a certificate for [`HOST`] written into `dir`, and a client trusting only that CA.
fn certificates(dir: &std::path::Path) -> Arc<ClientConfig> {
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec![HOST.to_string()])
        .unwrap()
        .signed_by(&key, &*ca)
        .unwrap();
    std::fs::write(dir.join("shop.pem"), leaf.pem() + &ca.pem()).unwrap();
    std::fs::write(dir.join("shop.key"), key.serialize_pem()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let mut c = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// One GET over a fresh TLS connection, with `cookie` if given.
async fn https_get(addr: SocketAddr, tls: &Arc<ClientConfig>, cookie: Option<&str>) -> Reply {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(HOST.to_string()).unwrap();
    let stream = TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get("/")
        .header("host", HOST)
        .header("accept", JSON);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The `name=value` pair of a Set-Cookie line, and the line.
fn set_cookie(r: &Reply) -> (String, String) {
    let line = r
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no cookie set: {} {}", r.status, r.body))
        .to_string();
    (line.split(';').next().unwrap().to_string(), line)
}

#[tokio::test]
async fn over_tls_the_cookie_is_host_prefixed_and_carries_the_session_back() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = certificates(dir.path());
    let config = format!(
        "tick = \"50ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nhttps = \"127.0.0.1:0\"\n\n\
         [[tls.cert]]\nhosts = [\"{HOST}\"]\ncert = \"shop.pem\"\nkey = \"shop.key\"\n\n{}",
        room(
            "shop",
            HOST,
            &origin.url(),
            "active_users = 1\nabandon_after = \"30s\"\ncookie_prefix_host = true"
        )
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &config).unwrap();
    let running = anteroom::start(&path).await.unwrap();
    let https = running.https_addr.expect("the https listener");
    let gw = Gateway {
        addr: running.http_addr,
        dir,
        running: Some(running),
    };

    // Admitted over TLS: the prefixed name with what the prefix demands.
    let r = https_get(https, &tls, None).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "origin:/"));
    let (admitted, line) = set_cookie(&r);
    assert!(admitted.starts_with("__Host-anteroom_shop="), "{line}");
    assert!(
        line.contains("; Secure") && line.contains("Path=/"),
        "{line}"
    );
    assert!(!line.to_ascii_lowercase().contains("domain"), "{line}");
    // It names the session on the next request: admitted again, no new cookie.
    let r = https_get(https, &tls, Some(&admitted)).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "origin:/"));
    assert!(r.header("set-cookie").is_none(), "a new session: {r:?}");
    // The origin never sees it.
    let seen = origin.last();
    assert!(seen.headers.get("cookie").is_none(), "{:?}", seen.headers);

    // Queued over TLS: the same name; coming back keeps the place.
    let r = https_get(https, &tls, None).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["position"], 1);
    let (queued, _) = set_cookie(&r);
    assert!(queued.starts_with("__Host-anteroom_shop="), "{queued}");
    let r = https_get(https, &tls, Some(&queued)).await;
    assert_eq!((r.status.as_u16(), &r.json()["position"]), (429, &1.into()));
    assert!(r.header("set-cookie").is_none(), "a new session: {r:?}");
    // The unprefixed name is not read over TLS: that is a new visitor, second in line.
    let plain_name = queued.replacen("__Host-", "", 1);
    let r = https_get(https, &tls, Some(&plain_name)).await;
    assert_eq!((r.status.as_u16(), &r.json()["position"]), (429, &2.into()));

    // Plain HTTP keeps the usual name, without Secure.
    let mut c = gw.client(HOST);
    let r = c.get("/", JSON).await;
    assert_eq!(r.status, 429);
    let (name, line) = set_cookie(&r);
    assert!(name.starts_with("anteroom_shop="), "{line}");
    assert!(!line.contains("Secure"), "{line}");
    let r = c.get("/", JSON).await;
    assert_eq!(r.json()["position"], 3, "the same place: {}", r.body);
}
