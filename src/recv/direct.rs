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
//! A payload that cannot go direct (not on a boundary in memory, offset or
//! length; a packet in several frames) is counted and written through the
//! page cache. Such a write and an O_DIRECT write of the same page from
//! another queue's thread must not overlap (a buffered write may read the
//! page from the disk while a direct write of its other half is in flight,
//! and later write the old half back): direct writes share a lock that a
//! buffered one takes alone.

use crate::report::DirectWrites;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{RwLock, RwLockReadGuard};

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
    order: RwLock<()>,
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
    /// offset 0 to see that the file system takes it. `Err` says why the
    /// receiver must write through the page cache instead.
    pub fn open(path: &Path, file: &File, size: u64, payload: Option<u64>) -> Result<DirectOut, NotDirect> {
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
        Ok(DirectOut::new(direct, unit, size))
    }

    /// The counters at zero, for `file` (opened with O_DIRECT) of `size` bytes in `unit`s.
    fn new(file: File, unit: u64, size: u64) -> DirectOut {
        DirectOut {
            file,
            unit,
            size,
            order: RwLock::new(()),
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

    /// Held while this thread writes with O_DIRECT (shared by all threads).
    pub fn writing(&self) -> RwLockReadGuard<'_, ()> {
        self.order.read().unwrap_or_else(|p| p.into_inner())
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

    /// Writes pieces through the page cache (`out`, the plain descriptor),
    /// with no O_DIRECT write of any thread in flight. Returns the calls.
    pub fn write_cached(&self, out: &File, pieces: &[(u64, std::borrow::Cow<'_, [u8]>)]) -> io::Result<u64> {
        if pieces.is_empty() {
            return Ok(0);
        }
        let _alone = self.order.write().unwrap_or_else(|p| p.into_inner());
        for (offset, data) in pieces {
            out.write_all_at(data, *offset)?;
        }
        Ok(pieces.len() as u64)
    }

    /// Cuts the file back to its size if a last payload was written rounded
    /// up, and reports what went which way.
    pub fn finish(&self) -> io::Result<DirectWrites> {
        let padded = self.padded.load(Relaxed);
        if padded > 0 {
            self.file.set_len(self.size)?;
        }
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
        })
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
        let r = d.finish().unwrap();
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
        assert_eq!(d.finish().unwrap().unaligned_packets, 1);
        std::fs::remove_file(p).unwrap();
    }
}
