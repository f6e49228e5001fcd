//! CORS for the public endpoints (`join`, `status`, `leave`, `events`) only: a page of one of
//! the room's `cors_origins` may call them from a script, with the visitor's cookie (same-site)
//! or its token. Requests from any other origin get no CORS header at all, and the origin's
//! own paths are never given any by anteroom.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::respond;
use crate::config::RoomConfig;
use crate::proxy::Body;

/// The public endpoints a script of another origin may call.
pub(super) const PUBLIC: [&str; 4] = ["join", "status", "leave", "events"];
/// What a preflight is told may follow it.
const METHODS: &str = "GET, POST, OPTIONS";
const HEADERS: &str = "Anteroom-Token, Content-Type";
const EXPOSED: &str = "Anteroom-Token, Retry-After";
/// How long a browser may keep a preflight's answer (seconds).
const MAX_AGE: &str = "600";

/// The request's `Origin`, if it is one of the room's `cors_origins`.
fn allowed(rc: &RoomConfig, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    let origin = origin?;
    let text = origin.to_str().ok()?;
    rc.cors_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(text))
        .then(|| origin.clone())
}

/// An `OPTIONS` to a public endpoint (a preflight): 204; with the CORS headers when the request
/// comes from one of the room's origins. Nothing is decided: no place, no session.
pub(super) fn preflight(rc: &RoomConfig, headers: &HeaderMap) -> Response<Body> {
    let mut resp = Response::new(respond::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(METHODS));
    if let Some(origin) = allowed(rc, headers.get(header::ORIGIN)) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    vary(rc, &mut resp);
    resp
}

/// A public endpoint's answer to a request from one of the room's origins: the origin may read
/// it (and the token and retry headers).
pub(super) fn decorate(rc: &RoomConfig, origin: Option<&HeaderValue>, resp: &mut Response<Body>) {
    if let Some(origin) = allowed(rc, origin) {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
    }
    vary(rc, resp);
}

/// The answer depends on `Origin` whenever the room names any: caches must keep them apart.
fn vary(rc: &RoomConfig, resp: &mut Response<Body>) {
    if !rc.cors_origins.is_empty() {
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// An `OPTIONS` to the site from a visitor the room does not know: it never joins the line or
/// takes a slot, so it is answered here (204, no CORS header), never forwarded.
pub(super) fn options_without_place() -> Response<Body> {
    let mut resp = Response::new(respond::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}
