//! Rooms in the admin API: the configuration in force with live figures, and the operator's
//! overrides (PATCH to set, DELETE to drop).

use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Admin, Who, error};
use crate::config::RoomConfig;
use crate::gateway::respond;
use crate::proxy::Body;
use crate::room::{Overrides, Policy};
use crate::store::{Room, Store};

/// A PATCH refused: the message and the field at fault.
#[derive(Debug)]
struct Refused {
    field: Option<String>,
    message: String,
}

/// Why an override change did not land.
enum Refusal {
    Bad(Refused),
    Io(std::io::Error),
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Refusal::Io(e)
    }
}

impl From<Refused> for Refusal {
    fn from(r: Refused) -> Self {
        Refusal::Bad(r)
    }
}

fn not_written(name: &str, e: &std::io::Error) -> Response<Body> {
    tracing::error!(room = name, error = %e, "cannot write the overrides");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("cannot write the overrides to the state folder: {e}"),
    )
}

fn refused(r: Refused) -> Response<Body> {
    respond::json(
        StatusCode::BAD_REQUEST,
        &json!({"error": r.message, "field": r.field}),
    )
}

impl Admin {
    pub(super) fn list_rooms(&self) -> Response<Body> {
        let config = self.gw.config();
        let rooms: Vec<Value> = config
            .rooms
            .iter()
            .filter_map(|rc| Some(self.describe(rc, &*self.gw.room(&rc.name)?)))
            .collect();
        respond::json(StatusCode::OK, &json!({ "rooms": rooms }))
    }

    pub(super) fn room_json(&self, name: &str) -> Response<Body> {
        match self.find(name) {
            Some((rc, room)) => respond::json(StatusCode::OK, &self.describe(&rc, &room)),
            None => no_room(name),
        }
    }

    pub(super) fn patch(&self, name: &str, body: &[u8], who: &Who) -> Response<Body> {
        let Some((rc, room)) = self.find(name) else {
            return no_room(name);
        };
        match self.gw.update_overrides(&rc, &room, |current| {
            apply_patch(current, body).map_err(Refusal::Bad)
        }) {
            Ok((before, after)) => {
                log_change(name, who, &rc, &before, &after);
                respond::json(StatusCode::OK, &self.describe(&rc, &room))
            }
            Err(Refusal::Bad(r)) => refused(r),
            Err(Refusal::Io(e)) => not_written(name, &e),
        }
    }

    pub(super) fn drop_overrides(&self, name: &str, who: &Who) -> Response<Body> {
        let Some((rc, room)) = self.find(name) else {
            return no_room(name);
        };
        match self
            .gw
            .update_overrides(&rc, &room, |_| Ok::<_, Refusal>(Overrides::default()))
        {
            Ok((before, after)) => {
                log_change(name, who, &rc, &before, &after);
                respond::json(StatusCode::OK, &self.describe(&rc, &room))
            }
            Err(Refusal::Bad(r)) => refused(r),
            Err(Refusal::Io(e)) => not_written(name, &e),
        }
    }

    fn find(&self, name: &str) -> Option<(std::sync::Arc<RoomConfig>, std::sync::Arc<Room>)> {
        let config = self.gw.config();
        let rc = config.rooms.iter().find(|r| r.name == name)?.clone();
        let room = self.gw.room(name)?;
        Some((rc, room))
    }

    /// A room as the API shows it: values in force, the file's, the overrides, live figures.
    fn describe(&self, file: &std::sync::Arc<RoomConfig>, room: &Room) -> Value {
        let eff = room.effective(file);
        let reading = self.gw.store().reading(room, &eff.settings);
        let (t, counters, instances) = (reading.telemetry, reading.counters, reading.instances);
        let requests: Map<String, Value> = room
            .figures
            .requests()
            .map(|(d, n)| (d.to_string(), n.into()))
            .collect();
        let upstream: Map<String, Value> = room
            .figures
            .upstream_errors()
            .map(|(k, n)| (k.to_string(), n.into()))
            .collect();
        let mut v = knobs(&eff);
        let extra = json!({
            "name": file.name,
            "hosts": file.hosts,
            "origin": format!("{}://{}", file.origin.scheme, file.origin.authority),
            "file": knobs(file),
            "overrides": *room.overrides(),
            "live": {
                "queue_depth": t.queue_depth,
                "active": t.active,
                "released": t.released,
                "release_rate_per_minute": (t.release_rate_per_sec * 60.0 * 100.0).round() / 100.0,
                "estimated_wait_seconds": t.wait_at_back_seconds,
                "joined_total": counters.joined,
                "admitted_total": counters.admitted_immediate + counters.admitted_released,
                "admitted_immediate_total": counters.admitted_immediate,
                "admitted_released_total": counters.admitted_released,
                "released_total": counters.released,
                "abandoned_total": counters.abandoned,
                "left_queue_total": counters.left_queue,
                "duplicate_requests_total": counters.duplicates,
                "requests": requests,
                "upstream_errors": upstream,
            },
        });
        if let (Value::Object(v), Value::Object(extra)) = (&mut v, extra) {
            v.extend(extra);
            // A shared store: every instance seen within the last minute, and the lease holder;
            // and the newer file of another instance, when its settings are in force here.
            if !instances.is_empty() {
                v.insert("instances".into(), json!(instances));
            }
            if let Some(f) = room.shared_file() {
                v.insert("shared_file".into(), shared_file(&f));
            }
            if !file.events.is_empty() {
                events_into(
                    v,
                    file,
                    room,
                    (reading.prequeue_depth, reading.dropped_at_end),
                );
            }
        }
        v
    }
}

/// A room with events: each event with its phase, what the room does between them, and the
/// pre-queue's figures (`figures`: its depth, places dropped at an end).
fn events_into(
    v: &mut Map<String, Value>,
    file: &RoomConfig,
    room: &Room,
    figures: (Option<u64>, u64),
) {
    let now = crate::store::snapshot::unix_ms();
    let events = super::events::events_json(file, &room.overrides(), now);
    v.insert("events".into(), events);
    v.insert("outside_events".into(), file.outside_events.as_str().into());
    v.insert("prequeue_depth".into(), figures.0.unwrap_or(0).into());
    v.insert("event_dropped_total".into(), figures.1.into());
}

/// Another instance's newer file, while its settings are in force here.
fn shared_file(f: &crate::store::SharedFile) -> Value {
    json!({
        "instance": f.from,
        "file_modified_ms": f.version_ms,
        "enabled": f.enabled,
        "paused": f.settings.paused,
        "active_users": f.settings.active_users,
        "admit_per_minute": f.settings.admit_per_minute,
        "queue": f.settings.policy.as_str(),
        "message": f.message,
    })
}

/// The values an operator can override, as a room has them.
fn knobs(r: &RoomConfig) -> Value {
    json!({
        "enabled": r.enabled,
        "paused": r.settings.paused,
        "active_users": r.settings.active_users,
        "admit_per_minute": r.settings.admit_per_minute,
        "queue": r.settings.policy.as_str(),
        "message": r.message,
        "mode": r.settings.mode.as_str(),
    })
}

fn no_room(name: &str) -> Response<Body> {
    error(StatusCode::NOT_FOUND, format!("no room named {name:?}"))
}

/// Applies a PATCH body to `current`: every field checked before anything changes; `null` drops
/// one override.
fn apply_patch(current: &Overrides, body: &[u8]) -> Result<Overrides, Refused> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Refused {
        field: None,
        message: format!("the body is not JSON: {e}"),
    })?;
    let Value::Object(fields) = value else {
        return Err(Refused {
            field: None,
            message: "send a JSON object of the fields to override".into(),
        });
    };
    let mut next = current.clone();
    for (k, v) in &fields {
        set_override(&mut next, k, v).map_err(|message| Refused {
            field: Some(k.clone()),
            message: format!("`{k}` {message}"),
        })?;
    }
    Ok(next)
}

/// Sets the override a PATCH field names; the error says what is wrong with the field.
fn set_override(next: &mut Overrides, field: &str, v: &Value) -> Result<(), &'static str> {
    match field {
        "enabled" => next.enabled = flag(v)?,
        "paused" => next.paused = flag(v)?,
        "active_users" => next.active_users = count(v)?,
        "admit_per_minute" => next.admit_per_minute = count(v)?,
        "queue" => next.queue = policy(v)?,
        "message" => next.message = message(v)?,
        "mode" => next.mode = mode(v)?,
        _ => {
            return Err(
                "is not a field that can be overridden (enabled, paused, active_users, \
                 admit_per_minute, queue, message, mode)",
            );
        }
    }
    Ok(())
}

/// A true/false override, or `null`.
fn flag(v: &Value) -> Result<Option<bool>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err("must be true, false or null"),
    }
}

/// A whole-number override of at least 1 that fits 32 bits, or `null`.
fn count(v: &Value) -> Result<Option<u32>, &'static str> {
    match v {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or("must be a whole number of at least 1, or null"),
    }
}

/// `"queue"` or `"reject"`, or `null`.
fn mode(v: &Value) -> Result<Option<crate::room::Mode>, &'static str> {
    const MODES: &str = "must be \"queue\" or \"reject\"";
    match v {
        Value::Null => Ok(None),
        Value::String(s) => crate::room::Mode::parse(s).map(Some).ok_or(MODES),
        _ => Err(MODES),
    }
}

/// A queue policy by name, or `null`.
fn policy(v: &Value) -> Result<Option<Policy>, &'static str> {
    const POLICIES: &str = "must be \"fifo\", \"random\" or \"lottery\"";
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Policy::parse(s).map(Some).ok_or(POLICIES),
        _ => Err(POLICIES),
    }
}

/// A message of at most 1000 characters, or `null`.
fn message(v: &Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.chars().count() <= 1_000 => Ok(Some(s.clone())),
        Value::String(_) => Err("must be at most 1000 characters"),
        _ => Err("must be a string or null"),
    }
}

fn log_change(name: &str, who: &Who, file: &RoomConfig, before: &Overrides, after: &Overrides) {
    tracing::info!(room = name, %who, ?before, ?after, "overrides changed");
    let enabled = |o: &Overrides| o.enabled.unwrap_or(file.enabled);
    let paused = |o: &Overrides| o.paused.unwrap_or(file.settings.paused);
    if enabled(before) != enabled(after) {
        tracing::info!(room = name, %who, enabled = enabled(after), "room state changed");
    }
    if paused(before) != paused(after) {
        tracing::info!(room = name, %who, paused = paused(after), "room state changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_apply_whole_or_not_at_all() {
        let base = Overrides::default();
        let ok = apply_patch(&base, br#"{"paused": true, "queue": "lottery"}"#).unwrap();
        assert_eq!(ok.paused, Some(true));
        assert_eq!(ok.queue, Some(Policy::Lottery));
        let cleared = apply_patch(&ok, br#"{"paused": null}"#).unwrap();
        assert_eq!(cleared.paused, None);
        assert_eq!(cleared.queue, Some(Policy::Lottery));
        for (body, field) in [
            (
                &br#"{"paused": true, "active_users": 0}"#[..],
                Some("active_users"),
            ),
            (br#"{"active_users": "x"}"#, Some("active_users")),
            (br#"{"active_users": 1.5}"#, Some("active_users")),
            (
                br#"{"admit_per_minute": 99999999999}"#,
                Some("admit_per_minute"),
            ),
            (br#"{"queue": "lifo"}"#, Some("queue")),
            (br#"{"enabled": "yes"}"#, Some("enabled")),
            (br#"{"message": 3}"#, Some("message")),
            (br#"{"nope": 1}"#, Some("nope")),
            (br#"[1]"#, None),
            (br#"{"paused": tru"#, None),
        ] {
            let r = apply_patch(&base, body).expect_err("refused");
            assert_eq!(
                r.field.as_deref(),
                field,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
