//! The poll floor and the estimate a waiting visitor is shown.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

/// The floor is set by an answered poll only, holds until half the `poll_after_seconds`
/// that poll was given, and a poll before it keeps the visitor present without moving it.
#[test]
fn the_poll_floor_follows_the_last_answered_poll() {
    let s = Settings {
        active_users: Some(1),
        session_ttl: Duration::from_secs(600),
        abandon_after: Duration::from_secs(600),
        ..Settings::default()
    };
    let mut rng = StdRng::seed_from_u64(3);
    let mut st = RoomState::new(0, None);
    assert!(matches!(
        decide(&s, &mut st, None, 0, &mut rng),
        Decision::Admit { .. }
    ));
    let Decision::Wait { visitor: v, .. } = decide(&s, &mut st, None, 0, &mut rng) else {
        panic!("the second visitor waits");
    };
    // A join sets no floor; a page view neither.
    assert_eq!(poll_too_soon(&mut st, &v.id, 0), None);
    decide(&s, &mut st, Some(v), 10, &mut rng);
    assert_eq!(poll_too_soon(&mut st, &v.id, 10), None);
    let view = status(&s, &mut st, &v.id, 100, &mut rng).unwrap();
    let floor = view.poll_after_seconds * 500;
    assert_eq!(poll_too_soon(&mut st, &v.id, 101), Some(floor - 1));
    assert_eq!(
        st.sessions.get(&v.id).unwrap().seen_ms,
        101,
        "still present"
    );
    assert_eq!(poll_too_soon(&mut st, &v.id, 100 + floor - 1), Some(1));
    assert_eq!(poll_too_soon(&mut st, &v.id, 100 + floor), None);
    // An admitted session has no floor.
    let admitted = st
        .sessions
        .iter()
        .find(|(_, s)| s.state == SessionState::Active)
        .map(|(id, _)| *id)
        .unwrap();
    assert_eq!(poll_too_soon(&mut st, &admitted, 101), None);
}

/// The estimate shown to a waiting visitor does not rise because the measured rate wobbled
/// (here: a longer `session_ttl` slows the turnover the estimate starts from); it rises
/// when the operator lowers the rate, and the view then says admissions slowed.
#[test]
fn a_shown_estimate_rises_only_when_the_operator_slows_admissions() {
    let mut s = Settings {
        active_users: Some(1),
        session_ttl: Duration::from_secs(60),
        abandon_after: Duration::from_secs(600),
        ..Settings::default()
    };
    let mut st = RoomState::new(0, None);
    let mut rng = StdRng::seed_from_u64(3);
    let mut line = Vec::new();
    for _ in 0..6 {
        if let Decision::Wait { visitor, .. } = decide(&s, &mut st, None, 0, &mut rng) {
            line.push(visitor);
        }
    }
    let v = line[4];
    let first = status(&s, &mut st, &v.id, 1_000, &mut rng).unwrap();
    assert_eq!(first.position, Some(5));
    let shown = first.estimated_wait_seconds.unwrap();
    assert_eq!(shown, 300, "5 places at one per 60 s");
    assert_eq!(first.slowed_ms_ago, None);
    // Turnover halves (not an operator's cut of capacity or rate): the estimate holds.
    s.session_ttl = Duration::from_secs(120);
    let held = status(&s, &mut st, &v.id, 20_000, &mut rng).unwrap();
    assert_eq!(held.estimated_wait_seconds, Some(shown));
    // The operator caps the rate at one a minute (at 40 s), then stops releases (at 60 s),
    // then allows one a minute again: the estimate may now rise, and says since when.
    s.session_ttl = Duration::from_secs(60);
    s.admit_per_minute = Some(1);
    status(&s, &mut st, &v.id, 40_000, &mut rng).unwrap();
    s.admit_per_minute = Some(0);
    let cut = status(&s, &mut st, &v.id, 60_000, &mut rng).unwrap();
    assert_eq!(
        cut.estimated_wait_seconds, None,
        "no rate: no time promised"
    );
    s.admit_per_minute = Some(1);
    s.session_ttl = Duration::from_secs(600);
    let slowed = status(&s, &mut st, &v.id, 80_000, &mut rng).unwrap();
    assert!(slowed.estimated_wait_seconds.unwrap() > shown, "{slowed:?}");
    assert_eq!(slowed.slowed_ms_ago, Some(20_000), "the last cut, at 60 s");
    // A visitor who joins after the cut is not told about it.
    let late = match decide(&s, &mut st, None, 90_000, &mut rng) {
        Decision::Wait { view, .. } => view,
        other => panic!("{other:?}"),
    };
    assert_eq!(late.slowed_ms_ago, None);
}
