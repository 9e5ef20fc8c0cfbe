//! What every packet path's sender shares: the rounds and the window.
//!
//! Round 0 sends every packet; then the receiver, told the round is over,
//! answers with the packets it still misses, and the next round sends just
//! those (flagged as resent), until nothing is missing.
//!
//! The window keeps the sender from outrunning the receiver: at most
//! `window` packets may be sent beyond what the receiver last reported
//! having taken (Progress messages). A packet lost on the way is never
//! reported, so a sender that hears nothing for a moment assumes what is in
//! flight is gone and opens the window again; the rounds repair the loss.

use super::Stream;
use crate::metrics::PacketStats;
use crate::sys::socket::poll_one;
use crate::transfer::control::{recv_msg, send_msg, Msg};
use crate::transfer::plan::PacketPlan;
use crate::transfer::Watchdog;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Give up after this many rounds of retransmission.
pub const MAX_ROUNDS: u32 = 100;

/// A data plane that can put packets on the wire.
pub trait PacketSink {
    /// Sends the packets with indices in `ranges` (half-open); returns when
    /// the last of them has left (so a RoundDone cannot overtake them).
    /// Returns the syscalls it made.
    /// Calls `flow.admit` before each packet.
    fn send(
        &mut self,
        plan: &PacketPlan,
        ranges: &[(u64, u64)],
        resent: bool,
        flow: &mut Flow,
        wd: &mut Watchdog,
    ) -> io::Result<u64>;
}

/// How long a blocked sender waits for news before it assumes loss.
const STALL: Duration = Duration::from_millis(5);
/// The same with several queues, whose receiving threads share two cores
/// with the sending ones here: a thread off the CPU for 5 ms is common, and
/// a credit then overflowed a receiver's ring (measured: 40,622 packets
/// dropped as rx_ring_full in one of four 512 MiB runs at 5 ms).
const STALL_QUEUES: Duration = Duration::from_millis(20);

/// The window's arithmetic: how many packets are in flight, by the
/// sender's count and the receiver's last report.
///
/// The receiver reports `seen`, packets it has taken off its data plane in
/// all rounds. In flight is what was sent since the last *credit* minus
/// what the receiver has seen since then. A credit happens when the sender
/// heard nothing for a while: whatever was in flight then is taken as
/// delivered or lost, and the window opens fully again (the rounds repair
/// any loss).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// Packets the sender may have in flight (None: no limit).
    limit: Option<u64>,
    sent: u64,
    /// `sent` as of the last credit.
    sent_at_credit: u64,
    /// `seen` as of the last credit.
    seen_at_credit: u64,
    seen: u64,
}

impl Window {
    pub fn new(limit: Option<u64>) -> Window {
        Window { limit, ..Window::default() }
    }

    pub fn in_flight(&self) -> u64 {
        // Saturating throughout: a snapshot of a shared window may catch a base ahead of its count.
        self.sent.saturating_sub(self.sent_at_credit).saturating_sub(self.seen.saturating_sub(self.seen_at_credit))
    }

    /// True if one more packet must wait.
    pub fn is_full(&self) -> bool {
        self.limit.is_some_and(|w| self.in_flight() >= w)
    }

    pub fn sent_one(&mut self) {
        self.sent += 1;
    }

    /// The receiver's report; an older (smaller) one changes nothing.
    pub fn heard(&mut self, seen: u64) {
        self.seen = self.seen.max(seen);
    }

    /// Nothing heard for a while: take everything in flight as gone.
    pub fn credit(&mut self) {
        self.sent_at_credit = self.sent;
        self.seen_at_credit = self.seen;
    }
}

/// What a data plane asks before each packet: may one more go?
pub trait Admit {
    /// True if the next `admit` would wait: push out what is queued first.
    fn must_wait(&self) -> bool;
    /// Returns once one more packet may go (and counts it as sent).
    fn admit(&mut self, wd: &mut Watchdog) -> io::Result<()>;
}

/// The window shared by the threads of several queues (`--queues`): they
/// count what they send; the main thread hears the receiver and credits.
/// The same arithmetic as [`Window`], in atomics.
#[derive(Debug)]
pub struct SharedWindow {
    limit: Option<u64>,
    sent: AtomicU64,
    sent_at_credit: AtomicU64,
    seen: AtomicU64,
    seen_at_credit: AtomicU64,
    /// A queue failed, or the receiver did: the others stop admitting.
    abort: AtomicBool,
}

impl SharedWindow {
    pub fn new(w: &Window) -> SharedWindow {
        SharedWindow {
            limit: w.limit,
            sent: AtomicU64::new(w.sent),
            sent_at_credit: AtomicU64::new(w.sent_at_credit),
            seen: AtomicU64::new(w.seen),
            seen_at_credit: AtomicU64::new(w.seen_at_credit),
            abort: AtomicBool::new(false),
        }
    }

    /// The state now, as a [`Window`] (bases read before the counts, which only grow).
    pub fn snapshot(&self) -> Window {
        let (sent_at_credit, seen_at_credit) =
            (self.sent_at_credit.load(Ordering::Relaxed), self.seen_at_credit.load(Ordering::Relaxed));
        let (sent, seen) = (self.sent.load(Ordering::Relaxed), self.seen.load(Ordering::Relaxed));
        Window { limit: self.limit, sent, sent_at_credit, seen, seen_at_credit }
    }

    /// Writes the state back, for the next round.
    pub fn store(&self, w: &mut Window) {
        *w = self.snapshot();
    }

    pub fn is_full(&self) -> bool {
        self.snapshot().is_full()
    }

    fn heard(&self, seen: u64) {
        self.seen.fetch_max(seen, Ordering::Relaxed);
    }

    fn credit(&self) {
        self.sent_at_credit.store(self.sent.load(Ordering::Relaxed), Ordering::Relaxed);
        self.seen_at_credit.store(self.seen.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }
}

/// One queue's thread asking the shared window.
pub struct QueueAdmit<'a>(pub &'a SharedWindow);

/// What a queue's thread returns when another one failed first.
pub const ABORTED: &str = "stopped: another queue failed";

impl Admit for QueueAdmit<'_> {
    fn must_wait(&self) -> bool {
        self.0.is_full()
    }

    fn admit(&mut self, wd: &mut Watchdog) -> io::Result<()> {
        loop {
            if self.0.abort.load(Ordering::Relaxed) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, ABORTED));
            }
            if !self.0.is_full() {
                self.0.sent.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            wd.idle()?;
            std::thread::yield_now();
        }
    }
}

impl Admit for Flow<'_> {
    fn must_wait(&self) -> bool {
        Flow::must_wait(self)
    }

    fn admit(&mut self, wd: &mut Watchdog) -> io::Result<()> {
        Flow::admit(self, wd)
    }
}

/// The sender's side of the window: the arithmetic, and the control
/// connection it hears the receiver on.
pub struct Flow<'a> {
    ctrl: &'a TcpStream,
    window: Window,
    /// Silence with a full window that reads as loss (STALL unless the receiver asked).
    stall: Duration,
    /// Times the sender waited for the receiver, and gave up waiting.
    pub waits: u64,
    pub stalls: u64,
}

impl<'a> Flow<'a> {
    pub fn new(ctrl: &'a TcpStream, limit: Option<u64>, patience: Option<Duration>) -> Flow<'a> {
        Flow { ctrl, window: Window::new(limit), stall: patience.unwrap_or(STALL), waits: 0, stalls: 0 }
    }

    /// True if the next `admit` would wait: push out what is queued first.
    pub fn must_wait(&self) -> bool {
        self.window.is_full()
    }

    /// Returns once one more packet may go (and counts it as sent).
    pub fn admit(&mut self, wd: &mut Watchdog) -> io::Result<()> {
        while self.window.is_full() {
            self.waits += 1;
            if poll_one(self.ctrl, libc::POLLIN, self.stall.as_millis() as i32)? == 0 {
                // Nothing heard: what is in flight is delivered or lost.
                self.stalls += 1;
                self.window.credit();
                break;
            }
            match recv_msg(&mut &*self.ctrl, wd)? {
                Some(Msg::Progress { seen }) => self.window.heard(seen),
                None => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "the receiver closed the connection mid-round"))
                }
                Some(other) => return Err(io::Error::other(format!("the receiver sent {other:?} mid-round"))),
            }
        }
        self.window.sent_one();
        Ok(())
    }

    fn heard(&mut self, seen: u64) {
        self.window.heard(seen);
    }

    /// While other threads send through `shared`, hears the receiver for
    /// them and credits the window when it stays full and silent, until
    /// `done` says they have all finished.
    pub fn pump(&mut self, shared: &SharedWindow, wd: &mut Watchdog, done: impl Fn() -> bool) -> io::Result<()> {
        let mut news = Instant::now();
        while !done() {
            if poll_one(self.ctrl, libc::POLLIN, 1)? == 0 {
                if shared.is_full() && news.elapsed() >= STALL_QUEUES.max(self.stall) {
                    self.waits += 1;
                    self.stalls += 1;
                    shared.credit();
                    news = Instant::now();
                }
                continue;
            }
            match recv_msg(&mut &*self.ctrl, wd)? {
                Some(Msg::Progress { seen }) => {
                    shared.heard(seen);
                    news = Instant::now();
                }
                None => {
                    return Err(io::Error::new(io::ErrorKind::ConnectionReset, "the receiver closed the connection mid-round"))
                }
                Some(other) => return Err(io::Error::other(format!("the receiver sent {other:?} mid-round"))),
            }
        }
        Ok(())
    }

    pub fn window(&self) -> &Window {
        &self.window
    }

    pub fn window_mut(&mut self) -> &mut Window {
        &mut self.window
    }
}

/// What the receiver said when it was ready.
#[derive(Debug, Clone, Default)]
pub struct PeerReady {
    /// Its MAC address (af-xdp receivers announce it).
    pub mac: Option<String>,
    /// Packets the sender may have in flight (packet paths).
    pub window: Option<u64>,
    /// The payload per packet it asked for instead of the Hello's (af-xdp
    /// to a receiver that writes with O_DIRECT).
    pub chunk: Option<u64>,
    /// How long to wait for news with a full window before taking silence for loss.
    pub patience: Option<Duration>,
    /// af-xdp-tcp: the receiver's port for the data connection.
    pub data_port: Option<u16>,
}

/// Waits for the receiver's Ready (it follows the Hello on every path).
pub fn await_ready(sock: &TcpStream, wd: &mut Watchdog) -> io::Result<PeerReady> {
    match recv_msg(&mut &*sock, wd)? {
        Some(Msg::Ready { mac, window, chunk, patience_ms, data_port }) => {
            // At most a second: a longer silence is for the watchdog to judge.
            let patience = patience_ms.map(|ms| Duration::from_millis(ms.clamp(1, 1000)));
            Ok(PeerReady { mac, window, chunk, patience, data_port })
        }
        Some(other) => Err(io::Error::other(format!("the receiver answered {other:?} where Ready was expected"))),
        None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the receiver closed the connection instead of getting ready")),
    }
}

/// Runs rounds until the receiver misses nothing; returns the packet
/// counts and the syscalls the sink made.
pub fn send_rounds(
    s: &mut Stream,
    plan: &PacketPlan,
    window: Option<u64>,
    sink: &mut impl PacketSink,
) -> io::Result<(PacketStats, u64)> {
    let mut flow = Flow::new(s.sock, window, s.peer.patience);
    let mut stats = PacketStats::default();
    let mut calls = 0;
    let mut todo = vec![(0, plan.packets())];
    let mut nothing_arrived = 0;
    for round in 0.. {
        if round >= MAX_ROUNDS {
            return Err(io::Error::other(format!("still missing packets after {MAX_ROUNDS} rounds: the link loses too much")));
        }
        calls += sink.send(plan, &todo, round > 0, &mut flow, &mut s.wd)?;
        let sent: u64 = todo.iter().map(|(a, b)| b - a).sum();
        stats.packets += sent;
        if round > 0 {
            stats.retransmitted += sent;
        }
        stats.rounds = round + 1;
        send_msg(&mut &*s.sock, &Msg::RoundDone { round, sent }, &mut s.wd)?;
        let answer = loop {
            match recv_msg(&mut &*s.sock, &mut s.wd)? {
                Some(Msg::Progress { seen }) => flow.heard(seen),
                other => break other,
            }
        };
        match answer {
            Some(Msg::Missing { ranges, count: 0 }) if ranges.is_empty() => break,
            Some(Msg::Missing { ranges, count }) => {
                log::info!("round {round}: the receiver misses {count} packets");
                if count >= sent {
                    nothing_arrived += 1;
                    if nothing_arrived == 3 {
                        return Err(io::Error::other(
                            "three rounds in a row, none of the packets arrived: is something dropping UDP to the \
                             port, or (af-xdp) do both ends use the same --queue?",
                        ));
                    }
                } else {
                    nothing_arrived = 0;
                }
                if ranges.is_empty() || ranges.iter().any(|&(a, b)| a >= b || b > plan.packets()) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "the receiver asked for packets that do not exist"));
                }
                todo = ranges;
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the receiver closed the connection at the end of a round",
                ))
            }
            other => return Err(io::Error::other(format!("the receiver answered {other:?} where Missing was expected"))),
        }
    }
    log::info!("window {window:?}: waited for the receiver {} times, assumed loss {} times", flow.waits, flow.stalls);
    Ok((stats, calls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_never_waits() {
        let mut w = Window::new(None);
        for _ in 0..1_000_000 {
            w.sent_one();
        }
        assert!(!w.is_full());
        assert_eq!(w.in_flight(), 1_000_000);
    }

    #[test]
    fn fills_at_the_limit_and_reports_open_it() {
        let mut w = Window::new(Some(4));
        for _ in 0..4 {
            assert!(!w.is_full());
            w.sent_one();
        }
        assert!(w.is_full());
        w.heard(3);
        assert_eq!(w.in_flight(), 1);
        w.heard(2); // a stale report changes nothing
        assert_eq!(w.in_flight(), 1);
        for _ in 0..3 {
            w.sent_one();
        }
        assert!(w.is_full());
    }

    #[test]
    fn a_credit_opens_the_window_and_later_reports_count_from_it() {
        let mut w = Window::new(Some(10));
        for _ in 0..10 {
            w.sent_one();
        }
        w.heard(4); // 6 still in flight by the receiver's word, perhaps lost
        w.credit();
        assert_eq!(w.in_flight(), 0);
        for _ in 0..5 {
            w.sent_one();
        }
        // The receiver now reports 4 + 7: the 6 "lost" ones arrived late after all, and one new.
        w.heard(11);
        assert_eq!(w.in_flight(), 0, "never below zero");
        w.sent_one();
        assert_eq!(w.in_flight(), 0);
        w.heard(11);
        for _ in 0..10 {
            w.sent_one();
        }
        assert_eq!(w.in_flight(), 9, "16 sent since the credit, 7 seen since");
        assert!(!w.is_full());
        w.sent_one();
        assert!(w.is_full());
    }
}
