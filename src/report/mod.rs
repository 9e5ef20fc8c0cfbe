//! Reports: what each end prints, and the merged result of `zclab run`.
//!
//! The JSON field names are a stable schema: later versions add fields,
//! they never rename these. This file holds what a report is: each end's
//! report, the merged one, and the copies a run must have made (filled in by
//! `copies`, which reads the merged report). `af_xdp.rs` holds the AF_XDP
//! parts of them, `text.rs` how they print for a person.

mod af_xdp;
mod tcp;
mod text;

pub use af_xdp::{AfXdpRun, AfXdpRx, AfXdpTx, DirectWrites, QueuePackets, RxDrops, TxPath, XdpProgramInfo};
pub use tcp::{AfXdpTcpRx, AfXdpTcpTx, ChecksumCounts, TimelinePoint};
pub use text::{compare_table, human_bytes, kernel_text, recv_text, run_text, send_text};

use crate::metrics::{PacketStats, ProcessCost, ZerocopyStats};
use crate::trace::{KernelCounters, KernelRun};
use crate::transfer::mode::{Via, ZerocopyReceive};
use crate::transfer::Mode;
use serde::{Deserialize, Serialize};

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
    /// zclab's own TCP's part (af-xdp-tcp only).
    #[serde(default)]
    pub af_xdp_tcp: Option<AfXdpTcpTx>,
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
    /// The data connection taken by zclab's own TCP (`recv --mode af-xdp-tcp`), else null.
    #[serde(default)]
    pub af_xdp_tcp: Option<AfXdpTcpRx>,
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

/// One copy of (a share of) every byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyStep {
    /// "sender", "on the way" or "receiver".
    pub side: String,
    /// What copies, from where to where.
    pub what: String,
    /// Copies of each byte (1, or a share: the sends flagged as copied).
    pub per_byte: f64,
    /// Why the kernel (or zclab) must have made it.
    pub rule: String,
}

/// The copies one run must have made (`copies::infer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferredCopies {
    pub per_byte: f64,
    pub steps: Vec<CopyStep>,
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
    /// zclab's own TCP on the sender's AF_XDP socket (af-xdp-tcp only).
    #[serde(default)]
    pub af_xdp_tcp: Option<AfXdpTcpTx>,
    /// zclab's own TCP on the receiver's AF_XDP socket (`run --recv-mode af-xdp-tcp`).
    #[serde(default)]
    pub receiver_af_xdp_tcp: Option<AfXdpTcpRx>,
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
    pub inferred_copies: Option<InferredCopies>,
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
    /// Merges both ends' reports; verified only if both sides agree. The copies the run
    /// must have made are left for `copies::infer`, which reads the merged report.
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
        // af-xdp-tcp's packets are its segments, and its retransmissions are TCP's.
        let t = s.af_xdp_tcp.as_ref().map(|t| &t.tcp);
        let segments = t.map(|t| t.segments_sent);
        let retransmitted = t.map(|t| t.retransmits_fast + t.retransmits_timeout);
        RunReport {
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
            packets: s.packets.as_ref().map(|p| p.packets).or(segments),
            packets_per_s: s.packets.as_ref().map(|p| p.packets).or(segments).map(|p| p as f64 / s.seconds.max(1e-9)),
            retransmitted_packets: s.packets.as_ref().map(|p| p.retransmitted).or(retransmitted),
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
            af_xdp_tcp: s.af_xdp_tcp.clone(),
            receiver_af_xdp_tcp: r.af_xdp_tcp.clone(),
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
        }
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
            af_xdp_tcp: None,
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
            af_xdp_tcp: None,
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
