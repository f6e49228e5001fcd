//! The one reload task: the file watched by polling (an editor that writes a new file and renames
//! it over the old one is seen like any other change), SIGHUP, and `POST /api/v1/reload`. Each
//! validates the whole file and swaps it in atomically, or changes nothing and says why.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::Config;
use crate::error::{ConfigError, ConfigErrors};
use crate::gateway::Gateway;
use crate::metrics as m;

/// How often the file is read for changes.
pub const WATCH_EVERY: Duration = Duration::from_millis(200);

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
    shutdown: watch::Receiver<bool>,
) -> (ReloadHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(8);
    metrics::gauge!(m::CONFIG_LAST_RELOAD_OK).set(1.0);
    let task = tokio::spawn(run(gw, rx, shutdown));
    (ReloadHandle { tx }, task)
}

async fn run(
    gw: Arc<Gateway>,
    mut requests: mpsc::Receiver<oneshot::Sender<ReloadStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let path = gw.config().file.clone();
    // What was last loaded (or last refused), and a changed content seen once.
    let mut settled = std::fs::read(&path).ok();
    let mut candidate: Option<Vec<u8>> = None;
    let mut poll = tokio::time::interval(WATCH_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        tokio::select! {
            _ = poll.tick() => {
                let Ok(now) = std::fs::read(&path) else { continue };
                if settled.as_ref() == Some(&now) {
                    candidate = None;
                } else if candidate.as_ref() == Some(&now) {
                    // The same content on two reads in a row: not an editor mid-save.
                    reload(&gw, &path, &now, "file change");
                    settled = Some(now);
                    candidate = None;
                } else {
                    candidate = Some(now);
                }
            }
            Some(()) = recv_hangup(&mut hangup) => {
                settled = reload_file(&gw, &path, "SIGHUP").1.or(settled);
            }
            Some(reply) = requests.recv() => {
                let (status, read) = reload_file(&gw, &path, "admin API");
                settled = read.or(settled);
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

/// Reloads from the file on disk; returns the status and the bytes read.
fn reload_file(gw: &Gateway, path: &Path, trigger: &str) -> (ReloadStatus, Option<Vec<u8>>) {
    match std::fs::read(path) {
        Ok(bytes) => (reload(gw, path, &bytes, trigger), Some(bytes)),
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
pub fn reload(gw: &Gateway, path: &Path, bytes: &[u8], trigger: &str) -> ReloadStatus {
    let text = String::from_utf8_lossy(bytes);
    match super::parse(path, &text) {
        Ok(new) => {
            let needs_restart = needs_restart(gw.boot_config(), &new);
            log_room_changes(&gw.config(), &new);
            let rooms = new.rooms.len();
            gw.swap(new);
            metrics::counter!(m::CONFIG_RELOADS, "result" => "ok").increment(1);
            metrics::gauge!(m::CONFIG_LAST_RELOAD_OK).set(1.0);
            tracing::info!(
                trigger,
                rooms,
                ?needs_restart,
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
        Err(errors) => refuse(gw, errors, trigger),
    }
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
fn log_room_changes(old: &Config, new: &Config) {
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
    for o in &old.rooms {
        if !new.rooms.iter().any(|r| r.name == o.name) {
            tracing::info!(room = %o.name, "room removed; its hosts now get 421");
        }
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
        "demo.listen" => demo,
        "token" => token,
        "state.dir" => state.dir,
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
