//! Congestion control: NewReno (RFC 5681, RFC 6582). Slow start below the
//! threshold, one segment per window above it; three duplicate ACKs halve
//! the window and start a recovery that lasts until everything sent before
//! it is acknowledged (a partial ACK retransmits the next hole at once);
//! a timeout starts again from one segment.
//!
//! Windows are in bytes; the connection says what was acknowledged and how
//! much was in flight, and asks how much it may have in flight.

/// RFC 6928's initial window, as Linux sends it: ten segments.
pub const INITIAL_SEGMENTS: u64 = 10;

#[derive(Debug, Clone)]
pub struct NewReno {
    mss: u64,
    cwnd: u64,
    ssthresh: u64,
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    counted: u64,
    largest: u64,
}

impl NewReno {
    pub fn new(mss: u32) -> NewReno {
        let mss = mss.max(1) as u64;
        let cwnd = INITIAL_SEGMENTS * mss;
        NewReno { mss, cwnd, ssthresh: u64::MAX, counted: 0, largest: cwnd }
    }

    pub fn cwnd(&self) -> u64 {
        self.cwnd
    }

    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    /// The largest window this connection reached.
    pub fn largest(&self) -> u64 {
        self.largest
    }

    pub fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    fn grew(&mut self) {
        self.largest = self.largest.max(self.cwnd);
    }

    /// New data acknowledged outside recovery (RFC 5681 3.1): slow start adds
    /// what was acknowledged, at most two segments an ACK (RFC 3465, L = 2);
    /// congestion avoidance one segment per window's worth acknowledged.
    pub fn on_ack(&mut self, acked: u64) {
        if self.in_slow_start() {
            self.cwnd += acked.min(2 * self.mss);
        } else {
            self.counted += acked;
            if self.counted >= self.cwnd {
                self.counted -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
        self.grew();
    }

    /// The third duplicate ACK (RFC 6582 3.2 step 2): half the flight, at
    /// least two segments, as the threshold; the window that plus the three
    /// segments the duplicates say have left.
    pub fn on_fast_retransmit(&mut self, flight: u64) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.ssthresh + 3 * self.mss;
        self.counted = 0;
    }

    /// Loss recovery by the SACK scoreboard begins (RFC 6675 5, step 4.2):
    /// the threshold and the window both half the flight; the pipe estimate,
    /// not an inflated window, lets segments go.
    pub fn on_sack_recovery(&mut self, flight: u64) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.ssthresh;
        self.counted = 0;
    }

    /// Another duplicate ACK in recovery (step 3): one more segment has left.
    pub fn on_dup_ack_in_recovery(&mut self) {
        self.cwnd += self.mss;
        self.grew();
    }

    /// A partial ACK in recovery (step 5): deflate by what it acknowledged,
    /// add back one segment if that was a segment or more.
    pub fn on_partial_ack(&mut self, acked: u64) {
        self.cwnd = self.cwnd.saturating_sub(acked).max(self.mss);
        if acked >= self.mss {
            self.cwnd += self.mss;
        }
    }

    /// The full ACK that ends recovery (step 4, its first option).
    pub fn on_full_ack(&mut self, flight: u64) {
        self.cwnd = self.ssthresh.min(flight.max(self.mss) + self.mss);
    }

    /// The retransmission timer expired (RFC 5681 (4), (5)): the threshold
    /// from the flight, the window one segment.
    pub fn on_timeout(&mut self, flight: u64) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.counted = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_one_segment_per_window() {
        let mut c = NewReno::new(1000);
        assert_eq!(c.cwnd(), 10_000);
        // An ACK of two segments adds two; of four, still two (L = 2).
        c.on_ack(2000);
        assert_eq!(c.cwnd(), 12_000);
        c.on_ack(4000);
        assert_eq!(c.cwnd(), 14_000);
        c.on_timeout(14_000);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 7000));
        while c.in_slow_start() {
            c.on_ack(1000);
        }
        assert_eq!(c.cwnd(), 7000);
        // Congestion avoidance: a whole window acknowledged for one segment more.
        for _ in 0..6 {
            c.on_ack(1000);
        }
        assert_eq!(c.cwnd(), 7000);
        c.on_ack(1000);
        assert_eq!(c.cwnd(), 8000);
        assert_eq!(c.largest(), 14_000);
    }

    #[test]
    fn recovery_halves_inflates_deflates_and_ends_at_the_threshold() {
        let mut c = NewReno::new(1000);
        c.on_fast_retransmit(20_000);
        assert_eq!((c.ssthresh(), c.cwnd()), (10_000, 13_000));
        c.on_dup_ack_in_recovery();
        assert_eq!(c.cwnd(), 14_000);
        // A partial ACK of 3 segments: 14 - 3 + 1.
        c.on_partial_ack(3000);
        assert_eq!(c.cwnd(), 12_000);
        // Of half a segment: no segment added back.
        c.on_partial_ack(500);
        assert_eq!(c.cwnd(), 11_500);
        c.on_full_ack(16_000);
        assert_eq!(c.cwnd(), 10_000, "min(ssthresh, flight + MSS)");
        c.on_fast_retransmit(1000);
        assert_eq!(c.ssthresh(), 2000, "at least two segments");
    }
}
