//! `zclab bench`: every path side by side, interleaved, with medians,
//! ranges, charts and an HTML report.
//!
//! Runs go round-robin (A B C A B C ...) so that whatever the machine does
//! meanwhile hits every path alike; each figure is reported as the median
//! and the min-max of its runs. Beside each process's own CPU time (which
//! misplaces veth's receive work) it records the busy time of all CPUs
//! from /proc/stat, the more honest total.
//!
//! The rooms: `matrix.rs` makes the cells (a path and its settings),
//! this file runs them, `summary.rs` turns the runs into medians and the
//! tables people read, `outputs.rs` writes runs.json, summary.csv, the
//! charts and report.html; `chart.rs` and `html.rs` draw them.

mod ceilings;
mod chart;
mod html;
pub mod http_download;
mod matrix;
pub mod messages;
mod outputs;
mod peers;
mod summary;
mod xsk_ceiling;

pub use ceilings::Ceiling;
pub use matrix::{matrix, Cell};
pub use peers::PeerRun;
pub use summary::{summarize, text, BenchRun, Spread, Summary};

use outputs::{write_outputs, Outputs};

use crate::netns::{EnvConfig, LabEnv};
use crate::report::{human_bytes, RunReport};
use crate::run::{self, RunConfig};
use crate::transfer::af_xdp::FrameLayout;
use crate::transfer::mode::Via;
use crate::transfer::{Mode, DEFAULT_CHUNK, DEFAULT_PORT};
use anyhow::{bail, Context, Result};
use serde::Serialize;
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
    /// The HTTP download section (`--http`): curl from zclab http (both modes) and nginx.
    pub http: bool,
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
    /// The HTTP download section (`--http`), each server's downloads.
    pub http: Vec<http_download::HttpSummary>,
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
    let servers = if cfg.http && !cfg.modes.is_empty() { http_download::SERVERS.len() } else { 0 };
    if servers > 0 && !http_download::nginx_installed() {
        bail!("--http runs nginx beside zclab http, and nginx is not installed: scripts/setup.sh installs it (or apt-get install nginx)");
    }
    let total =
        cells.len() + msg_cells.len() + cfg.runs as usize * (cells.len() + msg_cells.len() + file_peers + msg_peers + servers);
    let mut http_runs = Vec::new();
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
        if servers > 0 {
            let names = crate::netns::EnvNames::new(&envs[0].1)?;
            for server in http_download::SERVERS {
                crate::interrupt::check()?;
                bar.set_message(format!("curl from {}, round {round}", server.name()));
                port = if port >= DEFAULT_PORT + 500 { DEFAULT_PORT } else { port + 1 };
                let file = file_of(cfg.sizes[0]);
                let r = http_download::download(server, (&names.tx_ns, &names.rx_ns), port, &file, cfg.pin, round - 1)
                    .with_context(|| format!("the HTTP download from {}", server.name()))?;
                http_runs.push(r);
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
    let http = http_download::summarize(&http_runs);
    let outputs = Outputs {
        runs: &runs,
        summaries: &summaries,
        lines: &lines,
        peer_runs: &peer_runs,
        peers: &peers,
        direct,
        http: (&http_runs, &http),
    };
    write_outputs(cfg, &outputs, msgs.as_ref().map(|m| (m, msg_runs.as_slice(), sockperf_runs.as_slice())))?;
    Ok(BenchResult { summaries, peers, ceilings: lines, pinned: cfg.pin, messages: msgs, http })
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
        // The receiver's file written once before the timed part: its page-cache pages, or with
        // --direct its disk blocks by O_DIRECT (the timed writes then overwrite them, several at once).
        preallocate: true,
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
        tcp_receiver: cell.tcp_rx,
    };
    // Detached when dropped, after the run.
    let _xdp = if cell.xdp_rx { Some(attach_on_receiver(env)?) } else { None };
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

/// zclab's XDP program, steering nothing (every packet passes to the kernel),
/// attached natively to the receiving veth of `env`: while it is there the
/// sender's veth has no GSO (veth_fix_features), so the kernel's TCP sends
/// MSS-sized segments, as af-xdp-tcp does.
fn attach_on_receiver(env: &str) -> Result<crate::xdp::XdpSteering> {
    let names = crate::netns::EnvNames::new(env)?;
    let (ns, iface) = (names.rx_ns.clone(), names.rx_if.clone());
    // Entering the namespace takes a thread of its own; the program's link outlives it.
    std::thread::spawn(move || -> Result<crate::xdp::XdpSteering> {
        crate::sys::netns::enter(&ns).with_context(|| format!("entering {ns}"))?;
        let (_, mtu) = crate::sys::iface::iface_mac_mtu(&iface).with_context(|| format!("the MTU of {iface}"))?;
        let frags = mtu > crate::xdp::MAX_MTU_WITHOUT_FRAGS;
        crate::xdp::XdpSteering::attach(&iface, 0, frags, Some(crate::xdp::AttachMode::Native))
            .with_context(|| format!("attaching a pass-through XDP program to {iface} in {ns}"))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread attaching the XDP program panicked"))?
}

/// A file removed on drop.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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
