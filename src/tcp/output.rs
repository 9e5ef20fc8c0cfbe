//! What a connection sends next, and its timers: the SYN and its retries,
//! new data as far as min(cwnd, the peer's window) lets it, the segment at
//! SND.UNA again after three duplicate ACKs, a partial ACK or a timeout
//! (then everything from there, go-back-N, in slow start), a probe of a
//! zero window, the FIN, and ACKs.

use super::conn::{Connection, State, TcpError};
use crate::wire::{TcpFlags, TcpOptions, TcpSegment};
use std::time::{Duration, Instant};

/// Why a segment is sent: the report counts them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Syn,
    /// New data (or the FIN) for the first time.
    New,
    /// Fast retransmit, or the next hole after a partial ACK in recovery.
    Fast,
    /// Sent again after the retransmission timer expired.
    Timeout,
    /// A probe of a zero window (an ACK the peer must answer).
    Probe,
    /// An ACK alone.
    Ack,
    Rst,
}

/// A segment to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub segment: TcpSegment,
    /// The stream bytes it carries: (offset in the stream, length).
    pub payload: Option<(u64, u32)>,
    pub why: Why,
}

/// The persist timer's ceiling.
const MAX_PERSIST: Duration = Duration::from_secs(60);

impl Connection {
    /// When the connection next needs [`Connection::poll_transmit`] even if
    /// nothing comes in.
    pub fn poll_deadline(&self) -> Option<Instant> {
        [self.rto_deadline, self.persist_deadline, self.time_wait_until, self.delack_deadline].into_iter().flatten().min()
    }

    fn segment(&self, pos: u64, flags: TcpFlags) -> TcpSegment {
        let ack = if flags.ack { self.irs.wrapping_add(self.rcv_nxt as u32) } else { 0 };
        let mut options = TcpOptions::default();
        if flags.ack && !flags.syn && self.sack_ok && !self.reorder.is_empty() {
            // What is held ahead of RCV.NXT, the newest first (RFC 2018 4); four fit
            // in the 40 bytes of options.
            let irs = self.irs;
            let wire = |p: u64| irs.wrapping_add(p as u32);
            options.sack = self.reorder.blocks(4).into_iter().map(|(a, b)| (wire(a), wire(b))).collect();
        }
        TcpSegment {
            src_port: self.cfg.local_port,
            dst_port: self.cfg.remote_port,
            seq: self.seq(pos),
            ack,
            flags,
            window: self.window_field(),
            options,
        }
    }

    fn count(&mut self, t: &Transmit) {
        self.stats.segments_sent += 1;
        if let Some((_, len)) = t.payload {
            self.stats.bytes_sent += len as u64;
        }
        match t.why {
            Why::Fast => self.stats.retransmits_fast += 1,
            Why::Timeout => self.stats.retransmits_timeout += 1,
            Why::Probe => self.stats.zero_window_probes += 1,
            Why::Syn => self.stats.syns_sent += 1,
            _ => {}
        }
        if t.why == Why::Ack {
            self.stats.acks_sent += 1;
        }
        self.stats.sack_blocks_sent += t.segment.options.sack.len() as u64;
        if t.segment.flags.ack {
            self.ack_now = false;
            self.unacked_segments = 0;
            self.delack_deadline = None;
            // The edge this segment advertised, which later ones keep (RFC 9293 3.8.6).
            let wnd = (t.segment.window as u64) << self.window_shift();
            self.rcv_right = self.rcv_right.max(self.rcv_nxt + wnd);
            if !t.segment.flags.syn {
                self.stats.window_min = Some(self.stats.window_min.map_or(wnd, |m| m.min(wnd)));
                self.stats.window_max = self.stats.window_max.max(wnd);
                self.stats.zero_windows_sent += (wnd == 0) as u64;
            }
        }
    }

    /// The end of the data the caller has ready, as a position.
    fn data_end(&self) -> u64 {
        1 + self.stream_len.map_or(self.available, |l| l.min(self.available))
    }

    /// The retransmission timer expired.
    fn on_rto(&mut self, now: Instant) {
        log::debug!(
            "rto: una {} nxt {} max {} len {:?} recovery {} dup {} sacked {} cwnd {} wnd {} rexmit_next {}",
            self.snd_una,
            self.snd_nxt,
            self.snd_max,
            self.stream_len,
            self.in_recovery.is_some(),
            self.dup_acks,
            self.scoreboard.sacked(),
            self.cc.cwnd(),
            self.snd_wnd,
            self.rexmit_next
        );
        self.rto_deadline = None;
        self.timeouts += 1;
        self.stats.rto_fired += 1;
        self.rto.back_off();
        self.timing = None;
        if matches!(self.state, State::SynSent | State::SynReceived) {
            if self.timeouts > self.cfg.syn_retries {
                self.fail(TcpError::NoAnswer { syns: self.timeouts });
                return;
            }
            // The SYN (or SYN-ACK) goes again.
            self.snd_nxt = 0;
            return;
        }
        if self.timeouts > self.cfg.max_retransmits {
            let acked = self.acked_bytes();
            self.fail(TcpError::TimedOut { retransmits: self.timeouts - 1, acked });
            return;
        }
        self.cc.on_timeout(self.snd_max - self.snd_una);
        // RFC 2018 8: after a timeout the SACKed bits are not trusted.
        self.scoreboard.clear();
        if let Some(since) = self.in_recovery.take() {
            self.stats.recovery_s += now.duration_since(since).as_secs_f64();
        }
        // RFC 6582 3.2: after a timeout, no fast retransmit until this is acknowledged.
        self.recover = self.snd_max;
        self.dup_acks = 0;
        self.retransmit_una = false;
        // Go back: everything from SND.UNA again, as the window opens.
        self.snd_nxt = self.snd_una;
    }

    /// The next segment to send, if any. `limit(offset)` bounds a segment
    /// that starts at stream offset `offset` (where the caller's buffers
    /// end: a segment's payload must lie in one of them).
    pub fn poll_transmit(&mut self, now: Instant, limit: impl Fn(u64) -> u32) -> Option<Transmit> {
        if let Some(seq) = self.rst_to_send.take() {
            let mut seg = self.segment(0, TcpFlags { rst: true, ..Default::default() });
            seg.seq = seq;
            seg.window = 0;
            let t = Transmit { segment: seg, payload: None, why: Why::Rst };
            self.stats.segments_sent += 1;
            return Some(t);
        }
        if self.time_wait_until.is_some_and(|t| now >= t) {
            self.time_wait_until = None;
            self.state = State::Closed;
        }
        if self.state == State::Closed {
            return None;
        }
        if self.delack_deadline.is_some_and(|t| now >= t) {
            self.delack_deadline = None;
            self.ack_now = true;
        }
        if self.rto_deadline.is_some_and(|t| now >= t) {
            self.on_rto(now);
            if self.state == State::Closed {
                return None;
            }
        }
        let t = self.next_segment(now, &limit)?;
        self.count(&t);
        Some(t)
    }

    fn next_segment(&mut self, now: Instant, limit: &impl Fn(u64) -> u32) -> Option<Transmit> {
        // The handshake.
        if matches!(self.state, State::SynSent | State::SynReceived) && self.snd_nxt == 0 {
            let ack = self.state == State::SynReceived;
            let mut seg = self.segment(0, TcpFlags { syn: true, ack, ..Default::default() });
            seg.options.mss = Some(self.cfg.mss);
            seg.options.sack_permitted = self.cfg.sack && (!ack || self.stats.peer_sack_permitted);
            // A SYN-ACK scales only if the SYN asked to (RFC 7323 2.2).
            if !ack || self.stats.peer_window_scale.is_some() {
                seg.options.window_scale = Some(self.cfg.window_scale.min(14));
            }
            self.snd_nxt = 1;
            self.snd_max = self.snd_max.max(1);
            if self.stats.syns_sent == 0 {
                self.timing = Some((1, now));
            }
            self.rto_deadline = Some(now + self.rto.timeout());
            return Some(Transmit { segment: seg, payload: None, why: Why::Syn });
        }
        if matches!(self.state, State::SynSent | State::SynReceived) {
            return self.ack_now.then(|| self.pure_ack());
        }
        // Recovery by the scoreboard: the next hole, while the pipe leaves room.
        if self.sack_ok && self.in_recovery.is_some() && self.cc.cwnd() > self.pipe() {
            if let Some((a, b)) = self.scoreboard.next_hole(self.snd_una, self.rexmit_next) {
                if let Some(t) = self.data_segment(a, Why::Fast, b - a, limit) {
                    let len = t.payload.map_or(0, |p| p.1 as u64) + t.segment.flags.fin as u64;
                    self.rexmit_next = a + len.max(1);
                    if a == self.snd_una || self.rto_deadline.is_none() {
                        self.rto_deadline = Some(now + self.rto.timeout());
                    }
                    return Some(t);
                }
            }
        }
        // The hole at SND.UNA, after duplicate ACKs or a partial ACK.
        if std::mem::take(&mut self.retransmit_una) {
            if let Some(t) = self.data_segment(self.snd_una, Why::Fast, u64::MAX, limit) {
                self.rto_deadline = Some(now + self.rto.timeout());
                return Some(t);
            }
        }
        // A zero window: probe it when the persist timer says so.
        if self.persist_deadline.is_some_and(|t| now >= t) {
            self.persist_deadline = None;
            if self.snd_wnd == 0 && self.snd_nxt < self.data_end() {
                // As Linux probes (tcp_xmit_probe_skb): an ACK with the last
                // acknowledged number, outside the peer's window, which it
                // must answer with an ACK that says its window. No byte of new
                // data, so every segment keeps starting on an even offset
                // (a TX address with bit 0 set comes back cleared).
                let seg = self.segment(self.snd_una - 1, TcpFlags::ACK);
                self.persist_backoff += 1;
                let wait = self.rto.timeout().saturating_mul(1 << self.persist_backoff.min(10)).min(MAX_PERSIST);
                self.persist_deadline = Some(now + wait);
                return Some(Transmit { segment: seg, payload: None, why: Why::Probe });
            }
        }
        // Data, new or again after a timeout, as far as the windows let it.
        let sending = matches!(self.state, State::Established | State::CloseWait)
            || (matches!(self.state, State::FinWait1 | State::Closing | State::LastAck) && self.snd_nxt < self.snd_max);
        if sending && self.snd_nxt < self.data_end() {
            let usable = self.cc.cwnd().saturating_sub(self.pipe()).min(self.snd_wnd.saturating_sub(self.in_flight()));
            let why = if self.snd_nxt < self.snd_max { Why::Timeout } else { Why::New };
            // Silly window avoidance (RFC 9293 3.8.6.2.1): with bytes in flight, send
            // only a segment as full as the data and the caller's buffers allow.
            let full = (self.mss as u64).min(self.data_end() - self.snd_nxt).min(limit(self.snd_nxt - 1).max(1) as u64);
            if usable > 0 && (usable >= full || self.in_flight() == 0) {
                if let Some(t) = self.data_segment(self.snd_nxt, why, usable, limit) {
                    let (_, len) = t.payload.expect("a data segment");
                    let end = self.snd_nxt + len as u64 + t.segment.flags.fin as u64;
                    if why == Why::New && self.timing.is_none() {
                        self.timing = Some((end, now));
                    }
                    self.snd_nxt = end;
                    self.snd_max = self.snd_max.max(end);
                    if self.rto_deadline.is_none() {
                        self.rto_deadline = Some(now + self.rto.timeout());
                    }
                    if t.segment.flags.fin {
                        self.fin_sent();
                    }
                    return Some(t);
                }
            } else if self.snd_wnd == 0 && self.in_flight() == 0 && self.persist_deadline.is_none() {
                let wait = self.rto.timeout().saturating_mul(1 << self.persist_backoff.min(10)).min(MAX_PERSIST);
                self.persist_deadline = Some(now + wait);
            }
        }
        // The FIN alone (or again).
        if let Some(len) = self.stream_len {
            let fin_pos = 1 + len;
            let may =
                matches!(self.state, State::Established | State::CloseWait | State::FinWait1 | State::Closing | State::LastAck);
            if may && self.snd_nxt == fin_pos && self.available >= len {
                let seg = self.segment(fin_pos, TcpFlags { fin: true, ack: true, ..Default::default() });
                let why = if fin_pos < self.snd_max { Why::Timeout } else { Why::New };
                self.snd_nxt = fin_pos + 1;
                self.snd_max = self.snd_max.max(fin_pos + 1);
                if self.rto_deadline.is_none() {
                    self.rto_deadline = Some(now + self.rto.timeout());
                }
                self.fin_sent();
                return Some(Transmit { segment: seg, payload: None, why });
            }
        }
        self.ack_now.then(|| self.pure_ack())
    }

    /// Bytes taken to be in the network (RFC 6675's pipe): what is in flight,
    /// less what the peer SACKed and, in recovery, the holes below the highest
    /// SACK not yet sent again (taken as lost).
    pub(super) fn pipe(&self) -> u64 {
        if !self.sack_ok {
            return self.in_flight();
        }
        let mut p = self.in_flight().saturating_sub(self.scoreboard.sacked());
        if self.in_recovery.is_some() {
            p = p.saturating_sub(self.scoreboard.holes_from(self.snd_una, self.rexmit_next));
        }
        p
    }

    fn fin_sent(&mut self) {
        self.state = match self.state {
            State::Established => State::FinWait1,
            State::CloseWait => State::LastAck,
            s => s,
        };
    }

    fn pure_ack(&self) -> Transmit {
        Transmit { segment: self.segment(self.snd_nxt, TcpFlags::ACK), payload: None, why: Why::Ack }
    }

    /// A segment of the stream from position `pos`: at most an MSS, what the
    /// caller has ready, `room` bytes and what `limit` allows; with the FIN
    /// if it ends the stream. None if there is nothing at `pos` to send.
    fn data_segment(&self, pos: u64, why: Why, room: u64, limit: &impl Fn(u64) -> u32) -> Option<Transmit> {
        let end = self.data_end();
        if pos == 0 || pos >= end {
            // Only the FIN is left at `pos`: the FIN path sends it.
            if let Some(len) = self.stream_len {
                if pos == 1 + len && why != Why::New {
                    let seg = self.segment(pos, TcpFlags { fin: true, ack: true, ..Default::default() });
                    return Some(Transmit { segment: seg, payload: None, why });
                }
            }
            return None;
        }
        let off = pos - 1;
        let len = (self.mss as u64).min(end - pos).min(room).min(limit(off).max(1) as u64);
        if len == 0 {
            return None;
        }
        let mut seg = self.segment(pos, TcpFlags { ack: true, ..Default::default() });
        let last = self.stream_len.is_some_and(|l| off + len == l);
        seg.flags.psh = last || off + len == self.available;
        seg.flags.fin = last && matches!(self.state, State::Established | State::CloseWait | State::FinWait1 | State::LastAck);
        Some(Transmit { segment: seg, payload: Some((off, len as u32)), why })
    }
}
