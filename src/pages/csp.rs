//! The Content-Security-Policy of the gateway's own pages: no source outside the page itself,
//! and the page's inline `<script>` and `<style>` blocks allowed one by one.
//!
//! A block whose text is fixed in the template is allowed by its sha256, computed once when the
//! template is loaded (the built-in pages and an operator's `page` / `closed_page` alike), so the
//! hot path only copies a header. A block whose text uses template values cannot be hashed at
//! load, and hashing what a response renders would allow whatever a value put there; such a
//! block instead gets `nonce="{{ csp_nonce }}"` written into its opening tag at load, and each
//! response a fresh random nonce. Only blocks written in the template are ever allowed: a value
//! cannot open a tag (values are HTML-escaped), and a nonce is good for one response.
//!
//! A page that loads anteroom's own script or style sheet (`waiting_js_url`, `waiting_css_url`
//! or a path under the reserved prefix) also allows `'self'` for scripts and styles: those
//! files are served from the page's own origin.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// The template variable a templated block's nonce attribute reads.
pub(super) const NONCE_VAR: &str = "csp_nonce";

/// What the policy must allow for one template.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Inline {
    scripts: BTreeSet<String>,
    styles: BTreeSet<String>,
    /// Some block uses template values (or the template reads `csp_nonce` itself).
    pub nonce: bool,
    /// The page loads anteroom's script or style sheet from its own origin.
    own_files: bool,
}

/// Finds the inline blocks of `source` (a template or a fixed page): the source to compile, with
/// a nonce attribute added to each templated block, and what the policy must allow.
pub(super) fn scan(source: &str) -> (String, Inline) {
    let lower = source.to_ascii_lowercase();
    let mut out = String::with_capacity(source.len() + 64);
    let mut inline = Inline {
        nonce: source.contains(NONCE_VAR),
        own_files: ["waiting_js_url", "waiting_css_url", super::RESERVED_PREFIX]
            .iter()
            .any(|s| source.contains(s)),
        ..Inline::default()
    };
    let mut at = 0;
    while let Some((tag, open)) = next_open(&lower, at) {
        let Some(head_len) = lower[open..].find('>') else {
            break;
        };
        let body = open + head_len + 1;
        let close = format!("</{tag}");
        let Some(body_len) = lower[body..].find(&close) else {
            break;
        };
        let head = &lower[open..body];
        let text = &source[body..body + body_len];
        out.push_str(&source[at..body]);
        // An external script (`src=`) has no inline text to allow; the policy blocks it.
        let external = tag == "script" && has_attr(head, "src");
        if !external && !text.trim().is_empty() {
            if templated(text) {
                inline.nonce = true;
                if !has_attr(head, "nonce") {
                    // Into the opening tag, before its `>`: `<script nonce="…">`.
                    out.pop();
                    out.push_str(&format!(" nonce=\"{{{{ {NONCE_VAR} }}}}\">"));
                }
            } else {
                let set = if tag == "script" {
                    &mut inline.scripts
                } else {
                    &mut inline.styles
                };
                set.insert(hash(text));
            }
        }
        out.push_str(text);
        at = body + body_len;
    }
    out.push_str(&source[at..]);
    (out, inline)
}

impl Inline {
    /// The header value, with `nonce` allowing this response's templated blocks.
    pub(super) fn policy(&self, nonce: Option<&str>) -> String {
        let sources = |hashes: &BTreeSet<String>| {
            let mut s: Vec<String> = Vec::with_capacity(hashes.len() + 2);
            if self.own_files {
                s.push("'self'".to_string());
            }
            s.extend(hashes.iter().cloned());
            if let Some(n) = nonce.filter(|_| self.nonce) {
                s.push(format!("'nonce-{n}'"));
            }
            if s.is_empty() {
                "'none'".to_string()
            } else {
                s.join(" ")
            }
        };
        // The page polls `/__anteroom/status` (and may listen to `/__anteroom/events`), submits
        // the leave form to itself, and may show a `data:` image; nothing else is fetched. A
        // page that loads anteroom's script may start its join challenge's worker
        // (`/__anteroom/pow-worker.js`), from the page's own origin only.
        let workers = if self.own_files { "'self'" } else { "'none'" };
        format!(
            "default-src 'none'; script-src {}; style-src {}; worker-src {workers}; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'",
            sources(&self.scripts),
            sources(&self.styles)
        )
    }
}

/// A fresh nonce: 128 random bits, base64url (CSP allows its alphabet, and HTML escaping of the
/// attribute leaves it as it is).
pub(super) fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The CSP source for a block, hashed as the browser sees it: HTML parsing turns CRLF and lone
/// CR into LF before the hash is checked, so a template saved with Windows line ends still
/// matches.
fn hash(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// Whether a block's text changes with template values: any expression, statement or comment.
fn templated(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The next `<script` or `<style` opening tag in `lower` from `from`: the tag and its offset.
fn next_open(lower: &str, from: usize) -> Option<(&'static str, usize)> {
    let mut at = from;
    loop {
        let i = at + lower[at..].find('<')?;
        for tag in ["script", "style"] {
            let rest = &lower[i + 1..];
            let opens = rest.strip_prefix(tag).is_some_and(|after| {
                after.starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            });
            if opens {
                return Some((tag, i));
            }
        }
        at = i + 1;
    }
}

/// Whether the opening tag `head` (lowercase) has the attribute `name`.
fn has_attr(head: &str, name: &str) -> bool {
    head.match_indices(name).any(|(i, _)| {
        let before = head[..i].chars().last();
        let after = head[i + name.len()..].trim_start().chars().next();
        before.is_some_and(|c| c.is_ascii_whitespace()) && matches!(after, Some('=' | '>' | '/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_blocks_are_hashed_and_templated_ones_get_a_nonce_attribute() {
        let src = "<head><STYLE media=\"all\">a{}</STYLE><style>b{width:{{ w }}%}</style>\n\
                   <script src=\"/x.js\"></script><script>go()</script>\
                   <script nonce=\"{{ csp_nonce }}\">{{ v }}</script></head>";
        let (out, inline) = scan(src);
        assert_eq!(
            out,
            "<head><STYLE media=\"all\">a{}</STYLE><style nonce=\"{{ csp_nonce }}\">b{width:{{ w }}%}</style>\n\
             <script src=\"/x.js\"></script><script>go()</script>\
             <script nonce=\"{{ csp_nonce }}\">{{ v }}</script></head>"
        );
        assert!(inline.nonce);
        assert_eq!(inline.styles, BTreeSet::from([hash("a{}")]));
        assert_eq!(inline.scripts, BTreeSet::from([hash("go()")]));
        let p = inline.policy(Some("N0nce"));
        assert!(p.starts_with("default-src 'none'; "), "{p}");
        assert!(
            p.contains(&format!("script-src {} 'nonce-N0nce';", hash("go()"))),
            "{p}"
        );
    }

    #[test]
    fn a_page_without_blocks_allows_no_script_or_style() {
        let (out, inline) = scan("<p>scripts<br>style</p><scripted>");
        assert_eq!(out, "<p>scripts<br>style</p><scripted>");
        assert!(!inline.nonce);
        let p = inline.policy(None);
        assert!(p.contains("script-src 'none'; style-src 'none';"), "{p}");
        assert!(p.ends_with("frame-ancestors 'none'"), "{p}");
    }

    #[test]
    fn a_page_loading_anteroom_files_allows_its_own_origin() {
        let (_, inline) = scan(
            "<link rel=\"stylesheet\" href=\"{{ waiting_css_url }}\">\
             <script src=\"{{ waiting_js_url }}\" defer></script><script>go()</script>",
        );
        let p = inline.policy(None);
        assert!(
            p.contains(&format!("script-src 'self' {};", hash("go()"))),
            "{p}"
        );
        assert!(p.contains("style-src 'self';"), "{p}");
        assert!(p.contains("worker-src 'self';"), "{p}");
        let (_, plain) = scan("<p>no script</p>");
        assert!(plain.policy(None).contains("worker-src 'none';"));
    }

    #[test]
    fn the_hash_is_the_one_browsers_compute() {
        // CSP Level 3's example: sha256 of `alert('Hello, world.');`.
        assert_eq!(
            hash("alert('Hello, world.');"),
            "'sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng='"
        );
        // The browser hashes the text after HTML parsing has made every line end an LF.
        assert_eq!(hash("a();\r\nb();\rc();"), hash("a();\nb();\nc();"));
    }
}
