//! What only the AF_XDP path promises: no page cache on the sending side,
//! both UMEM modes, and nothing left attached when a process is killed.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xdp_attached(ns: &str, dev: &str) -> bool {
    let o = Command::new("ip").args(["-n", ns, "-d", "link", "show", "dev", dev]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).contains("prog/xdp")
}

/// Writes a file and makes sure it is on disk and out of the page cache.
fn cold_file(path: &std::path::Path, len: usize) {
    random_file(path, len, 11);
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    zclab::sys::file::evict_from_cache(&f).unwrap();
}

#[test]
fn af_xdp_sends_without_the_page_cache_and_sendfile_does_not() {
    if !privileged("af_xdp_sends_without_the_page_cache_and_sendfile_does_not") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    let len = 16 << 20;
    cold_file(&src, len);
    if zclab::sys::file::dio_align(&std::fs::File::open(&src).unwrap()).unwrap().is_none() {
        eprintln!("SKIPPED the page-cache check: {} has no direct I/O (tmpfs?)", dir.0.display());
        return;
    }
    let name = env.names().name.clone();
    let run = |mode: &str| {
        let o = run_zclab(&["run", "--env", &name, "--mode", mode, "--file", src.to_str().unwrap(), "--cold", "--json"]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        json(&o)
    };
    let x = run("af-xdp");
    assert_eq!(x["verified"], true);
    assert_eq!(x["af_xdp"]["o_direct"], true, "{x}");
    assert_eq!(x["source_cached_before_bytes"], 0, "{x}");
    assert_eq!(x["source_cached_after_bytes"], 0, "O_DIRECT leaves nothing in the page cache: {x}");
    // And from outside, now that the command has ended (its hash read the file too).
    let f = std::fs::File::open(&src).unwrap();
    assert_eq!(zclab::sys::file::cached_bytes(&f).unwrap(), 0, "mincore after the command: the hash used O_DIRECT too");
    let s = run("sendfile");
    assert_eq!(s["source_cached_before_bytes"], 0, "{s}");
    // All of it, but for a page the kernel may have reclaimed meanwhile (memory pressure from other tests).
    let cached = s["source_cached_after_bytes"].as_u64().unwrap();
    assert!(cached * 100 >= len as u64 * 99, "sendfile reads through the page cache: {s}");
}

#[test]
fn run_passes_every_af_xdp_option_to_both_ends_and_reports_them() {
    if !privileged("run_passes_every_af_xdp_option_to_both_ends_and_reports_them") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 4 << 20, 21);
    #[rustfmt::skip]
    let args = [
        "run", "--env", &n.name, "--mode", "af-xdp", "--file", src.to_str().unwrap(), "--json",
        "--need-wakeup", "--busy-poll", "20", "--busy-poll-budget", "16", "--tx-budget", "64",
        "--umem", "aligned", "--xdp-mode", "generic", "--zerocopy", "off", "--queue", "0", "--queues", "1",
        "--frame-layout", "contiguous",
        "--send-iface", &n.tx_if, "--recv-iface", &n.rx_if,
    ];
    let o = run_zclab(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    let x = &r["af_xdp"];
    assert_eq!(r["verified"], true);
    assert_eq!(x["attach_mode"], "generic", "{x}");
    assert!(
        x["frame_layout"].as_str().unwrap().contains("aligned") && !x["frame_layout"].as_str().unwrap().contains("unaligned"),
        "{x}"
    );
    assert_eq!((x["bind_mode"].as_str(), x["receiver_bind_mode"].as_str()), (Some("copy"), Some("copy")));
    let want = serde_json::json!({"need_wakeup": true, "busy_poll_us": 20, "busy_poll_budget": 16, "tx_budget": 64});
    assert_eq!(x["sender_knobs"], want, "{x}");
    let want = serde_json::json!({"need_wakeup": true, "busy_poll_us": 20, "busy_poll_budget": 16, "tx_budget": null});
    assert_eq!(x["receiver_knobs"], want, "{x}");
    assert!(x["kicks"].as_u64().unwrap() > 0, "{x}");
    assert_eq!(x["layout"], "contiguous", "{x}");
    assert_eq!((x["sender_queues"].as_array().unwrap().len(), x["receiver_queues"].as_array().unwrap().len()), (1, 1), "{x}");
    // The options are af-xdp's: another mode refuses none of them, and ignores them.
    let o = run_zclab(&["run", "--env", &n.name, "--mode", "splice", "--file", src.to_str().unwrap(), "--need-wakeup"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn aligned_and_unaligned_umem_both_work() {
    if !privileged("aligned_and_unaligned_umem_both_work") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (3 << 20) + 333, 12);
    let n = env.names().clone();
    for umem in ["aligned", "unaligned"] {
        let out = dir.path(&format!("out-{umem}"));
        let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--json"]);
        let s = send(&n.tx_ns, "10.77.0.2:7777", "af-xdp", &src, &["--umem", umem, "--json"]);
        let r = recv.wait_with_output().unwrap();
        assert!(s.status.success() && r.status.success(), "{umem}: {} {}", stderr(&s), stderr(&r));
        let sr = json(&s);
        assert!(sr["af_xdp"]["frame_layout"].as_str().unwrap().contains(&format!("({umem} UMEM)")), "{sr}");
        assert_eq!(sr["af_xdp"]["tx_invalid"], 0, "no descriptor crossed a chunk edge: {sr}");
        assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&out).unwrap(), "{umem}");
    }
}

#[test]
fn sigkill_leaves_no_xdp_program_behind() {
    if !privileged("sigkill_leaves_no_xdp_program_behind") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 256 << 20, 13);
    let n = env.names().clone();
    for victim in ["receiver", "sender"] {
        let out = dir.path("out");
        let mut recv = spawn_quiet_recv(&n.rx_ns, &out);
        let mut send = spawn_send(&n.tx_ns, "af-xdp", &src, &[], Stdio::null());
        // Wait until the receiver's program is attached, i.e. the transfer runs.
        let t = Instant::now();
        while !xdp_attached(&n.rx_ns, &n.rx_if) {
            assert!(t.elapsed() < Duration::from_secs(10), "the XDP program never appeared");
            std::thread::sleep(Duration::from_millis(5));
        }
        let (killed, other) = if victim == "receiver" { (&mut recv, &mut send) } else { (&mut send, &mut recv) };
        killed.kill().unwrap(); // SIGKILL: no destructor runs
        killed.wait().unwrap();
        // The other end notices within its timeout (default 10 s) and exits.
        let t = Instant::now();
        let status = loop {
            if let Some(st) = other.try_wait().unwrap() {
                break st;
            }
            assert!(t.elapsed() < Duration::from_secs(15), "the {victim}'s peer hangs");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "a transfer whose peer died cannot succeed");
        let t = Instant::now();
        while xdp_attached(&n.rx_ns, &n.rx_if) {
            assert!(t.elapsed() < Duration::from_secs(3), "XDP program left on {} after the {victim} was killed", n.rx_if);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!xdp_attached(&n.tx_ns, &n.tx_if));
        let leftovers: Vec<String> = files_in(&dir.0).into_iter().filter(|f| f != "src").collect();
        if victim == "sender" {
            assert!(leftovers.is_empty(), "the receiver cleans up after a dead sender: {leftovers:?}");
        }
        for f in leftovers {
            // A SIGKILLed receiver cannot remove its partial file; nothing else may be there.
            assert!(f.contains(".zclab-partial-"), "unexpected file {f}");
            std::fs::remove_file(dir.path(&f)).unwrap();
        }
    }
}

#[test]
fn af_xdp_reaches_a_receiver_behind_a_router() {
    if !privileged("af_xdp_reaches_a_receiver_behind_a_router") {
        return;
    }
    let net = Routed::up();
    let dir = Scratch::new();
    let (src, out) = (dir.path("src"), dir.path("out"));
    random_file(&src, (2 << 20) + 5, 31);
    let recv = spawn_recv(&net.ns[2], "10.78.2.1:7777", &out, &["--json"]);
    let s = send(&net.ns[0], "10.78.2.1:7777", "af-xdp", &src, &["--json"]);
    let r = recv.wait_with_output().unwrap();
    assert!(s.status.success() && r.status.success(), "{} {}", stderr(&s), stderr(&r));
    let sr = json(&s);
    let hop = sr["af_xdp"]["next_hop"].as_str().unwrap();
    assert!(hop.starts_with("10.78.1.254 ") && hop.contains("neighbour table"), "frames go to the router's MAC: {sr}");
    assert_eq!(std::fs::read(&src).unwrap(), std::fs::read(&out).unwrap());
}

#[test]
fn ctrl_c_on_run_leaves_nothing_behind() {
    if !privileged("ctrl_c_on_run_leaves_nothing_behind") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 512 << 20, 41);
    let n = env.names().clone();
    let keep = dir.path("kept");
    for delay_ms in [50u64, 200, 400] {
        let run = zclab()
            .args([
                "run",
                "--env",
                &n.name,
                "--mode",
                "af-xdp",
                "--file",
                src.to_str().unwrap(),
                "--keep",
                keep.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map(Reaped::new)
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        zclab::sys::kill(run.id(), libc::SIGINT).unwrap();
        let t = Instant::now();
        let o = run.wait_with_output().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "Ctrl-C took {:?}", t.elapsed());
        if o.status.success() {
            continue; // finished before the signal: nothing to check
        }
        assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
        // Both ends were asked to stop and cleaned up after themselves.
        let t = Instant::now();
        loop {
            let left = Command::new("pgrep").args(["-f", &format!("netns {}-", n.name)]).output().unwrap();
            if left.stdout.is_empty() {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "zclab ends still running: {}", String::from_utf8_lossy(&left.stdout));
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!xdp_attached(&n.rx_ns, &n.rx_if), "XDP program left attached after Ctrl-C");
        assert_eq!(files_in(&dir.0), vec!["src".to_string()], "after Ctrl-C at {delay_ms} ms");
    }
}

#[test]
fn tmpfs_is_named_and_no_bypass_is_claimed() {
    if !privileged("tmpfs_is_named_and_no_bypass_is_claimed") {
        return;
    }
    let shm = std::path::Path::new("/dev/shm");
    let src = shm.join(format!("zclab-test-{}", unique_name()));
    random_file(&src, 300_000, 51);
    let direct = zclab::sys::file::dio_align(&std::fs::File::open(&src).unwrap()).unwrap().is_some();
    let env = env();
    let dir = Scratch::new();
    let out = dir.path("out");
    let n = env.names().clone();
    let recv = spawn_recv(&n.rx_ns, "10.77.0.2:7777", &out, &["--json"]);
    let s = send(&n.tx_ns, "10.77.0.2:7777", "af-xdp", &src, &["--json"]);
    let r = recv.wait_with_output().unwrap();
    let same = std::fs::read(&src).unwrap() == std::fs::read(&out).unwrap_or_default();
    std::fs::remove_file(&src).unwrap();
    assert!(s.status.success() && r.status.success(), "{} {}", stderr(&s), stderr(&r));
    assert!(same);
    let sr = json(&s);
    assert_eq!(sr["af_xdp"]["o_direct"], direct, "{sr}");
    if !direct {
        assert!(stderr(&s).contains("does NOT show a page-cache bypass"), "the fallback is said out loud: {}", stderr(&s));
    }
}

#[test]
fn a_link_that_goes_down_mid_transfer_is_named() {
    if !privileged("a_link_that_goes_down_mid_transfer_is_named") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 512 << 20, 17);
    let n = env.names().clone();
    let out = dir.path("out");
    let mut recv = spawn_quiet_recv(&n.rx_ns, &out);
    let send = spawn_send(&n.tx_ns, "af-xdp", &src, &[], Stdio::piped());
    let t = Instant::now();
    while !xdp_attached(&n.rx_ns, &n.rx_if) {
        assert!(t.elapsed() < Duration::from_secs(10), "the XDP program never appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100)); // well into the transfer
    let down = Command::new("ip").args(["-n", &n.tx_ns, "link", "set", &n.tx_if, "down"]).status().unwrap();
    assert!(down.success());
    let downed = Instant::now();
    let o = send.wait_with_output().unwrap();
    let took = downed.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a transfer over a dead link cannot succeed");
    assert!(err.contains("the link is down"), "the sender must name the cause: {err}");
    assert!(took < Duration::from_secs(2), "the sender took {took:?} to notice");
    let _ = recv.kill();
    let _ = recv.wait();
}

/// Every copy counted: af-xdp on a copy-mode veth must have copied each
/// byte three times on the way (and once into the receiver's page cache),
/// though the tracepoints see none of those; each step names its rule.
#[test]
fn inferred_copies_name_every_copy_and_its_rule() {
    if !privileged("inferred_copies_name_every_copy_and_its_rule") {
        return;
    }
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (2 << 20) + 9, 44);
    let name = env.names().name.clone();
    let run = |mode: &str, extra: &[&str]| {
        let mut args = vec!["run", "--env", &name, "--mode", mode, "--file", src.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let o = run_zclab(&args);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        json(&o)
    };
    let steps = |r: &Value| -> Vec<(String, f64)> {
        r["inferred_copies"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert!(s["rule"].as_str().is_some_and(|x| x.len() > 20), "every step names its rule: {s}");
                (s["what"].as_str().unwrap().to_string(), s["per_byte"].as_f64().unwrap())
            })
            .collect()
    };
    let x = run("af-xdp", &["--xdp-mode", "native"]);
    let s = steps(&x);
    let whats: Vec<&str> = s.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(whats, ["UMEM -> skb", "skb -> page-pool page", "packet -> receiving UMEM", "UMEM -> page cache"], "{x}");
    assert_eq!(x["inferred_copies"]["per_byte"], 4.0, "{x}");
    // Generic XDP on the receiving veth: no skb_pp_cow_data copy.
    let g = run("af-xdp", &["--xdp-mode", "generic"]);
    assert_eq!(g["inferred_copies"]["per_byte"], 3.0, "{g}");
    let sf = run("sendfile", &[]);
    assert_eq!(steps(&sf), [("pipe -> page cache".to_string(), 1.0)], "{sf}");
    let rw = run("read-write", &["--via", "read"]);
    assert_eq!(rw["inferred_copies"]["per_byte"], 4.0, "read, write, read, pwrite: {rw}");
}

/// The interfaces' own counts, not a tracepoint's: AF_XDP transmits straight
/// to the driver, where net_dev_xmit does not see it, so the report takes
/// each end's packets from its interface; checked against `ip -s link`.
#[test]
fn device_counts_come_from_the_interfaces_themselves() {
    if !privileged("device_counts_come_from_the_interfaces_themselves") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 8 << 20, 45);
    let tx_packets = || {
        let o = Command::new("ip").args(["-n", &n.tx_ns, "-s", "-j", "link", "show", "dev", &n.tx_if]).output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
    };
    let before = tx_packets();
    let o = run_zclab(&["run", "--env", &n.name, "--mode", "af-xdp", "--file", src.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let outside = tx_packets() - before;
    let r = json(&o);
    let packets = r["packets"].as_u64().unwrap();
    let s = &r["sender_iface"];
    assert_eq!(s["iface"], n.tx_if.as_str(), "{r}");
    let sent = s["tx_packets"].as_u64().unwrap();
    assert!(sent >= packets, "every data packet went out of the interface: {sent} < {packets}: {r}");
    assert!(sent <= outside, "within what `ip -s link` counted over the whole command: {sent} > {outside}");
    assert!(r["receiver_iface"]["rx_packets"].as_u64().unwrap() >= packets, "{r}");
}
