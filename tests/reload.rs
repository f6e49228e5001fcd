//! Hot reload of `gateway.toml`: edits on disk (in place or by an editor's rename) and
//! `POST /api/v1/reload` apply without losing a queue, a session or a request; a broken file
//! changes nothing and is reported in `/api/v1/config` and `/metrics`; rooms come and go by name.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde_json::{Value, json};
use support::*;
use tokio::sync::RwLock;

/// `anteroom_config_last_reload_successful` is one process-wide gauge: the test that asserts it
/// runs alone (write), the others, which all reload successfully, share (read).
static RELOADS: RwLock<()> = RwLock::const_new(());

/// A gateway config with the admin listener on and no admin token (loopback is served).
fn config(rooms: &str) -> String {
    format!(
        "tick = \"20ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[limits]\norigin_response_timeout = \"1s\"\norigin_connect_timeout = \"1s\"\n\n{rooms}"
    )
}

fn file(gw: &Gateway) -> std::path::PathBuf {
    gw.dir.path().join("gateway.toml")
}

/// One admitted visitor and `n` queued at places 1..=n.
async fn fill(gw: &Gateway, host: &str, n: u64) -> (Client, Vec<Client>) {
    let (first, r) = visit(gw, host).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut waiting = Vec::new();
    for place in 1..=n {
        let (c, r) = visit(gw, host).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.json()["position"], place);
        waiting.push(c);
    }
    (first, waiting)
}

fn names(rooms: &Value) -> Vec<String> {
    let mut names: Vec<String> = rooms["rooms"]
        .as_array()
        .expect("rooms array")
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn raising_capacity_on_disk_releases_the_waiting_and_keeps_the_line() {
    let _shared = RELOADS.read().await;
    let origin = Origin::start().await;
    let rooms = |cap: u32| {
        let extra = format!("active_users = {cap}\nabandon_after = \"30s\"");
        room("grow", "grow.test", &origin.url(), &extra)
    };
    let gw = Gateway::start(&config(&rooms(1))).await;
    let admin = Admin::of(&gw);
    let (mut first, waiting) = fill(&gw, "grow.test", 3).await;

    std::fs::write(file(&gw), config(&rooms(3))).unwrap();
    // Two slots opened: the first two in line are released, the third moves to the front.
    wait_state(&waiting[0], "released").await;
    wait_state(&waiting[1], "released").await;
    let j = status(&waiting[2]).await;
    assert_eq!(j["state"], "queued", "{j}");
    assert_eq!(j["position"], 1, "{j}");
    let room = admin.room("grow").await;
    assert_eq!(room["active_users"], 3);
    assert_eq!(room["file"]["active_users"], 3);
    assert_eq!(admin.config().await["last_reload"]["result"], "ok");

    // The admitted visitor kept the session across the reload.
    let r = first.get("/still-in", JSON).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "origin:/still-in");
    assert!(r.header("set-cookie").is_none(), "no new session");
    let r = first.send("POST", "/__anteroom/leave", &[], "").await;
    assert_eq!(r.json()["left"], true);
    wait_state(&waiting[2], "released").await;
}

#[tokio::test]
async fn an_editor_style_save_by_rename_is_picked_up_every_time() {
    let _shared = RELOADS.read().await;
    let origin = Origin::start().await;
    // A short release window keeps polls frequent (poll_after is at most a third of it), so the
    // wait below is for the reload, not for a poll floor.
    let rooms = |extra: &str| {
        let extra = format!("abandon_after = \"30s\"\nrelease_window = \"6s\"\n{extra}");
        room("swap", "swap.test", &origin.url(), &extra)
    };
    let gw = Gateway::start(&config(&rooms("active_users = 1"))).await;
    let admin = Admin::of(&gw);
    let (_first, waiting) = fill(&gw, "swap.test", 2).await;
    let save = |text: String| {
        let tmp = gw.dir.path().join(".gateway.toml.swp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, file(&gw)).unwrap();
    };

    save(config(&rooms("active_users = 3")));
    for c in &waiting {
        wait_state(c, "released").await;
    }
    // A second save replaces the file again (a new inode): still noticed.
    save(config(&rooms(
        "active_users = 3\nmessage = \"second save\"",
    )));
    wait_until(LIMIT, "the second save", || async {
        (admin.room("swap").await["message"] == "second save").then_some(())
    })
    .await;
    assert_eq!(status(&waiting[0]).await["message"], "second save");
}

#[tokio::test]
async fn a_broken_file_keeps_the_old_config_serving_and_is_reported() {
    let _alone = RELOADS.write().await;
    let origin = Origin::start().await;
    let rooms = |extra: &str| {
        let extra = format!("abandon_after = \"30s\"\n{extra}");
        room("fragile", "fragile.test", &origin.url(), &extra)
    };
    let gw = Gateway::start(&config(&rooms("active_users = 1"))).await;
    let admin = Admin::of(&gw);
    let (mut first, waiting) = fill(&gw, "fragile.test", 1).await;
    let errors = [("result", "error")];
    let oks = [("result", "ok")];
    let reloads = "anteroom_config_reloads_total";
    let errors_before = admin.metric(reloads, &errors).await.unwrap_or(0.0);
    let oks_before = admin.metric(reloads, &oks).await.unwrap_or(0.0);

    // A wrong type, picked up by the file watch.
    let broken = config(&rooms("active_users = \"lots\""));
    let line = 1 + broken
        .lines()
        .position(|l| l.starts_with("active_users"))
        .unwrap();
    std::fs::write(file(&gw), &broken).unwrap();
    let j = admin.wait_reload("error").await;
    assert!(j["file"].as_str().unwrap().ends_with("gateway.toml"), "{j}");
    let last = &j["last_reload"];
    let at = last["at"].as_str().expect("at");
    assert!(at.len() >= 20 && &at[10..11] == "T", "RFC 3339: {at}");
    let list = last["errors"].as_array().expect("errors");
    let e = list
        .iter()
        .find(|e| e["key"].as_str().unwrap_or("").contains("active_users"))
        .unwrap_or_else(|| panic!("no error names active_users: {last}"));
    assert!(e["file"].as_str().unwrap().ends_with("gateway.toml"), "{e}");
    assert_eq!(e["line"], line, "{e}");
    assert_eq!(e["key"], "room[0].active_users", "{e}");
    assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");

    // The old config keeps serving: same capacity, same line.
    let r = first.get("/", JSON).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "origin:/"));
    let j = status(&waiting[0]).await;
    assert_eq!((&j["state"], &j["position"]), (&json!("queued"), &json!(1)));
    let (_late, r) = visit(&gw, "fragile.test").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["position"], 2);
    assert_eq!(admin.room("fragile").await["active_users"], 1);

    // Asked directly: 422 with the same error; a syntax error is located too.
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let j = r.json();
    assert_eq!(j["result"], "error");
    assert!(
        j["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == "room[0].active_users" && e["line"] == line),
        "{j}"
    );
    std::fs::write(file(&gw), broken.replace("[[room]]", "[[room]")).unwrap();
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let j = r.json();
    let e = &j["errors"][0];
    assert!(e["file"].as_str().unwrap().ends_with("gateway.toml"), "{j}");
    assert!(e["line"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(first.get("/", JSON).await.status, 200, "still serving");

    let n = admin.metric(reloads, &errors).await.unwrap_or(0.0);
    assert!(
        n >= errors_before + 3.0,
        "errors counted: {errors_before} -> {n}"
    );
    let gauge = "anteroom_config_last_reload_successful";
    assert_eq!(admin.metric(gauge, &[]).await, Some(0.0));

    // A good file restores "ok" and the gauge, and applies; the line is still there.
    std::fs::write(
        file(&gw),
        config(&rooms("active_users = 1\nmessage = \"fixed\"")),
    )
    .unwrap();
    let j = admin.wait_reload("ok").await;
    let last = &j["last_reload"];
    assert!(
        last["errors"].as_array().is_none_or(|e| e.is_empty()),
        "{j}"
    );
    assert_eq!(last["needs_restart"], json!([]), "{j}");
    assert_eq!(admin.metric(gauge, &[]).await, Some(1.0));
    let n = admin.metric(reloads, &oks).await.unwrap_or(0.0);
    assert!(n > oks_before, "ok counted: {oks_before} -> {n}");
    let j = status(&waiting[0]).await;
    assert_eq!(j["position"], 1, "{j}");
    assert_eq!(j["message"], "fixed", "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_reloads_under_traffic_lose_no_request() {
    let _shared = RELOADS.read().await;
    let origin = Origin::start().await;
    let rooms = |message: &str| {
        let extra = format!("active_users = 2\nabandon_after = \"30s\"\nmessage = \"{message}\"");
        room("churn", "churn.test", &origin.url(), &extra)
    };
    let (one, two) = (config(&rooms("one")), config(&rooms("two")));
    let gw = Gateway::start(&one).await;
    let admin = Admin::of(&gw);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let wrong = Arc::new(Mutex::new(Vec::<String>::new()));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (stop, sent, wrong) = (stop.clone(), sent.clone(), wrong.clone());
            let base = gw.client("churn.test");
            tokio::spawn(async move {
                // A regular who keeps coming back (admitted or waiting) and a newcomer each round.
                let mut regular = base.clone();
                let mut answers = [0usize; 2];
                while !stop.load(Ordering::Relaxed) {
                    let mut newcomer = base.clone();
                    for c in [&mut regular, &mut newcomer] {
                        let r = c.get("/", JSON).await;
                        sent.fetch_add(1, Ordering::Relaxed);
                        match r.status.as_u16() {
                            200 if r.body == "origin:/" => answers[0] += 1,
                            429 if ["one", "two"]
                                .contains(&r.json()["message"].as_str().unwrap_or("")) =>
                            {
                                answers[1] += 1
                            }
                            _ => wrong.lock().push(format!("{}: {}", r.status, r.body)),
                        }
                    }
                }
                answers
            })
        })
        .collect();

    for i in 0..100 {
        let before = sent.load(Ordering::Relaxed);
        std::fs::write(file(&gw), if i % 2 == 0 { &two } else { &one }).unwrap();
        let r = admin.send("POST", "/api/v1/reload", "").await;
        assert_eq!(r.status, 200, "reload {i}: {}", r.body);
        let j = r.json();
        assert_eq!(j["result"], "ok", "reload {i}: {j}");
        assert_eq!(j["needs_restart"], json!([]), "reload {i}: {j}");
        // Traffic keeps flowing between reloads.
        wait_until(LIMIT, "a request between reloads", || {
            let sent = sent.clone();
            async move { (sent.load(Ordering::Relaxed) > before).then_some(()) }
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers = [0usize; 2];
    for t in tasks {
        let a = t.await.unwrap();
        answers[0] += a[0];
        answers[1] += a[1];
    }
    let wrong = std::mem::take(&mut *wrong.lock());
    assert!(
        wrong.is_empty(),
        "{} wrong answers, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert!(
        answers[0] > 0 && answers[1] > 0,
        "both answers seen: {answers:?}"
    );
    assert_eq!(answers[0] + answers[1], sent.load(Ordering::Relaxed));
    assert_eq!(
        admin.room("churn").await["message"],
        "one",
        "the last file is in force"
    );
}

#[tokio::test]
async fn a_removed_room_is_misdirected_and_a_new_room_starts_empty() {
    let _shared = RELOADS.read().await;
    let origin = Origin::start().await;
    let url = origin.url();
    let extra = "active_users = 1\nabandon_after = \"30s\"";
    let keep = room("keep", "keep.test", &url, extra);
    let gone = room("gone", "gone.test", &url, extra);
    let fresh = room("fresh", "fresh.test", &url, extra);
    let gw = Gateway::start(&config(&format!("{keep}{gone}"))).await;
    let admin = Admin::of(&gw);
    let (mut kept, waiting) = fill(&gw, "keep.test", 1).await;
    let (mut leaving, _) = fill(&gw, "gone.test", 0).await;

    std::fs::write(file(&gw), config(&format!("{keep}{fresh}"))).unwrap();
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["needs_restart"], json!([]));

    assert_eq!(leaving.get("/", JSON).await.status, 421, "with a session");
    let (_, r) = visit(&gw, "gone.test").await;
    assert_eq!(r.status, 421, "a newcomer");
    assert_eq!(
        admin.send("GET", "/api/v1/rooms/gone", "").await.status,
        404
    );
    let r = admin.send("GET", "/api/v1/rooms", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(names(&r.json()), ["fresh", "keep"]);

    let live = &admin.room("fresh").await["live"];
    for k in ["queue_depth", "active", "released", "joined_total"] {
        assert_eq!(live[k], 0, "{k}: {live}");
    }
    let (_, r) = visit(&gw, "fresh.test").await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "origin:/"));

    // The kept room kept its session and its line.
    assert_eq!(kept.get("/", JSON).await.status, 200);
    let j = status(&waiting[0]).await;
    assert_eq!((&j["state"], &j["position"]), (&json!("queued"), &json!(1)));
}

#[tokio::test]
async fn a_listener_change_waits_for_a_restart_while_the_rest_applies() {
    let _shared = RELOADS.read().await;
    let origin = Origin::start().await;
    let rooms = |message: &str| {
        let extra = format!("active_users = 1\nmessage = \"{message}\"");
        room("moving", "moving.test", &origin.url(), &extra)
    };
    let gw = Gateway::start(&config(&rooms("before"))).await;
    let admin = Admin::of(&gw);
    let moved = config(&rooms("after")).replace("http = \"127.0.0.1:0\"", "http = \"127.0.0.1:1\"");
    std::fs::write(file(&gw), moved).unwrap();
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["result"], "ok");
    assert_eq!(j["needs_restart"], json!(["listen.http"]), "{j}");
    let last = &admin.config().await["last_reload"];
    assert_eq!(last["needs_restart"], json!(["listen.http"]), "{last}");

    // Still listening where it was, with the new message.
    assert_eq!(admin.room("moving").await["message"], "after");
    let (_, r) = visit(&gw, "moving.test").await;
    assert_eq!(r.status, 200);
}
