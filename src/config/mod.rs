//! Configuration: `gateway.toml` parsed into file structs, validated once into the runtime
//! types below. After validation no code parses a string.

mod file;
mod locate;
pub mod schedule;
#[cfg(test)]
mod tests;
mod validate;

pub use file::FileConfig;
pub use validate::{Running, load, moved_running, parse};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use http::uri::{Authority, Scheme};

use crate::error::ConfigError;
use crate::pages::Pages;
use crate::room::Settings;

/// One validated configuration: swapped in whole, read once per request.
#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub tick: Duration,
    pub listen: Listen,
    pub admin_token_env: Option<String>,
    /// The admin API's bearer token: the variable `admin_token_env` names, read at start and
    /// at each reload (see [`Config::read_env`]); unset or empty means none.
    pub admin_token: Option<String>,
    /// `[admin] max_connections`: the admin listener's own connection cap.
    pub admin_max_connections: usize,
    pub token: TokenSettings,
    pub state: StateSettings,
    /// `[store]`.
    pub store: StoreSettings,
    pub limits: Limits,
    /// Address of the built-in demo origin, when the file asks for it.
    pub demo: Option<SocketAddr>,
    /// `[log] access`: one log line per public request.
    pub access_log: bool,
    /// `[log] format`: `true` for one JSON object per line (read at start).
    pub log_json: bool,
    pub rooms: Vec<Arc<RoomConfig>>,
    /// Lower-case host -> index into `rooms`.
    pub hosts: HashMap<String, usize>,
    pub default_room: Option<usize>,
    pub pages: Pages,
    /// Certificates of the public TLS listener, by host.
    pub tls: crate::certs::Certs,
    /// Peers whose forwarding headers are kept (appended to) rather than replaced.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Config {
    /// The room serving `host` (already lower-cased, port stripped), or the default room.
    pub fn room_for_host(&self, host: &str) -> Option<&Arc<RoomConfig>> {
        self.rooms.get(self.room_index_for_host(host)?)
    }

    /// The index in `rooms` of the room serving `host`.
    pub fn room_index_for_host(&self, host: &str) -> Option<usize> {
        self.hosts.get(host).copied().or(self.default_room)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    /// `reuse_port`: the public listeners (http, https) are bound with `SO_REUSEPORT`, so that
    /// several processes (one per core, or an old and a new one during an upgrade) share them.
    pub reuse_port: bool,
    /// `health_path`: answered 200 on the public listeners for any host, never queued.
    pub health_path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSettings {
    pub secret_env: Option<String>,
    pub previous_secret_envs: Vec<String>,
}

/// Where rooms live: in this process (the default), or in Redis shared by several instances.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreSettings {
    #[default]
    Memory,
    Redis(RedisSettings),
}

/// `[store] kind = "redis"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `url`, or the value of `url_env` once read (see `Config::read_env`).
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub key_prefix: String,
    pub timeout: Duration,
    pub on_error: OnStoreError,
}

/// What an instance does while the shared store does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// New visitors get the waiting answer with no place; admitted ones keep going.
    Closed,
    /// Everyone is forwarded (counted).
    Open,
    /// A room of this instance's own, with capacity divided by the instances last seen.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSettings {
    pub dir: PathBuf,
    pub snapshot_every: Duration,
}

/// Timeouts and sizes of the public listener and the origin client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    pub max_header_bytes: usize,
    /// Longest request target (path and query), as nginx's default buffer: 414 above it.
    pub max_uri_bytes: usize,
    pub max_body: u64,
    pub max_connections: usize,
    pub origin_connect_timeout: Duration,
    pub origin_response_timeout: Duration,
    /// How long a graceful stop waits for requests in flight.
    pub drain_timeout: Duration,
    /// Open event streams at most, over every room; beyond, 503 (the page polls instead).
    pub max_event_streams: usize,
    /// How often an idle event stream gets a comment (keeps proxies from closing it).
    pub event_heartbeat: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_header_bytes: 65536,
            max_uri_bytes: 8192,
            max_body: 10_000_000,
            max_connections: 10_000,
            origin_connect_timeout: Duration::from_secs(5),
            origin_response_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(10),
            max_event_streams: 5000,
            event_heartbeat: Duration::from_secs(15),
        }
    }
}

/// Where a room forwards.
#[derive(Debug, Clone)]
pub struct Origin {
    pub scheme: Scheme,
    pub authority: Authority,
    /// `https://` origins whose room names `origin_ca`: TLS trusting only that CA.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// `origin_host`: the Host the origin receives instead of the client's.
    pub host: Option<http::HeaderValue>,
    /// `origin_protocol`: the HTTP version spoken to the origin.
    pub protocol: OriginProtocol,
}

/// The HTTP version anteroom speaks to a room's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OriginProtocol {
    /// HTTP/1.1 over a pool of connections (the default).
    #[default]
    Http1,
    /// HTTP/2 only: ALPN `h2` for an https origin, prior knowledge (h2c) for http.
    H2,
    /// An https origin's choice by ALPN (h2 or HTTP/1.1); an http origin gets HTTP/1.1.
    Auto,
}

/// A path that skips the queue: exact, or a `prefix*` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bypass {
    Exact(String),
    Prefix(String),
}

impl Bypass {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Bypass::Exact(p) => path == p,
            Bypass::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// One room as configured.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    pub name: String,
    /// Binds tokens to this room.
    pub id: u64,
    pub hosts: Vec<String>,
    pub origin: Origin,
    pub enabled: bool,
    pub settings: Settings,
    pub bypass: Vec<Bypass>,
    /// Template names in `Config::pages`.
    pub page: String,
    pub closed_page: String,
    /// The room's own error template (502, 504), if it has one (else the built-in pages).
    pub error_page: Option<String>,
    pub page_status: StatusCode,
    pub json_status: StatusCode,
    pub cookie_name: String,
    /// `cookie_prefix_host`: over TLS the cookie is `__Host-<cookie_name>`.
    pub cookie_prefix_host: bool,
    pub message: Option<String>,
    /// `cors_origins`: the web origins (`scheme://host[:port]`, lower-case) whose pages may call
    /// the public endpoints from a script.
    pub cors_origins: Vec<String>,
    /// What a new visitor does before joining (`join_challenge`, `pow_difficulty`).
    pub join_challenge: crate::pow::JoinChallenge,
    /// Scheduled events, in time order, never overlapping.
    pub events: Vec<Event>,
    pub outside_events: OutsideEvents,
    /// The pages' languages (`languages`, `default_language`, `[room.text.<lang>]`).
    pub text: Arc<crate::pages::lang::RoomText>,
    /// `display_name`: the site's name on the pages, else the host asked for.
    pub display_name: Option<String>,
}

/// What a room with events does while none is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutsideEvents {
    /// As configured: today's queue.
    #[default]
    Queue,
    /// Everyone goes in (no capacity, no rate); those waiting are released in order.
    Open,
    /// The closed page; those still waiting when an event ends lose their place.
    Closed,
}

impl OutsideEvents {
    pub fn as_str(self) -> &'static str {
        match self {
            OutsideEvents::Queue => "queue",
            OutsideEvents::Open => "open",
            OutsideEvents::Closed => "closed",
        }
    }
}

/// One `[[room.event]]` as validated. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub prequeue_from_ms: u64,
    pub starts_at_ms: u64,
    pub ends_at_ms: u64,
    pub active_users: Option<u32>,
    pub admit_per_minute: Option<u32>,
    pub policy: Option<crate::room::Policy>,
    /// Template name in `Config::pages`.
    pub page: Option<String>,
    pub message: Option<String>,
    pub shuffle: bool,
}

impl RoomConfig {
    /// The session cookie's name on a connection (`secure`: TLS, or a trusted proxy's HTTPS).
    /// With `cookie_prefix_host` a TLS visitor's cookie is `__Host-<cookie_name>`: the browser
    /// then takes it only with `Secure`, `Path=/` and no `Domain`, so a sibling subdomain can
    /// neither set nor shadow it. Plain HTTP keeps the name, since the prefix needs `Secure`.
    pub fn cookie_name_for(&self, secure: bool) -> std::borrow::Cow<'_, str> {
        if self.cookie_prefix_host && secure {
            format!("__Host-{}", self.cookie_name).into()
        } else {
            self.cookie_name.as_str().into()
        }
    }
}

impl Config {
    /// Reads what the file names in the environment and keeps in the configuration: the admin
    /// token. The token keys are read once, at start (see `keys`).
    pub fn read_env(&mut self, env: &crate::env::Env) {
        if let StoreSettings::Redis(r) = &mut self.store
            && let Some(name) = r.url_env.as_deref()
        {
            r.url = env.get(name).and_then(|v| String::from_utf8(v).ok());
        }
        self.admin_token = self
            .admin_token_env
            .as_deref()
            .and_then(|name| env.get(name))
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|t| !t.is_empty());
    }
}

/// The result of the last load, as `GET /api/v1/config` shows it.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    pub ok: bool,
    pub at: SystemTime,
    pub errors: Vec<ConfigError>,
    /// Keys that changed but apply only after a restart.
    pub needs_restart: Vec<String>,
}

impl ReloadStatus {
    pub fn loaded() -> Self {
        ReloadStatus {
            ok: true,
            at: SystemTime::now(),
            errors: Vec::new(),
            needs_restart: Vec::new(),
        }
    }
}
