//! Forwarding to origins: a pooled HTTP/1.1 client with connect and response timeouts, headers
//! rewritten on the way in and out, bodies streamed both ways.

mod body;
pub mod headers;
mod strict;
mod target;

pub use body::BodyError;
pub use strict::InvalidResponse;
use strict::StrictConnector;
use target::FixedTarget;

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Uri};
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{Limits, Origin, OriginProtocol};
use crate::error::GatewayError;

/// Any error a body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body type of everything the gateway sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A pooled origin client: `http://` and `https://` (rustls), HTTP/1.1, response heads checked.
pub type OriginClient = Client<StrictConnector<FixedTarget<HttpsConnector<HttpConnector>>>, Body>;

/// How long an idle origin connection is kept for reuse: below the keep-alive of common origin
/// servers (Node and Apache close after 5 s), so the pool rarely offers one the origin is
/// closing. The rest of that race is handled by retrying idempotent requests.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// A client whose TLS trusts what `tls` trusts (see `tls::client_config`), speaking `protocol`
/// to origins: HTTP/1.1; HTTP/2 only (ALPN `h2`, or prior knowledge over plain TCP); or what
/// an https origin picks by ALPN. HTTP/2 connections are multiplexed, one per origin and site.
/// `target`: the origin every request dials (the requests of `h2` and `auto` rooms carry the
/// site's host as their authority, see [`forward`]).
pub fn client(
    limits: &Limits,
    tls: rustls::ClientConfig,
    protocol: OriginProtocol,
    target: Option<http::uri::Authority>,
) -> OriginClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(limits.origin_connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match protocol {
        OriginProtocol::Http1 => https.enable_http1().wrap_connector(connector),
        OriginProtocol::H2 => https.enable_http2().wrap_connector(connector),
        OriginProtocol::Auto => https.enable_all_versions().wrap_connector(connector),
    };
    let h2_only = protocol == OriginProtocol::H2;
    let https = FixedTarget::new(https, target);
    let strict = StrictConnector::new(https, limits.max_header_bytes, h2_only);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .http2_only(h2_only);
    builder.build(strict)
}

/// The spliced connections of upgraded requests (WebSockets): held so that a stop can wait for
/// them within its drain and cut the rest, like any request in flight.
#[derive(Default)]
pub struct Upgrades(parking_lot::Mutex<tokio::task::JoinSet<()>>);

impl Upgrades {
    fn spawn(&self, splice: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.0.lock();
        // Finished splices leave as new ones come.
        while set.try_join_next().is_some() {}
        set.spawn(splice);
    }

    /// Waits for the open splices until `deadline`, then cuts what is left.
    pub async fn close(&self, deadline: tokio::time::Instant) {
        let mut set = std::mem::take(&mut *self.0.lock());
        let drained =
            tokio::time::timeout_at(deadline, async { while set.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tracing::warn!(
                open = set.len(),
                "upgraded connections cut at the end of the drain"
            );
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
    }
}

/// What forwarding needs to know about the client side.
pub struct Forward<'a> {
    pub origin: &'a Origin,
    pub peer: IpAddr,
    /// The peer is a trusted proxy: its forwarding headers are kept and appended to.
    pub trusted_peer: bool,
    pub proto: &'static str,
    pub host: &'a str,
    /// The room's cookie, removed before the origin sees the request.
    pub cookie_name: &'a str,
    pub response_timeout: Duration,
    pub max_body: u64,
    /// Longest pause allowed between two pieces of a request body.
    pub body_timeout: Duration,
    /// Where a spliced upgrade runs.
    pub upgrades: &'a Upgrades,
}

/// Sends `req` to the origin and returns its response head with a streaming body. An `Upgrade`
/// request (WebSocket and the like, never `h2c`) that the origin accepts with 101 is spliced:
/// both upgraded connections are copied into each other until either side closes.
pub async fn forward(
    client: &OriginClient,
    f: Forward<'_>,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, GatewayError> {
    let upgrade = headers::upgrade_asked(req.headers()).map(|proto| {
        let client_side = hyper::upgrade::on(&mut req);
        (proto, client_side)
    });
    let (mut parts, body) = req.into_parts();
    to_origin(&mut parts, &f, upgrade.as_ref().map(|(proto, _)| proto))?;
    // The body's first piece arrives before the origin is contacted: a body malformed from the
    // start, or already over the limit, never reaches it.
    let (body, progress) = body::prepare(body, f.max_body, f.body_timeout).await?;
    // What a retry needs: only requests that are safe to send twice and carry no body.
    let replay =
        (upgrade.is_none() && idempotent(&parts.method) && http_body::Body::is_end_stream(&body))
            .then(|| Replay {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
            });
    let req = Request::from_parts(parts, body);
    let resp = match send(client, req, replay, &progress, f.response_timeout).await {
        None => return Err(GatewayError::OriginTimeout),
        Some(Err(e)) => return Err(origin_error(&e)),
        Some(Ok(resp)) => resp,
    };
    relay(resp, upgrade, f.upgrades)
}

/// Rewrites the request head for the origin: the origin's scheme and authority with the
/// client's path, HTTP/1.1, no hop-by-hop headers nor anteroom's own, the Host the origin
/// expects, the forwarding headers, and the protocol `upgrade` asked for.
fn to_origin(
    parts: &mut http::request::Parts,
    f: &Forward<'_>,
    upgrade: Option<&http::HeaderValue>,
) -> Result<(), GatewayError> {
    // An absolute-form target (or HTTP/2's :authority) is what the request was routed by: the
    // origin must see that host, never a different Host header riding along (RFC 9112 3.2.2).
    let routed_authority = parts.uri.authority().cloned();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // The Host the origin sees: the room's `origin_host`, else the routed authority, else the
    // client's own (kept as it is; HTTP/2 sends none, the authority stands for it).
    let forced = f.origin.host.clone().or_else(|| {
        let routed = routed_authority.as_ref();
        routed.and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    });
    // An HTTP/2 origin reads the site from `:authority`: the request carries the host as its
    // authority (the client dials the origin regardless) and no `Host` beside it.
    let site = if f.origin.protocol == OriginProtocol::Http1 {
        None
    } else {
        let host = forced
            .as_ref()
            .or_else(|| parts.headers.get(http::header::HOST));
        host.and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .or_else(|| Authority::try_from(f.host).ok())
    };
    parts.uri = Uri::builder()
        .scheme(f.origin.scheme.clone())
        .authority(site.clone().unwrap_or_else(|| f.origin.authority.clone()))
        .path_and_query(path)
        .build()
        .map_err(|_| GatewayError::BadRequest("request target"))?;
    parts.version = http::Version::HTTP_11;
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_cookie(&mut parts.headers, f.cookie_name);
    parts.headers.remove(headers::TOKEN_HEADER);
    for h in &headers::PATH_OVERRIDES {
        parts.headers.remove(h);
    }
    if site.is_some() {
        parts.headers.remove(http::header::HOST);
    } else if let Some(h) = forced {
        parts.headers.insert(http::header::HOST, h);
    } else if !parts.headers.contains_key(http::header::HOST)
        && let Ok(v) = http::HeaderValue::from_str(f.host)
    {
        parts.headers.insert(http::header::HOST, v);
    }
    headers::set_forwarded(&mut parts.headers, f.peer, f.trusted_peer, f.proto, f.host);
    if let Some(proto) = upgrade {
        headers::keep_upgrade(&mut parts.headers, proto.clone());
    }
    Ok(())
}

/// The head of a request that may go out a second time (idempotent, no body).
struct Replay {
    method: http::Method,
    uri: Uri,
    headers: http::HeaderMap,
}

impl Replay {
    fn request(&self) -> Request<Body> {
        let mut again = Request::new(body::empty());
        *again.method_mut() = self.method.clone();
        *again.uri_mut() = self.uri.clone();
        *again.headers_mut() = self.headers.clone();
        again
    }
}

/// Sends `req` and waits for the answer within `limit` (see `answer_within`); `None`: the origin
/// took too long. With a `replay`, a pooled connection the origin closed as the request went out
/// (the origin saw no complete request) is tried once more on another connection.
async fn send(
    client: &OriginClient,
    req: Request<Body>,
    replay: Option<Replay>,
    progress: &body::Progress,
    limit: Duration,
) -> Option<Result<Response<Incoming>, hyper_util::client::legacy::Error>> {
    let mut attempt = client.request(req);
    let mut retries = 0;
    loop {
        let answer = answer_within(attempt, progress, limit).await;
        match (&answer, &replay) {
            (Some(Err(e)), Some(replay)) if retries < 1 && closed_early(e) => {
                retries += 1;
                tracing::debug!(error = %error_chain(e), retries, "origin closed a pooled connection; retrying");
                attempt = client.request(replay.request());
            }
            _ => return answer,
        }
    }
}

/// The gateway error for a request the origin did not answer: the client's body at fault, an
/// answer that cannot be relayed, or an origin out of reach.
fn origin_error(e: &hyper_util::client::legacy::Error) -> GatewayError {
    if let Some(b) = BodyError::find(e) {
        b.to_gateway()
    } else if let Some(bad) = InvalidResponse::find(e) {
        GatewayError::OriginInvalid(bad.to_string())
    } else if parse_error(e) {
        GatewayError::OriginInvalid(error_chain(e))
    } else {
        GatewayError::OriginDown(error_chain(e))
    }
}

/// Readies the origin's response for the client: framing checked, hop-by-hop headers dropped,
/// and a 101 that grants the client's `upgrade` spliced (any other 101 is refused).
fn relay(
    mut resp: Response<Incoming>,
    upgrade: Option<(http::HeaderValue, hyper::upgrade::OnUpgrade)>,
    upgrades: &Upgrades,
) -> Result<Response<Incoming>, GatewayError> {
    headers::check_response_framing(resp.headers()).map_err(GatewayError::OriginInvalid)?;
    let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let granted = switching
        .then(|| resp.headers().get(http::header::UPGRADE).cloned())
        .flatten();
    headers::strip_hop_by_hop(resp.headers_mut());
    match (upgrade, switching, granted) {
        (Some((_, client_side)), true, Some(proto)) => {
            headers::keep_upgrade(resp.headers_mut(), proto);
            let origin_side = hyper::upgrade::on(&mut resp);
            upgrades.spawn(splice(client_side, origin_side));
            Ok(resp)
        }
        // A switch nobody asked for, or one that names no protocol, cannot be passed on.
        (_, true, _) => Err(GatewayError::OriginDown(
            "the origin switched protocols without an upgrade to switch to".into(),
        )),
        _ => Ok(resp),
    }
}

/// Methods that mean the same when sent twice (RFC 9110 section 9.2.2).
fn idempotent(m: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(m)
}

/// Whether `e` is a connection closing under a request before any answer came (not a refused
/// connection, not a timeout).
fn closed_early(e: &hyper_util::client::legacy::Error) -> bool {
    if e.is_connect() {
        return false;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Whether hyper could not parse the origin's answer (a malformed head, a bad Content-Length).
fn parse_error(e: &hyper_util::client::legacy::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Waits for `answer` until `limit` has passed since the request body last moved (or since the
/// start, without a body). While the body waits on the client, the clock is the body's
/// (`body_timeout` ends it with a client error). `None`: the origin took too long.
async fn answer_within<F: Future>(
    answer: F,
    progress: &body::Progress,
    limit: Duration,
) -> Option<F::Output> {
    tokio::pin!(answer);
    let mut deadline = progress.last() + limit;
    loop {
        tokio::select! {
            out = &mut answer => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                let now = tokio::time::Instant::now();
                if progress.waiting_on_client() {
                    deadline = now + limit;
                } else if progress.last() + limit <= now {
                    return None;
                } else {
                    deadline = progress.last() + limit;
                }
            }
        }
    }
}

/// Copies bytes both ways between an upgraded client connection and the origin's, until either
/// side closes.
async fn splice(client: hyper::upgrade::OnUpgrade, origin: hyper::upgrade::OnUpgrade) {
    let (client, origin) = match tokio::try_join!(client, origin) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut origin = hyper_util::rt::TokioIo::new(origin);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut origin).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
