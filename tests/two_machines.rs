//! The book's "On two machines" commands (docs/two-machines.md), run as written across a routed
//! lab environment: each end started by hand in its own namespace (a host
//! of its own), with its interface and the addresses given explicitly; no
//! `zclab env`, no `zclab run`. For sendfile, udp-gso and af-xdp, over IPv4
//! and IPv6.

mod common;

use common::*;
use zclab::netns::{RX_ADDR, RX_ADDR6};

#[test]
fn the_two_machine_commands_verify_across_a_router_over_ipv4_and_ipv6() {
    if !privileged("the_two_machine_commands_verify_across_a_router") {
        return;
    }
    let env = env_routed_v6();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("f");
    random_file(&src, (5 << 20) + 333, 93);
    let mut port = 7840;
    for addr in [RX_ADDR.to_string(), format!("[{RX_ADDR6}]")] {
        for mode in ["sendfile", "udp-gso", "af-xdp"] {
            port += 1;
            let at = format!("{addr}:{port}");
            let out = dir.path(&format!("copy-{port}"));
            // Host B: the receiver.
            #[rustfmt::skip]
            let recv = Reaped::new(
                zclab()
                    .args(["recv", "--netns", &n.rx_ns, "--iface", &n.rx_if, "--listen", &at, "--out", out.to_str().unwrap(), "--json", "--accept-timeout", "20"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            // Host A: the sender.
            #[rustfmt::skip]
            let s = run_zclab(&["send", "--netns", &n.tx_ns, "--iface", &n.tx_if, "--to", &at, "--file", src.to_str().unwrap(), "--mode", mode, "--json"]);
            let r = recv.wait_with_output().unwrap();
            let what = format!("{mode} to {at}");
            assert!(s.status.success(), "{what}: sender: {}", stderr(&s));
            assert!(r.status.success(), "{what}: receiver: {}", stderr(&r));
            assert_eq!(json(&r)["verified"], true, "{what}");
            assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&src).unwrap(), "{what}: the copy is the file");
            if mode == "af-xdp" {
                let hop = json(&s)["af_xdp"]["next_hop"].as_str().unwrap().to_string();
                assert!(hop.contains("gateway"), "{what}: frames to the router's MAC: {hop}");
            }
        }
    }
}
