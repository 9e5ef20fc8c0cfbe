//! The block cache: the file's bytes in the UMEM, read ahead of the sending.
//!
//! The file is cut into *blocks* of whole packets, each starting at a file
//! offset the filesystem's O_DIRECT alignment accepts (statx DIOALIGN). A
//! few UMEM frames, the *slots*, hold blocks. Each slot is in one state:
//!
//! ```text
//!   Empty(Frame) --start a read--> Reading (the frame is lent to the read)
//!   Reading --read done--> Ready(SharedFrame): its packets go on the TX ring as pieces
//!   Ready --its packets sent, no piece in flight (reclaim)--> Empty, or straight to Reading
//! ```
//! A round (all packets, or the ones the receiver missed) lists the blocks
//! it needs in order; the cache reads up to one slot-count of them ahead of
//! the one being sent, so the disk works while the wire does.
//!
//! The arithmetic of blocks is in `layout.rs`, the disk side in `reader.rs`.

use super::layout::BlockLayout;
use super::reader::{BlockReader, ReadDone};
use crate::transfer::IO_TICK;
use crate::xsk::{Frame, Frames, IoLoan, SharedFrame};
use std::io;
use std::time::{Duration, Instant};

/// What a slot holds.
#[derive(Debug)]
enum Held {
    Empty(Frame),
    /// A read of this block is in flight; the frame is lent to it.
    Reading {
        block: u64,
        since: Instant,
    },
    /// The block's bytes, lent to the TX ring in pieces.
    Ready {
        block: u64,
        data: SharedFrame,
    },
    /// Between two states (never seen outside a method), or lost to a failed read.
    Gone,
}

#[derive(Debug)]
struct Slot {
    held: Held,
    /// Position of its block in this round's list (None: not needed this round).
    pos: Option<usize>,
}

impl Slot {
    fn holds(&self, b: u64) -> bool {
        matches!(self.held, Held::Reading { block, .. } | Held::Ready { block, .. } if block == b)
    }
}

/// The block at a position of the round, if the cache has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// In this slot, read.
    Ready(usize),
    /// Its read is in flight: wait for the disk.
    Reading,
    /// Every slot still has pieces in flight: wait for completions.
    NoSlot,
}

pub struct BlockCache<R: BlockReader> {
    reader: R,
    layout: BlockLayout,
    /// File size: the last block is shorter.
    size: u64,
    slots: Vec<Slot>,
    /// The blocks this round sends, in order.
    round: Vec<u64>,
    /// The position being sent.
    at: usize,
    /// The next position to read ahead.
    next_to_read: usize,
    finished_reads: Vec<ReadDone>,
    read_timeout: Duration,
    /// Reads and waits for reads: the data path's syscalls on the disk side.
    pub data_syscalls: u64,
}

impl<R: BlockReader> BlockCache<R> {
    /// A cache whose slots are `frames` (each at least `layout.slot_bytes`).
    pub fn new(reader: R, layout: BlockLayout, size: u64, frames: Vec<Frame>, read_timeout: Duration) -> BlockCache<R> {
        let slots = frames.into_iter().map(|f| Slot { held: Held::Empty(f), pos: None }).collect();
        BlockCache {
            reader,
            layout,
            size,
            slots,
            round: Vec::new(),
            at: 0,
            next_to_read: 0,
            finished_reads: Vec::new(),
            read_timeout,
            data_syscalls: 0,
        }
    }

    /// Cuts the file by another layout: before the first round only, with
    /// slots large enough for it (the UMEM's pool was sized for both).
    pub fn set_layout(&mut self, layout: BlockLayout) {
        assert!(self.round.is_empty() && self.reader.in_flight() == 0, "a layout changes before the first round only");
        self.layout = layout;
    }

    /// Starts a round that sends the packets in `ranges` (half-open, in order).
    pub fn begin_round(&mut self, ranges: &[(u64, u64)]) {
        self.round.clear();
        for &(a, b) in ranges.iter().filter(|(a, b)| a < b) {
            for block in self.layout.block_of(a)..=self.layout.block_of(b - 1) {
                if self.round.last() != Some(&block) {
                    self.round.push(block);
                }
            }
        }
        for s in &mut self.slots {
            s.pos = None;
        }
        self.at = 0;
        self.next_to_read = 0;
    }

    pub fn layout(&self) -> &BlockLayout {
        &self.layout
    }

    /// This round's blocks, in order.
    pub fn round(&self) -> &[u64] {
        &self.round
    }

    /// The bytes of the block in slot `slot` (after `Poll::Ready(slot)`).
    pub fn data(&self, slot: usize) -> Option<&SharedFrame> {
        match &self.slots.get(slot)?.held {
            Held::Ready { data, .. } => Some(data),
            _ => None,
        }
    }

    /// Looks for the block at position `pos` of the round (and moves the
    /// round on to it); starts reads ahead meanwhile.
    pub fn poll(&mut self, pos: usize, frames: &mut Frames) -> io::Result<Poll> {
        self.at = pos;
        let block = self.round[pos];
        self.collect_reads(frames)?;
        self.read_ahead(frames)?;
        Ok(match self.slots.iter().position(|s| s.holds(block)) {
            Some(i) if matches!(self.slots[i].held, Held::Ready { .. }) => Poll::Ready(i),
            Some(_) => Poll::Reading,
            None => Poll::NoSlot,
        })
    }

    /// Waits a little for the disk; fails if a read has been in flight for
    /// longer than the read timeout. True if a read finished.
    pub fn wait_for_reads(&mut self, frames: &mut Frames) -> io::Result<bool> {
        if self.reader.in_flight() == 0 {
            return Ok(false);
        }
        self.data_syscalls += 1;
        self.reader.wait(IO_TICK)?;
        let before = self.finished_reads.len();
        self.reader.reap(&mut self.finished_reads);
        let finished = self.finished_reads.len() > before;
        self.collect_reads(frames)?;
        for s in &self.slots {
            if let Held::Reading { block, since } = s.held {
                if since.elapsed() > self.read_timeout {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the read of file block {block} (offset {}) has not completed in {:.0} s: is the disk stuck?",
                            block * self.layout.block_bytes,
                            self.read_timeout.as_secs_f64()
                        ),
                    ));
                }
            }
        }
        Ok(finished)
    }

    /// Turns finished reads into Ready slots.
    fn collect_reads(&mut self, frames: &mut Frames) -> io::Result<()> {
        self.reader.reap(&mut self.finished_reads);
        while let Some(done) = self.finished_reads.pop() {
            let Held::Reading { block, .. } = self.slots[done.slot].held else {
                unreachable!("a read finished for slot {} that was not reading", done.slot)
            };
            let read = self.finish_read(done.loan, block, done.result);
            match read {
                Ok(loan) => {
                    let frame = frames.end_io(loan);
                    let data = frames.share(frame);
                    self.slots[done.slot].held = Held::Ready { block, data };
                }
                Err((loan, e)) => {
                    self.slots[done.slot].held = Held::Empty(frames.end_io(loan));
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Checks a read's result; finishes a short read synchronously, run by run.
    fn finish_read(&mut self, mut loan: IoLoan, block: u64, result: i32) -> Result<IoLoan, (IoLoan, io::Error)> {
        if result < 0 {
            return Err((loan, io::Error::from_raw_os_error(-result)));
        }
        let align = self.layout.align;
        let mut left = result as u64;
        for seg in self.layout.segments(block, self.size) {
            let mut at = left.min(seg.len);
            left -= at;
            if at < seg.want {
                at -= at % align; // O_DIRECT goes on from an aligned offset
                while at < seg.want {
                    self.data_syscalls += 1;
                    let buf = &mut loan.bytes_mut()[(seg.mem + at) as usize..(seg.mem + seg.len) as usize];
                    match self.reader.read_at(buf, seg.file + at) {
                        Ok(0) => return Err((loan, crate::send::file_shrank(seg.file + at, self.size))),
                        Ok(n) => at += n as u64,
                        Err(e) => return Err((loan, e)),
                    }
                }
            }
        }
        Ok(loan)
    }

    /// Starts reads of the blocks coming next, into slots no one needs.
    fn read_ahead(&mut self, frames: &mut Frames) -> io::Result<()> {
        while self.next_to_read < self.round.len() && self.next_to_read < self.at + self.slots.len() {
            let (pos, block) = (self.next_to_read, self.round[self.next_to_read]);
            if let Some(s) = self.slots.iter_mut().find(|s| s.holds(block)) {
                s.pos = Some(pos);
                self.next_to_read += 1;
                continue;
            }
            let Some(slot) = self.reusable_slot(frames) else { break };
            self.start_read(slot, block, pos, frames)?;
            self.next_to_read += 1;
        }
        Ok(())
    }

    /// A slot whose block this round no longer needs and whose pieces have
    /// all come back; its frame, reclaimed, stays in it as Empty.
    fn reusable_slot(&mut self, frames: &mut Frames) -> Option<usize> {
        let at = self.at;
        for (i, s) in self.slots.iter_mut().enumerate() {
            match std::mem::replace(&mut s.held, Held::Gone) {
                Held::Empty(f) => {
                    s.held = Held::Empty(f);
                    return Some(i);
                }
                Held::Ready { block, data } if s.pos.is_none_or(|p| p < at) => match frames.reclaim(data) {
                    Ok(f) => {
                        s.held = Held::Empty(f);
                        return Some(i);
                    }
                    Err(data) => s.held = Held::Ready { block, data },
                },
                other => s.held = other,
            }
        }
        None
    }

    fn start_read(&mut self, slot: usize, block: u64, pos: usize, frames: &mut Frames) -> io::Result<()> {
        let Held::Empty(frame) = std::mem::replace(&mut self.slots[slot].held, Held::Gone) else {
            unreachable!("reads start only in empty slots")
        };
        let segs = self.layout.segments(block, self.size);
        let read_end = segs.last().map_or(0, |s| s.mem + s.len);
        let loan = match frames.lend_for_io(frame, read_end as usize) {
            Ok(loan) => loan,
            Err((frame, e)) => {
                self.slots[slot].held = Held::Empty(frame);
                return Err(io::Error::other(e));
            }
        };
        self.data_syscalls += 1;
        if let Err((loan, e)) = self.reader.start(loan, &segs, slot) {
            self.slots[slot].held = Held::Empty(frames.end_io(loan));
            return Err(e);
        }
        self.slots[slot] = Slot { held: Held::Reading { block, since: Instant::now() }, pos: Some(pos) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::af_xdp::layout::Segment;
    use crate::xsk::{Owner, PoolId, PoolSpec};
    use std::collections::VecDeque;

    /// A disk in memory: reads finish only when the test says, with the
    /// file's bytes (byte k of the file is `k % 251`), or short, or failed.
    #[derive(Default)]
    struct FakeDisk {
        size: u64,
        pending: VecDeque<(IoLoan, Vec<Segment>, usize)>,
        done: Vec<ReadDone>,
        /// Next finished read delivers at most this many bytes.
        short: Option<usize>,
        fail: Option<i32>,
        started: Vec<u64>,
    }

    fn byte(k: u64) -> u8 {
        (k % 251) as u8
    }

    impl FakeDisk {
        fn finish_one(&mut self) -> bool {
            let Some((mut loan, segs, slot)) = self.pending.pop_front() else { return false };
            let result = if let Some(e) = self.fail.take() {
                -e
            } else {
                // Like a vectored read: run after run, until the file or the allowance ends.
                let mut left = self.short.take().unwrap_or(usize::MAX);
                let mut n = 0;
                for s in &segs {
                    let avail = self.size.saturating_sub(s.file).min(s.len) as usize;
                    let take = avail.min(left);
                    for (k, b) in loan.bytes_mut()[s.mem as usize..][..take].iter_mut().enumerate() {
                        *b = byte(s.file + k as u64);
                    }
                    (n, left) = (n + take, left - take);
                    if take < s.len as usize {
                        break;
                    }
                }
                n as i32
            };
            self.done.push(ReadDone { loan, slot, result });
            true
        }
    }

    impl BlockReader for FakeDisk {
        fn start(&mut self, loan: IoLoan, segs: &[Segment], slot: usize) -> Result<(), (IoLoan, io::Error)> {
            self.started.push(segs[0].file);
            self.pending.push_back((loan, segs.to_vec(), slot));
            Ok(())
        }
        fn wait(&mut self, _: Duration) -> io::Result<()> {
            self.finish_one();
            Ok(())
        }
        fn reap(&mut self, out: &mut Vec<ReadDone>) {
            out.append(&mut self.done);
        }
        fn in_flight(&self) -> usize {
            self.pending.len()
        }
        fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = byte(offset + k as u64);
            }
            Ok(n)
        }
    }

    const SLOTS: usize = 3;

    /// A cache of 3 slots over a file of `blocks` blocks of 4 packets of 1024 bytes.
    fn cache(size: u64) -> (BlockCache<FakeDisk>, Frames) {
        let layout = BlockLayout::new(1024, 512, 4096);
        assert_eq!(layout.packets_per_block, 1024, "1 MiB blocks");
        let layout = BlockLayout { packets_per_block: 4, block_bytes: 4096, slot_bytes: 8192, ..layout };
        let spec = PoolSpec { frame_size: layout.slot_bytes as u32, count: SLOTS as u32 };
        let mut frames = Frames::new(&[spec], 4096, true, false).unwrap();
        let slots = (0..SLOTS).map(|_| frames.alloc(PoolId(0)).unwrap()).collect();
        let disk = FakeDisk { size, ..Default::default() };
        (BlockCache::new(disk, layout, size, slots, Duration::from_secs(5)), frames)
    }

    /// Polls position `pos` until the fake disk has delivered it.
    fn load(c: &mut BlockCache<FakeDisk>, frames: &mut Frames, pos: usize) -> usize {
        for _ in 0..10 {
            match c.poll(pos, frames).unwrap() {
                Poll::Ready(slot) => return slot,
                Poll::Reading => {
                    c.wait_for_reads(frames).unwrap();
                }
                Poll::NoSlot => panic!("no slot for position {pos}"),
            }
        }
        panic!("position {pos} never became ready")
    }

    fn check_bytes(frames: &mut Frames, c: &mut BlockCache<FakeDisk>, slot: usize, block: u64, len: usize) {
        // Reclaim, look, and share again: the test plays a sender that is done with the block.
        let data = match std::mem::replace(&mut c.slots[slot].held, Held::Gone) {
            Held::Ready { data, .. } => data,
            other => panic!("slot {slot} holds {other:?}"),
        };
        let f = frames.reclaim(data).unwrap();
        let bytes = frames.bytes(&f)[..len].to_vec();
        c.slots[slot].held = Held::Ready { block, data: frames.share(f) };
        for (k, b) in bytes.iter().enumerate() {
            assert_eq!(*b, byte(block * 4096 + k as u64), "block {block} byte {k}");
        }
    }

    #[test]
    fn contiguous_reads_deliver_every_packet_behind_untouched_header_room() {
        let l = BlockLayout::contiguous(1024, 512, 4096, 66).unwrap();
        let layout = BlockLayout { packets_per_block: 4, block_bytes: 4096, slot_bytes: 8192, ..l };
        for short in [None, Some(1000), Some(2048 + 512)] {
            let size = 3 * 4096 + 1500;
            let spec = PoolSpec { frame_size: 8192, count: SLOTS as u32 };
            let mut frames = Frames::new(&[spec], 4096, true, false).unwrap();
            let slots = (0..SLOTS).map(|_| frames.alloc(PoolId(0)).unwrap()).collect();
            let disk = FakeDisk { size, short, ..Default::default() };
            let mut c = BlockCache::new(disk, layout, size, slots, Duration::from_secs(5));
            c.begin_round(&[(0, 14)]);
            for pos in 0..4 {
                let slot = load(&mut c, &mut frames, pos);
                let Held::Ready { data, .. } = std::mem::replace(&mut c.slots[slot].held, Held::Gone) else { panic!() };
                let f = frames.reclaim(data).unwrap();
                let bytes = frames.bytes(&f).to_vec();
                c.slots[slot].held = Held::Ready { block: pos as u64, data: frames.share(f) };
                for k in 0..4u64 {
                    let packet = pos as u64 * 4 + k;
                    let (cell, file) = (k as usize * 2048, packet * 1024);
                    assert!(bytes[cell..cell + 512].iter().all(|b| *b == 0), "header room of packet {packet} untouched");
                    let want = size.saturating_sub(file).min(1024) as usize;
                    for (j, b) in bytes[cell + 512..][..want].iter().enumerate() {
                        assert_eq!(*b, byte(file + j as u64), "short {short:?}: packet {packet} byte {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn reads_ahead_and_delivers_the_right_bytes() {
        let (mut c, mut frames) = cache(10 * 4096 - 100);
        c.begin_round(&[(0, 40)]);
        assert_eq!(c.round(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let s0 = load(&mut c, &mut frames, 0);
        assert_eq!(c.reader.started, vec![0, 4096, 8192], "three slots, three reads ahead");
        check_bytes(&mut frames, &mut c, s0, 0, 4096);
        let s1 = load(&mut c, &mut frames, 1);
        check_bytes(&mut frames, &mut c, s1, 1, 4096);
        // Position 1 is sent now: block 0's slot is reused for block 3.
        assert_eq!(c.reader.started.len(), 4);
        assert_eq!(c.reader.started[3], 3 * 4096);
        for pos in 2..10 {
            let s = load(&mut c, &mut frames, pos);
            let len = if pos == 9 { 4096 - 100 } else { 4096 };
            check_bytes(&mut frames, &mut c, s, pos as u64, len);
        }
        assert_eq!(c.reader.started.len(), 10, "each block read once");
    }

    #[test]
    fn a_slot_with_pieces_in_flight_is_not_reused() {
        let (mut c, mut frames) = cache(10 * 4096);
        c.begin_round(&[(0, 40)]);
        // Send a packet of each of blocks 0, 1, 2; the kernel keeps them all.
        let mut in_kernel = Vec::new();
        for pos in 0..3 {
            let slot = load(&mut c, &mut frames, pos);
            in_kernel.push(frames.kernel_takes_piece(c.data(slot).unwrap(), 0, 1024).unwrap());
        }
        assert_eq!(frames.owner(in_kernel[0]).unwrap().1, Owner::Lent { pieces: 1, frontier: 1024 });
        assert_eq!(c.poll(3, &mut frames).unwrap(), Poll::NoSlot, "block 3 must wait: every slot has a piece in flight");
        assert!(frames.kernel_returns(in_kernel[1]).is_ok());
        assert_eq!(c.poll(3, &mut frames).unwrap(), Poll::Reading, "block 1's slot is free now");
        assert_eq!(c.reader.started, vec![0, 4096, 8192, 3 * 4096]);
        assert_eq!(frames.owner(in_kernel[0]).unwrap().1, Owner::Lent { pieces: 1, frontier: 1024 }, "block 0 untouched");
    }

    #[test]
    fn a_repeated_block_is_not_read_again() {
        let (mut c, mut frames) = cache(10 * 4096);
        c.begin_round(&[(0, 8)]);
        load(&mut c, &mut frames, 0);
        load(&mut c, &mut frames, 1);
        let reads = c.reader.started.len();
        c.begin_round(&[(1, 2), (5, 6)]);
        assert_eq!(c.round(), &[0, 1]);
        load(&mut c, &mut frames, 0);
        load(&mut c, &mut frames, 1);
        assert_eq!(c.reader.started.len(), reads, "blocks 0 and 1 were still in the cache");
    }

    #[test]
    fn a_short_read_is_finished_and_a_failed_one_is_an_error() {
        let (mut c, mut frames) = cache(10 * 4096);
        c.reader.short = Some(1000);
        c.begin_round(&[(0, 4)]);
        let s = load(&mut c, &mut frames, 0);
        check_bytes(&mut frames, &mut c, s, 0, 4096);
        assert!(c.data_syscalls >= 2, "the rest was read synchronously");

        let (mut c, mut frames) = cache(10 * 4096);
        c.reader.fail = Some(libc::EIO);
        c.begin_round(&[(0, 4)]);
        assert_eq!(c.poll(0, &mut frames).unwrap(), Poll::Reading);
        let e = c.wait_for_reads(&mut frames).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert!(c.slots.iter().all(|s| !matches!(s.held, Held::Gone)), "the frame went back to its slot");
    }

    #[test]
    fn a_file_that_shrank_is_named() {
        let (mut c, mut frames) = cache(10 * 4096);
        c.reader.size = 4096 + 10; // the disk now has less than the plan
        c.begin_round(&[(4, 8)]);
        assert_eq!(c.poll(0, &mut frames).unwrap(), Poll::Reading);
        let e = c.wait_for_reads(&mut frames).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn a_read_that_never_completes_is_an_error() {
        let (mut c, mut frames) = cache(10 * 4096);
        c.read_timeout = Duration::from_millis(1);
        c.begin_round(&[(0, 40)]);
        assert_eq!(c.poll(0, &mut frames).unwrap(), Poll::Reading);
        std::thread::sleep(Duration::from_millis(5));
        // The fake disk finishes one read per wait; three are in flight,
        // so the first wait leaves two that are already too old.
        let e = c.wait_for_reads(&mut frames).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("has not completed"), "{e}");
    }
}
