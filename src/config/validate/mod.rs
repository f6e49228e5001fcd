//! Turns a `FileConfig` into a `Config`, collecting every error with its file, line and key.
//! The top level and the shared checks live here; `network` checks listeners, TLS and limits,
//! `room` checks each `[[room]]`.

mod network;
mod room;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::file::FileConfig;
use super::locate::{Locator, Seg, render};
use super::{Config, Listen, StateSettings, TokenSettings};
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
        let admin_max_connections = match f.admin.max_connections {
            None => 64,
            Some(n @ 1..=65_536) => n as usize,
            Some(_) => {
                self.error(
                    &key(&["admin", "max_connections"]),
                    "must be between 1 and 65536",
                );
                64
            }
        };
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
            admin_token: None,
            admin_max_connections,
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
}
