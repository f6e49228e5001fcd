//! The fifo queue: tickets in order, with O(log n) positions when visitors in the middle leave.
//!
//! Tickets of a room are (nearly) contiguous, so the queue is a window of slots indexed by
//! `ticket - base`, plus a Fenwick tree counting the live slots. A position is a prefix sum, a
//! removal is one point update, and releasing from the front skips dead slots. The window is
//! compacted when more than half of it lies behind the head.
//!
//! Tickets far apart (a restart starts a new ticket range; tokens of a run whose state was lost
//! come back with tickets of that run) go to windows of their own: a key more than [`GAP`] below
//! or above the window moves to an older window chained in front of it. Memory follows the
//! number of visitors, never the span of their tickets.
//!
//! The key is a ticket for fifo rooms; the lottery keys its drawn visitors by draw order instead,
//! with the ticket in the payload.

use super::state::SessionId;

/// Keys this far from a window get a window of their own.
const GAP: u64 = 1 << 16;

#[derive(Debug, Clone)]
pub struct FifoQueue<T = SessionId> {
    /// Key of slot 0.
    base: u64,
    /// `slots[i]` holds the entry with key `base + i`, or `None` when that key is gone.
    slots: Vec<Option<T>>,
    /// Fenwick tree over `slots` (1-based): live counts.
    tree: Vec<u32>,
    /// Every slot before `head` is empty.
    head: usize,
    /// Live slots in this window.
    live: usize,
    /// Keys below this window, far from it: released first. Never holds an empty window.
    older: Option<Box<FifoQueue<T>>>,
}

impl<T> Default for FifoQueue<T> {
    fn default() -> Self {
        FifoQueue {
            base: 0,
            slots: Vec::new(),
            tree: Vec::new(),
            head: 0,
            live: 0,
            older: None,
        }
    }
}

impl<T: Copy> FifoQueue<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of queued visitors.
    pub fn len(&self) -> usize {
        self.live + self.older.as_ref().map_or(0, |o| o.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The older window holding `key`, if `key` belongs there.
    fn older_for(&mut self, key: u64) -> Option<&mut FifoQueue<T>> {
        self.older.as_deref_mut().filter(|o| key < o.end())
    }

    /// Puts `session` in line at `ticket`. Tickets normally arrive in increasing order; an older
    /// ticket (a returning visitor after a crash) is placed where it belongs.
    pub fn insert(&mut self, ticket: u64, session: T) {
        if let Some(o) = self.older_for(ticket) {
            return o.insert(ticket, session);
        }
        if self.live == 0 {
            // An empty window starts at the key: every key below it is in `older`.
            self.slots.clear();
            self.tree.clear();
            self.base = ticket;
            self.head = 0;
        } else if ticket < self.base {
            if self.base - ticket > GAP {
                match self.older.as_deref_mut() {
                    Some(o) => o.insert(ticket, session),
                    None => {
                        let mut o = FifoQueue::new();
                        o.insert(ticket, session);
                        self.older = Some(Box::new(o));
                    }
                }
                return;
            }
            self.rebase(ticket);
        } else if ticket.saturating_sub(self.end()) >= GAP {
            // Far ahead: this window becomes the older one.
            let prev = std::mem::take(self);
            self.older = Some(Box::new(prev));
            self.base = ticket;
        }
        let idx = (ticket - self.base) as usize;
        while self.slots.len() <= idx {
            self.push_slot();
        }
        if self.slots[idx].is_none() {
            self.live += 1;
            self.add(idx, 1);
        }
        self.slots[idx] = Some(session);
        if idx < self.head {
            self.head = idx;
        }
    }

    /// The key after the last slot of the newest window: every key in the queue is below it.
    pub fn end(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// Drops the older window once it has emptied.
    fn prune(&mut self) {
        if let Some(o) = self.older.take() {
            self.older = if o.live == 0 { o.older } else { Some(o) };
        }
    }

    /// Appends entries with keys following every key in the queue, in one O(n) pass (a lottery
    /// draw appends its whole pool at once).
    pub fn append(&mut self, entries: impl ExactSizeIterator<Item = T>) -> std::ops::Range<u64> {
        if self.live == 0 {
            self.slots.clear();
            self.base = self.base.saturating_add(self.head as u64);
            self.head = 0;
        }
        let first = self.base + self.slots.len() as u64;
        self.slots.reserve(entries.len());
        for e in entries {
            self.slots.push(Some(e));
            self.live += 1;
        }
        self.rebuild_tree();
        first..self.base + self.slots.len() as u64
    }

    /// Takes `ticket` out of line (abandon, leave). Returns whether it was there.
    pub fn remove(&mut self, ticket: u64) -> bool {
        if let Some(o) = self.older_for(ticket) {
            let removed = o.remove(ticket);
            self.prune();
            return removed;
        }
        let Some(idx) = self.index(ticket) else {
            return false;
        };
        if self.slots[idx].take().is_none() {
            return false;
        }
        self.live -= 1;
        self.add(idx, -1);
        true
    }

    /// 1-based place in line of `ticket`, or `None` if it is not queued.
    pub fn position(&self, ticket: u64) -> Option<u64> {
        let ahead = match self.older.as_deref() {
            Some(o) if ticket < o.end() => return o.position(ticket),
            Some(o) => o.len() as u64,
            None => 0,
        };
        let idx = self.index(ticket)?;
        self.slots[idx]?;
        Some(ahead + u64::from(self.prefix(idx + 1)))
    }

    /// Releases the front of the line.
    pub fn pop_front(&mut self) -> Option<(u64, T)> {
        if let Some(o) = self.older.as_deref_mut() {
            let front = o.pop_front();
            self.prune();
            return front;
        }
        if self.live == 0 {
            return None;
        }
        while self.head < self.slots.len() {
            let idx = self.head;
            self.head += 1;
            if let Some(session) = self.slots[idx].take() {
                self.live -= 1;
                self.add(idx, -1);
                let ticket = self.base + idx as u64;
                self.maybe_compact();
                return Some((ticket, session));
            }
        }
        None
    }

    /// Queued sessions in ticket order (for invariant checks and snapshots).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u64, T)> + '_> {
        match self.older.as_deref() {
            Some(o) => Box::new(o.iter().chain(self.window())),
            None => Box::new(self.window()),
        }
    }

    /// This window's sessions in ticket order.
    fn window(&self) -> impl Iterator<Item = (u64, T)> + '_ {
        self.slots[self.head.min(self.slots.len())..]
            .iter()
            .enumerate()
            .filter_map(move |(i, s)| s.map(|s| (self.base + (self.head + i) as u64, s)))
    }

    fn index(&self, ticket: u64) -> Option<usize> {
        let idx = usize::try_from(ticket.checked_sub(self.base)?).ok()?;
        (idx < self.slots.len()).then_some(idx)
    }

    /// Appends an empty slot, extending the Fenwick tree in O(log n).
    fn push_slot(&mut self) {
        self.slots.push(None);
        let i = self.slots.len(); // 1-based index of the new node
        let low = i & i.wrapping_neg();
        // Node i covers (i - low, i]; the new slot is empty, so it holds the sum of the rest.
        let sum = self.prefix(i - 1) - self.prefix(i - low);
        self.tree.push(sum);
    }

    fn add(&mut self, idx: usize, delta: i32) {
        let mut i = idx + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] = self.tree[i - 1].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Live slots among the first `n`.
    fn prefix(&self, n: usize) -> u32 {
        let mut i = n.min(self.tree.len());
        let mut sum = 0u32;
        while i > 0 {
            sum = sum.wrapping_add(self.tree[i - 1]);
            i &= i - 1;
        }
        sum
    }

    fn maybe_compact(&mut self) {
        if self.head >= 1024 && self.head * 2 >= self.slots.len() {
            let new_base = self.base + self.head as u64;
            self.rebase(new_base);
        }
    }

    /// Moves the window to start at `new_base`, keeping every live slot, and rebuilds the tree.
    fn rebase(&mut self, new_base: u64) {
        let live: Vec<(u64, T)> = self.window().collect();
        let end = live.last().map_or(new_base, |(t, _)| t + 1).max(new_base);
        let len = (end - new_base) as usize;
        self.slots = vec![None; len];
        for (t, s) in &live {
            self.slots[(t - new_base) as usize] = Some(*s);
        }
        self.base = new_base;
        self.head = 0;
        self.rebuild_tree();
    }

    /// Linear-time Fenwick construction.
    fn rebuild_tree(&mut self) {
        let n = self.slots.len();
        self.tree = self.slots.iter().map(|s| u32::from(s.is_some())).collect();
        for i in 1..=n {
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                let v = self.tree[i - 1];
                self.tree[parent - 1] += v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u64) -> SessionId {
        SessionId::from_u128(u128::from(n) + 1)
    }

    #[test]
    fn positions_follow_removals_in_the_middle() {
        let mut q: FifoQueue = FifoQueue::new();
        for t in 10..20 {
            q.insert(t, sid(t));
        }
        assert_eq!(q.position(10), Some(1));
        assert_eq!(q.position(19), Some(10));
        assert!(q.remove(14));
        assert!(!q.remove(14));
        assert_eq!(q.position(14), None);
        assert_eq!(q.position(15), Some(5));
        assert_eq!(q.pop_front(), Some((10, sid(10))));
        assert_eq!(q.position(15), Some(4));
        assert_eq!(q.len(), 8);
    }

    #[test]
    fn matches_a_naive_model_through_compaction() {
        let mut q: FifoQueue = FifoQueue::new();
        let mut model: Vec<u64> = Vec::new();
        let mut next = 0u64;
        let mut x = 12345u64;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 4 {
                0 | 1 => {
                    q.insert(next, sid(next));
                    model.push(next);
                    next += 1 + (x % 3); // gaps: tickets taken by immediate admits
                }
                2 => {
                    let got = q.pop_front().map(|(t, _)| t);
                    let want = (!model.is_empty()).then(|| model.remove(0));
                    assert_eq!(got, want, "step {step}");
                }
                _ => {
                    if !model.is_empty() {
                        let i = (x as usize / 4) % model.len();
                        let t = model.remove(i);
                        assert!(q.remove(t));
                    }
                }
            }
            assert_eq!(q.len(), model.len());
            if let Some(&t) = model.last() {
                assert_eq!(q.position(t), Some(model.len() as u64));
            }
        }
        let order: Vec<u64> = q.iter().map(|(t, _)| t).collect();
        assert_eq!(order, model);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Join with a ticket `gap` past the last (gaps: tickets that went to immediate admits).
        Join {
            gap: u64,
        },
        Release,
        /// The visitor at this share of the line leaves.
        Leave {
            at: f64,
        },
        /// A returning visitor re-enters at an older ticket (crash recovery).
        Return {
            back: u64,
        },
        /// A batch joins behind everyone at once (a lottery draw).
        Append {
            n: u64,
        },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (1u64..4).prop_map(|gap| Op::Join { gap }),
            // A restart: the next tickets start far ahead.
            1 => (GAP..GAP * 50).prop_map(|gap| Op::Join { gap }),
            2 => Just(Op::Release),
            2 => (0.0f64..1.0).prop_map(|at| Op::Leave { at }),
            1 => (1u64..3000).prop_map(|back| Op::Return { back }),
            // A token of a run whose state was lost: far behind everyone.
            1 => (GAP..GAP * 100).prop_map(|back| Op::Return { back }),
            1 => (0u64..6).prop_map(|n| Op::Append { n }),
        ]
    }

    proptest::proptest! {
        /// After every step of any sequence, every queued ticket's position is its place in a
        /// naive sorted list, and releases come in ticket order.
        #[test]
        fn positions_match_a_naive_model(ops in proptest::collection::vec(op(), 1..400)) {
            let mut q: FifoQueue = FifoQueue::new();
            let mut model: Vec<u64> = Vec::new();
            let mut next = 10_000_000u64;
            for op in ops {
                match op {
                    Op::Join { gap } => {
                        next += gap;
                        q.insert(next, sid(next));
                        model.push(next);
                    }
                    Op::Release => {
                        let want = (!model.is_empty()).then(|| model.remove(0));
                        proptest::prop_assert_eq!(q.pop_front().map(|(t, _)| t), want);
                    }
                    Op::Leave { at } => {
                        if !model.is_empty() {
                            let i = ((model.len() as f64) * at) as usize;
                            let t = model.remove(i.min(model.len() - 1));
                            proptest::prop_assert!(q.remove(t));
                        }
                    }
                    Op::Append { n } => {
                        let batch: Vec<SessionId> = (0..n).map(sid).collect();
                        let keys = q.append(batch.into_iter());
                        proptest::prop_assert_eq!(keys.end - keys.start, n);
                        proptest::prop_assert!(model.last().is_none_or(|&l| l < keys.start));
                        next = next.max(keys.end);
                        model.extend(keys);
                    }
                    Op::Return { back } => {
                        let t = next.saturating_sub(back);
                        if let Err(i) = model.binary_search(&t) {
                            model.insert(i, t);
                            q.insert(t, sid(t));
                        }
                    }
                }
                proptest::prop_assert_eq!(q.len(), model.len());
                for (i, &t) in model.iter().enumerate() {
                    proptest::prop_assert_eq!(q.position(t), Some(i as u64 + 1));
                }
            }
            let order: Vec<u64> = q.iter().map(|(t, _)| t).collect();
            proptest::prop_assert_eq!(order, model);
        }
    }

    #[test]
    fn far_apart_tickets_cost_no_memory_for_the_gap() {
        let mut q: FifoQueue = FifoQueue::new();
        let runs = [1_000u64, 1 << 40, 1 << 50, 5 << 20];
        for (i, &start) in runs.iter().enumerate() {
            for t in start..start + 3 {
                q.insert(t, sid(i as u64));
            }
        }
        let mut sorted: Vec<u64> = runs.iter().flat_map(|&s| s..s + 3).collect();
        sorted.sort_unstable();
        for (i, &t) in sorted.iter().enumerate() {
            assert_eq!(q.position(t), Some(i as u64 + 1), "ticket {t}");
        }
        assert_eq!(q.iter().map(|(t, _)| t).collect::<Vec<_>>(), sorted);
        let mut windows = 0;
        let mut w = Some(&q);
        while let Some(x) = w {
            windows += 1;
            assert!(x.slots.len() < 100, "a window spans the gap");
            w = x.older.as_deref();
        }
        assert_eq!(windows, 4);
        assert!(q.remove(1 << 40));
        let popped: Vec<u64> = std::iter::from_fn(|| q.pop_front().map(|(t, _)| t)).collect();
        sorted.retain(|&t| t != 1 << 40);
        assert_eq!(popped, sorted);
        assert!(q.older.is_none());
    }

    #[test]
    fn an_older_ticket_takes_its_place() {
        let mut q: FifoQueue = FifoQueue::new();
        q.insert(100, sid(100));
        q.insert(101, sid(101));
        q.insert(50, sid(50));
        assert_eq!(q.position(50), Some(1));
        assert_eq!(q.position(101), Some(3));
        assert_eq!(q.pop_front(), Some((50, sid(50))));
    }
}
