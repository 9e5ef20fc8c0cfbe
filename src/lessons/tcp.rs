//! Lesson 14: what the kernel's TCP does for you.
//!
//! A TCP has three jobs beyond putting bytes in segments: send again what
//! the network lost, slow down when it loses (congestion control), and stop
//! when the receiver cannot take more (flow control), probing a closed
//! window until it opens. This lesson runs zclab's own TCP (af-xdp-tcp,
//! NewReno with SACK, in user space on AF_XDP) and the kernel's through the
//! same router, which drops 1% of the flow's packets each way, and then into
//! a receiver that reads slowly through a small buffer. The evidence comes
//! from outside each sender as well as from it: the router's nftables
//! counters (what it forwarded and dropped), both kernels' `nstat`, the
//! kernel sender's `ss -ti` sampled while it runs, and the receiver's hash.

mod receive;

use super::{Claim, Experiment, Findings, Lab, Lesson};
use crate::netns::{EnvNames, RX_ADDR};
use anyhow::{bail, Context, Result};
use receive::{nstat, Delta};
use serde_json::Value;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const LESSON: Lesson = Lesson {
    number: 14,
    slug: "tcp",
    title: "What the kernel's TCP does for you: loss, recovery and windows, beside zclab's own TCP",
    learn: "what a TCP must do when the network drops packets and the receiver stalls (send again, cut its window, probe a closed one), by running zclab's TCP on AF_XDP and the kernel's through the same lossy router",
    run,
    check: None,
};

/// The router drops this many of every 1000 packets of a flow, each way.
const LOSS_PER_MILLE: u32 = 10;
/// The largest file the loss experiment moves: at 1% loss a TCP without
/// time-based loss detection spends seconds waiting for its timer.
const LOSS_FILE_MAX: u64 = 16 << 20;
/// The file the slow reader takes.
const WINDOW_FILE: u64 = 1 << 20;
/// Rows of each window-over-time chart.
const CHART_ROWS: usize = 20;
const PORT_BASE: u16 = 8140;

/// What the router counted for one flow (`nft` counters; the ACKs it forwarded are not needed).
#[derive(Debug, Default, Clone, Copy)]
struct RouterCount {
    data_packets: u64,
    data_bytes: u64,
    data_dropped: u64,
    acks_dropped: u64,
}

/// The lab router's nftables rules for the lesson: one chain per flow, in a table of its own.
struct Router {
    ns: String,
}

impl Router {
    fn nft(&self, args: &str) -> Result<String> {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.ns, "nft"])
            .args(args.split(' '))
            .output()
            .context("cannot run nft (Debian package nftables)")?;
        if !o.status.success() {
            bail!("nft {args}: {}", String::from_utf8_lossy(&o.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Counts the flow to and from `port`, dropping `per_mille` of its packets each way.
    fn lossy(&self, port: u16, per_mille: u32) -> Result<()> {
        self.nft("add table inet zcl14")?;
        self.nft(&format!("add chain inet zcl14 p{port} {{ type filter hook forward priority 0 ; }}"))?;
        for dir in ["dport", "sport"] {
            self.nft(&format!("add rule inet zcl14 p{port} tcp {dir} {port} counter"))?;
            self.nft(&format!("add rule inet zcl14 p{port} tcp {dir} {port} numgen random mod 1000 < {per_mille} counter drop"))?;
        }
        Ok(())
    }

    fn count(&self, port: u16) -> Result<RouterCount> {
        let text = self.nft(&format!("list chain inet zcl14 p{port}"))?;
        let c: Vec<(u64, u64)> = text
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let at = w.iter().position(|x| *x == "packets")?;
                Some((w.get(at + 1)?.parse().ok()?, w.get(at + 3)?.parse().ok()?))
            })
            .collect();
        if c.len() != 4 {
            bail!("the router's counters for port {port} are not as the lesson set them:\n{text}");
        }
        Ok(RouterCount { data_packets: c[0].0, data_bytes: c[0].1, data_dropped: c[1].0, acks_dropped: c[3].0 })
    }
}

/// What the receiving program got: bytes and their BLAKE3.
struct Got {
    bytes: u64,
    hash: blake3::Hash,
}

/// A kernel TCP receiver in namespace `ns` on `addr`, on a thread of its own:
/// reads one connection to its FIN and hashes it. `slow`: its listener's
/// receive buffer is 4 KiB (what its connection inherits), it waits half a
/// second before reading, then reads 4 KiB every 2 ms.
fn receiver(ns: &str, addr: SocketAddr, slow: bool) -> Result<JoinHandle<Result<Got>>> {
    let ns = ns.to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || -> Result<Got> {
        let l = (|| -> Result<TcpListener> {
            crate::sys::netns::enter(&ns).with_context(|| format!("entering {ns}"))?;
            let l = TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
            if slow {
                crate::sys::socket::set_int_opt(&l, libc::SOL_SOCKET, libc::SO_RCVBUF, 4096)?;
            }
            l.set_nonblocking(true)?;
            Ok(l)
        })();
        let l = match l {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(format!("{e:#}")));
                return Err(e);
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => return Err(e).context("no sender connected"),
            }
        };
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut buf = vec![0u8; if slow { 4096 } else { 1 << 20 }];
        let mut hasher = blake3::Hasher::new();
        let mut bytes = 0;
        if slow {
            std::thread::sleep(Duration::from_millis(500));
        }
        loop {
            let k = s.read(&mut buf).context("reading the connection")?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            bytes += k as u64;
            if slow {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(Got { bytes, hash: hasher.finalize() })
    });
    match ready_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => Ok(h),
        Ok(Err(e)) => bail!("the receiver did not come up: {e}"),
        Err(_) => bail!("the receiver did not come up in 5 s"),
    }
}

/// One sample of the kernel sender's `ss -ti`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t_ms: f64,
    cwnd: u64,
    in_flight: u64,
}

/// Samples `ss -tin` for the connection to `port` in namespace `ns` until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    h: JoinHandle<Result<Vec<Sample>>>,
}

impl Sampler {
    fn start(ns: &str, port: u16) -> Sampler {
        let ns = ns.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let h = std::thread::spawn(move || -> Result<Vec<Sample>> {
            // A child inherits this thread's namespace: ss sees the sender's sockets.
            crate::sys::netns::enter(&ns).with_context(|| format!("entering {ns}"))?;
            let (dst, dport) = (RX_ADDR.to_string(), format!(":{port}"));
            let mut out = Vec::new();
            let mut t0 = None;
            while !stopped.load(Ordering::Relaxed) {
                let o = Command::new("ss")
                    .args(["-tinH", "state", "established", "dst", &dst, "dport", "=", &dport])
                    .output()
                    .context("cannot run ss (iproute2)")?;
                let now = Instant::now();
                if let Some((cwnd, in_flight)) = parse_ss(&String::from_utf8_lossy(&o.stdout)) {
                    let t0 = *t0.get_or_insert(now);
                    out.push(Sample { t_ms: now.duration_since(t0).as_secs_f64() * 1e3, cwnd, in_flight });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(out)
        });
        Sampler { stop, h }
    }

    fn finish(self) -> Result<Vec<Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        self.h.join().map_err(|_| anyhow::anyhow!("the ss sampler panicked"))?
    }
}

/// The congestion window and the bytes sent and not acknowledged, from
/// `ss -tin`'s `cwnd:`, `unacked:` (segments) and `mss:`.
fn parse_ss(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.split_whitespace().find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix(':'))?.parse::<u64>().ok())
    };
    let mss = field("mss")?;
    Some((field("cwnd")? * mss, field("unacked").unwrap_or(0) * mss))
}

/// Runs `zclab send --plain` in the sender's namespace and reads its JSON report.
fn send(names: &EnvNames, mode: &str, port: u16, file: &std::path::Path, timeline: bool) -> Result<Value> {
    super::progress(&format!("send --plain --mode {mode} to port {port}"));
    let exe = std::env::current_exe().context("cannot find the zclab executable")?;
    let to = format!("{RX_ADDR}:{port}");
    let file = file.to_str().context("the lesson's file path is not UTF-8")?;
    let mut args = vec!["send", "--netns", &names.tx_ns, "--plain", "--mode", mode, "--to", &to, "--file", file, "--json"];
    if timeline {
        args.push("--timeline");
    }
    let o = Command::new(exe).args(&args).output()?;
    if !o.status.success() {
        bail!("`zclab {}` failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
    }
    serde_json::from_slice(&o.stdout).with_context(|| format!("`zclab {}` printed no report", args.join(" ")))
}

/// The congestion control the kernel's TCP uses in namespace `ns`.
fn congestion_control(ns: &str) -> Result<String> {
    let o = Command::new("ip").args(["netns", "exec", ns, "sysctl", "-n", "net.ipv4.tcp_congestion_control"]).output()?;
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn set_congestion_control(ns: &str, cc: &str) -> Result<()> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-qw", &format!("net.ipv4.tcp_congestion_control={cc}")])
        .output()?;
    if !o.status.success() {
        bail!("cannot set the congestion control to {cc}: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

/// One sender's run through the lossy router.
struct LossRun {
    name: String,
    kernel: bool,
    gbit: f64,
    seconds: f64,
    intact: bool,
    router: RouterCount,
    /// Data segments the sender sent, its own count (ours) or its kernel's (TcpOutSegs).
    segments: u64,
    retransmitted: u64,
    fast: u64,
    timeouts: u64,
    tail_probes: Option<u64>,
    recoveries: u64,
    largest_cwnd: u64,
    /// The sending namespace's TcpOutSegs during the run.
    tx_kernel_segments: u64,
    /// The receiving kernel's view: segments in, duplicates it told of (DSACK), segments queued out of order.
    rx_in_segments: u64,
    rx_duplicates: u64,
    rx_out_of_order: u64,
    series: Vec<Sample>,
}

/// How often the window shrank by more than a fifth from one sample to the next.
fn cuts(series: &[Sample]) -> usize {
    series.windows(2).filter(|w| (w[1].cwnd as f64) < 0.8 * w[0].cwnd as f64).count()
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

/// One transfer of `file` to a receiver on `port`, `mode` being af-xdp-tcp or a kernel mode.
fn loss_run(names: &EnvNames, router: &Router, name: &str, mode: &str, port: u16, file: &std::path::Path) -> Result<LossRun> {
    router.lossy(port, LOSS_PER_MILLE)?;
    let want = blake3::hash(&std::fs::read(file)?);
    let peer = receiver(&names.rx_ns, SocketAddr::new(RX_ADDR.into(), port), false)?;
    let (tx0, rx0) = (nstat(&names.tx_ns)?, nstat(&names.rx_ns)?);
    // The sampler runs for every sender, so each pays the same for it.
    let sampler = Sampler::start(&names.tx_ns, port);
    let ours = mode == "af-xdp-tcp";
    let sent = send(names, mode, port, file, ours);
    let samples = sampler.finish()?;
    let sent = sent?;
    let got = peer.join().map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
    let (tx, rx) = (Delta(tx0, nstat(&names.tx_ns)?), Delta(rx0, nstat(&names.rx_ns)?));
    let mut r = LossRun {
        name: name.to_string(),
        kernel: !ours,
        gbit: f(&sent, "gbit_per_s"),
        seconds: f(&sent, "seconds"),
        intact: got.hash == want && got.bytes == std::fs::metadata(file)?.len(),
        router: router.count(port)?,
        segments: 0,
        retransmitted: 0,
        fast: 0,
        timeouts: 0,
        tail_probes: None,
        recoveries: 0,
        largest_cwnd: 0,
        tx_kernel_segments: tx.get("TcpOutSegs"),
        rx_in_segments: rx.get("TcpInSegs"),
        rx_duplicates: rx.get("TcpExtTCPDSACKOldSent") + rx.get("TcpExtTCPDSACKOfoSent"),
        rx_out_of_order: rx.get("TcpExtTCPOFOQueue"),
        series: Vec::new(),
    };
    if ours {
        let t = &sent["tcp"];
        r.segments = u(t, &["segments_sent"]);
        r.fast = u(t, &["retransmits_fast"]);
        r.retransmitted = r.fast + u(t, &["retransmits_timeout"]);
        r.timeouts = u(t, &["rto_fired"]);
        r.recoveries = u(t, &["fast_recoveries"]);
        r.largest_cwnd = u(t, &["largest_cwnd"]);
        r.series = sent["timeline"]
            .as_array()
            .map(|a| {
                a.iter().map(|p| Sample { t_ms: f(p, "t_ms"), cwnd: u(p, &["cwnd"]), in_flight: u(p, &["in_flight"]) }).collect()
            })
            .unwrap_or_default();
    } else {
        r.segments = tx.get("TcpOutSegs");
        r.retransmitted = tx.get("TcpRetransSegs");
        r.fast = tx.get("TcpExtTCPFastRetrans");
        r.timeouts = tx.get("TcpExtTCPTimeouts");
        r.tail_probes = Some(tx.get("TcpExtTCPLossProbes"));
        r.recoveries = tx.get("TcpExtTCPSackRecovery") + tx.get("TcpExtTCPRenoRecovery");
        r.largest_cwnd = samples.iter().map(|s| s.cwnd).max().unwrap_or(0);
        r.series = samples;
    }
    Ok(r)
}

/// One sender into the slow reader.
struct WindowRun {
    name: String,
    seconds: f64,
    intact: bool,
    zero_windows: u64,
    probes: u64,
}

fn window_run(names: &EnvNames, name: &str, mode: &str, port: u16, file: &std::path::Path) -> Result<WindowRun> {
    let want = blake3::hash(&std::fs::read(file)?);
    let peer = receiver(&names.rx_ns, SocketAddr::new(RX_ADDR.into(), port), true)?;
    let (tx0, rx0) = (nstat(&names.tx_ns)?, nstat(&names.rx_ns)?);
    let sent = send(names, mode, port, file, false)?;
    let got = peer.join().map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
    let (tx, rx) = (Delta(tx0, nstat(&names.tx_ns)?), Delta(rx0, nstat(&names.rx_ns)?));
    let probes = if mode == "af-xdp-tcp" { u(&sent, &["tcp", "zero_window_probes"]) } else { tx.get("TcpExtTCPWinProbe") };
    Ok(WindowRun {
        name: name.to_string(),
        seconds: f(&sent, "seconds"),
        intact: got.hash == want,
        zero_windows: rx.get("TcpExtTCPToZeroWindowAdv"),
        probes,
    })
}

fn kib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

/// `series` as CHART_ROWS rows of time: the state at the end of each slice.
fn chart(r: &LossRun) -> Experiment {
    let end = r.series.last().map_or(0.0, |s| s.t_ms);
    let rows = (1..=CHART_ROWS)
        .filter_map(|i| {
            let t = end * i as f64 / CHART_ROWS as f64;
            let s = r.series.iter().rev().find(|s| s.t_ms <= t + 1e-9)?;
            Some(vec![format!("{t:.0}"), kib(s.cwnd), kib(s.in_flight)])
        })
        .collect();
    let from = if r.kernel { "ss -tin, sampled" } else { "its --timeline, every ms" };
    Experiment {
        name: format!("{}: the congestion window over time ({from}; {} samples)", r.name, r.series.len()),
        columns: ["ms", "cwnd KiB", "in flight KiB"].map(String::from).to_vec(),
        rows,
        chart: Some(1),
        label_columns: 1,
        under: Some(2),
    }
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let env = lab.routed_env("r")?;
    let names = env.names().clone();
    let router = Router { ns: names.rt_ns.clone() };
    // The kernel's TCP would hand the router 64 KB GSO packets, each of which a drop
    // would take whole: with segmentation off its packets are one MSS, as af-xdp-tcp's are.
    let o = Command::new("ip")
        .args(["netns", "exec", &names.tx_ns, "ethtool", "-K", &names.tx_if, "tso", "off", "gso", "off"])
        .output()
        .context("cannot run ethtool")?;
    if !o.status.success() {
        bail!("ethtool -K {} tso off gso off: {}", names.tx_if, String::from_utf8_lossy(&o.stderr).trim());
    }
    let loss_file = if lab.size > LOSS_FILE_MAX {
        let p = lab.path("loss");
        crate::run::make_random_file(&p, LOSS_FILE_MAX)?;
        p
    } else {
        lab.file.clone()
    };
    let loss_bytes = std::fs::metadata(&loss_file)?.len();
    let window_file = lab.path("window");
    crate::run::make_random_file(&window_file, WINDOW_FILE)?;

    let default_cc = congestion_control(&names.tx_ns)?;
    let mut runs = vec![loss_run(&names, &router, "af-xdp-tcp (NewReno, SACK)", "af-xdp-tcp", PORT_BASE, &loss_file)?];
    runs.push(loss_run(&names, &router, &format!("kernel sendfile ({default_cc})"), "sendfile", PORT_BASE + 1, &loss_file)?);
    if default_cc != "reno" {
        set_congestion_control(&names.tx_ns, "reno")?;
        let r = loss_run(&names, &router, "kernel sendfile (reno)", "sendfile", PORT_BASE + 2, &loss_file);
        set_congestion_control(&names.tx_ns, &default_cc)?;
        runs.push(r?);
    }
    let ours_rx = receive::into_ours(&names, &router, PORT_BASE + 20, &loss_file, &lab.path("received"))?;
    let windows = [
        window_run(&names, "af-xdp-tcp", "af-xdp-tcp", PORT_BASE + 10, &window_file)?,
        window_run(&names, &format!("kernel sendfile ({default_cc})"), "sendfile", PORT_BASE + 11, &window_file)?,
    ];
    drop(env);

    let loss_rows = runs
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                format!("{:.3}", r.gbit),
                format!("{:.2}", r.seconds),
                r.router.data_packets.to_string(),
                format!("{:.0}", r.router.data_bytes as f64 / r.router.data_packets.max(1) as f64),
                r.segments.to_string(),
                format!("{} / {}", r.router.data_dropped, r.router.acks_dropped),
                r.retransmitted.to_string(),
                r.fast.to_string(),
                r.timeouts.to_string(),
                r.tail_probes.map_or_else(|| "-".into(), |p| p.to_string()),
                r.recoveries.to_string(),
                kib(r.largest_cwnd),
                r.rx_out_of_order.to_string(),
                r.rx_duplicates.to_string(),
                r.tx_kernel_segments.to_string(),
                if r.intact { "yes".into() } else { "NO".into() },
            ]
        })
        .collect();
    let window_rows = windows
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                format!("{:.2}", w.seconds),
                w.zero_windows.to_string(),
                w.probes.to_string(),
                if w.intact { "yes".into() } else { "NO".into() },
            ]
        })
        .collect();

    let ours = &runs[0];
    let kdefault = &runs[1];
    let reno = runs.iter().find(|r| r.name.ends_with("(reno)")).unwrap_or(kdefault);
    let per_drop = |r: &LossRun| r.timeouts as f64 / r.router.data_dropped.max(1) as f64;
    let rto_floor = crate::tcp::rto::DEFAULT_MIN_RTO;

    let mut claims = vec![
        Claim::new(
            "Every TCP here delivers the file intact through the lossy router, sending again at least what the router dropped",
            runs.iter().all(|r| r.intact && r.retransmitted >= r.router.data_dropped && r.router.data_dropped > 0),
            runs.iter()
                .map(|r| {
                    format!(
                        "{}: {}, the router dropped {} data packets, sent again {}",
                        r.name,
                        if r.intact { "intact" } else { "NOT intact" },
                        r.router.data_dropped,
                        r.retransmitted
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        {
            let reached = ours.router.data_packets - ours.router.data_dropped;
            let silent = ours.tx_kernel_segments * 100 <= ours.router.data_packets.max(1);
            Claim::new(
                "The sending host's kernel takes no part in af-xdp-tcp's connection: its TCP counts no segment while the peer's counts every one",
                silent && ours.rx_in_segments * 10 >= reached * 9,
                format!(
                    "af-xdp-tcp: the sending namespace's TcpOutSegs rose by {}, the router forwarded {} data packets and {} reached the peer, whose TcpInSegs rose by {} (the kernel's own run: TcpOutSegs {})",
                    ours.tx_kernel_segments, ours.router.data_packets, reached, ours.rx_in_segments, kdefault.tx_kernel_segments
                ),
            )
        },
        Claim::new(
            "Loss cuts the congestion window of a loss-based TCP: af-xdp-tcp's NewReno and the kernel's Reno each shrink it again and again",
            cuts(&ours.series) > 1 && cuts(&reno.series) > 1,
            format!(
                "windows cut by more than a fifth between samples: {} {} times in {} samples, {} {} times in {}{}",
                ours.name,
                cuts(&ours.series),
                ours.series.len(),
                reno.name,
                cuts(&reno.series),
                reno.series.len(),
                if reno.name != kdefault.name {
                    format!(" ({}: {} in {})", kdefault.name, cuts(&kdefault.series), kdefault.series.len())
                } else {
                    String::new()
                }
            ),
        ),
        Claim::new(
            "The kernel's TCP waits for its retransmission timer less often per loss than af-xdp-tcp",
            per_drop(reno) < per_drop(ours),
            format!(
                "timeouts per dropped data packet: {} {:.3} ({} of {}), {} {:.3} ({} of {}; tail-loss probes {})",
                reno.name,
                per_drop(reno),
                reno.timeouts,
                reno.router.data_dropped,
                ours.name,
                per_drop(ours),
                ours.timeouts,
                ours.router.data_dropped,
                reno.tail_probes.unwrap_or(0)
            ),
        ),
        Claim::new(
            "Through the same loss and with the same congestion rule (Reno), the kernel's TCP moves the file faster than af-xdp-tcp",
            reno.gbit > ours.gbit,
            format!(
                "{} {:.3} Gbit/s, {} {:.3} Gbit/s: {:.1}x; af-xdp-tcp's {} timeouts waited at least {} x {} ms = {:.2} s of its {:.2} s",
                reno.name,
                reno.gbit,
                ours.name,
                ours.gbit,
                reno.gbit / ours.gbit.max(1e-9),
                ours.timeouts,
                ours.timeouts,
                rto_floor.as_millis(),
                ours.timeouts as f64 * rto_floor.as_secs_f64(),
                ours.seconds
            ),
        ),
        Claim::new(
            "A receiver's closed window stops both senders, and each probes it until it opens, then finishes intact",
            windows.iter().all(|w| w.intact && w.zero_windows > 0 && w.probes > 0),
            windows
                .iter()
                .map(|w| {
                    format!(
                        "{}: the receiver advertised a zero window {} times, the sender probed {} times, {}",
                        w.name,
                        w.zero_windows,
                        w.probes,
                        if w.intact { "intact" } else { "NOT intact" }
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
    ];

    claims.push(receive::claim(&ours_rx));
    let mut experiments = vec![Experiment {
        name: format!(
            "{} through the router, which drops {:.1}% of the flow's packets each way (nft counters; the kernel's figures from nstat and ss)",
            super::bytes(loss_bytes),
            LOSS_PER_MILLE as f64 / 10.0
        ),
        columns: [
            "sender",
            "Gbit/s",
            "s",
            "data packets at the router",
            "bytes each",
            "segments sent",
            "dropped data / acks",
            "sent again",
            "fast",
            "timeouts",
            "tail probes",
            "recoveries",
            "largest cwnd KiB",
            "receiver: out of order",
            "receiver: duplicates (DSACK)",
            "sending kernel's TcpOutSegs",
            "intact",
        ]
        .map(String::from)
        .to_vec(),
        rows: loss_rows,
        chart: Some(1),
        label_columns: 1,
        under: None,
    }];
    experiments.extend(runs.iter().map(chart));
    experiments.push(Experiment {
        name: format!(
            "The receiving side: the same {} into zclab's own TCP receiver, through the same router",
            super::bytes(loss_bytes)
        ),
        columns: receive::COLUMNS.map(String::from).to_vec(),
        rows: vec![receive::row(&ours_rx)],
        chart: None,
        label_columns: 1,
        under: None,
    });
    experiments.push(Experiment {
        name: format!(
            "{} into a reader with a 4 KiB receive buffer that waits 0.5 s, then reads 4 KiB every 2 ms (no loss)",
            super::bytes(WINDOW_FILE)
        ),
        columns: ["sender", "s", "zero windows the receiver advertised", "probes sent", "intact"].map(String::from).to_vec(),
        rows: window_rows,
        chart: None,
        label_columns: 1,
        under: None,
    });
    Ok(Findings {
        lesson: 14,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: loss_bytes,
        experiments,
        claims,
        notes: vec![
            format!(
                "The kernel's congestion control here is {default_cc} (net.ipv4.tcp_congestion_control); the lesson set reno in its sending namespace for the like-for-like run."
            ),
            "TSO and GSO were off on the sending veth, so the kernel's packets were one MSS each, as af-xdp-tcp's are, and the router's drops fell on single segments for both.".into(),
            "A kernel TCP's 'fast' counts TcpExtTCPFastRetrans, which includes RACK's time-based detections; 'recoveries' is TcpExtTCPSackRecovery + TcpExtTCPRenoRecovery.".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_lines_give_the_window_and_the_bytes_in_flight() {
        let line = "\t cubic wscale:10,10 rto:204 rtt:0.046/0.002 mss:1448 pmtu:1500 cwnd:10 ssthresh:7 unacked:4 bytes_acked:1";
        assert_eq!(parse_ss(line), Some((14480, 5792)));
        assert_eq!(parse_ss("\t cubic mss:1000 cwnd:3"), Some((3000, 0)), "no unacked: nothing in flight");
        assert_eq!(parse_ss(""), None, "no connection");
    }

    #[test]
    fn a_window_cut_is_a_fall_of_more_than_a_fifth() {
        let s = |cwnd| Sample { t_ms: 0.0, cwnd, in_flight: 0 };
        assert_eq!(cuts(&[s(100), s(90), s(50), s(60), s(10)]), 2);
        assert_eq!(cuts(&[s(100), s(81), s(70)]), 0, "falls of a fifth or less are not cuts");
        assert_eq!(cuts(&[]), 0);
    }
}
