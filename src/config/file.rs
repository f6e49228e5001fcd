//! The serde mirror of `gateway.toml`: plain data, unknown keys rejected. Durations, sizes and
//! addresses stay strings here; `validate` turns them into runtime types and names the key of
//! every value it refuses.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// How often the engine ticks every room.
    pub tick: Option<String>,
    /// Room that answers hosts no room names (instead of 421).
    pub default_room: Option<String>,
    #[serde(default)]
    pub listen: ListenFile,
    #[serde(default)]
    pub admin: AdminFile,
    #[serde(default)]
    pub token: TokenFile,
    #[serde(default)]
    pub state: StateFile,
    #[serde(default)]
    pub store: StoreFile,
    #[serde(default)]
    pub limits: LimitsFile,
    pub demo: Option<DemoFile>,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub tls: TlsFile,
    /// Peers whose `X-Forwarded-For` / `Forwarded` are kept and appended to (CIDRs or addresses).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub room: Vec<RoomFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    /// One line per public request (default on).
    pub access: Option<bool>,
    /// `"text"` (default) or `"json"`: one JSON object per line.
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    pub http: Option<String>,
    pub https: Option<String>,
    pub admin: Option<String>,
    /// `SO_REUSEPORT` on the public listeners: several processes share the ports.
    pub reuse_port: Option<bool>,
    /// The public health path for load balancers (default `/__anteroom/healthz`).
    pub health_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub token_env: Option<String>,
    /// Open admin connections at most (default 64).
    pub max_connections: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    pub secret_env: Option<String>,
    #[serde(default)]
    pub previous_secret_envs: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub dir: Option<String>,
    pub snapshot_every: Option<String>,
}

/// `[store]`: where rooms live (DESIGN section 10).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    pub kind: Option<String>,
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub key_prefix: Option<String>,
    pub timeout: Option<String>,
    pub on_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub max_header_bytes: Option<u64>,
    pub max_uri_bytes: Option<u64>,
    pub max_body: Option<String>,
    pub max_connections: Option<u64>,
    pub origin_connect_timeout: Option<String>,
    pub origin_response_timeout: Option<String>,
    pub drain_timeout: Option<String>,
    /// Open event streams (`/__anteroom/events`) at most; 503 beyond (default 5000).
    pub max_event_streams: Option<u64>,
    /// A comment on every idle event stream this often (default 15s).
    pub event_heartbeat: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    #[serde(default)]
    pub cert: Vec<CertFile>,
}

/// One certificate of the public TLS listener, for the hosts it names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    #[serde(default)]
    pub hosts: Vec<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// The built-in demo origin, so the shipped file runs on a fresh machine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoFile {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomFile {
    pub name: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub origin: Option<String>,
    pub enabled: Option<bool>,
    pub paused: Option<bool>,
    pub mode: Option<String>,
    pub active_users: Option<i64>,
    pub admit_per_minute: Option<i64>,
    pub max_joins_per_prefix_per_minute: Option<i64>,
    /// `"none"` (default) or `"pow"`: a new visitor solves a proof-of-work challenge to join.
    pub join_challenge: Option<String>,
    /// Leading zero bits a challenge asks for (default 18).
    pub pow_difficulty: Option<i64>,
    pub session_ttl: Option<String>,
    pub abandon_after: Option<String>,
    pub release_window: Option<String>,
    pub max_session: Option<String>,
    pub queue: Option<String>,
    pub draw_every: Option<String>,
    #[serde(default)]
    pub bypass: Vec<String>,
    pub page: Option<String>,
    pub closed_page: Option<String>,
    pub error_page: Option<String>,
    pub page_status: Option<i64>,
    pub json_status: Option<i64>,
    pub cookie_name: Option<String>,
    pub cookie_prefix_host: Option<bool>,
    pub message: Option<String>,
    /// PEM file of the CA that signs an `https://` origin's certificate (internal origins).
    pub origin_ca: Option<String>,
    /// The Host the origin receives instead of the client's.
    pub origin_host: Option<String>,
    /// `"http1"` (default), `"h2"` or `"auto"` (ALPN, https origins).
    pub origin_protocol: Option<String>,
    /// Origins (`scheme://host[:port]`) whose pages may call the public endpoints (CORS).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// What the room does with no event running: `"queue"` (default), `"open"`, `"closed"`.
    pub outside_events: Option<String>,
    #[serde(default)]
    pub event: Vec<EventFile>,
    /// The languages the pages speak, by code (default: every built-in one).
    pub languages: Option<Vec<String>>,
    /// The language when the visitor's are not among `languages` (default `"en"`).
    pub default_language: Option<String>,
    /// `[room.text.<lang>]`: the room's own strings over the built-in ones, by key.
    #[serde(default)]
    pub text: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// The site's name on the pages (default: the host the visitor asked for).
    pub display_name: Option<String>,
}

/// One `[[room.event]]`: a scheduled event with its pre-queue and its own settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFile {
    pub name: Option<String>,
    pub prequeue_from: Option<When>,
    pub starts_at: Option<When>,
    pub ends_at: Option<When>,
    pub active_users: Option<i64>,
    pub admit_per_minute: Option<i64>,
    pub queue: Option<String>,
    pub page: Option<String>,
    pub message: Option<String>,
    pub shuffle_at_start: Option<bool>,
}

/// A moment in the file: an RFC 3339 string or a TOML offset date-time.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum When {
    Text(String),
    Toml(toml::value::Datetime),
}

impl When {
    pub fn text(&self) -> String {
        match self {
            When::Text(s) => s.clone(),
            When::Toml(d) => d.to_string(),
        }
    }
}
