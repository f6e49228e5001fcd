//! Metric names (the contract of DESIGN section 7) and the process-wide Prometheus recorder.

mod describe;

use std::sync::OnceLock;

pub use describe::{process, zero_room};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const QUEUE_DEPTH: &str = "anteroom_queue_depth";
pub const ACTIVE_USERS: &str = "anteroom_active_users";
pub const RELEASED_USERS: &str = "anteroom_released_users";
pub const ESTIMATED_WAIT: &str = "anteroom_estimated_wait_seconds";
pub const ADMITTED: &str = "anteroom_admitted_total";
pub const ABANDONED: &str = "anteroom_abandoned_total";
pub const REQUESTS: &str = "anteroom_requests_total";
pub const UPSTREAM_DURATION: &str = "anteroom_upstream_duration_seconds";
pub const UPSTREAM_ERRORS: &str = "anteroom_upstream_errors_total";
pub const INVALID_TOKENS: &str = "anteroom_invalid_tokens_total";
pub const CONFIG_RELOADS: &str = "anteroom_config_reloads_total";
pub const CONFIG_LAST_RELOAD_OK: &str = "anteroom_config_last_reload_successful";
/// Rooms a reload removed; `waiting`: whether visitors were in it (queued or admitted).
pub const ROOMS_REMOVED: &str = "anteroom_rooms_removed_total";
/// Shared store calls by operation, and how long each took.
pub const STORE_REQUESTS: &str = "anteroom_store_requests_total";
pub const STORE_LATENCY: &str = "anteroom_store_latency_seconds";
pub const STORE_UNREACHABLE: &str = "anteroom_store_unreachable_total";
/// Requests answered while the shared store did not, by what answered (`on_error`).
pub const STORE_FALLBACK: &str = "anteroom_store_fallback_total";
/// 1 while a room runs on this instance's own line (`on_error = "local"`), else 0.
pub const STORE_LOCAL: &str = "anteroom_store_local";
pub const SESSIONS_ENDED: &str = "anteroom_sessions_ended_total";
pub const QUEUE_WAIT: &str = "anteroom_queue_wait_seconds";
pub const SESSION_DURATION: &str = "anteroom_session_duration_seconds";
pub const DUPLICATE_REQUESTS: &str = "anteroom_duplicate_requests_total";
pub const SESSIONS_RECOVERED: &str = "anteroom_sessions_recovered_total";
/// Everyone waiting while a room holds them for a scheduled event's start.
pub const PREQUEUE_DEPTH: &str = "anteroom_prequeue_depth";
/// Each scheduled event's phase: 1 for the phase it is in, 0 for the others.
pub const EVENT_PHASE: &str = "anteroom_event_phase";
/// Places dropped when an event ended in a room closed outside events.
pub const EVENT_DROPPED: &str = "anteroom_event_dropped_total";
pub const JOINS_OVER_BUDGET: &str = "anteroom_joins_over_budget_total";
/// Join challenges issued to new visitors of `join_challenge = "pow"` rooms, by room.
pub const POW_CHALLENGES_ISSUED: &str = "anteroom_pow_challenges_issued_total";
/// Challenges solved and taken (each one a join), by room.
pub const POW_SOLVED: &str = "anteroom_pow_solved_total";
/// Join answers refused, by room and `reason` (bounded: `pow::Refusal::reason`).
pub const POW_FAILED: &str = "anteroom_pow_failed_total";
/// Visitors told that their place was gone (a valid token whose session the room no longer has).
pub const PLACES_EXPIRED: &str = "anteroom_places_expired_total";
/// Requests refused for the client's own fault, by `kind` (bounded: see `GatewayError::client_kind`).
pub const CLIENT_ERRORS: &str = "anteroom_client_errors_total";
pub const SNAPSHOTS: &str = "anteroom_snapshots_total";
pub const SNAPSHOT_DURATION: &str = "anteroom_snapshot_duration_seconds";
pub const SNAPSHOT_BYTES: &str = "anteroom_snapshot_bytes";
pub const SNAPSHOT_LAST_SUCCESS: &str = "anteroom_snapshot_last_success_timestamp_seconds";
/// New visitors who got a session, by room.
pub const ARRIVALS: &str = "anteroom_arrivals_total";
/// The room's limits in force, by `kind` (`active_users`, `admit_per_minute`).
pub const ROOM_CAPACITY: &str = "anteroom_room_capacity";
pub const ROOM_PAUSED: &str = "anteroom_room_paused";
/// Times the operator emptied a room's line (`POST /api/v1/rooms/{name}/reset`), by room.
pub const ROOM_RESETS: &str = "anteroom_room_resets_total";
/// Visitors who lost their place to those resets, by room.
pub const RESET_DROPPED: &str = "anteroom_room_reset_dropped_total";
/// Open event streams (`/__anteroom/events`), by room.
pub const EVENT_STREAMS: &str = "anteroom_event_streams";
pub const BUILD_INFO: &str = "anteroom_build_info";
pub const PROCESS_RSS: &str = "anteroom_process_resident_memory_bytes";
pub const PROCESS_FDS: &str = "anteroom_process_open_fds";
pub const PROCESS_CPU: &str = "anteroom_process_cpu_seconds_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle (`None` if another
/// recorder was installed first, e.g. by an embedding program).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(UPSTREAM_DURATION.into()), &seconds[..8])
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(QUEUE_WAIT.into()), &seconds))
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(SESSION_DURATION.into()), &seconds)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(SNAPSHOT_DURATION.into()), &seconds[..6])
                })
                .and_then(|b| {
                    let store = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0];
                    b.set_buckets_for_metric(Matcher::Full(STORE_LATENCY.into()), &store)
                })
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe::describe();
            Some(handle)
        })
        .as_ref()
}

/// Counts a session that ended (`anteroom_sessions_ended_total{room, reason}`): the one place
/// it is emitted, for leaves, revokes and the tick's endings alike.
pub fn session_ended(room: &str, reason: crate::room::EndReason) {
    metrics::counter!(SESSIONS_ENDED, "room" => room.to_string(), "reason" => reason.label())
        .increment(1);
}
