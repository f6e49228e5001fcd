//! A reload is a room's change everywhere: with a shared store, the newest configuration file
//! any instance loaded (by modification time) sets what the room admits on every instance,
//! within a tick; an instance started with an older file takes the newer one, and an admin
//! override still wins over both.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::disallowed_types)]

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use support::*;

fn config(redis: &RedisServer, origin: &Origin, extra: &str) -> String {
    format!(
        "tick = \"50ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n{}\n{}",
        redis.tables(""),
        room("shop", "shop.test", &origin.url(), extra)
    )
}

/// Writes `text` to `path` with the modification time `age` ago.
fn write_aged(path: &Path, text: &str, age: Duration) {
    std::fs::write(path, text).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

async fn wait_capacity(admin: &Admin, want: u64, what: &str) -> serde_json::Value {
    wait_until(Duration::from_secs(5), what, || {
        let admin = admin.clone();
        async move {
            let room = admin.room("shop").await;
            (room["active_users"] == want).then_some(room)
        }
    })
    .await
}

#[tokio::test]
async fn the_newest_file_sets_the_room_on_every_instance() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let origin = Origin::start().await;
    let old = config(&redis, &origin, "active_users = 1\nabandon_after = \"60s\"");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_file, b_file) = (
        a_dir.path().join("gateway.toml"),
        b_dir.path().join("gateway.toml"),
    );
    write_aged(&a_file, &old, Duration::from_secs(3600));
    write_aged(&b_file, &old, Duration::from_secs(3600));
    let mut a = Binary::start(&a_file, &[SHARED_SECRET]).await;
    let mut b = Binary::start(&b_file, &[SHARED_SECRET]).await;
    let (a_admin, b_admin) = (a.admin().await, b.admin().await);

    // A's file raised to 3 and reloaded there: B admits 3 within a tick or two.
    let new = config(&redis, &origin, "active_users = 3\nabandon_after = \"60s\"");
    write_aged(&a_file, &new, Duration::ZERO);
    assert_eq!(a_admin.send("POST", "/api/v1/reload", "").await.status, 200);
    let room = wait_capacity(&b_admin, 3, "A's reload in force on B").await;
    assert_eq!(
        room["file"]["active_users"], 1,
        "B's own file is unchanged: {room}"
    );
    assert_eq!(room["shared_file"]["active_users"], 3, "{room}");
    let a_room = a_admin.room("shop").await;
    assert!(
        a_room.get("shared_file").is_none(),
        "A runs on its own file: {a_room}"
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(client(&b).get("/", JSON).await.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "B admits A's capacity");

    // A third instance started with the old file (older than A's) takes A's settings.
    let c_dir = tempfile::tempdir().unwrap();
    let c_file = c_dir.path().join("gateway.toml");
    write_aged(&c_file, &old, Duration::from_secs(7200));
    let mut c = Binary::start(&c_file, &[SHARED_SECRET]).await;
    let c_admin = c.admin().await;
    wait_capacity(&c_admin, 3, "the newer file in force on a late instance").await;
    assert_eq!(client(&c).get("/", JSON).await.status, 429, "still full");
    // ... and A keeps its own: the older file offered later did not win.
    assert_eq!(a_admin.room("shop").await["active_users"], 3);

    // B's file edited later still (a newer file) wins everywhere, A included.
    let newest = config(&redis, &origin, "active_users = 5\nabandon_after = \"60s\"");
    write_aged(&b_file, &newest, Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(20)).await;
    write_aged(&b_file, &newest, Duration::ZERO);
    assert_eq!(b_admin.send("POST", "/api/v1/reload", "").await.status, 200);
    for admin in [&a_admin, &b_admin, &c_admin] {
        wait_capacity(admin, 5, "B's newer file everywhere").await;
    }

    // An override through any instance beats the files on every instance.
    a_admin.patch_ok("shop", r#"{"active_users": 2}"#).await;
    for admin in [&a_admin, &b_admin, &c_admin] {
        wait_capacity(admin, 2, "the override over the shared file").await;
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
}
