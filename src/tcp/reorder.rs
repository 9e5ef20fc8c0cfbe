//! The receiving side's queue of what arrived ahead of RCV.NXT (RFC 9293
//! 3.10.7.4, seventh: "segments with higher beginning sequence numbers may
//! be held for later processing"), and the SACK blocks it reports (RFC 2018 4).
//!
//! The queue keeps no byte: it knows which peer positions are held, and
//! says which part of a new segment is new, so the caller keeps that part
//! where it arrived (an RX frame of the UMEM) until RCV.NXT reaches it. The
//! first copy of a byte wins: a later segment's overlap with held bytes is
//! never taken.

/// Held ranges `[start, end)` of peer positions above RCV.NXT: sorted,
/// disjoint, merged, each with the stamp of the last segment that touched it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reorder {
    ranges: Vec<(u64, u64, u64)>,
    stamp: u64,
}

impl Reorder {
    /// A segment `[start, end)` arrived above RCV.NXT: the parts of it not
    /// held yet, which the caller is to keep, in order.
    pub fn insert(&mut self, start: u64, end: u64) -> Vec<(u64, u64)> {
        if start >= end {
            return Vec::new();
        }
        self.stamp += 1;
        let mut new = Vec::new();
        let mut at = start;
        for &(a, b, _) in &self.ranges {
            if b <= at || a >= end {
                continue;
            }
            if a > at {
                new.push((at, a));
            }
            at = at.max(b);
        }
        if at < end {
            new.push((at, end));
        }
        // Merge [start, end) in (adjacent ranges join: they are one block to the sender).
        let (mut s, mut e) = (start, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b, st) in &self.ranges {
            if b < s || a > e {
                kept.push((a, b, st));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        kept.push((s, e, self.stamp));
        kept.sort_unstable();
        self.ranges = kept;
        new
    }

    /// Where the first held range starts, if any.
    pub fn first_start(&self) -> Option<u64> {
        self.ranges.first().map(|r| r.0)
    }

    /// RCV.NXT is `rcv_nxt`: the held ranges it reaches leave the queue, and
    /// the new RCV.NXT (past them) is returned.
    pub fn advance(&mut self, mut rcv_nxt: u64) -> u64 {
        while let Some(&(a, b, _)) = self.ranges.first() {
            if a > rcv_nxt {
                break;
            }
            rcv_nxt = rcv_nxt.max(b);
            self.ranges.remove(0);
        }
        rcv_nxt
    }

    /// Bytes held.
    pub fn held(&self) -> u64 {
        self.ranges.iter().map(|(a, b, _)| b - a).sum()
    }

    /// The block changed last (the first one the next SACK option names).
    pub fn newest(&self) -> Option<(u64, u64)> {
        self.ranges.iter().max_by_key(|r| r.2).map(|&(a, b, _)| (a, b))
    }

    /// How many blocks (disjoint ranges) are held.
    pub fn blocks_held(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Up to `max` blocks for the SACK option, the most recently changed
    /// first (RFC 2018 4: the first block holds the segment that triggered
    /// the ACK, the others repeat the most recent ones).
    pub fn blocks(&self, max: usize) -> Vec<(u64, u64)> {
        let mut by_age: Vec<_> = self.ranges.clone();
        by_age.sort_unstable_by_key(|r| std::cmp::Reverse(r.2));
        by_age.into_iter().take(max).map(|(a, b, _)| (a, b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_part_not_yet_held_is_new_and_the_first_copy_wins() {
        let mut r = Reorder::default();
        assert_eq!(r.insert(100, 200), vec![(100, 200)]);
        assert_eq!(r.insert(300, 400), vec![(300, 400)]);
        // Over both and the gap between: only the gaps are new.
        assert_eq!(r.insert(50, 450), vec![(50, 100), (200, 300), (400, 450)]);
        assert_eq!(r.insert(60, 70), Vec::<(u64, u64)>::new());
        assert_eq!(r.held(), 400);
    }

    #[test]
    fn rcv_nxt_runs_through_what_it_reaches_and_blocks_say_the_newest_first() {
        let mut r = Reorder::default();
        r.insert(10, 20);
        r.insert(30, 40);
        r.insert(50, 60);
        assert_eq!(r.blocks(4), vec![(50, 60), (30, 40), (10, 20)]);
        r.insert(20, 25);
        assert_eq!(r.blocks(2), vec![(10, 25), (50, 60)]);
        assert_eq!(r.advance(5), 5, "a hole before the first range");
        assert_eq!(r.advance(10), 25);
        assert_eq!(r.first_start(), Some(30));
        assert_eq!(r.advance(45), 45, "a RCV.NXT past a range ends it too");
        assert_eq!(r.first_start(), Some(50));
    }
}
