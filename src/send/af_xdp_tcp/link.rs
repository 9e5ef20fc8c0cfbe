//! The AF_XDP side of an af-xdp-tcp end: the UMEM (header frames, the
//! send buffer's blocks, a prefix frame, receive frames), the socket, the
//! XDP program that steers the connection's segments to it, and the moves:
//! a segment onto the TX ring, the RX ring's frames checked and handed to
//! the connection.

use super::buffer::SendBuffer;
use super::{ChecksumCounts, TxChecksum};
use crate::tcp::{Connection, Transmit};
use crate::transfer::af_xdp::{socket_error, wait_for_busy_queue, Iface, Knobs, CHUNK, TX_BUDGET};
use crate::wire::{self, TcpFrame, TcpSegment};
use crate::xdp::{AttachMode, XdpSteering};
use crate::xsk::{
    checksum_request, BindMode, DescOpts, Frame, PoolId, PoolSpec, Received, Returned, Rx, RxFrame, Tx, Umem, UmemConfig,
    XskSocket, TX_METADATA_LEN,
};
use anyhow::{anyhow, Result};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const HEADERS: PoolId = PoolId(0);
const BLOCKS: PoolId = PoolId(1);
const SMALL: PoolId = PoolId(2);
/// Header frames: enough for every segment a full send buffer holds.
const HEADER_FRAMES: u32 = 4096;
const HEADER_FRAME: u32 = 256;
/// The send buffer: 16 blocks of 256 KiB.
pub const BLOCK: u64 = 256 << 10;
const SLOTS: u32 = 16;
/// Frames of one chunk: the fill ring's, and one for a prefix (a receiving end asks for more).
pub const RX_COUNT: u32 = 1024;
const RING: u32 = 2048;
/// TX descriptors one segment may take: its header and its payload's pieces.
const PER_SEGMENT: u32 = 8;

/// Where an end binds, and what its XDP program steers.
pub struct Bind<'a> {
    pub iface: &'a Iface,
    pub queue: u32,
    pub bind_mode: BindMode,
    pub attach: Option<AttachMode>,
    /// Segments to this port ...
    pub local: SocketAddr,
    /// ... from this peer (a connection this end opens), or from anyone (a port that listens).
    pub peer: Option<SocketAddr>,
    /// Who sums the TCP checksum.
    pub tx_checksum: TxChecksum,
    /// Receive frames (a power of two): the fill ring's size, and the most a
    /// receiving end can hold out of order or waiting for the disk.
    pub rx_frames: u32,
}

impl<'a> Bind<'a> {
    /// `opts`'s socket on `iface`, steering segments to `local` from anyone (see `Link::steer`).
    pub fn new(iface: &'a Iface, opts: &super::TcpXdpOptions, local: SocketAddr) -> Bind<'a> {
        Bind {
            iface,
            queue: opts.queue,
            bind_mode: opts.bind_mode,
            attach: opts.attach,
            local,
            peer: None,
            tx_checksum: opts.tx_checksum,
            rx_frames: RX_COUNT,
        }
    }
}

/// The socket and what goes with it.
pub struct Link {
    // Field order is drop order: the program first, then the socket.
    steering: XdpSteering,
    sock: XskSocket,
    rx: Rx,
    tx: Tx,
    pub(super) headers: Vec<Frame>,
    refill: Vec<Frame>,
    got: Vec<Received>,
    /// The block pool's frames while no send buffer holds them, and the prefix frame.
    pub(super) blocks: Vec<Frame>,
    pub(super) spare: Option<Frame>,
    src_mac: [u8; 6],
    pub(crate) dst_mac: [u8; 6],
    pub(super) local: SocketAddr,
    pub(super) peer: SocketAddr,
    pub(crate) checksum: ChecksumCounts,
    pub(crate) foreign: u64,
    /// The peer's bytes: counted, and kept (up to `keep`) for a server to read.
    pub(super) peer_bytes: u64,
    pub(super) peer_data: Vec<u8>,
    pub(super) keep: usize,
    /// ICMP destination unreachables that quoted this connection's segments.
    pub(super) icmp_unreachable: u64,
    /// Kicks of the TX ring and waits on the RX ring.
    pub(crate) syscalls: u64,
    in_flight: u32,
    /// The last frame taken off the RX ring was marked `more`: the next continues its packet.
    rx_contd: bool,
    /// The checksum is left to the device (TX metadata asks for it), not summed here.
    offload: bool,
}

impl Link {
    /// The UMEM, the socket, the XDP program steering `b`'s segments to it,
    /// and the fill ring filled.
    pub fn open(b: &Bind<'_>) -> Result<Link> {
        let cfg = UmemConfig {
            pools: vec![
                PoolSpec { frame_size: HEADER_FRAME, count: HEADER_FRAMES },
                PoolSpec { frame_size: BLOCK as u32, count: SLOTS },
                PoolSpec { frame_size: CHUNK, count: b.rx_frames + 1 },
            ],
            chunk_size: CHUNK,
            unaligned: true,
            huge_pages: false,
            fill_size: b.rx_frames,
            completion_size: RING,
            // Room in front of each descriptor for the request, unless told to sum in software.
            tx_metadata_len: if b.tx_checksum == TxChecksum::Software { 0 } else { TX_METADATA_LEN },
            // Not summed by the kernel at build time (that would cover the header frame only):
            // the skb stays CHECKSUM_PARTIAL over the header and every payload piece.
            tx_sw_csum: false,
            frame_headroom: 0,
        };
        let umem = Umem::new(&cfg)?;
        let frags = b.iface.mtu > crate::xdp::MAX_MTU_WITHOUT_FRAGS;
        let mut steering = XdpSteering::attach(&b.iface.name, 0, frags, b.attach)?;
        steering.steer_tcp(b.local.port(), b.peer)?;
        let knobs = Knobs { need_wakeup: false, busy_poll_us: None, busy_poll_budget: None, tx_budget: Some(TX_BUDGET) };
        let (mut sock, rx, tx) =
            XskSocket::bind_rx_tx(umem, b.rx_frames, &b.iface.socket_config(b.queue, b.bind_mode, &knobs), wait_for_busy_queue)
                .map_err(|e| socket_error(&b.iface.name, e))?;
        steering.register(b.queue, &sock)?;
        // A copy-mode socket always honours the request (the kernel, or the device it hands
        // the skb to, finishes it); a zero-copy driver may ignore it, so auto sums there.
        let offload = match b.tx_checksum {
            TxChecksum::Software => false,
            TxChecksum::Offload => true,
            TxChecksum::Auto => !sock.is_zerocopy(),
        };
        let frames = sock.umem_mut().frames_mut();
        let headers: Vec<Frame> = std::iter::from_fn(|| frames.alloc(HEADERS)).collect();
        let blocks: Vec<Frame> = std::iter::from_fn(|| frames.alloc(BLOCKS)).collect();
        let spare = frames.alloc(SMALL);
        let mut fill: Vec<Frame> = std::iter::from_fn(|| frames.alloc(SMALL)).collect();
        sock.umem_mut().fill(&mut fill).map_err(|e| anyhow!(e))?;
        Ok(Link {
            steering,
            sock,
            rx,
            tx,
            headers,
            refill: fill,
            got: Vec::with_capacity(64),
            blocks,
            spare,
            src_mac: b.iface.mac,
            dst_mac: [0; 6],
            local: b.local,
            peer: b.peer.unwrap_or(b.local),
            checksum: ChecksumCounts { tx_mode: if offload { "offload" } else { "software" }.into(), ..Default::default() },
            foreign: 0,
            peer_bytes: 0,
            peer_data: Vec::new(),
            keep: 0,
            icmp_unreachable: 0,
            syscalls: 0,
            in_flight: 0,
            rx_contd: false,
            offload,
        })
    }

    pub fn frames(&mut self) -> &mut crate::xsk::Frames {
        self.sock.umem_mut().frames_mut()
    }

    /// The UMEM's frames, to read (a receiving end writes the file from them).
    pub fn frames_ref(&self) -> &crate::xsk::Frames {
        self.sock.umem().frames()
    }

    /// Frames a receiving end kept (see [`Link::receive_keeping`]), back to the fill ring.
    pub fn give_back_rx(&mut self, frames: impl IntoIterator<Item = RxFrame>) -> Result<()> {
        self.refill.extend(frames.into_iter().map(RxFrame::into_frame));
        self.sock.umem_mut().fill(&mut self.refill).map_err(|e| anyhow!(e))?;
        Ok(())
    }

    pub fn is_zerocopy(&self) -> bool {
        self.sock.is_zerocopy()
    }

    pub fn xdp_mode(&self) -> &'static str {
        self.steering.mode.name()
    }

    /// Room on the TX ring and a header frame for one more segment: a
    /// header and up to four payload pieces (an MSS of 8960 over 4 KiB chunks).
    pub fn has_room(&mut self) -> bool {
        !self.headers.is_empty() && self.tx.free(PER_SEGMENT) >= PER_SEGMENT
    }

    /// Sends what the TX ring holds.
    pub fn kick(&mut self) -> Result<()> {
        if self.tx.pending() > 0 {
            self.syscalls += 1;
            self.tx.kick()?;
        }
        Ok(())
    }

    /// Waits up to `ms` for a frame on the RX ring.
    pub fn wait(&mut self, ms: i32) -> Result<()> {
        self.syscalls += 1;
        crate::sys::socket::poll_one(&self.sock, libc::POLLIN, ms)?;
        Ok(())
    }

    /// Steers to the socket the segments to the local port from `peer`
    /// (None: from anyone), and takes `peer` as the connection's.
    pub fn steer(&mut self, peer: Option<SocketAddr>) -> Result<()> {
        self.steering.steer_tcp(self.local.port(), peer)?;
        if let Some(p) = peer {
            self.peer = p;
        }
        Ok(())
    }

    /// Waits up to `timeout` for a SYN to the local port (a server between
    /// connections): its sender, the MAC it came from, and the segment.
    /// Anything else is counted and dropped.
    pub fn wait_syn(&mut self, timeout: Duration) -> Result<Option<(SocketAddr, [u8; 6], TcpSegment)>> {
        let t0 = Instant::now();
        let local = self.local;
        loop {
            let mut found = None;
            let Link { sock, rx, got, refill, foreign, .. } = self;
            drain(sock, rx, got, refill, foreign, |bytes| {
                let Ok(f) = wire::parse_tcp_frame(bytes, bytes.len()) else { return false };
                let syn = found.is_none()
                    && f.segment.flags.syn
                    && !f.segment.flags.ack
                    && f.dst == local.ip()
                    && f.segment.dst_port == local.port()
                    && (f.checksum.checksum_ok(&[bytes]) || field(bytes, &f) == f.checksum.pseudo);
                if syn {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&bytes[6..12]);
                    found = Some((SocketAddr::new(f.src, f.segment.src_port), mac, f.segment));
                }
                syn
            })?;
            if found.is_some() {
                return Ok(found);
            }
            crate::interrupt::check()?;
            let left = timeout.saturating_sub(t0.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            self.wait(left.as_millis().clamp(1, 100) as i32)?;
        }
    }
}

/// Takes up to 64 frames off the RX ring: hands each single-buffer packet's
/// bytes to `each`, which says whether it was one of ours; counts the rest
/// as foreign; and gives every frame back to the fill ring. Returns how many.
fn drain(
    sock: &mut XskSocket,
    rx: &mut Rx,
    got: &mut Vec<Received>,
    refill: &mut Vec<Frame>,
    foreign: &mut u64,
    mut each: impl FnMut(&[u8]) -> bool,
) -> Result<u32> {
    rx.receive(sock.umem_mut(), 64, got);
    let n = got.len() as u32;
    for r in got.drain(..) {
        match r {
            Received::Packet(p) => {
                // A multi-buffer packet is no segment of ours: an MSS fits one frame.
                if p.more || !each(p.bytes(sock.umem().frames())) {
                    *foreign += 1;
                }
                refill.push(p.into_frame());
            }
            Received::Malformed(f) => {
                *foreign += 1;
                refill.push(f);
            }
            Received::Foreign(_) => *foreign += 1,
        }
    }
    sock.umem_mut().fill(refill).map_err(|e| anyhow!(e))?;
    Ok(n)
}

/// The checksum field of a parsed frame.
fn field(bytes: &[u8], f: &TcpFrame) -> u16 {
    let at = f.checksum.tcp_at + wire::TCP_CHECKSUM_OFFSET;
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

impl Link {
    /// Puts `t` on the TX ring: its header frame, then its payload's pieces.
    pub fn transmit(&mut self, t: &Transmit, buf: &SendBuffer) -> Result<()> {
        let mut hdr = [0u8; HEADER_FRAME as usize];
        let payload_len = t.payload.map_or(0, |p| p.1) as usize;
        let (n, tcp_at) = wire::write_tcp_frame_headers(
            self.src_mac,
            self.dst_mac,
            self.local.ip(),
            self.peer.ip(),
            &t.segment,
            payload_len,
            &mut hdr,
        );
        let frames = self.sock.umem_mut().frames_mut();
        let payload = match t.payload {
            Some((off, len)) => {
                let (shared, at) = buf.locate(off).ok_or_else(|| anyhow!("stream byte {off} is not in the send buffer"))?;
                if !self.offload {
                    let bytes = frames.shared_bytes(shared, at, len)?;
                    self.checksum.cpu_payload_bytes_read += wire::finish_checksum(&mut hdr[..n], tcp_at, &[bytes]);
                }
                Some((shared, at, len))
            }
            None => {
                if !self.offload {
                    wire::finish_checksum(&mut hdr[..n], tcp_at, &[]);
                }
                None
            }
        };
        // With TX metadata in front of every descriptor, none may take a whole chunk: the
        // payload is cut at half-chunk edges instead (a piece and its metadata fit a chunk).
        let chunk = frames.chunk_size() as u64 / if self.offload { 2 } else { 1 };
        let pieces = payload.map_or(0, |(s, at, len)| crate::send::af_xdp::pieces(s.addr() + at, len as u64, chunk));
        let mut h = self.headers.pop().ok_or_else(|| anyhow!("no header frame free"))?;
        // The header at `front`; in front of it, the request to finish the checksum (the field
        // holds the pseudo-header's sum, which the device adds the rest to).
        let front = if self.offload { TX_METADATA_LEN as usize } else { 0 };
        {
            let bytes = frames.bytes_mut(&mut h);
            if self.offload {
                checksum_request(&mut bytes[..front], tcp_at as u16, wire::TCP_CHECKSUM_OFFSET as u16);
            }
            bytes[front..front + n].copy_from_slice(&hdr[..n]);
        }
        let mut r = self.tx.reserve(1 + pieces).ok_or_else(|| anyhow!("the TX ring had room a moment ago"))?;
        let opts = DescOpts { more: pieces > 0, metadata: self.offload };
        r.push_frame_at(frames, h, front as u32, n as u32, opts).map_err(|(_, e)| anyhow!(e))?;
        if let Some((shared, at, len)) = payload {
            for (i, (a, l)) in crate::send::af_xdp::cut(shared.addr() + at, len as u64, chunk).enumerate() {
                r.push_piece(frames, shared, a - shared.addr(), l, i as u32 + 1 < pieces)?;
            }
        }
        r.submit();
        self.in_flight += 1 + pieces;
        Ok(())
    }

    /// Puts on the TX ring every segment `conn` has due now (as far as the
    /// ring has room; a reset ends the round), and kicks it. Returns how many.
    pub fn send_due(&mut self, conn: &mut Connection, now: Instant, buf: &SendBuffer) -> Result<u32> {
        let mut sent = 0;
        while self.has_room() {
            let Some(t) = conn.poll_transmit(now, |off| buf.limit(off)) else { break };
            self.transmit(&t, buf)?;
            sent += 1;
            if t.why == crate::tcp::Why::Rst {
                break;
            }
        }
        self.kick()?;
        Ok(sent)
    }

    /// Header frames and payload pieces the kernel is done with.
    pub fn reclaim(&mut self) {
        let headers = &mut self.headers;
        let n = self.sock.umem_mut().complete(RING, |r| {
            if let Returned::Frame(f) = r {
                headers.push(f);
            }
        });
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// The frames the RX ring holds, each checked and handed to `conn`.
    pub fn receive(&mut self, conn: &mut Connection, now: Instant) -> Result<u32> {
        let Link { sock, rx, got, refill, foreign, checksum, peer_bytes, peer_data, keep, icmp_unreachable, local, peer, .. } =
            self;
        let (local, peer, keep) = (*local, *peer, *keep);
        drain(sock, rx, got, refill, foreign, |bytes| {
            let icmp = bytes.len() > 23
                && ((bytes[12..14] == [0x08, 0x00] && bytes[23] == 1) || (bytes[12..14] == [0x86, 0xdd] && bytes[20] == 58));
            if let Some(u) = icmp.then(|| wire::parse_unreachable(bytes)).flatten() {
                // The XDP program passes only those that quote this flow; check anyway.
                let ours = u.src == local && u.dst == peer;
                if ours {
                    *icmp_unreachable += 1;
                    conn.on_unreachable(u.seq);
                }
                return ours;
            }
            let Some(checked) = check(bytes, local, peer, checksum) else { return false };
            if let Some(f) = checked {
                let inc = conn.on_segment(&f.segment, f.payload_len, now);
                if let Some((off, len)) = inc.data {
                    *peer_bytes += len as u64;
                    let take = len.min(keep.saturating_sub(peer_data.len()));
                    let at = f.payload_at + off;
                    peer_data.extend_from_slice(&bytes[at..at + take]);
                }
            }
            true
        })
    }
}

impl Link {
    /// For a receiving end: the frames the RX ring holds, each checked and
    /// handed to `conn`, and each segment of the connection to `take` with
    /// its frame and what the connection made of it. `take` keeps the frame
    /// (its payload waits in the UMEM for the disk or for a hole to fill:
    /// it returns None) or gives it back. A packet in several frames is no
    /// segment of ours (the MSS this end advertises fits one frame): counted
    /// as foreign. The batch stops at a segment that opens a new hole or
    /// fills one, so that it gets an ACK of its own with its SACK blocks
    /// (RFC 5681 4.2): the sender learns of every hole, not of four per
    /// batch. Segments that only extend a block wait for the batch's ACK.
    /// The frames not yet looked at wait for the next call.
    pub fn receive_keeping(
        &mut self,
        conn: &mut Connection,
        now: Instant,
        mut take: impl FnMut(RxFrame, &TcpFrame, crate::tcp::Incoming) -> Option<RxFrame>,
    ) -> Result<u32> {
        let Link { sock, rx, got, refill, foreign, checksum, local, peer, rx_contd, .. } = self;
        if got.is_empty() {
            rx.receive(sock.umem_mut(), 64, got);
        }
        let mut looked = 0;
        while looked < got.len() {
            let r = std::mem::replace(&mut got[looked], Received::Foreign(crate::xsk::Foreign { addr: 0 }));
            looked += 1;
            // The frames after one marked `more` continue its packet, up to one not marked.
            let contd = std::mem::replace(rx_contd, matches!(&r, Received::Packet(p) if p.more));
            match r {
                Received::Packet(p) if !p.more && !contd => {
                    match check(p.bytes(sock.umem().frames()), *local, *peer, checksum) {
                        Some(Some(f)) => {
                            let inc = conn.on_segment(&f.segment, f.payload_len, now);
                            let urgent = inc.news && conn.ack_pending();
                            if let Some(back) = take(p, &f, inc) {
                                refill.push(back.into_frame());
                            }
                            if urgent {
                                break;
                            }
                        }
                        // A wrong checksum: counted, dropped.
                        Some(None) => refill.push(p.into_frame()),
                        None => {
                            *foreign += 1;
                            refill.push(p.into_frame());
                        }
                    }
                }
                Received::Packet(p) => {
                    *foreign += 1;
                    refill.push(p.into_frame());
                }
                Received::Malformed(f) => {
                    *foreign += 1;
                    refill.push(f);
                }
                Received::Foreign(_) => *foreign += 1,
            }
        }
        got.drain(..looked);
        sock.umem_mut().fill(refill).map_err(|e| anyhow!(e))?;
        Ok(looked as u32)
    }
}

/// A frame of the connection (`local`, `peer`): Some(the segment) if its
/// checksum is right or cannot be judged, Some(None) if it is wrong (counted,
/// dropped); None if the frame is not the connection's.
fn check(bytes: &[u8], local: SocketAddr, peer: SocketAddr, sums: &mut ChecksumCounts) -> Option<Option<TcpFrame>> {
    let f = wire::parse_tcp_frame(bytes, bytes.len()).ok()?;
    let ours =
        f.src == peer.ip() && f.segment.src_port == peer.port() && f.dst == local.ip() && f.segment.dst_port == local.port();
    if !ours {
        return None;
    }
    if f.checksum.checksum_ok(&[bytes]) {
        sums.rx_verified += 1;
    } else if field(bytes, &f) == f.checksum.pseudo {
        // CHECKSUM_PARTIAL left unfinished by a veth: the peer's kernel trusted a device
        // to finish it. The segment cannot be judged; it is taken.
        sums.rx_unverifiable += 1;
    } else {
        sums.rx_bad += 1;
        return Some(None);
    }
    Some(Some(f))
}
