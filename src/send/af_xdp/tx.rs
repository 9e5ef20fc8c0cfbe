//! TX: one packet becomes descriptors on the TX ring, and the completion
//! ring gives back what they held.
//!
//! A packet is a *header descriptor*, a whole [`Frame`] of the header pool
//! into which the CPU wrote the 66-byte Ethernet/IPv4/UDP/lab header, then
//! one or more *payload descriptors*, pieces of a [`SharedFrame`] that
//! holds file bytes read by O_DIRECT, cut at UMEM chunk edges. The two come
//! back differently: a header frame returns whole and goes back on the free
//! list; a payload piece returns as a name only, and the ledger counts the
//! pieces of its block still in flight (the block cache may reuse a block
//! only when none is).

use crate::transfer::Watchdog;
use crate::wire::{FrameTemplate, LabHeader};
use crate::xsk::{
    checksum_request, DescError, DescOpts, Frame, Frames, PoolId, Returned, SharedFrame, Tx, XskSocket, TX_METADATA_LEN,
};
use std::io;

/// Descriptors submitted per kick.
pub const BATCH: u32 = 256;

/// Bytes of TX metadata in front of a packet that asks for its checksum (or none).
fn metadata_len(checksum: bool) -> u32 {
    if checksum {
        TX_METADATA_LEN
    } else {
        0
    }
}

/// Writes a packet's front into `out`: the TX metadata that asks for its
/// UDP checksum (when `checksum`, and the frame needs one), then its header.
fn write_front(checksum: bool, template: &FrameTemplate, lab: &LabHeader, out: &mut [u8]) {
    let (m, header) = out.split_at_mut(metadata_len(checksum) as usize);
    if let Some((start, offset)) = template.checksum_request().filter(|_| checksum) {
        checksum_request(m, start, offset);
    }
    template.write_header(lab, header);
}

/// The pieces `[start, start + len)` of the UMEM is cut into so that none
/// crosses a multiple of `chunk` (the rule of an aligned UMEM, and no piece
/// is longer than a chunk in either mode): `(address, length)` pairs.
pub fn cut(start: u64, len: u64, chunk: u64) -> impl Iterator<Item = (u64, u32)> {
    let end = start + len;
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let next = end.min((at / chunk + 1) * chunk);
        let piece = (at, (next - at) as u32);
        at = next;
        Some(piece)
    })
}

/// How many pieces `cut` makes.
pub fn pieces(start: u64, len: u64, chunk: u64) -> u32 {
    if len == 0 {
        0
    } else {
        ((start + len - 1) / chunk - start / chunk + 1) as u32
    }
}

/// The AF_XDP socket as a packet sender: the TX ring, the header frames
/// that are free, and the completion accounting.
pub struct PacketTx {
    sock: XskSocket,
    tx: Tx,
    /// Header frames user space holds, ready to be written.
    free_headers: Vec<Frame>,
    header_frames: usize,
    chunk: u64,
    queued_since_kick: u32,
    iface: String,
    /// Kick only when the kernel asks (XDP_USE_NEED_WAKEUP).
    need_wakeup: bool,
    pub kicks: u64,
    /// Kicks left out because the kernel did not ask for them.
    pub kicks_skipped: u64,
    /// Fewest and most descriptors a packet took.
    pub descs_per_packet: (u32, u32),
    /// Each packet asks the kernel to finish its UDP checksum (IPv6): TX
    /// metadata in front of its first descriptor.
    checksum: bool,
}

impl PacketTx {
    /// Takes every frame of the `headers` pool as a header frame.
    /// `checksum`: packets carry a checksum request (the UMEM was registered with TX metadata).
    pub fn new(mut sock: XskSocket, tx: Tx, headers: PoolId, iface: &str, need_wakeup: bool, checksum: bool) -> PacketTx {
        let frames = sock.umem_mut().frames_mut();
        let chunk = frames.chunk_size() as u64;
        let free_headers: Vec<Frame> = std::iter::from_fn(|| frames.alloc(headers)).collect();
        let header_frames = free_headers.len();
        PacketTx {
            sock,
            tx,
            free_headers,
            header_frames,
            chunk,
            queued_since_kick: 0,
            iface: iface.to_string(),
            need_wakeup,
            kicks: 0,
            kicks_skipped: 0,
            descs_per_packet: (u32::MAX, 0),
            checksum,
        }
    }

    /// Bytes of TX metadata in front of a packet's first descriptor.
    pub fn metadata_len(&self) -> u32 {
        metadata_len(self.checksum)
    }

    pub fn socket(&self) -> &XskSocket {
        &self.sock
    }

    pub fn frames_mut(&mut self) -> &mut Frames {
        self.sock.umem_mut().frames_mut()
    }

    /// Asks the kernel to send what is on the TX ring.
    pub fn kick(&mut self) -> io::Result<()> {
        self.queued_since_kick = 0;
        if self.need_wakeup && !self.tx.needs_wakeup() {
            self.kicks_skipped += 1;
            return Ok(());
        }
        self.kicks += 1;
        self.tx.kick().map_err(|e| match e.raw_os_error() {
            Some(libc::ENETDOWN) | Some(libc::ENXIO) => io::Error::new(
                io::ErrorKind::NotConnected,
                format!("the link is down: {} is down or gone ({e}); bring it up (`ip link set {} up`)", self.iface, self.iface),
            ),
            _ => e,
        })
    }

    /// Takes back what the kernel has sent; returns the completions taken.
    pub fn reap(&mut self) -> u32 {
        let free_headers = &mut self.free_headers;
        self.sock.umem_mut().complete(self.tx.size(), |r| match r {
            Returned::Frame(header) => free_headers.push(header),
            Returned::Piece(_) => {} // the ledger counted it
        })
    }

    /// Kicks and reaps until `ready` holds; fails if the kernel stops moving.
    pub fn wait_for(&mut self, wd: &mut Watchdog, mut ready: impl FnMut(&mut Self) -> bool) -> io::Result<()> {
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

    /// True when everything queued has been sent and completed.
    pub fn all_sent(&mut self) -> bool {
        self.tx.pending() == 0 && self.free_headers.len() == self.header_frames
    }

    /// Puts one packet on the TX ring: `lab`'s header, then `len` bytes at
    /// `offset` of `block` as payload. Waits for room; kicks every BATCH descriptors.
    pub fn queue(
        &mut self,
        template: &FrameTemplate,
        lab: &LabHeader,
        block: &SharedFrame,
        offset: u64,
        wd: &mut Watchdog,
    ) -> io::Result<()> {
        let len = lab.len as u64;
        let start = block.addr() + offset;
        let descs = 1 + pieces(start, len, self.chunk);
        self.count_descs(descs);
        self.wait_for(wd, |me| !me.free_headers.is_empty() && me.tx.free(descs) >= descs)?;
        let mut header = self.free_headers.pop().expect("waited for a free header frame");
        let (meta, hl) = (self.metadata_len(), template.header_len() as u32);
        let frames = self.sock.umem_mut().frames_mut();
        write_front(self.checksum, template, lab, &mut frames.bytes_mut(&mut header)[..(meta + hl) as usize]);
        let mut r = self.tx.reserve(descs).expect("waited for room");
        let opts = DescOpts { more: true, metadata: self.checksum };
        r.push_frame_at(frames, header, meta, hl, opts).map_err(|(_, e)| io::Error::other(e))?;
        let mut left = descs - 1;
        for (addr, piece) in cut(start, len, self.chunk) {
            left -= 1;
            r.push_piece(frames, block, addr - block.addr(), piece, left > 0).map_err(io::Error::other)?;
        }
        r.submit();
        self.queued(descs)
    }

    /// Puts one packet on the TX ring as a single descriptor (contiguous
    /// layout): `lab`'s header is written into the block itself, in the
    /// room right in front of the payload at `payload_at`, and the
    /// descriptor covers both. The ledger allows the write only where no
    /// piece in flight reaches; should one (never in a round's order of
    /// packets), it waits until the block is idle.
    pub fn queue_in_place(
        &mut self,
        template: &FrameTemplate,
        lab: &LabHeader,
        block: &SharedFrame,
        payload_at: u64,
        wd: &mut Watchdog,
    ) -> io::Result<()> {
        let (meta, hl) = (self.metadata_len() as u64, template.header_len() as u64);
        let front = meta + hl;
        let start = payload_at.checked_sub(front).ok_or_else(|| io::Error::other("no header room in front of the payload"))?;
        self.count_descs(1);
        self.wait_for(wd, |me| me.tx.free(1) >= 1)?;
        loop {
            let frames = self.sock.umem_mut().frames_mut();
            match frames.shared_bytes_mut(block, start, front as u32) {
                Ok(room) => {
                    write_front(self.checksum, template, lab, room);
                    break;
                }
                Err(DescError::InFlight { .. }) => {
                    self.wait_for(wd, |me| me.sock.umem_mut().frames_mut().pieces_in_flight(block) == 0)?
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let frames = self.sock.umem_mut().frames_mut();
        let mut r = self.tx.reserve(1).expect("waited for room");
        let opts = DescOpts { more: false, metadata: self.checksum };
        r.push_piece_with(frames, block, start + meta, hl as u32 + lab.len, opts).map_err(io::Error::other)?;
        r.submit();
        self.queued(1)
    }

    /// Counts `descs` newly on the TX ring; kicks once a BATCH has gathered.
    fn queued(&mut self, descs: u32) -> io::Result<()> {
        self.queued_since_kick += descs;
        if self.queued_since_kick >= BATCH {
            self.kick()?;
            self.reap();
        }
        Ok(())
    }

    fn count_descs(&mut self, descs: u32) {
        self.descs_per_packet = (self.descs_per_packet.0.min(descs), self.descs_per_packet.1.max(descs));
    }

    /// The socket's counters (`XDP_STATISTICS`).
    pub fn statistics(&self) -> io::Result<crate::sys::xdp::XdpStatistics> {
        self.sock.statistics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xsk::PoolSpec;

    /// The oracle: split at every multiple of `chunk` strictly inside the range.
    fn oracle(start: u64, len: u64, chunk: u64) -> Vec<(u64, u32)> {
        let end = start + len;
        let mut edges: Vec<u64> = (start / chunk + 1..=(end.saturating_sub(1)) / chunk).map(|k| k * chunk).collect();
        edges.insert(0, start);
        edges.push(end);
        edges.windows(2).filter(|w| w[1] > w[0]).map(|w| (w[0], (w[1] - w[0]) as u32)).collect()
    }

    #[test]
    fn cut_matches_the_oracle_for_every_payload_size_and_at_chunk_edges() {
        let chunk = 4096u64;
        for len in 64..=9000u64 {
            for start in [0, 2, chunk - len % chunk, chunk - 2, chunk, (3 * chunk - len / 2) & !1, 5 * chunk + 1448] {
                let got: Vec<_> = cut(start, len, chunk).collect();
                assert_eq!(got, oracle(start, len, chunk), "start {start} len {len}");
                assert_eq!(pieces(start, len, chunk) as usize, got.len());
                assert_eq!(got.iter().map(|p| p.1 as u64).sum::<u64>(), len);
            }
        }
    }

    #[test]
    fn every_piece_is_a_valid_descriptor_in_aligned_and_unaligned_mode() {
        for unaligned in [false, true] {
            let mut frames = Frames::new(&[PoolSpec { frame_size: 4 * 4096, count: 1 }], 4096, unaligned, false).unwrap();
            let block = frames.alloc(PoolId(0)).unwrap();
            let block = frames.share(block);
            for len in (64..=9000u64).step_by(7) {
                for offset in [0, 4096 - 64, 4096 * 2 - len / 3, 4096 * 4 - len] {
                    for (addr, piece) in cut(block.addr() + offset, len, 4096) {
                        frames
                            .check_piece(&block, addr - block.addr(), piece)
                            .unwrap_or_else(|e| panic!("unaligned {unaligned}: offset {offset} len {len}: {e}"));
                    }
                }
            }
        }
    }
}
