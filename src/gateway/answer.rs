//! The answers anteroom makes itself, each following what the client asked for (the page for
//! navigations, JSON for apps and scripts): the waiting answer, the poll floor's 429, the closed
//! answer, and `fail`, the one place where an error becomes a response.

use http::{Request, Response, StatusCode};

use super::{Ask, respond};
use crate::config::{Config, RoomConfig};
use crate::error::GatewayError;
use crate::metrics as m;
use crate::pages::{self, StatusJson};
use crate::proxy::Body;
use crate::room::{View, ViewState};

/// The waiting answer: the page for browser navigations, the status JSON for everything else.
pub(super) fn waiting<B>(
    ask: &Ask<'_>,
    req: &Request<B>,
    view: &View,
    token: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    let room = &ask.rc;
    let message = room.message.as_deref();
    let mut resp = if ask.html {
        let form_not_sent = req.method() != http::Method::GET && req.method() != http::Method::HEAD;
        let has_place = token.is_some();
        let ctx = pages::waiting_context(&room.name, view, message, form_not_sent, has_place);
        let page = ask
            .config
            .pages
            .render(&room.page, ctx)
            .map_err(GatewayError::Render)?;
        respond::html(room.page_status, page)
    } else {
        let body = StatusJson::new(&room.name, view, message, token);
        respond::json(room.json_status, &body)
    };
    respond::retry_after(&mut resp, view.poll_after_seconds);
    Ok(resp)
}

/// How long a closed room tells clients to wait before asking again.
const CLOSED_RETRY_SECONDS: u64 = 60;

/// The closed answer (503): the page for navigations, the status JSON (`state = "closed"`) for
/// everything else.
pub(super) fn closed(ask: &Ask<'_>) -> Result<Response<Body>, GatewayError> {
    let room = &ask.rc;
    if !ask.html {
        return Ok(closed_json(room));
    }
    let retry = CLOSED_RETRY_SECONDS;
    let ctx = pages::closed_context(&room.name, room.message.as_deref(), retry);
    let page = ask
        .config
        .pages
        .render(&room.closed_page, ctx)
        .map_err(GatewayError::Render)?;
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

/// What an error's answer says besides its status.
enum Wording {
    /// The client's own fault: one plain line, whatever the client asked for.
    Plain(&'static str),
    /// The origin's or anteroom's: the error page's title and detail (JSON for apps).
    Page(&'static str, &'static str),
}

/// Each error's status and wording.
fn wording(e: &GatewayError) -> (StatusCode, Wording) {
    use GatewayError as E;
    use Wording::{Page, Plain};
    match e {
        E::UnknownHost(_) => (
            StatusCode::MISDIRECTED_REQUEST,
            Plain("no site is served at this host\n"),
        ),
        E::BadRequest(_) => (StatusCode::BAD_REQUEST, Plain("bad request\n")),
        E::BodyTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Plain("request body too large\n"),
        ),
        E::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            Plain("method not allowed\n"),
        ),
        E::BodyTimeout => (
            StatusCode::REQUEST_TIMEOUT,
            Plain("request body too slow\n"),
        ),
        E::UriTooLong => (StatusCode::URI_TOO_LONG, Plain("request target too long\n")),
        E::HeadersTooLarge => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Plain("request headers too large\n"),
        ),
        E::OriginDown(_) | E::OriginInvalid(_) => (
            StatusCode::BAD_GATEWAY,
            Page(
                "The site is not answering",
                "We could not reach the site just now. Please try again in a moment.",
            ),
        ),
        E::OriginTimeout => (
            StatusCode::GATEWAY_TIMEOUT,
            Page(
                "The site is taking too long",
                "The site did not answer in time. Please try again in a moment.",
            ),
        ),
        E::Render(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Page("Something went wrong", "Please try again in a moment."),
        ),
    }
}

/// The one place where an error becomes a response.
pub fn fail(config: &Config, e: GatewayError, html: bool) -> Response<Body> {
    if let Some(kind) = e.client_kind() {
        metrics::counter!(m::CLIENT_ERRORS, "kind" => kind).increment(1);
    }
    let (status, title, detail) = match wording(&e) {
        (status, Wording::Plain(line)) => return respond::plain(status, line),
        (status, Wording::Page(title, detail)) => (status, title, detail),
    };
    tracing::warn!(error = %e, status = status.as_u16(), "request failed");
    if !html {
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
    }
    let ctx = pages::error_context(status.as_u16(), title, detail);
    match config.pages.render(pages::BUILTIN_ERROR, ctx) {
        Ok(page) => respond::html(status, page),
        Err(_) => respond::plain(status, "the site is not available\n"),
    }
}

/// A queued visitor polling sooner than half its `poll_after_seconds`: 429, the place kept,
/// nothing computed.
pub(super) fn too_fast(rc: &RoomConfig, wait_ms: u64) -> Response<Body> {
    metrics::counter!(m::CLIENT_ERRORS, "kind" => "poll_too_fast").increment(1);
    let wait = wait_ms.div_ceil(1000).max(1);
    let mut resp = respond::json(
        StatusCode::TOO_MANY_REQUESTS,
        &serde_json::json!({
            "room": rc.name,
            "state": "queued",
            "error": "polling faster than poll_after_seconds",
            "poll_after_seconds": wait,
            "message": rc.message,
        }),
    );
    respond::retry_after(&mut resp, wait);
    resp
}
