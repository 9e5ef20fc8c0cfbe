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
mod peers;
mod xsk_ceiling;

pub use peers::PeerRun;

pub use ceilings::Ceiling;

use crate::netns::{EnvConfig, LabEnv};
use crate::report::{human_bytes, RunReport};
use crate::run::{self, RunConfig};
use crate::transfer::mode::Via;
use crate::transfer::{Mode, DEFAULT_CHUNK, DEFAULT_PORT};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
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
    pub size: u64,
    pub modes: Vec<Mode>,
    pub runs: u32,
    pub caches: Vec<Cache>,
    /// MTUs to sweep (each its own environment); empty: the environment's.
    pub mtus: Vec<u32>,
    /// Bytes per data-path call of the TCP paths, to sweep.
    pub chunks: Vec<usize>,
    pub out: PathBuf,
    pub trace: bool,
    /// Measure reference lines too (memcpy, O_DIRECT disk reads).
    pub ceilings: bool,
    /// Run iperf3 (`-F` and `-Z -F`) on the same environment and file too.
    pub peers: bool,
}

/// One run of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRun {
    pub mode: Mode,
    pub cache: Cache,
    /// The environment's MTU (None: the one it had).
    pub mtu: Option<u32>,
    pub chunk: usize,
    pub round: u32,
    /// Busy seconds of all CPUs during the run's timed part (/proc/stat).
    pub all_cpu_s: f64,
    pub report: RunReport,
}

/// Median and range of one figure.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
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
}

/// The figures of one mode in one setting, over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: Mode,
    pub cache: Cache,
    pub mtu: Option<u32>,
    pub chunk: usize,
    pub runs: usize,
    pub verified: usize,
    pub gbit_per_s: Spread,
    /// All CPUs' busy seconds per GiB moved.
    pub all_cpu_s_per_gib: Spread,
    /// Both processes' user + system seconds per GiB.
    pub process_cpu_s_per_gib: Spread,
    pub sender_sys_s: Spread,
    pub sender_syscalls: Spread,
    /// Bytes the kernel was seen to copy per byte of file (`--trace`).
    pub kernel_copies_per_byte: Option<Spread>,
}

fn progress(done: usize, total: usize, what: &str) {
    use std::io::IsTerminal;
    let mut e = std::io::stderr();
    if e.is_terminal() {
        let _ = write!(e, "\r  [{done:>3}/{total}] {what:<40}");
        let _ = e.flush();
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
}

/// Runs the matrix, writes runs.json, summary.csv, the charts and report.html
/// into `cfg.out`; returns what it found.
pub fn bench(cfg: &BenchConfig) -> Result<BenchResult> {
    crate::netns::require_privileges("zclab bench (it makes or enters a lab environment)")?;
    if cfg.modes.is_empty() || cfg.runs == 0 || cfg.caches.is_empty() {
        bail!("nothing to run: give at least one mode, one cache setting and one run");
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
                own_envs.push(LabEnv::up(&EnvConfig { name: name.clone(), mtu, queues: None, verbose: false })?);
                v.push((mtu, name));
            }
            v
        }
    };
    let chunks: Vec<usize> = if cfg.chunks.is_empty() { vec![DEFAULT_CHUNK] } else { cfg.chunks.clone() };
    let file = cfg.out.join(format!(".bench-file-{}", std::process::id()));
    let _file_guard = Removed(file.clone());
    run::make_random_file(&file, cfg.size)?;
    let direct = crate::sys::file::dio_align(&std::fs::File::open(&file)?)?.is_some();
    if !direct {
        log::warn!(
            "{} is on a filesystem without direct I/O (tmpfs?): cold runs are not cold and af-xdp cannot skip the page cache",
            cfg.out.display()
        );
    }
    let settings: Vec<Setting> =
        envs.iter().flat_map(|e| chunks.iter().flat_map(move |&c| cfg.caches.iter().map(move |&k| (e, c, k)))).collect();
    let total = cfg.runs as usize * (settings.len() * cfg.modes.len() + if cfg.peers { peers::PEERS.len() } else { 0 });
    let mut peer_runs = Vec::new();
    let mut runs = Vec::with_capacity(total);
    let mut port = DEFAULT_PORT;
    for round in 0..cfg.runs {
        for &((mtu, env), chunk, cache) in &settings {
            for &mode in &cfg.modes {
                crate::interrupt::check()?;
                progress(runs.len(), total, &format!("{mode}, {cache:?}, round {}", round + 1));
                port = if port >= DEFAULT_PORT + 500 { DEFAULT_PORT } else { port + 1 };
                let rc = RunConfig {
                    env: env.clone(),
                    mode,
                    file: file.clone(),
                    keep: None,
                    port,
                    chunk,
                    timeout: Duration::from_secs(20),
                    cold: cache == Cache::Cold,
                    preallocate: true,
                    trace: cfg.trace,
                    via: Via::Splice,
                };
                let report = run::run(&rc).with_context(|| format!("the {mode} run ({cache:?}) failed"))?;
                if cache == Cache::Cold && report.source_cached_before_bytes > 0 {
                    log::warn!(
                        "{mode}: {} of the file was still cached at the start of a cold run",
                        human_bytes(report.source_cached_before_bytes)
                    );
                }
                let all_cpu_s = report.all_cpu_s.unwrap_or(f64::NAN);
                runs.push(BenchRun { mode, cache, mtu: *mtu, chunk, round, all_cpu_s, report });
            }
        }
        if cfg.peers {
            // On the first environment, after this round's modes.
            let names = crate::netns::EnvNames::new(&envs[0].1)?;
            for (name, z) in peers::PEERS {
                crate::interrupt::check()?;
                progress(runs.len() + peer_runs.len(), total, &format!("{name}, round {}", round + 1));
                port = if port >= DEFAULT_PORT + 500 { DEFAULT_PORT } else { port + 1 };
                let gbit_per_s = peers::iperf3(&names.rx_ns, &names.tx_ns, port, &file, z)?;
                peer_runs.push(PeerRun { name: name.to_string(), round, gbit_per_s });
            }
        }
    }
    progress(total, total, "done");
    let mut lines = Vec::new();
    if cfg.ceilings {
        lines.push(ceilings::memcpy());
        match ceilings::direct_read(&file) {
            Some(c) => lines.push(c),
            None => log::warn!("no O_DIRECT ceiling: the file's filesystem has no direct I/O"),
        }
        for descs in [1, 2] {
            match xsk_ceiling::frames_only(&envs[0].1, descs, 1.0) {
                Ok(c) => lines.push(c),
                Err(e) => log::warn!("no AF_XDP frames-only ceiling ({descs} descriptors): {e:#}"),
            }
        }
    }
    drop(own_envs);
    let summaries = summarize(&runs, cfg);
    let peers: Vec<(String, Spread)> = peers::PEERS
        .iter()
        .filter_map(|(name, _)| {
            let g: Vec<f64> = peer_runs.iter().filter(|p| p.name == *name).map(|p| p.gbit_per_s).collect();
            Spread::of(&g).map(|s| (name.to_string(), s))
        })
        .collect();
    write_outputs(cfg, &runs, &summaries, &lines, &peer_runs, &peers, direct)?;
    Ok(BenchResult { summaries, peers, ceilings: lines })
}

/// One setting of the matrix: an environment (its MTU and name), a chunk, a cache state.
type Setting<'a> = (&'a (Option<u32>, String), usize, Cache);

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

/// Medians and ranges per mode and cache setting.
pub fn summarize(runs: &[BenchRun], cfg: &BenchConfig) -> Vec<Summary> {
    let mut out = Vec::new();
    let mut settings: Vec<(Option<u32>, usize, Cache)> = Vec::new();
    for r in runs {
        if !settings.contains(&(r.mtu, r.chunk, r.cache)) {
            settings.push((r.mtu, r.chunk, r.cache));
        }
    }
    for (mtu, chunk, cache) in settings {
        for &mode in &cfg.modes {
            let rs: Vec<&BenchRun> =
                runs.iter().filter(|r| r.mode == mode && r.cache == cache && r.mtu == mtu && r.chunk == chunk).collect();
            if rs.is_empty() {
                continue;
            }
            let f = |g: &dyn Fn(&BenchRun) -> f64| Spread::of(&rs.iter().map(|r| g(r)).collect::<Vec<_>>()).expect("runs exist");
            let copies: Vec<f64> =
                rs.iter().filter_map(|r| r.report.kernel.as_ref().and_then(|k| k.copies_per_byte(r.report.bytes))).collect();
            out.push(Summary {
                mode,
                cache,
                mtu,
                chunk,
                runs: rs.len(),
                verified: rs.iter().filter(|r| r.report.verified).count(),
                gbit_per_s: f(&|r| r.report.gbit_per_s),
                all_cpu_s_per_gib: Spread::of(&rs.iter().map(|r| r.all_cpu_s / gib(r.report.bytes)).collect::<Vec<_>>())
                    .unwrap_or(Spread { median: f64::NAN, min: f64::NAN, max: f64::NAN }),
                process_cpu_s_per_gib: f(&|r| r.report.cpu_s_per_gib()),
                sender_sys_s: f(&|r| r.report.sender.cpu_sys_s),
                sender_syscalls: f(&|r| r.report.sender.syscalls as f64),
                kernel_copies_per_byte: (copies.len() == rs.len()).then(|| Spread::of(&copies)).flatten(),
            });
        }
    }
    out
}

/// The table printed at the end.
pub fn text(result: &BenchResult, out: &Path) -> String {
    let summaries = &result.summaries;
    let mut s = String::from(
        "| mode         | cache |   MTU |     chunk | runs | Gbit/s median (min-max) | all-CPU s/GiB | process CPU s/GiB | snd syscalls | kcopies/B |\n\
         |--------------|-------|-------|-----------|------|-------------------------|---------------|-------------------|--------------|-----------|\n",
    );
    for m in summaries {
        let _ = writeln!(
            s,
            "| {:<12} | {:<5} | {:>5} | {:>9} | {:>4} | {:>7.2} ({:>6.2}-{:<6.2}) | {:>13.3} | {:>17.3} | {:>12.0} | {:>9} |",
            m.mode.name(),
            format!("{:?}", m.cache).to_lowercase(),
            m.mtu.map_or_else(|| "-".into(), |v| v.to_string()),
            human_bytes(m.chunk as u64),
            if m.verified == m.runs { m.runs.to_string() } else { format!("{}!", m.runs) },
            m.gbit_per_s.median,
            m.gbit_per_s.min,
            m.gbit_per_s.max,
            m.all_cpu_s_per_gib.median,
            m.process_cpu_s_per_gib.median,
            m.sender_syscalls.median,
            m.kernel_copies_per_byte.map_or_else(|| "n/a".into(), |k| format!("{:.2}", k.median)),
        );
    }
    for (name, g) in &result.peers {
        let _ = writeln!(s, "peer      {name}: {:.2} Gbit/s median ({:.2}-{:.2})", g.median, g.min, g.max);
    }
    for c in &result.ceilings {
        let _ = writeln!(s, "ceiling   {}: {:.1} Gbit/s", c.name, c.gbit_per_s);
    }
    let _ = writeln!(s, "\nruns.json, summary.csv, the SVG charts and report.html are in {}", out.display());
    s
}

fn write_outputs(
    cfg: &BenchConfig,
    runs: &[BenchRun],
    summaries: &[Summary],
    lines: &[Ceiling],
    peer_runs: &[PeerRun],
    peers: &[(String, Spread)],
    direct: bool,
) -> Result<()> {
    let w = |name: &str, bytes: &[u8]| {
        std::fs::write(cfg.out.join(name), bytes).with_context(|| format!("writing {}", cfg.out.join(name).display()))
    };
    w("runs.json", &serde_json::to_vec_pretty(runs)?)?;
    if !lines.is_empty() {
        w("ceilings.json", &serde_json::to_vec_pretty(lines)?)?;
    }
    if !peer_runs.is_empty() {
        w("peers.json", &serde_json::to_vec_pretty(peer_runs)?)?;
    }
    let mut csv = String::from(
        "mode,cache,mtu,chunk,runs,verified,gbit_median,gbit_min,gbit_max,all_cpu_s_per_gib_median,process_cpu_s_per_gib_median,sender_syscalls_median,kernel_copies_per_byte_median\n",
    );
    for m in summaries {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.0},{}",
            m.mode.name(),
            format!("{:?}", m.cache).to_lowercase(),
            m.mtu.map_or_else(String::new, |v| v.to_string()),
            m.chunk,
            m.runs,
            m.verified,
            m.gbit_per_s.median,
            m.gbit_per_s.min,
            m.gbit_per_s.max,
            m.all_cpu_s_per_gib.median,
            m.process_cpu_s_per_gib.median,
            m.sender_syscalls.median,
            m.kernel_copies_per_byte.map_or_else(String::new, |k| format!("{:.4}", k.median))
        );
    }
    w("summary.csv", csv.as_bytes())?;
    let gbit = chart::bars("Throughput by path", "Gbit/s (median, min-max)", summaries, peers, lines, |m| m.gbit_per_s);
    let cpu = chart::bars("CPU per GiB moved", "all-CPU busy s per GiB (median, min-max)", summaries, &[], &[], |m| {
        m.all_cpu_s_per_gib
    });
    w("gbit.svg", gbit.as_bytes())?;
    w("cpu.svg", cpu.as_bytes())?;
    let mut sweeps = Vec::new();
    if cfg.mtus.len() > 1 {
        let many_chunks = cfg.chunks.len() > 1;
        let svg = chart::lines(
            "Throughput by MTU",
            "MTU (bytes)",
            "Gbit/s (median)",
            summaries,
            |m| m.mtu.unwrap_or(0) as f64,
            |m| series(m, many_chunks.then(|| human_bytes(m.chunk as u64))),
        );
        w("sweep-mtu.svg", svg.as_bytes())?;
        sweeps.push(("MTU", svg));
    }
    if cfg.chunks.len() > 1 {
        let many_mtus = cfg.mtus.len() > 1;
        let svg = chart::lines(
            "Throughput by chunk",
            "bytes per call (log scale)",
            "Gbit/s (median)",
            summaries,
            |m| m.chunk as f64,
            |m| series(m, many_mtus.then(|| format!("MTU {}", m.mtu.unwrap_or(0)))),
        );
        w("sweep-chunk.svg", svg.as_bytes())?;
        sweeps.push(("chunk", svg));
    }
    let page = html::Page { rows: summaries, gbit_svg: &gbit, cpu_svg: &cpu, sweeps: &sweeps, ceilings: lines, peers, direct };
    w("report.html", html::report(cfg, &page).as_bytes())?;
    Ok(())
}

/// A sweep's line: the path, its cache setting, and the other sweep's value if there is one.
fn series(m: &Summary, other: Option<String>) -> String {
    let mut s = format!("{} ({}", m.mode.name(), format!("{:?}", m.cache).to_lowercase());
    if let Some(o) = other {
        s += &format!(", {o}");
    }
    s + ")"
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
