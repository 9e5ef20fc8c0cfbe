//! The next hop and its MAC from rtnetlink, IPv4 and IPv6, through the lab's
//! router: a neighbour that is not resolved yet is resolved, one that never
//! answers is named with its timeout, and a route out of another interface
//! is refused. Then af-xdp crosses the router over IPv6.

mod common;

use common::*;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use zclab::netns::{ROUTER_TX_SIDE, ROUTER_TX_SIDE6, RX_ADDR, RX_ADDR6};
use zclab::route::RouteError;

fn ip(args: &[&str]) -> String {
    let o = std::process::Command::new("ip").args(args).output().unwrap();
    assert!(o.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The MAC of `dev` in namespace `ns`, as `ip` prints it.
fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let v: serde_json::Value = serde_json::from_str(&ip(&["-n", ns, "-j", "link", "show", "dev", dev])).unwrap();
    zclab::wire::parse_mac(v[0]["address"].as_str().unwrap()).unwrap()
}

#[test]
fn next_hops_resolve_through_the_router_for_ipv4_and_ipv6() {
    if !privileged("next_hops_resolve_through_the_router") {
        return;
    }
    let env = env_routed_v6();
    let n = env.names().clone();
    let router_mac = mac_of(&n.rt_ns, &n.rt_tx_if);
    // Nothing is resolved: the neighbour table of the sending side is emptied first.
    ip(&["-n", &n.tx_ns, "neigh", "flush", "all"]);
    ip(&["-n", &n.tx_ns, "route", "add", "10.77.1.200", "dev", &n.tx_if]);
    ip(&["-n", &n.tx_ns, "route", "add", "10.77.9.9", "via", "10.77.1.200", "dev", &n.tx_if]);
    let (ns, dev) = (n.tx_ns.clone(), n.tx_if.clone());
    let results = std::thread::spawn(move || {
        zclab::sys::netns::enter(&ns).unwrap();
        let ifindex = zclab::sys::iface::if_index(&dev).unwrap();
        let v4 = zclab::route::resolve(&dev, ifindex, RX_ADDR.into(), Duration::from_secs(2));
        let v6 = zclab::route::resolve(&dev, ifindex, RX_ADDR6.into(), Duration::from_secs(2));
        let other = zclab::route::resolve("lo", 1, RX_ADDR.into(), Duration::from_secs(1));
        let t = Instant::now();
        let never = zclab::route::resolve(&dev, ifindex, "10.77.9.9".parse().unwrap(), Duration::from_millis(300));
        (v4, v6, other, never, t.elapsed())
    })
    .join()
    .unwrap();
    let (v4, v6, other, never, waited) = results;
    let v4 = v4.expect("IPv4 resolves");
    assert_eq!((v4.hop, v4.mac, v4.via_gateway), (IpAddr::from(ROUTER_TX_SIDE), router_mac, true), "{v4:?}");
    let v6 = v6.expect("IPv6 resolves (neighbour discovery)");
    assert_eq!((v6.hop, v6.mac, v6.via_gateway), (IpAddr::from(ROUTER_TX_SIDE6), router_mac, true), "{v6:?}");
    match other {
        Err(RouteError::OtherInterface { oif, .. }) => assert_eq!(oif, v4.ifindex),
        r => panic!("a route out of another interface is refused: {r:?}"),
    }
    match never {
        Err(e @ RouteError::Unresolved { .. }) => {
            let m = e.to_string();
            assert!(m.contains("10.77.1.200") && m.contains("300 ms"), "names the hop and the timeout: {m}");
            assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2), "{waited:?}");
        }
        r => panic!("a hop that never answers: {r:?}"),
    }
    // What zclab read is what the kernel's own table says now.
    let neigh = ip(&["-n", &n.tx_ns, "neigh", "show", "dev", &n.tx_if]);
    assert!(neigh.contains(&ROUTER_TX_SIDE.to_string()) && neigh.contains(&ROUTER_TX_SIDE6.to_string()), "{neigh}");
}

#[test]
fn af_xdp_crosses_the_router_over_ipv6() {
    if !privileged("af_xdp_crosses_the_router_over_ipv6") {
        return;
    }
    let env = env_routed_v6();
    let n = env.names().clone();
    let dir = Scratch::new();
    let src = dir.path("src");
    random_file(&src, (3 << 20) + 11, 91);
    for mode in ["af-xdp", "udp-gso", "sendfile"] {
        #[rustfmt::skip]
        let o = run_zclab(&["run", "--env", &n.name, "--mode", mode, "--file", src.to_str().unwrap(), "--ipv6", "--json"]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let r = json(&o);
        assert_eq!(r["verified"], true, "{mode}: {r}");
        if mode == "af-xdp" {
            let hop = r["af_xdp"]["next_hop"].as_str().unwrap();
            assert!(
                hop.starts_with(&ROUTER_TX_SIDE6.to_string()) && hop.contains("gateway"),
                "the router's MAC, from the table: {hop}"
            );
        }
    }
}
