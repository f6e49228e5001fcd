//! The model's side of joins, polls, requests and operator changes.

use super::*;

impl Model {
    pub(super) fn new(case: &Case, seed: u64) -> Self {
        let now = 1_000_000;
        Model {
            st: RoomState::for_settings(&case.settings, now),
            budget: Budget::new(case.settings.admit_per_minute, now),
            line_policy: case.settings.policy,
            s: case.settings.clone(),
            configured: case.settings.clone(),
            switching: case.switching,
            rng: StdRng::seed_from_u64(seed),
            now,
            recs: Vec::new(),
            last_ticket: 0,
            over_cap: false,
            last_admitted: 0,
            seen: Seen::default(),
        }
    }

    /// Fifo order rules apply to the whole run: a fifo room whose policy never changes.
    pub(super) fn fifo_only(&self) -> bool {
        !self.switching && self.s.policy == Policy::Fifo
    }

    /// One step, then the comparison of the engine with the model.
    pub(super) fn apply(&mut self, op: &Op) -> Step {
        let who = |i: &Index| (!self.recs.is_empty()).then(|| i.index(self.recs.len()));
        match op {
            Op::Join { stance, poll_now } => {
                if let Some(i) = self.join(*stance)?
                    && *poll_now
                {
                    self.poll(i, false)?;
                }
            }
            Op::Poll { who: w, floor } => {
                if let Some(i) = who(w) {
                    self.poll(i, *floor)?;
                }
            }
            Op::Request(w) => {
                if let Some(i) = who(w) {
                    self.request(i)?;
                }
            }
            Op::Behave(w, s) => {
                if let Some(i) = who(w) {
                    self.recs[i].stance = *s;
                }
            }
            Op::Leave(w) | Op::Revoke(w) => {
                if let Some(i) = who(w) {
                    self.end(i, matches!(op, Op::Leave(_)))?;
                }
            }
            Op::Tick(dt) => {
                self.now += dt;
                self.act()?;
                self.tick()?;
            }
            Op::Wait(dt) => self.now += dt,
            _ => self.operate(op),
        }
        self.compare()
    }

    /// The operator changes a setting.
    pub(super) fn operate(&mut self, op: &Op) {
        let before = self.s.active_users;
        match op {
            Op::Pause(p) => self.s.paused = *p,
            Op::Reject(r) => self.s.mode = if *r { Mode::Reject } else { Mode::Queue },
            // A room needs a cap of some kind.
            Op::Cap(cap) if cap.is_some() || self.s.admit_per_minute.is_some() => {
                self.s.active_users = *cap;
            }
            Op::Rate(rate) if rate.is_some() || self.s.active_users.is_some() => {
                self.s.admit_per_minute = *rate;
            }
            Op::MaxSession(m) => self.s.max_session = m.map(Duration::from_millis),
            Op::Ttl(t) => self.s.session_ttl = Duration::from_millis(*t),
            Op::ReleaseWindow(w) => self.s.release_window = Duration::from_millis(*w),
            // An operator's change is put into force at once, as the gateway does.
            Op::Policy(p) if self.switching => {
                self.s.policy = *p;
                crate::room::settle(&self.s, &mut self.st, self.now);
                self.line_policy = *p;
            }
            Op::Restore => {
                let c = &self.configured;
                self.s.active_users = c.active_users;
                self.s.admit_per_minute = c.admit_per_minute;
                self.s.max_session = c.max_session;
                self.s.session_ttl = c.session_ttl;
                self.s.release_window = c.release_window;
            }
            _ => {}
        }
        let admitted = self.admitted();
        if self.s.active_users != before && self.s.active_users.is_some_and(|c| admitted > c) {
            self.over_cap = true;
            self.seen.over_cap += 1;
        }
    }

    /// A visitor leaves (`leave`) or the origin revokes its session.
    pub(super) fn end(&mut self, i: usize, leaves: bool) -> Step {
        let id = self.recs[i].id;
        let alive = self.recs[i].alive();
        let (ended, why) = if leaves {
            (leave(&mut self.st, &id).map(|_| ()), Why::Left)
        } else {
            (revoke(&mut self.st, &id).map(|_| ()), Why::Revoked)
        };
        ensure!(
            self,
            ended.is_some() == alive,
            "ending ticket {} (model: {:?}) answered {ended:?}",
            self.recs[i].ticket,
            self.recs[i].state
        );
        if alive {
            self.recs[i].state = M::Gone(why);
        }
        Ok(())
    }

    /// Everyone acts as their stance says, at the current time.
    pub(super) fn act(&mut self) -> Step {
        for i in 0..self.recs.len() {
            let r = &self.recs[i];
            match (r.stance, r.state) {
                (_, M::Gone(_)) | (Stance::Away, _) => {}
                (Stance::Lurker, _) => self.poll(i, false)?,
                (Stance::Present | Stance::Idle, M::Queued { .. } | M::Missed) => {
                    self.poll(i, false)?
                }
                (Stance::Present | Stance::Idle, M::Released { .. }) => self.request(i)?,
                (Stance::Present, M::Active { .. }) => self.request(i)?,
                (Stance::Idle, M::Active { .. }) => {}
            }
        }
        Ok(())
    }

    pub(super) fn queued_state(&self) -> ViewState {
        if self.s.paused {
            ViewState::Paused
        } else {
            ViewState::Queued
        }
    }

    pub(super) fn admitted(&self) -> u32 {
        self.recs
            .iter()
            .filter(|r| matches!(r.state, M::Released { .. } | M::Active { .. }))
            .count() as u32
    }

    pub(super) fn waiting(&self) -> usize {
        self.recs.iter().filter(|r| r.waiting()).count()
    }

    /// Whether a new visitor is admitted at once: not paused, nobody waiting, a free slot and a
    /// token in the budget.
    pub(super) fn admits_at_once(&self) -> AtOnce {
        let slot = self.s.active_users.is_none_or(|c| self.admitted() < c);
        let base = !self.s.paused && self.waiting() == 0 && slot;
        let (lo, hi) = self.budget.whole(self.s.admit_per_minute);
        AtOnce {
            surely: base && lo >= 1,
            possibly: base && hi >= 1,
        }
    }

    /// A visitor without a token. Returns its record, if it got a session.
    pub(super) fn join(&mut self, stance: Stance) -> Result<Option<usize>, String> {
        let at_once = self.admits_at_once();
        let sessions = self.st.sessions.len();
        let d = decide(&self.s, &mut self.st, None, self.now, &mut self.rng);
        self.joined(&d, stance, at_once, sessions)
    }

    /// The answer to a visitor with no session: closed, admitted at once or in line.
    pub(super) fn joined(
        &mut self,
        d: &Decision,
        stance: Stance,
        at_once: AtOnce,
        sessions: usize,
    ) -> Result<Option<usize>, String> {
        if self.s.mode == Mode::Reject {
            ensure!(self, *d == Decision::Closed, "a closed room answered {d:?}");
            ensure!(
                self,
                self.st.sessions.len() == sessions,
                "a closed room created a session"
            );
            return Ok(None);
        }
        let (visitor, state) = self.new_session(d, at_once)?;
        ensure!(
            self,
            visitor.ticket > self.last_ticket,
            "ticket {} handed out after ticket {}",
            visitor.ticket,
            self.last_ticket
        );
        self.last_ticket = visitor.ticket;
        ensure!(
            self,
            !self.recs.iter().any(|r| r.id == visitor.id),
            "a session id was handed out twice"
        );
        self.recs.push(Rec {
            id: visitor.id,
            ticket: visitor.ticket,
            stance,
            state,
            seen: self.now,
            returned: false,
            no_showed: false,
        });
        let i = self.recs.len() - 1;
        if let Decision::Wait { view, .. } = d {
            self.check_view(i, view)?;
        }
        Ok(Some(i))
    }

    /// Rule 7 for a new session: admitted at once exactly when the model allows it.
    pub(super) fn new_session(
        &mut self,
        d: &Decision,
        at_once: AtOnce,
    ) -> Result<(Visitor, M), String> {
        match d {
            Decision::Admit {
                visitor,
                joined: true,
                how: Some(AdmitHow::Immediate),
                view: None,
            } => {
                ensure!(
                    self,
                    at_once.possibly,
                    "rule 7/5: admitted at once with {} waiting, paused {}, {} admitted of \
                     {:?}, budget {:?}",
                    self.waiting(),
                    self.s.paused,
                    self.admitted(),
                    self.s.active_users,
                    self.budget.whole(self.s.admit_per_minute)
                );
                self.budget.take(self.s.admit_per_minute, 1);
                self.seen.admitted_at_once += 1;
                let (since, last_request) = (self.now, self.now);
                Ok((
                    *visitor,
                    M::Active {
                        since,
                        last_request,
                    },
                ))
            }
            Decision::Wait {
                visitor,
                joined: true,
                duplicate: false,
                view,
            } => {
                ensure!(
                    self,
                    !at_once.surely,
                    "rule 7: a new visitor waits in an empty room with a free slot and budget"
                );
                ensure!(
                    self,
                    view.state == self.queued_state(),
                    "a new visitor in line is shown {:?}",
                    view.state
                );
                Ok((*visitor, M::Queued { front: false }))
            }
            other => Err(format!("at {} ms: a new visitor got {other:?}", self.now)),
        }
    }

    /// The visitor is there: what a poll or a request does to a waiting or missed visitor.
    pub(super) fn came_back(&mut self, i: usize) {
        let now = self.now;
        let r = &mut self.recs[i];
        r.seen = now;
        match r.state {
            M::Queued { .. } => r.returned = true,
            M::Missed => {
                r.returned = true;
                r.state = M::Queued { front: true };
                self.seen.back_to_front += 1;
            }
            _ => {}
        }
    }

    pub(super) fn poll(&mut self, i: usize, floor: bool) -> Step {
        let id = self.recs[i].id;
        if floor && let Some(wait) = poll_too_soon(&mut self.st, &id, self.now) {
            ensure!(
                self,
                self.recs[i].waiting() && wait > 0,
                "the poll floor held back a poll of ticket {} (model: {:?})",
                self.recs[i].ticket,
                self.recs[i].state
            );
            self.came_back(i);
            self.seen.floor_hits += 1;
            return Ok(());
        }
        let view = status(&self.s, &mut self.st, &id, self.now, &mut self.rng);
        let r = self.recs[i].clone();
        let (view, want) = match (view, r.state) {
            (None, M::Gone(_)) => return Ok(()),
            (Some(view), M::Queued { .. } | M::Missed) => (view, self.queued_state()),
            (Some(view), M::Released { .. }) => (view, ViewState::Released),
            (Some(view), M::Active { .. }) => (view, ViewState::Admitted),
            (view, _) => {
                return Err(format!(
                    "at {} ms: rule 1: a poll of ticket {} ({:?}, last seen {} ms ago, \
                     abandon_after {} ms) found {view:?}",
                    self.now,
                    r.ticket,
                    r.state,
                    self.now - r.seen,
                    ms(self.s.abandon_after)
                ));
            }
        };
        self.came_back(i);
        ensure!(
            self,
            view.state == want,
            "a poll of ticket {} ({:?}) was shown {:?}",
            r.ticket,
            r.state,
            view.state
        );
        self.check_view(i, &view)
    }

    /// A request with the visitor's token (rule 7).
    pub(super) fn request(&mut self, i: usize) -> Step {
        let r = self.recs[i].clone();
        let visitor = Visitor {
            id: r.id,
            ticket: r.ticket,
        };
        let at_once = self.admits_at_once();
        let sessions = self.st.sessions.len();
        let d = decide(
            &self.s,
            &mut self.st,
            Some(visitor),
            self.now,
            &mut self.rng,
        );
        match r.state {
            M::Gone(_) => self.request_gone(&r, &d, at_once, sessions),
            M::Queued { .. } | M::Missed => self.request_waiting(i, &d),
            M::Released { .. } | M::Active { .. } => self.request_admitted(i, &d),
        }
    }

    /// A token whose session is gone: told so, or (a free slot, nobody waiting) a new visitor.
    pub(super) fn request_gone(
        &mut self,
        r: &Rec,
        d: &Decision,
        at_once: AtOnce,
        sessions: usize,
    ) -> Step {
        let Decision::Expired { view } = d else {
            return self.joined(d, r.stance, at_once, sessions).map(|_| ());
        };
        ensure!(
            self,
            self.s.mode == Mode::Queue && !at_once.surely,
            "a lost place was told expired though a new visitor would be admitted"
        );
        ensure!(
            self,
            view.state == ViewState::Expired && view.position.is_none(),
            "an expired answer shows {view:?}"
        );
        ensure!(
            self,
            self.st.sessions.len() == sessions,
            "an expired answer created a session"
        );
        self.seen.expired_answers += 1;
        Ok(())
    }

    /// A waiting (or missed) visitor asks again: it waits, at its place.
    pub(super) fn request_waiting(&mut self, i: usize, d: &Decision) -> Step {
        let r = self.recs[i].clone();
        let Decision::Wait {
            visitor: v,
            joined: false,
            duplicate: true,
            view,
        } = d
        else {
            return Err(format!(
                "at {} ms: rule 7: a request of ticket {} ({:?}) got {d:?}",
                self.now, r.ticket, r.state
            ));
        };
        ensure!(
            self,
            v.id == r.id && v.ticket == r.ticket,
            "the answer names {v:?}"
        );
        self.came_back(i);
        ensure!(
            self,
            view.state == self.queued_state(),
            "a waiting visitor's request was shown {:?}",
            view.state
        );
        self.check_view(i, view)
    }

    /// A released visitor comes in; an admitted one browses on.
    pub(super) fn request_admitted(&mut self, i: usize, d: &Decision) -> Step {
        let r = self.recs[i].clone();
        let (since, how) = match r.state {
            M::Released { .. } => (self.now, Some(AdmitHow::Released)),
            M::Active { since, .. } => (since, None),
            _ => unreachable!("only released or admitted visitors"),
        };
        ensure!(
            self,
            matches!(d, Decision::Admit { joined: false, how: h, .. } if *h == how),
            "rule 7: ticket {} ({:?}) asked and got {d:?}",
            r.ticket,
            r.state
        );
        self.seen.came_in += u64::from(how.is_some());
        self.recs[i].state = M::Active {
            since,
            last_request: self.now,
        };
        self.recs[i].seen = self.now;
        Ok(())
    }
}
