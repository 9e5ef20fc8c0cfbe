//! The af-xdp-tcp part of a report: what zclab's own TCP did on its AF_XDP
//! socket (segments, retransmissions, windows, checksums), shared by the
//! sender's report to a zclab receiver, `send --plain` and `zclab http`.

use crate::tcp::TcpStats;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// What checking and making checksums counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChecksumCounts {
    /// How this end's segments got their checksum: "software" (the CPU summed the payload).
    pub tx_mode: String,
    /// Payload bytes the CPU read to sum them (0 with offload).
    pub cpu_payload_bytes_read: u64,
    /// The peer's segments: checksum right, only the pseudo-header's sum (cannot be judged), wrong (dropped).
    pub rx_verified: u64,
    pub rx_unverifiable: u64,
    pub rx_bad: u64,
}

/// The sender's state at one moment (`send --timeline`): what lesson 14 draws.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Milliseconds since the connection began.
    pub t_ms: f64,
    /// The congestion window, bytes.
    pub cwnd: u64,
    /// Bytes sent and not yet cumulatively acknowledged (SACKed bytes included, as the
    /// kernel's `unacked` counts them).
    pub in_flight: u64,
    /// The window the peer advertised, bytes.
    pub peer_window: u64,
}

/// One af-xdp-tcp connection's path: the socket, the XDP program, the TCP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AfXdpTcpTx {
    pub iface: String,
    /// The connection's MSS (the smaller of ours and the peer's).
    pub mss: u32,
    /// The file read with O_DIRECT (false: through the page cache, on a filesystem without it).
    pub o_direct: bool,
    pub zerocopy: bool,
    /// Where the XDP program that steers the connection's segments to the socket ran.
    pub xdp_mode: String,
    pub tcp: TcpStats,
    pub checksum: ChecksumCounts,
    /// Frames the RX ring gave that were not this connection's, or not TCP: counted, dropped.
    pub foreign_frames: u64,
    /// Bytes the peer sent on the connection (a plain sink sends none): acknowledged, dropped.
    pub peer_bytes: u64,
    /// ICMP destination unreachables that quoted the connection's segments.
    pub icmp_unreachable: u64,
    /// Kicks of the TX ring and waits on the RX ring: this path's system calls.
    pub syscalls: u64,
}

impl AfXdpTcpTx {
    /// The report's lines about the TCP, indented under its first line.
    pub fn text(&self) -> String {
        let t = &self.tcp;
        format!(
            "  segments sent {} ({} bytes of payload), retransmitted {} fast / {} after a timeout; timeouts {}\n\
             \x20 duplicate ACKs {}, recoveries {} ({:.3} s), zero-window probes {}, largest cwnd {} bytes, srtt {} us\n\
             \x20 peer: MSS {}, window scale {:?}, largest window {} bytes; the connection's MSS {}\n\
             \x20 checksums: sent {} (the CPU read {} payload bytes); received {} verified, {} unverifiable, {} bad\n\
             \x20 dropped: {} segments (acks of unsent {}, outside the window {}, resets not exact {}), {} foreign frames\n",
            t.segments_sent,
            t.bytes_sent,
            t.retransmits_fast,
            t.retransmits_timeout,
            t.rto_fired,
            t.dup_acks,
            t.fast_recoveries,
            t.recovery_s,
            t.zero_window_probes,
            t.largest_cwnd,
            t.srtt_us.map_or("-".into(), |u| u.to_string()),
            t.peer_mss,
            t.peer_window_scale,
            t.largest_peer_window,
            self.mss,
            self.checksum.tx_mode,
            self.checksum.cpu_payload_bytes_read,
            self.checksum.rx_verified,
            self.checksum.rx_unverifiable,
            self.checksum.rx_bad,
            t.dropped,
            t.dropped_ack_of_unsent,
            t.dropped_outside_window,
            t.dropped_rst_not_exact,
            self.foreign_frames,
        )
    }
}

/// What the af-xdp-tcp receiver's connection brought (`recv --mode af-xdp-tcp`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AfXdpTcpRx {
    pub mode: String,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// The peer's stream bytes, all written to the file.
    pub bytes: u64,
    /// From the peer's SYN to its FIN.
    pub seconds: f64,
    pub gbit_per_s: f64,
    pub iface: String,
    pub zerocopy: bool,
    pub xdp_mode: String,
    /// The segment size both ends agreed on (the smaller MSS).
    pub mss: u32,
    pub tcp: TcpStats,
    pub checksum: ChecksumCounts,
    /// Frames on the socket that were not this connection's segments.
    pub foreign_frames: u64,
    /// The most frames kept at once (out of order, or waiting to be written).
    pub held_frames_peak: u32,
    /// `pwritev` calls, and the kicks and waits of the socket.
    pub writes: u64,
    pub syscalls: u64,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
}

impl AfXdpTcpRx {
    pub fn text(&self) -> String {
        let t = &self.tcp;
        let c = &self.checksum;
        format!(
            "af-xdp-tcp receiver: {} bytes from {} in {:.3} s: {:.2} Gbit/s ({} {}, XDP program {}, MSS {})\n\
             \x20 segments received {}, ACKs sent {} (SACK blocks {}), out of order {} (peak {} bytes held, {} frames), duplicates {}\n\
             \x20 window advertised {} to {} bytes, zero windows {}; {} pwritev calls; foreign frames {}\n\
             \x20 checksums received: {} verified, {} unverifiable, {} bad\n\
             \x20 CPU: {:.3} s user, {:.3} s system\n",
            self.bytes,
            self.peer,
            self.seconds,
            self.gbit_per_s,
            self.iface,
            if self.zerocopy { "zero copy" } else { "copy mode" },
            self.xdp_mode,
            self.mss,
            t.segments_received,
            t.acks_sent,
            t.sack_blocks_sent,
            t.out_of_order_segments,
            t.out_of_order_peak_bytes,
            self.held_frames_peak,
            t.duplicate_segments,
            t.window_min.unwrap_or(0),
            t.window_max,
            t.zero_windows_sent,
            self.writes,
            self.foreign_frames,
            c.rx_verified,
            c.rx_unverifiable,
            c.rx_bad,
            self.cpu_user_s,
            self.cpu_sys_s,
        )
    }
}
