//! Engine benchmarks: joins, position lookups and a releasing tick at a million queued, and the
//! memory each queued visitor costs (measured by a counting global allocator).
//!
//! Run: `cargo bench --bench engine`

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anteroom::room::{Decision, RoomState, Settings, Visitor, decide, status, tick};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts heap bytes, to measure what a queued visitor costs.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes in use now.
fn live() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated
}

const N: usize = 1_000_000;

fn settings() -> Settings {
    Settings {
        active_users: Some(1_000),
        session_ttl: Duration::from_secs(300),
        abandon_after: Duration::from_secs(3600),
        release_window: Duration::from_secs(60),
        ..Settings::default()
    }
}

/// A room with its capacity taken and `n` visitors in line; returns the queued visitors.
fn full_room(n: usize, rng: &mut StdRng) -> (RoomState, Vec<Visitor>) {
    let s = settings();
    let mut st = RoomState::new(0, None);
    let mut queued = Vec::with_capacity(n);
    for _ in 0..(1_000 + n) {
        if let Decision::Wait { visitor, .. } = decide(&s, &mut st, None, 0, rng) {
            // Back once, as the waiting page is right after it loads: releasable.
            status(&s, &mut st, &visitor.id, 0, rng);
            queued.push(visitor);
        }
    }
    (st, queued)
}

fn engine(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let s = settings();

    let before = live();
    let started = Instant::now();
    let (mut st, queued) = full_room(N, &mut rng);
    let join_time = started.elapsed();
    let bytes = live() - before - (queued.capacity() * size_of::<Visitor>()) as isize;
    println!(
        "join: {N} visitors into one room in {:.1} ms; memory per queued visitor: {} bytes",
        join_time.as_secs_f64() * 1e3,
        bytes / N as isize
    );

    c.bench_function("position lookup at 1M queued", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7_919) % N;
            black_box(st.queue.position(queued[i].ticket))
        })
    });
    // The naive baseline: a position found by scanning the live tickets in line.
    let line: Vec<u64> = st.queue.iter().map(|(t, _)| t).collect();
    let mut group = c.benchmark_group("naive");
    group.sample_size(20);
    group.bench_function("position by scan at 1M queued", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7_919) % N;
            let t = queued[i].ticket;
            black_box(line.iter().position(|&x| x == t).map(|p| p + 1))
        })
    });
    group.finish();
    drop(line);
    c.bench_function("status poll at 1M queued", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7_919) % N;
            black_box(status(&s, &mut st, &queued[i].id, 1, &mut rng))
        })
    });

    let mut group = c.benchmark_group("tick");
    group.sample_size(20);
    group.bench_function("tick releasing 1000 from 1M queued", |b| {
        b.iter_batched_ref(
            || {
                let mut rng = StdRng::seed_from_u64(2);
                let (mut st, _) = full_room(N, &mut rng);
                // Free every slot: the next tick releases 1000.
                let ids: Vec<_> = st
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.ticket <= 1_000)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    anteroom::room::leave(&mut st, &id);
                }
                (st, rng)
            },
            |(st, rng)| {
                let r = tick(&s, st, 1_000, rng);
                assert_eq!(r.released, 1_000);
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();

    // A lottery room after its draw: a million drawn visitors, places by draw order.
    {
        let s = Settings {
            policy: anteroom::room::Policy::Lottery,
            ..settings()
        };
        let mut rng = StdRng::seed_from_u64(3);
        let mut st = RoomState::new(0, None);
        // The room's line takes the lottery policy, as the gateway does when it loads the room.
        anteroom::room::settle(&s, &mut st, 0);
        let mut queued = Vec::with_capacity(N);
        for _ in 0..(1_000 + N) {
            if let Decision::Wait { visitor, .. } = decide(&s, &mut st, None, 0, &mut rng) {
                queued.push(visitor);
            }
        }
        let started = Instant::now();
        let r = tick(&s, &mut st, ms(s.draw_every), &mut rng);
        assert_eq!(r.drawn, N);
        println!(
            "lottery: draw of {N} visitors in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        c.bench_function("lottery position lookup at 1M drawn", |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 7_919) % N;
                black_box(st.queue.position(queued[i].ticket))
            })
        });
    }

    let mut group = c.benchmark_group("join");
    group.sample_size(10);
    group.bench_function("join 1M visitors into one room", |b| {
        b.iter_with_large_drop(|| full_room(N, &mut rng))
    });
    group.finish();
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

criterion_group!(benches, engine);
criterion_main!(benches);
