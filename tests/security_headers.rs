//! What the gateway says about its own answers: every page it makes carries a
//! Content-Security-Policy with no outside source that lets exactly the page's own inline script
//! and style run (checked here against the sha256 of the blocks actually served), plus
//! `nosniff`, `no-referrer` and `DENY`; its JSON and plain-text answers carry `nosniff`; an
//! origin's answer passes untouched.

// Tests unwrap, measure real time, may run long, and share `pub` helpers through
// `mod support`.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::disallowed_types,
    clippy::too_many_lines
)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use support::*;

/// The text of every `<tag …>…</tag>` block of `html`, with its opening tag.
fn blocks<'a>(html: &'a str, tag: &str) -> Vec<(&'a str, &'a str)> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at..];
        let head_end = after.find('>').expect("an opening tag ends") + 1;
        let body = &after[head_end..];
        let end = body.find(&close).expect("a closing tag");
        found.push((&after[..head_end], &body[..end]));
        rest = &body[end..];
    }
    found
}

/// The value of attribute `name` in an opening tag.
fn attr<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    let at = head.find(&format!(" {name}=\""))? + name.len() + 3;
    head[at..].split('"').next()
}

/// The sources of one CSP directive.
fn directive<'a>(csp: &'a str, name: &str) -> Vec<&'a str> {
    csp.split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {csp}"))
        .split_whitespace()
        .collect()
}

fn sha256(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// A page the gateway made: its headers, and a policy that allows each inline block it holds.
fn assert_gateway_page(r: &Reply, what: &str) {
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{what}"
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    let csp = r
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    for (name, want) in [
        ("default-src", &["'none'"][..]),
        ("connect-src", &["'self'"]),
        ("img-src", &["'self'", "data:"]),
        ("base-uri", &["'none'"]),
        ("form-action", &["'self'"]),
        ("frame-ancestors", &["'none'"]),
    ] {
        assert_eq!(directive(csp, name), want, "{what}: {name} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    assert!(!csp.contains("http"), "{what}: no outside source: {csp}");
    for (tag, dir) in [("script", "script-src"), ("style", "style-src")] {
        let allowed = directive(csp, dir);
        for (head, body) in blocks(&r.body, tag) {
            // anteroom's own script, from the page's own origin.
            if let Some(src) = attr(head, "src") {
                assert!(src.starts_with("/__anteroom/"), "{what}: {head}");
                assert!(
                    allowed.contains(&"'self'"),
                    "{what}: {head} under {allowed:?}"
                );
                continue;
            }
            assert!(
                allowed.contains(&sha256(body).as_str()),
                "{what}: the inline {head} block is not allowed by {dir} {allowed:?}"
            );
        }
    }
    // A style or handler attribute would be blocked: the pages must not rely on one.
    assert!(!r.body.contains(" style="), "{what}: a style attribute");
    assert!(!r.body.contains(" onclick="), "{what}: a handler attribute");
}

#[tokio::test]
async fn gateway_pages_allow_exactly_their_own_inline_blocks_and_origin_answers_pass_untouched() {
    let origin = Origin::start().await;
    let down = dead_port().await;
    let extra = "active_users = 1\nabandon_after = \"30s\"";
    let config = base_config("50ms")
        + &room("shop", "shop.test", &origin.url(), extra)
        + &room(
            "shut",
            "shut.test",
            &origin.url(),
            "active_users = 1\nmode = \"reject\"",
        )
        + &room("down", "down.test", &format!("http://{down}"), extra);
    let gw = Gateway::start(&config).await;

    // The origin's answer, as it sent it.
    let mut first = gw.client("shop.test");
    let r = first.get("/", BROWSER).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "origin:/"));
    for h in [
        "content-security-policy",
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
    ] {
        assert!(r.header(h).is_none(), "{h} added to the origin's answer");
    }

    // The waiting page, its status JSON, and the page after leaving.
    let mut second = gw.client("shop.test");
    let r = second.get("/", BROWSER).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("in line"), "{}", r.body);
    assert_gateway_page(&r, "waiting page");
    let scripts = blocks(&r.body, "script");
    assert_eq!(scripts.len(), 1, "the page has its script: {scripts:?}");
    let script = attr(scripts[0].0, "src").expect("the script is a file");
    let sheet = r
        .body
        .split("<link ")
        .nth(1)
        .and_then(|l| attr(l, "href"))
        .expect("the page has its style sheet");
    assert!(
        r.body.len() < 6_000,
        "the page is a few kilobytes: {}",
        r.body.len()
    );
    // Both files: kept for good by their versioned URLs, answered 304 when current.
    for (url, kind) in [(script, "text/javascript"), (sheet, "text/css")] {
        let got = second.get(url, "*/*").await;
        assert_eq!(got.status, 200, "{url}");
        assert_eq!(
            got.header("content-type"),
            Some(&*format!("{kind}; charset=utf-8"))
        );
        assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            got.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        assert!(got.body.len() > 1_000, "{url}: {}", got.body);
        let etag = got.header("etag").expect("a validator").to_string();
        let again = second
            .send("GET", url, &[("if-none-match", &etag)], "")
            .await;
        assert_eq!((again.status.as_u16(), again.body.as_str()), (304, ""));
        // Another build's URL is not kept for good.
        let path = url.split('?').next().unwrap_or(url);
        let other = second.get(&format!("{path}?v=0"), "*/*").await;
        assert_eq!(other.status, 200);
        assert_eq!(other.header("cache-control"), Some("no-cache"));
        let post = second.send("POST", path, &[], "").await;
        assert_eq!(post.status, 405, "{url}");
    }
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| directive(c, "style-src") == ["'self'"]),
        "{:?}",
        r.header("content-security-policy")
    );
    let r = second.get("/__anteroom/status", JSON).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = second.get("/", JSON).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let r = second
        .send("POST", "/__anteroom/leave", &[("accept", BROWSER)], "")
        .await;
    assert_eq!(r.status, 200);
    assert_gateway_page(&r, "left page");

    // The closed page, the error page (origin down), and a plain-text answer.
    let r = gw.client("shut.test").get("/", BROWSER).await;
    assert_eq!(r.status, 503);
    assert_gateway_page(&r, "closed page");
    let r = gw.client("down.test").get("/", BROWSER).await;
    assert_eq!(r.status, 502);
    assert_gateway_page(&r, "error page");
    let r = gw.client("nowhere.test").get("/", BROWSER).await;
    assert_eq!(r.status, 421);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("content-security-policy").is_none());
}

#[tokio::test]
async fn an_operators_page_gets_hashes_for_fixed_blocks_and_a_fresh_nonce_for_templated_ones() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("custom.html");
    std::fs::write(
        &page,
        "<!doctype html><html><head><title>Wait</title>\n\
         <style>body{color:#222}</style>\n\
         <style>.bar{width:{{ progress_percent }}%}</style>\n\
         </head><body><p>{{ room }} {{ state }}</p>\n\
         <script>document.title = 'still waiting';</script>\n\
         </body></html>\n",
    )
    .unwrap();
    let extra = format!("active_users = 1\npage = {:?}", page.display().to_string());
    let config = base_config("50ms") + &room("own", "own.test", &origin.url(), &extra);
    let gw = Gateway::start(&config).await;
    let r = gw.client("own.test").get("/", BROWSER).await;
    assert_eq!(r.status, 200);

    let mut nonces = Vec::new();
    for _ in 0..2 {
        let r = gw.client("own.test").get("/", BROWSER).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let csp = r.header("content-security-policy").expect("a policy");
        let styles = blocks(&r.body, "style");
        assert_eq!(styles.len(), 2, "{}", r.body);
        // The fixed block by its hash, the templated one by the nonce of this answer only.
        assert!(
            directive(csp, "style-src").contains(&sha256(styles[0].1).as_str()),
            "{csp}"
        );
        let (head, body) = styles[1];
        assert!(body.starts_with(".bar{width:"), "{body}");
        let nonce = head
            .split("nonce=\"")
            .nth(1)
            .and_then(|n| n.split('"').next())
            .unwrap_or_else(|| panic!("no nonce on {head}"));
        assert!(nonce.len() >= 16, "{nonce}");
        let source = format!("'nonce-{nonce}'");
        assert!(
            directive(csp, "style-src").contains(&source.as_str()),
            "{csp}"
        );
        let (_, script) = blocks(&r.body, "script")[0];
        assert!(
            directive(csp, "script-src").contains(&sha256(script).as_str()),
            "{csp}"
        );
        nonces.push(nonce.to_string());
    }
    assert_ne!(nonces[0], nonces[1], "a nonce is used once");
}

/// A closed page is rendered once per room as the operator's overrides make it: a changed
/// message shows at once, and a templated inline block still gets a fresh nonce each time (such
/// a page is never kept).
#[tokio::test]
async fn a_closed_page_follows_overrides_and_never_reuses_a_nonce() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("closed.html");
    std::fs::write(
        &page,
        "<!doctype html><html><head><title>Closed</title>\n\
         <style>body{color:#222}</style>\n\
         <script>window.said = '{{ message }}';</script>\n\
         </head><body><p>{{ message }}</p></body></html>\n",
    )
    .unwrap();
    let extra = format!(
        "active_users = 1\nmode = \"reject\"\nmessage = \"first\"\nclosed_page = {:?}",
        page.display().to_string()
    );
    let config = base_config("50ms").replace(
        "http = \"127.0.0.1:0\"\n",
        "http = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n",
    ) + &room("shut", "shut.test", &origin.url(), &extra)
        + &room(
            "plain",
            "plain.test",
            &origin.url(),
            "active_users = 1\nmode = \"reject\"",
        );
    let gw = Gateway::start(&config).await;
    let nonce_of = |body: &str| {
        let (head, _) = blocks(body, "script")[0];
        head.split("nonce=\"")
            .nth(1)
            .and_then(|n| n.split('"').next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no nonce on {head}"))
    };
    let a = gw.client("shut.test").get("/", BROWSER).await;
    let b = gw.client("shut.test").get("/", BROWSER).await;
    for r in [&a, &b] {
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(r.body.contains("<p>first</p>"), "{}", r.body);
        let csp = r.header("content-security-policy").expect("a policy");
        let source = format!("'nonce-{}'", nonce_of(&r.body));
        assert!(
            directive(csp, "script-src").contains(&source.as_str()),
            "{csp}"
        );
    }
    assert_ne!(nonce_of(&a.body), nonce_of(&b.body), "a nonce is used once");

    Admin::of(&gw)
        .patch_ok("shut", r#"{"message": "second"}"#)
        .await;
    let c = gw.client("shut.test").get("/", BROWSER).await;
    assert_eq!(c.status, 503);
    assert!(
        c.body.contains("<p>second</p>"),
        "the override shows: {}",
        c.body
    );
    assert!(!c.body.contains("first"), "{}", c.body);

    // The built-in closed page has fixed blocks only: the same page and policy every time.
    let p1 = gw.client("plain.test").get("/", BROWSER).await;
    let p2 = gw.client("plain.test").get("/", BROWSER).await;
    assert_eq!(p1.status, 503);
    assert_eq!(p1.body, p2.body);
    assert_eq!(
        p1.header("content-security-policy"),
        p2.header("content-security-policy")
    );
}
