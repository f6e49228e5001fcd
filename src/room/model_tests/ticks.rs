//! The model's side of a tick: what expires, who is released and in what order.

use super::*;

impl Model {
    /// The waiting visitors in the order a fifo line releases them: those back from a missed
    /// turn by ticket, then the rest by ticket.
    pub(super) fn fifo_order(&self) -> Vec<usize> {
        let mut front: Vec<usize> = (0..self.recs.len())
            .filter(|&i| self.recs[i].front())
            .collect();
        let mut line: Vec<usize> = (0..self.recs.len())
            .filter(|&i| self.recs[i].waiting() && !self.recs[i].front())
            .collect();
        front.sort_by_key(|&i| self.recs[i].ticket);
        line.sort_by_key(|&i| self.recs[i].ticket);
        front.extend(line);
        front
    }

    /// The place the model gives a waiting visitor: exact for fifo lines and for those at the
    /// front in any line; `None` in a random line; unknown (`Err`) in a lottery's line.
    pub(super) fn model_position(&self, i: usize, order: &[usize]) -> Result<Option<u64>, ()> {
        let r = &self.recs[i];
        if !r.waiting() {
            return Ok(None);
        }
        let place = order.iter().position(|&j| j == i).map(|p| p as u64 + 1);
        match (r.front(), self.line_policy) {
            (true, _) | (false, Policy::Fifo) => Ok(place),
            (false, Policy::Random) => Ok(None),
            (false, Policy::Lottery) => Err(()),
        }
    }

    pub(super) fn check_view(&self, i: usize, view: &View) -> Step {
        let order = self.fifo_order();
        if let Ok(want) = self.model_position(i, &order) {
            ensure!(
                self,
                view.position == want,
                "ticket {} ({:?}) is shown place {:?}, the model says {want:?}",
                self.recs[i].ticket,
                self.recs[i].state,
                view.position
            );
        }
        ensure!(
            self,
            view.queue_depth == self.waiting() as u64,
            "queue depth {} shown, {} waiting",
            view.queue_depth,
            self.waiting()
        );
        Ok(())
    }

    /// The room ticks at `now`: the model says who must expire and how, then checks what the
    /// engine released.
    pub(super) fn tick(&mut self) -> Step {
        let s = self.s.clone();
        let expiry = self.expiry();
        let report = tick(&s, &mut self.st, self.now, &mut self.rng);
        self.line_policy = s.policy;
        self.seen.ticks += 1;
        self.check_kept(&expiry.after)?;
        self.take_expiry(&expiry.after);
        ensure!(
            self,
            report.abandoned == expiry.abandoned,
            "{} abandoned, the model says {}",
            report.abandoned,
            expiry.abandoned
        );
        let key = |e: &(EndReason, u64)| (e.0.label(), e.1);
        let (mut got, mut want) = (report.ended.clone(), expiry.ended);
        got.sort_by_key(key);
        want.sort_by_key(key);
        ensure!(
            self,
            got == want,
            "sessions ended {got:?}, the model says {want:?}"
        );
        self.budget.refill(s.admit_per_minute, self.now);
        self.releases(&report.releases)?;
        ensure!(
            self,
            report.released as usize == report.releases.len(),
            "released {} but lists {}",
            report.released,
            report.releases.len()
        );
        self.check_deadlines()
    }

    /// Who the tick must end, with the settings in force now.
    pub(super) fn expiry(&self) -> Expiry {
        let (now, s) = (self.now, &self.s);
        let abandon = ms(s.abandon_after);
        let mut e = Expiry {
            after: Vec::with_capacity(self.recs.len()),
            ended: Vec::new(),
            abandoned: 0,
        };
        for r in &self.recs {
            let next = match r.state {
                M::Queued { .. } | M::Missed if now >= r.seen + abandon => {
                    e.abandoned += 1;
                    M::Gone(Why::Abandoned)
                }
                M::Released { at } if now >= at + ms(s.release_window) => {
                    e.ended.push((EndReason::NoShow, now - at));
                    if r.seen + abandon > now && !r.no_showed {
                        M::Missed
                    } else {
                        M::Gone(Why::NoShow)
                    }
                }
                M::Active {
                    since,
                    last_request,
                } => {
                    let idle = last_request + ms(s.session_ttl);
                    let (due, why, reason) = match s.max_session.map(|m| since + ms(m)) {
                        Some(cap) if cap <= idle => (cap, Why::MaxSession, EndReason::MaxSession),
                        _ => (idle, Why::Idle, EndReason::Idle),
                    };
                    if now < due {
                        r.state
                    } else {
                        e.ended.push((reason, now - since));
                        M::Gone(why)
                    }
                }
                other => other,
            };
            e.after.push(next);
        }
        e
    }

    /// Rule 1 (and 3, 4, `abandon_after`): the tick kept exactly those the model keeps.
    pub(super) fn check_kept(&self, after: &[M]) -> Step {
        for (r, next) in self.recs.iter().zip(after) {
            let has = self.st.sessions.get(&r.id);
            match (next, has) {
                (M::Gone(why), Some(e)) if r.alive() => {
                    let rule = match why {
                        Why::Idle | Why::MaxSession => "rule 3",
                        Why::NoShow => "rule 4",
                        _ => "abandon_after",
                    };
                    return Err(format!(
                        "at {} ms: {rule}: ticket {} ({:?}, last seen {} ms ago) should have \
                         ended ({why:?}) but is {:?}; settings {:?}",
                        self.now,
                        r.ticket,
                        r.state,
                        self.now - r.seen,
                        e.state,
                        self.s
                    ));
                }
                (M::Gone(_), _) | (_, Some(_)) => {}
                (_, None) => {
                    return Err(format!(
                        "at {} ms: rule 1: ticket {} ({:?}, last seen {} ms ago, abandon_after \
                         {} ms) lost its session at a tick; settings {:?}",
                        self.now,
                        r.ticket,
                        r.state,
                        self.now - r.seen,
                        ms(self.s.abandon_after),
                        self.s
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn take_expiry(&mut self, after: &[M]) {
        let abandon = ms(self.s.abandon_after);
        for (r, &next) in self.recs.iter_mut().zip(after) {
            if r.alive() && r.state != next {
                match next {
                    M::Gone(Why::Abandoned) => self.seen.abandoned += 1,
                    M::Gone(Why::Idle) => self.seen.idle += 1,
                    M::Gone(Why::MaxSession) => self.seen.max_session += 1,
                    M::Gone(Why::NoShow) => self.seen.no_show_gone += 1,
                    M::Missed => self.seen.no_show_kept += 1,
                    _ => {}
                }
            }
            if r.alive() && !matches!(next, M::Gone(_)) && self.now - r.seen > abandon / 2 {
                self.seen.kept_after_long_absence += 1;
            }
            if matches!(r.state, M::Released { .. }) && next == M::Missed {
                r.no_showed = true;
            }
            r.state = next;
        }
    }

    /// Rules 3 and 4 on the engine's own sessions: nothing is past a deadline after a tick.
    pub(super) fn check_deadlines(&self) -> Step {
        let (now, s) = (self.now, &self.s);
        for (id, e) in &self.st.sessions {
            let (ttl, window) = (ms(s.session_ttl), ms(s.release_window));
            let cap = s.max_session.map_or(u64::MAX, |m| e.since_ms + ms(m));
            match e.state {
                SessionState::Active => ensure!(
                    self,
                    now < e.seen_ms + ttl && now < cap,
                    "rule 3: {id:?} admitted since {}, idle since {}, past session_ttl {ttl} or \
                     max_session {:?}",
                    e.since_ms,
                    e.seen_ms,
                    s.max_session
                ),
                SessionState::Released => ensure!(
                    self,
                    now < e.since_ms + window,
                    "rule 4: {id:?} released since {} past release_window {window}",
                    e.since_ms
                ),
                SessionState::Queued | SessionState::Missed => {}
            }
            let (due, why) = deadline(s, e);
            ensure!(
                self,
                due > now,
                "{id:?} ({:?}) is past its deadline {due} ({why:?})",
                e.state
            );
        }
        Ok(())
    }

    /// Checks the releases of a tick against the model, then takes them in.
    pub(super) fn releases(&mut self, released: &[(SessionId, u64)]) -> Step {
        let rel = self.released_recs(released)?;
        let missed = self.passed_over()?;
        if self.s.paused {
            ensure!(
                self,
                rel.is_empty() && missed.is_empty(),
                "a paused room released {} and passed over {}",
                rel.len(),
                missed.len()
            );
            return Ok(());
        }
        let slots = self
            .s
            .active_users
            .map_or(u64::MAX, |c| u64::from(c.saturating_sub(self.admitted())));
        let (lo, hi) = self.budget.whole(self.s.admit_per_minute);
        let room = Room { slots, lo, hi };
        self.check_release_order(&rel, &missed, room)?;
        self.check_fifo_only(&rel)?;
        for &i in &missed {
            self.recs[i].state = M::Missed;
            self.seen.skipped += 1;
        }
        for &i in &rel {
            self.seen.released_from_front += u64::from(self.recs[i].front());
            self.recs[i].state = M::Released { at: self.now };
        }
        let n = rel.len() as u64;
        self.budget.take(self.s.admit_per_minute, n);
        self.seen.releases += n;
        Ok(())
    }

    /// The records of the released, in release order (rule 6: each came back since joining).
    pub(super) fn released_recs(
        &self,
        released: &[(SessionId, u64)],
    ) -> Result<Vec<usize>, String> {
        let mut rel: Vec<usize> = Vec::with_capacity(released.len());
        for (id, _) in released {
            let Some(i) = self.recs.iter().position(|r| r.id == *id) else {
                return Err(format!("at {} ms: released an unknown session", self.now));
            };
            let r = &self.recs[i];
            ensure!(
                self,
                r.waiting(),
                "released ticket {} which the model has {:?}",
                r.ticket,
                r.state
            );
            ensure!(
                self,
                r.returned,
                "rule 6: released ticket {} that never came back since joining",
                r.ticket
            );
            ensure!(
                self,
                !rel.contains(&i),
                "released ticket {} twice",
                r.ticket
            );
            rel.push(i);
        }
        Ok(rel)
    }

    /// Those the release passed over as away (now missed): only tickets never back, in line.
    pub(super) fn passed_over(&self) -> Result<Vec<usize>, String> {
        let missed: Vec<usize> = (0..self.recs.len())
            .filter(|&i| {
                self.recs[i].waiting()
                    && self
                        .st
                        .sessions
                        .get(&self.recs[i].id)
                        .is_some_and(|e| e.state == SessionState::Missed)
            })
            .collect();
        for &i in &missed {
            let r = &self.recs[i];
            ensure!(
                self,
                !r.returned && !r.front(),
                "ticket {} (back since joining: {}) was passed over as away",
                r.ticket,
                r.returned
            );
        }
        Ok(missed)
    }

    /// Rules 2, 5 and 6 on one tick's releases: the front first, then the line by its policy,
    /// as many as slots and budget allow.
    pub(super) fn check_release_order(
        &mut self,
        rel: &[usize],
        missed: &[usize],
        room: Room,
    ) -> Step {
        let order = self.fifo_order();
        let front = order.iter().filter(|&&i| self.recs[i].front()).count();
        let (room_lo, room_hi) = (room.slots.min(room.lo), room.slots.min(room.hi));
        let n = rel.len() as u64;
        ensure!(
            self,
            n <= room_hi,
            "rule 5: released {n} with {} free slots and budget {}",
            room.slots,
            room.hi
        );
        for (k, (&got, &want)) in rel.iter().zip(&order[..front]).enumerate() {
            ensure!(
                self,
                got == want,
                "rule 2: release #{k} was ticket {}, but ticket {} is back at the front",
                self.recs[got].ticket,
                self.recs[want].ticket
            );
        }
        let ready = order.iter().filter(|&&i| self.recs[i].returned).count() as u64;
        match self.s.policy {
            Policy::Fifo => self.check_fifo_release(rel, missed, &order, (room_lo, room_hi))?,
            Policy::Random => {
                ensure!(
                    self,
                    n >= room_lo.min(ready) && n <= room_hi.min(ready),
                    "a random line released {n} with room {room_lo}..={room_hi} and {ready} ready"
                );
                let never_back = order.iter().filter(|&&i| !self.recs[i].returned).count();
                ensure!(
                    self,
                    n >= room_lo || missed.len() == never_back,
                    "a random line ran dry but kept tickets never back in line"
                );
            }
            Policy::Lottery => {}
        }
        // The budget, not the slots, stopped releases while someone was ready.
        if room.hi < room.slots && n < ready {
            self.seen.rate_limited += 1;
        }
        Ok(())
    }

    /// A fifo tick is exact: walking the line in order, tickets never back are passed over and
    /// the others released while there is room (the budget may be a hair short on a whole number).
    pub(super) fn check_fifo_release(
        &self,
        rel: &[usize],
        missed: &[usize],
        order: &[usize],
        (room_lo, room_hi): (u64, u64),
    ) -> Step {
        let predict = |room: u64| {
            let (mut out, mut passed) = (Vec::new(), Vec::new());
            for &i in order {
                if out.len() as u64 >= room {
                    break;
                }
                if self.recs[i].returned {
                    out.push(i);
                } else {
                    passed.push(i);
                }
            }
            (out, passed)
        };
        let mut passed = missed.to_vec();
        passed.sort_by_key(|&i| self.recs[i].ticket);
        let got = (rel.to_vec(), passed);
        let (lo_guess, hi_guess) = (predict(room_lo), predict(room_hi));
        ensure!(
            self,
            got == lo_guess || got == hi_guess,
            "rules 2/6: fifo released tickets {:?} and passed over {:?}; the model releases {:?} \
             passing over {:?} (room {room_lo}..={room_hi})",
            self.tickets(&got.0),
            self.tickets(&got.1),
            self.tickets(&hi_guess.0),
            self.tickets(&hi_guess.1)
        );
        Ok(())
    }

    /// Rule 2 over a whole fifo run: nobody who came back and holds an earlier ticket is still
    /// waiting when a later ticket is released.
    pub(super) fn check_fifo_only(&self, rel: &[usize]) -> Step {
        if !self.fifo_only() {
            return Ok(());
        }
        let earliest = (0..self.recs.len())
            .filter(|i| !rel.contains(i) && self.recs[*i].waiting() && self.recs[*i].returned)
            .map(|i| self.recs[i].ticket)
            .min();
        if let Some(t) = earliest {
            for &i in rel {
                ensure!(
                    self,
                    self.recs[i].ticket < t,
                    "rule 2: ticket {} released while ticket {t}, back since joining, waits",
                    self.recs[i].ticket
                );
            }
        }
        Ok(())
    }

    pub(super) fn tickets(&self, recs: &[usize]) -> Vec<u64> {
        recs.iter().map(|&i| self.recs[i].ticket).collect()
    }
}
