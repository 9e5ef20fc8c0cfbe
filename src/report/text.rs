//! How reports print for a person: each end's report, the merged run, the
//! kernel's counters, and the comparison table of several runs.

use super::{DirectWrites, InferredCopies, RecvReport, RunReport, SendReport};
use crate::metrics::{ProcessCost, ZerocopyStats};
use crate::trace::{KernelCounters, KernelRun, UNSEEN_COPIES};
use std::fmt::Write as _;

/// Bytes in the largest unit that keeps them readable.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn cost_line(name: &str, c: &ProcessCost) -> String {
    format!(
        "{name:<9} user {:.3} s, sys {:.3} s, {} syscalls, {} voluntary / {} involuntary context switches\n",
        c.cpu_user_s, c.cpu_sys_s, c.syscalls, c.voluntary_ctx_switches, c.involuntary_ctx_switches
    )
}

fn zc_line(z: &Option<ZerocopyStats>) -> String {
    match z {
        None => "zero copy: not requested by this path\n".into(),
        Some(z) => format!(
            "zero copy: {} sends, {} completions, {} flagged COPIED by the kernel{}\n",
            z.sends,
            z.completions,
            z.copied,
            if z.copied > 0 && z.copied == z.completions { " (it copied after all)" } else { "" }
        ),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

fn reasons(m: &std::collections::BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(" ({})", parts.join(", "))
}

/// The kernel's counters of one end, as text (`--trace`).
pub fn kernel_text(side: &str, k: &KernelCounters) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "kernel    {side}: socket sent {} B in {} calls (TCP copied {} B, page refs {} B, zero copy {} B; other sockets {} B), \
         received {} B in {} calls; copied to user {} B in {} calls",
        opt(k.socket_sent_bytes),
        opt(k.socket_send_calls),
        opt(k.tcp_sent_copied_bytes),
        opt(k.tcp_sent_page_ref_bytes),
        opt(k.tcp_sent_zerocopy_bytes),
        opt(k.other_sent_bytes),
        opt(k.socket_received_bytes),
        opt(k.socket_receive_calls),
        opt(k.copied_to_user_bytes),
        opt(k.copied_to_user_calls),
    );
    let _ = writeln!(
        s,
        "          {side}: page cache +{} pages ({} of the transfer's file), {} file faults; net_dev_xmit saw {} packets sent, netif_receive_skb {} taken in (AF_XDP's sends and XDP-redirected packets pass neither: the interfaces' own counts are on the devices line); NAPI {} polls \
         ({} packets); XDP {} redirects, {} failed, {} exceptions; TCP {} retransmits",
        opt(k.page_cache_pages_added),
        opt(k.file_pages_added),
        opt(k.file_page_faults),
        opt(k.dev_xmit_packets),
        opt(k.dev_received_packets),
        opt(k.napi_polls),
        opt(k.napi_work),
        opt(k.xdp_redirects),
        opt(k.xdp_redirect_errors),
        opt(k.xdp_exceptions),
        opt(k.tcp_retransmits),
    );
    let _ = writeln!(
        s,
        "          {side}: drops here {}{}; the transfer's packets dropped anywhere {}{}",
        opt(k.drops),
        reasons(&k.drops_by_reason),
        opt(k.transfer_drops),
        reasons(&k.transfer_drops_by_reason)
    );
    for m in &k.missing {
        let _ = writeln!(s, "          {side}: not measured: {m}");
    }
    s
}

fn kernel_run_text(k: &KernelRun, bytes: u64) -> String {
    let mut s = String::new();
    for (side, c) in [("sender", &k.sender), ("receiver", &k.receiver)] {
        match c {
            Some(c) => s += &kernel_text(side, c),
            None => s += &format!("kernel    {side}: not traced\n"),
        }
    }
    match k.copies_per_byte(bytes) {
        Some(x) => {
            let _ = writeln!(s, "kernel    copies seen: {x:.2} bytes copied per byte of file (both ends; {UNSEEN_COPIES})");
        }
        None => s += "kernel    copies seen: n/a (a counter it needs was not measured)\n",
    }
    s
}

/// The human-readable form of one run.
pub fn run_text(r: &RunReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "mode      {}", r.mode);
    let _ =
        writeln!(s, "moved     {} ({} bytes) in {:.3} s = {:.2} Gbit/s", human_bytes(r.bytes), r.bytes, r.seconds, r.gbit_per_s);
    s += &cost_line("sender", &r.sender);
    s += &cost_line("receiver", &r.receiver);
    let _ = writeln!(s, "cpu       {:.3} s per GiB (both ends, user + sys)", r.cpu_s_per_gib());
    let _ = writeln!(
        s,
        "cache     source file in page cache: {} before, {} after (when the sender ended)",
        human_bytes(r.source_cached_before_bytes),
        human_bytes(r.source_cached_after_bytes)
    );
    s += &received_cache_text(
        "          ",
        r.out_cached_before_bytes,
        r.out_cached_after_bytes,
        "when the receiver ended",
        &r.direct,
    );
    s += &zc_line(&r.zerocopy);
    for (side, i) in [("sender", &r.sender_iface), ("receiver", &r.receiver_iface)] {
        if let Some(i) = i {
            let _ = writeln!(
                s,
                "devices   {side} {}: sent {} packets ({}), took in {} ({}) during the transfer, as the interface counts them",
                i.iface,
                i.counts.tx_packets,
                human_bytes(i.counts.tx_bytes),
                i.counts.rx_packets,
                human_bytes(i.counts.rx_bytes)
            );
        }
    }
    if let Some(c) = &r.inferred_copies {
        let _ = writeln!(s, "copies    inferred: {}", c.summary());
        for st in &c.steps {
            let _ = writeln!(s, "            {} {}: {}", st.side, st.what, st.rule);
        }
    }
    if let Some(t) = &r.af_xdp_tcp {
        s += &tcp_lines(t);
    } else if let (Some(p), Some(pps)) = (r.packets, r.packets_per_s) {
        let _ = writeln!(
            s,
            "packets   {p} sent ({:.0} k/s, MTU {}), {} resent in {} rounds; receiver dropped {} invalid, skipped {} duplicates",
            pps / 1e3,
            r.mtu.unwrap_or(0),
            r.retransmitted_packets.unwrap_or(0),
            r.rounds.unwrap_or(0),
            r.invalid_packets.unwrap_or(0),
            r.duplicate_packets.unwrap_or(0)
        );
    }
    if let Some(x) = &r.af_xdp {
        let _ = writeln!(
            s,
            "af_xdp    sender {} mode, receiver {} mode, XDP program {} ({}); {}; O_DIRECT {}",
            x.bind_mode,
            x.receiver_bind_mode,
            x.program.program,
            x.program.attach_mode,
            x.path.frame_layout,
            if x.path.o_direct { "yes" } else { "NO (filesystem without direct I/O)" }
        );
        let _ = writeln!(
            s,
            "          next hop {}; tx_invalid {}, rx_dropped {}, rx_ring_full {}, fill_ring_empty {}",
            x.path.next_hop, x.path.tx_invalid, x.drops.rx_dropped, x.drops.rx_ring_full, x.drops.fill_ring_empty
        );
    }
    if let Some(k) = &r.kernel {
        s += &kernel_run_text(k, r.bytes);
    }
    let _ = writeln!(
        s,
        "hash      blake3 {} (hashing took {:.3} s sender, {:.3} s receiver; not timed)",
        r.hash, r.hash_seconds.sender, r.hash_seconds.receiver
    );
    match &r.reason {
        None => s += "VERIFIED  sizes and hashes match\n",
        Some(why) => {
            let _ = writeln!(s, "!!! NOT VERIFIED: {why}");
        }
    }
    s
}

/// The human-readable form of one end's report.
pub fn send_text(r: &SendReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sent      {} ({} bytes) by {} in {:.3} s = {:.2} Gbit/s",
        human_bytes(r.bytes),
        r.bytes,
        r.mode,
        r.seconds,
        r.gbit_per_s
    );
    s += &cost_line("sender", &r.cost);
    let _ = writeln!(
        s,
        "cache     {} before, {} after",
        human_bytes(r.source_cached_before_bytes),
        human_bytes(r.source_cached_after_bytes)
    );
    s += &zc_line(&r.zerocopy);
    if let Some(p) = &r.packets {
        let _ = writeln!(
            s,
            "packets   {} sent, {} resent, {} rounds (MTU {})",
            p.packets,
            p.retransmitted,
            p.rounds,
            r.mtu.unwrap_or(0)
        );
    }
    if let Some(t) = &r.af_xdp_tcp {
        s += &tcp_lines(t);
    }
    if let Some(x) = &r.af_xdp {
        let _ = writeln!(
            s,
            "af_xdp    {} on {} ({} mode); O_DIRECT {}; next hop {}",
            x.path.frame_layout, x.iface, x.bind_mode, x.path.o_direct, x.path.next_hop
        );
    }
    if let Some(k) = &r.kernel {
        s += &kernel_text("sender", k);
    }
    let _ = writeln!(s, "hash      blake3 {}", r.hash);
    s += &verdict_line(&r.reason);
    s
}

/// zclab's own TCP's lines (af-xdp-tcp), under a "tcp" lead.
fn tcp_lines(t: &super::AfXdpTcpTx) -> String {
    let mut s = format!(
        "tcp       zclab's own TCP on {} ({}, XDP program {}); file read with O_DIRECT: {}\n",
        t.iface,
        if t.zerocopy { "zero copy" } else { "copy mode" },
        t.xdp_mode,
        if t.o_direct { "yes" } else { "NO (filesystem without direct I/O)" }
    );
    for l in t.text().lines() {
        let _ = writeln!(s, "        {l}");
    }
    s
}

pub fn recv_text(r: &RecvReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "received  {} of {} bytes by {} in {:.3} s = {:.2} Gbit/s",
        r.bytes, r.expected_bytes, r.mode, r.seconds, r.gbit_per_s
    );
    s += &cost_line("receiver", &r.cost);
    if let Some(p) = &r.packets {
        let _ = writeln!(
            s,
            "packets   {} accepted, {} duplicates, {} invalid (dropped unwritten), {} dropped by --inject-loss, {} rounds",
            p.accepted, p.duplicates, p.invalid, p.injected_losses, p.rounds
        );
    }
    if let Some(x) = &r.af_xdp {
        let _ = writeln!(
            s,
            "af_xdp    {} {} mode, program {} ({}); rx_dropped {}, rx_ring_full {}, fill_ring_empty {}",
            x.iface,
            x.bind_mode,
            x.program.program,
            x.program.attach_mode,
            x.drops.rx_dropped,
            x.drops.rx_ring_full,
            x.drops.fill_ring_empty
        );
    }
    s += &received_cache_text("cache     ", r.out_cached_before_bytes, r.out_cached_after_bytes, "after the hash", &r.direct);
    if let Some(k) = &r.kernel {
        s += &kernel_text("receiver", k);
    }
    let _ = writeln!(s, "hash      blake3 {}", r.hash);
    if let Some(out) = &r.out {
        let _ = writeln!(s, "written   {out}");
    }
    s += &verdict_line(&r.reason);
    s
}

/// The received file's page cache, and the `--direct` lines if asked for.
fn received_cache_text(lead: &str, before: Option<u64>, after: Option<u64>, when: &str, direct: &Option<DirectWrites>) -> String {
    let mut s = String::new();
    if let Some(after) = after {
        let before = before.map_or("?".into(), human_bytes);
        let _ = writeln!(s, "{lead}received file in page cache: {before} before, {} after ({when})", human_bytes(after));
    }
    if let Some(d) = direct {
        s += &direct_text(d);
    }
    s
}

/// The `--direct` line: what went by O_DIRECT, what through the page cache and why.
fn direct_text(d: &DirectWrites) -> String {
    let mut s = String::new();
    if !d.used {
        let _ = writeln!(s, "direct    not used: {}", d.why_not.as_deref().unwrap_or("not asked for"));
        return s;
    }
    let _ = writeln!(
        s,
        "direct    {} payloads ({}) written with O_DIRECT straight from the UMEM in {} calls ({}-byte units{})",
        d.direct_packets,
        human_bytes(d.direct_bytes),
        d.direct_calls,
        d.unit,
        if d.padded_tail_bytes > 0 {
            format!("; the last one rounded up by {} bytes and the file cut back", d.padded_tail_bytes)
        } else {
            String::new()
        }
    );
    if d.unaligned_packets + d.multi_frame_packets > 0 {
        let _ = writeln!(
            s,
            "          through the page cache: {} off a {}-byte boundary ({}), {} in several frames ({})",
            d.unaligned_packets,
            d.unit,
            human_bytes(d.unaligned_bytes),
            d.multi_frame_packets,
            human_bytes(d.multi_frame_bytes)
        );
    }
    s
}

fn verdict_line(reason: &Option<String>) -> String {
    match reason {
        None => "VERIFIED  sizes and hashes match\n".into(),
        Some(why) => format!("!!! NOT VERIFIED: {why}\n"),
    }
}

/// The side-by-side table of several runs (`zclab compare`, the demo).
pub fn compare_table(runs: &[RunReport]) -> String {
    let traced = runs.iter().any(|r| r.kernel.is_some());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| {:<12} | {:>8} | {:>7} | {:>9} | {:>9} | {:>11} | {:>8} | {:>9} | {:>13} | {:>11} | {:<8} |",
        "mode",
        "Gbit/s",
        "seconds",
        "snd sys s",
        "rcv sys s",
        "CPU s / GiB",
        "syscalls",
        "ctx sw",
        "cached before",
        "zc copied",
        "verified"
    );
    if traced {
        s.insert_str(s.len() - 1, &format!(" {:>9} |", "kcopies/B"));
    }
    let _ = writeln!(
        s,
        "|{:-<14}|{:->10}|{:->9}|{:->11}|{:->11}|{:->13}|{:->10}|{:->11}|{:->15}|{:->13}|{:-<10}|",
        "", "", "", "", "", "", "", "", "", "", ""
    );
    if traced {
        s.insert_str(s.len() - 1, &format!("{:->11}|", ""));
    }
    for r in runs {
        let zc = match &r.zerocopy {
            None => "-".to_string(),
            Some(z) => format!("{}/{}", z.copied, z.completions),
        };
        let _ = writeln!(
            s,
            "| {:<12} | {:>8.2} | {:>7.3} | {:>9.3} | {:>9.3} | {:>11.3} | {:>8} | {:>9} | {:>13} | {:>11} | {:<8} |",
            r.mode,
            r.gbit_per_s,
            r.seconds,
            r.sender.cpu_sys_s,
            r.receiver.cpu_sys_s,
            r.cpu_s_per_gib(),
            r.sender.syscalls,
            r.sender.voluntary_ctx_switches + r.sender.involuntary_ctx_switches,
            human_bytes(r.source_cached_before_bytes),
            zc,
            if r.verified { "yes" } else { "NO" }
        );
        if traced {
            let k = r.kernel.as_ref().and_then(|k| k.copies_per_byte(r.bytes));
            let cell = k.map_or_else(|| "n/a".to_string(), |x| format!("{x:.2}"));
            s.insert_str(s.len() - 1, &format!(" {cell:>9} |"));
        }
    }
    if traced {
        let _ = writeln!(
            s,
            "\nkcopies/B: bytes the kernel was seen to copy (user memory into a send, socket buffers into user \
             memory) per byte of file, both ends (`--trace`). Copies {UNSEEN_COPIES}."
        );
    }
    s
}

impl InferredCopies {
    /// "3.00 per byte (UMEM -> skb 1, skb -> page-pool page 1, ...)".
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self.steps.iter().map(|s| format!("{} {}", s.what, trim(s.per_byte))).collect();
        format!("{:.2} per byte ({})", self.per_byte, if parts.is_empty() { "none".into() } else { parts.join(", ") })
    }
}

fn trim(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}
