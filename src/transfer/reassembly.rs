//! Putting a file back together from packets, whatever path brought them.
//!
//! Every packet is checked before a byte of it may be written: the lab
//! magic and length (by [`LabHeader::parse`]), the transfer id, and that
//! offset and length are exactly one packet of the [`PacketPlan`]. A packet
//! that fails is counted and dropped; a packet seen before is counted and
//! skipped. What passes is returned as (offset, bytes) for the caller to
//! write, so only offsets inside the file are ever written.

use super::plan::{PacketPlan, Tracker};
use crate::wire::{LabHeader, WireError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Fault injection for lessons and tests: drops a chosen share of the
/// packets that arrive, as a lossy link would, so retransmission can be
/// watched on a link that loses nothing. Deterministic (xorshift).
#[derive(Debug, Clone)]
pub struct LossInjector {
    per_mille: u32,
    state: u64,
}

impl LossInjector {
    pub fn new(per_mille: u32) -> LossInjector {
        LossInjector { per_mille: per_mille.min(1000), state: 0x9E37_79B9_7F4A_7C15 }
    }

    /// True for the packets to drop.
    pub fn drop_next(&mut self) -> bool {
        if self.per_mille == 0 {
            return false;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % 1000) < self.per_mille as u64
    }
}

/// Counters the receiver reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounts {
    /// Packets accepted for writing.
    pub accepted: u64,
    /// Packets already accepted before (duplicates from retransmission).
    pub duplicates: u64,
    /// Malformed, foreign or out-of-range packets: dropped unwritten.
    pub invalid: u64,
    /// Dropped on purpose by the loss injector.
    pub injected_losses: u64,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Wire(WireError),
    OtherTransfer,
    OutOfRange,
}

/// What became of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New: write its payload at this file offset.
    Accept(u64),
    Duplicate,
    /// Dropped by the loss injector.
    Injected,
    Invalid(Invalid),
}

/// Shared by the receiving threads of several queues: every method takes
/// `&self` (the bitmap and the counters are atomic).
pub struct Reassembly {
    plan: PacketPlan,
    transfer_id: u32,
    tracker: Tracker,
    /// None when no loss is injected (no lock on the way of a packet).
    loss: Option<Mutex<LossInjector>>,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    invalid: AtomicU64,
    injected_losses: AtomicU64,
}

impl Reassembly {
    pub fn new(plan: PacketPlan, transfer_id: u32) -> Reassembly {
        Self::with_loss(plan, transfer_id, LossInjector::new(0))
    }

    /// A reassembly that first drops packets as `loss` says.
    pub fn with_loss(plan: PacketPlan, transfer_id: u32, loss: LossInjector) -> Reassembly {
        Reassembly {
            plan,
            transfer_id,
            tracker: Tracker::new(plan.packets()),
            loss: (loss.per_mille > 0).then(|| Mutex::new(loss)),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            injected_losses: AtomicU64::new(0),
        }
    }

    /// The counters now.
    pub fn counts(&self) -> RxCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RxCounts {
            accepted: get(&self.accepted),
            duplicates: get(&self.duplicates),
            invalid: get(&self.invalid),
            injected_losses: get(&self.injected_losses),
        }
    }

    /// Packets taken off the data plane so far, whatever became of them.
    pub fn seen(&self) -> u64 {
        let c = self.counts();
        c.accepted + c.duplicates + c.invalid + c.injected_losses
    }

    /// Judges one UDP payload (lab header + file bytes); on `Accept`, the
    /// second value is the file bytes to write.
    pub fn admit_udp<'p>(&self, udp_payload: &'p [u8]) -> (Outcome, &'p [u8]) {
        match LabHeader::parse(udp_payload) {
            Err(e) => (self.reject(e), &[]),
            Ok((h, payload)) => (self.admit(&h, payload), payload),
        }
    }

    /// Judges a packet whose lab header was parsed already.
    pub fn admit(&self, h: &LabHeader, payload: &[u8]) -> Outcome {
        self.admit_len(h, payload.len())
    }

    /// As [`Self::admit`], for a payload of `len` bytes that lies in pieces.
    pub fn admit_len(&self, h: &LabHeader, len: usize) -> Outcome {
        if self.loss.as_ref().is_some_and(|l| l.lock().unwrap_or_else(|e| e.into_inner()).drop_next()) {
            self.injected_losses.fetch_add(1, Ordering::Relaxed);
            return Outcome::Injected;
        }
        if h.transfer_id != self.transfer_id {
            return self.invalid(Invalid::OtherTransfer);
        }
        let Some(i) = self.plan.index_of(h.offset, h.len) else {
            return self.invalid(Invalid::OutOfRange);
        };
        if len != h.len as usize {
            return self.invalid(Invalid::Wire(WireError::BadLength));
        }
        if !self.tracker.mark(i) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return Outcome::Duplicate;
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Outcome::Accept(h.offset)
    }

    /// Counts a packet the data plane found malformed before it got here.
    pub fn reject(&self, why: WireError) -> Outcome {
        self.invalid(Invalid::Wire(why))
    }

    fn invalid(&self, why: Invalid) -> Outcome {
        self.invalid.fetch_add(1, Ordering::Relaxed);
        log::debug!("dropped a packet: {why:?}");
        Outcome::Invalid(why)
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn complete(&self) -> bool {
        self.tracker.complete()
    }

    /// Bytes accepted so far.
    pub fn bytes(&self) -> u64 {
        let n = self.tracker.received();
        if n == 0 {
            return 0;
        }
        let last = self.plan.packets() - 1;
        let short = if self.tracker.has(last) { (self.plan.payload - self.plan.len(last)) as u64 } else { 0 };
        n * self.plan.payload as u64 - short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_injector_drops_about_its_share() {
        let mut l = LossInjector::new(100);
        let dropped = (0..100_000).filter(|_| l.drop_next()).count();
        assert!((9_000..11_000).contains(&dropped), "{dropped}");
        assert!(!(0..1000).any(|_| LossInjector::new(0).drop_next()));
    }
    use crate::wire::LAB_HEADER_LEN;

    fn pkt(id: u32, offset: u64, payload: &[u8]) -> Vec<u8> {
        let mut v = LabHeader { transfer_id: id, offset, len: payload.len() as u32, flags: 0 }.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn rebuilds_in_any_order_and_rejects_what_does_not_fit() {
        let src: Vec<u8> = (0..25u8).collect();
        let mut out = vec![0u8; 25];
        let mut r = Reassembly::new(PacketPlan::new(25, 10), 7);
        let mut feed = |r: &mut Reassembly, p: Vec<u8>| {
            let (o, data) = r.admit_udp(&p);
            if let Outcome::Accept(off) = o {
                out[off as usize..off as usize + data.len()].copy_from_slice(data);
            }
            o
        };
        assert_eq!(feed(&mut r, pkt(7, 20, &src[20..])), Outcome::Accept(20));
        assert_eq!(feed(&mut r, pkt(7, 0, &src[..10])), Outcome::Accept(0));
        assert_eq!(feed(&mut r, pkt(7, 0, &src[..10])), Outcome::Duplicate);
        assert_eq!(feed(&mut r, pkt(8, 10, &src[10..20])), Outcome::Invalid(Invalid::OtherTransfer));
        assert_eq!(feed(&mut r, pkt(7, 20, &[1; 10])), Outcome::Invalid(Invalid::OutOfRange), "past the end");
        assert_eq!(feed(&mut r, pkt(7, 5, &src[5..15])), Outcome::Invalid(Invalid::OutOfRange), "off boundary");
        assert_eq!(feed(&mut r, pkt(7, 30, &[1; 10])), Outcome::Invalid(Invalid::OutOfRange));
        assert_eq!(feed(&mut r, vec![0u8; LAB_HEADER_LEN - 1]), Outcome::Invalid(Invalid::Wire(WireError::Truncated)));
        let mut lying = pkt(7, 10, &src[10..20]);
        lying.pop();
        assert_eq!(feed(&mut r, lying), Outcome::Invalid(Invalid::Wire(WireError::BadLength)));
        assert!(!r.complete());
        assert_eq!(r.tracker().missing_ranges(10), vec![(1, 2)]);
        assert_eq!(r.bytes(), 15);
        assert_eq!(feed(&mut r, pkt(7, 10, &src[10..20])), Outcome::Accept(10));
        assert!(r.complete());
        assert_eq!(r.bytes(), 25);
        assert_eq!(r.counts(), RxCounts { accepted: 3, duplicates: 1, invalid: 6, injected_losses: 0 });
        assert_eq!(out, src);
    }
}
