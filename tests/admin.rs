//! The admin API on the admin listener: bearer token and Host checks, JSON-only bodies and no
//! CORS, per-room overrides (enabled, paused, active_users, message) applied at once and dropped
//! again, bad patches refused whole, and live figures that agree with `/metrics`.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

/// A gateway config with the admin listener on; `admin` is an optional `[admin]` table.
fn config(admin: &str, rooms: &str) -> String {
    format!(
        "tick = \"20ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n{admin}[limits]\norigin_response_timeout = \"1s\"\norigin_connect_timeout = \"1s\"\n\n{rooms}"
    )
}

/// One room named `name` at host `<name>.test`, no admin token.
async fn one_room(origin: &Origin, name: &str, extra: &str) -> (Gateway, Admin) {
    start(origin, name, "", extra).await
}

/// One room named `name` at host `<name>.test`; `admin` is an optional `[admin]` table.
async fn start(origin: &Origin, name: &str, admin: &str, extra: &str) -> (Gateway, Admin) {
    start_env(origin, name, admin, extra, &[]).await
}

async fn start_env(
    origin: &Origin,
    name: &str,
    admin: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> (Gateway, Admin) {
    let rooms = room(name, &format!("{name}.test"), &origin.url(), extra);
    let gw = Gateway::start_with_env(&config(admin, &rooms), env).await;
    let admin = Admin::of(&gw);
    (gw, admin)
}

#[tokio::test]
async fn a_configured_token_guards_the_api_but_not_metrics_or_health() {
    const VAR: &str = "ANTEROOM_TEST_ADMIN_TOKEN_AUTH";
    const TOKEN: &str = "s3cret-auth-token";
    let origin = Origin::start().await;
    let table = format!("[admin]\ntoken_env = \"{VAR}\"\n\n");
    let env = [(VAR, TOKEN)];
    let (_gw, mut admin) = start_env(&origin, "auth-room", &table, "active_users = 1", &env).await;

    let refused: [&[(&str, &str)]; 5] = [
        &[],
        &[("authorization", "Bearer wrong")],
        &[("authorization", "Bearer s3cret-auth")],
        &[("authorization", TOKEN)],
        &[("authorization", "Basic czNjcmV0LWF1dGgtdG9rZW4=")],
    ];
    for headers in refused {
        for path in ["/api/v1/rooms", "/api/v1/rooms/auth-room", "/api/v1/config"] {
            let r = admin.raw("GET", path, headers, "").await;
            assert_eq!(r.status, 401, "GET {path} with {headers:?}: {}", r.body);
            assert_eq!(r.json(), json!({"error": "unauthorized"}), "{path}");
            assert!(!r.body.contains("auth-room"), "{path}: {}", r.body);
        }
    }
    let wrong = [("authorization", "Bearer wrong"), ("content-type", JSON)];
    let path = "/api/v1/rooms/auth-room";
    let r = admin
        .raw("PATCH", path, &wrong, r#"{"paused": true}"#)
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = admin.raw("POST", "/api/v1/reload", &[], "").await;
    assert_eq!(r.status, 401, "{}", r.body);

    admin.token = Some(TOKEN.to_string());
    let r = admin.send("GET", "/api/v1/rooms", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["rooms"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.json()["rooms"][0]["name"], "auth-room");
    let j = admin.room("auth-room").await;
    assert_eq!(j["paused"], false, "the refused PATCH changed nothing");
    assert_eq!(j["overrides"], json!({}));

    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = admin.raw("GET", path, &[], "").await;
        assert_eq!(r.status, 200, "{path} without a token: {}", r.body);
    }

    // A token env var that is set but empty means no token: loopback peers are served.
    const EMPTY: &str = "ANTEROOM_TEST_ADMIN_TOKEN_EMPTY";
    let table = format!("[admin]\ntoken_env = \"{EMPTY}\"\n\n");
    let env = [(EMPTY, "")];
    let (_open, admin) = start_env(&origin, "auth-open", &table, "active_users = 1", &env).await;
    let r = admin.send("GET", "/api/v1/rooms", "").await;
    assert_eq!(r.status, 200, "loopback without a token: {}", r.body);
}

#[tokio::test]
async fn foreign_hosts_non_json_bodies_and_cross_origin_callers_are_refused() {
    let origin = Origin::start().await;
    let (_gw, admin) = one_room(&origin, "guard-room", "active_users = 1").await;
    let port = admin.addr.port();
    let evil = [("origin", "http://evil.example")];
    let mut answers = Vec::new();

    for host in [
        "evil.example:9180".to_string(),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
        "127.0.0.1.nip.io".to_string(),
    ] {
        let r = admin
            .with_host(&host)
            .raw("GET", "/api/v1/rooms", &evil, "")
            .await;
        assert_eq!(r.status, 403, "Host {host}: {}", r.body);
        assert_eq!(r.json(), json!({"error": "host not allowed"}), "{host}");
        assert!(!r.body.contains("guard-room"));
        answers.push(r);
    }
    for host in [
        format!("localhost:{port}"),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        format!("[::1]:{port}"),
    ] {
        let r = admin
            .with_host(&host)
            .raw("GET", "/api/v1/rooms", &[], "")
            .await;
        assert_eq!(r.status, 200, "Host {host}: {}", r.body);
        answers.push(r);
    }

    let body = r#"{"paused": true}"#;
    let path = "/api/v1/rooms/guard-room";
    let not_json: [&[(&str, &str)]; 3] = [
        &[("content-type", "text/plain"), evil[0]],
        &[("content-type", "application/x-www-form-urlencoded")],
        &[],
    ];
    for headers in not_json {
        let r = admin.raw("PATCH", path, headers, body).await;
        assert_eq!(r.status, 415, "PATCH with {headers:?}: {}", r.body);
        answers.push(r);
    }
    let text = [("content-type", "text/plain")];
    let r = admin.raw("POST", "/api/v1/reload", &text, "x").await;
    assert_eq!(r.status, 415, "reload with a text body: {}", r.body);
    answers.push(r);
    let j = admin.room("guard-room").await;
    assert_eq!(j["paused"], false, "a refused body changed nothing");
    assert_eq!(j["overrides"], json!({}));

    // Parameters on the JSON media type are fine.
    let utf8 = [("content-type", "application/json; charset=utf-8")];
    let r = admin
        .raw("PATCH", path, &utf8, r#"{"message": "hi"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["overrides"], json!({"message": "hi"}));
    answers.push(r);

    // A browser preflight from another origin gets no permission either.
    let preflight = [
        evil[0],
        ("access-control-request-method", "PATCH"),
        ("access-control-request-headers", "content-type"),
    ];
    answers.push(admin.raw("OPTIONS", path, &preflight, "").await);
    let r = admin.raw("GET", path, &evil, "").await;
    assert_eq!(r.status, 200);
    answers.push(r);
    for r in &answers {
        for h in [
            "access-control-allow-origin",
            "access-control-allow-methods",
        ] {
            assert!(r.header(h).is_none(), "{h} on a {} answer", r.status);
        }
    }
}

#[tokio::test]
async fn disabling_the_room_lets_the_queue_straight_through() {
    let origin = Origin::start().await;
    let extra = "active_users = 1\nabandon_after = \"30s\"";
    let (gw, admin) = one_room(&origin, "off-room", extra).await;
    let (_a, r) = visit(&gw, "off-room.test").await;
    assert_eq!(r.status, 200);
    let (mut b, r) = visit(&gw, "off-room.test").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["position"], 1);

    let j = admin.patch_ok("off-room", r#"{"enabled": false}"#).await;
    assert_eq!(j["enabled"], false);
    assert_eq!(j["file"]["enabled"], true);
    assert_eq!(j["overrides"], json!({"enabled": false}));

    let r = b.get("/after", JSON).await;
    assert_eq!(r.status, 200, "the queued visitor is forwarded: {}", r.body);
    assert_eq!(r.body, "origin:/after");
    let (_c, r) = visit(&gw, "off-room.test").await;
    assert_eq!(r.status, 200, "so is a newcomer");
    assert_eq!(r.body, "origin:/");
    assert_eq!(origin.count(), 3);
}

#[tokio::test]
async fn pausing_holds_every_place_and_resuming_releases_them() {
    let origin = Origin::start().await;
    let extra = "active_users = 3\nabandon_after = \"30s\"";
    let (gw, admin) = one_room(&origin, "pause-room", extra).await;
    let (mut a, r) = visit(&gw, "pause-room.test").await;
    assert_eq!(r.status, 200);

    let j = admin.patch_ok("pause-room", r#"{"paused": true}"#).await;
    assert_eq!(j["paused"], true);
    assert_eq!(j["file"]["paused"], false);
    assert_eq!(j["overrides"], json!({"paused": true}));

    // Two slots are free, yet newcomers wait.
    let (b, r) = visit(&gw, "pause-room.test").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["state"], "paused");
    assert_eq!(r.json()["position"], 1);
    let (c, r) = visit(&gw, "pause-room.test").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["position"], 2);
    assert_eq!(
        a.get("/", JSON).await.status,
        200,
        "the admitted stay admitted"
    );

    // Some ticks later nobody has moved.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (who, place) in [(&b, 1), (&c, 2)] {
        let j = status(who).await;
        assert_eq!(j["state"], "paused", "{j}");
        assert_eq!(j["position"], place, "{j}");
    }
    let live = &admin.room("pause-room").await["live"];
    assert_eq!(live["queue_depth"], 2, "{live}");
    assert_eq!(live["released"], 0, "{live}");

    let j = admin.patch_ok("pause-room", r#"{"paused": false}"#).await;
    assert_eq!(j["paused"], false);
    wait_state(&b, "released").await;
    wait_state(&c, "released").await;
    let mut b = b;
    let r = b.get("/in", JSON).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "origin:/in");
}

#[tokio::test]
async fn capacity_and_message_apply_at_once_and_deleting_overrides_restores_the_file() {
    let origin = Origin::start().await;
    let extra = "active_users = 1\nmessage = \"from the file\"\nabandon_after = \"30s\"";
    let (gw, admin) = one_room(&origin, "cap-room", extra).await;
    let host = "cap-room.test";
    let (_a, r) = visit(&gw, host).await;
    assert_eq!(r.status, 200);

    // Capacity: the very next request sees it.
    let j = admin.patch_ok("cap-room", r#"{"active_users": 2}"#).await;
    assert_eq!(j["active_users"], 2);
    assert_eq!(j["file"]["active_users"], 1);
    assert_eq!(j["overrides"], json!({"active_users": 2}));
    let (_b, r) = visit(&gw, host).await;
    assert_eq!(r.status, 200, "a second slot at once: {}", r.body);
    let (c, r) = visit(&gw, host).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["position"], 1);
    assert_eq!(r.json()["message"], "from the file");

    // Message: the next poll shows it; null drops just that override.
    let j = admin
        .patch_ok("cap-room", r#"{"message": "back at noon"}"#)
        .await;
    assert_eq!(j["message"], "back at noon");
    assert_eq!(j["file"]["message"], "from the file");
    assert_eq!(
        j["overrides"],
        json!({"active_users": 2, "message": "back at noon"})
    );
    assert_eq!(status(&c).await["message"], "back at noon");
    let j = admin.patch_ok("cap-room", r#"{"message": null}"#).await;
    assert_eq!(j["message"], "from the file");
    assert_eq!(j["overrides"], json!({"active_users": 2}));
    assert_eq!(status(&c).await["message"], "from the file");

    // A raise applies from the next tick: the waiting visitor is released.
    admin
        .patch_ok("cap-room", r#"{"active_users": 3, "message": "soon"}"#)
        .await;
    let j = wait_state(&c, "released").await;
    assert_eq!(j["message"], "soon");

    let r = admin
        .send("DELETE", "/api/v1/rooms/cap-room/overrides", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["overrides"], json!({}));
    assert_eq!(j["active_users"], 1);
    assert_eq!(j["message"], "from the file");
    let knobs = "enabled paused active_users admit_per_minute queue message";
    for k in knobs.split(' ') {
        assert_eq!(j[k], j["file"][k], "{k}");
    }
    assert_eq!(admin.room("cap-room").await["overrides"], json!({}));
    assert_eq!(status(&c).await["message"], "from the file");
    let (_d, r) = visit(&gw, host).await;
    assert_eq!(r.status, 429, "capacity is back to 1: {}", r.body);
}

#[tokio::test]
async fn bad_patches_are_refused_whole() {
    let origin = Origin::start().await;
    let (gw, admin) = one_room(&origin, "strict-room", "active_users = 1").await;
    let cases: [(&str, Option<&str>); 10] = [
        ("{not json", None),
        ("[]", None),
        (r#"{"active_users": 0}"#, Some("active_users")),
        (r#"{"active_users": "x"}"#, Some("active_users")),
        (r#"{"admit_per_minute": 1.5}"#, Some("admit_per_minute")),
        (r#"{"enabled": "no"}"#, Some("enabled")),
        (r#"{"queue": "lifo"}"#, Some("queue")),
        (r#"{"message": 7}"#, Some("message")),
        (r#"{"nope": 1}"#, Some("nope")),
        (
            r#"{"paused": true, "active_users": -1}"#,
            Some("active_users"),
        ),
    ];
    for (body, field) in cases {
        let r = admin.patch("strict-room", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let j = r.json();
        assert!(j["error"].is_string(), "{body}: {j}");
        if let Some(field) = field {
            assert_eq!(j["field"], field, "{body}: {j}");
        }
        let room = admin.room("strict-room").await;
        assert_eq!(room["overrides"], json!({}), "after {body}");
        assert_eq!(room["paused"], false, "after {body}");
        assert_eq!(room["active_users"], 1, "after {body}");
    }
    // Not paused: a newcomer is admitted, the next queues as usual.
    let (_a, r) = visit(&gw, "strict-room.test").await;
    assert_eq!(r.status, 200);
    let (_b, r) = visit(&gw, "strict-room.test").await;
    assert_eq!(r.json()["state"], "queued");

    for (method, path, body) in [
        ("GET", "/api/v1/rooms/no-such-room", ""),
        ("PATCH", "/api/v1/rooms/no-such-room", r#"{"paused": true}"#),
        ("DELETE", "/api/v1/rooms/no-such-room/overrides", ""),
    ] {
        let r = admin.send(method, path, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{}", r.body);
    }
}

#[tokio::test]
async fn live_figures_and_metrics_reflect_the_traffic() {
    let origin = Origin::start().await;
    let extra = "active_users = 1\nabandon_after = \"30s\"";
    let (gw, admin) = one_room(&origin, "live-room", extra).await;
    let mut visitors = Vec::new();
    for want in [200, 429, 429] {
        let (c, r) = visit(&gw, "live-room.test").await;
        assert_eq!(r.status, want);
        visitors.push(c);
    }

    let j = admin.room("live-room").await;
    assert_eq!(j["name"], "live-room");
    assert_eq!(j["hosts"], json!(["live-room.test"]));
    assert_eq!(j["origin"], origin.url());
    let in_force = json!({
        "enabled": true, "paused": false, "active_users": 1, "admit_per_minute": null,
        "queue": "fifo", "message": null, "mode": "queue",
    });
    for (k, v) in in_force.as_object().unwrap() {
        assert_eq!(&j[k], v, "{k}");
    }
    assert_eq!(j["file"], in_force);
    assert_eq!(j["overrides"], json!({}));
    let live = &j["live"];
    assert_eq!(live["active"], 1, "{live}");
    assert_eq!(live["queue_depth"], 2, "{live}");
    assert_eq!(live["released"], 0, "{live}");
    assert!(live["requests"]["admit"].as_u64().unwrap() >= 1, "{live}");
    assert!(live["requests"]["queue"].as_u64().unwrap() >= 2, "{live}");
    for k in ["bypass", "endpoint", "disabled", "closed"] {
        assert!(live["requests"][k].is_u64(), "requests.{k}: {live}");
    }
    let totals = "joined_total admitted_total abandoned_total released_total";
    for k in totals.split(' ').chain(["release_rate_per_minute"]) {
        assert!(live[k].is_number(), "{k}: {live}");
    }
    assert!(live["estimated_wait_seconds"].is_null() || live["estimated_wait_seconds"].is_number());
    assert_eq!(
        live["upstream_errors"],
        json!({"connect": 0, "timeout": 0, "invalid_response": 0, "body": 0})
    );
    let r = admin.send("GET", "/api/v1/rooms", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["rooms"][0]["name"], "live-room");

    let room = [("room", "live-room")];
    wait_until(LIMIT, "the gauges after a tick", || async {
        let depth = admin.metric("anteroom_queue_depth", &room).await;
        let active = admin.metric("anteroom_active_users", &room).await;
        (depth == Some(2.0) && active == Some(1.0)).then_some(())
    })
    .await;
    for (decision, least) in [("queue", 2.0), ("admit", 1.0)] {
        let labels = [("room", "live-room"), ("decision", decision)];
        let n = admin.metric("anteroom_requests_total", &labels).await;
        assert!(n.unwrap_or(0.0) >= least, "{decision}: {n:?}");
    }
}

#[tokio::test]
async fn unknown_hosts_and_paths_make_no_metric_series() {
    let origin = Origin::start().await;
    let (gw, admin) = one_room(&origin, "series-room", "active_users = 1").await;
    let mut stranger = gw.client("stray-host-q7.test");
    assert_eq!(stranger.get("/", JSON).await.status, 421);
    let (mut a, r) = visit(&gw, "series-room.test").await;
    assert_eq!(r.status, 200);
    a.get("/stray-path-q7", JSON).await;
    a.get("/__anteroom/stray-endpoint-q7", JSON).await;
    assert_eq!(admin.send("GET", "/stray-admin-q7", "").await.status, 404);
    let r = admin.send("GET", "/api/v1/rooms/stray-room-q7", "").await;
    assert_eq!(r.status, 404);
    // Wait for a tick to publish, then look for the strays.
    let room = [("room", "series-room")];
    wait_until(LIMIT, "a tick", || async {
        admin
            .metric("anteroom_active_users", &room)
            .await
            .map(|_| ())
    })
    .await;
    let text = admin.send("GET", "/metrics", "").await.body;
    assert!(text.contains("series-room"));
    assert!(!text.contains("q7"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_of_different_fields_all_apply() {
    let origin = Origin::start().await;
    let (_gw, admin) = one_room(&origin, "busy-room", "active_users = 1").await;
    let admin = std::sync::Arc::new(admin);
    let patches = [
        r#"{"enabled": false}"#,
        r#"{"paused": true}"#,
        r#"{"active_users": 5}"#,
        r#"{"admit_per_minute": 30}"#,
        r#"{"queue": "random"}"#,
        r#"{"message": "busy"}"#,
    ];
    let all = json!({
        "enabled": false, "paused": true, "active_users": 5, "admit_per_minute": 30,
        "queue": "random", "message": "busy",
    });
    for round in 0..5 {
        let r = admin
            .send("DELETE", "/api/v1/rooms/busy-room/overrides", "")
            .await;
        assert_eq!(r.status, 200);
        let tasks: Vec<_> = patches
            .into_iter()
            .map(|body| {
                let admin = admin.clone();
                tokio::spawn(async move { admin.patch("busy-room", body).await.status })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        let j = admin.room("busy-room").await;
        assert_eq!(j["overrides"], all, "round {round}: a PATCH was lost");
    }
}

/// Overrides belong to the room, not to the file: a room taken out of the file keeps its
/// overrides through a restart and through changes to other rooms, and has them again when it
/// is put back.
#[tokio::test]
async fn a_room_taken_out_of_the_file_keeps_its_overrides_across_restarts() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let kept = room("kept", "kept.test", &origin.url(), "active_users = 5");
    let other = room("other", "other.test", &origin.url(), "active_users = 5");
    let both = config("", &format!("{kept}{other}"));
    let one = config("", &other);
    let start = |text: String| {
        std::fs::write(&path, text).unwrap();
        let path = path.clone();
        async move {
            let running = anteroom::start_with(&path, anteroom::env::Env::of(&[]))
                .await
                .unwrap();
            let addr = running.admin_addr.unwrap();
            let admin = Admin {
                addr,
                host: addr.to_string(),
                token: None,
            };
            (running, admin)
        }
    };

    let (running, admin) = start(both.clone()).await;
    admin.patch_ok("kept", r#"{"message": "still here"}"#).await;
    assert!(running.shutdown().await, "snapshot written");

    // Out of the file: another room's change rewrites the overrides file.
    let (running, admin) = start(one).await;
    admin.patch_ok("other", r#"{"paused": true}"#).await;
    assert!(running.shutdown().await);

    let (running, admin) = start(both).await;
    assert_eq!(
        admin.room("kept").await["overrides"],
        json!({"message": "still here"})
    );
    assert_eq!(
        admin.room("other").await["overrides"],
        json!({"paused": true})
    );
    assert!(running.shutdown().await);
}

/// `mode` by PATCH closes the room to newcomers and opens it again; the room JSON says which.
/// `POST .../revoke` ends one session named by its token: its slot frees for the next visitor.
#[tokio::test]
async fn the_operator_switches_the_mode_and_revokes_one_session() {
    let origin = Origin::start().await;
    let (gw, admin) = one_room(&origin, "ops", "active_users = 1\nsession_ttl = \"1h\"").await;
    let mut first = gw.client("ops.test");
    assert_eq!(first.get("/", JSON).await.status, 200);

    let room = admin.patch_ok("ops", r#"{"mode": "reject"}"#).await;
    assert_eq!(room["mode"], "reject", "{room}");
    assert_eq!(room["file"]["mode"], "queue", "{room}");
    let (_, r) = visit(&gw, "ops.test").await;
    assert_eq!(r.status, 503, "{}", r.body);
    // The admitted visitor keeps its slot.
    assert_eq!(first.get("/", JSON).await.status, 200);
    assert_eq!(admin.patch("ops", r#"{"mode": "open"}"#).await.status, 400);
    let room = admin.patch_ok("ops", r#"{"mode": null}"#).await;
    assert_eq!(room["mode"], "queue", "{room}");

    // The second visitor waits behind the first; revoking the first lets it in.
    let (second, r) = visit(&gw, "ops.test").await;
    assert_eq!(r.status, 429, "{}", r.body);
    let token = first.cookies.get("anteroom_ops").cloned().unwrap();
    let r = admin
        .send(
            "POST",
            "/api/v1/rooms/ops/revoke",
            &format!(r#"{{"token": "{token}"}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["revoked"], true);
    wait_state(&second, "released").await;
    let again = admin
        .send(
            "POST",
            "/api/v1/rooms/ops/revoke",
            &format!(r#"{{"token": "{token}"}}"#),
        )
        .await;
    assert_eq!(again.status, 404, "{}", again.body);
    for bad in [
        r#"{"token": "forged"}"#,
        r#"{}"#,
        "[]",
        r#"{"session": "xyz"}"#,
    ] {
        let r = admin.send("POST", "/api/v1/rooms/ops/revoke", bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = admin
        .send(
            "POST",
            "/api/v1/rooms/ops/revoke",
            &format!(r#"{{"session": "{}"}}"#, "ab".repeat(16)),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        admin
            .metric(
                "anteroom_sessions_ended_total",
                &[("room", "ops"), ("reason", "revoke")]
            )
            .await,
        Some(1.0)
    );
}

/// Every metric has `# HELP`; a room's labelled series exist from the start at 0; the build,
/// the room's limits and the process's own figures are there; an empty room gives no estimate.
#[tokio::test]
async fn metrics_are_described_and_exist_from_the_start() {
    let origin = Origin::start().await;
    let (_gw, admin) = one_room(
        &origin,
        "fresh",
        "active_users = 3\nadmit_per_minute = 60\npaused = true",
    )
    .await;
    let text = wait_until(LIMIT, "a tick's metrics", || {
        let admin = admin.clone();
        async move {
            let r = admin.send("GET", "/metrics", "").await;
            r.body.contains("anteroom_room_capacity{").then_some(r.body)
        }
    })
    .await;
    let names: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("anteroom_"))
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .map(|n| {
            n.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
        })
        .collect();
    for n in &names {
        assert!(
            text.contains(&format!("# HELP {n} ")),
            "no HELP for {n}:\n{text}"
        );
    }
    for (name, labels) in [
        (
            "anteroom_admitted_total",
            &[("room", "fresh"), ("how", "released")][..],
        ),
        (
            "anteroom_sessions_ended_total",
            &[("room", "fresh"), ("reason", "max_session")],
        ),
        (
            "anteroom_requests_total",
            &[("room", "fresh"), ("decision", "closed")],
        ),
        (
            "anteroom_upstream_errors_total",
            &[("room", "fresh"), ("kind", "timeout")],
        ),
        ("anteroom_arrivals_total", &[("room", "fresh")]),
        ("anteroom_config_reloads_total", &[("result", "error")]),
    ] {
        assert_eq!(
            admin.metric(name, labels).await,
            Some(0.0),
            "{name} {labels:?}"
        );
    }
    let cap = |kind: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .metric(
                    "anteroom_room_capacity",
                    &[("room", "fresh"), ("kind", kind)],
                )
                .await
        }
    };
    assert_eq!(cap("active_users").await, Some(3.0));
    assert_eq!(cap("admit_per_minute").await, Some(60.0));
    assert_eq!(
        admin
            .metric("anteroom_room_paused", &[("room", "fresh")])
            .await,
        Some(1.0)
    );
    assert_eq!(
        admin
            .metric(
                "anteroom_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            )
            .await,
        Some(1.0)
    );
    assert!(
        admin
            .metric("anteroom_process_resident_memory_bytes", &[])
            .await
            .unwrap()
            > 1e6
    );
    assert!(
        admin
            .metric("anteroom_process_open_fds", &[])
            .await
            .unwrap()
            >= 3.0
    );
    assert!(
        admin
            .metric("anteroom_estimated_wait_seconds", &[("room", "fresh")])
            .await
            .is_none_or(f64::is_nan),
        "an estimate for an empty room"
    );
}

/// `POST .../reset?confirm={name}` empties the line: those waiting lose their place (their
/// token then says `expired`, and joining again puts them behind whoever joined since), the
/// admitted visitor keeps its slot, and the reset is counted. Without the room's name in
/// `confirm` nothing changes.
#[tokio::test]
async fn a_reset_empties_the_line_and_keeps_admitted_sessions() {
    let origin = Origin::start().await;
    let (gw, admin) = one_room(&origin, "wipe", "active_users = 1\nsession_ttl = \"1h\"").await;
    let mut first = gw.client("wipe.test");
    assert_eq!(first.get("/", JSON).await.status, 200);
    let (second, r) = visit(&gw, "wipe.test").await;
    assert_eq!(r.status, 429, "{}", r.body);
    let (_third, r) = visit(&gw, "wipe.test").await;
    assert_eq!(r.status, 429, "{}", r.body);
    let resets = [("room", "wipe")];
    assert_eq!(
        admin.metric("anteroom_room_resets_total", &resets).await,
        Some(0.0)
    );

    for (path, want) in [
        ("/api/v1/rooms/wipe/reset", 400),
        ("/api/v1/rooms/wipe/reset?confirm=other", 400),
        ("/api/v1/rooms/wipe/reset?confirm=", 400),
        ("/api/v1/rooms/nope/reset?confirm=nope", 404),
    ] {
        let r = admin.send("POST", path, "").await;
        assert_eq!(r.status, want, "{path}: {}", r.body);
        assert!(r.json()["error"].is_string(), "{path}: {}", r.body);
    }
    let r = admin.send("POST", "/api/v1/rooms/wipe/reset", "").await;
    assert!(r.body.contains("confirm=wipe"), "{}", r.body);
    assert_eq!(admin.room("wipe").await["live"]["queue_depth"], 2);

    let r = admin
        .send("POST", "/api/v1/rooms/wipe/reset?confirm=wipe", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"room": "wipe", "reset": true, "dropped": 2})
    );
    wait_until(LIMIT, "an empty line", || {
        let admin = admin.clone();
        async move { (admin.room("wipe").await["live"]["queue_depth"] == 0).then_some(()) }
    })
    .await;
    assert_eq!(
        admin.metric("anteroom_room_resets_total", &resets).await,
        Some(1.0)
    );
    assert_eq!(
        admin
            .metric("anteroom_room_reset_dropped_total", &resets)
            .await,
        Some(2.0)
    );
    // The admitted visitor is still in.
    assert_eq!(first.get("/", JSON).await.status, 200);

    // A newcomer after the reset is first in line; the dropped visitor's token says its place
    // expired, and joining again puts it second.
    let (newcomer, r) = visit(&gw, "wipe.test").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(status(&newcomer).await["position"], 1);
    let mut second = second.clone();
    let j = status(&second).await;
    assert_eq!(j["state"], "expired", "{j}");
    second.cookies.clear();
    let r = second.get("/", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(status(&second).await["position"], 2);

    // The freed slot goes to the newcomer, not to the visitor who was in line before.
    let token = first.cookies.get("anteroom_wipe").cloned().unwrap();
    let body = format!(r#"{{"token": "{token}"}}"#);
    let r = admin.send("POST", "/api/v1/rooms/wipe/revoke", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_state(&newcomer, "released").await;
    assert_eq!(status(&second).await["state"], "queued");
}

/// A 405, on the admin API, the reserved endpoints or a CONNECT, names what the path takes in
/// `Allow`.
#[tokio::test]
async fn method_not_allowed_names_the_allowed_methods() {
    let origin = Origin::start().await;
    let (gw, admin) = one_room(&origin, "allow", "active_users = 5").await;
    for (method, path, allow) in [
        ("GET", "/api/v1/reload", "POST"),
        ("DELETE", "/api/v1/rooms/allow", "GET, PATCH"),
        ("POST", "/api/v1/rooms", "GET"),
        ("GET", "/api/v1/rooms/allow/reset", "POST"),
        ("GET", "/api/v1/rooms/allow/revoke", "POST"),
        ("POST", "/api/v1/rooms/allow/overrides", "DELETE"),
        ("PUT", "/api/v1/config", "GET"),
    ] {
        let r = admin.send(method, path, "").await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    let r = admin.send("GET", "/api/v1/nothing", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("allow"), None);

    let mut c = gw.client("allow.test");
    for (method, path, allow) in [
        ("GET", "/__anteroom/join", "POST"),
        ("PUT", "/__anteroom/leave", "POST"),
        ("POST", "/__anteroom/status", "GET, HEAD"),
        ("DELETE", "/__anteroom/waiting.js", "GET, HEAD"),
    ] {
        let r = c.send(method, path, &[("accept", JSON)], "").await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    let answer = exchange(
        &gw,
        b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: allow.test\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 405, "{answer}");
    let allow = answer
        .lines()
        .find_map(|l| {
            l.strip_prefix("allow: ")
                .or_else(|| l.strip_prefix("Allow: "))
        })
        .unwrap_or("");
    assert!(
        allow.contains("GET") && !allow.contains("CONNECT"),
        "{answer}"
    );
}
