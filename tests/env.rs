//! The lab environment: up, status, down, and the mistakes people make.

mod common;

use common::*;
use std::path::Path;

fn ns_exists(ns: &str) -> bool {
    Path::new("/var/run/netns").join(ns).exists()
}

#[test]
fn up_then_down_leaves_nothing() {
    if !privileged("up_then_down_leaves_nothing") {
        return;
    }
    let name = unique_name();
    let o = run_zclab(&["env", "up", "--name", &name, "--mtu", "9000", "--queues", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("+ ip netns add {name}-tx")), "prints its ip commands: {}", stderr(&o));
    let st = String::from_utf8_lossy(&run_zclab(&["env", "status", "--name", &name]).stdout).into_owned();
    assert!(st.contains("10.77.0.1/24") && st.contains("10.77.0.2/24"), "{st}");
    assert!(st.contains("mtu 9000") && st.contains("queues tx 2 rx 2"), "{st}");
    assert!(ns_exists(&format!("{name}-tx")) && ns_exists(&format!("{name}-rx")));
    // The veth ends live only inside the namespaces, never in the root one.
    let root_links =
        String::from_utf8_lossy(&std::process::Command::new("ip").args(["-o", "link"]).output().unwrap().stdout).into_owned();
    assert!(!root_links.contains(&format!("{name}-t0")) && !root_links.contains(&format!("{name}-r0")));

    let o = run_zclab(&["env", "down", "--name", &name]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!ns_exists(&format!("{name}-tx")) && !ns_exists(&format!("{name}-rx")));
    let st = String::from_utf8_lossy(&run_zclab(&["env", "status", "--name", &name]).stdout).into_owned();
    assert!(st.contains("down"), "{st}");
    let o = run_zclab(&["env", "down", "--name", &name]);
    assert!(!o.status.success() && stderr(&o).contains("is not up"), "{}", stderr(&o));
}

#[test]
fn ipv6_gives_both_ends_an_address_and_the_router_too() {
    if !privileged("ipv6_gives_both_ends_an_address_and_the_router_too") {
        return;
    }
    let name = unique_name();
    let o = run_zclab(&["env", "up", "--name", &name, "--ipv6"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("reachable: TCP connect [fd77::1] -> [fd77::2]"), "probed over IPv6: {}", stderr(&o));
    let st = String::from_utf8_lossy(&run_zclab(&["env", "status", "--name", &name]).stdout).into_owned();
    assert!(st.contains("fd77::1/64") && st.contains("fd77::2/64") && st.contains("10.77.0.2/24"), "{st}");
    assert!(!st.contains("fe80::"), "link-local addresses are left out: {st}");
    assert!(run_zclab(&["env", "down", "--name", &name]).status.success());
    let o = run_zclab(&["env", "up", "--name", &name, "--ipv6", "--router"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("reachable: TCP connect [fd77::1] -> [fd77::2]"), "routed over IPv6: {}", stderr(&o));
    let st = String::from_utf8_lossy(&run_zclab(&["env", "status", "--name", &name]).stdout).into_owned();
    assert!(st.contains("fd77:1::fe/128") && st.contains("fd77:2::fe/128") && st.contains("fd77::2/128"), "{st}");
    assert!(run_zclab(&["env", "down", "--name", &name]).status.success());
    assert!(!ns_exists(&format!("{name}-rt")), "the router went too");
}

#[test]
fn up_twice_is_a_clear_error_and_keeps_the_first() {
    if !privileged("up_twice_is_a_clear_error_and_keeps_the_first") {
        return;
    }
    let env = env();
    let name = env.names().name.clone();
    let o = run_zclab(&["env", "up", "--name", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already up") && stderr(&o).contains("env down"), "{}", stderr(&o));
    // The first environment still carries a transfer.
    let dir = Scratch::new();
    let src = dir.path("f");
    random_file(&src, 5000, 1);
    let o = run_zclab(&["run", "--env", &name, "--mode", "read-write", "--file", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_names_and_values_are_refused_before_anything_is_made() {
    // Validation happens before any privilege is needed or anything is made.
    let o = run_zclab(&["env", "up", "--name", "muchtoolongname"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("1 to 12 characters"), "{}", stderr(&o));
    assert!(!ns_exists("muchtoolongname-tx"));
    let o = run_zclab(&["env", "up", "--name", "a/b"]);
    assert!(stderr(&o).contains("only letters"), "{}", stderr(&o));
}

#[test]
fn run_on_an_env_that_is_not_up_says_how_to_fix_it() {
    if !privileged("run_on_an_env_that_is_not_up_says_how_to_fix_it") {
        return;
    }
    let o = run_zclab(&["run", "--env", &unique_name(), "--mode", "splice", "--file", "/etc/hostname"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not up") && stderr(&o).contains("zclab env up"), "{}", stderr(&o));
}
