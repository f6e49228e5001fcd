//! The per-request access log of the real binary: one line per request by default, none with
//! `[log] access = false`.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Runs the binary on `config`, sends one request for `/hello`, stops it with SIGTERM and
/// returns everything it printed.
fn run_one_request(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_anteroom"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the gateway never said where it listens");
        if let Some(a) = line.strip_prefix("anteroom on http://") {
            break a.trim().to_string();
        }
        seen.push(line);
    };
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /hello?secret=1 HTTP/1.1\r\nHost: logged.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    seen.extend(rx.try_iter());
    seen.join("\n")
}

fn config(extra: &str) -> String {
    format!(
        "[listen]\nhttp = \"127.0.0.1:0\"\n\n{extra}[[room]]\nname = \"logged\"\nhosts = [\"logged.test\"]\norigin = \"http://127.0.0.1:1\"\nactive_users = 5\n"
    )
}

#[test]
fn each_request_is_logged_without_its_query() {
    let out = run_one_request(&config(""));
    let line = out
        .lines()
        .find(|l| l.contains("request") && l.contains("path=\"/hello\""))
        .unwrap_or_else(|| panic!("no access line in:\n{out}"));
    assert!(line.contains("status=502"), "{line}");
    assert!(line.contains("method=GET"), "{line}");
    assert!(
        !out.contains("secret"),
        "the query string was logged:\n{out}"
    );
}

#[test]
fn the_access_log_can_be_switched_off() {
    let out = run_one_request(&config("[log]\naccess = false\n\n"));
    assert!(
        out.contains("stopping"),
        "the run was not seen to its end:\n{out}"
    );
    assert!(
        !out.contains("/hello"),
        "an access line was written:\n{out}"
    );
}

#[test]
fn the_access_line_names_host_room_decision_and_the_origins_time() {
    let out = run_one_request(&config(""));
    let line = out
        .lines()
        .find(|l| l.contains("path=\"/hello\""))
        .unwrap_or_else(|| panic!("no access line in:\n{out}"));
    for want in [
        "host=\"logged.test\"",
        "room=\"logged\"",
        "decision=\"admit\"",
        "upstream_ms=",
    ] {
        assert!(line.contains(want), "{want} missing: {line}");
    }
    // No Rust debug text, and times to the microsecond.
    assert!(!line.contains("Some("), "{line}");
    let ms = line
        .split(" ms=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(ms.split('.').nth(1).is_none_or(|d| d.len() <= 3), "{line}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = run_one_request(&config("[log]\nformat = \"json\"\n\n"));
    let objects: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(objects.len() >= 2, "{out}");
    let access = objects
        .iter()
        .find(|o| o["target"] == "anteroom::access")
        .unwrap_or_else(|| panic!("no access object in:\n{out}"));
    assert_eq!(access["path"], "/hello", "{access}");
    assert_eq!(access["room"], "logged", "{access}");
    assert_eq!(access["decision"], "admit", "{access}");
    assert_eq!(access["status"], 502, "{access}");
    assert!(access["ms"].is_f64(), "{access}");
    assert!(access["upstream_ms"].is_f64(), "{access}");
    assert!(
        objects
            .iter()
            .all(|o| o["level"].is_string() && o["timestamp"].is_string())
    );
    // The start says where it listens, which rooms and store, the generated token key and that
    // the admin API has no token, in plain values; no line carries Rust's debug text.
    let start = objects
        .iter()
        .find(|o| o["message"] == "anteroom listening")
        .unwrap_or_else(|| panic!("no start line in:\n{out}"));
    assert!(
        start["http"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{start}"
    );
    assert_eq!(start["https"], "none", "{start}");
    assert_eq!(start["rooms"], "logged", "{start}");
    assert!(
        start["store"].as_str().unwrap().starts_with("memory"),
        "{start}"
    );
    assert!(start["admin_token"].is_string(), "{start}");
    assert!(
        objects.iter().any(|o| o["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("token key generated"))),
        "{out}"
    );
    for line in out.lines() {
        assert!(!line.contains("Some(") && !line.contains("None"), "{line}");
    }
}
