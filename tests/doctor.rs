//! `zclab doctor`: every row present, each decided by the kernel of this
//! machine; on a lab veth, AF_XDP copy mode works and zero copy does not,
//! with the driver's reason.

mod common;

use common::*;
use serde_json::Value;

fn find<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["rows"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no row {name:?}: {d}"))
}

#[test]
fn doctor_on_a_lab_veth_reports_every_row_and_what_veth_cannot_do() {
    if !privileged("doctor_on_a_lab_veth_reports_every_row") {
        return;
    }
    let env = env();
    let n = env.names();
    let o = run_zclab(&["doctor", "--netns", &n.rx_ns, "--iface", &n.rx_if, "--json"]);
    assert!(o.status.success(), "no required row fails on the lab's machines: {}", String::from_utf8_lossy(&o.stdout));
    let d = json(&o);
    for name in [
        "root and capabilities",
        "kernel",
        "BTF",
        "tracepoints for --trace",
        "network namespaces and veth",
        "lab veth: native XDP",
        "lab veth: generic XDP",
        "lab veth: AF_XDP copy mode",
        "lab veth: AF_XDP zero copy",
        "io_uring SEND_ZC",
        "MSG_ZEROCOPY",
        "TCP_ZEROCOPY_RECEIVE",
        "O_DIRECT",
        "locked memory (the UMEM)",
        "huge pages",
        "CPUs",
        "clang (lesson 9 --check)",
    ] {
        let r = find(&d, name);
        assert!(r["detail"].as_str().is_some_and(|s| !s.is_empty()), "{name}: every row says what it found: {r}");
        if r["works"] == false {
            assert!(r["fix"].is_string(), "{name}: a row that does not work names its fix: {r}");
        }
    }
    assert_eq!(find(&d, "lab veth: AF_XDP copy mode")["works"], true);
    let zc = find(&d, "lab veth: AF_XDP zero copy");
    assert_eq!(zc["works"], false, "veth has no zero copy: {zc}");
    assert!(zc["detail"].as_str().unwrap().contains("Operation not supported"), "the kernel's reason: {zc}");
    assert_eq!(zc["optional"], true);
    // The named interface, read only: the driver's own word on XDP, queues, MTU.
    let if_ = &n.rx_if;
    let f = find(&d, &format!("{if_}: XDP features (the driver's word)"));
    assert_eq!(f["works"], true, "{f}");
    assert!(f["detail"].as_str().unwrap().contains("basic, redirect"), "{f}");
    assert_eq!(find(&d, &format!("{if_}: AF_XDP zero copy (the driver's word)"))["works"], false);
    assert!(find(&d, &format!("{if_}: queues"))["detail"].as_str().unwrap().starts_with("1 RX, 1 TX"));
    assert!(find(&d, &format!("{if_}: MTU"))["detail"].as_str().unwrap().starts_with("MTU 1500"));
    assert!(
        !d["rows"].as_array().unwrap().iter().any(|r| r["name"].as_str().unwrap().contains("--probe")),
        "nothing probed on the named interface without --probe"
    );
    // The namespaces this doctor made (named in its row) are gone; another
    // test's doctor may be running beside this one with its own.
    let made = find(&d, "network namespaces and veth")["detail"].as_str().unwrap().to_string();
    let own: Vec<&str> = made.split_whitespace().filter(|w| w.starts_with("zdoc")).collect();
    assert_eq!(own.len(), 2, "it made its own two namespaces and names them: {made}");
    let ns = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    for name in own {
        assert!(!ns.lines().any(|l| l.split_whitespace().next() == Some(name)), "the doctor's own {name} is gone: {ns}");
    }
}

#[test]
fn doctor_refuses_what_it_cannot_do() {
    let o = run_zclab(&["doctor", "--probe"]);
    assert!(!o.status.success() && stderr(&o).contains("--iface"), "--probe needs an interface: {}", stderr(&o));
    if !privileged("doctor_refuses_what_it_cannot_do") {
        return;
    }
    let o = run_zclab(&["doctor", "--iface", "zclab-no-such-if", "--json"]);
    assert!(!o.status.success(), "a named interface that is missing is a required row that fails");
    let d = json(&o);
    let r = find(&d, "zclab-no-such-if: interface");
    assert_eq!(r["works"], false);
    assert!(r["fix"].is_string());
}
