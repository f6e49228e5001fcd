//! `# HELP` text for every metric, the series a dashboard needs from the start (at 0), and the
//! process's own figures read from `/proc` at each scrape.

use super::*;

/// What a metric is, for its `# TYPE`.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric with its help text.
const HELP: &[(&str, Kind, &str)] = &[
    (
        QUEUE_DEPTH,
        Kind::Gauge,
        "Visitors waiting to be released (in line or at the front).",
    ),
    (ACTIVE_USERS, Kind::Gauge, "Sessions admitted and active."),
    (
        EVENT_STREAMS,
        Kind::Gauge,
        "Open event streams (/__anteroom/events), pushing visitors their standing.",
    ),
    (
        RELEASED_USERS,
        Kind::Gauge,
        "Sessions released and not yet come in.",
    ),
    (
        ESTIMATED_WAIT,
        Kind::Gauge,
        "Estimated wait for a visitor joining at the back now; no value for an empty, paused or closed room.",
    ),
    (
        ADMITTED,
        Kind::Counter,
        "Sessions admitted, by how: at once or released from the line.",
    ),
    (
        ABANDONED,
        Kind::Counter,
        "Queued visitors who stopped asking for longer than abandon_after.",
    ),
    (
        REQUESTS,
        Kind::Counter,
        "Public requests by the room's decision.",
    ),
    (
        UPSTREAM_DURATION,
        Kind::Histogram,
        "Time the origin took to its response head, seconds.",
    ),
    (
        UPSTREAM_ERRORS,
        Kind::Counter,
        "Requests the origin failed, by kind.",
    ),
    (
        INVALID_TOKENS,
        Kind::Counter,
        "Requests with a token that did not verify (treated as no token).",
    ),
    (
        CONFIG_RELOADS,
        Kind::Counter,
        "Configuration reloads, by result.",
    ),
    (
        CONFIG_LAST_RELOAD_OK,
        Kind::Gauge,
        "1 if the last reload was taken, 0 if it was refused.",
    ),
    (
        ROOMS_REMOVED,
        Kind::Counter,
        "Rooms a reload removed, by whether visitors were in them.",
    ),
    (
        STORE_REQUESTS,
        Kind::Counter,
        "Calls to the shared store, by operation.",
    ),
    (
        STORE_LATENCY,
        Kind::Histogram,
        "Shared store call time, seconds, by operation.",
    ),
    (
        STORE_UNREACHABLE,
        Kind::Counter,
        "Shared store calls that did not answer in time.",
    ),
    (
        STORE_FALLBACK,
        Kind::Counter,
        "Requests answered by on_error while the shared store did not answer.",
    ),
    (
        STORE_LOCAL,
        Kind::Gauge,
        "1 while the room runs on this instance's own line (on_error = local).",
    ),
    (
        SESSIONS_ENDED,
        Kind::Counter,
        "Admitted sessions that ended, by reason.",
    ),
    (
        QUEUE_WAIT,
        Kind::Histogram,
        "Time from joining to release, seconds.",
    ),
    (
        SESSION_DURATION,
        Kind::Histogram,
        "Time admitted, seconds, for sessions that ended.",
    ),
    (
        DUPLICATE_REQUESTS,
        Kind::Counter,
        "Requests of visitors already in line (a refresh, a second tab).",
    ),
    (
        SESSIONS_RECOVERED,
        Kind::Counter,
        "Visitors back at their ticket after a restart.",
    ),
    (
        PREQUEUE_DEPTH,
        Kind::Gauge,
        "Everyone waiting for a scheduled event's start.",
    ),
    (
        EVENT_PHASE,
        Kind::Gauge,
        "1 for the phase each scheduled event is in, 0 for the others.",
    ),
    (
        EVENT_DROPPED,
        Kind::Counter,
        "Places dropped when an event ended in a room closed outside events.",
    ),
    (
        JOINS_OVER_BUDGET,
        Kind::Counter,
        "New visitors refused a place by max_joins_per_prefix_per_minute.",
    ),
    (
        POW_CHALLENGES_ISSUED,
        Kind::Counter,
        "Join challenges given to new visitors.",
    ),
    (
        POW_SOLVED,
        Kind::Counter,
        "Join challenges solved and taken.",
    ),
    (
        POW_FAILED,
        Kind::Counter,
        "Join answers refused, by reason.",
    ),
    (
        PLACES_EXPIRED,
        Kind::Counter,
        "Visitors told their place had expired.",
    ),
    (
        CLIENT_ERRORS,
        Kind::Counter,
        "Requests refused for the client's own fault, by kind.",
    ),
    (SNAPSHOTS, Kind::Counter, "Snapshots written, by result."),
    (
        SNAPSHOT_DURATION,
        Kind::Histogram,
        "Time to write a snapshot, seconds.",
    ),
    (
        SNAPSHOT_BYTES,
        Kind::Gauge,
        "Size of the last snapshot written, bytes.",
    ),
    (
        SNAPSHOT_LAST_SUCCESS,
        Kind::Gauge,
        "Unix time of the last snapshot written.",
    ),
    (
        ARRIVALS,
        Kind::Counter,
        "New visitors who got a session (admitted at once or queued).",
    ),
    (
        ROOM_CAPACITY,
        Kind::Gauge,
        "The room's limits in force, by kind: active_users, admit_per_minute.",
    ),
    (
        ROOM_PAUSED,
        Kind::Gauge,
        "1 while the room is paused or closed to newcomers.",
    ),
    (
        ROOM_RESETS,
        Kind::Counter,
        "Times the operator emptied the room's line (admin reset).",
    ),
    (
        RESET_DROPPED,
        Kind::Counter,
        "Visitors who lost their place in line to an operator's reset.",
    ),
    (
        BUILD_INFO,
        Kind::Gauge,
        "Always 1; the version running is its label.",
    ),
    (
        PROCESS_RSS,
        Kind::Gauge,
        "Resident memory of the process, bytes.",
    ),
    (
        PROCESS_FDS,
        Kind::Gauge,
        "Open file descriptors of the process.",
    ),
    (
        PROCESS_CPU,
        Kind::Counter,
        "CPU time of the process (user and system), seconds.",
    ),
];

/// Gives every metric its help text (once, when the recorder is installed).
pub(super) fn describe() {
    for &(name, kind, text) in HELP {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, text),
            Kind::Gauge => metrics::describe_gauge!(name, text),
            Kind::Histogram => metrics::describe_histogram!(name, text),
        }
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for result in ["ok", "error"] {
        metrics::counter!(CONFIG_RELOADS, "result" => result).increment(0);
        metrics::counter!(SNAPSHOTS, "result" => result).increment(0);
    }
}

/// Creates a room's labelled series at 0, so a dashboard sees every value from the start.
pub fn zero_room(room: &str) {
    let r = || room.to_string();
    for how in ["immediate", "released"] {
        metrics::counter!(ADMITTED, "room" => r(), "how" => how).increment(0);
    }
    for reason in ["idle", "max_session", "leave", "revoke", "no_show"] {
        metrics::counter!(SESSIONS_ENDED, "room" => r(), "reason" => reason).increment(0);
    }
    for decision in ["admit", "queue", "closed", "bypass", "endpoint", "disabled"] {
        metrics::counter!(REQUESTS, "room" => r(), "decision" => decision).increment(0);
    }
    for kind in ["connect", "timeout", "invalid_response", "body"] {
        metrics::counter!(UPSTREAM_ERRORS, "room" => r(), "kind" => kind).increment(0);
    }
    for name in [
        ABANDONED,
        INVALID_TOKENS,
        ARRIVALS,
        JOINS_OVER_BUDGET,
        PLACES_EXPIRED,
        ROOM_RESETS,
        RESET_DROPPED,
    ] {
        metrics::counter!(name, "room" => r()).increment(0);
    }
    // Adding nothing: a reload keeps the streams open and their count.
    metrics::gauge!(EVENT_STREAMS, "room" => r()).increment(0.0);
}

/// The process's resident memory, open descriptors and CPU time, from `/proc/self` (Linux;
/// elsewhere nothing is set). Read at each scrape.
pub fn process() {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        metrics::gauge!(PROCESS_RSS).set(kb * 1024.0);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!(PROCESS_FDS).set(fds.count() as f64);
    }
    // Fields 14 and 15 of /proc/self/stat (after the command in parentheses): user and system
    // time in clock ticks, 100 a second on Linux.
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
    {
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        metrics::counter!(PROCESS_CPU).absolute((ticks(11) + ticks(12)) / 100);
    }
}
