//! A room's `cors_origins`: the web origins whose pages may call the public endpoints.

use http::uri::Uri;

use super::super::file::RoomFile;
use super::super::locate::Seg;
use super::{Validator, room_key};

impl Validator<'_> {
    /// `cors_origins`: each one origin as a browser sends it in `Origin` (`scheme://host[:port]`,
    /// no path), kept lower-case with a default port dropped. `"*"` is refused: the endpoints
    /// answer with the visitor's token, so only named sites may read them.
    pub(super) fn cors_origins(&mut self, i: usize, r: &RoomFile) -> Vec<String> {
        let mut out = Vec::new();
        for (j, o) in r.cors_origins.iter().enumerate() {
            match web_origin(o) {
                Ok(o) => out.push(o),
                Err(problem) => {
                    let mut p = room_key(i, "cors_origins");
                    p.push(Seg::Index(j));
                    self.error(&p, problem);
                }
            }
        }
        out
    }
}

/// The normal form of one `cors_origins` entry, or why it is refused.
pub(in crate::config) fn web_origin(s: &str) -> Result<String, String> {
    if s == "*" {
        return Err(
            "\"*\" is not allowed: name each site, e.g. \"https://app.example.com\"".into(),
        );
    }
    let bad = || {
        format!(
            "{s:?} is not an origin: write scheme://host[:port], e.g. \"https://app.example.com\""
        )
    };
    let uri: Uri = s.parse().map_err(|_| bad())?;
    let scheme = uri
        .scheme_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(bad)?;
    if scheme != "http" && scheme != "https" {
        return Err(format!("{s:?}: the scheme must be http or https"));
    }
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(bad());
    }
    if !s.ends_with(authority.as_str()) {
        return Err(format!(
            "{s:?}: an origin has no path, query or trailing slash"
        ));
    }
    let host = authority.host().to_ascii_lowercase();
    let default = if scheme == "https" { 443 } else { 80 };
    Ok(match authority.port_u16() {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::web_origin;

    #[test]
    fn origins_are_kept_in_the_form_browsers_send() {
        for (given, kept) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.com:443", "https://app.example.com"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://localhost:80", "http://localhost"),
            ("https://[::1]:9443", "https://[::1]:9443"),
        ] {
            assert_eq!(web_origin(given).as_deref(), Ok(kept), "{given}");
        }
    }

    #[test]
    fn anything_but_an_origin_is_refused() {
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?x=1",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "",
        ] {
            assert!(web_origin(bad).is_err(), "{bad} was taken");
        }
    }
}
