//! A transfer that is not intact is caught and reported as a failure, and
//! the receiver leaves no file behind.

mod common;

use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;
use zclab::netns::RX_ADDR;
use zclab::transfer::control::Msg;

#[test]
fn truncated_stream_is_a_failure() {
    if !privileged("truncated_stream_is_a_failure") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let out = dir.path("out");
    let n = env.names().clone();
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--json", "--timeout", "5"]);
    // A hand-made sender: announce 1000 bytes, send 500, hang up.
    let tx = n.tx_ns.clone();
    std::thread::spawn(move || {
        zclab::sys::netns::enter(&tx).unwrap();
        let mut s = connect_retry(SocketAddr::from((RX_ADDR, 7777)));
        s.write_all(
            &Msg::Hello {
                mode: zclab::transfer::Mode::ReadWrite,
                size: 1000,
                chunk: 1000,
                transfer_id: 1,
                nonce: None,
                queues: None,
                direct_payload: None,
            }
            .encode(),
        )
        .unwrap();
        let mut wd = zclab::transfer::Watchdog::new(Duration::from_secs(5), "receiver");
        let ready = zclab::transfer::control::recv_msg(&mut &s, &mut wd).unwrap();
        assert!(matches!(ready, Some(Msg::Ready { .. })), "{ready:?}");
        s.write_all(&[7u8; 500]).unwrap();
    })
    .join()
    .unwrap();
    let o = recv.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "a truncated stream must fail: {}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["verified"], false);
    assert_eq!(r["bytes"], 500);
    assert_eq!(r["expected_bytes"], 1000);
    assert!(r["reason"].as_str().unwrap().contains("ended after 500 of 1000"), "{r}");
    assert!(files_in(&dir.0).is_empty(), "nothing may be left: {:?}", files_in(&dir.0));
}

#[test]
fn hash_mismatch_is_a_failure_on_both_ends() {
    if !privileged("hash_mismatch_is_a_failure_on_both_ends") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let (src, out) = (dir.path("src"), dir.path("out"));
    random_file(&src, 300_000, 9);
    let n = env.names().clone();
    let wrong = "00".repeat(32);
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--json", "--expect-hash", &wrong, "--timeout", "5"]);
    let s = send(&n.tx_ns, "10.77.0.2:7777", "splice", &src, &["--json"]);
    let o = recv.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "receiver: {}", stderr(&o));
    assert_eq!(s.status.code(), Some(1), "sender: {}", stderr(&s));
    let (rr, sr) = (json(&o), json(&s));
    assert_eq!(rr["verified"], false);
    assert!(rr["reason"].as_str().unwrap().contains("hash mismatch"), "{rr}");
    assert_eq!(sr["verified"], false);
    assert_eq!(rr["bytes"], 300_000, "all bytes arrived; only the hash disagreed");
    assert_eq!(files_in(&dir.0), vec!["src".to_string()], "the unverified file must not stay");
}

#[test]
fn send_and_recv_work_standalone_and_print_tables() {
    if !privileged("send_and_recv_work_standalone_and_print_tables") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let (src, out) = (dir.path("src"), dir.path("out"));
    random_file(&src, 777_777, 3);
    let n = env.names().clone();
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7000", &out, &[]);
    let s = send(&n.tx_ns, "10.77.0.2:7000", "sendfile", &src, &[]);
    let o = recv.wait_with_output().unwrap();
    assert!(s.status.success() && o.status.success(), "{} {}", stderr(&s), stderr(&o));
    assert!(String::from_utf8_lossy(&s.stdout).contains("VERIFIED"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("VERIFIED"));
    assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&out).unwrap());
}
