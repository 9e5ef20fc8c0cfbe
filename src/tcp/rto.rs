//! The retransmission timer (RFC 6298): a smoothed round-trip time and its
//! variation from samples that Karn's rule lets through, a timeout of
//! SRTT + 4 RTTVAR, at least the minimum, doubled on every expiry until an
//! ACK for new data brings a fresh sample.
//!
//! The minimum is a choice. RFC 6298 says 1 s; Linux uses 200 ms
//! (`TCP_RTO_MIN`). zclab takes Linux's by default: its peers here are the
//! kernel's TCP, whose own timeouts sit at 200 ms, and the lab's round trips
//! are tens of microseconds, so a spurious timeout (an ACK later than the
//! timer) needs a stall of 200 ms, not an RTT's wobble; with 1 s, every tail
//! loss the fast retransmit cannot repair would cost a second against the
//! kernel's fifth of one. `--min-rto` sets it.

use std::time::Duration;

/// RFC 6298 (2.1): before any sample.
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// Linux's `TCP_RTO_MIN`, zclab's default floor.
pub const DEFAULT_MIN_RTO: Duration = Duration::from_millis(200);
/// RFC 6298 (2.5) allows a ceiling of at least 60 s.
pub const MAX_RTO: Duration = Duration::from_secs(60);
/// G, the clock's granularity: `Instant` is finer, a millisecond is what matters.
const GRANULARITY: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct Rto {
    srtt: Option<Duration>,
    rttvar: Duration,
    base: Duration,
    /// Expiries since the last fresh sample: the timeout is doubled this often.
    backoff: u32,
    min: Duration,
}

impl Rto {
    pub fn new(min: Duration) -> Rto {
        Rto { srtt: None, rttvar: Duration::ZERO, base: INITIAL_RTO.max(min), backoff: 0, min }
    }

    /// A round-trip time measured on a segment that was sent once (Karn).
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                // (2.2)
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                // (2.3), beta 1/4 and alpha 1/8.
                let delta = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + delta / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        let srtt = self.srtt.expect("just set");
        self.base = (srtt + GRANULARITY.max(self.rttvar * 4)).max(self.min).min(MAX_RTO);
        // (5.7): a fresh sample ends the backing off.
        self.backoff = 0;
    }

    /// The timeout to arm now.
    pub fn timeout(&self) -> Duration {
        self.base.saturating_mul(1 << self.backoff.min(16)).min(MAX_RTO)
    }

    /// (5.5): the timer expired; the next one is twice as long.
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_first_sample_sets_srtt_and_half_of_it_as_rttvar() {
        let mut r = Rto::new(DEFAULT_MIN_RTO);
        assert_eq!(r.timeout(), INITIAL_RTO, "1 s before any sample");
        r.sample(100 * MS);
        assert_eq!(r.srtt(), Some(100 * MS));
        assert_eq!(r.rttvar(), 50 * MS);
        assert_eq!(r.timeout(), 300 * MS, "SRTT + 4 RTTVAR");
        // A second: RTTVAR = 3/4 50 + 1/4 |100 - 200| = 62.5; SRTT = 7/8 100 + 1/8 200 = 112.5.
        r.sample(200 * MS);
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(r.rttvar(), Duration::from_micros(62_500));
        assert_eq!(r.timeout(), Duration::from_micros(362_500));
    }

    #[test]
    fn the_floor_holds_for_tiny_round_trips_and_backoff_doubles_to_the_ceiling() {
        let mut r = Rto::new(DEFAULT_MIN_RTO);
        r.sample(Duration::from_micros(40));
        assert_eq!(r.timeout(), DEFAULT_MIN_RTO, "veth's 40 us round trip: the floor");
        r.back_off();
        assert_eq!(r.timeout(), 2 * DEFAULT_MIN_RTO);
        r.back_off();
        assert_eq!(r.timeout(), 4 * DEFAULT_MIN_RTO);
        for _ in 0..20 {
            r.back_off();
        }
        assert_eq!(r.timeout(), MAX_RTO);
        // A fresh sample: back to the computed value.
        r.sample(Duration::from_micros(40));
        assert_eq!(r.timeout(), DEFAULT_MIN_RTO);
        // The RFC's own floor.
        let mut rfc = Rto::new(Duration::from_secs(1));
        rfc.sample(Duration::from_micros(40));
        assert_eq!(rfc.timeout(), Duration::from_secs(1));
    }
}
