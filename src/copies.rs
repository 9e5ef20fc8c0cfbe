//! Every copy counted, inferred: what the kernel (and zclab) must have
//! copied per byte of the file, from facts a report already has: the mode,
//! how the receiver took the data, how each AF_XDP socket bound and where
//! the XDP program ran, and the zero-copy notifications. Each step names
//! the rule that puts it there.
//!
//! The tracepoints (`--trace`) see some copies and not others (see
//! `trace::UNSEEN_COPIES`): af-xdp on a copy-mode veth shows 0.00 seen
//! while the kernel copies each packet three times. The inferred figure
//! stands beside the seen one, never in its place. Resent packets are left
//! out: the figures are per byte of the file.

use crate::report::{CopyStep, InferredCopies, RunReport};
use crate::transfer::mode::Via;
use crate::transfer::Mode;

fn step(side: &str, what: &str, per_byte: f64, rule: &str) -> CopyStep {
    CopyStep { side: side.into(), what: what.into(), per_byte, rule: rule.into() }
}

/// What the run must have copied; None where the report lacks a fact it
/// needs (an af-xdp run without its af-xdp part).
pub fn infer(r: &RunReport) -> Option<InferredCopies> {
    let mut v = Vec::new();
    let tx = "sender";
    match r.mode {
        Mode::ReadWrite => {
            v.push(step(tx, "page cache -> user buffer", 1.0, "read() copies the file into user memory"));
            v.push(step(tx, "user buffer -> socket buffer", 1.0, "write() to a TCP socket copies user memory into skbs"));
        }
        Mode::MmapWrite => {
            v.push(step(tx, "mapping -> socket buffer", 1.0, "write() from a file mapping copies its pages into skbs"))
        }
        Mode::Sendfile | Mode::Splice => {}
        Mode::MsgZerocopy | Mode::IoUringZc => {
            let share = r.zerocopy.as_ref().filter(|z| z.completions > 0).map_or(0.0, |z| z.copied as f64 / z.completions as f64);
            if share > 0.0 {
                v.push(step(
                    tx,
                    "pinned pages -> new pages",
                    share,
                    "the sends whose completion came back flagged as copied (SO_EE_CODE_ZEROCOPY_COPIED, \
                     IORING_NOTIF_USAGE_ZC_COPIED): the kernel copied their pages after all, here as a packet \
                     crossed into another namespace",
                ));
            }
        }
        Mode::UdpGso => {
            v.push(step(tx, "mapping -> socket buffer", 1.0, "sendmsg() on a UDP socket copies user memory into the GSO skb"))
        }
        // Its copies are counted below, from its own part of the report.
        Mode::AfXdpTcp => {}
        Mode::AfXdp => {
            let x = r.af_xdp.as_ref()?;
            let way = "on the way";
            if x.bind_mode != "zerocopy" {
                v.push(step(
                    way,
                    "UMEM -> skb",
                    1.0,
                    "a copy-mode AF_XDP socket builds an skb from each TX frame (xsk_build_skb)",
                ));
            }
            if x.program.attach_mode == "native" {
                v.push(step(
                    way,
                    "skb -> page-pool page",
                    1.0,
                    "veth copies an skb it hands to a native XDP program into pages of its own (skb_pp_cow_data); \
                     a NIC's driver receives into its own pages and does not",
                ));
            }
            if x.receiver_bind_mode != "zerocopy" {
                v.push(step(
                    way,
                    "packet -> receiving UMEM",
                    1.0,
                    "a copy-mode AF_XDP socket receives by copying each redirected packet into its UMEM",
                ));
            }
        }
    }
    if let Mode::AfXdpTcp = r.mode {
        let t = r.af_xdp_tcp.as_ref()?;
        if !t.zerocopy {
            v.push(step(
                "on the way",
                "UMEM -> skb",
                1.0,
                "a copy-mode AF_XDP socket copies each TX descriptor into the skb it builds (xsk_build_skb); \
                 the software checksum reads the payload but copies nothing",
            ));
        }
    }
    let rx = "receiver";
    if let Some(t) = &r.receiver_af_xdp_tcp {
        // zclab's TCP took the data connection, whatever the sender's path.
        if t.xdp_mode == "native" {
            v.push(step(
                "on the way",
                "skb -> page-pool page",
                1.0,
                "veth copies an skb it hands to a native XDP program into pages of its own (skb_pp_cow_data); \
                 a NIC's driver receives into its own pages and does not",
            ));
        }
        if !t.zerocopy {
            v.push(step(
                "on the way",
                "packet -> receiving UMEM",
                1.0,
                "a copy-mode AF_XDP socket receives by copying each redirected packet into its UMEM",
            ));
        }
        v.push(step(rx, "UMEM -> page cache", 1.0, "pwritev() from the RX frames into the output file, through its page cache"));
        return Some(InferredCopies { per_byte: v.iter().map(|s| s.per_byte).sum(), steps: v });
    }
    match (r.mode, r.receive_via) {
        (Mode::AfXdp, _) => match r.direct.as_ref().filter(|d| d.used) {
            Some(d) => {
                let cached = (d.unaligned_bytes + d.multi_frame_bytes) as f64 / r.bytes.max(1) as f64;
                v.push(step(
                    rx,
                    "UMEM -> disk (O_DIRECT)",
                    0.0,
                    "pwritev() with O_DIRECT: the disk's DMA reads the payloads from the UMEM; no CPU copy, no page cache",
                ));
                if cached > 0.0 {
                    v.push(step(
                        rx,
                        "UMEM -> page cache",
                        cached,
                        "payloads off an O_DIRECT boundary (or in several frames), written through the page cache",
                    ));
                }
            }
            None => v.push(step(
                rx,
                "UMEM -> page cache",
                1.0,
                "pwritev() from the UMEM into the output file, through its page cache",
            )),
        },
        (Mode::UdpGso, _) => {
            v.push(step(rx, "socket buffer -> user buffer", 1.0, "recv() copies each datagram into user memory"));
            v.push(step(rx, "user buffer -> page cache", 1.0, "pwritev() into the output file, through its page cache"));
        }
        (_, Some(Via::Read)) | (_, None) => {
            v.push(step(rx, "socket buffer -> user buffer", 1.0, "read() copies the stream into user memory"));
            v.push(step(rx, "user buffer -> page cache", 1.0, "pwrite() into the output file, through its page cache"));
        }
        (_, Some(Via::Splice)) => v.push(step(
            rx,
            "pipe -> page cache",
            1.0,
            "splice() moves page references into a pipe; the pipe's pages are copied into the file",
        )),
        (_, Some(Via::Mmap)) => {
            let z = r.zerocopy_receive.unwrap_or_default();
            let total = (z.mapped_bytes + z.copied_bytes).max(1);
            if z.copied_bytes > 0 {
                v.push(step(
                    rx,
                    "socket buffer -> copy buffer",
                    z.copied_bytes as f64 / total as f64,
                    "TCP_ZEROCOPY_RECEIVE copies what does not lie in whole, aligned pages",
                ));
            }
            v.push(step(rx, "mapped pages -> page cache", 1.0, "pwrite() of the mapped and copied bytes into the output file"));
        }
        (_, Some(Via::Discard)) => {}
    }
    Some(InferredCopies { per_byte: v.iter().map(|s| s.per_byte).sum(), steps: v })
}
