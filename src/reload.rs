//! The one reload task: the file watched by polling (an editor that writes a new file and renames
//! it over the old one is seen like any other change; one written in place is waited for until it
//! settles, see `watch`), SIGHUP, and `POST /api/v1/reload`. Each validates the whole file and
//! swaps it in atomically, or changes nothing and says why.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

mod watch;

use self::watch::{self as file_watch, REMOVAL_SETTLE, Ready, Watch};
use crate::config::{Config, ReloadStatus, RoomConfig};
use crate::env::Env;
use crate::error::{ConfigError, ConfigErrors};
use crate::gateway::Gateway;
use crate::metrics as m;
use crate::store::Store;

/// How often the file is read for changes.
pub const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Asks the reload task for a reload and waits for its result.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<oneshot::Sender<ReloadStatus>>,
}

impl ReloadHandle {
    /// `None` when the gateway is stopping.
    pub async fn reload(&self) -> Option<ReloadStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(tx).await.ok()?;
        rx.await.ok()
    }
}

/// Starts the reload task for `gw`'s file.
pub fn spawn(
    gw: Arc<Gateway>,
    env: Env,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> (ReloadHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(8);
    metrics::gauge!(m::CONFIG_LAST_RELOAD_OK).set(1.0);
    for waiting in ["true", "false"] {
        metrics::counter!(m::ROOMS_REMOVED, "waiting" => waiting).increment(0);
    }
    let task = tokio::spawn(run(gw, env, rx, shutdown));
    (ReloadHandle { tx }, task)
}

async fn run(
    gw: Arc<Gateway>,
    env: Env,
    mut requests: mpsc::Receiver<oneshot::Sender<ReloadStatus>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let path = gw.config().file.clone();
    let mut watch = Watch::new(tokio::fs::read(&path).await.ok());
    let mut poll = tokio::time::interval(WATCH_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        tokio::select! {
            _ = poll.tick() => {
                // File reads run on the blocking pool, never on a thread serving visitors.
                let p = path.clone();
                let seen = tokio::task::spawn_blocking(move || file_watch::read(&p))
                    .await
                    .ok()
                    .flatten();
                let Some(seen) = seen else {
                    watch.unsteady();
                    continue;
                };
                let now = tokio::time::Instant::now();
                if let Some(ready) = watch.observe(seen, now, SystemTime::now()) {
                    reload_watched(&gw, &env, &path, &mut watch, ready);
                }
            }
            Some(()) = recv_hangup(&mut hangup) => {
                if let (_, Some(read)) = reload_file(&gw, &env, &path, "SIGHUP").await {
                    watch.settle(read);
                }
            }
            Some(reply) = requests.recv() => {
                let (status, read) = reload_file(&gw, &env, &path, "admin API").await;
                if let Some(read) = read {
                    watch.settle(read);
                }
                let _ = reply.send(status);
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn recv_hangup(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// A change the file watch saw settle: applied, refused, or, when it removes rooms before
/// [`REMOVAL_SETTLE`], held for a later poll.
fn reload_watched(gw: &Gateway, env: &Env, path: &Path, watch: &mut Watch, ready: Ready) {
    const TRIGGER: &str = "file change";
    match crate::config::parse(path, &String::from_utf8_lossy(&ready.bytes)) {
        Ok(mut new) => {
            new.read_env(env);
            let old = gw.config();
            let removed: Vec<&str> = old
                .rooms
                .iter()
                .filter(|o| !new.rooms.iter().any(|r| r.name == o.name))
                .map(|o| o.name.as_str())
                .collect();
            if !removed.is_empty() && !ready.may_remove_rooms {
                tracing::info!(
                    rooms = ?removed,
                    wait = ?REMOVAL_SETTLE,
                    "the changed file removes rooms: applied once it has stayed the same a while longer"
                );
                watch.hold();
                return;
            }
            apply(gw, path, new, TRIGGER);
        }
        Err(errors) => {
            refuse(gw, errors, TRIGGER);
        }
    }
    watch.settle(ready.bytes);
}

/// Reloads from the file on disk; returns the status and the bytes read.
async fn reload_file(
    gw: &Gateway,
    env: &Env,
    path: &Path,
    trigger: &str,
) -> (ReloadStatus, Option<Vec<u8>>) {
    match tokio::fs::read(path).await {
        Ok(bytes) => (reload(gw, env, path, &bytes, trigger), Some(bytes)),
        Err(e) => {
            let errors = ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }]);
            (refuse(gw, errors, trigger), None)
        }
    }
}

/// Validates `bytes` as the file at `path` and swaps it in, or keeps the old configuration.
/// The variables the file names are looked up again (a renamed `token_env` applies now; a new
/// value in the process's environment needs a restart, which is the only way to change it).
pub fn reload(gw: &Gateway, env: &Env, path: &Path, bytes: &[u8], trigger: &str) -> ReloadStatus {
    let text = String::from_utf8_lossy(bytes);
    match crate::config::parse(path, &text) {
        Ok(mut new) => {
            let moved = crate::config::moved_running(path, &text, &new, &running_events(gw));
            if !moved.is_empty() {
                return refuse(gw, ConfigErrors(moved), trigger);
            }
            new.read_env(env);
            apply(gw, path, new, trigger)
        }
        Err(errors) => refuse(gw, errors, trigger),
    }
}

/// The scheduled events running now, with the `starts_at` of the file in force.
fn running_events(gw: &Gateway) -> Vec<crate::config::Running> {
    let now = crate::store::snapshot::unix_ms();
    let config = gw.config();
    let mut running = Vec::new();
    for rc in &config.rooms {
        let Some(room) = gw.room(&rc.name) else {
            continue;
        };
        let o = room.overrides();
        for e in &rc.events {
            if e.phase(o.events.get(&e.name), now) == crate::config::schedule::Phase::Running {
                running.push((rc.name.clone(), e.name.clone(), e.starts_at_ms));
            }
        }
    }
    running
}

/// Swaps in a validated configuration.
fn apply(gw: &Gateway, path: &Path, new: Config, trigger: &str) -> ReloadStatus {
    let needs_restart = needs_restart(gw.boot_config(), &new);
    log_room_changes(gw, &new, trigger);
    let rooms = new.rooms.len();
    gw.swap(new);
    metrics::counter!(m::CONFIG_RELOADS, "result" => "ok").increment(1);
    metrics::gauge!(m::CONFIG_LAST_RELOAD_OK).set(1.0);
    tracing::info!(
        trigger,
        rooms,
        needs_restart = %needs_restart.join(", "),
        file = %path.display(),
        "configuration reloaded"
    );
    let status = ReloadStatus {
        needs_restart,
        ..ReloadStatus::loaded()
    };
    gw.set_reload_status(status.clone());
    status
}

fn refuse(gw: &Gateway, errors: ConfigErrors, trigger: &str) -> ReloadStatus {
    metrics::counter!(m::CONFIG_RELOADS, "result" => "error").increment(1);
    metrics::gauge!(m::CONFIG_LAST_RELOAD_OK).set(0.0);
    tracing::error!(trigger, errors = %errors, "configuration refused; the old one stays in force");
    let status = ReloadStatus {
        ok: false,
        at: SystemTime::now(),
        errors: errors.0,
        needs_restart: Vec::new(),
    };
    gw.set_reload_status(status.clone());
    status
}

/// One log line per room that a reload adds, removes, pauses, resumes, enables or disables.
fn log_room_changes(gw: &Gateway, new: &Config, trigger: &str) {
    let old = &gw.config();
    for r in &new.rooms {
        match old.rooms.iter().find(|o| o.name == r.name) {
            None => tracing::info!(room = %r.name, "room added"),
            Some(o) => {
                if o.enabled != r.enabled {
                    tracing::info!(room = %r.name, enabled = r.enabled, "room state changed");
                }
                if o.settings.paused != r.settings.paused {
                    tracing::info!(room = %r.name, paused = r.settings.paused, "room state changed");
                }
            }
        }
    }
    for o in old
        .rooms
        .iter()
        .filter(|o| !new.rooms.iter().any(|r| r.name == o.name))
    {
        removed(gw, o, trigger);
    }
}

/// A room removed by a reload: loud when it strands visitors (in line, or admitted), who lose
/// their place and get 421 from now on.
fn removed(gw: &Gateway, old: &RoomConfig, trigger: &str) {
    let name = &old.name;
    let (queued, sessions) = gw.room(name).map_or((0, 0), |room| {
        let s = gw.store().reading(&room, &old.settings);
        (s.waiting, s.sessions)
    });
    let waiting = queued > 0 || sessions > 0;
    metrics::counter!(m::ROOMS_REMOVED, "waiting" => if waiting { "true" } else { "false" })
        .increment(1);
    if waiting {
        tracing::error!(
            room = %name,
            queued,
            sessions,
            trigger,
            "room removed with visitors in it: they lose their place and its hosts now get 421"
        );
    } else {
        tracing::info!(room = %name, trigger, "room removed; its hosts now get 421");
    }
}

/// Keys whose change takes effect only after a restart: the listeners, the token keys, the
/// state folder, and the limits the listeners and the origin client are built with.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    // The key as an operator writes it, and the field it lands in.
    macro_rules! changed {
        ($($name:literal => $($field:ident).+),* $(,)?) => {
            [$(($name, old.$($field).+ != new.$($field).+)),*]
        };
    }
    let checks = changed![
        "listen.http" => listen.http,
        "listen.https" => listen.https,
        "listen.admin" => listen.admin,
        "listen.reuse_port" => listen.reuse_port,
        "log.format" => log_json,
        "admin.max_connections" => admin_max_connections,
        "demo.listen" => demo,
        "token" => token,
        "state.dir" => state.dir,
        "store" => store,
        "limits.header_timeout" => limits.header_timeout,
        "limits.max_header_bytes" => limits.max_header_bytes,
        "limits.max_uri_bytes" => limits.max_uri_bytes,
        "limits.write_timeout" => limits.write_timeout,
        "limits.idle_timeout" => limits.idle_timeout,
        "limits.max_connections" => limits.max_connections,
        "limits.origin_connect_timeout" => limits.origin_connect_timeout,
    ];
    checks
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(k, _)| (*k).to_string())
        .collect()
}
