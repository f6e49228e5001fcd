//! Turns a `FileConfig` into a `Config`, collecting every error with its file, line and key.
//! The top level and the shared checks live here; `network` checks listeners, TLS and limits,
//! `room` checks each `[[room]]`.

mod cors;
mod event;
mod network;
mod partial;
mod room;
mod store;
mod text;
mod wording;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::file::{DemoFile, FileConfig, RoomFile, StateFile};
use super::locate::{Locator, Seg, render};
use super::{Config, Listen, RoomConfig, StateSettings, TokenSettings};
use crate::error::{ConfigError, ConfigErrors};
use crate::pages::Pages;

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
/// A scheduled event running now: its room, its name and the `starts_at` (unix ms) of the file
/// it started under.
pub type Running = (String, String, u64);

/// Refuses a new file that moves the `starts_at` of an event running now: the event has started
/// and its pre-queue is in line; moving it would not undo that. Every error names file, line and
/// key.
pub fn moved_running(
    path: &Path,
    text: &str,
    new: &Config,
    running: &[Running],
) -> Vec<ConfigError> {
    let Ok(file) = toml::from_str::<FileConfig>(text) else {
        return Vec::new();
    };
    let loc = Locator::new(text);
    let mut errors = Vec::new();
    for (room, event, starts_at_ms) in running {
        let Some(rc) = new.rooms.iter().find(|r| &r.name == room) else {
            continue;
        };
        let Some(e) = rc.events.iter().find(|e| &e.name == event) else {
            continue;
        };
        if e.starts_at_ms == *starts_at_ms {
            continue;
        }
        let i = file
            .room
            .iter()
            .position(|r| r.name.as_deref() == Some(room));
        let j = i.and_then(|i| {
            file.room[i]
                .event
                .iter()
                .position(|x| x.name.as_deref() == Some(event))
        });
        let (Some(i), Some(j)) = (i, j) else { continue };
        let at = [
            Seg::Key("room".into()),
            Seg::Index(i),
            Seg::Key("event".into()),
            Seg::Index(j),
            Seg::Key("starts_at".into()),
        ];
        errors.push(ConfigError {
            file: path.to_path_buf(),
            line: loc.line(&at),
            key: render(&at),
            message: format!(
                "event {event:?} of room {room:?} is running (it started at {}): its start \
                 cannot move; end it first (POST /api/v1/rooms/{room}/events/{event}/end) or \
                 keep starts_at",
                crate::pages::rfc3339_unix(*starts_at_ms)
            ),
        });
    }
    errors
}

pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let read = partial::read(path, text)?;
    let mut v = Validator {
        file: path.to_path_buf(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        loc: Locator::new(&read.text),
        errors: Vec::new(),
    };
    let config = v.config(read.file);
    if read.errors.is_empty() && v.errors.is_empty() {
        return Ok(config);
    }
    if read.errors.is_empty() {
        return Err(ConfigErrors(v.errors));
    }
    // Parts that did not read were validated blank: only the errors of the others count.
    let others: Vec<ConfigError> = v
        .errors
        .into_iter()
        .filter(|e| !partial::in_blanked(&read.blanked, &e.key))
        .collect();
    let mut errors = read.errors;
    errors.extend(others);
    errors.sort_by_key(|e| e.line);
    Err(ConfigErrors(errors))
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

    /// The whole file, section by section, then the rooms.
    fn config(&mut self, f: FileConfig) -> Config {
        let tick = self.duration(&key(&["tick"]), f.tick.as_ref(), Duration::from_secs(1));
        let http = self.addr(
            &key(&["listen", "http"]),
            f.listen.http.as_ref(),
            "127.0.0.1:8080",
        );
        let https = self.optional_addr(&key(&["listen", "https"]), f.listen.https.as_ref());
        let tls = self.tls(&f);
        let trusted_proxies = self.trusted_proxies(&f.trusted_proxies);
        let admin = self.optional_addr(&key(&["listen", "admin"]), f.listen.admin.as_ref());
        let demo = self.demo(f.demo.as_ref());
        let state = self.state(&f.state);
        let store = self.store(&f.store, &f.token);
        let limits = self.limits(&f.limits);
        let admin_max_connections = self.admin_max_connections(f.admin.max_connections);
        let mut pages = Pages::new();
        let (rooms, hosts) = self.rooms(&f.room, &mut pages);
        let default_room = self.default_room(f.default_room.as_ref(), &rooms);
        Config {
            file: self.file.clone(),
            tick,
            listen: Listen {
                http: http.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
                https,
                admin,
                reuse_port: f.listen.reuse_port.unwrap_or(false),
                health_path: self.health_path(f.listen.health_path.as_deref()),
            },
            admin_token_env: f.admin.token_env.clone(),
            admin_token: None,
            admin_max_connections,
            token: TokenSettings {
                secret_env: f.token.secret_env.clone(),
                previous_secret_envs: f.token.previous_secret_envs.clone(),
            },
            state,
            store,
            limits,
            demo,
            access_log: f.log.access.unwrap_or(true),
            log_json: self.log_json(f.log.format.as_deref()),
            rooms,
            hosts,
            default_room,
            pages,
            tls,
            trusted_proxies,
        }
    }

    /// `[listen] health_path`: a path under the reserved prefix (so no site page is hidden).
    fn health_path(&mut self, path: Option<&str>) -> String {
        let p = path.unwrap_or("/__anteroom/healthz");
        if !p.starts_with(crate::pages::RESERVED_PREFIX)
            || p.len() == crate::pages::RESERVED_PREFIX.len()
        {
            self.error(
                &key(&["listen", "health_path"]),
                format!(
                    "{p:?} must be a path under {}",
                    crate::pages::RESERVED_PREFIX
                ),
            );
        }
        p.to_string()
    }

    /// `[log] format`: "text" (the default) or "json".
    fn log_json(&mut self, format: Option<&str>) -> bool {
        match format {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                self.error(
                    &key(&["log", "format"]),
                    format!("{other:?} is not a log format; use \"text\" or \"json\""),
                );
                false
            }
        }
    }

    /// An address key with no default: `None` when the file leaves it out or it is refused.
    fn optional_addr(&mut self, path: &[Seg], value: Option<&String>) -> Option<SocketAddr> {
        value.and_then(|a| self.addr(path, Some(a), ""))
    }

    /// `[[tls.cert]]`, which `listen.https` needs at least one of.
    fn tls(&mut self, f: &FileConfig) -> crate::certs::Certs {
        let tls = self.certs(&f.tls);
        if f.listen.https.is_some() && f.tls.cert.is_empty() {
            self.error(
                &key(&["listen", "https"]),
                "needs at least one [[tls.cert]] to serve",
            );
        }
        tls
    }

    /// `[demo]`: the built-in origin's address, when the section is there.
    fn demo(&mut self, demo: Option<&DemoFile>) -> Option<SocketAddr> {
        demo.and_then(|d| {
            self.addr(
                &key(&["demo", "listen"]),
                d.listen.as_ref(),
                "127.0.0.1:9001",
            )
        })
    }

    /// `[state]`: the folder (relative to the file's) and how often it is written.
    fn state(&mut self, s: &StateFile) -> StateSettings {
        StateSettings {
            dir: self.resolve(s.dir.as_deref().unwrap_or("state")),
            snapshot_every: self.duration(
                &key(&["state", "snapshot_every"]),
                s.snapshot_every.as_ref(),
                Duration::from_secs(2),
            ),
        }
    }

    /// `admin.max_connections`: 1 to 65536, 64 unless set.
    fn admin_max_connections(&mut self, value: Option<u64>) -> usize {
        match value {
            None => 64,
            Some(n @ 1..=65_536) => n as usize,
            Some(_) => {
                self.error(
                    &key(&["admin", "max_connections"]),
                    "must be between 1 and 65536",
                );
                64
            }
        }
    }

    /// Every valid `[[room]]`, and which of them each host belongs to. At least one room is
    /// needed, and no name or host may be used twice.
    fn rooms(
        &mut self,
        files: &[RoomFile],
        pages: &mut Pages,
    ) -> (Vec<Arc<RoomConfig>>, HashMap<String, usize>) {
        let mut rooms = Vec::new();
        let mut hosts = HashMap::new();
        let mut names = HashSet::new();
        if files.is_empty() {
            self.error(&key(&["room"]), "at least one [[room]] is needed");
        }
        for (i, r) in files.iter().enumerate() {
            if let Some(room) = self.room(i, r, pages) {
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
        (rooms, hosts)
    }

    /// `default_room`: the index of the room it names.
    fn default_room(&mut self, name: Option<&String>, rooms: &[Arc<RoomConfig>]) -> Option<usize> {
        let name = name?;
        let found = rooms.iter().position(|r| &r.name == name);
        if found.is_none() {
            self.error(
                &key(&["default_room"]),
                format!("no room is named {name:?}"),
            );
        }
        found
    }
}
