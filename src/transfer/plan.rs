//! How a file is cut into packets, and which packets have arrived.
//!
//! Packet `i` carries bytes `i * payload .. min((i + 1) * payload, size)`.
//! The receiver accepts a packet only if its offset is exactly a packet
//! boundary and its length exactly that packet's length: so no packet can
//! write outside the file, or overlap another.

use std::sync::atomic::{AtomicU64, Ordering};

/// The cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketPlan {
    pub size: u64,
    pub payload: u32,
}

impl PacketPlan {
    pub fn new(size: u64, payload: u32) -> PacketPlan {
        assert!(payload > 0, "payload per packet must be positive");
        PacketPlan { size, payload }
    }

    pub fn packets(&self) -> u64 {
        self.size.div_ceil(self.payload as u64)
    }

    pub fn offset(&self, i: u64) -> u64 {
        i * self.payload as u64
    }

    pub fn len(&self, i: u64) -> u32 {
        (self.size - self.offset(i)).min(self.payload as u64) as u32
    }

    /// The packet index for a (offset, len) pair, if it is exactly one of ours.
    pub fn index_of(&self, offset: u64, len: u32) -> Option<u64> {
        if !offset.is_multiple_of(self.payload as u64) || offset >= self.size {
            return None;
        }
        let i = offset / self.payload as u64;
        (self.len(i) == len).then_some(i)
    }
}

/// Which packets have arrived: a bitmap. Marking is atomic, so the
/// receiving threads of several queues may share one.
#[derive(Debug)]
pub struct Tracker {
    bits: Vec<AtomicU64>,
    total: u64,
    have: AtomicU64,
}

impl Tracker {
    pub fn new(total: u64) -> Tracker {
        Tracker { bits: (0..total.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(), total, have: AtomicU64::new(0) }
    }

    /// Marks packet `i`; true if it was new (to exactly one of any threads
    /// that mark it at once). `i` must be below `total`.
    pub fn mark(&self, i: u64) -> bool {
        let (w, b) = ((i / 64) as usize, i % 64);
        let new = self.bits[w].fetch_or(1 << b, Ordering::Relaxed) & (1 << b) == 0;
        if new {
            self.have.fetch_add(1, Ordering::Relaxed);
        }
        new
    }

    pub fn has(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }

    pub fn received(&self) -> u64 {
        self.have.load(Ordering::Relaxed)
    }

    pub fn complete(&self) -> bool {
        self.received() == self.total
    }

    pub fn missing_count(&self) -> u64 {
        self.total - self.received()
    }

    /// Up to `max` half-open ranges `[start, end)` of missing packets, in order.
    pub fn missing_ranges(&self, max: usize) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.total && out.len() < max {
            let w = self.bits[(i / 64) as usize].load(Ordering::Relaxed);
            if w == u64::MAX && i % 64 == 0 {
                i += 64;
                continue;
            }
            if self.has(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < self.total && !self.has(i) {
                i += 1;
            }
            out.push((start, i));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn plan_cuts_exactly() {
        let p = PacketPlan::new(3000, 1448);
        assert_eq!(p.packets(), 3);
        assert_eq!((p.len(0), p.len(1), p.len(2)), (1448, 1448, 104));
        assert_eq!(p.index_of(2896, 104), Some(2));
        assert_eq!(p.index_of(2896, 1448), None, "too long: would write past the end");
        assert_eq!(p.index_of(100, 1348), None, "not on a packet boundary");
        assert_eq!(p.index_of(3000, 0), None);
        assert_eq!(p.index_of(u64::MAX - 7, 8), None);
        assert_eq!(PacketPlan::new(0, 1448).packets(), 0);
    }

    /// Four threads mark the same packets at once, as the receiving threads
    /// of four queues would a resent packet: each packet is new to exactly one.
    #[test]
    fn threads_that_mark_at_once_agree_on_who_was_first() {
        let t = &Tracker::new(100_000);
        let firsts: u64 = std::thread::scope(|s| {
            let hands: Vec<_> = (0..4)
                .map(|k| {
                    s.spawn(move || (0..100_000u64).map(|i| (i * 7 + k * 13) % 100_000).filter(|&i| t.mark(i)).count() as u64)
                })
                .collect();
            hands.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(firsts, 100_000);
        assert!(t.complete());
    }

    proptest! {
        #[test]
        fn tracker_matches_a_set(total in 0u64..300, marks in proptest::collection::vec(0u64..300, 0..400)) {
            let t = Tracker::new(total);
            let mut oracle = BTreeSet::new();
            for m in marks.into_iter().filter(|m| *m < total) {
                prop_assert_eq!(t.mark(m), oracle.insert(m));
            }
            prop_assert_eq!(t.received(), oracle.len() as u64);
            prop_assert_eq!(t.complete(), oracle.len() as u64 == total);
            let missing: Vec<u64> = t.missing_ranges(usize::MAX).into_iter().flat_map(|(a, b)| a..b).collect();
            let expect: Vec<u64> = (0..total).filter(|i| !oracle.contains(i)).collect();
            prop_assert_eq!(missing, expect);
        }
    }
}
