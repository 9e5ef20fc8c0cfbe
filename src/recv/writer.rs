//! Writing accepted packets into the output file: consecutive packets are
//! gathered into one `pwritev` (up to IOV_MAX buffers), which copies them
//! straight from where they arrived (the UMEM, the GRO buffer) into the
//! file's page cache. Writing through a mapping of a fresh sparse file
//! instead costs a page fault and a page of zeroes per 4 KiB.

use crate::sys::file::pwritev;
use std::fs::File;
use std::io::{self, IoSlice};

/// The most buffers one pwritev takes (IOV_MAX on Linux).
const IOV_MAX: usize = 1024;

pub struct RunWriter<'a> {
    file: &'a File,
    iov: Vec<IoSlice<'a>>,
    start: u64,
    end: u64,
    pub syscalls: u64,
}

impl<'a> RunWriter<'a> {
    pub fn new(file: &'a File) -> RunWriter<'a> {
        RunWriter { file, iov: Vec::with_capacity(256), start: 0, end: 0, syscalls: 0 }
    }

    /// Queues `data` for `offset`; writes out the previous run if this one
    /// does not continue it.
    pub fn push(&mut self, offset: u64, data: &'a [u8]) -> io::Result<()> {
        if !self.iov.is_empty() && (offset != self.end || self.iov.len() == IOV_MAX) {
            self.flush()?;
        }
        if self.iov.is_empty() {
            self.start = offset;
            self.end = offset;
        }
        self.iov.push(IoSlice::new(data));
        self.end += data.len() as u64;
        Ok(())
    }

    /// Writes what is queued.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut bufs = &mut self.iov[..];
        let mut at = self.start;
        while !bufs.is_empty() {
            self.syscalls += 1;
            let n = pwritev(self.file, bufs, at)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "the output file took no data (disk full?)"));
            }
            at += n as u64;
            IoSlice::advance_slices(&mut bufs, n);
        }
        self.iov.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn runs_land_where_they_belong() {
        let p = std::env::temp_dir().join(format!("zclab-writer-{}", std::process::id()));
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        f.set_len(12).unwrap();
        let parts: [(u64, &[u8]); 4] = [(0, b"ab"), (2, b"cd"), (8, b"ij"), (4, b"ef")];
        let mut w = RunWriter::new(&f);
        for (off, d) in parts {
            w.push(off, d).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(w.syscalls, 3, "0..4 is one run, 8..10 and 4..6 are two more");
        let mut got = Vec::new();
        (&f).read_to_end(&mut got).unwrap();
        assert_eq!(&got, b"abcdef\0\0ij\0\0");
        std::fs::remove_file(&p).unwrap();
    }
}
