//! Rooms in Redis (or Valkey), shared by every anteroom instance that points at the same server.
//! Each operation on a room is one call of `room.lua`, which Redis runs atomically: a join is
//! checked against capacity and the rate budget and takes its slot or its ticket in one step,
//! tickets come from one counter per room (fifo order is arrival order at the store), and a
//! position is a rank in a sorted set (O(log n)). The tick runs on one instance at a time, the
//! holder of a lease with a fencing value. Times are Redis's clock.
//!
//! Keys of one room share the hash tag `{prefix:room}`, so a Redis Cluster keeps a room on one
//! slot. Durability is Redis's own (AOF with `appendfsync everysec` is recommended).

use std::time::Duration;

use ::redis::Value;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::room::{EventStep, Mode, Prefix, SessionId, Settings};

mod code;
mod fallback;
mod layer;
mod nonce;
mod reading;
mod reply;
mod shared;
mod types;
mod view;

pub use layer::version_of;
pub use shared::Shared;
pub use types::{Answer, Figures, Gone, Kind, Request, State, StoreError, Ticked};

use reply::{answer, counted, end_reason, gone, hex, int, text, unhex};

/// How long a start waits for the first connection at least.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most sessions one tick looks at, and most it releases: no script call runs long.
pub const TICK_BATCH: u32 = 1_000;

/// A connection to the shared store. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisRooms {
    conn: ConnectionManager,
    prefix: String,
    code: code::RoomCode,
    timeout: Duration,
}

impl std::fmt::Debug for RedisRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRooms")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRooms {
    /// Connects to `url` (`redis://`, `rediss://` or `redis+unix://`); keys start with `prefix`;
    /// a call slower than `timeout` fails. The first connection may take a few seconds more (a
    /// start beside a busy Redis).
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(url)?;
        let first = timeout.max(CONNECT_TIMEOUT);
        // Reconnects retry soon and often, so an instance is back within about a tick of
        // Redis; each attempt gives up after the store's timeout.
        let config = ConnectionManagerConfig::new()
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(timeout));
        let mut conn =
            tokio::time::timeout(first, ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|_| StoreError::Timeout(first))??;
        let code = code::RoomCode::new();
        tokio::time::timeout(first, code.load(&mut conn))
            .await
            .map_err(|_| StoreError::Timeout(first))?;
        Ok(RedisRooms {
            conn,
            prefix: prefix.to_string(),
            code,
            timeout,
        })
    }

    /// Whether the room code runs as a library function (Redis 7 and later); else as a script.
    pub fn runs_as_function(&self) -> bool {
        self.code.functions()
    }

    /// Runs the room code as a script from now on, as on a Redis without functions (this
    /// connection and its clones only).
    pub fn run_as_script(&self) {
        self.code.use_script();
    }

    /// The key base of `room`: every key of the room starts with it and shares its hash tag.
    pub fn key(&self, room: &str) -> String {
        format!("{{{}:{room}}}", self.prefix)
    }

    async fn call(
        &self,
        room: &str,
        settings: &Settings,
        op: &str,
        args: &[&str],
    ) -> Result<Vec<Value>, StoreError> {
        let settings = settings_args(settings);
        let all: Vec<&str> = std::iter::once(op)
            .chain(settings.iter().map(String::as_str))
            .chain(args.iter().copied())
            .collect();
        let key = self.key(room);
        let mut conn = self.conn.clone();
        let started = tokio::time::Instant::now();
        let reply = tokio::time::timeout(self.timeout, self.code.run(&mut conn, &key, &all)).await;
        let op: &'static str = match op {
            "decide" => "decide",
            "status" => "status",
            "leave" => "leave",
            "revoke" => "revoke",
            "reset" => "reset",
            "tick" => "tick",
            "draw" => "draw",
            "lease" => "lease",
            "seen" => "seen",
            "adopt" => "adopt",
            "overrides" => "overrides",
            "file" => "file",
            _ => "figures",
        };
        metrics::counter!(crate::metrics::STORE_REQUESTS, "op" => op).increment(1);
        metrics::histogram!(crate::metrics::STORE_LATENCY, "op" => op)
            .record(started.elapsed().as_secs_f64());
        let reply = reply.map_err(|_| StoreError::Timeout(self.timeout))??;
        match reply {
            Value::Array(v) => Ok(v),
            other => Ok(vec![other]),
        }
    }

    /// One request (see [`Request`]).
    pub async fn decide(
        &self,
        room: &str,
        settings: &Settings,
        r: Request,
    ) -> Result<Answer, StoreError> {
        let id = r.visitor.map(|v| hex(&v)).unwrap_or_default();
        let poll = if r.poll { "1" } else { "0" };
        let prefix = r.budget.map(Prefix::key).unwrap_or_default();
        let fresh = hex(&r.fresh);
        let v = self
            .call(room, settings, "decide", &[&id, &fresh, poll, &prefix])
            .await?;
        answer(&v)
    }

    /// The standing of a session (a status poll: it counts as presence).
    pub async fn status(
        &self,
        room: &str,
        settings: &Settings,
        session: SessionId,
    ) -> Result<Answer, StoreError> {
        self.standing(room, settings, session, false).await
    }

    /// [`Self::status`]; `push`: for the event stream, with no poll floor checked or set.
    pub async fn standing(
        &self,
        room: &str,
        settings: &Settings,
        session: SessionId,
        push: bool,
    ) -> Result<Answer, StoreError> {
        let push = if push { "1" } else { "0" };
        let v = self
            .call(room, settings, "status", &[&hex(&session), push])
            .await?;
        answer(&v)
    }

    /// A visitor gives up its place or slot.
    pub async fn leave(&self, room: &str, session: SessionId) -> Result<Gone, StoreError> {
        self.end(room, "leave", session).await
    }

    /// The origin ended a session.
    pub async fn revoke(&self, room: &str, session: SessionId) -> Result<Gone, StoreError> {
        self.end(room, "revoke", session).await
    }

    /// The operator empties the room's line: how many visitors lost their place.
    pub async fn reset(&self, room: &str) -> Result<u64, StoreError> {
        let v = self.call(room, &Settings::default(), "reset", &[]).await?;
        match v.first() {
            Some(Value::Int(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
            other => Err(StoreError::Reply(format!("reset answered {other:?}"))),
        }
    }

    /// Ends a session by `op` (the script reads no settings for it).
    async fn end(&self, room: &str, op: &str, session: SessionId) -> Result<Gone, StoreError> {
        let v = self
            .call(room, &Settings::default(), op, &[&hex(&session)])
            .await?;
        gone(&v)
    }

    /// Takes or renews the room's tick lease for `instance`, for `lease`: the fencing value to
    /// tick with while this instance holds it, `None` while another does.
    pub async fn lease(
        &self,
        room: &str,
        settings: &Settings,
        instance: &str,
        lease: Duration,
    ) -> Result<Option<String>, StoreError> {
        let ms = lease.as_millis().to_string();
        let v = self.call(room, settings, "lease", &[instance, &ms]).await?;
        let fence = text(v.first())?;
        Ok((!fence.is_empty()).then_some(fence))
    }

    /// Marks `sessions` (admitted, let in by this instance without asking) seen now; returns
    /// those no longer admitted (ended, left, revoked), which the instance must forget.
    pub async fn seen(
        &self,
        room: &str,
        settings: &Settings,
        sessions: &[SessionId],
    ) -> Result<Vec<SessionId>, StoreError> {
        let ids: Vec<String> = sessions.iter().map(hex).collect();
        let args: Vec<&str> = ids.iter().map(String::as_str).collect();
        let v = self.call(room, settings, "seen", &args).await?;
        Ok(v.iter()
            .filter_map(|x| text(Some(x)).ok())
            .filter_map(|s| unhex(&s))
            .collect())
    }

    /// Takes back the sessions an instance kept on its own line while Redis did not answer
    /// (`(session, ticket, state)` with state `'a'`, `'r'` or `'q'`); those Redis already has
    /// are left as they are. How many were taken in.
    pub async fn adopt(
        &self,
        room: &str,
        settings: &Settings,
        sessions: &[(SessionId, u64, char)],
    ) -> Result<u64, StoreError> {
        let args: Vec<String> = sessions
            .iter()
            .flat_map(|(id, ticket, state)| [hex(id), ticket.to_string(), state.to_string()])
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let v = self.call(room, settings, "adopt", &args).await?;
        int(v.first())
    }

    /// Keeps the room's overrides (JSON) for every instance.
    pub async fn set_overrides(
        &self,
        room: &str,
        settings: &Settings,
        json: &str,
    ) -> Result<(), StoreError> {
        self.call(room, settings, "overrides", &[json]).await?;
        Ok(())
    }

    /// Offers the room's settings from an instance's file; Redis keeps them unless it holds a
    /// newer file's. Returns whether they were kept.
    pub async fn offer_file(
        &self,
        room: &str,
        settings: &Settings,
        offer: &layer::Offered,
    ) -> Result<bool, StoreError> {
        let version = offer.version_ms.to_string();
        let args = [offer.from.as_str(), &version, &offer.json];
        let v = self.call(room, settings, "file", &args).await?;
        Ok(int(v.first())? == 1)
    }

    /// The room's shared figures now; `instance` (if not empty) is recorded as live.
    pub async fn figures(
        &self,
        room: &str,
        settings: &Settings,
        instance: &str,
    ) -> Result<Figures, StoreError> {
        let v = self.call(room, settings, "figures", &[instance]).await?;
        let n = |i: usize| int(v.get(i));
        Ok(Figures {
            active: n(1)?,
            released: n(2)?,
            waiting: n(3)?,
            joined: n(4)?,
            admitted_immediate: n(5)?,
            admitted_released: n(6)?,
            released_total: n(7)?,
            abandoned: n(8)?,
            left_queue: n(9)?,
            duplicates: n(10)?,
            recent_releases: n(11)?,
            first_release_ms: Some(n(12)?).filter(|t| *t > 0),
            now_ms: n(13)?,
            overrides: text(v.get(14)).ok().filter(|o| !o.is_empty()),
            lease_holder: text(v.get(15)).ok().filter(|h| !h.is_empty()),
            last_ticket: n(16)?,
            dropped_at_end: n(17)?,
            holding: n(18)? == 1,
            file: layer::Offered {
                json: text(v.get(19)).unwrap_or_default(),
                from: text(v.get(20)).unwrap_or_default(),
                version_ms: int(v.get(21)).unwrap_or_default(),
            },
            instances: v
                .get(22..)
                .unwrap_or_default()
                .chunks(2)
                .filter_map(|p| Some((text(p.first()).ok()?, int(p.get(1)).ok()?)))
                .collect(),
        })
    }

    /// One tick of the room (expire, a lottery's draw, release), with the fencing value of the
    /// lease. Random picks are keyed by a fresh seed from this instance's CSPRNG.
    pub async fn tick(
        &self,
        room: &str,
        settings: &Settings,
        fence: &str,
    ) -> Result<Ticked, StoreError> {
        let seed = seed();
        let v = self.call(room, settings, "tick", &[fence, &seed]).await?;
        if text(v.first())? == "fenced" {
            return Ok(Ticked::Fenced);
        }
        let ended = v
            .iter()
            .skip(8)
            .map(|e| text(Some(e)).map(|r| end_reason(&r)))
            .collect::<Result<_, _>>()?;
        Ok(Ticked::Done {
            released: int(v.get(1))?,
            active: int(v.get(2))?,
            released_now: int(v.get(3))?,
            waiting: int(v.get(4))?,
            drawing: int(v.get(5))?,
            event: EventStep {
                started: counted(v.get(6))?,
                dropped: counted(v.get(7))?,
            },
            ended,
        })
    }

    /// Goes on with a lottery's draw under way (a bounded step, like the tick's): how many are
    /// left to draw. Nothing is drawn without the lease's current fencing value.
    pub async fn draw(
        &self,
        room: &str,
        settings: &Settings,
        fence: &str,
    ) -> Result<u64, StoreError> {
        let seed = seed();
        let v = self.call(room, settings, "draw", &[fence, &seed]).await?;
        int(v.first())
    }
}

/// A fresh secret seed for the script's random picks (128 bits from the thread's CSPRNG).
fn seed() -> String {
    hex(&SessionId::random(&mut rand::rng()))
}

/// The settings the script reads, in its order (ARGV[2..17]).
fn settings_args(s: &Settings) -> [String; 16] {
    let ms = |d: Duration| d.as_millis().to_string();
    let opt = |v: Option<u32>| v.map_or("-1".to_string(), |n| n.to_string());
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let event = s.event;
    [
        opt(s.active_users),
        opt(s.admit_per_minute),
        ms(s.session_ttl),
        ms(s.abandon_after),
        ms(s.release_window),
        s.max_session.map_or("-1".to_string(), ms),
        if s.paused { "1" } else { "0" }.to_string(),
        if s.mode == Mode::Reject { "1" } else { "0" }.to_string(),
        TICK_BATCH.to_string(),
        opt(s.max_joins_per_prefix_per_minute),
        s.policy.as_str().to_string(),
        ms(s.draw_every),
        event.map(|e| e.id.to_string()).unwrap_or_default(),
        flag(event.is_some_and(|e| e.running)),
        flag(event.is_some_and(|e| e.shuffle)),
        flag(s.drop_at_end),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_round_trip_through_hex_and_bad_ones_are_refused() {
        let id = SessionId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(hex(&id), "0123456789abcdef0011223344556677");
        assert_eq!(unhex(&hex(&id)), Some(id));
        for bad in [
            "",
            "01",
            "0123456789abcdef001122334455667g",
            "é123456789abcdef0011223344556677",
        ] {
            assert_eq!(unhex(bad), None, "{bad}");
        }
    }
}
