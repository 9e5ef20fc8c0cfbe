//! `zclab rate`: a one-way stream of small numbered messages, as fast as
//! the sender can put them out, for a while or a count. The receiver counts
//! what was delivered, lost, duplicated and reordered; nothing is sent
//! again, so loss is a result, reported beside the rate.

use super::control::{Done, Kind, StreamCount, Verdict};
use super::{cost_table, open_client, xdp_line, EndConfig, EndCost, Mode, UDP_FRAME_OVERHEAD};
use crate::metrics::CostMeter;
use crate::trace::Testimony;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The most messages one session may send: the receiver keeps a bit for
/// each (32 MiB at most). A message numbered beyond is counted, not kept.
pub const MAX_MESSAGES: u64 = 1 << 28;
/// Messages the sender hands its path per call.
pub const BATCH: u32 = 64;

/// How long a stream runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    Seconds(f64),
    Messages(u64),
}

/// A validated `zclab rate` client.
#[derive(Debug, Clone)]
pub struct RateConfig {
    pub to: SocketAddr,
    pub mode: Mode,
    pub size: usize,
    pub length: Length,
    pub end: EndConfig,
}

/// The receiver's tally, kept while messages arrive.
#[derive(Default)]
pub struct Counter {
    seen: Vec<u64>,
    pub delivered: u64,
    duplicated: u64,
    reordered: u64,
    out_of_range: u64,
    highest: Option<u64>,
    first: Option<Instant>,
    pub last: Option<Instant>,
}

impl Counter {
    /// One message, numbered `seq`, arrived.
    pub fn note(&mut self, seq: u64) {
        if seq >= MAX_MESSAGES {
            self.out_of_range += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.seen.len() {
            // Grow by doubling, so a long stream reallocates rarely.
            self.seen.resize((word + 1).next_power_of_two(), 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicated += 1;
            return;
        }
        self.seen[word] |= bit;
        self.delivered += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
    }

    /// Messages arrived at `now`.
    pub fn mark(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    pub fn finish(&self) -> StreamCount {
        let receive_s = match (self.first, self.last) {
            (Some(f), Some(l)) => (l - f).as_secs_f64(),
            _ => 0.0,
        };
        StreamCount {
            delivered: self.delivered,
            duplicated: self.duplicated,
            reordered: self.reordered,
            out_of_range: self.out_of_range,
            receive_s,
        }
    }
}

/// One `zclab rate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RateReport {
    pub kind: String,
    pub mode: Mode,
    /// Bytes per message (the UDP payload, or a TCP message).
    pub size: usize,
    /// Bytes of the Ethernet frame of one message (the packet modes).
    pub frame_bytes: Option<usize>,
    pub sent: u64,
    pub delivered: u64,
    /// Sent and never delivered.
    pub lost: u64,
    pub loss_pct: f64,
    pub duplicated: u64,
    pub reordered: u64,
    pub out_of_range: u64,
    /// Seconds the sender sent.
    pub send_s: f64,
    /// Seconds from the first message received to the last.
    pub receive_s: f64,
    pub sent_per_s: f64,
    /// Delivered messages per second of the receiver's window: the figure that counts.
    pub delivered_per_s: f64,
    pub client: EndCost,
    pub server: EndCost,
    /// Both ends' CPU microseconds per delivered message.
    pub cpu_us_per_msg: f64,
    pub verdict: String,
    pub ok: bool,
}

/// Runs the sending end of a stream to a `zclab rate --listen` server.
pub fn run(cfg: &RateConfig) -> Result<RateReport> {
    let mut s = open_client(cfg.to, Kind::Rate, cfg.mode, cfg.size, &cfg.end)?;
    let mut testimony = Testimony::prepare(cfg.end.trace, None, None);
    let meter = CostMeter::start();
    testimony.start();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut batches = 0u64;
    loop {
        let left = match cfg.length {
            Length::Messages(n) => n - sent,
            Length::Seconds(d) => {
                // The clock every 16 batches: the stream's length, not its cost.
                if batches.is_multiple_of(16) && start.elapsed().as_secs_f64() >= d {
                    0
                } else {
                    MAX_MESSAGES - sent
                }
            }
        };
        if left == 0 {
            break;
        }
        sent += s.link.send(sent, left.min(BATCH as u64) as u32)? as u64;
        batches += 1;
        if batches.is_multiple_of(1024) {
            crate::interrupt::check()?;
        }
    }
    if !s.link.flush(Duration::from_secs(1))? {
        log::warn!("not every frame left the TX ring within a second of the end");
    }
    let send_s = start.elapsed().as_secs_f64();
    let info = s.link.info();
    let cost = meter.finish(info.syscalls);
    let kernel = testimony.finish();
    // A stream ends with its connection: the receiver then knows it has everything.
    drop(s.link);
    s.ctl.send(&Done { sent })?;
    let v: Verdict = s.ctl.recv(cfg.end.timeout + Duration::from_secs(3), "verdict")?;
    if let Some(e) = v.error {
        bail!("the server failed: {e}");
    }
    let Some(stream) = v.stream else { bail!("the server's verdict has no count of the stream") };
    let client = EndCost::new(cfg.end.wait, cost, sent, info, kernel);
    Ok(report(cfg, sent, send_s, stream, client, v.server))
}

fn report(cfg: &RateConfig, sent: u64, send_s: f64, c: StreamCount, client: EndCost, server: EndCost) -> RateReport {
    let lost = sent.saturating_sub(c.delivered);
    let per_s = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let cpu = client.cost.cpu_user_s + client.cost.cpu_sys_s + server.cost.cpu_user_s + server.cost.cpu_sys_s;
    let (ok, verdict) = if c.delivered == 0 {
        (false, format!("NOTHING ARRIVED: none of {sent} messages was delivered"))
    } else {
        (true, format!("{} of {sent} messages delivered ({} lost)", c.delivered, lost))
    };
    RateReport {
        kind: "rate".into(),
        mode: cfg.mode,
        size: cfg.size,
        frame_bytes: (cfg.mode != Mode::Tcp).then_some(cfg.size + UDP_FRAME_OVERHEAD),
        sent,
        delivered: c.delivered,
        lost,
        loss_pct: if sent > 0 { 100.0 * lost as f64 / sent as f64 } else { 0.0 },
        duplicated: c.duplicated,
        reordered: c.reordered,
        out_of_range: c.out_of_range,
        send_s,
        receive_s: c.receive_s,
        sent_per_s: per_s(sent, send_s),
        delivered_per_s: per_s(c.delivered, c.receive_s),
        cpu_us_per_msg: if c.delivered > 0 { cpu * 1e6 / c.delivered as f64 } else { 0.0 },
        client,
        server,
        verdict,
        ok,
    }
}

/// The report as people read it.
pub fn text(r: &RateReport) -> String {
    let mut s = format!(
        "rate: {}, {}-byte messages{}, {:.2} s\n",
        r.mode,
        r.size,
        r.frame_bytes.map_or(String::new(), |f| format!(" ({f}-byte frames)")),
        r.send_s
    );
    let _ = writeln!(s, "  sent        {:>12}  {:>10.0} /s", r.sent, r.sent_per_s);
    let _ = writeln!(s, "  delivered   {:>12}  {:>10.0} /s   <- the rate", r.delivered, r.delivered_per_s);
    let _ = writeln!(
        s,
        "  lost        {:>12}  {:>9.3} %    duplicated {}, reordered {}, out of range {}",
        r.lost, r.loss_pct, r.duplicated, r.reordered, r.out_of_range
    );
    s += &cost_table(&r.client, &r.server, "sender", "receiver");
    let _ = writeln!(s, "  both ends: {:.3} CPU us per delivered message", r.cpu_us_per_msg);
    s += &xdp_line(&r.client, &r.server);
    let _ = writeln!(s, "{}", r.verdict);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_tells_delivered_duplicated_reordered_and_out_of_range() {
        let mut c = Counter::default();
        for seq in [0, 1, 2, 5, 3, 3, 4, 200, MAX_MESSAGES, 9] {
            c.note(seq);
        }
        let s = c.finish();
        assert_eq!(s.delivered, 8, "0 1 2 5 3 4 200 9");
        assert_eq!(s.duplicated, 1, "the second 3");
        assert_eq!(s.reordered, 3, "3 and 4 after 5, 9 after 200");
        assert_eq!(s.out_of_range, 1);
    }
}
