//! Reports: what each end prints, and the merged result of `zclab run`.
//!
//! The JSON field names are a stable schema: later versions add fields,
//! they never rename these.

use crate::metrics::{PacketStats, ProcessCost, ZerocopyStats};
use crate::trace::{KernelCounters, KernelRun, UNSEEN_COPIES};
use crate::transfer::af_xdp::Knobs;
use crate::transfer::mode::{Via, ZerocopyReceive};
use crate::transfer::Mode;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// What `zclab send` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendReport {
    pub mode: Mode,
    pub bytes: u64,
    /// Bytes the receiver confirmed before the clock stopped.
    pub bytes_confirmed: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    pub verified: bool,
    pub hash: String,
    pub peer_hash: Option<String>,
    pub hash_seconds: f64,
    /// Bytes per data-path call (TCP) or payload bytes per packet (packet paths).
    pub chunk_bytes: u64,
    /// The route's MTU (packet paths).
    pub mtu: Option<u32>,
    /// Packet counts (packet paths).
    pub packets: Option<PacketStats>,
    /// The AF_XDP sender's view (af-xdp).
    pub af_xdp: Option<AfXdpTx>,
    pub cost: ProcessCost,
    pub source_cached_before_bytes: u64,
    pub source_cached_after_bytes: u64,
    pub zerocopy: Option<ZerocopyStats>,
    pub reason: Option<String>,
    /// The kernel's counters for the timed part (`--trace`), else null.
    #[serde(default)]
    pub kernel: Option<KernelCounters>,
    /// Busy seconds of all CPUs during the timed part (/proc/stat, 10 ms ticks), whichever process they went to.
    #[serde(default)]
    pub all_cpu_s: Option<f64>,
    /// The CPU this end was pinned to (`--cpu`), if it was.
    #[serde(default)]
    pub cpu: Option<usize>,
    /// The data interface's own packet and byte counts over the timed part (`ip -s link`).
    #[serde(default)]
    pub iface: Option<crate::route::IfaceCounts>,
}

/// What `zclab recv` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecvReport {
    pub mode: Mode,
    pub bytes: u64,
    pub expected_bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    pub verified: bool,
    pub hash: String,
    pub expected_hash: Option<String>,
    pub hash_seconds: f64,
    pub cost: ProcessCost,
    /// Where the verified file is (None when it did not verify).
    pub out: Option<String>,
    /// Packet counts (packet paths).
    pub packets: Option<RxPackets>,
    /// The AF_XDP receiver's view (af-xdp).
    pub af_xdp: Option<AfXdpRx>,
    pub reason: Option<String>,
    /// The kernel's counters for the timed part (`--trace`), else null.
    #[serde(default)]
    pub kernel: Option<KernelCounters>,
    /// How the TCP receiver took the data off the socket (`--via`); null for packet paths.
    #[serde(default)]
    pub via: Option<Via>,
    /// What TCP_ZEROCOPY_RECEIVE mapped and copied (`--via mmap`).
    #[serde(default)]
    pub zerocopy_receive: Option<ZerocopyReceive>,
    /// The CPU this end was pinned to (`--cpu`), if it was.
    #[serde(default)]
    pub cpu: Option<usize>,
    /// The data interface's own packet and byte counts over the timed part (`ip -s link`).
    #[serde(default)]
    pub iface: Option<crate::route::IfaceCounts>,
    /// `--direct`: what went by O_DIRECT and what through the page cache; null when not asked.
    #[serde(default)]
    pub direct: Option<DirectWrites>,
    /// The output file's bytes in the page cache (mincore): before Ready,
    /// and when the command ends (after the hash).
    #[serde(default)]
    pub out_cached_before_bytes: Option<u64>,
    #[serde(default)]
    pub out_cached_after_bytes: Option<u64>,
}

/// How the receiver wrote the payloads when asked for `--direct`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectWrites {
    /// O_DIRECT was used (else every payload went through the page cache, for `why_not`).
    pub used: bool,
    pub why_not: Option<String>,
    /// The O_DIRECT unit (address, offset and length multiples of it).
    pub unit: u64,
    /// Payloads written with O_DIRECT straight from the UMEM, and the calls.
    pub direct_packets: u64,
    pub direct_bytes: u64,
    pub direct_calls: u64,
    /// Bytes past the end written to round the last payload up to a unit (cut off again).
    pub padded_tail_bytes: u64,
    /// Payloads written through the page cache: not on unit boundaries, or in several frames.
    pub unaligned_packets: u64,
    pub unaligned_bytes: u64,
    pub multi_frame_packets: u64,
    pub multi_frame_bytes: u64,
}

impl DirectWrites {
    /// Asked for and not used, for `why`.
    pub fn not_used(why: String) -> DirectWrites {
        DirectWrites { why_not: Some(why), ..DirectWrites::default() }
    }
}

/// What the AF_XDP sender reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AfXdpTx {
    pub iface: String,
    /// "copy" or "zerocopy": what the socket really got (XDP_OPTIONS).
    pub bind_mode: String,
    #[serde(flatten)]
    pub path: TxPath,
    /// Need-wakeup, busy polling, TX budget, as set.
    #[serde(default)]
    pub knobs: Knobs,
    /// TX kicks made, and left out because the kernel did not ask (need-wakeup).
    #[serde(default)]
    pub kicks: u64,
    #[serde(default)]
    pub kicks_skipped: u64,
    /// Packets put on each queue's TX ring (`--queues`).
    #[serde(default)]
    pub queues: Vec<QueuePackets>,
    /// The queues' sockets shared one UMEM (`--shared-umem`).
    #[serde(default)]
    pub shared_umem: bool,
}

/// Packets one queue's AF_XDP socket handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePackets {
    pub queue: u32,
    pub packets: u64,
    /// The sender: the UDP source port of this queue's flow (each queue its own, so that a
    /// real NIC's RSS, hashing addresses and ports, can spread the flows over its queues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
}

/// How the sender framed the file, and what the kernel refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TxPath {
    pub mtu: u32,
    /// `--frame-layout`: split (header frame + payload) or contiguous (one descriptor).
    #[serde(default)]
    pub layout: crate::transfer::af_xdp::FrameLayout,
    /// File bytes per packet.
    #[serde(default)]
    pub payload: u32,
    /// How a packet is laid out in descriptors.
    pub frame_layout: String,
    /// Descriptors the kernel refused (XDP_STATISTICS tx_invalid_descs).
    pub tx_invalid: u64,
    /// The file was read with O_DIRECT (page cache bypassed).
    pub o_direct: bool,
    /// The next hop the frames were addressed to, and where its MAC came from.
    pub next_hop: String,
}

/// The XDP program on the receiving interface.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct XdpProgramInfo {
    /// "native" or "generic": where the XDP program runs.
    pub attach_mode: String,
    /// "xdp" or "xdp.frags" (multi-buffer aware, for MTUs above 3506).
    pub program: String,
}

/// Packets the receiving socket lost (XDP_STATISTICS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RxDrops {
    pub rx_dropped: u64,
    /// The RX ring was full: user space did not keep up.
    pub rx_ring_full: u64,
    /// The fill ring was empty: no frame to receive into.
    pub fill_ring_empty: u64,
}

/// What the AF_XDP receiver reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AfXdpRx {
    pub iface: String,
    /// "copy" or "zerocopy": what the socket really got.
    pub bind_mode: String,
    #[serde(flatten)]
    pub program: XdpProgramInfo,
    #[serde(flatten)]
    pub drops: RxDrops,
    /// Descriptors the kernel found invalid, and addresses it handed back that it was not holding.
    pub rx_invalid_descs: u64,
    /// Need-wakeup and busy polling, as set.
    #[serde(default)]
    pub knobs: Knobs,
    /// Whole packets each queue's socket received.
    #[serde(default)]
    pub queues: Vec<QueuePackets>,
    /// The queues' sockets shared one UMEM (`--shared-umem`).
    #[serde(default)]
    pub shared_umem: bool,
    /// Lab packets the XDP program saw on queues with no socket, by queue (passed on to the
    /// kernel stack, which drops them).
    #[serde(default)]
    pub unserved: Vec<QueuePackets>,
}

/// The af-xdp part of a merged report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AfXdpRun {
    /// The sender socket's mode ("copy" on veth, "zerocopy" on a capable NIC).
    pub bind_mode: String,
    pub receiver_bind_mode: String,
    #[serde(flatten)]
    pub program: XdpProgramInfo,
    #[serde(flatten)]
    pub path: TxPath,
    #[serde(flatten)]
    pub drops: RxDrops,
    /// Each end's need-wakeup, busy polling and TX budget.
    #[serde(default)]
    pub sender_knobs: Knobs,
    #[serde(default)]
    pub receiver_knobs: Knobs,
    /// The sender's TX kicks, and those need-wakeup left out.
    #[serde(default)]
    pub kicks: u64,
    #[serde(default)]
    pub kicks_skipped: u64,
    /// Packets per queue, on each end (`--queues`).
    #[serde(default)]
    pub sender_queues: Vec<QueuePackets>,
    #[serde(default)]
    pub receiver_queues: Vec<QueuePackets>,
    /// Lab packets that arrived on receiving queues with no socket.
    #[serde(default)]
    pub receiver_unserved: Vec<QueuePackets>,
    /// Each end's queues shared one UMEM.
    #[serde(default)]
    pub sender_shared_umem: bool,
    #[serde(default)]
    pub receiver_shared_umem: bool,
}

/// What a packet path's receiver counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RxPackets {
    /// Packets checked and written.
    pub accepted: u64,
    /// Packets that arrived twice (a retransmission raced the original).
    pub duplicates: u64,
    /// Malformed, foreign or out-of-range packets: counted, dropped, never written.
    pub invalid: u64,
    /// Dropped on purpose (`recv --inject-loss`).
    #[serde(default)]
    pub injected_losses: u64,
    pub rounds: u32,
}

/// Seconds each side spent hashing (outside the timed transfer).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HashSeconds {
    pub sender: f64,
    pub receiver: f64,
}

/// The merged result of `zclab run`: one transfer, both ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub mode: Mode,
    pub bytes: u64,
    /// From the sender's Hello to the receiver's confirmation of the last byte.
    pub seconds: f64,
    pub gbit_per_s: f64,
    pub verified: bool,
    pub hash: String,
    pub sender: ProcessCost,
    pub receiver: ProcessCost,
    pub source_cached_before_bytes: u64,
    pub source_cached_after_bytes: u64,
    pub zerocopy: Option<ZerocopyStats>,
    pub packets: Option<u64>,
    pub packets_per_s: Option<f64>,
    pub retransmitted_packets: Option<u64>,
    pub sender_hash: String,
    pub receiver_hash: String,
    pub hash_seconds: HashSeconds,
    pub chunk_bytes: u64,
    /// Rounds of the packet paths (1 when nothing was lost).
    pub rounds: Option<u32>,
    /// Packets the receiver dropped as malformed, foreign or out of range.
    pub invalid_packets: Option<u64>,
    pub duplicate_packets: Option<u64>,
    pub mtu: Option<u32>,
    /// AF_XDP details (af-xdp only).
    pub af_xdp: Option<AfXdpRun>,
    /// Why it did not verify (None when it did).
    pub reason: Option<String>,
    /// Both ends' kernel counters (`--trace`), else null.
    #[serde(default)]
    pub kernel: Option<KernelRun>,
    /// Busy seconds of all CPUs during the timed part (/proc/stat, 10 ms ticks).
    #[serde(default)]
    pub all_cpu_s: Option<f64>,
    /// How the TCP receiver took the data off the socket (`--via`); null for packet paths.
    #[serde(default)]
    pub receive_via: Option<Via>,
    /// What TCP_ZEROCOPY_RECEIVE mapped and copied (`--via mmap`).
    #[serde(default)]
    pub zerocopy_receive: Option<ZerocopyReceive>,
    /// The CPUs the sender and the receiver were pinned to (`run --pin`), if they were.
    #[serde(default)]
    pub sender_cpu: Option<usize>,
    #[serde(default)]
    pub receiver_cpu: Option<usize>,
    /// The copies the run must have made per byte of the file, inferred from the facts above,
    /// each with its rule (beside the kernel's `copies_per_byte` seen by the tracepoints).
    #[serde(default)]
    pub inferred_copies: Option<crate::copies::InferredCopies>,
    /// Each end's data interface, counted by the interface itself over the timed part.
    #[serde(default)]
    pub sender_iface: Option<crate::route::IfaceCounts>,
    #[serde(default)]
    pub receiver_iface: Option<crate::route::IfaceCounts>,
    /// The receiver's `--direct` writes; null when not asked for.
    #[serde(default)]
    pub direct: Option<DirectWrites>,
    /// The received file's bytes in the receiver's page cache (mincore): before Ready, and
    /// when the receiver ended (after its hash).
    #[serde(default)]
    pub out_cached_before_bytes: Option<u64>,
    #[serde(default)]
    pub out_cached_after_bytes: Option<u64>,
}

impl RunReport {
    /// Merges both ends' reports; verified only if both sides agree.
    pub fn merge(s: &SendReport, r: &RecvReport) -> RunReport {
        let mut reason = r.reason.clone().or_else(|| s.reason.clone());
        if reason.is_none() && s.hash != r.hash {
            reason = Some(format!("sender hash {} differs from receiver hash {}", s.hash, r.hash));
        }
        if reason.is_none() && s.bytes != r.bytes {
            reason = Some(format!("sender sent {} bytes, receiver wrote {}", s.bytes, r.bytes));
        }
        if reason.is_none() && !(s.verified && r.verified) {
            reason = Some("one side did not verify".into());
        }
        let mut run = RunReport {
            mode: s.mode,
            bytes: s.bytes,
            seconds: s.seconds,
            gbit_per_s: s.gbit_per_s,
            verified: reason.is_none(),
            hash: s.hash.clone(),
            sender: s.cost.clone(),
            receiver: r.cost.clone(),
            source_cached_before_bytes: s.source_cached_before_bytes,
            source_cached_after_bytes: s.source_cached_after_bytes,
            zerocopy: s.zerocopy.clone(),
            packets: s.packets.as_ref().map(|p| p.packets),
            packets_per_s: s.packets.as_ref().map(|p| if s.seconds > 0.0 { p.packets as f64 / s.seconds } else { 0.0 }),
            retransmitted_packets: s.packets.as_ref().map(|p| p.retransmitted),
            sender_hash: s.hash.clone(),
            receiver_hash: r.hash.clone(),
            hash_seconds: HashSeconds { sender: s.hash_seconds, receiver: r.hash_seconds },
            chunk_bytes: s.chunk_bytes,
            rounds: s.packets.as_ref().map(|p| p.rounds),
            invalid_packets: r.packets.as_ref().map(|p| p.invalid),
            duplicate_packets: r.packets.as_ref().map(|p| p.duplicates),
            mtu: s.mtu,
            af_xdp: match (&s.af_xdp, &r.af_xdp) {
                (Some(t), Some(x)) => Some(AfXdpRun {
                    bind_mode: t.bind_mode.clone(),
                    receiver_bind_mode: x.bind_mode.clone(),
                    program: x.program.clone(),
                    path: t.path.clone(),
                    drops: x.drops.clone(),
                    sender_knobs: t.knobs,
                    receiver_knobs: x.knobs,
                    kicks: t.kicks,
                    kicks_skipped: t.kicks_skipped,
                    sender_queues: t.queues.clone(),
                    receiver_queues: x.queues.clone(),
                    receiver_unserved: x.unserved.clone(),
                    sender_shared_umem: t.shared_umem,
                    receiver_shared_umem: x.shared_umem,
                }),
                _ => None,
            },
            reason,
            kernel: (s.kernel.is_some() || r.kernel.is_some())
                .then(|| KernelRun { sender: s.kernel.clone(), receiver: r.kernel.clone() }),
            all_cpu_s: s.all_cpu_s,
            receive_via: r.via,
            zerocopy_receive: r.zerocopy_receive,
            sender_cpu: s.cpu,
            receiver_cpu: r.cpu,
            inferred_copies: None,
            sender_iface: s.iface.clone(),
            receiver_iface: r.iface.clone(),
            direct: r.direct.clone(),
            out_cached_before_bytes: r.out_cached_before_bytes,
            out_cached_after_bytes: r.out_cached_after_bytes,
        };
        run.inferred_copies = crate::copies::infer(&run);
        run
    }

    /// CPU seconds both ends spent per GiB moved.
    pub fn cpu_s_per_gib(&self) -> f64 {
        let cpu = self.sender.cpu_user_s + self.sender.cpu_sys_s + self.receiver.cpu_user_s + self.receiver.cpu_sys_s;
        if self.bytes == 0 {
            0.0
        } else {
            cpu / (self.bytes as f64 / (1u64 << 30) as f64)
        }
    }
}

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
        let _ = writeln!(s, "copies    inferred: {}", crate::copies::summary(c));
        for st in &c.steps {
            let _ = writeln!(s, "            {} {}: {}", st.side, st.what, st.rule);
        }
    }
    if let (Some(p), Some(pps)) = (r.packets, r.packets_per_s) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn send(hash: &str, bytes: u64) -> SendReport {
        SendReport {
            mode: Mode::Sendfile,
            bytes,
            bytes_confirmed: bytes,
            seconds: 1.0,
            gbit_per_s: 8.0 * bytes as f64 / 1e9,
            verified: true,
            hash: hash.into(),
            peer_hash: Some(hash.into()),
            hash_seconds: 0.1,
            chunk_bytes: 131072,
            mtu: None,
            packets: None,
            af_xdp: None,
            cost: ProcessCost { cpu_sys_s: 0.5, ..Default::default() },
            source_cached_before_bytes: bytes,
            source_cached_after_bytes: bytes,
            zerocopy: None,
            reason: None,
            kernel: None,
            all_cpu_s: None,
            cpu: None,
            iface: None,
        }
    }

    fn recv(hash: &str, bytes: u64) -> RecvReport {
        RecvReport {
            mode: Mode::Sendfile,
            bytes,
            expected_bytes: bytes,
            seconds: 1.0,
            gbit_per_s: 0.0,
            verified: true,
            hash: hash.into(),
            expected_hash: Some(hash.into()),
            hash_seconds: 0.1,
            cost: ProcessCost { cpu_sys_s: 0.5, ..Default::default() },
            out: None,
            packets: None,
            af_xdp: None,
            reason: None,
            kernel: None,
            via: None,
            zerocopy_receive: None,
            cpu: None,
            iface: None,
            direct: None,
            out_cached_before_bytes: None,
            out_cached_after_bytes: None,
        }
    }

    #[test]
    fn the_table_lines_up_and_shows_kernel_copies_only_when_traced() {
        let plain = RunReport::merge(&send("aa", 1000), &recv("aa", 1000));
        let t = compare_table(std::slice::from_ref(&plain));
        assert!(!t.contains("kcopies/B"), "{t}");
        let widths: Vec<usize> = t.lines().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "every row as wide as the header: {t}");
        assert!(t.contains("| sendfile     |"), "the mode is padded to its column: {t}");

        let k = |copied| KernelCounters {
            tcp_sent_copied_bytes: Some(copied),
            other_sent_bytes: Some(0),
            copied_to_user_bytes: Some(0),
            ..KernelCounters::default()
        };
        let (mut s, mut r) = (send("aa", 1000), recv("aa", 1000));
        s.kernel = Some(k(1000));
        r.kernel = Some(k(500));
        let traced = RunReport::merge(&s, &r);
        let t = compare_table(&[traced, plain]);
        let rows: Vec<&str> = t.lines().take(4).collect();
        assert!(rows[0].ends_with("kcopies/B |"), "{t}");
        assert!(rows[2].ends_with("1.50 |"), "1000 + 500 bytes copied for 1000: {t}");
        assert!(rows[3].ends_with("n/a |"), "a run without --trace shows no number: {t}");
        assert!(rows.iter().all(|l| l.chars().count() == rows[0].chars().count()), "{t}");
        assert!(t.contains("skb_pp_cow_data"), "the footnote names what is not seen: {t}");
    }

    #[test]
    fn merge_verifies_only_when_both_agree() {
        let gib = 1u64 << 30;
        let ok = RunReport::merge(&send("aa", gib), &recv("aa", gib));
        assert!(ok.verified);
        assert!((ok.cpu_s_per_gib() - 1.0).abs() < 1e-9);
        assert!(!RunReport::merge(&send("aa", 5), &recv("bb", 5)).verified);
        assert!(!RunReport::merge(&send("aa", 5), &recv("aa", 4)).verified);
        let mut r = recv("aa", 5);
        r.verified = false;
        r.reason = Some("x".into());
        let bad = RunReport::merge(&send("aa", 5), &r);
        assert!(!bad.verified);
        assert!(run_text(&bad).contains("NOT VERIFIED: x"));
    }

    #[test]
    fn schema_keeps_its_field_names() {
        let v = serde_json::to_value(RunReport::merge(&send("aa", 5), &recv("aa", 5))).unwrap();
        for k in [
            "mode",
            "bytes",
            "seconds",
            "gbit_per_s",
            "verified",
            "hash",
            "sender",
            "receiver",
            "source_cached_before_bytes",
            "source_cached_after_bytes",
            "zerocopy",
            "packets",
            "packets_per_s",
            "retransmitted_packets",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        for k in ["cpu_user_s", "cpu_sys_s", "syscalls", "voluntary_ctx_switches", "involuntary_ctx_switches"] {
            assert!(v["sender"].get(k).is_some() && v["receiver"].get(k).is_some(), "missing {k}");
        }
        assert!(v["packets"].is_null() && v["zerocopy"].is_null());
    }

    #[test]
    fn human_bytes_picks_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(256 << 20), "256.0 MiB");
    }
}
