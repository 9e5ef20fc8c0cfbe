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
//!
//! With `--queues N` there is one socket per queue, each registered in the
//! program's XSKMAP at its queue: the main thread drains the first and runs
//! the rounds; a thread per other queue drains its own socket into the same
//! [`Reassembly`] (atomic) and the same file (pwritev at each packet's offset).

use super::direct::{Cached, DirectOut, DirectWriter, Planned};
use super::packets::PacketSource;
use super::writer::{IovStore, RunWriter};
use crate::report::QueuePackets;
use crate::report::{AfXdpRx, RxDrops, XdpProgramInfo};
use crate::transfer::af_xdp::{direct_headroom, socket_error, wait_for_busy_queue, Iface, Knobs, CHUNK};
use crate::transfer::reassembly::{Outcome, Reassembly};
use crate::transfer::Watchdog;
use crate::wire::{self, WireError};
use crate::xdp::{AttachMode, XdpSteering, MAX_MTU_WITHOUT_FRAGS};
use crate::xsk::{BindMode, Frame, Frames, PoolId, Received, Rx, Umem, UmemConfig, XskSocket};
use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FILL: u32 = 4096;
const RX: u32 = 4096;
/// RX descriptors taken per batch.
const BATCH: u32 = 256;
/// RX descriptors taken per batch by a receiver that writes with O_DIRECT:
/// each batch is one synchronous disk write, kept short so that its
/// progress reaches the sender in time (see `drain`).
const DIRECT_BATCH: u32 = 64;
/// The largest packet gathered from several descriptors.
const MAX_FRAME: usize = 65536 + 64;

/// The receiver's choices for the AF_XDP path.
#[derive(Debug, Clone)]
pub struct AfXdpRecvOptions {
    /// Interface to receive on (default: the one holding the listen address).
    pub iface: Option<String>,
    /// The first queue; `queues` sockets bind to `queue..queue + queues`.
    /// Neither given: a socket on every RX queue of the interface, since a
    /// real NIC's RSS picks the queue a flow lands on.
    pub queue: Option<u32>,
    pub queues: Option<u32>,
    pub bind_mode: BindMode,
    /// Where the XDP program runs (default: native, else generic).
    pub attach: Option<AttachMode>,
    /// Need-wakeup and busy polling.
    pub knobs: Knobs,
    /// With several queues: one UMEM shared by their sockets (`XDP_SHARED_UMEM`), not one each.
    pub shared_umem: bool,
}

/// The AF_XDP receiving side: the XDP program, and a socket per queue.
pub struct XdpReceiver {
    knobs: Knobs,
    steering: XdpSteering,
    iface: Iface,
    sources: Vec<XdpSource>,
    /// The queues' sockets share one UMEM.
    shared: bool,
    /// The UMEM's frame headroom (`--direct`: the payload at +512).
    headroom: u32,
}

/// One queue's socket, drained by one thread.
pub struct XdpSource {
    queue: u32,
    sock: XskSocket,
    rx: Rx,
    port: u16,
    /// Frames user space holds, to go back on the fill ring.
    free: Vec<Frame>,
    batch: Vec<Received>,
    gather: Gather,
    /// The writers' iovecs, reused: a batch allocates nothing.
    iov: IovStore,
    joined_iov: IovStore,
    /// `--direct`: the O_DIRECT output all queues share, and this queue's writes in flight to it.
    direct: Option<Arc<DirectOut>>,
    writer: Option<DirectWriter>,
    /// Whole packets taken off this socket.
    packets: u64,
}

impl XdpReceiver {
    /// Attaches the program and binds a socket per queue, on `queues`
    /// (first, count) or, if None, on every RX queue of the interface;
    /// returns them and the MAC address the sender must put in its frames.
    /// With `direct`, payloads are written with O_DIRECT from where they
    /// land: the UMEM's frame headroom puts each at +512 of its frame.
    pub fn open(
        listen: SocketAddr,
        opts: &AfXdpRecvOptions,
        queues: Option<(u32, u32)>,
        direct: Option<Arc<DirectOut>>,
        patience: Duration,
    ) -> io::Result<(XdpReceiver, String)> {
        let iface = Iface::find(opts.iface.as_deref(), listen.ip())?;
        let (first, queues) = match queues {
            Some(q) => q,
            // The XDP program's map has room for 64.
            None => (0, crate::sys::iface::queues(&iface.name).map_or(1, |(rx, _)| rx.clamp(1, 64))),
        };
        iface.check_queues(first, queues, true)?;
        let frags = iface.mtu > MAX_MTU_WITHOUT_FRAGS;
        let mut steering = XdpSteering::attach(&iface.name, listen.port(), frags, opts.attach).map_err(io::Error::other)?;
        let knobs = Knobs { tx_budget: None, ..opts.knobs }.effective();
        let count = queues.max(1);
        let shared = opts.shared_umem && count > 1;
        let header = if listen.is_ipv6() { wire::FRAME_HEADER_LEN_V6 } else { wire::FRAME_HEADER_LEN } as u64;
        let headroom = if direct.is_some() { direct_headroom(header) } else { 0 };
        let umem_cfg = UmemConfig { frame_headroom: headroom, ..UmemConfig::chunks(CHUNK, FILL + RX, FILL, 64) };
        let umems = Umem::per_queue(&umem_cfg, count, shared)?;
        let mut sources = Vec::new();
        for (queue, umem) in (first..).zip(umems) {
            let cfg = iface.socket_config(queue, opts.bind_mode, &knobs);
            let (mut sock, rx) =
                XskSocket::bind_rx(umem, RX, &cfg, wait_for_busy_queue).map_err(|e| socket_error(&iface.name, e))?;
            steering.register(queue, &sock).map_err(io::Error::other)?;
            let frames = sock.umem_mut().frames_mut();
            let free = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
            let mut src = XdpSource {
                queue,
                sock,
                rx,
                port: listen.port(),
                free,
                batch: Vec::with_capacity(BATCH as usize),
                gather: Gather::new(MAX_FRAME),
                iov: IovStore::default(),
                joined_iov: IovStore::default(),
                direct: direct.clone(),
                writer: direct.as_ref().map(|d| DirectWriter::new(patience, d.in_flight())).transpose()?,
                packets: 0,
            };
            src.refill()?;
            sources.push(src);
        }
        let mac = wire::format_mac(&iface.mac);
        Ok((XdpReceiver { knobs, steering, iface, sources, shared, headroom }, mac))
    }

    /// Packets the sender may have in flight: three quarters of what one
    /// RX ring holds, counting the descriptors one packet takes at this MTU.
    /// One ring's worth even with several queues: the window is the
    /// transfer's, and nothing keeps the packets in flight evenly spread
    /// over the queues (with twice that, one ring overflowed: 24,381 of
    /// 370,768 packets dropped as rx_ring_full in a 512 MiB run).
    pub fn window(&self) -> u64 {
        let descs_per_packet = (self.iface.mtu as u64 + 14).div_ceil(CHUNK as u64 - 256 - self.headroom as u64).max(1);
        (RX as u64 / descs_per_packet) * 3 / 4
    }

    /// Runs the rounds (see `packets::receive_rounds`), with a thread per
    /// queue beyond the first.
    pub fn receive(&mut self, ctrl: &TcpStream, r: &Reassembly, out: &File, wd: &mut Watchdog) -> io::Result<(u64, u32)> {
        let window = self.window();
        let (first, rest) = self.sources.split_first_mut().expect("at least one queue");
        if rest.is_empty() {
            return super::packets::receive_rounds(ctrl, first, r, out, wd, window);
        }
        let shared = Shared { stop: AtomicBool::new(false), activity: AtomicU64::new(0), failure: Mutex::new(None) };
        let main_cpu = crate::sys::sched::pinned_cpu();
        std::thread::scope(|s| {
            // At most one thread per CPU (the main one counts): a NIC may have 64 queues.
            let threads = (crate::sys::sched::cpus().max(2) - 1).min(rest.len());
            for (k, srcs) in rest.chunks_mut(rest.len().div_ceil(threads)).enumerate() {
                let shared = &shared;
                s.spawn(move || {
                    if let Err(e) = crate::sys::sched::pin_beside(main_cpu, k + 1) {
                        log::warn!("queue {}: not pinned: {e}", srcs[0].queue);
                    }
                    drain_until_stopped(srcs, r, out, shared)
                });
            }
            let mut funnel = Funnel { src: first, shared: &shared, seen: 0 };
            let res = super::packets::receive_rounds(ctrl, &mut funnel, r, out, wd, window);
            shared.stop.store(true, Ordering::Relaxed);
            res
        })
    }

    /// Waits for every queue's O_DIRECT writes still in flight (`--direct`):
    /// the file is whole only then.
    pub fn settle(&mut self) -> io::Result<()> {
        for src in &mut self.sources {
            if let Some(w) = src.writer.as_mut() {
                w.settle(src.sock.umem_mut().frames_mut(), &mut src.free)?;
            }
        }
        Ok(())
    }

    /// The receiver's part of the report.
    pub fn report(&self) -> io::Result<AfXdpRx> {
        let mut drops = RxDrops::default();
        let mut invalid = 0;
        for src in &self.sources {
            let s = src.sock.statistics()?;
            drops.rx_dropped += s.rx_dropped;
            drops.rx_ring_full += s.rx_ring_full;
            drops.fill_ring_empty += s.rx_fill_ring_empty_descs;
            invalid += s.rx_invalid_descs + src.sock.umem().foreign_addresses();
        }
        let zc = self.sources.iter().all(|s| s.sock.is_zerocopy());
        Ok(AfXdpRx {
            iface: self.iface.name.clone(),
            bind_mode: if zc { "zerocopy" } else { "copy" }.into(),
            program: XdpProgramInfo {
                attach_mode: self.steering.mode.name().into(),
                program: if self.steering.frags { "xdp.frags" } else { "xdp" }.into(),
            },
            drops,
            rx_invalid_descs: invalid,
            knobs: self.knobs,
            queues: self.sources.iter().map(|s| QueuePackets { queue: s.queue, packets: s.packets, src_port: None }).collect(),
            shared_umem: self.shared,
            unserved: self
                .unserved()
                .into_iter()
                .map(|(queue, packets)| QueuePackets { queue, packets, src_port: None })
                .collect(),
        })
    }

    /// Lab packets that arrived on queues with no socket of this receiver:
    /// (queue, packets), from the XDP program's own count.
    pub fn unserved(&self) -> Vec<(u32, u64)> {
        self.steering.unserved().unwrap_or_else(|e| {
            log::warn!("cannot read the XDP program's count of unserved packets: {e}");
            Vec::new()
        })
    }

    /// Why packets went missing, if the program saw them land on a queue
    /// this receiver does not serve: the queues, and both fixes.
    pub fn unserved_reason(&self, port: u16) -> Option<String> {
        let u = self.unserved();
        let (queue, _) = *u.first()?;
        let list: Vec<String> = u.iter().map(|(q, n)| format!("{n} on queue {q}")).collect();
        let served: Vec<String> = self.sources.iter().map(|s| s.queue.to_string()).collect();
        Some(format!(
            "lab packets arrived on queues this receiver has no socket on ({}; it serves queue {} of {}): receive there with \
             `--queue {queue}` (or leave out --queue and --queues: a socket on every queue), or steer the flow to a served \
             queue: `ethtool -N {} flow-type udp4 dst-port {port} action {}`",
            list.join(", "),
            served.join(", "),
            self.iface.name,
            self.iface.name,
            served[0]
        ))
    }
}

/// What the queues' threads share with the main one.
struct Shared {
    stop: AtomicBool,
    /// Batches drained by the other queues' threads (so the main thread
    /// reports progress, and knows the data plane is not quiet).
    activity: AtomicU64,
    failure: Mutex<Option<io::Error>>,
}

/// The thread of one or more extra queues: drains their sockets until told to stop.
fn drain_until_stopped(srcs: &mut [XdpSource], r: &Reassembly, out: &File, shared: &Shared) {
    // The main thread's watchdog judges the sender; this one never expires.
    let mut wd = Watchdog::new(Duration::from_secs(u32::MAX as u64), "the sender");
    let mut ready = vec![false; srcs.len()];
    // The fds once, not per wait: they live as long as the sockets.
    let fds: Vec<std::os::fd::RawFd> = srcs.iter().map(|s| std::os::fd::AsRawFd::as_raw_fd(&s.rx.as_fd())).collect();
    while !shared.stop.load(Ordering::Relaxed) {
        // One busy queue of its own: spin on it a moment before sleeping. Several, or a
        // queue that has carried nothing yet (with a socket on every queue, most may never
        // see the flow): wait in poll() for whichever has packets.
        let spun = srcs.len() == 1 && srcs[0].packets > 0 && srcs[0].ready(super::packets::SPIN);
        if spun {
            ready[0] = true;
        } else if crate::sys::socket::poll_many(&fds, libc::POLLIN, 10, &mut ready).is_err() {
            continue;
        }
        for (src, go) in srcs.iter_mut().zip(ready.iter_mut()) {
            if !std::mem::take(go) {
                continue;
            }
            match src.drain(r, out, &mut wd) {
                Ok(_) => {
                    shared.activity.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    *shared.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The main thread's view: its own queue, and whether the others moved.
struct Funnel<'a> {
    src: &'a mut XdpSource,
    shared: &'a Shared,
    seen: u64,
}

impl Funnel<'_> {
    fn others_moved(&mut self) -> bool {
        let now = self.shared.activity.load(Ordering::Relaxed);
        std::mem::replace(&mut self.seen, now) != now
    }
}

impl PacketSource for Funnel<'_> {
    fn pollable(&self) -> BorrowedFd<'_> {
        self.src.pollable()
    }

    fn ready(&mut self, spin: Duration) -> bool {
        self.others_moved() || self.src.ready(spin) || self.others_moved()
    }

    fn idle_poll_ms(&self) -> i32 {
        1
    }

    fn drain(&mut self, r: &Reassembly, out: &File, wd: &mut Watchdog) -> io::Result<u64> {
        if let Some(e) = self.shared.failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(io::Error::new(e.kind(), format!("another queue's thread: {e}")));
        }
        wd.progress()?;
        self.src.drain(r, out, wd)
    }
}

impl XdpSource {
    /// Puts free frames on the fill ring, as many as it takes.
    fn refill(&mut self) -> io::Result<()> {
        self.sock.umem_mut().fill(&mut self.free).map_err(io::Error::other)?;
        Ok(())
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
    /// A packet is being gathered (its first descriptors came in an earlier batch).
    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn reset(&mut self) -> bool {
        let was = self.active;
        self.active = false;
        self.buf.clear();
        was
    }
}

/// Judges one whole frame: the payload and its file offset if accepted.
fn accept<'a>(frame: &'a [u8], port: u16, r: &Reassembly) -> Option<(u64, &'a [u8])> {
    match wire::parse_frame(frame, port) {
        Ok((h, payload)) => match r.admit(&h, payload) {
            Outcome::Accept(offset) => Some((offset, payload)),
            _ => None,
        },
        Err(e) => {
            r.reject(e);
            None
        }
    }
}

/// Where one batch's accepted payloads go: runs of them through the page
/// cache (`pwritev` on the plain descriptor); or, with `--direct`, runs
/// by O_DIRECT straight from the UMEM, and what cannot go so (`late`)
/// through the page cache once the batch's direct writes are done.
struct Writers<'a, 's> {
    cached: RunWriter<'a, 's>,
    direct: Option<&'a DirectOut>,
    /// Payloads to write with O_DIRECT: (the batch index of their frame,
    /// file offset, start in the frame, length), in batch order.
    planned: Vec<(usize, u64, usize, usize)>,
    late: Vec<(u64, Cow<'a, [u8]>)>,
}

impl<'a> Writers<'a, '_> {
    /// The payload of a packet in one frame (the batch's `idx`-th, the
    /// payload at `start` in it); `to_frame_end`: from the payload's start
    /// to its frame's end.
    fn whole(&mut self, idx: usize, start: usize, offset: u64, payload: &'a [u8], to_frame_end: &'a [u8]) -> io::Result<()> {
        match self.direct {
            None => self.cached.push(offset, payload),
            Some(d) => {
                match d.place(offset, payload, to_frame_end) {
                    Some(run) => self.planned.push((idx, offset, start, run.len())),
                    None => self.late.push((offset, Cow::Borrowed(payload))),
                }
                Ok(())
            }
        }
    }

    /// A piece of a packet that lay in several frames (the caller counts the packet).
    fn piece(&mut self, offset: u64, data: &'a [u8]) -> io::Result<()> {
        match &self.direct {
            None => self.cached.push(offset, data),
            Some(_) => {
                self.late.push((offset, Cow::Borrowed(data)));
                Ok(())
            }
        }
    }

    /// Writes what is queued for the page cache in runs; returns the calls.
    fn flush(&mut self) -> io::Result<u64> {
        self.cached.flush()?;
        Ok(self.cached.syscalls)
    }
}

/// Most descriptors one packet takes (the kernel's MAX_SKB_FRAGS, 17, plus the head).
const MAX_PARTS: usize = 18;

/// Where the packet that starts at `batch[i]` ends, if all of it is in the batch.
fn packet_end(batch: &[Received], i: usize) -> Option<usize> {
    for (k, got) in batch.iter().enumerate().skip(i).take(MAX_PARTS) {
        match got {
            Received::Packet(p) if !p.more => return Some(k),
            Received::Packet(_) => {}
            _ => return None,
        }
    }
    None
}

/// Checks and writes a packet that lies in several descriptors (`parts`,
/// all `Received::Packet`): the headers are read from the first, lengths
/// and the IPv6 checksum over all of them, and the payload goes to the
/// writer piece by piece, straight from the UMEM.
fn deliver_parts<'a>(
    parts: &[Received],
    frames: &'a Frames,
    port: u16,
    r: &Reassembly,
    w: &mut Writers<'a, '_>,
) -> io::Result<()> {
    let mut slices: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
    let mut total = 0;
    for (slot, got) in slices.iter_mut().zip(parts) {
        let Received::Packet(p) = got else { unreachable!("packet_end passes packets only") };
        *slot = p.bytes(frames);
        total += slot.len();
    }
    let slices = &slices[..parts.len().min(MAX_PARTS)];
    let h = match wire::parse_headers(slices[0], total, port) {
        Ok(_) if total > MAX_FRAME => {
            r.reject(WireError::BadLength);
            return Ok(());
        }
        Ok(h) => h,
        Err(e) => {
            r.reject(e);
            return Ok(());
        }
    };
    if !h.checksum_ok(slices) {
        r.reject(WireError::BadChecksum);
        return Ok(());
    }
    let len = h.lab.len as usize;
    if let Outcome::Accept(offset) = r.admit_len(&h.lab, len) {
        if let Some(d) = w.direct {
            d.count_cached(Cached::MultiFrame, len as u64);
        }
        let (start, end) = (h.payload_at, h.payload_at + len);
        let (mut at, mut to) = (0, offset);
        for s in slices {
            let (lo, hi) = (at.max(start), (at + s.len()).min(end));
            if lo < hi {
                w.piece(to, &s[lo - at..hi - at])?;
                to += (hi - lo) as u64;
            }
            at += s.len();
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

    fn drain(&mut self, r: &Reassembly, out: &File, wd: &mut Watchdog) -> io::Result<u64> {
        let mut calls = 0;
        loop {
            if let Some(wr) = self.writer.as_mut() {
                // The writes that completed meanwhile give their frames back.
                wr.reap(self.sock.umem_mut().frames_mut(), &mut self.free, Duration::ZERO)?;
            }
            let batch = if self.direct.is_some() { DIRECT_BATCH } else { BATCH };
            if self.rx.receive(self.sock.umem_mut(), batch, &mut self.batch) == 0 {
                return Ok(calls);
            }
            wd.progress()?;
            // A packet cut by the batch's end: take the rest of its descriptors
            // now (the kernel publishes a packet's descriptors together).
            while matches!(self.batch.last(), Some(Received::Packet(p)) if p.more) {
                if self.rx.receive(self.sock.umem_mut(), 1, &mut self.batch) == 0 {
                    break;
                }
            }
            let frames = self.sock.umem().frames();
            let direct = self.direct.as_deref();
            let mut w = Writers { cached: RunWriter::new(out, &mut self.iov), direct, planned: Vec::new(), late: Vec::new() };
            let mut i = 0;
            while i < self.batch.len() {
                let rx = match &self.batch[i] {
                    Received::Packet(rx) => rx,
                    Received::Malformed(_) | Received::Foreign(_) => {
                        r.reject(WireError::Truncated);
                        self.gather.reset();
                        i += 1;
                        continue;
                    }
                };
                // A packet in several descriptors, all in this batch: written
                // from where they lie, one iovec each, without gathering.
                if rx.more && !self.gather.is_active() {
                    if let Some(end) = packet_end(&self.batch, i) {
                        self.packets += 1;
                        deliver_parts(&self.batch[i..=end], frames, self.port, r, &mut w)?;
                        i = end + 1;
                        continue;
                    }
                }
                match self.gather.push(rx.bytes(frames), rx.more) {
                    Gathered::Pending => {}
                    Gathered::TooLong => {
                        r.reject(WireError::BadLength);
                    }
                    Gathered::Whole => {
                        self.packets += 1;
                        let bytes = rx.bytes(frames);
                        if let Some((offset, payload)) = accept(bytes, self.port, r) {
                            let from = payload.as_ptr() as usize - bytes.as_ptr() as usize;
                            let start = rx.offset() as usize + from;
                            w.whole(i, start, offset, payload, &rx.bytes_to_frame_end(frames)[from..])?;
                        }
                    }
                    Gathered::Joined(p) => {
                        self.packets += 1;
                        if let Some((offset, payload)) = accept(p, self.port, r) {
                            if let Some(d) = w.direct {
                                // Kept aside for the end; the gather buffer is reused.
                                d.count_cached(Cached::MultiFrame, payload.len() as u64);
                                w.late.push((offset, Cow::Owned(payload.to_vec())));
                            } else {
                                // Gathered bytes live in a buffer that the next packet reuses: write them now.
                                let mut g = RunWriter::new(out, &mut self.joined_iov);
                                g.push(offset, payload)?;
                                g.flush()?;
                                calls += g.syscalls;
                            }
                        }
                    }
                }
                i += 1;
            }
            // The frames go back to the kernel only once their bytes are written: now for
            // the page cache's, when its write completes for an O_DIRECT payload's.
            calls += w.flush()?;
            if let Some(d) = direct {
                d.defer(&w.late)?;
            }
            let mut plan = std::mem::take(&mut w.planned).into_iter().peekable();
            drop(w);
            let frames = self.sock.umem_mut().frames_mut();
            let mut lent = Vec::new();
            for (k, got) in self.batch.drain(..).enumerate() {
                match got {
                    Received::Packet(rx) => match plan.next_if(|p| p.0 == k) {
                        Some((_, offset, start, len)) => {
                            let f = rx.into_frame();
                            let size = f.size() as usize;
                            match frames.lend_for_io(f, size) {
                                Ok(loan) => lent.push(Planned { offset, loan, start, len }),
                                Err((f, e)) => {
                                    self.free.push(f);
                                    return Err(io::Error::other(e));
                                }
                            }
                        }
                        None => self.free.push(rx.into_frame()),
                    },
                    Received::Malformed(f) => self.free.push(f),
                    Received::Foreign(_) => {}
                }
            }
            if let (Some(d), Some(wr)) = (direct, self.writer.as_mut()) {
                wr.submit(d, lent, frames, &mut self.free)?;
                calls += 1;
            }
            self.refill()?;
            if self.direct.is_some() {
                // A batch's O_DIRECT writes take the disk's time: back to the rounds after each,
                // so that the receiver's progress reaches the sender before it takes the silence
                // for loss (5 ms) and sends another window into a full ring.
                return Ok(calls);
            }
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
