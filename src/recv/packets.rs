//! What every packet path's receiver shares: the rounds.
//!
//! Packets are taken whenever the data plane has some; when the sender says
//! a round is over, the receiver takes what is still in flight until the
//! data plane stays quiet, then answers with what is missing.

use crate::sys::socket as so;
use crate::transfer::control::{recv_msg, send_msg, Msg};
use crate::transfer::reassembly::Reassembly;
use crate::transfer::Watchdog;
use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// After a round ends, wait this long without packets before answering.
const QUIET: Duration = Duration::from_millis(5);
/// The longest a receiver that has taken packets keeps quiet about it: well
/// inside the 5 ms after which a blocked sender takes silence for loss.
const REPORT_EVERY: Duration = Duration::from_millis(2);
/// Most missing ranges in one answer; the rest are asked for next round.
const MAX_RANGES: usize = 4096;

/// A data plane that packets arrive on.
pub trait PacketSource {
    /// What to poll for "packets are waiting".
    fn pollable(&self) -> std::os::fd::BorrowedFd<'_>;
    /// Takes every packet waiting now: judged by `r`, the accepted ones
    /// written to `out`. Returns the syscalls made.
    fn drain(&mut self, r: &Reassembly, out: &File, wd: &mut Watchdog) -> io::Result<u64>;
    /// True if packets are waiting, checked without a syscall, spinning up to
    /// `spin`. Sources that cannot tell without a syscall say false.
    fn ready(&mut self, _spin: Duration) -> bool {
        false
    }
    /// The longest sleep in poll() while nothing arrives (milliseconds): a
    /// source with data its `pollable` does not show (other queues) wakes sooner.
    fn idle_poll_ms(&self) -> i32 {
        100
    }
}

/// How long to spin for packets before sleeping in poll: waking up costs
/// more than the packets that arrive meanwhile.
/// Measured on the lab's veth (af-xdp, 512 MiB, pinned, three runs each):
/// spinning 20 or 200 us gave 4.34 Gbit/s (median), not spinning 4.23 and
/// 2 ms 4.24; 200 us took 20 context switches a transfer, 20 us 700, none 4,000.
pub(super) const SPIN: Duration = Duration::from_micros(200);

/// Runs the rounds until every packet is in `r`. Returns the syscalls made
/// and the number of rounds. Progress is reported every quarter of the
/// `window` (packets) the receiver offered in its Ready.
pub fn receive_rounds(
    ctrl: &TcpStream,
    src: &mut (impl PacketSource + ?Sized),
    r: &Reassembly,
    out: &File,
    wd: &mut Watchdog,
    window: u64,
) -> io::Result<(u64, u32)> {
    let mut calls = 0u64;
    let mut reported = 0;
    let mut reported_at = Instant::now();
    let mut control_checked = Instant::now();
    loop {
        let (data, control) = if src.ready(SPIN) {
            // While packets flow, look at the control connection once a millisecond.
            let look = control_checked.elapsed() >= Duration::from_millis(1);
            if look {
                control_checked = Instant::now();
                calls += 1;
            }
            (true, look && so::poll_one(ctrl, libc::POLLIN, 0)? != 0)
        } else {
            calls += 1;
            so::poll_two(&src.pollable(), &ctrl.as_fd(), libc::POLLIN, src.idle_poll_ms())?
        };
        if data {
            calls += src.drain(r, out, wd)?;
            // Every quarter window, or sooner when packets come slower than the sender's
            // patience (a receiver waiting on its disk): silence reads as loss to the sender.
            let due =
                r.seen() - reported >= (window / 4).max(1) || (r.seen() > reported && reported_at.elapsed() >= REPORT_EVERY);
            if due {
                reported = r.seen();
                reported_at = Instant::now();
                calls += 1;
                send_msg(&mut &*ctrl, &Msg::Progress { seen: reported }, wd)?;
            }
        }
        if !control {
            if !data {
                wd.idle()?;
            }
            continue;
        }
        match recv_msg(&mut &*ctrl, wd)? {
            Some(Msg::RoundDone { round, .. }) => {
                // Packets of the round may still be on their way: take them
                // until the data plane stays quiet.
                let mut quiet_since = Instant::now();
                while quiet_since.elapsed() < QUIET && !r.complete() {
                    let waiting = src.ready(SPIN) || {
                        calls += 1;
                        so::poll_one(&src.pollable(), libc::POLLIN, 1)? != 0
                    };
                    if waiting {
                        calls += src.drain(r, out, wd)?;
                        quiet_since = Instant::now();
                    }
                }
                let ranges = r.tracker().missing_ranges(MAX_RANGES);
                let count = r.tracker().missing_count();
                send_msg(&mut &*ctrl, &Msg::Missing { ranges, count }, wd)?;
                if count == 0 {
                    return Ok((calls, round + 1));
                }
            }
            Some(other) => return Err(io::Error::other(format!("the sender sent {other:?} mid-transfer"))),
            None => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the sender closed the control connection mid-transfer"))
            }
        }
    }
}
