//! Lessons: each idea of zero copy as a lab that runs, measures itself and
//! checks its own claims.
//!
//! A lesson runs *experiments* on a lab environment of its own (made and
//! removed), prints their evidence as tables (and a bar chart for a
//! sweep), and then its *claims*, each marked as holding or not holding on
//! this machine, with the numbers that decide it. A claim that does not
//! hold is a finding, never hidden. Every number printed was measured in
//! that run. The lesson texts are in `docs/lessons/`.

mod af_xdp;
mod buffers;
mod bypass;
mod cache;
mod direct_io;
mod mmap_write;
mod read_write;
mod receive;
mod sendfile;
mod sendfile_sg;
mod splice;
mod tcp;
mod xdp_program;
mod zerocopy;

use crate::netns::{EnvConfig, LabEnv};
use crate::report::RunReport;
use crate::run::{self, RunConfig};
use crate::transfer::mode::Via;
use crate::transfer::{Mode, DEFAULT_CHUNK, DEFAULT_PORT};
use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// One lesson: its number in the course, its name, and what it runs.
pub struct Lesson {
    pub number: u32,
    pub slug: &'static str,
    pub title: &'static str,
    /// What you will learn, in one sentence.
    pub learn: &'static str,
    run: fn(&mut Lab) -> Result<Findings>,
    /// Checks the lesson's assignment (`--check`), where it has one that a run can check.
    check: Option<fn(&mut Lab) -> Result<Findings>>,
}

impl Lesson {
    pub fn has_check(&self) -> bool {
        self.check.is_some()
    }
}

/// The lessons that exist, in course order.
pub const LESSONS: &[Lesson] = &[
    read_write::LESSON,
    mmap_write::LESSON,
    sendfile::LESSON,
    sendfile_sg::LESSON,
    splice::LESSON,
    zerocopy::LESSON,
    direct_io::LESSON,
    af_xdp::LESSON,
    xdp_program::LESSON,
    buffers::LESSON,
    receive::LESSON,
    cache::LESSON,
    bypass::LESSON,
    tcp::LESSON,
];

pub fn find(number: u32) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.number == number)
}

/// The list `zclab lesson` prints.
pub fn list() -> String {
    let mut s = String::from("Lessons (run one with `zclab lesson N`; the text is in docs/lessons/):\n");
    for l in LESSONS {
        let check = if l.check.is_some() { " (has --check)" } else { "" };
        let _ = writeln!(s, "  {:>2}  {:<14} {}{check}\n      {}", l.number, l.slug, l.title, l.learn);
    }
    s
}

/// A table of evidence from one experiment, and optionally a bar chart of one column.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Index of the column to draw as bars (a sweep).
    pub chart: Option<usize>,
    /// How many leading columns name a row in the chart.
    pub label_columns: usize,
    /// A second column drawn inside the chart's bars (`#` up to its value, `-` for the rest
    /// of the bar): the bytes in flight inside the congestion window.
    pub under: Option<usize>,
}

/// A claim of the lesson, checked against this run's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub text: String,
    pub holds: bool,
    /// The numbers that decide it.
    pub evidence: String,
}

impl Claim {
    pub fn new(text: &str, holds: bool, evidence: String) -> Claim {
        Claim { text: text.into(), holds, evidence }
    }
}

/// What one lesson run found.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    pub lesson: u32,
    /// These are an assignment's checks (`--check`), not the lesson's claims.
    pub assignment: bool,
    pub title: String,
    pub file_bytes: u64,
    pub experiments: Vec<Experiment>,
    pub claims: Vec<Claim>,
    /// Context a reader needs (a counter that was not available, a filesystem that was missing).
    pub notes: Vec<String>,
}

/// What a lesson works with: an environment of its own, a file of random
/// bytes on a filesystem with direct I/O, and a way to run transfers.
pub struct Lab {
    env: LabEnv,
    dir: Scratch,
    pub file: PathBuf,
    pub size: u64,
    /// Count the kernel's testimony too (`--trace`), where it works.
    pub trace: bool,
    port: u16,
}

/// A directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Lab {
    fn new(number: u32, size: u64, trace: bool) -> Result<Lab> {
        let name = format!("zl{number}-{}", std::process::id() % 10_000);
        let env = LabEnv::up(&EnvConfig { name, mtu: None, queues: None, router: None, ipv6: false, verbose: false })?;
        let dir = PathBuf::from(format!("/var/tmp/zclab-lesson-{number}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = Scratch(dir);
        let file = dir.0.join("file");
        run::make_random_file(&file, size)?;
        Ok(Lab { env, dir, file, size, trace, port: DEFAULT_PORT })
    }

    /// The lab environment's names (namespaces, interfaces).
    pub fn names(&self) -> &crate::netns::EnvNames {
        self.env.names()
    }

    /// Makes the lesson's file at least `min` bytes (a lesson whose
    /// measurement needs the transfer, not its set-up, to fill the time).
    pub fn at_least(&mut self, min: u64) -> Result<()> {
        if self.size < min {
            run::make_random_file(&self.file, min)?;
            self.size = min;
        }
        Ok(())
    }

    /// A scratch path in the lesson's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// One transfer of the lesson's file across its environment.
    pub fn transfer(&mut self, mode: Mode, chunk: usize, cold: bool) -> Result<RunReport> {
        let r = self.transfer_with(mode, chunk, cold, Via::Splice, None)?;
        anyhow::ensure!(r.verified, "the {mode} transfer did not verify: {}", r.reason.clone().unwrap_or_default());
        Ok(r)
    }

    /// A transfer with the receiver taking the data `via` some way, on the
    /// lesson's environment or on `env` (another of the lesson's making). It
    /// need not verify (`--via discard` cannot).
    pub fn transfer_with(&mut self, mode: Mode, chunk: usize, cold: bool, via: Via, env: Option<&str>) -> Result<RunReport> {
        let cfg = self.run_config(mode, chunk, cold, via, env);
        run::run(&cfg).with_context(|| format!("the {mode} transfer failed"))
    }

    /// An af-xdp transfer whose receiver writes with O_DIRECT from its UMEM
    /// (`recv --direct`); it must verify.
    pub fn transfer_direct(&mut self, cold: bool) -> Result<RunReport> {
        let mut cfg = self.run_config(Mode::AfXdp, DEFAULT_CHUNK, cold, Via::Splice, None);
        progress(&format!("af-xdp, the receiver with --direct{}", if cold { ", cold cache" } else { "" }));
        cfg.preallocate = false;
        cfg.af_xdp_args = (Vec::new(), vec!["--direct".into()]);
        let r = run::run(&cfg).context("the af-xdp --direct transfer failed")?;
        anyhow::ensure!(r.verified, "the af-xdp --direct transfer did not verify: {}", r.reason.clone().unwrap_or_default());
        Ok(r)
    }

    fn run_config(&mut self, mode: Mode, chunk: usize, cold: bool, via: Via, env: Option<&str>) -> RunConfig {
        progress(&format!(
            "{mode}{}{}",
            if chunk != DEFAULT_CHUNK { format!(", {} chunks", bytes(chunk as u64)) } else { String::new() },
            if cold { ", cold cache" } else { "" }
        ));
        // A fresh port each time: the kernel may hold the last one for a moment.
        self.port = if self.port >= DEFAULT_PORT + 500 { DEFAULT_PORT } else { self.port + 1 };
        RunConfig {
            env: env.map_or_else(|| self.env.names().name.clone(), String::from),
            mode,
            file: self.file.clone(),
            keep: None,
            port: self.port,
            chunk,
            timeout: Duration::from_secs(20),
            cold,
            preallocate: true,
            trace: self.trace,
            via,
            zc: crate::send::ZcOptions::default(),
            key: None,
            af_xdp_args: Default::default(),
            pin: None,
            ipv6: false,
            tcp_receiver: false,
        }
    }

    /// Another environment for this lesson, with its own MTU; removed when dropped.
    pub fn extra_env(&self, suffix: &str, mtu: u32) -> Result<LabEnv> {
        let name = format!("{}{suffix}", self.env.names().name);
        LabEnv::up(&EnvConfig { name, mtu: Some(mtu), queues: None, router: None, ipv6: false, verbose: false })
    }
}

impl Lab {
    /// Another environment for this lesson with a router namespace between
    /// the two ends (`env up --router`, no loss of its own); removed when dropped.
    pub fn routed_env(&self, suffix: &str) -> Result<LabEnv> {
        let name = format!("{}{suffix}", self.env.names().name);
        let router = Some(crate::netns::Router { loss_pct: 0.0, rate: None });
        LabEnv::up(&EnvConfig { name, mtu: None, queues: None, router, ipv6: false, verbose: false })
    }
}

/// For the AF_XDP experiments, run in a thread of their own: moves this
/// thread into namespace `ns` and finds interface `iface` there.
pub(crate) fn enter_iface(ns: &str, iface: &str) -> Result<crate::transfer::af_xdp::Iface> {
    Ok(crate::transfer::af_xdp::Iface::enter(ns, iface)?)
}

/// A small aligned UMEM of `count` 4096-byte frames, for the AF_XDP experiments.
pub(crate) fn small_umem(count: u32, fill: u32, completion: u32) -> Result<crate::xsk::Umem> {
    Ok(crate::xsk::Umem::new(&crate::xsk::UmemConfig::chunks(4096, count, fill, completion))?)
}

/// Runs lesson `l` with a file of `size` bytes, or with `check` its assignment's check.
pub fn run(l: &Lesson, size: u64, trace: bool, check: bool) -> Result<Findings> {
    let what = match (check, l.check) {
        (false, _) => l.run,
        (true, Some(c)) => c,
        (true, None) => {
            anyhow::bail!("lesson {} has no --check: its assignments say how to check them (docs/lessons/)", l.number)
        }
    };
    crate::netns::require_privileges("a lesson (it makes its own lab environment)")?;
    let mut lab = Lab::new(l.number, size, trace)?;
    let f = what(&mut lab)?;
    progress("");
    Ok(f)
}

/// A "running: ..." line on a terminal, overwritten by the next; nothing when stderr is not a terminal.
fn progress(what: &str) {
    use std::io::IsTerminal;
    let mut e = std::io::stderr();
    if !e.is_terminal() {
        return;
    }
    let _ = write!(e, "  running: {what:<60}\r");
    let _ = e.flush();
}

/// Bytes in KiB/MiB/GiB, short.
pub fn bytes(b: u64) -> String {
    crate::report::human_bytes(b)
}

/// Whether the page cache holds nearly all of a file: at least 99% of it.
/// The kernel may reclaim a clean page at any moment (memory pressure from
/// other work on the machine), so "all of it" would be a claim about the
/// machine's load, not about the path.
pub fn nearly_all_cached(cached: u64, size: u64) -> bool {
    cached.saturating_mul(100) >= size.saturating_mul(99)
}

/// "16.0 MiB of 16.0 MiB", with the exact shortfall in pages when the two
/// differ (the rounding would hide it).
pub fn cached_of(cached: u64, size: u64) -> String {
    if cached >= size {
        return format!("all {}", bytes(size));
    }
    let page = crate::sys::page_size() as u64;
    format!("{} of {} ({} pages short)", bytes(cached), bytes(size), (size - cached).div_ceil(page))
}

/// CPU seconds of both ends per GiB of file.
pub fn cpu_per_gib(r: &RunReport) -> f64 {
    r.cpu_s_per_gib()
}

/// The human-readable findings: tables, bar charts, then the claims.
pub fn text(f: &Findings) -> String {
    let mut s = format!("Lesson {}: {} ({} file)\n", f.lesson, f.title, bytes(f.file_bytes));
    for e in &f.experiments {
        let _ = write!(s, "\n{}\n", e.name);
        s += &table(&e.columns, &e.rows);
        if let Some(c) = e.chart {
            s += &bars(e, c);
        }
    }
    s += if f.assignment { "\nChecks\n" } else { "\nClaims\n" };
    for c in &f.claims {
        let mark = match (f.assignment, c.holds) {
            (false, true) => "holds",
            (false, false) => "DOES NOT HOLD on this machine",
            (true, true) => "done",
            (true, false) => "NOT YET",
        };
        let _ = writeln!(s, "  [{mark}] {}\n      {}", c.text, c.evidence);
    }
    for n in &f.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).chain([columns[i].chars().count()]).max().unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut l = String::from("  ");
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).map_or("", |c| c.as_str());
            // The first column names the row: left-aligned; the numbers after it: right-aligned.
            if i == 0 {
                let _ = write!(l, "{c:<w$}  ");
            } else {
                let _ = write!(l, "{c:>w$}  ");
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut s = line(columns);
    for r in rows {
        s += &line(r);
    }
    s
}

/// Horizontal bars of column `c` (its cells must be numbers), labelled by
/// the first column; with `e.under`, that column's value is drawn inside
/// each bar as `#` and the rest of the bar as `-`.
fn bars(e: &Experiment, c: usize) -> String {
    let label = |r: &[String]| r.iter().take(e.label_columns.max(1)).cloned().collect::<Vec<_>>().join(" ");
    let num = |r: &[String], i: usize| r.get(i).and_then(|v| v.trim().parse::<f64>().ok());
    let vals: Vec<(String, f64, Option<f64>)> =
        e.rows.iter().filter_map(|r| Some((label(r), num(r, c)?, e.under.and_then(|u| num(r, u))))).collect();
    let width = vals.iter().map(|v| v.0.chars().count()).max().unwrap_or(0);
    let max = vals.iter().map(|v| v.1.max(v.2.unwrap_or(0.0))).fold(0.0, f64::max);
    if max <= 0.0 {
        return String::new();
    }
    // A value above zero gets at least one mark; zero gets none.
    let marks = |v: f64| if v > 0.0 { (((v / max) * 40.0).round() as usize).max(1) } else { 0 };
    let by = e.columns.iter().take(e.label_columns.max(1)).cloned().collect::<Vec<_>>().join(" and ");
    let mut s = match e.under {
        Some(u) => format!("  {} by {by} (# {}, - the rest):\n", e.columns[c], e.columns[u]),
        None => format!("  {} by {by}:\n", e.columns[c]),
    };
    for (label, v, under) in &vals {
        let bar = match under {
            Some(u) => {
                let inside = marks(*u);
                "#".repeat(inside) + &"-".repeat(marks(*v).saturating_sub(inside))
            }
            None => "#".repeat(marks(*v)),
        };
        let _ = writeln!(s, "  {label:<width$} {bar} {v}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lessons_are_in_course_order_with_unique_numbers() {
        let n: Vec<u32> = LESSONS.iter().map(|l| l.number).collect();
        let mut sorted = n.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(n, sorted);
        assert!(find(1).is_some() && find(99).is_none());
    }

    #[test]
    fn tables_align_and_bars_scale_to_the_largest() {
        let e = Experiment {
            name: "sweep".into(),
            columns: vec!["chunk".into(), "Gbit/s".into()],
            rows: vec![vec!["4 KiB".into(), "2.5".into()], vec!["1 MiB".into(), "10".into()]],
            chart: Some(1),
            label_columns: 1,
            under: None,
        };
        let t = table(&e.columns, &e.rows);
        let widths: Vec<usize> = t.lines().map(|l| l.len()).collect();
        assert_eq!(widths[1], widths[2], "{t}");
        let b = bars(&e, 1);
        assert!(b.contains(&format!("1 MiB {} 10", "#".repeat(40))), "{b}");
        assert!(b.contains("  4 KiB "), "labels line up on the left: {b}");
        assert!(b.contains(&format!("4 KiB {} 2.5", "#".repeat(10))), "{b}");
        let w = Experiment {
            name: "window".into(),
            columns: vec!["ms".into(), "cwnd".into(), "in flight".into()],
            rows: vec![vec!["0".into(), "10".into(), "5".into()], vec!["1".into(), "20".into(), "20".into()]],
            chart: Some(1),
            label_columns: 1,
            under: Some(2),
        };
        let b = bars(&w, 1);
        assert!(b.contains(&format!("0 {}{} 10", "#".repeat(10), "-".repeat(10))), "{b}");
        assert!(b.contains(&format!("1 {} 20", "#".repeat(40))), "{b}");
        assert!(b.contains("(# in flight, - the rest)"), "{b}");
    }
}
