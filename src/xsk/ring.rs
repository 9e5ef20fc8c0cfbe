//! The four AF_XDP rings: single-producer, single-consumer queues in memory
//! shared with the kernel (include/uapi/linux/if_xdp.h, `struct xdp_ring_offset`).
//!
//! | ring       | user space is | entries                 |
//! |------------|---------------|-------------------------|
//! | Fill       | producer      | UMEM addresses for RX   |
//! | Completion | consumer      | UMEM addresses sent     |
//! | Rx         | consumer      | descriptors received    |
//! | Tx         | producer      | descriptors to send     |
//!
//! Producer and consumer indices are free-running u32 counters; an entry's
//! slot is `index & (size - 1)`. Each side caches the other's index and
//! reads it (an acquire load) only when the cache says the ring is full or
//! empty, as libxdp does.

use crate::sys::mmap::Mapping;
use crate::sys::xdp::RingOffsets;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// `struct xdp_desc` (if_xdp.h): a packet buffer in the UMEM.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    /// `XDP_PKT_CONTD`: more descriptors of this packet follow.
    pub options: u32,
}

const _: () = assert!(std::mem::size_of::<XdpDesc>() == 16);

/// The memory of one ring, its layout checked once.
struct RingMem<T> {
    _map: Arc<Mapping>,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    mask: u32,
}

// SAFETY: the pointers refer into `_map`, which the RingMem keeps alive;
// a ring has one user-space owner (producer or consumer), moved as a whole.
unsafe impl<T> Send for RingMem<T> {}

impl<T: Copy> RingMem<T> {
    fn new(map: Arc<Mapping>, off: RingOffsets, size: u32) -> io::Result<RingMem<T>> {
        if !size.is_power_of_two() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("ring size {size} is not a power of two")));
        }
        let len = map.len() as u64;
        let word_ok = |o: u64| o.is_multiple_of(4) && o + 4 <= len;
        let descs_end = off.desc + size as u64 * std::mem::size_of::<T>() as u64;
        let aligned = off.desc.is_multiple_of(std::mem::align_of::<T>() as u64);
        if !(word_ok(off.producer) && word_ok(off.consumer) && word_ok(off.flags) && aligned) || descs_end > len {
            return Err(io::Error::other(format!("ring layout {off:?} with {size} entries does not fit its {len}-byte mapping")));
        }
        let base = map.as_ptr();
        // SAFETY: every offset was checked to lie inside the mapping, aligned.
        let (producer, consumer, flags, descs) = unsafe {
            (
                base.add(off.producer as usize) as *const AtomicU32,
                base.add(off.consumer as usize) as *const AtomicU32,
                base.add(off.flags as usize) as *const AtomicU32,
                base.add(off.desc as usize) as *mut T,
            )
        };
        Ok(RingMem { _map: map, producer, consumer, flags, descs, mask: size - 1 })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: checked in-bounds and aligned in `new`; the mapping lives as long as self.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    fn flags(&self) -> u32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed)
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }

    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask` < size, and `new` checked that `size` entries fit.
        unsafe { self.descs.add((idx & self.mask) as usize) }
    }
}

/// The user-space producer side of a ring (Fill, Tx).
///
/// Entries are written only through a [`Reservation`], which hands out
/// exactly the slots it reserved, and publishes the ones written when it
/// is submitted (or dropped): the kernel never sees a slot half-filled, and
/// no code can write a slot it did not reserve.
pub struct Producer<T> {
    mem: RingMem<T>,
    /// Reserved up to here; equal to the published producer index whenever
    /// no reservation is open.
    cached_prod: u32,
    /// Kept `size` ahead of the consumer index, so `cached_cons -
    /// cached_prod` is directly the number of free entries (libxdp's trick).
    cached_cons: u32,
}

impl<T: Copy> Producer<T> {
    fn new(mem: RingMem<T>) -> Producer<T> {
        let cached_prod = mem.producer().load(Ordering::Relaxed);
        let cached_cons = mem.consumer().load(Ordering::Acquire).wrapping_add(mem.size());
        Producer { mem, cached_prod, cached_cons }
    }

    /// Free entries, looking at the consumer only if fewer than `want` are known free.
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = self.mem.consumer().load(Ordering::Acquire).wrapping_add(self.mem.size());
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Reserves `n` entries, or `None` if fewer than `n` are free.
    pub fn reserve(&mut self, n: u32) -> Option<Reservation<'_, T>> {
        if self.free(n) < n {
            return None;
        }
        let start = self.cached_prod;
        self.cached_prod = self.cached_prod.wrapping_add(n);
        Some(Reservation { ring: self, start, len: n, written: 0 })
    }

    /// True if the kernel asks to be woken (XDP_USE_NEED_WAKEUP).
    pub fn needs_wakeup(&self) -> bool {
        self.mem.flags() & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Entries published and not yet consumed by the kernel.
    pub fn pending(&self) -> u32 {
        self.mem.producer().load(Ordering::Relaxed).wrapping_sub(self.mem.consumer().load(Ordering::Acquire))
    }

    pub fn size(&self) -> u32 {
        self.mem.size()
    }
}

/// Entries reserved on a producer ring: write them in order with `push`,
/// then `submit`. Dropping it submits too; reserved entries never written
/// go back to the ring unpublished.
pub struct Reservation<'r, T: Copy> {
    ring: &'r mut Producer<T>,
    start: u32,
    len: u32,
    written: u32,
}

impl<T: Copy> Reservation<'_, T> {
    /// Writes the next reserved entry; gives the value back when all are written.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.written == self.len {
            return Err(value);
        }
        let idx = self.start.wrapping_add(self.written);
        // SAFETY: `slot` is in bounds; the entry lies in this reservation
        // (checked above), so the kernel does not read it before `submit`.
        unsafe { self.ring.mem.slot(idx).write(value) }
        self.written += 1;
        Ok(())
    }

    /// Entries reserved and not yet written.
    pub fn remaining(&self) -> u32 {
        self.len - self.written
    }

    /// Publishes the written entries to the kernel (a release store).
    pub fn submit(self) {}
}

impl<T: Copy> Drop for Reservation<'_, T> {
    fn drop(&mut self) {
        let end = self.start.wrapping_add(self.written);
        self.ring.cached_prod = end;
        self.ring.mem.producer().store(end, Ordering::Release);
    }
}

/// The user-space consumer side of a ring (Completion, Rx).
///
/// Entries are read only through a [`Peeked`] batch, which reads exactly
/// the entries it took and gives them back to the kernel when released (or
/// dropped).
pub struct Consumer<T> {
    mem: RingMem<T>,
    cached_prod: u32,
    cached_cons: u32,
}

impl<T: Copy> Consumer<T> {
    fn new(mem: RingMem<T>) -> Consumer<T> {
        let cached_prod = mem.producer().load(Ordering::Acquire);
        let cached_cons = mem.consumer().load(Ordering::Relaxed);
        Consumer { mem, cached_prod, cached_cons }
    }

    /// Takes up to `n` entries that are ready. Looks at the kernel's
    /// producer index only when fewer than `n` are known to be ready.
    pub fn peek(&mut self, n: u32) -> Peeked<'_, T> {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < n {
            self.cached_prod = self.mem.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        let len = avail.min(n);
        Peeked { ring: self, len }
    }

    /// Entries ready now, without taking them (refreshes the producer index).
    pub fn ready(&mut self) -> u32 {
        self.cached_prod = self.mem.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    pub fn size(&self) -> u32 {
        self.mem.size()
    }
}

/// Entries taken from a consumer ring: read them with `get` or `iter`, then
/// `release` them to the kernel (dropping releases too).
pub struct Peeked<'r, T: Copy> {
    ring: &'r mut Consumer<T>,
    len: u32,
}

impl<T: Copy> Peeked<'_, T> {
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entry `k` of this batch (`None` past its end).
    pub fn get(&self, k: u32) -> Option<T> {
        if k >= self.len {
            return None;
        }
        let idx = self.ring.cached_cons.wrapping_add(k);
        // SAFETY: `slot` is in bounds; the entry lies in this batch
        // (checked above), whose producer index was read with acquire in
        // `peek`, so the kernel's write is visible; the kernel does not
        // reuse the slot before `release`.
        Some(unsafe { self.ring.mem.slot(idx).read() })
    }

    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).filter_map(|k| self.get(k))
    }

    /// Gives the entries back to the kernel (a release store).
    pub fn release(self) {}
}

impl<T: Copy> Drop for Peeked<'_, T> {
    fn drop(&mut self) {
        let c = &mut *self.ring;
        c.cached_cons = c.cached_cons.wrapping_add(self.len);
        c.mem.consumer().store(c.cached_cons, Ordering::Release);
    }
}

macro_rules! ring_newtype {
    ($(#[$doc:meta])* $name:ident, $side:ident, $t:ty) => {
        $(#[$doc])*
        pub struct $name($side<$t>);

        impl $name {
            /// A ring over `map` laid out as `off`, with `size` entries.
            pub(super) fn new(map: Arc<Mapping>, off: RingOffsets, size: u32) -> io::Result<$name> {
                Ok($name($side::new(RingMem::new(map, off, size)?)))
            }
        }

        impl std::ops::Deref for $name {
            type Target = $side<$t>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }
    };
}

ring_newtype!(
    /// Fill ring: we hand the kernel UMEM addresses to receive into.
    FillRing, Producer, u64
);
ring_newtype!(
    /// Completion ring: the kernel hands back UMEM addresses it has sent.
    CompletionRing, Consumer, u64
);
ring_newtype!(
    /// Rx ring: the kernel hands us received packets.
    RxRing, Consumer, XdpDesc
);
ring_newtype!(
    /// Tx ring: we hand the kernel packets to send.
    TxRing, Producer, XdpDesc
);

/// Test double: a ring in anonymous memory and the *other* side of it, so
/// ring logic runs without a kernel (the kernel's role is played by the
/// opposite cursor type over the same memory).
#[cfg(test)]
pub(crate) fn pair_in_memory<T: Copy>(size: u32, start: u32) -> (Producer<T>, Consumer<T>) {
    let off = RingOffsets { producer: 0, consumer: 64, flags: 128, desc: 192 };
    let map = Arc::new(Mapping::anonymous(192 + size as usize * std::mem::size_of::<T>(), false).unwrap());
    let mem = |m: &Arc<Mapping>| RingMem::<T>::new(m.clone(), off, size).unwrap();
    let probe = mem(&map);
    probe.producer().store(start, Ordering::Relaxed);
    probe.consumer().store(start, Ordering::Relaxed);
    (Producer::new(mem(&map)), Consumer::new(mem(&map)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn layout_is_checked() {
        let map = Arc::new(Mapping::anonymous(4096, false).unwrap());
        let ok = RingOffsets { producer: 0, consumer: 64, flags: 128, desc: 256 };
        assert!(RingMem::<u64>::new(map.clone(), ok, 64).is_ok());
        assert!(RingMem::<u64>::new(map.clone(), ok, 1024).is_err(), "descriptors past the end");
        assert!(RingMem::<u64>::new(map.clone(), ok, 48).is_err(), "not a power of two");
        assert!(RingMem::<u64>::new(map.clone(), RingOffsets { producer: 4094, ..ok }, 8).is_err());
        assert!(RingMem::<u64>::new(map, RingOffsets { desc: 252, ..ok }, 8).is_err(), "misaligned");
    }

    #[test]
    fn fills_then_refuses_then_wraps() {
        let (mut p, mut c) = pair_in_memory::<u64>(4, u32::MAX - 1);
        let mut r = p.reserve(4).unwrap();
        for k in 0..4 {
            r.push(100 + k).unwrap();
        }
        assert_eq!(r.push(7), Err(7), "a reservation writes only what it reserved");
        drop(r);
        assert!(p.reserve(1).is_none(), "full");
        let got = c.peek(3);
        assert_eq!(got.iter().collect::<Vec<_>>(), vec![100, 101, 102]);
        assert_eq!(got.get(3), None, "a batch reads only what it took");
        got.release();
        let mut r = p.reserve(3).unwrap();
        assert_eq!(r.start, 2, "indices wrapped past u32::MAX");
        for k in 0..3 {
            r.push(200 + k).unwrap();
        }
        r.submit();
        assert_eq!(c.peek(10).iter().collect::<Vec<_>>(), vec![103, 200, 201, 202]);
    }

    #[test]
    fn unwritten_reserved_entries_are_not_published() {
        let (mut p, mut c) = pair_in_memory::<u64>(8, 5);
        let mut r = p.reserve(4).unwrap();
        r.push(1).unwrap();
        r.push(2).unwrap();
        assert_eq!(r.remaining(), 2);
        r.submit();
        assert_eq!(c.peek(8).iter().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(p.free(8), 8, "the two unwritten entries went back to the ring");
        let mut r = p.reserve(8).unwrap();
        r.push(3).unwrap();
        drop(r);
        assert_eq!(c.peek(8).iter().collect::<Vec<_>>(), vec![3]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Produce(u32),
        Consume(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0u32..10).prop_map(Op::Produce), (0u32..10).prop_map(Op::Consume)]
    }

    proptest! {
        #[test]
        fn behaves_like_a_bounded_queue(start: u32, ops in proptest::collection::vec(op(), 1..200)) {
            let (mut p, mut c) = pair_in_memory::<XdpDesc>(8, start);
            let mut oracle = VecDeque::new();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Produce(n) => match p.reserve(n) {
                        Some(mut r) => {
                            prop_assert!(oracle.len() + n as usize <= 8);
                            for k in 0..n {
                                let d = XdpDesc { addr: next, len: k, options: 0 };
                                prop_assert!(r.push(d).is_ok());
                                oracle.push_back(d);
                                next += 1;
                            }
                            r.submit();
                        }
                        None => prop_assert!(oracle.len() + n as usize > 8, "refused with room"),
                    },
                    Op::Consume(n) => {
                        let got = c.peek(n);
                        prop_assert_eq!(got.len() as usize, oracle.len().min(n as usize));
                        for d in got.iter() {
                            prop_assert_eq!(Some(d), oracle.pop_front());
                        }
                    }
                }
            }
        }
    }
}
