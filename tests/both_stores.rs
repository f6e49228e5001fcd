//! One suite of the room's behaviour, run against both stores: the memory store (the default, no
//! `[store]` table) and the shared store (`[store] kind = "redis"`, a real redis-server, one per
//! test). Each behaviour is written once, as `async fn case(store: &Store)`, and `both_stores!`
//! makes a `memory::case` and a `redis::case` test of it. Everything goes through real HTTP to
//! the real gateway on 127.0.0.1 port 0, in front of a real origin: places in line, a refresh,
//! idle expiry, abandonment, forged tokens, revoke, leave, `max_session`, the random and lottery
//! policies, pause, a closed room, capacity overrides and the operator's reset of the line.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use support::*;

/// How long a case waits for anything.
const WAIT: Duration = Duration::from_secs(10);

/// The store a case runs against.
pub enum Store {
    /// The default: no `[store]` table.
    Memory,
    /// `[store] kind = "redis"` on this server (stopped when the test ends).
    Redis(RedisServer),
}

impl Store {
    fn kind(&self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// A whole gateway config: a 50 ms tick, the public and admin listeners, short origin
    /// timeouts, the store's tables, then `rooms`.
    fn config(&self, rooms: &str) -> String {
        let store = match self {
            Store::Memory => String::new(),
            Store::Redis(r) => r.tables("") + "\n",
        };
        format!(
            "tick = \"50ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [limits]\norigin_response_timeout = \"1s\"\norigin_connect_timeout = \"1s\"\n\n\
             {store}{rooms}"
        )
    }

    fn env(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            Store::Memory => Vec::new(),
            Store::Redis(_) => vec![SHARED_SECRET],
        }
    }

    async fn start(&self, rooms: &str) -> Gateway {
        Gateway::start_with_env(&self.config(rooms), &self.env()).await
    }

    /// The room is kept in this store: with Redis, the admin API lists the instances Redis has
    /// seen, this one holding the tick's lease (so the room ticks); in memory there are none.
    async fn in_use(&self, admin: &Admin, name: &str) {
        match self {
            Store::Memory => {
                let j = admin.room(name).await;
                assert!(j.get("instances").is_none(), "{j}");
            }
            Store::Redis(_) => {
                wait_until(
                    WAIT,
                    "this instance in Redis, holding the lease",
                    || async {
                        let j = admin.room(name).await;
                        let one = j["instances"]
                            .as_array()
                            .is_some_and(|i| i.len() == 1 && i[0]["lease_holder"] == true);
                        one.then_some(())
                    },
                )
                .await;
            }
        }
    }
}

/// Makes `memory::<case>` and `redis::<case>` tests of each `async fn <case>(&Store)`.
macro_rules! both_stores {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::Store::Memory).await;
                }
            )+
        }

        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(redis) = super::RedisServer::start().await else {
                        return;
                    };
                    super::$case(&super::Store::Redis(redis)).await;
                }
            )+
        }
    };
}

both_stores!(
    places_are_given_in_arrival_order,
    a_refresh_keeps_the_place,
    an_idle_session_expires_and_the_head_of_the_line_is_released,
    a_silent_visitor_is_dropped_and_one_back_in_time_keeps_the_place,
    forged_and_tampered_tokens_are_no_token,
    the_origin_revokes_a_session,
    leaving_frees_the_place_or_the_slot,
    max_session_ends_a_busy_session_long_before_session_ttl,
    a_random_line_gives_odds_and_no_place,
    a_lottery_gives_places_at_the_draw,
    a_pause_releases_nobody_and_promises_no_time,
    a_closed_room_turns_newcomers_away_and_keeps_the_admitted,
    a_capacity_override_releases_those_waiting,
    a_reset_drops_everyone_waiting_and_keeps_the_admitted,
);

/// One room of a case in a running gateway, with its origin and admin API.
struct Room {
    gw: Gateway,
    admin: Admin,
    origin: Origin,
    /// `<case>-<store>`: metrics are the test process's, shared by both stores' tests.
    name: String,
    host: String,
}

/// Every case's room has a 3 s release window, which keeps the poll floor at 1 s.
const ROOM_KEYS: &str = "release_window = \"3s\"";

fn room_table(name: &str, host: &str, origin: &Origin, extra: &str) -> String {
    room(name, host, &origin.url(), &format!("{ROOM_KEYS}\n{extra}"))
}

/// A gateway on `store` with the room `<case>-<store>` at `<case>.test`.
async fn open(store: &Store, case: &str, extra: &str) -> Room {
    let origin = Origin::start().await;
    let name = format!("{case}-{}", store.kind());
    let host = format!("{case}.test");
    let gw = store.start(&room_table(&name, &host, &origin, extra)).await;
    let admin = Admin::of(&gw);
    store.in_use(&admin, &name).await;
    Room {
        gw,
        admin,
        origin,
        name,
        host,
    }
}

impl Room {
    fn visitor(&self) -> Client {
        self.gw.client(&self.host)
    }

    /// A new visitor's first request as an app, which must be `want`.
    async fn arrive(&self, want: u16) -> (Client, Value) {
        let mut c = self.visitor();
        let r = c.get("/", JSON).await;
        assert_eq!(r.status.as_u16(), want, "{}", r.body);
        (c, r.json())
    }

    /// A new visitor who is admitted at once.
    async fn admitted(&self) -> Client {
        let mut c = self.visitor();
        let r = c.get("/", JSON).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.header("set-cookie").is_some(), "a session cookie");
        c
    }

    /// A new visitor who is put in line, and whose page asks once (it is back).
    async fn queued(&self) -> (Client, Value) {
        let (c, joined) = self.arrive(429).await;
        assert_eq!(joined["state"], "queued", "{joined}");
        let back = status(&c).await;
        assert_eq!(back["state"], "queued", "{back}");
        (c, joined)
    }

    async fn ended(&self, reason: &str) -> f64 {
        let labels = [("room", self.name.as_str()), ("reason", reason)];
        self.admin
            .metric("anteroom_sessions_ended_total", &labels)
            .await
            .unwrap_or(0.0)
    }

    /// Writes the room with `extra` to the config file and reloads it through the admin API.
    async fn reload(&self, store: &Store, extra: &str) {
        let rooms = room_table(&self.name, &self.host, &self.origin, extra);
        std::fs::write(
            self.gw.dir.path().join("gateway.toml"),
            store.config(&rooms),
        )
        .unwrap();
        let r = self.admin.send("POST", "/api/v1/reload", "").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["result"], "ok", "{}", r.body);
    }
}

/// The visitor's request reaches the origin.
async fn comes_in(c: &mut Client, path: &str) {
    let r = c.get(path, JSON).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert_eq!(r.body, format!("origin:{path}"));
}

/// `POST /__anteroom/leave` as an app; the JSON answer.
async fn leave(c: &mut Client) -> Value {
    let r = c
        .send("POST", "/__anteroom/leave", &[("accept", JSON)], "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn time_of(j: &Value, key: &str) -> SystemTime {
    let s = j[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing: {j}"));
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("{key} = {s:?}: {e}"))
}

/// A full room puts newcomers in line 1..N in arrival order, each told the depth behind them;
/// asked later, each has the same place and the whole depth. Nobody in line reaches the origin.
async fn places_are_given_in_arrival_order(store: &Store) {
    let room = open(store, "fifo", "active_users = 2\nabandon_after = \"30s\"").await;
    for _ in 0..2 {
        room.admitted().await;
    }
    let mut line = Vec::new();
    for want in 1..=4u64 {
        let mut c = room.visitor();
        let r = c.get("/", JSON).await;
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(r.header("retry-after").is_some());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let j = r.json();
        assert_eq!(j["state"], "queued", "{j}");
        assert_eq!(j["position"], want, "{j}");
        assert_eq!(j["queue_depth"], want, "{j}");
        assert!(j["token"].as_str().is_some_and(|t| !t.is_empty()), "{j}");
        line.push(c);
    }
    for (i, c) in line.iter().enumerate() {
        let j = status(c).await;
        assert_eq!(j["state"], "queued", "{j}");
        assert_eq!(j["position"], i as u64 + 1, "{j}");
        assert_eq!(j["queue_depth"], 4, "{j}");
    }
    assert_eq!(
        room.origin.count(),
        2,
        "those in line never reach the origin"
    );
}

/// Page views again (at other URLs), a poll and a second tab with the same cookie keep the
/// place; no second place is taken (a newcomer is behind everyone); an app asking again too
/// soon is told to wait and keeps it.
async fn a_refresh_keeps_the_place(store: &Store) {
    let room = open(
        store,
        "refresh",
        "active_users = 1\nabandon_after = \"30s\"",
    )
    .await;
    room.admitted().await;
    let mut line = Vec::new();
    for want in 1..=3u64 {
        let (c, j) = room.arrive(429).await;
        assert_eq!(j["position"], want, "{j}");
        line.push(c);
    }
    for i in 0..3 {
        let r = line[1].get(&format!("/other-page/{i}"), BROWSER).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("data-position=\"2\""), "{}", r.body);
        assert!(r.header("set-cookie").is_none(), "the same session");
    }
    let j = status(&line[1]).await;
    assert_eq!(
        (j["position"].as_u64(), j["queue_depth"].as_u64()),
        (Some(2), Some(3))
    );
    // Asked again at once by an app: the poll floor, the place kept.
    let again = line[1].get("/other-page", JSON).await;
    assert_eq!(again.status, 429, "{}", again.body);
    assert_eq!(again.json()["state"], "queued");
    assert!(again.header("retry-after").is_some());
    // A second tab: the same cookie, the same place.
    let tab = line[1].clone();
    let j = status(&tab).await;
    assert_eq!(
        (j["position"].as_u64(), j["queue_depth"].as_u64()),
        (Some(2), Some(3))
    );
    let (_late, j) = room.arrive(429).await;
    assert_eq!(
        (j["position"].as_u64(), j["queue_depth"].as_u64()),
        (Some(4), Some(4))
    );
    let j = status(&line[1]).await;
    assert_eq!(j["position"], 2, "{j}");
    assert_eq!(room.origin.count(), 1);
}

/// An admitted visitor idle past `session_ttl` frees the slot: the head of the line is released
/// and comes in. The idle visitor is then told the session expired (the stale cookie dropped),
/// and asking again puts them in line.
async fn an_idle_session_expires_and_the_head_of_the_line_is_released(store: &Store) {
    let room = open(
        store,
        "idle",
        "active_users = 1\nsession_ttl = \"500ms\"\nabandon_after = \"30s\"",
    )
    .await;
    let mut first = room.admitted().await;
    let (mut second, j) = room.queued().await;
    assert_eq!(j["position"], 1, "{j}");
    wait_state(&second, "released").await;
    comes_in(&mut second, "/checkout").await;
    let r = first.get("/", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["state"], "expired", "{}", r.body);
    assert!(first.cookies.is_empty(), "the stale cookie is dropped");
    let r = first.get("/", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["position"], 1, "{}", r.body);
    assert_eq!(room.ended("idle").await, 1.0);
}

/// A queued visitor silent past `abandon_after` loses the place and those behind move up; a
/// visitor away for less comes back to the same place. The one dropped is told so when back,
/// and asking again joins at the back.
async fn a_silent_visitor_is_dropped_and_one_back_in_time_keeps_the_place(store: &Store) {
    let room = open(
        store,
        "abandon",
        "active_users = 1\nabandon_after = \"2s\"\nsession_ttl = \"30s\"",
    )
    .await;
    room.admitted().await;
    let mut line = Vec::new();
    for want in 1..=3u64 {
        let (c, j) = room.arrive(429).await;
        assert_eq!(j["position"], want, "{j}");
        line.push(c);
    }
    let (a, mut b, c) = (line[0].clone(), line[1].clone(), line[2].clone());
    // a and c keep asking (an early poll answered 429 still counts as being there); b is gone.
    let depth = wait_until(WAIT, "c to move up", || {
        let (mut a, mut c) = (a.clone(), c.clone());
        async move {
            a.get("/__anteroom/status", JSON).await;
            let r = c.get("/__anteroom/status", JSON).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            (r.status == 200 && r.json()["position"] == 2).then(|| r.json()["queue_depth"].clone())
        }
    })
    .await;
    assert_eq!(depth, 2);
    // a is away for under half of abandon_after, then back: still first.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let j = status(&a).await;
    assert_eq!(
        (j["state"].as_str(), j["position"].as_u64()),
        (Some("queued"), Some(1)),
        "{j}"
    );
    let r = b.get("/", JSON).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["state"], "expired", "{}", r.body);
    assert!(r.json()["position"].is_null(), "{}", r.body);
    assert!(b.cookies.is_empty(), "the stale cookie is dropped");
    let r = b.get("/", JSON).await;
    assert_eq!(r.json()["position"], 3, "{}", r.body);
    assert!(r.header("set-cookie").is_some());
    assert_eq!(status(&c).await["position"], 2);
}

/// A token of another room, a tampered one, a truncated one, garbage, and a tampered one in
/// the `Anteroom-Token` header: each is a new visitor at the back, never let in, never an
/// error; the real holder of the place keeps it.
async fn forged_and_tampered_tokens_are_no_token(store: &Store) {
    let origin = Origin::start().await;
    let name = format!("forged-{}", store.kind());
    let rooms = room_table(
        &name,
        "forged.test",
        &origin,
        "active_users = 1\nabandon_after = \"30s\"",
    ) + &room_table("other", "other.test", &origin, "active_users = 1");
    let gw = store.start(&rooms).await;
    store.in_use(&Admin::of(&gw), &name).await;
    assert_eq!(gw.client("forged.test").get("/", JSON).await.status, 200);
    let mut first = gw.client("forged.test");
    assert_eq!(first.get("/", JSON).await.json()["position"], 1);
    // A token that is valid, but for another room.
    let mut other = gw.client("other.test");
    assert_eq!(other.get("/", JSON).await.status, 200);
    let other_token = other.cookies["anteroom_other"].clone();
    let cookie = format!("anteroom_{name}");
    let good = first.cookies[&cookie].clone();
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let cases = [
        ("cookie", format!("{cookie}={other_token}")),
        ("cookie", format!("{cookie}={tampered}")),
        ("cookie", format!("{cookie}={}", &good[..good.len() / 2])),
        ("cookie", format!("{cookie}=%%%not-a-token")),
        ("anteroom-token", tampered.clone()),
    ];
    for (i, (header, value)) in cases.iter().enumerate() {
        let mut c = gw.client("forged.test");
        let r = c
            .send(
                "GET",
                "/",
                &[("accept", JSON), (header, value.as_str())],
                "",
            )
            .await;
        assert_eq!(
            r.status, 429,
            "case {i}: never entry, never an error: {}",
            r.body
        );
        let j = r.json();
        assert_eq!(j["state"], "queued", "case {i}: {j}");
        assert_eq!(
            j["position"],
            2 + i as u64,
            "case {i}: a new place at the back"
        );
        assert_ne!(j["token"].as_str().unwrap(), value.as_str());
        assert!(r.header("set-cookie").is_some(), "case {i}: a new session");
    }
    let j = status(&first).await;
    assert_eq!(
        (j["position"].as_u64(), j["queue_depth"].as_u64()),
        (Some(1), Some(6))
    );
    // The two admitted visitors only (one per room).
    assert_eq!(origin.count(), 2, "no forged token got in");
}

/// The origin answers `Anteroom-Command: revoke`: the header never reaches the client, the
/// slot frees and the one waiting is let in; the revoked session is gone.
async fn the_origin_revokes_a_session(store: &Store) {
    let room = open(store, "revoke", "active_users = 1\nabandon_after = \"30s\"").await;
    let mut a = room.admitted().await;
    let (mut b, _) = room.queued().await;
    let r = a.get("/revoke", JSON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "origin:/revoke");
    assert!(
        r.header("anteroom-command").is_none(),
        "the command is stripped"
    );
    wait_state(&b, "released").await;
    comes_in(&mut b, "/in").await;
    let r = a.get("/", JSON).await;
    assert_eq!(r.status, 429, "a revoked session is gone: {}", r.body);
    assert_eq!(r.json()["state"], "expired", "{}", r.body);
    assert_eq!(room.ended("revoke").await, 1.0);
}

/// `POST /__anteroom/leave`: from the line, the place is given up and those behind move up;
/// from a slot, the slot frees and the head of the line is let in. The cookie is cleared; a
/// leave without a token leaves nothing.
async fn leaving_frees_the_place_or_the_slot(store: &Store) {
    let room = open(store, "leave", "active_users = 1\nabandon_after = \"30s\"").await;
    let mut holder = room.admitted().await;
    let (mut a, j) = room.queued().await;
    assert_eq!(j["position"], 1, "{j}");
    let (mut b, j) = room.queued().await;
    assert_eq!(j["position"], 2, "{j}");

    assert_eq!(
        leave(&mut a).await,
        json!({"room": room.name, "left": true})
    );
    assert!(a.cookies.is_empty(), "the cookie is cleared");
    let j = status(&b).await;
    assert_eq!(
        (j["position"].as_u64(), j["queue_depth"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(leave(&mut room.visitor()).await["left"], false);

    assert_eq!(leave(&mut holder).await["left"], true);
    assert!(holder.cookies.is_empty());
    wait_state(&b, "released").await;
    comes_in(&mut b, "/after").await;
    let r = holder.get("/", JSON).await;
    assert_eq!(r.status, 429, "the room is full again: {}", r.body);
    assert_eq!(room.ended("leave").await, 1.0, "one slot left, one place");
}

/// `max_session` (1 s) far shorter than `session_ttl` (5 m): a visitor browsing all along is
/// cut at the cap, not when the idle timer would fire, and the one waiting gets in.
async fn max_session_ends_a_busy_session_long_before_session_ttl(store: &Store) {
    let room = open(
        store,
        "capped",
        "active_users = 1\nsession_ttl = \"5m\"\nmax_session = \"1s\"\nabandon_after = \"30s\"",
    )
    .await;
    let started = tokio::time::Instant::now();
    let a = room.admitted().await;
    let j = status(&a).await;
    assert_eq!(j["state"], "admitted", "{j}");
    let now = SystemTime::now();
    let ends = time_of(&j, "session_ends_at");
    assert!(
        ends > now - Duration::from_secs(1) && ends <= now + Duration::from_secs(2),
        "{j}"
    );
    let idle = time_of(&j, "session_expires_at");
    assert!(idle > now + Duration::from_secs(280), "{j}");
    let (mut b, _) = room.queued().await;
    // A browses every 100 ms with its first cookie until the origin stops answering it.
    let cut_after = wait_until(Duration::from_secs(5), "max_session to end A", || {
        let mut a = a.clone();
        async move {
            let r = a.get("/browse", JSON).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            (r.status != 200).then(|| started.elapsed())
        }
    })
    .await;
    assert!(
        cut_after < Duration::from_secs(3),
        "A was admitted for {cut_after:?} under max_session = 1s"
    );
    wait_state(&b, "released").await;
    comes_in(&mut b, "/in").await;
    wait_until(WAIT, "the cap counted", || async {
        (room.ended("max_session").await == 1.0).then_some(())
    })
    .await;
    assert_eq!(room.ended("idle").await, 0.0, "not ended as idle");
}

/// A random line: no place, the depth and the odds of a release within a minute; a freed slot
/// goes to exactly one of those waiting.
async fn a_random_line_gives_odds_and_no_place(store: &Store) {
    let room = open(
        store,
        "random",
        "active_users = 1\nqueue = \"random\"\nabandon_after = \"30s\"",
    )
    .await;
    let mut holder = room.admitted().await;
    let mut line = Vec::new();
    for depth in 1..=3u64 {
        let (c, j) = room.queued().await;
        assert_eq!(j["state"], "queued");
        assert!(j["position"].is_null(), "{j}");
        assert!(j["next_draw_at"].is_null(), "{j}");
        assert_eq!(j["queue_depth"], depth, "{j}");
        let chance = j["chance_next_minute"].as_f64().unwrap();
        assert!(chance > 0.0 && chance <= 1.0, "{chance}");
        line.push(c);
    }
    for c in &line {
        let j = status(c).await;
        assert!(j["position"].is_null(), "{j}");
        assert_eq!(j["queue_depth"], 3, "{j}");
        assert!(j["chance_next_minute"].is_f64(), "{j}");
    }
    assert_eq!(leave(&mut holder).await["left"], true);
    wait_until(WAIT, "one release", || async {
        let live = room.admin.room(&room.name).await["live"].clone();
        (live["released"] == 1 && live["queue_depth"] == 2).then_some(())
    })
    .await;
    let mut released = Vec::new();
    for c in &line {
        let j = status(c).await;
        match j["state"].as_str() {
            Some("released") => released.push(c.clone()),
            Some("queued") => {
                assert_eq!(j["queue_depth"], 2, "{j}");
                assert!(j["position"].is_null(), "{j}");
            }
            _ => panic!("{j}"),
        }
    }
    assert_eq!(released.len(), 1, "exactly one released");
    comes_in(&mut released[0], "/in").await;
    assert_eq!(room.origin.count(), 2);
}

/// A lottery: before the draw no place and `next_draw_at` (about `draw_every` away); after it
/// distinct places 1..N and no draw to wait for; the first place is let in when a slot frees.
async fn a_lottery_gives_places_at_the_draw(store: &Store) {
    let room = open(
        store,
        "lottery",
        "active_users = 1\nqueue = \"lottery\"\ndraw_every = \"1s\"\nabandon_after = \"30s\"",
    )
    .await;
    let mut holder = room.admitted().await;
    let mut line = Vec::new();
    for _ in 0..3 {
        let mut c = room.visitor();
        let r = c.get("/tickets", JSON).await;
        assert_eq!(r.status, 429, "{}", r.body);
        let j = r.json();
        assert_eq!(j["state"], "queued");
        assert!(j["position"].is_null(), "no place before the draw: {j}");
        let at = time_of(&j, "next_draw_at");
        let now = SystemTime::now();
        assert!(
            at > now - Duration::from_secs(1) && at <= now + Duration::from_secs(3),
            "{j}"
        );
        line.push(c);
    }
    let mut places = Vec::new();
    for c in &line {
        let j = wait_until(WAIT, "the draw", || async {
            let j = status(c).await;
            j["position"].is_u64().then_some(j)
        })
        .await;
        assert!(
            j["next_draw_at"].is_null(),
            "a drawn visitor waits for no draw: {j}"
        );
        assert_eq!(j["queue_depth"], 3, "{j}");
        places.push(j["position"].as_u64().unwrap());
    }
    let mut sorted = places.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2, 3]);
    assert_eq!(leave(&mut holder).await["left"], true);
    let front = places.iter().position(|&p| p == 1).unwrap();
    wait_state(&line[front], "released").await;
    comes_in(&mut line[front], "/tickets").await;
    for (i, c) in line.iter().enumerate() {
        if i != front {
            let j = status(c).await;
            assert_eq!(j["state"], "queued", "{j}");
            assert_eq!(j["position"], places[i] - 1, "{j}");
        }
    }
}

/// Paused by the admin API: with slots free, newcomers wait in order, nobody is released and no
/// time is promised, while the admitted stay; resumed, those waiting are released.
async fn a_pause_releases_nobody_and_promises_no_time(store: &Store) {
    let room = open(store, "pause", "active_users = 3\nabandon_after = \"30s\"").await;
    let mut a = room.admitted().await;
    let j = room.admin.patch_ok(&room.name, r#"{"paused": true}"#).await;
    assert_eq!(j["paused"], true);
    assert_eq!(j["file"]["paused"], false);
    assert_eq!(j["overrides"], json!({"paused": true}));
    let mut line = Vec::new();
    for want in 1..=2u64 {
        let (c, j) = room.arrive(429).await;
        assert_eq!(
            (j["state"].as_str(), j["position"].as_u64()),
            (Some("paused"), Some(want)),
            "{j}"
        );
        assert!(j["estimated_wait_seconds"].is_null(), "{j}");
        line.push(c);
    }
    comes_in(&mut a, "/still-in").await;
    // Ticks go by, with everyone back: nobody moves.
    for c in &line {
        status(c).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, c) in line.iter().enumerate() {
        let j = status(c).await;
        assert_eq!(j["state"], "paused", "{j}");
        assert_eq!(j["position"], i as u64 + 1, "{j}");
        assert!(j["estimated_wait_seconds"].is_null(), "{j}");
    }
    let live = &room.admin.room(&room.name).await["live"];
    assert_eq!(live["queue_depth"], 2, "{live}");
    assert_eq!(live["released"], 0, "{live}");
    assert_eq!(room.origin.count(), 2, "only the admitted visitor");

    let j = room
        .admin
        .patch_ok(&room.name, r#"{"paused": false}"#)
        .await;
    assert_eq!(j["paused"], false);
    for c in &mut line {
        wait_state(c, "released").await;
        comes_in(c, "/in").await;
    }
}

/// `mode = "reject"` (reloaded while a visitor is admitted): newcomers get the closed answer
/// (503, JSON for apps, the page for browsers, the message, no place, no cookie) and reach no
/// origin; the admitted visitor keeps browsing.
async fn a_closed_room_turns_newcomers_away_and_keeps_the_admitted(store: &Store) {
    let keys = "active_users = 2\nabandon_after = \"30s\"";
    let room = open(store, "closed", keys).await;
    let mut a = room.admitted().await;
    room.reload(
        store,
        &format!("{keys}\nmode = \"reject\"\nmessage = \"back at noon\""),
    )
    .await;
    let mut app = room.visitor();
    for path in ["/", "/__anteroom/status"] {
        let r = app.get(path, JSON).await;
        assert_eq!(r.status, 503, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("set-cookie").is_none(), "nothing is queued");
        let j = r.json();
        assert_eq!(j["state"], "closed", "{path}: {j}");
        assert_eq!(j["message"], "back at noon");
        assert!(
            j["position"].is_null() && j["estimated_wait_seconds"].is_null(),
            "{j}"
        );
        let poll = j["poll_after_seconds"].as_u64().unwrap();
        assert_eq!(r.header("retry-after"), Some(poll.to_string().as_str()));
    }
    let mut browser = room.visitor();
    let page = browser.get("/", BROWSER).await;
    assert_eq!(page.status, 503);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("back at noon"), "{}", page.body);
    assert!(page.header("set-cookie").is_none());
    for path in ["/still-in", "/again"] {
        comes_in(&mut a, path).await;
    }
    assert_eq!(
        room.origin.count(),
        3,
        "only the admitted visitor's requests"
    );
    let live = &room.admin.room(&room.name).await["live"];
    assert_eq!(live["queue_depth"], 0, "{live}");
}

/// An admin override raising `active_users` releases those waiting at the next tick; deleting
/// the overrides brings the file's capacity back.
async fn a_capacity_override_releases_those_waiting(store: &Store) {
    let room = open(
        store,
        "capacity",
        "active_users = 1\nabandon_after = \"30s\"",
    )
    .await;
    let mut a = room.admitted().await;
    let (mut b, _) = room.queued().await;
    let (mut c, _) = room.queued().await;
    let j = room
        .admin
        .patch_ok(&room.name, r#"{"active_users": 3}"#)
        .await;
    assert_eq!(j["active_users"], 3);
    assert_eq!(j["file"]["active_users"], 1);
    assert_eq!(j["overrides"], json!({"active_users": 3}));
    for v in [&mut b, &mut c] {
        wait_state(v, "released").await;
        comes_in(v, "/in").await;
    }
    assert_eq!(leave(&mut a).await["left"], true);
    let r = room
        .admin
        .send(
            "DELETE",
            &format!("/api/v1/rooms/{}/overrides", room.name),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    assert_eq!(j["overrides"], json!({}));
    assert_eq!(j["active_users"], 1);
    // Two admitted, one slot in the file: a newcomer waits.
    let (_d, j) = room.arrive(429).await;
    assert_eq!(j["position"], 1, "capacity is back to 1: {j}");
}

/// `POST /api/v1/rooms/{name}/reset?confirm={name}`: everyone waiting loses their place (one in
/// line and one whose turn was missed while away); the admitted and the released keep theirs. A
/// dropped token then says `expired`; a newcomer is first in line. A wrong `confirm` changes
/// nothing.
async fn a_reset_drops_everyone_waiting_and_keeps_the_admitted(store: &Store) {
    let room = open(store, "reset", "active_users = 1\nabandon_after = \"30s\"").await;
    let mut holder = room.admitted().await;
    // Never comes back after joining: passed over by the next release, its turn missed.
    let (silent, _) = room.arrive(429).await;
    let (mut b, _) = room.queued().await;
    let (c, _) = room.queued().await;
    room.admin
        .patch_ok(&room.name, r#"{"active_users": 2}"#)
        .await;
    wait_state(&b, "released").await;

    let path = format!("/api/v1/rooms/{}/reset", room.name);
    let r = room
        .admin
        .send("POST", &format!("{path}?confirm=x"), "")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(status(&c).await["state"], "queued");

    let r = room
        .admin
        .send("POST", &format!("{path}?confirm={}", room.name), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"room": room.name, "reset": true, "dropped": 2})
    );
    let labels = [("room", room.name.as_str())];
    assert_eq!(
        room.admin
            .metric("anteroom_room_reset_dropped_total", &labels)
            .await,
        Some(2.0)
    );
    comes_in(&mut holder, "/still").await;
    comes_in(&mut b, "/in").await;
    for dropped in [&silent, &c] {
        assert_eq!(status(dropped).await["state"], "expired");
    }
    let (newcomer, j) = room.queued().await;
    assert_eq!(j["position"], 1, "{j}");
    assert_eq!(status(&newcomer).await["queue_depth"], 1);
}
