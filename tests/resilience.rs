//! The gateway under the failures a reverse proxy meets in production:
//! - forwarding headers a client sends are replaced by the peer address, unless the peer is a
//!   trusted proxy (then its chain is appended to), and anteroom's own cookie and token header
//!   never reach the origin;
//! - refused origin connections, origins that die mid-body, and clients that leave in the middle
//!   of a request or a response leave no file descriptor and no task behind;
//! - an origin that closes idle keep-alive connections (after 100 ms of idleness, or abruptly
//!   after every second request) never shows through as an error, and a POST is never sent
//!   twice;
//! - the real binary over its file-descriptor limit backs off on accept errors instead of
//!   spinning, and serves again once descriptors are free.
//!
//! The tests of this file run one at a time (`SERIAL`): the leak test counts the descriptors of
//! the whole test process.

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
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use support::{
    Binary, Gateway, JSON, Origin, Seen, base_config, dead_port, raw_send, room, serve_connection,
    serve_connection_with, serve_raw, wait_until,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestBody = BoxBody<Bytes, BoxError>;

/// One test of this file at a time: the leak test counts every descriptor of the process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// Small helpers.

fn text(body: impl Into<Bytes>) -> Response<TestBody> {
    Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed())
}

fn get(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn post(host: &str, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", host)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Every value of header `name`, as text.
fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes `bytes` on a new connection to `addr` and reads until the peer closes (at most 5 s).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match timeout(deadline - Instant::now(), s.read(&mut buf)).await {
            Err(_) => panic!(
                "no end of the connection within 5 s; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Forwarding headers.

const FWD_HOST: &str = "fwd.test";
const FWD_COOKIE: &str = "anteroom_fwd";

/// The headers every forwarded request carries, whatever the peer: the gateway's own
/// `X-Forwarded-Host`, `X-Forwarded-Proto`, `Via`, and neither the room cookie nor the token
/// header, while the visitor's other cookies pass.
fn check_common(seen: &Seen) {
    let h = &seen.headers;
    assert_eq!(values(h, "x-forwarded-host"), [FWD_HOST], "{h:?}");
    assert_eq!(values(h, "x-forwarded-proto"), ["http"], "{h:?}");
    assert!(
        values(h, "via").iter().any(|v| v.contains("anteroom")),
        "no Via naming anteroom: {h:?}"
    );
    let cookies = values(h, "cookie");
    assert!(
        cookies.iter().all(|c| !c.contains(FWD_COOKIE)),
        "the room cookie reached the origin: {cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.contains("theme=dark")),
        "the visitor's own cookie was lost: {cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.contains("lang=fr")),
        "the visitor's own cookie was lost: {cookies:?}"
    );
    assert!(
        h.get("anteroom-token").is_none(),
        "the token header reached the origin: {h:?}"
    );
}

/// A visitor admitted by `gw`, holding its room cookie and a cookie of the site's own.
async fn admitted(gw: &Gateway) -> support::Client {
    let mut c = gw.client(FWD_HOST);
    let r = c.get("/enter", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(c.cookies.contains_key(FWD_COOKIE), "{:?}", r.headers);
    c.cookies.insert("theme".into(), "dark".into());
    c
}

#[tokio::test]
async fn forwarding_headers_are_replaced_unless_the_peer_is_trusted() {
    let _serial = SERIAL.lock().await;
    let origin = Origin::start().await;
    let the_room = room("fwd", FWD_HOST, &origin.url(), "active_users = 1000");

    // No trusted proxies, and a list that does not hold the peer: the client's claims go.
    for trusted in ["", "trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7/32\"]\n"] {
        let gw = Gateway::start(&format!("{trusted}{}{the_room}", base_config("50ms"))).await;
        let mut c = admitted(&gw).await;
        let token = c.cookies[FWD_COOKIE].clone();
        let r = c
            .send(
                "GET",
                "/spoofed",
                &[
                    ("accept", JSON),
                    ("x-forwarded-for", "6.6.6.6"),
                    ("forwarded", "for=6.6.6.6;proto=https"),
                    ("x-forwarded-host", "evil.example"),
                    ("x-forwarded-proto", "https"),
                    ("cookie", "lang=fr"),
                    ("anteroom-token", &token),
                ],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.header("set-cookie").is_none(),
            "the visitor was not known"
        );
        let seen = origin.last();
        assert_eq!(seen.path, "/spoofed");
        let h = &seen.headers;
        assert_eq!(
            values(h, "x-forwarded-for"),
            ["127.0.0.1"],
            "{trusted:?}: {h:?}"
        );
        assert!(
            h.get("forwarded").is_none(),
            "{trusted:?}: Forwarded kept from an untrusted peer: {h:?}"
        );
        check_common(&seen);

        // The token header alone (a native app): the visitor is known, the origin never sees it.
        let mut app = gw.client(FWD_HOST);
        app.cookies.insert("theme".into(), "dark".into());
        app.cookies.insert("lang".into(), "fr".into());
        let r = app
            .send(
                "GET",
                "/app",
                &[("accept", JSON), ("anteroom-token", &token)],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.header("set-cookie").is_none(), "the token was not used");
        let seen = origin.last();
        assert_eq!(seen.path, "/app");
        assert_eq!(values(&seen.headers, "x-forwarded-for"), ["127.0.0.1"]);
        check_common(&seen);
    }

    // The peer is a trusted proxy: its chain is appended to and `Forwarded` stays.
    let config = format!(
        "trusted_proxies = [\"127.0.0.0/8\"]\n{}{the_room}",
        base_config("50ms")
    );
    let gw = Gateway::start(&config).await;
    let mut c = admitted(&gw).await;
    let r = c
        .send(
            "GET",
            "/via-proxy",
            &[
                ("accept", JSON),
                ("x-forwarded-for", "6.6.6.6"),
                ("forwarded", "for=6.6.6.6"),
                ("cookie", "lang=fr"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = origin.last();
    assert_eq!(seen.path, "/via-proxy");
    let h = &seen.headers;
    assert_eq!(
        values(h, "x-forwarded-for"),
        ["6.6.6.6, 127.0.0.1"],
        "{h:?}"
    );
    assert_eq!(values(h, "forwarded"), ["for=6.6.6.6"], "{h:?}");
    check_common(&seen);

    // A chain over two header lines stays in order; a trusted peer that sends none is the chain.
    let r = c
        .send(
            "GET",
            "/two-hops",
            &[
                ("accept", JSON),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "7.7.7.7"),
                ("cookie", "lang=fr"),
            ],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let h = origin.last().headers;
    assert_eq!(
        values(&h, "x-forwarded-for"),
        ["6.6.6.6, 7.7.7.7, 127.0.0.1"],
        "{h:?}"
    );
    let r = c
        .send(
            "GET",
            "/direct",
            &[("accept", JSON), ("cookie", "lang=fr")],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = origin.last();
    assert_eq!(values(&seen.headers, "x-forwarded-for"), ["127.0.0.1"]);
    assert!(seen.headers.get("forwarded").is_none());
    check_common(&seen);
}

// ---------------------------------------------------------------------------------------------
// 2. Descriptors and tasks after failures.

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Counts one open origin connection until dropped.
struct OpenConn(Arc<AtomicUsize>);

impl OpenConn {
    fn new(n: Arc<AtomicUsize>) -> OpenConn {
        n.fetch_add(1, Ordering::SeqCst);
        OpenConn(n)
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A hyper HTTP/1.1 origin that counts its open connections (so pooled keep-alive connections
/// can be told from leaks): `/big` streams 8 MiB, `/slow` answers after 300 ms, anything else
/// reads the request body and answers `ok`.
struct Backend {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
}

impl Backend {
    async fn start() -> Backend {
        let open: Arc<AtomicUsize> = Arc::default();
        let counter = open.clone();
        let addr = serve_raw(move |stream| {
            let conn = OpenConn::new(counter.clone());
            async move {
                serve_connection(stream, backend_answer).await;
                drop(conn);
            }
        })
        .await;
        Backend { addr, open }
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

async fn backend_answer(req: Request<Incoming>) -> Response<TestBody> {
    match req.uri().path() {
        "/big" => {
            let frames = futures_util::stream::iter(
                (0..128).map(|_| Ok::<_, BoxError>(Frame::data(Bytes::from_static(&ZEROS)))),
            );
            Response::new(BodyExt::boxed(StreamBody::new(frames)))
        }
        "/slow" => {
            sleep(Duration::from_millis(300)).await;
            text("slow")
        }
        _ => {
            let _ = req.into_body().collect().await;
            text("ok")
        }
    }
}

/// A raw TCP origin that answers every request with a head declaring 100 000 bytes, sends 10 of
/// them and closes the connection.
async fn aborting_origin() -> SocketAddr {
    serve_raw(|mut stream| async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while find(&head, b"\r\n\r\n").is_none() {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n0123456789")
            .await;
    })
    .await
}

/// The ways a request can go wrong, plus the one where nothing does.
#[derive(Debug, Clone, Copy)]
enum Mishap {
    Served,
    OriginRefuses,
    OriginDiesMidBody,
    ClientLeavesMidResponse,
    ClientLeavesBeforeTheAnswer,
    ClientLeavesMidUpload,
    ClientSendsHalfAHead,
}

const MISHAPS: [Mishap; 7] = [
    Mishap::Served,
    Mishap::OriginRefuses,
    Mishap::OriginDiesMidBody,
    Mishap::ClientLeavesMidResponse,
    Mishap::ClientLeavesBeforeTheAnswer,
    Mishap::ClientLeavesMidUpload,
    Mishap::ClientSendsHalfAHead,
];

async fn provoke(gw: SocketAddr, m: Mishap) {
    match m {
        Mishap::Served => {
            let r = raw_send(gw, get("ok.test", "/ok")).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.body, "ok");
        }
        Mishap::OriginRefuses => {
            let r = raw_send(gw, get("dead.test", "/")).await;
            assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
        }
        Mishap::OriginDiesMidBody => {
            let raw = exchange(gw, b"GET /abort HTTP/1.1\r\nhost: abort.test\r\n\r\n").await;
            // Either nothing at all, or the head and fewer bytes than it declares: never a
            // response that looks complete.
            if let Some(end) = find(&raw, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 200"), "{head}");
                assert!(head.contains("content-length: 100000"), "{head}");
                assert!(raw.len() - end - 4 < 100_000, "{head}");
            }
        }
        Mishap::ClientLeavesMidResponse => {
            let mut s = TcpStream::connect(gw).await.unwrap();
            s.write_all(b"GET /big HTTP/1.1\r\nhost: ok.test\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 256];
            let n = timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("the response never started")
                .unwrap();
            assert!(n > 0, "the gateway closed without an answer");
        }
        Mishap::ClientLeavesBeforeTheAnswer => {
            let mut s = TcpStream::connect(gw).await.unwrap();
            s.write_all(b"GET /slow HTTP/1.1\r\nhost: ok.test\r\n\r\n")
                .await
                .unwrap();
            sleep(Duration::from_millis(30)).await;
        }
        Mishap::ClientLeavesMidUpload => {
            let mut s = TcpStream::connect(gw).await.unwrap();
            s.write_all(
                b"POST /upload HTTP/1.1\r\nhost: ok.test\r\ncontent-length: 1000\r\n\r\n0123456789",
            )
            .await
            .unwrap();
            sleep(Duration::from_millis(30)).await;
        }
        Mishap::ClientSendsHalfAHead => {
            let mut s = TcpStream::connect(gw).await.unwrap();
            s.write_all(b"GET /ok HTTP/1.1\r\nhost: ok.te")
                .await
                .unwrap();
            sleep(Duration::from_millis(5)).await;
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What each descriptor of the process is (`socket:[…]`, `anon_inode:[eventpoll]`, …).
fn fd_targets() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            format!("{}->{target}", e.file_name().to_string_lossy())
        })
        .collect();
    v.sort();
    v
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// The descriptor count once it has not moved for 200 ms (at most 3 s).
async fn settled_fds() -> usize {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = open_fds();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        sleep(Duration::from_millis(25)).await;
        let now = open_fds();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(200) {
            break;
        }
    }
    last
}

#[tokio::test]
async fn no_descriptor_or_task_leaks_after_failures() {
    const ROUND: usize = 210;
    const AT_ONCE: usize = 8;
    const SLACK_FDS: i64 = 8;
    const SLACK_TASKS: i64 = 4;
    let _serial = SERIAL.lock().await;
    let backend = Backend::start().await;
    let aborting = aborting_origin().await;
    let dead = dead_port().await;
    let rooms = [
        room(
            "ok",
            "ok.test",
            &format!("http://{}", backend.addr),
            "active_users = 100000",
        ),
        room(
            "dead",
            "dead.test",
            &format!("http://{dead}"),
            "active_users = 100000",
        ),
        room(
            "abort",
            "abort.test",
            &format!("http://{aborting}"),
            "active_users = 100000",
        ),
    ];
    let gw = Gateway::start(&(base_config("100ms") + &rooms.concat())).await;

    // Warm up: every kind once (lazy state, the pool's idle task), then a burst of successful
    // requests as wide as the round's, so the pool already holds what the round can leave.
    for m in MISHAPS {
        provoke(gw.addr, m).await;
    }
    futures_util::stream::iter(0..AT_ONCE * 2)
        .map(|_| provoke(gw.addr, Mishap::Served))
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<()>>()
        .await;
    let base_fds = settled_fds().await;
    let base_pooled = backend.open();
    let base_tasks = alive_tasks();
    let base_targets = fd_targets();

    // The round: every kind mixed, AT_ONCE at a time, the descriptor count sampled meanwhile.
    let started = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut peak_fds = base_fds;
    let round = async {
        futures_util::stream::iter(0..ROUND)
            .map(|i| provoke(gw.addr, MISHAPS[(i * 3) % MISHAPS.len()]))
            .buffer_unordered(AT_ONCE)
            .collect::<Vec<()>>()
            .await;
        done.store(true, Ordering::SeqCst);
    };
    let sampler = async {
        while !done.load(Ordering::SeqCst) {
            peak_fds = peak_fds.max(open_fds());
            sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::join!(round, sampler);
    let took = started.elapsed();

    // Everything the failures held must go. Only pooled keep-alive connections to the origin may
    // stay (two descriptors and two tasks each, as both ends live in this process), at most one
    // per request in flight at once: they are taken out of both counts before comparing.
    let without_pool = |n: usize, pooled: usize| n as i64 - 2 * pooled as i64;
    let base_fds_core = without_pool(base_fds, base_pooled);
    let base_tasks_core = without_pool(base_tasks, base_pooled);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (fds, pooled, tasks) = loop {
        let fds = open_fds();
        let pooled = backend.open();
        let tasks = alive_tasks();
        if without_pool(fds, pooled) <= base_fds_core + SLACK_FDS
            && without_pool(tasks, pooled) <= base_tasks_core + SLACK_TASKS
        {
            break (fds, pooled, tasks);
        }
        if Instant::now() >= deadline {
            let now = fd_targets();
            let new: Vec<&String> = now.iter().filter(|t| !base_targets.contains(t)).collect();
            panic!(
                "descriptors or tasks left 5 s after {ROUND} failing requests: \
                 fds {base_fds} -> {fds} (slack {SLACK_FDS}), tasks {base_tasks} -> {tasks} \
                 (slack {SLACK_TASKS}), pooled origin connections {base_pooled} -> {pooled} \
                 (two fds and two tasks each)\nnew descriptors: {new:?}"
            );
        }
        sleep(Duration::from_millis(20)).await;
    };
    println!(
        "{ROUND} requests in {took:?}: fds {base_fds} at baseline ({base_fds_core} without the \
         pool), {peak_fds} at the peak, {fds} after ({} without the pool); tasks {base_tasks} \
         ({base_tasks_core}) -> {tasks} ({}); pooled origin connections {base_pooled} -> {pooled}",
        without_pool(fds, pooled),
        without_pool(tasks, pooled),
    );
    assert!(
        pooled <= AT_ONCE.max(base_pooled),
        "{pooled} origin connections stay open for {AT_ONCE} requests at once"
    );
    // And the gateway still works.
    provoke(gw.addr, Mishap::Served).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Origins closing idle connections.

/// What an origin saw: method, path and body of each request, and how many connections.
#[derive(Default)]
struct Record {
    connections: AtomicUsize,
    requests: Mutex<Vec<(String, String, String)>>,
}

impl Record {
    fn bodies_of(&self, method: &str) -> Vec<String> {
        self.requests
            .lock()
            .iter()
            .filter(|r| r.0 == method)
            .map(|r| r.2.clone())
            .collect()
    }
}

/// A hyper origin with keep-alive that closes a connection after 100 ms without a request.
async fn idle_closing_origin() -> (SocketAddr, Arc<Record>) {
    let record: Arc<Record> = Arc::default();
    let rec = record.clone();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(100))
        .keep_alive(true);
    let addr = serve_raw(move |stream| {
        rec.connections.fetch_add(1, Ordering::SeqCst);
        let rec = rec.clone();
        let http = http.clone();
        async move {
            serve_connection_with(&http, stream, move |req| {
                let rec = rec.clone();
                async move {
                    let method = req.method().to_string();
                    let path = req.uri().path().to_string();
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    rec.requests.lock().push((method, path.clone(), body));
                    text(format!("seen {path}"))
                }
            })
            .await;
        }
    })
    .await;
    (addr, record)
}

/// A raw HTTP/1.1 origin that answers two requests per connection (keep-alive, no
/// `Connection: close`) and then closes it without warning.
async fn closing_after_two_origin() -> (SocketAddr, Arc<Record>) {
    let record: Arc<Record> = Arc::default();
    let rec = record.clone();
    let addr = serve_raw(move |stream| {
        rec.connections.fetch_add(1, Ordering::SeqCst);
        serve_two(stream, rec.clone())
    })
    .await;
    (addr, record)
}

async fn serve_two(mut stream: TcpStream, rec: Arc<Record>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..2 {
        let end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or("").split(' ');
        let method = request_line.next().unwrap_or("").to_string();
        let path = request_line.next().unwrap_or("").to_string();
        let mut length = 0;
        for line in lines {
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
            assert!(
                !k.eq_ignore_ascii_case("transfer-encoding"),
                "this origin reads Content-Length bodies only: {head}"
            );
        }
        while buf.len() < length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let body = String::from_utf8_lossy(&body).into_owned();
        rec.requests.lock().push((method, path.clone(), body));
        let answer = format!("seen {path}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
    // Closed with no `Connection: close` said: the gateway learns it from the socket alone.
}

/// Pauses before each request, around the origin's 100 ms idle limit: irregular spacing, with a
/// sweep of the few milliseconds where a request meets the origin's close on the way (about
/// 97-100 ms of pause here, plus the way through the gateway).
const PAUSES_MS: [u64; 15] = [
    0, 50, 90, 110, 150, 97, 98, 99, 100, 101, 70, 99, 98, 130, 102,
];

/// 30 GETs then 30 POSTs through the gateway, each after a pause of `PAUSES_MS`. Returns what
/// went wrong: an answer that is not the origin's, a POST the origin saw other than once, or an
/// origin that never closed a connection under the gateway.
async fn sixty_requests(what: &str, origin: SocketAddr, record: &Record) -> Vec<String> {
    let config = base_config("50ms")
        + &room(
            "idle",
            "idle.test",
            &format!("http://{origin}"),
            "active_users = 1000",
        );
    let gw = Gateway::start(&config).await;
    let mut visitor = gw.client("idle.test");
    let mut problems = Vec::new();
    // A POST may have reached the origin when its connection closed: it is never sent twice,
    // so it may fail (502). Which ones did is checked against what the origin saw, below.
    let mut post_failed = [false; 30];
    for (method, n) in [("GET", 30), ("POST", 30)] {
        for i in 0..n {
            let pause = PAUSES_MS[i % PAUSES_MS.len()];
            sleep(Duration::from_millis(pause)).await;
            let path = format!("/{}/{i}", method.to_lowercase());
            let body = if method == "POST" {
                format!("post-{i}")
            } else {
                String::new()
            };
            let r = visitor
                .send(method, &path, &[("accept", JSON)], &body)
                .await;
            if method == "POST" && r.status == 502 {
                post_failed[i] = true;
                continue;
            }
            if r.status != 200 || r.body != format!("seen {path}") {
                problems.push(format!(
                    "{what}: {method} {path} after a {pause} ms pause: {} {:?}",
                    r.status,
                    r.body.chars().take(40).collect::<String>()
                ));
            }
        }
    }
    let connections = record.connections.load(Ordering::SeqCst);
    let posts = record.bodies_of("POST");
    let gets = record.bodies_of("GET").len();
    println!(
        "{what}: 60 requests over {connections} origin connections; the origin saw {gets} GETs \
         and {} POSTs; {} answers were not the origin's",
        posts.len(),
        problems.len()
    );
    for (i, failed) in post_failed.iter().enumerate() {
        let want = format!("post-{i}");
        let times = posts.iter().filter(|b| **b == want).count();
        // Answered 200: seen exactly once. Answered 502: the origin never saw it whole.
        if times != usize::from(!failed) {
            problems.push(format!(
                "{what}: the origin saw {want} {times} times, and its client got {}",
                if *failed { "502" } else { "200" }
            ));
        }
    }
    println!(
        "{what}: {} of 30 POSTs failed (never retried)",
        post_failed.iter().filter(|f| **f).count()
    );
    if posts.len() > 30 {
        problems.push(format!("{what}: the origin saw {} POSTs", posts.len()));
    }
    if connections < 5 {
        problems.push(format!(
            "{what}: only {connections} origin connections for 60 requests: the origin did not \
             close them as meant"
        ));
    }
    problems
}

#[tokio::test]
/// Every GET gets its answer however the origin closes its connections (a connection closed as
/// a request went out is retried for idempotent requests); a POST is never sent twice.
async fn an_origin_closing_idle_connections_is_invisible_to_clients() {
    let _serial = SERIAL.lock().await;
    // The gateway's warnings (why a request failed) in the output of a failing run: the gateway
    // runs on this test's thread, so a thread-local subscriber sees it and no other test.
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_test_writer()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .finish(),
    );
    let (addr, record) = idle_closing_origin().await;
    let mut problems = sixty_requests("origin closing after 100 ms idle", addr, &record).await;
    let (addr, record) = closing_after_two_origin().await;
    problems.extend(sixty_requests("origin closing after every 2nd request", addr, &record).await);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. The real binary out of file descriptors.

#[cfg(target_os = "linux")]
/// The real binary started by `sh` under `ulimit -n LIMIT`.
struct Limited(Binary);

#[cfg(target_os = "linux")]
impl std::ops::Deref for Limited {
    type Target = Binary;

    fn deref(&self) -> &Binary {
        &self.0
    }
}

#[cfg(target_os = "linux")]
impl std::ops::DerefMut for Limited {
    fn deref_mut(&mut self) -> &mut Binary {
        &mut self.0
    }
}

#[cfg(target_os = "linux")]
impl Limited {
    async fn start(config: &Path, limit: u32) -> Limited {
        Limited(Binary::under_fd_limit(config, limit).await)
    }

    fn accept_failures(&self) -> usize {
        self.stdout_lines(|l| l.contains("accept failed")).len()
    }

    /// User plus system CPU time of the whole process, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name (which may hold spaces): field 3 is the state, so
        // utime (14) and stime (15) are the 12th and 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields[11].parse().unwrap();
        let stime: u64 = fields[12].parse().unwrap();
        utime + stime
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// The soft `Max open files` limit the process runs under.
    fn fd_limit(&self) -> u64 {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        line["Max open files".len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn accept_errors_back_off_instead_of_spinning() {
    const HELD: usize = 100;
    let _serial = SERIAL.lock().await;
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "tick = \"100ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [admin]\nmax_connections = 10000\n\n[state]\ndir = {state:?}\n\n\
             [limits]\nheader_timeout = \"30s\"\nidle_timeout = \"60s\"\nmax_connections = 10000\n\n\
             [log]\naccess = false\n\n{room}",
            state = dir.path().join("state").display().to_string(),
            room = room(
                "fd",
                "fd.test",
                &origin.url(),
                "active_users = 1000"
            ),
        ),
    )
    .unwrap();
    let limit = 64;
    let mut gw = Limited::start(&config, limit).await;
    assert_eq!(gw.fd_limit(), u64::from(limit), "{}", gw.printed());
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", gw.pid())).unwrap();
    assert_eq!(comm.trim(), "anteroom");
    let r = raw_send(gw.addr, get("fd.test", "/before")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.printed());
    let fds_at_start = gw.open_fds();

    // More connections than descriptors: the kernel completes them all (backlog), the gateway
    // accepts until it has none left. The public cap is kept within the descriptor limit, so an
    // admin cap set far above it is what runs the process out.
    let admin = gw.admin().await.addr;
    let mut held = Vec::new();
    for _ in 0..HELD {
        held.push(TcpStream::connect(admin).await.unwrap());
    }
    wait_until(
        Duration::from_secs(5),
        "accept failures in the log",
        || async { (gw.accept_failures() > 0).then_some(()) },
    )
    .await;
    let fds_full = gw.open_fds();

    // Over the limit for a second: the failing accept is retried, slowly.
    let tck = clock_ticks_per_second();
    let failures_before = gw.accept_failures();
    let cpu_before = gw.cpu_ticks();
    let window = Instant::now();
    sleep(Duration::from_secs(1)).await;
    let cpu = gw.cpu_ticks() - cpu_before;
    let elapsed = window.elapsed();
    // The log lines of the window reach us through a pipe and a thread: a moment later.
    sleep(Duration::from_millis(100)).await;
    let failures = gw.accept_failures() - failures_before;
    let line = gw.stdout_lines(|l| l.contains("accept failed"))[0].clone();
    println!(
        "ulimit -n {limit}: {fds_at_start} fds at start, {fds_full} with {HELD} connections held; \
         over {elapsed:?}: {cpu} CPU ticks (of {tck}/s), {failures} failed accepts; e.g. {line:?}"
    );
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the gateway died out of descriptors\n{}",
        gw.printed()
    );
    assert!(
        failures > 0,
        "accepts no longer failed during the window: the measure would mean nothing"
    );
    assert!(
        cpu * 10 < tck * 3,
        "the accept loop burned {cpu} ticks of CPU in {elapsed:?} ({tck} ticks per second)"
    );
    assert!(
        failures <= 40,
        "{failures} failed accepts in {elapsed:?}: no back-off between them"
    );

    // Descriptors back: the gateway serves again.
    drop(held);
    wait_until(
        Duration::from_secs(10),
        "the held connections closed",
        || async { (gw.open_fds() <= fds_at_start + 4).then_some(()) },
    )
    .await;
    let r = timeout(
        Duration::from_secs(5),
        raw_send(gw.addr, get("fd.test", "/after")),
    )
    .await
    .expect("no answer after the descriptors came back");
    assert_eq!(r.status, 200, "{}\n{}", r.body, gw.printed());
    assert_eq!(r.body, "origin:/after");
    let r = raw_send(gw.addr, post("fd.test", "/after-post", "x")).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Behind a trusted TLS-terminating proxy the visitor is on HTTPS: the proxy's
/// `X-Forwarded-Proto: https` reaches the origin and the session cookie gets `Secure`. The same
/// header from anyone else changes nothing.
#[tokio::test]
async fn a_trusted_tls_proxy_makes_the_session_secure() {
    let _serial = SERIAL.lock().await;
    let origin = Origin::start().await;
    for (trusted, secure) in [("trusted_proxies = [\"127.0.0.0/8\"]\n", true), ("", false)] {
        let config = format!(
            "{trusted}{}{}",
            base_config("50ms"),
            room("tls", "tls.test", &origin.url(), "active_users = 1")
        );
        let gw = Gateway::start(&config).await;
        let headers = [("accept", JSON), ("x-forwarded-proto", "https")];
        let mut admitted = gw.client("tls.test");
        let r = admitted.send("GET", "/", &headers, "").await;
        assert_eq!(r.status, 200);
        let proto = origin.last().headers["x-forwarded-proto"].clone();
        assert_eq!(proto, if secure { "https" } else { "http" });
        let mut queued = gw.client("tls.test");
        let r = queued.send("GET", "/", &headers, "").await;
        assert_eq!(r.status, 429);
        let cookie = r.header("set-cookie").unwrap().to_string();
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
    }
}
