//! Lesson 14's receiving side: the kernel's sendfile through the same lossy
//! router into zclab's own TCP receiver (`recv --plain --mode af-xdp-tcp`),
//! and what the sending kernel says of it (`nstat`), beside the router's
//! count of what it dropped. Also the `nstat` readings both sides use.

use super::{send, Router, RouterCount, LOSS_PER_MILLE};
use crate::netns::{EnvNames, RX_ADDR};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The kernel's SNMP counters in a namespace (`nstat -az`, absolute).
pub(super) fn nstat(ns: &str) -> Result<HashMap<String, u64>> {
    let o = Command::new("ip").args(["netns", "exec", ns, "nstat", "-az"]).output().context("cannot run nstat (iproute2)")?;
    if !o.status.success() {
        bail!("nstat in {ns}: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect())
}

/// Counter deltas between two `nstat` readings.
pub(super) struct Delta(pub HashMap<String, u64>, pub HashMap<String, u64>);

impl Delta {
    pub(super) fn get(&self, name: &str) -> u64 {
        self.1.get(name).copied().unwrap_or(0).saturating_sub(self.0.get(name).copied().unwrap_or(0))
    }
}

/// The kernel's sendfile into zclab's receiver through the lossy router.
pub(super) struct IntoOurs {
    pub gbit: f64,
    pub intact: bool,
    pub router: RouterCount,
    /// What the sending kernel sent again (TcpRetransSegs).
    pub resent: u64,
    pub segments: u64,
    pub out_of_order: u64,
    pub held_peak_frames: u64,
    pub acks: u64,
    pub sack_blocks: u64,
    pub duplicates: u64,
}

/// Runs it on `port`: the receiver first, then `send --plain --mode
/// sendfile` (which retries while the receiver's port still refuses).
pub(super) fn into_ours(names: &EnvNames, router: &Router, port: u16, file: &Path, out: &Path) -> Result<IntoOurs> {
    router.lossy(port, LOSS_PER_MILLE)?;
    super::super::progress(&format!("recv --plain --mode af-xdp-tcp on port {port}"));
    let s = |v: &str| v.to_string();
    let out_arg = out.to_str().context("the lesson's path is not UTF-8")?;
    let args = [
        s("recv"),
        s("--netns"),
        names.rx_ns.clone(),
        s("--plain"),
        s("--mode"),
        s("af-xdp-tcp"),
        s("--listen"),
        format!("{RX_ADDR}:{port}"),
        s("--out"),
        s(out_arg),
        s("--json"),
        s("--accept-timeout"),
        s("20"),
    ];
    let mut rx = crate::run::Peer::spawn("receiver", &args)?;
    let before = nstat(&names.tx_ns)?;
    let sent = send(names, "sendfile", port, file, false)?;
    let after = nstat(&names.tx_ns)?;
    let t0 = Instant::now();
    while rx.poll()?.is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("zclab's TCP receiver did not end within 10 s of the sender");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let r: Value = serde_json::from_str(&rx.output()).context("zclab's TCP receiver printed no report")?;
    let (want, _, _) = crate::transfer::hash::hash_file_with(file, None, false)?;
    let k = Delta(before, after);
    let t = &r["tcp"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Ok(IntoOurs {
        gbit: sent["gbit_per_s"].as_f64().unwrap_or(0.0),
        intact: r["hash"].as_str() == Some(want.as_str()),
        router: router.count(port)?,
        resent: k.get("TcpRetransSegs"),
        segments: n(&t["segments_received"]),
        out_of_order: n(&t["out_of_order_segments"]),
        held_peak_frames: n(&r["held_frames_peak"]),
        acks: n(&t["acks_sent"]),
        sack_blocks: n(&t["sack_blocks_sent"]),
        duplicates: n(&t["duplicate_segments"]),
    })
}

/// Its row: beside the loss table's kernel-to-kernel run.
pub(super) fn row(r: &IntoOurs) -> Vec<String> {
    vec![
        "kernel sendfile -> zclab's TCP receiver".into(),
        format!("{:.3}", r.gbit),
        r.segments.to_string(),
        format!("{} / {}", r.router.data_dropped, r.router.acks_dropped),
        r.resent.to_string(),
        r.out_of_order.to_string(),
        r.held_peak_frames.to_string(),
        r.acks.to_string(),
        r.sack_blocks.to_string(),
        r.duplicates.to_string(),
        if r.intact { "yes".into() } else { "NO".into() },
    ]
}

pub(super) const COLUMNS: [&str; 11] = [
    "path",
    "Gbit/s",
    "segments received",
    "dropped data / acks",
    "the kernel sent again",
    "held out of order",
    "most frames held",
    "ACKs sent",
    "SACK blocks sent",
    "duplicates received",
    "intact",
];

/// The claim: what arrives behind a hole is kept and reported, so the
/// sending kernel sends again little more than what was lost.
pub(super) fn claim(r: &IntoOurs) -> super::super::Claim {
    let lost = r.router.data_dropped;
    super::super::Claim::new(
        "zclab's TCP receiver keeps what arrives behind a hole in its UMEM frames and names it in SACK blocks: the file arrives \
         intact and the sending kernel sends again fewer than 3 segments for each the router dropped",
        r.intact && r.out_of_order > 0 && r.sack_blocks > 0 && lost > 0 && r.resent >= lost && r.resent < 3 * lost,
        format!(
            "{} of {} segments arrived behind a hole and were held (at most {} frames at once), {} SACK blocks in {} ACKs; \
             the router dropped {lost} data segments, the kernel sent {} again ({:.2} each); {}",
            r.out_of_order,
            r.segments,
            r.held_peak_frames,
            r.sack_blocks,
            r.acks,
            r.resent,
            r.resent as f64 / lost.max(1) as f64,
            if r.intact { "intact" } else { "NOT intact" }
        ),
    )
}
