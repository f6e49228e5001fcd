//! TLS both ways, end to end: the public listener picks its certificate by SNI (wildcards, no-SNI
//! fallback), speaks HTTP/1.1 and HTTP/2 by ALPN, marks cookies `Secure` and tells the origin
//! `https`, swaps certificates on reload and cuts off stalled handshakes; rooms reach `https://`
//! origins trusting only their own CA; bad certificate files are configuration errors. Every
//! certificate is made here by a test CA, and the gateway is the real one on 127.0.0.1 port 0.

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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, DigitallySignedStruct, ProtocolVersion, RootCertStore, ServerConfig,
    SignatureScheme,
};
use serde_json::json;
use support::*;
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

// ---------------------------------------------------------------------------------------------
// Configuration and the gateway

/// Listeners on port 0 (`https` and `admin` when given), short origin timeouts plus `limits`
/// lines, then `tables`: the `[[room]]` and `[[tls.cert]]` tables.
fn config(https: bool, admin: bool, limits: &str, tables: &str) -> String {
    let mut listen = String::from("http = \"127.0.0.1:0\"\n");
    if https {
        listen.push_str("https = \"127.0.0.1:0\"\n");
    }
    if admin {
        listen.push_str("admin = \"127.0.0.1:0\"\n");
    }
    format!(
        "tick = \"50ms\"\n\n[listen]\n{listen}\n[limits]\norigin_response_timeout = \"2s\"\norigin_connect_timeout = \"2s\"\n{limits}\n\n{tables}"
    )
}

/// One `[[tls.cert]]` table; file names relative to the config's folder.
fn cert_table(hosts: &[&str], cert: &str, key: &str) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    format!(
        "[[tls.cert]]\nhosts = [{}]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n",
        hosts.join(", ")
    )
}

/// Writes `config` as `gateway.toml` next to the files already in `dir` and starts the real
/// gateway from it.
async fn start_in(dir: TempDir, config: &str) -> Gateway {
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let running = anteroom::start(&path)
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}\n{config}"));
    Gateway {
        addr: running.http_addr,
        dir,
        running: Some(running),
    }
}

fn https_addr(gw: &Gateway) -> SocketAddr {
    gw.running
        .as_ref()
        .expect("a running gateway")
        .https_addr
        .expect("the https listener")
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A TLS client trusting only `roots`, offering `alpn`.
fn client_tls(roots: RootCertStore, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

/// Accepts whatever certificate the server presents (the handshake signatures are still
/// checked), so a test can see which certificate the server chose for a name none covers.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client that takes any certificate; `sni` off sends no server name at all.
fn any_cert_tls(sni: bool) -> Arc<ClientConfig> {
    let provider = Arc::new(default_provider());
    let mut c = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    c.enable_sni = sni;
    Arc::new(c)
}

/// A TLS client trusting `roots` that speaks only `version`.
fn client_tls_version(
    roots: RootCertStore,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection to `addr` for `name` (the SNI, and the name the certificate must be for).
async fn connect(addr: SocketAddr, name: &str, tls: Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    timeout(LIMIT, TlsConnector::from(tls).connect(server_name, tcp))
        .await
        .unwrap_or_else(|_| panic!("TLS handshake for {name} timed out"))
        .unwrap_or_else(|e| panic!("TLS handshake for {name}: {e}"))
}

/// The end-entity certificate the server presented.
fn presented(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref()
        .1
        .peer_certificates()
        .expect("the server presented a certificate")[0]
        .clone()
        .into_owned()
}

async fn read(resp: Response<Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = timeout(LIMIT, body.collect())
        .await
        .expect("body timed out")
        .unwrap()
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// An HTTP/1.1 sender over an established stream (TLS or not).
async fn h1_over<S>(stream: S) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// One GET with `Host: host` and `headers` on an HTTP/1.1 sender.
async fn h1_get(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::get(path).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    sender.ready().await.unwrap();
    let resp = timeout(
        LIMIT,
        sender.send_request(req.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .expect("response timed out")
    .unwrap();
    read(resp).await
}

/// One GET on a fresh HTTP/1.1-over-TLS connection to `name` (SNI and Host).
async fn https_get(
    addr: SocketAddr,
    name: &str,
    roots: RootCertStore,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let tls = connect(addr, name, client_tls(roots, &[b"http/1.1"])).await;
    let mut sender = h1_over(tls).await;
    h1_get(&mut sender, name, path, headers).await
}

/// An HTTP/2 sender over an established stream (TLS with ALPN h2, or prior knowledge).
async fn h2_over<S>(stream: S) -> SendRequest<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    sender
}

/// One GET for the absolute `uri` on an HTTP/2 sender (the authority names the host).
async fn h2_get(sender: &SendRequest<Full<Bytes>>, uri: &str) -> Reply {
    let mut sender = sender.clone();
    sender.ready().await.unwrap();
    let req = Request::get(uri)
        .header("accept", JSON)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = timeout(LIMIT, sender.send_request(req))
        .await
        .expect("HTTP/2 response timed out")
        .unwrap_or_else(|e| panic!("HTTP/2 request {uri}: {e}"));
    assert_eq!(resp.version(), http::Version::HTTP_2);
    read(resp).await
}

// ---------------------------------------------------------------------------------------------
// 1. SNI

#[tokio::test]
async fn sni_picks_the_certificate_of_each_host() {
    let origin = Origin::start().await;
    let ca = Ca::new("anteroom test CA");
    let a = ca.leaf(&["a.test"]);
    let b = ca.leaf(&["b.test"]);
    let w = ca.leaf(&["*.w.test"]);
    let dir = tempfile::tempdir().unwrap();
    a.put(&dir, "a");
    b.put(&dir, "b");
    w.put(&dir, "w");
    let tables = [
        room("a", "a.test", &origin.url(), "active_users = 100"),
        room("b", "b.test", &origin.url(), "active_users = 100"),
        room("w", "x.w.test", &origin.url(), "active_users = 100"),
        cert_table(&["a.test"], "a.pem", "a.key"),
        cert_table(&["b.test"], "b.pem", "b.key"),
        cert_table(&["*.w.test"], "w.pem", "w.key"),
    ]
    .concat();
    let gw = start_in(dir, &config(true, false, "", &tables)).await;
    let addr = https_addr(&gw);

    for (name, leaf) in [("a.test", &a), ("b.test", &b), ("x.w.test", &w)] {
        // The certificate chains to the test CA for this name (the client verifies it) and is
        // exactly the one configured for it.
        let tls = connect(addr, name, client_tls(ca.roots(), &[])).await;
        assert_eq!(
            presented(&tls),
            leaf.der,
            "certificate presented for {name}"
        );
        // And the connection carries HTTP/1.1 through the room to the origin.
        let mut sender = h1_over(tls).await;
        let path = format!("/via/{name}");
        let r = h1_get(&mut sender, name, &path, &[("accept", JSON)]).await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(r.body, format!("origin:{path}"));
        let seen = origin.last();
        assert_eq!(seen.path, path);
        assert_eq!(seen.headers["host"], name);
        // The same connection serves a second request (keep-alive over TLS).
        let r = h1_get(&mut sender, name, "/again", &[("accept", JSON)]).await;
        assert_eq!(r.status, 200, "{name} again: {}", r.body);
        assert_eq!(r.body, "origin:/again");
    }

    // Names match case-insensitively; a wildcard covers exactly one label. Names no certificate
    // covers, and a client that sends no SNI, get the first certificate.
    let cases: [(&str, bool, &CertificateDer<'static>); 6] = [
        ("B.TEST", true, &b.der),
        ("Y.W.Test", true, &w.der),
        ("w.test", true, &a.der),
        ("deep.x.w.test", true, &a.der),
        ("unknown.test", true, &a.der),
        ("b.test", false, &a.der),
    ];
    for (name, sni, want) in cases {
        let tls = connect(addr, name, any_cert_tls(sni)).await;
        assert_eq!(
            &presented(&tls),
            want,
            "certificate for {name} (SNI sent: {sni})"
        );
    }

    // A client that trusts another CA refuses the gateway's certificate.
    let stranger = Ca::new("some other CA");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let refused = TlsConnector::from(client_tls(stranger.roots(), &[]))
        .connect(ServerName::try_from("a.test").unwrap(), tcp)
        .await;
    assert!(
        refused.is_err(),
        "a certificate from an untrusted CA was accepted"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. HTTP/2 and protocol versions

#[tokio::test]
async fn h2_over_tls_and_h2c_prior_knowledge() {
    let origin = Origin::start().await;
    let ca = Ca::new("anteroom test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(&["a.test"]).put(&dir, "a");
    let tables = room("a", "a.test", &origin.url(), "active_users = 100")
        + &cert_table(&["a.test"], "a.pem", "a.key");
    let gw = start_in(dir, &config(true, false, "", &tables)).await;
    let addr = https_addr(&gw);

    // Offered both, the server picks h2.
    let tls = connect(
        addr,
        "a.test",
        client_tls(ca.roots(), &[b"h2", b"http/1.1"]),
    )
    .await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let h2 = h2_over(tls).await;
    // Two requests in flight at once on the one connection.
    let (one, two) = tokio::join!(
        h2_get(&h2, "https://a.test/h2/one"),
        h2_get(&h2, "https://a.test/h2/two")
    );
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body, "origin:/h2/one");
    assert_eq!(two.status, 200, "{}", two.body);
    assert_eq!(two.body, "origin:/h2/two");
    // HTTP/2 has no Host header: the origin gets the authority as Host, and hears it was https.
    let seen = origin.last();
    assert_eq!(seen.headers["host"], "a.test");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");

    // Offered only http/1.1, the server speaks HTTP/1.1.
    let tls = connect(addr, "a.test", client_tls(ca.roots(), &[b"http/1.1"])).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h1 = h1_over(tls).await;
    let r = h1_get(&mut h1, "a.test", "/h1", &[("accept", JSON)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "origin:/h1");

    // An h2-only client is not refused for lack of http/1.1.
    let tls = connect(addr, "a.test", client_tls(ca.roots(), &[b"h2"])).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let r = h2_get(&h2_over(tls).await, "https://a.test/h2-only").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // HTTP/2 with prior knowledge on the plain listener.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let h2c = h2_over(tcp).await;
    let r = h2_get(&h2c, "http://a.test/h2c").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "origin:/h2c");
    let seen = origin.last();
    assert_eq!(seen.path, "/h2c");
    assert_eq!(seen.headers["host"], "a.test");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_served() {
    let origin = Origin::start().await;
    let ca = Ca::new("anteroom test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(&["a.test"]).put(&dir, "a");
    let tables = room("a", "a.test", &origin.url(), "active_users = 100")
        + &cert_table(&["a.test"], "a.pem", "a.key");
    let gw = start_in(dir, &config(true, false, "", &tables)).await;
    let addr = https_addr(&gw);
    for (version, want) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let tls = connect(addr, "a.test", client_tls_version(ca.roots(), version)).await;
        assert_eq!(tls.get_ref().1.protocol_version(), Some(want));
        let mut sender = h1_over(tls).await;
        let r = h1_get(&mut sender, "a.test", "/v", &[("accept", JSON)]).await;
        assert_eq!(r.status, 200, "{want:?}: {}", r.body);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Secure cookies and X-Forwarded-Proto

#[tokio::test]
async fn tls_sets_secure_cookie_and_forwarded_proto() {
    let origin = Origin::start().await;
    let ca = Ca::new("anteroom test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(&["shop.test", "open.test"]).put(&dir, "site");
    let tables = [
        room("shop", "shop.test", &origin.url(), "active_users = 1"),
        room("open", "open.test", &origin.url(), "active_users = 100"),
        cert_table(&["shop.test", "open.test"], "site.pem", "site.key"),
    ]
    .concat();
    let gw = start_in(dir, &config(true, false, "", &tables)).await;
    let addr = https_addr(&gw);

    // The first visitor over HTTPS is admitted; the origin hears it was https.
    let first = https_get(addr, "shop.test", ca.roots(), "/", &[("accept", JSON)]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body, "origin:/");
    assert_eq!(origin.last().headers["x-forwarded-proto"], "https");
    let cookie = first.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("anteroom_shop="), "{cookie}");
    assert!(cookie.contains("; Secure"), "admitted over TLS: {cookie}");

    // The second is queued; its cookie is Secure too.
    let second = https_get(addr, "shop.test", ca.roots(), "/", &[("accept", JSON)]).await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.json()["position"], 1);
    let cookie = second.header("set-cookie").expect("a queue cookie");
    assert!(cookie.starts_with("anteroom_shop="), "{cookie}");
    assert!(cookie.contains("; Secure"), "queued over TLS: {cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert_eq!(
        origin.count(),
        1,
        "the queued visitor did not reach the origin"
    );

    // Over plain HTTP the cookie is not Secure (a browser would drop it on http://).
    let third = gw.client("shop.test").get("/", JSON).await;
    assert_eq!(third.status, 429, "{}", third.body);
    let cookie = third.header("set-cookie").expect("a queue cookie");
    assert!(cookie.starts_with("anteroom_shop="), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let plain = gw.client("open.test").get("/plain", JSON).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
    assert!(
        !plain.header("set-cookie").unwrap().contains("Secure"),
        "{:?}",
        plain.header("set-cookie")
    );

    // The origin hears `http` over plain HTTP, even when the client claims otherwise, and
    // `https` over TLS even when the client claims `http`.
    let mut liar = gw.client("open.test");
    let r = liar
        .send(
            "GET",
            "/claims-https",
            &[("accept", JSON), ("x-forwarded-proto", "https")],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = origin.last();
    assert_eq!(seen.path, "/claims-https");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers.get_all("x-forwarded-proto").iter().count(), 1);
    let r = https_get(
        addr,
        "open.test",
        ca.roots(),
        "/claims-http",
        &[("accept", JSON), ("x-forwarded-proto", "http")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = origin.last();
    assert_eq!(seen.path, "/claims-http");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers.get_all("x-forwarded-proto").iter().count(), 1);
}

// ---------------------------------------------------------------------------------------------
// 4. HTTPS origins

/// A real HTTPS origin (HTTP/1.1 over TLS with `leaf`) answering `host=<the Host it saw>`, and
/// the number of requests it answered.
struct TlsOrigin {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
}

impl TlsOrigin {
    async fn start(leaf: &Leaf) -> TlsOrigin {
        let chain = vec![leaf.der.clone()];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let server = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let addr = serve_raw(move |tcp| {
            let acceptor = acceptor.clone();
            let count = count.clone();
            async move {
                // A client that refuses the certificate ends here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                serve_connection(tls, move |req| {
                    let count = count.clone();
                    async move {
                        count.fetch_add(1, Ordering::SeqCst);
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap_or("?").to_string())
                            .unwrap_or_default();
                        let body = format!("host={host} path={}", req.uri().path());
                        Response::new(Full::new(Bytes::from(body)))
                    }
                })
                .await;
            }
        })
        .await;
        TlsOrigin { addr, served }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn https_origin_with_room_ca() {
    let ca = Ca::new("internal CA");
    let other = Ca::new("unrelated CA");
    let origin = TlsOrigin::start(&ca.leaf(&["127.0.0.1", "localhost"])).await;
    let url = format!("https://{}", origin.addr);
    let dir = tempfile::tempdir().unwrap();
    put(&dir, "ca.pem", &ca.pem());
    put(&dir, "other-ca.pem", &other.pem());
    let tables = [
        room(
            "pinned",
            "pinned.test",
            &url,
            "active_users = 100\norigin_ca = \"ca.pem\"\norigin_host = \"internal.test\"",
        ),
        room(
            "keep",
            "keep.test",
            &url,
            "active_users = 100\norigin_ca = \"ca.pem\"",
        ),
        room("public", "public.test", &url, "active_users = 100"),
        room(
            "wrong",
            "wrong.test",
            &url,
            "active_users = 100\norigin_ca = \"other-ca.pem\"\norigin_host = \"internal.test\"",
        ),
    ]
    .concat();
    let gw = start_in(dir, &config(false, false, "", &tables)).await;

    // Trusting the room's CA: through, with the Host the room names.
    let r = gw.client("pinned.test").get("/inside", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "host=internal.test path=/inside");
    // Again, on the pooled connection or a new one.
    let r = gw.client("pinned.test").get("/again", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "host=internal.test path=/again");
    // Without `origin_host` the origin sees the client's Host.
    let r = gw.client("keep.test").get("/kept", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "host=keep.test path=/kept");
    assert_eq!(origin.served(), 3);

    // Without `origin_ca` only the public roots are trusted: the private CA is refused.
    let r = gw.client("public.test").get("/", JSON).await;
    assert_eq!(r.status, 502, "{}", r.body);
    // Trusting another CA is no better.
    let r = gw.client("wrong.test").get("/", JSON).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(origin.served(), 3, "a refused origin got a request");

    // The pinned room still works after those failures.
    let r = gw.client("pinned.test").get("/after", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "host=internal.test path=/after");
}

// ---------------------------------------------------------------------------------------------
// 5. Bad certificate files

/// Loads `config` written as `gateway.toml` in `dir`; it must fail. The errors' text.
fn load_error(dir: &TempDir, config: &str) -> (String, anteroom::ConfigErrors) {
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    match anteroom::config::load(&path) {
        Ok(_) => panic!("accepted:\n{config}"),
        Err(e) => (e.to_string(), e),
    }
}

/// 1-based line of the first line of `text` that starts with `prefix` after line `after`.
fn line_of(text: &str, after: usize, prefix: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no line {prefix:?}"))
}

#[tokio::test]
async fn bad_certificate_files_are_config_errors_naming_the_file() {
    let ca = Ca::new("anteroom test CA");
    let dir = tempfile::tempdir().unwrap();
    let good = ca.leaf(&["a.test"]);
    let other = ca.leaf(&["a.test"]);
    good.put(&dir, "good");
    other.put(&dir, "other");
    put(&dir, "garbage.pem", "this is not a certificate\n");
    put(&dir, "garbage.key", "this is not a key either\n");
    put(
        &dir,
        "notbase64.pem",
        "-----BEGIN CERTIFICATE-----\n!!! not base64 !!!\n-----END CERTIFICATE-----\n",
    );
    // Well-formed PEM around bytes that are no certificate.
    put(
        &dir,
        "notder.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQsIEkgYW0gbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );
    put(&dir, "cert-as-key.key", &good.chain_pem);
    let shop = room("shop", "a.test", "http://127.0.0.1:9", "active_users = 1");
    let with = |certs: &str| config(true, false, "", &(shop.clone() + certs));

    // The good pair loads: the cases below fail for their files alone.
    let ok = with(&cert_table(&["a.test"], "good.pem", "good.key"));
    std::fs::write(dir.path().join("gateway.toml"), &ok).unwrap();
    let loaded = anteroom::config::load(&dir.path().join("gateway.toml"));
    assert!(loaded.is_ok(), "{}", loaded.err().unwrap());

    let cases: [(&str, &str, &str); 8] = [
        ("missing.pem", "good.key", "missing.pem"),
        ("good.pem", "missing.key", "missing.key"),
        ("good.pem", "other.key", "other.key"),
        ("garbage.pem", "good.key", "garbage.pem"),
        ("good.pem", "garbage.key", "garbage.key"),
        ("notbase64.pem", "good.key", "notbase64.pem"),
        ("notder.pem", "good.key", "notder.pem"),
        ("good.pem", "cert-as-key.key", "cert-as-key.key"),
    ];
    for (cert, key, named) in cases {
        let text = with(&cert_table(&["a.test"], cert, key));
        let (msg, errors) = load_error(&dir, &text);
        let case = format!("cert {cert}, key {key}");
        assert!(msg.contains(named), "{case}: names {named}: {msg}");
        assert!(msg.contains("tls.cert[0]"), "{case}: names the key: {msg}");
        assert!(
            msg.contains("gateway.toml"),
            "{case}: names the config: {msg}"
        );
        let tls: Vec<_> = errors
            .0
            .iter()
            .filter(|e| e.key.starts_with("tls."))
            .collect();
        assert_eq!(tls.len(), 1, "{case}: one error for the certificate: {msg}");
        let e = tls[0];
        let table = line_of(&text, 0, "[[tls.cert]]");
        if named.ends_with(".pem") {
            // A certificate file at fault: its key and line.
            assert_eq!(e.key, "tls.cert[0].cert", "{case}: {msg}");
            assert_eq!(
                e.line,
                line_of(&text, table, "cert ="),
                "{case}: the line of `cert =`: {msg}"
            );
        } else {
            // A key file at fault: somewhere in its table.
            assert!(e.key.starts_with("tls.cert[0]"), "{case}: {msg}");
            let last = line_of(&text, table, "key =");
            assert!((table..=last).contains(&e.line), "{case}: the line: {msg}");
        }
    }

    // A mismatch names both files.
    let text = with(&cert_table(&["a.test"], "good.pem", "other.key"));
    let (msg, _) = load_error(&dir, &text);
    assert!(
        msg.contains("good.pem") && msg.contains("other.key"),
        "{msg}"
    );

    // The second of two certificates is named by its index, at the key of the file at fault.
    let text = with(
        &(cert_table(&["a.test"], "good.pem", "good.key")
            + &cert_table(&["b.test"], "good.pem", "missing.key")),
    );
    let (msg, errors) = load_error(&dir, &text);
    assert!(
        msg.contains("tls.cert[1]") && msg.contains("missing.key"),
        "{msg}"
    );
    assert_eq!(errors.0.len(), 1, "{msg}");
    assert_eq!(errors.0[0].key, "tls.cert[1].key", "{msg}");

    // An https listener needs a certificate.
    let text = config(true, false, "", &shop);
    let (msg, errors) = load_error(&dir, &text);
    assert!(msg.contains("listen.https"), "{msg}");
    assert_eq!(errors.0[0].key, "listen.https", "{msg}");
    assert_eq!(errors.0[0].line, line_of(&text, 0, "https ="), "{msg}");

    // Starting from a bad file fails with the same error and binds nothing.
    let text = with(&cert_table(&["a.test"], "missing.pem", "good.key"));
    std::fs::write(dir.path().join("gateway.toml"), &text).unwrap();
    match anteroom::start(&dir.path().join("gateway.toml")).await {
        Ok(_) => panic!("started with a missing certificate"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("missing.pem") && msg.contains("tls.cert[0]"),
                "{msg}"
            );
        }
    }
}

/// A `[[tls.cert]]` whose file is broken is reported as broken, and only so: the https listener
/// is not also said to lack a `[[tls.cert]]`, which the file has.
#[test]
fn a_broken_certificate_is_not_also_reported_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        true,
        false,
        "",
        &(room("shop", "a.test", "http://127.0.0.1:9", "active_users = 1")
            + &cert_table(&["a.test"], "missing.pem", "missing.key")),
    );
    let (msg, errors) = load_error(&dir, &text);
    assert!(msg.contains("missing.pem"), "{msg}");
    assert!(
        errors.0.iter().all(|e| e.key.starts_with("tls.cert[0]")),
        "only the certificate's own error: {msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Reload

#[tokio::test]
async fn a_reload_swaps_the_certificate() {
    let origin = Origin::start().await;
    let ca = Ca::new("anteroom test CA");
    let one = ca.leaf(&["a.test"]);
    let two = ca.leaf(&["a.test"]);
    let three = ca.leaf(&["a.test"]);
    let dir = tempfile::tempdir().unwrap();
    one.put(&dir, "one");
    let shop = room("a", "a.test", &origin.url(), "active_users = 100");
    let with = |stem: &str| {
        config(
            true,
            true,
            "",
            &(shop.clone()
                + &cert_table(&["a.test"], &format!("{stem}.pem"), &format!("{stem}.key"))),
        )
    };
    let gw = start_in(dir, &with("one")).await;
    let admin = Admin::of(&gw);
    let addr = https_addr(&gw);
    let roots = || ca.roots();

    let before = connect(addr, "a.test", client_tls(roots(), &[])).await;
    assert_eq!(presented(&before), one.der);
    let mut kept = h1_over(before).await;
    assert_eq!(
        h1_get(&mut kept, "a.test", "/", &[("accept", JSON)])
            .await
            .status,
        200
    );

    // Point the file at another certificate and reload.
    two.put(&gw.dir, "two");
    std::fs::write(gw.dir.path().join("gateway.toml"), with("two")).unwrap();
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["result"], "ok", "{j}");
    assert_eq!(j["needs_restart"], json!([]), "{j}");
    let after = connect(addr, "a.test", client_tls(roots(), &[])).await;
    assert_eq!(
        presented(&after),
        two.der,
        "a new handshake after the reload"
    );
    let mut sender = h1_over(after).await;
    let r = h1_get(&mut sender, "a.test", "/new", &[("accept", JSON)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A connection made before the reload carries on.
    let r = h1_get(&mut kept, "a.test", "/kept", &[("accept", JSON)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "origin:/kept");

    // Files renewed in place (the config unchanged) are read again by a reload.
    three.put(&gw.dir, "two");
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tls = connect(addr, "a.test", client_tls(roots(), &[])).await;
    assert_eq!(
        presented(&tls),
        three.der,
        "files renewed in place, then a reload"
    );

    // A reload to a missing file is refused and the certificate in force stays.
    std::fs::write(gw.dir.path().join("gateway.toml"), with("gone")).unwrap();
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let j = r.json();
    assert!(
        j["errors"].as_array().unwrap().iter().any(|e| {
            e["key"] == "tls.cert[0].cert" && e["message"].as_str().unwrap().contains("gone.pem")
        }),
        "{j}"
    );
    let tls = connect(addr, "a.test", client_tls(roots(), &[])).await;
    assert_eq!(presented(&tls), three.der, "after a refused reload");
    let mut sender = h1_over(tls).await;
    let r = h1_get(&mut sender, "a.test", "/still", &[("accept", JSON)]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // An edit on disk alone (the file watcher, no API call) swaps the certificate too.
    std::fs::write(gw.dir.path().join("gateway.toml"), with("one")).unwrap();
    wait_until(
        LIMIT,
        "the watcher to serve the first certificate again",
        || async {
            let tls = connect(addr, "a.test", client_tls(roots(), &[])).await;
            (presented(&tls) == one.der).then_some(())
        },
    )
    .await;
    admin.wait_reload("ok").await;
}

// ---------------------------------------------------------------------------------------------
// 7. Handshake timeout

/// Reads until the peer closes (0 or an error); how long that took, or `None` after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // An alert before closing is fine; keep reading to the end.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn tls_handshake_timeout_does_not_block_others() {
    let origin = Origin::start().await;
    let ca = Ca::new("anteroom test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(&["a.test"]).put(&dir, "a");
    let tables = room("a", "a.test", &origin.url(), "active_users = 100")
        + &cert_table(&["a.test"], "a.pem", "a.key");
    let gw = start_in(
        dir,
        &config(true, false, "header_timeout = \"1s\"", &tables),
    )
    .await;
    let addr = https_addr(&gw);

    // One connection says nothing; another sends the first bytes of a ClientHello and stalls.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let opened = Instant::now();

    // Meanwhile proper HTTPS requests are served, each well within the timeout.
    for i in 0..3 {
        let started = Instant::now();
        let r = https_get(
            addr,
            "a.test",
            ca.roots(),
            &format!("/busy/{i}"),
            &[("accept", JSON)],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "a request waited {:?} behind stalled handshakes",
            started.elapsed()
        );
    }

    // The stalled ones are cut off at about the header timeout.
    for (what, stream) in [("silent", &mut silent), ("partial", &mut partial)] {
        let took = closed_within(stream, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("the {what} connection was never closed"));
        let since_open = opened.elapsed();
        assert!(
            since_open >= Duration::from_millis(800),
            "the {what} connection was closed too early ({since_open:?}, read for {took:?})"
        );
        assert!(
            since_open < Duration::from_secs(4),
            "the {what} connection was closed late ({since_open:?})"
        );
    }

    // And the listener still serves after.
    let r = https_get(addr, "a.test", ca.roots(), "/after", &[("accept", JSON)]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
