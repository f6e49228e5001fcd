//! The join challenge at the gateway (`join_challenge = "pow"`): a visitor without a valid token
//! gets a challenge instead of a place (the page, the JSON of an app or a script, the status
//! answer), and a place only through `POST /__anteroom/join` with a solution. Everything else
//! (visitors with a token, bypass paths, disabled and closed rooms) goes as it does without.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::{Ask, Gateway, answer, endpoints, respond};
use crate::error::GatewayError;
use crate::metrics as m;
use crate::pages::StatusJson;
use crate::pow::{self, Binding, Challenge, JoinChallenge, Refusal};
use crate::proxy::Body;
use crate::room::{Decision, Mode, Prefix, Via, View, ViewState, Visitor};
use crate::store::Store;

/// When a visitor with a challenge is told to ask again (it may solve and join at once).
const CHALLENGE_RETRY_SECONDS: u64 = 2;

/// The difficulty of the challenge a new visitor of this room must solve, if it must: a
/// `pow` room that takes visitors (a closed room answers closed, as it does without).
pub(super) fn required(ask: &Ask<'_>) -> Option<u8> {
    match ask.rc.join_challenge {
        JoinChallenge::Pow { difficulty } if ask.rc.settings.mode == Mode::Queue => {
            Some(difficulty)
        }
        _ => None,
    }
}

impl Gateway {
    /// A fresh challenge for this request's room and client prefix, counted.
    pub(super) fn challenge(
        &self,
        ask: &Ask<'_>,
        headers: &HeaderMap,
        difficulty: u8,
    ) -> Challenge {
        ask.room.figures.count_challenge();
        self.challenges
            .issue(binding(ask, headers), difficulty, SystemTime::now())
    }

    /// The view of a visitor who has no place yet: the line as it stands (nothing is created),
    /// with the wait a join now would start with.
    fn no_place(&self, ask: &Ask<'_>) -> View {
        let reading = self.store.reading(ask.room, &ask.rc.settings);
        View {
            estimated_wait_seconds: reading.telemetry.wait_at_back_seconds,
            ..View::without_place(ViewState::Queued, reading.waiting, CHALLENGE_RETRY_SECONDS)
        }
    }

    /// A page or a request of the site from a new visitor: the waiting answer with no place and
    /// the challenge (the page solves it in a worker; an app reads it from the JSON).
    pub(super) fn challenged<B>(
        &self,
        ask: &Ask<'_>,
        req: &Request<B>,
        difficulty: u8,
    ) -> Result<Response<Body>, GatewayError> {
        let challenge = self.challenge(ask, req.headers(), difficulty);
        answer::waiting(ask, req, &self.no_place(ask), None, Some(&challenge))
    }

    /// The status endpoint for a new visitor: no place yet, and the challenge to get one.
    pub(super) fn challenge_status(
        &self,
        ask: &Ask<'_>,
        headers: &HeaderMap,
        difficulty: u8,
    ) -> Response<Body> {
        let challenge = self.challenge(ask, headers, difficulty);
        let view = self.no_place(ask);
        let rc = &ask.rc;
        let body = StatusJson::new(&rc.name, &view, rc.message.as_deref(), None)
            .with_challenge(Some(&challenge));
        let mut resp = respond::json(StatusCode::OK, &body);
        respond::retry_after(&mut resp, view.poll_after_seconds);
        resp
    }

    /// `POST /__anteroom/join` in a room with a join challenge. A token of a session the room
    /// knows gets its standing, as a join without a challenge; any other visitor (no token, or
    /// one whose session is gone: a token outlives its place, and must not buy a new one
    /// without a solution) joins only with a solved challenge.
    pub(super) async fn join_challenged(
        &self,
        ask: &Ask<'_>,
        req: Request<Incoming>,
        visitor: Option<Visitor>,
        difficulty: u8,
    ) -> Response<Body> {
        if visitor.is_some() {
            // The token as sent (it named a session): answered back as it is.
            let sent = super::request::sent_token(&ask.rc, req.headers(), ask.peer.secure);
            let sent = sent.map(str::to_string);
            // The standing, as the status endpoint finds it (recovery included): a known session
            // is answered here, and nothing new is created.
            match self.decide(ask, req.headers(), visitor, Via::Status).await {
                Decision::TooSoon { wait_ms } => return answer::too_fast(&ask.rc, wait_ms),
                Decision::Standing { view: Some(view) } => {
                    return endpoints::status_json(ask, &view, sent.as_deref());
                }
                Decision::Closed => return answer::closed_json(&ask.rc),
                Decision::Unreachable { view } => return endpoints::unreachable_json(ask, &view),
                _ => {}
            }
        }
        self.join_solved(ask, req, difficulty).await
    }

    /// A join that must carry a solution: the answer is read and checked; a solved challenge
    /// joins exactly as a join does without one, anything else is refused with its reason and a
    /// new challenge.
    async fn join_solved(
        &self,
        ask: &Ask<'_>,
        req: Request<Incoming>,
        difficulty: u8,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let timeout = ask.config.limits.body_timeout;
        let checked = match read_answer(&parts.headers, body, timeout).await {
            Ok(answer) => {
                let to = binding(ask, &parts.headers);
                self.challenges.check(to, &answer, SystemTime::now())
            }
            Err(refusal) => Err(refusal),
        };
        // Taken by this instance: with a shared store, taken across all of them too.
        let checked = match checked {
            Ok(s) if !self.store.take_nonce(ask.room, s.id, s.expires).await => {
                Err(Refusal::Reused)
            }
            other => other.map(|_| ()),
        };
        let room = || ask.rc.name.clone();
        match checked {
            Ok(()) => {
                metrics::counter!(m::POW_SOLVED, "room" => room()).increment(1);
                self.join(ask, &parts.headers, None, None).await
            }
            Err(refusal) => {
                ask.room.figures.count_refusal(refusal);
                let challenge = self.challenge(ask, &parts.headers, difficulty);
                refused(ask, refusal, &challenge)
            }
        }
    }
}

/// What a challenge of this request is bound to: its room and its client's address prefix.
fn binding(ask: &Ask<'_>, headers: &HeaderMap) -> Binding {
    Binding {
        room_id: ask.rc.id,
        prefix: Prefix::of(ask.client_ip(headers)),
    }
}

/// Reads a join's body (at most `pow::MAX_ANSWER_BYTES`, within `timeout`). A body must say it
/// is JSON: a form of another site cannot post one without the browser asking first (CORS).
async fn read_answer(
    headers: &HeaderMap,
    body: Incoming,
    timeout: Duration,
) -> Result<pow::Answer, Refusal> {
    // A join that brings nothing (what a bot that does not solve sends): no read, no timer.
    if http_body::Body::is_end_stream(&body) {
        return Err(Refusal::Missing);
    }
    let read = tokio::time::timeout(timeout, Limited::new(body, pow::MAX_ANSWER_BYTES).collect());
    let bytes = match read.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => return Err(Refusal::Malformed),
    };
    let answer = pow::parse_answer(&bytes)?;
    if answer == pow::Answer::default() {
        return Err(Refusal::Missing);
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(answer)
    } else {
        Err(Refusal::Malformed)
    }
}

/// A refused answer: 400 (malformed), 403 (missing, wrong, stale, reused, another room's or
/// client's) or 503 (the replay filter is full), with the reason and a new challenge.
fn refused(ask: &Ask<'_>, refusal: Refusal, challenge: &Challenge) -> Response<Body> {
    /// The refusal as sent: written straight from borrowed fields (a bot that does not solve
    /// gets this on every try, so it costs no map of values).
    #[derive(serde::Serialize)]
    struct Refused<'a> {
        room: &'a str,
        state: &'static str,
        position: Option<u64>,
        token: Option<&'a str>,
        error: &'static str,
        reason: &'static str,
        challenge: &'a Challenge,
    }
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::FORBIDDEN);
    let body = Refused {
        room: &ask.rc.name,
        state: "queued",
        position: None,
        token: None,
        error: refusal.message(),
        reason: refusal.reason(),
        challenge,
    };
    let mut resp = respond::json(status, &body);
    respond::retry_after(&mut resp, CHALLENGE_RETRY_SECONDS);
    resp
}
