//! What a bench leaves in its folder: runs.json, summary.csv, the SVG
//! charts (throughput, CPU, the sweeps) and report.html.

use super::{chart, html, messages, BenchConfig, BenchRun, Ceiling, Cell, PeerRun, Spread, Summary};
use crate::transfer::af_xdp::FrameLayout;
use anyhow::{Context, Result};
use std::fmt::Write as _;

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
pub(super) struct Outputs<'a> {
    pub runs: &'a [BenchRun],
    pub summaries: &'a [Summary],
    pub lines: &'a [Ceiling],
    pub peer_runs: &'a [PeerRun],
    pub peers: &'a [(String, Spread)],
    pub direct: bool,
    /// The HTTP download section's runs and summaries (empty without --http).
    pub http: (&'a [super::http_download::HttpRun], &'a [super::http_download::HttpSummary]),
}

pub(super) type MsgOutputs<'a> = (&'a messages::MsgResult, &'a [messages::MsgRun], &'a [messages::SockperfRun]);

pub(super) fn write_outputs(cfg: &BenchConfig, o: &Outputs<'_>, msgs: Option<MsgOutputs<'_>>) -> Result<()> {
    let Outputs { runs, summaries, lines, peer_runs, peers, direct, http } = *o;
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
    let http_svg = (!http.1.is_empty()).then(|| {
        let bars: Vec<(String, Spread, &str)> = http
            .1
            .iter()
            .map(|h| (h.server.clone(), h.gbit_per_s, if h.server.starts_with("zclab") { "#1f77b4" } else { "#909090" }))
            .collect();
        chart::spread_bars("HTTP download: curl from each server", "Gbit/s (median, min-max)", &bars, &[])
    });
    if let Some(svg) = &http_svg {
        w("http.json", &serde_json::to_vec_pretty(http.0)?)?;
        w("http.svg", svg.as_bytes())?;
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
    let page = html::Page {
        rows: summaries,
        gbit_svg: &gbit,
        cpu_svg: &cpu,
        sweeps: &sweeps,
        ceilings: lines,
        peers,
        direct,
        messages,
        http: http_svg.as_deref().map(|svg| (http.1, svg)),
    };
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
