//! Stopping and starting the real binary keeps the line: a SIGTERM drains in-flight requests and
//! writes a snapshot from which every place comes back; after `kill -9` (or even a lost state
//! folder, with the token secret kept) visitors who come back with their token re-enter in
//! ticket order ahead of newcomers, while a session that had ended stays ended; a corrupt
//! snapshot is set aside without stopping the start; a second SIGTERM exits at once; and
//! `anteroom state inspect` summarises a snapshot or says clearly that there is none.

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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};

use support::*;

const ROOM: &str = "line";
const HOST: &str = "line.test";
const COOKIE: &str = "anteroom_line";
const SECRET_ENV: &str = "ANTEROOM_RESTART_TEST_SECRET";
const SECRET: &str = "a-secret-of-at-least-32-bytes-for-tests-0123";

/// The knobs the tests turn; everything else is fixed (one fifo room `line` on `line.test`).
struct Conf {
    tick: &'static str,
    snapshot_every: &'static str,
    drain_timeout: &'static str,
    cap: u32,
    secret: bool,
}

impl Default for Conf {
    fn default() -> Self {
        Conf {
            tick: "100ms",
            snapshot_every: "2s",
            drain_timeout: "10s",
            cap: 2,
            secret: false,
        }
    }
}

/// A temporary folder holding `gateway.toml` and the state folder `state/`.
struct Place {
    root: tempfile::TempDir,
    config: PathBuf,
}

impl Place {
    fn new(origin: &Origin, c: Conf) -> Place {
        let root = tempfile::tempdir().unwrap();
        let state = root.path().join("state").display().to_string();
        let token = if c.secret {
            format!("[token]\nsecret_env = \"{SECRET_ENV}\"\n\n")
        } else {
            String::new()
        };
        let text = format!(
            "tick = \"{tick}\"\n\n\
             [listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [state]\ndir = {state:?}\nsnapshot_every = \"{snap}\"\n\n\
             [limits]\ndrain_timeout = \"{drain}\"\n\n\
             {token}\
             [[room]]\nname = \"{ROOM}\"\nhosts = [\"{HOST}\"]\norigin = \"{origin}\"\n\
             active_users = {cap}\nsession_ttl = \"10m\"\nabandon_after = \"10m\"\n\
             release_window = \"10m\"\nqueue = \"fifo\"\n",
            tick = c.tick,
            snap = c.snapshot_every,
            drain = c.drain_timeout,
            origin = origin.url(),
            cap = c.cap,
        );
        let config = root.path().join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        Place { root, config }
    }

    fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    fn snapshot(&self) -> PathBuf {
        self.state().join("snapshot.bin")
    }
}

/// The real binary as a child process.
type Gw = Binary;

/// A new visitor of the room, without cookies.
fn visitor(gw: &Gw) -> Client {
    Client {
        addr: gw.addr,
        host: HOST.to_string(),
        cookies: Default::default(),
    }
}

/// `anteroom state inspect DIR`.
fn inspect(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_anteroom"))
        .args(["state", "inspect"])
        .arg(dir)
        .output()
        .unwrap()
}

/// Whether `line` has the word `key` directly followed by the word `value` (punctuation such as
/// `:`, `=`, `,` or quotes between words is ignored).
fn has(line: &str, key: &str, value: &str) -> bool {
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|w| w[0] == key && w[1] == value)
}

/// The visitor's token, from the room's cookie.
fn token(c: &Client) -> String {
    c.cookies
        .get(COOKIE)
        .cloned()
        .unwrap_or_else(|| panic!("no {COOKIE} cookie in {:?}", c.cookies))
}

/// `GET /__anteroom/status` with `Anteroom-Token: token` and no cookie.
async fn status_by_token(addr: SocketAddr, token: &str) -> Reply {
    let mut c = Client {
        addr,
        host: HOST.to_string(),
        cookies: Default::default(),
    };
    c.send(
        "GET",
        "/__anteroom/status",
        &[("accept", JSON), ("anteroom-token", token)],
        "",
    )
    .await
}

/// A known token's status JSON, waiting as told when asked again before the poll floor.
async fn known(addr: SocketAddr, token: &str) -> Value {
    loop {
        let r = status_by_token(addr, token).await;
        if r.status == 429 {
            let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        assert_eq!(r.status, 200, "status: {}", r.body);
        return r.json();
    }
}

/// What a restart must keep of a visitor: state, position, queue depth.
fn standing(j: &Value) -> (Value, Value, Value) {
    (
        j["state"].clone(),
        j["position"].clone(),
        j["queue_depth"].clone(),
    )
}

/// A new visitor's first `GET /`, which must put them in line at `position`.
async fn join_queued(gw: &Gw, position: u64) -> Client {
    let mut c = visitor(gw);
    let r = c.get("/", JSON).await;
    assert_eq!(r.status, 429, "a waiting answer: {}", r.body);
    assert_eq!(r.json()["state"], "queued", "{}", r.body);
    assert_eq!(r.json()["position"], position, "{}", r.body);
    c
}

/// A new visitor's first `GET /`, which must reach the origin.
async fn join_admitted(gw: &Gw) -> Client {
    let mut c = visitor(gw);
    let r = c.get("/", JSON).await;
    assert_eq!(r.status, 200, "admitted: {}", r.body);
    assert_eq!(r.body, "origin:/");
    c
}

/// `GET /slow` on its own connection: status and body, or why it failed.
async fn slow_get(addr: SocketAddr) -> Result<(u16, String), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("/slow")
        .header("host", HOST)
        .header("accept", JSON)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Waits until the origin has received `/slow`.
async fn origin_saw_slow(origin: &Origin) {
    wait_until(LIMIT, "the origin to receive /slow", || async {
        origin
            .seen
            .lock()
            .iter()
            .any(|s| s.path == "/slow")
            .then_some(())
    })
    .await;
}

/// Whether a new connection to `addr` goes unanswered: refused, closed, or silent for 500 ms.
async fn unanswered(addr: SocketAddr) -> bool {
    let wait = Duration::from_millis(500);
    let Ok(Ok(mut s)) = timeout(wait, TcpStream::connect(addr)).await else {
        return true;
    };
    let req =
        format!("GET /__anteroom/status HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return true;
    }
    let mut buf = [0u8; 64];
    match timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(n)) => n == 0,
        Ok(Err(_)) | Err(_) => true,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_keeps_every_place() {
    let origin = Origin::start().await;
    let place = Place::new(&origin, Conf::default());
    let mut gw = Gw::start(&place.config, &[]).await;
    let mut visitors = vec![join_admitted(&gw).await, join_admitted(&gw).await];
    for p in 1..=18 {
        visitors.push(join_queued(&gw, p).await);
    }
    let mut before = Vec::new();
    for (i, c) in visitors.iter().enumerate() {
        let s = standing(&status(c).await);
        let want_state = if i < 2 { "admitted" } else { "queued" };
        assert_eq!(s.0, want_state, "visitor {i}: {s:?}");
        assert_eq!(s.2, 18, "visitor {i}: {s:?}");
        if i >= 2 {
            assert_eq!(s.1, i as u64 - 1, "visitor {i}: {s:?}");
        }
        before.push(s);
    }

    gw.stop().await;
    assert!(place.snapshot().exists(), "no snapshot after SIGTERM");

    let mut gw = Gw::start(&place.config, &[]).await;
    let mut after = Vec::new();
    for c in &mut visitors {
        c.addr = gw.addr;
        after.push(standing(&status(c).await));
    }
    assert_eq!(after, before, "(state, position, queue_depth) per visitor");
    let seen = origin.count();
    let r = visitors[0].get("/", JSON).await;
    assert_eq!(
        r.status, 200,
        "an admitted visitor after the restart: {}",
        r.body
    );
    assert_eq!(r.body, "origin:/");
    assert_eq!(
        origin.count(),
        seen + 1,
        "the request did not reach the origin"
    );

    gw.stop().await;
    let out = inspect(&place.state());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "state inspect failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| has(l, "room", ROOM))
        .unwrap_or_else(|| panic!("no `room {ROOM}` line in:\n{text}"));
    assert!(has(line, "queued", "18"), "{line}");
    assert!(has(line, "active", "2"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_recovers_late_joiners_in_ticket_order() {
    let origin = Origin::start().await;
    let conf = Conf {
        snapshot_every: "1h",
        ..Conf::default()
    };
    let place = Place::new(&origin, conf);
    let mut gw = Gw::start(&place.config, &[]).await;
    let admitted = [join_admitted(&gw).await, join_admitted(&gw).await];
    let mut early = Vec::new();
    for p in 1..=6 {
        early.push(join_queued(&gw, p).await);
    }
    // X joins and leaves before the snapshot: its session has ended for good.
    let mut x = join_queued(&gw, 7).await;
    let x_token = token(&x);
    let left = x
        .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
        .await;
    assert_eq!(left.status, 200, "leave: {}", left.body);
    assert_eq!(left.json()["left"], true, "{}", left.body);

    let admin = gw.admin().await;
    let snap = admin.send("POST", "/api/v1/snapshot", "{}").await;
    assert_eq!(snap.status, 200, "POST /api/v1/snapshot: {}", snap.body);
    let j = snap.json();
    assert!(
        j.get("rooms").is_some() && j.get("bytes").is_some(),
        "{}",
        snap.body
    );
    assert!(place.snapshot().exists(), "no snapshot.bin after the POST");

    // Joined after the snapshot: only their tokens remember them.
    let mut late = Vec::new();
    for p in 7..=11 {
        late.push(token(&join_queued(&gw, p).await));
    }
    gw.kill9();

    let gw = Gw::start(&place.config, &[]).await;
    for (i, t) in late.iter().enumerate().rev() {
        let j = known(gw.addr, t).await;
        // Everyone back so far joined later, so each one who comes back goes before them.
        assert_eq!(j["state"], "queued", "late joiner {i}: {j}");
        assert_eq!(j["position"], 7, "late joiner {i} on coming back: {j}");
    }
    for (i, c) in admitted.iter().enumerate() {
        let mut c = c.clone();
        c.addr = gw.addr;
        assert_eq!(
            status(&c).await["state"],
            "admitted",
            "admitted visitor {i}"
        );
    }
    for (i, c) in early.iter().enumerate() {
        let mut c = c.clone();
        c.addr = gw.addr;
        let j = status(&c).await;
        assert_eq!(
            standing(&j),
            ("queued".into(), (i as u64 + 1).into(), 11.into()),
            "early visitor {i}: {j}"
        );
    }
    for (i, t) in late.iter().enumerate() {
        let j = known(gw.addr, t).await;
        assert_eq!(
            standing(&j),
            ("queued".into(), (i as u64 + 7).into(), 11.into()),
            "late joiner {i}: {j}"
        );
    }
    join_queued(&gw, 12).await;

    // The token of a visitor who left names no place: it is expired, never a place again.
    let r = status_by_token(gw.addr, &x_token).await;
    assert_eq!(r.status, 200, "the token of a visitor who left: {}", r.body);
    assert_eq!(r.json()["state"], "expired", "{}", r.body);
    x.addr = gw.addr;
    x.cookies.insert(COOKIE.to_string(), x_token.clone());
    let r = x.get("/", JSON).await;
    assert_eq!(r.json()["state"], "expired", "{}", r.body);
    assert!(x.cookies.is_empty(), "the stale cookie is dropped");
    let r = x.get("/", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        r.json()["position"],
        13,
        "X starts again at the back: {}",
        r.body
    );
    assert_ne!(token(&x), x_token, "X must get a new token");
    assert_eq!(r.json()["token"], token(&x), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_state_dir_with_kept_secret_honours_tokens() {
    let origin = Origin::start().await;
    let conf = Conf {
        tick: "1h",
        snapshot_every: "1s",
        cap: 1,
        secret: true,
        ..Conf::default()
    };
    let place = Place::new(&origin, conf);
    let env = [(SECRET_ENV, SECRET)];
    let mut gw = Gw::start(&place.config, &env).await;
    join_admitted(&gw).await;
    let mut tokens = Vec::new();
    for p in 1..=3 {
        tokens.push(token(&join_queued(&gw, p).await));
    }
    let [b, c, d] = <[String; 3]>::try_from(tokens).unwrap();
    // Something to lose: the state folder holds a snapshot when the process dies.
    let snapshot = place.snapshot();
    wait_until(LIMIT, "a periodic snapshot", || async {
        snapshot.exists().then_some(())
    })
    .await;
    gw.kill9();
    std::fs::remove_dir_all(place.state()).unwrap();

    let gw = Gw::start(&place.config, &env).await;
    for (name, t) in [("D", &d), ("C", &c), ("B", &b)] {
        let j = known(gw.addr, t).await;
        assert_eq!(j["state"], "queued", "{name} on coming back: {j}");
        assert_eq!(j["position"], 1, "{name} on coming back: {j}");
    }
    let n = join_queued(&gw, 4).await;
    for (name, t, p) in [
        ("B", &b, 1),
        ("C", &c, 2),
        ("D", &d, 3),
        ("N", &token(&n), 4),
    ] {
        let j = known(gw.addr, t).await;
        assert_eq!(
            standing(&j),
            ("queued".into(), p.into(), 4.into()),
            "{name}: {j}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_snapshot_is_set_aside() {
    let origin = Origin::start().await;
    let place = Place::new(&origin, Conf::default());
    std::fs::create_dir_all(place.state()).unwrap();
    std::fs::write(
        place.snapshot(),
        b"\x00\xffthis is not a snapshot\x13\x37\xde\xad\xbe\xef",
    )
    .unwrap();
    let gw = Gw::start(&place.config, &[]).await;
    join_admitted(&gw).await;

    let state = place.state();
    let aside = wait_until(LIMIT, "a snapshot.bin.corrupt* file", || async {
        std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("snapshot.bin.corrupt"))
    })
    .await;
    assert_eq!(
        std::fs::read(state.join(&aside)).unwrap(),
        b"\x00\xffthis is not a snapshot\x13\x37\xde\xad\xbe\xef",
        "{aside} holds other bytes than the corrupt snapshot"
    );
    wait_until(LIMIT, "an error line about the snapshot", || async {
        gw.stdout_has(|l| l.contains("ERROR") && l.to_lowercase().contains("snapshot"))
            .then_some(())
    })
    .await;
}

/// A gateway with `drain_timeout` whose origin has just received a `/slow` request (answered
/// after 2 s) that is still in flight.
async fn slow_request_in_flight(
    drain_timeout: &'static str,
) -> (
    Origin,
    Place,
    Gw,
    tokio::task::JoinHandle<Result<(u16, String), String>>,
) {
    let origin = Origin::start().await;
    let conf = Conf {
        cap: 100,
        drain_timeout,
        ..Conf::default()
    };
    let place = Place::new(&origin, conf);
    let gw = Gw::start(&place.config, &[]).await;
    let slow = tokio::spawn(slow_get(gw.addr));
    origin_saw_slow(&origin).await;
    (origin, place, gw, slow)
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_finishes_a_slow_request() {
    let (_origin, place, mut gw, slow) = slow_request_in_flight("10s").await;
    gw.term();

    // The slow answer takes 2 s: well before then, a new connection must go unanswered.
    let closed = loop {
        if unanswered(gw.addr).await {
            break true;
        }
        if slow.is_finished() {
            break false;
        }
        sleep(Duration::from_millis(20)).await;
    };
    assert!(
        closed,
        "new connections were answered for as long as the drain lasted"
    );
    let answer = slow.await.unwrap();
    assert_eq!(
        answer,
        Ok((200, "origin:/slow".to_string())),
        "the in-flight request"
    );
    let status = gw.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exited with {status}\n{}", gw.printed());
    assert!(place.snapshot().exists(), "no snapshot after the drain");
}

#[tokio::test(flavor = "multi_thread")]
async fn second_signal_exits_at_once() {
    let (_origin, _place, mut gw, slow) = slow_request_in_flight("30s").await;
    gw.term();
    sleep(Duration::from_millis(200)).await;
    gw.term();
    let status = gw.wait_exit(Duration::from_secs(5)).await;
    assert!(
        !status.success(),
        "a second SIGTERM must exit non-zero, got {status}\n{}",
        gw.printed()
    );
    slow.abort();
}

#[test]
fn inspect_without_snapshot_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = inspect(dir.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "exited 0 with no snapshot: {text}");
    assert!(
        text.contains(&dir.path().display().to_string()),
        "the message does not name {}: {text}",
        dir.path().display()
    );
}

/// Past `drain_timeout` the requests still in flight are cut, and the stop goes on: the final
/// snapshot is written and the process exits 0 well before the slow answer would have come.
#[tokio::test(flavor = "multi_thread")]
async fn past_drain_timeout_the_rest_is_cut() {
    let (_origin, place, mut gw, slow) = slow_request_in_flight("300ms").await;
    gw.term();
    let status = gw.wait_exit(Duration::from_secs(5)).await;
    assert!(status.success(), "exited with {status}\n{}", gw.printed());
    assert!(place.snapshot().exists());
    // Had the stop waited for it, the 2 s request would have been answered.
    let answer = slow.await.unwrap();
    assert!(answer.is_err(), "the cut request was answered: {answer:?}");
}
