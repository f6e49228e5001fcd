//! The shared store as the gateway uses it: every room's line and sessions in Redis (one script
//! call per join, request or poll), this instance's room handles and clock, the tick's lease,
//! and each room's figures as of this instance's last tick.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::fallback::{Fallback, LastSeen};
use super::{Gone, Kind, RedisRooms, Request, State, StoreError, Ticked as Done};
use crate::config::{RedisSettings, RoomConfig};
use crate::metrics as m;
use crate::room::{
    Arrival, Decision, EXPIRED_RETRY_SECONDS, EndReason, Left, Mode, Overrides, RoomState,
    SessionId, Settings, TickReport, Via, View, ViewState,
};
use crate::store::registry::Registry;
use crate::store::{Reading, Room, SnapshotReport, Store, Ticked, overrides};

/// Rooms in Redis, shared with every instance that uses the same server and key prefix.
pub struct Shared {
    redis: RedisRooms,
    rooms: Registry,
    /// This instance's name as a lease holder.
    instance: String,
    /// How long a lease lasts without renewal.
    lease: Duration,
    /// Each room's figures as of this instance's last tick.
    readings: Mutex<HashMap<String, Reading>>,
    /// The overrides file's folder.
    dir: PathBuf,
    /// Whether the last call to Redis was answered.
    answered: AtomicBool,
    /// Whether the last tick reached Redis. While it did not, requests go straight to the
    /// fallback instead of each waiting out the timeout; the next tick that reaches Redis
    /// brings them back.
    ticking: AtomicBool,
    /// Admitted sessions this instance lets in without a round trip, by room: whether a request
    /// came since the last tick. Each tick marks the requested ones seen in Redis (forgetting
    /// those Redis no longer has admitted) and forgets the others, so an end decided anywhere
    /// (revoke, leave, idle, max_session) is learned here within one tick.
    admitted: Mutex<HashMap<String, HashMap<SessionId, bool>>>,
    /// What answers while Redis does not (`on_error`).
    fallback: Fallback,
    /// Each room's settings from this instance's file, offered to the others at the next tick.
    files: super::layer::OwnFiles,
}

impl Shared {
    /// Connects to the store `settings` names. `tick`: how often this instance ticks (the lease
    /// lasts two ticks and a half, so a crashed holder is replaced within three).
    pub async fn connect(
        settings: &RedisSettings,
        dir: &Path,
        tick: Duration,
    ) -> Result<Self, StoreError> {
        let url = settings.url.as_deref().unwrap_or_default();
        let redis = RedisRooms::connect(url, &settings.key_prefix, settings.timeout).await?;
        let mut id = [0u8; 8];
        rand::fill(&mut id);
        Ok(Shared {
            redis,
            rooms: Registry::new(),
            instance: id.iter().map(|b| format!("{b:02x}")).collect(),
            lease: (tick * 5 / 2).max(Duration::from_millis(500)),
            readings: Mutex::new(HashMap::new()),
            dir: dir.to_path_buf(),
            answered: AtomicBool::new(true),
            ticking: AtomicBool::new(true),
            admitted: Mutex::new(HashMap::new()),
            fallback: Fallback::new(settings.on_error),
            files: super::layer::OwnFiles::default(),
        })
    }

    /// A request to the site: a script's or an app's is a poll (with its floor); a visitor
    /// without a token spends a join of its prefix.
    async fn visit(
        &self,
        room: &Room,
        settings: &Settings,
        a: Arrival,
    ) -> Result<Decision, StoreError> {
        if let Some(v) = a.visitor
            && self.cached(&room.name, &v.id)
        {
            return Ok(Decision::Admit {
                visitor: v,
                joined: false,
                how: None,
                view: None,
            });
        }
        let fresh = SessionId::random(&mut rand::rng());
        let id = a.visitor.map(|v| v.id);
        let budget = a.prefix.filter(|_| a.visitor.is_none());
        let poll = a.via == Via::Fetch;
        let r = Request {
            visitor: id,
            fresh,
            poll,
            budget,
        };
        let answer = self.redis.decide(&room.name, settings, r).await?;
        if let (Kind::Admit, Some(State::Active), Some(id)) =
            (&answer.kind, answer.state, answer.session)
        {
            self.fallback.admitted(&room.name, &[id], self.now_ms());
            // Counted as a request since the last tick, so that a tick right after this one
            // keeps the session cached (and marks it seen) rather than forgetting it.
            self.admitted
                .lock()
                .entry(room.name.clone())
                .or_default()
                .insert(id, true);
        }
        Ok(super::view::decision(settings, &answer))
    }

    /// The join endpoint: a known session's standing (a poll), else a new session with its
    /// view (budgeted only when no token came at all).
    async fn join(
        &self,
        room: &Room,
        settings: &Settings,
        a: Arrival,
    ) -> Result<Decision, StoreError> {
        if let Some(v) = a.visitor {
            let answer = self.redis.status(&room.name, settings, v.id).await?;
            match answer.kind {
                Kind::Standing => {
                    let view = super::view::of(settings, &answer, &mut rand::rng());
                    return Ok(Decision::Standing { view: Some(view) });
                }
                Kind::TooSoon => {
                    return Ok(Decision::TooSoon {
                        wait_ms: answer.wait_ms,
                    });
                }
                _ => {}
            }
        }
        let fresh = SessionId::random(&mut rand::rng());
        let budget = a.prefix.filter(|_| a.visitor.is_none());
        let r = Request {
            budget,
            ..Request::page(None, fresh)
        };
        let answer = self.redis.decide(&room.name, settings, r).await?;
        Ok(match super::view::decision(settings, &answer) {
            Decision::Admit {
                visitor,
                joined,
                how,
                ..
            } => Decision::Admit {
                visitor,
                joined,
                how,
                view: Some(super::view::of(settings, &answer, &mut rand::rng())),
            },
            other => other,
        })
    }

    /// The status endpoint.
    async fn status(
        &self,
        room: &Room,
        settings: &Settings,
        visitor: Option<SessionId>,
        push: bool,
    ) -> Result<Decision, StoreError> {
        let a = match visitor {
            Some(id) => Some(self.redis.standing(&room.name, settings, id, push).await?),
            None => None,
        };
        Ok(match a {
            Some(a) if a.kind == Kind::Standing => Decision::Standing {
                view: Some(super::view::of(settings, &a, &mut rand::rng())),
            },
            Some(a) if a.kind == Kind::TooSoon => Decision::TooSoon { wait_ms: a.wait_ms },
            _ if settings.mode == Mode::Reject => Decision::Closed,
            Some(a) => Decision::Expired {
                view: View::without_place(ViewState::Expired, a.queue_depth, EXPIRED_RETRY_SECONDS),
            },
            None => Decision::Unknown,
        })
    }

    /// Whether `id` is an admitted session this instance lets in without asking (and note the
    /// request, to be marked seen at the next tick).
    fn cached(&self, room: &str, id: &SessionId) -> bool {
        let mut admitted = self.admitted.lock();
        match admitted.get_mut(room).and_then(|m| m.get_mut(id)) {
            Some(requested) => {
                *requested = true;
                true
            }
            None => false,
        }
    }

    /// Gives Redis back the sessions a local line kept while it did not answer (`on_error =
    /// "local"`), in bounded calls; the admitted ones are let in here without asking.
    async fn hand_back(&self, room: &Room, settings: &Settings) -> Result<(), StoreError> {
        let Some(sessions) = self.fallback.to_hand_back(&room.name) else {
            return Ok(());
        };
        let mut taken = 0;
        // Each call is idempotent: after a failure the next tick sends the whole line again.
        for chunk in sessions.chunks(super::TICK_BATCH as usize) {
            taken += self.redis.adopt(&room.name, settings, chunk).await?;
        }
        self.fallback.handed(&room.name);
        tracing::info!(room = %room.name, sessions = sessions.len(), taken, "shared store back: the local line handed to it");
        let mut admitted = self.admitted.lock();
        let here = admitted.entry(room.name.clone()).or_default();
        for (id, _, state) in sessions {
            if state == 'a' {
                here.insert(id, false);
            }
        }
        Ok(())
    }

    fn forget(&self, room: &str, id: &SessionId) {
        if let Some(m) = self.admitted.lock().get_mut(room) {
            m.remove(id);
        }
    }

    /// Marks the sessions let in since the last tick seen in Redis, forgetting those it no
    /// longer has admitted and those with no request since the last tick.
    async fn flush_seen(&self, room: &Room, settings: &Settings) -> Result<(), StoreError> {
        let requested: Vec<SessionId> = {
            let mut admitted = self.admitted.lock();
            let Some(m) = admitted.get_mut(&room.name) else {
                return Ok(());
            };
            m.retain(|_, requested| *requested);
            m.iter_mut()
                .map(|(id, requested)| {
                    *requested = false;
                    *id
                })
                .collect()
        };
        if requested.is_empty() {
            return Ok(());
        }
        let mut gone = Vec::new();
        for chunk in requested.chunks(super::TICK_BATCH as usize) {
            gone.extend(self.redis.seen(&room.name, settings, chunk).await?);
        }
        let ttl = u64::try_from(settings.session_ttl.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms();
        self.fallback.admitted(&room.name, &requested, now);
        self.fallback.not_admitted(&room.name, &gone, now, ttl);
        for id in gone {
            self.forget(&room.name, &id);
        }
        Ok(())
    }

    /// The tick of one room: the lease, then (holding it) expiry and releases, then the figures.
    async fn tick_room(&self, room: &Room, settings: &Settings) -> Result<Ticked, StoreError> {
        self.flush_seen(room, settings).await?;
        // A local line goes back before the tick, so that an event's start the tick makes
        // shuffles the visitors who joined its pre-queue while Redis did not answer.
        self.hand_back(room, settings).await?;
        let fence = self
            .redis
            .lease(&room.name, settings, &self.instance, self.lease)
            .await?;
        let mut report = TickReport::default();
        if let Some(fence) = fence
            && let Done::Done {
                released,
                ended,
                mut drawing,
                event,
                ..
            } = self.redis.tick(&room.name, settings, &fence).await?
        {
            // A large draw goes on in bounded steps (each call short, others' calls between).
            while drawing > 0 {
                drawing = self.redis.draw(&room.name, settings, &fence).await?;
            }
            report.released = u32::try_from(released).unwrap_or(u32::MAX);
            report.event = event;
            for e in ended {
                match e {
                    Some(reason) => report.ended.push((reason, 0)),
                    None => report.abandoned += 1,
                }
            }
        }
        if let Some(offer) = self.files.to_offer(&room.name, &self.instance) {
            self.redis.offer_file(&room.name, settings, &offer).await?;
            self.files.offered(&room.name, &offer);
        }
        let f = self
            .redis
            .figures(&room.name, settings, &self.instance)
            .await?;
        super::reading::adopt_overrides(room, &f);
        if let Some(own) = self.files.offered_json(&room.name) {
            super::layer::adopt(room, &f.file, &own);
        }
        self.fallback.note(
            &room.name,
            LastSeen {
                last_ticket: f.last_ticket,
                instances: f.instances.len(),
                holding: f.holding,
            },
        );
        let reading = super::reading::of(settings, &f);
        self.readings
            .lock()
            .insert(room.name.clone(), reading.clone());
        Ok(Ticked {
            report,
            reading,
            reserve_low: false,
        })
    }
}

impl Store for Shared {
    fn now_ms(&self) -> u64 {
        self.rooms.now_ms()
    }

    fn room(&self, name: &str, settings: &Settings) -> Arc<Room> {
        // The line lives in Redis; the local state only carries the handle.
        self.rooms
            .get_or_make(name, |now| RoomState::new(now, settings.admit_per_minute))
    }

    fn find(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.find(name)
    }

    fn rooms(&self) -> Vec<(String, Arc<Room>)> {
        self.rooms.all()
    }

    async fn arrive(&self, room: &Room, settings: &Settings, a: Arrival) -> Decision {
        // A visitor of a local line stays there until the line is handed back to Redis.
        if let Some(d) = self
            .fallback
            .known(&room.name, settings, a, || self.now_ms())
        {
            return d;
        }
        if !self.ticking.load(Ordering::Relaxed) {
            return self.fallback.answer(&room.name, settings, a, self.now_ms());
        }
        let result = match a.via {
            Via::Page | Via::Fetch => self.visit(room, settings, a).await,
            Via::Join => self.join(room, settings, a).await,
            Via::Status | Via::Stream => {
                let push = a.via == Via::Stream;
                self.status(room, settings, a.visitor.map(|v| v.id), push)
                    .await
            }
        };
        self.answered.store(result.is_ok(), Ordering::Relaxed);
        result.unwrap_or_else(|e| {
            tracing::debug!(room = %room.name, error = %e, "shared store unreachable");
            self.fallback.answer(&room.name, settings, a, self.now_ms())
        })
    }

    async fn leave(&self, room: &Room, id: &SessionId) -> Option<Left> {
        self.forget(&room.name, id);
        let gone = self.redis.leave(&room.name, *id).await;
        let local = self.fallback.end(&room.name, id, gone.is_ok());
        match gone {
            Ok(Gone::Place) => Some(Left::Place),
            Ok(Gone::Slot) => Some(Left::Slot),
            Ok(Gone::None) => local,
            Err(e) => {
                tracing::warn!(room = %room.name, error = %e, "leave: store unreachable");
                local
            }
        }
    }

    /// While Redis does not answer, the instance's own filter stands alone.
    async fn take_nonce(&self, room: &Room, id: [u8; 16], expires: u64) -> bool {
        match self.redis.take_nonce(&room.name, &id, expires).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(room = %room.name, error = %e, "join challenge: store unreachable");
                true
            }
        }
    }

    async fn revoke(&self, room: &Room, id: &SessionId) -> Option<EndReason> {
        self.forget(&room.name, id);
        let gone = self.redis.revoke(&room.name, *id).await;
        let local = self.fallback.end(&room.name, id, gone.is_ok());
        match gone {
            Ok(Gone::None) => local.map(|_| EndReason::Revoke),
            Ok(_) => Some(EndReason::Revoke),
            Err(e) => {
                tracing::warn!(room = %room.name, error = %e, "revoke: store unreachable");
                local.map(|_| EndReason::Revoke)
            }
        }
    }

    async fn reset(&self, room: &Room) -> Result<u64, StoreError> {
        let dropped = self.redis.reset(&room.name).await?;
        Ok(dropped + self.fallback.reset(&room.name))
    }

    /// The script converts a line to a new policy at the next call that carries it.
    fn settle(&self, _room: &Room, _settings: &Settings) {}

    /// This instance's file is in force here at once, and offered to the others at the next tick.
    fn loaded(&self, room: &Room, rc: &RoomConfig, version_ms: u64) {
        room.set_shared_file(None);
        self.files.loaded(&room.name, rc, version_ms);
    }

    async fn tick(&self, room: &Room, settings: &Settings) -> Ticked {
        let ticked = self.tick_room(room, settings).await;
        self.answered.store(ticked.is_ok(), Ordering::Relaxed);
        self.ticking.store(ticked.is_ok(), Ordering::Relaxed);
        match ticked {
            Ok(t) => t,
            Err(e) => {
                metrics::counter!(m::STORE_UNREACHABLE, "room" => room.name.clone()).increment(1);
                tracing::warn!(room = %room.name, error = %e, "tick skipped: store unreachable");
                let now = self.now_ms();
                let (report, reading) = self
                    .fallback
                    .tick(&room.name, settings, now)
                    .unwrap_or_else(|| (TickReport::default(), self.reading(room, settings)));
                Ticked {
                    report,
                    reading,
                    reserve_low: false,
                }
            }
        }
    }

    fn reading(&self, room: &Room, settings: &Settings) -> Reading {
        self.readings
            .lock()
            .get(&room.name)
            .cloned()
            .unwrap_or_else(|| super::reading::empty(settings))
    }

    fn saved_overrides(&self) -> BTreeMap<String, Overrides> {
        overrides::load(&self.dir)
    }

    /// Keeps the overrides in Redis (every instance applies them at its next tick) and in this
    /// instance's file. Called off the async runtime (the admin API's blocking pool).
    fn save_overrides(&self, all: &BTreeMap<String, Overrides>) -> std::io::Result<()> {
        let handle = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let settings = Settings::default();
        for (name, o) in all {
            let json = serde_json::to_string(o).map_err(std::io::Error::other)?;
            handle
                .block_on(self.redis.set_overrides(name, &settings, &json))
                .map_err(std::io::Error::other)?;
        }
        overrides::save(&self.dir, all)
    }

    fn reachable(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// Redis keeps the rooms: no snapshot to write.
    fn persist(&self) -> std::io::Result<SnapshotReport> {
        Ok(SnapshotReport {
            rooms: 0,
            sessions: 0,
            bytes: 0,
            longest_lock_ms: 0.0,
            total_ms: 0.0,
            path: String::new(),
        })
    }
}
