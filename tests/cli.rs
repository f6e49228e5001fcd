//! The `anteroom` command line: `check` validates a file and names every error's line.

use std::process::Command;

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
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn help_explains_both_commands() {
    let out = anteroom().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("check"), "{text}");
}
