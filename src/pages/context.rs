//! The templates' contexts: the waiting, closed and error pages, each in the visitor's language
//! (`t`, the strings; `lang`, the code for `<html lang>`), naming the site, with the links to the
//! room's other languages.

use minijinja::{Value, context};

use super::lang::{LANG_PARAM, LangText, RoomText};
use super::{URLS, now_rfc3339, rfc3339_ago, rfc3339_in, rfc3339_unix};
use crate::pow::Challenge;
use crate::room::View;

/// What a page says and in which language: the room, its languages and the one chosen, the
/// site's name (`display_name`, else the host asked for), and the URL asked for (path and query,
/// without the language parameter).
#[derive(Debug, Clone, Copy)]
pub struct Speech<'a> {
    pub room: &'a str,
    pub text: &'a RoomText,
    pub lang: &'a LangText,
    pub site: &'a str,
    pub here: &'a str,
}

impl Speech<'_> {
    /// The text of `key` naming the site.
    fn with_site(&self, key: &str) -> String {
        self.lang.get(key).replace("{site}", self.site)
    }

    /// The links to the room's languages (none when it speaks one): code, name, the URL asked
    /// for in that language, and whether it is the page's.
    fn switch(&self) -> Vec<Value> {
        if self.text.langs.len() < 2 {
            return Vec::new();
        }
        let sep = if self.here.contains('?') { '&' } else { '?' };
        self.text
            .langs
            .iter()
            .map(|l| {
                context! {
                    code => l.code,
                    name => l.get("language_name"),
                    href => format!("{}{sep}{LANG_PARAM}={}", self.here, l.code),
                    current => l.code == self.lang.code,
                }
            })
            .collect()
    }
}

/// What a waiting page says beside the view.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    /// The page answers a form post, whose body was never forwarded.
    pub form_not_sent: bool,
    /// The visitor holds a place (no place: a join over budget, an expired one, a challenge).
    pub has_place: bool,
    /// The join challenge a new visitor must solve first (`join_challenge = "pow"`).
    pub challenge: Option<&'a Challenge>,
}

/// The template context of the waiting page.
pub fn waiting_context(
    nonce: &str,
    speech: &Speech<'_>,
    view: &View,
    message: Option<&str>,
    flags: Flags<'_>,
) -> Value {
    let lang = speech.lang;
    context! {
        challenge => flags.challenge.map(|c| context! {
            algorithm => c.algorithm,
            nonce => c.nonce.as_str(),
            difficulty => c.difficulty,
            expires_at => c.expires_at.as_str(),
        }),
        join_url => URLS.2.clone(),
        csp_nonce => nonce,
        form_not_sent => flags.form_not_sent,
        has_place => flags.has_place,
        room => speech.room,
        state => view.state.as_str(),
        position => view.position,
        queue_depth => view.queue_depth,
        estimated_wait_seconds => view.estimated_wait_seconds,
        estimated_wait_text => lang.wait_text(view.estimated_wait_seconds),
        progress_percent => view.progress_percent,
        poll_after_seconds => view.poll_after_seconds,
        status_url => URLS.0.clone(),
        leave_url => URLS.1.clone(),
        leave_action => format!("{}?return={}", super::LEAVE_URL, encode(speech.here)),
        message => message,
        next_draw_at => view.next_draw_in_ms.map(rfc3339_in),
        admissions_slowed_at => view.slowed_ms_ago.map(rfc3339_ago),
        event_starts_at => view.event_starts_at_ms.map(rfc3339_unix),
        updated_at => now_rfc3339(),
        lang => lang.code,
        t => lang.t.clone(),
        script_text => lang.script.clone(),
        site => speech.site,
        site_title => speech.with_site("queue_title"),
        site_heading => speech.with_site("queue_heading"),
        here => speech.here,
        languages => speech.switch(),
    }
}

/// The template context of the closed page.
pub fn closed_context(speech: &Speech<'_>, message: Option<&str>, retry_after: u64) -> Value {
    context! {
        room => speech.room,
        message => message,
        retry_after_seconds => retry_after,
        retry_text => retry_text(speech.lang, retry_after),
        lang => speech.lang.code,
        t => speech.lang.t.clone(),
        site => speech.site,
        site_title => speech.with_site("closed_title"),
        site_heading => speech.with_site("closed_heading"),
        here => speech.here,
        languages => speech.switch(),
    }
}

/// When a closed page checks again, in words: seconds below two minutes, minutes below two
/// hours, then hours (rounded up).
fn retry_text(lang: &LangText, seconds: u64) -> String {
    let (key, n) = match seconds {
        s if s < 120 => ("closed_retry_seconds", s),
        s if s < 7200 => ("closed_retry_minutes", s.div_ceil(60)),
        s => ("closed_retry_hours", s.div_ceil(3600)),
    };
    lang.get(key).replace("{n}", &n.to_string())
}

/// The template context of the error page (502, 504, 500) in `lang`.
pub fn error_context(status: u16, lang: &LangText) -> Value {
    let title = lang.get(&format!("error_{status}_title")).to_string();
    let detail = lang.get(&format!("error_{status}_detail")).to_string();
    context! {
        status => status,
        title => title,
        detail => detail,
        retry_text => lang.get("error_retry").replace("{status}", &status.to_string()),
        lang => lang.code,
        t => lang.t.clone(),
    }
}

/// The page left after leaving the line (no script), in `lang`: its link goes back to `back`.
pub fn left_context(lang: &LangText, back: &str) -> Value {
    context! { lang => lang.code, t => lang.t.clone(), here => back }
}

/// `text` with every byte but the unreserved ones and `/` percent-encoded (a URL in a query).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The reverse of [`encode`] (any percent-encoding); `None` when it is not valid UTF-8.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}
