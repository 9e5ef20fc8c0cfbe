//! `zclab bench --latency`: small messages beside the files. A rate
//! section (64-byte messages one way, by udp, udp-mmsg and af-xdp) and a
//! latency section (round trips by tcp, udp and af-xdp, each blocking,
//! spinning and busy polling), interleaved round by round like the file
//! paths, each figure the median and range of its runs; with `--peers`,
//! sockperf's ping-pong (UDP and TCP) on the same environment.

use super::Spread;
use crate::messages::latency::LatencyReport;
use crate::messages::rate::RateReport;
use crate::messages::Mode;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The workloads' settings.
#[derive(Debug, Clone)]
pub struct MsgConfig {
    /// Round trips timed per latency run.
    pub count: u64,
    /// Seconds per rate run.
    pub seconds: f64,
    /// Bytes per message.
    pub size: usize,
}

/// How an end waits, as the bench runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitStyle {
    Block,
    Spin,
    /// `--busy-poll 50`.
    BusyPoll,
}

impl WaitStyle {
    pub fn name(self) -> &'static str {
        match self {
            WaitStyle::Block => "block",
            WaitStyle::Spin => "spin",
            WaitStyle::BusyPoll => "busy-poll 50us",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            WaitStyle::Block => &[],
            WaitStyle::Spin => &["--spin"],
            WaitStyle::BusyPoll => &["--busy-poll", "50"],
        }
    }
}

/// Which workload a cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Rate,
    Latency,
}

/// One setting of the message section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MsgCell {
    pub workload: Workload,
    pub mode: Mode,
    pub wait: WaitStyle,
}

impl MsgCell {
    pub fn label(&self) -> String {
        format!("{} {}", self.mode, self.wait.name())
    }
}

/// The cells, in the order they run each round. Rate leaves out tcp: a
/// stream coalesces its messages (it moved 11 M 64-byte messages a second
/// here), which says nothing about packets.
pub fn cells() -> Vec<MsgCell> {
    let mut v = Vec::new();
    for (mode, wait) in [
        (Mode::Udp, WaitStyle::Block),
        (Mode::UdpMmsg, WaitStyle::Block),
        (Mode::AfXdp, WaitStyle::Block),
        (Mode::Udp, WaitStyle::Spin),
        (Mode::AfXdp, WaitStyle::Spin),
    ] {
        v.push(MsgCell { workload: Workload::Rate, mode, wait });
    }
    for wait in [WaitStyle::Block, WaitStyle::Spin, WaitStyle::BusyPoll] {
        for mode in [Mode::Tcp, Mode::Udp, Mode::AfXdp] {
            v.push(MsgCell { workload: Workload::Latency, mode, wait });
        }
    }
    v
}

/// One run of one cell: the command's whole report.
#[derive(Debug, Clone, Serialize)]
pub struct MsgRun {
    pub kind: Workload,
    pub cell: MsgCell,
    pub round: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyReport>,
}

/// The medians of one cell's runs.
#[derive(Debug, Clone, Serialize)]
pub struct MsgSummary {
    pub cell: MsgCell,
    pub runs: usize,
    /// rate: delivered messages per second, and the share lost.
    pub delivered_per_s: Option<Spread>,
    pub loss_pct: Option<Spread>,
    /// latency: the round trip's percentiles, microseconds (p50, p90, p99, p99.9, p99.99).
    pub p50_us: Option<Spread>,
    pub p90_us: Option<Spread>,
    pub p99_us: Option<Spread>,
    pub p999_us: Option<Spread>,
    pub p9999_us: Option<Spread>,
    /// Per message: the client's (rate: sender's) and the server's CPU microseconds.
    pub client_cpu_us_per_msg: Spread,
    pub server_cpu_us_per_msg: Spread,
    pub client_syscalls_per_msg: Spread,
    pub server_syscalls_per_msg: Spread,
    /// The server's (rate: receiver's) voluntary context switches per message.
    pub server_sleeps_per_msg: Spread,
}

/// One sockperf run: whole round trips (sockperf prints halves; these are doubled).
#[derive(Debug, Clone, Serialize)]
pub struct SockperfRun {
    pub name: String,
    pub round: u32,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

/// What the message section found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MsgResult {
    /// Bytes per message.
    pub size: usize,
    pub summaries: Vec<MsgSummary>,
    /// sockperf's round trips: (name, p50, p99, p99.9 spreads).
    pub peers: Vec<(String, Spread, Spread, Spread)>,
}

/// Runs one cell on `env` (a child zclab, its ends pinned if `pin`).
pub fn run_cell(cell: &MsgCell, env: &str, port: u16, pin: bool, cfg: &MsgConfig, round: u32) -> Result<MsgRun> {
    let exe = std::env::current_exe().context("cannot find the zclab executable")?;
    let (port, size, count, secs) = (port.to_string(), cfg.size.to_string(), cfg.count.to_string(), cfg.seconds.to_string());
    let mut args: Vec<&str> = vec!["--env", env, "--port", &port, "--mode", cell.mode.name(), "--size", &size, "--json"];
    args.extend_from_slice(cell.wait.args());
    if pin {
        args.push("--pin");
    }
    let cmd = match cell.workload {
        Workload::Rate => {
            args.extend(["--duration", &secs]);
            "rate"
        }
        Workload::Latency => {
            args.extend(["--count", &count, "--warmup", "500"]);
            "latency"
        }
    };
    let out = Command::new(exe).arg(cmd).args(&args).stdin(Stdio::null()).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("`zclab {cmd} {}` failed", args.join(" "));
    }
    let mut run = MsgRun { kind: cell.workload, cell: *cell, round, rate: None, latency: None };
    match cell.workload {
        Workload::Rate => run.rate = Some(serde_json::from_slice(&out.stdout).context("a rate report")?),
        Workload::Latency => run.latency = Some(serde_json::from_slice(&out.stdout).context("a latency report")?),
    }
    Ok(run)
}

/// The medians of each cell's runs.
pub fn summarize(runs: &[MsgRun], cells: &[MsgCell]) -> Vec<MsgSummary> {
    cells
        .iter()
        .filter_map(|c| {
            let mine: Vec<&MsgRun> = runs.iter().filter(|r| r.cell == *c).collect();
            let of = |f: &dyn Fn(&MsgRun) -> Option<f64>| Spread::of(&mine.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
            let lat = |f: fn(&LatencyReport) -> f64| of(&|r: &MsgRun| r.latency.as_ref().map(f));
            let rate = |f: fn(&RateReport) -> f64| of(&|r: &MsgRun| r.rate.as_ref().map(f));
            let end = |client: bool, f: fn(&crate::messages::EndCost) -> f64| {
                of(&|r: &MsgRun| {
                    let (c, s) = match (&r.rate, &r.latency) {
                        (Some(x), _) => (&x.client, &x.server),
                        (_, Some(x)) => (&x.client, &x.server),
                        _ => return None,
                    };
                    Some(f(if client { c } else { s }))
                })
            };
            Some(MsgSummary {
                cell: *c,
                runs: mine.len(),
                delivered_per_s: rate(|r| r.delivered_per_s),
                loss_pct: rate(|r| r.loss_pct),
                p50_us: lat(|r| r.p50_us),
                p90_us: lat(|r| r.p90_us),
                p99_us: lat(|r| r.p99_us),
                p999_us: lat(|r| r.p999_us),
                p9999_us: lat(|r| r.p9999_us),
                client_cpu_us_per_msg: end(true, |e| e.cpu_us_per_msg)?,
                server_cpu_us_per_msg: end(false, |e| e.cpu_us_per_msg)?,
                client_syscalls_per_msg: end(true, |e| e.syscalls_per_msg)?,
                server_syscalls_per_msg: end(false, |e| e.syscalls_per_msg)?,
                server_sleeps_per_msg: end(false, |e| e.ctx_switches_per_msg)?,
            })
        })
        .collect()
}

/// The sockperf peers: name and whether it runs over TCP.
pub const SOCKPERF: [(&str, bool); 2] = [("sockperf ping-pong udp", false), ("sockperf ping-pong tcp", true)];

/// A one-off sockperf server, stopped on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_ns(ns: &str, cpu: Option<usize>) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]);
    if let Some(cpu) = cpu {
        c.args(["taskset", "-c", &cpu.to_string()]);
    }
    c
}

/// `sockperf ping-pong` of `size`-byte messages for `secs` from the sending
/// namespace to a one-off server in the receiving one; the client on CPU 0
/// and the server on 1 if `pin`.
pub fn sockperf(
    names: &crate::netns::EnvNames,
    port: u16,
    tcp: bool,
    size: usize,
    secs: f64,
    pin: bool,
    round: u32,
) -> Result<SockperfRun> {
    let (rx_ns, tx_ns) = (names.rx_ns.as_str(), names.tx_ns.as_str());
    let (addr, port) = (crate::netns::RX_ADDR.to_string(), port.to_string());
    let mut server = in_ns(rx_ns, pin.then_some(1));
    server.args(["sockperf", "server", "-i", &addr, "-p", &port]);
    if tcp {
        server.arg("--tcp");
    }
    let server = server
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting sockperf (install it: scripts/setup.sh, or apt-get install sockperf)")?;
    let _server = Server(server);
    let name = SOCKPERF.iter().find(|p| p.1 == tcp).expect("both kinds").0.to_string();
    for _ in 0..20 {
        crate::interrupt::check()?;
        std::thread::sleep(Duration::from_millis(150)); // the server is starting
        let mut c = in_ns(tx_ns, pin.then_some(0));
        c.args([
            "sockperf",
            "ping-pong",
            "-i",
            &addr,
            "-p",
            &port,
            "-m",
            &size.to_string(),
            "-t",
            &format!("{}", secs.ceil().max(1.0)),
        ]);
        if tcp {
            c.arg("--tcp");
        }
        let o = c.output().context("running sockperf")?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        if let (Some(p50), Some(p99), Some(p999)) = (pct(&text, "50.000"), pct(&text, "99.000"), pct(&text, "99.900")) {
            return Ok(SockperfRun { name, round, p50_us: 2.0 * p50, p99_us: 2.0 * p99, p999_us: 2.0 * p999 });
        }
    }
    bail!("sockperf printed no percentiles (is the server reachable in {rx_ns}?)")
}

/// sockperf's `---> percentile 50.000 =   27.586` (half round trips, usec).
fn pct(out: &str, p: &str) -> Option<f64> {
    out.lines().find(|l| l.contains(&format!("percentile {p} ")))?.rsplit('=').next()?.trim().parse().ok()
}

/// The medians of the sockperf runs.
pub fn summarize_peers(runs: &[SockperfRun]) -> Vec<(String, Spread, Spread, Spread)> {
    SOCKPERF
        .iter()
        .filter_map(|(name, _)| {
            let mine: Vec<&SockperfRun> = runs.iter().filter(|r| r.name == *name).collect();
            let of = |f: fn(&SockperfRun) -> f64| Spread::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>());
            Some((name.to_string(), of(|r| r.p50_us)?, of(|r| r.p99_us)?, of(|r| r.p999_us)?))
        })
        .collect()
}

fn sp(s: &Option<Spread>, digits: usize) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{:.digits$} ({:.digits$}-{:.digits$})", s.median, s.min, s.max))
}

/// The two tables people read.
pub fn text(r: &MsgResult, size: usize, pinned: bool) -> String {
    let mut s = format!(
        "\nRate: {size}-byte messages one way (median of runs, min-max{})\n",
        if pinned { "; sender on CPU 0, receiver on CPU 1" } else { "" }
    );
    s += "| path                  | k msg/s delivered       | lost %              | snd CPU us/msg | rcv CPU us/msg | snd calls/msg | rcv sleeps/msg |\n";
    s += "|-----------------------|-------------------------|---------------------|----------------|----------------|---------------|----------------|\n";
    for m in r.summaries.iter().filter(|m| m.cell.workload == Workload::Rate) {
        let k = m.delivered_per_s.map(|d| Spread { median: d.median / 1e3, min: d.min / 1e3, max: d.max / 1e3 });
        let _ = writeln!(
            s,
            "| {:<21} | {:<23} | {:<19} | {:>14.3} | {:>14.3} | {:>13.3} | {:>14.3} |",
            m.cell.label(),
            sp(&k, 0),
            sp(&m.loss_pct, 2),
            m.client_cpu_us_per_msg.median,
            m.server_cpu_us_per_msg.median,
            m.client_syscalls_per_msg.median,
            m.server_sleeps_per_msg.median
        );
    }
    let _ = write!(
        s,
        "\nLatency: {size}-byte round trips, microseconds (median of runs, min-max{})\n",
        if pinned { "; client on CPU 0, server on CPU 1" } else { "" }
    );
    s += "| path                  | p50                  | p99                  | p99.9    | p99.99   | cli CPU us/msg | srv CPU us/msg | srv sleeps/msg |\n";
    s += "|-----------------------|----------------------|----------------------|----------|----------|----------------|----------------|----------------|\n";
    for m in r.summaries.iter().filter(|m| m.cell.workload == Workload::Latency) {
        let _ = writeln!(
            s,
            "| {:<21} | {:<20} | {:<20} | {:>8.1} | {:>8.1} | {:>14.3} | {:>14.3} | {:>14.3} |",
            m.cell.label(),
            sp(&m.p50_us, 1),
            sp(&m.p99_us, 1),
            m.p999_us.map_or(0.0, |x| x.median),
            m.p9999_us.map_or(0.0, |x| x.median),
            m.client_cpu_us_per_msg.median,
            m.server_cpu_us_per_msg.median,
            m.server_sleeps_per_msg.median
        );
    }
    for (name, p50, p99, p999) in &r.peers {
        let _ = writeln!(
            s,
            "peer      {name} (block): round trip p50 {:.1} us ({:.1}-{:.1}), p99 {:.1}, p99.9 {:.1} (2 x sockperf's half round trips)",
            p50.median, p50.min, p50.max, p99.median, p999.median
        );
    }
    s
}

/// summary.csv's columns for the message rows, after the file rows' ones.
pub const CSV_COLUMNS: &str = "workload,wait,msg_size,delivered_per_s_median,loss_pct_median,p50_us_median,p90_us_median,\
                               p99_us_median,p999_us_median,p9999_us_median,client_cpu_us_per_msg_median,\
                               server_cpu_us_per_msg_median,client_syscalls_per_msg_median,server_sleeps_per_msg_median";

/// One summary.csv row of a message cell: the file rows' columns empty
/// but the mode and the runs, then [`CSV_COLUMNS`].
pub fn csv_row(m: &MsgSummary, file_columns: usize, size: usize) -> String {
    let med = |s: &Option<Spread>| s.map_or_else(String::new, |s| format!("{:.4}", s.median));
    let mut cols = vec![String::new(); file_columns];
    cols[0] = m.cell.mode.name().into();
    cols[9] = m.runs.to_string();
    cols.extend([
        format!("{:?}", m.cell.workload).to_lowercase(),
        m.cell.wait.name().into(),
        size.to_string(),
        med(&m.delivered_per_s),
        med(&m.loss_pct),
        med(&m.p50_us),
        med(&m.p90_us),
        med(&m.p99_us),
        med(&m.p999_us),
        med(&m.p9999_us),
        format!("{:.4}", m.client_cpu_us_per_msg.median),
        format!("{:.4}", m.server_cpu_us_per_msg.median),
        format!("{:.4}", m.client_syscalls_per_msg.median),
        format!("{:.4}", m.server_sleeps_per_msg.median),
    ]);
    cols.join(",")
}

/// The rate chart: delivered messages per second, a bar per cell.
pub fn rate_svg(r: &MsgResult) -> String {
    let rows: Vec<(String, Spread, &str)> = r
        .summaries
        .iter()
        .filter(|m| m.cell.workload == Workload::Rate)
        .filter_map(|m| {
            let d = m.delivered_per_s?;
            Some((m.cell.label(), Spread { median: d.median / 1e3, min: d.min / 1e3, max: d.max / 1e3 }, "#7a5aa8"))
        })
        .collect();
    super::chart::spread_bars(
        "Small messages, one way",
        "thousand 64-byte messages delivered per second (median, min-max)",
        &rows,
        &[],
    )
}

/// The percentile chart: p50 to p99.99 of every latency cell, and sockperf's p50-p99.9.
pub fn percentile_svg(r: &MsgResult) -> String {
    let series: Vec<(String, Vec<f64>)> = r
        .summaries
        .iter()
        .filter(|m| m.cell.workload == Workload::Latency)
        .map(|m| {
            let v = [m.p50_us, m.p90_us, m.p99_us, m.p999_us, m.p9999_us].iter().map(|s| s.map_or(0.0, |s| s.median)).collect();
            (m.cell.label(), v)
        })
        .collect();
    super::chart::percentiles("Round trips of small messages", &["p50", "p90", "p99", "p99.9", "p99.99"], &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockperf_percentiles_are_read() {
        let out = "sockperf: ---> percentile 99.900 =   60.101\nsockperf: ---> percentile 50.000 =   27.586\n";
        assert_eq!(pct(out, "50.000"), Some(27.586));
        assert_eq!(pct(out, "99.900"), Some(60.101));
        assert_eq!(pct(out, "99.000"), None);
    }

    #[test]
    fn every_mode_and_wait_is_a_cell_and_tcp_is_left_out_of_rate() {
        let c = cells();
        assert_eq!(c.iter().filter(|c| c.workload == Workload::Latency).count(), 9);
        assert!(!c.iter().any(|c| c.workload == Workload::Rate && c.mode == Mode::Tcp));
        assert!(c.iter().any(|c| c.workload == Workload::Rate && c.mode == Mode::UdpMmsg));
    }
}
