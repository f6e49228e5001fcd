//! The layers of src/ as a test: it reads every `crate::` path in the source and fails on an
//! import cycle between top-level modules, on `room/` (the pure engine) using anything else, and
//! on any module using one listed above it in `LAYERS` (ARCHITECTURE.md's table, bottom first).

#![allow(unreachable_pub, clippy::unwrap_used, clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up: each may use only those before it.
const LAYERS: &[&str] = &[
    "room", "target", "env", "error", "certs", "metrics", "token", "pow", "pages", "config",
    "store", "keys", "proxy", "tls", "gateway", "server", "reload", "engine", "admin", "inspect",
    "health", "demo",
];

type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules code names through `crate::` (`crate::a::b`, and each member of
/// `crate::{a, b::c}`), each with where its `crate::` starts.
fn named(code: &str) -> Vec<(usize, String)> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at its top-level commas; each member starts with a module.
            let (mut depth, mut member) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push((i, ident(&member)));
                        member.clear();
                        continue;
                    }
                    _ => {}
                }
                member.push(c);
            }
            out.push((i, ident(&member)));
        } else {
            out.push((i, ident(rest)));
        }
    }
    out.retain(|(_, m)| !m.is_empty());
    out
}

/// Module -> (module it uses -> the first place it does, as `file:line`).
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut g = Graph::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = g.entry(top.clone()).or_default();
        // Comments out, lines kept: a `crate::{..}` group may span lines.
        let code: Vec<&str> = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect();
        let code = code.join("\n");
        for (at, m) in named(&code) {
            if m != top {
                let line = code[..at].matches('\n').count() + 1;
                uses.entry(m)
                    .or_insert_with(|| format!("src/{}:{line}", rel.display()));
            }
        }
    }
    g
}

/// A cycle between modules, as the path around it.
fn cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        m: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in g.get(m).into_iter().flat_map(|u| u.keys()) {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

/// Every rule broken, one line each.
fn broken(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(c) = cycle(g) {
        let at: Vec<String> = c
            .windows(2)
            .map(|w| format!("{} -> {} ({})", w[0], w[1], g[&w[0]][&w[1]]))
            .collect();
        out.push(format!("import cycle: {}", at.join(", ")));
    }
    for (m, uses) in g {
        let Some(level) = LAYERS.iter().position(|l| l == m) else {
            out.push(format!(
                "module `{m}` is not in LAYERS: place it in the layer order"
            ));
            continue;
        };
        for (u, at) in uses {
            match LAYERS.iter().position(|l| l == u) {
                _ if m == "room" => out.push(format!("room/ is pure and uses `{u}` at {at}")),
                Some(l) if l > level => {
                    out.push(format!("`{m}` uses `{u}`, a layer above it, at {at}"))
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn modules_form_layers_without_cycles() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        g.contains_key("room") && g.contains_key("gateway"),
        "src/ was read"
    );
    let broken = broken(&g);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The check itself fails where it must: a cycle, a pure engine reaching up, a layer inverted.
#[test]
fn the_check_finds_cycles_and_layer_breaks() {
    let edge = |g: &mut Graph, a: &str, b: &str| {
        g.entry(a.into())
            .or_default()
            .insert(b.into(), format!("src/{a}.rs:1"));
        g.entry(b.into()).or_default();
    };
    let mut g = Graph::new();
    edge(&mut g, "gateway", "config");
    assert!(broken(&g).is_empty());
    edge(&mut g, "config", "gateway");
    let b = broken(&g);
    assert!(b[0].starts_with("import cycle: "), "{b:?}");
    assert!(
        b.iter().any(|l| l.contains("`config` uses `gateway`")),
        "{b:?}"
    );
    let mut g = Graph::new();
    edge(&mut g, "room", "metrics");
    assert_eq!(
        broken(&g),
        ["room/ is pure and uses `metrics` at src/room.rs:1"]
    );
    let names = |code: &str| -> Vec<String> { named(code).into_iter().map(|(_, m)| m).collect() };
    assert_eq!(
        names("use crate::{config::Config, gateway::{Gateway, Peer}};"),
        ["config", "gateway"]
    );
    assert_eq!(
        names("use crate::{\n    room::Settings,\n    store::Room,\n};"),
        ["room", "store"]
    );
    assert_eq!(
        names("    let x = crate::store::snapshot::unix_ms();"),
        ["store"]
    );
}
