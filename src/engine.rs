//! The tick loop: every `tick`, each room expires, releases and publishes its figures.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::RoomConfig;
use crate::config::schedule::Phase;
use crate::gateway::Gateway;
use crate::metrics as m;
use crate::room::Overrides;
use crate::store::{Store, Ticked};

/// Ticks every room until `shutdown` turns true.
pub async fn run(gw: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let every = gw.config().tick;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        tick_all(&gw).await;
    }
}

/// One tick of every room in the configuration in force.
pub async fn tick_all(gw: &Gateway) {
    let config = gw.config();
    for rc in &config.rooms {
        let Some(r) = gw.room(&rc.name) else { continue };
        let events = event_phases(rc, &r.overrides());
        let rc = r.effective(rc);
        let ticked = gw.store().tick(&r, &rc.settings).await;
        if ticked.reserve_low {
            gw.snapshot_soon();
        }
        publish(&rc.name, &ticked);
        r.publish(figures_of(&rc, &ticked));
        publish_limits(&rc.name, &rc.settings, &ticked);
        publish_events(&rc.name, &ticked, &events);
    }
    if let Some(h) = m::install() {
        h.run_upkeep();
    }
}

/// A hash of what a waiting visitor's standing depends on after a tick: the line, the slots,
/// releases and departures, the estimate, pause and mode, the operator's message. When it
/// changes, the room's event streams wake and each asks for its visitor's standing.
fn figures_of(rc: &RoomConfig, ticked: &Ticked) -> u64 {
    use std::hash::{Hash, Hasher};
    let (t, c) = (&ticked.reading.telemetry, &ticked.reading.counters);
    let mut h = std::hash::DefaultHasher::new();
    (t.queue_depth, t.active, t.released, t.wait_at_back_seconds).hash(&mut h);
    (c.released, c.abandoned, c.left_queue, c.admitted_released).hash(&mut h);
    (rc.settings.paused, rc.settings.mode.as_str(), &rc.message).hash(&mut h);
    (ticked.reading.prequeue_depth, ticked.report.releases.len()).hash(&mut h);
    h.finish()
}

/// The room's limits in force and its arrivals, as metrics. No estimate is given for an empty
/// room (nobody to promise it to).
fn publish_limits(name: &str, s: &crate::room::Settings, ticked: &Ticked) {
    let name = name.to_string();
    for (kind, value) in [
        ("active_users", s.active_users),
        ("admit_per_minute", s.admit_per_minute),
    ] {
        metrics::gauge!(m::ROOM_CAPACITY, "room" => name.clone(), "kind" => kind)
            .set(value.map_or(f64::NAN, f64::from));
    }
    let closed = s.paused || s.mode == crate::room::Mode::Reject;
    metrics::gauge!(m::ROOM_PAUSED, "room" => name.clone()).set(if closed { 1.0 } else { 0.0 });
    metrics::counter!(m::ARRIVALS, "room" => name.clone()).absolute(ticked.reading.counters.joined);
    if ticked.reading.telemetry.queue_depth == 0 {
        metrics::gauge!(m::ESTIMATED_WAIT, "room" => name).set(f64::NAN);
    }
}

/// Each scheduled event of `rc` with its phase now (the operator's start and end applied).
fn event_phases(rc: &RoomConfig, o: &Overrides) -> Vec<(String, Phase)> {
    let now = crate::store::snapshot::unix_ms();
    rc.events
        .iter()
        .map(|e| (e.name.clone(), e.phase(o.events.get(&e.name), now)))
        .collect()
}

/// A room's scheduled events after its tick, as metrics.
fn publish_events(name: &str, ticked: &Ticked, events: &[(String, Phase)]) {
    if events.is_empty() {
        return;
    }
    let name = name.to_string();
    metrics::gauge!(m::PREQUEUE_DEPTH, "room" => name.clone())
        .set(ticked.reading.prequeue_depth.unwrap_or(0) as f64);
    metrics::counter!(m::EVENT_DROPPED, "room" => name.clone())
        .absolute(ticked.reading.dropped_at_end);
    for (event, phase) in events {
        for p in [
            Phase::Upcoming,
            Phase::Prequeue,
            Phase::Running,
            Phase::Ended,
        ] {
            metrics::gauge!(m::EVENT_PHASE, "room" => name.clone(), "event" => event.clone(), "phase" => p.as_str())
                .set(if p == *phase { 1.0 } else { 0.0 });
        }
    }
    if let Some(n) = ticked.report.event.started {
        tracing::info!(room = %name, prequeue = n, "event started: the pre-queue is in line");
    }
    if let Some(n) = ticked.report.event.dropped {
        tracing::info!(room = %name, dropped = n, "event ended: the room is closed, places dropped");
    }
}

/// A room's figures after its tick, as metrics.
fn publish(name: &str, ticked: &Ticked) {
    let (t, report) = (&ticked.reading.telemetry, &ticked.report);
    let name = name.to_string();
    metrics::gauge!(m::QUEUE_DEPTH, "room" => name.clone()).set(t.queue_depth as f64);
    metrics::gauge!(m::ACTIVE_USERS, "room" => name.clone()).set(f64::from(t.active));
    metrics::gauge!(m::RELEASED_USERS, "room" => name.clone()).set(f64::from(t.released));
    // No promise (paused, closed): NaN, which Prometheus shows as no value, not as 0 s.
    metrics::gauge!(m::ESTIMATED_WAIT, "room" => name.clone())
        .set(t.wait_at_back_seconds.map_or(f64::NAN, |w| w as f64));
    metrics::counter!(m::SESSIONS_RECOVERED, "room" => name.clone())
        .absolute(ticked.reading.counters.recovered);
    if report.abandoned > 0 {
        metrics::counter!(m::ABANDONED, "room" => name.clone())
            .increment(u64::from(report.abandoned));
    }
    for (reason, admitted_ms) in &report.ended {
        m::session_ended(&name, *reason);
        metrics::histogram!(m::SESSION_DURATION, "room" => name.clone())
            .record(*admitted_ms as f64 / 1000.0);
    }
    for (_, wait) in &report.releases {
        metrics::histogram!(m::QUEUE_WAIT, "room" => name.clone()).record(*wait as f64 / 1000.0);
    }
}
