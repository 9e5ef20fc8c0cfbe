//! `af-xdp`: the file's pages go from the disk into the UMEM by O_DIRECT
//! reads, and from the UMEM onto the wire by the TX ring. The sender's CPU
//! never copies or touches a payload byte.
//!
//! ```text
//! disk --O_DIRECT read (io_uring, ahead)--> UMEM payload slot (a block of whole packets)
//! UMEM header frame:  Ethernet | IPv4 | UDP | lab header     (66 bytes, built here)
//! TX ring: [header, XDP_PKT_CONTD] [payload piece -> file bytes in the slot] ...
//!    -> sendto() kick -> driver (veth: the kernel copies once into an skb;
//!       a zero-copy NIC DMAs straight from the UMEM)
//! completion ring: addresses come back; header frames and slots are reused
//! ```
//! A payload descriptor points at the packet's bytes wherever they landed
//! in a block read from the file. A block holds a whole number of packets
//! and starts at a file offset the filesystem's O_DIRECT alignment accepts
//! (statx STATX_DIOALIGN). Payloads are cut at UMEM chunk edges (4096
//! bytes): a descriptor may not cross one in *aligned* mode, and may not be
//! longer than a chunk in either mode, so a 1448-byte payload takes one or
//! two descriptors and a jumbo payload several. In *unaligned* mode
//! (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`, the default) the same cut is used, so
//! the two modes send identical packets and differ only in what the kernel
//! checks.

use super::packets::{send_rounds, Flow, PacketSink};
use super::Stream;
use crate::metrics::{AfXdpTx, DataPath};
use crate::sys::uring::ReadRing;
use crate::sys::{self, xdp as sysxdp};
use crate::transfer::plan::PacketPlan;
use crate::transfer::{Watchdog, IO_TICK};
use crate::wire::{self, FrameTemplate, LabHeader, FLAG_RESENT, FRAME_HEADER_LEN};
use crate::xsk::{BindMode, Umem, UmemConfig, XdpDesc, XskConfig, XskSocket};
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// UMEM chunk size, and so the most one descriptor carries.
const CHUNK: u32 = 4096;
/// Bytes reserved per header frame (the 66-byte header, rounded up).
const HEADER_SLOT: u64 = 128;
/// TX and completion ring entries.
const RING: u32 = 4096;
/// File blocks held in the UMEM at once (read ahead while others are sent).
const SLOTS: usize = 8;
/// Aim for blocks of about this size.
const BLOCK_TARGET: u64 = 1 << 20;
/// Descriptors submitted per kick.
const BATCH: u32 = 256;

/// The sender's choices for the AF_XDP path.
#[derive(Debug, Clone)]
pub struct AfXdpOptions {
    /// The interface to send on (default: the one the control connection uses).
    pub iface: Option<String>,
    pub queue: u32,
    pub bind_mode: BindMode,
    /// Register the UMEM in unaligned-chunk mode (default) or aligned mode.
    pub unaligned: bool,
}

/// Everything set up before the Hello, so none of it is timed: interface,
/// MTU, payload, the file opened for direct I/O, the block layout, the UMEM
/// and the bound socket, the io_uring for reads.
pub struct XdpPath {
    /// Before `sock`: dropped first (its Drop waits for reads into the UMEM).
    reader: ReadRing,
    sock: XskSocket,
    iface: String,
    pub mtu: u32,
    src_mac: [u8; 6],
    pub payload: u32,
    file: File,
    /// O_DIRECT alignment of file offsets and lengths (None: buffered).
    dio: Option<u64>,
    unaligned: bool,
    layout: Layout,
}

/// How the UMEM is cut: header frames first, then block slots.
#[derive(Debug, Clone, Copy)]
struct Layout {
    align: u64,
    per_block: u64,
    block_bytes: u64,
    slot_bytes: u64,
    header_bytes: u64,
}

impl XdpPath {
    pub fn prepare(path: &Path, ctrl: &TcpStream, opts: &AfXdpOptions) -> io::Result<XdpPath> {
        let local = ctrl.local_addr()?;
        let iface = match &opts.iface {
            Some(i) => i.clone(),
            None => match local.ip() {
                IpAddr::V4(ip) => sysxdp::iface_with_addr(ip)?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no interface holds {ip}, the control connection's address: name one with --iface"),
                    )
                })?,
                IpAddr::V6(_) => {
                    return Err(io::Error::new(io::ErrorKind::Unsupported, "af-xdp frames are IPv4: connect to an IPv4 address"))
                }
            },
        };
        let ifindex = sysxdp::if_index(&iface)?;
        let (src_mac, mtu) = sysxdp::iface_mac_mtu(&iface)?;
        let payload = wire::payload_for_mtu(mtu)
            .map(|p| p & !1) // even, so every TX address stays even (see FACTS: the completion ring clears bit 0)
            .filter(|p| *p >= 64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("MTU {mtu} of {iface} is too small")))?;
        let probe = File::open(path)?;
        let dio = sys::file::dio_align(&probe)?;
        let (file, dio) = match dio {
            Some((mem, off)) if mem as u64 <= 4096 => {
                let f = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)?;
                (f, Some(off.max(mem) as u64))
            }
            _ => {
                log::warn!(
                    "{} is on a filesystem without direct I/O (tmpfs?): reading it through the page cache; \
                     this run does NOT show a page-cache bypass",
                    path.display()
                );
                (probe, None)
            }
        };
        let align = dio.unwrap_or(1).max(1);
        let per_block = packets_per_block(payload as u64, align);
        let block_bytes = per_block * payload as u64;
        let slot_bytes = (block_bytes + align).div_ceil(CHUNK as u64) * CHUNK as u64;
        let header_bytes = RING as u64 * HEADER_SLOT;
        let layout = Layout { align, per_block, block_bytes, slot_bytes, header_bytes };
        let umem_len = header_bytes + SLOTS as u64 * slot_bytes;
        let umem =
            Umem::new(UmemConfig { len: umem_len as usize, chunk_size: CHUNK, unaligned: opts.unaligned, huge_pages: false })?;
        let cfg = XskConfig {
            ifindex,
            queue: opts.queue,
            rx_size: 0,
            tx_size: RING,
            fill_size: 64,
            completion_size: RING,
            bind_mode: opts.bind_mode,
            need_wakeup: false,
            multi_buffer: true,
            tx_budget: Some(256),
        };
        let sock = XskSocket::new(umem, &cfg).map_err(|e| io::Error::new(e.kind(), format!("AF_XDP socket on {iface}: {e}")))?;
        log::info!(
            "AF_XDP TX on {iface} queue {} ({}), payload {payload} B, {per_block} packets per {} KiB block",
            opts.queue,
            if sock.is_zerocopy() { "zero copy" } else { "copy mode" },
            block_bytes >> 10
        );
        let reader = ReadRing::new(2 * SLOTS as u32).map_err(io::Error::other)?;
        Ok(XdpPath { reader, sock, iface, mtu, src_mac, payload, file, dio, unaligned: opts.unaligned, layout })
    }
}

/// Packets per block: the fewest whole packets whose bytes are a multiple
/// of `align`, times as many as fit in about BLOCK_TARGET.
fn packets_per_block(payload: u64, align: u64) -> u64 {
    let g = gcd(payload, align);
    let unit = align / g; // packets per smallest aligned block
    let units = (BLOCK_TARGET / (unit * payload)).max(1);
    unit * units
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

pub fn send(s: &mut Stream, p: XdpPath, to: SocketAddr, transfer_id: u32) -> io::Result<DataPath> {
    let (mac, window) = (s.peer.mac.clone(), s.peer.window);
    let (src_ip, dst_ip) = match (s.sock.local_addr()?.ip(), to.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a, b),
        _ => return Err(io::Error::new(io::ErrorKind::Unsupported, "af-xdp frames are IPv4")),
    };
    // The kernel's own answer first (it resolved the next hop for the
    // control connection); the receiver's word only if the tables say nothing.
    let (dst_mac, next_hop) = match crate::route::resolve(&p.iface, dst_ip) {
        Some((hop, mac)) => (mac, format!("{hop} ({}) from the neighbour table", wire::format_mac(&mac))),
        None => {
            let mac = mac.as_deref().and_then(wire::parse_mac).ok_or_else(|| {
                io::Error::other("no route or neighbour entry for the receiver, and it announced no MAC address")
            })?;
            (mac, format!("{dst_ip} ({}) as the receiver announced", wire::format_mac(&mac)))
        }
    };
    let template =
        FrameTemplate { src_mac: p.src_mac, dst_mac, src_ip, dst_ip, src_port: s.sock.local_addr()?.port(), dst_port: to.port() };
    let plan = PacketPlan::new(s.size, p.payload);
    let zerocopy = p.sock.is_zerocopy();
    let Layout { align, per_block, block_bytes, slot_bytes, header_bytes } = p.layout;
    let mut sink = XdpSink {
        reader: p.reader,
        sock: p.sock,
        blocks: Vec::new(),
        at: 0,
        ahead: 0,
        done: Vec::with_capacity(SLOTS),
        template,
        transfer_id,
        file: &p.file,
        size: s.size,
        align,
        per_block,
        block_bytes,
        header_bytes,
        slot_bytes,
        hdr_free: (0..RING as u64).map(|i| i * HEADER_SLOT).collect(),
        slots: vec![Slot { held: Held::Nothing, len: 0, pos: None, outstanding: 0 }; SLOTS],
        unsubmitted: 0,
        kicks: 0,
        reads: 0,
        descs: (u32::MAX, 0),
    };
    let (stats, calls) = send_rounds(s, &plan, window, &mut sink)?;
    let xs = sink.sock.statistics()?;
    let (lo, hi) = sink.descs;
    let frame_layout = format!(
        "{}{} descriptors per packet: a {}-byte header frame + the payload in place in the UMEM, cut at {}-byte chunk edges ({} UMEM)",
        if lo < hi { format!("{lo}-") } else { String::new() },
        hi,
        FRAME_HEADER_LEN,
        CHUNK,
        if p.unaligned { "unaligned" } else { "aligned" }
    );
    Ok(DataPath {
        syscalls: calls,
        zerocopy: None,
        packets: Some(stats),
        af_xdp: Some(AfXdpTx {
            iface: p.iface.clone(),
            bind_mode: if zerocopy { "zerocopy" } else { "copy" }.into(),
            mtu: p.mtu,
            frame_layout,
            tx_invalid: xs.tx_invalid_descs,
            o_direct: p.dio.is_some(),
            next_hop,
        }),
    })
}

/// What a UMEM block slot holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Held {
    Nothing,
    /// An asynchronous read of this block is in flight: hands off.
    Reading(u64),
    Ready(u64),
}

#[derive(Clone, Copy)]
struct Slot {
    held: Held,
    /// Bytes of the block (the read may be rounded up past them).
    len: u64,
    /// Position of its block in the current call's block list (None: not needed).
    pos: Option<usize>,
    /// Descriptors pointing into it that the kernel has not completed.
    outstanding: u32,
}

struct XdpSink<'a> {
    /// Declared before `sock`: dropped first, so no read can land in a
    /// UMEM that is gone (its Drop waits for reads in flight).
    reader: ReadRing,
    sock: XskSocket,
    /// The blocks this call sends, in order; `at` is the one being sent,
    /// `ahead` the next one to read ahead.
    blocks: Vec<u64>,
    at: usize,
    ahead: usize,
    done: Vec<(u64, i32)>,
    template: FrameTemplate,
    transfer_id: u32,
    file: &'a File,
    size: u64,
    align: u64,
    per_block: u64,
    block_bytes: u64,
    header_bytes: u64,
    slot_bytes: u64,
    hdr_free: Vec<u64>,
    slots: Vec<Slot>,
    unsubmitted: u32,
    kicks: u64,
    reads: u64,
    /// Fewest and most descriptors a packet took.
    descs: (u32, u32),
}

impl XdpSink<'_> {
    fn slot_addr(&self, slot: usize) -> u64 {
        self.header_bytes + slot as u64 * self.slot_bytes
    }

    /// Takes back what the kernel has sent: header frames and slot references.
    fn reap(&mut self) -> u32 {
        let (n, idx) = self.sock.completion.peek(RING);
        for k in 0..n {
            let addr = self.sock.completion.read(idx.wrapping_add(k));
            if addr < self.header_bytes {
                self.hdr_free.push(addr - addr % HEADER_SLOT);
            } else {
                let slot = ((addr - self.header_bytes) / self.slot_bytes) as usize;
                if let Some(s) = self.slots.get_mut(slot) {
                    s.outstanding = s.outstanding.saturating_sub(1);
                }
            }
        }
        self.sock.completion.release(n);
        n
    }

    /// Publishes what is written on the TX ring and asks the kernel to send.
    fn kick(&mut self) -> io::Result<()> {
        if self.unsubmitted > 0 {
            let n = self.unsubmitted;
            self.sock.tx.as_mut().expect("TX ring").submit(n);
            self.unsubmitted = 0;
        }
        self.kicks += 1;
        self.sock.kick_tx()
    }

    /// Kicks and reaps until `ready` holds; fails if the kernel stops moving.
    fn wait_for(&mut self, wd: &mut Watchdog, mut ready: impl FnMut(&mut Self) -> bool) -> io::Result<()> {
        while !ready(self) {
            self.kick()?;
            if self.reap() > 0 {
                wd.progress()?;
            } else {
                wd.idle()?;
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// Starts reading `block` into `slot` (asynchronously, O_DIRECT).
    fn start_read(&mut self, slot: usize, block: u64, pos: usize) -> io::Result<()> {
        let offset = block * self.block_bytes;
        let len = (self.size - offset).min(self.block_bytes);
        let read_len = len.div_ceil(self.align) * self.align;
        let addr = self.slot_addr(slot);
        self.reads += 1;
        self.sock.umem.read_async(&mut self.reader, self.file, addr, read_len as usize, offset, slot as u64)?;
        self.slots[slot] = Slot { held: Held::Reading(block), len, pos: Some(pos), outstanding: 0 };
        Ok(())
    }

    /// Collects finished reads; with `wait`, first waits a little for one.
    fn finish_reads(&mut self, wait: bool) -> io::Result<()> {
        if wait && self.reader.in_flight() > 0 {
            self.reads += 1;
            self.reader.wait(IO_TICK)?;
        }
        self.done.clear();
        self.reader.reap(&mut self.done);
        for k in 0..self.done.len() {
            let (tag, res) = self.done[k];
            let slot = tag as usize;
            let Held::Reading(block) = self.slots[slot].held else { continue };
            if res < 0 {
                return Err(io::Error::from_raw_os_error(-res));
            }
            let got = res as u64;
            if got < self.slots[slot].len {
                // A short read (rare): finish it synchronously.
                let offset = block * self.block_bytes;
                let want = self.slots[slot].len;
                let addr = self.slot_addr(slot);
                let buf = self
                    .sock
                    .umem
                    .slice_mut(addr, want.div_ceil(self.align) as usize * self.align as usize)
                    .map_err(io::Error::other)?;
                let mut at = got - got % self.align;
                while at < want {
                    self.reads += 1;
                    let n = self.file.read_at(&mut buf[at as usize..], offset + at)?;
                    if n == 0 {
                        return Err(super::file_shrank(offset + at, self.size));
                    }
                    at += n as u64;
                }
            }
            self.slots[slot].held = Held::Ready(block);
        }
        Ok(())
    }

    /// Starts reads of the blocks coming next, into slots nobody needs.
    fn read_ahead(&mut self) -> io::Result<()> {
        while self.ahead < self.blocks.len() && self.ahead < self.at + SLOTS {
            let block = self.blocks[self.ahead];
            let have = self.slots.iter().position(|s| matches!(s.held, Held::Reading(b) | Held::Ready(b) if b == block));
            if let Some(i) = have {
                self.slots[i].pos = Some(self.ahead);
                self.ahead += 1;
                continue;
            }
            let at = self.at;
            let free = self
                .slots
                .iter()
                .position(|s| s.outstanding == 0 && !matches!(s.held, Held::Reading(_)) && s.pos.is_none_or(|p| p < at));
            let Some(slot) = free else { break };
            self.start_read(slot, block, self.ahead)?;
            self.ahead += 1;
        }
        Ok(())
    }

    /// The slot that holds block number `pos` of this call's list, once its
    /// read has completed; starts reads ahead meanwhile.
    fn load(&mut self, pos: usize, wd: &mut Watchdog) -> io::Result<usize> {
        self.at = pos;
        let block = self.blocks[pos];
        loop {
            self.finish_reads(false)?;
            self.read_ahead()?;
            match self.slots.iter().position(|s| matches!(s.held, Held::Reading(b) | Held::Ready(b) if b == block)) {
                Some(i) if self.slots[i].held == Held::Ready(block) => return Ok(i),
                Some(_) => {
                    // Keep the wire busy while the disk works.
                    self.kick()?;
                    self.reap();
                    self.finish_reads(true)?;
                    wd.progress()?;
                }
                None => {
                    // Every slot is still referenced by packets in flight.
                    self.kick()?;
                    if self.reap() == 0 {
                        wd.idle()?;
                        std::thread::yield_now();
                    }
                }
            }
        }
    }

    /// Puts packet `i` (in block slot `slot`) on the TX ring.
    fn queue(&mut self, plan: &PacketPlan, i: u64, slot: usize, flags: u16, wd: &mut Watchdog) -> io::Result<()> {
        let len = plan.len(i) as u64;
        let start = self.header_bytes + slot as u64 * self.slot_bytes + (i % self.per_block) * plan.payload as u64;
        let end = start + len;
        let chunk = CHUNK as u64;
        let pieces = ((end - 1) / chunk - start / chunk + 1) as u32;
        let descs = 1 + pieces;
        self.descs = (self.descs.0.min(descs), self.descs.1.max(descs));
        self.wait_for(wd, |me| !me.hdr_free.is_empty())?;
        let idx = loop {
            if let Some(idx) = self.sock.tx.as_mut().expect("TX ring").reserve(descs) {
                break idx;
            }
            self.wait_for(wd, |me| me.sock.tx.as_mut().expect("TX ring").free(descs) >= descs)?;
        };
        let hdr = self.hdr_free.pop().expect("waited for a free header frame");
        let lab = LabHeader { transfer_id: self.transfer_id, offset: plan.offset(i), len: len as u32, flags };
        let frame: &mut [u8; FRAME_HEADER_LEN] =
            self.sock.umem.slice_mut(hdr, FRAME_HEADER_LEN).map_err(io::Error::other)?.try_into().expect("exact length");
        self.template.write_header(&lab, frame);
        let tx = self.sock.tx.as_mut().expect("TX ring");
        tx.write(idx, XdpDesc { addr: hdr, len: FRAME_HEADER_LEN as u32, options: libc::XDP_PKT_CONTD });
        let mut addr = start;
        for k in 0..pieces {
            let next = end.min((addr / chunk + 1) * chunk);
            let options = if next < end { libc::XDP_PKT_CONTD } else { 0 };
            tx.write(idx.wrapping_add(1 + k), XdpDesc { addr, len: (next - addr) as u32, options });
            addr = next;
        }
        self.slots[slot].outstanding += pieces;
        self.unsubmitted += descs;
        if self.unsubmitted >= BATCH {
            self.kick()?;
            self.reap();
        }
        Ok(())
    }
}

impl PacketSink for XdpSink<'_> {
    fn send(
        &mut self,
        plan: &PacketPlan,
        ranges: &[(u64, u64)],
        resent: bool,
        flow: &mut Flow,
        wd: &mut Watchdog,
    ) -> io::Result<u64> {
        let (kicks0, reads0) = (self.kicks, self.reads);
        let flags = if resent { FLAG_RESENT } else { 0 };
        self.blocks.clear();
        for &(a, b) in ranges.iter().filter(|(a, b)| a < b) {
            for block in a / self.per_block..=(b - 1) / self.per_block {
                if self.blocks.last() != Some(&block) {
                    self.blocks.push(block);
                }
            }
        }
        for s in &mut self.slots {
            s.pos = None;
        }
        self.ahead = 0;
        let mut pos = 0;
        for &(a, b) in ranges {
            let mut i = a;
            while i < b {
                let block = i / self.per_block;
                let end = ((block + 1) * self.per_block).min(b);
                while self.blocks[pos] != block {
                    pos += 1;
                }
                let slot = self.load(pos, wd)?;
                for j in i..end {
                    if flow.must_wait() {
                        self.kick()?;
                        self.reap();
                    }
                    flow.admit(wd)?;
                    self.queue(plan, j, slot, flags, wd)?;
                }
                i = end;
            }
        }
        // Everything must have left before the round is declared done.
        let ring = RING;
        self.wait_for(wd, |me| {
            me.unsubmitted == 0 && me.sock.tx.as_ref().expect("TX ring").pending() == 0 && me.hdr_free.len() == ring as usize
        })?;
        Ok(self.kicks - kicks0 + self.reads - reads0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_whole_packets_at_aligned_offsets() {
        for (payload, align) in [(1448u64, 512u64), (8948, 512), (1448, 4096), (1001 & !1, 512), (64, 512), (1448, 1)] {
            let k = packets_per_block(payload, align);
            assert!(k >= 1);
            assert_eq!((k * payload) % align, 0, "{payload} {align}");
            assert!(k * payload <= BLOCK_TARGET.max(payload * align), "{payload} {align}: {k}");
        }
        assert_eq!(packets_per_block(1448, 512), 704, "11 units of 64 packets = 1,019,392 bytes");
    }
}
