//! One TCP connection's state, and what it does with a segment that comes
//! in (RFC 9293 3.10.7, with RFC 5961's checks on RSTs, SYNs and ACKs).
//!
//! The connection does no I/O and keeps no payload: it is told what came
//! in and when, and says what to send (`output.rs`), naming the bytes of
//! the stream each segment carries. The payload stays wherever the caller
//! keeps it (for the af-xdp-tcp sender, the UMEM frames the disk read it
//! into) until [`Connection::acked_bytes`] passes it.
//!
//! Positions: sequence space counted from the SYN as a u64, so that no
//! comparison wraps. Position 0 is the SYN, 1 + k the stream's byte k, and
//! 1 + len the FIN; a sequence number is `iss + position` on the wire. An
//! incoming number becomes a position by its distance from a known one.

use super::congestion::NewReno;
use super::reorder::Reorder;
use super::rto::Rto;
use super::sack::Scoreboard;
use crate::wire::TcpSegment;
use std::time::{Duration, Instant};

/// RFC 9293 3.7.1: what a peer that sends no MSS option is taken to accept.
pub const DEFAULT_PEER_MSS: u16 = 536;

/// What a connection is set to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub local_port: u16,
    pub remote_port: u16,
    /// The largest segment this end takes (advertised in its SYN), and sends:
    /// the MTU less the IP and TCP headers.
    pub mss: u16,
    /// The window scale this end asks for (RFC 7323), applied to the window
    /// it advertises if the peer asks for one too.
    pub window_scale: u8,
    /// Bytes this end can take from the peer at once.
    pub recv_window: u32,
    /// The initial sequence number.
    pub iss: u32,
    /// SYNs (or SYN-ACKs) sent again before giving up.
    pub syn_retries: u32,
    /// Expiries of the retransmission timer in a row before giving up.
    pub max_retransmits: u32,
    pub min_rto: Duration,
    /// How long TIME-WAIT answers a FIN sent again.
    pub time_wait: Duration,
    /// Offer SACK (RFC 2018) and, if the peer takes it, recover by its scoreboard (RFC 6675).
    pub sack: bool,
    /// Delay the ACK of data in order: at once for every second full segment,
    /// else after this long (RFC 1122 4.2.3.2, RFC 5681 4.2). None: every
    /// segment with data is acknowledged at once.
    pub delayed_ack: Option<Duration>,
}

impl Config {
    pub fn new(local_port: u16, remote_port: u16, mss: u16, iss: u32) -> Config {
        Config {
            local_port,
            remote_port,
            mss,
            window_scale: 7,
            recv_window: 1 << 20,
            iss,
            syn_retries: 5,
            max_retransmits: 10,
            min_rto: super::rto::DEFAULT_MIN_RTO,
            time_wait: Duration::from_millis(500),
            sack: true,
            delayed_ack: None,
        }
    }
}

/// RFC 9293's states (LISTEN is the caller's: a SYN it hands to [`Connection::accept`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
    Closed,
}

/// Why a connection ended badly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    #[error("no answer after {syns} SYNs")]
    NoAnswer { syns: u32 },
    #[error("connection refused (the peer answered the SYN with a reset)")]
    Refused,
    #[error("connection reset by the peer after it had acknowledged {acked} bytes")]
    Reset { acked: u64 },
    #[error("the peer stopped acknowledging: {retransmits} timeouts in a row, {acked} bytes acknowledged")]
    TimedOut { retransmits: u32, acked: u64 },
}

/// What a segment that came in meant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    /// The peer's data in order, as (offset in the segment's payload, length):
    /// the caller takes these bytes now.
    pub data: Option<(usize, usize)>,
    /// The handshake completed with this segment.
    pub connected: bool,
    /// The peer's FIN arrived (in order) with this segment, or held bytes
    /// this segment released reached it.
    pub fin: bool,
    /// Parts of the segment that lie ahead of what arrived in order, as
    /// (stream offset, offset in the segment's payload, length): the caller
    /// keeps these bytes until `released` covers them.
    pub ahead: Vec<(u64, usize, usize)>,
    /// Bytes kept earlier are in order now: the stream offsets `[from, to)`.
    pub released: Option<(u64, u64)>,
    /// What the peer must hear at once changed: a new hole opened (the segment
    /// began a block of its own), or one filled. A receiver that batches
    /// its ACKs sends one for this segment alone.
    pub news: bool,
    /// Dropped, and why (counted).
    pub dropped: Option<Drop>,
}

/// A segment counted and dropped, never acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// An ACK for data never sent (RFC 5961 5.2): answered with an ACK.
    AckOfUnsent,
    /// An ACK older than the window can explain.
    AckTooOld,
    /// A segment outside the receive window: answered with an ACK.
    OutsideWindow,
    /// An RST whose number is not exactly the next expected (RFC 5961 3.2):
    /// in the window it gets a challenge ACK, outside it nothing.
    RstNotExact,
    /// A SYN on a synchronized connection (RFC 5961 4.2): a challenge ACK.
    UnexpectedSyn,
    /// A SYN-ACK that does not acknowledge our SYN: answered with an RST.
    BadSynAck,
    /// Anything else a state does not take (no ACK bit, data before the handshake).
    Unexpected,
}

/// What a connection counted, for the report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TcpStats {
    pub segments_sent: u64,
    pub segments_received: u64,
    /// Payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    pub retransmits_fast: u64,
    pub retransmits_timeout: u64,
    /// Expiries of the retransmission timer.
    pub rto_fired: u64,
    pub dup_acks: u64,
    pub fast_recoveries: u64,
    pub zero_window_probes: u64,
    pub syns_sent: u64,
    pub challenge_acks: u64,
    pub dropped: u64,
    pub dropped_ack_of_unsent: u64,
    pub dropped_outside_window: u64,
    pub dropped_rst_not_exact: u64,
    pub largest_cwnd: u64,
    pub recovery_s: f64,
    pub srtt_us: Option<u64>,
    /// The peer's MSS and window scale, and whether it allows SACK.
    pub peer_mss: u16,
    pub peer_window_scale: Option<u8>,
    pub peer_sack_permitted: bool,
    /// Both ends allowed SACK: recovery went by the scoreboard.
    pub sack: bool,
    pub largest_peer_window: u64,
    // The receiving side.
    /// Segments with data that arrived ahead of RCV.NXT, and the most bytes held at once.
    pub out_of_order_segments: u64,
    pub out_of_order_peak_bytes: u64,
    /// Segments whose every byte had arrived before.
    pub duplicate_segments: u64,
    /// ACKs sent alone (no data), and SACK blocks in them.
    pub acks_sent: u64,
    pub sack_blocks_sent: u64,
    /// The window this end advertised once synchronized, smallest and largest (bytes),
    /// and how many times it was zero.
    pub window_min: Option<u64>,
    pub window_max: u64,
    pub zero_windows_sent: u64,
}

/// One TCP connection, sans I/O.
#[derive(Debug)]
pub struct Connection {
    pub(super) cfg: Config,
    pub(super) state: State,
    pub(super) error: Option<TcpError>,
    pub(super) iss: u32,
    pub(super) irs: u32,
    // Send side, positions (see the file's head).
    pub(super) snd_una: u64,
    pub(super) snd_nxt: u64,
    pub(super) snd_max: u64,
    /// The peer's window in bytes (scaled), from the segment named by wl1, wl2.
    pub(super) snd_wnd: u64,
    pub(super) max_snd_wnd: u64,
    pub(super) snd_wl1: u64,
    pub(super) snd_wl2: u64,
    pub(super) peer_scale: u8,
    pub(super) our_scale: u8,
    pub(super) mss: u32,
    /// Stream bytes the caller has ready to send, and its length once known.
    pub(super) available: u64,
    pub(super) stream_len: Option<u64>,
    // Receive side: the peer's positions.
    pub(super) rcv_nxt: u64,
    pub(super) peer_fin: bool,
    /// What arrived ahead of RCV.NXT, and where the peer's FIN is if it came ahead.
    pub(super) reorder: Reorder,
    pub(super) fin_ahead: Option<u64>,
    /// The window the caller can take now, and the right edge advertised
    /// (RCV.NXT + RCV.WND when last sent), which never moves left (RFC 9293 3.8.6).
    pub(super) rcv_offer: u64,
    pub(super) rcv_right: u64,
    /// Full segments in order not yet acknowledged, and when the delayed ACK is due.
    pub(super) unacked_segments: u32,
    pub(super) delack_deadline: Option<Instant>,
    // Timers.
    pub(super) rto: Rto,
    pub(super) rto_deadline: Option<Instant>,
    pub(super) persist_deadline: Option<Instant>,
    pub(super) persist_backoff: u32,
    pub(super) time_wait_until: Option<Instant>,
    /// Expiries in a row without an ACK of new data.
    pub(super) timeouts: u32,
    /// Karn: the position whose ACK times the round trip, and when it left.
    pub(super) timing: Option<(u64, Instant)>,
    // Loss recovery.
    pub(super) cc: NewReno,
    pub(super) dup_acks: u32,
    pub(super) recover: u64,
    pub(super) in_recovery: Option<Instant>,
    /// Send the segment at `snd_una` again before anything new (a fast retransmit,
    /// or the next hole after a partial ACK).
    pub(super) retransmit_una: bool,
    /// Both ends allow SACK: the scoreboard of what the peer holds above SND.UNA,
    /// and in recovery the next position to look for a hole from.
    pub(super) sack_ok: bool,
    pub(super) scoreboard: Scoreboard,
    pub(super) rexmit_next: u64,
    // What to send besides data.
    pub(super) ack_now: bool,
    pub(super) rst_to_send: Option<u32>,
    pub(super) stats: TcpStats,
}

impl Connection {
    fn new(cfg: Config, state: State, now: Instant) -> Connection {
        let _ = now;
        let rto = Rto::new(cfg.min_rto);
        let mss = cfg.mss as u32;
        Connection {
            iss: cfg.iss,
            irs: 0,
            state,
            error: None,
            snd_una: 0,
            snd_nxt: 0,
            snd_max: 0,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: 0,
            peer_scale: 0,
            our_scale: 0,
            mss,
            available: 0,
            stream_len: None,
            rcv_nxt: 0,
            peer_fin: false,
            reorder: Reorder::default(),
            fin_ahead: None,
            rcv_offer: cfg.recv_window as u64,
            rcv_right: 0,
            unacked_segments: 0,
            delack_deadline: None,
            rto,
            rto_deadline: None,
            persist_deadline: None,
            persist_backoff: 0,
            time_wait_until: None,
            timeouts: 0,
            timing: None,
            cc: NewReno::new(mss),
            dup_acks: 0,
            recover: 0,
            in_recovery: None,
            retransmit_una: false,
            sack_ok: false,
            scoreboard: Scoreboard::default(),
            rexmit_next: 0,
            ack_now: false,
            rst_to_send: None,
            stats: TcpStats::default(),
            cfg,
        }
    }

    /// Active open: the SYN goes out at the first [`Connection::poll_transmit`].
    pub fn connect(cfg: Config, now: Instant) -> Connection {
        Connection::new(cfg, State::SynSent, now)
    }

    /// Passive open from a SYN that came to a listening port: the SYN-ACK
    /// goes out at the first poll. None if `syn` is not a plain SYN.
    pub fn accept(cfg: Config, syn: &TcpSegment, now: Instant) -> Option<Connection> {
        if !syn.flags.syn || syn.flags.ack || syn.flags.rst || syn.flags.fin {
            return None;
        }
        let mut c = Connection::new(cfg, State::SynReceived, now);
        c.irs = syn.seq;
        c.rcv_nxt = 1;
        c.take_syn_options(syn);
        // The window of a SYN is never scaled.
        c.snd_wnd = syn.window as u64;
        c.max_snd_wnd = c.snd_wnd;
        Some(c)
    }

    fn take_syn_options(&mut self, syn: &TcpSegment) {
        let o = &syn.options;
        let peer_mss = o.mss.unwrap_or(DEFAULT_PEER_MSS);
        // Even: every segment then starts on an even offset of the stream
        // (the completion ring clears bit 0 of a TX address).
        self.mss = (self.cfg.mss.min(peer_mss) as u32).max(64) & !1;
        self.cc = NewReno::new(self.mss);
        // RFC 7323 2.2: both ends scale only if both sent the option.
        if let Some(shift) = o.window_scale {
            self.peer_scale = shift.min(14);
            self.our_scale = self.cfg.window_scale.min(14);
        }
        self.stats.peer_mss = peer_mss;
        self.stats.peer_window_scale = o.window_scale;
        self.stats.peer_sack_permitted = o.sack_permitted;
        self.sack_ok = self.cfg.sack && o.sack_permitted;
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn error(&self) -> Option<&TcpError> {
        self.error.as_ref()
    }

    /// The segment size this connection sends (the smaller of both ends' MSS).
    pub fn mss(&self) -> u32 {
        self.mss
    }

    /// Stream bytes the peer has acknowledged: the caller may let go of them.
    pub fn acked_bytes(&self) -> u64 {
        self.snd_una.saturating_sub(1).min(self.stream_len.unwrap_or(u64::MAX))
    }

    /// The caller has the stream's bytes up to `bytes` ready to send.
    pub fn set_available(&mut self, bytes: u64) {
        self.available = self.available.max(bytes);
    }

    /// The stream ends after `len` bytes: a FIN follows them.
    pub fn close_after(&mut self, len: u64) {
        self.stream_len = Some(len);
    }

    /// An ICMP destination unreachable quoted this connection's segment with
    /// sequence number `seq`. For the SYN it means no one takes it: refused
    /// (RFC 1122 4.2.3.9, a hard error). Later ones are soft errors, left to
    /// the timers. Returns whether it ended the connection.
    pub fn on_unreachable(&mut self, seq: u32) -> bool {
        if self.state == State::SynSent && seq == self.iss {
            self.fail(TcpError::Refused);
            return true;
        }
        false
    }

    /// Gives up on the connection (Ctrl-C): the next poll sends the peer an
    /// RST with the next sequence number, so it does not wait on a dead end.
    pub fn abort(&mut self) {
        if !matches!(self.state, State::Closed | State::SynSent | State::TimeWait) {
            self.rst_to_send = Some(self.seq(self.snd_nxt));
        }
        self.state = State::Closed;
        self.rto_deadline = None;
        self.persist_deadline = None;
    }

    /// Every byte and the FIN acknowledged, and the peer's FIN taken: the
    /// connection did all it was for (TIME-WAIT may still linger).
    pub fn is_done(&self) -> bool {
        self.error.is_none() && matches!(self.state, State::TimeWait | State::Closed)
    }

    pub fn stats(&self) -> TcpStats {
        let mut s = self.stats.clone();
        s.largest_cwnd = self.cc.largest();
        s.srtt_us = self.rto.srtt().map(|d| d.as_micros() as u64);
        s.sack = self.sack_ok;
        s
    }

    pub fn cwnd(&self) -> u64 {
        self.cc.cwnd()
    }

    /// Bytes sent and not yet acknowledged.
    pub fn in_flight(&self) -> u64 {
        self.snd_nxt.saturating_sub(self.snd_una)
    }

    /// The peer's window now, in bytes.
    pub fn peer_window(&self) -> u64 {
        self.snd_wnd
    }

    /// The wire's sequence number of a send position.
    pub(super) fn seq(&self, pos: u64) -> u32 {
        self.iss.wrapping_add(pos as u32)
    }

    /// The peer's position of a sequence number near `near`.
    fn peer_pos(&self, seq: u32, near: u64) -> u64 {
        let d = seq.wrapping_sub(self.irs.wrapping_add(near as u32)) as i32 as i64;
        (near as i64 + d).max(0) as u64
    }

    /// The send position an acknowledgment number names, near `snd_una`.
    fn ack_pos(&self, ack: u32) -> i64 {
        let d = ack.wrapping_sub(self.seq(self.snd_una)) as i32 as i64;
        self.snd_una as i64 + d
    }

    /// The window this end advertises, as the field says it (scaled down):
    /// what the caller can take, but never an edge left of one advertised before.
    pub(super) fn window_field(&self) -> u16 {
        (self.rcv_wnd() >> self.window_shift()).min(u16::MAX as u64) as u16
    }

    /// The shift of the window field: none in a SYN or SYN-ACK (RFC 7323 2.2).
    pub(super) fn window_shift(&self) -> u8 {
        if self.state == State::SynReceived || self.state == State::SynSent {
            0
        } else {
            self.our_scale
        }
    }

    pub(super) fn fail(&mut self, e: TcpError) {
        self.error = Some(e);
        self.state = State::Closed;
        self.rto_deadline = None;
        self.persist_deadline = None;
    }

    fn drop_seg(&mut self, why: Drop, mut inc: Incoming) -> Incoming {
        self.stats.dropped += 1;
        match why {
            Drop::AckOfUnsent => self.stats.dropped_ack_of_unsent += 1,
            Drop::OutsideWindow => self.stats.dropped_outside_window += 1,
            Drop::RstNotExact => self.stats.dropped_rst_not_exact += 1,
            _ => {}
        }
        inc.dropped = Some(why);
        inc
    }

    /// A segment of this connection's 4-tuple came in, its checksum good,
    /// with `payload_len` bytes of payload.
    pub fn on_segment(&mut self, seg: &TcpSegment, payload_len: usize, now: Instant) -> Incoming {
        self.stats.segments_received += 1;
        let inc = Incoming::default();
        match self.state {
            State::Closed => inc,
            State::SynSent => self.on_syn_sent(seg, payload_len, now),
            _ => self.on_synchronized(seg, payload_len, now),
        }
    }

    fn on_syn_sent(&mut self, seg: &TcpSegment, payload_len: usize, now: Instant) -> Incoming {
        let mut inc = Incoming::default();
        let f = seg.flags;
        if f.ack && seg.ack != self.seq(1) {
            // Not an answer to our SYN (RFC 9293 3.10.7.3): reset it, unless it is a reset.
            if !f.rst {
                self.rst_to_send = Some(seg.ack);
            }
            return self.drop_seg(Drop::BadSynAck, inc);
        }
        if f.rst {
            if f.ack {
                self.fail(TcpError::Refused);
                return inc;
            }
            return self.drop_seg(Drop::RstNotExact, inc);
        }
        if !f.syn || !f.ack {
            return self.drop_seg(Drop::Unexpected, inc);
        }
        self.irs = seg.seq;
        self.rcv_nxt = 1;
        self.take_syn_options(seg);
        self.snd_una = 1;
        self.snd_nxt = self.snd_nxt.max(1);
        self.snd_wnd = seg.window as u64;
        self.max_snd_wnd = self.snd_wnd;
        self.stats.largest_peer_window = self.snd_wnd;
        self.snd_wl1 = 0;
        self.snd_wl2 = 1;
        if let Some((pos, sent)) = self.timing.take() {
            if pos <= 1 {
                self.rto.sample(now.duration_since(sent));
            }
        }
        self.rto_deadline = None;
        self.timeouts = 0;
        self.state = State::Established;
        self.ack_now = true;
        inc.connected = true;
        let _ = payload_len;
        inc
    }

    fn on_synchronized(&mut self, seg: &TcpSegment, payload_len: usize, now: Instant) -> Incoming {
        let mut inc = Incoming::default();
        let f = seg.flags;
        let seg_pos = self.peer_pos(seg.seq, self.rcv_nxt);
        let seg_len = seg.seq_len(payload_len) as u64;
        let wnd = self.rcv_wnd();
        // RFC 9293 3.10.7.4, first: is the segment in the window?
        let in_window = |start: u64| start >= self.rcv_nxt && start < self.rcv_nxt + wnd.max(1);
        let acceptable = if seg_len == 0 {
            seg_pos == self.rcv_nxt || in_window(seg_pos)
        } else if wnd == 0 {
            // A closed window takes no data (RFC 9293 3.10.7.4's table): an ACK says where
            // it stands. A FIN alone at RCV.NXT takes no room, and is taken (as Linux does).
            payload_len == 0 && seg_pos == self.rcv_nxt
        } else {
            in_window(seg_pos) || in_window(seg_pos + seg_len - 1) || (seg_pos < self.rcv_nxt && seg_pos + seg_len > self.rcv_nxt)
        };
        if f.rst {
            // RFC 5961 3.2: only the exact next number resets; one in the window is challenged.
            if seg.seq == self.irs.wrapping_add(self.rcv_nxt as u32) {
                let acked = self.acked_bytes();
                if self.state == State::SynReceived {
                    self.fail(TcpError::Refused);
                } else {
                    self.fail(TcpError::Reset { acked });
                }
                return inc;
            }
            if in_window(seg_pos) {
                self.ack_now = true;
                self.stats.challenge_acks += 1;
            }
            return self.drop_seg(Drop::RstNotExact, inc);
        }
        if !acceptable {
            if payload_len > 0 && seg_pos + seg_len <= self.rcv_nxt {
                // Every byte came before: the ACK that said so was lost, or it went again too soon.
                self.stats.duplicate_segments += 1;
            }
            self.ack_now = true;
            return self.drop_seg(Drop::OutsideWindow, inc);
        }
        if f.syn {
            if self.state == State::SynReceived && seg.seq == self.irs {
                // The peer sent its SYN again: our SYN-ACK was lost; it goes again.
                self.ack_now = true;
                return inc;
            }
            self.ack_now = true;
            self.stats.challenge_acks += 1;
            return self.drop_seg(Drop::UnexpectedSyn, inc);
        }
        if !f.ack {
            return self.drop_seg(Drop::Unexpected, inc);
        }
        // The ACK (RFC 5961 5.2: between SND.UNA - MAX.SND.WND and SND.MAX).
        let ack = self.ack_pos(seg.ack);
        if ack > self.snd_max as i64 {
            self.ack_now = true;
            return self.drop_seg(Drop::AckOfUnsent, inc);
        }
        if ack < self.snd_una as i64 - self.max_snd_wnd.max(1) as i64 {
            self.ack_now = true;
            return self.drop_seg(Drop::AckTooOld, inc);
        }
        if self.state == State::SynReceived {
            if ack < 1 {
                self.rst_to_send = Some(seg.ack);
                return self.drop_seg(Drop::BadSynAck, inc);
            }
            self.state = State::Established;
            self.snd_wl1 = seg_pos;
            self.snd_wl2 = ack as u64;
            inc.connected = true;
        }
        self.on_ack(seg, ack.max(0) as u64, seg_pos, payload_len, now);
        if self.state == State::Closed {
            return inc;
        }
        if payload_len > 0 {
            self.take_data(seg_pos, payload_len, wnd, now, &mut inc);
        }
        if f.fin && !self.peer_fin {
            let fin_pos = seg_pos + payload_len as u64;
            if fin_pos == self.rcv_nxt {
                self.take_fin(now, &mut inc);
            } else if fin_pos > self.rcv_nxt && fin_pos <= self.rcv_nxt + wnd {
                // Ahead of a hole: taken when RCV.NXT reaches it.
                self.fin_ahead = Some(fin_pos);
                self.ack_now = true;
            }
        } else if f.fin && self.peer_fin {
            // A FIN sent again: our ACK of it was lost.
            self.ack_now = true;
        }
        inc
    }

    /// The ACK field of an acceptable segment (RFC 5681, RFC 6582, RFC 6298).
    fn on_ack(&mut self, seg: &TcpSegment, ack: u64, seg_pos: u64, payload_len: usize, now: Instant) {
        let sacked_before = self.scoreboard.sacked();
        if self.sack_ok {
            // RFC 2018: blocks above the cumulative ACK and below SND.MAX; others (a
            // D-SACK below it, or one past what was sent) are left out.
            for &(left, right) in &seg.options.sack {
                let (l, r) = (self.ack_pos(left), self.ack_pos(right));
                if l >= ack as i64 && r <= self.snd_max as i64 && l < r {
                    self.scoreboard.add(l as u64, r as u64);
                }
            }
            self.scoreboard.prune(ack);
        }
        let window = (seg.window as u64) << self.peer_scale;
        let window_changed = window != self.snd_wnd;
        // The window, from the newest segment (RFC 9293 3.10.7.4, fifth).
        if self.snd_wl1 < seg_pos || (self.snd_wl1 == seg_pos && self.snd_wl2 <= ack) {
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.stats.largest_peer_window = self.stats.largest_peer_window.max(window);
            self.snd_wl1 = seg_pos;
            self.snd_wl2 = ack;
            if window > 0 {
                self.persist_deadline = None;
                self.persist_backoff = 0;
            }
        }
        if ack > self.snd_una {
            let acked = ack - self.snd_una;
            let flight = self.snd_max - self.snd_una;
            self.snd_una = ack;
            self.snd_nxt = self.snd_nxt.max(ack);
            self.dup_acks = 0;
            self.timeouts = 0;
            // Karn: time only what was sent once.
            if let Some((pos, sent)) = self.timing {
                if ack >= pos {
                    self.rto.sample(now.duration_since(sent));
                    self.timing = None;
                }
            }
            match self.in_recovery {
                Some(since) if ack >= self.recover => {
                    self.cc.on_full_ack(self.snd_max - self.snd_una);
                    self.stats.recovery_s += now.duration_since(since).as_secs_f64();
                    self.in_recovery = None;
                }
                Some(_) if self.sack_ok => {
                    // RFC 6675: the scoreboard, not the ACK, says what to send next.
                    self.rexmit_next = self.rexmit_next.max(ack);
                }
                Some(_) => {
                    // A partial ACK: the next hole goes at once (RFC 6582 step 5).
                    self.cc.on_partial_ack(acked);
                    self.retransmit_una = true;
                }
                None => self.cc.on_ack(acked.min(flight)),
            }
            // (5.2, 5.3): the timer runs while anything is unacknowledged.
            self.rto_deadline = (self.snd_una < self.snd_max).then(|| now + self.rto.timeout());
            self.on_fin_acked(now);
        } else if ack == self.snd_una
            && payload_len == 0
            && !seg.flags.fin
            && !window_changed
            && self.snd_wnd > 0
            && self.snd_nxt > self.snd_una
        {
            // A duplicate ACK (RFC 5681 2).
            self.dup_acks += 1;
            self.stats.dup_acks += 1;
            if self.in_recovery.is_some() {
                if !self.sack_ok {
                    self.cc.on_dup_ack_in_recovery();
                }
            } else if self.sack_ok {
                // Entered below, by the scoreboard or the count.
            } else if self.dup_acks == 3 && self.snd_una >= self.recover {
                // Fast retransmit, and NewReno's recovery until all sent now is acknowledged
                // (RFC 6582 3.2 step 2: only if the ACK covers the last recovery's point).
                self.cc.on_fast_retransmit(self.snd_max - self.snd_una);
                self.recover = self.snd_max;
                self.in_recovery = Some(now);
                self.stats.fast_recoveries += 1;
                self.retransmit_una = true;
                self.timing = None;
            }
        }
        // SACK's way in (RFC 6675 5): three duplicates, or three segments' worth
        // SACKed above SND.UNA (the byte at SND.UNA is then taken as lost).
        let sack_says = self.scoreboard.sacked() >= 3 * self.mss as u64 && self.scoreboard.sacked() > sacked_before;
        if self.sack_ok
            && self.in_recovery.is_none()
            && self.snd_una >= self.recover
            && self.snd_max > self.snd_una
            && (self.dup_acks >= 3 || sack_says)
        {
            self.cc.on_sack_recovery(self.snd_max - self.snd_una);
            self.recover = self.snd_max;
            self.rexmit_next = self.snd_una;
            self.in_recovery = Some(now);
            self.stats.fast_recoveries += 1;
            self.timing = None;
        }
    }

    /// The FIN's ACK moves the closing states on.
    fn on_fin_acked(&mut self, now: Instant) {
        let Some(len) = self.stream_len else { return };
        if self.snd_una < len + 2 {
            return;
        }
        self.rto_deadline = None;
        self.state = match self.state {
            State::FinWait1 => State::FinWait2,
            State::Closing => {
                self.time_wait_until = Some(now + self.cfg.time_wait);
                State::TimeWait
            }
            State::LastAck => State::Closed,
            s => s,
        };
    }
}
