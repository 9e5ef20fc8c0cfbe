//! The UMEM: one region of memory, registered with the kernel, that every
//! packet buffer of a socket lives in. Descriptors name buffers by their
//! byte offset (the "address") into it.
//!
//! *Aligned* mode cuts the UMEM into chunks of a power-of-two size and a
//! descriptor may not cross a chunk edge (the kernel drops it silently,
//! counting `tx_invalid_descs`). *Unaligned* mode
//! (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`) lets a descriptor start anywhere: what
//! lets zclab point a TX descriptor straight at file bytes read into the
//! UMEM with O_DIRECT.

use crate::sys::mmap::Mapping;
use std::io;

#[derive(Debug, Clone, Copy)]
pub struct UmemConfig {
    /// Bytes in all; a multiple of `chunk_size`.
    pub len: usize,
    /// Aligned mode: a power of two from 2048 to the page size.
    pub chunk_size: u32,
    /// Allow descriptors to start anywhere.
    pub unaligned: bool,
    /// Back the UMEM with 2 MiB huge pages (vm.nr_hugepages must allow it).
    pub huge_pages: bool,
}

/// A descriptor pointed outside the UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("UMEM access {addr}+{len} outside its {size} bytes")]
pub struct OutOfBounds {
    pub addr: u64,
    pub len: usize,
    pub size: usize,
}

pub struct Umem {
    area: Mapping,
    cfg: UmemConfig,
}

impl Umem {
    pub fn new(cfg: UmemConfig) -> io::Result<Umem> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if cfg.chunk_size < 2048 || (!cfg.unaligned && !cfg.chunk_size.is_power_of_two()) {
            return Err(invalid(format!(
                "UMEM chunk size {} must be at least 2048 and, in aligned mode, a power of two",
                cfg.chunk_size
            )));
        }
        if cfg.len == 0 || !cfg.len.is_multiple_of(cfg.chunk_size as usize) {
            return Err(invalid(format!(
                "UMEM size {} must be a positive multiple of the chunk size {}",
                cfg.len, cfg.chunk_size
            )));
        }
        let area = Mapping::anonymous(cfg.len, cfg.huge_pages).map_err(|e| {
            if cfg.huge_pages {
                io::Error::new(
                    e.kind(),
                    format!("no huge pages for a {} MiB UMEM ({e}): reserve some with sysctl vm.nr_hugepages=N", cfg.len >> 20),
                )
            } else {
                e
            }
        })?;
        Ok(Umem { area, cfg })
    }

    pub fn config(&self) -> &UmemConfig {
        &self.cfg
    }

    pub fn len(&self) -> usize {
        self.area.len()
    }

    pub fn is_empty(&self) -> bool {
        self.area.is_empty()
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.area.as_ptr()
    }

    fn check(&self, addr: u64, len: usize) -> Result<usize, OutOfBounds> {
        let err = OutOfBounds { addr, len, size: self.len() };
        let start = usize::try_from(addr).map_err(|_| err)?;
        match start.checked_add(len) {
            Some(end) if end <= self.len() => Ok(start),
            _ => Err(err),
        }
    }

    /// The bytes `addr..addr + len`, bounds-checked.
    ///
    /// Call it only for buffers user space owns: taken from the Rx or
    /// Completion ring and not yet given back, or never given to the kernel.
    pub fn slice(&self, addr: u64, len: usize) -> Result<&[u8], OutOfBounds> {
        let start = self.check(addr, len)?;
        // SAFETY: in bounds (checked); the buffer is owned by user space by
        // the ring protocol, so the kernel does not write it meanwhile.
        Ok(unsafe { std::slice::from_raw_parts(self.base().add(start), len) })
    }

    /// Mutable bytes `addr..addr + len`, bounds-checked; same ownership rule.
    pub fn slice_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], OutOfBounds> {
        let start = self.check(addr, len)?;
        // SAFETY: in bounds; `&mut self` excludes other user-space views, and
        // the ring protocol keeps the kernel away from a buffer we own.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.base().add(start), len) })
    }
}

impl Umem {
    /// Starts an asynchronous read of `len` bytes at `offset` of `file` into
    /// `addr..addr + len` (bounds-checked); its completion comes from `ring`
    /// tagged `tag`.
    ///
    /// The region must be one user space owns and leaves alone until that
    /// completion: the af-xdp sender reads only into a block slot that no
    /// descriptor points at, and touches it again only after the read
    /// completed. The ring must be dropped before this UMEM (its Drop waits
    /// for reads in flight).
    pub fn read_async(
        &mut self,
        ring: &mut crate::sys::uring::ReadRing,
        file: &std::fs::File,
        addr: u64,
        len: usize,
        offset: u64,
        tag: u64,
    ) -> io::Result<()> {
        let start = self.check(addr, len).map_err(io::Error::other)?;
        let len32 = u32::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "read larger than 4 GiB"))?;
        // SAFETY: the region is inside the UMEM (checked) and owned by user
        // space as documented above; `&mut self` rules out other views now,
        // and the caller's protocol keeps the region untouched until the
        // completion. The ring is dropped before the UMEM (documented above).
        unsafe { ring.push_read(file, self.base().add(start), len32, offset, tag) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated_and_access_bounds_checked() {
        let c = UmemConfig { len: 8 * 4096, chunk_size: 4096, unaligned: false, huge_pages: false };
        assert!(Umem::new(UmemConfig { chunk_size: 3000, ..c }).is_err());
        assert!(Umem::new(UmemConfig { chunk_size: 1024, ..c }).is_err());
        assert!(Umem::new(UmemConfig { len: 4096 * 8 + 1, ..c }).is_err());
        assert!(Umem::new(UmemConfig { chunk_size: 3000, len: 30000, unaligned: true, ..c }).is_ok());
        let mut u = Umem::new(c).unwrap();
        u.slice_mut(100, 4).unwrap().copy_from_slice(b"zcla");
        assert_eq!(u.slice(100, 4).unwrap(), b"zcla");
        assert!(u.slice(8 * 4096 - 4, 4).is_ok());
        assert!(u.slice(8 * 4096 - 4, 5).is_err());
        assert!(u.slice(u64::MAX, 1).is_err());
        assert!(u.slice_mut(u64::MAX - 1, usize::MAX).is_err());
    }
}
