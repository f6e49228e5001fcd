//! The host a request is routed by, in its one normal form.

/// `Shop.Example:8080` -> `shop.example`; `[::1]:80` -> `[::1]`. Only RFC 9110's
/// `uri-host [ ":" port ]` with a DNS name or an IP literal passes: userinfo (`a@b`), escapes,
/// sub-delimiters, spaces, slashes and ports that are not a number are refused, so a request is
/// never routed by one name while the origin reads another.
pub fn normalise_host(raw: &str) -> Option<String> {
    let (host, port) = match raw.strip_prefix('[') {
        Some(rest) => {
            let end = rest.find(']')?;
            let literal = &rest[..end];
            let ip_chars = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
            if literal.is_empty() || !literal.bytes().all(ip_chars) {
                return None;
            }
            (&raw[..end + 2], &rest[end + 1..])
        }
        None => raw.split_at(raw.find(':').unwrap_or(raw.len())),
    };
    match port.strip_prefix(':') {
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {}
        None if port.is_empty() => {}
        _ => return None,
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let name_chars = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    // No empty label (`a..b`, `.a`, `a..`): one spelling per name, so a room's host is never
    // missed in favour of the default room while the origin reads it as that host.
    let labels_ok = host.split('.').all(|l| !l.is_empty());
    if !(host.starts_with('[') || (labels_ok && host.bytes().all(name_chars))) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_table() {
        let cases = [
            ("Shop.Example", Some("shop.example")),
            ("shop.example:8080", Some("shop.example")),
            ("shop.example.", Some("shop.example")),
            ("[::1]:80", Some("[::1]")),
            ("127.0.0.1:1", Some("127.0.0.1")),
            ("shop.example:", Some("shop.example")),
            ("[2001:db8::1]", Some("[2001:db8::1]")),
            ("_dmarc.example", Some("_dmarc.example")),
            ("user@host:1", None),
            ("queued.test@fwd.test", None),
            ("shop.test:1@open.test", None),
            ("[::1]@open.test", None),
            ("a%2eb", None),
            ("a,b", None),
            ("a;b", None),
            ("a/b", None),
            ("a\\b", None),
            ("a\tb", None),
            ("[fe80::1%25eth0]", None),
            ("[]", None),
            ("[::1", None),
            ("[::1]x", None),
            ("host:80:80", None),
            ("host:123456", None),
            ("host: 80", None),
            ("", None),
            (".", None),
            ("queued.test..", None),
            ("a..b", None),
            (".a", None),
            (":80", None),
            ("a b", None),
            ("host:port", None),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise_host(raw).as_deref(), want, "{raw:?}");
        }
    }
}
