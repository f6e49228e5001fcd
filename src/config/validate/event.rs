//! A room's `[[room.event]]` entries and `outside_events`: times in RFC 3339 with an offset, in
//! order (`prequeue_from` <= `starts_at` < `ends_at`), unique names, never overlapping.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::file::{EventFile, RoomFile, When};
use super::super::locate::Seg;
use super::super::{Event, OutsideEvents};
use super::Validator;
use super::room::Template;
use crate::pages::{self, Pages};

impl Validator<'_> {
    /// The room's events in time order, and what it does outside them.
    pub(super) fn events(
        &mut self,
        i: usize,
        room: &str,
        r: &RoomFile,
        pages: &mut Pages,
    ) -> (Vec<Event>, OutsideEvents) {
        let outside = match r.outside_events.as_deref() {
            None | Some("queue") => OutsideEvents::Queue,
            Some("open") => OutsideEvents::Open,
            Some("closed") => OutsideEvents::Closed,
            Some(other) => {
                self.error(
                    &super::room_key(i, "outside_events"),
                    format!("{other:?} is not one of \"queue\", \"open\", \"closed\""),
                );
                OutsideEvents::Queue
            }
        };
        let mut events: Vec<(usize, Event)> = Vec::new();
        for (j, e) in r.event.iter().enumerate() {
            let at = event_path(i, j);
            if let Some(ev) = self.event(&at, room, e, pages) {
                if let Some((k, _)) = events.iter().find(|(_, o)| o.name == ev.name) {
                    self.error(
                        &key(&at, "name"),
                        format!("{:?} is already the name of event {k}", ev.name),
                    );
                }
                events.push((j, ev));
            }
        }
        events.sort_by_key(|(_, e)| e.prequeue_from_ms);
        for pair in events.windows(2) {
            let ((_, a), (j, b)) = (&pair[0], &pair[1]);
            if b.prequeue_from_ms < a.ends_at_ms {
                self.error(
                    &key(&event_path(i, *j), "prequeue_from"),
                    format!(
                        "event {:?} (pre-queue included) overlaps event {:?}, which ends at {}",
                        b.name,
                        a.name,
                        crate::pages::rfc3339_unix(a.ends_at_ms)
                    ),
                );
            }
        }
        (events.into_iter().map(|(_, e)| e).collect(), outside)
    }

    fn event(&mut self, at: &[Seg], room: &str, e: &EventFile, pages: &mut Pages) -> Option<Event> {
        let errors_before = self.errors.len();
        let name = self.event_name(at, e.name.as_deref());
        let starts_at = self.moment(at, "starts_at", e.starts_at.as_ref(), true);
        let ends_at = self.moment(at, "ends_at", e.ends_at.as_ref(), true);
        let prequeue_from = self
            .moment(at, "prequeue_from", e.prequeue_from.as_ref(), false)
            .or(starts_at);
        if let (Some(p), Some(s)) = (prequeue_from, starts_at)
            && p > s
        {
            self.error(
                &key(at, "prequeue_from"),
                "must be at or before `starts_at`",
            );
        }
        if let (Some(s), Some(end)) = (starts_at, ends_at)
            && end <= s
        {
            self.error(&key(at, "ends_at"), "must be after `starts_at`");
        }
        let active_users = self.at_least_one_at(&key(at, "active_users"), e.active_users);
        let admit_per_minute =
            self.at_least_one_at(&key(at, "admit_per_minute"), e.admit_per_minute);
        let policy = e
            .queue
            .as_deref()
            .map(|q| self.policy_at(&key(at, "queue"), Some(q)));
        let page = e.page.as_deref().map(|p| {
            let t = Template {
                key: "page",
                path: Some(p),
                builtin: pages::BUILTIN_WAITING,
            };
            let registered = format!("room/{room}/event/{name}/page.html");
            self.template_at(&key(at, "page"), room, (registered, t), pages)
        });
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Event {
            name,
            prequeue_from_ms: prequeue_from?,
            starts_at_ms: starts_at?,
            ends_at_ms: ends_at?,
            active_users,
            admit_per_minute,
            policy,
            page,
            message: e.message.clone(),
            shuffle: e.shuffle_at_start.unwrap_or(true),
        })
    }

    /// `name`: required, 1 to 64 of a-z, 0-9, - and _ (it is a path segment of the admin API).
    fn event_name(&mut self, at: &[Seg], name: Option<&str>) -> String {
        let Some(name) = name else {
            self.error(at, "missing key `name`");
            return String::new();
        };
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            self.error(&key(at, "name"), "use 1 to 64 of a-z, 0-9, - and _");
        }
        name.to_string()
    }

    /// A time key: RFC 3339 with an offset, as unix milliseconds.
    fn moment(&mut self, at: &[Seg], k: &str, when: Option<&When>, required: bool) -> Option<u64> {
        let Some(when) = when else {
            if required {
                self.error(at, format!("missing key `{k}`"));
            }
            return None;
        };
        let text = when.text();
        match parse_moment(&text) {
            Some(ms) => Some(ms),
            None => {
                self.error(
                    &key(at, k),
                    format!(
                        "{text:?} is not a time with an offset; write e.g. \"2026-12-24T18:00:00+01:00\""
                    ),
                );
                None
            }
        }
    }
}

/// Unix milliseconds of an RFC 3339 time with an offset (a time after 1970).
fn parse_moment(text: &str) -> Option<u64> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn event_path(i: usize, j: usize) -> Vec<Seg> {
    vec![
        Seg::Key("room".into()),
        Seg::Index(i),
        Seg::Key("event".into()),
        Seg::Index(j),
    ]
}

fn key(at: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = at.to_vec();
    p.push(Seg::Key(k.into()));
    p
}
