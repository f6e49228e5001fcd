//! The real `anteroom` binary as a child process: started on a config file, its printed
//! addresses parsed, its output kept for assertions, killed with SIGKILL when dropped (even on a
//! panic).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::{Instant, sleep};

use super::{Admin, LIMIT};

pub struct Binary {
    pub child: std::process::Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    /// The public HTTP listener.
    pub addr: SocketAddr,
}

/// Collects the lines of `pipe` on a thread.
fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().push(line);
        }
    });
    lines
}

impl Binary {
    /// `anteroom run --config CONFIG` with `env` added; returns once it says where it listens.
    pub async fn start(config: &Path, env: &[(&str, &str)]) -> Binary {
        let mut cmd = Command::new(Self::path());
        cmd.args(["run", "--config"]).arg(config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd).await
    }

    /// The binary started by `sh` under `ulimit -n LIMIT` (soft and hard).
    pub async fn under_fd_limit(config: &Path, limit: u32) -> Binary {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "ulimit -n {limit} && exec \"$0\" run --config \"$1\""
            ))
            .arg(Self::path())
            .arg(config);
        Self::spawn(cmd).await
    }

    /// The binary's path, for tests that wrap it in another command (a shell with a ulimit).
    pub fn path() -> &'static str {
        env!("CARGO_BIN_EXE_anteroom")
    }

    /// Runs `cmd` (which must end up running the gateway) and waits until it listens.
    pub async fn spawn(mut cmd: Command) -> Binary {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        let mut b = Binary {
            child,
            out,
            err,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        b.addr = b.listening("anteroom on http://").await;
        b
    }

    /// The address printed after `prefix`, waiting for the line.
    pub async fn listening(&mut self, prefix: &str) -> SocketAddr {
        let deadline = Instant::now() + LIMIT;
        loop {
            let found = self
                .out
                .lock()
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(|a| a.trim().to_string()));
            if let Some(a) = found {
                return a
                    .parse()
                    .unwrap_or_else(|e| panic!("{a:?} after {prefix:?} is not an address: {e}"));
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads catch the last lines.
                sleep(Duration::from_millis(100)).await;
                panic!(
                    "the gateway exited ({status}) before printing {prefix:?}\n{}",
                    self.printed()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} line\n{}",
                self.printed()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client of the admin API (the config must have `[listen] admin`).
    pub async fn admin(&mut self) -> Admin {
        let addr = self.listening("admin API on http://").await;
        Admin {
            addr,
            host: addr.to_string(),
            token: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether any line printed on stdout so far satisfies `f`.
    pub fn stdout_has(&self, f: impl Fn(&str) -> bool) -> bool {
        self.out.lock().iter().any(|l| f(l))
    }

    /// The lines printed on stdout so far that satisfy `f`.
    pub fn stdout_lines(&self, f: impl Fn(&str) -> bool) -> Vec<String> {
        self.out.lock().iter().filter(|l| f(l)).cloned().collect()
    }

    /// Everything printed so far, stdout then stderr, for assertions and failure messages.
    pub fn printed(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.out.lock().join("\n"),
            self.err.lock().join("\n")
        )
    }

    pub fn term(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The exit status, failing the test if the process still runs after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {limit:?} later\n{}",
                self.printed()
            );
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM and a clean exit.
    pub async fn stop(&mut self) {
        self.term();
        let status = self.wait_exit(Duration::from_secs(15)).await;
        assert!(
            status.success(),
            "SIGTERM exited with {status}\n{}",
            self.printed()
        );
    }

    /// A `kB` field of `/proc/<pid>/status` (such as `VmHWM`, the peak resident set), in bytes.
    pub fn proc_status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status:\n{status}"));
        let kb: u64 = line
            .trim()
            .strip_suffix("kB")
            .unwrap_or_else(|| panic!("{field}: {line:?}"))
            .trim()
            .parse()
            .unwrap();
        kb * 1024
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
