//! Lesson 4: sendfile with scatter/gather DMA.
//!
//! A packet's headers and its payload live in different places: headers in
//! a small buffer the stack writes, the payload in page-cache pages. A NIC
//! that can gather a packet from several places (`scatter-gather`) sends
//! both without anyone copying them together; one that cannot forces the
//! kernel to copy each packet into one linear buffer, and without it TCP
//! cannot hand large segments to the NIC either (TSO needs SG). veth has
//! the feature, and it can be turned off, so the difference can be seen.

use super::{cpu_per_gib, Claim, Experiment, Findings, Lab, Lesson};
use crate::report::RunReport;
use crate::transfer::{Mode, DEFAULT_CHUNK};
use anyhow::{bail, Context, Result};
use std::process::Command;

pub const LESSON: Lesson = Lesson {
    number: 4,
    slug: "sendfile-sg",
    title: "sendfile with scatter/gather DMA: header here, payload there",
    learn: "why zero-copy sending needs a NIC that gathers a packet from several buffers, what happens without it, and how af-xdp does the same gather by hand",
    run,
    check: None,
};

/// `ethtool ARGS` inside the namespace `ns`; its output.
fn ethtool(ns: &str, args: &[&str]) -> Result<String> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "ethtool"])
        .args(args)
        .output()
        .context("running ethtool (install it: scripts/setup.sh, or apt-get install ethtool)")?;
    if !o.status.success() {
        bail!("ethtool {} failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The value of `feature:` in `ethtool -k` output ("on", "off", "off [fixed]").
fn feature(k: &str, name: &str) -> String {
    k.lines().find_map(|l| l.trim().strip_prefix(&format!("{name}:"))).unwrap_or("?").trim().to_string()
}

/// Turns scatter-gather of the lab's sending interface back on when dropped.
struct SgOff<'a> {
    ns: &'a str,
    iface: &'a str,
}

impl Drop for SgOff<'_> {
    fn drop(&mut self) {
        let _ = ethtool(self.ns, &["-K", self.iface, "sg", "on"]);
    }
}

fn run(lab: &mut Lab) -> Result<Findings> {
    let names = lab.names().clone();
    let (ns, iface) = (names.tx_ns.as_str(), names.tx_if.as_str());
    let before = ethtool(ns, &["-k", iface])?;
    let on = lab.transfer(Mode::Sendfile, DEFAULT_CHUNK, false)?;
    let (off, features_off) = {
        let _restore = SgOff { ns, iface };
        ethtool(ns, &["-K", iface, "sg", "off"])?;
        let k = ethtool(ns, &["-k", iface])?;
        (lab.transfer(Mode::Sendfile, DEFAULT_CHUNK, false)?, k)
    };
    let xdp = lab.transfer(Mode::AfXdp, DEFAULT_CHUNK, false)?;
    let sent = |r: &RunReport| r.kernel.as_ref().and_then(|k| k.sender.as_ref()).and_then(|k| k.dev_xmit_packets);
    let row = |name: &str, r: &RunReport, k: &str| {
        vec![
            name.to_string(),
            feature(k, "scatter-gather"),
            feature(k, "tx-tcp-segmentation"),
            sent(r).map_or_else(|| "n/a".into(), |p| p.to_string()),
            sent(r).filter(|p| *p > 0).map_or_else(|| "n/a".into(), |p| format!("{:.0}", lab.size as f64 / p as f64)),
            format!("{:.3}", r.sender.cpu_sys_s),
            format!("{:.3}", cpu_per_gib(r)),
            format!("{:.2}", r.gbit_per_s),
        ]
    };
    let mut claims = vec![Claim::new(
        "veth can gather a packet from several buffers: scatter-gather is on by default",
        feature(&before, "scatter-gather") == "on",
        format!("ethtool -k {iface}: scatter-gather {}", feature(&before, "scatter-gather")),
    )];
    let mut notes = Vec::new();
    match (sent(&on), sent(&off)) {
        (Some(p_on), Some(p_off)) => claims.push(Claim::new(
            "Without scatter-gather there is no TSO: the interface sends the file as many more, smaller packets",
            p_off > 5 * p_on,
            format!("packets the sending interface sent: {p_on} with SG, {p_off} without (the kernel's net_dev_xmit count)"),
        )),
        _ => notes.push("the kernel's count of packets sent needs --trace (and its tracepoints)".into()),
    }
    claims.push(Claim::new(
        "Without scatter-gather the sender spends more system CPU (it copies each packet into one buffer)",
        off.sender.cpu_sys_s > on.sender.cpu_sys_s,
        format!(
            "sender sys {:.3} s without SG, {:.3} s with (a speed claim: noisy here)",
            off.sender.cpu_sys_s, on.sender.cpu_sys_s
        ),
    ));
    let layout = xdp.af_xdp.as_ref().map(|x| x.path.frame_layout.clone()).unwrap_or_default();
    claims.push(Claim::new(
        "af-xdp does the gather by hand: a header descriptor and payload descriptors per packet",
        layout.contains("descriptors per packet") && layout.contains("header frame"),
        format!("af-xdp frame layout: {layout}"),
    ));
    Ok(Findings {
        lesson: 4,
        assignment: false,
        title: LESSON.title.into(),
        file_bytes: lab.size,
        experiments: vec![Experiment {
            name: format!("sendfile with the sending veth's scatter-gather on, then off (ethtool -K {iface} sg off)"),
            columns: ["sendfile", "SG", "TSO", "packets sent", "bytes/packet", "snd sys s", "CPU s/GiB", "Gbit/s"]
                .map(String::from)
                .to_vec(),
            rows: vec![row("SG on", &on, &before), row("SG off", &off, &features_off)],
            chart: None,
            label_columns: 1,
            under: None,
        }],
        claims,
        notes,
    })
}
