//! The event stream, `GET /__anteroom/events`: a visitor's status JSON pushed as Server-Sent
//! Events. The first event is the status endpoint's body, at once; then the stream waits on its
//! room's pulse (bumped by the tick when the room's figures change), asks for the visitor's
//! standing and sends it when the position, estimate or state changed, at most once a second,
//! with a comment every `event_heartbeat` when nothing did. It ends once the visitor may come in
//! (released, admitted) or has no place (expired, closed), and at a graceful stop.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Ask, Gateway, respond};
use crate::config::RoomConfig;
use crate::metrics as m;
use crate::pages::StatusJson;
use crate::proxy::{Body, BoxError};
use crate::room::{Arrival, Decision, Via, View, ViewState, Visitor};
use crate::store::{Room, Store};

/// Events a stream sends at most this often.
const PACE: Duration = Duration::from_secs(1);
/// How long a client over the stream limit is told to wait (it polls meanwhile).
const FULL_RETRY_SECONDS: u64 = 5;

/// The open event streams of the gateway: their count (bounded by `max_event_streams`) and the
/// graceful stop that ends them.
pub(super) struct Streams {
    open: Arc<AtomicUsize>,
    closing: watch::Sender<bool>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            open: Arc::default(),
            closing: watch::Sender::new(false),
        }
    }
}

/// One open stream's place in the count, given back when its body is dropped (the stream ended
/// or the client went away).
struct Permit {
    open: Arc<AtomicUsize>,
    gauge: metrics::Gauge,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.gauge.decrement(1.0);
    }
}

impl Streams {
    /// A place for one more stream of room `room`, if fewer than `max` are open.
    fn take(&self, max: usize, room: &str) -> Option<Permit> {
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        let gauge = metrics::gauge!(m::EVENT_STREAMS, "room" => room.to_string());
        gauge.increment(1.0);
        Some(Permit {
            open: self.open.clone(),
            gauge,
        })
    }
}

/// What a stream compares to decide whether its visitor's standing changed.
#[derive(PartialEq, Clone, Copy)]
struct Shown {
    state: ViewState,
    position: Option<u64>,
    queue_depth: u64,
    estimated_wait_seconds: Option<u64>,
    next_draw_in_s: Option<u64>,
    message: u64,
}

impl Shown {
    fn of(view: &View, rc: &RoomConfig) -> Self {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        rc.message.hash(&mut h);
        Shown {
            state: view.state,
            position: view.position,
            queue_depth: view.queue_depth,
            estimated_wait_seconds: view.estimated_wait_seconds,
            next_draw_in_s: view.next_draw_in_ms.map(|ms| ms / 10_000),
            message: h.finish(),
        }
    }

    /// The visitor may come in, or has no place: the stream has said its last.
    fn last(&self) -> bool {
        matches!(
            self.state,
            ViewState::Released | ViewState::Admitted | ViewState::Expired | ViewState::Closed
        )
    }
}

/// One `status` event: the status JSON of `view`, as the status endpoint answers it.
fn event(rc: &RoomConfig, view: &View, token: Option<&str>) -> Bytes {
    let body = StatusJson::new(&rc.name, view, rc.message.as_deref(), token);
    let data = serde_json::to_string(&body).unwrap_or_default();
    Bytes::from(format!("event: status\ndata: {data}\n\n"))
}

impl Gateway {
    /// Ends every event stream (a graceful stop): each sends nothing more and closes, so the
    /// drain does not wait for them.
    pub fn close_streams(&self) {
        self.streams.closing.send_replace(true);
    }

    /// `GET /__anteroom/events`: the stream of the session the token names (cookie,
    /// `Anteroom-Token`, or `?token=` for an `EventSource` of another origin). Without a place
    /// to stream, the status endpoint's answer.
    pub(super) async fn events(
        &self,
        ask: &Ask<'_>,
        headers: &HeaderMap,
        v: Option<Visitor>,
        sent: Option<String>,
    ) -> Response<Body> {
        let rc = &ask.rc;
        let Some(permit) = self
            .streams
            .take(ask.config.limits.max_event_streams, &rc.name)
        else {
            let mut resp = respond::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "too many event streams: poll the status"}),
            );
            respond::retry_after(&mut resp, FULL_RETRY_SECONDS);
            return resp;
        };
        let (visitor, view) = match (v, self.decide(ask, headers, v, Via::Stream).await) {
            (Some(visitor), Decision::Standing { view: Some(view) }) => (visitor, view),
            (_, other) => return self.status_answer(ask, other, sent),
        };
        let first = event(rc, &view, sent.as_deref());
        let shown = Shown::of(&view, rc);
        let (tx, rx) = mpsc::channel(2);
        // The channel holds two events: the first always fits.
        let _ = tx.try_send(first);
        if !shown.last() {
            let stream = Stream {
                gw: self.me.clone(),
                room: ask.room.clone(),
                name: rc.name.clone(),
                visitor,
                token: sent,
                tx,
                shown,
                heartbeat: ask.config.limits.event_heartbeat,
            };
            tokio::spawn(stream.run(ask.room.pulse(), self.streams.closing.subscribe()));
        }
        stream_response(EventBody {
            rx,
            _permit: permit,
        })
    }

    /// The room `name` as the configuration in force has it, with the operator's overrides.
    fn room_in_force(&self, name: &str) -> Option<Arc<RoomConfig>> {
        let current = self.current.load();
        let (i, file) = current
            .config
            .rooms
            .iter()
            .enumerate()
            .find(|(_, r)| r.name == name)?;
        Some(current.rooms.get(i)?.effective(file))
    }
}

/// The streaming answer: `text/event-stream`, never cached or buffered by a proxy.
fn stream_response(body: EventBody) -> Response<Body> {
    let mut resp = Response::new(body.boxed());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// A stream's response body: what its task sends, until the task ends.
struct EventBody {
    rx: mpsc::Receiver<Bytes>,
    _permit: Permit,
}

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// What one wake of a stream did.
enum Step {
    /// Keep waiting; `true` if an event was sent.
    Go(bool),
    /// The stream has said its last (or cannot go on).
    End,
}

/// One open stream's task: it lives until its visitor may come in, the client goes, or the
/// gateway stops.
struct Stream {
    gw: Weak<Gateway>,
    room: Arc<Room>,
    name: String,
    visitor: Visitor,
    token: Option<String>,
    tx: mpsc::Sender<Bytes>,
    shown: Shown,
    heartbeat: Duration,
}

impl Stream {
    async fn run(mut self, mut pulse: watch::Receiver<u64>, mut closing: watch::Receiver<bool>) {
        let mut sent_at = Instant::now();
        let mut written_at = sent_at;
        loop {
            let beat = tokio::time::sleep_until(written_at + self.heartbeat);
            let woke = tokio::select! {
                _ = self.tx.closed() => return,
                _ = closing.wait_for(|c| *c) => return,
                changed = pulse.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    false
                }
                _ = beat => true,
            };
            // At most one event a second: a change within it is sent at its end.
            if !woke {
                tokio::select! {
                    _ = tokio::time::sleep_until(sent_at + PACE) => {}
                    _ = closing.wait_for(|c| *c) => return,
                }
            }
            match self.refresh().await {
                Step::End => return,
                Step::Go(true) => {
                    sent_at = Instant::now();
                    written_at = sent_at;
                }
                Step::Go(false) if woke => {
                    if self
                        .tx
                        .send(Bytes::from_static(b": heartbeat\n\n"))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    written_at = Instant::now();
                }
                Step::Go(false) => {}
            }
        }
    }

    /// Asks the room for the visitor's standing (presence, like a poll) and sends it if it
    /// changed.
    async fn refresh(&mut self) -> Step {
        let Some(gw) = self.gw.upgrade() else {
            return Step::End;
        };
        let Some(rc) = gw.room_in_force(&self.name) else {
            return Step::End;
        };
        let arrival = Arrival {
            visitor: Some(self.visitor),
            prefix: None,
            via: Via::Stream,
        };
        let view = match gw.store.arrive(&self.room, &rc.settings, arrival).await {
            Decision::Standing { view: Some(view) }
            | Decision::Unreachable { view }
            | Decision::Expired { view } => view,
            Decision::Closed => View::without_place(ViewState::Closed, 0, 0),
            _ => return Step::End,
        };
        drop(gw);
        let shown = Shown::of(&view, &rc);
        if shown == self.shown {
            return Step::Go(false);
        }
        self.shown = shown;
        let token = (view.state != ViewState::Expired)
            .then_some(self.token.as_deref())
            .flatten();
        if self.tx.send(event(&rc, &view, token)).await.is_err() || shown.last() {
            return Step::End;
        }
        Step::Go(true)
    }
}

/// The token in the request's query (`?token=`), for an `EventSource` that cannot send the
/// header (tokens are base64url: nothing to decode).
pub(super) fn query_token(uri: &http::Uri) -> Option<&str> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}
