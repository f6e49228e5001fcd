//! A real `redis-server` for tests: started on a Unix socket in a temporary folder (no port to
//! race for), stopped by PID when dropped. Without the binary the test says "skipped: no
//! redis-server" and passes, except under CI (`CI` set), where `.ci/run` installs it and a
//! missing server is a failure.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The token secret a shared store needs (`[token] secret_env`, at least 32 bytes): the name
/// the config gives and the value the gateway's environment has.
pub const SHARED_SECRET: (&str, &str) = (
    "ANTEROOM_TEST_SECRET",
    "a-shared-secret-of-32-bytes-or-more!!",
);

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl RedisServer {
    /// The `[token]` and `[store]` tables of a gateway sharing this server (a 2 s store
    /// timeout); `store` adds or overrides `[store]` keys (one per line).
    pub fn tables(&self, store: &str) -> String {
        let store = if store.contains("timeout") {
            store.to_string()
        } else {
            format!("timeout = \"2s\"\n{store}")
        };
        format!(
            "[token]\nsecret_env = \"{}\"\n\n[store]\nkind = \"redis\"\nurl = \"{}\"\n{store}\n",
            SHARED_SECRET.0,
            self.url()
        )
    }

    /// Starts one; `None` (after saying so) when this machine has no redis-server.
    pub async fn start() -> Option<RedisServer> {
        let Some(bin) = find("redis-server").or_else(|| find("valkey-server")) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is missing under CI: .ci/run installs it"
            );
            eprintln!("skipped: no redis-server");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let mut server = RedisServer {
            child: None,
            bin,
            dir,
            socket,
        };
        server.spawn().await;
        Some(server)
    }

    /// Stops the server as an operator would (SIGTERM: the append-only file is flushed).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "redis-server did not stop"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Starts it again on the same socket and folder (what the append-only file kept is back).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(&self.bin)
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--unixsocketperm", "700", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "everysec", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::UnixStream::connect(&self.socket).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URL anteroom connects with.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `n` gateways on one store, each with its own folder (kept while the folders live).
pub async fn instances(config: &str, n: usize) -> (Vec<super::Binary>, Vec<tempfile::TempDir>) {
    let (mut gws, mut dirs) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, config).unwrap();
        gws.push(super::Binary::start(&path, &[SHARED_SECRET]).await);
        dirs.push(dir);
    }
    (gws, dirs)
}

/// A new visitor of `shop.test` on `gw`.
pub fn client(gw: &super::Binary) -> super::Client {
    super::Client {
        addr: gw.addr,
        host: "shop.test".into(),
        cookies: Default::default(),
    }
}

/// The same visitor (cookies kept) asking another instance.
pub fn on(c: &super::Client, gw: &super::Binary) -> super::Client {
    super::Client {
        addr: gw.addr,
        ..c.clone()
    }
}

/// A gateway of room `shop` (host `shop.test`, room keys `extra`) on `redis`, ticking every
/// 50 ms; `store` adds `[store]` keys.
pub fn shop_config(
    redis: &RedisServer,
    origin: &super::Origin,
    extra: &str,
    store: &str,
) -> String {
    format!(
        "tick = \"50ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n{}\n{}",
        redis.tables(store),
        super::room("shop", "shop.test", &origin.url(), extra)
    )
}
