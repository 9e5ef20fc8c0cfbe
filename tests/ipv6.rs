//! The packet paths over IPv6 (`env up --ipv6`, `run --ipv6`): kernel UDP
//! with GSO, and af-xdp, whose IPv6 frames ask the kernel to finish their
//! UDP checksum and whose receiver drops any frame whose checksum is wrong.

mod common;

use common::*;

fn run(env: &str, mode: &str, src: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["run", "--env", env, "--ipv6", "--mode", mode, "--file", src.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    run_zclab(&args)
}

#[test]
fn af_xdp_and_udp_gso_verify_over_ipv6() {
    if !privileged("af_xdp_and_udp_gso_verify_over_ipv6") {
        return;
    }
    let env = env_v6(None);
    let name = env.names().name.clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    let len = (6 << 20) + 321;
    random_file(&src, len, 61);

    let o = run(&name, "udp-gso", &src, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["verified"], true, "{r}");
    // 1500 - 40 (IPv6) - 8 (UDP) - 24 (lab header) = 1428 bytes a packet.
    let first_round = r["packets"].as_u64().unwrap() - r["retransmitted_packets"].as_u64().unwrap();
    assert_eq!(first_round, (len as u64).div_ceil(1428), "IPv6-sized packets: {r}");

    let o = run(&name, "af-xdp", &src, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let x = &r["af_xdp"];
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(x["layout"], "contiguous", "IPv6 defaults to one descriptor a packet: {x}");
    assert!(x["frame_layout"].as_str().unwrap().contains("86-byte header"), "{x}");
    assert!(x["frame_layout"].as_str().unwrap().contains("checksum left to the kernel"), "{x}");
    assert!(x["next_hop"].as_str().unwrap().starts_with("fd77::2 "), "{x}");
    // No frame failed the receiver's checksum test: the kernel finished them all. (Some may
    // be resent all the same: a busy receiver's RX ring can overflow, and rounds repair that.)
    assert_eq!(r["invalid_packets"], 0, "{r}");
}

#[test]
fn af_xdp_over_ipv6_at_mtu_9000() {
    if !privileged("af_xdp_over_ipv6_at_mtu_9000") {
        return;
    }
    let env = env_v6(Some(9000));
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (5 << 20) + 77, 62);
    let o = run(&env.names().name, "af-xdp", &src, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(r["invalid_packets"], 0, "{r}");
    if r["af_xdp"]["o_direct"] == true {
        assert_eq!(r["af_xdp"]["payload"], 3584, "{r}");
    }
}

/// Split frames would reach the receiver with checksums over their header
/// only (the kernel finishes the sum before it attaches the payload
/// descriptors): refused, with the reason.
#[test]
fn split_frames_over_ipv6_are_refused_with_the_reason() {
    if !privileged("split_frames_over_ipv6_are_refused_with_the_reason") {
        return;
    }
    let env = env_v6(None);
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 1 << 20, 63);
    let o = run(&env.names().name, "af-xdp", &src, &["--frame-layout", "split"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("needs --frame-layout contiguous") && e.contains("first descriptor"), "{e}");
}
