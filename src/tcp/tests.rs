//! The connection, segment by segment: each test plays the peer's segments
//! into it and reads what it sends back, the way packetdrill scripts a TCP.
//! (The kernel's TCP plays the peer in tests/tcp.rs.)

use super::*;
use crate::wire::{TcpFlags, TcpOptions, TcpSegment};
use std::time::{Duration, Instant};

const ISS: u32 = 0xffff_fff0; // wraps in the first 16 bytes
const PEER_ISS: u32 = 0x1000;
const MSS: u16 = 1000;

fn cfg() -> Config {
    Config::new(40000, 80, MSS, ISS)
}

fn drain(c: &mut Connection, now: Instant) -> Vec<Transmit> {
    std::iter::from_fn(|| c.poll_transmit(now, |_| u32::MAX)).take(10_000).collect()
}

/// A segment from the peer: its sequence number counted from its ISS + 1
/// (0 is the first byte after its SYN), acknowledging our stream's byte `ack`.
fn from_peer(seq: u32, ack: u64, window: u16, flags: TcpFlags) -> TcpSegment {
    TcpSegment {
        src_port: 80,
        dst_port: 40000,
        seq: PEER_ISS.wrapping_add(1).wrapping_add(seq),
        ack: ISS.wrapping_add(1).wrapping_add(ack as u32),
        flags: TcpFlags { ack: true, ..flags },
        window,
        options: TcpOptions::default(),
    }
}

fn ack(bytes: u64, window: u16) -> TcpSegment {
    from_peer(0, bytes, window, TcpFlags::default())
}

fn syn_ack(window: u16, scale: Option<u8>) -> TcpSegment {
    let mut s = from_peer(0, 0, window, TcpFlags { syn: true, ..Default::default() });
    s.seq = PEER_ISS;
    s.options = TcpOptions { mss: Some(1460), window_scale: scale, ..Default::default() };
    s
}

/// A connection past its handshake, with `len` bytes ready, the peer's
/// window `window` << 7.
fn established(len: u64, window: u16, t0: Instant) -> Connection {
    let mut c = Connection::connect(cfg(), t0);
    let syn = drain(&mut c, t0);
    assert_eq!(syn.len(), 1);
    let inc = c.on_segment(&syn_ack(window, Some(7)), 0, t0 + Duration::from_micros(50));
    assert!(inc.connected);
    // The SYN-ACK's window is not scaled; the peer's next segment says it scaled.
    c.on_segment(&ack(0, window), 0, t0 + Duration::from_micros(60));
    c.set_available(len);
    c.close_after(len);
    c
}

/// The stream offsets of the data segments among `ts`.
fn offsets(ts: &[Transmit]) -> Vec<u64> {
    ts.iter().filter_map(|t| t.payload.map(|p| p.0)).collect()
}

#[test]
fn the_syn_carries_mss_and_window_scale_and_the_syn_ack_completes_the_handshake() {
    let t0 = Instant::now();
    let mut c = Connection::connect(cfg(), t0);
    let out = drain(&mut c, t0);
    assert_eq!(out.len(), 1, "{out:?}");
    let syn = &out[0].segment;
    assert!(syn.flags.syn && !syn.flags.ack);
    assert_eq!(syn.seq, ISS);
    assert_eq!((syn.options.mss, syn.options.window_scale), (Some(MSS), Some(7)));
    let inc = c.on_segment(&syn_ack(1000, Some(9)), 0, t0 + Duration::from_millis(1));
    assert!(inc.connected);
    assert_eq!(c.state(), State::Established);
    let out = drain(&mut c, t0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].why, Why::Ack);
    assert_eq!(out[0].segment.ack, PEER_ISS + 1);
    assert_eq!(out[0].segment.seq, ISS.wrapping_add(1));
    // The SYN-ACK's window is not scaled; the next segment's is (9).
    assert_eq!(c.peer_window(), 1000);
    c.on_segment(&ack(0, 1000), 0, t0);
    assert_eq!(c.peer_window(), 1000 << 9);
    assert_eq!(c.mss(), 1000, "the smaller MSS of the two");
    // Our window field is scaled by our shift (7) now that both sent the option.
    assert_eq!(out[0].segment.window as u64, (1u64 << 20) >> 7);
}

#[test]
fn syns_go_again_with_the_timeout_doubling_and_then_a_clear_error() {
    let t0 = Instant::now();
    let mut c = Connection::connect(cfg(), t0);
    let mut sent = vec![t0];
    assert_eq!(drain(&mut c, t0).len(), 1);
    let mut now = t0;
    while let Some(d) = c.poll_deadline() {
        now = d;
        let out = drain(&mut c, now);
        if c.error().is_some() {
            assert!(out.is_empty());
            break;
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].segment.flags.syn && out[0].segment.seq == ISS);
        sent.push(now);
    }
    let gaps: Vec<u64> = sent.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, vec![1, 2, 4, 8, 16], "1 s, then doubling");
    assert_eq!(c.error(), Some(&TcpError::NoAnswer { syns: 6 }));
    assert_eq!((now - t0).as_secs(), 63, "5 retries, given up 32 s after the last");
    assert_eq!(c.stats().syns_sent, 6);
}

#[test]
fn a_reset_to_the_syn_is_refused_and_a_syn_ack_for_another_syn_gets_a_reset() {
    let t0 = Instant::now();
    let mut c = Connection::connect(cfg(), t0);
    drain(&mut c, t0);
    // An ACK that does not acknowledge our SYN: an RST with its number, and dropped.
    let mut wrong = syn_ack(100, None);
    wrong.ack = 12345;
    let inc = c.on_segment(&wrong, 0, t0);
    assert_eq!(inc.dropped, Some(Drop::BadSynAck));
    let out = drain(&mut c, t0);
    assert_eq!(out.len(), 1);
    assert!(out[0].segment.flags.rst && out[0].segment.seq == 12345);
    assert_eq!(c.state(), State::SynSent, "still waiting for the real answer");
    // An RST without an ACK is not acceptable in SYN-SENT.
    let mut rst = from_peer(0, 0, 0, TcpFlags { rst: true, ..Default::default() });
    rst.flags.ack = false;
    assert!(c.on_segment(&rst, 0, t0).dropped.is_some());
    // RST+ACK of our SYN: refused.
    let rst = from_peer(0, 0, 0, TcpFlags { rst: true, ..Default::default() });
    c.on_segment(&rst, 0, t0);
    assert_eq!(c.error(), Some(&TcpError::Refused));
    assert!(drain(&mut c, t0).is_empty());
}

#[test]
fn data_goes_as_far_as_the_smaller_of_cwnd_and_the_peers_window() {
    let t0 = Instant::now();
    // Peer window 100 << 7 = 12,800 bytes: more than the initial cwnd (10 x 1000).
    let mut c = established(1_000_000, 100, t0);
    let out = drain(&mut c, t0);
    let offs = offsets(&out);
    assert_eq!(offs, (0..10).map(|i| i * 1000).collect::<Vec<_>>(), "initial window: ten segments");
    assert!(out.iter().all(|t| t.why == Why::New && t.payload.unwrap().1 == 1000));
    assert_eq!(out[0].segment.seq, ISS.wrapping_add(1));
    assert_eq!(out[1].segment.seq, ISS.wrapping_add(1001), "wrapped past 2^32");
    // Two segments acknowledged: slow start adds two, so four go.
    c.on_segment(&ack(2000, 100), 0, t0 + Duration::from_millis(1));
    let offs = offsets(&drain(&mut c, t0));
    assert_eq!(offs, vec![10_000, 11_000, 12_000, 13_000]);
    // The peer's window now binds: 30 << 7 = 3840 bytes beyond 4000: three segments, no runt.
    c.on_segment(&ack(4000, 30), 0, t0 + Duration::from_millis(2));
    let out = drain(&mut c, t0);
    assert!(out.is_empty(), "10,000 in flight, window 3840: nothing, and no small segment: {out:?}");
    c.on_segment(&ack(14_000, 30), 0, t0 + Duration::from_millis(3));
    let offs = offsets(&drain(&mut c, t0));
    assert_eq!(offs, vec![14_000, 15_000, 16_000], "3840 bytes: three full segments, the rest waits");
    assert_eq!(c.acked_bytes(), 14_000);
}

#[test]
fn three_duplicate_acks_retransmit_and_newreno_recovers_hole_by_hole() {
    let t0 = Instant::now();
    let mut c = established(1_000_000, 1000, t0);
    drain(&mut c, t0); // 0..10,000
    c.on_segment(&ack(1000, 1000), 0, t0);
    drain(&mut c, t0); // slow start: 10,000 and 11,000
                       // Segments at 1000 and 3000 were lost: the peer repeats 1000.
    for i in 0..3 {
        assert!(drain(&mut c, t0).is_empty() || i > 0);
        c.on_segment(&ack(1000, 1000), 0, t0);
    }
    let out = drain(&mut c, t0);
    assert_eq!(out[0].why, Why::Fast);
    assert_eq!(out[0].payload, Some((1000, 1000)));
    let s = c.stats();
    assert_eq!((s.dup_acks, s.fast_recoveries, s.retransmits_fast), (3, 1, 1));
    // ssthresh = flight (11,000) / 2, cwnd = that + 3 segments.
    assert_eq!(c.cwnd(), 5500 + 3000);
    // A partial ACK (up to the next hole, 3000): that hole goes at once.
    c.on_segment(&ack(3000, 1000), 0, t0);
    let out = drain(&mut c, t0);
    assert_eq!(out[0].why, Why::Fast);
    assert_eq!(out[0].payload, Some((3000, 1000)));
    // The full ACK ends recovery with cwnd at ssthresh at most.
    c.on_segment(&ack(12_000, 1000), 0, t0 + Duration::from_millis(5));
    assert!(c.cwnd() <= 5500, "{}", c.cwnd());
    assert!(c.stats().recovery_s > 0.0);
    assert_eq!(c.stats().retransmits_fast, 2);
}

#[test]
fn the_timer_goes_back_to_the_first_unacknowledged_byte_backs_off_and_gives_up() {
    let t0 = Instant::now();
    let mut c = established(50_000, 1000, t0);
    drain(&mut c, t0);
    c.on_segment(&ack(3000, 1000), 0, t0 + Duration::from_micros(100));
    drain(&mut c, t0);
    let first = c.poll_deadline().unwrap();
    // The floor: a 100 us round trip arms 200 ms.
    assert!((first - t0).as_millis() >= 200 && (first - t0).as_millis() < 210, "{:?}", first - t0);
    let out = drain(&mut c, first);
    assert_eq!(out.len(), 1, "one segment: cwnd is one MSS after a timeout: {out:?}");
    assert_eq!((out[0].why, out[0].payload), (Why::Timeout, Some((3000, 1000))));
    assert_eq!(c.cwnd(), 1000);
    let second = c.poll_deadline().unwrap();
    assert!((second - first).as_millis() >= 400, "doubled: {:?}", second - first);
    // The retransmission is acknowledged: slow start sends two, again from the old data.
    c.on_segment(&ack(4000, 1000), 0, second);
    let out = drain(&mut c, second);
    assert_eq!(offsets(&out), vec![4000, 5000]);
    assert!(out.iter().all(|t| t.why == Why::Timeout), "below SND.MAX: sent again");
    // Then silence: ten timeouts in a row end it.
    while c.error().is_none() {
        let now = c.poll_deadline().expect("a timer runs while bytes are unacknowledged");
        drain(&mut c, now);
    }
    assert_eq!(c.error(), Some(&TcpError::TimedOut { retransmits: 10, acked: 4000 }));
    assert_eq!(c.stats().rto_fired, 12);
}

#[test]
fn a_zero_window_is_probed_with_backoff_until_it_opens() {
    let t0 = Instant::now();
    let mut c = established(20_000, 1000, t0);
    drain(&mut c, t0);
    // Everything acknowledged, the window shut.
    c.on_segment(&ack(10_000, 0), 0, t0);
    assert!(drain(&mut c, t0).is_empty());
    let p1 = c.poll_deadline().expect("the persist timer");
    let out = drain(&mut c, p1);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].why, out[0].payload), (Why::Probe, None));
    assert_eq!(out[0].segment.seq, ISS.wrapping_add(10_000), "SND.UNA - 1: outside the window, answered");
    // Still shut: the next probe waits longer.
    c.on_segment(&ack(10_000, 0), 0, p1);
    assert_eq!(c.stats().dup_acks, 0, "an ACK of a zero window is no duplicate");
    let p2 = c.poll_deadline().unwrap();
    assert!(p2 - p1 > p1 - t0, "backed off: {:?} then {:?}", p1 - t0, p2 - p1);
    drain(&mut c, p2);
    assert_eq!(c.stats().zero_window_probes, 2);
    // The window opens: data from 10,000 on.
    c.on_segment(&ack(10_000, 1000), 0, p2);
    let out = drain(&mut c, p2);
    assert_eq!(offsets(&out)[0], 10_000);
    assert!(out.iter().all(|t| t.why == Why::New));
}

#[test]
fn the_fin_rides_the_last_segment_and_the_peers_fin_ends_it() {
    let t0 = Instant::now();
    let mut c = established(2500, 1000, t0);
    let out = drain(&mut c, t0);
    assert_eq!(offsets(&out), vec![0, 1000, 2000]);
    let last = out.last().unwrap();
    assert_eq!(last.payload, Some((2000, 500)));
    assert!(last.segment.flags.fin && last.segment.flags.psh);
    assert_eq!(c.state(), State::FinWait1);
    // Data and FIN acknowledged.
    c.on_segment(&ack(2501, 1000), 0, t0);
    assert_eq!(c.state(), State::FinWait2);
    assert_eq!(c.acked_bytes(), 2500);
    assert!(!c.is_done(), "the peer has not closed");
    let fin = from_peer(0, 2501, 1000, TcpFlags { fin: true, ..Default::default() });
    let inc = c.on_segment(&fin, 0, t0);
    assert!(inc.fin);
    assert_eq!(c.state(), State::TimeWait);
    assert!(c.is_done());
    let out = drain(&mut c, t0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].segment.ack, PEER_ISS + 2, "the FIN acknowledged");
    // TIME-WAIT ends by itself.
    let end = c.poll_deadline().unwrap();
    drain(&mut c, end);
    assert_eq!(c.state(), State::Closed);
    assert!(c.is_done());
}

#[test]
fn resets_count_only_with_the_exact_number_rfc_5961() {
    let t0 = Instant::now();
    let mut c = established(100_000, 1000, t0);
    drain(&mut c, t0);
    c.on_segment(&ack(3000, 1000), 0, t0);
    // In the window but not exact: a challenge ACK, nothing else.
    let rst = from_peer(500, 0, 0, TcpFlags { rst: true, ..Default::default() });
    assert_eq!(c.on_segment(&rst, 0, t0).dropped, Some(Drop::RstNotExact));
    let out = drain(&mut c, t0);
    assert!(out.iter().any(|t| t.why == Why::Ack || t.segment.flags.ack));
    assert_eq!(c.stats().challenge_acks, 1);
    // Far outside the window: dropped without a word.
    let rst = from_peer(1 << 30, 0, 0, TcpFlags { rst: true, ..Default::default() });
    assert_eq!(c.on_segment(&rst, 0, t0).dropped, Some(Drop::RstNotExact));
    assert_eq!(c.stats().challenge_acks, 1);
    assert!(c.error().is_none());
    // Exact: the connection ends, with what the peer had acknowledged.
    let rst = from_peer(0, 0, 0, TcpFlags { rst: true, ..Default::default() });
    c.on_segment(&rst, 0, t0);
    assert_eq!(c.error(), Some(&TcpError::Reset { acked: 3000 }));
    assert!(drain(&mut c, t0).is_empty(), "nothing more goes");
    assert_eq!(c.error().unwrap().to_string(), "connection reset by the peer after it had acknowledged 3000 bytes");
}

#[test]
fn acks_of_unsent_data_syns_and_segments_outside_the_window_are_dropped() {
    let t0 = Instant::now();
    let mut c = established(100_000, 1000, t0);
    drain(&mut c, t0); // 10,000 sent
    let inc = c.on_segment(&ack(50_000, 1000), 0, t0);
    assert_eq!(inc.dropped, Some(Drop::AckOfUnsent));
    assert_eq!(c.acked_bytes(), 0, "not acted on");
    let out = drain(&mut c, t0);
    assert_eq!(out.iter().filter(|t| t.why == Why::Ack).count(), 1, "answered with an ACK");
    // A SYN on an established connection: a challenge ACK.
    let mut syn = from_peer(0, 0, 1000, TcpFlags { syn: true, ..Default::default() });
    syn.flags.ack = false;
    assert_eq!(c.on_segment(&syn, 0, t0).dropped, Some(Drop::UnexpectedSyn));
    // Data far beyond the window.
    let far = from_peer(1 << 28, 0, 1000, TcpFlags::default());
    assert_eq!(c.on_segment(&far, 100, t0).dropped, Some(Drop::OutsideWindow));
    let s = c.stats();
    assert_eq!((s.dropped_ack_of_unsent, s.dropped_outside_window, s.challenge_acks), (1, 1, 1));
    assert!(c.error().is_none() && c.state() == State::Established);
}

#[test]
fn a_passive_open_answers_the_syn_and_takes_the_request() {
    let t0 = Instant::now();
    let mut syn = syn_ack(64240, Some(7));
    syn.flags = TcpFlags { syn: true, ..Default::default() };
    syn.ack = 0;
    let mut c = Connection::accept(Config::new(80, 40000, 1460, ISS), &syn, t0).unwrap();
    let out = drain(&mut c, t0);
    assert_eq!(out.len(), 1);
    let sa = &out[0].segment;
    assert!(sa.flags.syn && sa.flags.ack && sa.ack == PEER_ISS + 1);
    assert_eq!((sa.options.mss, sa.options.window_scale), (Some(1460), Some(7)));
    // The handshake's ACK carries the request.
    let req = TcpSegment { src_port: 40000, dst_port: 80, ..from_peer(0, 0, 502, TcpFlags { psh: true, ..Default::default() }) };
    let inc = c.on_segment(&req, 18, t0);
    assert!(inc.connected);
    assert_eq!(inc.data, Some((0, 18)));
    let out = drain(&mut c, t0);
    assert_eq!(out[0].segment.ack, PEER_ISS + 1 + 18);
    // The same bytes again (a retransmission): not delivered twice.
    let inc = c.on_segment(&req, 18, t0);
    assert_eq!(inc.data, None);
    // A SYN without window scale gets a SYN-ACK without it.
    let mut plain = syn.clone();
    plain.options.window_scale = None;
    let mut c = Connection::accept(Config::new(80, 40000, 1460, ISS), &plain, t0).unwrap();
    assert_eq!(drain(&mut c, t0)[0].segment.options.window_scale, None);
}

#[test]
fn karn_does_not_time_a_retransmitted_segment() {
    let t0 = Instant::now();
    let mut c = established(5000, 1000, t0);
    let srtt = c.stats().srtt_us;
    assert_eq!(srtt, Some(50), "the handshake's round trip");
    drain(&mut c, t0);
    let d = c.poll_deadline().unwrap();
    drain(&mut c, d); // timed out, sent again
                      // The ACK comes 10 s after the first send: it would be a huge sample if taken.
    c.on_segment(&ack(5001, 1000), 0, t0 + Duration::from_secs(10));
    assert_eq!(c.stats().srtt_us, Some(50));
}

#[test]
fn a_segment_never_crosses_the_callers_limit() {
    let t0 = Instant::now();
    let mut c = established(10_000, 1000, t0);
    // Buffers of 2500 bytes: a segment ends at each boundary.
    let out: Vec<Transmit> = std::iter::from_fn(|| c.poll_transmit(t0, |off| (2500 - off % 2500) as u32)).collect();
    let segs: Vec<(u64, u32)> = out.iter().filter_map(|t| t.payload).collect();
    assert_eq!(segs[..3], [(0, 1000), (1000, 1000), (2000, 500)]);
    assert!(segs.iter().all(|(o, l)| o / 2500 == (o + *l as u64 - 1) / 2500), "{segs:?}");
}

#[test]
fn an_abort_sends_one_reset_with_the_next_number_and_ends_it() {
    let t0 = Instant::now();
    let mut c = established(100_000, 1000, t0);
    drain(&mut c, t0);
    c.on_segment(&ack(3000, 1000), 0, t0);
    c.abort();
    let out = drain(&mut c, t0);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].segment.flags.rst);
    assert_eq!(out[0].segment.seq, ISS.wrapping_add(1 + 10_000), "SND.NXT");
    assert_eq!(c.state(), State::Closed);
    assert!(c.poll_deadline().is_none());
}

#[test]
fn with_sack_recovery_sends_every_hole_in_one_round_trip_and_nothing_the_peer_holds() {
    let t0 = Instant::now();
    let mut c = Connection::connect(cfg(), t0);
    let syn = drain(&mut c, t0);
    assert!(syn[0].segment.options.sack_permitted, "offered in the SYN");
    let mut sa = syn_ack(1000, Some(7));
    sa.options.sack_permitted = true;
    c.on_segment(&sa, 0, t0);
    c.on_segment(&ack(0, 1000), 0, t0);
    c.set_available(1_000_000);
    c.close_after(1_000_000);
    assert!(c.stats().sack);
    drain(&mut c, t0); // 0..10,000
                       // Segments at 1000 and 3000 lost: the peer holds [0,1000), [2000,3000), [4000,10000).
    let seq = |off: u64| ISS.wrapping_add(1 + off as u32);
    let mut dup = ack(1000, 1000);
    dup.options.sack = vec![(seq(4000), seq(10_000)), (seq(2000), seq(3000))];
    c.on_segment(&dup, 0, t0);
    assert_eq!(c.stats().fast_recoveries, 1, "seven segments SACKed above SND.UNA: loss");
    let out = drain(&mut c, t0);
    let sent: Vec<(Why, Option<(u64, u32)>)> = out.iter().map(|t| (t.why, t.payload)).collect();
    assert_eq!(sent[0], (Why::Fast, Some((1000, 1000))));
    assert_eq!(sent[1], (Why::Fast, Some((3000, 1000))), "the second hole at once, not a round trip later");
    assert!(
        sent[2..].iter().all(|(w, p)| *w == Why::New && p.unwrap().0 >= 10_000),
        "then new data, no SACKed byte again: {sent:?}"
    );
    assert_eq!(c.cwnd(), 4500, "half the 9000 in flight");
    // Both holes arrive: recovery ends.
    c.on_segment(&ack(10_000, 1000), 0, t0 + Duration::from_millis(1));
    assert!(c.stats().recovery_s > 0.0);
    assert_eq!(c.stats().retransmits_fast, 2);
    assert_eq!(c.stats().retransmits_timeout, 0);
}

#[test]
fn sack_blocks_outside_what_was_sent_are_ignored() {
    let t0 = Instant::now();
    let mut c = Connection::connect(cfg(), t0);
    drain(&mut c, t0);
    let mut sa = syn_ack(1000, Some(7));
    sa.options.sack_permitted = true;
    c.on_segment(&sa, 0, t0);
    c.set_available(5000);
    c.close_after(5000);
    c.on_segment(&ack(0, 1000), 0, t0);
    drain(&mut c, t0);
    let seq = |off: u64| ISS.wrapping_add(1 + off as u32);
    let mut bogus = ack(0, 1000);
    bogus.options.sack = vec![(seq(6000), seq(9000)), (seq(1000), seq(900))];
    c.on_segment(&bogus, 0, t0);
    assert_eq!(c.stats().fast_recoveries, 0, "past SND.MAX, or backwards: not believed");
}
