//! Strict checks of an operator's template at load: every variable it reads must be one its
//! page really has (the keys of the page's context, taken from the context builders with sample
//! values, and the environment's globals), or the load is refused naming the file, the line and
//! the variable, with the closest known name.

use minijinja::Value;

use super::lang::{Prefs, RoomText};
use super::{Flags, Speech, closed_context, error_context, waiting_context};
use crate::room::{View, ViewState};

/// Which page a template is: each has its own context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    Waiting,
    Closed,
    Error,
}

/// A context of `kind` with sample values (a queued visitor with a place, a closed room, a
/// 502), in the first shipped language, for room `room`.
pub fn sample(kind: PageKind, room: &str) -> Value {
    let text = RoomText::shipped();
    let speech = Speech {
        room,
        text: &text,
        lang: text.choose(&Prefs::default()),
        site: "example.com",
        here: "/",
    };
    match kind {
        PageKind::Waiting => {
            let view = View {
                position: Some(12),
                estimated_wait_seconds: Some(90),
                release_rate_per_minute: 8.0,
                progress_percent: 30,
                ..View::without_place(ViewState::Queued, 40, 5)
            };
            let flags = Flags {
                has_place: true,
                ..Flags::default()
            };
            waiting_context("", &speech, &view, Some("sample"), flags)
        }
        PageKind::Closed => closed_context(&speech, Some("sample"), 30),
        PageKind::Error => error_context(502, speech.lang),
    }
}

/// The names a page of `kind` can read: its context's keys and `csp_nonce`.
pub fn context_keys(kind: PageKind) -> Vec<String> {
    let mut keys: Vec<String> = sample(kind, "sample")
        .try_iter()
        .map(|it| it.filter_map(|k| k.as_str().map(String::from)).collect())
        .unwrap_or_default();
    keys.push("csp_nonce".to_string());
    keys.sort();
    keys.dedup();
    keys
}

/// The first unknown variable of `source` (read by the template named `file`), as an error
/// naming the file, the line, the closest known name and the page's values.
pub(super) fn unknown(
    file: &str,
    source: &str,
    unknown: &[String],
    keys: &[String],
) -> Option<String> {
    let mut names: Vec<&String> = unknown.iter().collect();
    // The first in the file is reported first.
    names.sort_by_key(|n| line_of(source, n).unwrap_or(usize::MAX));
    let name = names.first()?;
    let line = line_of(source, name).map_or(String::new(), |l| format!(":{l}"));
    let hint = closest(name, keys).map_or(String::new(), |k| format!(" (did you mean `{k}`?)"));
    Some(format!(
        "{file}{line}: unknown variable `{name}`{hint}; the page's values are: {}",
        keys.join(", ")
    ))
}

/// The line (from 1) where `name` is first read inside `{{ }}` or `{% %}`.
pub(super) fn line_of(source: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(open) = next_tag(source, from) {
        let body = open + 2;
        let close = ["}}", "%}"]
            .iter()
            .filter_map(|c| source.get(body..)?.find(c))
            .min()
            .map_or(source.len(), |c| body + c);
        let region = source.get(body..close).unwrap_or("");
        if let Some(at) = find_word(region, name) {
            let upto = source.get(..body + at).unwrap_or("");
            return Some(upto.matches('\n').count() + 1);
        }
        from = close;
    }
    None
}

/// Where the next `{{` or `{%` starts at or after `from`.
fn next_tag(source: &str, from: usize) -> Option<usize> {
    let rest = source.get(from..)?;
    ["{{", "{%"]
        .iter()
        .filter_map(|o| rest.find(o))
        .min()
        .map(|at| from + at)
}

/// Where `name` stands as a whole name in `text` (not part of another name, not an attribute).
fn find_word(text: &str, name: &str) -> Option<usize> {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(at) = text.get(from..)?.find(name) {
        let start = from + at;
        let end = start + name.len();
        let before = text.get(..start).and_then(|s| s.chars().next_back());
        let after = text.get(end..).and_then(|s| s.chars().next());
        if !before.is_some_and(|c| is_name(c) || c == '.') && !after.is_some_and(is_name) {
            return Some(start);
        }
        from = end;
    }
    None
}

/// The known name nearest to `name` by edit distance, if it is close enough to be a slip: at
/// most one edit in three letters (at least one, at most three). Every "did you mean" of
/// anteroom asks this one (template variables here, configuration keys in `config`).
pub(crate) fn closest<'a, K: AsRef<str>>(name: &str, keys: &'a [K]) -> Option<&'a K> {
    let limit = (name.chars().count() / 3).clamp(1, 3);
    keys.iter()
        .map(|k| (distance(name, k.as_ref()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance between `a` and `b`, by character.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (prev + cost).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("abc", "abc", 0),
            ("activ_users", "active_users", 1),
            ("active-users", "active_users", 1),
            ("kitten", "sitting", 3),
            ("", "ab", 2),
        ] {
            assert_eq!(distance(a, b), d, "{a} {b}");
        }
    }

    #[test]
    fn line_and_suggestion() {
        let src = "<p>\n{{ t.x }}\n{% if postion %}{{ postion }}{% endif %}\n";
        assert_eq!(line_of(src, "postion"), Some(3));
        assert_eq!(line_of(src, "x"), None);
        let keys = context_keys(PageKind::Waiting);
        let e = unknown("shop.html", src, &["postion".into()], &keys).unwrap();
        assert!(
            e.starts_with("shop.html:3: unknown variable `postion` (did you mean `position`?)"),
            "{e}"
        );
        assert!(e.contains("queue_depth"), "{e}");
    }

    #[test]
    fn keys_follow_the_contexts() {
        let w = context_keys(PageKind::Waiting);
        assert!(w.iter().any(|k| k == "position") && w.iter().any(|k| k == "csp_nonce"));
        let c = context_keys(PageKind::Closed);
        assert!(c.iter().any(|k| k == "retry_text") && !c.iter().any(|k| k == "position"));
        let e = context_keys(PageKind::Error);
        assert!(e.iter().any(|k| k == "detail") && e.iter().any(|k| k == "status"));
    }

    /// The text a visitor sees and the attribute values: no style or script block, no markup.
    fn visible(html: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = html;
        for tag in ["style", "script"] {
            let mut kept = String::new();
            while let Some(a) = rest.find(&format!("<{tag}")) {
                kept.push_str(&rest[..a]);
                let end = rest[a..]
                    .find(&format!("</{tag}>"))
                    .map_or(rest.len(), |e| a + e);
                rest = &rest[end..];
            }
            kept.push_str(rest);
            out.push(kept);
            rest = out.last().map_or("", |s| s.as_str());
        }
        let text = out.pop().unwrap_or_default();
        text.split(['<', '>', '"']).map(str::to_string).collect()
    }

    /// Every waiting state the engine makes, with what the page says beside it (a table).
    #[allow(clippy::too_many_lines)]
    fn states(challenge: &crate::pow::Challenge) -> Vec<(&'static str, View, Flags<'_>)> {
        use crate::room::Deadlines;
        let queued = View {
            position: Some(3),
            estimated_wait_seconds: Some(120),
            release_rate_per_minute: 4.0,
            progress_percent: 40,
            ..View::without_place(ViewState::Queued, 10, 5)
        };
        let place = Flags {
            has_place: true,
            ..Flags::default()
        };
        vec![
            ("queued with a place", queued.clone(), place),
            (
                "queued without a place",
                View::without_place(ViewState::Queued, 10, 5),
                Flags::default(),
            ),
            (
                "prequeue",
                View {
                    event_starts_at_ms: Some(1_900_000_000_000),
                    ..View::without_place(ViewState::Prequeue, 0, 5)
                },
                place,
            ),
            (
                "paused",
                View {
                    position: Some(2),
                    ..View::without_place(ViewState::Paused, 4, 5)
                },
                place,
            ),
            (
                "released",
                View {
                    deadlines: Deadlines {
                        release_expires_in_ms: Some(30_000),
                        ..Deadlines::default()
                    },
                    ..View::without_place(ViewState::Released, 0, 1)
                },
                place,
            ),
            (
                "admitted",
                View {
                    deadlines: Deadlines {
                        session_expires_in_ms: Some(60_000),
                        session_ends_in_ms: Some(600_000),
                        ..Deadlines::default()
                    },
                    ..View::without_place(ViewState::Admitted, 0, 5)
                },
                place,
            ),
            (
                "expired",
                View::without_place(ViewState::Expired, 3, 5),
                Flags::default(),
            ),
            (
                "closed",
                View::without_place(ViewState::Closed, 0, 60),
                Flags::default(),
            ),
            (
                "challenge",
                View::without_place(ViewState::Queued, 10, 5),
                Flags {
                    challenge: Some(challenge),
                    ..Flags::default()
                },
            ),
            (
                "form not sent",
                queued.clone(),
                Flags {
                    form_not_sent: true,
                    ..place
                },
            ),
            (
                "lottery",
                View {
                    next_draw_in_ms: Some(40_000),
                    position: None,
                    ..queued.clone()
                },
                place,
            ),
            (
                "random",
                View {
                    chance_next_minute: Some(0.25),
                    position: None,
                    ..queued.clone()
                },
                place,
            ),
            (
                "slowed",
                View {
                    slowed_ms_ago: Some(5_000),
                    ..queued.clone()
                },
                place,
            ),
        ]
    }

    /// Fails if a visible piece of `html` says "None" or "none".
    fn assert_no_none(what: &str, html: &str) {
        for piece in visible(html) {
            for word in piece.split(|c: char| !c.is_alphanumeric()) {
                assert!(
                    word != "None" && word != "none",
                    "{what}: {piece:?} in {html}"
                );
            }
        }
    }

    /// Every shipped page in every state the engine makes, in every shipped language: it
    /// renders, and no missing value shows as "None" or "none".
    #[test]
    fn every_shipped_page_renders_in_every_state() {
        use crate::pages::{BUILTIN_CLOSED, BUILTIN_ERROR, BUILTIN_LEFT, BUILTIN_WAITING, Pages};
        use crate::pages::{lang::RoomText, left_context};
        let pages = Pages::new();
        let text = RoomText::shipped();
        assert!(text.langs.len() >= 2);
        let challenge = crate::pow::Challenge {
            algorithm: "sha256",
            nonce: "abc".into(),
            difficulty: 12,
            expires_at: "2030-01-01T00:00:00Z".into(),
        };
        let states = states(&challenge);
        for lang in &text.langs {
            let speech = Speech {
                room: "shop",
                text: &text,
                lang,
                site: "shop.example",
                here: "/cart?x=1",
            };
            let mut out = Vec::new();
            for (what, view, flags) in &states {
                let page = pages.render_with(BUILTIN_WAITING, |n| {
                    waiting_context(n, &speech, view, None, *flags)
                });
                out.push((format!("waiting, {what}"), page));
            }
            out.push((
                "closed".into(),
                pages.render(BUILTIN_CLOSED, closed_context(&speech, None, 60)),
            ));
            for status in [502, 504, 500] {
                out.push((
                    format!("error {status}"),
                    pages.render(BUILTIN_ERROR, error_context(status, lang)),
                ));
            }
            out.push((
                "left".into(),
                pages.render(BUILTIN_LEFT, left_context(lang, "/")),
            ));
            for (what, page) in out {
                let page = page.unwrap_or_else(|e| panic!("{}: {what}: {e}", lang.code));
                let html = String::from_utf8_lossy(&page.html).to_string();
                assert_no_none(&format!("{}: {what}", lang.code), &html);
            }
        }
    }

    #[test]
    fn a_missing_value_writes_nothing() {
        let mut p = crate::pages::Pages::new();
        p.add(
            "t.html".into(),
            "[{{ message }}|{{ nothing }}|{{ m }}]".into(),
        )
        .unwrap();
        let out = p
            .render(
                "t.html",
                minijinja::context! { message => None::<&str>, m => "<b>" },
            )
            .unwrap();
        assert_eq!(out.html, "[||&lt;b&gt;]");
    }
}
