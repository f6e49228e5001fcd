//! Watching a client connection's bytes:
//! - a client that stops reading is cut off: a write that makes no progress for
//!   `write_timeout` fails, the connection closes and its resources (and the origin's response
//!   stream) are released, as nginx's `send_timeout` does;
//! - a new connection must bring its first complete request head within `header_timeout` of
//!   being accepted, whether it sends a byte or not (hyper's own header timer starts at the
//!   first byte, so a silent socket would otherwise live until `idle_timeout`);
//! - a connection with no request in flight and no byte either way for `idle_timeout` is closed
//!   (an idle HTTP/2 connection, an idle upgraded WebSocket; an idle HTTP/1.1 keep-alive
//!   connection meets hyper's header timer, `header_timeout`, first).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests of one connection whose handler has not returned yet, and when the last one did.
#[derive(Clone)]
pub(super) struct InFlight(Arc<Shared>);

struct Shared {
    count: AtomicUsize,
    /// A request has reached the service: the connection's first head is complete.
    started: AtomicBool,
    last_done: Mutex<Instant>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight(Arc::new(Shared {
            count: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            last_done: Mutex::new(Instant::now()),
        }))
    }
}

impl InFlight {
    /// Counts a request until the guard drops (also when its handler is cancelled).
    pub(super) fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::Relaxed);
        self.0.started.store(true, Ordering::Relaxed);
        InFlightGuard(self.0.clone())
    }

    fn idle(&self) -> bool {
        self.0.count.load(Ordering::Acquire) == 0
    }

    fn started(&self) -> bool {
        self.0.started.load(Ordering::Relaxed)
    }

    fn last_done(&self) -> Instant {
        *self.0.last_done.lock()
    }
}

pub(super) struct InFlightGuard(Arc<Shared>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        // The answer is about to be written: the idle time starts now, not at the last byte.
        *self.0.last_done.lock() = Instant::now();
        self.0.count.fetch_sub(1, Ordering::Release);
    }
}

pub(super) struct Watchdog<T> {
    inner: T,
    limit: Duration,
    /// Armed while a write waits; disarmed by any progress.
    timer: Option<Pin<Box<Sleep>>>,
    idle_limit: Duration,
    /// When the first request head must be complete.
    head_deadline: Instant,
    idle_timer: Pin<Box<Sleep>>,
    last: Instant,
    in_flight: InFlight,
}

/// The limits a watched connection lives by.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub header: Duration,
    pub idle: Duration,
    pub write: Duration,
}

impl Deadlines {
    pub(super) fn of(limits: &crate::config::Limits) -> Self {
        Deadlines {
            header: limits.header_timeout,
            idle: limits.idle_timeout,
            write: limits.write_timeout,
        }
    }
}

impl<T> Watchdog<T> {
    pub(super) fn new(inner: T, limits: Deadlines, in_flight: InFlight) -> Self {
        let now = Instant::now();
        let head_deadline = now + limits.header;
        Watchdog {
            inner,
            limit: limits.write,
            timer: None,
            idle_limit: limits.idle,
            head_deadline,
            idle_timer: Box::pin(tokio::time::sleep_until(head_deadline)),
            last: now,
            in_flight,
        }
    }

    /// When the connection is to be closed if nothing happens: the first head's deadline, then
    /// `idle_timeout` after the last byte or the last answer.
    fn quiet_deadline(&self) -> Instant {
        if self.in_flight.started() {
            self.last.max(self.in_flight.last_done()) + self.idle_limit
        } else {
            self.head_deadline
        }
    }

    /// After a write returned `Pending`: fails once the wait has lasted `limit`.
    fn waited(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading (write_timeout)",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watchdog<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending if self.in_flight.idle() => {
                let deadline = self.quiet_deadline();
                // The timer is moved only when it fires before the real deadline (or would fire
                // after it): activity costs a timestamp, not a timer-wheel update per request.
                if self.idle_timer.deadline() > deadline {
                    self.idle_timer.as_mut().reset(deadline);
                }
                loop {
                    match self.idle_timer.as_mut().poll(cx) {
                        Poll::Ready(()) if Instant::now() >= deadline => {
                            let why = if self.in_flight.started() {
                                "the connection was idle (idle_timeout)"
                            } else {
                                "no complete request head (header_timeout)"
                            };
                            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
                        }
                        Poll::Ready(()) => self.idle_timer.as_mut().reset(deadline),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
            Poll::Pending => Poll::Pending,
            done => {
                if buf.filled().len() > before {
                    self.last = Instant::now();
                }
                done
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watchdog<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.waited(cx).map(Err),
            done => {
                self.timer = None;
                self.last = Instant::now();
                done
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.waited(cx).map(Err),
            done => {
                self.timer = None;
                self.last = Instant::now();
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.waited(cx).map(Err),
            done => {
                self.timer = None;
                done
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
