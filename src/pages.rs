//! Pages and the status JSON: templates compiled at load (auto-escaped), the waiting, closed
//! and error pages, and the choice between HTML and JSON for a request.

pub mod assets;
mod context;
mod csp;
pub mod lang;
pub(crate) mod strict;

pub use context::{
    Flags, Speech, closed_context, decode, encode, error_context, left_context, waiting_context,
};
pub use strict::{PageKind, context_keys, sample};

use std::collections::HashMap;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, header};
use minijinja::{AutoEscape, Environment, Value, context};
use serde::Serialize;

use crate::pow::Challenge;
use crate::room::View;
use csp::Inline;

pub const BUILTIN_WAITING: &str = "builtin/waiting.html";
pub const BUILTIN_CLOSED: &str = "builtin/closed.html";
pub const BUILTIN_ERROR: &str = "builtin/error.html";
pub const BUILTIN_LEFT: &str = "builtin/left.html";
/// Where the reserved endpoints live.
pub const RESERVED_PREFIX: &str = "/__anteroom/";
const STATUS_URL: &str = "/__anteroom/status";
const LEAVE_URL: &str = "/__anteroom/leave";
const JOIN_URL: &str = "/__anteroom/join";
/// The endpoint URLs as template values, written as they are (`/` not escaped).
static URLS: std::sync::LazyLock<(Value, Value, Value)> = std::sync::LazyLock::new(|| {
    (
        Value::from_safe_string(STATUS_URL.to_string()),
        Value::from_safe_string(LEAVE_URL.to_string()),
        Value::from_safe_string(JOIN_URL.to_string()),
    )
});

/// The compiled templates of one configuration, each with what its Content-Security-Policy
/// must allow.
pub struct Pages {
    env: Environment<'static>,
    inline: HashMap<String, Inline>,
}

/// A page ready to send: the HTML and the policy that lets exactly its own inline blocks run.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Shared bytes: a page rendered once is sent many times without a copy.
    pub html: Bytes,
    pub csp: String,
}

impl From<&'static str> for Rendered {
    /// A fixed page built into the binary: its blocks are allowed by hash. Only for constants:
    /// a page holding values must be a template, so that its blocks are found before any value
    /// is put in.
    fn from(page: &'static str) -> Self {
        let (html, inline) = csp::scan(page);
        Rendered {
            html: Bytes::from(html),
            csp: inline.policy(None),
        }
    }
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages(..)")
    }
}

impl Pages {
    /// The built-in pages, compiled into the binary.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        // A missing value (none, undefined) writes nothing, never "none"; the rest is escaped.
        env.set_formatter(|out, state, value| {
            if value.is_none() || value.is_undefined() {
                return Ok(());
            }
            minijinja::escape_formatter(out, state, value)
        });
        // Every page may load anteroom's own script and style sheet by these URLs.
        // (Fixed URLs of ours: written as they are, `/` not escaped.)
        for (var, name) in [
            ("waiting_js_url", "waiting.js"),
            ("waiting_css_url", "waiting.css"),
            ("pow_worker_url", "pow-worker.js"),
        ] {
            env.add_global(var, Value::from_safe_string(assets::url(name).to_string()));
        }
        let mut pages = Pages {
            env,
            inline: HashMap::new(),
        };
        let builtins = [
            (BUILTIN_WAITING, include_str!("../pages/waiting.html")),
            (BUILTIN_CLOSED, include_str!("../pages/closed.html")),
            (BUILTIN_ERROR, include_str!("../pages/error.html")),
            (BUILTIN_LEFT, include_str!("../pages/left.html")),
        ];
        for (name, src) in builtins {
            if let Err(e) = pages.add(name.to_string(), src.to_string()) {
                unreachable!("built-in page {name} does not compile: {e}");
            }
        }
        pages
    }

    /// Compiles an operator's template under `name`; the error says what is wrong. Its inline
    /// blocks are found here, once (see `csp`).
    pub fn add(&mut self, name: String, source: String) -> Result<(), String> {
        let (source, inline) = csp::scan(&source);
        self.env
            .add_template_owned(name.clone(), source)
            .map_err(|e| e.to_string())?;
        self.inline.insert(name, inline);
        Ok(())
    }

    /// Refuses the template `name` (read from `file`, whose text is `source`) if it reads a
    /// variable that a page of `kind` does not have: neither a key of its context nor a global.
    pub fn check(
        &self,
        name: &str,
        kind: PageKind,
        file: &str,
        source: &str,
    ) -> Result<(), String> {
        let template = self.env.get_template(name).map_err(|e| e.to_string())?;
        let keys = context_keys(kind);
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !keys.contains(v) && !self.env.globals().any(|(g, _)| g == v))
            .collect();
        unknown.sort();
        match strict::unknown(file, source, &unknown, &keys) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether the template's inline blocks take a fresh nonce per response (such a page is
    /// rendered for each response, never kept).
    pub fn needs_nonce(&self, name: &str) -> bool {
        self.inline.get(name).is_some_and(|i| i.nonce)
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<Rendered, String> {
        self.render_with(name, |nonce| context! { csp_nonce => nonce, ..ctx })
    }

    /// Renders `name` with the context `build` makes from the response's CSP nonce (`""` when
    /// the template needs none): a context built whole is read faster than a merged one.
    pub fn render_with(
        &self,
        name: &str,
        build: impl FnOnce(&str) -> Value,
    ) -> Result<Rendered, String> {
        let inline = self.inline.get(name);
        let nonce = inline.filter(|i| i.nonce).map(|_| csp::nonce());
        let ctx = build(nonce.as_deref().unwrap_or(""));
        let html = self
            .env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| e.to_string())?;
        let csp = match inline {
            Some(i) => i.policy(nonce.as_deref()),
            None => Inline::default().policy(None),
        };
        Ok(Rendered {
            html: Bytes::from(html),
            csp,
        })
    }
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

/// RFC 3339 UTC time, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// RFC 3339 UTC time `ms` milliseconds from now, to the second (rounded up, so that a visitor
/// told to wait until then is never early).
pub fn rfc3339_in(ms: u64) -> String {
    let now = SystemTime::now();
    let at = now
        .checked_add(std::time::Duration::from_millis(ms.saturating_add(999)))
        .unwrap_or(now);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// RFC 3339 UTC time of unix milliseconds, to the second.
pub fn rfc3339_unix(ms: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// RFC 3339 UTC time `ms` milliseconds ago, to the second.
pub fn rfc3339_ago(ms: u64) -> String {
    let now = SystemTime::now();
    let at = now
        .checked_sub(std::time::Duration::from_millis(ms))
        .unwrap_or(now);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The status JSON of DESIGN section 5. Field names are a contract.
#[derive(Debug, Serialize)]
pub struct StatusJson<'a> {
    pub room: &'a str,
    pub state: &'static str,
    pub position: Option<u64>,
    pub queue_depth: u64,
    pub estimated_wait_seconds: Option<u64>,
    pub release_rate_per_minute: f64,
    pub poll_after_seconds: u64,
    pub next_draw_at: Option<String>,
    pub event_starts_at: Option<String>,
    pub message: Option<&'a str>,
    pub token: Option<&'a str>,
    /// Random queues only: chance of release within the next minute.
    pub chance_next_minute: Option<f64>,
    /// Released: come in before this (RFC 3339).
    pub release_expires_at: Option<String>,
    /// Admitted: the session ends if idle until this; it moves with every request.
    pub session_expires_at: Option<String>,
    /// Admitted under `max_session`: the session ends at this time whatever happens.
    pub session_ends_at: Option<String>,
    /// Queued: when the operator lowered capacity or rate, if after this visitor joined (the
    /// estimated wait may have grown since it was last given).
    pub admissions_slowed_at: Option<String>,
    /// A shared store's room while its store does not answer: what answered instead
    /// (`"closed"`: no place now; `"open"`: let through; `"local"`: this instance's own line).
    pub store_fallback: Option<&'static str>,
    /// When this answer was made.
    pub updated_at: String,
    /// A new visitor of a `join_challenge = "pow"` room: what to solve to join (absent
    /// otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<&'a Challenge>,
}

impl<'a> StatusJson<'a> {
    pub fn new(
        room: &'a str,
        view: &View,
        message: Option<&'a str>,
        token: Option<&'a str>,
    ) -> Self {
        StatusJson {
            room,
            state: view.state.as_str(),
            position: view.position,
            queue_depth: view.queue_depth,
            estimated_wait_seconds: view.estimated_wait_seconds,
            release_rate_per_minute: view.release_rate_per_minute,
            poll_after_seconds: view.poll_after_seconds,
            next_draw_at: view.next_draw_in_ms.map(rfc3339_in),
            event_starts_at: view.event_starts_at_ms.map(rfc3339_unix),
            message,
            token,
            chance_next_minute: view.chance_next_minute,
            release_expires_at: view.deadlines.release_expires_in_ms.map(rfc3339_in),
            session_expires_at: view.deadlines.session_expires_in_ms.map(rfc3339_in),
            session_ends_at: view.deadlines.session_ends_in_ms.map(rfc3339_in),
            admissions_slowed_at: view.slowed_ms_ago.map(rfc3339_ago),
            store_fallback: view.store_fallback,
            updated_at: now_rfc3339(),
            challenge: None,
        }
    }

    /// The answer with the join challenge a new visitor must solve.
    pub fn with_challenge(self, challenge: Option<&'a Challenge>) -> Self {
        StatusJson { challenge, ..self }
    }
}

/// Whether a request is a browser navigation that should get the HTML page: any method with
/// `Sec-Fetch-Mode: navigate` (a form post included), or, without Sec-Fetch headers, a `GET`,
/// `HEAD` or `POST` whose `Accept` prefers `text/html` over `application/json` by q-value and
/// no `X-Requested-With`.
pub fn wants_html(method: &Method, headers: &HeaderMap) -> bool {
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes().eq_ignore_ascii_case(b"navigate");
    }
    // Only these can be a navigation (a link, a reload, a form).
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return false;
    }
    if headers.contains_key("x-requested-with") {
        return false;
    }
    let mut values = headers.get_all(header::ACCEPT).iter();
    let accept: std::borrow::Cow<'_, str> = match (values.next(), values.next()) {
        (None, _) => return false,
        // The usual case: one Accept line, read in place.
        (Some(one), None) => one.to_str().unwrap_or("").into(),
        _ => {
            let all: Vec<&str> = headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            all.join(",").into()
        }
    };
    let html = quality(&accept, "text", "html");
    html > 0.0 && html > quality(&accept, "application", "json")
}

/// The q-value `accept` gives `kind/sub`, taken from the most specific matching range.
pub fn quality(accept: &str, kind: &str, sub: &str) -> f32 {
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let Some((t, s)) = media.split_once('/') else {
            continue;
        };
        let specificity = match (t.trim(), s.trim()) {
            (t, s) if t.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 2,
            (t, "*") if t.eq_ignore_ascii_case(kind) => 1,
            ("*", "*") => 0,
            _ => continue,
        };
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        if best.is_none_or(|(sp, _)| specificity > sp) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn negotiation_table() {
        const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        type Case = (&'static str, &'static [(&'static str, &'static str)], bool);
        let cases: &[Case] = &[
            ("GET", &[("accept", BROWSER)], true),
            ("HEAD", &[("accept", BROWSER)], true),
            // A form post is a navigation: it gets the page (saying the form was not sent).
            ("POST", &[("accept", BROWSER)], true),
            (
                "POST",
                &[("accept", BROWSER), ("sec-fetch-mode", "navigate")],
                true,
            ),
            (
                "POST",
                &[("accept", BROWSER), ("sec-fetch-mode", "cors")],
                false,
            ),
            ("PUT", &[("accept", BROWSER)], false),
            ("DELETE", &[("accept", BROWSER)], false),
            ("GET", &[("accept", "application/json")], false),
            ("GET", &[("accept", "*/*")], false),
            ("GET", &[], false),
            (
                "GET",
                &[("accept", "text/html;q=0.5, application/json")],
                false,
            ),
            ("GET", &[("accept", "application/json;q=0.1, text/*")], true),
            ("GET", &[("accept", "text/html;q=0")], false),
            (
                "GET",
                &[("accept", BROWSER), ("x-requested-with", "XMLHttpRequest")],
                false,
            ),
            (
                "GET",
                &[
                    ("accept", "application/json"),
                    ("sec-fetch-mode", "navigate"),
                ],
                true,
            ),
            (
                "GET",
                &[("accept", BROWSER), ("sec-fetch-mode", "cors")],
                false,
            ),
            ("GET", &[("accept", "text/html;q=bogus;;, ,/,")], true),
        ];
        for (method, h, want) in cases {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(wants_html(&m, &headers(h)), *want, "{method} {h:?}");
        }
    }

    #[test]
    fn template_values_are_escaped() {
        let mut p = Pages::new();
        p.add("t.html".into(), "<p>{{ message }}</p>".into())
            .unwrap();
        let out = p
            .render("t.html", context! { message => "<script>x</script>" })
            .unwrap();
        assert_eq!(out.html, "<p>&lt;script&gt;x&lt;&#x2f;script&gt;</p>");
    }

    /// WCAG relative luminance of `#rrggbb` (or `#rgb`).
    fn luminance(hex: &str) -> f64 {
        let hex = hex.trim_start_matches('#');
        let hex: String = if hex.len() == 3 {
            hex.chars().flat_map(|c| [c, c]).collect()
        } else {
            hex.to_string()
        };
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (a, b) = (luminance(a), luminance(b));
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// The value of `--name` in a block of custom properties.
    fn var<'a>(block: &'a str, name: &str) -> &'a str {
        let at = block.find(&format!("--{name}:")).unwrap() + name.len() + 3;
        block[at..].split([';', '}']).next().unwrap()
    }

    #[test]
    fn the_progress_track_and_fill_stand_out_in_light_and_dark() {
        let css = include_str!("../pages/waiting.css");
        let dark_at = css.find("prefers-color-scheme:dark").unwrap();
        for block in [&css[..dark_at], &css[dark_at..]] {
            let (card, track, fill) = (var(block, "card"), var(block, "track"), var(block, "fill"));
            assert!(contrast(track, card) >= 3.0, "track {track} on {card}");
            assert!(contrast(fill, track) >= 3.0, "fill {fill} on {track}");
        }
        assert!(css.contains(".bar{height:.75rem;background:var(--track)"));
        assert!(css.contains(".bar>div{height:100%;background:var(--fill)"));
    }
}
