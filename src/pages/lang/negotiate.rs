//! Which language a visitor gets: the one they chose on the page (the `anteroom_lang` query, then
//! its cookie), else the best of `Accept-Language` by q-value among the room's languages, else
//! the room's `default_language`. Read without allocating: it runs for every page.

use super::{COUNT, SHIPPED};

/// The cookie that remembers a visitor's choice of language.
pub const LANG_COOKIE: &str = "anteroom_lang";
/// The query parameter of the page's language links (stripped before anything is forwarded).
pub const LANG_PARAM: &str = "anteroom_lang";

/// How `Accept-Language` ranks one built-in language.
#[derive(Debug, Clone, Copy, Default)]
struct Rank {
    q: f32,
    /// How the best range named it: 0 not at all, 1 `*`, 2 a regional range (`de-CH` for
    /// `de`), 3 the language itself. The most specific range sets the q-value.
    spec: u8,
    /// Where that range stood in the header (earlier wins a tie).
    at: u16,
}

/// A visitor's language preferences, for every built-in language at once, so that any room can
/// pick among its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prefs {
    /// The language chosen on the page (query or cookie), by built-in index.
    pinned: Option<usize>,
    ranks: [Rank; COUNT],
}

impl Prefs {
    /// The preferences of `Accept-Language` (every line of it) and the `anteroom_lang` cookie.
    pub fn new<'a>(
        accept_language: impl IntoIterator<Item = &'a str>,
        cookie: Option<&str>,
    ) -> Self {
        let mut prefs = Prefs::default();
        let mut at: u16 = 0;
        for line in accept_language {
            for range in line.split(',') {
                at = at.saturating_add(1);
                prefs.rank(range, at);
            }
        }
        if let Some(i) = cookie.and_then(|c| SHIPPED.iter().position(|(code, _)| *code == c)) {
            prefs.pinned = Some(i);
        }
        prefs
    }

    /// The language chosen by a link on the page, over the cookie.
    pub fn pin(&mut self, shipped: usize) {
        self.pinned = Some(shipped);
    }

    fn rank(&mut self, range: &str, at: u16) {
        let mut parts = range.split(';');
        let tag = parts.next().unwrap_or("").trim();
        if tag.is_empty() {
            return;
        }
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(1.0))
            .clamp(0.0, 1.0);
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        for ((code, _), rank) in SHIPPED.iter().zip(self.ranks.iter_mut()) {
            let spec = if tag == "*" {
                1
            } else if tag.eq_ignore_ascii_case(code) {
                3
            } else if primary.eq_ignore_ascii_case(code) {
                2
            } else {
                continue;
            };
            let better = spec > rank.spec || spec == rank.spec && q > rank.q;
            if better {
                *rank = Rank { q, spec, at };
            }
        }
    }

    /// The index (in `langs`, a room's languages by built-in index) of the visitor's language:
    /// the pinned one if the room speaks it, else the highest q-value above 0 (earlier in the
    /// header on a tie, then `default`), else `default`.
    pub fn pick(&self, langs: impl Iterator<Item = usize> + Clone, default: usize) -> usize {
        if let Some(p) = self.pinned
            && let Some(i) = langs.clone().position(|s| s == p)
        {
            return i;
        }
        let mut best: Option<(usize, Rank)> = None;
        for (i, s) in langs.enumerate() {
            let Some(r) = self
                .ranks
                .get(s)
                .copied()
                .filter(|r| r.spec > 0 && r.q > 0.0)
            else {
                continue;
            };
            let wins = match best {
                None => true,
                Some((b, br)) => {
                    r.q > br.q
                        || r.q == br.q && r.at < br.at
                        || r.q == br.q && r.at == br.at && i == default && b != default
                }
            };
            if wins {
                best = Some((i, r));
            }
        }
        best.map_or(default, |(i, _)| i)
    }
}
