//! A room's sessions: a dense table indexed by id. The table is what a snapshot copies under the
//! room lock, in one memcpy, however many visitors wait.

use std::collections::HashMap;

use super::state::{Session, SessionId};

#[derive(Debug, Default)]
pub struct Sessions {
    /// id -> place in `table`.
    index: HashMap<SessionId, u32>,
    table: Vec<(SessionId, Session)>,
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn reserve(&mut self, n: usize) {
        self.index.reserve(n);
        self.table.reserve(n);
    }

    pub fn contains_key(&self, id: &SessionId) -> bool {
        self.index.contains_key(id)
    }

    pub fn get(&self, id: &SessionId) -> Option<&Session> {
        let i = *self.index.get(id)?;
        self.table.get(i as usize).map(|(_, s)| s)
    }

    pub fn get_mut(&mut self, id: &SessionId) -> Option<&mut Session> {
        let i = *self.index.get(id)?;
        self.table.get_mut(i as usize).map(|(_, s)| s)
    }

    /// Adds or replaces `id`'s session; returns the one it replaced.
    pub fn insert(&mut self, id: SessionId, session: Session) -> Option<Session> {
        if let Some(s) = self.get_mut(&id) {
            return Some(std::mem::replace(s, session));
        }
        // More than four billion sessions in one room is out of reach of any one machine.
        let at = u32::try_from(self.table.len()).unwrap_or(u32::MAX);
        self.index.insert(id, at);
        self.table.push((id, session));
        None
    }

    /// Takes `id`'s session out (the last row moves into its place).
    pub fn remove(&mut self, id: &SessionId) -> Option<Session> {
        let i = self.index.remove(id)? as usize;
        let (_, s) = self.table.swap_remove(i);
        if let Some((moved, _)) = self.table.get(i) {
            self.index.insert(*moved, i as u32);
        }
        Some(s)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SessionId, &Session)> + '_ {
        self.table.iter().map(|(id, s)| (id, s))
    }

    pub fn values(&self) -> impl Iterator<Item = &Session> + '_ {
        self.table.iter().map(|(_, s)| s)
    }

    /// Every session as one slice, for a snapshot's copy.
    pub fn table(&self) -> &[(SessionId, Session)] {
        &self.table
    }
}

/// `sessions[&id]`, for tests: panics on an unknown id like a map does.
#[cfg(test)]
impl std::ops::Index<&SessionId> for Sessions {
    type Output = Session;

    fn index(&self, id: &SessionId) -> &Session {
        self.get(id).expect("no such session")
    }
}

impl<'a> IntoIterator for &'a Sessions {
    type Item = (&'a SessionId, &'a Session);
    type IntoIter = Box<dyn Iterator<Item = Self::Item> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::SessionState;

    fn session(ticket: u64) -> Session {
        Session {
            ticket,
            seen_ms: 0,
            since_ms: 0,
            released_before: 0,
            next_poll_ms: 0,
            due_ms: 0,
            state: SessionState::Queued,
            returned: false,
            no_showed: false,
            wait_shown_s: 0,
            slowdowns_seen: 0,
        }
    }

    #[test]
    fn removal_keeps_every_other_session_reachable() {
        let mut s = Sessions::default();
        let ids: Vec<SessionId> = (1..=100).map(SessionId::from_u128).collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(s.insert(*id, session(i as u64)).is_none());
        }
        for id in ids.iter().step_by(3) {
            assert!(s.remove(id).is_some());
            assert!(s.remove(id).is_none());
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(
                s.get(id).map(|x| x.ticket),
                (i % 3 != 0).then_some(i as u64)
            );
        }
        assert_eq!(s.len(), 66);
        assert_eq!(s.insert(ids[1], session(7)).map(|x| x.ticket), Some(1));
        assert_eq!(s.get(&ids[1]).map(|x| x.ticket), Some(7));
        assert_eq!(s.iter().count(), 66);
    }
}
