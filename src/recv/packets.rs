//! What every packet path's receiver shares: the rounds.
//!
//! Packets are taken whenever the data plane has some; when the sender says
//! a round is over, the receiver takes what is still in flight until the
//! data plane stays quiet, then answers with what is missing.

use crate::sys::socket as so;
use crate::transfer::control::{recv_msg, send_msg, Msg};
use crate::transfer::reassembly::Reassembly;
use crate::transfer::Watchdog;
use std::io;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// After a round ends, wait this long without packets before answering.
const QUIET: Duration = Duration::from_millis(5);
/// Most missing ranges in one answer; the rest are asked for next round.
const MAX_RANGES: usize = 4096;

/// A data plane that packets arrive on.
pub trait PacketSource {
    /// What to poll for "packets are waiting".
    fn pollable(&self) -> std::os::fd::BorrowedFd<'_>;
    /// Takes every packet waiting now into `r`; returns the syscalls made.
    fn drain(&mut self, r: &mut Reassembly, wd: &mut Watchdog) -> io::Result<u64>;
}

/// Runs the rounds until every packet is in `r`. Returns the syscalls made
/// and the number of rounds.
pub fn receive_rounds(
    ctrl: &TcpStream,
    src: &mut impl PacketSource,
    r: &mut Reassembly,
    wd: &mut Watchdog,
    mac: Option<String>,
) -> io::Result<(u64, u32)> {
    let mut calls = 0u64;
    send_msg(&mut &*ctrl, &Msg::Ready { mac }, wd)?;
    loop {
        let (data, control) = so::poll_two(&src.pollable(), &ctrl.as_fd(), libc::POLLIN, 100)?;
        calls += 1;
        if data {
            calls += src.drain(r, wd)?;
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
                    calls += 1;
                    if so::poll_one(&src.pollable(), libc::POLLIN, 1)? != 0 {
                        calls += src.drain(r, wd)?;
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
