//! Snapshot benchmarks at a million queued visitors: the copy taken under the room lock (the
//! only part the request path can wait for), the encoding, the whole write with fsync, the file
//! size, and the restore at start.
//!
//! Run: `cargo bench --bench snapshot`

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anteroom::room::{Decision, RoomState, SessionId, Settings, decide, scratch, status};
use anteroom::snapshot::{self, Snapshot};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

const N: usize = 1_000_000;
/// A realistic room clock: unix milliseconds.
const NOW: u64 = 1_790_000_000_000;

fn settings() -> Settings {
    Settings {
        active_users: Some(1_000),
        abandon_after: Duration::from_secs(3600),
        ..Settings::default()
    }
}

/// A room with its capacity taken and a million in line.
fn full_room() -> RoomState {
    let s = settings();
    let mut rng = StdRng::seed_from_u64(7);
    let mut st = RoomState::fresh(&s, NOW);
    let mut queued = 0;
    let mut at = NOW;
    while queued < N {
        at += 1;
        if let Decision::Wait { .. } = decide(&s, &mut st, None, at / 1000 * 1000, &mut rng) {
            queued += 1;
        }
    }
    st
}

fn snapshot_of(st: &mut RoomState) -> Snapshot {
    Snapshot {
        written_unix_ms: NOW,
        rooms: vec![("shop".into(), st.capture(NOW).image())],
        events: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let mut st = full_room();
    let dir = tempfile::tempdir_in(".").expect("a temp folder beside the project");
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    group.bench_function("copy under the room lock at 1M queued", |b| {
        b.iter_batched(
            || scratch(N),
            |buf| black_box(st.capture_into(NOW, buf)),
            criterion::BatchSize::PerIteration,
        )
    });
    group.bench_function("image and encode at 1M queued", |b| {
        b.iter(|| black_box(snapshot::encode(&snapshot_of(&mut st)).expect("encoded")))
    });
    group.bench_function("whole write with fsync at 1M queued", |b| {
        b.iter(|| snapshot::write(dir.path(), &snapshot_of(&mut st)).expect("written"))
    });
    let snap = snapshot_of(&mut st);
    let bytes = snapshot::encode(&snap).expect("encoded");
    group.bench_function("decode and restore at 1M queued", |b| {
        b.iter(|| {
            let back = snapshot::decode(dir.path(), &bytes).expect("decoded");
            let (_, image) = back.rooms.into_iter().next().expect("one room");
            black_box(RoomState::restore(image, &settings(), NOW).expect("restored"))
        })
    });
    group.finish();
    let size = snapshot::write(dir.path(), &snap).expect("written");
    println!(
        "snapshot of {N} queued: {:.1} MB ({:.1} bytes per visitor)",
        size as f64 / 1e6,
        size as f64 / N as f64,
    );
    drop(snap);
    latency_while_writing(st, dir.path());
}

/// Status polls from one thread while another writes snapshots back to back the way the gateway
/// does (copy under the room lock, the rest outside it), against two controls: no writes, and
/// the same writes of a copy taken beforehand, which never touch the lock. The gap between the
/// last two rows is what the lock costs; the rest is the machine sharing its cores.
fn latency_while_writing(st: RoomState, dir: &std::path::Path) {
    let room = Arc::new(parking_lot::Mutex::new(st));
    let ids: Vec<SessionId> = room
        .lock()
        .sessions
        .iter()
        .map(|(id, _)| *id)
        .step_by(997)
        .collect();
    let fixed = Snapshot {
        written_unix_ms: NOW,
        rooms: vec![("shop".into(), room.lock().capture(NOW).image())],
        events: Vec::new(),
    };
    println!("status poll at 1M queued, p50 / p99 / p99.9 / max over 5,000 polls");
    for (what, writer) in [
        ("no snapshot running", None),
        ("snapshots, copy under the lock", Some(true)),
        ("snapshots of a fixed copy (control)", Some(false)),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = writer.map(|locking| {
            let (room, stop, dir, fixed) =
                (room.clone(), stop.clone(), dir.to_path_buf(), fixed.clone());
            std::thread::spawn(move || {
                let mut held = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    let snap = if locking {
                        // Read the size and let go of the lock before allocating.
                        let n = room.lock().sessions.len();
                        let buf = scratch(n);
                        let t = Instant::now();
                        let capture = room.lock().capture_into(NOW, buf);
                        held = held.max(t.elapsed());
                        Snapshot {
                            written_unix_ms: NOW,
                            rooms: vec![("shop".into(), capture.image())],
                            events: Vec::new(),
                        }
                    } else {
                        fixed.clone()
                    };
                    snapshot::write(&dir, &snap).expect("written");
                }
                held
            })
        });
        let mut rng = StdRng::seed_from_u64(1);
        let mut took = Vec::with_capacity(5_000);
        for i in 0..5_000 {
            let t = Instant::now();
            let _ = status(
                &settings(),
                &mut room.lock(),
                &ids[i % ids.len()],
                NOW,
                &mut rng,
            );
            took.push(t.elapsed());
            std::thread::sleep(Duration::from_micros(200));
        }
        stop.store(true, Ordering::Relaxed);
        let held = handle.map(|h| h.join().expect("writer"));
        took.sort_unstable();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
        println!(
            "  {what}: {:?} / {:?} / {:?} / {:?}{}",
            at(0.5),
            at(0.99),
            at(0.999),
            took[took.len() - 1],
            held.filter(|h| !h.is_zero())
                .map(|h| format!(" (lock held at most {h:?})"))
                .unwrap_or_default()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
