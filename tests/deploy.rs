//! What ships for deployment: the systemd unit passes `systemd-analyze verify` and keeps its
//! promises (reload by SIGHUP, a stop longer than the drain, hardening), the Containerfile
//! passes hadolint and builds as the README says, and `anteroom health` (the container's
//! HEALTHCHECK) tells a live gateway from a stopped one; `/readyz` says "draining" while a
//! stopping gateway finishes its requests; the Grafana dashboard and the Prometheus alerts
//! use only metrics the gateway exports (and pass `promtool check rules` where it is installed). A tool missing here is skipped with a
//! note, except under CI (`CI` set), where `.ci/run` installs it.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_anteroom");

/// Whether `tool` runs here; under CI its absence fails the test.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing under CI: .ci/run installs it"
        );
        eprintln!("{tool} is not installed: skipped");
    }
    found
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap()
}

/// The values of `key=` lines of a unit file.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn seconds(v: &str) -> u64 {
    v.strip_suffix('s').unwrap().parse().unwrap()
}

#[test]
fn the_systemd_unit_verifies_and_keeps_its_promises() {
    let unit = read("deploy/anteroom.service");
    assert_eq!(values(&unit, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(values(&unit, "KillSignal"), ["SIGTERM"]);
    // Well above the default drain_timeout (10 s) plus the final snapshot.
    assert!(seconds(values(&unit, "TimeoutStopSec")[0]) >= 30);
    for (key, want) in [
        ("User", "anteroom"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("StateDirectory", "anteroom"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
    ] {
        assert_eq!(values(&unit, key), [want], "{key}");
    }
    if !have("systemd-analyze") {
        return;
    }
    // The unit as installed, with this build's binary where the README installs it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anteroom.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/anteroom", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("anteroom.service"),
        "systemd-analyze has remarks on the unit: {said}"
    );
}

#[test]
fn the_containerfile_lints_clean_and_builds_as_the_readme_says() {
    let file = read("Containerfile");
    let from: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "a build stage and a runtime stage: {from:?}");
    assert!(from[1].contains("distroless"), "{from:?}");
    assert!(file.contains("USER nonroot"), "runs as a non-root user");
    assert!(file.contains("VOLUME [\"/var/lib/anteroom\"]"));
    assert!(file.contains("CMD [\"/usr/local/bin/anteroom\", \"health\""));
    let readme = read("README.md");
    for step in [
        "cargo build --release --locked",
        "docker build -f Containerfile -t anteroom .",
    ] {
        assert!(file.contains(step), "the Containerfile does not {step}");
        assert!(readme.contains(step), "the README does not say {step}");
    }
    if !have("hadolint") {
        return;
    }
    let out = Command::new("hadolint")
        .arg(Path::new(ROOT).join("Containerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn health_tells_a_live_gateway_from_a_stopped_one() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let admin = dead_port().await;
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"{admin}\"\n\n[state]\ndir = {:?}\n\n{}",
            dir.path().join("state").display().to_string(),
            room("shop", "shop.test", &origin.url(), "active_users = 1")
        ),
    )
    .unwrap();
    let health = {
        let config = config.clone();
        move || {
            Command::new(BIN)
                .args(["health", "--config"])
                .arg(&config)
                .output()
                .unwrap()
        }
    };
    let down = health();
    assert!(!down.status.success(), "healthy with nothing running");
    assert!(
        String::from_utf8_lossy(&down.stderr).contains(&admin.to_string()),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let mut gw = Binary::start(&config, &[]).await;
    let up = tokio::task::spawn_blocking(health.clone()).await.unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    gw.stop().await;
    // `check` with no file checks the --config one, and counts rooms in words.
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("ok (1 room)\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The public health path answers any host, never takes a place, and may be moved under the
/// reserved prefix only.
#[tokio::test]
async fn the_public_health_path_answers_any_host_and_queues_nobody() {
    let origin = Origin::start().await;
    let config =
        base_config("50ms") + &room("shop", "shop.test", &origin.url(), "active_users = 1");
    let gw = Gateway::start(&config).await;
    let mut first = gw.client("shop.test");
    assert_eq!(first.get("/", JSON).await.status, 200);
    for host in ["shop.test", "10.0.0.7", "nowhere.example"] {
        let mut c = gw.client(host);
        let r = c.get("/__anteroom/healthz", JSON).await;
        assert_eq!(
            (r.status.as_u16(), r.body.as_str()),
            (200, "ok\n"),
            "{host}"
        );
        assert!(c.cookies.is_empty(), "{host}: a place was given");
    }
    let (_, r) = visit(&gw, "shop.test").await;
    assert_eq!(
        r.json()["position"],
        1,
        "the health checks took no place: {}",
        r.body
    );
    let bad = config.replace(
        "http = \"127.0.0.1:0\"\n",
        "http = \"127.0.0.1:0\"\nhealth_path = \"/healthz\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key `listen.health_path`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// After SIGTERM the real binary keeps its admin listener answering while it drains: `/readyz`
/// turns 503 `draining` at once (a load balancer stops sending), while a slow request still in
/// flight completes with 200, and the process then exits 0.
#[tokio::test]
async fn readyz_says_draining_while_a_slow_request_finishes() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "tick = \"50ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [limits]\ndrain_timeout = \"10s\"\n\n[state]\ndir = {:?}\n\n{}",
            dir.path().join("state").display().to_string(),
            room("shop", "shop.test", &origin.url(), "active_users = 5")
        ),
    )
    .unwrap();
    let mut gw = Binary::start(&config, &[]).await;
    let admin = gw.admin().await;
    let r = admin.send("GET", "/readyz", "").await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "ready\n"));

    let mut c = Client {
        addr: gw.addr,
        host: "shop.test".into(),
        cookies: Default::default(),
    };
    assert_eq!(c.get("/", JSON).await.status, 200);
    let slow = tokio::spawn(async move { c.get("/slow", JSON).await });
    wait_until(LIMIT, "the slow request at the origin", || async {
        (origin.seen.lock().iter().any(|s| s.path == "/slow")).then_some(())
    })
    .await;
    gw.term();
    let r = wait_until(LIMIT, "/readyz draining", || async {
        let r = admin.send("GET", "/readyz", "").await;
        (r.status == 503).then_some(r)
    })
    .await;
    assert_eq!(r.body, "draining\n");
    assert!(!slow.is_finished(), "the slow request is still in flight");
    let r = slow.await.unwrap();
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "origin:/slow"));
    let status = gw.wait_exit(LIMIT).await;
    assert!(status.success(), "{status}\n{}", gw.printed());
}

/// Every `anteroom_*` name in `text` (a histogram's `_bucket`, `_sum` and `_count` series named
/// by their family).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("anteroom_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(family.to_string());
        rest = &tail[end..];
    }
    names
}

/// Every PromQL expression of the dashboard (its panels' targets and its variables' queries).
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                match (k.as_str(), child) {
                    ("expr" | "definition", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(child, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|c| dashboard_exprs(c, out)),
        _ => {}
    }
}

/// The dashboard and the alerts name only metrics that `/metrics` has once a little traffic
/// went through (a visitor admitted, one queued and released, a session ended, a snapshot).
#[tokio::test]
async fn the_dashboard_and_the_alerts_use_only_exported_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/anteroom.json")).unwrap();
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "room"), "a room variable");
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let alerts = read("deploy/prometheus/alerts.yaml");
    let rules: serde_norway::Value = serde_norway::from_str(&alerts).unwrap();
    for rule in rules["groups"][0]["rules"].as_sequence().unwrap() {
        exprs.push(rule["expr"].as_str().unwrap().to_string());
    }
    let used = metric_names(&exprs.join("\n"));
    assert!(used.len() >= 15, "{used:?}");
    if have("promtool") {
        let path = Path::new(ROOT).join("deploy/prometheus/alerts.yaml");
        let out = Command::new("promtool")
            .args(["check", "rules"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    let origin = Origin::start().await;
    let config = base_config("20ms").replace("[listen]\n", "[listen]\nadmin = \"127.0.0.1:0\"\n")
        + "[state]\nsnapshot_every = \"100ms\"\n\n"
        + &room(
            "dash",
            "dash.test",
            &origin.url(),
            "active_users = 1\nsession_ttl = \"1s\"\nrelease_window = \"3s\"",
        );
    let gw = Gateway::start(&config).await;
    let admin = Admin::of(&gw);
    let mut first = gw.client("dash.test");
    assert_eq!(first.get("/", JSON).await.status, 200);
    let (second, r) = visit(&gw, "dash.test").await;
    assert_eq!(r.status, 429, "{}", r.body);
    // The first visitor goes idle; its slot goes to the second, who comes in.
    wait_state(&second, "released").await;
    let mut second = second.clone();
    assert_eq!(second.get("/", JSON).await.status, 200);
    // Histograms appear with their first sample, the snapshot's time with the first snapshot.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let scrape = admin.send("GET", "/metrics", "").await.body;
        let have = metric_names(&scrape);
        let missing: Vec<&String> = used.iter().filter(|n| !have.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dashboard or the alerts use metrics /metrics lacks: {missing:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
