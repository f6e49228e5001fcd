//! The reserved endpoints under `/__anteroom/`: status, join, leave, and anteroom's own files
//! (the waiting page's script and style sheet, the OpenAPI document). They never reach the
//! origin.

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{Ask, Gateway, respond};
use crate::error::GatewayError;
use crate::metrics as m;
use crate::pages::{RESERVED_PREFIX, StatusJson};
use crate::proxy::Body;
use crate::room::{Decision, EndReason, Left, Via, View, Visitor};
use crate::store::Store;

impl Gateway {
    pub(super) async fn endpoint(
        &self,
        ask: &Ask<'_>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, GatewayError> {
        let what = &req.uri().path()[RESERVED_PREFIX.len()..];
        let method = req.method().clone();
        if let Some(asset) = crate::pages::assets::find(what) {
            return Ok(match method {
                Method::GET | Method::HEAD => respond::asset(asset, &req),
                _ => respond::method_not_allowed("GET, HEAD"),
            });
        }
        let public = super::cors::PUBLIC.contains(&what);
        if public && method == Method::OPTIONS {
            return Ok(super::cors::preflight(&ask.rc, req.headers()));
        }
        let origin = req.headers().get(http::header::ORIGIN).cloned();
        let what = what.to_string();
        let mut resp = self.public(ask, &what, req).await?;
        if public {
            super::cors::decorate(&ask.rc, origin.as_ref(), &mut resp);
        }
        Ok(resp)
    }

    /// The endpoints that speak of the visitor's standing: status, join, leave, events.
    async fn public(
        &self,
        ask: &Ask<'_>,
        what: &str,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, GatewayError> {
        let method = req.method().clone();
        let mut visitor = self.visitor(&ask.rc, req.headers(), ask.peer.secure);
        // The token as sent, when it named a session: answered back as it is.
        let mut sent = visitor
            .and(super::request::sent_token(
                &ask.rc,
                req.headers(),
                ask.peer.secure,
            ))
            .map(str::to_string);
        // An `EventSource` of another origin cannot send a header: its token comes in the query.
        if what == "events"
            && req
                .headers()
                .get(crate::proxy::headers::TOKEN_HEADER)
                .is_none()
            && let Some(t) = super::push::query_token(req.uri())
            && let Some(v) = self.visitor_of(&ask.rc, t)
        {
            (visitor, sent) = (Some(v), Some(t.to_string()));
        }
        let challenge = super::challenge::required(ask);
        match (what, method) {
            ("status", Method::GET | Method::HEAD)
                if let Some(difficulty) = challenge.filter(|_| visitor.is_none()) =>
            {
                Ok(self.challenge_status(ask, req.headers(), difficulty))
            }
            ("join", Method::POST) if let Some(difficulty) = challenge => {
                Ok(self.join_challenged(ask, req, visitor, difficulty).await)
            }
            ("status", Method::GET | Method::HEAD) => {
                let decision = self.decide(ask, req.headers(), visitor, Via::Status).await;
                Ok(self.status_answer(ask, decision, sent))
            }
            ("events", Method::GET) => Ok(self.events(ask, req.headers(), visitor, sent).await),
            ("join", Method::POST) => Ok(self.join(ask, req.headers(), visitor, sent).await),
            ("leave", Method::POST) => {
                // A plain form post (no script) gets a page, apps and scripts get JSON.
                let accept = req
                    .headers()
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let page = crate::pages::quality(accept, "text", "html")
                    > crate::pages::quality(accept, "application", "json");
                let page = page.then(|| left_page(ask, &req)).transpose()?;
                Ok(self.leave(ask, visitor, page).await)
            }
            ("status" | "events", _) => Ok(respond::method_not_allowed("GET, HEAD")),
            ("join" | "leave", _) => Ok(respond::method_not_allowed("POST")),
            _ => Ok(respond::json(
                StatusCode::NOT_FOUND,
                &json!({"error": "not found"}),
            )),
        }
    }

    /// The status endpoint's answer to the room's decision on the session the token names (the
    /// event stream's too, when it has nothing to stream).
    pub(super) fn status_answer(
        &self,
        ask: &Ask<'_>,
        decision: Decision,
        sent: Option<String>,
    ) -> Response<Body> {
        let rc = &ask.rc;
        match decision {
            Decision::TooSoon { wait_ms } => super::answer::too_fast(rc, wait_ms),
            Decision::Standing { view: Some(view) } => status_json(ask, &view, sent.as_deref()),
            // A valid token whose session is gone: the place expired. Said once, with the stale
            // cookie dropped, so that joining again is one request away.
            Decision::Expired { view } => {
                let body = StatusJson::new(&rc.name, &view, rc.message.as_deref(), None);
                let mut resp = respond::json(StatusCode::OK, &body);
                ask.clear_cookie(&mut resp);
                resp
            }
            // A closed room takes nobody: "join again" would send an app round in a loop.
            Decision::Closed => super::answer::closed_json(rc),
            Decision::Unreachable { view } => unreachable_json(ask, &view),
            // A page's answers (admit, wait, over budget) never come to a status poll; were one
            // to come, the session is not one this poll can show.
            Decision::Unknown
            | Decision::Standing { view: None }
            | Decision::Admit { .. }
            | Decision::Wait { .. }
            | Decision::OverBudget { .. } => respond::json(
                StatusCode::NOT_FOUND,
                &json!({"room": rc.name, "state": null, "error": "unknown_session"}),
            ),
        }
    }

    /// A native app joins (or, with a token it already has, learns its standing): the same
    /// decision as a navigation's, through the join endpoint.
    pub(super) async fn join(
        &self,
        ask: &Ask<'_>,
        headers: &HeaderMap,
        v: Option<Visitor>,
        sent: Option<String>,
    ) -> Response<Body> {
        let rc = &ask.rc;
        let (token, joined, view) = match self.decide(ask, headers, v, Via::Join).await {
            Decision::TooSoon { wait_ms } => return super::answer::too_fast(rc, wait_ms),
            Decision::Unreachable { view } => return unreachable_json(ask, &view),
            Decision::Standing { view } => (sent, false, view),
            Decision::OverBudget { view } | Decision::Expired { view } => (None, false, Some(view)),
            Decision::Admit { visitor, view, .. } => (Some(self.token(rc, visitor)), true, view),
            Decision::Wait { visitor, view, .. } => {
                (Some(self.token(rc, visitor)), true, Some(view))
            }
            Decision::Closed | Decision::Unknown => (None, false, None),
        };
        let Some(view) = view else {
            return super::answer::closed_json(rc);
        };
        let mut resp = status_json(ask, &view, token.as_deref());
        if let (true, Some(t)) = (joined, &token) {
            ask.set_cookie(&mut resp, t);
        }
        resp
    }

    /// A visitor gives up its place (or leaves after being let in). `page`: a plain form post,
    /// answered with a page rather than JSON.
    async fn leave(
        &self,
        ask: &Ask<'_>,
        v: Option<Visitor>,
        page: Option<crate::pages::Rendered>,
    ) -> Response<Body> {
        let rc = &ask.rc;
        let left = match v {
            Some(v) => self.store.leave(ask.room, &v.id).await,
            None => None,
        };
        if left == Some(Left::Slot) {
            m::session_ended(&rc.name, EndReason::Leave);
        }
        let mut resp = if let Some(page) = page {
            respond::html(StatusCode::OK, page)
        } else {
            respond::json(
                StatusCode::OK,
                &json!({"room": rc.name, "left": left.is_some()}),
            )
        };
        ask.clear_cookie(&mut resp);
        resp
    }
}

/// The shared store did not answer: 503, the view of a visitor with no place, asking again
/// soon. The token (if any) is kept: the place is still there when the store is back.
pub(super) fn unreachable_json(ask: &Ask<'_>, view: &View) -> Response<Body> {
    let mut resp = status_json(ask, view, None);
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp
}

/// The status JSON of one view, with when to ask again.
pub(super) fn status_json(ask: &Ask<'_>, view: &View, token: Option<&str>) -> Response<Body> {
    let rc = &ask.rc;
    let body = StatusJson::new(&rc.name, view, rc.message.as_deref(), token);
    let mut resp = respond::json(StatusCode::OK, &body);
    respond::retry_after(&mut resp, view.poll_after_seconds);
    resp
}

/// What a browser without script sees after leaving the line, in the visitor's language: its
/// "join again" link goes back to the URL the waiting page was at (the form's `return`, a path
/// of this site only).
fn left_page<B>(ask: &Ask<'_>, req: &Request<B>) -> Result<crate::pages::Rendered, GatewayError> {
    let back = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("return=")))
        .and_then(crate::pages::decode)
        .filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.contains(['\\', '\r', '\n']))
        .unwrap_or_else(|| "/".to_string());
    let lang = ask.rc.text.choose(&ask.prefs(req.headers()));
    ask.config
        .pages
        .render(
            crate::pages::BUILTIN_LEFT,
            crate::pages::left_context(lang, &back),
        )
        .map_err(GatewayError::Render)
}
