//! The line a room keeps, by policy: fifo (ticket order) or random (uniform releases). A policy
//! change converts the line in place, so nobody queued is lost.

use super::Policy;
use super::queue::FifoQueue;
use super::random::RandomQueue;
use super::state::SessionId;

#[derive(Debug, Clone)]
pub enum Line {
    Fifo(FifoQueue),
    Random(RandomQueue),
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
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn insert(&mut self, ticket: u64, session: SessionId) {
        match self {
            Line::Fifo(q) => q.insert(ticket, session),
            Line::Random(q) => q.insert(ticket, session),
        }
    }

    pub fn remove(&mut self, ticket: u64) -> bool {
        match self {
            Line::Fifo(q) => q.remove(ticket),
            Line::Random(q) => q.remove(ticket),
        }
    }

    pub fn contains(&self, ticket: u64) -> bool {
        match self {
            Line::Fifo(q) => q.position(ticket).is_some(),
            Line::Random(q) => q.contains(ticket),
        }
    }

    /// 1-based place in line; `None` when not queued or when the policy has no stable order.
    pub fn position(&self, ticket: u64) -> Option<u64> {
        match self {
            Line::Fifo(q) => q.position(ticket),
            Line::Random(_) => None,
        }
    }

    /// The next visitor to release under the line's policy.
    pub fn pop(&mut self, rng: &mut impl rand::Rng) -> Option<(u64, SessionId)> {
        match self {
            Line::Fifo(q) => q.pop_front(),
            Line::Random(q) => q.pop(rng),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = (u64, SessionId)> + '_> {
        match self {
            Line::Fifo(q) => Box::new(q.iter()),
            Line::Random(q) => Box::new(q.iter()),
        }
    }

    pub fn policy(&self) -> Policy {
        match self {
            Line::Fifo(_) => Policy::Fifo,
            Line::Random(_) => Policy::Random,
        }
    }

    /// Converts the line to `policy`, keeping every queued visitor with their ticket.
    pub fn switch_to(&mut self, policy: Policy) {
        if self.policy() == policy {
            return;
        }
        let entries: Vec<(u64, SessionId)> = self.iter().collect();
        *self = match policy {
            Policy::Fifo => Line::Fifo(FifoQueue::new()),
            Policy::Random => Line::Random(RandomQueue::default()),
        };
        for (t, s) in entries {
            self.insert(t, s);
        }
    }
}
