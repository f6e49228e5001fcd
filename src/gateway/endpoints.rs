//! The reserved endpoints under `/__anteroom/`: status, join, leave. They never reach the
//! origin.

use std::net::IpAddr;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{Ask, Gateway, respond};
use crate::error::GatewayError;
use crate::metrics as m;
use crate::pages::{RESERVED_PREFIX, StatusJson};
use crate::proxy::Body;
use crate::room::{self, Decision, View, ViewState, Visitor};

/// How long an expired visitor's app is told to wait before joining again (it may join at once).
const EXPIRED_RETRY_SECONDS: u64 = 2;

impl Gateway {
    pub(super) fn endpoint(
        &self,
        ask: &Ask<'_>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, GatewayError> {
        let what = &req.uri().path()[RESERVED_PREFIX.len()..];
        let method = req.method().clone();
        let (visitor, sent) = self.visitor(&ask.rc, req.headers(), ask.peer.secure);
        match (what, method) {
            ("status", Method::GET | Method::HEAD) => Ok(self.status(ask, visitor, sent)),
            ("join", Method::POST) => {
                let client = ask.client_ip(req.headers());
                Ok(self.join(ask, visitor, sent, client))
            }
            ("leave", Method::POST) => {
                // A plain form post (no script) gets a page, apps and scripts get JSON.
                let accept = req
                    .headers()
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let page = crate::pages::quality(accept, "text", "html")
                    > crate::pages::quality(accept, "application", "json");
                Ok(self.leave(ask, visitor, page))
            }
            ("status" | "join" | "leave", _) => Ok(respond::json(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method not allowed"}),
            )),
            _ => Ok(respond::json(
                StatusCode::NOT_FOUND,
                &json!({"error": "not found"}),
            )),
        }
    }

    fn status(&self, ask: &Ask<'_>, v: Option<Visitor>, sent: Option<String>) -> Response<Body> {
        let (rc, room) = (&ask.rc, &ask.room);
        let now = self.now_ms();
        let mut too_soon = None;
        let view = v.and_then(|v| {
            let mut st = room.state.lock();
            too_soon = room::poll_too_soon(&mut st, &v.id, now);
            if too_soon.is_some() {
                return None;
            }
            // A poll is how a waiting visitor usually comes back after a restart.
            room::recover(&rc.settings, &mut st, v, self.now_ms(), false);
            room::status(
                &rc.settings,
                &mut st,
                &v.id,
                self.now_ms(),
                &mut rand::rng(),
            )
        });
        if let Some(wait_ms) = too_soon {
            return super::answer::too_fast(rc, wait_ms);
        }
        match view {
            Some(view) => {
                let body = StatusJson::new(&rc.name, &view, rc.message.as_deref(), sent.as_deref());
                let mut resp = respond::json(StatusCode::OK, &body);
                respond::retry_after(&mut resp, view.poll_after_seconds);
                resp
            }
            // A closed room takes nobody: "join again" would send an app round in a loop.
            None if rc.settings.mode == room::Mode::Reject => super::answer::closed_json(rc),
            // A valid token whose session is gone: the place expired. Said once, with the stale
            // cookie dropped, so that joining again is one request away.
            None if v.is_some() => {
                metrics::counter!(m::PLACES_EXPIRED, "room" => rc.name.clone()).increment(1);
                let waiting = room.state.lock().waiting();
                let view = View::without_place(ViewState::Expired, waiting, EXPIRED_RETRY_SECONDS);
                let body = StatusJson::new(&rc.name, &view, rc.message.as_deref(), None);
                let mut resp = respond::json(StatusCode::OK, &body);
                ask.clear_cookie(&mut resp);
                resp
            }
            None => respond::json(
                StatusCode::NOT_FOUND,
                &json!({"room": rc.name, "state": null, "error": "unknown session: join again"}),
            ),
        }
    }

    /// A native app joins (or, with a token it already has, learns its standing).
    fn join(
        &self,
        ask: &Ask<'_>,
        v: Option<Visitor>,
        sent: Option<String>,
        client: IpAddr,
    ) -> Response<Body> {
        let rc = &ask.rc;
        let (token, joined, view) = match self.joining(ask, v, client) {
            Joining::TooSoon(wait_ms) => return super::answer::too_fast(rc, wait_ms),
            Joining::Known(view) => (sent, false, view),
            Joining::OverBudget(view) => {
                metrics::counter!(m::JOINS_OVER_BUDGET, "room" => rc.name.clone()).increment(1);
                (None, false, Some(view))
            }
            Joining::Decided(decision, view) => match decision {
                Decision::Admit { visitor, how, .. } => {
                    if let Some(how) = how {
                        metrics::counter!(m::ADMITTED, "room" => rc.name.clone(), "how" => how.label())
                            .increment(1);
                    }
                    (Some(self.token(rc, visitor)), true, view)
                }
                Decision::Wait { visitor, .. } => (Some(self.token(rc, visitor)), true, view),
                Decision::Closed | Decision::Expired { .. } => (None, false, view),
            },
        };
        let Some(view) = view else {
            return super::answer::closed_json(rc);
        };
        let body = StatusJson::new(&rc.name, &view, rc.message.as_deref(), token.as_deref());
        let mut resp = respond::json(StatusCode::OK, &body);
        respond::retry_after(&mut resp, view.poll_after_seconds);
        if let (true, Some(t)) = (joined, &token) {
            ask.set_cookie(&mut resp, t);
        }
        resp
    }

    /// What joining does under the room's lock: the poll floor for a queued session's token,
    /// recovery, then the standing of a known session, the join budget, or a new decision.
    fn joining(&self, ask: &Ask<'_>, v: Option<Visitor>, client: IpAddr) -> Joining {
        let settings = &ask.rc.settings;
        let now = self.now_ms();
        let mut rng = rand::rng();
        let mut st = ask.room.state.lock();
        // Joining again with the token of a queued session is a poll: the same floor.
        if let Some(wait_ms) = v.and_then(|v| room::poll_too_soon(&mut st, &v.id, now)) {
            return Joining::TooSoon(wait_ms);
        }
        if let Some(v) = v {
            room::recover(settings, &mut st, v, now, false);
        }
        if let Some(v) = v.filter(|v| st.sessions.contains_key(&v.id)) {
            return Joining::Known(room::status(settings, &mut st, &v.id, now, &mut rng));
        }
        if let Some(view) = super::over_budget(ask, &st, v, client, now) {
            return Joining::OverBudget(view);
        }
        let d = room::decide(settings, &mut st, None, now, &mut rng);
        let view = match &d {
            Decision::Admit { visitor, .. } => {
                room::status(settings, &mut st, &visitor.id, now, &mut rng)
            }
            Decision::Wait { view, .. } | Decision::Expired { view } => Some(view.clone()),
            Decision::Closed => None,
        };
        Joining::Decided(d, view)
    }

    /// A visitor gives up its place (or leaves after being let in). `page`: a plain form post,
    /// answered with a page rather than JSON.
    fn leave(&self, ask: &Ask<'_>, v: Option<Visitor>, page: bool) -> Response<Body> {
        let rc = &ask.rc;
        let ended = v.and_then(|v| {
            let mut st = ask.room.state.lock();
            let was_admitted = st.sessions.get(&v.id).is_some_and(|s| {
                matches!(
                    s.state,
                    room::SessionState::Released | room::SessionState::Active
                )
            });
            room::leave(&mut st, &v.id).map(|r| (r, was_admitted))
        });
        if let Some((reason, true)) = ended {
            metrics::counter!(m::SESSIONS_ENDED, "room" => rc.name.clone(), "reason" => reason.label())
                .increment(1);
        }
        let mut resp = if page {
            respond::html(StatusCode::OK, LEFT_PAGE)
        } else {
            respond::json(
                StatusCode::OK,
                &json!({"room": rc.name, "left": ended.is_some()}),
            )
        };
        ask.clear_cookie(&mut resp);
        resp
    }
}

/// What joining came to under the room's lock, before anything is counted or sent.
enum Joining {
    /// A queued session's token back before its poll floor: how long until it is answered.
    TooSoon(u64),
    /// A session the room knows: its standing (`None`: the room takes nobody).
    Known(Option<View>),
    /// A new session past its prefix's join budget: the view of a visitor with no place.
    OverBudget(View),
    /// A new session: the room's decision and the view it gives.
    Decided(Decision, Option<View>),
}

/// What a browser without script sees after leaving the line.
const LEFT_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>You left the line</title>\
<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}</style>\
</head><body>\
<main><h1>You left the line</h1><p>Your place has been given up. \
<a href=\"/\">Join the line again</a> (you will start at the back).</p></main></body></html>";
