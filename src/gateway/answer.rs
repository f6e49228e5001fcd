//! The answers anteroom makes itself, each following what the client asked for (the page for
//! navigations, JSON for apps and scripts): the waiting answer, the poll floor's 429, the closed
//! answer, and `fail`, the one place where an error becomes a response.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::{HeaderMap, Request, Response, StatusCode};

use super::{Ask, Current, respond};
use crate::config::RoomConfig;
use crate::error::GatewayError;
use crate::metrics as m;
use crate::pages::{self, Pages, Rendered, StatusJson, lang};
use crate::pow::Challenge;
use crate::proxy::Body;
use crate::room::{View, ViewState};

/// The waiting answer: the page for browser navigations, the status JSON for everything else;
/// with the join challenge a new visitor must solve first, if any.
pub(super) fn waiting<B>(
    ask: &Ask<'_>,
    req: &Request<B>,
    view: &View,
    token: Option<&str>,
    challenge: Option<&Challenge>,
) -> Result<Response<Body>, GatewayError> {
    let room = &ask.rc;
    let message = room.message.as_deref();
    let mut resp = if ask.html {
        let form_not_sent = req.method() != http::Method::GET && req.method() != http::Method::HEAD;
        let flags = pages::Flags {
            form_not_sent,
            has_place: token.is_some(),
            challenge,
        };
        let here = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let speech = ask.speech(req.headers(), here);
        let build = |nonce: &str| pages::waiting_context(nonce, &speech, view, message, flags);
        let pages = &ask.config.pages;
        let page = match pages.render_with(&room.page, build) {
            Ok(page) => page,
            Err(e) => {
                builtin_instead(&room.page, e, pages::BUILTIN_WAITING)?;
                pages
                    .render_with(pages::BUILTIN_WAITING, build)
                    .map_err(GatewayError::Render)?
            }
        };
        respond::html(room.page_status, page)
    } else {
        let body = StatusJson::new(&room.name, view, message, token).with_challenge(challenge);
        respond::json(room.json_status, &body)
    };
    respond::retry_after(&mut resp, view.poll_after_seconds);
    Ok(resp)
}

/// A room's own template failed for this visitor (a value its sample at load did not have, used
/// in a way that fails): logged, and the built-in page answers instead, never a 500. Only the
/// built-in page failing is an error.
fn builtin_instead(name: &str, e: String, builtin: &str) -> Result<(), GatewayError> {
    if name == builtin {
        return Err(GatewayError::Render(e));
    }
    tracing::warn!(error = %e, template = name, "a page template failed; the built-in page answers");
    Ok(())
}

/// How long a closed room tells clients to wait before asking again.
const CLOSED_RETRY_SECONDS: u64 = 60;

/// A room's closed page in each language, rendered for the room as it was (the file's room with
/// the overrides: the same `Arc` while neither changes) and reused until it changes. A template
/// whose inline blocks need a fresh CSP nonce per response is never cached.
#[derive(Default)]
pub(super) struct ClosedCache([ArcSwapOption<(Arc<RoomConfig>, Rendered)>; lang::COUNT]);

/// The closed answer (503): the page for navigations, the status JSON (`state = "closed"`) for
/// everything else.
pub(super) fn closed(ask: &Ask<'_>, headers: &HeaderMap) -> Result<Response<Body>, GatewayError> {
    let room = &ask.rc;
    if !ask.html {
        return Ok(closed_json(room));
    }
    let retry = CLOSED_RETRY_SECONDS;
    // Kept for every URL: its links are relative ("" is the URL asked for).
    let speech = ask.speech(headers, "");
    let cache = ask.current.closed.get(ask.index);
    let cache = cache.and_then(|c| c.0.get(speech.lang.shipped));
    let hit = cache.and_then(|c| {
        let kept = c.load();
        let (for_room, page) = kept.as_deref()?;
        Arc::ptr_eq(for_room, room).then(|| page.clone())
    });
    let page = match hit {
        Some(page) => page,
        None => {
            let ctx = pages::closed_context(&speech, room.message.as_deref(), retry);
            let pages = &ask.config.pages;
            let page = match pages.render(&room.closed_page, ctx.clone()) {
                Ok(page) => page,
                Err(e) => {
                    builtin_instead(&room.closed_page, e, pages::BUILTIN_CLOSED)?;
                    pages
                        .render(pages::BUILTIN_CLOSED, ctx)
                        .map_err(GatewayError::Render)?
                }
            };
            if let Some(c) = cache.filter(|_| !pages.needs_nonce(&room.closed_page)) {
                c.store(Some(Arc::new((room.clone(), page.clone()))));
            }
            page
        }
    };
    let mut resp = respond::html(StatusCode::SERVICE_UNAVAILABLE, page);
    respond::retry_after(&mut resp, retry);
    Ok(resp)
}

/// The status JSON of a closed room: no place, no estimate, when to ask again.
pub(super) fn closed_json(room: &RoomConfig) -> Response<Body> {
    let view = View::without_place(ViewState::Closed, 0, CLOSED_RETRY_SECONDS);
    let body = StatusJson::new(&room.name, &view, room.message.as_deref(), None);
    let mut resp = respond::json(StatusCode::SERVICE_UNAVAILABLE, &body);
    respond::retry_after(&mut resp, CLOSED_RETRY_SECONDS);
    resp
}

/// How long an app is told to wait after the origin failed.
const ERROR_RETRY_SECONDS: u64 = 5;

/// The methods the public listeners forward (every one but CONNECT): a 405's `Allow`.
const PUBLIC_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";

/// The client's own faults: one plain line, whatever the client asked for. Keyed by status.
const PLAIN: [(StatusCode, &str); 7] = [
    (
        StatusCode::MISDIRECTED_REQUEST,
        "no site is served at this host\n",
    ),
    (StatusCode::BAD_REQUEST, "bad request\n"),
    (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
    (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    (StatusCode::REQUEST_TIMEOUT, "request body too slow\n"),
    (StatusCode::URI_TOO_LONG, "request target too long\n"),
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request headers too large\n",
    ),
];

/// The origin's and anteroom's failures that get the error page (its title and detail are the
/// language's `error_<status>_title` and `_detail`; JSON for apps).
const PAGES: [StatusCode; 3] = [
    StatusCode::BAD_GATEWAY,
    StatusCode::GATEWAY_TIMEOUT,
    StatusCode::INTERNAL_SERVER_ERROR,
];

/// The error pages of one configuration load in every built-in language (by its index),
/// rendered once (the built-in error page has no templated inline block, so no nonce).
pub(super) struct ErrorPages(Vec<(StatusCode, Vec<Option<Rendered>>)>);

impl ErrorPages {
    /// No pages yet (replaced at once by the first configuration load).
    pub(super) fn none() -> Self {
        ErrorPages(Vec::new())
    }

    pub(super) fn render(pages: &Pages) -> Self {
        let all = lang::RoomText::shipped();
        let render = |status: StatusCode| {
            all.langs
                .iter()
                .map(|l| {
                    let ctx = pages::error_context(status.as_u16(), l);
                    pages.render(pages::BUILTIN_ERROR, ctx).ok()
                })
                .collect()
        };
        ErrorPages(PAGES.iter().map(|s| (*s, render(*s))).collect())
    }

    fn get(&self, status: StatusCode, lang: usize) -> Option<&Rendered> {
        let (_, pages) = self.0.iter().find(|(s, _)| *s == status)?;
        pages.get(lang).or(pages.first())?.as_ref()
    }
}

/// The one place where an error becomes a response: its status from [`GatewayError::status`],
/// a plain line for the client's own faults, the error page (for a navigation: `page`, in the
/// built-in language of that index; the room's own `error_page` for the origin's failures) or
/// JSON for the rest.
pub(super) fn fail(
    current: &Current,
    e: GatewayError,
    page: Option<usize>,
    room: Option<&RoomConfig>,
) -> Response<Body> {
    if let Some(kind) = e.client_kind() {
        metrics::counter!(m::CLIENT_ERRORS, "kind" => kind).increment(1);
    }
    let status = e.status();
    if let Some((_, line)) = PLAIN.iter().find(|(s, _)| *s == status) {
        let mut resp = respond::plain(status, line);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            // CONNECT is the one method refused: anteroom forwards requests, not tunnels.
            resp.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static(PUBLIC_METHODS),
            );
        }
        return resp;
    }
    tracing::warn!(error = %e, status = status.as_u16(), "request failed");
    let Some(lang) = page else {
        // Apps and scripts get JSON they can act on: what failed and when to try again.
        let mut resp = respond::json(
            status,
            &serde_json::json!({
                "state": null,
                "error": e.kind(),
                "poll_after_seconds": ERROR_RETRY_SECONDS,
            }),
        );
        respond::retry_after(&mut resp, ERROR_RETRY_SECONDS);
        return resp;
    };
    if let Some(page) = room.and_then(|rc| room_error_page(current, rc, status, lang)) {
        return respond::html(status, page);
    }
    match current.errors.get(status, lang) {
        Some(page) => respond::html(status, page.clone()),
        None => respond::plain(status, "the site is not available\n"),
    }
}

/// The room's own error page for the origin's failures (502, 504) in the room's language of
/// built-in index `lang`; `None` (the built-in page answers) for anything else or if it does
/// not render.
fn room_error_page(
    current: &Current,
    rc: &RoomConfig,
    status: StatusCode,
    lang: usize,
) -> Option<Rendered> {
    let name = rc.error_page.as_deref()?;
    if status != StatusCode::BAD_GATEWAY && status != StatusCode::GATEWAY_TIMEOUT {
        return None;
    }
    let langs = &rc.text.langs;
    let l = langs.iter().find(|l| l.shipped == lang).or(langs.first())?;
    let ctx = pages::error_context(status.as_u16(), l);
    match current.config.pages.render(name, ctx) {
        Ok(page) => Some(page),
        Err(e) => {
            tracing::warn!(error = %e, room = %rc.name, "the room's error page does not render");
            None
        }
    }
}

/// A queued visitor polling sooner than half its `poll_after_seconds`: 429, the place kept,
/// nothing computed.
pub(super) fn too_fast(rc: &RoomConfig, wait_ms: u64) -> Response<Body> {
    let wait = wait_ms.div_ceil(1000).max(1);
    let mut resp = respond::json(
        StatusCode::TOO_MANY_REQUESTS,
        &serde_json::json!({
            "room": rc.name,
            "state": "queued",
            "error": "poll_too_fast",
            "poll_after_seconds": wait,
            "message": rc.message,
        }),
    );
    respond::retry_after(&mut resp, wait);
    resp
}
