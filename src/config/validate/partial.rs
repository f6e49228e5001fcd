//! Reading a file whose parts do not all fit their types: serde stops at the first wrong key, so
//! the part holding it (one `[[room]]` with its sub-tables, or one top-level table) is blanked
//! out (spaces, so every line and offset stays where it was) and the file read again, until
//! it reads. Each part's first error is kept: several broken rooms are all reported at once, and
//! the rest of the file is still validated.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use toml_edit::{Document, Table};

use super::super::file::FileConfig;
use super::super::locate::{Locator, Seg, render};
use super::wording::explain;
use crate::error::{ConfigError, ConfigErrors};

/// The file as read: its parts that did not fit blanked out.
pub(super) struct Read<'t> {
    pub file: FileConfig,
    /// The text `file` was read from (the original with the blanked parts as spaces).
    pub text: Cow<'t, str>,
    /// One error for each part blanked.
    pub errors: Vec<ConfigError>,
    /// The parts blanked (`room[1]`, `limits`): validation errors inside them are noise.
    pub blanked: Vec<String>,
}

/// Whether `key` lies in one of the `blanked` parts.
pub(super) fn in_blanked(blanked: &[String], key: &str) -> bool {
    blanked.iter().any(|part| within(key, part))
}

/// Whether the key path `key` is `part` or lies inside it (`room[1].name` in `room[1]`, not in
/// `room[10]`).
fn within(key: &str, part: &str) -> bool {
    key.strip_prefix(part)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// Reads `text` (the content of `path`) into a [`FileConfig`], blanking each part that does not
/// fit; a syntax error, or an error outside any table, ends the reading with what was found.
pub(super) fn read<'t>(path: &Path, text: &'t str) -> Result<Read<'t>, ConfigErrors> {
    let mut current = Cow::Borrowed(text);
    let mut errors = Vec::new();
    let mut blanked: Vec<String> = Vec::new();
    loop {
        let e = match toml::from_str::<FileConfig>(&current) {
            Ok(file) => {
                return Ok(Read {
                    file,
                    text: current,
                    errors,
                    blanked,
                });
            }
            Err(e) => e,
        };
        let loc = Locator::new(&current);
        let offset = e.span().map(|s| s.start);
        let key = offset.map(|o| loc.key_at(o)).unwrap_or_default();
        errors.push(ConfigError {
            file: path.to_path_buf(),
            line: offset.map_or(0, |o| loc.line_of(o)),
            message: explain(e.message().trim(), &key),
            key,
        });
        let part = offset.and_then(|o| part_at(&current, o));
        let Some((name, range)) = part.filter(|(name, _)| !blanked.contains(name)) else {
            return Err(ConfigErrors(errors));
        };
        let mut bytes = current.into_owned().into_bytes();
        for b in &mut bytes[range] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        // Only ASCII bytes were written over whole characters: still UTF-8.
        current = Cow::Owned(String::from_utf8_lossy(&bytes).into_owned());
        blanked.push(name);
    }
}

/// The part of the file holding `offset` (`room[i]` or a top-level table), and the bytes to
/// blank: a room's body and sub-tables (its `[[room]]` line stays, so the rooms after it keep
/// their numbers), or a whole table with its header.
fn part_at(text: &str, offset: usize) -> Option<(String, Range<usize>)> {
    let doc = Document::parse(text).ok()?;
    let mut headers = Vec::new();
    collect(doc.as_table(), &mut Vec::new(), &mut headers);
    headers.sort_by_key(|(at, _)| *at);
    let (at, path) = headers.iter().rev().find(|(at, _)| *at <= offset)?;
    let part: Vec<Seg> = match path.as_slice() {
        [Seg::Key(k), Seg::Index(i), ..] => vec![Seg::Key(k.clone()), Seg::Index(*i)],
        [Seg::Key(k), ..] => vec![Seg::Key(k.clone())],
        _ => return None,
    };
    let name = render(&part);
    let own = headers
        .iter()
        .find(|(_, p)| render(p) == name)
        .map_or(*at, |(own, _)| *own);
    let start = if matches!(part.as_slice(), [_, Seg::Index(_)]) {
        text[own..].find('\n').map_or(text.len(), |n| own + n)
    } else {
        own
    };
    let end = headers
        .iter()
        .find(|(h, p)| *h > start && !within(&render(p), &name))
        .map_or(text.len(), |(h, _)| *h);
    Some((name, start..end))
}

/// Every table header written in the file, with where it starts and its key path.
fn collect(table: &Table, path: &mut Vec<Seg>, out: &mut Vec<(usize, Vec<Seg>)>) {
    for (k, item) in table.iter() {
        path.push(Seg::Key(k.to_string()));
        if let Some(t) = item.as_table() {
            if let Some(span) = t.span() {
                out.push((span.start, path.clone()));
            }
            collect(t, path, out);
        } else if let Some(tables) = item.as_array_of_tables() {
            for (i, t) in tables.iter().enumerate() {
                path.push(Seg::Index(i));
                if let Some(span) = t.span() {
                    out.push((span.start, path.clone()));
                }
                collect(t, path, out);
                path.pop();
            }
        }
        path.pop();
    }
}
