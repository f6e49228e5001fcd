//! Runs through chaos: arrival order kept, invariants held, nobody lost by a policy switch, and
//! the estimate at join on a steady line.

use std::collections::HashSet;
use std::time::Duration;

use super::*;

pub(super) fn busy(policy: Policy) -> Settings {
    Settings {
        active_users: Some(40),
        admit_per_minute: None,
        session_ttl: Duration::from_secs(20),
        abandon_after: Duration::from_secs(600),
        // Longer than the slowest poll (30 s + 20% jitter) plus the time to come in.
        release_window: Duration::from_secs(45),
        max_session: None,
        policy,
        draw_every: Duration::from_secs(15),
        ..Settings::default()
    }
}

fn chaos() -> Behaviour {
    Behaviour {
        arrival: 0.9,
        arriving_steps: 4 * 600,
        abandon: 0.1,
        no_show: 0.05,
        away: 0.005,
        operator: true,
        switch_policy: false,
        overrides: &[],
        prefixes: 200,
    }
}

#[test]
fn fifo_releases_in_arrival_order_through_chaos() {
    for seed in [1, 2, 3] {
        let mut sim = Sim::new(busy(Policy::Fifo), seed);
        sim.run(chaos());
        let (tau, n) = sim.kendall_tau();
        println!(
            "fifo seed {seed}: {} arrivals, {} waited, {n} stayed and were released, \
             {} absences of 30 s to 8 min, {} missed turns, {} returns to the front, \
             {} ended at a second missed turn, {} invariant checks, Kendall tau {tau:.4}",
            sim.st.counters.joined,
            sim.waited.len(),
            sim.absences,
            sim.missed.len(),
            sim.returns,
            sim.missed_twice,
            sim.checks
        );
        assert!(n > 500, "the run must queue many visitors, got {n}");
        assert!(
            sim.absences > 50 && sim.returns > 10,
            "phones went away and came back"
        );
        assert_eq!(tau, 1.0, "seed {seed}: fifo released out of arrival order");
        assert!(sim.st.counters.abandoned > 0, "some visitors abandoned");
    }
}

#[test]
fn random_and_lottery_keep_their_invariants_through_chaos() {
    for (policy, seed) in [(Policy::Random, 4), (Policy::Lottery, 5)] {
        let mut sim = Sim::new(busy(policy), seed);
        sim.run(chaos());
        println!(
            "{policy:?} seed {seed}: {} arrivals, {} released, {} abandoned, {} checks",
            sim.st.counters.joined, sim.st.counters.released, sim.st.counters.abandoned, sim.checks
        );
        assert!(sim.st.counters.released > 500);
    }
}

#[test]
fn policy_switches_lose_nobody() {
    let mut sim = Sim::new(busy(Policy::Fifo), 6);
    sim.run(Behaviour {
        switch_policy: true,
        ..chaos()
    });
    // Everyone who waited and did not abandon was released: nobody was lost by a switch.
    let released: HashSet<u64> = sim.release_order.iter().copied().collect();
    for (id, ticket) in &sim.waited {
        if !sim.quitters.contains(id) {
            assert!(released.contains(ticket), "ticket {ticket} never released");
        }
    }
    assert!(
        sim.st
            .sessions
            .values()
            .all(|s| s.state != SessionState::Queued)
    );
}

/// Steady state: visitors arrive faster than the rate budget lets them in, so a line builds and
/// drains at the measured rate. The estimate each visitor was given at join must be within 25%
/// of their real wait.
#[test]
fn wait_estimates_at_join_match_the_real_wait() {
    let s = Settings {
        active_users: None,
        admit_per_minute: Some(60),
        session_ttl: Duration::from_secs(30),
        ..busy(Policy::Fifo)
    };
    let mut sim = Sim::new(s, 7);
    sim.run(Behaviour {
        arrival: 0.4,
        arriving_steps: 4 * 900,
        abandon: 0.05,
        no_show: 0.0,
        away: 0.0,
        operator: false,
        switch_policy: false,
        overrides: &[],
        prefixes: 200,
    });
    // Visitors who joined once the rate had been measured for a minute, with a wait long enough
    // that one tick of granularity is not a quarter of it.
    let mut ratios: Vec<f64> = sim
        .etas
        .iter()
        .filter(|e| e.at_join && e.actual >= 20.0 && e.given_ms >= 60_000)
        .map(|e| e.eta / e.actual)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    assert!(n > 200, "too few long waits measured: {n}");
    let within = ratios.iter().filter(|r| (0.75..=1.25).contains(*r)).count();
    println!(
        "ETA at join / actual wait over {n} visitors: median {:.3}, min {:.3}, max {:.3}, \
         {within} within +-25%",
        ratios[n / 2],
        ratios[0],
        ratios[n - 1]
    );
    assert_eq!(within, n, "every estimate within 25% of the real wait");
}

/// Bots and crowds behind few addresses: with `max_joins_per_prefix_per_minute`, no prefix takes
/// more new sessions than its budget allows (a minute's burst, then the rate) in any minute of a
/// chaotic run, those over it get no place, and the line keeps its order and invariants.
#[test]
fn the_join_budget_holds_every_prefix_to_its_rate_through_chaos() {
    let limit = 6;
    let s = Settings {
        max_joins_per_prefix_per_minute: Some(limit),
        ..busy(Policy::Fifo)
    };
    let mut sim = Sim::new(s, 7);
    // About 216 arrivals a minute from 8 prefixes: 27 each, against a budget of 6.
    sim.run(Behaviour {
        prefixes: 8,
        ..chaos()
    });
    assert!(
        sim.over_budget > 1_000,
        "the budget turned many away: {}",
        sim.over_budget
    );
    assert_eq!(sim.joins.len(), 8);
    for (prefix, times) in &sim.joins {
        for (i, start) in times.iter().enumerate() {
            let in_minute = times[i..]
                .iter()
                .take_while(|t| **t < start + 60_000)
                .count();
            assert!(
                in_minute <= 2 * limit as usize,
                "{prefix:?} took {in_minute} sessions in the minute from {start} ms"
            );
        }
        // Over the run: one burst, then the rate.
        let minutes = sim.now as f64 / 60_000.0;
        assert!(times.len() as f64 <= f64::from(limit) * (1.0 + minutes) + 1.0);
    }
    let (tau, n) = sim.kendall_tau();
    assert!(n > 100, "visitors still queued and were released: {n}");
    assert_eq!(tau, 1.0, "the budget never reorders the line");
}
