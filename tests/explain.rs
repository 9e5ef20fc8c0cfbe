//! `zclab explain`: every path drawn; a run's figures shown after it.

mod common;

use common::*;

#[test]
fn every_mode_is_drawn() {
    let o = run_zclab(&["explain"]);
    assert!(o.status.success());
    let list = String::from_utf8_lossy(&o.stdout);
    for m in ["read-write", "mmap-write", "sendfile", "splice", "msg-zerocopy", "io-uring-zc", "udp-gso", "af-xdp"] {
        assert!(list.contains(m), "{list}");
        let o = run_zclab(&["explain", m]);
        assert!(o.status.success(), "{m}: {}", stderr(&o));
        let d = String::from_utf8_lossy(&o.stdout);
        assert!(d.starts_with(&format!("{m}: ")) && (d.contains("-->") || d.contains("==>")), "{d}");
    }
    let o = run_zclab(&["explain", "carrier-pigeon"]);
    assert!(!o.status.success());
}

#[test]
fn a_run_is_kept_and_its_figures_explained() {
    if !privileged("a_run_is_kept_and_its_figures_explained") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 3 << 20, 21);
    let state = dir.path("state");
    let run = |args: &[&str]| zclab().args(args).env("ZCLAB_STATE_DIR", &state).output().unwrap();
    let before = run(&["explain", "mmap-write"]);
    assert!(String::from_utf8_lossy(&before.stdout).contains("No run of mmap-write kept yet"));
    let o = run(&["run", "--env", &env.names().name, "--mode", "mmap-write", "--file", src.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let after = String::from_utf8_lossy(&run(&["explain", "mmap-write"]).stdout).into_owned();
    assert!(after.contains("The last run kept (3.0 MiB"), "{after}");
    let syscalls = r["sender"]["syscalls"].as_u64().unwrap();
    assert!(after.contains(&format!("sender {syscalls} syscalls")), "the kept run's own numbers: {after}");
    assert!(
        after.contains("copies it must have made: 2.00 per byte (mapping -> socket buffer 1, pipe -> page cache 1)"),
        "the inferred copies, with the labels of the report: {after}"
    );
    let xdp = String::from_utf8_lossy(&run(&["explain", "af-xdp"]).stdout).into_owned();
    for label in ["UMEM -> skb", "skb -> page-pool page", "packet -> receiving UMEM", "UMEM -> page cache"] {
        assert!(xdp.contains(label), "af-xdp's drawing names the copy {label:?} as the report does: {xdp}");
    }
    assert!(state.join("last-mmap-write.json").exists());
}
