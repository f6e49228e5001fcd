//! One `[[room]]`: names, hosts, origin, engine settings, pages and statuses.

use http::uri::{Scheme, Uri};
use http::{HeaderValue, StatusCode};

use super::super::file::RoomFile;
use super::super::locate::Seg;
use super::super::{Bypass, Origin, OriginProtocol, RoomConfig};
use super::{Validator, room_key};
use crate::pages::{self, PageKind, Pages};
use crate::pow::{self, JoinChallenge};
use crate::room::{Mode, Policy, Settings};

impl Validator<'_> {
    pub(super) fn room(&mut self, i: usize, r: &RoomFile, pages: &mut Pages) -> Option<RoomConfig> {
        let errors_before = self.errors.len();
        let name = self.room_name(i, r);
        let hosts = self.hosts(i, r);
        let origin = self.origin(i, r);
        let settings = self.settings(i, r);
        let bypass = self.bypass(i, r);
        let (page, closed_page, error_page) = self.pages(i, &name, r, pages);
        let page_status = self.status(i, "page_status", r.page_status, 200);
        let json_status = self.status(i, "json_status", r.json_status, 429);
        let cookie_name = self.cookie_name(i, &name, r);
        let (events, outside_events) = self.events(i, &name, r, pages);
        let join_challenge = self.join_challenge(i, r);
        let text = self.text(i, r);
        let display_name = self.display_name(i, r);
        let cors_origins = self.cors_origins(i, r);
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
            error_page,
            page_status,
            json_status,
            cookie_name,
            cookie_prefix_host: r.cookie_prefix_host.unwrap_or(false),
            message: r.message.clone(),
            cors_origins,
            events,
            outside_events,
            join_challenge,
            text,
            display_name,
        })
    }

    /// `name`: required, 1 to 64 of a-z, 0-9, - and _.
    fn room_name(&mut self, i: usize, r: &RoomFile) -> String {
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
        name
    }

    /// `hosts`: at least one, each a bare host name, kept in lower case.
    fn hosts(&mut self, i: usize, r: &RoomFile) -> Vec<String> {
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
        hosts
    }

    /// `bypass`: the paths (or path prefixes, ending in `*`) that skip the room.
    fn bypass(&mut self, i: usize, r: &RoomFile) -> Vec<Bypass> {
        r.bypass
            .iter()
            .enumerate()
            .filter_map(|(j, b)| {
                if let Some(problem) = bypass_problem(b) {
                    let mut p = room_key(i, "bypass");
                    p.push(Seg::Index(j));
                    self.error(&p, problem);
                    return None;
                }
                Some(match b.strip_suffix('*') {
                    Some(prefix) => Bypass::Prefix(prefix.to_string()),
                    None => Bypass::Exact(b.clone()),
                })
            })
            .collect()
    }

    /// `page`, `closed_page` and `error_page`: the names of the waiting and closed templates,
    /// and of the error template if the room has its own.
    fn pages(
        &mut self,
        i: usize,
        name: &str,
        r: &RoomFile,
        pages: &mut Pages,
    ) -> (String, String, Option<String>) {
        let page = self.template(
            i,
            name,
            Template {
                key: "page",
                path: r.page.as_deref(),
                builtin: pages::BUILTIN_WAITING,
            },
            pages,
        );
        let closed_page = self.template(
            i,
            name,
            Template {
                key: "closed_page",
                path: r.closed_page.as_deref(),
                builtin: pages::BUILTIN_CLOSED,
            },
            pages,
        );
        let error = Template {
            key: "error_page",
            path: r.error_page.as_deref(),
            builtin: pages::BUILTIN_ERROR,
        };
        let error_page = r
            .error_page
            .is_some()
            .then(|| self.template(i, name, error, pages));
        (page, closed_page, error_page)
    }

    /// `cookie_name`: letters, digits, _ - and . only; `anteroom_<name>` unless set.
    fn cookie_name(&mut self, i: usize, name: &str, r: &RoomFile) -> String {
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
        cookie_name
    }

    /// `origin`, with `origin_ca` and `origin_host`; `None` after an error.
    fn origin(&mut self, i: usize, r: &RoomFile) -> Option<Origin> {
        let Some(s) = r.origin.as_deref() else {
            self.error(
                &[Seg::Key("room".into()), Seg::Index(i)],
                "missing key `origin`",
            );
            return None;
        };
        let mut origin = self.origin_uri(i, s)?;
        if let Some(ca) = &r.origin_ca {
            origin.tls = Some(self.origin_tls(i, &origin.scheme, ca)?);
        }
        if let Some(h) = &r.origin_host {
            origin.host = Some(self.origin_host(i, h)?);
        }
        if let Some(p) = &r.origin_protocol {
            origin.protocol = match p.as_str() {
                "http1" => OriginProtocol::Http1,
                "h2" => OriginProtocol::H2,
                "auto" => OriginProtocol::Auto,
                other => {
                    self.error(
                        &room_key(i, "origin_protocol"),
                        format!("{other:?} is not one of \"http1\", \"h2\", \"auto\""),
                    );
                    return None;
                }
            };
        }
        Some(origin)
    }

    /// `origin`: an http:// or https:// scheme and authority, no path.
    fn origin_uri(&mut self, i: usize, s: &str) -> Option<Origin> {
        match parse_origin(s) {
            Some(o) if o.scheme == Scheme::HTTP || o.scheme == Scheme::HTTPS => Some(o),
            Some(_) => {
                self.error(
                    &room_key(i, "origin"),
                    "only http:// and https:// origins are supported",
                );
                None
            }
            None => {
                self.error(
                    &room_key(i, "origin"),
                    format!("{s:?} is not an origin; write e.g. \"http://127.0.0.1:9001\""),
                );
                None
            }
        }
    }

    /// `origin_ca`: the TLS settings of an https:// origin that trusts only the CA in that PEM
    /// file (the client itself is built by the gateway).
    fn origin_tls(
        &mut self,
        i: usize,
        scheme: &Scheme,
        ca: &str,
    ) -> Option<std::sync::Arc<rustls::ClientConfig>> {
        if *scheme != Scheme::HTTPS {
            self.error(
                &room_key(i, "origin_ca"),
                "only an https:// origin has a CA to trust",
            );
            return None;
        }
        let path = self.resolve(ca);
        let tls = crate::certs::load_roots(&path)
            .and_then(|roots| crate::certs::client_config(Some(roots)).map_err(|e| e.to_string()));
        match tls {
            Ok(tls) => Some(std::sync::Arc::new(tls)),
            Err(e) => {
                self.error(&room_key(i, "origin_ca"), e);
                None
            }
        }
    }

    /// `origin_host`: the Host header the origin receives.
    fn origin_host(&mut self, i: usize, h: &str) -> Option<HeaderValue> {
        match HeaderValue::from_str(h) {
            Ok(v) if !h.is_empty() && crate::target::normalise_host(h).is_some() => Some(v),
            _ => {
                self.error(
                    &room_key(i, "origin_host"),
                    format!("{h:?} is not a host name"),
                );
                None
            }
        }
    }

    /// The engine's settings: capacity, queue policy and mode, then the timers.
    fn settings(&mut self, i: usize, r: &RoomFile) -> Settings {
        let active_users = self.at_least_one(i, "active_users", r.active_users);
        let admit_per_minute = self.at_least_one(i, "admit_per_minute", r.admit_per_minute);
        let max_joins_per_prefix_per_minute = self.at_least_one(
            i,
            "max_joins_per_prefix_per_minute",
            r.max_joins_per_prefix_per_minute,
        );
        if r.active_users.is_none() && r.admit_per_minute.is_none() {
            self.error(
                &[Seg::Key("room".into()), Seg::Index(i)],
                "set `active_users`, `admit_per_minute` or both",
            );
        }
        let policy = self.policy(i, r.queue.as_deref());
        let mode = self.mode(i, r.mode.as_deref());
        let d = Settings::default();
        let mut timer = |k: &str, value: Option<&String>, default| {
            self.duration(&room_key(i, k), value, default)
        };
        Settings {
            active_users,
            admit_per_minute,
            max_joins_per_prefix_per_minute,
            session_ttl: timer("session_ttl", r.session_ttl.as_ref(), d.session_ttl),
            abandon_after: timer("abandon_after", r.abandon_after.as_ref(), d.abandon_after),
            release_window: timer(
                "release_window",
                r.release_window.as_ref(),
                d.release_window,
            ),
            max_session: r
                .max_session
                .as_ref()
                .map(|m| timer("max_session", Some(m), d.session_ttl)),
            policy,
            draw_every: timer("draw_every", r.draw_every.as_ref(), d.draw_every),
            paused: r.paused.unwrap_or(false),
            mode,
            event: None,
            drop_at_end: false,
        }
    }

    /// A count key (`active_users` and the like): a whole number of at least 1.
    fn at_least_one(&mut self, i: usize, k: &str, n: Option<i64>) -> Option<u32> {
        self.at_least_one_at(&room_key(i, k), n)
    }

    /// [`Self::at_least_one`] for the key at `at`.
    pub(super) fn at_least_one_at(&mut self, at: &[Seg], n: Option<i64>) -> Option<u32> {
        let n = n?;
        match u32::try_from(n) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                self.error(at, "must be a whole number of at least 1");
                None
            }
        }
    }

    /// `queue`: fifo (the default), random or lottery.
    fn policy(&mut self, i: usize, queue: Option<&str>) -> Policy {
        self.policy_at(&room_key(i, "queue"), queue)
    }

    /// [`Self::policy`] for the key at `at`.
    pub(super) fn policy_at(&mut self, at: &[Seg], queue: Option<&str>) -> Policy {
        match queue {
            None | Some("fifo") => Policy::Fifo,
            Some("random") => Policy::Random,
            Some("lottery") => Policy::Lottery,
            Some(other) => {
                self.error(
                    at,
                    format!(
                        "{other:?} is not a queue policy; use \"fifo\", \"random\" or \"lottery\""
                    ),
                );
                Policy::Fifo
            }
        }
    }

    /// `join_challenge`: none (the default) or pow, at `pow_difficulty` leading zero bits
    /// (checked whether or not the challenge is on, so that turning it on cannot fail later).
    fn join_challenge(&mut self, i: usize, r: &RoomFile) -> JoinChallenge {
        let (min, max) = (pow::MIN_DIFFICULTY, pow::MAX_DIFFICULTY);
        let difficulty = match r.pow_difficulty {
            None => pow::DEFAULT_DIFFICULTY,
            Some(n) => match u8::try_from(n) {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    self.error(
                        &room_key(i, "pow_difficulty"),
                        format!(
                            "must be a whole number of leading zero bits from {min} to {max} \
                             (each bit doubles the work of a join)"
                        ),
                    );
                    pow::DEFAULT_DIFFICULTY
                }
            },
        };
        match r.join_challenge.as_deref() {
            None | Some("none") => JoinChallenge::None,
            Some("pow") => JoinChallenge::Pow { difficulty },
            Some(other) => {
                self.error(
                    &room_key(i, "join_challenge"),
                    format!("{other:?} is not a join challenge; use \"none\" or \"pow\""),
                );
                JoinChallenge::None
            }
        }
    }

    /// `mode`: queue (the default) or reject.
    fn mode(&mut self, i: usize, mode: Option<&str>) -> Mode {
        match mode {
            None | Some("queue") => Mode::Queue,
            Some("reject") => Mode::Reject,
            Some(other) => {
                self.error(
                    &room_key(i, "mode"),
                    format!("{other:?} is not a mode; use \"queue\" or \"reject\""),
                );
                Mode::Queue
            }
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
    fn template(&mut self, i: usize, room: &str, t: Template<'_>, pages: &mut Pages) -> String {
        let at = room_key(i, t.key);
        let name = format!("room/{room}/{}.html", t.key);
        self.template_at(&at, room, (name, t), pages)
    }

    /// [`Self::template`] for the key at `at`, registered as `name` (a room's or an event's).
    pub(super) fn template_at(
        &mut self,
        at: &[Seg],
        room: &str,
        (name, t): (String, Template<'_>),
        pages: &mut Pages,
    ) -> String {
        let Template {
            key: k,
            path,
            builtin,
        } = t;
        let Some(p) = path else {
            return builtin.to_string();
        };
        let full = self.resolve(p);
        let source = match std::fs::read_to_string(&full) {
            Ok(s) => s,
            Err(e) => {
                self.error(at, format!("cannot read {}: {e}", full.display()));
                return builtin.to_string();
            }
        };
        if let Err(e) = pages.add(name.clone(), source.clone()) {
            self.error(at, format!("{}: {e}", full.display()));
            return builtin.to_string();
        }
        let kind = match k {
            "closed_page" => PageKind::Closed,
            "error_page" => PageKind::Error,
            _ => PageKind::Waiting,
        };
        if let Err(e) = pages.check(&name, kind, p, &source) {
            self.error(at, e);
            return builtin.to_string();
        }
        let sample = pages::sample(kind, room);
        if let Err(e) = pages.render(&name, sample) {
            self.error(at, format!("{} does not render: {e}", full.display()));
        }
        name
    }
}

/// A room's page template as the file names it: its key, the file, the built-in default.
pub(super) struct Template<'a> {
    pub key: &'a str,
    pub path: Option<&'a str>,
    pub builtin: &'a str,
}

/// Why a `bypass` pattern is refused, if it is. Requests are matched in their normal form, so a
/// pattern must be one too.
fn bypass_problem(b: &str) -> Option<String> {
    let pattern = b.strip_suffix('*').unwrap_or(b);
    match crate::target::normalise_path(pattern) {
        _ if !b.starts_with('/') => Some(format!("{b:?} must start with /")),
        Ok(n) if n != pattern => Some(format!(
            "{b:?} is matched against normalised paths; write it as {:?}",
            format!("{n}{}", &b[pattern.len()..])
        )),
        Ok(_) => None,
        Err(e) => Some(format!("{b:?} has {}", e.reason())),
    }
}

/// An origin URI's scheme and authority, if it has both and no path beyond `/`.
fn parse_origin(s: &str) -> Option<Origin> {
    let u = s.parse::<Uri>().ok()?;
    let path_ok = u
        .path_and_query()
        .is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
    match (u.scheme().cloned(), u.authority().cloned()) {
        (Some(scheme), Some(authority)) if path_ok => Some(Origin {
            scheme,
            authority,
            tls: None,
            host: None,
            protocol: OriginProtocol::Http1,
        }),
        _ => None,
    }
}
