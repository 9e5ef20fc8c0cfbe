//! The receiving side, segment by segment: a peer's data in order, ahead
//! of a hole, again, and its FIN, played into a connection opened passively,
//! and the ACKs, SACK blocks and windows that come back.

use super::*;
use crate::wire::{TcpFlags, TcpOptions, TcpSegment};
use std::time::{Duration, Instant};

const ISS: u32 = 7000;
const PEER_ISS: u32 = 0xffff_ff00; // the peer's numbers wrap within the first segment
const MSS: u16 = 1000;
const DELAY: Duration = Duration::from_millis(40);

fn drain(c: &mut Connection, now: Instant) -> Vec<Transmit> {
    std::iter::from_fn(|| c.poll_transmit(now, |_| u32::MAX)).take(1000).collect()
}

/// The peer's segment whose first byte is its stream's byte `at`.
fn data(at: u64, flags: TcpFlags) -> TcpSegment {
    TcpSegment {
        src_port: 40000,
        dst_port: 80,
        seq: PEER_ISS.wrapping_add(1).wrapping_add(at as u32),
        ack: ISS.wrapping_add(1),
        flags: TcpFlags { ack: true, ..flags },
        window: 502,
        options: TcpOptions::default(),
    }
}

/// A receiver past the handshake (SACK and window scale agreed), its ACKs
/// delayed, taking `window` bytes.
fn receiver(t0: Instant, window: u32) -> Connection {
    let mut syn = data(0, TcpFlags { syn: true, ..Default::default() });
    syn.seq = PEER_ISS;
    syn.flags.ack = false;
    syn.ack = 0;
    syn.options = TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, ..Default::default() };
    let mut cfg = Config::new(80, 40000, MSS, ISS);
    cfg.delayed_ack = Some(DELAY);
    cfg.recv_window = window;
    let mut c = Connection::accept(cfg, &syn, t0).unwrap();
    let sa = drain(&mut c, t0);
    assert!(sa[0].segment.options.sack_permitted);
    assert!(c.on_segment(&data(0, TcpFlags::default()), 0, t0).connected);
    c
}

/// The cumulative ACK a segment carries, as the peer's stream offset.
fn acked(t: &Transmit) -> u64 {
    t.segment.ack.wrapping_sub(PEER_ISS.wrapping_add(1)) as u64
}

/// The SACK blocks of a segment, as the peer's stream offsets.
fn blocks(t: &Transmit) -> Vec<(u64, u64)> {
    let off = |s: u32| s.wrapping_sub(PEER_ISS.wrapping_add(1)) as u64;
    t.segment.options.sack.iter().map(|&(a, b)| (off(a), off(b))).collect()
}

#[test]
fn data_in_order_is_acknowledged_every_second_segment_or_after_the_delay() {
    let t0 = Instant::now();
    let mut c = receiver(t0, 64_000);
    let inc = c.on_segment(&data(0, TcpFlags::default()), 1000, t0);
    assert_eq!(inc.data, Some((0, 1000)));
    assert!(drain(&mut c, t0).is_empty(), "one full segment waits for a second");
    c.on_segment(&data(1000, TcpFlags::default()), 1000, t0);
    let out = drain(&mut c, t0);
    assert_eq!(out.len(), 1);
    assert_eq!(acked(&out[0]), 2000);
    // A third segment alone is acknowledged when the delay is over, not before.
    c.on_segment(&data(2000, TcpFlags::default()), 1000, t0);
    assert_eq!(c.poll_deadline(), Some(t0 + DELAY));
    assert!(drain(&mut c, t0 + DELAY / 2).is_empty());
    let out = drain(&mut c, t0 + DELAY);
    assert_eq!((out.len(), acked(&out[0])), (1, 3000));
    assert_eq!(c.received_bytes(), 3000);
    assert_eq!(c.stats().acks_sent, 2);
}

#[test]
fn data_ahead_is_held_acknowledged_at_once_with_sack_and_released_when_the_hole_fills() {
    let t0 = Instant::now();
    let mut c = receiver(t0, 64_000);
    c.on_segment(&data(0, TcpFlags::default()), 1000, t0);
    // 1000..2000 is lost; 2000..3000 and 4000..5000 come.
    let inc = c.on_segment(&data(2000, TcpFlags::default()), 1000, t0);
    assert_eq!((inc.data, inc.ahead.clone()), (None, vec![(2000, 0, 1000)]));
    let out = drain(&mut c, t0);
    assert_eq!(out.len(), 1, "a duplicate ACK at once");
    assert_eq!((acked(&out[0]), blocks(&out[0])), (1000, vec![(2000, 3000)]));
    c.on_segment(&data(4000, TcpFlags::default()), 1000, t0);
    let out = drain(&mut c, t0);
    assert_eq!(blocks(&out[0]), vec![(4000, 5000), (2000, 3000)], "the newest block first");
    // A copy that overlaps what is held: only its new part is taken (the first copy wins).
    let inc = c.on_segment(&data(2500, TcpFlags::default()), 1000, t0);
    assert_eq!(inc.ahead, vec![(3000, 500, 500)]);
    // The hole fills: its bytes now, and the held ones up to the next hole.
    let inc = c.on_segment(&data(1000, TcpFlags::default()), 1000, t0);
    assert_eq!((inc.data, inc.released), (Some((0, 1000)), Some((2000, 3500))));
    let out = drain(&mut c, t0);
    assert_eq!((acked(&out[0]), blocks(&out[0])), (3500, vec![(4000, 5000)]), "at once: a hole is still open");
    let s = c.stats();
    assert_eq!((s.out_of_order_segments, s.out_of_order_peak_bytes), (3, 2500));
    // All of it again: a duplicate, nothing taken, an ACK at once.
    let inc = c.on_segment(&data(0, TcpFlags::default()), 1000, t0);
    assert!(inc.data.is_none() && inc.ahead.is_empty());
    assert_eq!(drain(&mut c, t0).len(), 1);
    assert_eq!(c.stats().duplicate_segments, 1);
}

#[test]
fn a_fin_behind_a_hole_waits_for_it_and_the_receiver_then_closes_its_end() {
    let t0 = Instant::now();
    let mut c = receiver(t0, 64_000);
    let inc = c.on_segment(&data(1000, TcpFlags { fin: true, ..Default::default() }), 500, t0);
    assert!(!inc.fin && !c.peer_closed());
    let inc = c.on_segment(&data(0, TcpFlags::default()), 1000, t0);
    assert!(inc.fin && c.peer_closed());
    assert_eq!(inc.released, Some((1000, 1500)));
    assert_eq!(c.received_bytes(), 1500);
    assert_eq!(c.state(), State::CloseWait);
    // Our end: no data, the FIN.
    c.close_after(0);
    let out = drain(&mut c, t0);
    let fin = out.iter().find(|t| t.segment.flags.fin).expect("our FIN");
    assert_eq!(acked(fin), 1501, "it acknowledges the peer's FIN");
    assert_eq!(c.state(), State::LastAck);
    let mut last = data(1501, TcpFlags::default());
    last.ack = ISS.wrapping_add(2);
    c.on_segment(&last, 0, t0);
    assert_eq!(c.state(), State::Closed);
    assert!(c.is_done());
}

#[test]
fn the_window_follows_the_callers_room_never_shrinks_and_reopens_with_an_update() {
    let t0 = Instant::now();
    let mut c = receiver(t0, 4000);
    c.on_segment(&data(0, TcpFlags::default()), 1000, t0);
    c.on_segment(&data(1000, TcpFlags::default()), 1000, t0);
    let out = drain(&mut c, t0);
    // 4000 >> 7 = 31 units: the field says what the caller's room allows.
    assert_eq!(out[0].segment.window, 4000 >> 7);
    let right = 2000 + (31 << 7);
    // The room is gone: the edge already offered stays.
    c.set_recv_window(0);
    for (at, len) in [(2000, 1000), (3000, 1000), (4000, 1000), (5000, 968)] {
        c.on_segment(&data(at, TcpFlags::default()), len, t0);
    }
    let out = drain(&mut c, t0 + DELAY);
    let last = out.last().unwrap();
    assert_eq!(acked(last), right);
    assert_eq!(last.segment.window, 0, "the edge reached: a zero window");
    // Beyond the edge: dropped, answered with an ACK.
    let inc = c.on_segment(&data(right, TcpFlags::default()), 1000, t0);
    assert_eq!(inc.dropped, Some(Drop::OutsideWindow));
    assert_eq!(drain(&mut c, t0).len(), 1);
    // Room again: a window update at once, without waiting for data.
    c.set_recv_window(8000);
    let out = drain(&mut c, t0);
    assert_eq!((out.len(), out[0].segment.window), (1, 8000 >> 7));
    let s = c.stats();
    assert_eq!(s.zero_windows_sent, 2);
    assert_eq!((s.window_min, s.window_max), (Some(0), 8000 >> 7 << 7));
}
