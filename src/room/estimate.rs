//! Wait estimates: the measured release rate, the estimated wait at a position, and how long a
//! visitor should wait before polling again.

use rand::RngExt;

use super::Settings;
use super::state::RoomState;

const WINDOW_MS: u64 = 60_000;

/// Releases per second that will actually happen: the `admit_per_minute` budget in force when
/// it is what holds releases back (a slot was free, someone waited, the budget ran out: an
/// operator's cut or raise is in every estimate at once); otherwise the rate measured over the
/// last minute (or `active_users / session_ttl` before anything was measured), never above the
/// budget.
pub(super) fn release_rate(settings: &Settings, state: &RoomState, now_ms: u64) -> f64 {
    match settings.admit_per_minute {
        Some(budget) if state.budget_bound => f64::from(budget) / 60.0,
        Some(budget) => measured_rate(settings, state, now_ms).min(f64::from(budget) / 60.0),
        None => measured_rate(settings, state, now_ms),
    }
}

/// How fast places in line are used up: the release rate less the visitors who came back to
/// the front over the last minute (each takes a release without moving anyone behind them up).
/// Never below half the release rate.
pub(super) fn line_rate(settings: &Settings, state: &RoomState, now_ms: u64) -> f64 {
    let rate = release_rate(settings, state, now_ms);
    let returns = state
        .returns
        .iter()
        .filter(|at| now_ms.saturating_sub(**at) < WINDOW_MS)
        .count() as f64;
    (rate - returns * 1_000.0 / WINDOW_MS as f64).max(rate / 2.0)
}

/// Whether releases are stopped, so that no time can honestly be promised: a paused room, a
/// closed one.
pub(super) fn no_releases(settings: &Settings) -> bool {
    settings.paused || settings.mode == super::Mode::Reject
}

fn measured_rate(settings: &Settings, state: &RoomState, now_ms: u64) -> f64 {
    let recent: u64 = state
        .releases
        .iter()
        .filter(|(at, _)| now_ms.saturating_sub(*at) < WINDOW_MS)
        .map(|(_, n)| u64::from(*n))
        .sum();
    if let Some(first) = state.first_release_ms
        && recent > 0
    {
        let span = now_ms.saturating_sub(first).clamp(1_000, WINDOW_MS);
        return recent as f64 * 1_000.0 / span as f64;
    }
    fallback_rate(settings)
}

fn fallback_rate(settings: &Settings) -> f64 {
    let ttl = settings.session_ttl.as_secs_f64().max(1.0);
    let by_capacity = settings.active_users.map(|n| f64::from(n) / ttl);
    let by_budget = settings.admit_per_minute.map(|n| f64::from(n) / 60.0);
    match (by_capacity, by_budget) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 1.0,
    }
}

/// The release rate (per second) from figures alone, for a store that keeps no `RoomState`:
/// `recent` releases over the last minute, the first at `first_release_ms`; before anything was
/// measured, `active_users / session_ttl`; never above the `admit_per_minute` budget.
pub fn rate_of(
    settings: &Settings,
    recent: u64,
    first_release_ms: Option<u64>,
    now_ms: u64,
) -> f64 {
    let measured = match first_release_ms {
        Some(first) if recent > 0 => {
            let span = now_ms.saturating_sub(first).clamp(1_000, WINDOW_MS);
            recent as f64 * 1_000.0 / span as f64
        }
        _ => fallback_rate(settings),
    };
    match settings.admit_per_minute {
        Some(budget) => measured.min(f64::from(budget) / 60.0),
        None => measured,
    }
}

/// Estimated seconds until `position` is released, rounded up.
pub fn wait_seconds(position: u64, rate_per_sec: f64) -> Option<u64> {
    if rate_per_sec <= 0.0 || !rate_per_sec.is_finite() {
        return None;
    }
    Some((position as f64 / rate_per_sec).ceil() as u64)
}

/// Estimated seconds for a lottery visitor before their draw: the draw comes (or the `drawn`
/// already in line go through, whichever is later), then on average half the `pool` goes first.
pub fn lottery_wait_seconds(
    drawn: u64,
    pool: u64,
    until_draw_ms: u64,
    rate_per_sec: f64,
) -> Option<u64> {
    if rate_per_sec <= 0.0 || !rate_per_sec.is_finite() {
        return None;
    }
    let until_draw = until_draw_ms as f64 / 1000.0;
    let drawn_through = drawn as f64 / rate_per_sec;
    let half_pool = (pool as f64 + 1.0) / 2.0 / rate_per_sec;
    Some((until_draw.max(drawn_through) + half_pool).ceil() as u64)
}

/// Random queues: the chance (0..=1, to a thousandth) of a visitor among `waiting` being
/// released within the next minute, with the line moving at `rate_per_sec`.
pub fn chance_next_minute(waiting: u64, rate_per_sec: f64) -> f64 {
    let c = ((rate_per_sec * 60.0) / waiting.max(1) as f64).min(1.0);
    (c * 1000.0).round() / 1000.0
}

/// Seconds until the next poll: about a tenth of the estimated wait, from 2 s at the front to
/// 30 s far back, with +-20% jitter so that a large queue does not poll in lockstep.
pub fn poll_after(wait_seconds: Option<u64>, rng: &mut impl rand::Rng) -> u64 {
    let base = wait_seconds.map_or(5.0, |w| (w as f64 / 10.0).clamp(2.0, 30.0));
    let jitter: f64 = rng.random_range(0.8..=1.2);
    (base * jitter).round().clamp(2.0, 36.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn poll_after_grows_with_the_wait_and_stays_in_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let front = poll_after(Some(3), &mut rng);
            let back = poll_after(Some(100_000), &mut rng);
            assert!((2..=3).contains(&front), "{front}");
            assert!((24..=36).contains(&back), "{back}");
        }
    }

    #[test]
    fn fallback_rate_uses_capacity_over_ttl() {
        let s = Settings {
            active_users: Some(300),
            session_ttl: std::time::Duration::from_secs(300),
            ..Settings::default()
        };
        let st = RoomState::new(0, None);
        assert_eq!(release_rate(&s, &st, 0), 1.0);
        assert_eq!(wait_seconds(90, 1.0), Some(90));
    }
}

/// A room's figures after a tick, for metrics and the admin API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Telemetry {
    pub queue_depth: u64,
    pub active: u32,
    pub released: u32,
    pub release_rate_per_sec: f64,
    /// Estimated wait of a visitor joining at the back now.
    pub wait_at_back_seconds: Option<u64>,
}

pub fn telemetry(settings: &Settings, state: &RoomState, now_ms: u64) -> Telemetry {
    let depth = state.waiting();
    Telemetry {
        queue_depth: depth,
        active: state.active,
        released: state.released,
        release_rate_per_sec: release_rate(settings, state, now_ms),
        wait_at_back_seconds: if no_releases(settings) {
            None
        } else {
            wait_seconds(depth + 1, line_rate(settings, state, now_ms))
        },
    }
}
