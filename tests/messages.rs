//! `zclab latency` and `zclab rate` on real lab environments: every mode
//! and waiting style, counts that add up, loss that is counted, both ends
//! by hand, and the bad inputs that must be refused.

mod common;

use common::*;
use serde_json::Value;
use zclab::netns::{EnvConfig, LabEnv, RX_ADDR};

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn run_json(args: &[&str]) -> Value {
    let o = run_zclab(args);
    assert!(o.status.success(), "zclab {} failed: {}", args.join(" "), stderr(&o));
    json(&o)
}

/// No XDP program is left on either end of the environment.
fn no_xdp_left(env: &LabEnv) {
    let n = env.names();
    for (ns, dev) in [(&n.tx_ns, &n.tx_if), (&n.rx_ns, &n.rx_if)] {
        let o = std::process::Command::new("ip").args(["-n", ns, "link", "show", "dev", dev]).output().unwrap();
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(!s.contains("xdp"), "an XDP program was left on {dev}: {s}");
    }
}

#[test]
fn latency_runs_every_mode_and_waiting_style_and_every_reply_is_accounted_for() {
    if !privileged("latency_runs_every_mode_and_waiting_style") {
        return;
    }
    let env = env();
    let name = env.names().name.clone();
    for mode in ["tcp", "udp", "af-xdp"] {
        for wait in [&[][..], &["--spin"][..], &["--busy-poll", "20"][..]] {
            let mut args = vec!["latency", "--env", &name, "--mode", mode, "--count", "400", "--warmup", "50", "--json"];
            args.extend_from_slice(wait);
            let r = run_json(&args);
            let what = format!("{mode} {wait:?}");
            let typed: zclab::messages::latency::LatencyReport =
                serde_json::from_value(r.clone()).expect("the report reads back");
            assert_eq!(typed.completed, u(&r, "completed"), "{what}");
            assert_eq!(r["mode"], mode, "{what}");
            assert_eq!(u(&r, "completed") + u(&r, "lost"), 400, "{what}: timed + lost = asked: {r}");
            assert_eq!(u(&r, "wrong_replies"), 0, "{what}: every reply answers a request that was sent: {r}");
            // A reply that comes after its request's timeout is late, and that request lost.
            assert!(u(&r, "late_replies") <= u(&r, "lost") + u(&r, "lost_warmup"), "{what}: {r}");
            assert!(u(&r, "completed") >= 396, "{what}: a clean veth loses (almost) nothing: {r}");
            let (p50, p99, max) = (f(&r, "p50_us"), f(&r, "p99_us"), f(&r, "max_us"));
            assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{what}: percentiles in order: {r}");
            assert_eq!(r["percentiles"].as_array().unwrap().len(), 6, "{what}");
            assert_eq!(u(&r["client"], "messages"), u(&r, "completed"), "{what}");
            // The server answered every request that came, warm-up ones too.
            assert_eq!(u(&r["server"], "messages"), 450 - u(&r, "lost") - u(&r, "lost_warmup"), "{what}: {r}");
            let expected_wait = match wait.first() {
                None => "block",
                Some(&"--spin") => "spin",
                _ => "busy-poll 20us",
            };
            assert_eq!(r["client"]["wait"], expected_wait, "{what}");
            assert_eq!(r["server"]["wait"], expected_wait, "{what}");
            assert!(f(&r["client"], "syscalls_per_msg") >= 1.0, "{what}: a send, or a kick, per message at least");
            if expected_wait == "spin" {
                assert!(f(&r["client"], "ctx_switches_per_msg") < 0.2, "{what}: a spinning end hardly sleeps: {r}");
            }
            if mode == "af-xdp" {
                assert_eq!(r["client"]["link"]["zerocopy"], false, "veth is copy mode");
                assert!(r["server"]["link"]["xdp_mode"].is_string(), "the server attached its program: {r}");
                assert!(r["client"]["link"]["xdp_mode"].is_string(), "the client receives replies behind a program: {r}");
            }
        }
    }
    no_xdp_left(&env);
}

#[test]
fn rate_runs_every_mode_and_sent_is_delivered_plus_lost() {
    if !privileged("rate_runs_every_mode") {
        return;
    }
    let env = env();
    let name = env.names().name.clone();
    for (mode, wait) in
        [("udp", None), ("udp", Some("--spin")), ("udp-mmsg", None), ("tcp", None), ("af-xdp", None), ("af-xdp", Some("--spin"))]
    {
        let mut args = vec!["rate", "--env", &name, "--mode", mode, "--count", "20000", "--json"];
        args.extend(wait);
        let r = run_json(&args);
        let what = format!("{mode} {wait:?}");
        assert_eq!(u(&r, "sent"), 20000, "{what}: {r}");
        assert_eq!(u(&r, "delivered") + u(&r, "lost"), u(&r, "sent"), "{what}: {r}");
        assert_eq!(u(&r, "duplicated"), 0, "{what}");
        assert!(u(&r, "delivered") > 0 && f(&r, "delivered_per_s") > 0.0, "{what}: {r}");
        assert_eq!(u(&r["client"], "messages"), 20000, "{what}");
        if mode == "tcp" {
            assert_eq!(u(&r, "lost"), 0, "a stream loses nothing");
            assert_eq!(u(&r, "reordered"), 0, "a stream keeps its order");
        }
        if mode == "udp-mmsg" {
            assert!(f(&r["client"], "syscalls_per_msg") < 0.1, "64 messages a sendmmsg: {r}");
        }
    }
    no_xdp_left(&env);
}

#[test]
fn rate_counts_the_loss_of_a_lossy_router() {
    if !privileged("rate_counts_the_loss_of_a_lossy_router") {
        return;
    }
    let env = LabEnv::up(&EnvConfig {
        name: unique_name(),
        mtu: None,
        queues: None,
        router: Some(zclab::netns::Router { loss_pct: 5.0, rate: None }),
        ipv6: false,
        verbose: false,
    })
    .expect("env up");
    let name = env.names().name.clone();
    // af-xdp's receiver has no backlog to overflow (native XDP), so what it misses is the
    // router's 5% (1000 of 20000 give or take 93, 3 sigma) and what its own socket counted
    // as dropped (XDP_STATISTICS rx_dropped: its fill ring ran dry under load in one CI run).
    let r = run_json(&["rate", "--env", &name, "--mode", "af-xdp", "--count", "20000", "--json"]);
    let own = r["server"]["link"]["xdp_statistics"]["rx_dropped"].as_u64().unwrap();
    let pct = (u(&r, "lost").saturating_sub(own)) as f64 / 200.0;
    assert!((3.5..=8.0).contains(&pct), "about 5% lost on the way ({own} dropped by the receiver's own socket): {r}");
    assert_eq!(u(&r, "delivered") + u(&r, "lost"), 20000);
    // Kernel UDP loses the router's share at least (its receiver may drop more).
    let r = run_json(&["rate", "--env", &name, "--mode", "udp", "--count", "20000", "--json"]);
    assert!(f(&r, "loss_pct") >= 3.5, "the router's loss shows: {r}");
    assert_eq!(u(&r, "delivered") + u(&r, "lost"), 20000);
}

#[test]
fn both_ends_by_hand_report_alike() {
    if !privileged("both_ends_by_hand_report_alike") {
        return;
    }
    let env = env();
    let n = env.names().clone();
    let addr = format!("{RX_ADDR}:7791");
    for (cmd, mode) in [("rate", "udp"), ("latency", "af-xdp")] {
        let server = Reaped::new(
            zclab()
                .args([cmd, "--listen", &addr, "--netns", &n.rx_ns, "--json", "--accept-timeout", "20"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let count = if cmd == "rate" { "5000" } else { "300" };
        let c = run_json(&[cmd, "--to", &addr, "--netns", &n.tx_ns, "--mode", mode, "--count", count, "--json"]);
        let s = server.wait_with_output().unwrap();
        assert!(s.status.success(), "server: {}", stderr(&s));
        let s = json(&s);
        assert_eq!(s["mode"], mode);
        assert_eq!(s["server"], c["server"], "the client's report holds the server's own account");
        if cmd == "rate" {
            assert_eq!(u(&s["stream"], "delivered"), u(&c, "delivered"));
        }
    }
    no_xdp_left(&env);
}

#[test]
fn bad_input_is_refused_with_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["latency", "--mode", "udp", "--size", "8"], "at least 16 bytes"),
        (&["rate", "--mode", "udp", "--count", "0"], "--count must be between 1"),
        (&["rate", "--mode", "udp", "--duration", "0"], "--duration must be more than 0"),
        (&["latency", "--mode", "udp", "--count", "0"], "--count must be at least 1"),
        (&["latency", "--mode", "tcp", "--need-wakeup"], "--need-wakeup is an af-xdp option"),
        (&["rate", "--mode", "udp", "--xdp-mode", "native"], "--xdp-mode is an af-xdp option"),
        (&["latency", "--mode", "udp-mmsg"], "use udp"),
        (&["latency", "--mode", "udp", "--size", "100000"], "too large for udp"),
        (&["latency", "--mode", "af-xdp", "--size", "4000"], "4096-byte UMEM chunk"),
    ];
    for (args, want) in cases {
        let o = run_zclab(args);
        let e = stderr(&o);
        assert!(!o.status.success(), "{args:?} must fail");
        assert!(e.contains(want), "{args:?}: expected {want:?} in: {e}");
        assert_eq!(e.lines().count(), 1, "{args:?}: one line: {e}");
    }
    let o = run_zclab(&["latency", "--mode", "udp", "--spin", "--busy-poll", "10"]);
    assert!(!o.status.success() && stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

#[test]
fn a_size_over_the_mtu_and_a_server_that_never_answers_end_clearly_and_leave_nothing() {
    if !privileged("a_server_that_never_answers") {
        return;
    }
    let env = env();
    let name = env.names().name.clone();
    let o = run_zclab(&["latency", "--env", &name, "--mode", "udp", "--size", "1473"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("at most 1472 bytes") && stderr(&o).contains("MTU 1500"), "{}", stderr(&o));
    drop(env);
    // A router that drops every UDP packet: the server never answers.
    let env = LabEnv::up(&EnvConfig {
        name: unique_name(),
        mtu: None,
        queues: None,
        router: Some(zclab::netns::Router { loss_pct: 100.0, rate: None }),
        ipv6: false,
        verbose: false,
    })
    .expect("env up");
    let name = env.names().name.clone();
    for mode in ["udp", "af-xdp"] {
        let t = std::time::Instant::now();
        let o = run_zclab(&["latency", "--env", &name, "--mode", mode, "--count", "1000", "--timeout", "1"]);
        assert!(!o.status.success(), "{mode}");
        let e = stderr(&o);
        assert!(e.contains("no reply for 1.0 s") && e.contains("answered 0 of"), "{mode}: {e}");
        assert!(t.elapsed().as_secs() < 15, "{mode}: it gave up after its timeout, not after 1000 timeouts");
    }
    no_xdp_left(&env);
    let ps = std::process::Command::new("pgrep").args(["-f", "--", &format!("--netns {name}")]).output().unwrap();
    assert!(ps.stdout.is_empty(), "no end left running: {}", String::from_utf8_lossy(&ps.stdout));
}

#[test]
fn ctrl_c_stops_both_ends_and_leaves_nothing() {
    if !privileged("ctrl_c_stops_both_ends_and_leaves_nothing") {
        return;
    }
    let env = env();
    let name = env.names().name.clone();
    for (cmd, extra) in [("rate", ["--duration", "30"]), ("latency", ["--count", "10000000"])] {
        let child = zclab()
            .args([cmd, "--env", &name, "--mode", "af-xdp", "--spin", extra[0], extra[1]])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map(Reaped::new)
            .unwrap();
        // Long enough for both ends to be sending: the XDP programs are attached.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        zclab::sys::kill(child.id(), libc::SIGINT).unwrap();
        let t = std::time::Instant::now();
        let o = child.wait_with_output().unwrap();
        assert!(t.elapsed().as_secs() < 8, "{cmd}: Ctrl-C took {:?}", t.elapsed());
        assert_eq!(o.status.code(), Some(130), "{cmd}: {}", stderr(&o));
        let t = std::time::Instant::now();
        loop {
            let left = std::process::Command::new("pgrep").args(["-f", "--", &format!("--netns {name}-")]).output().unwrap();
            if left.stdout.is_empty() {
                break;
            }
            assert!(t.elapsed().as_secs() < 5, "{cmd}: ends still running: {}", String::from_utf8_lossy(&left.stdout));
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        no_xdp_left(&env);
    }
}

/// The `rx_queue_N_xdp_packets` counters of an interface (`ethtool -S`, the
/// veth driver's own), queue by queue.
fn xdp_packets_per_queue(ns: &str, dev: &str) -> Vec<u64> {
    let o = std::process::Command::new("ip").args(["netns", "exec", ns, "ethtool", "-S", dev]).output().unwrap();
    assert!(o.status.success(), "ethtool -S {dev}: {}", String::from_utf8_lossy(&o.stderr));
    let mut per = Vec::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("rx_queue_") {
            if let Some((q, v)) = rest.split_once("_xdp_packets:") {
                let q: usize = q.parse().unwrap();
                per.resize(per.len().max(q + 1), 0);
                per[q] = v.trim().parse().unwrap();
            }
        }
    }
    per
}

#[test]
fn af_xdp_messages_take_queues_as_send_and_recv_do() {
    if !privileged("af_xdp_messages_take_queues") {
        return;
    }
    let env = env_queues(2, None);
    let n = env.names().clone();
    // --queues 2: both ends a socket on each queue; the client's sends take turns, and
    // the receiving veth's own counters see both queues carry them.
    let before = xdp_packets_per_queue(&n.rx_ns, &n.rx_if);
    let r = run_json(&["rate", "--env", &n.name, "--mode", "af-xdp", "--queues", "2", "--count", "20000", "--json"]);
    let after = xdp_packets_per_queue(&n.rx_ns, &n.rx_if);
    assert_eq!(u(&r, "delivered") + u(&r, "lost"), 20000, "{r}");
    assert!(u(&r, "delivered") > 19000, "{r}");
    assert_eq!(r["server"]["link"]["queues"], serde_json::json!([0, 1]), "{r}");
    assert_eq!(r["client"]["link"]["queues"], serde_json::json!([0, 1]), "{r}");
    for q in 0..2 {
        assert!(after[q] - before[q] >= 9000, "queue {q} carried its turns: {before:?} -> {after:?}");
    }
    // Round trips: a reply leaves from the queue its request came in on, and comes back.
    let l = run_json(&["latency", "--env", &n.name, "--mode", "af-xdp", "--queues", "2", "--count", "400", "--json"]);
    assert_eq!(u(&l, "lost"), 0, "{l}");
    // --queue 1 alone: only queue 1.
    let before = xdp_packets_per_queue(&n.rx_ns, &n.rx_if);
    let r = run_json(&["rate", "--env", &n.name, "--mode", "af-xdp", "--queue", "1", "--count", "5000", "--json"]);
    let after = xdp_packets_per_queue(&n.rx_ns, &n.rx_if);
    assert_eq!(r["server"]["link"]["queues"], serde_json::json!([1]), "{r}");
    assert!(after[1] - before[1] >= 5000, "{before:?} -> {after:?}");
    assert!(after[0] - before[0] < 100, "queue 0 carried only the odd stray: {before:?} -> {after:?}");
    // More queues than the veth has: a clear error, nothing left behind.
    let o = run_zclab(&["rate", "--env", &n.name, "--mode", "af-xdp", "--queues", "3", "--count", "100"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("beyond") && stderr(&o).contains("--queues"), "{}", stderr(&o));
    // And a socket mode refuses the option rather than ignoring it.
    let o = run_zclab(&["rate", "--env", &n.name, "--mode", "udp", "--queues", "2", "--count", "100"]);
    assert!(!o.status.success() && stderr(&o).contains("--queues is an af-xdp option"), "{}", stderr(&o));
    no_xdp_left(&env);
}
