//! The AF_XDP receiver: our XDP program on the receiving interface steers
//! the lab's UDP port to an AF_XDP socket; everything else (ARP, the TCP
//! control connection) passes to the kernel as usual.
//!
//! The fill ring is kept full of free UMEM frames; the RX ring is drained
//! in batches. Each frame is checked (`wire::parse_frame`: Ethernet type,
//! IPv4 header, UDP port and lengths, lab magic) and then by
//! [`Reassembly`] (transfer id, offset and length within the file) before
//! its payload is copied into the output file: the one copy on this side.
//! A packet spread over several descriptors (XDP_PKT_CONTD, at jumbo MTUs)
//! is gathered first.

use super::packets::PacketSource;
use super::writer::RunWriter;
use crate::report::AfXdpRx;
use crate::sys::xdp as sysxdp;
use crate::transfer::reassembly::Outcome;
use crate::transfer::reassembly::Reassembly;
use crate::transfer::Watchdog;
use crate::wire::{self, WireError};
use crate::xdp::{AttachMode, XdpSteering, MAX_MTU_WITHOUT_FRAGS};
use crate::xsk::{BindMode, Umem, UmemConfig, XskConfig, XskSocket};
use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

const CHUNK: u32 = 4096;
const FILL: u32 = 4096;
const RX: u32 = 4096;
/// RX descriptors taken per peek.
const BATCH: u32 = 256;
/// The largest packet gathered from several descriptors.
const MAX_FRAME: usize = 65536 + 64;

/// The receiver's choices for the AF_XDP path.
#[derive(Debug, Clone)]
pub struct AfXdpRecvOptions {
    /// Interface to receive on (default: the one holding the listen address).
    pub iface: Option<String>,
    pub queue: u32,
    pub bind_mode: BindMode,
    /// Where the XDP program runs (default: native, else generic).
    pub attach: Option<AttachMode>,
}

pub struct XdpSource {
    // Field order is drop order: the socket is removed from the program's
    // map implicitly when the program (and its link) go first.
    steering: XdpSteering,
    sock: XskSocket,
    port: u16,
    iface: String,
    mtu: u32,
    /// Frames taken from RX, to go back on the fill ring.
    free: Vec<u64>,
    /// A packet spread over several descriptors, being gathered.
    gather: Vec<u8>,
    gathering: bool,
}

impl XdpSource {
    /// Attaches the program and binds the socket; returns it and the MAC
    /// address the sender must put in its frames.
    pub fn open(listen: SocketAddr, opts: &AfXdpRecvOptions) -> io::Result<(XdpSource, String)> {
        let iface = match &opts.iface {
            Some(i) => i.clone(),
            None => match listen.ip() {
                IpAddr::V4(ip) if !ip.is_unspecified() => sysxdp::iface_with_addr(ip)?.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("no interface holds {ip}: name one with --iface"))
                })?,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "af-xdp needs --iface when listening on 0.0.0.0 or IPv6",
                    ))
                }
            },
        };
        let ifindex = sysxdp::if_index(&iface)?;
        let (mac, mtu) = sysxdp::iface_mac_mtu(&iface)?;
        let frags = mtu > MAX_MTU_WITHOUT_FRAGS;
        let mut steering = XdpSteering::attach(&iface, listen.port(), frags, opts.attach).map_err(io::Error::other)?;
        let umem = Umem::new(UmemConfig {
            len: ((FILL + RX) * CHUNK) as usize,
            chunk_size: CHUNK,
            unaligned: false,
            huge_pages: false,
        })?;
        let cfg = XskConfig {
            ifindex,
            queue: opts.queue,
            rx_size: RX,
            tx_size: 0,
            fill_size: FILL,
            completion_size: 64,
            bind_mode: opts.bind_mode,
            need_wakeup: false,
            multi_buffer: true,
            tx_budget: None,
        };
        let sock = XskSocket::new(umem, &cfg).map_err(|e| io::Error::new(e.kind(), format!("AF_XDP socket on {iface}: {e}")))?;
        steering.register(opts.queue, &sock).map_err(io::Error::other)?;
        let mut src = XdpSource {
            steering,
            sock,
            port: listen.port(),
            iface,
            mtu,
            free: (0..(FILL + RX) as u64).map(|i| i * CHUNK as u64).collect(),
            gather: Vec::with_capacity(MAX_FRAME),
            gathering: false,
        };
        src.refill();
        Ok((src, wire::format_mac(&mac)))
    }

    /// Puts free frames on the fill ring, as many as it takes.
    fn refill(&mut self) {
        let want = (self.free.len() as u32).min(self.sock.fill.free(self.free.len() as u32));
        if want == 0 {
            return;
        }
        let idx = self.sock.fill.reserve(want).expect("free() said there is room");
        for k in 0..want {
            let addr = self.free.pop().expect("counted");
            self.sock.fill.write(idx.wrapping_add(k), addr);
        }
        self.sock.fill.submit(want);
    }

    /// Packets the sender may have in flight: three quarters of what the
    /// RX ring holds, counting the descriptors one packet takes at this MTU.
    pub fn window(&self) -> u64 {
        let descs_per_packet = (self.mtu as u64 + 14).div_ceil(CHUNK as u64 - 256).max(1);
        (RX as u64 / descs_per_packet) * 3 / 4
    }

    /// The receiver's part of the report.
    pub fn report(&self) -> io::Result<AfXdpRx> {
        let s = self.sock.statistics()?;
        Ok(AfXdpRx {
            iface: self.iface.clone(),
            bind_mode: if self.sock.is_zerocopy() { "zerocopy" } else { "copy" }.into(),
            attach_mode: match self.steering.mode {
                AttachMode::Native => "native",
                AttachMode::Generic => "generic",
            }
            .into(),
            program: if self.steering.frags { "xdp.frags" } else { "xdp" }.into(),
            rx_dropped: s.rx_dropped,
            rx_ring_full: s.rx_ring_full,
            fill_ring_empty: s.rx_fill_ring_empty_descs,
            rx_invalid_descs: s.rx_invalid_descs,
        })
    }
}

/// Judges one whole frame; queues its payload for writing if accepted.
fn deliver<'a>(frame: &'a [u8], port: u16, r: &mut Reassembly, w: &mut RunWriter<'a>) -> io::Result<()> {
    match wire::parse_frame(frame, port) {
        Ok((h, payload)) => {
            if let Outcome::Accept(offset) = r.admit(&h, payload) {
                w.push(offset, payload)?;
            }
        }
        Err(e) => {
            r.reject(e);
        }
    }
    Ok(())
}

impl PacketSource for XdpSource {
    fn pollable(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    fn ready(&mut self, spin: Duration) -> bool {
        // Wait for a batch, not a packet: each drain costs a pwritev.
        let rx = self.sock.rx.as_mut().expect("RX ring");
        let start = Instant::now();
        loop {
            let n = rx.ready();
            if n >= BATCH / 4 || (n > 0 && start.elapsed() >= spin / 4) {
                return true;
            }
            if start.elapsed() >= spin {
                return n > 0;
            }
            std::hint::spin_loop();
        }
    }

    fn drain(&mut self, r: &mut Reassembly, out: &File, wd: &mut Watchdog) -> io::Result<u64> {
        let mut calls = 0;
        loop {
            let sock = &mut self.sock;
            let rx = sock.rx.as_mut().expect("RX ring");
            let (n, idx) = rx.peek(BATCH);
            if n == 0 {
                return Ok(calls);
            }
            wd.progress()?;
            let mut w = RunWriter::new(out);
            for k in 0..n {
                let d = rx.read(idx.wrapping_add(k));
                // In aligned mode the frame's chunk is the address rounded down.
                self.free.push(d.addr - d.addr % CHUNK as u64);
                let Ok(frame) = sock.umem.slice(d.addr, d.len as usize) else {
                    r.reject(WireError::Truncated);
                    continue;
                };
                let more = d.options & libc::XDP_PKT_CONTD != 0;
                if !more && !self.gathering {
                    deliver(frame, self.port, r, &mut w)?;
                    continue;
                }
                if self.gather.len() + frame.len() <= MAX_FRAME {
                    self.gather.extend_from_slice(frame);
                }
                self.gathering = more;
                if !more {
                    let mut g = RunWriter::new(out);
                    deliver(&self.gather, self.port, r, &mut g)?;
                    g.flush()?;
                    calls += g.syscalls;
                    self.gather.clear();
                }
            }
            // The frames go back to the kernel only once their bytes are written.
            w.flush()?;
            calls += w.syscalls;
            rx.release(n);
            self.refill();
        }
    }
}
