//! The AF_XDP parts of a report: how each socket bound, where the XDP
//! program ran, the frame path and its knobs, the queues, the receiver's
//! drops and its `--direct` writes.

use crate::transfer::af_xdp::Knobs;
use serde::{Deserialize, Serialize};

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
    /// The most O_DIRECT writes one queue had in flight at once (io_uring).
    #[serde(default)]
    pub writes_in_flight_peak: u64,
    /// The file's blocks were written with zeros by O_DIRECT before the transfer
    /// (`--preallocate`): its writes overwrite them, several at once.
    #[serde(default)]
    pub preallocated: bool,
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
