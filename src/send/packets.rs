//! What every packet path's sender shares: the rounds.
//!
//! Round 0 sends every packet; then the receiver, told the round is over,
//! answers with the packets it still misses, and the next round sends just
//! those (flagged as resent), until nothing is missing.

use super::Stream;
use crate::metrics::PacketStats;
use crate::transfer::control::{recv_msg, send_msg, Msg};
use crate::transfer::plan::PacketPlan;
use crate::transfer::Watchdog;
use std::io;

/// Give up after this many rounds of retransmission.
pub const MAX_ROUNDS: u32 = 100;

/// A data plane that can put packets on the wire.
pub trait PacketSink {
    /// Sends the packets with indices in `ranges` (half-open); returns when
    /// the last of them has left (so a RoundDone cannot overtake them).
    /// Returns the syscalls it made.
    fn send(&mut self, plan: &PacketPlan, ranges: &[(u64, u64)], resent: bool, wd: &mut Watchdog) -> io::Result<u64>;
}

/// Waits for the receiver's Ready; returns the MAC it announced, if any.
pub fn await_ready(s: &mut Stream) -> io::Result<Option<String>> {
    match recv_msg(&mut &*s.sock, &mut s.wd)? {
        Some(Msg::Ready { mac }) => Ok(mac),
        other => Err(io::Error::other(format!("the receiver answered {other:?} where Ready was expected"))),
    }
}

/// Runs rounds until the receiver misses nothing; returns the packet
/// counts and the syscalls the sink made.
pub fn send_rounds(s: &mut Stream, plan: &PacketPlan, sink: &mut impl PacketSink) -> io::Result<(PacketStats, u64)> {
    let mut stats = PacketStats::default();
    let mut calls = 0;
    let mut todo = vec![(0, plan.packets())];
    for round in 0.. {
        if round >= MAX_ROUNDS {
            return Err(io::Error::other(format!("still missing packets after {MAX_ROUNDS} rounds: the link loses too much")));
        }
        calls += sink.send(plan, &todo, round > 0, &mut s.wd)?;
        let sent: u64 = todo.iter().map(|(a, b)| b - a).sum();
        stats.packets += sent;
        if round > 0 {
            stats.retransmitted += sent;
        }
        stats.rounds = round + 1;
        send_msg(&mut &*s.sock, &Msg::RoundDone { round, sent }, &mut s.wd)?;
        match recv_msg(&mut &*s.sock, &mut s.wd)? {
            Some(Msg::Missing { ranges, count: 0 }) if ranges.is_empty() => break,
            Some(Msg::Missing { ranges, count }) => {
                log::info!("round {round}: the receiver misses {count} packets");
                if ranges.is_empty() || ranges.iter().any(|&(a, b)| a >= b || b > plan.packets()) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "the receiver asked for packets that do not exist"));
                }
                todo = ranges;
            }
            other => return Err(io::Error::other(format!("the receiver answered {other:?} where Missing was expected"))),
        }
    }
    Ok((stats, calls))
}
