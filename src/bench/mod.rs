//! `zclab bench`: every path side by side, interleaved, with medians,
//! ranges, charts and an HTML report.
//!
//! Runs go round-robin (A B C A B C ...) so that whatever the machine does
//! meanwhile hits every path alike; each figure is reported as the median
//! and the min-max of its runs. Beside each process's own CPU time (which
//! misplaces veth's receive work) it records the busy time of all CPUs
//! from /proc/stat, the more honest total.

mod ceilings;
mod chart;
mod html;
pub mod messages;
mod peers;
mod xsk_ceiling;

pub use peers::PeerRun;

pub use ceilings::Ceiling;

use crate::netns::{EnvConfig, LabEnv};
use crate::report::{human_bytes, RunReport};
use crate::run::{self, RunConfig};
use crate::transfer::af_xdp::FrameLayout;
use crate::transfer::mode::Via;
use crate::transfer::{Mode, DEFAULT_CHUNK, DEFAULT_PORT};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Warm or cold page cache for the sender's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Cache {
    Warm,
    Cold,
}

/// A validated `zclab bench`.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// An environment to use (None: the bench makes its own and removes it).
    pub env: Option<String>,
    /// File sizes to sweep (one file each, made once).
    pub sizes: Vec<u64>,
    pub modes: Vec<Mode>,
    pub runs: u32,
    pub caches: Vec<Cache>,
    /// MTUs to sweep (each its own environment); empty: the environment's.
    pub mtus: Vec<u32>,
    /// Bytes per data-path call of the TCP paths, to sweep.
    pub chunks: Vec<usize>,
    /// Sends in flight of msg-zerocopy and io-uring-zc, to sweep (empty: their default).
    pub in_flight: Vec<u32>,
    /// io-uring-zc also from registered (fixed) buffers, beside the plain one.
    pub fixed_buffers: bool,
    /// af-xdp frame layouts to run (empty: the sender's default).
    pub layouts: Vec<FrameLayout>,
    /// af-xdp twice: with the page-cache receiver and with `recv --direct`.
    pub direct: bool,
    /// af-xdp queue counts to run (empty: the sender's default); the
    /// bench's own environments get as many queues as the largest.
    pub queues: Vec<u32>,
    /// Sender on CPU 0, receiver on CPU 1 (zclab's and iperf3's).
    pub pin: bool,
    pub out: PathBuf,
    pub trace: bool,
    /// Measure reference lines too (memcpy, O_DIRECT disk reads).
    pub ceilings: bool,
    /// Run iperf3 (`-F` and `-Z -F`) on the same environment and file too.
    pub peers: bool,
    /// The small-message section (`--latency`): rate and latency beside the files.
    pub latency: Option<messages::MsgConfig>,
}

/// One cell of the matrix: a path and every setting it runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub mode: Mode,
    pub cache: Cache,
    /// The environment's MTU (None: the one it had).
    pub mtu: Option<u32>,
    /// The file's size.
    pub size: u64,
    /// Bytes per data-path call (None: a packet path, which cuts by the MTU).
    pub chunk: Option<usize>,
    /// Sends in flight (msg-zerocopy, io-uring-zc; None: the path's default).
    pub in_flight: Option<u32>,
    /// io-uring-zc from registered buffers.
    pub fixed_buffers: bool,
    /// af-xdp's frame layout (None: the sender's default).
    pub layout: Option<FrameLayout>,
    /// af-xdp's queues (None: the sender's default).
    pub queues: Option<u32>,
    /// af-xdp's receiver writes with O_DIRECT from its UMEM (`recv --direct`).
    #[serde(default)]
    pub direct: bool,
}

impl Cell {
    /// "io-uring-zc fixed (warm, MTU 9000, 64.0 KiB, 4 in flight)": the
    /// path, then its settings, those that vary among `all` or are set.
    pub fn label(&self, all: &[Cell]) -> String {
        let mut s = self.mode.name().to_string();
        if self.fixed_buffers {
            s += " fixed";
        }
        if let Some(l) = self.layout {
            s = format!("{s} {}", l.name());
        }
        if let Some(q) = self.queues {
            s = format!("{s} {q}q");
        }
        if self.direct {
            s += " direct";
        }
        let mut parts = vec![format!("{:?}", self.cache).to_lowercase()];
        if let Some(mtu) = self.mtu {
            parts.push(format!("MTU {mtu}"));
        }
        if all.iter().any(|o| o.size != self.size) {
            parts.push(format!("{} file", human_bytes(self.size)));
        }
        if let Some(c) = self.chunk.filter(|_| all.iter().any(|o| o.chunk.is_some() && o.chunk != self.chunk)) {
            parts.push(human_bytes(c as u64));
        }
        if let Some(n) = self.in_flight {
            parts.push(format!("{n} in flight"));
        }
        format!("{s} ({})", parts.join(", "))
    }
}

/// One run of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRun {
    #[serde(flatten)]
    pub cell: Cell,
    pub round: u32,
    /// Busy seconds of all CPUs during the run's timed part (/proc/stat).
    pub all_cpu_s: f64,
    pub report: RunReport,
}

/// Median and range of one figure.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// None for no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Spread { median, min: v[0], max: v[n - 1] })
    }

    const NONE: Spread = Spread { median: f64::NAN, min: f64::NAN, max: f64::NAN };
}

/// The figures of one cell over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub cell: Cell,
    pub runs: usize,
    pub verified: usize,
    pub gbit_per_s: Spread,
    /// All CPUs' busy seconds per GiB moved.
    pub all_cpu_s_per_gib: Spread,
    /// Both processes' user + system seconds per GiB.
    pub process_cpu_s_per_gib: Spread,
    pub sender_sys_s: Spread,
    /// The sender's system seconds per GiB.
    pub sender_sys_s_per_gib: Spread,
    pub sender_syscalls: Spread,
    /// The sender's data-path calls per GiB.
    pub sender_syscalls_per_gib: Spread,
    /// Context switches of both ends, voluntary and not.
    pub context_switches: Spread,
    /// The file's bytes in the page cache after the run.
    pub cached_after_bytes: Spread,
    /// The received file's bytes in the receiver's page cache when the receiver ended.
    #[serde(default)]
    pub out_cached_after_bytes: Spread,
    /// The receiving process's user + system seconds per GiB.
    #[serde(default)]
    pub receiver_cpu_s_per_gib: Spread,
    /// Zero-copy paths: (sends flagged copied, completions), over all runs.
    pub zerocopy_copied: Option<(u64, u64)>,
    /// Bytes the kernel was seen to copy per byte of file (`--trace`).
    pub kernel_copies_per_byte: Option<Spread>,
    /// Copies per byte the runs must have made (`copies::infer`), each with its rule in runs.json.
    #[serde(default)]
    pub inferred_copies_per_byte: Option<Spread>,
}

impl Summary {
    /// "src / rcv": the file's bytes in each end's page cache after the runs (medians).
    pub fn cached_after(&self) -> String {
        let rcv = self.out_cached_after_bytes.median;
        format!(
            "{} / {}",
            human_bytes(self.cached_after_bytes.median as u64),
            if rcv.is_finite() { human_bytes(rcv as u64) } else { "?".into() }
        )
    }

    /// The kernel's zero-copy verdict: "-" for paths that do not ask for it.
    pub fn zerocopy_verdict(&self) -> String {
        match self.zerocopy_copied {
            None => "-".into(),
            Some((_, 0)) => "no completions".into(),
            Some((c, n)) if c == n => "all copied".into(),
            Some((0, _)) => "zero copy".into(),
            Some((c, n)) => format!("{c} of {n} copied"),
        }
    }
}

/// What a bench found: zclab's paths, the peers, the ceilings.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub summaries: Vec<Summary>,
    /// iperf3's runs (`--peers`): name and Gbit/s median and range.
    pub peers: Vec<(String, Spread)>,
    /// Reference lines (`--ceilings`).
    pub ceilings: Vec<Ceiling>,
    /// The ends ran pinned (sender on CPU 0, receiver on CPU 1).
    pub pinned: bool,
    /// The small-message section, if it ran.
    pub messages: Option<messages::MsgResult>,
}

/// The cells of one round, in the order they run: per environment, file
/// size, chunk and cache setting, every mode (and its variants) in turn.
pub fn matrix(cfg: &BenchConfig, mtus: &[Option<u32>]) -> Vec<Cell> {
    let chunks: Vec<usize> = if cfg.chunks.is_empty() { vec![DEFAULT_CHUNK] } else { cfg.chunks.clone() };
    let mut cells = Vec::new();
    for &mtu in mtus {
        for &size in &cfg.sizes {
            for (ci, &chunk) in chunks.iter().enumerate() {
                for &cache in &cfg.caches {
                    for &mode in &cfg.modes {
                        // A packet path cuts by the MTU: one chunk setting is enough.
                        if mode.is_packet_path() && ci > 0 {
                            continue;
                        }
                        let base = Cell {
                            mode,
                            cache,
                            mtu,
                            size,
                            chunk: (!mode.is_packet_path()).then_some(chunk),
                            in_flight: None,
                            fixed_buffers: false,
                            layout: None,
                            queues: None,
                            direct: false,
                        };
                        let zc = matches!(mode, Mode::MsgZerocopy | Mode::IoUringZc);
                        let depths: Vec<Option<u32>> = if zc && !cfg.in_flight.is_empty() {
                            cfg.in_flight.iter().map(|&n| Some(n)).collect()
                        } else {
                            vec![None]
                        };
                        let fixed: &[bool] = if mode == Mode::IoUringZc && cfg.fixed_buffers { &[false, true] } else { &[false] };
                        let layouts: Vec<Option<FrameLayout>> = if mode == Mode::AfXdp && !cfg.layouts.is_empty() {
                            cfg.layouts.iter().map(|&l| Some(l)).collect()
                        } else {
                            vec![None]
                        };
                        let queues: Vec<Option<u32>> = if mode == Mode::AfXdp && !cfg.queues.is_empty() {
                            cfg.queues.iter().map(|&q| Some(q)).collect()
                        } else {
                            vec![None]
                        };
                        let direct: &[bool] = if mode == Mode::AfXdp && cfg.direct { &[false, true] } else { &[false] };
                        for &fixed_buffers in fixed {
                            for &in_flight in &depths {
                                for &layout in &layouts {
                                    for &queues in &queues {
                                        for &direct in direct {
                                            cells.push(Cell { in_flight, fixed_buffers, layout, queues, direct, ..base });
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    cells
}

/// A progress bar on a terminal, nothing otherwise.
fn progress_bar(total: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} runs, {eta} left  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Runs the matrix, writes runs.json, summary.csv, the charts and report.html
/// into `cfg.out`; returns what it found.
pub fn bench(cfg: &BenchConfig) -> Result<BenchResult> {
    crate::netns::require_privileges("zclab bench (it makes or enters a lab environment)")?;
    if (cfg.modes.is_empty() && cfg.latency.is_none()) || cfg.runs == 0 || cfg.caches.is_empty() || cfg.sizes.is_empty() {
        bail!("nothing to run: give at least one mode (or --latency), one cache setting, one size and one run");
    }
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("cannot create {}", cfg.out.display()))?;
    // One environment per MTU swept (the bench's own), or the one named.
    let mut own_envs = Vec::new();
    let envs: Vec<(Option<u32>, String)> = match (&cfg.env, cfg.mtus.is_empty()) {
        (Some(e), true) => vec![(None, e.clone())],
        (Some(_), false) => bail!("--mtu sweeps need environments of the bench's own: leave out --env"),
        (None, _) => {
            let mtus: Vec<Option<u32>> =
                if cfg.mtus.is_empty() { vec![None] } else { cfg.mtus.iter().map(|m| Some(*m)).collect() };
            let mut v = Vec::new();
            for (i, mtu) in mtus.into_iter().enumerate() {
                let name = format!("zb{}{}", std::process::id() % 100_000, (b'a' + i as u8) as char);
                own_envs.push(LabEnv::up(&EnvConfig {
                    name: name.clone(),
                    mtu,
                    queues: cfg.queues.iter().max().copied().filter(|&q| q > 1),
                    router: None,
                    ipv6: false,
                    verbose: false,
                })?);
                v.push((mtu, name));
            }
            v
        }
    };
    // One file per size, made once (none for a bench of messages only).
    let mut files = Vec::new();
    for &size in cfg.sizes.iter().filter(|_| !cfg.modes.is_empty()) {
        let file = cfg.out.join(format!(".bench-file-{}-{size}", std::process::id()));
        files.push((size, Removed(file.clone())));
        run::make_random_file(&file, size)?;
    }
    let file_of = |size: u64| files.iter().find(|(s, _)| *s == size).map(|(_, f)| f.0.clone()).expect("a file per size");
    let direct = match files.first() {
        Some((_, f)) => crate::sys::file::dio_align(&std::fs::File::open(&f.0)?)?.is_some(),
        None => true,
    };
    if !direct {
        log::warn!(
            "{} is on a filesystem without direct I/O (tmpfs?): cold runs are not cold and af-xdp cannot skip the page cache",
            cfg.out.display()
        );
    }
    let cells = matrix(cfg, &envs.iter().map(|e| e.0).collect::<Vec<_>>());
    // A first round of every cell, not counted: the first run of a path
    // after making a big file pays for memory the kernel touches for the
    // first time (it was up to twice as slow here).
    let msg_cells = if cfg.latency.is_some() { messages::cells() } else { Vec::new() };
    let file_peers = if cfg.peers && !cells.is_empty() { peers::PEERS.len() } else { 0 };
    let msg_peers = if cfg.peers && !msg_cells.is_empty() { messages::SOCKPERF.len() } else { 0 };
    let total = cells.len() + msg_cells.len() + cfg.runs as usize * (cells.len() + msg_cells.len() + file_peers + msg_peers);
    let (mut msg_runs, mut sockperf_runs) = (Vec::new(), Vec::new());
    let bar = progress_bar(total);
    let mut peer_runs = Vec::new();
    let mut runs = Vec::with_capacity(total);
    let mut port = DEFAULT_PORT;
    for round in 0..=cfg.runs {
        let counted = round > 0;
        for cell in &cells {
            crate::interrupt::check()?;
            let what = if counted { format!("round {round}") } else { "a first round, not counted".into() };
            bar.set_message(format!("{}, {what}", cell.label(&cells)));
            port = if port >= DEFAULT_PORT + 500 { DEFAULT_PORT } else { port + 1 };
            let env = &envs.iter().find(|e| e.0 == cell.mtu).expect("an environment per MTU").1;
            let report = run_cell(cell, env, &file_of(cell.size), port, cfg.trace && counted, cfg.pin)
                .with_context(|| format!("the {} run failed", cell.label(&cells)))?;
            let all_cpu_s = report.all_cpu_s.unwrap_or(f64::NAN);
            if counted {
                runs.push(BenchRun { cell: *cell, round: round - 1, all_cpu_s, report });
            }
            bar.inc(1);
        }
        if let Some(mcfg) = &cfg.latency {
            for cell in &msg_cells {
                crate::interrupt::check()?;
                let what = if counted { format!("round {round}") } else { "a first round, not counted".into() };
                bar.set_message(format!("{} {}, {what}", format!("{:?}", cell.workload).to_lowercase(), cell.label()));
                port = if port >= DEFAULT_PORT + 500 { DEFAULT_PORT } else { port + 1 };
                let r = messages::run_cell(cell, &envs[0].1, port, cfg.pin, mcfg, round.saturating_sub(1))
                    .with_context(|| format!("the {:?} {} run failed", cell.workload, cell.label()))?;
                if counted {
                    msg_runs.push(r);
                }
                bar.inc(1);
            }
        }
        if !counted {
            continue;
        }
        if let (true, Some(mcfg)) = (msg_peers > 0, &cfg.latency) {
            let names = crate::netns::EnvNames::new(&envs[0].1)?;
            for (name, tcp) in messages::SOCKPERF {
                crate::interrupt::check()?;
                bar.set_message(format!("{name}, round {round}"));
                port = if port >= DEFAULT_PORT + 500 { DEFAULT_PORT } else { port + 1 };
                let secs = mcfg.seconds.max(1.0);
                sockperf_runs.push(messages::sockperf(&names, port, tcp, mcfg.size, secs, cfg.pin, round - 1)?);
                bar.inc(1);
            }
        }
        if file_peers > 0 {
            // On the first environment and file, after this round's modes.
            let names = crate::netns::EnvNames::new(&envs[0].1)?;
            for (name, z) in peers::PEERS {
                crate::interrupt::check()?;
                bar.set_message(format!("{name}, round {round}"));
                port = if port >= DEFAULT_PORT + 500 { DEFAULT_PORT } else { port + 1 };
                let gbit_per_s = peers::iperf3(&names.rx_ns, &names.tx_ns, port, &file_of(cfg.sizes[0]), z, cfg.pin)?;
                peer_runs.push(PeerRun { name: name.to_string(), round: round - 1, gbit_per_s });
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let mut lines = Vec::new();
    if cfg.ceilings && !files.is_empty() {
        lines.push(ceilings::memcpy());
        match ceilings::direct_read(&file_of(cfg.sizes[0])) {
            Some(c) => lines.push(c),
            None => log::warn!("no O_DIRECT ceiling: the file's filesystem has no direct I/O"),
        }
        for (descs, payload) in [(1, xsk_ceiling::PAYLOAD), (1, xsk_ceiling::ALIGNED_PAYLOAD), (2, xsk_ceiling::PAYLOAD)] {
            match xsk_ceiling::frames_only(&envs[0].1, descs, payload, 1.0) {
                Ok(c) => lines.push(c),
                Err(e) => log::warn!("no AF_XDP frames-only ceiling ({descs} descriptors, {payload} B): {e:#}"),
            }
        }
    }
    drop(own_envs);
    let summaries = summarize(&runs, &cells);
    let peers: Vec<(String, Spread)> = peers::PEERS
        .iter()
        .filter_map(|(name, _)| {
            let g: Vec<f64> = peer_runs.iter().filter(|p| p.name == *name).map(|p| p.gbit_per_s).collect();
            Spread::of(&g).map(|s| (name.to_string(), s))
        })
        .collect();
    let msgs = cfg.latency.as_ref().map(|m| messages::MsgResult {
        size: m.size,
        summaries: messages::summarize(&msg_runs, &msg_cells),
        peers: messages::summarize_peers(&sockperf_runs),
    });
    let outputs = Outputs { runs: &runs, summaries: &summaries, lines: &lines, peer_runs: &peer_runs, peers: &peers, direct };
    write_outputs(cfg, &outputs, msgs.as_ref().map(|m| (m, msg_runs.as_slice(), sockperf_runs.as_slice())))?;
    Ok(BenchResult { summaries, peers, ceilings: lines, pinned: cfg.pin, messages: msgs })
}

/// One run of one cell.
fn run_cell(cell: &Cell, env: &str, file: &Path, port: u16, trace: bool, pin: bool) -> Result<RunReport> {
    let rc = RunConfig {
        env: env.to_string(),
        mode: cell.mode,
        file: file.to_path_buf(),
        keep: None,
        port,
        chunk: cell.chunk.unwrap_or(DEFAULT_CHUNK),
        timeout: Duration::from_secs(20),
        cold: cell.cache == Cache::Cold,
        // The receiver's pages written once before the timed part; not for a receiver that bypasses them.
        preallocate: !cell.direct,
        trace,
        via: Via::Splice,
        zc: crate::send::ZcOptions { in_flight: cell.in_flight, fixed_buffers: cell.fixed_buffers },
        key: None,
        af_xdp_args: {
            let mut send = Vec::new();
            if let Some(l) = cell.layout {
                send.extend(["--frame-layout".to_string(), l.name().to_string()]);
            }
            if let Some(q) = cell.queues {
                send.extend(["--queues".to_string(), q.to_string()]);
            }
            // The receiver follows the sender's queues.
            let recv = if cell.direct { vec!["--direct".to_string()] } else { Vec::new() };
            (send, recv)
        },
        pin: pin.then_some((0, 1)),
        ipv6: false,
    };
    let report = run::run(&rc)?;
    if cell.cache == Cache::Cold && report.source_cached_before_bytes > 0 {
        log::warn!(
            "{}: {} of the file was still cached at the start of a cold run",
            cell.mode,
            human_bytes(report.source_cached_before_bytes)
        );
    }
    Ok(report)
}

/// A file removed on drop.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn gib(bytes: u64) -> f64 {
    (bytes as f64 / (1u64 << 30) as f64).max(f64::MIN_POSITIVE)
}

/// Medians and ranges per cell, in the matrix's order.
pub fn summarize(runs: &[BenchRun], cells: &[Cell]) -> Vec<Summary> {
    let mut out = Vec::new();
    for cell in cells {
        let rs: Vec<&BenchRun> = runs.iter().filter(|r| r.cell == *cell).collect();
        if rs.is_empty() {
            continue;
        }
        let f = |g: &dyn Fn(&BenchRun) -> f64| Spread::of(&rs.iter().map(|r| g(r)).collect::<Vec<_>>()).unwrap_or(Spread::NONE);
        let copies: Vec<f64> =
            rs.iter().filter_map(|r| r.report.kernel.as_ref().and_then(|k| k.copies_per_byte(r.report.bytes))).collect();
        let zc: Vec<(u64, u64)> =
            rs.iter().filter_map(|r| r.report.zerocopy.as_ref().map(|z| (z.copied, z.completions))).collect();
        out.push(Summary {
            cell: *cell,
            runs: rs.len(),
            verified: rs.iter().filter(|r| r.report.verified).count(),
            gbit_per_s: f(&|r| r.report.gbit_per_s),
            all_cpu_s_per_gib: f(&|r| r.all_cpu_s / gib(r.report.bytes)),
            process_cpu_s_per_gib: f(&|r| r.report.cpu_s_per_gib()),
            sender_sys_s: f(&|r| r.report.sender.cpu_sys_s),
            sender_sys_s_per_gib: f(&|r| r.report.sender.cpu_sys_s / gib(r.report.bytes)),
            sender_syscalls: f(&|r| r.report.sender.syscalls as f64),
            sender_syscalls_per_gib: f(&|r| r.report.sender.syscalls as f64 / gib(r.report.bytes)),
            context_switches: f(&|r| {
                let (s, v) = (&r.report.sender, &r.report.receiver);
                (s.voluntary_ctx_switches + s.involuntary_ctx_switches + v.voluntary_ctx_switches + v.involuntary_ctx_switches)
                    as f64
            }),
            cached_after_bytes: f(&|r| r.report.source_cached_after_bytes as f64),
            out_cached_after_bytes: f(&|r| r.report.out_cached_after_bytes.map_or(f64::NAN, |b| b as f64)),
            receiver_cpu_s_per_gib: f(&|r| (r.report.receiver.cpu_user_s + r.report.receiver.cpu_sys_s) / gib(r.report.bytes)),
            zerocopy_copied: (!zc.is_empty()).then(|| zc.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))),
            kernel_copies_per_byte: (copies.len() == rs.len()).then(|| Spread::of(&copies)).flatten(),
            inferred_copies_per_byte: Spread::of(
                &rs.iter().filter_map(|r| r.report.inferred_copies.as_ref().map(|c| c.per_byte)).collect::<Vec<_>>(),
            ),
        });
    }
    out
}

/// A setting's title: everything about a cell but its path.
fn setting_title(c: &Cell, all: &[Cell]) -> String {
    let mut s = format!("{} file, {} cache", human_bytes(c.size), format!("{:?}", c.cache).to_lowercase());
    if let Some(m) = c.mtu {
        s += &format!(", MTU {m}");
    }
    if let Some(ch) = c.chunk.filter(|_| all.iter().any(|o| o.chunk.is_some() && o.chunk != c.chunk)) {
        s += &format!(", {} per call", human_bytes(ch as u64));
    }
    s
}

/// The tables printed at the end: one per setting (size, cache, MTU, chunk).
pub fn text(result: &BenchResult, out: &Path) -> String {
    let cells: Vec<Cell> = result.summaries.iter().map(|m| m.cell).collect();
    let mut s = String::new();
    let mut titles: Vec<String> = Vec::new();
    for m in &result.summaries {
        let t = setting_title(&m.cell, &cells);
        if !titles.contains(&t) {
            titles.push(t);
        }
    }
    // The kernel's count of copies, when the runs were traced.
    let traced = result.summaries.iter().any(|m| m.kernel_copies_per_byte.is_some());
    for title in &titles {
        let _ = writeln!(
            s,
            "\n{title} (median of runs; Gbit/s with min-max{})",
            if result.pinned { "; sender on CPU 0, receiver on CPU 1" } else { "" }
        );
        s += "| path                             | Gbit/s (min-max)       | all-CPU s/GiB | snd sys s/GiB | rcv CPU s/GiB | snd calls/GiB | ctx switches | cached after (src / rcv) | zero copy      | verified | copies/B |";
        s += if traced { " kcopies/B |\n" } else { "\n" };
        s += "|----------------------------------|------------------------|---------------|---------------|---------------|---------------|--------------|--------------------------|----------------|----------|----------|";
        s += if traced { "-----------|\n" } else { "\n" };
        for m in result.summaries.iter().filter(|m| setting_title(&m.cell, &cells) == *title) {
            let mut path = m.cell.mode.name().to_string();
            if m.cell.fixed_buffers {
                path += " fixed";
            }
            if let Some(l) = m.cell.layout {
                path += &format!(" {}", l.name());
            }
            if let Some(q) = m.cell.queues {
                path += &format!(" {q}q");
            }
            if m.cell.direct {
                path += " direct";
            }
            if let Some(n) = m.cell.in_flight {
                path += &format!(", {n} in flight");
            }
            let _ = writeln!(
                s,
                "| {:<32} | {:>6.2} ({:>6.2}-{:<6.2}) | {:>13.3} | {:>13.3} | {:>13.3} | {:>13.0} | {:>12.0} | {:>24} | {:<14} | {:>8} | {:>8} |",
                path,
                m.gbit_per_s.median,
                m.gbit_per_s.min,
                m.gbit_per_s.max,
                m.all_cpu_s_per_gib.median,
                m.sender_sys_s_per_gib.median,
                m.receiver_cpu_s_per_gib.median,
                m.sender_syscalls_per_gib.median,
                m.context_switches.median,
                m.cached_after(),
                m.zerocopy_verdict(),
                format!("{}/{}", m.verified, m.runs),
                m.inferred_copies_per_byte.map_or_else(|| "n/a".into(), |c| format!("{:.2}", c.median)),
            );
            if traced {
                s.insert_str(
                    s.len() - 1,
                    &format!(" {:>9} |", m.kernel_copies_per_byte.map_or_else(|| "n/a".into(), |k| format!("{:.2}", k.median))),
                );
            }
        }
    }
    if !result.summaries.is_empty() {
        s += "copies/B: copies per byte of the file the path must have made, kernel and zclab, on the way and on both \
              ends (inferred from the mode, the receiver, the sockets' bind modes and the zero-copy notifications; \
              each run's steps and their rules are in runs.json, `inferred_copies`). kcopies/B: what the \
              tracepoints saw (--trace).\n";
    }
    if !result.peers.is_empty() {
        s += "\n";
    }
    for (name, g) in &result.peers {
        let _ = writeln!(s, "peer      {name}: {:.2} Gbit/s median ({:.2}-{:.2})", g.median, g.min, g.max);
    }
    if !result.ceilings.is_empty() {
        s += "\n";
    }
    for c in &result.ceilings {
        let _ = writeln!(s, "ceiling   {}: {:.1} Gbit/s", c.name, c.gbit_per_s);
    }
    if let Some(m) = &result.messages {
        s += &messages::text(m, m.size, result.pinned);
    }
    let _ = writeln!(s, "\nruns.json, summary.csv, the SVG charts and report.html are in {}", out.display());
    s
}

fn csv(summaries: &[Summary]) -> String {
    let mut csv = String::from(
        "mode,fixed_buffers,frame_layout,queues,direct,cache,mtu,size,chunk,in_flight,runs,verified,gbit_median,gbit_min,gbit_max,all_cpu_s_per_gib_median,\
         process_cpu_s_per_gib_median,sender_sys_s_per_gib_median,sender_syscalls_median,sender_syscalls_per_gib_median,\
         context_switches_median,cached_after_bytes_median,receiver_cached_after_bytes_median,receiver_cpu_s_per_gib_median,\
         zerocopy,kernel_copies_per_byte_median,inferred_copies_per_byte_median\n",
    );
    let opt = |v: Option<String>| v.unwrap_or_default();
    for m in summaries {
        let c = &m.cell;
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.0},{:.0},{:.0},{:.0},{},{:.4},{},{},{}",
            c.mode.name(),
            c.fixed_buffers,
            c.layout.map_or("", FrameLayout::name),
            opt(c.queues.map(|v| v.to_string())),
            c.direct,
            format!("{:?}", c.cache).to_lowercase(),
            opt(c.mtu.map(|v| v.to_string())),
            c.size,
            opt(c.chunk.map(|v| v.to_string())),
            opt(c.in_flight.map(|v| v.to_string())),
            m.runs,
            m.verified,
            m.gbit_per_s.median,
            m.gbit_per_s.min,
            m.gbit_per_s.max,
            m.all_cpu_s_per_gib.median,
            m.process_cpu_s_per_gib.median,
            m.sender_sys_s_per_gib.median,
            m.sender_syscalls.median,
            m.sender_syscalls_per_gib.median,
            m.context_switches.median,
            m.cached_after_bytes.median,
            opt(m.out_cached_after_bytes.median.is_finite().then(|| format!("{:.0}", m.out_cached_after_bytes.median))),
            m.receiver_cpu_s_per_gib.median,
            m.zerocopy_verdict(),
            opt(m.kernel_copies_per_byte.map(|k| format!("{:.4}", k.median))),
            opt(m.inferred_copies_per_byte.map(|k| format!("{:.4}", k.median)))
        );
    }
    csv
}

/// A swept dimension: its file name, chart title and axis, and how to read a cell.
struct Sweep {
    file: &'static str,
    what: &'static str,
    xlabel: &'static str,
    log: bool,
    x: fn(&Cell) -> Option<f64>,
}

const SWEEPS: [Sweep; 4] = [
    Sweep { file: "sweep-mtu.svg", what: "MTU", xlabel: "MTU (bytes)", log: false, x: |c| c.mtu.map(f64::from) },
    Sweep {
        file: "sweep-chunk.svg",
        what: "chunk",
        xlabel: "bytes per call (log scale)",
        log: true,
        x: |c| c.chunk.map(|v| v as f64),
    },
    Sweep { file: "sweep-size.svg", what: "file size", xlabel: "file size (log scale)", log: true, x: |c| Some(c.size as f64) },
    Sweep {
        file: "sweep-in-flight.svg",
        what: "sends in flight",
        xlabel: "sends in flight (log scale)",
        log: true,
        x: |c| c.in_flight.map(f64::from),
    },
];

/// What the file section leaves for the outputs.
struct Outputs<'a> {
    runs: &'a [BenchRun],
    summaries: &'a [Summary],
    lines: &'a [Ceiling],
    peer_runs: &'a [PeerRun],
    peers: &'a [(String, Spread)],
    direct: bool,
}

type MsgOutputs<'a> = (&'a messages::MsgResult, &'a [messages::MsgRun], &'a [messages::SockperfRun]);

fn write_outputs(cfg: &BenchConfig, o: &Outputs<'_>, msgs: Option<MsgOutputs<'_>>) -> Result<()> {
    let Outputs { runs, summaries, lines, peer_runs, peers, direct } = *o;
    let w = |name: &str, bytes: &[u8]| {
        std::fs::write(cfg.out.join(name), bytes).with_context(|| format!("writing {}", cfg.out.join(name).display()))
    };
    // Every run in one array: the file paths' runs, then the messages' (with a "kind").
    let mut all: Vec<serde_json::Value> = runs.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
    if let Some((_, mruns, sruns)) = msgs {
        all.extend(mruns.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>()?);
        for r in sruns {
            let mut v = serde_json::to_value(r)?;
            v["kind"] = "sockperf".into();
            all.push(v);
        }
    }
    w("runs.json", &serde_json::to_vec_pretty(&all)?)?;
    if !lines.is_empty() {
        w("ceilings.json", &serde_json::to_vec_pretty(lines)?)?;
    }
    if !peer_runs.is_empty() {
        w("peers.json", &serde_json::to_vec_pretty(peer_runs)?)?;
    }
    let mut table = csv(summaries);
    let mut msg_page = None;
    if let (Some((m, _, _)), Some(mcfg)) = (msgs, &cfg.latency) {
        let mut lines = table.lines();
        let header = lines.next().unwrap_or_default().to_string();
        let file_columns = header.split(',').count();
        let mut t = format!("{header},{}\n", messages::CSV_COLUMNS);
        for l in lines {
            t += &format!("{l}{}\n", ",".repeat(messages::CSV_COLUMNS.split(',').count()));
        }
        for row in &m.summaries {
            t += &messages::csv_row(row, file_columns, mcfg.size);
            t += "\n";
        }
        table = t;
        let (rate, pct) = (messages::rate_svg(m), messages::percentile_svg(m));
        w("rate.svg", rate.as_bytes())?;
        w("latency.svg", pct.as_bytes())?;
        msg_page = Some((m, rate, pct));
    }
    w("summary.csv", table.as_bytes())?;
    let gbit =
        chart::bars("Throughput by path", "Gbit/s (median, min-max)", summaries, peers, lines, chart::THROUGHPUT_COLORS, |m| {
            m.gbit_per_s
        });
    let cpu = chart::bars(
        "CPU per GiB moved",
        "all-CPU busy s per GiB (median, min-max)",
        summaries,
        &[],
        &[],
        chart::CPU_COLORS,
        |m| m.all_cpu_s_per_gib,
    );
    w("gbit.svg", gbit.as_bytes())?;
    w("cpu.svg", cpu.as_bytes())?;
    let mut sweeps = Vec::new();
    let swept = [cfg.mtus.len() > 1, cfg.chunks.len() > 1, cfg.sizes.len() > 1, cfg.in_flight.len() > 1];
    for (sweep, _) in SWEEPS.iter().zip(swept).filter(|(_, on)| *on) {
        // The cells the sweep has a value for; a line per everything else.
        let rows: Vec<Summary> = summaries.iter().filter(|m| (sweep.x)(&m.cell).is_some()).cloned().collect();
        let cells: Vec<Cell> = rows.iter().map(|m| m.cell).collect();
        let svg = chart::lines(
            &format!("Throughput by {}", sweep.what),
            sweep.xlabel,
            "Gbit/s (median)",
            sweep.log,
            &rows,
            |m| (sweep.x)(&m.cell).unwrap_or(0.0),
            |m| series(m.cell, &cells, sweep),
        );
        w(sweep.file, svg.as_bytes())?;
        sweeps.push((sweep.what, svg));
    }
    let messages = msg_page.as_ref().map(|(m, r, p)| (*m, r.as_str(), p.as_str()));
    let page =
        html::Page { rows: summaries, gbit_svg: &gbit, cpu_svg: &cpu, sweeps: &sweeps, ceilings: lines, peers, direct, messages };
    w("report.html", html::report(cfg, &page).as_bytes())?;
    Ok(())
}

/// A sweep's line: the cell's label with the swept value left out.
fn series(c: Cell, all: &[Cell], sweep: &Sweep) -> String {
    let blank = |c: Cell| match sweep.what {
        "MTU" => Cell { mtu: None, ..c },
        "chunk" => Cell { chunk: None, ..c },
        "file size" => Cell { size: 0, ..c },
        _ => Cell { in_flight: None, ..c },
    };
    let others: Vec<Cell> = all.iter().map(|&o| blank(o)).collect();
    blank(c).label(&others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_and_range() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]), Some(Spread { median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]), Some(Spread { median: 2.5, min: 1.0, max: 4.0 }));
        assert_eq!(Spread::of(&[f64::NAN, 5.0]), Some(Spread { median: 5.0, min: 5.0, max: 5.0 }));
        assert_eq!(Spread::of(&[]), None);
    }
}
