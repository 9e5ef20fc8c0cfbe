//! Memory mappings owned by a value: `mmap` on creation, `munmap` on drop.
//! The UMEM and the four AF_XDP rings live in such mappings.

use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is plain memory; moving the owner between threads is
// fine. Shared access is governed by the types built on top of it.
unsafe impl Send for Mapping {}
// SAFETY: &Mapping only hands out the base pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Private anonymous memory, populated up front (no page faults later).
    /// With `huge`, backed by 2 MiB huge pages (needs vm.nr_hugepages).
    pub fn anonymous(len: usize, huge: bool) -> io::Result<Mapping> {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        if huge {
            flags |= libc::MAP_HUGETLB;
        }
        // SAFETY: a fresh anonymous mapping aliases nothing.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        Self::from_mmap(p, len)
    }

    /// A shared mapping of `len` bytes of `fd` at `offset` (an AF_XDP ring).
    pub fn shared(fd: &impl AsRawFd, len: usize, offset: u64) -> io::Result<Mapping> {
        // SAFETY: mapping a kernel ring; the kernel defines its contents and
        // the ring types only access it through atomics and masked indices.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        Self::from_mmap(p, len)
    }

    fn from_mmap(p: *mut libc::c_void, len: usize) -> io::Result<Mapping> {
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: NonNull::new(p as *mut u8).expect("mmap never returns null on success"), len })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own this mapping; nothing refers to it after drop.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}
