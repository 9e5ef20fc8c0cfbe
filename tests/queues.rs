//! af-xdp on several queues (`--queues`, `env up --queues N`): a socket and
//! a thread per queue on both ends, the file's blocks dealt out to the
//! queues, one window and one set of rounds for the whole transfer.

mod common;

use common::*;
use serde_json::Value;

fn total(queues: &Value) -> u64 {
    queues.as_array().unwrap().iter().map(|q| q["packets"].as_u64().unwrap()).sum()
}

/// Both ends take the queues the interface has (two), the receiver because
/// the sender says so; every queue carries a share and the file verifies.
fn verifies_on_two_queues(mtu: Option<u32>, extra: &[&str]) {
    let env = env_queues(2, mtu);
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (24 << 20) + 999, 71);
    let mut args = vec!["run", "--env", &env.names().name, "--mode", "af-xdp", "--file", src.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = run_zclab(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let x = &r["af_xdp"];
    assert_eq!(r["verified"], true, "{r}");
    let (tx, rx) = (&x["sender_queues"], &x["receiver_queues"]);
    assert_eq!(tx.as_array().unwrap().len(), 2, "{x}");
    assert_eq!(rx.as_array().unwrap().len(), 2, "the receiver opened as many as the sender announced: {x}");
    for q in tx.as_array().unwrap().iter().chain(rx.as_array().unwrap()) {
        assert!(q["packets"].as_u64().unwrap() > 0, "every queue carried packets: {x}");
    }
    // `packets` counts every packet sent, resent ones too.
    assert_eq!(total(tx), r["packets"].as_u64().unwrap(), "{r}");
    let file_packets = r["packets"].as_u64().unwrap() - r["retransmitted_packets"].as_u64().unwrap();
    assert!(total(rx) >= file_packets, "each of the file's packets arrived at least once: {r}");
}

#[test]
fn two_queues_verify_at_mtu_1500() {
    if !privileged("two_queues_verify_at_mtu_1500") {
        return;
    }
    verifies_on_two_queues(None, &[]);
    verifies_on_two_queues(None, &["--frame-layout", "contiguous"]);
}

/// One UMEM shared by both queues' sockets (XDP_SHARED_UMEM), on both ends.
#[test]
fn two_queues_verify_with_one_shared_umem() {
    if !privileged("two_queues_verify_with_one_shared_umem") {
        return;
    }
    let env = env_queues(2, None);
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (16 << 20) + 3, 74);
    #[rustfmt::skip]
    let o = run_zclab(&["run", "--env", &env.names().name, "--mode", "af-xdp", "--file", src.to_str().unwrap(), "--json", "--shared-umem"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let x = &r["af_xdp"];
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!((x["sender_shared_umem"].as_bool(), x["receiver_shared_umem"].as_bool()), (Some(true), Some(true)), "{x}");
    assert_eq!(x["receiver_queues"].as_array().unwrap().len(), 2, "{x}");
    assert!(x["receiver_queues"].as_array().unwrap().iter().all(|q| q["packets"].as_u64().unwrap() > 0), "{x}");
}

#[test]
fn two_queues_verify_at_mtu_9000() {
    if !privileged("two_queues_verify_at_mtu_9000") {
        return;
    }
    verifies_on_two_queues(Some(9000), &[]);
}

/// Lost packets are resent through whichever queue their block belongs
/// to, and the rounds end when every queue's share is in.
#[test]
fn two_queues_recover_injected_loss() {
    if !privileged("two_queues_recover_injected_loss") {
        return;
    }
    let env = env_queues(2, None);
    let n = env.names().clone();
    let dir = Scratch::new();
    let (src, out) = (dir.path("src"), dir.path("out"));
    random_file(&src, (8 << 20) + 5, 72);
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--json", "--inject-loss", "20"]);
    let s = send(&n.tx_ns, "10.77.0.2:7777", "af-xdp", &src, &["--json"]);
    let r = recv.wait_with_output().unwrap();
    assert!(s.status.success() && r.status.success(), "{} {}", stderr(&s), stderr(&r));
    let sr = json(&s);
    assert!(sr["packets"]["retransmitted"].as_u64().unwrap() > 0, "2% dropped on arrival were sent again: {sr}");
    assert_eq!(sr["af_xdp"]["queues"].as_array().unwrap().len(), 2, "{sr}");
    assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&out).unwrap());
}

/// A receiver told a different number of queues than the sender uses
/// refuses before any data moves, and says what to do.
#[test]
fn ends_that_disagree_on_queues_are_told_so() {
    if !privileged("ends_that_disagree_on_queues_are_told_so") {
        return;
    }
    let env = env_queues(2, None);
    let n = env.names().clone();
    let dir = Scratch::new();
    let (src, out) = (dir.path("src"), dir.path("out"));
    random_file(&src, 1 << 20, 73);
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--queues", "1"]);
    let s = send(&n.tx_ns, "10.77.0.2:7777", "af-xdp", &src, &["--queues", "2"]);
    let r = recv.wait_with_output().unwrap();
    assert!(!s.status.success() && !r.status.success());
    let e = stderr(&s);
    assert!(e.contains("sends on 2 queues") && e.contains("--queues 1"), "the sender hears why: {e}");
    assert!(!out.exists(), "nothing was written");
}

/// The sender on queue 2 of 4, by hand; the receiver told nothing of queues.
/// Returns the receiver's and the sender's output.
fn by_hand(
    env: &zclab::netns::LabEnv,
    dir: &Scratch,
    src: &std::path::Path,
    port: u16,
    recv_queues: &[&str],
) -> (std::process::Output, std::process::Output) {
    let n = env.names();
    let to = format!("{}:{port}", zclab::netns::RX_ADDR);
    let out = dir.path("out");
    let mut args =
        vec!["recv", "--netns", &n.rx_ns, "--listen", &to, "--out", out.to_str().unwrap(), "--json", "--accept-timeout", "20"];
    args.extend_from_slice(recv_queues);
    let recv = Reaped::new(
        zclab().args(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap(),
    );
    #[rustfmt::skip]
    let send = run_zclab(&["send", "--netns", &n.tx_ns, "--to", &to, "--file", src.to_str().unwrap(), "--mode", "af-xdp", "--queue", "2", "--queues", "1", "--json"]);
    (recv.wait_with_output().unwrap(), send)
}

#[test]
fn a_flow_on_a_queue_nobody_announced_is_caught_by_a_socket_on_every_queue() {
    if !privileged("a_flow_on_a_queue_nobody_announced_is_caught") {
        return;
    }
    let env = env_queues(4, None);
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (4 << 20) + 77, 75);
    let (r, s) = by_hand(&env, &dir, &src, 7811, &[]);
    assert!(r.status.success() && s.status.success(), "recv: {}\nsend: {}", stderr(&r), stderr(&s));
    let (r, s) = (json(&r), json(&s));
    assert_eq!(r["verified"], true, "{r}");
    let q = r["af_xdp"]["queues"].as_array().unwrap();
    assert_eq!(q.len(), 4, "a socket on each of the 4 RX queues: {r}");
    for x in q {
        let carried = x["packets"].as_u64().unwrap() > 0;
        assert_eq!(carried, x["queue"] == 2, "only queue 2 carried the flow: {r}");
    }
    assert!(r["af_xdp"]["unserved"].as_array().unwrap().is_empty(), "no packet missed a socket: {r}");
    let sq = &s["af_xdp"]["queues"][0];
    assert_eq!(sq["queue"], 2);
    assert!(sq["src_port"].as_u64().unwrap() >= 1024, "the flow's source port is reported: {s}");
}

#[test]
fn a_receiver_narrowed_to_the_wrong_queue_names_the_queue_and_both_fixes() {
    if !privileged("a_receiver_narrowed_to_the_wrong_queue") {
        return;
    }
    let env = env_queues(4, None);
    let dir = Scratch::new();
    let src = dir.path("src");
    let size: u64 = (2 << 20) + 5;
    random_file(&src, size as usize, 76);
    let (r, s) = by_hand(&env, &dir, &src, 7812, &["--queue", "0", "--queues", "1"]);
    assert!(!r.status.success() && !s.status.success(), "nothing can arrive on queue 0");
    let e = stderr(&r);
    // The sender sends the whole file three times before it gives up; the XDP program
    // counted every one of those packets on queue 2, where no socket is.
    let expected = size.div_ceil(1448) * 3;
    assert!(e.contains(&format!("{expected} on queue 2")), "the count of the program's map, {expected} expected: {e}");
    assert!(
        e.contains("--queue 2") && e.contains(&format!("ethtool -N {} flow-type udp4 dst-port 7812 action 0", env.names().rx_if)),
        "both fixes: {e}"
    );
    assert!(files_in(&dir.0) == vec!["src".to_string()], "nothing written: {:?}", files_in(&dir.0));
}
