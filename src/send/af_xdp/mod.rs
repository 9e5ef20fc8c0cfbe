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

//!
//! The parts: `blocks.rs` (the file's blocks in UMEM slots, read ahead),
//! `tx.rs` (a packet as descriptors, and what the completion ring gives
//! back), and this file, which sets them up and runs the rounds.

mod blocks;
mod layout;
mod queues;
mod reader;
mod tx;

use super::packets::{send_rounds, Admit, Flow, PacketSink};
use super::DataPath;
use super::Stream;
use crate::report::{AfXdpTx, QueuePackets, TxPath};
use crate::sys;
use crate::transfer::af_xdp::{socket_error, wait_for_busy_queue, FrameLayout, Iface, Knobs, CHUNK, TX_BUDGET};
use crate::transfer::plan::PacketPlan;
use crate::transfer::Watchdog;
use crate::wire::{self, FrameTemplate, LabHeader, FLAG_RESENT, FRAME_HEADER_LEN, FRAME_HEADER_LEN_V6};
use crate::xsk::{BindMode, PoolId, PoolSpec, Umem, UmemConfig, XskSocket, TX_METADATA_LEN};
use blocks::{BlockCache, Poll};
use layout::BlockLayout;
pub use layout::Segment as ReadSegment;
pub use reader::{BlockReader, DirectReader, ReadDone};
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;
use tx::PacketTx;
pub use tx::{cut, pieces};

/// Bytes per header frame (the 66-byte header, rounded up).
const HEADER_FRAME: u32 = 128;
/// TX and completion ring entries, and header frames.
const RING: u32 = 4096;
/// File blocks held in the UMEM at once (read ahead while others are sent).
const SLOTS: u32 = 8;
/// The UMEM's pools.
const HEADERS: PoolId = PoolId(0);
const BLOCKS: PoolId = PoolId(1);
/// A disk read that takes longer than this is an error.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The sender's choices for the AF_XDP path.
#[derive(Debug, Clone)]
pub struct AfXdpOptions {
    /// The interface to send on (default: the one the control connection uses).
    pub iface: Option<String>,
    /// The first queue; `queues` sockets (one thread each) bind to
    /// `queue..queue + queues` (default: the interface's TX queues, at most one per CPU).
    pub queue: u32,
    pub queues: Option<u32>,
    pub bind_mode: BindMode,
    /// Register the UMEM in unaligned-chunk mode (default) or aligned mode.
    pub unaligned: bool,
    /// The UMEM's chunk size: 2048 or 4096 (CHUNK).
    pub chunk: u32,
    /// Need-wakeup, busy polling, TX budget (default TX_BUDGET).
    pub knobs: Knobs,
    /// Split or contiguous frames (default: the better one for how the file is read).
    pub layout: Option<FrameLayout>,
    /// With several queues: one UMEM shared by their sockets (`XDP_SHARED_UMEM`), not one each.
    pub shared_umem: bool,
}

/// Everything set up before the Hello, so none of it is timed: interface,
/// MTU, payload, the file opened for direct I/O, the block layout, the UMEM
/// and the bound socket, the io_uring for reads.
pub struct XdpPath {
    /// Per queue: the bound socket and its own reader of the file's blocks.
    queues: Vec<(u32, PacketTx, BlockCache<DirectReader>)>,
    iface: Iface,
    pub payload: u32,
    /// The block layout of payloads a direct receiver can write with O_DIRECT, if one fits.
    direct: Option<BlockLayout>,
    o_direct: bool,
    unaligned: bool,
    /// The UMEM's chunk size.
    chunk: u32,
    knobs: Knobs,
    layout: FrameLayout,
    /// The queues' sockets share one UMEM.
    shared: bool,
}

impl XdpPath {
    pub fn prepare(path: &Path, ctrl: &TcpStream, opts: &AfXdpOptions) -> io::Result<XdpPath> {
        let iface = Iface::find(opts.iface.as_deref(), ctrl.local_addr()?.ip())?;
        // IPv6 needs a UDP checksum: each packet asks the kernel for it in TX metadata.
        let v6 = ctrl.peer_addr()?.is_ipv6();
        let (header, metadata) = if v6 { (FRAME_HEADER_LEN_V6, TX_METADATA_LEN) } else { (FRAME_HEADER_LEN, 0) };
        let payload = wire::payload_for(iface.mtu, v6)
            .map(|p| p & !1) // even, so every TX address stays even (see FACTS: the completion ring clears bit 0)
            .filter(|p| *p >= 64)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "MTU {} of {} leaves under 64 payload bytes a packet: give it a larger MTU (`zclab env up --mtu BYTES`)",
                        iface.mtu, iface.name
                    ),
                )
            })?;
        if ![2048, CHUNK].contains(&opts.chunk) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a UMEM chunk of {} bytes: zclab takes 2048 or {CHUNK}", opts.chunk),
            ));
        }
        let (file, align) = open_direct(path, opts.chunk)?;
        let size = file.metadata()?.len();
        // IPv6 in copy mode needs one descriptor a packet (see `split_v6_error`).
        let kind = opts.layout.unwrap_or(if v6 { FrameLayout::Contiguous } else { FrameLayout::best_for(align.is_some()) });
        let front = header as u64 + metadata as u64;
        let mtu_payload = payload;
        let layout = block_layout(kind, payload, align.unwrap_or(1), &iface, front, opts.chunk)?;
        let payload = layout.payload as u32;
        // What a receiver that writes with O_DIRECT may ask for instead (see `recut`).
        let direct = crate::transfer::af_xdp::direct_payload(mtu_payload as u64)
            .and_then(|d| block_layout(kind, d as u32, align.unwrap_or(1), &iface, front, opts.chunk).ok())
            .filter(|l| crate::transfer::af_xdp::direct_payload(l.payload) == Some(l.payload));
        let knobs = Knobs { tx_budget: Some(opts.knobs.tx_budget.unwrap_or(TX_BUDGET)), ..opts.knobs }.effective();
        let count = opts.queues.unwrap_or_else(|| default_queues(&iface.name, |(_, tx)| tx));
        iface.check_queues(opts.queue, count, false)?;
        let umem_cfg = UmemConfig {
            pools: vec![
                PoolSpec { frame_size: HEADER_FRAME, count: RING },
                PoolSpec { frame_size: layout.slot_bytes.max(direct.map_or(0, |d| d.slot_bytes)) as u32, count: SLOTS },
            ],
            chunk_size: opts.chunk,
            unaligned: opts.unaligned,
            huge_pages: false,
            fill_size: 64,
            completion_size: RING,
            tx_metadata_len: metadata,
            tx_sw_csum: true,
            frame_headroom: 0,
        };
        let shared = opts.shared_umem && count > 1;
        let umems = Umem::per_queue(&umem_cfg, count, shared)?;
        let mut queues = Vec::new();
        for (queue, umem) in (opts.queue..).zip(umems) {
            let cfg = iface.socket_config(queue, opts.bind_mode, &knobs);
            let (mut sock, tx_ring) =
                XskSocket::bind_tx(umem, RING, &cfg, wait_for_busy_queue).map_err(|e| socket_error(&iface.name, e))?;
            if v6 && kind == FrameLayout::Split && !sock.is_zerocopy() {
                return Err(split_v6_error());
            }
            log::info!(
                "AF_XDP TX on {} queue {queue} ({}), {} frames, payload {payload} B, {} packets per {} KiB block",
                iface.name,
                if sock.is_zerocopy() { "zero copy" } else { "copy mode" },
                kind.name(),
                layout.packets_per_block,
                layout.block_bytes >> 10
            );
            // Each queue reads its own blocks, through its own ring.
            let file = file.try_clone()?;
            let frames = sock.umem_mut().frames_mut();
            let slots: Vec<_> = (0..SLOTS).filter_map(|_| frames.alloc(BLOCKS)).collect();
            let reader = DirectReader::new(file, 2 * slots.len() as u32)?;
            let cache = BlockCache::new(reader, layout, size, slots, READ_TIMEOUT);
            let tx = PacketTx::new(sock, tx_ring, HEADERS, &iface.name, knobs.need_wakeup, v6);
            queues.push((queue, tx, cache));
        }
        Ok(XdpPath {
            queues,
            iface,
            payload,
            direct,
            o_direct: align.is_some(),
            unaligned: opts.unaligned,
            chunk: opts.chunk,
            knobs,
            layout: kind,
            shared,
        })
    }

    pub fn mtu(&self) -> u32 {
        self.iface.mtu
    }

    /// The payload offered to a receiver that writes with O_DIRECT (the Hello's `direct_payload`).
    pub fn direct_payload(&self) -> Option<u64> {
        self.direct.map(|l| l.payload)
    }

    /// Cuts packets of `payload` bytes instead, as the receiver asked in
    /// its Ready: only the payload offered, and before anything was sent.
    pub fn recut(&mut self, payload: u64) -> io::Result<()> {
        let Some(layout) = self.direct.filter(|l| l.payload == payload) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the receiver asked for {payload}-byte payloads; this sender offered {}",
                    self.direct_payload().map_or("none".into(), |d| format!("{d}"))
                ),
            ));
        };
        for (_, _, cache) in &mut self.queues {
            cache.set_layout(layout);
        }
        self.payload = payload as u32;
        Ok(())
    }

    /// The queues it sends on (a socket and a thread each).
    pub fn queues(&self) -> u32 {
        self.queues.len() as u32
    }
}

/// Why split frames cannot carry IPv6 in copy mode: the kernel finishes a
/// requested checksum (`XDP_UMEM_TX_SW_CSUM`) when it turns a packet's
/// *first* descriptor into an skb, before the payload descriptors are
/// attached, so the sum covers the header only. Measured here: every split
/// IPv6 frame arrived with a wrong UDP checksum, every contiguous one right.
fn split_v6_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "IPv6 af-xdp in copy mode needs --frame-layout contiguous: the kernel computes the UDP checksum \
         when it builds the skb from a packet's first descriptor, before the payload descriptors are \
         attached, so a split frame's checksum would cover its header only",
    )
}

/// How the file's blocks lie in the UMEM for frame layout `kind`, given
/// the largest payload the MTU allows and the O_DIRECT alignment.
/// `front`: the bytes a contiguous frame needs in front of its payload
/// (TX metadata, if any, and the header).
fn block_layout(
    kind: FrameLayout,
    mtu_payload: u32,
    align: u64,
    iface: &Iface,
    front: u64,
    chunk: u32,
) -> io::Result<BlockLayout> {
    let chunk = chunk as u64;
    match kind {
        FrameLayout::Split => Ok(BlockLayout::new(mtu_payload as u64, align, chunk)),
        FrameLayout::Contiguous => {
            let header = front;
            let room = chunk.saturating_sub(header.div_ceil(align) * align);
            let payload = ((mtu_payload as u64).min(room) / align * align) & !1; // even: see FACTS on odd TX addresses
            BlockLayout::contiguous(payload, align, chunk, header).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "MTU {} of {} leaves {mtu_payload} payload bytes, less than the {align}-byte O_DIRECT unit a \
                         contiguous frame carries: use --frame-layout split",
                        iface.mtu, iface.name
                    ),
                )
            })
        }
    }
}

/// Queues to use when `--queues` is not given: what the interface has in
/// use (`which` picks RX or TX from `sys::iface::queues`), at most one per CPU.
pub fn default_queues(iface: &str, which: impl Fn((u32, u32)) -> u32) -> u32 {
    let have = crate::sys::iface::queues(iface).map(which).unwrap_or(1);
    have.clamp(1, crate::sys::sched::cpus() as u32)
}

/// Opens the file for direct I/O where its filesystem has it; returns the
/// file and its O_DIRECT alignment (None: buffered, through the page cache).
pub fn open_direct(path: &Path, chunk: u32) -> io::Result<(File, Option<u64>)> {
    let probe = File::open(path)?;
    match sys::file::dio_align(&probe)? {
        Some((mem, off)) if mem <= chunk => {
            let f = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)?;
            Ok((f, Some(off.max(mem) as u64)))
        }
        _ => {
            log::warn!(
                "{} is on a filesystem without direct I/O (tmpfs?): reading it through the page cache; \
                 this run does NOT show a page-cache bypass",
                path.display()
            );
            Ok((probe, None))
        }
    }
}

/// The UDP source port of flow `i`: `base + i`, kept among the
/// unprivileged ports (1024 and up) when it wraps.
fn flow_port(base: u16, i: u16) -> u16 {
    let p = base as u32 + i as u32;
    if p > u16::MAX as u32 {
        (1024 + (p - u16::MAX as u32 - 1) % (u16::MAX as u32 - 1023)) as u16
    } else {
        p as u16
    }
}

/// How long the sender waits for the kernel to resolve the next hop's MAC.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The destination MAC: the kernel's answer (its route to the receiver and
/// the next hop's neighbour entry, over rtnetlink, IPv4 or IPv6); the
/// receiver's own word only if the receiver is on-link and the kernel could
/// not resolve it. Returns it with a note of where it came from.
fn destination_mac(iface: &Iface, dst_ip: IpAddr, announced: Option<&str>) -> io::Result<([u8; 6], String)> {
    match crate::route::resolve(&iface.name, iface.index, dst_ip, RESOLVE_TIMEOUT) {
        Ok(h) => Ok((
            h.mac,
            format!(
                "{} ({}) from the neighbour table{}",
                h.hop,
                wire::format_mac(&h.mac),
                if h.via_gateway { ", the gateway to the receiver" } else { "" }
            ),
        )),
        Err(crate::route::RouteError::Unresolved { hop, .. }) if hop == dst_ip && announced.is_some() => {
            let mac = announced
                .and_then(wire::parse_mac)
                .ok_or_else(|| io::Error::other("the receiver announced a MAC that is not one"))?;
            Ok((mac, format!("{dst_ip} ({}) as the receiver announced", wire::format_mac(&mac))))
        }
        Err(e) => Err(io::Error::other(e)),
    }
}

pub fn send(s: &mut Stream, p: XdpPath, to: SocketAddr, transfer_id: u32) -> io::Result<DataPath> {
    let (src_ip, dst_ip) = (s.sock.local_addr()?.ip(), to.ip());
    let (dst_mac, next_hop) = destination_mac(&p.iface, dst_ip, s.peer.mac.as_deref())?;
    let template = FrameTemplate {
        src_mac: p.iface.mac,
        dst_mac,
        src_ip,
        dst_ip,
        src_port: s.sock.local_addr()?.port(),
        dst_port: to.port(),
    };
    let plan = PacketPlan::new(s.size, p.payload);
    let window = s.peer.window;
    // Each queue's flow its own UDP source port (the control connection's, then the next
    // ones): a real NIC's RSS hashes addresses and ports, so distinct flows can spread.
    let mut sinks: Vec<XdpSink> = p
        .queues
        .into_iter()
        .enumerate()
        .map(|(i, (queue, tx, cache))| {
            let src_port = flow_port(template.src_port, i as u16);
            XdpSink { queue, tx, cache, template: FrameTemplate { src_port, ..template.clone() }, transfer_id, packets: 0 }
        })
        .collect();
    let (stats, calls) = if sinks.len() == 1 {
        send_rounds(s, &plan, window, &mut sinks[0])?
    } else {
        send_rounds(s, &plan, window, &mut queues::Queues(&mut sinks))?
    };
    let mut tx_invalid = 0;
    for sink in &sinks {
        tx_invalid += sink.tx.statistics()?.tx_invalid_descs;
    }
    let lo = sinks.iter().map(|k| k.tx.descs_per_packet.0).min().unwrap_or(0);
    let hi = sinks.iter().map(|k| k.tx.descs_per_packet.1).max().unwrap_or(0);
    let sink = &sinks[0];
    let umem = if p.unaligned { "unaligned" } else { "aligned" };
    let header = template.header_len();
    let csum = if template.is_v6() { ", the UDP checksum left to the kernel (TX metadata)" } else { "" };
    let frame_layout = match p.layout {
        FrameLayout::Split => format!(
            "{}{} descriptors per packet: a {header}-byte header frame + the payload in place in the UMEM, cut at {}-byte chunk edges ({umem} UMEM){csum}",
            if lo < hi { format!("{lo}-") } else { String::new() },
            hi,
            p.chunk,
        ),
        FrameLayout::Contiguous => {
            let l = sink.cache.layout();
            format!(
                "1 descriptor per packet: the {header}-byte header written right in front of the payload, which an O_DIRECT \
                 read put {} bytes into a {}-byte cell ({umem} UMEM){csum}",
                l.headroom, l.stride
            )
        }
    };
    Ok(DataPath {
        syscalls: calls,
        zerocopy: None,
        packets: Some(stats),
        af_xdp_tcp: None,
        done: None,
        af_xdp: Some(AfXdpTx {
            iface: p.iface.name.clone(),
            bind_mode: if sinks.iter().all(|k| k.tx.socket().is_zerocopy()) { "zerocopy" } else { "copy" }.into(),
            path: TxPath {
                mtu: p.iface.mtu,
                layout: p.layout,
                payload: p.payload,
                frame_layout,
                tx_invalid,
                o_direct: p.o_direct,
                next_hop,
            },
            knobs: p.knobs,
            kicks: sinks.iter().map(|k| k.tx.kicks).sum(),
            kicks_skipped: sinks.iter().map(|k| k.tx.kicks_skipped).sum(),
            queues: sinks
                .iter()
                .map(|k| QueuePackets { queue: k.queue, packets: k.packets, src_port: Some(k.template.src_port) })
                .collect(),
            shared_umem: p.shared,
        }),
    })
}

/// The af-xdp data plane: blocks from the cache, packets onto the TX ring.
struct XdpSink {
    queue: u32,
    tx: PacketTx,
    cache: BlockCache<DirectReader>,
    template: FrameTemplate,
    transfer_id: u32,
    /// Packets put on this queue's TX ring.
    packets: u64,
}

impl XdpSink {
    /// The slot that holds the round's block at `pos`, once read; keeps the
    /// wire busy while the disk works.
    fn load(&mut self, pos: usize, wd: &mut Watchdog) -> io::Result<usize> {
        loop {
            match self.cache.poll(pos, self.tx.frames_mut())? {
                Poll::Ready(slot) => return Ok(slot),
                Poll::Reading => {
                    self.tx.kick()?;
                    self.tx.reap();
                    self.cache.wait_for_reads(self.tx.frames_mut())?;
                    wd.progress()?;
                }
                Poll::NoSlot => {
                    // Every slot is still referenced by packets in flight.
                    self.tx.kick()?;
                    if self.tx.reap() == 0 {
                        wd.idle()?;
                        std::thread::yield_now();
                    }
                }
            }
        }
    }

    /// Puts packet `i`, whose block is in `slot`, on the TX ring.
    fn queue(&mut self, plan: &PacketPlan, i: u64, slot: usize, flags: u16, wd: &mut Watchdog) -> io::Result<()> {
        let lab = LabHeader { transfer_id: self.transfer_id, offset: plan.offset(i), len: plan.len(i), flags };
        let block = self.cache.data(slot).expect("load returned a ready slot");
        let layout = self.cache.layout();
        let at = layout.umem_offset(i);
        if layout.is_contiguous() {
            self.tx.queue_in_place(&self.template, &lab, block, at, wd)
        } else {
            self.tx.queue(&self.template, &lab, block, at, wd)
        }
    }
}

impl PacketSink for XdpSink {
    fn send(
        &mut self,
        plan: &PacketPlan,
        ranges: &[(u64, u64)],
        resent: bool,
        flow: &mut Flow,
        wd: &mut Watchdog,
    ) -> io::Result<u64> {
        self.send_packets(plan, ranges, resent, flow, wd)
    }
}

impl XdpSink {
    /// Sends the packets in `ranges`, asking `admit` before each; returns
    /// once all have left. Returns the syscalls made.
    fn send_packets(
        &mut self,
        plan: &PacketPlan,
        ranges: &[(u64, u64)],
        resent: bool,
        admit: &mut impl Admit,
        wd: &mut Watchdog,
    ) -> io::Result<u64> {
        let (kicks0, disk0) = (self.tx.kicks, self.cache.data_syscalls);
        let flags = if resent { FLAG_RESENT } else { 0 };
        self.cache.begin_round(ranges);
        let layout = *self.cache.layout();
        let mut pos = 0;
        for &(a, b) in ranges {
            let mut i = a;
            while i < b {
                let block = layout.block_of(i);
                let end = ((block + 1) * layout.packets_per_block).min(b);
                while self.cache.round()[pos] != block {
                    pos += 1;
                }
                let slot = self.load(pos, wd)?;
                for j in i..end {
                    if admit.must_wait() {
                        self.tx.kick()?;
                        self.tx.reap();
                    }
                    admit.admit(wd)?;
                    self.queue(plan, j, slot, flags, wd)?;
                    self.packets += 1;
                }
                i = end;
            }
        }
        // Everything must have left before the round is declared done.
        self.tx.wait_for(wd, |tx| tx.all_sent())?;
        Ok(self.tx.kicks - kicks0 + self.cache.data_syscalls - disk0)
    }
}

#[cfg(test)]
mod tests {
    use super::flow_port;

    #[test]
    fn each_flow_gets_the_next_port_and_a_wrap_stays_unprivileged() {
        assert_eq!((0..3).map(|i| flow_port(40000, i)).collect::<Vec<_>>(), [40000, 40001, 40002]);
        assert_eq!(flow_port(65535, 0), 65535);
        assert_eq!(flow_port(65535, 1), 1024);
        assert_eq!(flow_port(65534, 3), 1025);
    }
}
