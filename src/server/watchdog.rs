//! Watching a client connection's bytes:
//! - a client that stops reading is cut off: a write that makes no progress for
//!   `write_timeout` fails, the connection closes and its resources (and the origin's response
//!   stream) are released, as nginx's `send_timeout` does;
//! - a connection with no request in flight and no byte either way for `idle_timeout` is closed
//!   (an idle HTTP/2 connection, an idle upgraded WebSocket; an idle HTTP/1.1 connection meets
//!   `header_timeout` first).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests of one connection whose handler has not returned yet, and when the last one did.
#[derive(Clone)]
pub struct InFlight(Arc<Shared>);

struct Shared {
    count: AtomicUsize,
    last_done: Mutex<Instant>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight(Arc::new(Shared {
            count: AtomicUsize::new(0),
            last_done: Mutex::new(Instant::now()),
        }))
    }
}

impl InFlight {
    /// Counts a request until the guard drops (also when its handler is cancelled).
    pub fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self.0.clone())
    }

    fn idle(&self) -> bool {
        self.0.count.load(Ordering::Acquire) == 0
    }

    fn last_done(&self) -> Instant {
        *self.0.last_done.lock()
    }
}

pub struct InFlightGuard(Arc<Shared>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        // The answer is about to be written: the idle time starts now, not at the last byte.
        *self.0.last_done.lock() = Instant::now();
        self.0.count.fetch_sub(1, Ordering::Release);
    }
}

pub struct Watchdog<T> {
    inner: T,
    limit: Duration,
    /// Armed while a write waits; disarmed by any progress.
    timer: Option<Pin<Box<Sleep>>>,
    idle_limit: Duration,
    idle_timer: Pin<Box<Sleep>>,
    last: Instant,
    in_flight: InFlight,
}

impl<T> Watchdog<T> {
    pub fn new(inner: T, limit: Duration, idle_limit: Duration, in_flight: InFlight) -> Self {
        let now = Instant::now();
        Watchdog {
            inner,
            limit,
            timer: None,
            idle_limit,
            idle_timer: Box::pin(tokio::time::sleep_until(now + idle_limit)),
            last: now,
            in_flight,
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
                let deadline = self.last.max(self.in_flight.last_done()) + self.idle_limit;
                // The timer is moved only when it fires before the real deadline: activity
                // costs a timestamp, not a timer-wheel update per request.
                loop {
                    match self.idle_timer.as_mut().poll(cx) {
                        Poll::Ready(()) if Instant::now() >= deadline => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "the connection was idle (idle_timeout)",
                            )));
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
