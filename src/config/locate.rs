//! Finds where a key sits in the TOML source, so that every configuration error names its line.

use toml_edit::{Document, Item, Table, Value};

/// One step of a key path: a table key or an index into an array (of tables).
#[derive(Debug, Clone)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// A parsed document kept for locating keys; `None` when the text did not parse.
pub(super) struct Locator<'a> {
    text: &'a str,
    doc: Option<Document<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Locator {
            text,
            doc: Document::parse(text).ok(),
        }
    }

    /// 1-based line of a byte offset.
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// Line of the deepest existing part of `path` (the key itself, else its table).
    pub(super) fn line(&self, path: &[Seg]) -> usize {
        let Some(doc) = &self.doc else { return 0 };
        let mut node = Node::Item(doc.as_item());
        let mut best = 0;
        for seg in path {
            let Some((at, next)) = node.child(seg) else {
                break;
            };
            if let Some(at) = at {
                best = self.line_of(at);
            }
            node = next;
        }
        best
    }

    /// The dotted key path whose key or value covers `offset` (for serde errors).
    pub(super) fn key_at(&self, offset: usize) -> String {
        let Some(doc) = &self.doc else {
            return String::new();
        };
        let mut path = Vec::new();
        find(doc.as_item(), offset, &mut path);
        render(&path)
    }
}

/// `room[0].origin` style rendering of a key path.
pub(super) fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A place in the document while walking a key path.
enum Node<'d> {
    Item(&'d Item),
    Table(&'d Table),
    Value(&'d Value),
}

impl<'d> Node<'d> {
    /// The child at `seg` and the byte offset where it is written.
    fn child(&self, seg: &Seg) -> Option<(Option<usize>, Node<'d>)> {
        let start = |s: Option<std::ops::Range<usize>>| s.map(|s| s.start);
        match (self, seg) {
            (Node::Item(item), _) => {
                if let Some(t) = item.as_table() {
                    Node::Table(t).child(seg)
                } else if let Some(arr) = item.as_array_of_tables() {
                    let Seg::Index(i) = seg else { return None };
                    let t = arr.get(*i)?;
                    Some((start(t.span()), Node::Table(t)))
                } else {
                    Node::Value(item.as_value()?).child(seg)
                }
            }
            (Node::Table(t), Seg::Key(k)) => {
                let (key, v) = t.get_key_value(k)?;
                Some((start(key.span()).or(start(v.span())), Node::Item(v)))
            }
            (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => {
                let (key, v) = t.get_key_value(k)?;
                Some((start(key.span()), Node::Item(v)))
            }
            (Node::Value(Value::Array(a)), Seg::Index(i)) => {
                let v = a.get(*i)?;
                Some((start(v.span()), Node::Value(v)))
            }
            _ => None,
        }
    }
}

fn find(item: &Item, offset: usize, path: &mut Vec<Seg>) -> bool {
    if let Some(t) = item.as_table() {
        return find_in_table(t, offset, path);
    }
    if let Some(arr) = item.as_array_of_tables() {
        for (i, t) in arr.iter().enumerate() {
            path.push(Seg::Index(i));
            if find_in_table(t, offset, path) {
                return true;
            }
            path.pop();
        }
        return false;
    }
    if let Some(v) = item.as_value() {
        return find_in_value(v, offset, path);
    }
    false
}

fn find_in_table(t: &Table, offset: usize, path: &mut Vec<Seg>) -> bool {
    for (k, v) in t.iter() {
        let Some((key, _)) = t.get_key_value(k) else {
            continue;
        };
        path.push(Seg::Key(k.to_string()));
        let on_key = key.span().is_some_and(|s| s.contains(&offset));
        let on_value = v.span().is_some_and(|s| s.contains(&offset));
        if find(v, offset, path) || on_key || on_value {
            return true;
        }
        path.pop();
    }
    false
}

fn find_in_value(v: &Value, offset: usize, path: &mut Vec<Seg>) -> bool {
    match v {
        Value::InlineTable(t) => {
            for (k, child) in t.iter() {
                path.push(Seg::Key(k.to_string()));
                let on = child.span().is_some_and(|s| s.contains(&offset));
                if find_in_value(child, offset, path) || on {
                    return true;
                }
                path.pop();
            }
            false
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                let on = child.span().is_some_and(|s| s.contains(&offset));
                if find_in_value(child, offset, path) || on {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}
