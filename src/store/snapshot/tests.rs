//! The snapshot format: any room state round-trips exactly, and a damaged file is refused with
//! a reason, never half read.

use std::time::Duration;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::room::{self, Decision, Policy, RoomState, Settings, Visitor};

#[derive(Debug, Clone)]
enum Op {
    Join,
    /// A known visitor asks again (a duplicate, or a released visitor coming in).
    Return(usize),
    Leave(usize),
    /// Time passes by this many ms, then the room ticks.
    Tick(u64),
    Policy(u8),
    Rate(Option<u32>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Join),
        3 => any::<usize>().prop_map(Op::Return),
        1 => any::<usize>().prop_map(Op::Leave),
        3 => (1u64..20_000).prop_map(Op::Tick),
        1 => (0u8..3).prop_map(Op::Policy),
        1 => proptest::option::of(1u32..200).prop_map(Op::Rate),
    ]
}

fn settings() -> Settings {
    Settings {
        active_users: Some(4),
        session_ttl: Duration::from_secs(30),
        abandon_after: Duration::from_secs(15),
        release_window: Duration::from_secs(10),
        max_session: Some(Duration::from_secs(50)),
        draw_every: Duration::from_secs(7),
        ..Settings::default()
    }
}

/// A room driven through `ops` from a realistic start (unix-millisecond clock).
fn room_after(ops: &[Op], seed: u64) -> (RoomState, Settings, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut settings = settings();
    let mut now = 1_790_000_000_000u64;
    let mut state = RoomState::fresh(&settings, now);
    let mut visitors: Vec<Visitor> = Vec::new();
    for op in ops {
        match op {
            Op::Join => {
                if let Decision::Admit { visitor, .. } | Decision::Wait { visitor, .. } =
                    room::decide(&settings, &mut state, None, now, &mut rng)
                {
                    visitors.push(visitor);
                }
            }
            Op::Return(i) if !visitors.is_empty() => {
                let v = visitors[i % visitors.len()];
                room::decide(&settings, &mut state, Some(v), now, &mut rng);
            }
            Op::Leave(i) if !visitors.is_empty() => {
                let v = visitors[i % visitors.len()];
                room::leave(&mut state, &v.id);
            }
            Op::Tick(ms) => {
                now += ms;
                room::tick(&settings, &mut state, now, &mut rng);
            }
            Op::Policy(p) => {
                settings.policy = [Policy::Fifo, Policy::Random, Policy::Lottery][*p as usize];
            }
            Op::Rate(r) => settings.admit_per_minute = *r,
            _ => {}
        }
    }
    (state, settings, now)
}

fn sorted(mut image: room::Image) -> room::Image {
    image.sessions.sort_unstable_by_key(|s| s.id);
    image.recovered.sort_unstable();
    image
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Capture, encode, decode and restore give back the same room: the same sessions with the
    /// same times, the same line in the same order, the same counters and bucket. Only the
    /// ticket numbering moves on (past the reserve) and a recovery range opens for the tickets
    /// a crash may have lost.
    #[test]
    fn any_room_round_trips_exactly(ops in proptest::collection::vec(op(), 0..300), seed in any::<u64>()) {
        let (mut state, settings, now) = room_after(&ops, seed);
        let before: Vec<(u64, room::SessionId)> = state.queue.iter().collect();
        let front: Vec<(u64, room::SessionId)> = state.front.iter().collect();
        let positions: Vec<Option<u64>> = before.iter().map(|(t, _)| state.queue.position(*t)).collect();
        let image = state.capture(now).image();
        let marks = EventMarks { prequeue: Some((seed, now)), started: Some(seed ^ 1), dropped: seed % 7 };
        let snap = Snapshot { written_unix_ms: now, rooms: vec![("r".into(), image.clone())], events: vec![("r".into(), marks)] };
        let back = decode(Path::new("test"), &encode(&snap).unwrap()).unwrap();
        prop_assert_eq!(&back, &snap);

        let mut restored = RoomState::restore(image.clone(), &settings, now).unwrap();
        restored.check_invariants(settings.active_users).unwrap();
        prop_assert_eq!(restored.active, state.active);
        prop_assert_eq!(restored.released, state.released);
        prop_assert_eq!(restored.queue.policy(), state.queue.policy());
        // Fifo and the drawn of a lottery keep their exact order and places; a random line
        // (and a lottery's pool) has no order to keep.
        let after: Vec<(u64, room::SessionId)> = restored.queue.iter().collect();
        if state.queue.policy() == Policy::Random {
            let (mut a, mut b) = (before.clone(), after.clone());
            a.sort_unstable();
            b.sort_unstable();
            prop_assert_eq!(a, b);
        } else {
            let stable = positions.iter().filter(|p| p.is_some()).count();
            prop_assert_eq!(&after[..stable], &before[..stable]);
            for ((t, _), p) in before.iter().zip(&positions) {
                prop_assert_eq!(restored.queue.position(*t), *p);
            }
        }
        // Those back from a missed turn stay at the front, in order.
        prop_assert_eq!(restored.front.iter().collect::<Vec<_>>(), front);
        prop_assert!(restored.next_ticket >= image.ticket_ceiling);
        prop_assert!(image.ticket_ceiling >= image.next_ticket + room::MIN_RESERVE);

        let mut again = sorted(restored.capture(now).image());
        let want = sorted(image.clone());
        prop_assert_eq!(again.recovery.last().map(|r| (r.from, r.to)), Some((want.next_ticket, again.next_ticket)));
        again.recovery.pop();
        again.next_ticket = want.next_ticket;
        again.ticket_ceiling = want.ticket_ceiling;
        prop_assert_eq!(again, want);
    }
}

/// The time the gateway was down is not held against anyone: a queued visitor who was polling
/// keeps their place however long the restart took; one who had already stopped polling before
/// the snapshot is dropped on the first tick, not silently kept.
#[test]
fn downtime_is_not_held_against_visitors() {
    let settings = settings();
    let mut rng = StdRng::seed_from_u64(1);
    let now = 1_790_000_000_000u64;
    let mut state = RoomState::fresh(&settings, now);
    let mut visitors = Vec::new();
    for _ in 0..10 {
        if let Decision::Wait { visitor, .. } =
            room::decide(&settings, &mut state, None, now, &mut rng)
        {
            visitors.push(visitor);
        }
    }
    assert_eq!(visitors.len(), 6);
    // At +10 s the first three poll again; the snapshot comes at +20 s, when the other three
    // (last seen at +0, abandon_after 15 s) have already stopped polling.
    for v in &visitors[..3] {
        room::status(&settings, &mut state, &v.id, now + 10_000, &mut rng).unwrap();
    }
    let image = state.capture(now + 20_000).image();
    // Down for ten minutes.
    let back = now + 620_000;
    let mut restored = RoomState::restore(image, &settings, back).unwrap();
    let report = room::tick(&settings, &mut restored, back, &mut rng);
    assert_eq!(
        report.abandoned, 3,
        "those who had stopped polling before the snapshot"
    );
    assert_eq!(restored.queue.len(), 3);
    for (i, v) in visitors[..3].iter().enumerate() {
        assert_eq!(restored.queue.position(v.ticket), Some(i as u64 + 1));
    }
    assert_eq!(restored.active, 4, "admitted sessions keep their slot");
    // And abandonment counts again from the restart: 15 s without a poll.
    let report = room::tick(&settings, &mut restored, back + 6_000, &mut rng);
    assert_eq!(report.abandoned, 3);
    restored.check_invariants(settings.active_users).unwrap();
}

#[test]
fn tokens_issued_after_the_snapshot_come_back_in_ticket_order_once() {
    let settings = settings();
    let mut rng = StdRng::seed_from_u64(2);
    let now = 1_790_000_000_000u64;
    let mut state = RoomState::fresh(&settings, now);
    let mut join = |state: &mut RoomState| match room::decide(&settings, state, None, now, &mut rng)
    {
        Decision::Admit { visitor, .. } | Decision::Wait { visitor, .. } => visitor,
        other => unreachable!("{other:?}"),
    };
    let early: Vec<Visitor> = (0..6).map(|_| join(&mut state)).collect();
    let image = state.capture(now).image();
    let late: Vec<Visitor> = (0..3).map(|_| join(&mut state)).collect();
    // A crash: the late three are not in the snapshot.
    let mut rs = RoomState::restore(image, &settings, now + 1_000).unwrap();
    let newcomer = match room::decide(&settings, &mut rs, None, now + 1_000, &mut rng) {
        Decision::Wait { visitor, .. } => visitor,
        d => panic!("{d:?}"),
    };
    for v in late.iter().rev() {
        assert!(room::recover(&settings, &mut rs, *v, now + 2_000, false));
    }
    let order: Vec<u64> = rs.queue.iter().map(|(t, _)| t).collect();
    let mut want: Vec<u64> = early[4..].iter().chain(&late).map(|v| v.ticket).collect();
    want.push(newcomer.ticket);
    assert_eq!(order, want);
    // Leaving and coming back with the same token gets no second recovery.
    room::leave(&mut rs, &late[0].id);
    assert!(!room::recover(
        &settings,
        &mut rs,
        late[0],
        now + 3_000,
        false
    ));
    // A token the snapshot knew had ended gets nothing either.
    room::leave(&mut rs, &early[5].id);
    assert!(!room::recover(
        &settings,
        &mut rs,
        early[5],
        now + 3_000,
        false
    ));
    rs.check_invariants(settings.active_users).unwrap();
}

#[test]
fn a_damaged_file_is_refused_with_a_reason() {
    let snap = Snapshot {
        written_unix_ms: 5,
        rooms: Vec::new(),
        events: Vec::new(),
    };
    let good = encode(&snap).unwrap();
    let p = Path::new("state/snapshot.bin");
    assert_eq!(decode(p, &good).unwrap(), snap);
    assert!(matches!(
        decode(p, b"garbage"),
        Err(ReadError::NotSnapshot(_))
    ));
    assert!(matches!(
        decode(p, &good[..good.len() - 1]),
        Err(ReadError::Damaged(..))
    ));
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let e = decode(p, &flipped).unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&(VERSION + 1).to_le_bytes());
    let e = decode(p, &newer).unwrap_err();
    assert!(
        matches!(e, ReadError::Newer(_, v) if v == VERSION + 1),
        "{e}"
    );
    assert!(e.to_string().contains("newer anteroom"), "{e}");
    // Format 1 has the same layout: still read.
    let mut older = good.clone();
    older[8..12].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(decode(p, &older).unwrap(), snap);
}

#[test]
fn an_unusable_file_is_set_aside_and_a_good_one_is_read() {
    let dir = tempfile::tempdir().unwrap();
    assert!(load(dir.path()).is_none());
    let snap = Snapshot {
        written_unix_ms: 7,
        rooms: Vec::new(),
        events: Vec::new(),
    };
    write(dir.path(), &snap).unwrap();
    assert_eq!(load(dir.path()), Some(snap));
    std::fs::write(path(dir.path()), b"ANTROOM\0not really").unwrap();
    assert!(load(dir.path()).is_none());
    assert!(!path(dir.path()).exists());
    let aside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        aside.iter().any(|n| n.starts_with("snapshot.bin.corrupt-")),
        "{aside:?}"
    );
}

/// Two unusable snapshots within one second are both kept: the second never overwrites the
/// first (the names carry the second, and a counter when that name is taken).
#[test]
fn two_files_set_aside_within_a_second_are_both_kept() {
    let dir = tempfile::tempdir().unwrap();
    for body in [&b"ANTROOM\0first"[..], &b"ANTROOM\0second"[..]] {
        std::fs::write(path(dir.path()), body).unwrap();
        assert!(load(dir.path()).is_none());
        assert!(!path(dir.path()).exists());
    }
    let mut kept: Vec<Vec<u8>> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("snapshot.bin.corrupt-")
        })
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [b"ANTROOM\0first".to_vec(), b"ANTROOM\0second".to_vec()]
    );
}

#[test]
fn half_the_ticket_reserve_spent_asks_for_an_early_snapshot() {
    let settings = Settings {
        active_users: None,
        ..settings()
    };
    let mut rng = StdRng::seed_from_u64(3);
    let now = 1_790_000_000_000u64;
    let mut state = RoomState::fresh(&settings, now);
    let first = state.capture(now);
    state.reserve_written(first.reserve());
    let half = room::MIN_RESERVE / 2;
    for _ in 0..half - 1 {
        room::decide(&settings, &mut state, None, now, &mut rng);
    }
    assert!(!state.reserve_half_spent());
    room::decide(&settings, &mut state, None, now, &mut rng);
    assert!(state.reserve_half_spent());
    // The next snapshot reserves four times what was spent since the last one, once written.
    let capture = state.capture(now);
    assert!(state.reserve_half_spent(), "not written yet");
    state.reserve_written(capture.reserve());
    let image = capture.image();
    assert!(!state.reserve_half_spent());
    assert_eq!(image.ticket_ceiling, image.next_ticket + 4 * half);
}

/// Found by `cargo fuzz run snapshot`: numbers no run can reach would overflow on the next
/// ticket or count; such a room is refused at restore, never restored to panic later.
#[test]
fn numbers_out_of_range_are_refused_at_restore() {
    let settings = settings();
    let now = 1_790_000_000_000u64;
    let mut state = RoomState::fresh(&settings, now);
    let image = state.capture(now).image();
    let mut huge_ticket = image.clone();
    huge_ticket.next_ticket = u64::MAX;
    assert!(RoomState::restore(huge_ticket, &settings, now).is_err());
    let mut huge_count = image.clone();
    huge_count.counters.abandoned = u64::MAX;
    assert!(RoomState::restore(huge_count, &settings, now).is_err());
    assert!(RoomState::restore(image, &settings, now).is_ok());
}

/// The file `write` streams is byte for byte what `encode` makes, and reads back.
#[test]
fn the_streamed_file_is_the_encoded_one() {
    let ops: Vec<Op> = (0..400)
        .map(|i| match i % 5 {
            0..=2 => Op::Join,
            3 => Op::Return(i),
            _ => Op::Tick(700),
        })
        .collect();
    let (mut state, _, now) = room_after(&ops, 7);
    let snap = Snapshot {
        written_unix_ms: now,
        rooms: vec![("r".into(), state.capture(now).image())],
        events: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let size = write(dir.path(), &snap).unwrap();
    let on_disk = std::fs::read(path(dir.path())).unwrap();
    assert_eq!(on_disk, encode(&snap).unwrap());
    assert_eq!(size, on_disk.len() as u64);
    assert_eq!(read(dir.path()).unwrap(), Some(snap));
    assert!(!dir.path().join("snapshot.bin.tmp").exists());
}

/// A file of format 2 (before event marks) still reads, with no marks.
#[test]
fn a_format_2_file_reads_without_event_marks() {
    let (mut state, _, now) = room_after(&[], 3);
    let rooms = vec![("r".to_string(), state.capture(now).image())];
    let payload = postcard::to_stdvec(&(now, &rooms)).unwrap();
    let mut bytes = header(payload.len() as u64, crc32fast::hash(&payload)).to_vec();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    bytes.extend_from_slice(&payload);
    let back = decode(Path::new("old"), &bytes).unwrap();
    assert_eq!(
        back,
        Snapshot {
            written_unix_ms: now,
            rooms,
            events: Vec::new(),
        }
    );
}
