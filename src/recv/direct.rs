//! `recv --direct`: the af-xdp receiver writes each payload with O_DIRECT
//! straight from the UMEM frame it arrived in, so neither the CPU copies
//! it nor the page cache keeps it.
//!
//! ```text
//! frame (4096): | 256 kernel | 190 headroom | Ethernet IPv4 UDP lab (66) | payload (512 x k) ...
//!                                                                       ^ frame + 512
//! pwritev(O_DIRECT): one iovec per packet, consecutive packets in one call
//! ```
//! Every iovec must start on a 512-byte boundary in memory and in the
//! file, and be a whole number of 512-byte units: the UMEM's frame
//! headroom puts each payload at +512 of its frame, and the sender cuts
//! payloads of 512 x k bytes (the Hello's offer, asked for in the Ready).
//! The file's last packet is usually shorter: it is written rounded up to
//! the next unit from the bytes behind it in its frame, and the file is cut
//! back to its size at the end.
//!
//! The writes stay in flight: each queue's [`DirectWriter`] submits them
//! to an io_uring (`IORING_OP_WRITEV`, a run of consecutive payloads per
//! write) and gives a frame back to the fill ring only when the write that
//! reads it has completed. A write that has not completed within the
//! receiver's patience ends the run with an error. How many are in flight
//! depends on the file's blocks: ext4 runs O_DIRECT writes that *overwrite*
//! written blocks side by side (under a shared inode lock), but serializes
//! those into fresh or fallocated blocks (the exclusive lock; io_uring then
//! hands each to a worker thread, and they queue). Measured here (MTU 9000,
//! 512 MiB, one run each): into fallocated blocks 1 in flight moved 3.74
//! Gbit/s, 4 moved 3.29, 32 moved 2.94; over blocks written beforehand
//! (`--preallocate`, zeros by O_DIRECT outside the timed part) 1 moved 3.52,
//! 4 moved 4.87, 32 moved 5.31. So: 32 over preallocated blocks, else 1.
//!
//! A payload that cannot go direct (not on a boundary in memory, offset or
//! length; a packet in several frames) is counted, copied aside, and
//! written through the page cache at the end, once no O_DIRECT write is in
//! flight: a buffered write and an O_DIRECT write of the same page must not
//! overlap (the buffered one may read the page from the disk while the
//! direct write of its other half is in flight, and later write the old
//! half back).
//!
//! The file's last block is reserved beyond its end before the transfer
//! (`FALLOC_FL_KEEP_SIZE`), so the padded last write never needs space the
//! receiver did not reserve; the file is cut back to its size at the end.

use crate::report::DirectWrites;
use crate::sys::uring::{ReadDone, ReadRing};
use crate::xsk::{Frame, Frames, IoLoan};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a direct receiver asks the sender to wait for news before it
/// takes silence for loss (the default is 5 ms): one batch's O_DIRECT write
/// can take longer when the disk is busy. Measured here (contiguous layout,
/// MTU 1500, 1 GiB, where the sender's 1 KiB reads share the disk): with
/// 5 ms, 1.7% to 6.1% of the packets were sent again.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_millis(20);

/// Why a payload went through the page cache in direct mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    /// Its address, file offset or length is not a whole number of units.
    Unaligned,
    /// The packet lay in several frames.
    MultiFrame,
}

/// The output file opened a second time, with O_DIRECT, and what went which way.
pub struct DirectOut {
    file: File,
    unit: u64,
    size: u64,
    /// The file's blocks were written before the transfer (`--preallocate`).
    overwrites: bool,
    /// Payloads off a boundary, copied aside for the page cache at the end.
    deferred: Mutex<Vec<(u64, Vec<u8>)>>,
    deferred_bytes: AtomicU64,
    peak_in_flight: AtomicU64,
    direct_packets: AtomicU64,
    direct_bytes: AtomicU64,
    direct_calls: AtomicU64,
    padded: AtomicU64,
    unaligned_packets: AtomicU64,
    unaligned_bytes: AtomicU64,
    multi_frame_packets: AtomicU64,
    multi_frame_bytes: AtomicU64,
}

/// The one line and the report of a receiver that was asked for --direct
/// and could not: the reason, for the log, the report and the sender's user.
pub type NotDirect = String;

impl DirectOut {
    /// Opens `path` (the output `file`, `size` bytes, fresh) again with
    /// O_DIRECT for payloads of `payload` bytes, and writes one unit at
    /// offset 0 to see that the file system takes it; with `preallocate`,
    /// zeros over all of it by O_DIRECT (the disk's blocks written, the page
    /// cache untouched), so that the transfer's writes overwrite them. `Err`
    /// says why the receiver must write through the page cache instead.
    pub fn open(path: &Path, file: &File, size: u64, payload: Option<u64>, preallocate: bool) -> Result<DirectOut, NotDirect> {
        use crate::transfer::af_xdp::{DIRECT_PAYLOAD_AT, DIRECT_UNIT};
        let (mem, off) = match crate::sys::file::dio_align(file) {
            Ok(Some(a)) => a,
            Ok(None) => {
                return Err("the output's file system reports no O_DIRECT alignment (tmpfs?): it would serve \"direct\" \
                            writes from its page cache; writing through the page cache"
                    .into())
            }
            Err(e) => return Err(format!("statx of the output: {e}")),
        };
        let unit = mem.max(off) as u64;
        if !DIRECT_UNIT.is_multiple_of(unit) || !DIRECT_PAYLOAD_AT.is_multiple_of(mem as u64) {
            return Err(format!(
                "the output's file system needs {unit}-byte O_DIRECT units (memory {mem}, offset {off}); payloads at +{DIRECT_PAYLOAD_AT} \
                 of a frame in {DIRECT_UNIT}-byte units do not meet that"
            ));
        }
        let Some(payload) = payload else {
            return Err("the sender offered no payload of whole 512-byte units (an older sender, or an MTU under 578)".into());
        };
        if payload == 0 || !payload.is_multiple_of(DIRECT_UNIT) {
            return Err(format!("the sender offered {payload}-byte payloads, not whole {DIRECT_UNIT}-byte units"));
        }
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .map_err(|e| format!("opening the output with O_DIRECT: {e}"))?;
        // One unit of zeros at offset 0 (the first packet overwrites it), from an aligned buffer.
        let store = vec![0u8; 2 * DIRECT_UNIT as usize];
        let at = store.as_ptr().align_offset(DIRECT_UNIT as usize);
        if size >= DIRECT_UNIT {
            if let Err(e) = direct.write_all_at(&store[at..at + DIRECT_UNIT as usize], 0) {
                return Err(format!("the output's file system refused an O_DIRECT write ({e}); writing through the page cache"));
            }
        }
        if preallocate {
            // 1 MiB of zeros at a time from one aligned buffer, up to the padded end.
            let zeros = vec![0u8; (1 << 20) + 4096];
            let z = &zeros[zeros.as_ptr().align_offset(4096)..][..1 << 20];
            let (end, mut at) = (size.next_multiple_of(unit), 0);
            while at < end {
                let n = (end - at).min(1 << 20) as usize;
                if let Err(e) = direct.write_all_at(&z[..n], at) {
                    return Err(format!("preallocating the output by O_DIRECT ({e}); writing through the page cache"));
                }
                at += n as u64;
            }
        }
        // The padded last block's room, reserved now (the file's size stays).
        let tail = size.next_multiple_of(unit) - size;
        if let Err(e) = crate::sys::file::reserve_beyond(file, size, tail) {
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(format!("reserving the last block's room ({e}); writing through the page cache"));
            }
        }
        let mut d = DirectOut::new(direct, unit, size);
        d.overwrites = preallocate;
        Ok(d)
    }

    /// The writes in flight one queue may have: several where they overwrite
    /// written blocks, one where ext4 would serialize them anyway (see the file's head).
    pub fn in_flight(&self) -> usize {
        if self.overwrites {
            IN_FLIGHT
        } else {
            1
        }
    }

    /// The counters at zero, for `file` (opened with O_DIRECT) of `size` bytes in `unit`s.
    fn new(file: File, unit: u64, size: u64) -> DirectOut {
        DirectOut {
            file,
            unit,
            size,
            overwrites: false,
            deferred: Mutex::new(Vec::new()),
            deferred_bytes: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            direct_packets: AtomicU64::new(0),
            direct_bytes: AtomicU64::new(0),
            direct_calls: AtomicU64::new(0),
            padded: AtomicU64::new(0),
            unaligned_packets: AtomicU64::new(0),
            unaligned_bytes: AtomicU64::new(0),
            multi_frame_packets: AtomicU64::new(0),
            multi_frame_bytes: AtomicU64::new(0),
        }
    }

    /// The O_DIRECT file, for a [`RunWriter`](super::writer::RunWriter).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// What to write with O_DIRECT for an accepted payload at file `offset`:
    /// the payload itself if it is whole units on unit boundaries; the file's
    /// last, short payload rounded up to a unit from the bytes behind it in
    /// its frame (`to_frame_end` starts where the payload does); None if it
    /// must go through the page cache (counted).
    pub fn place<'a>(&self, offset: u64, payload: &'a [u8], to_frame_end: &'a [u8]) -> Option<&'a [u8]> {
        let len = payload.len() as u64;
        let on_boundary = (payload.as_ptr() as usize).is_multiple_of(self.unit as usize) && offset.is_multiple_of(self.unit);
        let rounded = len.div_ceil(self.unit) * self.unit;
        let out = if !on_boundary || len == 0 {
            None
        } else if rounded == len {
            Some(payload)
        } else if offset + len == self.size && to_frame_end.len() as u64 >= rounded && to_frame_end.as_ptr() == payload.as_ptr() {
            self.padded.fetch_add(rounded - len, Relaxed);
            Some(&to_frame_end[..rounded as usize])
        } else {
            None
        };
        match out {
            Some(_) => {
                self.direct_packets.fetch_add(1, Relaxed);
                self.direct_bytes.fetch_add(len, Relaxed);
            }
            None => self.count_cached(Cached::Unaligned, len),
        }
        out
    }

    /// Counts O_DIRECT write calls made.
    pub fn count_calls(&self, n: u64) {
        self.direct_calls.fetch_add(n, Relaxed);
    }

    /// Counts a payload that goes through the page cache.
    pub fn count_cached(&self, why: Cached, bytes: u64) {
        let (p, b) = match why {
            Cached::Unaligned => (&self.unaligned_packets, &self.unaligned_bytes),
            Cached::MultiFrame => (&self.multi_frame_packets, &self.multi_frame_bytes),
        };
        p.fetch_add(1, Relaxed);
        b.fetch_add(bytes, Relaxed);
    }

    /// Keeps a copy of pieces that go through the page cache, for
    /// [`DirectOut::finish`] to write once no O_DIRECT write is in flight.
    pub fn defer(&self, pieces: &[(u64, std::borrow::Cow<'_, [u8]>)]) -> io::Result<()> {
        if pieces.is_empty() {
            return Ok(());
        }
        let bytes: u64 = pieces.iter().map(|(_, d)| d.len() as u64).sum();
        if self.deferred_bytes.fetch_add(bytes, Relaxed) + bytes > MAX_DEFERRED {
            return Err(io::Error::other(format!(
                "more than {} MiB of payloads off O_DIRECT boundaries: the sender does not cut whole units; run without --direct",
                MAX_DEFERRED >> 20
            )));
        }
        let mut d = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
        d.extend(pieces.iter().map(|(o, b)| (*o, b.to_vec())));
        Ok(())
    }

    /// A queue had `n` writes in flight at once.
    pub fn saw_in_flight(&self, n: usize) {
        self.peak_in_flight.fetch_max(n as u64, Relaxed);
    }

    /// Once every O_DIRECT write has completed: writes the deferred pieces
    /// through the page cache (`out`, the plain descriptor), cuts the file
    /// back to its size (past it lie the padded last block and the room
    /// reserved for it), and reports what went which way.
    pub fn finish(&self, out: &File) -> io::Result<DirectWrites> {
        let deferred = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        for (offset, data) in &deferred {
            out.write_all_at(data, *offset)?;
        }
        let padded = self.padded.load(Relaxed);
        self.file.set_len(self.size)?;
        Ok(DirectWrites {
            used: true,
            why_not: None,
            unit: self.unit,
            direct_packets: self.direct_packets.load(Relaxed),
            direct_bytes: self.direct_bytes.load(Relaxed),
            direct_calls: self.direct_calls.load(Relaxed),
            padded_tail_bytes: padded,
            unaligned_packets: self.unaligned_packets.load(Relaxed),
            unaligned_bytes: self.unaligned_bytes.load(Relaxed),
            multi_frame_packets: self.multi_frame_packets.load(Relaxed),
            multi_frame_bytes: self.multi_frame_bytes.load(Relaxed),
            writes_in_flight_peak: self.peak_in_flight.load(Relaxed),
            preallocated: self.overwrites,
        })
    }
}

/// The most bytes of payloads off a boundary kept aside for the end.
const MAX_DEFERRED: u64 = 64 << 20;

/// Writes one queue may have in flight at once over written blocks.
const IN_FLIGHT: usize = 32;
/// The most payloads one write takes (IOV_MAX).
const MAX_RUN: usize = 1024;

/// A payload to write with O_DIRECT: where in the file, the frame it is
/// in (lent to the write), and where in the frame it lies.
pub struct Planned {
    pub offset: u64,
    pub loan: IoLoan,
    pub start: usize,
    pub len: usize,
}

/// One queue's O_DIRECT writes in flight, on an io_uring of its own. A
/// frame comes back (for the fill ring) only when the write that reads it
/// has completed; a write that takes longer than `patience` is an error.
pub struct DirectWriter {
    ring: ReadRing<Vec<IoLoan>>,
    /// Writes in flight by tag: when submitted, and the bytes they must write.
    pending: BTreeMap<u64, (Instant, usize)>,
    next_tag: u64,
    done: Vec<ReadDone<Vec<IoLoan>>>,
    patience: Duration,
    limit: usize,
    /// Writes submitted (each one io_uring_enter, which also reaps).
    pub submitted: u64,
}

impl DirectWriter {
    /// A writer with up to `limit` writes in flight (`DirectOut::in_flight`).
    pub fn new(patience: Duration, limit: usize) -> io::Result<DirectWriter> {
        let ring = ReadRing::new(IN_FLIGHT as u32 * 2).map_err(io::Error::other)?;
        let limit = limit.clamp(1, IN_FLIGHT);
        Ok(DirectWriter { ring, pending: BTreeMap::new(), next_tag: 0, done: Vec::new(), patience, limit, submitted: 0 })
    }

    pub fn in_flight(&self) -> usize {
        self.ring.in_flight()
    }

    /// Submits `planned` (in file order): a write per run of consecutive
    /// payloads. With the ring full it first waits for writes to complete;
    /// completed writes' frames go to `free`.
    pub fn submit(
        &mut self,
        out: &DirectOut,
        planned: Vec<Planned>,
        frames: &mut Frames,
        free: &mut Vec<Frame>,
    ) -> io::Result<()> {
        let mut run: Vec<Planned> = Vec::new();
        for p in planned {
            let continues = run.last().is_some_and(|l| l.offset + l.len as u64 == p.offset) && run.len() < MAX_RUN;
            if !continues && !run.is_empty() {
                self.submit_run(out, std::mem::take(&mut run), frames, free)?;
            }
            run.push(p);
        }
        if !run.is_empty() {
            self.submit_run(out, run, frames, free)?;
        }
        Ok(())
    }

    fn submit_run(&mut self, out: &DirectOut, run: Vec<Planned>, frames: &mut Frames, free: &mut Vec<Frame>) -> io::Result<()> {
        while self.ring.in_flight() >= self.limit {
            self.reap(frames, free, Duration::from_millis(10))?;
        }
        let offset = run[0].offset;
        let runs: Vec<(usize, usize)> = run.iter().map(|p| (p.start, p.len)).collect();
        let bytes = runs.iter().map(|r| r.1).sum();
        let loans: Vec<IoLoan> = run.into_iter().map(|p| p.loan).collect();
        let tag = self.next_tag;
        self.next_tag += 1;
        if let Err((loans, e)) = self.ring.push_writev(out.file(), loans, &runs, offset, tag) {
            free.extend(loans.into_iter().map(|l| frames.end_io(l)));
            return Err(e);
        }
        self.pending.insert(tag, (Instant::now(), bytes));
        self.submitted += 1;
        out.count_calls(1);
        out.saw_in_flight(self.ring.in_flight());
        Ok(())
    }

    /// Takes the writes that completed (waiting up to `wait` for one if any
    /// is in flight); their frames go to `free`. A failed or short write, or
    /// one in flight for longer than the patience, is an error.
    pub fn reap(&mut self, frames: &mut Frames, free: &mut Vec<Frame>, wait: Duration) -> io::Result<()> {
        if self.ring.in_flight() > 0 && !wait.is_zero() {
            self.ring.wait(wait)?;
        }
        self.ring.reap(&mut self.done);
        let mut failed = None;
        for d in self.done.drain(..) {
            let (_, want) = self.pending.remove(&d.tag).unwrap_or((Instant::now(), 0));
            free.extend(d.buf.into_iter().map(|l| frames.end_io(l)));
            if d.result < 0 {
                let e = io::Error::from_raw_os_error(-d.result);
                failed.get_or_insert(if e.raw_os_error() == Some(libc::ENOSPC) {
                    io::Error::new(e.kind(), format!("no room left for the output ({e}) in an O_DIRECT write"))
                } else {
                    io::Error::new(e.kind(), format!("an O_DIRECT write from the UMEM failed: {e}"))
                });
            } else if d.result as usize != want {
                failed.get_or_insert(io::Error::other(format!(
                    "an O_DIRECT write from the UMEM wrote {} of {want} bytes (the disk full?)",
                    d.result
                )));
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some((_, &(since, _))) = self.pending.iter().next() {
            if since.elapsed() > self.patience {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "an O_DIRECT write has not completed in {:.1} s: the disk is not answering",
                        self.patience.as_secs_f64()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Waits for every write in flight (up to the patience); their frames go to `free`.
    pub fn settle(&mut self, frames: &mut Frames, free: &mut Vec<Frame>) -> io::Result<()> {
        while self.ring.in_flight() > 0 {
            self.reap(frames, free, Duration::from_millis(50))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(size: u64) -> (DirectOut, std::path::PathBuf) {
        // Beside the crate (a disk file system here), not in a tmpfs /tmp.
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(format!("direct-test-{}-{size}", std::process::id()));
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        f.set_len(size).unwrap();
        (DirectOut::new(f, 512, size), p)
    }

    /// A 4096-byte "frame" on a 4096-byte boundary, in `store`.
    fn frame(store: &[u8]) -> &[u8] {
        let at = store.as_ptr().align_offset(4096);
        &store[at..at + 4096]
    }

    #[test]
    fn whole_units_on_boundaries_go_direct_and_the_rest_is_counted() {
        let (d, p) = out(10_000);
        let store = vec![0u8; 8192];
        let f = frame(&store);
        assert!(d.place(1024, &f[512..1536], &f[512..]).is_some(), "aligned address, offset and length");
        assert!(d.place(1024, &f[516..1540], &f[516..]).is_none(), "an address 4 bytes off");
        assert!(d.place(1000, &f[512..1536], &f[512..]).is_none(), "an offset off a boundary");
        assert!(d.place(0, &f[512..1000], &f[512..]).is_none(), "a short payload that is not the file's last");
        // The last payload: 10_000 - 9728 = 272 bytes, written as one unit from its frame.
        let tail = d.place(9728, &f[512..784], &f[512..]).expect("the file's last payload, rounded up");
        assert_eq!(tail.len(), 512);
        let r = d.finish(&std::fs::File::open(&p).unwrap()).unwrap();
        assert_eq!((r.direct_packets, r.direct_bytes, r.padded_tail_bytes), (2, 1024 + 272, 240));
        assert_eq!((r.unaligned_packets, r.unaligned_bytes), (3, 1024 + 1024 + 488));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn a_last_payload_without_room_behind_it_goes_through_the_page_cache() {
        let (d, p) = out(1100);
        let store = vec![0u8; 8192];
        let f = frame(&store);
        // 76 bytes at 1024, on a boundary, but only 116 bytes of frame from its start.
        assert!(d.place(1024, &f[3584..3660], &f[3584..3700]).is_none());
        assert_eq!(d.finish(&std::fs::File::open(&p).unwrap()).unwrap().unaligned_packets, 1);
        std::fs::remove_file(p).unwrap();
    }
}
