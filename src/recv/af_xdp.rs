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
use super::writer::{IovStore, RunWriter};
use crate::report::{AfXdpRx, RxDrops, XdpProgramInfo};
use crate::transfer::af_xdp::{socket_error, wait_for_busy_queue, Iface, Knobs, CHUNK};
use crate::transfer::reassembly::{Outcome, Reassembly};
use crate::transfer::Watchdog;
use crate::wire::{self, WireError};
use crate::xdp::{AttachMode, XdpSteering, MAX_MTU_WITHOUT_FRAGS};
use crate::xsk::{BindMode, Frame, PoolId, Received, Rx, Umem, UmemConfig, XskSocket};
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

const FILL: u32 = 4096;
const RX: u32 = 4096;
/// RX descriptors taken per batch.
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
    /// Need-wakeup and busy polling.
    pub knobs: Knobs,
}

pub struct XdpSource {
    knobs: Knobs,
    steering: XdpSteering,
    sock: XskSocket,
    rx: Rx,
    port: u16,
    iface: Iface,
    /// Frames user space holds, to go back on the fill ring.
    free: Vec<Frame>,
    batch: Vec<Received>,
    gather: Gather,
    /// The writers' iovecs, reused: a batch allocates nothing.
    iov: IovStore,
    joined_iov: IovStore,
}

impl XdpSource {
    /// Attaches the program and binds the socket; returns it and the MAC
    /// address the sender must put in its frames.
    pub fn open(listen: SocketAddr, opts: &AfXdpRecvOptions) -> io::Result<(XdpSource, String)> {
        let iface = Iface::find(opts.iface.as_deref(), listen.ip())?;
        let frags = iface.mtu > MAX_MTU_WITHOUT_FRAGS;
        let mut steering = XdpSteering::attach(&iface.name, listen.port(), frags, opts.attach).map_err(io::Error::other)?;
        let umem = Umem::new(&UmemConfig::chunks(CHUNK, FILL + RX, FILL, 64))?;
        let knobs = Knobs { tx_budget: None, ..opts.knobs }.effective();
        let cfg = iface.socket_config(opts.queue, opts.bind_mode, &knobs);
        let (mut sock, rx) = XskSocket::bind_rx(umem, RX, &cfg, wait_for_busy_queue).map_err(|e| socket_error(&iface.name, e))?;
        steering.register(opts.queue, &sock).map_err(io::Error::other)?;
        let frames = sock.umem_mut().frames_mut();
        let free = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
        let mac = wire::format_mac(&iface.mac);
        let mut src = XdpSource {
            knobs,
            steering,
            sock,
            rx,
            port: listen.port(),
            iface,
            free,
            batch: Vec::with_capacity(BATCH as usize),
            gather: Gather::new(MAX_FRAME),
            iov: IovStore::default(),
            joined_iov: IovStore::default(),
        };
        src.refill()?;
        Ok((src, mac))
    }

    /// Puts free frames on the fill ring, as many as it takes.
    fn refill(&mut self) -> io::Result<()> {
        self.sock.umem_mut().fill(&mut self.free).map_err(io::Error::other)?;
        Ok(())
    }

    /// Packets the sender may have in flight: three quarters of what the
    /// RX ring holds, counting the descriptors one packet takes at this MTU.
    pub fn window(&self) -> u64 {
        let descs_per_packet = (self.iface.mtu as u64 + 14).div_ceil(CHUNK as u64 - 256).max(1);
        (RX as u64 / descs_per_packet) * 3 / 4
    }

    /// The receiver's part of the report.
    pub fn report(&self) -> io::Result<AfXdpRx> {
        let s = self.sock.statistics()?;
        Ok(AfXdpRx {
            iface: self.iface.name.clone(),
            bind_mode: if self.sock.is_zerocopy() { "zerocopy" } else { "copy" }.into(),
            program: XdpProgramInfo {
                attach_mode: match self.steering.mode {
                    AttachMode::Native => "native",
                    AttachMode::Generic => "generic",
                }
                .into(),
                program: if self.steering.frags { "xdp.frags" } else { "xdp" }.into(),
            },
            drops: RxDrops {
                rx_dropped: s.rx_dropped,
                rx_ring_full: s.rx_ring_full,
                fill_ring_empty: s.rx_fill_ring_empty_descs,
            },
            rx_invalid_descs: s.rx_invalid_descs + self.sock.umem().foreign_addresses(),
            knobs: self.knobs,
        })
    }
}

/// Puts a packet that spans several descriptors (`XDP_PKT_CONTD`) back
/// together. A one-descriptor packet passes straight through, uncopied.
pub struct Gather {
    buf: Vec<u8>,
    max: usize,
    /// A packet is being gathered (the last buffer said "more").
    active: bool,
    /// It grew past `max`: it is dropped when it ends.
    too_long: bool,
}

/// What one buffer made of the packet being gathered.
#[derive(Debug, PartialEq, Eq)]
pub enum Gathered<'a> {
    /// The buffer just pushed is a whole packet by itself.
    Whole,
    /// The packet, put together from several buffers.
    Joined(&'a [u8]),
    /// More buffers of it are to come.
    Pending,
    /// It ended longer than `max`: dropped.
    TooLong,
}

impl Gather {
    pub fn new(max: usize) -> Gather {
        Gather { buf: Vec::with_capacity(max), max, active: false, too_long: false }
    }

    /// Takes one buffer; `more` says another of the same packet follows.
    pub fn push(&mut self, bytes: &[u8], more: bool) -> Gathered<'_> {
        if !self.active {
            self.buf.clear();
            self.too_long = false;
            if !more {
                return Gathered::Whole;
            }
        }
        if self.buf.len() + bytes.len() <= self.max {
            self.buf.extend_from_slice(bytes);
        } else {
            self.too_long = true;
        }
        self.active = more;
        match (more, self.too_long) {
            (true, _) => Gathered::Pending,
            (false, true) => Gathered::TooLong,
            (false, false) => Gathered::Joined(&self.buf),
        }
    }

    /// Forgets a packet half gathered (after a malformed descriptor).
    pub fn reset(&mut self) -> bool {
        let was = self.active;
        self.active = false;
        self.buf.clear();
        was
    }
}

/// Judges one whole frame; queues its payload for writing if accepted.
fn deliver<'a>(frame: &'a [u8], port: u16, r: &mut Reassembly, w: &mut RunWriter<'a, '_>) -> io::Result<()> {
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
        self.rx.as_fd()
    }

    fn ready(&mut self, spin: Duration) -> bool {
        // Wait for a batch, not a packet: each drain costs a pwritev.
        // The clock is read once per 32 looks at the ring (it was the
        // spinning receiver's largest cost in a profile).
        let start = Instant::now();
        let mut looks = 0u32;
        loop {
            let n = self.rx.ready();
            if n >= BATCH / 4 {
                return true;
            }
            looks += 1;
            if looks.is_multiple_of(32) {
                let waited = start.elapsed();
                if n > 0 && waited >= spin / 4 {
                    return true;
                }
                if waited >= spin {
                    return n > 0;
                }
            }
            std::hint::spin_loop();
        }
    }

    fn drain(&mut self, r: &mut Reassembly, out: &File, wd: &mut Watchdog) -> io::Result<u64> {
        let mut calls = 0;
        loop {
            if self.rx.receive(self.sock.umem_mut(), BATCH, &mut self.batch) == 0 {
                return Ok(calls);
            }
            wd.progress()?;
            let frames = self.sock.umem().frames();
            let mut w = RunWriter::new(out, &mut self.iov);
            for got in &self.batch {
                let rx = match got {
                    Received::Packet(rx) => rx,
                    Received::Malformed(_) | Received::Foreign(_) => {
                        r.reject(WireError::Truncated);
                        self.gather.reset();
                        continue;
                    }
                };
                match self.gather.push(rx.bytes(frames), rx.more) {
                    Gathered::Pending => {}
                    Gathered::TooLong => {
                        r.reject(WireError::BadLength);
                    }
                    Gathered::Whole => deliver(rx.bytes(frames), self.port, r, &mut w)?,
                    Gathered::Joined(p) => {
                        // Gathered bytes live in a buffer that the next packet reuses: write them now.
                        let mut g = RunWriter::new(out, &mut self.joined_iov);
                        deliver(p, self.port, r, &mut g)?;
                        g.flush()?;
                        calls += g.syscalls;
                    }
                }
            }
            // The frames go back to the kernel only once their bytes are written.
            w.flush()?;
            calls += w.syscalls;
            drop(w);
            for got in self.batch.drain(..) {
                match got {
                    Received::Packet(rx) => self.free.push(rx.into_frame()),
                    Received::Malformed(f) => self.free.push(f),
                    Received::Foreign(_) => {}
                }
            }
            self.refill()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_descriptor_packets_pass_through_uncopied() {
        let mut g = Gather::new(100);
        assert_eq!(g.push(&[1u8; 10], false), Gathered::Whole);
        assert_eq!(g.push(&[2u8; 10], false), Gathered::Whole);
    }

    #[test]
    fn several_descriptors_make_one_packet() {
        let mut g = Gather::new(100);
        assert_eq!(g.push(b"head", true), Gathered::Pending);
        assert_eq!(g.push(b"-mid", true), Gathered::Pending);
        assert_eq!(g.push(b"-tail", false), Gathered::Joined(b"head-mid-tail"));
        assert_eq!(g.push(b"next", false), Gathered::Whole, "a new packet starts clean");
    }

    #[test]
    fn a_packet_too_long_is_dropped_whole_and_the_next_starts_clean() {
        let mut g = Gather::new(8);
        assert_eq!(g.push(b"12345", true), Gathered::Pending);
        assert_eq!(g.push(b"67890", true), Gathered::Pending);
        assert_eq!(g.push(b"x", false), Gathered::TooLong);
        assert_eq!(g.push(b"ok", true), Gathered::Pending);
        assert_eq!(g.push(b"!", false), Gathered::Joined(b"ok!"));
    }

    #[test]
    fn a_malformed_descriptor_resets_the_gather() {
        let mut g = Gather::new(100);
        assert_eq!(g.push(b"half of one", true), Gathered::Pending);
        assert!(g.reset(), "a packet was being gathered");
        // Without the reset, "tail" would be glued to the half packet.
        assert_eq!(g.push(b"tail", false), Gathered::Whole);
        assert!(!g.reset());
    }
}
