//! `zclab latency`: request and response, one message in flight. The
//! client sends message i, waits for its answer, and times the round trip
//! with `CLOCK_MONOTONIC` (std's `Instant`) into an HDR histogram. A reply
//! that carries another number, or none within the reply timeout, is
//! counted and never timed. Warm-up round trips are neither timed nor
//! charged to the client's costs.

use super::control::{Done, Kind, Verdict};
use super::{cost_table, open_client, xdp_line, EndConfig, EndCost, Mode, UDP_FRAME_OVERHEAD};
use crate::metrics::CostMeter;
use crate::trace::Testimony;
use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The percentiles every report carries.
pub const PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];

/// A validated `zclab latency` client.
#[derive(Debug, Clone)]
pub struct LatencyConfig {
    pub to: SocketAddr,
    pub mode: Mode,
    pub size: usize,
    /// Round trips timed.
    pub count: u64,
    /// Round trips before them, not timed.
    pub warmup: u64,
    /// How long the client waits for one reply before it counts it lost.
    pub reply_timeout: Duration,
    pub end: EndConfig,
}

/// One percentile of the round trip.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    pub pct: f64,
    pub us: f64,
}

/// One `zclab latency`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyReport {
    pub kind: String,
    pub mode: Mode,
    pub size: usize,
    pub frame_bytes: Option<usize>,
    /// Round trips asked for, and after how many warm-up ones.
    pub count: u64,
    pub warmup: u64,
    /// Round trips timed (asked for, less lost ones).
    pub completed: u64,
    /// Timed requests whose reply did not come within the reply timeout: completed + lost = count.
    pub lost: u64,
    /// Warm-up requests likewise lost.
    pub lost_warmup: u64,
    /// Replies to an earlier request, one already counted lost: they came after its timeout.
    #[serde(default)]
    pub late_replies: u64,
    /// Replies with a number never asked for yet: none should ever come.
    pub wrong_replies: u64,
    pub reply_timeout_ms: f64,
    pub min_us: f64,
    pub mean_us: f64,
    pub stdev_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
    /// p50 to p100, for charts.
    pub percentiles: Vec<Percentile>,
    /// Seconds the timed round trips took, all together.
    pub wall_s: f64,
    pub round_trips_per_s: f64,
    pub client: EndCost,
    pub server: EndCost,
    pub verdict: String,
    pub ok: bool,
}

/// Runs the client of a ping-pong against a `zclab latency --listen` server.
pub fn run(cfg: &LatencyConfig) -> Result<LatencyReport> {
    let mut s = open_client(cfg.to, Kind::Latency, cfg.mode, cfg.size, &cfg.end)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let (mut lost, mut lost_warmup, mut wrong, mut silent_since) = (0u64, 0u64, 0u64, None::<Instant>);
    let mut late = 0u64;
    let mut testimony = Testimony::prepare(cfg.end.trace, None, None);
    let mut meter = None;
    let mut timed_start = Instant::now();
    let mut syscalls_at_start = 0;
    let total = cfg.warmup + cfg.count;
    for i in 0..total {
        if i == cfg.warmup {
            syscalls_at_start = s.link.info().syscalls;
            meter = Some(CostMeter::start());
            testimony.start();
            timed_start = Instant::now();
        }
        if i.is_multiple_of(256) {
            crate::interrupt::check()?;
        }
        let t0 = Instant::now();
        while s.link.send(i, 1)? == 0 {
            if t0.elapsed() > cfg.reply_timeout {
                bail!("could not send message {i} within the reply timeout (the path's ring stayed full)");
            }
        }
        let mut matched = false;
        loop {
            let got = s.link.receive(cfg.reply_timeout, &mut |seq| {
                if seq == i {
                    matched = true
                } else if seq < i {
                    late += 1
                } else {
                    wrong += 1
                }
            })?;
            if matched || got == 0 || t0.elapsed() >= cfg.reply_timeout || s.link.closed() {
                break;
            }
        }
        let rtt = t0.elapsed();
        if matched {
            silent_since = None;
            if i >= cfg.warmup {
                hist.saturating_record(rtt.as_nanos().max(1) as u64);
            }
        } else {
            if s.link.closed() {
                bail!("the server closed the connection after {i} round trips");
            }
            if i >= cfg.warmup {
                lost += 1;
            } else {
                lost_warmup += 1;
            }
            let since = *silent_since.get_or_insert(t0);
            if since.elapsed() >= cfg.end.timeout {
                bail!(
                    "no reply for {:.1} s (--timeout): the server answered {} of {} requests and then stopped; is it running, \
                     and does the path carry the mode's packets?",
                    cfg.end.timeout.as_secs_f64(),
                    i + 1 - lost - lost_warmup,
                    i + 1
                );
            }
        }
    }
    let wall_s = timed_start.elapsed().as_secs_f64();
    let mut info = s.link.info();
    info.syscalls -= syscalls_at_start;
    let cost = meter.map(|m| m.finish(info.syscalls)).unwrap_or_default();
    let kernel = testimony.finish();
    // Done before the path is torn down: the server's clock stops when it hears it.
    s.ctl.send(&Done { sent: total })?;
    drop(s.link);
    let v: Verdict = s.ctl.recv(Duration::from_secs(5), "verdict")?;
    if let Some(e) = v.error {
        bail!("the server failed: {e}");
    }
    let completed = hist.len();
    let client = EndCost::new(cfg.end.wait, cost, completed, info, kernel);
    let mut r = report(cfg, &hist, lost, (late, wrong), wall_s, client, v.server);
    r.lost_warmup = lost_warmup;
    Ok(r)
}

fn report(
    cfg: &LatencyConfig,
    h: &Histogram<u64>,
    lost: u64,
    (late, wrong): (u64, u64),
    wall_s: f64,
    client: EndCost,
    server: EndCost,
) -> LatencyReport {
    let us = |ns: u64| ns as f64 / 1e3;
    let q = |p: f64| if h.is_empty() { 0.0 } else { us(h.value_at_percentile(p)) };
    let completed = h.len();
    let (ok, verdict) = if completed == 0 {
        (false, format!("NO ROUND TRIP COMPLETED: all {} requests went unanswered", cfg.count))
    } else if lost > 0 {
        (true, format!("{completed} round trips timed; {lost} requests lost (not timed)"))
    } else {
        (true, format!("{completed} round trips timed, none lost"))
    };
    LatencyReport {
        kind: "latency".into(),
        mode: cfg.mode,
        size: cfg.size,
        frame_bytes: (cfg.mode != Mode::Tcp).then_some(cfg.size + UDP_FRAME_OVERHEAD),
        count: cfg.count,
        warmup: cfg.warmup,
        completed,
        lost,
        lost_warmup: 0,
        late_replies: late,
        wrong_replies: wrong,
        reply_timeout_ms: cfg.reply_timeout.as_secs_f64() * 1e3,
        min_us: if h.is_empty() { 0.0 } else { us(h.min()) },
        mean_us: if h.is_empty() { 0.0 } else { h.mean() / 1e3 },
        stdev_us: if h.is_empty() { 0.0 } else { h.stdev() / 1e3 },
        p50_us: q(50.0),
        p90_us: q(90.0),
        p99_us: q(99.0),
        p999_us: q(99.9),
        p9999_us: q(99.99),
        max_us: if h.is_empty() { 0.0 } else { us(h.max()) },
        percentiles: PERCENTILES.iter().map(|&p| Percentile { pct: p, us: q(p) }).collect(),
        wall_s,
        round_trips_per_s: if wall_s > 0.0 { completed as f64 / wall_s } else { 0.0 },
        client,
        server,
        verdict,
        ok,
    }
}

/// The report as people read it.
pub fn text(r: &LatencyReport) -> String {
    let mut s = format!(
        "latency: {}, {}-byte messages{}, {} round trips after {} warm-up\n",
        r.mode,
        r.size,
        r.frame_bytes.map_or(String::new(), |f| format!(" ({f}-byte frames)")),
        r.count,
        r.warmup
    );
    let _ = writeln!(
        s,
        "  round trip (us)   min {:.1}   p50 {:.1}   p90 {:.1}   p99 {:.1}   p99.9 {:.1}   p99.99 {:.1}   max {:.1}",
        r.min_us, r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.p9999_us, r.max_us
    );
    let _ = writeln!(s, "  mean {:.2} us (stdev {:.2}); {:.0} round trips/s", r.mean_us, r.stdev_us, r.round_trips_per_s);
    let _ = writeln!(
        s,
        "  lost {} (reply timeout {:.0} ms), late replies {}, wrong replies {}",
        r.lost, r.reply_timeout_ms, r.late_replies, r.wrong_replies
    );
    s += &cost_table(&r.client, &r.server, "client", "server");
    s += &xdp_line(&r.client, &r.server);
    let _ = writeln!(s, "{}", r.verdict);
    s
}
