//! The tick loop: every `tick`, each room expires, releases and publishes its figures.

use std::sync::Arc;

use tokio::sync::watch;

use crate::gateway::Gateway;
use crate::metrics as m;
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
        let rc = r.effective(rc);
        let ticked = gw.store().tick(&r, &rc.settings).await;
        if ticked.reserve_low {
            gw.snapshot_soon();
        }
        publish(&rc.name, &ticked);
    }
    if let Some(h) = m::install() {
        h.run_upkeep();
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
