//! The rings' side of the ledger: a frame (or a piece of a shared one)
//! becomes a descriptor address only after its bounds are checked (inside
//! the frame, no longer than a chunk, in aligned mode not across a chunk
//! edge), and an address the kernel hands back becomes a frame again only
//! if the ledger gave it out.

use super::{DescError, Foreign, Frame, FrameId, Frames, Owner, PoolId, Returned, SharedFrame};
use super::{UNALIGNED_ADDR_MASK, UNALIGNED_OFFSET_SHIFT};

impl Frames {
    /// A descriptor address for a whole frame going to the TX ring.
    pub(in crate::xsk) fn give_whole(&mut self, f: Frame, len: u32) -> Result<u64, (Frame, DescError)> {
        self.give_whole_at(f, 0, len)
    }

    /// A descriptor address for `len` bytes at `offset` of a whole frame
    /// going to the TX ring (the bytes in front may hold TX metadata).
    pub(in crate::xsk) fn give_whole_at(&mut self, f: Frame, offset: u32, len: u32) -> Result<u64, (Frame, DescError)> {
        self.check(f.umem);
        if let Err(e) = self.check_desc(f.addr, offset as u64, len, f.size) {
            return Err((f, e));
        }
        self.set(&f.id, f.umem, Owner::Kernel);
        Ok(f.addr + offset as u64)
    }

    /// A descriptor address for a frame going to the fill ring.
    pub(in crate::xsk) fn give_to_fill(&mut self, f: Frame) -> Result<u64, (Frame, DescError)> {
        self.check(f.umem);
        let chunk = self.chunk_size;
        if f.size < chunk || (!self.unaligned && !f.addr.is_multiple_of(chunk as u64)) {
            let e = DescError::NotAChunk { addr: f.addr, size: f.size, chunk };
            return Err((f, e));
        }
        self.set(&f.id, f.umem, Owner::Kernel);
        Ok(f.addr)
    }

    /// Whether `len` bytes at `offset` of a shared frame make a valid TX
    /// descriptor: inside the frame, no longer than a chunk, and (aligned
    /// mode) not across a chunk edge.
    pub fn check_piece(&self, s: &SharedFrame, offset: u64, len: u32) -> Result<(), DescError> {
        self.check(s.umem);
        self.check_desc(s.addr, offset, len, s.size)
    }

    /// A descriptor address for `len` bytes at `offset` of a shared frame.
    pub(in crate::xsk) fn give_piece(&mut self, s: &SharedFrame, offset: u64, len: u32) -> Result<u64, DescError> {
        self.check_piece(s, offset, len)?;
        match &mut self.pools[s.id.pool.0 as usize].owner[s.id.index as usize] {
            Owner::Lent { pieces, frontier } => {
                *pieces += 1;
                *frontier = (*frontier).max((offset + len as u64) as u32);
            }
            other => unreachable!("a SharedFrame's frame is always Lent, found {other:?}"),
        }
        Ok(s.addr + offset)
    }

    /// Takes back what the kernel returns at `addr` (completion or RX ring).
    pub(in crate::xsk) fn take_back(&mut self, addr: u64) -> Result<Returned, Foreign> {
        self.take_back_at(addr).map(|(r, _)| r)
    }

    /// As `take_back`, with the offset of `addr` in its frame (for RX descriptors).
    pub(in crate::xsk) fn take_back_at(&mut self, addr: u64) -> Result<(Returned, u64), Foreign> {
        let (id, offset) = self.locate(addr).ok_or(Foreign { addr })?;
        let owner = &mut self.pools[id.pool.0 as usize].owner[id.index as usize];
        match owner {
            Owner::Kernel => {
                *owner = Owner::User;
                let pool = &self.pools[id.pool.0 as usize];
                let (addr, size) = (pool.start + id.index as u64 * pool.spec.frame_size as u64, pool.spec.frame_size);
                Ok((Returned::Frame(Frame { umem: self.id, id, addr, size }), offset))
            }
            Owner::Lent { pieces, frontier } if *pieces > 0 => {
                *pieces -= 1;
                if *pieces == 0 {
                    *frontier = 0;
                }
                Ok((Returned::Piece(id), offset))
            }
            _ => Err(Foreign { addr }),
        }
    }

    /// The frame holding `addr` and the offset of `addr` in it.
    pub(super) fn locate(&self, addr: u64) -> Option<(FrameId, u64)> {
        let a = if self.unaligned { (addr & UNALIGNED_ADDR_MASK) + (addr >> UNALIGNED_OFFSET_SHIFT) } else { addr };
        let (p, pool) = self.pools.iter().enumerate().find(|(_, pool)| a >= pool.start && a < pool.end)?;
        let rel = a - pool.start;
        // Frame sizes are often powers of two (header frames, chunks): a shift, not a division.
        let (index, offset) = match pool.shift {
            Some(shift) => (rel >> shift, rel & ((1 << shift) - 1)),
            None => (rel / pool.spec.frame_size as u64, rel % pool.spec.frame_size as u64),
        };
        Some((FrameId { pool: PoolId(p as u16), index: index as u32 }, offset))
    }

    fn check_desc(&self, frame_addr: u64, offset: u64, len: u32, size: u32) -> Result<(), DescError> {
        let chunk = self.chunk_size;
        if offset.checked_add(len as u64).is_none_or(|end| end > size as u64) {
            return Err(DescError::OutsideFrame { offset, len, size });
        }
        if len > chunk {
            return Err(DescError::LongerThanChunk { len, chunk });
        }
        let addr = frame_addr + offset;
        let c = chunk as u64;
        if !self.unaligned && len > 0 && addr / c != (addr + len as u64 - 1) / c {
            return Err(DescError::CrossesChunk { addr, len, chunk });
        }
        Ok(())
    }
}
