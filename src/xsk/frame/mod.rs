//! Frames: who owns each byte of the UMEM, at every moment.
//!
//! The UMEM is cut into *pools* of equal-size frames (the af-xdp sender has
//! 4096 header frames of 128 bytes and 8 block frames of about 1 MiB; the
//! receiver 8192 frames of 4096 bytes). Every frame is in exactly one hand
//! at a time, and [`Frames::owner`] answers for any address:
//!
//! | owner    | it got there by                                    | user space may                    | it leaves by |
//! |----------|----------------------------------------------------|-----------------------------------|--------------|
//! | `Free`   | the start; [`Frames::free`]                        | nothing                           | [`Frames::alloc`] |
//! | `User`   | `alloc`; the RX or completion ring; `reclaim`; `end_io` | read and write its bytes     | `free`; the fill or TX ring; `share`; `lend_for_io` |
//! | `Kernel` | the fill or TX ring (moved in whole)               | nothing                           | the RX or completion ring |
//! | `Lent`   | [`Frames::share`]                                  | put pieces of it on the TX ring; write bytes past every piece given since it was last idle | [`Frames::reclaim`], once no piece is in flight |
//! | `Io`     | [`Frames::lend_for_io`]                            | nothing: a read is writing it     | [`Frames::end_io`] |
//!
//! The handles make the table hard to break. A [`Frame`] is not `Clone`, is
//! made only in this file, and is the only key to a frame's bytes; a ring
//! takes it by value, so code that gave a frame to the kernel no longer has
//! it. A [`SharedFrame`] gives no bytes at all, only pieces for the TX ring.
//! An address the kernel hands back that it was not given is refused
//! ([`Foreign`]), never trusted.
//!
//! This file keeps the ledger and the user's side of it; `descriptors.rs`
//! the rings' side: frames turned into descriptor addresses for the kernel,
//! each checked, and addresses the kernel returns turned back into frames.

mod descriptors;

use crate::sys::mmap::Mapping;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Tells the frames of one UMEM from those of another.
static NEXT_UMEM_ID: AtomicU32 = AtomicU32::new(1);

/// In unaligned mode the kernel may hand back an address with an offset in
/// its top 16 bits (`XSK_UNALIGNED_BUF_OFFSET_SHIFT`, if_xdp.h).
const UNALIGNED_OFFSET_SHIFT: u32 = 48;
const UNALIGNED_ADDR_MASK: u64 = (1 << UNALIGNED_OFFSET_SHIFT) - 1;

/// One pool: `count` frames of `frame_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    pub frame_size: u32,
    pub count: u32,
}

/// A pool, named by the position of its spec in the UMEM's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolId(pub u16);

/// A frame's name: its pool and its index there. Names own nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameId {
    pub pool: PoolId,
    pub index: u32,
}

/// Who holds a frame now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// In its pool, unused.
    Free,
    /// A [`Frame`] handle in user code.
    User,
    /// On the fill or TX ring, or in the kernel between them and the RX or
    /// completion ring.
    Kernel,
    /// A [`SharedFrame`]: `pieces` TX descriptors into it are in flight,
    /// and no byte at or past `frontier` has been given since the last
    /// moment none was (pieces go out in address order; user space may
    /// write only past the frontier: [`Frames::shared_bytes_mut`]).
    Lent { pieces: u32, frontier: u32 },
    /// An [`IoLoan`]: an asynchronous read is (or may be) writing it.
    Io,
}

/// A frame user space owns: its bytes are ours to read and write.
#[derive(Debug)]
pub struct Frame {
    umem: u32,
    id: FrameId,
    addr: u64,
    size: u32,
}

impl Frame {
    pub fn id(&self) -> FrameId {
        self.id
    }

    /// Its first byte's offset in the UMEM.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    pub fn size(&self) -> u32 {
        self.size
    }
}

/// A frame lent to the kernel in pieces: any number of TX descriptors may
/// point into it at once. User code cannot touch its bytes until it gets a
/// [`Frame`] back from [`Frames::reclaim`].
#[derive(Debug)]
pub struct SharedFrame {
    umem: u32,
    id: FrameId,
    addr: u64,
    size: u32,
}

impl SharedFrame {
    pub fn id(&self) -> FrameId {
        self.id
    }

    /// Its first byte's offset in the UMEM.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    pub fn size(&self) -> u32 {
        self.size
    }
}

/// A frame lent to an asynchronous read (the af-xdp sender's O_DIRECT
/// reads into the UMEM). It holds the frame, so no one else can reach its
/// bytes, and a reference to the UMEM's memory, so the memory stays mapped
/// as long as the loan exists, even if whoever holds it is dropped first.
pub struct IoLoan {
    frame: Frame,
    area: Arc<Mapping>,
    len: usize,
}

impl IoLoan {
    pub fn frame_id(&self) -> FrameId {
        self.frame.id
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The lent bytes (to finish a short read by hand, or to play the
    /// disk in a test).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `lend_for_io` checked that the frame's first `len` bytes
        // lie in `area`, which this loan keeps mapped; the loan holds the
        // frame's only handle and `&mut self` excludes other views.
        unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(self.frame.addr as usize), self.len) }
    }
}

// SAFETY: the memory `io_ptr()..io_ptr() + io_len()` lies in `area` (checked
// in `lend_for_io`), stays mapped while the loan exists because the loan
// holds an `Arc` of the mapping (a leaked loan leaks the mapping with it),
// and is reachable by nobody else: the loan holds the frame's only handle.
unsafe impl crate::sys::uring::IoBuf for IoLoan {
    fn io_ptr(&mut self) -> *mut u8 {
        self.bytes_mut().as_mut_ptr()
    }

    fn io_len(&self) -> usize {
        self.len
    }
}

/// What the kernel handed back on the completion ring.
#[derive(Debug)]
pub enum Returned {
    /// A frame that went to the kernel whole: it is ours again.
    Frame(Frame),
    /// One piece of a [`SharedFrame`]: one fewer in flight.
    Piece(FrameId),
}

/// The kernel handed back an address it was not holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the kernel handed back UMEM address {addr:#x}, which it was not holding")]
pub struct Foreign {
    pub addr: u64,
}

/// Why a descriptor could not be made from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DescError {
    #[error("bytes {offset}..+{len} are outside the {size}-byte frame")]
    OutsideFrame { offset: u64, len: u32, size: u32 },
    #[error("a descriptor of {len} bytes is longer than a {chunk}-byte UMEM chunk")]
    LongerThanChunk { len: u32, chunk: u32 },
    #[error("UMEM bytes {addr:#x}..+{len} cross a {chunk}-byte chunk edge, which an aligned UMEM forbids")]
    CrossesChunk { addr: u64, len: u32, chunk: u32 },
    #[error("a {size}-byte frame at {addr:#x} cannot go on the fill ring: it must be a whole {chunk}-byte chunk")]
    NotAChunk { addr: u64, size: u32, chunk: u32 },
    #[error("every entry of the reservation is written")]
    NotReserved,
    #[error("bytes {offset}..+{len} of a shared frame may still be in flight (pieces up to byte {frontier} were given)")]
    InFlight { offset: u64, len: u32, frontier: u32 },
}

/// One pool's place in the UMEM and its frames' owners.
struct Pool {
    start: u64,
    /// One past its last byte.
    end: u64,
    /// log2 of the frame size, when it is a power of two.
    shift: Option<u32>,
    spec: PoolSpec,
    owner: Vec<Owner>,
    free: Vec<u32>,
}

/// The UMEM's memory and the ledger of who owns each frame of it.
pub struct Frames {
    id: u32,
    area: Arc<Mapping>,
    pools: Vec<Pool>,
    chunk_size: u32,
    unaligned: bool,
}

impl Frames {
    /// Maps memory for `pools`, each starting on a chunk edge, and puts
    /// every frame in its pool (`Free`).
    pub fn new(pools: &[PoolSpec], chunk_size: u32, unaligned: bool, huge_pages: bool) -> io::Result<Frames> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if chunk_size < 2048 || (!unaligned && !chunk_size.is_power_of_two()) {
            return Err(invalid(format!(
                "UMEM chunk size {chunk_size} must be at least 2048 and, in aligned mode, a power of two"
            )));
        }
        if pools.is_empty() || pools.iter().any(|p| p.frame_size == 0 || p.count == 0) || pools.len() > u16::MAX as usize {
            return Err(invalid(format!("UMEM pools {pools:?}: each needs frames of some size")));
        }
        let chunk = chunk_size as u64;
        let mut at = 0u64;
        let mut laid = Vec::with_capacity(pools.len());
        for spec in pools {
            let start = at.div_ceil(chunk) * chunk;
            at = start + spec.frame_size as u64 * spec.count as u64;
            let owner = vec![Owner::Free; spec.count as usize];
            let shift = spec.frame_size.is_power_of_two().then(|| spec.frame_size.trailing_zeros());
            laid.push(Pool { start, end: at, shift, spec: *spec, owner, free: (0..spec.count).rev().collect() });
        }
        let unit = if huge_pages { 2 << 20 } else { chunk };
        let len = usize::try_from(at.div_ceil(unit) * unit).map_err(|_| invalid("UMEM too large".into()))?;
        let area = Mapping::anonymous(len, huge_pages).map_err(|e| {
            if huge_pages {
                io::Error::new(
                    e.kind(),
                    format!("no huge pages for a {} MiB UMEM ({e}): reserve some with sysctl vm.nr_hugepages=N", len >> 20),
                )
            } else {
                e
            }
        })?;
        let id = NEXT_UMEM_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Frames { id, area: Arc::new(area), pools: laid, chunk_size, unaligned })
    }

    /// Cuts the ledger into one per group of pools, for sockets that share
    /// this UMEM (`XDP_SHARED_UMEM`), each on its own thread: every part
    /// keeps the same memory and the addresses of its pools, numbers its
    /// pools from 0 in the group's order, and is a UMEM of its own to the
    /// type checks (a frame of one part is refused by another). Every pool
    /// must be in exactly one group, and every frame free.
    pub fn partition(self, groups: &[Vec<PoolId>]) -> io::Result<Vec<Frames>> {
        let mut seen = vec![false; self.pools.len()];
        for g in groups {
            for p in g {
                let slot = seen.get_mut(p.0 as usize).ok_or_else(|| io::Error::other(format!("no pool {p:?}")))?;
                if std::mem::replace(slot, true) {
                    return Err(io::Error::other(format!("pool {p:?} is in two groups")));
                }
            }
        }
        if seen.contains(&false) || self.pools.iter().any(|p| p.owner.iter().any(|o| *o != Owner::Free)) {
            return Err(io::Error::other("partition: every pool in one group, every frame free"));
        }
        let Frames { area, mut pools, chunk_size, unaligned, .. } = self;
        let mut taken: Vec<Option<Pool>> = pools.drain(..).map(Some).collect();
        Ok(groups
            .iter()
            .map(|g| Frames {
                id: NEXT_UMEM_ID.fetch_add(1, Ordering::Relaxed),
                area: area.clone(),
                pools: g.iter().map(|p| taken[p.0 as usize].take().expect("checked: in one group")).collect(),
                chunk_size,
                unaligned,
            })
            .collect())
    }

    /// Bytes of memory in all (what is registered with the kernel).
    pub fn len(&self) -> usize {
        self.area.len()
    }

    pub fn is_empty(&self) -> bool {
        self.area.is_empty()
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    pub fn unaligned(&self) -> bool {
        self.unaligned
    }

    /// Which UMEM this is (frames and rings carry it, so they cannot be mixed up).
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    pub(super) fn base(&self) -> *mut u8 {
        self.area.as_ptr()
    }

    /// Where pool `p` starts in the UMEM.
    pub fn pool_start(&self, p: PoolId) -> u64 {
        self.pools[p.0 as usize].start
    }

    /// Free frames left in pool `p`.
    pub fn available(&self, p: PoolId) -> usize {
        self.pools[p.0 as usize].free.len()
    }

    /// A free frame of pool `p`, now the caller's.
    pub fn alloc(&mut self, p: PoolId) -> Option<Frame> {
        let pool = &mut self.pools[p.0 as usize];
        let index = pool.free.pop()?;
        pool.owner[index as usize] = Owner::User;
        let (addr, size) = (pool.start + index as u64 * pool.spec.frame_size as u64, pool.spec.frame_size);
        Some(Frame { umem: self.id, id: FrameId { pool: p, index }, addr, size })
    }

    /// Puts a frame back in its pool.
    pub fn free(&mut self, f: Frame) {
        self.set(&f.id, f.umem, Owner::Free);
        self.pools[f.id.pool.0 as usize].free.push(f.id.index);
    }

    /// A frame's bytes.
    pub fn bytes(&self, f: &Frame) -> &[u8] {
        self.check(f.umem);
        // SAFETY: the frame lies inside the area (its address and size come
        // from the pool layout, which `new` mapped in full); holding the
        // `Frame` means user space owns it, so no ring hands it to the
        // kernel meanwhile, and frames never overlap.
        unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(f.addr as usize), f.size as usize) }
    }

    /// A frame's bytes, to write.
    pub fn bytes_mut(&mut self, f: &mut Frame) -> &mut [u8] {
        self.check(f.umem);
        // SAFETY: as in `bytes`; `&mut Frame` is the frame's only handle,
        // borrowed exclusively, so no other slice of these bytes exists.
        unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(f.addr as usize), f.size as usize) }
    }

    /// Lends a frame out in pieces (see [`SharedFrame`]).
    pub fn share(&mut self, f: Frame) -> SharedFrame {
        self.set(&f.id, f.umem, Owner::Lent { pieces: 0, frontier: 0 });
        SharedFrame { umem: f.umem, id: f.id, addr: f.addr, size: f.size }
    }

    /// TX descriptors into a shared frame that the kernel has not completed.
    pub fn pieces_in_flight(&self, s: &SharedFrame) -> u32 {
        self.check(s.umem);
        match self.pools[s.id.pool.0 as usize].owner[s.id.index as usize] {
            Owner::Lent { pieces, .. } => pieces,
            other => unreachable!("a SharedFrame's frame is always Lent, found {other:?}"),
        }
    }

    /// Bytes `offset..offset + len` of a shared frame to write (the
    /// contiguous layout writes a packet's header right in front of its
    /// payload, inside the block of file bytes). Allowed only at or past
    /// the frontier: no piece given since the frame was last idle reaches
    /// there, so the kernel is not reading those bytes.
    pub fn shared_bytes_mut(&mut self, s: &SharedFrame, offset: u64, len: u32) -> Result<&mut [u8], DescError> {
        self.check(s.umem);
        if offset.checked_add(len as u64).is_none_or(|end| end > s.size as u64) {
            return Err(DescError::OutsideFrame { offset, len, size: s.size });
        }
        match self.pools[s.id.pool.0 as usize].owner[s.id.index as usize] {
            Owner::Lent { frontier, .. } if offset >= frontier as u64 => {}
            Owner::Lent { frontier, .. } => return Err(DescError::InFlight { offset, len, frontier }),
            other => unreachable!("a SharedFrame's frame is always Lent, found {other:?}"),
        }
        // SAFETY: the range lies inside the frame (checked above), which
        // lies inside `area`; the frame is Lent, so no `Frame` handle (and
        // so no other slice) of it exists in user space, `&mut self`
        // excludes a second slice from this method, and every TX piece the
        // kernel may still read ends at or before the frontier, which is
        // at or before `offset`.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add((s.addr + offset) as usize), len as usize) })
    }

    /// Bytes `offset..offset + len` of a shared frame, to read (a software
    /// checksum over a payload that is on the TX ring). The kernel only ever
    /// reads a TX descriptor's bytes, so reading beside it is sound.
    pub fn shared_bytes(&self, s: &SharedFrame, offset: u64, len: u32) -> Result<&[u8], DescError> {
        self.check(s.umem);
        if offset.checked_add(len as u64).is_none_or(|end| end > s.size as u64) {
            return Err(DescError::OutsideFrame { offset, len, size: s.size });
        }
        // SAFETY: the range lies inside the frame (checked above), which lies
        // inside `area`. The frame is Lent: no `Frame` handle of it exists,
        // the only writer of its bytes is `shared_bytes_mut`, which needs
        // `&mut self` and so cannot run while this borrow lives, and the
        // kernel does not write TX buffers.
        Ok(unsafe { std::slice::from_raw_parts(self.area.as_ptr().add((s.addr + offset) as usize), len as usize) })
    }

    /// The frame back, once no piece of it is in flight.
    pub fn reclaim(&mut self, s: SharedFrame) -> Result<Frame, SharedFrame> {
        if self.pieces_in_flight(&s) > 0 {
            return Err(s);
        }
        self.set(&s.id, s.umem, Owner::User);
        Ok(Frame { umem: s.umem, id: s.id, addr: s.addr, size: s.size })
    }

    /// Lends the first `len` bytes of a frame to an asynchronous read.
    pub fn lend_for_io(&mut self, f: Frame, len: usize) -> Result<IoLoan, (Frame, DescError)> {
        self.check(f.umem);
        if len > f.size as usize {
            let e = DescError::OutsideFrame { offset: 0, len: len.min(u32::MAX as usize) as u32, size: f.size };
            return Err((f, e));
        }
        self.set(&f.id, f.umem, Owner::Io);
        Ok(IoLoan { frame: f, area: self.area.clone(), len })
    }

    /// The frame back from a read that has completed.
    pub fn end_io(&mut self, loan: IoLoan) -> Frame {
        let f = loan.frame;
        self.set(&f.id, f.umem, Owner::User);
        f
    }

    /// Who holds the frame that contains UMEM address `addr`.
    pub fn owner(&self, addr: u64) -> Option<(FrameId, Owner)> {
        let id = self.locate(addr)?.0;
        Some((id, self.pools[id.pool.0 as usize].owner[id.index as usize]))
    }

    fn check(&self, umem: u32) {
        assert_eq!(umem, self.id, "a frame of another UMEM");
    }

    fn set(&mut self, id: &FrameId, umem: u32, to: Owner) {
        self.check(umem);
        self.pools[id.pool.0 as usize].owner[id.index as usize] = to;
    }
}

/// Test doubles: the kernel's side of the rings, for tests of code above
/// this layer that run without a socket.
#[cfg(test)]
impl Frames {
    /// As if a TX descriptor for this piece went to the kernel.
    pub(crate) fn kernel_takes_piece(&mut self, s: &SharedFrame, offset: u64, len: u32) -> Result<u64, DescError> {
        self.give_piece(s, offset, len)
    }

    /// As if the kernel handed `addr` back.
    pub(crate) fn kernel_returns(&mut self, addr: u64) -> Result<Returned, Foreign> {
        self.take_back(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(unaligned: bool) -> Frames {
        let pools = [PoolSpec { frame_size: 128, count: 64 }, PoolSpec { frame_size: 3 * 4096, count: 2 }];
        Frames::new(&pools, 4096, unaligned, false).unwrap()
    }

    #[test]
    fn pools_start_on_chunk_edges_and_config_is_checked() {
        let f = frames(false);
        assert_eq!(f.pool_start(PoolId(0)), 0);
        assert_eq!(f.pool_start(PoolId(1)), 8192, "64 x 128 bytes, rounded up to a chunk");
        assert_eq!(f.len(), 8192 + 6 * 4096);
        assert!(Frames::new(&[PoolSpec { frame_size: 64, count: 1 }], 3000, false, false).is_err());
        assert!(Frames::new(&[PoolSpec { frame_size: 64, count: 1 }], 1024, true, false).is_err());
        assert!(Frames::new(&[PoolSpec { frame_size: 0, count: 1 }], 4096, true, false).is_err());
        assert!(Frames::new(&[PoolSpec { frame_size: 64, count: 1 }], 3000, true, false).is_ok());
    }

    #[test]
    fn a_frame_is_in_one_hand_at_a_time() {
        let mut f = frames(true);
        let mut a = f.alloc(PoolId(0)).unwrap();
        assert_eq!(f.owner(a.addr() + 5), Some((a.id(), Owner::User)));
        f.bytes_mut(&mut a)[..4].copy_from_slice(b"zcla");
        assert_eq!(&f.bytes(&a)[..4], b"zcla");
        let addr = f.give_whole(a, 66).unwrap();
        assert_eq!(f.owner(addr).unwrap().1, Owner::Kernel);
        let Ok(Returned::Frame(a)) = f.take_back(addr) else { panic!("a whole frame comes back whole") };
        assert_eq!(f.take_back(addr).unwrap_err(), Foreign { addr }, "twice is once too many");
        f.free(a);
        assert_eq!(f.owner(addr).unwrap().1, Owner::Free);
        assert_eq!(f.take_back(addr).unwrap_err(), Foreign { addr }, "a free frame was never lent");
        assert_eq!(f.take_back(1 << 40).unwrap_err(), Foreign { addr: 1 << 40 }, "outside every pool");
    }

    #[test]
    fn a_shared_frame_comes_back_only_when_every_piece_has() {
        let mut f = frames(true);
        let b = f.alloc(PoolId(1)).unwrap();
        let s = f.share(b);
        let p1 = f.give_piece(&s, 0, 1448).unwrap();
        let p2 = f.give_piece(&s, 4000, 96).unwrap();
        assert_eq!(f.pieces_in_flight(&s), 2);
        let s = f.reclaim(s).unwrap_err();
        assert!(matches!(f.take_back(p2), Ok(Returned::Piece(id)) if id == s.id()));
        assert!(matches!(f.take_back(p1), Ok(Returned::Piece(_))));
        assert_eq!(f.take_back(p1).unwrap_err(), Foreign { addr: p1 }, "no piece left in flight");
        let b = f.reclaim(s).unwrap();
        assert_eq!(f.owner(b.addr()).unwrap().1, Owner::User);
    }

    #[test]
    fn a_shared_frame_is_written_only_past_what_is_in_flight() {
        let mut f = frames(true);
        let b = f.alloc(PoolId(1)).unwrap();
        let s = f.share(b);
        // Cells of 2048: header at 446..512, payload 512..1536 (the contiguous layout).
        f.shared_bytes_mut(&s, 446, 66).unwrap().fill(0xab);
        let p0 = f.give_piece(&s, 446, 66 + 1024).unwrap();
        assert_eq!(f.owner(p0).unwrap().1, Owner::Lent { pieces: 1, frontier: 1536 });
        assert_eq!(
            f.shared_bytes_mut(&s, 446, 66).unwrap_err(),
            DescError::InFlight { offset: 446, len: 66, frontier: 1536 },
            "the header of a packet in flight cannot be written again"
        );
        assert!(f.shared_bytes_mut(&s, 1535, 2).is_err(), "overlaps the piece by one byte");
        f.shared_bytes_mut(&s, 2048 + 446, 66).unwrap().fill(0xcd);
        let p1 = f.give_piece(&s, 2048 + 446, 66 + 1024).unwrap();
        assert!(matches!(f.shared_bytes_mut(&s, 3 * 4096 - 10, 11), Err(DescError::OutsideFrame { .. })));
        f.take_back(p0).unwrap();
        assert!(f.shared_bytes_mut(&s, 446, 66).is_err(), "one piece is still in flight: the frontier stays");
        f.take_back(p1).unwrap();
        assert_eq!(f.owner(p1).unwrap().1, Owner::Lent { pieces: 0, frontier: 0 }, "idle again");
        assert_eq!(f.shared_bytes_mut(&s, 446, 66).unwrap(), &[0xab; 66][..], "the bytes written before");
        let b = f.reclaim(s).unwrap();
        assert_eq!(&f.bytes(&b)[2048 + 446..2048 + 512], &[0xcd; 66][..]);
    }

    #[test]
    fn a_partition_keeps_addresses_and_keeps_the_parts_apart() {
        let pools = [
            PoolSpec { frame_size: 128, count: 64 },
            PoolSpec { frame_size: 4096, count: 2 },
            PoolSpec { frame_size: 128, count: 64 },
            PoolSpec { frame_size: 4096, count: 2 },
        ];
        let whole = Frames::new(&pools, 4096, true, false).unwrap();
        let starts: Vec<u64> = (0..4).map(|p| whole.pool_start(PoolId(p))).collect();
        let mut parts = whole.partition(&[vec![PoolId(0), PoolId(1)], vec![PoolId(2), PoolId(3)]]).unwrap();
        let (b, a) = (parts.pop().unwrap(), parts.pop().unwrap());
        let mut a = a;
        assert_eq!((a.pool_start(PoolId(0)), a.pool_start(PoolId(1))), (starts[0], starts[1]));
        assert_eq!((b.pool_start(PoolId(0)), b.pool_start(PoolId(1))), (starts[2], starts[3]), "renumbered, same place");
        let f = a.alloc(PoolId(1)).unwrap();
        assert_eq!(f.addr(), starts[1]);
        assert_eq!(b.owner(f.addr()), None, "the other part knows nothing of it");
        let addr = a.give_whole(f, 64).unwrap();
        let mut b = b;
        assert_eq!(b.take_back(addr).unwrap_err(), Foreign { addr }, "nor takes it back");
        assert!(matches!(a.take_back(addr), Ok(Returned::Frame(_))));
        let whole = Frames::new(&pools, 4096, true, false).unwrap();
        assert!(whole.partition(&[vec![PoolId(0), PoolId(1)], vec![PoolId(1), PoolId(2), PoolId(3)]]).is_err(), "a pool twice");
        let whole = Frames::new(&pools, 4096, true, false).unwrap();
        assert!(whole.partition(&[vec![PoolId(0)]]).is_err(), "pools left out");
    }

    #[test]
    fn descriptors_stay_inside_their_frame_and_chunk() {
        let mut f = frames(false);
        let b = f.alloc(PoolId(1)).unwrap();
        let s = f.share(b);
        let chunk = 4096;
        assert!(matches!(f.give_piece(&s, 3 * 4096 - 10, 11), Err(DescError::OutsideFrame { .. })));
        assert!(matches!(f.give_piece(&s, u64::MAX, 2), Err(DescError::OutsideFrame { .. })));
        assert!(matches!(f.give_piece(&s, 0, 4097), Err(DescError::LongerThanChunk { .. })));
        assert_eq!(f.give_piece(&s, 4000, 200), Err(DescError::CrossesChunk { addr: 8192 + 4000, len: 200, chunk }));
        assert!(f.give_piece(&s, 4000, 96).is_ok());
        let mut u = frames(true);
        let b = u.alloc(PoolId(1)).unwrap();
        let s = u.share(b);
        assert!(u.give_piece(&s, 4000, 200).is_ok(), "unaligned mode allows crossing a chunk edge");
        let small = u.alloc(PoolId(0)).unwrap();
        assert!(matches!(u.give_to_fill(small), Err((_, DescError::NotAChunk { .. }))));
    }

    #[test]
    fn an_io_loan_holds_the_frame_and_the_memory() {
        let mut f = frames(true);
        let b = f.alloc(PoolId(1)).unwrap();
        let addr = b.addr();
        let mut loan = f.lend_for_io(b, 4096).unwrap();
        assert_eq!(f.owner(addr).unwrap().1, Owner::Io);
        drop(f);
        loan.bytes_mut()[4095] = 7; // the UMEM's owner is gone; the loan kept the memory mapped
        let mut f = frames(true);
        let b = f.alloc(PoolId(1)).unwrap();
        let (b, e) = f.lend_for_io(b, 3 * 4096 + 1).err().unwrap();
        assert!(matches!(e, DescError::OutsideFrame { .. }));
        let loan = f.lend_for_io(b, 512).unwrap();
        let b = f.end_io(loan);
        assert_eq!(f.owner(b.addr()).unwrap().1, Owner::User);
    }

    #[test]
    #[should_panic(expected = "a frame of another UMEM")]
    fn a_frame_of_another_umem_is_refused() {
        let mut one = frames(true);
        let two = frames(true);
        let a = one.alloc(PoolId(0)).unwrap();
        let _ = two.bytes(&a);
    }
}
