//! Routing a request: its host (absolute-form authority first, then `Host`), case-folded with
//! the port stripped.

use http::Request;

use crate::error::GatewayError;

/// The host a request is for, lower-case, without port.
pub fn host_of<B>(req: &Request<B>) -> Result<String, GatewayError> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str().to_string(),
        None => {
            let mut hosts = req.headers().get_all(http::header::HOST).iter();
            let first = hosts
                .next()
                .ok_or(GatewayError::BadRequest("missing Host"))?;
            if hosts.next().is_some() {
                return Err(GatewayError::BadRequest("more than one Host"));
            }
            first
                .to_str()
                .map_err(|_| GatewayError::BadRequest("Host is not text"))?
                .to_string()
        }
    };
    normalize(&raw).ok_or(GatewayError::BadRequest("malformed Host"))
}

/// `Shop.Example:8080` -> `shop.example`; `[::1]:80` -> `[::1]`; strips userinfo.
pub fn normalize(raw: &str) -> Option<String> {
    let raw = raw.rsplit('@').next()?.trim();
    let host = if raw.starts_with('[') {
        let end = raw.find(']')?;
        &raw[..=end]
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let cases = [
            ("Shop.Example", Some("shop.example")),
            ("shop.example:8080", Some("shop.example")),
            ("shop.example.", Some("shop.example")),
            ("[::1]:80", Some("[::1]")),
            ("127.0.0.1:1", Some("127.0.0.1")),
            ("user@host:1", Some("host")),
            ("", None),
            ("a b", None),
            ("host:port", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), want, "{raw:?}");
        }
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
