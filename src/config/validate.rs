//! Turns a `FileConfig` into a `Config`, collecting every error with its file, line and key.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http::uri::{Scheme, Uri};

use super::file::{FileConfig, LimitsFile, RoomFile, TlsFile};
use super::locate::{Locator, Seg, render};
use super::{Bypass, Config, Limits, Listen, Origin, RoomConfig, StateSettings, TokenSettings};
use crate::error::{ConfigError, ConfigErrors};
use crate::pages::{self, Pages};
use crate::room::{Mode, Policy, Settings, View, ViewState};

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])),
    }
}

/// Validates `text` as the content of `path` (relative paths in it are taken from its folder).
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let loc = Locator::new(text);
    let file: FileConfig = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            return Err(ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: if e.span().is_some() {
                    loc.line_of(offset)
                } else {
                    0
                },
                key: loc.key_at(offset),
                message: e.message().trim().to_string(),
            }]));
        }
    };
    let mut v = Validator {
        file: path.to_path_buf(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        loc,
        errors: Vec::new(),
    };
    let config = v.config(file);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(v.errors))
    }
}

/// The longest duration any key takes: timers are set from it, and longer ones overflow.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

fn key(parts: &[&str]) -> Vec<Seg> {
    parts.iter().map(|p| Seg::Key((*p).to_string())).collect()
}

fn room_key(i: usize, k: &str) -> Vec<Seg> {
    vec![Seg::Key("room".into()), Seg::Index(i), Seg::Key(k.into())]
}

struct Validator<'a> {
    file: PathBuf,
    base: PathBuf,
    loc: Locator<'a>,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn error(&mut self, path: &[Seg], message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: self.loc.line(path),
            key: render(path),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &[Seg], value: Option<&String>, default: Duration) -> Duration {
        let Some(s) = value else { return default };
        match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() && d <= MAX_DURATION => d,
            Ok(d) if d.is_zero() => {
                self.error(path, "must be longer than zero");
                default
            }
            Ok(_) => {
                self.error(path, "must be at most a year (\"366d\")");
                default
            }
            Err(e) => {
                self.error(
                    path,
                    format!("{s:?} is not a duration ({e}); write e.g. \"90s\" or \"5m\""),
                );
                default
            }
        }
    }

    fn addr(&mut self, path: &[Seg], value: Option<&String>, default: &str) -> Option<SocketAddr> {
        let s = value.map_or(default, String::as_str);
        match s.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    path,
                    format!("{s:?} is not an address; write e.g. \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn config(&mut self, f: FileConfig) -> Config {
        let tick = self.duration(&key(&["tick"]), f.tick.as_ref(), Duration::from_secs(1));
        let http = self.addr(
            &key(&["listen", "http"]),
            f.listen.http.as_ref(),
            "127.0.0.1:8080",
        );
        let https = match &f.listen.https {
            Some(a) => self.addr(&key(&["listen", "https"]), Some(a), ""),
            None => None,
        };
        let tls = self.certs(&f.tls);
        if f.listen.https.is_some() && f.tls.cert.is_empty() {
            self.error(
                &key(&["listen", "https"]),
                "needs at least one [[tls.cert]] to serve",
            );
        }
        let trusted_proxies = self.trusted_proxies(&f.trusted_proxies);
        let admin = match &f.listen.admin {
            Some(a) => self.addr(&key(&["listen", "admin"]), Some(a), ""),
            None => None,
        };
        let demo = match &f.demo {
            Some(d) => self.addr(
                &key(&["demo", "listen"]),
                d.listen.as_ref(),
                "127.0.0.1:9001",
            ),
            None => None,
        };
        let state = StateSettings {
            dir: self.resolve(f.state.dir.as_deref().unwrap_or("state")),
            snapshot_every: self.duration(
                &key(&["state", "snapshot_every"]),
                f.state.snapshot_every.as_ref(),
                Duration::from_secs(2),
            ),
        };
        let limits = self.limits(&f.limits);
        let mut pages = Pages::new();
        let mut rooms = Vec::new();
        let mut hosts = HashMap::new();
        let mut names = HashSet::new();
        if f.room.is_empty() {
            self.error(&key(&["room"]), "at least one [[room]] is needed");
        }
        for (i, r) in f.room.iter().enumerate() {
            if let Some(room) = self.room(i, r, &limits, &mut pages) {
                if !names.insert(room.name.clone()) {
                    self.error(
                        &room_key(i, "name"),
                        format!("room {:?} is named twice", room.name),
                    );
                }
                for (j, h) in room.hosts.iter().enumerate() {
                    if hosts.insert(h.clone(), rooms.len()).is_some() {
                        let mut p = room_key(i, "hosts");
                        p.push(Seg::Index(j));
                        self.error(&p, format!("host {h:?} belongs to two rooms"));
                    }
                }
                rooms.push(Arc::new(room));
            }
        }
        let default_room = f.default_room.as_ref().and_then(|name| {
            let found = rooms.iter().position(|r| &r.name == name);
            if found.is_none() {
                self.error(
                    &key(&["default_room"]),
                    format!("no room is named {name:?}"),
                );
            }
            found
        });
        Config {
            file: self.file.clone(),
            tick,
            listen: Listen {
                http: http.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
                https,
                admin,
            },
            admin_token_env: f.admin.token_env.clone(),
            token: TokenSettings {
                secret_env: f.token.secret_env.clone(),
                previous_secret_envs: f.token.previous_secret_envs.clone(),
            },
            state,
            limits,
            demo,
            access_log: f.log.access.unwrap_or(true),
            rooms,
            hosts,
            default_room,
            pages,
            tls,
            trusted_proxies,
        }
    }

    /// `[[tls.cert]]`: every file read and the key checked against its certificate now, so a
    /// bad file is an error naming it and never a failed handshake later.
    fn certs(&mut self, t: &TlsFile) -> crate::tls::Certs {
        let mut certs = crate::tls::Certs::default();
        let at = |i: usize, k: &str| {
            vec![
                Seg::Key("tls".into()),
                Seg::Key("cert".into()),
                Seg::Index(i),
                Seg::Key(k.into()),
            ]
        };
        for (i, c) in t.cert.iter().enumerate() {
            let hosts: Vec<String> = c
                .hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect();
            if hosts.is_empty()
                || hosts
                    .iter()
                    .any(|h| h.is_empty() || h.contains(['/', ' ', ':']))
            {
                self.error(
                    &at(i, "hosts"),
                    "list the host names this certificate serves",
                );
                continue;
            }
            let (Some(cert), Some(key)) = (&c.cert, &c.key) else {
                let missing = if c.cert.is_none() { "cert" } else { "key" };
                self.error(
                    &[
                        Seg::Key("tls".into()),
                        Seg::Key("cert".into()),
                        Seg::Index(i),
                    ],
                    format!("missing key `{missing}` (a PEM file)"),
                );
                continue;
            };
            match crate::tls::load_key_pair(&self.resolve(cert), &self.resolve(key)) {
                Ok(pair) => certs.add(&hosts, pair),
                Err((crate::tls::PairFile::Cert, e)) => self.error(&at(i, "cert"), e),
                Err((crate::tls::PairFile::Key, e)) => self.error(&at(i, "key"), e),
            }
        }
        certs
    }

    fn trusted_proxies(&mut self, list: &[String]) -> Vec<ipnet::IpNet> {
        let mut nets = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let parsed = s
                .parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(n) => nets.push(n),
                Err(_) => self.error(
                    &[Seg::Key("trusted_proxies".into()), Seg::Index(i)],
                    format!("{s:?} is not an address or a CIDR block such as \"10.0.0.0/8\""),
                ),
            }
        }
        nets
    }

    fn limits(&mut self, l: &LimitsFile) -> Limits {
        let d = Limits::default();
        let dur = |v: &mut Self, k: &str, val: &Option<String>, def: Duration| {
            v.duration(&key(&["limits", k]), val.as_ref(), def)
        };
        let header_timeout = dur(self, "header_timeout", &l.header_timeout, d.header_timeout);
        let idle_timeout = dur(self, "idle_timeout", &l.idle_timeout, d.idle_timeout);
        let body_timeout = dur(self, "body_timeout", &l.body_timeout, d.body_timeout);
        let write_timeout = dur(self, "write_timeout", &l.write_timeout, d.write_timeout);
        let origin_connect_timeout = dur(
            self,
            "origin_connect_timeout",
            &l.origin_connect_timeout,
            d.origin_connect_timeout,
        );
        let origin_response_timeout = dur(
            self,
            "origin_response_timeout",
            &l.origin_response_timeout,
            d.origin_response_timeout,
        );
        let drain_timeout = dur(self, "drain_timeout", &l.drain_timeout, d.drain_timeout);
        let max_header_bytes = match l.max_header_bytes {
            None => d.max_header_bytes,
            Some(n) if (8192..=1 << 24).contains(&n) => n as usize,
            Some(_) => {
                self.error(
                    &key(&["limits", "max_header_bytes"]),
                    "must be between 8192 and 16777216",
                );
                d.max_header_bytes
            }
        };
        let max_uri_bytes = match l.max_uri_bytes {
            None => d.max_uri_bytes,
            Some(n) if (256..=1 << 20).contains(&n) => n as usize,
            Some(_) => {
                self.error(
                    &key(&["limits", "max_uri_bytes"]),
                    "must be between 256 and 1048576",
                );
                d.max_uri_bytes
            }
        };
        let max_connections = match l.max_connections {
            None => d.max_connections,
            Some(n) if n >= 1 => n as usize,
            Some(_) => {
                self.error(&key(&["limits", "max_connections"]), "must be at least 1");
                d.max_connections
            }
        };
        let max_body = match &l.max_body {
            None => d.max_body,
            Some(s) => match s.parse::<bytesize::ByteSize>() {
                Ok(b) => b.as_u64(),
                Err(e) => {
                    self.error(
                        &key(&["limits", "max_body"]),
                        format!("{s:?} is not a size ({e}); write e.g. \"10MB\""),
                    );
                    d.max_body
                }
            },
        };
        Limits {
            header_timeout,
            idle_timeout,
            body_timeout,
            write_timeout,
            max_header_bytes,
            max_uri_bytes,
            max_body,
            max_connections,
            origin_connect_timeout,
            origin_response_timeout,
            drain_timeout,
        }
    }

    fn room(
        &mut self,
        i: usize,
        r: &RoomFile,
        limits: &Limits,
        pages: &mut Pages,
    ) -> Option<RoomConfig> {
        let errors_before = self.errors.len();
        let name = r.name.clone().unwrap_or_default();
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if r.name.is_none() {
            self.error(
                &[Seg::Key("room".into()), Seg::Index(i)],
                "missing key `name`",
            );
        } else if !valid_name {
            self.error(&room_key(i, "name"), "use 1 to 64 of a-z, 0-9, - and _");
        }
        if r.hosts.is_empty() {
            self.error(&room_key(i, "hosts"), "list at least one host");
        }
        let mut hosts = Vec::new();
        for (j, h) in r.hosts.iter().enumerate() {
            let lower = h.trim().to_ascii_lowercase();
            if lower.is_empty() || lower.contains(['/', ' ', ':']) && !lower.starts_with('[') {
                let mut p = room_key(i, "hosts");
                p.push(Seg::Index(j));
                self.error(
                    &p,
                    format!("{h:?} is not a host name (no scheme, port or path)"),
                );
            }
            hosts.push(lower);
        }
        let origin = self.origin(i, r, limits);
        let settings = self.settings(i, r);
        let bypass = r
            .bypass
            .iter()
            .enumerate()
            .filter_map(|(j, b)| {
                if !b.starts_with('/') {
                    let mut p = room_key(i, "bypass");
                    p.push(Seg::Index(j));
                    self.error(&p, format!("{b:?} must start with /"));
                    return None;
                }
                Some(match b.strip_suffix('*') {
                    Some(prefix) => Bypass::Prefix(prefix.to_string()),
                    None => Bypass::Exact(b.clone()),
                })
            })
            .collect();
        let page = self.template(
            i,
            "page",
            r.page.as_deref(),
            pages::BUILTIN_WAITING,
            pages,
            &name,
        );
        let closed_page = self.template(
            i,
            "closed_page",
            r.closed_page.as_deref(),
            pages::BUILTIN_CLOSED,
            pages,
            &name,
        );
        let page_status = self.status(i, "page_status", r.page_status, 200);
        let json_status = self.status(i, "json_status", r.json_status, 429);
        let cookie_name = r
            .cookie_name
            .clone()
            .unwrap_or_else(|| format!("anteroom_{name}"));
        let cookie_ok = !cookie_name.is_empty()
            && cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !cookie_ok {
            self.error(
                &room_key(i, "cookie_name"),
                "use letters, digits, _ - and . only",
            );
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(RoomConfig {
            id: crate::token::room_id(&name),
            name,
            hosts,
            origin: origin?,
            enabled: r.enabled.unwrap_or(true),
            settings,
            bypass,
            page,
            closed_page,
            page_status,
            json_status,
            cookie_name,
            message: r.message.clone(),
        })
    }

    fn origin(&mut self, i: usize, r: &RoomFile, limits: &Limits) -> Option<Origin> {
        let Some(s) = r.origin.as_deref() else {
            self.error(
                &[Seg::Key("room".into()), Seg::Index(i)],
                "missing key `origin`",
            );
            return None;
        };
        let parsed = s.parse::<Uri>().ok().and_then(|u| {
            let path_ok = u
                .path_and_query()
                .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
            match (u.scheme().cloned(), u.authority().cloned()) {
                (Some(scheme), Some(authority)) if path_ok => Some(Origin {
                    scheme,
                    authority,
                    client: None,
                    host: None,
                }),
                _ => None,
            }
        });
        let mut origin = match parsed {
            Some(o) if o.scheme == Scheme::HTTP || o.scheme == Scheme::HTTPS => o,
            Some(_) => {
                self.error(
                    &room_key(i, "origin"),
                    "only http:// and https:// origins are supported",
                );
                return None;
            }
            None => {
                self.error(
                    &room_key(i, "origin"),
                    format!("{s:?} is not an origin; write e.g. \"http://127.0.0.1:9001\""),
                );
                return None;
            }
        };
        if let Some(ca) = &r.origin_ca {
            if origin.scheme != Scheme::HTTPS {
                self.error(
                    &room_key(i, "origin_ca"),
                    "only an https:// origin has a CA to trust",
                );
                return None;
            }
            let path = self.resolve(ca);
            let tls = crate::tls::load_roots(&path).and_then(|roots| {
                crate::tls::client_config(Some(roots)).map_err(|e| e.to_string())
            });
            match tls {
                Ok(tls) => origin.client = Some(crate::proxy::client(limits, tls)),
                Err(e) => {
                    self.error(&room_key(i, "origin_ca"), e);
                    return None;
                }
            }
        }
        if let Some(h) = &r.origin_host {
            match http::HeaderValue::from_str(h) {
                Ok(v) if !h.is_empty() && super::super::gateway::route::normalize(h).is_some() => {
                    origin.host = Some(v)
                }
                _ => {
                    self.error(
                        &room_key(i, "origin_host"),
                        format!("{h:?} is not a host name"),
                    );
                    return None;
                }
            }
        }
        Some(origin)
    }

    fn settings(&mut self, i: usize, r: &RoomFile) -> Settings {
        let d = Settings::default();
        let count = |v: &mut Self, k: &str, n: Option<i64>| -> Option<u32> {
            let n = n?;
            match u32::try_from(n) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    v.error(&room_key(i, k), "must be a whole number of at least 1");
                    None
                }
            }
        };
        let active_users = count(self, "active_users", r.active_users);
        let admit_per_minute = count(self, "admit_per_minute", r.admit_per_minute);
        let max_joins_per_prefix_per_minute = count(
            self,
            "max_joins_per_prefix_per_minute",
            r.max_joins_per_prefix_per_minute,
        );
        if r.active_users.is_none() && r.admit_per_minute.is_none() {
            self.error(
                &[Seg::Key("room".into()), Seg::Index(i)],
                "set `active_users`, `admit_per_minute` or both",
            );
        }
        let policy = match r.queue.as_deref() {
            None | Some("fifo") => Policy::Fifo,
            Some("random") => Policy::Random,
            Some("lottery") => Policy::Lottery,
            Some(other) => {
                self.error(
                    &room_key(i, "queue"),
                    format!(
                        "{other:?} is not a queue policy; use \"fifo\", \"random\" or \"lottery\""
                    ),
                );
                Policy::Fifo
            }
        };
        let mode = match r.mode.as_deref() {
            None | Some("queue") => Mode::Queue,
            Some("reject") => Mode::Reject,
            Some(other) => {
                self.error(
                    &room_key(i, "mode"),
                    format!("{other:?} is not a mode; use \"queue\" or \"reject\""),
                );
                Mode::Queue
            }
        };
        Settings {
            active_users,
            admit_per_minute,
            max_joins_per_prefix_per_minute,
            session_ttl: self.duration(
                &room_key(i, "session_ttl"),
                r.session_ttl.as_ref(),
                d.session_ttl,
            ),
            abandon_after: self.duration(
                &room_key(i, "abandon_after"),
                r.abandon_after.as_ref(),
                d.abandon_after,
            ),
            release_window: self.duration(
                &room_key(i, "release_window"),
                r.release_window.as_ref(),
                d.release_window,
            ),
            max_session: r
                .max_session
                .as_ref()
                .map(|m| self.duration(&room_key(i, "max_session"), Some(m), d.session_ttl)),
            policy,
            draw_every: self.duration(
                &room_key(i, "draw_every"),
                r.draw_every.as_ref(),
                d.draw_every,
            ),
            paused: r.paused.unwrap_or(false),
            mode,
        }
    }

    fn status(&mut self, i: usize, k: &str, value: Option<i64>, default: u16) -> StatusCode {
        let n = value.unwrap_or(i64::from(default));
        match n {
            200 | 202 | 429 | 503 => StatusCode::from_u16(n as u16).unwrap_or(StatusCode::OK),
            _ => {
                self.error(&room_key(i, k), "must be 200, 202, 429 or 503");
                StatusCode::from_u16(default).unwrap_or(StatusCode::OK)
            }
        }
    }

    /// Loads and compiles a room's template, renders it once with sample values, and returns the
    /// name it is registered under.
    fn template(
        &mut self,
        i: usize,
        k: &str,
        path: Option<&str>,
        builtin: &str,
        pages: &mut Pages,
        room: &str,
    ) -> String {
        let Some(p) = path else {
            return builtin.to_string();
        };
        let full = self.resolve(p);
        let name = format!("room/{room}/{k}.html");
        let source = match std::fs::read_to_string(&full) {
            Ok(s) => s,
            Err(e) => {
                self.error(
                    &room_key(i, k),
                    format!("cannot read {}: {e}", full.display()),
                );
                return builtin.to_string();
            }
        };
        if let Err(e) = pages.add(name.clone(), source) {
            self.error(&room_key(i, k), format!("{}: {e}", full.display()));
            return builtin.to_string();
        }
        let sample = View {
            state: ViewState::Queued,
            position: Some(12),
            queue_depth: 40,
            estimated_wait_seconds: Some(90),
            release_rate_per_minute: 8.0,
            poll_after_seconds: 5,
            progress_percent: 30,
            chance_next_minute: None,
            next_draw_in_ms: None,
        };
        let ctx = if k == "page" {
            pages::waiting_context(room, &sample, Some("sample"))
        } else {
            pages::closed_context(room, Some("sample"), 30)
        };
        if let Err(e) = pages.render(&name, ctx) {
            self.error(
                &room_key(i, k),
                format!("{} does not render: {e}", full.display()),
            );
        }
        name
    }
}
