//! The receiving side of a connection: the peer's data in order, ahead
//! of a hole (held by the caller where it landed, `reorder.rs` keeping the
//! record), again, and its FIN; the window this end offers (the caller's
//! room, never shrunk) and when to acknowledge (RFC 9293 3.10.7.4 seventh
//! and eighth, RFC 1122 4.2.3.2, RFC 5681 4.2).

use super::conn::{Connection, Incoming, State};
use std::time::Instant;

impl Connection {
    /// The receive window in bytes from RCV.NXT: the caller's offer, or the
    /// rest of what was advertised if that is more (RFC 9293 3.8.6: a window
    /// is not shrunk).
    pub(super) fn rcv_wnd(&self) -> u64 {
        self.rcv_right.saturating_sub(self.rcv_nxt).max(self.rcv_offer)
    }

    /// The caller can take `bytes` more from the peer (its free buffers).
    /// A window that opens from less than a segment to at least two is
    /// announced at once (a window update: RFC 9293 3.8.6.2.2's receiver
    /// side of silly window avoidance waits for that much).
    pub fn set_recv_window(&mut self, bytes: u64) {
        let before = self.rcv_right.saturating_sub(self.rcv_nxt);
        self.rcv_offer = bytes;
        let synced = !matches!(self.state, State::SynSent | State::SynReceived | State::Closed);
        if synced && before < self.mss as u64 && bytes >= 2 * self.mss as u64 {
            self.ack_now = true;
        }
    }

    /// An ACK is due now (it goes with the next poll).
    pub fn ack_pending(&self) -> bool {
        self.ack_now
    }

    /// The peer's stream bytes taken in order so far.
    pub fn received_bytes(&self) -> u64 {
        self.rcv_nxt.saturating_sub(1 + self.peer_fin as u64)
    }

    /// The peer's FIN has come, in order: its stream is complete.
    pub fn peer_closed(&self) -> bool {
        self.peer_fin
    }

    /// Bytes held ahead of RCV.NXT.
    pub fn held_bytes(&self) -> u64 {
        self.reorder.held()
    }

    /// The peer's data at `seg_pos` (RFC 9293 3.10.7.4, seventh): what
    /// continues the stream is taken now, as far as the window and the
    /// first byte already held allow (the first copy wins); what lies ahead
    /// is kept by the caller (`Incoming::ahead`) until the hole before it fills.
    pub(super) fn take_data(&mut self, seg_pos: u64, payload_len: usize, wnd: u64, now: Instant, inc: &mut Incoming) {
        let end = (seg_pos + payload_len as u64).min(self.rcv_nxt + wnd);
        if seg_pos <= self.rcv_nxt {
            if end <= self.rcv_nxt {
                // All of it came before (the ACK that said so was lost, or it went again
                // too soon), or a probe of a closed window: the ACK says where we are.
                if seg_pos + (payload_len as u64) <= self.rcv_nxt {
                    self.stats.duplicate_segments += 1;
                }
                self.ack_now = true;
                return;
            }
            let stop = self.reorder.first_start().map_or(end, |h| end.min(h.max(self.rcv_nxt)));
            let skip = (self.rcv_nxt - seg_pos) as usize;
            if stop > self.rcv_nxt {
                inc.data = Some((skip, (stop - self.rcv_nxt) as usize));
                self.rcv_nxt = stop;
            }
            let had_held = !self.reorder.is_empty();
            let before = self.rcv_nxt;
            self.rcv_nxt = self.reorder.advance(self.rcv_nxt);
            if self.rcv_nxt > before {
                inc.released = Some((before - 1, self.rcv_nxt - 1));
                inc.news = true;
            }
            if self.fin_ahead == Some(self.rcv_nxt) {
                self.take_fin(now, inc);
            }
            match self.cfg.delayed_ack {
                // A hole filled, or one still open: the sender waits on this ACK (RFC 5681 4.2).
                _ if had_held => self.ack_now = true,
                None => self.ack_now = true,
                Some(delay) => {
                    if payload_len as u32 >= self.mss {
                        self.unacked_segments += 1;
                    }
                    if self.unacked_segments >= 2 {
                        self.ack_now = true;
                    } else if self.delack_deadline.is_none() {
                        self.delack_deadline = Some(now + delay);
                    }
                }
            }
        } else {
            // Ahead of RCV.NXT: held, and a duplicate ACK with SACK blocks at once (RFC 5681 4.2).
            // News for the sender: a block of its own, or one that is not the block last
            // reported first (a batched ACK names only four, the newest first).
            let extends_newest = self.reorder.newest().is_some_and(|(a, b)| seg_pos >= a && seg_pos <= b);
            for (a, b) in self.reorder.insert(seg_pos, end.max(seg_pos)) {
                inc.ahead.push((a - 1, (a - seg_pos) as usize, (b - a) as usize));
            }
            inc.news = !extends_newest;
            if inc.ahead.is_empty() {
                self.stats.duplicate_segments += 1;
            } else {
                self.stats.out_of_order_segments += 1;
            }
            self.stats.out_of_order_peak_bytes = self.stats.out_of_order_peak_bytes.max(self.reorder.held());
            self.ack_now = true;
        }
    }

    /// The peer's FIN, in order: its stream is complete.
    pub(super) fn take_fin(&mut self, now: Instant, inc: &mut Incoming) {
        self.rcv_nxt += 1;
        self.peer_fin = true;
        self.fin_ahead = None;
        self.ack_now = true;
        inc.fin = true;
        self.state = match self.state {
            State::Established | State::SynReceived => State::CloseWait,
            State::FinWait1 => State::Closing,
            State::FinWait2 => State::TimeWait,
            s => s,
        };
        if self.state == State::TimeWait {
            self.time_wait_until = Some(now + self.cfg.time_wait);
        }
    }
}
