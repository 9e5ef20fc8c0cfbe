//! The block cache's disk side: what reads file blocks into lent UMEM
//! frames, and the io_uring reader that does it with O_DIRECT.

use super::layout::Segment;
use crate::xsk::IoLoan;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// A finished read: the loan back, which slot it was for, bytes read or -errno.
pub struct ReadDone {
    pub loan: IoLoan,
    pub slot: usize,
    pub result: i32,
}

/// What reads file blocks into lent UMEM frames: io_uring with O_DIRECT
/// here ([`DirectReader`]), a fake disk in tests.
pub trait BlockReader {
    /// Starts reading the runs `segs` of a block into `loan`; on an error the loan comes back.
    fn start(&mut self, loan: IoLoan, segs: &[Segment], slot: usize) -> Result<(), (IoLoan, io::Error)>;
    /// Waits up to `timeout` for a read to finish.
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;
    /// Takes the finished reads.
    fn reap(&mut self, out: &mut Vec<ReadDone>);
    fn in_flight(&self) -> usize;
    /// Reads synchronously (to finish a short read).
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

/// Asynchronous reads of the file through io_uring (O_DIRECT when the file
/// was opened so).
pub struct DirectReader {
    ring: crate::sys::uring::ReadRing<IoLoan>,
    file: File,
    done: Vec<crate::sys::uring::ReadDone<IoLoan>>,
}

impl DirectReader {
    pub fn new(file: File, entries: u32) -> io::Result<DirectReader> {
        let ring = crate::sys::uring::ReadRing::new(entries).map_err(io::Error::other)?;
        Ok(DirectReader { ring, file, done: Vec::new() })
    }
}

impl BlockReader for DirectReader {
    fn start(&mut self, loan: IoLoan, segs: &[Segment], slot: usize) -> Result<(), (IoLoan, io::Error)> {
        match segs {
            [one] if one.mem == 0 && one.len == loan.len() as u64 => self.ring.push_read(&self.file, loan, one.file, slot as u64),
            _ => {
                let runs: Vec<(usize, usize)> = segs.iter().map(|s| (s.mem as usize, s.len as usize)).collect();
                let offset = segs.first().map_or(0, |s| s.file);
                self.ring.push_readv(&self.file, loan, &runs, offset, slot as u64)
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.ring.wait(timeout)
    }

    fn reap(&mut self, out: &mut Vec<ReadDone>) {
        self.ring.reap(&mut self.done);
        out.extend(self.done.drain(..).map(|d| ReadDone { loan: d.buf, slot: d.tag as usize, result: d.result }));
    }

    fn in_flight(&self) -> usize {
        self.ring.in_flight()
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
}
