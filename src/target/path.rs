//! The path an origin will act on. Every decision that looks at a path (the reserved prefix, the
//! bypass list) is made on the normalised path, and the origin receives exactly that path, so
//! no spelling of a target can be read one way by anteroom and another way by the origin.
//!
//! Normalisation (RFC 3986 section 6.2.2, as HAProxy's `normalize-uri` and nginx do it):
//! - percent-escapes of unreserved characters are decoded (`%2e` is `.`, `%7E` is `~`), every
//!   other escape is kept with upper-case hex;
//! - runs of slashes are merged (`//` is `/`: nginx's `merge_slashes`, so that `/a//../b` means
//!   `/b` to both sides);
//! - dot segments are removed (`/a/./b/../c` is `/a/c`; `..` never climbs above `/`).
//!
//! Refused with 400, because origins disagree on what they mean and no single reading is safe:
//! - an encoded slash (`%2F`) or backslash (`%5C`), and a raw backslash: nginx decodes `%2F` into
//!   a separator, Apache refuses it by default, IIS and Windows take `\` for `/`;
//! - a dot segment carrying parameters (`..;x`, `.;`, `..%3B`): Java servlet containers drop the
//!   parameters and then climb, everyone else sees a plain name;
//! - an escaped NUL, escapes that only an overlong UTF-8 encoding produces (`%C0%AE` for `.`),
//!   and bytes no UTF-8 text holds (`%F5` to `%FF`);
//! - a `%` not followed by two hex digits.
//!
//! A path that is already normal (the usual case) is returned as it is, without allocating.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F`, `%5C` or `\`.
    EncodedSeparator,
    /// `..;x` and the like.
    DotSegmentParameters,
    /// `%00`, an overlong UTF-8 escape, or a broken escape.
    BadEscape,
}

impl PathError {
    pub fn reason(self) -> &'static str {
        match self {
            PathError::EncodedSeparator => "an encoded or backslash separator in the path",
            PathError::DotSegmentParameters => "a dot segment with parameters in the path",
            PathError::BadEscape => "a malformed or forbidden escape in the path",
        }
    }
}

/// The normal form of `path` (the path of a request target, without its query).
pub fn normalise(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        // `*` (OPTIONS) and the like: no path to resolve.
        return Ok(Cow::Borrowed(path));
    }
    if is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(path.as_bytes())?;
    Ok(Cow::Owned(remove_dot_segments(&decoded)?))
}

/// No escape, no backslash, no empty segment, no segment starting with a dot.
fn is_normal(p: &[u8]) -> bool {
    !p.iter().any(|b| *b == b'%' || *b == b'\\')
        && !p
            .windows(2)
            .any(|w| w[0] == b'/' && (w[1] == b'/' || w[1] == b'.'))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The byte escaped at `p[i..i + 3]`, if there is a well-formed escape there.
fn escaped(p: &[u8], i: usize) -> Option<u8> {
    match (p.get(i), p.get(i + 1), p.get(i + 2)) {
        (Some(b'%'), Some(h), Some(l)) => Some(hex(*h)? << 4 | hex(*l)?),
        _ => None,
    }
}

/// Decodes the escapes of unreserved characters, upper-cases the rest, refuses the ones no
/// origin agrees on. Raw bytes (UTF-8 the parser let through) are copied as they are.
fn decode_unreserved(p: &[u8]) -> Result<String, PathError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => return Err(PathError::EncodedSeparator),
            b'%' => {
                let b = escaped(p, i).ok_or(PathError::BadEscape)?;
                match b {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    _ if unreserved(b) => out.push(b),
                    _ if overlong(b, escaped(p, i + 3)) => return Err(PathError::BadEscape),
                    _ => out.extend_from_slice(&[
                        b'%',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 0xF)],
                    ]),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII was added to the input's bytes, which were a `str`.
    String::from_utf8(out).map_err(|_| PathError::BadEscape)
}

/// An escaped byte no valid UTF-8 text contains, or that starts an overlong spelling of a
/// shorter character (`%C0%AE` and `%E0%80%AE` are `.` to a lax decoder): NUL, `C0`, `C1`, `F5`
/// to `FF`, and `E0`/`F0` before a second byte that only an overlong sequence has.
fn overlong(b: u8, next: Option<u8>) -> bool {
    match b {
        0 | 0xC0 | 0xC1 | 0xF5..=0xFF => true,
        0xE0 => next.is_some_and(|n| (0x80..0xA0).contains(&n)),
        0xF0 => next.is_some_and(|n| (0x80..0x90).contains(&n)),
        _ => false,
    }
}

/// RFC 3986 section 5.2.4 over slash-merged segments. `path` starts with `/`.
fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut last_dot = false;
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        // Parameters start at `;`, or at `%3B` for a stack that decodes before it strips them.
        let bare = seg.split(';').next().unwrap_or(seg);
        let bare = bare.split("%3B").next().unwrap_or(bare);
        last_dot = bare == "." || bare == "..";
        if last_dot && bare.len() != seg.len() {
            return Err(PathError::DotSegmentParameters);
        }
        match bare {
            "." => {}
            ".." => {
                kept.pop();
            }
            _ => kept.push(seg),
        }
    }
    // A path ending in a dot segment names a directory: `/a/b/..` is `/a/`.
    let trailing_slash = path.ends_with('/') || last_dot;
    let mut out = String::with_capacity(path.len());
    for seg in &kept {
        out.push('/');
        out.push_str(seg);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        for p in ["/", "/a", "/a/b/", "/a.b/c..d/x.", "/x;y", "*", "/~u/-_."] {
            assert!(matches!(normalise(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn table() {
        use PathError::*;
        let ok = |s: &str| Ok::<String, PathError>(s.to_string());
        let cases: &[(&str, Result<String, PathError>)] = &[
            ("/static/../checkout", ok("/checkout")),
            ("/static/./x", ok("/static/x")),
            ("/a/b/..", ok("/a/")),
            ("/a/b/.", ok("/a/b/")),
            ("/..", ok("/")),
            ("/../../etc/passwd", ok("/etc/passwd")),
            ("//", ok("/")),
            ("/static//../checkout", ok("/checkout")),
            ("/static/%2e%2e/checkout", ok("/checkout")),
            ("/static/%2E%2E/checkout", ok("/checkout")),
            ("/static/.%2e/checkout", ok("/checkout")),
            ("/%7euser/%41", ok("/~user/A")),
            ("/a%20b/%3f", ok("/a%20b/%3F")),
            ("/%5F%5Fanteroom/status", ok("/__anteroom/status")),
            ("/static/..%2fcheckout", Err(EncodedSeparator)),
            ("/static/..%2Fcheckout", Err(EncodedSeparator)),
            ("/static/..%5ccheckout", Err(EncodedSeparator)),
            ("/static\\..\\checkout", Err(EncodedSeparator)),
            ("/static/..;/checkout", Err(DotSegmentParameters)),
            ("/static/.;x/checkout", Err(DotSegmentParameters)),
            ("/static/%2e%2e;a=b/checkout", Err(DotSegmentParameters)),
            ("/x;a=b/y", ok("/x;a=b/y")),
            ("/static/%c0%ae%c0%ae/checkout", Err(BadEscape)),
            ("/static/%e0%80%ae/checkout", Err(BadEscape)),
            ("/static/%f0%80%80%ae/checkout", Err(BadEscape)),
            ("/a%00b", Err(BadEscape)),
            ("/a%zz", Err(BadEscape)),
            ("/a%2", Err(BadEscape)),
            ("/caf%c3%a9", ok("/caf%C3%A9")),
            ("/café/%41", ok("/café/A")),
            ("/café//x", ok("/café/x")),
            ("/static/..%3B/checkout", Err(DotSegmentParameters)),
            ("/static/.%3bx/checkout", Err(DotSegmentParameters)),
            ("/a%3Bb/c", ok("/a%3Bb/c")),
            ("/static/%f8%80%80%80%ae/x", Err(BadEscape)),
            ("/static/%ff/x", Err(BadEscape)),
            ("/%252e%252e/x", ok("/%252e%252e/x")),
            ("/.../x", ok("/.../x")),
            ("/.hidden/x", ok("/.hidden/x")),
        ];
        for (raw, want) in cases {
            assert_eq!(
                normalise(raw).map(Cow::into_owned),
                *want,
                "normalise({raw:?})"
            );
        }
    }

    proptest::proptest! {
        /// The normal form is a fixed point, has no dot segment and no empty segment.
        #[test]
        fn normal_form_is_stable(segs in proptest::collection::vec(
            proptest::sample::select(vec!["a", ".", "..", "%2e", "%2E%2e", "", "b;c", "%41", "~"]),
            0..8,
        )) {
            let p = format!("/{}", segs.join("/"));
            if let Ok(n) = normalise(&p) {
                let n = n.into_owned();
                proptest::prop_assert_eq!(normalise(&n).map(Cow::into_owned), Ok(n.clone()));
                proptest::prop_assert!(n.starts_with('/'));
                proptest::prop_assert!(!n.contains("//"));
                proptest::prop_assert!(n.split('/').all(|s| s != "." && s != ".."));
            }
        }
    }
}
