//! When a watched `gateway.toml` has finished changing. A writer that truncates the file and
//! writes it in pieces (a shell redirection, a deploy tool streaming it, an editor saving in
//! place) leaves readable, even valid, half files on disk for a moment; applying one would drop
//! the rooms still to come. So a change is applied only once it has stopped changing.

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::WATCH_EVERY;

/// A change is applied once its bytes, size and modification time read the same for more than
/// two poll intervals and the modification time is at least this old. Twice the time a writer
/// was seen to pause between two pieces (300 ms), with room to spare; short enough that an
/// operator saving by hand barely notices.
pub(super) const SETTLE: Duration = Duration::from_secs(1);

/// A change seen by the watch that removes rooms waits longer, and the same bytes are read again
/// after the wait: dropping a room sends its hosts to 421 and its queue away, so a writer
/// pausing longer than [`SETTLE`] must still not do it. SIGHUP and `POST /api/v1/reload` are
/// an operator saying "the file is ready" and apply at once.
pub(super) const REMOVAL_SETTLE: Duration = Duration::from_secs(3);

/// One read of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub bytes: Vec<u8>,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

/// Reads the file with its size and modification time. `None` when it cannot be read or
/// changed while being read (the size or time differ before and after): a writer is at work.
pub(super) fn read(path: &Path) -> Option<Seen> {
    let before = std::fs::metadata(path).ok()?;
    let bytes = std::fs::read(path).ok()?;
    let after = std::fs::metadata(path).ok()?;
    let modified = after.modified().ok();
    let steady = before.len() == after.len()
        && before.modified().ok() == modified
        && bytes.len() as u64 == after.len();
    steady.then_some(Seen {
        bytes,
        len: after.len(),
        modified,
    })
}

/// A change ready to be parsed: `may_remove_rooms` once it has settled for [`REMOVAL_SETTLE`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Ready {
    pub bytes: Vec<u8>,
    pub may_remove_rooms: bool,
}

/// The watch's memory between polls: what was last loaded (or refused), and a change being
/// watched until it settles.
#[derive(Debug, Default)]
pub(super) struct Watch {
    settled: Option<Vec<u8>>,
    candidate: Option<Candidate>,
}

#[derive(Debug)]
struct Candidate {
    seen: Seen,
    /// When these exact bytes, size and time were first read.
    since: Instant,
    /// It parsed, but removes rooms and has not settled for [`REMOVAL_SETTLE`] yet.
    held: bool,
}

impl Watch {
    pub(super) fn new(settled: Option<Vec<u8>>) -> Self {
        Watch {
            settled,
            candidate: None,
        }
    }

    /// What was loaded (or refused) last: the watch looks for changes from it.
    pub(super) fn settle(&mut self, bytes: Vec<u8>) {
        self.settled = Some(bytes);
        self.candidate = None;
    }

    /// The file could not be read steadily: whatever was being watched starts again.
    pub(super) fn unsteady(&mut self) {
        self.candidate = None;
    }

    /// The ready change removes rooms and may not yet: ask again after [`REMOVAL_SETTLE`].
    pub(super) fn hold(&mut self) {
        if let Some(c) = &mut self.candidate {
            c.held = true;
        }
    }

    /// Takes one read at `now` (`wall`: the wall clock, to age the modification time).
    pub(super) fn observe(&mut self, seen: Seen, now: Instant, wall: SystemTime) -> Option<Ready> {
        if self.settled.as_ref() == Some(&seen.bytes) {
            self.candidate = None;
            return None;
        }
        let c = match &mut self.candidate {
            Some(c) if c.seen == seen => c,
            _ => {
                self.candidate = Some(Candidate {
                    seen,
                    since: now,
                    held: false,
                });
                return None;
            }
        };
        let unchanged = now.saturating_duration_since(c.since);
        // A modification time in the future (a clock step, a network file system) cannot be
        // aged: how long it has read the same stands in for it.
        let age = c
            .seen
            .modified
            .and_then(|m| wall.duration_since(m).ok())
            .unwrap_or(unchanged);
        let read_across = unchanged > 2 * WATCH_EVERY;
        let quiet = read_across && age >= SETTLE;
        let may_remove_rooms = read_across && age >= REMOVAL_SETTLE;
        if !quiet || (c.held && !may_remove_rooms) {
            return None;
        }
        Some(Ready {
            bytes: c.seen.bytes.clone(),
            may_remove_rooms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(text: &str, modified: SystemTime) -> Seen {
        Seen {
            bytes: text.as_bytes().to_vec(),
            len: text.len() as u64,
            modified: Some(modified),
        }
    }

    /// Polls every `WATCH_EVERY` from `start` for `polls` reads of `s`; the first ready result.
    fn poll(
        w: &mut Watch,
        s: &Seen,
        start: Instant,
        wall: SystemTime,
        polls: u32,
    ) -> Option<(u32, Ready)> {
        (0..polls).find_map(|i| {
            let dt = WATCH_EVERY * i;
            w.observe(s.clone(), start + dt, wall + dt).map(|r| (i, r))
        })
    }

    #[test]
    fn a_change_applies_once_it_has_read_the_same_for_a_second() {
        let (start, wall) = (Instant::now(), SystemTime::now());
        let mut w = Watch::new(Some(b"old".to_vec()));
        // Written just now: a second of quiet first.
        let (i, r) = poll(&mut w, &seen("new", wall), start, wall, 20).unwrap();
        assert_eq!(i, 5, "after SETTLE of polls");
        assert!(!r.may_remove_rooms);
        // Written long ago (a rename of an old file): still read across more than two polls.
        let mut w = Watch::new(Some(b"old".to_vec()));
        let old = wall - Duration::from_secs(60);
        let (i, r) = poll(&mut w, &seen("new", old), start, wall, 20).unwrap();
        assert_eq!(i, 3);
        assert!(r.may_remove_rooms);
        // The loaded content again: nothing to do.
        w.settle(b"new".to_vec());
        assert!(poll(&mut w, &seen("new", old), start, wall, 20).is_none());
    }

    #[test]
    fn a_writer_pausing_between_pieces_is_waited_for() {
        let (start, wall) = (Instant::now(), SystemTime::now());
        let mut w = Watch::new(Some(b"a\nb\n".to_vec()));
        // The first piece sits there for 800 ms, re-read four times: never ready.
        let half = seen("a\n", wall);
        assert!(poll(&mut w, &half, start, wall, 4).is_none());
        // The rest arrives: a new time, a new count from zero.
        let later = start + Duration::from_millis(800);
        let wall_later = wall + Duration::from_millis(800);
        let full = seen("a\nb\nc\n", wall_later);
        let (i, _) = poll(&mut w, &full, later, wall_later, 20).unwrap();
        assert_eq!(i, 5);
        // Same bytes, a new modification time (touched, rewritten): counted afresh.
        let mut w = Watch::new(None);
        assert!(poll(&mut w, &full, later, wall_later, 3).is_none());
        let touched = seen("a\nb\nc\n", wall_later + Duration::from_millis(600));
        assert!(
            w.observe(touched, later + Duration::from_secs(1), wall_later)
                .is_none()
        );
    }

    #[test]
    fn a_held_removal_waits_for_the_longer_settle() {
        let (start, wall) = (Instant::now(), SystemTime::now());
        let mut w = Watch::new(Some(b"two rooms".to_vec()));
        let one = seen("one room", wall);
        let (i, r) = poll(&mut w, &one, start, wall, 20).unwrap();
        assert_eq!((i, r.may_remove_rooms), (5, false));
        w.hold();
        let at = |i: u32| (start + WATCH_EVERY * i, wall + WATCH_EVERY * i);
        for i in 6..15 {
            let (now, wall) = at(i);
            assert!(w.observe(one.clone(), now, wall).is_none(), "poll {i}");
        }
        let (now, wall_now) = at(15);
        let r = w.observe(one.clone(), now, wall_now).unwrap();
        assert!(r.may_remove_rooms);
        // A change during the hold starts over, not held.
        let mut w = Watch::new(Some(b"two rooms".to_vec()));
        poll(&mut w, &one, start, wall, 20).unwrap();
        w.hold();
        let other = seen("other", wall + Duration::from_secs(2));
        let (i, r) = poll(
            &mut w,
            &other,
            start + Duration::from_secs(2),
            wall + Duration::from_secs(2),
            20,
        )
        .unwrap();
        assert_eq!((i, r.may_remove_rooms), (5, false));
    }

    #[test]
    fn a_modification_time_in_the_future_ages_by_reading() {
        let (start, wall) = (Instant::now(), SystemTime::now());
        let mut w = Watch::new(None);
        let future = seen("x", wall + Duration::from_secs(3600));
        let (i, r) = poll(&mut w, &future, start, wall, 30).unwrap();
        assert_eq!((i, r.may_remove_rooms), (5, false));
    }
}
