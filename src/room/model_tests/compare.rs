//! The engine's sessions, capacity and places against the model's.

use super::*;

impl Model {
    /// The engine agrees with the model, and the room's rules hold, after every step.
    pub(super) fn compare(&mut self) -> Step {
        self.compare_sessions()?;
        self.check_capacity()?;
        self.check_places()
    }

    /// Every visitor's session in the engine is what the model says, and there are no others.
    pub(super) fn compare_sessions(&self) -> Step {
        for r in &self.recs {
            let e = self.st.sessions.get(&r.id);
            let ok = match (r.state, e) {
                (M::Gone(_), None) => true,
                (M::Gone(_), Some(_)) => false,
                (_, None) => {
                    return Err(format!(
                        "at {} ms: rule 1: ticket {} ({:?}, last seen {} ms ago) lost its session",
                        self.now,
                        r.ticket,
                        r.state,
                        self.now - r.seen
                    ));
                }
                (M::Queued { front }, Some(e)) => {
                    e.state == SessionState::Queued
                        && self.st.front.position(r.ticket).is_some() == front
                        && e.returned == r.returned
                }
                (M::Released { at }, Some(e)) => {
                    e.state == SessionState::Released && e.since_ms == at
                }
                (
                    M::Active {
                        since,
                        last_request,
                    },
                    Some(e),
                ) => {
                    e.state == SessionState::Active
                        && e.since_ms == since
                        && e.seen_ms == last_request
                }
                (M::Missed, Some(e)) => e.state == SessionState::Missed && e.returned == r.returned,
            };
            ensure!(
                self,
                ok,
                "ticket {}: the model has {:?} (back: {}), the engine {e:?}",
                r.ticket,
                r.state,
                r.returned
            );
        }
        let alive = self.recs.iter().filter(|r| r.alive()).count();
        ensure!(
            self,
            self.st.sessions.len() == alive,
            "the engine has {} sessions, the model {alive}",
            self.st.sessions.len()
        );
        Ok(())
    }

    /// The engine's counts agree; rule 5; the room's own invariants.
    pub(super) fn check_capacity(&mut self) -> Step {
        let count = |f: fn(&M) -> bool| self.recs.iter().filter(|r| f(&r.state)).count();
        let active = count(|m| matches!(m, M::Active { .. })) as u32;
        let released = count(|m| matches!(m, M::Released { .. })) as u32;
        let front = count(|m| *m == M::Queued { front: true });
        let engine = (
            self.st.active,
            self.st.released,
            self.st.waiting(),
            self.st.front.len(),
        );
        let model = (active, released, self.waiting() as u64, front);
        ensure!(
            self,
            engine == model,
            "engine counts (active, released, waiting, front) {engine:?}, model {model:?}"
        );
        let admitted = active + released;
        let cap = self.s.active_users;
        if self.over_cap {
            ensure!(
                self,
                admitted <= self.last_admitted,
                "rule 5: admitted grew from {} to {admitted} over a lowered capacity {cap:?}",
                self.last_admitted
            );
            self.over_cap = cap.is_some_and(|c| admitted > c);
        }
        if !self.over_cap
            && let Some(c) = cap
        {
            ensure!(self, admitted <= c, "rule 5: {admitted} admitted over {c}");
        }
        self.last_admitted = admitted;
        let enforced = if self.over_cap { None } else { cap };
        self.st
            .check_invariants(enforced)
            .map_err(|e| format!("at {} ms: invariants: {e}", self.now))
    }

    /// Rule 2: every place as the model orders the line; those back from a missed turn ahead
    /// of every later ticket.
    pub(super) fn check_places(&self) -> Step {
        let order = self.fifo_order();
        for &i in &order {
            if let Ok(want) = self.model_position(i, &order) {
                let got = self.st.position(self.recs[i].ticket);
                ensure!(
                    self,
                    got == want,
                    "ticket {} ({:?}) at place {got:?}, the model says {want:?}",
                    self.recs[i].ticket,
                    self.recs[i].state
                );
            }
        }
        if self.line_policy != Policy::Fifo {
            return Ok(());
        }
        let mut by_ticket: Vec<(u64, bool, u64)> = order
            .iter()
            .map(|&i| {
                let r = &self.recs[i];
                let place = self.st.position(r.ticket).unwrap_or(u64::MAX);
                (r.ticket, r.front(), place)
            })
            .collect();
        by_ticket.sort_unstable();
        let mut best_later = u64::MAX;
        for &(ticket, front, place) in by_ticket.iter().rev() {
            ensure!(
                self,
                !front || place < best_later,
                "rule 2: ticket {ticket}, back from a missed turn, is at place {place}, behind \
                 a later ticket at place {best_later}"
            );
            best_later = best_later.min(place);
        }
        Ok(())
    }
}
