//! The SACK scoreboard (RFC 2018, RFC 6675): which bytes above SND.UNA the
//! peer said it holds, as send positions, so that loss recovery sends only
//! the holes and knows how much is really in the network.

/// SACKed ranges `[start, end)` of send positions, sorted, disjoint, merged,
/// all above SND.UNA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scoreboard {
    ranges: Vec<(u64, u64)>,
}

impl Scoreboard {
    /// The peer holds `[start, end)`.
    pub fn add(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            if b < s || a > e {
                kept.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        kept.push((s, e));
        kept.sort_unstable();
        self.ranges = kept;
    }

    /// Everything below `una` is acknowledged: forget it.
    pub fn prune(&mut self, una: u64) {
        self.ranges.retain(|&(_, b)| b > una);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(una);
        }
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Bytes SACKed.
    pub fn sacked(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }

    /// The end of the highest SACKed range.
    pub fn highest(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }

    /// The first hole at or after `from` (and at or after `una`) below the
    /// highest SACKed byte: the next thing recovery sends again.
    pub fn next_hole(&self, una: u64, from: u64) -> Option<(u64, u64)> {
        let mut at = una.max(from);
        for &(a, b) in &self.ranges {
            if at < a {
                return Some((at, a));
            }
            at = at.max(b);
        }
        None
    }

    /// Bytes in holes from `from` up to the highest SACKed byte: taken as
    /// lost (RFC 6675's IsLost, with SACKed data above every hole) and not
    /// yet sent again.
    pub fn holes_from(&self, una: u64, from: u64) -> u64 {
        let mut at = una.max(from);
        let mut n = 0;
        for &(a, b) in &self.ranges {
            if at < a {
                n += a - at;
            }
            at = at.max(b);
        }
        n
    }

    /// Whether position `p` is SACKed.
    pub fn contains(&self, p: u64) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= p && p < b)
    }

    /// The end of the SACKed range `p` is in, if it is in one.
    pub fn range_end(&self, p: u64) -> Option<u64> {
        self.ranges.iter().find(|&&(a, b)| a <= p && p < b).map(|r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_prune_and_leave_holes_to_send_again() {
        let mut s = Scoreboard::default();
        s.add(3000, 4000);
        s.add(5000, 6000);
        s.add(4000, 4500); // touches the first
        s.add(5500, 7000); // overlaps the second
        assert_eq!(s.ranges, vec![(3000, 4500), (5000, 7000)]);
        assert_eq!(s.sacked(), 3500);
        assert_eq!(s.highest(), Some(7000));
        // Holes from SND.UNA = 1000: [1000, 3000) and [4500, 5000).
        assert_eq!(s.next_hole(1000, 0), Some((1000, 3000)));
        assert_eq!(s.next_hole(1000, 3000), Some((4500, 5000)));
        assert_eq!(s.next_hole(1000, 5000), None, "nothing lost above the highest SACK");
        assert_eq!(s.holes_from(1000, 0), 2500);
        assert_eq!(s.holes_from(1000, 2000), 1500);
        assert!(s.contains(3000) && !s.contains(4500));
        assert_eq!(s.range_end(5200), Some(7000));
        s.prune(4000);
        assert_eq!(s.ranges, vec![(4000, 4500), (5000, 7000)]);
        s.prune(7000);
        assert_eq!(s.sacked(), 0);
    }
}
