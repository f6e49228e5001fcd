//! The origin's answers are untrusted input too. Each origin connection is read through
//! [`Strict`], which refuses a response head that two parsers could read differently or that
//! is too large, before hyper parses it: a line ended by a bare LF (RFC 9112 allows a recipient
//! to accept it, and a cache in front of anteroom might not), and a head over
//! `max_header_bytes`. The connection fails, the request gets 502 (`invalid_response`).
//!
//! Only response heads are scanned: a head is expected after anteroom writes a request line,
//! and after an interim (1xx) head; bodies pass through untouched.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};

/// Why an origin's response head was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidResponse {
    #[error("a header line of the origin's response ends in a bare LF")]
    BareLf,
    #[error("the origin's response head is larger than max_header_bytes")]
    HeadTooLarge,
}

impl InvalidResponse {
    /// The refusal somewhere in `e`'s sources.
    pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a InvalidResponse> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(found) = err.downcast_ref::<InvalidResponse>() {
                return Some(found);
            }
            if let Some(found) = err
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<InvalidResponse>())
            {
                return Some(found);
            }
            cur = err.source();
        }
        None
    }
}

/// Wraps every connection `inner` makes in [`Strict`].
#[derive(Clone)]
pub struct StrictConnector<C> {
    inner: C,
    max_head: usize,
    /// Every connection speaks HTTP/2 (prior knowledge): nothing to scan.
    h2_only: bool,
}

impl<C> StrictConnector<C> {
    pub fn new(inner: C, max_head: usize, h2_only: bool) -> Self {
        StrictConnector {
            inner,
            max_head,
            h2_only,
        }
    }
}

impl<C> tower_service::Service<Uri> for StrictConnector<C>
where
    C: tower_service::Service<Uri>,
    C::Response: Connection,
    C::Future: Send + 'static,
{
    type Response = Strict<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let (max_head, h2_only) = (self.max_head, self.h2_only);
        Box::pin(async move {
            let inner = connecting.await?;
            // HTTP/2 frames its messages itself (binary, length-prefixed): there is no head
            // for two parsers to read differently, so an h2 connection is never scanned.
            let h2 = h2_only || inner.connected().is_negotiated_h2();
            Ok(Strict {
                inner,
                max_head,
                head: None,
                upgraded: h2,
                scratch: Vec::new(),
            })
        })
    }
}

/// Where the scan of one response head stands.
#[derive(Debug, Default)]
struct Head {
    /// Bytes of the head read so far.
    len: usize,
    /// Bytes of the current line so far, its LF excluded.
    line: usize,
    prev: u8,
    /// The status code's three digits.
    code: [u8; 3],
    /// The status line has begun (a line with something in it was read).
    started: bool,
}

impl Head {
    /// An interim answer (100 Continue, 103 Early Hints) that another head follows. 101 is
    /// final: the connection then carries another protocol, never scanned.
    fn interim(&self) -> bool {
        self.code[0] == b'1' && &self.code != b"101"
    }
}

impl Head {
    /// Scans `bytes`; returns where the head ended in them, if it did.
    fn scan(&mut self, bytes: &[u8], max: usize) -> Result<Option<usize>, InvalidResponse> {
        for (i, &b) in bytes.iter().enumerate() {
            self.len += 1;
            if self.len > max {
                return Err(InvalidResponse::HeadTooLarge);
            }
            // "HTTP/1.1 200": the status code is the tenth to twelfth byte.
            if (10..=12).contains(&self.len) {
                self.code[self.len - 10] = b;
            }
            if b == b'\n' {
                if self.prev != b'\r' {
                    return Err(InvalidResponse::BareLf);
                }
                let blank = self.line == 1;
                self.line = 0;
                self.prev = b;
                if blank && !self.started {
                    // An empty line before the status line, as parsers skip it (RFC 9112
                    // section 2.2): the head starts after it.
                    self.len = 0;
                    continue;
                }
                if blank {
                    return Ok(Some(i + 1));
                }
                self.started = true;
                continue;
            }
            self.line += 1;
            self.prev = b;
        }
        Ok(None)
    }
}

/// An origin connection whose response heads are checked as they are read.
pub struct Strict<T> {
    inner: T,
    max_head: usize,
    /// `Some` while a response head is expected or being read.
    head: Option<Head>,
    /// After a 101 the connection is the upgraded protocol's: nothing more is scanned.
    upgraded: bool,
    /// Where a read lands while a head is expected, to be scanned before hyper sees it.
    scratch: Vec<u8>,
}

/// The most one read takes while a head is expected: a head and the start of its body. Later
/// reads of the body go straight into hyper's buffer.
const SCRATCH: usize = 16 * 1024;

/// Whether `bytes` start like a request line anteroom writes: a method token, a space, and an
/// origin-form (`/x`), asterisk-form (`*`) or absolute-form (`http://…`) target.
fn request_line(bytes: &[u8]) -> bool {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let method = bytes.iter().take_while(|b| tchar(b)).count();
    method > 0
        && bytes.get(method) == Some(&b' ')
        && matches!(bytes.get(method + 1), Some(b'/' | b'*' | b'h'))
}

impl<T: Read + Unpin> Read for Strict<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.head.is_none() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        // While a head is expected the read lands in a scratch buffer (zeroed once, reused), is
        // scanned there and copied on: one copy of a head's worth of bytes per response.
        let want = buf.remaining().min(SCRATCH);
        if this.scratch.len() < want {
            this.scratch.resize(want, 0);
        }
        let mut tmp = hyper::rt::ReadBuf::new(&mut this.scratch[..want]);
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, tmp.unfilled()))?;
        let filled = tmp.filled();
        scan_heads(&mut this.head, &mut this.upgraded, filled, this.max_head)?;
        buf.put_slice(filled);
        Poll::Ready(Ok(()))
    }
}

/// Scans freshly read bytes for the response heads they hold; past a final head, the rest is
/// body and is left alone.
fn scan_heads(
    head: &mut Option<Head>,
    upgraded: &mut bool,
    bytes: &[u8],
    max_head: usize,
) -> io::Result<()> {
    let mut at = 0;
    while at < bytes.len() {
        let Some(h) = head.as_mut() else {
            break;
        };
        match h.scan(&bytes[at..], max_head) {
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            Ok(None) => break,
            Ok(Some(end)) => {
                at += end;
                *upgraded = &h.code == b"101";
                *head = h.interim().then(Head::default);
            }
        }
    }
    Ok(())
}

impl<T: Write + Unpin> Write for Strict<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.head.is_none() && !self.upgraded && request_line(bytes) {
            self.head = Some(Head::default());
        }
        Pin::new(&mut self.inner).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|b| !b.is_empty());
        if self.head.is_none() && !self.upgraded && first.is_some_and(|b| request_line(b)) {
            self.head = Some(Head::default());
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for Strict<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]], max: usize) -> Result<Vec<usize>, InvalidResponse> {
        let mut head = Head::default();
        let mut ends = Vec::new();
        for c in chunks {
            if let Some(end) = head.scan(c, max)? {
                ends.push(end);
            }
        }
        Ok(ends)
    }

    #[test]
    fn heads_are_checked_across_reads() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(scan_all(&[ok], 1024).unwrap(), vec![ok.len() - 2]);
        // Split anywhere, even between CR and LF.
        for cut in 1..ok.len() {
            let (a, b) = ok.split_at(cut);
            let ends = scan_all(&[a, b], 1024).unwrap();
            assert_eq!(ends.len(), 1, "cut at {cut}");
        }
        assert!(matches!(
            scan_all(&[b"HTTP/1.1 200 OK\nX: y\r\n\r\n"], 1024),
            Err(InvalidResponse::BareLf)
        ));
        assert!(matches!(
            scan_all(&[b"HTTP/1.1 200 OK\r\nX: y\n\r\n"], 1024),
            Err(InvalidResponse::BareLf)
        ));
        assert!(matches!(
            scan_all(&[b"HTTP/1.1 200 OK\r\nX: yyyyyyyy\r\n\r\n"], 20),
            Err(InvalidResponse::HeadTooLarge)
        ));
    }

    #[test]
    fn empty_lines_before_the_status_line_are_skipped() {
        let mut head = Head::default();
        let answer = b"\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert_eq!(head.scan(answer, 1024).unwrap(), Some(answer.len()));
        assert_eq!(&head.code, b"101");
        let mut bare = Head::default();
        assert!(matches!(
            bare.scan(b"\r\nHTTP/1.1 200 OK\nX: y\r\n\r\n", 1024),
            Err(InvalidResponse::BareLf)
        ));
    }

    #[test]
    fn interim_heads_are_followed_by_another_and_101_ends_the_scan() {
        let mut early = Head::default();
        let end = early
            .scan(b"HTTP/1.1 103 Early Hints\r\n\r\n", 1024)
            .unwrap();
        assert!(end.is_some() && early.interim());
        let mut switch = Head::default();
        let end = switch
            .scan(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                1024,
            )
            .unwrap();
        assert!(end.is_some() && !switch.interim());
        assert_eq!(&switch.code, b"101");
        let mut ok = Head::default();
        ok.scan(b"HTTP/1.1 200 OK\r\n\r\n", 1024).unwrap();
        assert!(!ok.interim());
    }

    #[test]
    fn request_lines_are_recognised() {
        assert!(request_line(b"GET / HTTP/1.1\r\n"));
        assert!(request_line(b"DELETE /x HTTP/1.1\r\n"));
        assert!(request_line(b"VERSION-CONTROL /x HTTP/1.1\r\n"));
        assert!(request_line(b"purge /x HTTP/1.1\r\n"));
        assert!(request_line(b"OPTIONS * HTTP/1.1\r\n"));
        assert!(!request_line(b"NAME said hello"));
        assert!(!request_line(b"hello"));
        assert!(!request_line(b" GET"));
        assert!(!request_line(b""));
    }
}
