//! The book (docs/, built by scripts/book.sh) has a chapter for every data path and
//! every lesson, every page of docs/ is in its table of contents, and no link or
//! picture in the book or the README points nowhere (a file that is not there, or an
//! anchor that no heading of that page makes).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn docs() -> PathBuf {
    Path::new(ROOT).join("docs")
}

/// The pages SUMMARY.md links to, relative to docs/.
fn summary_pages() -> Vec<String> {
    let text = std::fs::read_to_string(docs().join("SUMMARY.md")).expect("docs/SUMMARY.md");
    links(&text).into_iter().map(|l| l.target).filter(|t| !t.is_empty()).collect()
}

/// Every .md file under docs/, relative to docs/, SUMMARY.md left out.
fn pages_on_disk() -> BTreeSet<String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                if rel != "SUMMARY.md" {
                    out.insert(rel);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&docs(), &docs(), &mut out);
    out
}

#[derive(Debug, Clone, PartialEq)]
struct Link {
    line: usize,
    /// The path part (may be empty for a link within the page).
    target: String,
    anchor: Option<String>,
}

/// The Markdown links and pictures (`[t](x)`, `![t](x)`) and HTML `src=`/`href=`
/// of a page, outside code blocks and code spans; web addresses left out.
fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut raws = Vec::new();
        let plain = strip_code_spans(line);
        let b = plain.as_bytes();
        let mut j = 0;
        while j + 1 < b.len() {
            if b[j] == b']' && b[j + 1] == b'(' {
                if let Some(end) = plain[j + 2..].find(')') {
                    raws.push(plain[j + 2..j + 2 + end].to_string());
                    j += 2 + end;
                }
            }
            j += 1;
        }
        for attr in ["src=\"", "href=\""] {
            let mut rest = plain.as_str();
            while let Some(at) = rest.find(attr) {
                rest = &rest[at + attr.len()..];
                if let Some(end) = rest.find('"') {
                    raws.push(rest[..end].to_string());
                }
            }
        }
        for raw in raws {
            let raw = raw.split_whitespace().next().unwrap_or("").to_string();
            if raw.contains("://") || raw.starts_with("mailto:") {
                continue;
            }
            let (target, anchor) = match raw.split_once('#') {
                Some((t, a)) => (t.to_string(), Some(a.to_string())),
                None => (raw, None),
            };
            out.push(Link { line: i + 1, target, anchor });
        }
    }
    out
}

/// The line with its `code spans` blanked, so that a link drawn in code is not a link.
fn strip_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
            out.push(' ');
        } else {
            out.push(if in_code { ' ' } else { c });
        }
    }
    out
}

/// The anchors mdBook makes for a page's headings: lower case, spaces to `-`,
/// only letters, digits, `-` and `_` kept; a repeated heading gets `-1`, `-2`.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let mut id = String::new();
        for c in title.chars() {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                id.extend(c.to_lowercase());
            } else if c.is_whitespace() {
                id.push('-');
            }
        }
        let mut unique = id.clone();
        let mut n = 1;
        while seen.contains(&unique) {
            unique = format!("{id}-{n}");
            n += 1;
        }
        seen.insert(unique);
    }
    seen
}

/// `a/b/../c` to `a/c`, without touching the disk.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every link of `page` that points nowhere, as "page:line: target (why)".
fn dead_links(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let dir = page.parent().unwrap();
    let mut dead = Vec::new();
    for l in links(&text) {
        let show = format!(
            "{}:{}: {}{}",
            page.strip_prefix(ROOT).unwrap_or(page).display(),
            l.line,
            l.target,
            l.anchor.as_deref().map(|a| format!("#{a}")).unwrap_or_default()
        );
        let target = if l.target.is_empty() { page.to_path_buf() } else { normalize(&dir.join(&l.target)) };
        if !target.exists() {
            dead.push(format!("{show} (no such file)"));
            continue;
        }
        if let Some(a) = &l.anchor {
            if target.extension().is_some_and(|x| x == "md") {
                let t = std::fs::read_to_string(&target).unwrap();
                if !anchors(&t).contains(a) {
                    dead.push(format!("{show} (no heading makes #{a})"));
                }
            }
        }
    }
    dead
}

#[test]
fn every_mode_has_a_chapter_in_the_book() {
    let pages = summary_pages();
    for mode in zclab::transfer::Mode::ALL {
        let page = format!("paths/{}.md", mode.name());
        assert!(pages.contains(&page), "docs/SUMMARY.md has no chapter {page} for --mode {}", mode.name());
        let text = std::fs::read_to_string(docs().join(&page)).unwrap();
        assert!(
            text.contains(&format!("zclab explain {}", mode.name())),
            "{page} does not show the path's `zclab explain` picture"
        );
    }
}

#[test]
fn every_lesson_has_a_chapter_in_the_book() {
    let pages = summary_pages();
    for l in zclab::lessons::LESSONS {
        let page = format!("lessons/{:02}-{}.md", l.number, l.slug);
        assert!(pages.contains(&page), "docs/SUMMARY.md has no chapter {page} for lesson {}", l.number);
        let text = std::fs::read_to_string(docs().join(&page)).unwrap();
        assert!(
            text.contains(&format!("zclab lesson {}", l.number)),
            "{page} does not say how to run the lesson (`zclab lesson {}`)",
            l.number
        );
    }
}

#[test]
fn every_page_of_docs_is_in_the_table_of_contents() {
    let listed: BTreeSet<String> = summary_pages().into_iter().collect();
    let missing: Vec<_> = pages_on_disk().into_iter().filter(|p| !listed.contains(p)).collect();
    assert!(missing.is_empty(), "pages under docs/ that SUMMARY.md does not list: {missing:?}");
}

#[test]
fn no_link_in_the_book_or_the_readme_points_nowhere() {
    let mut dead = dead_links(&Path::new(ROOT).join("README.md"));
    dead.extend(dead_links(&docs().join("SUMMARY.md")));
    for p in pages_on_disk() {
        dead.extend(dead_links(&docs().join(p)));
    }
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

#[test]
fn the_checks_find_what_they_look_for() {
    // The link reader sees links and pictures and ignores code and web addresses.
    let text = "see [a](x.md#two) and ![p](img/c.svg)\n`[no](code.md)`\n```\n[no](fence.md)\n```\n\
                [web](https://example.org) <img src=\"d.png\">";
    let got: Vec<_> = links(text).into_iter().map(|l| (l.target, l.anchor)).collect();
    assert_eq!(
        got,
        vec![("x.md".to_string(), Some("two".to_string())), ("img/c.svg".to_string(), None), ("d.png".to_string(), None),]
    );
    // mdBook's anchors.
    let a = anchors("# The `zclab bench` table\n## Run it\n## Run it\n```\n# not a heading\n```");
    assert_eq!(a, ["the-zclab-bench-table", "run-it", "run-it-1"].into_iter().map(String::from).collect());
    // A dead link is found.
    let dir = std::env::temp_dir().join(format!("zclab-book-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("p.md");
    std::fs::write(&page, "# Top\n[ok](p.md#top) [gone](q.md) [bad](#nowhere)\n").unwrap();
    let dead = dead_links(&page);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead[0].contains("q.md (no such file)") && dead[1].contains("#nowhere"), "{dead:?}");
}
