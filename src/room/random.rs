//! The random queue: every release picks uniformly among everyone queued. Removal by ticket is
//! O(1) (swap-remove with an index), so abandonment in the middle stays cheap.

use std::collections::HashMap;

use rand::RngExt;

use super::state::SessionId;

#[derive(Debug, Clone, Default)]
pub struct RandomQueue {
    entries: Vec<(u64, SessionId)>,
    /// ticket -> index in `entries`.
    index: HashMap<u64, usize>,
}

impl RandomQueue {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn insert(&mut self, ticket: u64, session: SessionId) {
        if let Some(&i) = self.index.get(&ticket) {
            self.entries[i].1 = session;
            return;
        }
        self.index.insert(ticket, self.entries.len());
        self.entries.push((ticket, session));
    }

    pub fn contains(&self, ticket: u64) -> bool {
        self.index.contains_key(&ticket)
    }

    pub fn remove(&mut self, ticket: u64) -> bool {
        let Some(i) = self.index.remove(&ticket) else {
            return false;
        };
        self.entries.swap_remove(i);
        if let Some((moved, _)) = self.entries.get(i) {
            self.index.insert(*moved, i);
        }
        true
    }

    /// Takes one queued visitor chosen uniformly at random.
    pub fn pop(&mut self, rng: &mut impl rand::Rng) -> Option<(u64, SessionId)> {
        if self.entries.is_empty() {
            return None;
        }
        let i = rng.random_range(0..self.entries.len());
        let picked = self.entries[i];
        self.remove(picked.0);
        Some(picked)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, SessionId)> + '_ {
        self.entries.iter().copied()
    }

    /// Empties the queue, returning everyone in it.
    pub fn take_all(&mut self) -> Vec<(u64, SessionId)> {
        self.index.clear();
        std::mem::take(&mut self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn removal_keeps_the_index_right() {
        let mut q = RandomQueue::default();
        for t in 0..10 {
            q.insert(t, SessionId::from_u128(u128::from(t) + 1));
        }
        assert!(q.remove(3));
        assert!(!q.remove(3));
        assert!(q.remove(9));
        assert_eq!(q.len(), 8);
        for t in [0, 1, 2, 4, 5, 6, 7, 8] {
            assert!(q.contains(t));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut seen: Vec<u64> = std::iter::from_fn(|| q.pop(&mut rng).map(|(t, _)| t)).collect();
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 4, 5, 6, 7, 8]);
    }

    /// Chi-square over many single releases from a queue of 10: each place is picked about
    /// equally often (fixed seed, so no flake).
    #[test]
    fn releases_are_uniform() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let n = 10usize;
        let rounds = 20_000;
        let mut counts = vec![0u32; n];
        for _ in 0..rounds {
            let mut q = RandomQueue::default();
            for t in 0..n as u64 {
                q.insert(t, SessionId::from_u128(u128::from(t) + 1));
            }
            let (t, _) = q.pop(&mut rng).unwrap();
            counts[t as usize] += 1;
        }
        let expected = rounds as f64 / n as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        // 9 degrees of freedom: p = 0.001 at 27.88.
        assert!(chi2 < 27.88, "chi-square {chi2:.2} over {counts:?}");
        println!("random release chi-square (9 df): {chi2:.2}");
    }
}
