//! The pages' text in many languages: the files of `pages/lang/` (one `key = text` a line, built
//! into the binary), a room's languages with its `[room.text.<lang>]` strings over them, and the
//! choice of one for a visitor (`negotiate.rs`).

mod negotiate;
#[cfg(test)]
mod tests;

pub use negotiate::{LANG_COOKIE, LANG_PARAM, Prefs};

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use minijinja::Value;

/// The languages built into the binary, by code. `en` is the reference: every other file has
/// exactly its keys.
pub const SHIPPED: [(&str, &str); 10] = [
    ("en", include_str!("../../../pages/lang/en.txt")),
    ("de", include_str!("../../../pages/lang/de.txt")),
    ("fr", include_str!("../../../pages/lang/fr.txt")),
    ("es", include_str!("../../../pages/lang/es.txt")),
    ("it", include_str!("../../../pages/lang/it.txt")),
    ("pt", include_str!("../../../pages/lang/pt.txt")),
    ("nl", include_str!("../../../pages/lang/nl.txt")),
    ("pl", include_str!("../../../pages/lang/pl.txt")),
    ("ja", include_str!("../../../pages/lang/ja.txt")),
    ("zh", include_str!("../../../pages/lang/zh.txt")),
];

/// How many languages are built in.
pub const COUNT: usize = SHIPPED.len();

/// The keys the waiting page's script reads (from the page's `data-text`), so that what it
/// writes after each poll is in the page's language too.
const SCRIPT_KEYS: [&str; 11] = [
    "position_lead",
    "position_tail",
    "people_waiting_one",
    "people_waiting",
    "wait_calculating",
    "wait_under_minute",
    "wait_minute",
    "wait_minutes",
    "wait_hours",
    "countdown",
    "leave_confirm",
];

/// Reads one language file: `key = text` lines; blank lines and lines starting with `#` are
/// skipped. Keys are a-z, 0-9 and `_`; a key given twice is an error.
pub fn parse(text: &str) -> Result<Vec<(&str, &str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected `key = text`", n + 1));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "line {}: {key:?} is not a key (a-z, 0-9, _)",
                n + 1
            ));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("line {}: key `{key}` given twice", n + 1));
        }
        out.push((key, value.trim()));
    }
    Ok(out)
}

/// The built-in files, read once. A file that does not read is a build mistake the unit tests
/// catch; here it reads as empty (every key then falls back to English).
static TABLES: LazyLock<Vec<BTreeMap<&'static str, &'static str>>> = LazyLock::new(|| {
    SHIPPED
        .iter()
        .map(|(_, text)| parse(text).unwrap_or_default().into_iter().collect())
        .collect()
});

/// The index of a built-in language by its code.
pub fn shipped_index(code: &str) -> Option<usize> {
    SHIPPED.iter().position(|(c, _)| *c == code)
}

/// The codes of the built-in languages, for error messages.
pub fn shipped_codes() -> String {
    SHIPPED
        .iter()
        .map(|(c, _)| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `key` is a text key (one of `en.txt`'s).
pub fn is_key(key: &str) -> bool {
    TABLES.first().is_some_and(|en| en.contains_key(key))
}

/// The placeholders (`{site}`, `{n}`, ...) a text holds, in order.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    out
}

/// One language of a room: the built-in text with the room's own strings over it, ready for the
/// templates (`t`) and the script (`script`).
#[derive(Debug)]
pub struct LangText {
    pub code: &'static str,
    /// Index in [`SHIPPED`].
    pub shipped: usize,
    strings: BTreeMap<&'static str, String>,
    /// The strings as a template value (`{{ t.queue_heading }}`), built once.
    pub t: Value,
    /// The script's strings as JSON, built once (the page's `data-text`).
    pub script: Value,
}

impl LangText {
    /// The language `shipped` with `own` (key, text) over it. Keys are the reference's; one
    /// missing from the language's file reads in English.
    pub fn new(shipped: usize, own: &[(String, String)]) -> LangText {
        let (en, this) = (TABLES.first(), TABLES.get(shipped));
        let mut strings = BTreeMap::new();
        for (key, text) in en.into_iter().flatten() {
            let text = own
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, t)| t.as_str())
                .or_else(|| this.and_then(|t| t.get(key)).copied())
                .unwrap_or(text);
            strings.insert(*key, text.to_string());
        }
        let t = Value::from(
            strings
                .iter()
                .map(|(k, v)| (*k, Value::from(v.as_str())))
                .collect::<BTreeMap<&str, Value>>(),
        );
        let script: BTreeMap<&str, &str> = SCRIPT_KEYS
            .iter()
            .filter_map(|k| Some((*k, strings.get(k)?.as_str())))
            .collect();
        let script = Value::from(serde_json::to_string(&script).unwrap_or_default());
        LangText {
            code: SHIPPED.get(shipped).map_or("en", |(c, _)| c),
            shipped,
            strings,
            t,
            script,
        }
    }

    /// The text of `key` ("" for a key that is not one).
    pub fn get(&self, key: &str) -> &str {
        self.strings.get(key).map_or("", String::as_str)
    }

    /// The estimated wait in words (`None`: not known yet): under a minute, minutes up to two
    /// hours, then hours, each rounded up.
    pub fn wait_text(&self, seconds: Option<u64>) -> String {
        match seconds {
            None => self.get("wait_calculating").to_string(),
            Some(s) if s < 60 => self.get("wait_under_minute").to_string(),
            Some(s) if s < 120 * 60 => match s.div_ceil(60) {
                1 => self.get("wait_minute").to_string(),
                m => self.get("wait_minutes").replace("{n}", &m.to_string()),
            },
            Some(s) => self
                .get("wait_hours")
                .replace("{n}", &s.div_ceil(3600).to_string()),
        }
    }
}

/// The languages a room speaks (`languages`, in the file's order) and the one it falls back to
/// (`default_language`).
#[derive(Debug)]
pub struct RoomText {
    pub langs: Vec<LangText>,
    /// Index in `langs`.
    pub default: usize,
}

/// English as shipped: what a room with no language (never built so) would speak.
static ENGLISH: LazyLock<LangText> = LazyLock::new(|| LangText::new(0, &[]));

static ALL: LazyLock<Arc<RoomText>> = LazyLock::new(|| {
    Arc::new(RoomText {
        langs: (0..COUNT).map(|i| LangText::new(i, &[])).collect(),
        default: 0,
    })
});

impl RoomText {
    /// Every built-in language as shipped, English first and by default.
    pub fn shipped() -> Arc<RoomText> {
        ALL.clone()
    }

    /// The language a visitor gets: see [`Prefs::pick`].
    pub fn choose(&self, prefs: &Prefs) -> &LangText {
        let i = prefs.pick(self.langs.iter().map(|l| l.shipped), self.default);
        self.langs.get(i).or(self.langs.first()).unwrap_or(&ENGLISH)
    }

    /// The room's language of built-in index `shipped`, if it speaks it.
    pub fn speaks(&self, shipped: usize) -> bool {
        self.langs.iter().any(|l| l.shipped == shipped)
    }
}
