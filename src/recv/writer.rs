//! Writing accepted packets into the output file: consecutive packets are
//! gathered into one `pwritev` (up to IOV_MAX buffers), which copies them
//! straight from where they arrived (the UMEM, the GRO buffer) into the
//! file's page cache. Writing through a mapping of a fresh sparse file
//! instead costs a page fault and a page of zeroes per 4 KiB.

use crate::sys::file::IovBatch;
pub use crate::sys::file::IovStore;
use std::fs::File;
use std::io;

/// The most buffers one pwritev takes (IOV_MAX on Linux).
const IOV_MAX: usize = 1024;

pub struct RunWriter<'a, 's> {
    file: &'a File,
    iov: IovBatch<'a, 's>,
    start: u64,
    end: u64,
    pub syscalls: u64,
}

impl<'a, 's> RunWriter<'a, 's> {
    /// A writer whose iovecs live in `store` (reused: a batch allocates nothing).
    pub fn new(file: &'a File, store: &'s mut IovStore) -> RunWriter<'a, 's> {
        RunWriter { file, iov: store.batch(), start: 0, end: 0, syscalls: 0 }
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
        self.iov.push(data);
        self.end += data.len() as u64;
        Ok(())
    }

    /// Writes what is queued.
    pub fn flush(&mut self) -> io::Result<()> {
        self.syscalls += self.iov.write_all_at(self.file, self.start)?;
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
        let mut store = IovStore::default();
        let mut w = RunWriter::new(&f, &mut store);
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
