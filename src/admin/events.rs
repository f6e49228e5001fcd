//! Scheduled events in the admin API: each event with its phase in the room JSON, and the
//! operator's "go" and "stop" buttons (`POST .../events/{event}/start` and `.../end`), kept like
//! other overrides.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Admin, Who, error};
use crate::config::RoomConfig;
use crate::config::schedule::Phase;
use crate::gateway::respond;
use crate::pages::rfc3339_unix;
use crate::proxy::Body;
use crate::room::Overrides;

/// Which button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Button {
    Start,
    End,
}

/// A button press refused: the status and why.
struct Refused(StatusCode, String);

impl From<std::io::Error> for Refused {
    fn from(e: std::io::Error) -> Self {
        Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the overrides to the state folder: {e}"),
        )
    }
}

impl Admin {
    /// Starts or ends event `event` of room `name` now.
    pub(super) fn press(
        &self,
        name: &str,
        event: &str,
        button: Button,
        who: &Who,
    ) -> Response<Body> {
        let config = self.gw.config();
        let Some(rc) = config.rooms.iter().find(|r| r.name == name).cloned() else {
            return error(StatusCode::NOT_FOUND, format!("no room named {name:?}"));
        };
        let Some(room) = self.gw.room(name) else {
            return error(StatusCode::NOT_FOUND, format!("no room named {name:?}"));
        };
        let Some(e) = rc.events.iter().find(|e| e.name == event).cloned() else {
            return error(
                StatusCode::NOT_FOUND,
                format!("room {name:?} has no event named {event:?}"),
            );
        };
        let now = crate::store::snapshot::unix_ms();
        let result = self.gw.update_overrides(&rc, &room, |current: &Overrides| {
            let moved = current.events.get(event);
            let phase = e.phase(moved, now);
            let mut next = current.clone();
            let m = next.events.entry(event.to_string()).or_default();
            match (button, phase) {
                (Button::Start, Phase::Upcoming | Phase::Prequeue) => m.starts_at_ms = Some(now),
                (Button::End, Phase::Prequeue | Phase::Running) => m.ends_at_ms = Some(now),
                (_, phase) => {
                    return Err(Refused(
                        StatusCode::CONFLICT,
                        format!(
                            "event {event:?} is {}: nothing to {}",
                            phase.as_str(),
                            verb(button)
                        ),
                    ));
                }
            }
            Ok(next)
        });
        match result {
            Ok((_, after)) => {
                tracing::info!(room = name, event, %who, action = verb(button), "event changed by the operator");
                respond::json(
                    StatusCode::OK,
                    &json!({ "room": name, "events": events_json(&rc, &after, now) }),
                )
            }
            Err(Refused(status, message)) => error(status, message),
        }
    }
}

fn verb(button: Button) -> &'static str {
    match button {
        Button::Start => "start",
        Button::End => "end",
    }
}

/// Each event of `rc` with its phase and times in force (the file's where the operator moved
/// them), in time order.
pub(super) fn events_json(rc: &RoomConfig, o: &Overrides, now: u64) -> Value {
    let events: Vec<Value> = rc
        .events
        .iter()
        .map(|e| {
            let moved = o.events.get(&e.name);
            let t = e.times(moved);
            json!({
                "name": e.name,
                "phase": e.phase(moved, now).as_str(),
                "prequeue_from": rfc3339_unix(t.prequeue_from_ms),
                "starts_at": rfc3339_unix(t.starts_at_ms),
                "ends_at": rfc3339_unix(t.ends_at_ms),
                "file": {
                    "prequeue_from": rfc3339_unix(e.prequeue_from_ms),
                    "starts_at": rfc3339_unix(e.starts_at_ms),
                    "ends_at": rfc3339_unix(e.ends_at_ms),
                },
                "active_users": e.active_users,
                "admit_per_minute": e.admit_per_minute,
                "queue": e.policy.map(|p| p.as_str()),
                "shuffle_at_start": e.shuffle,
                "message": e.message,
            })
        })
        .collect();
    Value::Array(events)
}
