//! The line a room keeps, by policy: fifo (ticket order), random (uniform releases) or lottery
//! (shuffled draws). A policy change converts the line in place, so nobody queued is lost.

use super::Policy;
use super::lottery::LotteryQueue;
use super::queue::FifoQueue;
use super::random::RandomQueue;
use super::state::SessionId;

#[derive(Debug, Clone)]
pub enum Line {
    Fifo(FifoQueue),
    Random(RandomQueue),
    Lottery(LotteryQueue),
}

impl Default for Line {
    fn default() -> Self {
        Line::Fifo(FifoQueue::new())
    }
}

impl Line {
    pub fn len(&self) -> usize {
        match self {
            Line::Fifo(q) => q.len(),
            Line::Random(q) => q.len(),
            Line::Lottery(q) => q.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn insert(&mut self, ticket: u64, session: SessionId) {
        match self {
            Line::Fifo(q) => q.insert(ticket, session),
            Line::Random(q) => q.insert(ticket, session),
            Line::Lottery(q) => q.insert(ticket, session),
        }
    }

    pub fn remove(&mut self, ticket: u64) -> bool {
        match self {
            Line::Fifo(q) => q.remove(ticket),
            Line::Random(q) => q.remove(ticket),
            Line::Lottery(q) => q.remove(ticket),
        }
    }

    pub fn contains(&self, ticket: u64) -> bool {
        match self {
            Line::Fifo(q) => q.position(ticket).is_some(),
            Line::Random(q) => q.contains(ticket),
            Line::Lottery(q) => q.contains(ticket),
        }
    }

    /// 1-based place in line; `None` when not queued or when the visitor has no stable place yet
    /// (random queues; a lottery before the visitor's draw).
    pub fn position(&self, ticket: u64) -> Option<u64> {
        match self {
            Line::Fifo(q) => q.position(ticket),
            Line::Random(_) => None,
            Line::Lottery(q) => q.position(ticket),
        }
    }

    /// The next visitor to release under the line's policy.
    pub fn pop(&mut self, rng: &mut impl rand::Rng) -> Option<(u64, SessionId)> {
        match self {
            Line::Fifo(q) => q.pop_front(),
            Line::Random(q) => q.pop(rng),
            Line::Lottery(q) => q.pop(),
        }
    }

    /// Everyone queued: in release order for fifo and for the drawn of a lottery.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u64, SessionId)> + '_> {
        match self {
            Line::Fifo(q) => Box::new(q.iter()),
            Line::Random(q) => Box::new(q.iter()),
            Line::Lottery(q) => Box::new(q.iter()),
        }
    }

    pub fn policy(&self) -> Policy {
        match self {
            Line::Fifo(_) => Policy::Fifo,
            Line::Random(_) => Policy::Random,
            Line::Lottery(_) => Policy::Lottery,
        }
    }

    /// Converts the line to `policy`, keeping every queued visitor with their ticket. A fifo line
    /// becoming a lottery keeps its order as if already drawn; a random line goes to the pool of
    /// the first draw, `draw_every_ms` from `now_ms`.
    pub fn switch_to(&mut self, policy: Policy, now_ms: u64, draw_every_ms: u64) {
        if self.policy() == policy {
            return;
        }
        let mut entries: Vec<(u64, SessionId)> = self.iter().collect();
        let ordered = matches!(self, Line::Fifo(_));
        *self = match policy {
            Policy::Fifo => Line::Fifo(FifoQueue::new()),
            Policy::Random => Line::Random(RandomQueue::default()),
            Policy::Lottery => {
                let mut q = LotteryQueue::new(now_ms, draw_every_ms);
                if ordered {
                    q.append_drawn(std::mem::take(&mut entries));
                }
                Line::Lottery(q)
            }
        };
        for (t, s) in entries {
            self.insert(t, s);
        }
    }
}
