//! The `anteroom` command line: `check` validates a file and names every error's line.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn anteroom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_anteroom"))
}

#[test]
fn check_accepts_the_shipped_file() {
    let out = anteroom()
        .args([
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml"),
        ])
        .env_remove("ANTEROOM_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_names_file_line_and_key_of_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[listen]\nhttp = \"127.0.0.1:8080\"\n\n[[room]]\nname = \"shop\"\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\nactive_users = 2\nsession_ttl = \"soon\"\nabandon_after = \"-3s\"\n",
    )
    .unwrap();
    let out = anteroom().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        err.contains(&format!("{file}:9: key `room[0].session_ttl`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:10: key `room[0].abandon_after`")),
        "{err}"
    );
}

#[test]
fn check_reports_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(
        &path,
        "[[room]]\nname = \"shop\"\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\nactive_user = 2\n",
    )
    .unwrap();
    let out = anteroom().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":5: key `room[0].active_user`"), "{err}");
    assert!(
        err.contains("unknown key `active_user`; did you mean `active_users`?"),
        "{err}"
    );
}

/// A file naming `[token] secret_env` whose variable is not set.
/// Keys and values that do not fit in several rooms are all reported in one run, each with its
/// line and key, in words an operator reads (a near miss gets its likely key; a wrong type says
/// what the key takes); the rooms' other errors are still found.
#[test]
fn check_reports_every_broken_room_at_once_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rooms.toml");
    let room = |name: &str, extra: &str| {
        format!(
            "[[room]]\nname = \"{name}\"\nhosts = [\"{name}.test\"]\norigin = \"http://127.0.0.1:1\"\n{extra}\n"
        )
    };
    let text = [
        "[listen]\nhttp = \"127.0.0.1:0\"\n\n".to_string(),
        room("one", "activ_users = 10"),
        room("two", "active_users = \"many\""),
        room("three", "active_users = 2\nsession_ttl = 30"),
        room("four", "admit_per_minute = 5\nqueue = \"stack\""),
    ]
    .concat();
    std::fs::write(&path, text).unwrap();
    let out = anteroom().arg("check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for want in [
        ":8: key `room[0].activ_users`: unknown key `activ_users`; did you mean `active_users`?",
        ":13: key `room[1].active_users`: expected a whole number",
        ":19: key `room[2].session_ttl`: expected a duration like \"30s\", found integer `30`",
        ":25: key `room[3].queue`: \"stack\" is not a queue policy",
    ] {
        assert!(err.contains(&format!("{file}{want}")), "{want}\n{err}");
    }
    assert!(!err.contains("i64") && !err.contains("u32"), "{err}");
    let bools = [(
        "[listen]\nreuse_port = 1\n",
        ":2: key `listen.reuse_port`: expected true or false, found integer `1`",
    )];
    for (text, want) in bools {
        std::fs::write(&path, text).unwrap();
        let out = anteroom().arg("check").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{file}{want}")), "{want}\n{err}");
    }
}

fn unset_secret_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    let state = dir.join("state").display().to_string();
    std::fs::write(
        &path,
        format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n\n[token]\nsecret_env = \"{UNSET_VAR}\"\n\n[state]\ndir = {state:?}\n\n[[room]]\nname = \"shop\"\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\nactive_users = 2\n"
        ),
    )
    .unwrap();
    path
}

const UNSET_VAR: &str = "ANTEROOM_CLI_TEST_NEVER_SET";

#[test]
fn check_refuses_an_unset_secret_env_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = unset_secret_config(dir.path());
    let out = anteroom()
        .arg("check")
        .arg(&path)
        .env_remove(UNSET_VAR)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(UNSET_VAR) && err.contains("token.secret_env"),
        "{err}"
    );
    // Long enough, it passes.
    let out = anteroom()
        .arg("check")
        .arg(&path)
        .env(UNSET_VAR, "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_refuses_to_start_with_an_unset_secret_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = unset_secret_config(dir.path());
    let mut child = anteroom()
        .args(["run", "--config"])
        .arg(&path)
        .env_remove(UNSET_VAR)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running 10 s after start: it started without the secret");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(UNSET_VAR) && err.contains("token.secret_env"),
        "{err}"
    );
    assert!(
        !dir.path().join("state").join("token.key").exists(),
        "a key was generated in its place"
    );
}

/// Without `secret_env` the start log says where the key is: made on the first start, read on
/// the next.
#[tokio::test]
async fn the_generated_key_file_is_named_in_the_start_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &path,
        format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\n\n[state]\ndir = {:?}\n\n[[room]]\nname = \"shop\"\nhosts = [\"a.test\"]\norigin = \"http://127.0.0.1:1\"\nactive_users = 2\n",
            state.display().to_string()
        ),
    )
    .unwrap();
    let key = state.join("token.key").display().to_string();
    for said in ["token key generated at", "token key read from"] {
        let mut gw = support::Binary::start(&path, &[]).await;
        assert!(
            gw.stdout_has(|l| l.contains(said) && l.contains(&key)),
            "no {said:?} {key}\n{}",
            gw.printed()
        );
        gw.stop().await;
    }
}

#[test]
fn help_explains_both_commands() {
    let out = anteroom().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("check"), "{text}");
}
