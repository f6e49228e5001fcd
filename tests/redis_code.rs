//! The shared store's code runs in Redis as a library function (Redis 7 and later) or as a
//! script; both forms are one source and agree, a fleet can mix them, and a Redis that lost the
//! library (a flush, a restart without persistence) gets it back at the next call.

#![allow(unreachable_pub, clippy::unwrap_used, clippy::disallowed_types)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use anteroom::room::{SessionId, Settings};
use anteroom::store::redis::{Kind, RedisRooms, Request};
use support::RedisServer;

async fn connect(server: &RedisServer) -> RedisRooms {
    RedisRooms::connect(&server.url(), "test", Duration::from_secs(2))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_function_and_the_script_are_one_room() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let function = connect(&server).await;
    assert!(function.runs_as_function(), "redis-server 7 has functions");
    let script = connect(&server).await;
    script.run_as_script();
    assert!(!script.runs_as_function());
    let s = Settings {
        active_users: Some(2),
        ..Settings::default()
    };
    let (mut admitted, mut queued) = (0, Vec::new());
    for i in 0..8u128 {
        let by = if i % 2 == 0 { &function } else { &script };
        let a = by
            .decide(
                "mixed",
                &s,
                Request::page(None, SessionId::from_u128(i + 1)),
            )
            .await
            .unwrap();
        match a.kind {
            Kind::Admit => admitted += 1,
            _ => queued.push(a.session.unwrap()),
        }
    }
    assert_eq!(admitted, 2, "the capacity across both forms");
    // Each form gives every visitor the same place, in arrival order.
    for (i, id) in queued.iter().enumerate() {
        let a = function.status("mixed", &s, *id).await.unwrap();
        let b = script.status("mixed", &s, *id).await.unwrap();
        assert_eq!(a.position, Some(i as u64 + 1));
        assert_eq!(a.position, b.position);
    }
    let places: HashSet<_> = queued.iter().collect();
    assert_eq!(places.len(), 6);

    // The library flushed away: the next call loads it again and nobody's place changes.
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    let a = function.status("mixed", &s, queued[2]).await.unwrap();
    assert_eq!(a.position, Some(3));
    assert!(function.runs_as_function());
    let listed: redis::Value = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        format!("{listed:?}").contains("anteroom_"),
        "loaded again: {listed:?}"
    );
}
