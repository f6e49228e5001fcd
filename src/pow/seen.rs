//! The replay filter: the nonces solved, each until its challenge expires, so that a solution
//! gets one place. Bounded: past its cap it refuses new solutions rather than grow (an attacker
//! who solves that many challenges in one window slows joins for a moment, and gets no more).

use std::collections::HashMap;

use parking_lot::Mutex;

use super::Refusal;

/// How often (in seconds) expired nonces are swept out, at most.
const SWEEP_EVERY: u64 = 10;

/// Solved nonces by their tag, with the unix second their challenge expires. The mutex guards
/// the map; it is held for one insert (and now and then one sweep), never with another lock.
#[derive(Debug)]
pub struct Seen {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    expires: HashMap<[u8; 16], u64>,
    next_sweep: u64,
}

impl Seen {
    pub fn new(cap: usize) -> Self {
        Seen {
            cap,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Takes the nonce `id` (valid until `expires`) at `now`: refused if taken before, or if the
    /// filter is full of nonces still valid.
    pub fn take(&self, id: [u8; 16], expires: u64, now: u64) -> Result<(), Refusal> {
        let mut inner = self.inner.lock();
        if inner.expires.contains_key(&id) {
            return Err(Refusal::Reused);
        }
        if now >= inner.next_sweep || inner.expires.len() >= self.cap {
            // A nonce past its expiry fails as expired before it gets here: forgetting it is safe.
            inner.expires.retain(|_, e| *e >= now);
            inner.next_sweep = now + SWEEP_EVERY;
        }
        if inner.expires.len() >= self.cap {
            return Err(Refusal::Busy);
        }
        inner.expires.insert(id, expires);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expires.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_each_pruned_by_expiry_and_refusing_when_full() {
        let seen = Seen::new(2);
        assert_eq!(seen.take([1; 16], 100, 0), Ok(()));
        assert_eq!(seen.take([1; 16], 100, 1), Err(Refusal::Reused));
        assert_eq!(seen.take([2; 16], 50, 2), Ok(()));
        // Full of nonces still valid: refused, not grown.
        assert_eq!(seen.take([3; 16], 100, 3), Err(Refusal::Busy));
        assert_eq!(seen.len(), 2);
        // Once [2] expires its room is taken again.
        assert_eq!(seen.take([3; 16], 100, 51), Ok(()));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen.take([1; 16], 100, 52), Err(Refusal::Reused));
        // The periodic sweep forgets everything expired.
        assert_eq!(seen.take([4; 16], 300, 101), Ok(()));
        assert_eq!(seen.len(), 1);
    }
}
