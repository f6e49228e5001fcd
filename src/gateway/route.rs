//! Routing a request: its host (absolute-form authority first, then `Host`), case-folded with
//! the port stripped.

use http::Request;

use std::net::IpAddr;

use crate::config::Limits;
use crate::error::GatewayError;

/// Takes the page's language parameter (`anteroom_lang=<code>`, every one of them) out of the
/// request's query, so that neither the origin nor a page's links see it, and returns the first
/// value. Nothing is copied unless the query holds it.
pub fn take_lang<B>(req: &mut Request<B>) -> Option<String> {
    let name = crate::pages::lang::LANG_PARAM;
    let is_lang = |kv: &str| kv.split('=').next() == Some(name);
    let pq = req.uri().path_and_query()?;
    let query = pq.query()?;
    if !query.split('&').any(is_lang) {
        return None;
    }
    let value = query
        .split('&')
        .find(|kv| is_lang(kv))
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let kept: Vec<&str> = query.split('&').filter(|kv| !is_lang(kv)).collect();
    let target = if kept.is_empty() {
        pq.path().to_string()
    } else {
        format!("{}?{}", pq.path(), kept.join("&"))
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = target.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    Some(value)
}

/// Refuses what cannot be forwarded safely, before anything else looks at the request: a
/// target or headers over the limits, and HTTP/1 framing two parsers could read differently
/// (both `Content-Length` and `Transfer-Encoding`, a coding other than a final `chunked`,
/// `Content-Length` values that disagree or are not a number), and a declared body over
/// `max_body`.
pub fn check_request<B>(req: &Request<B>, limits: &Limits) -> Result<(), GatewayError> {
    // A tunnel would bypass the room entirely: anteroom forwards requests, never connections.
    if req.method() == http::Method::CONNECT {
        return Err(GatewayError::MethodNotAllowed);
    }
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_uri_bytes {
        return Err(GatewayError::UriTooLong);
    }
    let head: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if head > limits.max_header_bytes {
        return Err(GatewayError::HeadersTooLarge);
    }
    let h = req.headers();
    if h.get_all(http::header::HOST).iter().count() > 1 {
        return Err(GatewayError::BadRequest("more than one Host"));
    }
    let te: Vec<&http::HeaderValue> = h.get_all(http::header::TRANSFER_ENCODING).iter().collect();
    let cl: Vec<&http::HeaderValue> = h.get_all(http::header::CONTENT_LENGTH).iter().collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err(GatewayError::BadRequest(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        let codings: Vec<String> = te
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        // Exactly one coding, `chunked`, however many lines carry the list: any other coding
        // would be dropped on the way to the origin.
        if codings.len() != 1 || codings[0] != "chunked" {
            return Err(GatewayError::BadRequest(
                "a transfer coding other than chunked",
            ));
        }
    }
    let mut lengths = cl
        .iter()
        .flat_map(|v| v.to_str().ok().into_iter().flat_map(|s| s.split(',')))
        .map(|s| s.trim().parse::<u64>());
    if let Some(first) = lengths.next() {
        let first = first.map_err(|_| GatewayError::BadRequest("Content-Length"))?;
        if cl.iter().any(|v| v.to_str().is_err()) || lengths.any(|l| l != Ok(first)) {
            return Err(GatewayError::BadRequest("Content-Length values disagree"));
        }
        // Declared too large: refused before a byte of it is read.
        if first > limits.max_body {
            return Err(GatewayError::BodyTooLarge);
        }
    }
    Ok(())
}

/// Replaces the request's path by its normal form (see [`crate::target`]), keeping the query;
/// refuses with 400 a path whose meaning origins disagree on.
pub fn normalise_target<B>(req: &mut Request<B>) -> Result<(), GatewayError> {
    let uri = req.uri();
    let normal = match crate::target::normalise_path(uri.path()) {
        Ok(std::borrow::Cow::Borrowed(_)) => return Ok(()),
        Ok(std::borrow::Cow::Owned(p)) => p,
        Err(e) => return Err(GatewayError::BadRequest(e.reason())),
    };
    let target = match uri.query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        target
            .parse()
            .map_err(|_| GatewayError::BadRequest("request target"))?,
    );
    *req.uri_mut() =
        http::Uri::from_parts(parts).map_err(|_| GatewayError::BadRequest("request target"))?;
    Ok(())
}

/// Whether `ip` is one of the trusted proxies. Computed once per request for the peer, then
/// handed to [`client_ip`] and [`forwarded_https`].
pub fn is_trusted(trusted: &[ipnet::IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The client's address: the peer, or, when the peer is a trusted proxy (`peer_trusted`, see
/// [`is_trusted`]), the nearest address in `X-Forwarded-For` that is not itself a trusted proxy
/// (reading the chain from the right, so a client cannot choose its own address by sending the
/// header).
pub fn client_ip(
    trusted: &[ipnet::IpNet],
    peer: IpAddr,
    peer_trusted: bool,
    headers: &http::HeaderMap,
) -> IpAddr {
    if !peer_trusted {
        return peer;
    }
    let chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(trusted, ip) {
                    break;
                }
            }
            // Garbage in the chain: trust nothing further left of it.
            Err(_) => break,
        }
    }
    client
}

/// Whether a trusted proxy (`peer_trusted`, see [`is_trusted`]) says the client came over
/// HTTPS (`X-Forwarded-Proto: https`).
pub fn forwarded_https(peer_trusted: bool, headers: &http::HeaderMap) -> bool {
    peer_trusted
        && headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The host a request is for, lower-case, without port.
/// A `Host` that is present must be well-formed even when the authority of an absolute-form
/// target (or HTTP/2's `:authority`) is what routes the request (RFC 9112 section 3.2).
pub fn host_of<B>(req: &Request<B>) -> Result<String, GatewayError> {
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(GatewayError::BadRequest("more than one Host"));
    }
    let header = header
        .map(|h| {
            h.to_str()
                .ok()
                .and_then(crate::target::normalise_host)
                .ok_or(GatewayError::BadRequest("malformed Host"))
        })
        .transpose()?;
    match req.uri().authority() {
        Some(a) => crate::target::normalise_host(a.as_str())
            .ok_or(GatewayError::BadRequest("malformed authority")),
        None => header.ok_or(GatewayError::BadRequest("missing Host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_comes_from_the_chain_only_through_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = http::HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        h.append("x-forwarded-for", "10.1.1.1".parse().unwrap());
        let lb: IpAddr = "10.0.0.2".parse().unwrap();
        let outsider: IpAddr = "198.51.100.4".parse().unwrap();
        let client = |trusted: &[ipnet::IpNet], peer: IpAddr, h: &http::HeaderMap| {
            client_ip(trusted, peer, is_trusted(trusted, peer), h)
        };
        // From the load balancer: the first address not ours, from the right.
        assert_eq!(
            client(&trusted, lb, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // From anyone else the header is ignored.
        assert_eq!(client(&trusted, outsider, &h), outsider);
        assert_eq!(client(&[], lb, &h), lb);
        let mut bad = http::HeaderMap::new();
        bad.append("x-forwarded-for", "6.6.6.6, junk".parse().unwrap());
        assert_eq!(client(&trusted, lb, &bad), lb);
    }

    #[test]
    fn only_a_trusted_proxy_says_https() {
        let mut h = http::HeaderMap::new();
        h.append("x-forwarded-proto", "HTTPS".parse().unwrap());
        assert!(forwarded_https(true, &h));
        assert!(!forwarded_https(false, &h));
        assert!(!forwarded_https(true, &http::HeaderMap::new()));
    }

    #[test]
    fn absolute_form_wins_over_host() {
        let req = Request::builder()
            .uri("http://shop.example/x")
            .header("host", "other.example")
            .body(())
            .unwrap();
        assert_eq!(host_of(&req).unwrap(), "shop.example");
        let two = Request::builder()
            .uri("/x")
            .header("host", "a")
            .header("host", "b")
            .body(())
            .unwrap();
        assert!(host_of(&two).is_err());
    }
}
