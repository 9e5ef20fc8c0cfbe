//! The TCP send buffer: the file's bytes in UMEM frames, read there by
//! O_DIRECT, kept until the peer acknowledges them.
//!
//! The stream is cut into blocks of `block` bytes; block b is read into
//! slot b mod slots, a frame of the UMEM's block pool. A slot is
//!
//! ```text
//!   Empty(Frame) --read starts--> Reading --read done--> Ready(SharedFrame)
//!   Ready --every byte acknowledged, no piece on the TX ring--> Empty
//! ```
//! While Ready, the block's bytes are the retransmission buffer: a segment
//! sent again is a piece of the same frame, never a copy. The sender can
//! have at most `slots` blocks in flight or acknowledged-but-not-completed,
//! which bounds its window (4 MiB here, far over the lab's bandwidth-delay
//! product).

use crate::send::af_xdp::{BlockReader, DirectReader, ReadDone, ReadSegment};
use crate::xsk::{Frame, Frames, SharedFrame};
use std::io;
use std::time::Duration;

#[derive(Debug)]
enum Slot {
    Empty(Frame),
    Reading { block: u64 },
    Ready { block: u64, data: SharedFrame },
    Gone,
}

pub struct SendBuffer {
    slots: Vec<Slot>,
    block: u64,
    len: u64,
    /// The O_DIRECT unit (1: buffered reads).
    align: u64,
    /// The next block to read.
    next: u64,
    reader: DirectReader,
    done: Vec<ReadDone>,
    /// Blocks read, and the bytes the disk gave.
    pub blocks_read: u64,
    pub bytes_read: u64,
}

impl SendBuffer {
    /// `frames` are the block pool's frames (each at least `block` bytes),
    /// `len` the file's length, `align` its O_DIRECT unit.
    pub fn new(frames: Vec<Frame>, block: u64, len: u64, align: u64, reader: DirectReader) -> SendBuffer {
        SendBuffer {
            slots: frames.into_iter().map(Slot::Empty).collect(),
            block,
            len,
            align: align.max(1),
            next: 0,
            reader,
            done: Vec::new(),
            blocks_read: 0,
            bytes_read: 0,
        }
    }

    fn blocks(&self) -> u64 {
        self.len.div_ceil(self.block)
    }

    /// Starts reads into every empty slot whose next block exists.
    pub fn fill(&mut self, frames: &mut Frames) -> io::Result<()> {
        while self.next < self.blocks() {
            let i = (self.next % self.slots.len() as u64) as usize;
            let Slot::Empty(_) = self.slots[i] else { break };
            let Slot::Empty(frame) = std::mem::replace(&mut self.slots[i], Slot::Gone) else { unreachable!() };
            let start = self.next * self.block;
            let want = self.block.min(self.len - start);
            let len = want.div_ceil(self.align) * self.align;
            let loan = frames.lend_for_io(frame, len as usize).map_err(|(_, e)| io::Error::other(e))?;
            let seg = ReadSegment { mem: 0, file: start, len, want };
            self.reader.start(loan, &[seg], i).map_err(|(_, e)| e)?;
            self.slots[i] = Slot::Reading { block: self.next };
            self.next += 1;
        }
        Ok(())
    }

    /// Takes the reads that finished (waiting up to `wait` for one if any is
    /// in flight and `wait` is not zero).
    pub fn reap(&mut self, frames: &mut Frames, wait: Duration) -> io::Result<()> {
        if wait > Duration::ZERO && self.reader.in_flight() > 0 {
            self.reader.wait(wait)?;
        }
        self.reader.reap(&mut self.done);
        for d in std::mem::take(&mut self.done) {
            let Slot::Reading { block } = self.slots[d.slot] else {
                return Err(io::Error::other("a read finished for a slot that was not reading"));
            };
            let start = block * self.block;
            let want = self.block.min(self.len - start) as usize;
            let mut loan = d.loan;
            let mut got = if d.result < 0 {
                self.slots[d.slot] = Slot::Empty(frames.end_io(loan));
                return Err(io::Error::from_raw_os_error(-d.result));
            } else {
                d.result as usize
            };
            // A short read (the file's end on a filesystem that gives less): finish it by hand.
            while got < want {
                let n = self.reader.read_at(&mut loan.bytes_mut()[got..want], start + got as u64)?;
                if n == 0 {
                    self.slots[d.slot] = Slot::Empty(frames.end_io(loan));
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file ended at {} while its length said {}: it shrank", start + got as u64, self.len),
                    ));
                }
                got += n;
            }
            self.blocks_read += 1;
            self.bytes_read += want as u64;
            let frame = frames.end_io(loan);
            self.slots[d.slot] = Slot::Ready { block, data: frames.share(frame) };
        }
        Ok(())
    }

    /// The stream's bytes ready to send: up to the first block not read.
    pub fn available(&self, acked: u64) -> u64 {
        let mut b = acked / self.block;
        while b < self.next {
            match &self.slots[(b % self.slots.len() as u64) as usize] {
                Slot::Ready { block, .. } if *block == b => b += 1,
                _ => break,
            }
        }
        (b * self.block).min(self.len)
    }

    /// How long a segment that starts at `off` may be: to its block's end.
    pub fn limit(&self, off: u64) -> u32 {
        (self.block - off % self.block).min(u32::MAX as u64) as u32
    }

    /// The frame holding stream byte `off`, and the byte's offset in it.
    pub fn locate(&self, off: u64) -> Option<(&SharedFrame, u64)> {
        let b = off / self.block;
        match &self.slots[(b % self.slots.len() as u64) as usize] {
            Slot::Ready { block, data } if *block == b => Some((data, off % self.block)),
            _ => None,
        }
    }

    /// Lets go of the blocks wholly acknowledged whose pieces the kernel has
    /// all given back, so their slots can take the next blocks.
    pub fn release(&mut self, acked: u64, frames: &mut Frames) {
        for s in self.slots.iter_mut() {
            let done = matches!(s, Slot::Ready { block, .. } if (*block + 1) * self.block <= acked
                || (*block + 1) * self.block >= self.len && acked >= self.len);
            if !done {
                continue;
            }
            let Slot::Ready { block, data } = std::mem::replace(s, Slot::Gone) else { unreachable!() };
            *s = match frames.reclaim(data) {
                Ok(f) => Slot::Empty(f),
                Err(data) => Slot::Ready { block, data },
            };
        }
    }

    /// Reads still in flight (the frames lent to them).
    pub fn reads_in_flight(&self) -> usize {
        self.reader.in_flight()
    }
}
