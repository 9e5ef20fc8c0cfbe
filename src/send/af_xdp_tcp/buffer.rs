//! The TCP send buffer: the stream's bytes in UMEM frames, kept until the
//! peer acknowledges them. The stream is an optional *prefix* (an HTTP
//! response's head, written by the CPU into a frame of its own) and then
//! the file, read there by O_DIRECT.
//!
//! The file is cut into blocks of `block` bytes; block b is read into slot
//! b mod slots, a frame of the UMEM's block pool. A slot is
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
    /// File bytes in the stream.
    len: u64,
    /// The O_DIRECT unit (1: buffered reads).
    align: u64,
    /// The next block to read.
    next: u64,
    reader: Option<DirectReader>,
    done: Vec<ReadDone>,
    /// The prefix's frame and length.
    prefix: Option<SharedFrame>,
    plen: u64,
    /// The stream is known (the response decided); until then nothing is available.
    ready: bool,
    /// Blocks read, and the bytes the disk gave.
    pub blocks_read: u64,
    pub bytes_read: u64,
}

impl SendBuffer {
    /// `frames` are the block pool's frames (each at least `block` bytes);
    /// `align` the file's O_DIRECT unit. Nothing to send until [`SendBuffer::start`].
    pub fn new(frames: Vec<Frame>, block: u64, align: u64) -> SendBuffer {
        SendBuffer {
            slots: frames.into_iter().map(Slot::Empty).collect(),
            block,
            len: 0,
            align: align.max(1),
            next: 0,
            reader: None,
            done: Vec::new(),
            prefix: None,
            plen: 0,
            ready: false,
            blocks_read: 0,
            bytes_read: 0,
        }
    }

    /// The file's O_DIRECT unit, once it is opened.
    pub fn set_align(&mut self, align: u64) {
        self.align = align.max(1);
    }

    /// The stream: `prefix` (its bytes written into `frame`) and then `len`
    /// bytes of the file that `reader` reads. Returns the stream's length.
    pub fn start(&mut self, frames: &mut Frames, prefix: Option<(Frame, &[u8])>, file: Option<(DirectReader, u64)>) -> u64 {
        if let Some((mut f, bytes)) = prefix {
            frames.bytes_mut(&mut f)[..bytes.len()].copy_from_slice(bytes);
            self.plen = bytes.len() as u64;
            self.prefix = Some(frames.share(f));
        }
        if let Some((reader, len)) = file {
            self.reader = Some(reader);
            self.len = len;
        }
        self.ready = true;
        self.plen + self.len
    }

    /// Starts reads into every empty slot whose next block exists.
    pub fn fill(&mut self, frames: &mut Frames) -> io::Result<()> {
        let Some(reader) = self.reader.as_mut() else { return Ok(()) };
        while self.next < self.len.div_ceil(self.block) {
            let i = (self.next % self.slots.len() as u64) as usize;
            let Slot::Empty(_) = self.slots[i] else { break };
            let Slot::Empty(frame) = std::mem::replace(&mut self.slots[i], Slot::Gone) else { unreachable!() };
            let start = self.next * self.block;
            let want = self.block.min(self.len - start);
            let len = want.div_ceil(self.align) * self.align;
            let loan = frames.lend_for_io(frame, len as usize).map_err(|(_, e)| io::Error::other(e))?;
            let seg = ReadSegment { mem: 0, file: start, len, want };
            reader.start(loan, &[seg], i).map_err(|(_, e)| e)?;
            self.slots[i] = Slot::Reading { block: self.next };
            self.next += 1;
        }
        Ok(())
    }

    /// Takes the reads that finished (waiting up to `wait` for one if any is
    /// in flight and `wait` is not zero).
    pub fn reap(&mut self, frames: &mut Frames, wait: Duration) -> io::Result<()> {
        let Some(reader) = self.reader.as_mut() else { return Ok(()) };
        if wait > Duration::ZERO && reader.in_flight() > 0 {
            reader.wait(wait)?;
        }
        reader.reap(&mut self.done);
        for d in std::mem::take(&mut self.done) {
            let Slot::Reading { block } = self.slots[d.slot] else {
                return Err(io::Error::other("a read finished for a slot that was not reading"));
            };
            let start = block * self.block;
            let want = self.block.min(self.len - start) as usize;
            let mut loan = d.loan;
            if d.result < 0 {
                self.slots[d.slot] = Slot::Empty(frames.end_io(loan));
                return Err(io::Error::from_raw_os_error(-d.result));
            }
            let mut got = d.result as usize;
            // A short read (the file's end on a filesystem that gives less): finish it by hand.
            while got < want {
                let n = reader.read_at(&mut loan.bytes_mut()[got..want], start + got as u64)?;
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

    /// The stream's bytes ready to send: the prefix, then the file up to the
    /// first block not read.
    pub fn available(&self, acked: u64) -> u64 {
        if !self.ready {
            return 0;
        }
        let mut b = acked.saturating_sub(self.plen) / self.block;
        while b < self.next {
            match &self.slots[(b % self.slots.len() as u64) as usize] {
                Slot::Ready { block, .. } if *block == b => b += 1,
                _ => break,
            }
        }
        self.plen + (b * self.block).min(self.len)
    }

    /// How long a segment that starts at `off` may be: to the prefix's end, or its block's.
    pub fn limit(&self, off: u64) -> u32 {
        if off < self.plen {
            return (self.plen - off) as u32;
        }
        let f = off - self.plen;
        (self.block - f % self.block).min(u32::MAX as u64) as u32
    }

    /// The frame holding stream byte `off`, and the byte's offset in it.
    pub fn locate(&self, off: u64) -> Option<(&SharedFrame, u64)> {
        if off < self.plen {
            return self.prefix.as_ref().map(|p| (p, off));
        }
        let f = off - self.plen;
        let b = f / self.block;
        match &self.slots[(b % self.slots.len() as u64) as usize] {
            Slot::Ready { block, data } if *block == b => Some((data, f % self.block)),
            _ => None,
        }
    }

    /// Lets go of the blocks wholly acknowledged whose pieces the kernel has
    /// all given back, so their slots can take the next blocks.
    pub fn release(&mut self, acked: u64, frames: &mut Frames) {
        let Some(acked) = acked.checked_sub(self.plen) else { return };
        let (block_len, len) = (self.block, self.len);
        for s in self.slots.iter_mut() {
            let done = matches!(s, Slot::Ready { block, .. }
                if (*block + 1) * block_len <= acked || ((*block + 1) * block_len >= len && acked >= len));
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
        self.reader.as_ref().map_or(0, |r| r.in_flight())
    }

    /// Every frame back, once no read and no TX piece holds one: the block
    /// frames, and the prefix's frame if there was one; None while some are
    /// still out (call again after the completions come back). The buffer is
    /// empty after.
    pub fn take_frames(&mut self, frames: &mut Frames) -> Option<(Vec<Frame>, Option<Frame>)> {
        if self.reads_in_flight() > 0 {
            let _ = self.reap(frames, Duration::from_millis(10));
            return None;
        }
        let busy = self.slots.iter().any(|s| matches!(s, Slot::Ready { data, .. } if frames.pieces_in_flight(data) > 0))
            || self.prefix.as_ref().is_some_and(|p| frames.pieces_in_flight(p) > 0);
        if busy {
            return None;
        }
        let mut out = Vec::new();
        for s in std::mem::take(&mut self.slots) {
            match s {
                Slot::Empty(f) => out.push(f),
                Slot::Ready { data, .. } => out.push(frames.reclaim(data).expect("no piece in flight: checked")),
                Slot::Reading { .. } | Slot::Gone => {}
            }
        }
        let prefix = self.prefix.take().map(|p| frames.reclaim(p).expect("no piece in flight: checked"));
        Some((out, prefix))
    }
}
