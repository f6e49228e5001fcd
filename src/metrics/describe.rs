//! `# HELP` text for every metric, the series a dashboard needs from the start (at 0), and the
//! process's own figures read from `/proc` at each scrape.

use super::*;

/// Gives every metric its help text (once, when the recorder is installed).
pub(super) fn describe() {
    use metrics::{describe_counter as c, describe_gauge as g, describe_histogram as h};
    g!(
        QUEUE_DEPTH,
        "Visitors waiting to be released (in line or at the front)."
    );
    g!(ACTIVE_USERS, "Sessions admitted and active.");
    g!(RELEASED_USERS, "Sessions released and not yet come in.");
    g!(
        ESTIMATED_WAIT,
        "Estimated wait for a visitor joining at the back now; no value for an empty, paused or closed room."
    );
    c!(
        ADMITTED,
        "Sessions admitted, by how: at once or released from the line."
    );
    c!(
        ABANDONED,
        "Queued visitors who stopped asking for longer than abandon_after."
    );
    c!(REQUESTS, "Public requests by the room's decision.");
    h!(
        UPSTREAM_DURATION,
        "Time the origin took to its response head, seconds."
    );
    c!(UPSTREAM_ERRORS, "Requests the origin failed, by kind.");
    c!(
        INVALID_TOKENS,
        "Requests with a token that did not verify (treated as no token)."
    );
    c!(CONFIG_RELOADS, "Configuration reloads, by result.");
    g!(
        CONFIG_LAST_RELOAD_OK,
        "1 if the last reload was taken, 0 if it was refused."
    );
    c!(
        ROOMS_REMOVED,
        "Rooms a reload removed, by whether visitors were in them."
    );
    c!(STORE_REQUESTS, "Calls to the shared store, by operation.");
    h!(
        STORE_LATENCY,
        "Shared store call time, seconds, by operation."
    );
    c!(
        STORE_UNREACHABLE,
        "Shared store calls that did not answer in time."
    );
    c!(
        STORE_FALLBACK,
        "Requests answered by on_error while the shared store did not answer."
    );
    g!(
        STORE_LOCAL,
        "1 while the room runs on this instance's own line (on_error = local)."
    );
    c!(SESSIONS_ENDED, "Admitted sessions that ended, by reason.");
    h!(QUEUE_WAIT, "Time from joining to release, seconds.");
    h!(
        SESSION_DURATION,
        "Time admitted, seconds, for sessions that ended."
    );
    c!(
        DUPLICATE_REQUESTS,
        "Requests of visitors already in line (a refresh, a second tab)."
    );
    c!(
        SESSIONS_RECOVERED,
        "Visitors back at their ticket after a restart."
    );
    g!(
        PREQUEUE_DEPTH,
        "Everyone waiting for a scheduled event's start."
    );
    g!(
        EVENT_PHASE,
        "1 for the phase each scheduled event is in, 0 for the others."
    );
    c!(
        EVENT_DROPPED,
        "Places dropped when an event ended in a room closed outside events."
    );
    c!(
        JOINS_OVER_BUDGET,
        "New visitors refused a place by max_joins_per_prefix_per_minute."
    );
    c!(
        POW_CHALLENGES_ISSUED,
        "Join challenges given to new visitors."
    );
    c!(POW_SOLVED, "Join challenges solved and taken.");
    c!(POW_FAILED, "Join answers refused, by reason.");
    c!(PLACES_EXPIRED, "Visitors told their place had expired.");
    c!(
        CLIENT_ERRORS,
        "Requests refused for the client's own fault, by kind."
    );
    c!(SNAPSHOTS, "Snapshots written, by result.");
    h!(SNAPSHOT_DURATION, "Time to write a snapshot, seconds.");
    g!(SNAPSHOT_BYTES, "Size of the last snapshot written, bytes.");
    g!(
        SNAPSHOT_LAST_SUCCESS,
        "Unix time of the last snapshot written."
    );
    c!(
        ARRIVALS,
        "New visitors who got a session (admitted at once or queued)."
    );
    g!(
        ROOM_CAPACITY,
        "The room's limits in force, by kind: active_users, admit_per_minute."
    );
    g!(
        ROOM_PAUSED,
        "1 while the room is paused or closed to newcomers."
    );
    g!(BUILD_INFO, "Always 1; the version running is its label.");
    g!(PROCESS_RSS, "Resident memory of the process, bytes.");
    g!(PROCESS_FDS, "Open file descriptors of the process.");
    c!(
        PROCESS_CPU,
        "CPU time of the process (user and system), seconds."
    );
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
    ] {
        metrics::counter!(name, "room" => r()).increment(0);
    }
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
