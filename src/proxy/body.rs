//! The request body on its way to the origin: streamed, never buffered whole, but capped at
//! `max_body` and cut off when the client stops sending for `body_timeout`. Its first frame is
//! read before the origin is contacted, so a body that is malformed from the start (a bad chunk
//! size) is refused without the origin seeing anything.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

use super::{Body, BoxError};
use crate::error::GatewayError;

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than max_body")]
    TooLarge,
    #[error("no request body data for body_timeout")]
    Idle,
    #[error("malformed request body: {0}")]
    Malformed(hyper::Error),
}

impl BodyError {
    /// The gateway error a client should get for this.
    pub fn to_gateway(&self) -> GatewayError {
        match self {
            BodyError::TooLarge => GatewayError::BodyTooLarge,
            BodyError::Idle => GatewayError::BodyTimeout,
            BodyError::Malformed(_) => GatewayError::BadRequest("malformed body"),
        }
    }

    /// The body error somewhere in `e`'s sources, if the failure was the client's body.
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(b) = err.downcast_ref::<BodyError>() {
                return Some(b);
            }
            cur = err.source();
        }
        None
    }
}

/// A body with nothing in it.
pub(super) fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// When the request body last moved: the origin's response time counts from there, so a long
/// upload that keeps moving is never taken for a slow origin. A request without a body (most
/// of them) needs no shared clock: its time is fixed.
#[derive(Clone)]
pub(super) enum Progress {
    Fixed(Instant),
    Moving(Arc<Moving>),
}

/// A streaming body's clock, and whether it is the client that keeps it waiting.
pub(super) struct Moving {
    last: Mutex<Instant>,
    /// The body was asked for its next piece and the client has not sent it.
    waiting_on_client: AtomicBool,
}

impl Progress {
    fn touch(&self) {
        if let Progress::Moving(m) = self {
            *m.last.lock() = Instant::now();
            m.waiting_on_client.store(false, Ordering::Relaxed);
        }
    }

    fn client_stalls(&self) {
        if let Progress::Moving(m) = self {
            m.waiting_on_client.store(true, Ordering::Relaxed);
        }
    }

    pub(super) fn last(&self) -> Instant {
        match self {
            Progress::Fixed(at) => *at,
            Progress::Moving(m) => *m.last.lock(),
        }
    }

    /// Whether the request is held up by its own body: a stalled body is the client's fault
    /// (408 after `body_timeout`), never the origin's, whatever the two timeouts are.
    pub(super) fn waiting_on_client(&self) -> bool {
        match self {
            Progress::Fixed(_) => false,
            Progress::Moving(m) => m.waiting_on_client.load(Ordering::Relaxed),
        }
    }
}

/// A request body with its first frame already read.
pub(super) struct Capped {
    first: Option<Frame<Bytes>>,
    inner: Incoming,
    left: u64,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    progress: Progress,
}

/// Reads the first frame of `body` (waiting at most `idle`), then streams the rest under the
/// same limits. An empty body costs nothing.
pub(super) async fn prepare(
    body: Incoming,
    max: u64,
    idle: Duration,
) -> Result<(Body, Progress), GatewayError> {
    if body.is_end_stream() {
        return Ok((empty(), Progress::Fixed(Instant::now())));
    }
    let progress = Progress::Moving(Arc::new(Moving {
        last: Mutex::new(Instant::now()),
        waiting_on_client: AtomicBool::new(false),
    }));
    let mut capped = Capped {
        first: None,
        inner: body,
        left: max,
        idle,
        timer: Box::pin(tokio::time::sleep(idle)),
        progress: progress.clone(),
    };
    match std::future::poll_fn(|cx| Pin::new(&mut capped).poll_frame(cx)).await {
        None => Ok((empty(), progress)),
        Some(Err(e)) => Err(BodyError::find(e.as_ref()).map_or(
            GatewayError::BadRequest("malformed body"),
            BodyError::to_gateway,
        )),
        Some(Ok(frame)) => {
            capped.first = Some(frame);
            Ok((capped.boxed(), progress))
        }
    }
}

impl HttpBody for Capped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => {
                self.progress.client_stalls();
                ready!(self.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyError::Idle.into())))
            }
            Poll::Ready(None) => {
                self.progress.touch();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Malformed(e).into()))),
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                if len > self.left {
                    return Poll::Ready(Some(Err(BodyError::TooLarge.into())));
                }
                self.left -= len;
                self.progress.touch();
                let next = Instant::now() + self.idle;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut h = self.inner.size_hint();
        if let Some(n) = self
            .first
            .as_ref()
            .and_then(|f| f.data_ref())
            .map(|d| d.len() as u64)
        {
            if let Some(u) = h.upper() {
                h.set_upper(u + n);
            }
            h.set_lower(h.lower() + n);
        }
        h
    }
}
