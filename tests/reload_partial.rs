//! A `gateway.toml` written in place in pieces (a shell redirection, a deploy tool streaming the
//! file) is never applied half way: no room disappears while the rest of the file is on its way.
//! A room really removed from the file still goes, once the file has settled, and a removal
//! that strands waiting visitors is counted.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use support::*;

fn config(rooms: &str) -> String {
    format!(
        "tick = \"50ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[limits]\norigin_response_timeout = \"1s\"\norigin_connect_timeout = \"1s\"\n\n{rooms}"
    )
}

fn file(gw: &Gateway) -> std::path::PathBuf {
    gw.dir.path().join("gateway.toml")
}

/// Truncates the file and writes `text` in two writes `pause` apart, split at `at`.
async fn write_in_two(path: &std::path::Path, text: &str, at: usize, pause: Duration) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&text.as_bytes()[..at]).unwrap();
    tokio::time::sleep(pause).await;
    f.write_all(&text.as_bytes()[at..]).unwrap();
}

/// The client tasks, how many answers they got, and the answers that were not the origin's.
type Traffic = (
    Vec<tokio::task::JoinHandle<()>>,
    Arc<AtomicUsize>,
    Arc<Mutex<Vec<String>>>,
);

/// A visitor of each host asking again and again; every answer that is not the origin's is kept.
fn traffic(gw: &Gateway, hosts: &[&str], stop: Arc<AtomicBool>) -> Traffic {
    let served = Arc::new(AtomicUsize::new(0));
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let tasks = hosts
        .iter()
        .map(|host| {
            let (stop, served, wrong) = (stop.clone(), served.clone(), wrong.clone());
            let mut c = gw.client(host);
            let host = host.to_string();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = c.get("/", JSON).await;
                    served.fetch_add(1, Ordering::Relaxed);
                    if r.status != 200 || r.body != "origin:/" {
                        wrong
                            .lock()
                            .push(format!("{host}: {} {}", r.status, r.body));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    (tasks, served, wrong)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_in_pieces_never_removes_a_room_on_the_way() {
    let origin = Origin::start().await;
    let url = origin.url();
    let text = |round: usize| {
        let alpha = room("alpha", "alpha.test", &url, "active_users = 100");
        let beta = room(
            "beta",
            "beta.test",
            &url,
            &format!("active_users = 100\nmessage = \"round {round}\""),
        );
        config(&format!("{alpha}{beta}"))
    };
    let gw = Gateway::start(&text(0)).await;
    let admin = Admin::of(&gw);
    let stop = Arc::new(AtomicBool::new(false));
    let (tasks, served, wrong) = traffic(&gw, &["alpha.test", "beta.test"], stop.clone());

    for round in 1..=6 {
        let full = text(round);
        let second = full.rfind("[[room]]").unwrap();
        let beta_hosts = full.rfind("hosts = ").unwrap() + 12;
        let first_hosts = full.find("hosts = ").unwrap() + 5;
        // Before the second room (valid TOML, one room short), inside the second room's hosts
        // (broken), after its name (a room without hosts), inside the first room (broken).
        let (at, pause_ms) = match round {
            1 => (second, 300),
            2 => (beta_hosts, 300),
            3 => (second, 450),
            4 => (second + "[[room]]\nname = \"beta\"\n".len(), 300),
            5 => (first_hosts, 450),
            _ => (second, 300),
        };
        write_in_two(&file(&gw), &full, at, Duration::from_millis(pause_ms)).await;
        let want = format!("round {round}");
        wait_until(LIMIT, &format!("round {round} applied"), || async {
            let r = admin.send("GET", "/api/v1/rooms/beta", "").await;
            (r.status == 200 && r.json()["message"] == want.as_str()).then_some(())
        })
        .await;
        assert_eq!(admin.room("alpha").await["active_users"], 100);
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let wrong = std::mem::take(&mut *wrong.lock());
    assert!(
        wrong.is_empty(),
        "{} of {} answers were not the origin's, e.g. {:?}",
        wrong.len(),
        served.load(Ordering::Relaxed),
        &wrong[..wrong.len().min(5)]
    );
    assert!(served.load(Ordering::Relaxed) > 100, "traffic flowed");
}

#[tokio::test]
async fn a_room_removed_from_the_file_goes_once_the_file_settles_and_is_counted() {
    let origin = Origin::start().await;
    let url = origin.url();
    let extra = "active_users = 1\nabandon_after = \"30s\"";
    let keep = room("stay", "stay.test", &url, extra);
    let gone = room("leaving", "leaving.test", &url, extra);
    let gw = Gateway::start(&config(&format!("{keep}{gone}"))).await;
    let admin = Admin::of(&gw);
    let removed = "anteroom_rooms_removed_total";
    let with_visitors = [("waiting", "true")];
    let before = admin.metric(removed, &with_visitors).await.unwrap_or(0.0);

    // Someone admitted and someone in line in the room about to go.
    let (_, r) = visit(&gw, "leaving.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, r) = visit(&gw, "leaving.test").await;
    assert_eq!(r.status, 429, "{}", r.body);

    std::fs::write(file(&gw), config(&keep)).unwrap();
    wait_until(LIMIT, "the room removed", || async {
        let (_, r) = visit(&gw, "leaving.test").await;
        (r.status == 421).then_some(())
    })
    .await;
    assert_eq!(
        admin.send("GET", "/api/v1/rooms/leaving", "").await.status,
        404
    );
    let (_, r) = visit(&gw, "stay.test").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = admin.metric(removed, &with_visitors).await.unwrap_or(0.0);
    assert_eq!(after, before + 1.0, "removal with visitors counted");
}
