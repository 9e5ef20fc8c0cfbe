//! The house in order: the source tree read as text, files as rooms and
//! their `crate::` and `super::` paths as arrows.
//!
//! - No circle between files. A module's `mod.rs` (or `lib.rs`) reaching
//!   into its own sub-modules is how Rust declares and dispatches to them,
//!   so that containment is not an arrow; a sub-module using its parent's
//!   types is one, and so is every arrow between siblings or across rooms.
//! - Between the top-level rooms of the library, every arrow points down
//!   the module map of `src/lib.rs`, which lists them bottom up: a room uses
//!   only rooms declared before it.
//! - No source file has more than 600 lines of code (blank lines and
//!   comments aside, a file's `#[cfg(test)]` module aside).
//!
//! Code under `#[cfg(test)]` is left out: a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_CODE_LINES: usize = 600;

/// One source file: its module path (`["send", "af_xdp", "tx"]`) and its code.
struct Room {
    file: String,
    module: Vec<String>,
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The part of a file before its test module.
fn before_tests(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("#[cfg(test)]") {
            return &text[..at];
        }
        at += line.len();
    }
    text
}

/// The code with comments, strings and character literals blanked out, so
/// that a path inside them is no arrow.
fn strip(code: &str) -> String {
    let b = code.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                i += 2 + hashes;
                while i < b.len() && !b[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => {
                i += 3;
                out.push_str("' '");
            }
            _ => {
                // Copy a whole UTF-8 character.
                let len = match b[i] {
                    0x00..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                out.push_str(&code[i..i + len]);
                i += len;
            }
        }
    }
    out
}

fn rooms() -> Vec<Room> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            let mut module: Vec<String> = rel.trim_end_matches(".rs").split('/').map(String::from).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                module.pop();
            }
            let text = std::fs::read_to_string(p).unwrap();
            Room { file: rel, module, code: strip(before_tests(&text)) }
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `use` tree expanded into its paths: `a::{b, c::d}` -> `a::b`, `a::c::d`.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        if let Some(open) = item.find('{') {
            let mut p = prefix.to_vec();
            p.extend(item[..open].split("::").map(str::trim).filter(|s| !s.is_empty()).map(String::from));
            expand(&item[open + 1..item.rfind('}').unwrap()], &p, out);
        } else {
            let mut p = prefix.to_vec();
            let path = item.split(" as ").next().unwrap();
            p.extend(path.split("::").map(str::trim).filter(|s| !s.is_empty()).map(String::from));
            out.push(p);
        }
    }
}

/// The paths a file names: those of its `use` items and those written inline.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 4..];
        if before.is_some_and(is_ident) {
            continue;
        }
        if let Some(end) = rest.find(';') {
            let tree: String = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
            expand(&tree, &[], &mut out);
        }
    }
    for lead in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(lead).map(|a| a + from) {
            from = at + lead.len();
            if code[..at].chars().next_back().is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let mut segs = vec![lead.trim_end_matches(':').to_string()];
            let mut s = &code[from..];
            loop {
                let n = s.chars().take_while(|&c| is_ident(c)).count();
                if n == 0 {
                    break;
                }
                segs.push(s[..n].to_string());
                s = &s[n..];
                match s.strip_prefix("::") {
                    Some(t) => s = t,
                    None => break,
                }
            }
            if segs.len() > 1 {
                out.push(segs);
            }
        }
    }
    out
}

/// The file a path leads to, from the file whose module is `me`.
fn resolve(me: &[String], path: &[String], modules: &BTreeMap<Vec<String>, String>) -> Option<String> {
    let mut base: Vec<String>;
    let mut segs = path;
    match segs.first().map(String::as_str) {
        Some("crate") => {
            base = Vec::new();
            segs = &segs[1..];
        }
        Some("super") => {
            base = me.to_vec();
            while segs.first().map(String::as_str) == Some("super") {
                base.pop();
                segs = &segs[1..];
            }
        }
        _ => return None,
    }
    base.extend(segs.iter().cloned());
    // Never the crate root: lib.rs and main.rs only declare the rooms.
    (1..=base.len()).rev().find_map(|n| modules.get(&base[..n]).cloned())
}

/// file -> the files it uses (containment left out).
fn arrows(rooms: &[Room]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<Vec<String>, String> = rooms.iter().map(|r| (r.module.clone(), r.file.clone())).collect();
    let by_file: BTreeMap<&str, &Room> = rooms.iter().map(|r| (r.file.as_str(), r)).collect();
    let mut out = BTreeMap::new();
    for r in rooms {
        let mut to = BTreeSet::new();
        for p in paths(&r.code) {
            let Some(t) = resolve(&r.module, &p, &modules) else { continue };
            let target = &by_file[t.as_str()].module;
            let inside = target.len() > r.module.len() && target.starts_with(&r.module);
            if t != r.file && !inside {
                to.insert(t);
            }
        }
        out.insert(r.file.clone(), to);
    }
    out
}

/// The circles of a graph (strongly connected parts of more than one node).
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, l);
                } else if self.stack.contains(&w.as_str()) {
                    let l = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().rposition(|&x| x == v).unwrap();
                let part: Vec<String> = self.stack.drain(at..).map(String::from).collect();
                if part.len() > 1 {
                    self.found.push(part);
                }
            }
        }
    }
    let mut t = Tarjan { g, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

fn graph(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in edges {
        g.entry(a.to_string()).or_default().insert(b.to_string());
    }
    g
}

#[test]
fn the_checker_finds_circles_and_paths() {
    assert!(circles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(circles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])).len(), 1);
    let code = strip("use crate::{a::B, c::{d, e::F as G}};\n// crate::x::y\nlet s = \"super::z\"; super::w::f(); crate::q::R");
    let mut p = paths(&code);
    p.sort();
    let want: Vec<Vec<String>> = ["crate a B", "crate c d", "crate c e F", "crate q R", "super w f"]
        .iter()
        .map(|s| s.split(' ').map(String::from).collect())
        .collect();
    assert_eq!(p, want);
}

#[test]
fn no_circle_between_files() {
    let g = arrows(&rooms());
    assert!(g.values().map(BTreeSet::len).sum::<usize>() > 100, "the checker found almost no arrows: it reads nothing");
    let found = circles(&g);
    assert!(
        found.is_empty(),
        "files that import each other (round and round): {found:?}\n\
         move the shared type to the room that owns it, so the arrows go one way"
    );
}

#[test]
fn rooms_follow_the_module_map_of_lib_rs() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let order: Vec<&str> =
        lib.lines().filter_map(|l| l.strip_prefix("pub mod ")).map(|l| l.trim_end_matches(';').trim()).collect();
    assert!(order.len() > 15, "lib.rs declares {order:?}");
    let rank = |file: &str| {
        let top = file.split('/').next().unwrap().trim_end_matches(".rs");
        order.iter().position(|&m| m == top)
    };
    let mut wrong = Vec::new();
    for (from, tos) in arrows(&rooms()) {
        let Some(a) = rank(&from) else { continue };
        for to in tos {
            if let Some(b) = rank(&to) {
                if b > a {
                    wrong.push(format!("{from} -> {to}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "arrows that point up the module map of src/lib.rs (bottom up: {order:?}):\n{}", wrong.join("\n"));
}

#[test]
fn no_file_reads_as_a_wall() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut walls = Vec::new();
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap();
        let code = before_tests(&text)
            .lines()
            .filter(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with("//")
            })
            .count();
        if code > MAX_CODE_LINES {
            walls.push(format!("{}: {code} lines of code", p.strip_prefix(&root).unwrap().display()));
        }
    }
    assert!(walls.is_empty(), "files over {MAX_CODE_LINES} lines of code (split them along a seam):\n{}", walls.join("\n"));
}
