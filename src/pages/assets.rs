//! The waiting page's script, style sheet and join-challenge worker, and the OpenAPI document of
//! the APIs, served under the reserved prefix so that a page is a few kilobytes and a browser
//! fetches them once: their URLs carry a hash of their content, so an answer to such a URL may be
//! kept for a year, and a new build's files get new URLs.

use std::sync::LazyLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// One file built into the binary.
pub struct Asset {
    /// The name under the reserved prefix (`waiting.js`).
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: Bytes,
    /// The first 16 hex digits of the content's SHA-256.
    pub version: String,
    /// The URL pages use: the path and `?v=` the version.
    pub url: String,
    /// The strong validator, quoted.
    pub etag: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, text: &'static str) -> Self {
        let digest = Sha256::digest(text.as_bytes());
        let version: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Asset {
            name,
            content_type,
            body: Bytes::from_static(text.as_bytes()),
            url: format!("{}{name}?v={version}", super::RESERVED_PREFIX),
            etag: format!("\"{version}\""),
            version,
        }
    }

    /// Whether a request's query names this build of the file (`v=<version>`), so the answer
    /// may be cached for good.
    pub fn versioned(&self, query: Option<&str>) -> bool {
        query.is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("v=") == Some(self.version.as_str()))
        })
    }

    /// Whether `If-None-Match` holds this file's validator (or `*`).
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == self.etag)
    }
}

static ASSETS: LazyLock<[Asset; 4]> = LazyLock::new(|| {
    [
        Asset::new(
            "waiting.js",
            "text/javascript; charset=utf-8",
            include_str!("../../pages/waiting.js"),
        ),
        Asset::new(
            "waiting.css",
            "text/css; charset=utf-8",
            include_str!("../../pages/waiting.css"),
        ),
        // The join challenge's solver: a Web Worker needs a script URL of the page's origin.
        Asset::new(
            "pow-worker.js",
            "text/javascript; charset=utf-8",
            include_str!("../../pages/pow-worker.js"),
        ),
        Asset::new(
            "openapi.yaml",
            "application/yaml",
            include_str!("../../openapi.yaml"),
        ),
    ]
});

/// The file served as `name` under the reserved prefix, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The versioned URL of a built-in file, for templates.
pub fn url(name: &str) -> &'static str {
    find(name).map_or("", |a| a.url.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash_and_validators_match() {
        let js = find("waiting.js").expect("the script is built in");
        assert!(js.url.starts_with("/__anteroom/waiting.js?v="));
        assert_eq!(js.version.len(), 16);
        assert!(js.versioned(Some(&format!("x=1&v={}", js.version))));
        assert!(!js.versioned(Some("v=0000000000000000")));
        assert!(!js.versioned(None));
        assert!(js.matches(&format!("\"nope\", W/{}", js.etag)));
        assert!(js.matches("*"));
        assert!(!js.matches("\"nope\""));
        assert_ne!(url("waiting.js"), url("waiting.css"));
        assert!(find("other.js").is_none());
    }
}
