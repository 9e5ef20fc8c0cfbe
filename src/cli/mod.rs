//! The command line: one module per command's arguments, each turned once
//! into a validated config and run by that module's `exec`. `main.rs` only
//! parses and dispatches.

mod bench;
mod env;
mod http;
mod lesson;
mod messages;
mod recv;
mod run;
mod send;
mod show;
mod xdp;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use zclab::netns;
use zclab::transfer::Mode;

const ABOUT: &str = "A lab for zero-copy networking on Linux: move a file from one network namespace to \
another by each kernel data path, measure what each costs, and prove it arrived intact.";

const LONG_ABOUT: &str = "\
A lab for zero-copy networking on Linux: move a file from one network namespace to
another by each kernel data path, measure what each costs, and prove it arrived intact.

A first session, as root:
    zclab env up                                   # two namespaces and a veth pair
    head -c 256M /dev/urandom > /var/tmp/f          # a file to move
    zclab run --mode sendfile --file /var/tmp/f    # one transfer, one report
    zclab run --mode read-write --file /var/tmp/f  # compare the numbers
    zclab explain sendfile                         # the path drawn, with that run's figures
    zclab env down

Where kernel bypass pays, small messages (both ends in the environment `zclab env up` made):
    zclab rate --mode udp --pin                    # 64-byte messages one way: messages/s
    zclab rate --mode af-xdp --pin
    zclab latency --mode udp --spin --pin          # round trips: p50 to max, cost per message
    zclab latency --mode af-xdp --spin --pin

To learn why the numbers differ:
    zclab lesson                                   # the lessons, each a lab of its own
    zclab lesson 3                                 # run one: evidence, then claims checked

What a report tells you: throughput; CPU seconds (user and system) of each end from
getrusage; the data-path syscalls zclab itself made; context switches; how much of
the source file sat in the page cache before and after (mincore); for the zero-copy
paths, how many sends the kernel flagged as copied after all; and the BLAKE3 hash
both ends computed. With --trace, the kernel's own counters too (zclab trace-check).
A transfer that does not verify exits with status 1.

Set RUST_LOG=debug to see each step.";

#[derive(Parser)]
#[command(name = "zclab", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create, inspect or remove a lab environment (two namespaces, one veth pair).
    #[command(subcommand)]
    Env(env::EnvCmd),
    /// Send a file to a waiting `zclab recv` by one data path.
    Send(send::SendArgs),
    /// Receive one file from `zclab send`, verify it, write it, and exit.
    Recv(recv::RecvArgs),
    /// Run one transfer across a lab environment: receiver in NAME-rx, sender in NAME-tx.
    Run(run::RunArgs),
    /// Serve one file over HTTP/1.1 for curl: on zclab's own TCP (af-xdp-tcp) or the kernel's (sendfile).
    Http(http::HttpArgs),
    /// Small messages, request and response: round-trip times (p50 to max) and what each
    /// message cost both ends, by TCP, UDP or AF_XDP, blocking, spinning or busy polling.
    Latency(messages::LatencyArgs),
    /// Small messages one way, as fast as they go: messages per second delivered, lost,
    /// duplicated and reordered, by TCP, UDP, batched UDP or AF_XDP.
    Rate(messages::RateArgs),
    /// What of the lab works on this machine: one row per feature, works or not, with the
    /// reason and the fix.
    Doctor(show::DoctorArgs),
    /// Print the side-by-side table of saved `zclab run --json` reports.
    Compare(show::CompareArgs),
    /// Run every path side by side, interleaved: medians, ranges, charts and an HTML report.
    Bench(bench::BenchArgs),
    /// Draw a data path: where the bytes live, each copy and who makes it, the mode switches,
    /// the page cache or not; with the figures of the last `zclab run` of that mode.
    ///
    /// Without a mode, lists them. `zclab run` keeps its last report per mode in
    /// $ZCLAB_STATE_DIR, else $XDG_STATE_HOME/zclab, else ~/.local/state/zclab.
    Explain {
        /// The data path to draw.
        #[arg(value_enum)]
        mode: Option<Mode>,
    },
    /// List the lessons, or run one: experiments, their evidence, and claims checked on this machine.
    Lesson(lesson::LessonArgs),
    /// Helpers the lessons run in a child process (not for direct use).
    #[command(hide = true, name = "lesson-helper")]
    LessonHelper {
        /// `touch-past-end`: map two pages of FILE (at most a page long) and read the second: SIGBUS.
        what: String,
        file: PathBuf,
    },
    /// Say which of the kernel counters of `--trace` work on this machine (needs root).
    ///
    /// Loads and attaches every tracing program for a moment, in this network namespace,
    /// and prints each tracepoint with "ok" or the reason it cannot be used. A tracepoint
    /// that is missing here only takes its own counters out of the reports.
    TraceCheck,
}

#[derive(Args)]
pub struct Common {
    /// Print the report as JSON (a stable schema) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Give up when the peer moves no byte for this long (seconds).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Count what the kernel did during the timed part, from its tracepoints: bytes copied
    /// into user memory, how each TCP send's bytes came (copied, page references, pinned),
    /// pages added to the page cache, packets, XDP redirects, drops and their reasons.
    /// See `zclab trace-check` for which counters work on this machine; a counter whose
    /// tracepoint is missing is null in the report (ZCLAB_TRACE_WITHOUT=name,... pretends so).
    #[arg(long)]
    pub trace: bool,
    /// A file holding a secret both ends share (16 bytes or more: `head -c 32 /dev/urandom >
    /// FILE`). The handshake then proves to each end that the other holds it, and the final
    /// check compares hashes keyed for this session, which no one on the path can forge.
    /// Without a key, anyone who can reach the receiver's port can send it a file, and the
    /// hashes catch accidents, not an attacker.
    #[arg(long, env = "ZCLAB_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Run on this CPU only (sched_setaffinity, before anything else). Two ends that share a
    /// core run at about 60% of their speed here, and the scheduler sometimes puts them
    /// there: `zclab run --pin` and `zclab bench` pin the sender to CPU 0 and the receiver to 1.
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
}

impl Common {
    /// Pins this process to `--cpu`, if given.
    pub fn pin(&self) -> Result<()> {
        if let Some(c) = self.cpu {
            zclab::sys::sched::pin_to_cpu(c).with_context(|| {
                format!("--cpu {c}: cannot run there (this machine has CPUs 0 to {})", zclab::sys::sched::cpus() - 1)
            })?;
        }
        Ok(())
    }

    pub fn key(&self) -> Result<Option<zclab::transfer::auth::Key>> {
        self.key.as_deref().map(zclab::transfer::auth::Key::from_file).transpose()
    }
}

/// How clap spells a value of an option (`--zerocopy auto`).
pub fn value_name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

/// A comma-separated list of numbers in `range` (none given: empty).
pub fn number_list(list: &Option<String>, option: &str, range: std::ops::RangeInclusive<u32>) -> Result<Vec<u32>> {
    let Some(l) = list else { return Ok(Vec::new()) };
    l.split(',')
        .map(|n| {
            n.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .with_context(|| format!("{option}: {n:?} is not a number from {} to {}", range.start(), range.end()))
        })
        .collect()
}

/// The list without repeats, in its order (a value given twice runs once).
pub fn unique<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// "64K" and friends, in bytes, any size.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().with_context(|| format!("{s:?}: expected a number with an optional K, M or G"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        other => bail!("{s:?}: unknown unit {other:?} (use K, M or G)"),
    };
    n.checked_shl(shift).filter(|b| b >> shift == n).with_context(|| format!("{s:?} is too large"))
}

/// "64M" and friends, in bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let bytes = parse_bytes(s).with_context(|| "--size".to_string())?;
    if !(1 << 20..=16 << 30).contains(&bytes) {
        bail!("--size must be between 1M and 16G (a lesson needs a file to move, and room on /var/tmp)");
    }
    Ok(bytes)
}

pub fn timeout(secs: f64) -> Result<Duration> {
    if !(secs > 0.0 && secs <= 3600.0) {
        bail!("--timeout must be between 0 and 3600 seconds");
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn chunk(bytes: usize) -> Result<usize> {
    if !(1..=(1 << 30)).contains(&bytes) {
        bail!("--chunk must be between 1 byte and 1 GiB");
    }
    Ok(bytes)
}

pub fn enter_netns(ns: &Option<String>) -> Result<()> {
    if let Some(ns) = ns {
        netns::require_privileges("--netns")?;
        zclab::sys::netns::enter(ns).with_context(|| {
            format!("cannot enter network namespace {ns:?} (does /var/run/netns/{ns} exist? `ip netns list`)")
        })?;
        log::debug!("entered network namespace {ns}");
    }
    Ok(())
}

pub fn print<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).expect("reports serialize"));
    } else {
        print!("{}", text(value));
    }
}

/// Runs the command; `Ok(false)` means it ran but what it checks did not hold
/// (a transfer that did not verify, a claim of an assignment not done).
pub fn dispatch(cli: Cli) -> Result<bool> {
    match cli.cmd {
        Cmd::Env(c) => env::exec(c),
        Cmd::Send(a) => send::exec(a),
        Cmd::Http(a) => http::exec(a),
        Cmd::Recv(a) => recv::exec(a),
        Cmd::Run(a) => run::exec(a),
        Cmd::Latency(a) => messages::latency(a),
        Cmd::Rate(a) => messages::rate(a),
        Cmd::Compare(a) => show::compare(a),
        Cmd::Doctor(a) => show::doctor(a),
        Cmd::Bench(a) => bench::exec(a),
        Cmd::Explain { mode } => show::explain(mode),
        Cmd::Lesson(a) => lesson::exec(a),
        Cmd::LessonHelper { what, file } => lesson::helper(&what, &file),
        Cmd::TraceCheck => show::trace_check(),
    }
}
