//! A real browser in the waiting room: headless Chromium, driven through ChromeDriver, waits on
//! the real waiting page until the page's own polling lets it through to the origin.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// ChromeDriver as a child process in its own process group, so that dropping it also ends
/// the Chromium it started, even when the test fails half way.
struct Driver {
    child: Child,
    addr: SocketAddr,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut driver = Driver {
            child,
            addr,
            url: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!("{CHROMEDRIVER} exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{CHROMEDRIVER} did not listen on {addr} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    async fn browser(&self, profile: &std::path::Path) -> Browser {
        self.browser_in(profile, None).await
    }

    /// A browser whose language is `lang` (its `Accept-Language` and `navigator.language`).
    async fn browser_in(&self, profile: &std::path::Path, lang: Option<&str>) -> Browser {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--lang={}", lang.unwrap_or("en-US")),
                    format!("--accept-lang={}", lang.unwrap_or("en-US")),
                ],
                "prefs": { "intl.accept_languages": lang.unwrap_or("en-US") },
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session from {}: {e}", self.url))
    }

    /// Sends one DevTools command to the session's page through ChromeDriver's passthrough
    /// (`POST /session/{id}/goog/cdp/execute`); its result.
    async fn cdp(&self, session: &str, cmd: &str, params: serde_json::Value) -> serde_json::Value {
        let body = json!({ "cmd": cmd, "params": params }).to_string();
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("/session/{session}/goog/cdp/execute"))
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let r = raw_send(self.addr, req).await;
        assert_eq!(r.status, 200, "{cmd} {params}: {}", r.body);
        r.json()["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn body_text(browser: &Browser) -> String {
    match browser.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A room on 127.0.0.1 with one slot, taken by a curl-like visitor: whoever comes next waits.
async fn full_room(keys: &str) -> (Origin, Gateway, Client) {
    full_room_with("", keys).await
}

/// [`full_room`] with `limits` added to `[limits]`.
async fn full_room_with(limits: &str, keys: &str) -> (Origin, Gateway, Client) {
    let origin = Origin::start().await;
    let config = base_config("50ms").replace("[limits]\n", &format!("[limits]\n{limits}\n"))
        + &room("shop", HOST, &origin.url(), keys);
    let gw = Gateway::start(&config).await;
    let mut first = gw.client(HOST);
    let r = first.get("/", BROWSER).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "origin:/");
    assert!(!first.cookies.is_empty(), "the first visitor got no cookie");
    (origin, gw, first)
}

/// Waits until the browser shows `text` (the origin's page), failing with what it shows after
/// `limit`; how long it took.
async fn wait_let_in(browser: &Browser, text: &str, limit: Duration, after: &str) -> Duration {
    let started = Instant::now();
    while !body_text(browser).await.contains(text) {
        if started.elapsed() >= limit {
            panic!(
                "the browser was not let in within {limit:?} {after}; it shows {}:\n{}",
                browser
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                browser.source().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

const HOST: &str = "127.0.0.1";

#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn waiting_page_polls_and_lets_the_visitor_in() {
    // Someone else holds the only slot.
    let (origin, gw, mut first) =
        full_room("active_users = 1\nabandon_after = \"30s\"\nsession_ttl = \"1m\"").await;

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    let url = format!("http://{}/tickets/42?seat=9", gw.addr);
    browser.goto(&url).await.unwrap();

    // The waiting page, with this visitor first in line.
    let title = browser.title().await.unwrap();
    let text = body_text(&browser).await;
    assert!(
        title.contains("in line") && text.contains("in line"),
        "not the waiting page: title {title:?}\n{}",
        browser.source().await.unwrap_or_default()
    );
    let num = browser.find(Locator::Id("where-num")).await.unwrap();
    assert_eq!(num.text().await.unwrap().trim(), "1", "{text}");
    assert!(
        !origin.seen.lock().iter().any(|s| s.path == "/tickets/42"),
        "the origin saw a queued visitor"
    );

    // The accessibility contract: a polite live region and a progress bar.
    browser
        .find(Locator::Css("[aria-live=\"polite\"]"))
        .await
        .expect("no aria-live=\"polite\" region");
    browser
        .find(Locator::Css("[role=\"progressbar\"], progress"))
        .await
        .expect("no progress bar");

    // The page's own script ran under its Content-Security-Policy: it drew the progress bar
    // (there is no style attribute to do it otherwise).
    let width = browser
        .execute(
            "return document.getElementById('bar-fill').style.width;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        width.as_str().is_some_and(|w| w.ends_with('%')),
        "the page's script did not run: bar width {width}"
    );

    // The slot frees; the engine releases the browser and the page's poll reloads it through.
    let left = first.send("POST", "/__anteroom/leave", &[], "").await;
    assert_eq!(left.status, 200);
    assert_eq!(left.json()["left"], true);

    let took = wait_let_in(
        &browser,
        "origin:/tickets/42",
        Duration::from_secs(15),
        "of the slot freeing",
    )
    .await;
    eprintln!("let in {took:?} after the slot freed");

    let now = browser.current_url().await.unwrap();
    assert_eq!(now.path(), "/tickets/42");
    assert_eq!(now.query(), Some("seat=9"));
    assert!(
        origin
            .seen
            .lock()
            .iter()
            .any(|s| s.method == "GET" && s.path == "/tickets/42"),
        "the origin never saw GET /tickets/42"
    );

    browser.close().await.unwrap();
}

/// A page that comes back (the network returns, the tab is shown again) asks at once: with a
/// poll interval of about 30 s, the visitor whose turn came while it was away is let in within
/// seconds of the `online` event, not at the next scheduled poll.
#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn a_page_that_comes_back_online_asks_at_once() {
    // A long session_ttl makes a long estimate, and so a poll interval of about 30 s.
    let (_origin, gw, mut first) =
        full_room("active_users = 1\nabandon_after = \"5m\"\nsession_ttl = \"10m\"").await;

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    browser
        .goto(&format!("http://{}/back/7", gw.addr))
        .await
        .unwrap();
    let poll: u64 = browser
        .execute(
            "return document.getElementById('room').dataset.poll;",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("the page's poll interval");
    assert!(poll >= 20, "poll_after_seconds {poll}: too short to tell");

    // The visitor's turn comes while the page is not asking; then the network is back.
    assert_eq!(
        first
            .send("POST", "/__anteroom/leave", &[], "")
            .await
            .status,
        200
    );
    // Ticks run every 50 ms: by now the browser's session has long been released.
    tokio::time::sleep(Duration::from_secs(1)).await;
    browser
        .execute("window.dispatchEvent(new Event('online'));", vec![])
        .await
        .unwrap();
    let took = wait_let_in(
        &browser,
        "origin:/back/7",
        Duration::from_secs(8),
        &format!("of coming back online (poll interval {poll} s)"),
    )
    .await;
    eprintln!("let in {took:?} after coming back online");
    browser.close().await.unwrap();
}

/// Milliseconds since the Unix epoch, the clock the page's `Date.now()` reads.
fn wall_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// When the page called `fetch` (its status polls), as recorded by the hook the test put in.
async fn page_polls(browser: &Browser) -> Vec<f64> {
    let v = browser
        .execute("return window.__polls || [];", vec![])
        .await
        .unwrap();
    v.as_array()
        .expect("the page's poll times")
        .iter()
        .filter_map(|t| t.as_f64())
        .collect()
}

/// A visitor in line that keeps asking for its status every 200 ms (a 429 from the poll floor
/// still shows it is there), recording every answered poll.
fn keep_polling(
    mut c: Client,
) -> (
    std::sync::Arc<parking_lot::Mutex<Vec<serde_json::Value>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let r = c.get("/__anteroom/status", JSON).await;
            if r.status == 200 {
                log.lock().push(r.json());
            } else {
                assert_eq!(r.status, 429, "status: {}", r.body);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (seen, task)
}

/// Waits until an answer recorded after the first `from` matches `want`; that answer.
async fn wait_answer(
    seen: &parking_lot::Mutex<Vec<serde_json::Value>>,
    from: usize,
    what: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_until(Duration::from_secs(8), what, || {
        let found = seen.lock().iter().skip(from).find(|j| want(j)).cloned();
        async move { found }
    })
    .await
}

/// Away and back in a real browser: the page is frozen (as a phone freezes a background tab,
/// CDP `Page.setWebLifecycleState`) for several poll intervals while its turn comes and goes.
/// The slot is held for it for `release_window`, then passes to the next in line; the page,
/// resumed, asks again, is put at the front ahead of a visitor who joined after it, and reaches
/// the origin at the URL it asked for as soon as the slot frees, while that later visitor still
/// waits.
#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn a_page_frozen_while_its_turn_passes_goes_first_when_resumed() {
    // A session_ttl of 20 s keeps the estimate at the front short, so the page polls every 2 s.
    // No event stream: this is the polling page's way back (a stream ends at the release, and
    // a resumed page then polls the same way).
    let (origin, gw, mut first) = full_room_with(
        "max_event_streams = 0",
        "active_users = 1\nrelease_window = \"3s\"\nabandon_after = \"60s\"\nsession_ttl = \"20s\"",
    )
    .await;

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    let session = browser
        .session_id()
        .await
        .unwrap()
        .expect("a WebDriver session");
    browser
        .goto(&format!("http://{}/tickets", gw.addr))
        .await
        .unwrap();
    let num = browser.find(Locator::Id("where-num")).await.unwrap();
    assert_eq!(
        num.text().await.unwrap().trim(),
        "1",
        "{}",
        body_text(&browser).await
    );
    let poll: u64 = browser
        .execute(
            "return document.getElementById('room').dataset.poll;",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .and_then(|p| p.parse().ok())
        .expect("the page's poll interval");
    assert!(
        poll <= 3,
        "poll_after_seconds {poll}: too long for the test"
    );
    // Note when the page asks (its script calls the global fetch at each poll).
    browser
        .execute(
            "window.__polls = []; var f = window.fetch; \
             window.fetch = function () { window.__polls.push(Date.now()); \
             return f.apply(this, arguments); };",
            vec![],
        )
        .await
        .unwrap();

    // B joins after the page: second in line, and back once since joining.
    let mut b = gw.client(HOST);
    let r = b.get("/b", JSON).await;
    assert_eq!(r.json()["position"], 2, "{}", r.body);
    assert_eq!(status(&b).await["position"], 2);

    // The page has asked once since it loaded (it is known to be there), then is frozen.
    let page = &browser;
    wait_until(
        Duration::from_secs(5),
        "the page's first poll",
        || async move { (!page_polls(page).await.is_empty()).then_some(()) },
    )
    .await;
    // The one admitted visitor stays active for the whole test (a request moves its idle end).
    assert_eq!(first.get("/a", BROWSER).await.body, "origin:/a");
    driver
        .cdp(
            &session,
            "Page.setWebLifecycleState",
            json!({ "state": "frozen" }),
        )
        .await;
    let frozen_at = wall_ms();
    let frozen = Instant::now();

    // C joins while the page is frozen: third in line, and keeps polling.
    let mut c = gw.client(HOST);
    let r = c.get("/c", JSON).await;
    assert_eq!(r.json()["position"], 3, "{}", r.body);
    let (c_seen, c_task) = keep_polling(c.clone());

    // The slot frees. The page's turn comes: it is released, does not come (frozen), and after
    // release_window (3 s) the slot goes to B.
    let left = first.send("POST", "/__anteroom/leave", &[], "").await;
    assert_eq!(left.json()["left"], true);
    let freed = Instant::now();
    wait_state(&b, "released").await;
    let b_after = freed.elapsed();
    assert!(
        b_after >= Duration::from_millis(2900),
        "B was released {b_after:?} after the slot freed: the slot was not held for the \
         frozen page's release_window first"
    );
    let r = b.get("/b/in", BROWSER).await;
    assert_eq!(r.body, "origin:/b/in");
    // The page is away: C, who joined after it, is now first in a line of one.
    let mark = c_seen.lock().len();
    let j = wait_answer(
        &c_seen,
        mark,
        "C first in line while the page is away",
        |j| j["position"] == 1,
    )
    .await;
    assert_eq!(j["state"], "queued", "{j}");
    assert_eq!(j["queue_depth"], 1, "{j}");

    // Frozen for at least three poll intervals in all; then the page is resumed.
    let hold = Duration::from_secs(3 * poll);
    if let Some(rest) = hold.checked_sub(frozen.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let resumed_at = wall_ms();
    driver
        .cdp(
            &session,
            "Page.setWebLifecycleState",
            json!({ "state": "active" }),
        )
        .await;
    let resumed = Instant::now();
    eprintln!(
        "frozen {:?}; B released {b_after:?} after the slot freed",
        resumed - frozen
    );

    // The page asks again and is put at the front: C, who joined after it, is second.
    let mark = c_seen.lock().len();
    let j = wait_answer(
        &c_seen,
        mark,
        "the page back at the front, ahead of C",
        |j| j["position"] == 2,
    )
    .await;
    assert_eq!(j["state"], "queued", "{j}");
    assert_eq!(j["queue_depth"], 2, "{j}");
    eprintln!("back at the front {:?} after resuming", resumed.elapsed());
    let polls = page_polls(&browser).await;
    assert!(
        !polls.iter().any(|t| *t > frozen_at && *t < resumed_at),
        "the page polled while frozen ({frozen_at}..{resumed_at}): {polls:?}"
    );
    assert!(
        polls.iter().any(|t| *t >= resumed_at),
        "the page did not poll after it was resumed: {polls:?}"
    );

    // B leaves: the page is released before C and reaches the origin at the URL it asked for.
    let left = b.send("POST", "/__anteroom/leave", &[], "").await;
    assert_eq!(left.json()["left"], true);
    let took = wait_let_in(
        &browser,
        "origin:/tickets",
        Duration::from_secs(10),
        "of B leaving, with the page at the front",
    )
    .await;
    eprintln!("let in {took:?} after B left");
    assert_eq!(browser.current_url().await.unwrap().path(), "/tickets");

    // C still waits, first in line now, and was never let in. (Its poller stops first: two
    // pollers of one session would keep meeting the floor the other just set.)
    c_task.abort();
    let last = status(&c).await;
    assert_eq!(last["state"], "queued", "{last}");
    assert_eq!(last["position"], 1, "{last}");
    let answers = c_seen.lock().clone();
    assert!(
        answers.iter().all(|j| j["state"] == "queued"),
        "C was let in: {answers:?}"
    );
    let paths: Vec<String> = origin.seen.lock().iter().map(|s| s.path.clone()).collect();
    let b_in = paths.iter().position(|p| p == "/b/in").expect("B came in");
    let page_in = paths
        .iter()
        .position(|p| p == "/tickets")
        .expect("the page came in");
    assert!(b_in < page_in, "{paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("/c")), "{paths:?}");

    browser.close().await.unwrap();
}

/// A visitor who arrives during an event's pre-queue sees the countdown and no place; after the
/// start, a place; when released, the site at the URL asked for.
#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn a_prequeue_visitor_sees_the_countdown_then_a_place_then_the_site() {
    let origin = Origin::start().await;
    let rfc3339 = |ms: u64| rfc3339_at(ms, 0);
    let pre = (unix_ms() + 1_500).div_ceil(1000) * 1000;
    let starts = pre + 6_000;
    let config = base_config("50ms")
        + &room(
            "shop",
            HOST,
            &origin.url(),
            &format!(
                "active_users = 1\nsession_ttl = \"1m\"\nabandon_after = \"1m\"\n\
                 [[room.event]]\nname = \"drop\"\nprequeue_from = \"{}\"\nstarts_at = \"{}\"\nends_at = \"{}\"\n",
                rfc3339(pre),
                rfc3339(starts),
                rfc3339(starts + 600_000)
            ),
        );
    let gw = Gateway::start(&config).await;
    // Before the pre-queue someone takes the only slot.
    let mut first = gw.client(HOST);
    assert_eq!(first.get("/", BROWSER).await.body, "origin:/");
    // The browser is up before the pre-queue opens (a busy machine takes seconds to start one),
    // so the page is seen well before the start.
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    tokio::time::sleep(Duration::from_millis(pre.saturating_sub(unix_ms()) + 100)).await;
    browser
        .goto(&format!("http://{}/tickets/7", gw.addr))
        .await
        .unwrap();
    let shown = |id: &'static str| {
        let browser = browser.clone();
        async move {
            browser
                .execute(
                    &format!("var e = document.getElementById('{id}'); return !!e && !e.hidden;"),
                    vec![],
                )
                .await
                .unwrap()
                .as_bool()
                .unwrap_or(false)
        }
    };
    let text = body_text(&browser).await;
    assert!(shown("prequeue").await, "no countdown:\n{text}");
    assert!(text.contains("The line opens at"), "{text}");
    assert!(
        !shown("wait-line").await,
        "an estimate before the start:\n{text}"
    );
    // The countdown ticks (the page's script runs under its policy).
    let countdown = browser.find(Locator::Id("countdown")).await.unwrap();
    assert!(
        countdown.text().await.unwrap().contains("(in "),
        "{}",
        body_text(&browser).await
    );

    // After the start: a place, asked for by the page itself, and no countdown.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let num = browser.find(Locator::Id("where-num")).await.unwrap();
        let lead = browser.find(Locator::Id("where-lead")).await.unwrap();
        if lead.text().await.unwrap().contains("number") {
            assert_eq!(num.text().await.unwrap().trim(), "1");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no place after the start:\n{}",
            body_text(&browser).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!shown("prequeue").await, "{}", body_text(&browser).await);

    // The slot frees: the page takes the visitor to the site.
    let left = first.send("POST", "/__anteroom/leave", &[], "").await;
    assert_eq!(left.status, 200);
    wait_let_in(
        &browser,
        "origin:/tickets/7",
        Duration::from_secs(15),
        "of the slot freeing",
    )
    .await;
    browser.close().await.unwrap();
}

/// A room with a join challenge: the page of a new visitor says it is checking the browser,
/// solves a difficulty-12 challenge in its worker, joins through the join endpoint (the
/// cookie lands), reloads with its place, and is let in when the slot frees.
#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn a_page_solves_the_join_challenge_joins_and_is_let_in() {
    let origin = Origin::start().await;
    let keys = "active_users = 1\njoin_challenge = \"pow\"\npow_difficulty = 12\n\
                abandon_after = \"30s\"\nsession_ttl = \"1m\"";
    let config = base_config("50ms") + &room("shop", HOST, &origin.url(), keys);
    let gw = Gateway::start(&config).await;
    // A curl-like visitor solves its own challenge and takes the only slot.
    let mut first = gw.client(HOST);
    let challenge = first.get("/", JSON).await.json()["challenge"].clone();
    let nonce = challenge["nonce"].as_str().unwrap();
    let body = json!({"nonce": nonce, "solution": anteroom::pow::solve(nonce, 12)}).to_string();
    let r = first
        .send("POST", "/__anteroom/join", &[("content-type", JSON)], &body)
        .await;
    assert_eq!(r.json()["state"], "admitted", "{}", r.body);

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    browser
        .goto(&format!("http://{}/tickets/7", gw.addr))
        .await
        .unwrap();

    // The challenge page (or, on a fast machine, already the page with a place after the solve).
    let took = {
        let started = Instant::now();
        loop {
            let place = browser
                .execute(
                    "var r = document.getElementById('room'); \
                     return r ? r.dataset.place || '' : '';",
                    vec![],
                )
                .await
                .unwrap();
            if place.as_str() == Some("1") {
                break started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the page did not solve and join within 20 s:\n{}",
                browser.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    eprintln!("solved and joined in {took:?}");
    // The worker's answers are solutions by the gateway's own check, with either SHA-256 (its
    // own and crypto.subtle's); their pace in this browser is printed for the README's figures.
    for engine in ["js", "subtle"] {
        let pace = browser
            .execute_async(
                "var done = arguments[arguments.length - 1], engine = arguments[0]; \
                 var w = new Worker(document.getElementById('room').dataset.workerUrl); \
                 var i = 0, hashes = 0, ms = 0, solutions = []; \
                 w.onmessage = function (e) { \
                   hashes += e.data.hashes; ms += e.data.ms; solutions.push(e.data.solution); \
                   i += 1; \
                   if (i === 8) return done({ engine: e.data.engine, solutions: solutions, \
                     hashes: hashes, ms: ms, per_second: Math.round(hashes / ms * 1000) }); \
                   w.postMessage({ nonce: 'x'.repeat(77) + i, difficulty: 16, engine: engine }); \
                 }; \
                 w.postMessage({ nonce: 'x'.repeat(77) + i, difficulty: 16, engine: engine });",
                vec![json!(engine)],
            )
            .await
            .unwrap();
        eprintln!(
            "page worker ({engine}), 8 challenges of difficulty 16: {} hashes in {} ms, {} per second",
            pace["hashes"], pace["ms"], pace["per_second"]
        );
        assert_eq!(pace["engine"], engine, "{pace}");
        let solutions = pace["solutions"].as_array().unwrap();
        for (i, s) in solutions.iter().enumerate() {
            let nonce = format!("{}{i}", "x".repeat(77));
            assert!(
                anteroom::pow::solves(&nonce, s.as_str().unwrap(), 16),
                "{engine}: {s} does not solve {nonce}"
            );
        }
    }
    let num = browser.find(Locator::Id("where-num")).await.unwrap();
    assert_eq!(num.text().await.unwrap().trim(), "1");
    let cookies = browser.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().any(|c| c.name() == "anteroom_shop"),
        "the join's cookie landed: {cookies:?}"
    );
    assert!(
        !origin.seen.lock().iter().any(|s| s.path == "/tickets/7"),
        "the origin saw a queued visitor"
    );

    // The slot frees: the page's poll lets the browser in.
    assert_eq!(
        first
            .send("POST", "/__anteroom/leave", &[], "")
            .await
            .status,
        200
    );
    let took = wait_let_in(
        &browser,
        "origin:/tickets/7",
        Duration::from_secs(15),
        "of the slot freeing",
    )
    .await;
    eprintln!("let in {took:?} after the slot freed");
    browser.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn a_german_browser_gets_the_german_page_and_german_times() {
    // A short session_ttl: a short estimated wait, so the page polls every few seconds.
    let (_origin, gw, _first) =
        full_room("active_users = 1\nabandon_after = \"30s\"\nsession_ttl = \"20s\"").await;
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser_in(profile.path(), Some("de")).await;
    browser
        .goto(&format!("http://{}/tickets", gw.addr))
        .await
        .unwrap();
    let lang = browser
        .execute("return document.documentElement.lang;", vec![])
        .await
        .unwrap();
    assert_eq!(lang, "de", "{}", browser.source().await.unwrap_or_default());
    // The script has answered at least once: its time carries milliseconds, the server's not.
    let started = Instant::now();
    loop {
        let at = browser
            .execute(
                "return document.getElementById('updated').getAttribute('datetime');",
                vec![],
            )
            .await
            .unwrap();
        if at.as_str().is_some_and(|s| s.contains('.')) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no poll answered: {at}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = body_text(&browser).await;
    assert!(
        text.contains("Sie sind Nummer 1 in der Warteschlange"),
        "{text}"
    );
    assert!(text.contains("Geschätzte Wartezeit:"), "{text}");
    let wait = browser
        .find(Locator::Id("wait"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ["weniger als eine Minute", "etwa", "wird berechnet"]
            .iter()
            .any(|w| wait.contains(w)),
        "{wait:?}"
    );
    // Times of day as German readers write them (24 hours, no AM/PM), by the page's language.
    let shown = browser
        .find(Locator::Id("updated"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let german = browser
        .execute(
            "var t = document.getElementById('updated').getAttribute('datetime');\
             return new Intl.DateTimeFormat('de', {hour: '2-digit', minute: '2-digit', second: '2-digit'})\
             .format(new Date(t));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        shown,
        german.as_str().unwrap(),
        "the time is not formatted for de"
    );
    assert!(!shown.contains('M') && shown.len() == 8, "{shown:?}");
}

/// A queued page in a room whose one slot frees, `limits` added to `[limits]`: how long after
/// the slot freed the browser was on the origin's page.
async fn let_in_after_the_slot_frees(limits: &str) -> Duration {
    let keys = "active_users = 1\nabandon_after = \"30s\"\nsession_ttl = \"1m\"";
    let (_origin, gw, mut first) = full_room_with(limits, keys).await;
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    browser
        .goto(&format!("http://{}/tickets/7", gw.addr))
        .await
        .unwrap();
    assert!(body_text(&browser).await.contains("in line"));
    // Past the stream's first event and its one-second pace (and the page's first poll).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let left = first.send("POST", "/__anteroom/leave", &[], "").await;
    assert_eq!(left.json()["left"], true);
    let took = wait_let_in(
        &browser,
        "origin:/tickets/7",
        Duration::from_secs(15),
        "of the slot freeing",
    )
    .await;
    browser.close().await.unwrap();
    took
}

#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn the_event_stream_lets_a_queued_page_in_within_a_second() {
    let took = let_in_after_the_slot_frees("").await;
    eprintln!("pushed: let in {took:?} after the slot freed");
    // Polling near the front asks every 2 s or so; the stream says it at the next tick.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn a_page_refused_a_stream_polls_and_is_let_in() {
    // No stream is ever open: the page's EventSource fails at once and it polls instead.
    let took = let_in_after_the_slot_frees("max_event_streams = 0").await;
    eprintln!("polled: let in {took:?} after the slot freed");
}

/// A page of another origin (a test server on its own port) whose script joins the room at
/// `gateway` and asks its status with the token, as an app would; it leaves `window.__result`.
async fn app_page(gateway: SocketAddr) -> SocketAddr {
    let script = format!(
        "<!doctype html><title>app</title><script>\
         var g = 'http://{gateway}/__anteroom/';\
         fetch(g + 'join', {{ method: 'POST' }}).then(function (r) {{ return r.json(); }})\
         .then(function (j) {{ return fetch(g + 'status', {{ headers: {{ 'Anteroom-Token': j.token }} }}); }})\
         .then(function (r) {{ return r.json(); }})\
         .then(function (j) {{ window.__result = 'ok:' + j.state; }})\
         .catch(function (e) {{ window.__result = 'failed:' + e; }});\
         </script>"
    );
    serve_http(move |_req| {
        let page = script.clone();
        async move {
            let mut resp = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(page)));
            resp.headers_mut()
                .insert("content-type", http::HeaderValue::from_static("text/html"));
            resp
        }
    })
    .await
}

/// What the app page's script ended with.
async fn app_result(browser: &Browser) -> String {
    let started = Instant::now();
    loop {
        let v = browser
            .execute("return window.__result || null;", vec![])
            .await
            .unwrap();
        if let Some(s) = v.as_str() {
            return s.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the app page did nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[ignore = "needs Chromium and ChromeDriver; .ci/run installs them and runs it"]
async fn an_allowed_origin_calls_join_and_status_another_cannot() {
    let origin = Origin::start().await;
    // The gateway's port must be known to the pages, and the allowed page's origin to the room.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw_addr = listener.local_addr().unwrap();
    drop(listener);
    let allowed = app_page(gw_addr).await;
    let other = app_page(gw_addr).await;
    let config = base_config("50ms").replace("127.0.0.1:0", &gw_addr.to_string())
        + &room(
            "shop",
            HOST,
            &origin.url(),
            &format!("active_users = 1\ncors_origins = [\"http://{allowed}\"]"),
        );
    let gw = Gateway::start(&config).await;
    // The one slot is taken: the app waits in line.
    let mut first = gw.client(HOST);
    assert_eq!(first.get("/", BROWSER).await.body, "origin:/");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    browser.goto(&format!("http://{allowed}/")).await.unwrap();
    assert_eq!(app_result(&browser).await, "ok:queued");
    browser.goto(&format!("http://{other}/")).await.unwrap();
    let refused = app_result(&browser).await;
    assert!(refused.starts_with("failed:"), "{refused}");
    browser.close().await.unwrap();
}
