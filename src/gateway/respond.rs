//! Building gateway-made responses: pages, status JSON, cookies. The hot path only fills
//! templates and clones bytes. Every answer made here says what it is (`nosniff`); pages also
//! carry their Content-Security-Policy and refuse framing and referrers. Answers forwarded from an
//! origin never pass through here.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

use crate::pages::Rendered;
use crate::pages::assets::Asset;
use crate::proxy::Body;

pub fn body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    content: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(body(content));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// One of anteroom's own files: kept for a year when asked for by its versioned URL, checked
/// with its validator otherwise; `304` when the client's copy is current.
pub fn asset<B>(asset: &Asset, req: &http::Request<B>) -> Response<Body> {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| asset.matches(v));
    let mut r = if fresh {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        response(StatusCode::OK, asset.content_type, asset.body.clone())
    };
    let cache = if asset.versioned(req.uri().query()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, v);
    }
    r
}

/// A page the gateway made (waiting, closed, error, left), with its policy.
pub fn html(status: StatusCode, page: impl Into<Rendered>) -> Response<Body> {
    let page = page.into();
    let mut r = response(status, "text/html; charset=utf-8", page.html);
    let h = r.headers_mut();
    // The policy holds only hashes, nonces and fixed words: always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&page.csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(v) => response(status, "application/json", v),
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    }
}

/// `405 Method Not Allowed` as JSON, with the `Allow` header naming the methods the resource
/// answers (RFC 9110 section 15.5.6).
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({"error": "method not allowed"}),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", text)
}

pub fn retry_after(resp: &mut Response<Body>, seconds: u64) {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// Adds the session cookie; every response that sets it must not be cached. A `__Host-` name
/// is always `Secure` with `Path=/` and no `Domain`, or the browser drops it.
pub fn set_cookie(resp: &mut Response<Body>, name: &str, token: &str, secure: bool) {
    let secure = if secure || host_prefixed(name) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{name}={token}; Path=/; HttpOnly; SameSite=Lax{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Removes the session cookie from the browser.
pub fn clear_cookie(resp: &mut Response<Body>, name: &str) {
    let secure = if host_prefixed(name) { "; Secure" } else { "" };
    let cookie = format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Remembers the language a visitor chose on the page (a year; the choice is not a secret).
pub fn set_lang_cookie(resp: &mut Response<Body>, code: &str, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={code}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}",
        crate::pages::lang::LANG_COOKIE
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn host_prefixed(name: &str) -> bool {
    name.starts_with("__Host-")
}
