//! anteroom: a virtual waiting room that runs inline as a reverse proxy.
//!
//! [`start`] loads a configuration, binds the listeners and returns a [`Running`] gateway with
//! its bound addresses, so that tests and embedding programs can drive it on port 0.

pub mod admin;
pub mod certs;
pub mod config;
pub mod demo;
pub mod engine;
pub mod env;
pub mod error;
pub mod gateway;
pub mod health;
pub mod inspect;
pub mod keys;
pub mod metrics;
pub mod pages;
pub mod pow;
pub mod proxy;
pub mod reload;
pub mod room;
pub mod server;
pub mod store;
pub mod target;
pub mod tls;
pub mod token;

/// The snapshot file format (kept at its old path for tools and benchmarks).
pub use store::snapshot;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{ConfigErrors, StartError};
use gateway::Gateway;

/// A started gateway: where it listens, and how to stop it.
pub struct Running {
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub demo_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    /// What `/readyz` says: starting, restoring, serving or draining.
    pub ready: Arc<admin::Readiness>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The admin listener stops last, so `/readyz` says "draining" while the rest drains.
    admin_stop: watch::Sender<bool>,
    admin_task: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, drains in-flight requests (up to `drain_timeout`), writes the final
    /// snapshot, and returns when everything has stopped. Returns whether the snapshot was
    /// written. The admin listener answers until the end, `/readyz` with 503 `draining`.
    pub async fn shutdown(self) -> bool {
        self.ready.draining();
        let deadline = tokio::time::Instant::now() + self.gateway.config().limits.drain_timeout;
        let _ = self.shutdown.send(true);
        // Event streams would hold their connections open through the whole drain.
        self.gateway.close_streams();
        for t in self.tasks {
            let _ = t.await;
        }
        self.gateway.close_upgrades(deadline).await;
        let saved = match self.gateway.write_snapshot().await {
            Ok(r) => {
                tracing::info!(file = %r.path, rooms = r.rooms, sessions = r.sessions, bytes = r.bytes, "final snapshot written");
                true
            }
            Err(_) => false,
        };
        let _ = self.admin_stop.send(true);
        if let Some(t) = self.admin_task {
            let _ = t.await;
        }
        saved
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// A public listener shared with other processes bound the same way (`SO_REUSEPORT`): the
/// kernel spreads new connections over them.
fn bind_shared(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    socket
        .and_then(|s| {
            s.set_reuseaddr(true)?;
            s.set_reuseport(true)?;
            s.bind(addr)?;
            s.listen(1024)
        })
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Loads `config_path`, binds every listener and starts serving.
pub async fn start(config_path: &Path) -> Result<Running, StartError> {
    start_with(config_path, env::Env::process()).await
}

/// [`start`] with the secrets' variables looked up in `env` (at start and at every reload).
pub async fn start_with(config_path: &Path, env: env::Env) -> Result<Running, StartError> {
    let mut config = config::load(config_path)?;
    config.read_env(&env);
    let keys = keys::load_with(&config, |name| env.get(name))?;
    metrics::install();
    let (tx, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let demo_addr = start_demo(&config, &rx, &mut tasks).await?;
    let listeners = Listeners::bind(&config.listen).await?;
    let http_addr = listeners.public.local_addr().unwrap_or(config.listen.http);
    let https_addr = listeners.secure.as_ref().and_then(|l| l.local_addr().ok());
    let admin_addr = listeners.admin.as_ref().and_then(|l| l.local_addr().ok());
    // The admin listener serves first, so `/readyz` tells "starting" and "restoring" apart
    // from a process that is not there.
    let ready = Arc::new(admin::Readiness::default());
    let slot = admin::Slot::new(ready.clone());
    let (admin_stop, admin_rx) = watch::channel(false);
    let admin_task = listeners.admin.map(|l| {
        let serving = server::Serving {
            tls: None,
            permits: Arc::new(tokio::sync::Semaphore::new(config.admin_max_connections)),
            limits: config.limits.clone(),
            drain: std::time::Duration::from_secs(1),
        };
        tokio::spawn(admin::serve(l, serving, slot.clone(), admin_rx))
    });
    let store = open_store(&config, &ready).await?;
    let gw = Gateway::new(config, keys, Arc::new(store))?;
    let (reload, reload_task) = reload::spawn(gw.clone(), env, rx.clone());
    tasks.push(reload_task);
    slot.fill(admin::Admin {
        gw: gw.clone(),
        reload,
    });
    tasks.push(tokio::spawn(engine::run(gw.clone(), rx.clone())));
    tasks.push(tokio::spawn(gateway::snapshot_loop(gw.clone(), rx.clone())));
    spawn_public(&gw, listeners.public, listeners.secure, rx, &mut tasks)?;
    ready.serving();
    let running = Running {
        http_addr,
        https_addr,
        admin_addr,
        demo_addr,
        gateway: gw,
        ready,
        shutdown: tx,
        tasks,
        admin_stop,
        admin_task,
    };
    log_listening(&running);
    Ok(running)
}

/// The start's one line: the listeners, the rooms, the store, and whether the admin API asks
/// for a token (plain words and addresses: no Rust `Some(..)` in an operator's log).
fn log_listening(r: &Running) {
    let config = r.gateway.config();
    let addr = |a: Option<SocketAddr>| a.map_or_else(|| "none".to_string(), |a| a.to_string());
    let rooms: Vec<&str> = config.rooms.iter().map(|r| r.name.as_str()).collect();
    let store = match &config.store {
        config::StoreSettings::Memory => format!("memory, state in {}", config.state.dir.display()),
        config::StoreSettings::Redis(s) => format!("redis, keys under {}", s.key_prefix),
    };
    let admin_token = match (&config.admin_token, r.admin_addr) {
        (_, None) => "no admin listener",
        (Some(_), Some(_)) => "bearer token required",
        (None, Some(_)) => "unset: the admin API answers loopback peers only",
    };
    tracing::info!(
        http = %r.http_addr,
        https = %addr(r.https_addr),
        admin = %addr(r.admin_addr),
        demo = %addr(r.demo_addr),
        rooms = %rooms.join(", "),
        store = %store,
        admin_token,
        "anteroom listening"
    );
}

/// The store `[store]` names: this process's rooms (restored from the state folder), or Redis.
/// Restoring runs on the blocking pool, so the admin listener answers `restoring` meanwhile.
async fn open_store(
    config: &config::Config,
    ready: &admin::Readiness,
) -> Result<store::Backend, StartError> {
    match &config.store {
        config::StoreSettings::Memory => {
            ready.restoring();
            let store = store::Memory::new(&config.state.dir);
            let settings: std::collections::HashMap<String, room::Settings> = config
                .rooms
                .iter()
                .map(|r| (r.name.clone(), r.settings.clone()))
                .collect();
            let store = tokio::task::spawn_blocking(move || {
                store.restore(|name| settings.get(name).cloned());
                store
            })
            .await
            .map_err(|e| StartError::Store(format!("restoring the snapshot failed: {e}")))?;
            Ok(store::Backend::Memory(store))
        }
        config::StoreSettings::Redis(r) => {
            let shared = store::redis::Shared::connect(r, &config.state.dir, config.tick)
                .await
                .map_err(|e| StartError::Store(e.to_string()))?;
            Ok(store::Backend::Redis(Box::new(shared)))
        }
    }
}

/// Binds and starts the demo origin if the configuration asks for one; its bound address.
async fn start_demo(
    config: &config::Config,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Option<SocketAddr>, StartError> {
    let Some(addr) = config.demo else {
        return Ok(None);
    };
    let l = bind("demo origin", addr).await?;
    let bound = l.local_addr().ok();
    tasks.push(tokio::spawn(demo::serve(
        l,
        config.limits.clone(),
        shutdown.clone(),
    )));
    Ok(bound)
}

/// The gateway's listeners, bound before the gateway is built.
struct Listeners {
    public: TcpListener,
    secure: Option<TcpListener>,
    admin: Option<TcpListener>,
}

impl Listeners {
    async fn bind(listen: &config::Listen) -> Result<Self, StartError> {
        let (public, secure) = if listen.reuse_port {
            let public = bind_shared("http", listen.http)?;
            (
                public,
                listen.https.map(|a| bind_shared("https", a)).transpose()?,
            )
        } else {
            let public = bind("http", listen.http).await?;
            let secure = match listen.https {
                Some(addr) => Some(bind("https", addr).await?),
                None => None,
            };
            (public, secure)
        };
        let admin = match listen.admin {
            Some(addr) => Some(bind("admin", addr).await?),
            None => None,
        };
        Ok(Self {
            public,
            secure,
            admin,
        })
    }
}

/// Starts serving the public listeners (`secure` with TLS), under one connection cap that the
/// descriptor limit can hold.
fn spawn_public(
    gw: &Arc<Gateway>,
    public: TcpListener,
    secure: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<(), StartError> {
    let boot = gw.boot_config();
    let cap =
        server::public_connection_cap(boot.limits.max_connections, boot.admin_max_connections);
    let permits = Arc::new(tokio::sync::Semaphore::new(cap));
    let serving = |tls| server::Serving {
        tls,
        permits: permits.clone(),
        limits: boot.limits.clone(),
        drain: boot.limits.drain_timeout,
    };
    if let Some(l) = secure {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(gw.tls_config())?);
        tasks.push(tokio::spawn(server::serve_public(
            l,
            serving(Some(acceptor)),
            gw.clone(),
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(server::serve_public(
        public,
        serving(None),
        gw.clone(),
        shutdown,
    )));
    Ok(())
}
