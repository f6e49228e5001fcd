//! A real browser in the waiting room: headless Chromium, driven through ChromeDriver, waits on
//! the real waiting page until the page's own polling lets it through to the origin.

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
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
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
                ],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("no Chromium session from {}: {e}", self.url))
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
    let origin = Origin::start().await;
    let config = base_config("50ms") + &room("shop", HOST, &origin.url(), keys);
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
