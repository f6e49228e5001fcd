//! A room's page text: `languages`, `default_language`, `[room.text.<lang>]` and
//! `display_name`.

use std::sync::Arc;

use super::super::file::RoomFile;
use super::super::locate::Seg;
use super::{Validator, room_key};
use crate::pages::lang::{self, LangText, RoomText};

impl Validator<'_> {
    /// The room's languages with its own strings over the built-in ones. Every code must be a
    /// built-in language, every key one of `pages/lang/en.txt`'s.
    pub(super) fn text(&mut self, i: usize, r: &RoomFile) -> Arc<RoomText> {
        let codes = self.languages(i, r);
        let default_code = r.default_language.as_deref().unwrap_or("en");
        let default = codes
            .iter()
            .position(|&s| lang::SHIPPED[s].0 == default_code);
        if default.is_none() {
            let message = if lang::shipped_index(default_code).is_some() {
                format!("{default_code:?} is not one of this room's `languages`")
            } else {
                format!(
                    "{default_code:?} is not a language anteroom speaks; use one of {}",
                    lang::shipped_codes()
                )
            };
            self.error(&room_key(i, "default_language"), message);
        }
        for (code, strings) in &r.text {
            let mut at = room_key(i, "text");
            at.push(Seg::Key(code.clone()));
            match lang::shipped_index(code) {
                Some(s) if codes.contains(&s) => {}
                Some(_) => self.error(
                    &at,
                    format!("{code:?} is not one of this room's `languages`"),
                ),
                None => self.error(
                    &at,
                    format!(
                        "{code:?} is not a language anteroom speaks; use one of {}",
                        lang::shipped_codes()
                    ),
                ),
            }
            for key in strings.keys().filter(|k| !lang::is_key(k)) {
                let mut at = at.clone();
                at.push(Seg::Key(key.clone()));
                self.error(
                    &at,
                    format!("`{key}` is not a text key (see pages/lang/en.txt)"),
                );
            }
        }
        let langs = codes
            .iter()
            .map(|&s| {
                let own: Vec<(String, String)> = r
                    .text
                    .get(lang::SHIPPED[s].0)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                LangText::new(s, &own)
            })
            .collect();
        Arc::new(RoomText {
            langs,
            default: default.unwrap_or(0),
        })
    }

    /// `languages`: built-in codes, each once, at least one; all of them when unset.
    fn languages(&mut self, i: usize, r: &RoomFile) -> Vec<usize> {
        let Some(list) = &r.languages else {
            return (0..lang::COUNT).collect();
        };
        if list.is_empty() {
            self.error(&room_key(i, "languages"), "list at least one language");
        }
        let mut codes = Vec::new();
        for (j, code) in list.iter().enumerate() {
            let mut at = room_key(i, "languages");
            at.push(Seg::Index(j));
            match lang::shipped_index(code) {
                Some(s) if codes.contains(&s) => {
                    self.error(&at, format!("{code:?} is listed twice"))
                }
                Some(s) => codes.push(s),
                None => self.error(
                    &at,
                    format!(
                        "{code:?} is not a language anteroom speaks; use one of {}",
                        lang::shipped_codes()
                    ),
                ),
            }
        }
        if codes.is_empty() {
            codes.push(0);
        }
        codes
    }

    /// `display_name`: one line of text, not empty.
    pub(super) fn display_name(&mut self, i: usize, r: &RoomFile) -> Option<String> {
        let name = r.display_name.as_ref()?.trim();
        if name.is_empty() || name.contains(['\n', '\r']) {
            self.error(
                &room_key(i, "display_name"),
                "must be one line of text, not empty",
            );
            return None;
        }
        Some(name.to_string())
    }
}
