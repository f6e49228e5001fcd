//! One public request through the steps of DESIGN section 2: resolve the request's context
//! once, pick its route, let the room decide, answer or forward.

use super::*;

impl Gateway {
    /// Answers one public request. Never fails: errors become pages here.
    pub async fn handle(&self, peer: Peer, req: Request<Incoming>) -> Response<Body> {
        let current = self.current.load_full();
        // The path only: a query string may carry what visitors would not want logged.
        let access = current.config.access_log.then(|| {
            (
                Instant::now(),
                req.method().clone(),
                req.uri().path().to_string(),
                req.headers().get(http::header::HOST).cloned(),
            )
        });
        let trace = Trace::default();
        // Every answer anteroom makes itself follows what the client asked for.
        let html = pages::wants_html(req.method(), req.headers());
        // An error page speaks the visitor's language (read before the request moves on).
        let prefs = html.then(|| prefs_of(req.headers(), None));
        let resp = match self.inner((&current, &trace), peer, req, html).await {
            Ok(resp) => resp,
            Err(e) => {
                let room = trace.room().and_then(|i| current.config.rooms.get(i));
                let page = prefs.map(|p| match room {
                    Some(rc) => rc.text.choose(&p).shipped,
                    None => pages::lang::RoomText::shipped().choose(&p).shipped,
                });
                answer::fail(&current, e, page, room.map(|rc| &**rc))
            }
        };
        if let Some((started, method, path, host)) = access {
            let room = trace.room().and_then(|i| current.config.rooms.get(i));
            let round = |s: f64| (s * 1e6).round() / 1e3;
            tracing::info!(
                target: "anteroom::access",
                peer = %peer.addr,
                %method,
                host = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or(""),
                path,
                room = room.map_or("", |r| r.name.as_str()),
                decision = trace.decision(),
                status = resp.status().as_u16(),
                ms = round(started.elapsed().as_secs_f64()),
                upstream_ms = trace.upstream_s().map(round),
                "request"
            );
        }
        resp
    }

    /// Resolves the request once, then takes the one way its room sends it.
    pub(super) async fn inner(
        &self,
        (current, trace): (&Current, &Trace),
        peer: Peer,
        mut req: Request<Incoming>,
        html: bool,
    ) -> Result<Response<Body>, GatewayError> {
        // The load balancer's question, for any host, before anything else.
        if req.uri().path() == current.config.listen.health_path {
            return Ok(respond::plain(http::StatusCode::OK, "ok\n"));
        }
        let mut ask = self.resolve(current, peer, &mut req, html)?;
        ask.trace = Some(trace);
        trace.room.store(ask.index, Ordering::Relaxed);
        // Each way is boxed: the request's future is then a few hundred bytes that hyper and
        // the server move around, instead of the largest way's several kilobytes moved each time.
        let mut resp = match Route::of(&ask, req.uri().path()) {
            Route::Disabled => {
                ask.count("disabled");
                Box::pin(self.pass(&ask, req, None)).await
            }
            Route::Endpoint => {
                ask.count("endpoint");
                Box::pin(self.endpoint(&ask, req)).await
            }
            Route::Bypass => {
                ask.count("bypass");
                Box::pin(self.pass(&ask, req, None)).await
            }
            Route::Queue => Box::pin(self.queue(&ask, req)).await,
        }?;
        if let Some(lang) = ask
            .lang_switch
            .and_then(|s| crate::pages::lang::SHIPPED.get(s))
        {
            respond::set_lang_cookie(&mut resp, lang.0, ask.peer.secure);
        }
        Ok(resp)
    }

    /// What the request is about, or why it cannot be served: framing and limits first, then
    /// the host, the path's one normal form (written into `req`: every decision below, and the
    /// origin, see it), and the room with the operator's overrides over the file.
    pub(super) fn resolve<'a>(
        &self,
        current: &'a Current,
        peer: Peer,
        req: &mut Request<Incoming>,
        html: bool,
    ) -> Result<Ask<'a>, GatewayError> {
        let config = &*current.config;
        route::check_request(req, &config.limits)?;
        let trusted = route::is_trusted(&config.trusted_proxies, peer.addr.ip());
        // Behind a trusted TLS-terminating proxy the visitor is on HTTPS: cookies get `Secure`.
        let secure = peer.secure || route::forwarded_https(trusted, req.headers());
        let host = route::host_of(req)?;
        route::normalise_target(req)?;
        let lang = route::take_lang(req);
        let Some(index) = config.room_index_for_host(&host) else {
            return Err(GatewayError::UnknownHost(host));
        };
        let (Some(file_room), Some(room)) = (config.rooms.get(index), current.rooms.get(index))
        else {
            return Err(GatewayError::UnknownHost(host));
        };
        let rc = room.effective(file_room);
        let lang_switch = lang
            .and_then(|code| crate::pages::lang::shipped_index(&code))
            .filter(|s| rc.text.speaks(*s));
        Ok(Ask {
            current,
            config,
            index,
            rc,
            lang_switch,
            room,
            peer: Peer { secure, ..peer },
            trusted,
            host,
            html,
            trace: None,
        })
    }

    /// A request the room decides on: its token, then the room's decision (the poll floor, the
    /// join budget, recovery, admission), counted, then answered.
    pub(super) async fn queue(
        &self,
        ask: &Ask<'_>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, GatewayError> {
        let visitor = self.visitor(&ask.rc, req.headers(), ask.peer.secure);
        // A preflight or any other OPTIONS never takes a place or a slot: only a visitor the
        // room knows goes on to be decided (and, admitted, forwarded).
        if visitor.is_none() && req.method() == http::Method::OPTIONS {
            ask.count("queue");
            return Ok(super::cors::options_without_place());
        }
        // A new visitor of a room with a join challenge gets the challenge, not a place.
        if visitor.is_none()
            && let Some(difficulty) = super::challenge::required(ask)
        {
            ask.count("queue");
            return self.challenged(ask, &req, difficulty);
        }
        // A request that is not a navigation is an app's or a script's: a poll, with its floor.
        let via = if ask.html { Via::Page } else { Via::Fetch };
        let decision = self.decide(ask, req.headers(), visitor, via).await;
        match decision {
            Decision::Admit {
                visitor, joined, ..
            } => {
                ask.count("admit");
                Ok(self.admit(ask, req, visitor, joined).await)
            }
            Decision::Wait {
                visitor,
                joined,
                view,
                ..
            } => {
                ask.count("queue");
                self.in_line(ask, &req, (visitor, joined), &view)
            }
            Decision::Expired { view } => {
                ask.count("queue");
                let mut resp = waiting(ask, &req, &view, None, None)?;
                // The next request without the stale token is a new visitor: joining again.
                ask.clear_cookie(&mut resp);
                Ok(resp)
            }
            // No place now: past the join budget, or the shared store did not answer.
            Decision::OverBudget { view } | Decision::Unreachable { view } => {
                ask.count("queue");
                waiting(ask, &req, &view, None, None)
            }
            Decision::TooSoon { wait_ms } => {
                ask.count("queue");
                Ok(answer::too_fast(&ask.rc, wait_ms))
            }
            // The status endpoint's answers (a standing, an unknown session) never come to a
            // page or a fetch; were one to, the room takes nobody here.
            Decision::Closed | Decision::Standing { .. } | Decision::Unknown => {
                ask.count("closed");
                closed(ask, req.headers())
            }
        }
    }

    /// The waiting answer of a visitor in line, with its token: the one it sent, as it is (it is
    /// valid: it named them), or a new one with its cookie for a visitor who just joined.
    fn in_line(
        &self,
        ask: &Ask<'_>,
        req: &Request<Incoming>,
        (visitor, joined): (Visitor, bool),
        view: &crate::room::View,
    ) -> Result<Response<Body>, GatewayError> {
        let sent = sent_token(&ask.rc, req.headers(), ask.peer.secure);
        let token = match sent {
            Some(t) if !joined => t.to_string(),
            _ => self.token(&ask.rc, visitor),
        };
        let mut resp = waiting(ask, req, view, Some(&token), None)?;
        if joined {
            ask.set_cookie(&mut resp, &token);
        }
        Ok(resp)
    }

    /// The room's decision on one request (the store runs it under the room's one lock), with
    /// what it did counted: the one place the decision's metrics are emitted (admitted,
    /// duplicates, places expired, joins over budget, polls too soon). `Ask::count` counts the
    /// request itself by the answer it gets.
    pub(super) async fn decide(
        &self,
        ask: &Ask<'_>,
        headers: &HeaderMap,
        visitor: Option<Visitor>,
        via: Via,
    ) -> Decision {
        let arrival = Arrival {
            visitor,
            // Only a visitor without a token is budgeted: the address is read for no one else.
            prefix: visitor
                .is_none()
                .then(|| Prefix::of(ask.client_ip(headers))),
            via,
        };
        let decision = self.store.arrive(ask.room, &ask.rc.settings, arrival).await;
        let name = || ask.rc.name.clone();
        match &decision {
            Decision::Admit { how: Some(how), .. } => {
                metrics::counter!(m::ADMITTED, "room" => name(), "how" => how.label()).increment(1);
            }
            Decision::Wait {
                duplicate: true, ..
            } => metrics::counter!(m::DUPLICATE_REQUESTS, "room" => name()).increment(1),
            Decision::Expired { .. } => {
                metrics::counter!(m::PLACES_EXPIRED, "room" => name()).increment(1);
            }
            Decision::OverBudget { .. } => {
                metrics::counter!(m::JOINS_OVER_BUDGET, "room" => name()).increment(1);
            }
            Decision::TooSoon { .. } => {
                metrics::counter!(m::CLIENT_ERRORS, "kind" => "poll_too_fast").increment(1);
            }
            Decision::Unreachable { .. } => {
                metrics::counter!(m::STORE_UNREACHABLE, "room" => name()).increment(1);
            }
            _ => {}
        }
        decision
    }

    /// Forwards an admitted visitor's request. A new session (`joined`) gets its cookie and
    /// keeps its place even when the origin fails this once.
    pub(super) async fn admit(
        &self,
        ask: &Ask<'_>,
        req: Request<Incoming>,
        visitor: Visitor,
        joined: bool,
    ) -> Response<Body> {
        let token = joined.then(|| self.token(&ask.rc, visitor));
        let page = ask
            .html
            .then(|| ask.rc.text.choose(&ask.prefs(req.headers())).shipped);
        let mut resp = match self.pass(ask, req, Some(visitor)).await {
            Ok(r) => r,
            Err(e) => answer::fail(ask.current, e, page, Some(&ask.rc)),
        };
        if let Some(t) = token {
            ask.set_cookie(&mut resp, &t);
        }
        resp
    }

    /// The visitor a request's token names (cookie, or `Anteroom-Token` for apps), with the token
    /// string. A token that fails to verify counts as none and is counted. Only the cookie name
    /// of this connection is read (`secure`: see `RoomConfig::cookie_name_for`).
    pub(super) fn visitor(
        &self,
        room: &RoomConfig,
        headers: &HeaderMap,
        secure: bool,
    ) -> Option<Visitor> {
        self.visitor_of(room, sent_token(room, headers, secure)?)
    }

    /// The visitor a token string names; a token that fails to verify counts as none and is
    /// counted.
    pub(super) fn visitor_of(&self, room: &RoomConfig, raw: &str) -> Option<Visitor> {
        match self.keys.decode(room.id, raw) {
            Some(c) => Some(Visitor {
                id: c.session,
                ticket: c.ticket,
            }),
            None => {
                metrics::counter!(m::INVALID_TOKENS, "room" => room.name.clone()).increment(1);
                None
            }
        }
    }

    /// The session a token of `room` names, if it is valid (the admin API's revoke).
    pub fn session_of(&self, room: &RoomConfig, token: &str) -> Option<crate::room::SessionId> {
        self.keys.decode(room.id, token).map(|c| c.session)
    }

    pub(super) fn token(&self, room: &RoomConfig, v: Visitor) -> String {
        let issued_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.keys.encode(&Claims {
            room_id: room.id,
            session: v.id,
            ticket: v.ticket,
            issued_at,
        })
    }

    /// Forwards to the room's origin; acts on `Anteroom-Command: revoke` and hides it.
    pub(super) async fn pass(
        &self,
        ask: &Ask<'_>,
        req: Request<Incoming>,
        visitor: Option<Visitor>,
    ) -> Result<Response<Body>, GatewayError> {
        let (config, rc) = (ask.config, &ask.rc);
        let started = Instant::now();
        let forward = Forward {
            origin: &rc.origin,
            peer: ask.peer.addr.ip(),
            trusted_peer: ask.trusted,
            proto: if ask.peer.secure { "https" } else { "http" },
            host: &ask.host,
            cookie_name: &rc.cookie_name,
            response_timeout: config.limits.origin_response_timeout,
            max_body: config.limits.max_body,
            body_timeout: config.limits.body_timeout,
            upgrades: &self.upgrades,
        };
        let client = ask.current.clients.get(ask.index).and_then(Option::as_ref);
        let client = client.unwrap_or(&self.client);
        let result = proxy::forward(client, forward, req).await;
        let took = started.elapsed().as_secs_f64();
        ask.room.figures.record_upstream(took);
        if let Some(t) = ask.trace {
            t.upstream_us.store((took * 1e6) as u64, Ordering::Relaxed);
        }
        let resp = result.inspect_err(|e| count_origin_failure(ask, e))?;
        let (mut parts, body) = resp.into_parts();
        let command = parts.headers.remove(headers::COMMAND_HEADER);
        if let (Some(cmd), Some(v)) = (command, visitor)
            && cmd.as_bytes().eq_ignore_ascii_case(b"revoke")
        {
            self.revoke(ask, &v).await;
        }
        // The head is on its way: a failure of the body from here can only be cut off, and
        // is counted as the origin's.
        let (watched, rc) = (ask.room.clone(), rc.clone());
        let body = body.map_err(move |e| {
            tracing::warn!(room = %rc.name, error = %e, "origin response body failed");
            watched.figures.count_upstream_error("body");
            crate::proxy::BoxError::from(e)
        });
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

/// A request's language preferences: `switch` (a link's choice, by built-in index), the
/// `anteroom_lang` cookie, `Accept-Language`.
fn prefs_of(headers: &HeaderMap, switch: Option<usize>) -> crate::pages::lang::Prefs {
    let accept = headers
        .get_all(http::header::ACCEPT_LANGUAGE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let cookie = headers::cookie(headers, crate::pages::lang::LANG_COOKIE);
    let mut prefs = crate::pages::lang::Prefs::new(accept, cookie);
    if let Some(s) = switch {
        prefs.pin(s);
    }
    prefs
}

/// The token a request carries: the app's header, else the room's cookie of this connection.
pub(super) fn sent_token<'h>(
    room: &RoomConfig,
    headers: &'h HeaderMap,
    secure: bool,
) -> Option<&'h str> {
    headers
        .get(headers::TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| headers::cookie(headers, &room.cookie_name_for(secure)))
}

/// Counts a failed forward against the origin: its own failures only; a client's bad or slow
/// body is not the origin's.
pub(super) fn count_origin_failure(ask: &Ask<'_>, e: &GatewayError) {
    let Some(kind) = e.upstream_kind() else {
        return;
    };
    ask.room.figures.count_upstream_error(kind);
}

impl Gateway {
    /// The origin ended the visitor's session (`Anteroom-Command: revoke`).
    pub(super) async fn revoke(&self, ask: &Ask<'_>, v: &Visitor) {
        if let Some(reason) = self.store.revoke(ask.room, &v.id).await {
            m::session_ended(&ask.rc.name, reason);
        }
    }
}

/// What one request is about, resolved once by `Gateway::resolve`: the configuration in force,
/// the room as the operator's overrides make it, its live handle, the client, the host, and
/// whether the answer is a page.
pub(super) struct Ask<'a> {
    /// The configuration load the whole request runs on.
    pub(super) current: &'a Current,
    pub(super) config: &'a Config,
    /// The room's index in `config.rooms` (and in `current`'s per-room lists).
    pub(super) index: usize,
    /// The room's configuration with the operator's overrides.
    pub(super) rc: Arc<RoomConfig>,
    /// The room's live handle.
    pub(super) room: &'a Arc<Room>,
    /// The TCP peer; `secure` also when a trusted proxy says the client came over HTTPS.
    pub(super) peer: Peer,
    /// Whether the peer is one of `trusted_proxies` (the list is scanned once per request).
    pub(super) trusted: bool,
    /// The request's host, normal form.
    pub(super) host: String,
    /// Whether anteroom's own answers are pages (browser navigations) rather than JSON.
    pub(super) html: bool,
    /// What the access line says of the request (`None` outside `handle`).
    pub(super) trace: Option<&'a Trace>,
    /// The language the visitor chose by a link on the page (`?anteroom_lang=`), by built-in
    /// index, if the room speaks it.
    pub(super) lang_switch: Option<usize>,
}

/// What the access line says of a request beyond its head, noted as the request goes (atomics,
/// so the request's future stays `Send`).
pub(super) struct Trace {
    room: AtomicUsize,
    decision: AtomicU8,
    upstream_us: AtomicU64,
}

/// The decisions a request is counted under, by their index in a [`Trace`] (0: none yet).
const DECISIONS: [&str; 7] = [
    "", "disabled", "endpoint", "bypass", "admit", "queue", "closed",
];

impl Default for Trace {
    fn default() -> Self {
        Trace {
            room: AtomicUsize::new(usize::MAX),
            decision: AtomicU8::new(0),
            upstream_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl Trace {
    fn room(&self) -> Option<usize> {
        Some(self.room.load(Ordering::Relaxed)).filter(|i| *i != usize::MAX)
    }

    fn decision(&self) -> &'static str {
        DECISIONS
            .get(usize::from(self.decision.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or("")
    }

    /// Seconds the origin took to answer the head, if the request went there.
    fn upstream_s(&self) -> Option<f64> {
        let us = self.upstream_us.load(Ordering::Relaxed);
        (us != u64::MAX).then(|| us as f64 / 1e6)
    }
}

impl Ask<'_> {
    /// Counts the request under `decision` (`anteroom_requests_total` and the room's figures).
    pub(super) fn count(&self, decision: &'static str) {
        self.room.figures.count_request(decision);
        if let (Some(t), Some(i)) = (self.trace, DECISIONS.iter().position(|d| *d == decision)) {
            t.decision.store(i as u8, Ordering::Relaxed);
        }
    }

    /// The client's address (see [`route::client_ip`]).
    pub(super) fn client_ip(&self, headers: &HeaderMap) -> IpAddr {
        let trusted = &self.config.trusted_proxies;
        route::client_ip(trusted, self.peer.addr.ip(), self.trusted, headers)
    }

    /// Sets the session cookie of this connection's name.
    pub(super) fn set_cookie(&self, resp: &mut Response<Body>, token: &str) {
        let secure = self.peer.secure;
        respond::set_cookie(resp, &self.rc.cookie_name_for(secure), token, secure);
    }

    /// The visitor's language preferences: a link's choice, the cookie, `Accept-Language`.
    pub(super) fn prefs(&self, headers: &HeaderMap) -> crate::pages::lang::Prefs {
        prefs_of(headers, self.lang_switch)
    }

    /// The page's words for this request: the room, its language for the visitor, the site's
    /// name and the URL asked for (`here`).
    pub(super) fn speech<'s>(&'s self, headers: &HeaderMap, here: &'s str) -> pages::Speech<'s> {
        pages::Speech {
            room: &self.rc.name,
            text: &self.rc.text,
            lang: self.rc.text.choose(&self.prefs(headers)),
            site: self.rc.display_name.as_deref().unwrap_or(&self.host),
            here,
        }
    }

    /// Drops the session cookie of this connection's name.
    pub(super) fn clear_cookie(&self, resp: &mut Response<Body>) {
        respond::clear_cookie(resp, &self.rc.cookie_name_for(self.peer.secure));
    }
}

/// The one way a resolved request goes.
pub(super) enum Route {
    /// The room is switched off: straight to the origin.
    Disabled,
    /// Under `/__anteroom/`: answered by anteroom, never forwarded.
    Endpoint,
    /// A path the room lets through without a place.
    Bypass,
    /// Everything else: the room decides.
    Queue,
}

impl Route {
    pub(super) fn of(ask: &Ask<'_>, path: &str) -> Self {
        if !ask.rc.enabled {
            Route::Disabled
        } else if path.starts_with(RESERVED_PREFIX) {
            Route::Endpoint
        } else if ask.rc.bypass.iter().any(|b| b.matches(path)) {
            Route::Bypass
        } else {
            Route::Queue
        }
    }
}
