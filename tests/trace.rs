//! `--trace`: the kernel's counters back the lab's claims, and the tracing
//! programs leave nothing attached. Each test makes its own namespaces.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests of this file run one at a time: one of them looks at every BPF
/// program loaded on the machine, which the others' programs would confuse.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// `zclab run --trace --json` of `mode` on a fresh env; the merged report.
fn traced_run(mode: &str, extra: &[&str], size: usize) -> Value {
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, size, 3);
    let name = &env.names().name;
    let mut args = vec!["run", "--env", name, "--mode", mode, "--file", src.to_str().unwrap(), "--trace", "--json"];
    args.extend_from_slice(extra);
    let o = run_zclab(&args);
    assert!(o.status.success(), "{mode}: {}", stderr(&o));
    let r = json(&o);
    assert!(r["kernel"]["sender"].is_object() && r["kernel"]["receiver"].is_object(), "{r}");
    r
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not measured: {v}"))
}

/// TCP bytes the sender's kernel sent, by kind: (copied, page refs, zero copy).
fn tcp_kinds(r: &Value) -> (u64, u64, u64) {
    let k = &r["kernel"]["sender"];
    (u(&k["tcp_sent_copied_bytes"]), u(&k["tcp_sent_page_ref_bytes"]), u(&k["tcp_sent_zerocopy_bytes"]))
}

/// `bpftool OBJECT show --json`. bpftool walks the objects one id at a
/// time; one freed meanwhile (a program just detached, an RCU grace period
/// later) fails the walk, so it tries again.
fn bpftool_show(object: &str) -> Vec<Value> {
    let mut tries = 0;
    let o = loop {
        let o = Command::new("bpftool").args([object, "show", "--json"]).output().expect("bpftool runs (scripts/setup.sh)");
        tries += 1;
        if o.status.success() || tries == 5 {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        o.status.success(),
        "bpftool {object} show: {}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Array(vec![]));
    v.as_array().cloned().unwrap_or_default()
}

/// Names of the BPF programs loaded in the kernel now (`bpftool prog show`).
fn loaded_programs() -> Vec<String> {
    bpftool_show("prog").iter().filter_map(|p| p["name"].as_str().map(String::from)).collect()
}

fn tracing_programs() -> Vec<String> {
    loaded_programs().into_iter().filter(|n| n.starts_with("zct_")).collect()
}

/// IDs of the tracing programs loaded now.
fn tracing_program_ids() -> Vec<u64> {
    bpftool_show("prog")
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("zct_")))
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

/// BPF links (`bpftool link show`) whose program is one of `ids`.
fn links_to(ids: &[u64]) -> Vec<Value> {
    bpftool_show("link").into_iter().filter(|l| l["prog_id"].as_u64().is_some_and(|id| ids.contains(&id))).collect()
}

/// The kernel frees a program shortly after its last reference goes
/// (after an RCU grace period), so give it a moment, then insist.
fn assert_no_tracing_program_left(after: &str) {
    let t = Instant::now();
    while !tracing_programs().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5), "tracing programs left {after}: {:?}", tracing_programs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn af_xdp_data_skips_the_sender_socket_layer_and_page_cache() {
    if !privileged("af_xdp_data_skips_the_sender_socket_layer_and_page_cache") {
        return;
    }
    let _serial = one_at_a_time();
    let size = 16 << 20;
    let r = traced_run("af-xdp", &["--cold"], size);
    let (tx, rx) = (&r["kernel"]["sender"], &r["kernel"]["receiver"]);
    let through_socket = u(&tx["socket_sent_bytes"]);
    assert!(through_socket * 100 < size as u64, "the sender's socket layer carried {through_socket} of {size} bytes");
    assert_eq!(u(&tx["file_pages_added"]), 0, "O_DIRECT: the source file never entered the page cache: {tx}");
    let unique = u(&r["packets"]) - u(&r["retransmitted_packets"]);
    let redirects = u(&rx["xdp_redirects"]);
    assert!(redirects >= unique, "every accepted packet came through an XDP redirect: {redirects} < {unique}");
    assert!(u(&rx["dev_received_packets"]) * 10 < unique, "redirected packets never enter the stack: {rx}");
}

#[test]
fn a_udp_receiver_copies_every_byte_it_takes_small_datagrams_too() {
    if !privileged("a_udp_receiver_copies_every_byte_it_takes") {
        return;
    }
    let _serial = one_at_a_time();
    let env = env();
    let name = env.names().name.clone();
    // 64-byte datagrams are linear skbs, which udp_recvmsg copies without passing
    // skb_copy_datagram_iovec; TCP's are counted by it. Both, as much as the socket layer took.
    for (mode, udp) in [("udp", true), ("udp-mmsg", true), ("tcp", false)] {
        let o = run_zclab(&["rate", "--env", &name, "--mode", mode, "--count", "5000", "--trace", "--json"]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let r = json(&o);
        let k = &r["server"]["kernel"];
        let (copied, received) = (u(&k["copied_to_user_bytes"]), u(&k["socket_received_bytes"]));
        // (The counters cover the timed part, and a loaded machine loses UDP messages:
        // compare with the socket layer's own count over the same time, not `delivered`.)
        assert_eq!(copied, received, "{mode}: every byte received was copied once, not twice: {k}");
        assert!(copied >= 64 * 10, "{mode}: the messages' bytes were counted, not only the control's: {k}");
        if udp {
            assert!(u(&k["copied_to_user_calls"]) >= 10, "{mode}: a copy per datagram received: {k}");
        }
    }
    // A GSO/GRO file transfer's batches are counted once, not twice.
    let r = traced_run("udp-gso", &[], 4 << 20);
    let k = &r["kernel"]["receiver"];
    assert_eq!(u(&k["copied_to_user_bytes"]), u(&k["socket_received_bytes"]), "{k}");
    let file = u(&r["bytes"]);
    assert!(u(&k["copied_to_user_bytes"]) >= file && u(&k["copied_to_user_bytes"]) < file + file / 20, "{k}");
}

#[test]
fn tcp_sends_come_as_the_path_says() {
    if !privileged("tcp_sends_come_as_the_path_says") {
        return;
    }
    let _serial = one_at_a_time();
    let size = 8 << 20;
    for (mode, want) in [("sendfile", 1), ("splice", 1), ("read-write", 0), ("msg-zerocopy", 2)] {
        let r = traced_run(mode, &[], size);
        let (copied, page_refs, zerocopy) = tcp_kinds(&r);
        let all = copied + page_refs + zerocopy;
        assert!(all >= size as u64, "{mode}: the kernel saw {all} TCP bytes of {size}");
        let got = [copied, page_refs, zerocopy][want];
        assert!(got * 100 >= all * 99, "{mode}: only {got} of {all} TCP bytes came as expected: {:?}", tcp_kinds(&r));
    }
}

#[test]
fn drops_on_a_lossy_router_match_what_was_resent() {
    if !privileged("drops_on_a_lossy_router_match_what_was_resent") {
        return;
    }
    let _serial = one_at_a_time();
    let net = Routed::up();
    let nft = |rule: &str| {
        let o = Command::new("ip").args(["netns", "exec", &net.ns[1], "nft", rule]).output().expect("nft (scripts/setup.sh)");
        assert!(o.status.success(), "nft {rule}: {}", String::from_utf8_lossy(&o.stderr));
    };
    nft("add table inet lossy");
    nft("add chain inet lossy forwarded { type filter hook forward priority 0 ; }");
    nft("add rule inet lossy forwarded meta l4proto udp numgen random mod 100 < 1 drop");
    let dir = Scratch::new();
    let (src, out) = (dir.path("src"), dir.path("out"));
    random_file(&src, 16 << 20, 41);
    let recv = spawn_recv(&net.ns[2], "10.78.2.1:7777", &out, &["--json"]);
    let s = send(&net.ns[0], "10.78.2.1:7777", "af-xdp", &src, &["--json", "--trace"]);
    let r = recv.wait_with_output().unwrap();
    assert!(s.status.success() && r.status.success(), "{} {}", stderr(&s), stderr(&r));
    let sr = json(&s);
    let resent = u(&sr["packets"]["retransmitted"]);
    let k = &sr["kernel"];
    let drops = u(&k["transfer_drops"]);
    let netfilter = k["transfer_drops_by_reason"]["NETFILTER_DROP"].as_u64().unwrap_or(0);
    eprintln!("lossy router: {drops} of the transfer's packets dropped on the way ({netfilter} NETFILTER_DROP), {resent} resent");
    assert!(resent > 0, "a 1% lossy link must cost some packets: {sr}");
    assert_eq!(netfilter, drops, "every drop on the way has the router's reason: {k}");
    // A resent packet can be dropped again, and a packet can be lost elsewhere: roughly, not exactly.
    assert!(drops * 2 >= resent && drops <= resent * 2 + 5, "{drops} drops seen, {resent} packets resent: {k}");
}

#[test]
fn no_tracing_program_stays_after_a_run_or_a_sigkill() {
    if !privileged("no_tracing_program_stays_after_a_run_or_a_sigkill") {
        return;
    }
    let _serial = one_at_a_time();
    traced_run("sendfile", &[], 1 << 20);
    assert_no_tracing_program_left("after a traced run");

    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 512 << 20, 9);
    let n = env.names().clone();
    let out = dir.path("out");
    let mut recv = spawn_quiet_recv(&n.rx_ns, &out);
    let mut send = spawn_send(&n.tx_ns, "udp-gso", &src, &["--trace"], Stdio::null());
    let t = Instant::now();
    let mut ids = Vec::new();
    let mut linked = Vec::new();
    // Wait until the sender's programs are attached (links exist), i.e. the timed part runs.
    while linked.is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "the sender never attached its tracing programs");
        std::thread::sleep(Duration::from_millis(2));
        ids = tracing_program_ids();
        linked = links_to(&ids);
    }
    send.kill().unwrap(); // SIGKILL: no destructor runs
    send.wait().unwrap();
    let _ = recv.kill();
    let _ = recv.wait();
    assert_no_tracing_program_left("after SIGKILL");
    assert_eq!(links_to(&ids), Vec::<Value>::new(), "links left after SIGKILL");
}

#[test]
fn a_missing_tracepoint_leaves_its_counters_null_and_the_run_goes_on() {
    if !privileged("a_missing_tracepoint_leaves_its_counters_null_and_the_run_goes_on") {
        return;
    }
    let _serial = one_at_a_time();
    let env = env();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, 1 << 20, 5);
    let o = zclab()
        .args(["run", "--env", &env.names().name, "--mode", "read-write", "--file", src.to_str().unwrap(), "--trace", "--json"])
        .env("ZCLAB_TRACE_WITHOUT", "kfree_skb,napi_poll")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&o);
    for side in ["sender", "receiver"] {
        let k = &r["kernel"][side];
        assert!(k["drops"].is_null() && k["napi_polls"].is_null(), "not measured means null, not 0: {k}");
        assert!(u(&k["tcp_sent_copied_bytes"]) > 0 || side == "receiver", "the rest was measured: {k}");
        let missing = k["missing"].to_string();
        assert!(missing.contains("kfree_skb") && missing.contains("napi_poll"), "{missing}");
    }
    assert!(stderr(&o).contains("tracepoint kfree_skb unavailable"), "a one-line note: {}", stderr(&o));
}
