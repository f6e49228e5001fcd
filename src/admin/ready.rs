//! Whether this instance takes traffic, as `/readyz` says: not while starting (before the
//! gateway is built, or while connecting to a shared store), restoring rooms from the snapshot,
//! or draining after a stop began. The admin listener serves from before the first and until
//! after the last, so a load balancer sees each phase.

use std::sync::atomic::{AtomicU8, Ordering};

/// The instance's phase. Written by the start and the stop, read by `/readyz`.
#[derive(Debug, Default)]
pub struct Readiness {
    phase: AtomicU8,
}

const STARTING: u8 = 0;
const RESTORING: u8 = 1;
const SERVING: u8 = 2;
const DRAINING: u8 = 3;

impl Readiness {
    /// Rooms are being read back from the state folder's snapshot.
    pub fn restoring(&self) {
        self.phase.store(RESTORING, Ordering::Relaxed);
    }

    /// Every listener serves.
    pub fn serving(&self) {
        self.phase.store(SERVING, Ordering::Relaxed);
    }

    /// A stop began: no new traffic should come here (in-flight requests finish).
    pub fn draining(&self) {
        self.phase.store(DRAINING, Ordering::Relaxed);
    }

    /// Why this instance is not ready (the word `/readyz` answers), `None` when serving.
    pub fn not_ready(&self) -> Option<&'static str> {
        match self.phase.load(Ordering::Relaxed) {
            STARTING => Some("starting"),
            RESTORING => Some("restoring"),
            DRAINING => Some("draining"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_says_why_it_is_not_ready() {
        let r = Readiness::default();
        assert_eq!(r.not_ready(), Some("starting"));
        r.restoring();
        assert_eq!(r.not_ready(), Some("restoring"));
        r.serving();
        assert_eq!(r.not_ready(), None);
        r.draining();
        assert_eq!(r.not_ready(), Some("draining"));
    }
}
