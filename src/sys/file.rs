//! Files, pipes and the page cache: `sendfile`, `splice`, `pipe2`, `mmap`,
//! `mincore`, `posix_fadvise`.

use super::cvt;
use memmap2::Mmap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `sendfile(out, in, &offset, count)`: the kernel moves up to `count` bytes
/// of `input` starting at `*offset` to `out` and advances `*offset`.
pub fn sendfile(out: &impl AsRawFd, input: &File, offset: &mut u64, count: usize) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: both fds are open for the duration of the call and `off`
    // is a valid, writable off_t the kernel updates.
    let n = cvt(unsafe { libc::sendfile(out.as_raw_fd(), input.as_raw_fd(), &mut off, count) })?;
    *offset = off as u64;
    Ok(n as usize)
}

/// `sendfile(out, in, NULL, count)`: from `input`'s current position (the
/// only way to name a pipe or socket as input; the kernel still refuses those).
pub fn sendfile_from_position(out: &impl AsRawFd, input: &impl AsRawFd, count: usize) -> io::Result<usize> {
    // SAFETY: both fds are open for the duration of the call; a null offset
    // pointer is allowed and means "use and advance the file position".
    let n = cvt(unsafe { libc::sendfile(out.as_raw_fd(), input.as_raw_fd(), std::ptr::null_mut(), count) })?;
    Ok(n as usize)
}

/// A pipe: the kernel buffer that `splice` moves page references through.
/// Both ends are closed on drop.
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
}

impl Pipe {
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for the kernel to fill.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Pipe { read, write })
    }

    /// Asks for a pipe buffer of `bytes` (rounded up by the kernel to a
    /// power of two pages); returns the size granted.
    pub fn set_size(&self, bytes: usize) -> io::Result<usize> {
        // SAFETY: F_SETPIPE_SZ takes an int argument and touches no memory of ours.
        let n = cvt(unsafe { libc::fcntl(self.write.as_raw_fd(), libc::F_SETPIPE_SZ, bytes as libc::c_int) })?;
        Ok(n as usize)
    }
}

/// `splice(in, off_in, out, NULL, len, flags)`. `off_in` is `Some` when the
/// input is a file (its offset is advanced), `None` for a pipe or socket.
pub fn splice(input: &impl AsRawFd, off_in: Option<&mut u64>, out: &impl AsRawFd, len: usize, flags: u32) -> io::Result<usize> {
    let mut off: libc::loff_t = 0;
    let off_ptr = match &off_in {
        Some(o) => {
            off = **o as libc::loff_t;
            &mut off as *mut libc::loff_t
        }
        None => std::ptr::null_mut(),
    };
    // SAFETY: the fds are open during the call; `off_ptr` is either null or
    // points at a live local loff_t.
    let n = cvt(unsafe { libc::splice(input.as_raw_fd(), off_ptr, out.as_raw_fd(), std::ptr::null_mut(), len, flags) })?;
    if let Some(o) = off_in {
        *o = off as u64;
    }
    Ok(n as usize)
}

/// Maps a whole file read-only. `None` for an empty file (mmap of length 0
/// is an error in the kernel).
///
/// The mapping is only sound while nobody truncates the file: zclab maps the
/// file it is sending, and a concurrent truncation would turn reads of the
/// mapping into SIGBUS. That is the classic caveat of mmap-based I/O and is
/// stated here once rather than hidden.
pub fn map_readonly(file: &File) -> io::Result<Option<Mmap>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the mapping is read-only and private to this process; the only
    // hazard is concurrent truncation of the file (see the doc above), which
    // the lab does not do.
    let map = unsafe { Mmap::map(file) }?;
    Ok(Some(map))
}

/// Maps a whole file private and writable (copy on write): what io_uring
/// needs to register it as fixed buffers. Nothing writes to it; the kernel
/// pinning its pages for writing gives each one a private copy. Same
/// truncation caveat as [`map_readonly`]. `None` for an empty file.
pub fn map_private_writable(file: &File) -> io::Result<Option<memmap2::MmapMut>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: a private mapping: writes (there are none from us) would go to
    // private copies, never to the file; the hazard is truncation, as above.
    let map = unsafe { memmap2::MmapOptions::new().map_copy(file) }?;
    Ok(Some(map))
}

/// Maps a whole file read-only for the page-fault lesson: with `populate`
/// (`MAP_POPULATE`) every page is mapped before the call returns; with
/// `sequential` the kernel is told the mapping will be read in order
/// (`madvise(MADV_SEQUENTIAL)`). `None` for an empty file.
pub fn map_for_reading(file: &File, populate: bool, sequential: bool) -> io::Result<Option<Mmap>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    let mut opts = memmap2::MmapOptions::new();
    if populate {
        opts.populate();
    }
    // SAFETY: as in `map_readonly`: read-only and private; the lesson that
    // uses it does not truncate this file while the mapping lives.
    let map = unsafe { opts.map(file) }?;
    if sequential {
        map.advise(memmap2::Advice::Sequential)?;
    }
    Ok(Some(map))
}

/// Maps a whole file private and writable (`MAP_PRIVATE`, copy-on-write):
/// writes go to private copies of the pages, never to the file. `None` for
/// an empty file.
pub fn map_copy_on_write(file: &File) -> io::Result<Option<memmap2::MmapMut>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: a private mapping: our writes never reach the file or other
    // mappings; the only hazard is a concurrent truncation (see
    // `map_readonly`), which the lesson that uses it does not do.
    let map = unsafe { memmap2::MmapOptions::new().map_copy(file) }?;
    Ok(Some(map))
}

/// Maps two pages of `file`, which must be at most one page long, and
/// reads the second page: past the end of the file, so the kernel sends
/// SIGBUS and the process dies of it. For a child process that shows the
/// signal (the mmap lesson); it returns only if the file was longer.
pub fn touch_past_end(file: &File) -> io::Result<u8> {
    let page = super::page_size();
    if file.metadata()?.len() > page as u64 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the file is longer than a page: nothing to show"));
    }
    // SAFETY: a read-only private mapping of two pages; the second lies past
    // the end of the file, which is the point: touching it raises SIGBUS,
    // which ends the process before any value is produced.
    let map = unsafe { memmap2::MmapOptions::new().len(2 * page).map(file) }?;
    // SAFETY: the pointer is inside the two-page mapping; a volatile read so
    // that the access really happens.
    Ok(unsafe { std::ptr::read_volatile(map.as_ptr().add(page)) })
}

/// How many bytes of `file` sit in the page cache now (`mincore` over a
/// fresh mapping; mapping a file does not read it).
pub fn cached_bytes(file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let Some(map) = map_readonly(file)? else {
        return Ok(0);
    };
    let page = super::page_size();
    let pages = (map.len()).div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: `map` is a live mapping of `map.len()` bytes starting at a page
    // boundary, and `vec` has one byte per page of it, as mincore requires.
    cvt(unsafe { libc::mincore(map.as_ptr() as *mut libc::c_void, map.len(), vec.as_mut_ptr()) })?;
    let resident = vec.iter().filter(|b| **b & 1 == 1).count() as u64;
    Ok((resident * page as u64).min(len))
}

/// Sets or clears `O_NONBLOCK` on an open file.
pub fn set_nonblocking(file: &File, on: bool) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL) takes an fd and returns flags or -1.
    let flags = cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) })?;
    let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    // SAFETY: fcntl(F_SETFL) takes an fd and an int of flags.
    cvt(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags) })?;
    Ok(())
}

/// `fallocate(fd, 0, 0, len)`: reserves the blocks of the first `len`
/// bytes (and makes the file at least that long). ENOSPC when they do not
/// fit; EOPNOTSUPP on a file system that cannot.
pub fn fallocate(file: &File, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: fallocate takes an fd and plain integers.
    cvt(unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) })?;
    Ok(())
}

/// Reserves `len` blocks of `file` from `offset` without changing its size
/// (`FALLOC_FL_KEEP_SIZE`): room a later write past the end may take.
pub fn reserve_beyond(file: &File, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let big = |_| io::Error::from_raw_os_error(libc::EFBIG);
    let (offset, len) = (libc::off_t::try_from(offset).map_err(big)?, libc::off_t::try_from(len).map_err(big)?);
    // SAFETY: fallocate takes an fd and plain integers.
    cvt(unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) })?;
    Ok(())
}

/// Bytes free for an unprivileged user on the file system of `file` (statvfs).
pub fn free_bytes(file: &File) -> io::Result<u64> {
    // SAFETY: statvfs is a plain C struct; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a pointer to a statvfs we own.
    cvt(unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) })?;
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)`: asks the kernel to drop the file's
/// clean pages from the page cache (a "cold cache" run). Its dirty pages
/// are written back first (`fdatasync`): DONTNEED only starts writeback and
/// keeps a page that is dirty or under writeback, so a file written just
/// before stayed partly cached (64 KiB of a fresh 16 MiB file, once, on a
/// busy machine).
pub fn evict_from_cache(file: &File) -> io::Result<()> {
    match file.sync_data() {
        Ok(()) => {}
        // A file that cannot be synced (a pipe, a special file) has no dirty pages to wait for.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EROFS)) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: fadvise takes an fd and plain integers.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// The O_DIRECT alignment of an open file (`statx` with `STATX_DIOALIGN`):
/// (memory alignment, file-offset alignment), or `None` when the
/// filesystem does not do direct I/O (tmpfs accepts O_DIRECT and buffers).
pub fn dio_align(file: &File) -> io::Result<Option<(u32, u32)>> {
    // SAFETY: statx is a plain C struct; all-zero is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty C path with AT_EMPTY_PATH names the fd itself; `st` is writable.
    cvt(unsafe { libc::statx(file.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, libc::STATX_DIOALIGN, &mut st) })?;
    if st.stx_mask & libc::STATX_DIOALIGN == 0 || st.stx_dio_mem_align == 0 || st.stx_dio_offset_align == 0 {
        return Ok(None);
    }
    Ok(Some((st.stx_dio_mem_align, st.stx_dio_offset_align)))
}

/// The iovec array of a vectored write, kept from one use to the next so
/// that a receiver allocates nothing per batch once it has grown. Between
/// two uses it is empty: an [`IovBatch`] clears it when made and dropped.
#[derive(Default)]
pub struct IovStore(Vec<libc::iovec>);

// SAFETY: the vector holds no iovec between two batches (see above), so no
// pointer in it is ever used on another thread; during a batch, the
// batch's `&mut` borrow keeps it where the borrowed data is.
unsafe impl Send for IovStore {}

impl IovStore {
    /// An empty batch of buffers borrowed for `'a`.
    pub fn batch<'a>(&mut self) -> IovBatch<'a, '_> {
        self.0.clear();
        IovBatch { iov: &mut self.0, _data: std::marker::PhantomData }
    }
}

/// Buffers for one `pwritev`, each borrowed for `'a`.
pub struct IovBatch<'a, 's> {
    iov: &'s mut Vec<libc::iovec>,
    _data: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> IovBatch<'a, '_> {
    pub fn push(&mut self, data: &'a [u8]) {
        self.iov.push(libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() });
    }

    pub fn len(&self) -> usize {
        self.iov.len()
    }

    pub fn is_empty(&self) -> bool {
        self.iov.is_empty()
    }

    /// Writes every buffer, in order, from `offset` (pwritev again after a
    /// short write), and empties the batch. Returns the calls made.
    pub fn write_all_at(&mut self, file: &File, offset: u64) -> io::Result<u64> {
        let (mut first, mut at, mut calls) = (0, offset, 0);
        while first < self.iov.len() {
            calls += 1;
            let rest = &self.iov[first..];
            // SAFETY: every iovec was made in `push` from a slice borrowed
            // for `'a`, which outlives this batch (or cut shorter below,
            // inside the same slice); the kernel only reads the buffers.
            let n = cvt(unsafe { libc::pwritev(file.as_raw_fd(), rest.as_ptr(), rest.len() as libc::c_int, at as libc::off_t) })?;
            let mut n = n as usize;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "the output file took no data (disk full?)"));
            }
            at += n as u64;
            // Skip what was written whole; cut into the one written in part.
            while first < self.iov.len() && n >= self.iov[first].iov_len {
                n -= self.iov[first].iov_len;
                first += 1;
            }
            if n > 0 {
                let v = &mut self.iov[first];
                v.iov_base = (v.iov_base as *mut u8).wrapping_add(n).cast();
                v.iov_len -= n;
            }
        }
        self.iov.clear();
        Ok(calls)
    }
}

impl Drop for IovBatch<'_, '_> {
    fn drop(&mut self) {
        self.iov.clear();
    }
}
