//! A session another store admitted, taken into this room (a shared store's local line while
//! Redis does not answer).

use super::Settings;
use super::state::{RoomState, Session, SessionId, SessionState};

/// A session admitted elsewhere (by a shared store this instance cannot reach) and last seen
/// here at `seen_ms`: it takes a slot of this room as an active session and ends by this room's
/// rules. Nothing happens when the room already knows it.
pub fn adopt_active(settings: &Settings, state: &mut RoomState, id: SessionId, seen_ms: u64) {
    if state.sessions.contains_key(&id) {
        return;
    }
    let session = Session {
        ticket: 0,
        seen_ms,
        since_ms: seen_ms,
        // Truncation intended: the progress bar takes a wrapping difference.
        released_before: state.counters.released as u32,
        next_poll_ms: 0,
        due_ms: 0,
        state: SessionState::Active,
        returned: true,
        no_showed: false,
        wait_shown_s: 0,
        slowdowns_seen: 0,
    };
    state.active += 1;
    state.sessions.insert(id, session);
    super::tick::arm(settings, state, id);
}
