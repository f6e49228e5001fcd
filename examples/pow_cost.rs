//! What a join costs a client at each `pow_difficulty`: the CPU time of the reference solver
//! (`anteroom::pow::solve`, one core, SHA-256 from the `sha2` crate) on fresh challenges.
//!
//! `cargo run --release --example pow_cost [samples]`
//!
//! The hashes a solution takes follow a geometric law (mean 2^difficulty, and as spread as its
//! mean), so a mean over a few challenges wanders; the line also gives the solver's measured hash
//! rate and the expected time per join it implies (2^difficulty / rate), the steadier figure.

// A measurement, not the gateway: it times with the process clock and unwraps what it made.
#![allow(clippy::disallowed_types, clippy::unwrap_used)]

use std::time::{Instant, SystemTime};

use anteroom::pow::{Binding, Challenges, solve};
use anteroom::room::Prefix;
use anteroom::token::Keys;

fn main() {
    let samples: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let challenges = Challenges::new(&Keys::new(vec![7; 32], vec![]), 16);
    let to = Binding {
        room_id: anteroom::token::room_id("shop"),
        prefix: Prefix::of("203.0.113.7".parse().unwrap()),
    };
    println!("difficulty  samples  mean hashes  mean ms/join  hash rate (M/s)  expected ms/join");
    for difficulty in [8u8, 12, 16, 18, 20, 22, 24] {
        // Fewer samples where one takes seconds.
        let n = if difficulty >= 22 {
            samples.div_ceil(4)
        } else {
            samples
        };
        let (mut hashes, started) = (0u64, Instant::now());
        for _ in 0..n {
            let c = challenges.issue(to, difficulty, SystemTime::now());
            let s = solve(&c.nonce, difficulty);
            hashes += s.parse::<u64>().unwrap() + 1;
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = hashes as f64 / secs;
        let expected_ms = 2f64.powi(i32::from(difficulty)) / rate * 1e3;
        println!(
            "{difficulty:>10}  {n:>7}  {:>11.0}  {:>12.2}  {:>15.2}  {expected_ms:>15.2}",
            hashes as f64 / f64::from(n),
            secs * 1e3 / f64::from(n),
            rate / 1e6,
        );
    }
}
