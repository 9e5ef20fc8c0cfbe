//! `zclab explain [MODE]`: each data path drawn in the terminal (where
//! the bytes live, each copy and who makes it, the mode switches, the page
//! cache or not), with the figures of the last run of that mode when
//! there is one. `zclab run` keeps its last report per mode for this.

use crate::report::{human_bytes, RunReport};
use crate::transfer::Mode;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Where `zclab run` keeps the last report of each mode: `$ZCLAB_STATE_DIR`,
/// else `$XDG_STATE_HOME/zclab`, else `~/.local/state/zclab`.
pub fn state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ZCLAB_STATE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return Some(PathBuf::from(d).join("zclab"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/zclab"))
}

fn last_path(mode: Mode) -> Option<PathBuf> {
    state_dir().map(|d| d.join(format!("last-{}.json", mode.name())))
}

/// Keeps `r` as the last run of its mode (a failure to keep it only logs).
pub fn remember(r: &RunReport) {
    let Some(path) = last_path(r.mode) else { return };
    let saved = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(r).expect("reports serialize")));
    if let Err(e) = saved {
        log::debug!("could not keep the run for `zclab explain` in {}: {e}", path.display());
    }
}

/// The last run of `mode`, if one was kept and still parses.
pub fn last_run(mode: Mode) -> Option<RunReport> {
    serde_json::from_slice(&std::fs::read(last_path(mode)?).ok()?).ok()
}

/// The drawing of one data path: the sender's side, then the receiver's.
fn drawing(mode: Mode) -> &'static str {
    match mode {
        Mode::ReadWrite => {
            "  disk --DMA--> page cache --CPU copy (read)--> your buffer --CPU copy (write)--> socket buffer --> veth
                  [kernel]                    [user]                              [kernel]
  per chunk: 2 syscalls (read, write) = 4 mode switches; 2 CPU copies; the file goes through the page cache"
        }
        Mode::MmapWrite => {
            "  disk --DMA--> page cache ==mapped into your process (page faults, no copy)==> mapping
                  [kernel]                                                      [user]
                  mapping --CPU copy (write)--> socket buffer --> veth
  per chunk: 1 syscall = 2 mode switches; 1 CPU copy; page faults instead of reads (16 pages per fault here)"
        }
        Mode::Sendfile => {
            "  disk --DMA--> page cache ==page references==> socket buffer --> veth
                  [kernel]                           [kernel: skb fragments point at page-cache pages]
  per chunk: 1 syscall = 2 mode switches; no CPU copy on the sender; the NIC gathers the pages (scatter-gather)"
        }
        Mode::Splice => {
            "  disk --DMA--> page cache ==page references==> pipe buffers ==page references==> socket buffer --> veth
                  [kernel]                           [kernel]                           [kernel]
  per chunk: 2 syscalls (file -> pipe, pipe -> socket) = 4 mode switches; no CPU copy on the sender"
        }
        Mode::MsgZerocopy => {
            "  page cache ==mapped==> mapping ==pinned pages (send MSG_ZEROCOPY)==> socket buffer --> veth
                                    [user]                                      [kernel]
  error queue --completion (copied or not)--> recvmsg(MSG_ERRQUEUE)
  per send: 1 syscall, plus polls and completion reads; no CPU copy if the device sends from the pages,
  but over veth into another namespace the kernel copies them after all (the completion says COPIED)"
        }
        Mode::IoUringZc => {
            "  page cache ==mapped==> mapping ==pinned pages (IORING_OP_SEND_ZC)==> socket buffer --> veth
  completion queue: the send's result, then a notification when the pages are free (flagged if copied)
  per batch: 1 io_uring_enter for many sends; the same pinning and the same copy-after-all over veth"
        }
        Mode::UdpGso => {
            "  page cache ==mapped==> mapping --CPU copy (sendmsg, UDP_SEGMENT)--> one large skb --GSO: cut late--> datagrams --> veth
  receiver: datagrams --GRO: merged--> one large skb --CPU copy (recvmsg)--> buffer --CPU copy (pwritev)--> page cache
  per up to 64 packets: 1 sendmsg; lost datagrams are sent again in rounds"
        }
        Mode::AfXdp => {
            "  disk --DMA (O_DIRECT read, io_uring)--> UMEM block      [no page cache]
  CPU writes a 66-byte header frame --> UMEM
  TX ring: [header descriptor][payload descriptors -> the file's bytes in the UMEM] --sendto kick-->
     veth (copy mode): UMEM -> skb (a copy-mode socket builds an skb from each frame),
     skb -> page-pool page (veth, for a native XDP program: skb_pp_cow_data),
     the XDP program redirects it, packet -> receiving UMEM (a copy-mode socket copies it in);
     a zero-copy NIC would DMA straight from and into the UMEMs: none of those three
  receiver: RX ring --> checked --> UMEM -> page cache (pwritev, a CPU copy) --> fill ring
     with recv --direct: UMEM -> disk (O_DIRECT pwritev: the disk's DMA reads the UMEM, no CPU
     copy, no page cache; the frame headroom puts each payload at +512 and the sender cuts
     payloads of whole 512-byte units) --> fill ring once the write is done"
        }
        Mode::AfXdpTcp => {
            "  disk --DMA (O_DIRECT read, io_uring)--> UMEM block: the send buffer, kept until ACKed [no page cache]
  CPU writes a header frame (Ethernet/IP/TCP; the checksum summed over the payload in the UMEM) --> UMEM
  TX ring: [header descriptor][payload descriptors -> the file's bytes in the UMEM] --sendto kick-->
     veth (copy mode): UMEM -> skb (xsk_build_skb copies each descriptor): one skb per segment,
     no GSO, no TSO; a zero-copy NIC would DMA the descriptors and copy nothing
  a lost segment goes again from the same UMEM bytes: never copied, never read from the disk again
  ACKs: veth --> XDP program (this connection's 4-tuple; ARP and the rest to the kernel) --> RX ring
     --> zclab's TCP (window, RTT, cwnd, SACK) --> the blocks acknowledged are read into again
  the peer is the kernel's TCP (any program: zclab recv, nc, curl), on a connection of its own"
        }
    }
}

/// What the TCP paths' receiver does (all six share it).
const TCP_RECEIVER: &str =
    "  receiver (every TCP path, af-xdp-tcp's too): socket buffer ==splice==> pipe --CPU copy--> page cache of the output file";

/// `zclab explain MODE`: the drawing, and the last run's figures if one was kept.
pub fn explain(mode: Mode) -> String {
    let mut s = format!("{mode}: {}\n\n{}\n", mode_doc(mode), drawing(mode));
    if !mode.is_packet_path() {
        // af-xdp-tcp's peer is the same kernel TCP receiver.
        let _ = writeln!(s, "{TCP_RECEIVER}");
    }
    s += "\n  ==> moves references to pages, --> moves bytes; [user] and [kernel] say whose memory it is\n";
    match last_run(mode) {
        Some(r) => s += &figures(&r),
        None => {
            let _ = writeln!(s, "\nNo run of {mode} kept yet: `zclab run --mode {mode} --file F` keeps its report for this.");
        }
    }
    s
}

/// The list `zclab explain` prints without a mode.
pub fn list() -> String {
    let mut s = String::from("The data paths (`zclab explain MODE` draws one):\n");
    for m in Mode::ALL {
        let kept = if last_run(m).is_some() { "  (a run is kept)" } else { "" };
        let _ = writeln!(s, "  {:<13} {}{kept}", m.name(), mode_doc(m));
    }
    s
}

fn mode_doc(m: Mode) -> &'static str {
    match m {
        Mode::ReadWrite => "read() into a buffer, write() to the socket",
        Mode::MmapWrite => "mmap() the file, write() from the mapping",
        Mode::Sendfile => "sendfile(): page-cache pages go to the socket by reference",
        Mode::Splice => "splice() file to pipe to socket: page references through a pipe",
        Mode::MsgZerocopy => "send(MSG_ZEROCOPY) from a mapping, completions from the error queue",
        Mode::IoUringZc => "io_uring IORING_OP_SEND_ZC from a mapping, with notifications",
        Mode::UdpGso => "kernel UDP with UDP_SEGMENT (GSO) and UDP_GRO, rounds for lost packets",
        Mode::AfXdp => "O_DIRECT reads into a UMEM, frames from the TX ring, AF_XDP receiver behind XDP",
        Mode::AfXdpTcp => "zclab's own TCP on AF_XDP: the payload stays in UMEM until ACKed, to the kernel's TCP",
    }
}

/// The last run's numbers, under the drawing.
fn figures(r: &RunReport) -> String {
    let mut s = format!(
        "\nThe last run kept ({} in {:.3} s, {}):\n",
        human_bytes(r.bytes),
        r.seconds,
        if r.verified { "verified" } else { "NOT verified" }
    );
    let mib = (r.bytes as f64 / (1 << 20) as f64).max(1.0 / 1024.0);
    let _ = writeln!(
        s,
        "  {:.2} Gbit/s; sender {} syscalls ({:.1} per MiB), {} minor faults; CPU {:.3} s per GiB (both ends)",
        r.gbit_per_s,
        r.sender.syscalls,
        r.sender.syscalls as f64 / mib,
        r.sender.minor_faults,
        r.cpu_s_per_gib()
    );
    let _ = writeln!(
        s,
        "  page cache: {} of the file before, {} after",
        human_bytes(r.source_cached_before_bytes),
        human_bytes(r.source_cached_after_bytes)
    );
    if let Some(z) = &r.zerocopy {
        let _ = writeln!(s, "  zero copy: {} of {} completions flagged COPIED", z.copied, z.completions);
    }
    if let (Some(p), Some(x)) = (r.packets, &r.af_xdp) {
        let _ = writeln!(s, "  {p} packets; {}; O_DIRECT {}", x.path.frame_layout, x.path.o_direct);
    } else if let Some(p) = r.packets {
        let _ = writeln!(s, "  {p} packets, {} resent", r.retransmitted_packets.unwrap_or(0));
    }
    if let Some(c) = &r.inferred_copies {
        let _ = writeln!(s, "  copies it must have made: {}", c.summary());
    }
    if let Some(k) = &r.kernel {
        match k.copies_per_byte(r.bytes) {
            Some(c) => {
                let _ = writeln!(s, "  the kernel was seen to copy {c:.2} bytes per byte of file (--trace)");
            }
            None => s += "  (--trace ran, but not every counter of the copies was measured)\n",
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_has_a_drawing_and_the_tcp_paths_show_their_receiver() {
        for m in Mode::ALL {
            let d = drawing(m);
            assert!(d.contains("-->") || d.contains("==>"), "{m}: {d}");
        }
        let dir = std::env::temp_dir().join(format!("zclab-explain-test-{}", std::process::id()));
        // This test is the only one that reads the variable.
        std::env::set_var("ZCLAB_STATE_DIR", &dir);
        let e = explain(Mode::Sendfile);
        assert!(e.contains("page references") && e.contains("receiver (every TCP path"), "{e}");
        assert!(e.contains("No run of sendfile kept yet"), "{e}");
        assert!(!explain(Mode::AfXdp).contains("every TCP path"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
