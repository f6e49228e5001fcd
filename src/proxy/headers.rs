//! Header rewriting between client and origin: hop-by-hop removal (RFC 9110 section 7.6.1),
//! forwarding headers, and keeping anteroom's own cookie and token away from the origin.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Headers some origin stacks (IIS URL Rewrite, older Symfony and Zend) take as the real path
/// over the request line's. anteroom decides on the request line's path, so they never reach
/// an origin: a bypass path must not carry a queued one along.
pub const PATH_OVERRIDES: [HeaderName; 2] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// The header native apps use to carry their token.
pub const TOKEN_HEADER: &str = "anteroom-token";
/// The origin's command header (`Anteroom-Command: revoke`), never shown to clients.
pub const COMMAND_HEADER: &str = "anteroom-command";

/// Refuses an origin answer whose body two parsers could frame differently: both
/// `Content-Length` and `Transfer-Encoding`, a transfer coding list not ending in `chunked`,
/// or `Content-Length` values that disagree or are not numbers.
pub fn check_response_framing(h: &HeaderMap) -> Result<(), String> {
    let te = h.get_all(header::TRANSFER_ENCODING);
    let cl = h.get_all(header::CONTENT_LENGTH);
    if te.iter().next().is_some() {
        if cl.iter().next().is_some() {
            return Err("both Content-Length and Transfer-Encoding".into());
        }
        let last = te
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        if !last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")) {
            return Err("a transfer coding other than a final chunked".into());
        }
    }
    let mut lengths = cl
        .iter()
        .flat_map(|v| v.to_str().ok().into_iter().flat_map(|s| s.split(',')))
        .map(|s| s.trim().parse::<u64>().ok());
    if let Some(first) = lengths.next()
        && (first.is_none() || lengths.any(|l| l != first))
    {
        return Err("Content-Length values disagree or are not numbers".into());
    }
    Ok(())
}

/// Removes hop-by-hop headers, including every header named in `Connection`, and `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// The protocols a request asks to switch to (`Connection: upgrade` with `Upgrade`), unless
/// one is `h2c`: that upgrade is for this hop only and is never forwarded.
pub fn upgrade_asked(headers: &HeaderMap) -> Option<HeaderValue> {
    let proto = headers.get(header::UPGRADE)?;
    let named = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let h2c = proto
        .to_str()
        .ok()?
        .split(',')
        .any(|p| p.trim().to_ascii_lowercase().starts_with("h2c"));
    (named && !h2c).then(|| proto.clone())
}

/// Puts back the two headers an upgrade needs after hop-by-hop headers were removed.
pub fn keep_upgrade(headers: &mut HeaderMap, proto: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, proto);
}

/// The `name=value` pairs of a `Cookie` header, as bytes: browsers send raw UTF-8 in cookie
/// values, so a header is never required to be ASCII.
fn pairs(v: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    v.as_bytes()
        .split(|b| *b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

fn pair_name(pair: &[u8]) -> &[u8] {
    pair.split(|b| *b == b'=')
        .next()
        .unwrap_or(pair)
        .trim_ascii()
}

/// Removes the `name` cookie from every `Cookie` header, dropping headers left empty. Both
/// spellings go: a visitor may carry the `__Host-` cookie of HTTPS and the plain one of HTTP,
/// and neither is the origin's business. Headers without it are left as they are (no copy).
pub fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    let ours = |p: &[u8]| {
        let n = pair_name(p);
        n == name.as_bytes() || n.strip_prefix(b"__Host-") == Some(name.as_bytes())
    };
    let carries = |v: &HeaderValue| pairs(v).any(ours);
    if !headers.get_all(header::COOKIE).iter().any(carries) {
        return;
    }
    let mut kept = Vec::new();
    for v in headers.get_all(header::COOKIE) {
        if !carries(v) {
            kept.push(v.clone());
            continue;
        }
        let mut rest = Vec::new();
        for p in pairs(v).filter(|p| !ours(p)) {
            if !rest.is_empty() {
                rest.extend_from_slice(b"; ");
            }
            rest.extend_from_slice(p);
        }
        if !rest.is_empty()
            && let Ok(v) = HeaderValue::from_bytes(&rest)
        {
            kept.push(v);
        }
    }
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// The value of cookie `name`, if any `Cookie` header carries it (and it is text).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(pairs)
        .find(|p| pair_name(p) == name.as_bytes())
        .and_then(|p| {
            let value = p.splitn(2, |b| *b == b'=').nth(1)?;
            std::str::from_utf8(value.trim_ascii()).ok()
        })
        .map(|v| v.trim_matches('"'))
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Sets `X-Forwarded-For`, `-Proto`, `-Host`, and appends to `Via`. A client's own
/// `X-Forwarded-For` and `Forwarded` are replaced by the peer address, unless the peer is a
/// trusted proxy: then the peer is appended to the chain it sent. One allocation in the common
/// case (the peer's address); the Host the client sent is reused when it is the host itself.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: IpAddr,
    trusted: bool,
    proto: &'static str,
    host: &str,
) {
    use std::io::Write as _;
    // The peer's address, written on the stack (an IPv6 address is at most 45 bytes).
    let mut at = std::io::Cursor::new([0u8; 64]);
    let _ = write!(at, "{peer}");
    let len = usize::try_from(at.position()).unwrap_or(0);
    let peer = &at.get_ref()[..len];
    let value = if trusted {
        // The chain a trusted proxy sent, then the peer.
        let mut xff = Vec::new();
        for v in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = v.to_str() {
                xff.extend_from_slice(v.as_bytes());
                xff.extend_from_slice(b", ");
            }
        }
        xff.extend_from_slice(peer);
        HeaderValue::from_bytes(&xff)
    } else {
        // Every way a client could claim another address, from anyone but a trusted proxy.
        for h in ["forwarded", "x-real-ip", "true-client-ip"] {
            headers.remove(h);
        }
        HeaderValue::from_bytes(peer)
    };
    match value {
        Ok(v) => {
            headers.insert(X_FORWARDED_FOR, v);
        }
        Err(_) => {
            headers.remove(&X_FORWARDED_FOR);
        }
    }
    // A trusted proxy in front (a TLS-terminating load balancer) knows the original scheme and
    // host better than this hop does.
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        let sent = headers
            .get(header::HOST)
            .filter(|v| v.as_bytes() == host.as_bytes())
            .cloned();
        match sent.map_or_else(|| HeaderValue::from_str(host), Ok) {
            Ok(v) => {
                headers.insert(X_FORWARDED_HOST, v);
            }
            Err(_) => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    headers.append(header::VIA, HeaderValue::from_static("1.1 anteroom"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept"]);
    }

    #[test]
    fn upgrades_are_asked_with_connection_upgrade_and_never_for_h2c() {
        let ws = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_asked(&ws).unwrap(), "websocket");
        let bare = map(&[("upgrade", "websocket")]);
        assert!(upgrade_asked(&bare).is_none());
        let h2c = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert!(upgrade_asked(&h2c).is_none());
    }

    #[test]
    fn cookie_stripping_table() {
        let cases: &[(&[&'static str], &[&str])] = &[
            (&["anteroom_shop=abc"], &[]),
            (&["a=1; anteroom_shop=abc; b=2"], &["a=1; b=2"]),
            (&["anteroom_shop=abc", "c=3"], &["c=3"]),
            (&["anteroom_shopping=1"], &["anteroom_shopping=1"]),
            (&["__Host-anteroom_shop=x; anteroom_shop=y; z=1"], &["z=1"]),
            (
                &["__Host-anteroom_shopping=1"],
                &["__Host-anteroom_shopping=1"],
            ),
        ];
        for (input, want) in cases {
            let mut h = HeaderMap::new();
            for v in *input {
                h.append(header::COOKIE, HeaderValue::from_static(v));
            }
            strip_cookie(&mut h, "anteroom_shop");
            let got: Vec<&str> = h
                .get_all(header::COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(&got, want, "{input:?}");
        }
    }

    #[test]
    fn finds_cookie_values() {
        let h = map(&[("cookie", "a=1; anteroom_shop=tok; b=2")]);
        assert_eq!(cookie(&h, "anteroom_shop"), Some("tok"));
        assert_eq!(cookie(&h, "anteroom"), None);
    }

    #[test]
    fn raw_utf8_in_other_cookies_neither_hides_nor_leaks_ours() {
        let raw = HeaderValue::from_bytes("anteroom_shop=tok; city=München".as_bytes()).unwrap();
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, raw);
        assert_eq!(cookie(&h, "anteroom_shop"), Some("tok"));
        strip_cookie(&mut h, "anteroom_shop");
        assert_eq!(h[header::COOKIE].as_bytes(), "city=München".as_bytes());
    }

    #[test]
    fn forwarded_headers_replace_client_values() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("true-client-ip", "6.6.6.6"),
        ]);
        set_forwarded(
            &mut h,
            "10.0.0.1".parse().unwrap(),
            false,
            "http",
            "shop.example",
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert!(h.get("forwarded").is_none());
        assert!(h.get("x-real-ip").is_none() && h.get("true-client-ip").is_none());
        assert_eq!(h["via"], "1.1 anteroom");
        // From a trusted proxy the chain is kept and the peer appended.
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.2"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        set_forwarded(
            &mut h,
            "10.0.0.1".parse().unwrap(),
            true,
            "https",
            "shop.example",
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 198.51.100.2, 10.0.0.1");
        assert_eq!(h["forwarded"], "for=203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        // A TLS-terminating proxy's scheme and host are kept.
        let mut h = map(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example"),
        ]);
        set_forwarded(
            &mut h,
            "10.0.0.1".parse().unwrap(),
            true,
            "http",
            "internal",
        );
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "shop.example");
    }
}
