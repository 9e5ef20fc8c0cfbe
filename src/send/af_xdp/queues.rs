//! `--queues N`: one AF_XDP socket and one thread per queue. The file's
//! blocks are dealt out to the queues in turn (block `b` to queue
//! `b % N`), each queue reading its own blocks into its own UMEM. The
//! window and the rounds stay per transfer: the queues' threads count what
//! they send in one [`SharedWindow`], and the calling thread hears the
//! receiver for all of them; a round ends when every queue has sent its share.

use super::XdpSink;
use crate::send::packets::{Flow, PacketSink, QueueAdmit, SharedWindow, ABORTED};
use crate::transfer::plan::PacketPlan;
use crate::transfer::Watchdog;
use std::io;

/// The sinks of all queues as one.
pub(super) struct Queues<'a>(pub &'a mut [XdpSink]);

/// The packets of `ranges` (half-open, in order) cut at block edges and
/// dealt to `n` queues by block: queue `q` gets the blocks `b % n == q`.
pub(super) fn deal(ranges: &[(u64, u64)], packets_per_block: u64, n: usize) -> Vec<Vec<(u64, u64)>> {
    let mut shares = vec![Vec::new(); n];
    for &(a, b) in ranges {
        let mut i = a;
        while i < b {
            let block = i / packets_per_block;
            let end = ((block + 1) * packets_per_block).min(b);
            let share: &mut Vec<(u64, u64)> = &mut shares[(block % n as u64) as usize];
            match share.last_mut() {
                Some(last) if last.1 == i => last.1 = end,
                _ => share.push((i, end)),
            }
            i = end;
        }
    }
    shares
}

impl PacketSink for Queues<'_> {
    fn send(
        &mut self,
        plan: &PacketPlan,
        ranges: &[(u64, u64)],
        resent: bool,
        flow: &mut Flow,
        wd: &mut Watchdog,
    ) -> io::Result<u64> {
        let per_block = self.0[0].cache.layout().packets_per_block;
        let shares = deal(ranges, per_block, self.0.len());
        let shared = SharedWindow::new(flow.window());
        let main_cpu = crate::sys::sched::pinned_cpu();
        let result = std::thread::scope(|s| {
            let threads: Vec<_> = self
                .0
                .iter_mut()
                .zip(&shares)
                .enumerate()
                .map(|(k, (sink, share))| {
                    let (shared, mut wd) = (&shared, wd.fork());
                    s.spawn(move || {
                        if let Err(e) = crate::sys::sched::pin_beside(main_cpu, k) {
                            log::warn!("queue {}: not pinned: {e}", sink.queue);
                        }
                        let r = sink.send_packets(plan, share, resent, &mut QueueAdmit(shared), &mut wd);
                        if r.is_err() {
                            shared.abort();
                        }
                        r
                    })
                })
                .collect();
            let pumped = flow.pump(&shared, wd, || threads.iter().all(|t| t.is_finished()));
            if pumped.is_err() {
                shared.abort();
            }
            let mut calls = 0;
            let mut errors = Vec::new();
            for t in threads {
                match t.join() {
                    Ok(Ok(c)) => calls += c,
                    Ok(Err(e)) => errors.push(e),
                    Err(_) => errors.push(io::Error::other("a queue's sending thread panicked")),
                }
            }
            errors.extend(pumped.err());
            // The first cause, not the queues that stopped because of it.
            match errors.into_iter().reduce(|a, b| if a.to_string() == ABORTED { b } else { a }) {
                Some(e) => Err(e),
                None => Ok(calls),
            }
        });
        shared.store(flow.window_mut());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_goes_to_one_queue_by_its_block() {
        let ranges = [(0, 10), (13, 14), (25, 41)];
        let shares = deal(&ranges, 4, 3);
        assert_eq!(shares[0], vec![(0, 4), (13, 14), (25, 28), (36, 40)], "blocks 0, 3, 6 (from 25), 9");
        assert_eq!(shares[1], vec![(4, 8), (28, 32), (40, 41)], "blocks 1, 7, 10");
        assert_eq!(shares[2], vec![(8, 10), (32, 36)], "blocks 2, 8");
        let mut all: Vec<u64> = shares.iter().flatten().flat_map(|&(a, b)| a..b).collect();
        all.sort();
        let want: Vec<u64> = ranges.iter().flat_map(|&(a, b)| a..b).collect();
        assert_eq!(all, want, "each packet exactly once");
        assert_eq!(deal(&ranges, 4, 1), vec![vec![(0, 10), (13, 14), (25, 41)]], "one queue takes all, merged");
    }
}
