//! Scheduled events on the real gateway, with events a few seconds ahead: visitors of the
//! pre-queue see the countdown state and no place, at `starts_at` all of them get places 1..N
//! exactly once and later arrivals come after; the operator's start and end buttons; a room
//! closed outside events; a reload that moves a running event refused by line and key. Each
//! runs on both stores: in memory and on a real redis-server.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use serde_json::Value;
use support::*;

const HOST: &str = "drop.test";

/// Milliseconds rounded up to the next whole second (the file's times are to the second).
fn next_second(ms: u64) -> u64 {
    ms.div_ceil(1000) * 1000
}

/// Where the room lives: in this process (the default) or on a real redis-server, which the
/// room's events must run on the same way.
pub enum Store {
    Memory,
    Redis(RedisServer),
}

impl Store {
    /// The `[token]` and `[store]` tables the store needs.
    fn tables(&self) -> String {
        match self {
            Store::Memory => String::new(),
            Store::Redis(r) => r.tables(""),
        }
    }

    async fn start(&self, text: &str) -> Gateway {
        match self {
            Store::Memory => Gateway::start(text).await,
            Store::Redis(_) => Gateway::start_with_env(text, &[SHARED_SECRET]).await,
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
    the_prequeue_shows_a_countdown_and_the_start_gives_every_place_once,
    the_operator_starts_and_ends_an_event_by_hand,
    outside_events_an_open_room_lets_everyone_in_and_a_closed_one_nobody,
    a_reload_cannot_move_a_running_events_start,
);

fn config(store: &Store, origin: &Origin, room_extra: &str, events: &str) -> String {
    base_config("50ms").replace(
        "http = \"127.0.0.1:0\"\n",
        "http = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n",
    ) + &store.tables()
        + &room(
            "drop",
            HOST,
            &origin.url(),
            &format!(
                "active_users = 1\nsession_ttl = \"1h\"\nabandon_after = \"1h\"\n{room_extra}\n{events}"
            ),
        )
}

fn event(name: &str, prequeue_from: u64, starts_at: u64, ends_at: u64, extra: &str) -> String {
    format!(
        "[[room.event]]\nname = \"{name}\"\nprequeue_from = \"{}\"\nstarts_at = \"{}\"\nends_at = \"{}\"\n{extra}\n",
        rfc3339_at(prequeue_from, 1),
        rfc3339_at(starts_at, 1),
        rfc3339_at(ends_at, 1)
    )
}

/// `n` new visitors (apps); each one's first status.
async fn join(gw: &Gateway, n: usize) -> Vec<(Client, Value)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (c, r) = visit(gw, HOST).await;
        assert_eq!(r.status, 429, "{}", r.body);
        let j = status(&c).await;
        out.push((c, j));
    }
    out
}

/// Each visitor's place once the line has them all.
async fn places(visitors: &[(Client, Value)]) -> Vec<u64> {
    let mut places = Vec::new();
    for (c, _) in visitors {
        let j = wait_state(c, "queued").await;
        places.push(j["position"].as_u64().unwrap_or_else(|| panic!("{j}")));
    }
    places
}

async fn the_prequeue_shows_a_countdown_and_the_start_gives_every_place_once(store: &Store) {
    let origin = Origin::start().await;
    let now = unix_ms();
    let pre = next_second(now + 1_500);
    let start = pre + 2_000;
    let gw = store
        .start(&config(
            store,
            &origin,
            "",
            &event(
                "drop",
                pre,
                start,
                start + 600_000,
                "message = \"The drop opens soon\"",
            ),
        ))
        .await;
    let admin = Admin::of(&gw);

    // Before the pre-queue: the room as configured; this visitor holds the one slot.
    let mut holder = gw.client(HOST);
    assert_eq!(holder.get("/", JSON).await.status, 200);
    let room = admin.room("drop").await;
    assert_eq!(room["events"][0]["phase"], "upcoming", "{room}");

    sleep_until_ms(pre + 100).await;
    let visitors = join(&gw, 6).await;
    for (i, (_, j)) in visitors.iter().enumerate() {
        assert_eq!(j["state"], "prequeue", "{j}");
        assert!(j["position"].is_null(), "{j}");
        assert!(j["estimated_wait_seconds"].is_null(), "{j}");
        assert_eq!(j["queue_depth"], i as u64 + 1, "{j}");
        assert_eq!(j["message"], "The drop opens soon", "{j}");
        let starts = j["event_starts_at"].as_str().unwrap();
        assert_eq!(
            time::OffsetDateTime::parse(starts, &time::format_description::well_known::Rfc3339)
                .unwrap()
                .unix_timestamp() as u64,
            start / 1000,
            "{j}"
        );
    }
    // A browser gets the waiting page in its countdown state.
    let mut browser = gw.client(HOST);
    let page = browser.get("/", BROWSER).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("The line opens at"), "{}", page.body);
    assert!(
        page.body.contains("data-state=\"prequeue\""),
        "{}",
        page.body
    );
    let room = admin.room("drop").await;
    assert_eq!(room["events"][0]["phase"], "prequeue", "{room}");
    // A shared store's figures are read at each tick.
    wait_until(LIMIT, "the prequeue depth", || async {
        let room = admin.room("drop").await;
        (room["prequeue_depth"] == 7).then_some(())
    })
    .await;
    wait_until(LIMIT, "the prequeue depth metric", || {
        let admin = admin.clone();
        async move {
            (admin
                .metric("anteroom_prequeue_depth", &[("room", "drop")])
                .await
                == Some(7.0))
            .then_some(())
        }
    })
    .await;

    // The start: places 1..7 exactly once (the browser visitor included), a later arrival 8th.
    sleep_until_ms(start).await;
    let mut all = visitors;
    all.push((browser, Value::Null));
    let mut got = places(&all).await;
    got.sort_unstable();
    assert_eq!(got, (1..=7).collect::<Vec<u64>>());
    let late = join(&gw, 1).await;
    assert_eq!(places(&late).await, vec![8]);
    let room = admin.room("drop").await;
    assert_eq!(room["events"][0]["phase"], "running", "{room}");
    assert_eq!(
        admin
            .metric(
                "anteroom_event_phase",
                &[("room", "drop"), ("event", "drop"), ("phase", "running")]
            )
            .await,
        Some(1.0)
    );
    drop(holder);
}

/// The operator's buttons: start an event whose pre-queue is open now, then end it in a room
/// closed outside events: those still waiting lose their place and newcomers get the closed
/// answer. Both kept as overrides; a second start is refused.
async fn the_operator_starts_and_ends_an_event_by_hand(store: &Store) {
    let origin = Origin::start().await;
    let now = unix_ms();
    let gw = store
        .start(&config(
            store,
            &origin,
            "outside_events = \"closed\"",
            &event(
                "launch",
                now - 1_000,
                now + 3_600_000,
                now + 7_200_000,
                "active_users = 1\nshuffle_at_start = false",
            ),
        ))
        .await;
    let admin = Admin::of(&gw);
    let visitors = join(&gw, 4).await;
    assert!(visitors.iter().all(|(_, j)| j["state"] == "prequeue"));

    let r = admin
        .send("POST", "/api/v1/rooms/drop/events/launch/start", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["events"][0]["phase"], "running", "{}", r.body);
    // Arrival order kept (shuffle_at_start = false): the first is let in, the rest in order.
    let first = wait_state(&visitors[0].0, "released").await;
    assert!(first["position"].is_null());
    assert_eq!(places(&visitors[1..]).await, vec![1, 2, 3]);
    let again = admin
        .send("POST", "/api/v1/rooms/drop/events/launch/start", "")
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let room = admin.room("drop").await;
    assert!(
        room["overrides"]["events"]["launch"]["starts_at_ms"].is_u64(),
        "{room}"
    );

    let r = admin
        .send("POST", "/api/v1/rooms/drop/events/launch/end", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["events"][0]["phase"], "ended");
    wait_until(LIMIT, "places dropped at the end", || {
        let admin = admin.clone();
        async move {
            let room = admin.room("drop").await;
            (room["event_dropped_total"] == 3 && room["live"]["queue_depth"] == 0).then_some(())
        }
    })
    .await;
    // A dropped visitor and a newcomer: the room is closed.
    let r = visitors[3].0.clone().get("/", JSON).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let (_, r) = visit(&gw, HOST).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        admin
            .send("POST", "/api/v1/rooms/drop/events/nope/start", "")
            .await
            .status,
        404
    );
}

/// Outside events an open room lets everyone in, whatever the capacity; a closed one nobody.
async fn outside_events_an_open_room_lets_everyone_in_and_a_closed_one_nobody(store: &Store) {
    let origin = Origin::start().await;
    let now = unix_ms();
    for (outside, want) in [("open", 200), ("closed", 503)] {
        let gw = store
            .start(&config(
                store,
                &origin,
                &format!("outside_events = \"{outside}\""),
                &event(
                    "later",
                    now + 3_600_000,
                    now + 7_200_000,
                    now + 9_000_000,
                    "",
                ),
            ))
            .await;
        for _ in 0..5 {
            let (_, r) = visit(&gw, HOST).await;
            assert_eq!(r.status, want, "{outside}: {}", r.body);
        }
        let page = gw.client(HOST).get("/", BROWSER).await;
        assert_eq!(page.status, want, "{outside}: {}", page.body);
    }
}

/// A reload may move a future event, but not the start of a running one: refused with the
/// file, line and key, the old configuration kept.
async fn a_reload_cannot_move_a_running_events_start(store: &Store) {
    let origin = Origin::start().await;
    let now = unix_ms();
    let starts = now - 2_000;
    let ends = now + 600_000;
    let later = now + 3_600_000;
    let text = config(
        store,
        &origin,
        "",
        &(event("now", starts, starts, ends, "")
            + &event("next", later, later + 60_000, later + 120_000, "")),
    );
    let gw = store.start(&text).await;
    let admin = Admin::of(&gw);
    let path = gw.dir.path().join("gateway.toml");

    // The future event moves.
    let moved_next = text.replace(
        &rfc3339_at(later + 60_000, 1),
        &rfc3339_at(later + 90_000, 1),
    );
    std::fs::write(&path, &moved_next).unwrap();
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        admin.room("drop").await["events"][1]["starts_at"],
        rfc3339_at(later + 90_000, 0)
    );

    // The running one does not.
    let moved_now = moved_next.replace(&rfc3339_at(starts, 1), &rfc3339_at(starts + 1_000, 1));
    std::fs::write(&path, &moved_now).unwrap();
    let r = admin.send("POST", "/api/v1/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.body);
    let errors = r.json()["errors"].clone();
    let line = moved_now
        .lines()
        .position(|l| l.starts_with("starts_at") && l.contains(&rfc3339_at(starts + 1_000, 1)))
        .unwrap()
        + 1;
    assert_eq!(errors[0]["line"], line as u64, "{errors}");
    assert_eq!(errors[0]["key"], "room[0].event[0].starts_at", "{errors}");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("running"),
        "{errors}"
    );
    assert_eq!(
        admin.room("drop").await["events"][0]["starts_at"],
        rfc3339_at(starts, 0)
    );
}
