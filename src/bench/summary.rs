//! From runs to figures: each cell's medians and ranges, and the tables
//! printed at the end of a bench.

use super::matrix::setting_title;
use super::{messages, BenchResult, Cell};
use crate::report::{human_bytes, RunReport};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

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
    /// The sending process's user + system seconds per GiB.
    #[serde(default)]
    pub sender_cpu_s_per_gib: Spread,
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

pub(super) fn gib(bytes: u64) -> f64 {
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
            sender_cpu_s_per_gib: f(&|r| (r.report.sender.cpu_user_s + r.report.sender.cpu_sys_s) / gib(r.report.bytes)),
            zerocopy_copied: (!zc.is_empty()).then(|| zc.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))),
            kernel_copies_per_byte: (copies.len() == rs.len()).then(|| Spread::of(&copies)).flatten(),
            inferred_copies_per_byte: Spread::of(
                &rs.iter().filter_map(|r| r.report.inferred_copies.as_ref().map(|c| c.per_byte)).collect::<Vec<_>>(),
            ),
        });
    }
    out
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
            let mut path = m.cell.path_name();
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
    for t in targets(&result.summaries) {
        s += &t;
    }
    if !result.http.is_empty() {
        s += &super::http_download::text(&result.http);
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

/// af-xdp-tcp's speed targets against af-xdp in each setting that has both
/// (the same file and frame size, one run of the bench): Gbit/s at least
/// 0.9x, the sender's CPU s/GiB at most 1.1x; and beside the kernel's TCP
/// with the same segment sizes (sendfile xdp-rx), where it ran. Each line
/// says whether the target held; the reason is in the figures beside it.
pub fn targets(rows: &[Summary]) -> Vec<String> {
    let plain = |m: &Summary, mode: crate::transfer::Mode| m.cell.mode == mode && m.cell.path_name() == mode.name();
    let mut out = Vec::new();
    for tcp in rows.iter().filter(|m| plain(m, crate::transfer::Mode::AfXdpTcp)) {
        let same = |m: &&Summary| {
            Cell { mode: tcp.cell.mode, chunk: tcp.cell.chunk, xdp_rx: false, tcp_rx: false, ..m.cell } == tcp.cell
        };
        let Some(udp) = rows.iter().filter(same).find(|m| plain(m, crate::transfer::Mode::AfXdp)) else { continue };
        let g = tcp.gbit_per_s.median / udp.gbit_per_s.median;
        let c = tcp.sender_cpu_s_per_gib.median / udp.sender_cpu_s_per_gib.median;
        let held = |ok: bool| if ok { "held" } else { "NOT met" };
        let mut line = format!(
            "\ntarget    af-xdp-tcp / af-xdp ({}): {g:.2}x the Gbit/s (target >= 0.90x: {}), {c:.2}x the sender's CPU s/GiB \
             (target <= 1.10x: {}); the receivers' CPU s/GiB {:.2} (the kernel's TCP) against {:.2} (AF_XDP)\n",
            setting_title(&tcp.cell, &[tcp.cell]),
            held(g >= 0.9),
            held(c <= 1.1),
            tcp.receiver_cpu_s_per_gib.median,
            udp.receiver_cpu_s_per_gib.median,
        );
        let kernel = rows.iter().filter(same).find(|m| m.cell.mode == crate::transfer::Mode::Sendfile && m.cell.xdp_rx);
        if let Some(k) = kernel {
            line += &format!(
                "          beside the kernel's TCP with the same segment sizes (sendfile xdp-rx): {:.2}x its Gbit/s\n",
                tcp.gbit_per_s.median / k.gbit_per_s.median
            );
        }
        out.push(line);
    }
    // The receiving end: zclab's TCP receiver taking the kernel's sendfile, against the af-xdp
    // (UDP) receiver in the same setting.
    for rx in rows.iter().filter(|m| m.cell.mode == crate::transfer::Mode::Sendfile && m.cell.tcp_rx) {
        let same = |m: &&Summary| Cell { mode: rx.cell.mode, chunk: rx.cell.chunk, tcp_rx: true, ..m.cell } == rx.cell;
        let Some(udp) = rows.iter().filter(same).find(|m| plain(m, crate::transfer::Mode::AfXdp)) else { continue };
        let g = rx.gbit_per_s.median / udp.gbit_per_s.median;
        let kernel = rows.iter().filter(same).find(|m| plain(m, crate::transfer::Mode::Sendfile));
        out.push(format!(
            "\ntarget    sendfile into the af-xdp-tcp receiver / af-xdp ({}): {g:.2}x the Gbit/s (target >= 0.90x: {}); \
             its receiver CPU s/GiB {:.2} against af-xdp's {:.2}{}\n",
            setting_title(&rx.cell, &[rx.cell]),
            if g >= 0.9 { "held" } else { "NOT met" },
            rx.receiver_cpu_s_per_gib.median,
            udp.receiver_cpu_s_per_gib.median,
            kernel
                .map(|k| format!(
                    "; {:.2}x the Gbit/s of sendfile into the kernel's receiver",
                    rx.gbit_per_s.median / k.gbit_per_s.median
                ))
                .unwrap_or_default(),
        ));
    }
    out
}
