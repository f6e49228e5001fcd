//! The lottery queue: arrivals gather in a draw pool; every `draw_every` the pool is shuffled and
//! appended behind those already drawn, who are then released in drawn order.
//!
//! Arriving early buys a ticket in the next draw, not a head start: within one draw every order
//! is equally likely. After their draw visitors have a stable position, kept by a fifo queue over
//! draw numbers, so a lookup stays O(log n) when visitors in the middle leave.

use std::collections::HashMap;

use rand::seq::SliceRandom;

use super::queue::FifoQueue;
use super::random::RandomQueue;
use super::state::SessionId;

#[derive(Debug, Clone, Default)]
pub struct LotteryQueue {
    /// Arrivals since the last draw.
    pool: RandomQueue,
    /// Drawn visitors by draw number: (ticket, session).
    drawn: FifoQueue<(u64, SessionId)>,
    /// ticket -> draw number, for every drawn visitor still in line.
    draw_number: HashMap<u64, u64>,
    /// When the next draw happens (room clock, ms); `None` until the line is first used.
    next_draw_ms: Option<u64>,
}

impl LotteryQueue {
    /// An empty lottery whose first draw is `every` after `now_ms`.
    pub fn new(now_ms: u64, every_ms: u64) -> Self {
        LotteryQueue {
            next_draw_ms: Some(now_ms.saturating_add(every_ms)),
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.pool.len() + self.drawn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Visitors waiting for the next draw.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Visitors already drawn and still in line.
    pub fn drawn_len(&self) -> usize {
        self.drawn.len()
    }

    pub fn next_draw_ms(&self) -> Option<u64> {
        self.next_draw_ms
    }

    /// A lottery as a snapshot stored it: the drawn in release order, and the pool.
    pub fn restore(
        next_draw_ms: Option<u64>,
        drawn: Vec<(u64, SessionId)>,
        pool: impl Iterator<Item = (u64, SessionId)>,
    ) -> Self {
        let mut q = LotteryQueue {
            next_draw_ms,
            ..Self::default()
        };
        q.append_drawn(drawn);
        for (t, s) in pool {
            q.pool.insert(t, s);
        }
        q
    }

    /// Tickets of the drawn visitors, in release order.
    pub fn drawn_tickets(&self) -> impl Iterator<Item = u64> + '_ {
        self.drawn.iter().map(|(_, (ticket, _))| ticket)
    }

    /// Puts a visitor in the pool for the next draw.
    pub fn insert(&mut self, ticket: u64, session: SessionId) {
        if let Some(&n) = self.draw_number.get(&ticket) {
            self.drawn.insert(n, (ticket, session));
        } else {
            self.pool.insert(ticket, session);
        }
    }

    /// Puts visitors straight behind those already drawn, in the order given (a draw, or a
    /// policy switch keeping a fifo order), in one pass. None of them may be in line already.
    pub fn append_drawn(&mut self, entries: Vec<(u64, SessionId)>) {
        self.draw_number.reserve(entries.len());
        let numbers = self.drawn.append(entries.iter().copied());
        for (n, (ticket, _)) in numbers.zip(&entries) {
            self.draw_number.insert(*ticket, n);
        }
    }

    pub fn remove(&mut self, ticket: u64) -> bool {
        if self.pool.remove(ticket) {
            return true;
        }
        match self.draw_number.remove(&ticket) {
            Some(n) => self.drawn.remove(n),
            None => false,
        }
    }

    pub fn contains(&self, ticket: u64) -> bool {
        self.pool.contains(ticket) || self.draw_number.contains_key(&ticket)
    }

    /// 1-based place among the drawn; `None` before the visitor's draw.
    pub fn position(&self, ticket: u64) -> Option<u64> {
        self.drawn.position(*self.draw_number.get(&ticket)?)
    }

    /// Releases the first drawn visitor. The pool waits for its draw.
    pub fn pop(&mut self) -> Option<(u64, SessionId)> {
        let (_, (ticket, session)) = self.drawn.pop_front()?;
        self.draw_number.remove(&ticket);
        Some((ticket, session))
    }

    /// Draws now if the draw is due at `now_ms`, then schedules the next one `every_ms` later (or
    /// sooner, when `draw_every` was shortened). Returns how many were drawn.
    pub fn draw_if_due(&mut self, now_ms: u64, every_ms: u64, rng: &mut impl rand::Rng) -> usize {
        let soonest = now_ms.saturating_add(every_ms);
        let due = self.next_draw_ms.is_none_or(|at| at <= now_ms);
        if !due {
            self.next_draw_ms = self.next_draw_ms.map(|at| at.min(soonest));
            return 0;
        }
        self.next_draw_ms = Some(soonest);
        self.draw(rng)
    }

    /// Shuffles the whole pool (uniformly: Fisher-Yates over `rng`, a CSPRNG outside tests) and
    /// appends it behind those already drawn. Returns how many were drawn.
    pub fn draw(&mut self, rng: &mut impl rand::Rng) -> usize {
        let mut pool = self.pool.take_all();
        // Every order of the pool is equally likely whatever order it is stored in.
        pool.shuffle(rng);
        let drawn = pool.len();
        // The pool and the drawn never share a ticket.
        self.append_drawn(pool);
        drawn
    }

    /// Drawn visitors in release order, then the pool (in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (u64, SessionId)> + '_ {
        self.drawn.iter().map(|(_, e)| e).chain(self.pool.iter())
    }

    /// Drawn visitors in release order.
    pub fn iter_drawn(&self) -> impl Iterator<Item = (u64, SessionId)> + '_ {
        self.drawn.iter().map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn sid(n: u64) -> SessionId {
        SessionId::from_u128(u128::from(n) + 1)
    }

    #[test]
    fn nobody_is_released_before_their_draw() {
        let mut q = LotteryQueue::new(0, 60_000);
        let mut rng = StdRng::seed_from_u64(1);
        for t in 1..=5 {
            q.insert(t, sid(t));
        }
        assert_eq!(q.pop(), None);
        assert_eq!(q.position(1), None);
        assert_eq!(q.draw_if_due(59_999, 60_000, &mut rng), 0);
        assert_eq!(q.draw_if_due(60_000, 60_000, &mut rng), 5);
        assert_eq!(q.next_draw_ms(), Some(120_000));
        let mut positions: Vec<u64> = (1..=5).map(|t| q.position(t).unwrap()).collect();
        positions.sort_unstable();
        assert_eq!(positions, vec![1, 2, 3, 4, 5]);
    }

    /// Every draw is a permutation of its pool, appended behind the earlier draws, and the drawn
    /// keep their order across later draws, removals and releases.
    #[test]
    fn each_draw_is_a_permutation_appended_behind_the_last() {
        let mut q = LotteryQueue::new(0, 1_000);
        let mut rng = StdRng::seed_from_u64(2);
        let mut model: Vec<u64> = Vec::new();
        let mut next = 1u64;
        for round in 0..50u64 {
            let pool: Vec<u64> = (next..next + 20 + round).collect();
            next += 20 + round;
            for &t in &pool {
                q.insert(t, sid(t));
            }
            // A few leave before the draw, one of the drawn leaves, one is released.
            q.remove(pool[3]);
            if let Some(&gone) = model.get(round as usize % model.len().max(1)) {
                assert!(q.remove(gone));
                model.retain(|&t| t != gone);
            }
            if round % 3 == 0 && !model.is_empty() {
                assert_eq!(q.pop().map(|(t, _)| t), Some(model.remove(0)));
            }
            let before: Vec<u64> = q.iter_drawn().map(|(t, _)| t).collect();
            assert_eq!(before, model, "round {round}: drawn order kept");
            let n = q.draw_if_due(round * 1_000 + 1_000, 1_000, &mut rng);
            let after: Vec<u64> = q.iter_drawn().map(|(t, _)| t).collect();
            assert_eq!(
                &after[..model.len()],
                &model[..],
                "round {round}: prefix kept"
            );
            let mut new: Vec<u64> = after[model.len()..].to_vec();
            assert_eq!(n, new.len());
            model.extend_from_slice(&new);
            new.sort_unstable();
            let mut want = pool.clone();
            want.remove(3);
            assert_eq!(
                new, want,
                "round {round}: the draw is a permutation of its pool"
            );
            for (i, &t) in model.iter().enumerate() {
                assert_eq!(q.position(t), Some(i as u64 + 1));
            }
        }
    }

    /// Chi-square over many draws of a pool of 6: each visitor lands first equally often, and so
    /// does each of the 720 orders (fixed seed, no flake).
    #[test]
    fn draws_are_uniform() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 6u64;
        let rounds = 72_000u32;
        let mut orders: HashMap<Vec<u64>, u32> = HashMap::new();
        for _ in 0..rounds {
            let mut q = LotteryQueue::new(0, 1);
            for t in 0..n {
                q.insert(t, sid(t));
            }
            q.draw(&mut rng);
            let order: Vec<u64> = q.iter_drawn().map(|(t, _)| t).collect();
            *orders.entry(order).or_default() += 1;
        }
        assert_eq!(orders.len(), 720, "every order occurs");
        let expected = f64::from(rounds) / 720.0;
        let chi2: f64 = orders
            .values()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        // 719 degrees of freedom: p = 0.001 at about 847.
        assert!(chi2 < 847.0, "chi-square {chi2:.1}");
        println!("lottery order chi-square (719 df): {chi2:.1}");
    }

    #[test]
    fn a_shorter_draw_every_brings_the_next_draw_forward() {
        let mut q = LotteryQueue::new(0, 3_600_000);
        let mut rng = StdRng::seed_from_u64(4);
        assert_eq!(q.draw_if_due(1_000, 60_000, &mut rng), 0);
        assert_eq!(q.next_draw_ms(), Some(61_000));
    }
}
