//! Sessions in the admin API: `POST /api/v1/rooms/{name}/revoke` ends one, named by its token
//! (as the visitor or app holds it) or by its session id (32 hex digits, as logs and support
//! tools show it); `POST /api/v1/rooms/{name}/reset?confirm={name}` empties the room's line.

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{Admin, Who, error};
use crate::gateway::respond;
use crate::proxy::Body;
use crate::room::SessionId;
use crate::store::Store;

impl Admin {
    pub(super) async fn revoke(&self, name: &str, body: &[u8], who: &Who) -> Response<Body> {
        let config = self.gw.config();
        let (Some(rc), Some(room)) = (
            config.rooms.iter().find(|r| r.name == name),
            self.gw.room(name),
        ) else {
            return error(StatusCode::NOT_FOUND, format!("no room named {name:?}"));
        };
        let id = match serde_json::from_slice::<Value>(body) {
            Ok(v) => match (v["token"].as_str(), v["session"].as_str()) {
                (Some(token), None) => self.gw.session_of(rc, token),
                (None, Some(hex)) => session_id(hex),
                _ => None,
            },
            Err(_) => None,
        };
        let Some(id) = id else {
            return respond::json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "send {\"token\": \"...\"} (a valid token of this room) or {\"session\": \"<32 hex digits>\"}"}),
            );
        };
        match self.gw.store().revoke(&room, &id).await {
            Some(reason) => {
                crate::metrics::session_ended(name, reason);
                tracing::info!(room = name, %who, session = %hex(&id), "session revoked by the operator");
                respond::json(StatusCode::OK, &json!({"room": name, "revoked": true}))
            }
            None => error(StatusCode::NOT_FOUND, "the room has no such session"),
        }
    }
}

impl Admin {
    /// Empties the room's line: everyone waiting loses their place, admitted sessions stay. The
    /// query must repeat the room's name (`?confirm={name}`), so a slip of the hand or a script
    /// aimed at the wrong room changes nothing.
    pub(super) async fn reset(&self, name: &str, query: &str, who: &Who) -> Response<Body> {
        let Some(room) = self.gw.room(name).filter(|_| {
            let config = self.gw.config();
            config.rooms.iter().any(|r| r.name == name)
        }) else {
            return error(StatusCode::NOT_FOUND, format!("no room named {name:?}"));
        };
        let confirm = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("confirm="));
        if confirm != Some(name) {
            let why = match confirm {
                None => "missing",
                Some(_) => "not the room's name",
            };
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "confirm is {why}: POST /api/v1/rooms/{name}/reset?confirm={name} empties \
                     the line of room {name:?} (everyone waiting loses their place)"
                ),
            );
        }
        match self.gw.store().reset(&room).await {
            Ok(dropped) => {
                let r = || name.to_string();
                metrics::counter!(crate::metrics::ROOM_RESETS, "room" => r()).increment(1);
                metrics::counter!(crate::metrics::RESET_DROPPED, "room" => r()).increment(dropped);
                tracing::warn!(room = name, %who, dropped, "line reset by the operator: everyone waiting lost their place");
                respond::json(
                    StatusCode::OK,
                    &json!({"room": name, "reset": true, "dropped": dropped}),
                )
            }
            Err(e) => {
                tracing::warn!(room = name, %who, error = %e, "reset: the store did not answer");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store did not answer: {e}"),
                )
            }
        }
    }
}

/// A session id from 32 hex digits.
fn session_id(hex: &str) -> Option<SessionId> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(SessionId::from_bytes(bytes))
}

fn hex(id: &SessionId) -> String {
    id.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_read_back_from_hex() {
        let id = SessionId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(session_id(&hex(&id)), Some(id));
        assert_eq!(session_id("zz"), None);
        assert_eq!(session_id(&"g".repeat(32)), None);
        assert_eq!(session_id(&"é".repeat(16)), None);
    }
}
