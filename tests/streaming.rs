//! Bodies stream through the gateway, never buffered whole, and the listener limits hold under
//! real traffic: 100 MiB each way through the real binary keeps its peak memory far below the
//! transfer; a client that stops reading is cut off after `write_timeout` (and the origin's
//! stream is released) while others are served; an origin failing mid-body never yields a
//! response that looks complete; above `max_connections` new connections wait while existing
//! ones keep being served; a request body that stalls gets 408 after `body_timeout`.

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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use support::{Binary, Gateway, base_config, room, serve_http, wait_until};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestBody = BoxBody<Bytes, BoxError>;

const HOST: &str = "stream.test";
const MIB: u64 = 1024 * 1024;
/// Size of the pieces the origin and the uploading client produce.
const CHUNK: usize = 64 * 1024;
/// Byte `i` of every generated body is `(i % PERIOD) as u8`.
const PERIOD: usize = 251;

// ---------------------------------------------------------------------------------------------
// The byte pattern, generated on the fly in 64 KiB pieces (slices of one shared buffer).

fn pattern() -> &'static Bytes {
    static P: OnceLock<Bytes> = OnceLock::new();
    P.get_or_init(|| {
        (0..CHUNK + PERIOD)
            .map(|i| (i % PERIOD) as u8)
            .collect::<Vec<u8>>()
            .into()
    })
}

/// `len` (at most `CHUNK`) bytes of the pattern starting at body offset `offset`.
fn pattern_at(offset: u64, len: usize) -> Bytes {
    assert!(len <= CHUNK);
    let start = (offset % PERIOD as u64) as usize;
    pattern().slice(start..start + len)
}

/// Whether `data`, found at body offset `offset`, is the pattern.
fn is_pattern(offset: u64, data: &[u8]) -> bool {
    let mut i = 0;
    while i < data.len() {
        let n = (data.len() - i).min(CHUNK);
        if data[i..i + n] != pattern_at(offset + i as u64, n)[..] {
            return false;
        }
        i += n;
    }
    true
}

/// `n` bytes of the pattern as a stream of `CHUNK`-sized frames, produced as they are polled.
fn pattern_body(n: u64) -> TestBody {
    let frames = stream::unfold(0u64, move |off| async move {
        (off < n).then(|| {
            let len = (n - off).min(CHUNK as u64) as usize;
            (
                Ok::<_, BoxError>(Frame::data(pattern_at(off, len))),
                off + len as u64,
            )
        })
    });
    StreamBody::new(frames).boxed()
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<TestBody> {
    let mut resp = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    resp
}

// ---------------------------------------------------------------------------------------------
// The test origin.

/// What the origin has seen of its streaming endpoints.
#[derive(Default)]
struct Counters {
    /// `/big` bodies still held by the origin (being sent, or waiting to be).
    big_live: AtomicUsize,
    sink_started: AtomicUsize,
    sink_completed: AtomicUsize,
    /// `/sink` bodies that ended with an error instead of their end.
    sink_aborted: AtomicUsize,
}

/// Counts one live `/big` body until dropped.
struct Live(Arc<Counters>);

impl Live {
    fn new(c: Arc<Counters>) -> Live {
        c.big_live.fetch_add(1, Ordering::SeqCst);
        Live(c)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.big_live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A hyper HTTP/1.1 origin on 127.0.0.1:
/// - `GET /big?n=BYTES`: BYTES bytes of the pattern, generated in 64 KiB frames as the gateway
///   reads them, with `Content-Length`;
/// - `POST /sink`: reads the body frame by frame and answers `"<count> intact|corrupt"`;
/// - `GET /broken`: declares `Content-Length: 1000000`, sends 10 000 bytes, then fails;
/// - anything else: `hello`.
struct StreamOrigin {
    addr: SocketAddr,
    counters: Arc<Counters>,
}

impl StreamOrigin {
    async fn start() -> StreamOrigin {
        let counters: Arc<Counters> = Arc::default();
        let c = counters.clone();
        let addr = serve_http(move |req| origin_answer(req, c.clone())).await;
        StreamOrigin { addr, counters }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn big_live(&self) -> usize {
        self.counters.big_live.load(Ordering::SeqCst)
    }
}

async fn origin_answer(req: Request<Incoming>, c: Arc<Counters>) -> Response<TestBody> {
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/big") => {
            let n: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("n="))
                .and_then(|v| v.parse().ok())
                .expect("/big?n=BYTES");
            let live = Live::new(c);
            // The `Live` guard travels with the stream's state: dropped when the body ends or
            // is abandoned.
            let frames = stream::unfold((0u64, live), move |(off, live)| async move {
                (off < n).then(|| {
                    let len = (n - off).min(CHUNK as u64) as usize;
                    (
                        Ok::<_, BoxError>(Frame::data(pattern_at(off, len))),
                        (off + len as u64, live),
                    )
                })
            });
            let mut resp = Response::new(StreamBody::new(frames).boxed());
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, n.to_string().parse().unwrap());
            resp
        }
        ("POST", "/sink") => {
            c.sink_started.fetch_add(1, Ordering::SeqCst);
            let mut body = req.into_body();
            let mut count = 0u64;
            let mut intact = true;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            intact &= is_pattern(count, d);
                            count += d.len() as u64;
                        }
                    }
                    Err(_) => {
                        c.sink_aborted.fetch_add(1, Ordering::SeqCst);
                        return text(StatusCode::BAD_REQUEST, "aborted");
                    }
                }
            }
            c.sink_completed.fetch_add(1, Ordering::SeqCst);
            let verdict = if intact { "intact" } else { "corrupt" };
            text(StatusCode::OK, format!("{count} {verdict}"))
        }
        ("GET", "/broken") => {
            let frames =
                futures_util::StreamExt::then(stream::iter([false, true]), |fail| async move {
                    if fail {
                        // Let the first piece leave before the connection is dropped.
                        sleep(Duration::from_millis(50)).await;
                        Err::<Frame<Bytes>, BoxError>("the origin fails mid-body".into())
                    } else {
                        Ok(Frame::data(pattern_at(0, 10_000)))
                    }
                });
            let mut resp = Response::new(StreamBody::new(frames).boxed());
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, "1000000".parse().unwrap());
            resp
        }
        _ => text(StatusCode::OK, "hello"),
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// A keep-alive HTTP/1.1 client connection; the task drives it until the sender is dropped.
async fn connect(addr: SocketAddr) -> (SendRequest<TestBody>, JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

fn get_req(path: &str) -> Request<TestBody> {
    Request::get(path)
        .header(header::HOST, HOST)
        .body(Empty::new().map_err(|e| match e {}).boxed())
        .unwrap()
}

/// Sends `req` on `sender` and reads the answer frame by frame: status, `Content-Length`, the
/// number of body bytes and whether they are the pattern.
async fn fetch(
    sender: &mut SendRequest<TestBody>,
    req: Request<TestBody>,
) -> (StatusCode, Option<u64>, u64, bool) {
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let mut body = resp.into_body();
    let mut count = 0u64;
    let mut intact = true;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap_or_else(|e| panic!("body failed after {count} bytes: {e}"));
        if let Some(d) = frame.data_ref() {
            intact &= is_pattern(count, d);
            count += d.len() as u64;
        }
    }
    (status, declared, count, intact)
}

/// `GET path` on a new connection, body read frame by frame.
async fn fetch_new(addr: SocketAddr, path: &str) -> (StatusCode, Option<u64>, u64, bool) {
    let (mut sender, _task) = connect(addr).await;
    fetch(&mut sender, get_req(path)).await
}

/// Reads until the end of a response head (or EOF), failing the test after `limit`.
async fn read_head(s: &mut TcpStream, limit: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!(
                "no response head within {limit:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until EOF or a reset, failing the test after `limit`: everything read, and whether
/// the connection ended with a reset.
async fn read_to_end(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!(
                "the connection was still open after {limit:?} ({} bytes read)",
                got.len()
            ),
            Ok(Ok(0)) => return (got, false),
            Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    (
        String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(),
        &raw[end + 4..],
    )
}

// ---------------------------------------------------------------------------------------------
// Panics on this test's thread (the in-process gateway runs on the test's current-thread
// runtime, so a panicking connection task would be recorded here).

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current().name().unwrap_or("").to_string();
            PANICS.lock().push(format!("{thread}\t{info}"));
            previous(info);
        }));
    });
}

fn panics_on_this_thread() -> Vec<String> {
    let me = format!("{}\t", std::thread::current().name().unwrap_or(""));
    PANICS
        .lock()
        .iter()
        .filter(|p| p.starts_with(&me))
        .cloned()
        .collect()
}

fn one_room(origin: &StreamOrigin, limits: &str) -> String {
    format!(
        "{}{limits}\n\n{}",
        base_config("50ms"),
        room(
            "stream",
            HOST,
            &origin.url(),
            "enabled = false\nactive_users = 10"
        )
    )
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabytes_each_way_stream_with_bounded_memory() {
    const SIZE: u64 = 100 * MIB;
    let origin = StreamOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "tick = \"100ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\n\n[state]\ndir = {state:?}\n\n\
             [limits]\nmax_body = \"200MB\"\n\n[log]\naccess = false\n\n{room}",
            state = dir.path().join("state").display().to_string(),
            room = room(
                "stream",
                HOST,
                &origin.url(),
                "enabled = false\nactive_users = 10"
            ),
        ),
    )
    .unwrap();
    let gw = Binary::start(&config, &[]).await;
    let at_start = gw.proc_status_kb("VmHWM");
    let (mut conn, _task) = connect(gw.addr).await;

    // Download: 100 MiB from the origin, checked byte for byte as it arrives.
    let started = Instant::now();
    let (status, declared, got, intact) =
        fetch(&mut conn, get_req(&format!("/big?n={SIZE}"))).await;
    let down = started.elapsed();
    assert_eq!(status, 200, "{}", gw.printed());
    assert_eq!(declared, Some(SIZE));
    assert_eq!(got, SIZE);
    assert!(intact, "the downloaded bytes are not the origin's");

    // Upload: 100 MiB produced 64 KiB at a time as hyper asks for them, on the same connection.
    let started = Instant::now();
    let req = Request::post("/sink")
        .header(header::HOST, HOST)
        .header(header::CONTENT_LENGTH, SIZE)
        .body(pattern_body(SIZE))
        .unwrap();
    conn.ready().await.unwrap();
    let resp = conn.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.printed());
    let answer = resp.into_body().collect().await.unwrap().to_bytes();
    let up = started.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&answer),
        format!("{SIZE} intact"),
        "the origin's count of the uploaded body"
    );
    assert_eq!(origin.counters.sink_completed.load(Ordering::SeqCst), 1);

    let peak = gw.proc_status_kb("VmHWM");
    println!(
        "gateway VmHWM: {:.1} MiB after start, {:.1} MiB after 100 MiB down ({down:?}) and 100 MiB up ({up:?})",
        at_start as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    assert!(
        peak < 64 * MIB,
        "the gateway's peak RSS is {:.1} MiB for a 100 MiB transfer",
        peak as f64 / MIB as f64
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off() {
    const SIZE: u64 = 200_000_000;
    let origin = StreamOrigin::start().await;
    let gw = Gateway::start(&one_room(&origin, "write_timeout = \"300ms\"")).await;

    // A small, fixed receive buffer (no autotuning): what the kernel holds for the client is
    // small and known, so the bytes it eventually reads say how far the gateway went.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut stalled = socket.connect(gw.addr).await.unwrap();
    stalled
        .write_all(
            format!("GET /big?n={SIZE} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();

    // It reads nothing for a second; meanwhile other clients download normally.
    let asked = Instant::now();
    let mut served = 0;
    while asked.elapsed() < Duration::from_secs(1) {
        let (status, declared, got, intact) = fetch_new(gw.addr, "/big?n=1000000").await;
        assert_eq!(
            (status, declared, got, intact),
            (StatusCode::OK, Some(1_000_000), 1_000_000, true)
        );
        served += 1;
        sleep(Duration::from_millis(50)).await;
    }
    assert!(served >= 3, "only {served} other downloads in a second");

    // Reading again, it gets what was already buffered, then the end: the gateway gave up.
    let (raw, reset) = read_to_end(&mut stalled, Duration::from_secs(10)).await;
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    println!(
        "the stalled client received {} bytes of {SIZE} before the {}",
        body.len(),
        if reset { "reset" } else { "EOF" }
    );
    assert!(
        (body.len() as u64) < 16 * MIB,
        "the stalled client still received {} bytes",
        body.len()
    );
    assert!(is_pattern(0, body));

    // The origin's response stream was released too.
    wait_until(
        Duration::from_secs(5),
        "the origin's /big stream to be released",
        || async { (origin.big_live() == 0).then_some(()) },
    )
    .await;

    // And the gateway still serves.
    let (status, _, got, intact) = fetch_new(gw.addr, "/big?n=100000").await;
    assert_eq!((status, got, intact), (StatusCode::OK, 100_000, true));
}

#[tokio::test]
async fn an_origin_failing_mid_body_aborts_the_client_response() {
    record_panics();
    let origin = StreamOrigin::start().await;
    let gw = Gateway::start(&one_room(&origin, "")).await;

    // A raw client: the head promises more than ever comes, then the connection ends.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(format!("GET /broken HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (raw, _reset) = read_to_end(&mut s, Duration::from_secs(5)).await;
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let declared = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .map(|v| v.trim().parse::<u64>().unwrap())
    });
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    match (declared, chunked) {
        (Some(n), false) => {
            assert_eq!(n, 1_000_000, "{head}");
            assert!(
                (body.len() as u64) < n,
                "a complete body of {} bytes",
                body.len()
            );
            assert!(body.len() <= 10_000 && is_pattern(0, body));
        }
        (None, true) => assert!(
            !body.ends_with(b"0\r\n\r\n"),
            "the chunked body was terminated as if complete"
        ),
        _ => panic!("the head must frame the body (not close-delimited):\n{head}"),
    }

    // A hyper client reading the body gets an error, never a clean end.
    let (mut sender, _task) = connect(gw.addr).await;
    sender.ready().await.unwrap();
    let resp = sender.send_request(get_req("/broken")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let read = timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .expect("the broken body neither ended nor failed");
    assert!(
        read.is_err(),
        "the body ended cleanly with {} bytes",
        read.unwrap().to_bytes().len()
    );

    // The gateway keeps serving, and nothing panicked.
    let (status, declared, got, intact) = fetch_new(gw.addr, "/big?n=300000").await;
    assert_eq!(
        (status, declared, got, intact),
        (StatusCode::OK, Some(300_000), 300_000, true)
    );
    let panics = panics_on_this_thread();
    assert!(panics.is_empty(), "panics: {panics:#?}");
}

#[tokio::test]
async fn over_the_connection_limit_existing_connections_keep_being_served() {
    let origin = StreamOrigin::start().await;
    let gw = Gateway::start(&one_room(&origin, "max_connections = 2")).await;
    let hello = |body: &str| body == "hello";

    let (mut a, a_task) = connect(gw.addr).await;
    let (mut b, _b_task) = connect(gw.addr).await;
    for conn in [&mut a, &mut b] {
        conn.ready().await.unwrap();
        let resp = conn.send_request(get_req("/")).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(hello(&String::from_utf8_lossy(&body)));
    }

    // A third connection: the TCP handshake completes (the kernel's backlog), the request waits.
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    third
        .write_all(
            format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(
        timeout(Duration::from_millis(300), third.read(&mut buf))
            .await
            .is_err(),
        "the third connection was answered above max_connections"
    );

    // Meanwhile the two existing connections keep being served.
    for _ in 0..3 {
        for conn in [&mut a, &mut b] {
            let (status, declared, got, intact) = fetch(conn, get_req("/big?n=200000")).await;
            assert_eq!(
                (status, declared, got, intact),
                (StatusCode::OK, Some(200_000), 200_000, true)
            );
        }
    }
    assert!(
        timeout(Duration::from_millis(100), third.read(&mut buf))
            .await
            .is_err(),
        "the third connection was answered above max_connections"
    );

    // Closing one frees its place: the third connection is served.
    drop(a);
    timeout(Duration::from_secs(2), a_task)
        .await
        .expect("the first connection did not close")
        .unwrap();
    let (raw, _) = read_to_end(&mut third, Duration::from_secs(5)).await;
    let (head, body) = split_head(&raw);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"hello");

    // The second connection is still fine.
    let (status, _, got, _) = fetch(&mut b, get_req("/big?n=1000")).await;
    assert_eq!((status, got), (StatusCode::OK, 1000));
}

#[tokio::test]
async fn a_slow_request_body_is_cut_off_with_408() {
    let origin = StreamOrigin::start().await;
    let gw = Gateway::start(&one_room(&origin, "body_timeout = \"300ms\"")).await;
    let head = format!("POST /sink HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n");

    // No body byte ever comes: 408 after body_timeout, and the origin is never contacted.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let sent = Instant::now();
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_head(&mut s, Duration::from_secs(2)).await;
    let waited = sent.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        waited >= Duration::from_millis(250),
        "answered after {waited:?}, before body_timeout"
    );
    assert_eq!(origin.counters.sink_started.load(Ordering::SeqCst), 0);

    // The first 10 bytes come, then nothing: the request already went to the origin; its body
    // is cut off there, and the client still gets 408, not a hang.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&pattern_at(0, 10)).await.unwrap();
    let sent = Instant::now();
    let answer = read_head(&mut s, Duration::from_secs(2)).await;
    let waited = sent.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        waited >= Duration::from_millis(250),
        "answered after {waited:?}, before body_timeout"
    );
    wait_until(
        Duration::from_secs(2),
        "the origin to see the body cut off",
        || async { (origin.counters.sink_aborted.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    assert_eq!(origin.counters.sink_started.load(Ordering::SeqCst), 1);
    assert_eq!(origin.counters.sink_completed.load(Ordering::SeqCst), 0);
    // The rest of that body never comes, so the connection cannot be reused: it is closed.
    read_to_end(&mut s, Duration::from_secs(2)).await;

    // A body that keeps coming is not cut off.
    let (mut conn, _task) = connect(gw.addr).await;
    let req = Request::post("/sink")
        .header(header::HOST, HOST)
        .body(pattern_body(MIB))
        .unwrap();
    conn.ready().await.unwrap();
    let resp = conn.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), format!("{MIB} intact"));
}

/// `origin_response_timeout` counts from the end of the request body (or its last movement):
/// an upload that keeps coming for longer than that is not a slow origin.
#[tokio::test]
async fn a_long_steady_upload_is_not_taken_for_a_slow_origin() {
    let origin = StreamOrigin::start().await;
    let config = one_room(&origin, "body_timeout = \"400ms\"").replace(
        "origin_response_timeout = \"1s\"",
        "origin_response_timeout = \"500ms\"",
    );
    assert!(config.contains("\"500ms\""), "{config}");
    let gw = Gateway::start(&config).await;
    // 20 pieces of 1,000 bytes, one every 100 ms: 2 s in all, 4 times the response timeout.
    let pieces = futures_util::stream::unfold(0u64, |i| async move {
        (i < 20).then_some(())?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let frame = http_body::Frame::data(pattern_at(i * 1000, 1000));
        Some((Ok::<_, BoxError>(frame), i + 1))
    });
    let body: TestBody = http_body_util::BodyExt::boxed(http_body_util::StreamBody::new(pieces));
    let (mut conn, _task) = connect(gw.addr).await;
    let req = Request::post("/sink")
        .header(header::HOST, HOST)
        .body(body)
        .unwrap();
    conn.ready().await.unwrap();
    let resp = conn.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&got), "20000 intact");
}
