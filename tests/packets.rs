//! The packet receiver under attack: a hand-made sender speaks the real
//! protocol over real sockets and mixes malformed packets into a transfer.
//! They must be counted and dropped, never written, and the file verifies.

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use zclab::netns::RX_ADDR;
use zclab::transfer::control::{recv_msg, send_msg, Msg};
use zclab::transfer::{Mode, Watchdog};

const PAYLOAD: usize = 1448;
const ID: u32 = 0xfeed;

#[test]
fn malformed_packets_are_counted_and_never_written_udp_gso() {
    malformed_packets_are_counted_and_never_written("udp-gso", PAYLOAD, None);
}

/// The same packets reach the AF_XDP receiver through its XDP program
/// (they are sent by a kernel UDP socket to the lab's port).
#[test]
fn malformed_packets_are_counted_and_never_written_af_xdp() {
    malformed_packets_are_counted_and_never_written("af-xdp", PAYLOAD, None);
}

/// At MTU 9000 an 8000-byte packet reaches the AF_XDP socket as several
/// descriptors, which the receiver checks and writes without gathering.
#[test]
fn malformed_jumbo_packets_are_counted_and_never_written_af_xdp() {
    malformed_packets_are_counted_and_never_written("af-xdp", 8000, Some(9000));
}

fn malformed_packets_are_counted_and_never_written(mode: &'static str, payload: usize, mtu: Option<u32>) {
    if !privileged(&format!("malformed packets, {mode}, {payload} bytes")) {
        return;
    }
    let env = env_with(mtu);
    let dir = Scratch::new();
    let (src, out) = (dir.path("src"), dir.path("out"));
    let size = 10 * payload + 100;
    random_file(&src, size, 5);
    let data = std::fs::read(&src).unwrap();
    let n = env.names().clone();
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--json"]);

    let tx = n.tx_ns.clone();
    let sent_data = data.clone();
    let verdict = std::thread::spawn(move || {
        zclab::sys::netns::enter(&tx).unwrap();
        let to = SocketAddr::from((RX_ADDR, 7777));
        let ctrl = connect_retry(to);
        let mut wd = Watchdog::new(Duration::from_secs(5), "receiver");
        let hello = Msg::Hello {
            mode: parse_mode(mode),
            size: size as u64,
            chunk: payload as u64,
            transfer_id: ID as u64,
            nonce: None,
            queues: None,
            direct_payload: None,
        };
        send_msg(&mut &ctrl, &hello, &mut wd).unwrap();
        match recv_msg(&mut &ctrl, &mut wd).unwrap() {
            Some(Msg::Ready { mac, .. }) => assert_eq!(mac.is_some(), mode == "af-xdp", "only af-xdp announces a MAC"),
            other => panic!("expected Ready, got {other:?}"),
        }
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        udp.connect(to).unwrap();
        let poison = vec![0xEEu8; payload];
        let last = 10 * payload as u64;
        let bad: Vec<Vec<u8>> = vec![
            lab_packet(ID, last + payload as u64, &poison[..100]), // offset past the end
            lab_packet(ID, last, &poison),                         // runs past the end
            lab_packet(ID, 7, &poison[..100]),                     // not on a packet boundary
            lab_packet(ID + 1, 0, &poison),                        // another transfer
            {
                let mut p = lab_packet(ID, 0, &poison);
                p[0] = b'X'; // wrong magic
                p
            },
            {
                let mut p = lab_packet(ID, payload as u64, &poison);
                p.truncate(500); // shorter than its header claims
                p
            },
            vec![b'Z', b'C', b'L'], // truncated header
        ];
        // Bad packets before, between and after the good ones.
        for b in &bad {
            udp.send(b).unwrap();
        }
        for i in 0..=10u64 {
            let off = i as usize * payload;
            udp.send(&lab_packet(ID, off as u64, &sent_data[off..(off + payload).min(size)])).unwrap();
            udp.send(&bad[i as usize % bad.len()]).unwrap();
        }
        udp.send(&lab_packet(ID, 0, &sent_data[..payload])).unwrap(); // a duplicate
        std::thread::sleep(Duration::from_millis(50));
        send_msg(&mut &ctrl, &Msg::RoundDone { round: 0, sent: 11 }, &mut wd).unwrap();
        match answer_to_round(&ctrl, &mut wd) {
            Some(Msg::Missing { count: 0, .. }) => {}
            other => panic!("expected nothing missing, got {other:?}"),
        }
        assert!(matches!(recv_msg(&mut &ctrl, &mut wd).unwrap(), Some(Msg::Received { bytes }) if bytes == size as u64));
        let hash = blake3::hash(&sent_data).to_hex().to_string();
        send_msg(&mut &ctrl, &Msg::Trailer { hash }, &mut wd).unwrap();
        recv_msg(&mut &ctrl, &mut wd).unwrap()
    })
    .join()
    .unwrap();

    let o = recv.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(matches!(verdict, Some(Msg::Verdict { verified: true, .. })), "{verdict:?}");
    let r = json(&o);
    assert_eq!(r["packets"]["accepted"], 11, "{r}");
    assert_eq!(r["packets"]["duplicates"], 1, "{r}");
    assert_eq!(r["packets"]["invalid"], 7 + 11, "{r}");
    assert_eq!(std::fs::read(&out).unwrap(), data, "only good packets were written");
}

/// Lost packets are sent again until the file is complete: the receiver
/// drops 10 % of what arrives (fault injection), in every round.
fn recovers_from_loss(mode: &str) {
    if !privileged(&format!("recovers from loss, {mode}")) {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let (src, out) = (dir.path("src"), dir.path("out"));
    random_file(&src, (5 << 20) + 77, 21);
    let n = env.names().clone();
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--json", "--inject-loss", "100"]);
    let s = send(&n.tx_ns, "10.77.0.2:7777", mode, &src, &["--json"]);
    let r = recv.wait_with_output().unwrap();
    assert!(s.status.success() && r.status.success(), "{} {}", stderr(&s), stderr(&r));
    let (sr, rr) = (json(&s), json(&r));
    let injected = rr["packets"]["injected_losses"].as_u64().unwrap();
    assert!(injected > 0, "{rr}");
    assert!(sr["packets"]["retransmitted"].as_u64().unwrap() >= injected, "every dropped packet was sent again: {sr} {rr}");
    assert!(sr["packets"]["rounds"].as_u64().unwrap() >= 2, "{sr}");
    assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&out).unwrap());
}

#[test]
fn recovers_from_loss_udp_gso() {
    recovers_from_loss("udp-gso");
}

#[test]
fn recovers_from_loss_af_xdp() {
    recovers_from_loss("af-xdp");
}

fn parse_mode(name: &str) -> Mode {
    <Mode as clap::ValueEnum>::from_str(name, false).expect("a mode name")
}
