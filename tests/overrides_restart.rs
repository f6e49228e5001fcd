//! Admin overrides are written to the state folder and come back after a restart.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use support::*;

#[tokio::test]
async fn overrides_survive_a_restart() {
    let origin = Origin::start().await;
    let config = format!(
        "tick = \"20ms\"\n\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n{}",
        room("kept", "kept.test", &origin.url(), "active_users = 5")
    );
    let mut gw = Gateway::start(&config).await;
    Admin::of(&gw)
        .patch_ok(
            "kept",
            r#"{"paused": true, "active_users": 2, "message": "back soon"}"#,
        )
        .await;
    assert!(gw.dir.path().join("state/overrides.json").exists());
    gw.running.take().unwrap().shutdown().await;

    let path = gw.dir.path().join("gateway.toml");
    let running = anteroom::start(&path).await.unwrap();
    let again = Gateway {
        addr: running.http_addr,
        dir: gw.dir,
        running: Some(running),
    };
    let room = Admin::of(&again).room("kept").await;
    assert_eq!(room["paused"], true);
    assert_eq!(room["active_users"], 2);
    assert_eq!(room["file"]["active_users"], 5);
    assert_eq!(room["overrides"]["message"], "back soon");
    // In force on the public side too: a paused room admits nobody new.
    let mut v = again.client("kept.test");
    let r = v.get("/", JSON).await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.json()["state"], "paused");
    assert_eq!(r.json()["message"], "back soon");
}
