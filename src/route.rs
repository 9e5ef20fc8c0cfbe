//! What the kernel's tables say about reaching an IPv4 host: which next hop
//! a route sends it to (`/proc/net/route`), and that next hop's MAC address
//! (`/proc/net/arp`, the neighbour table). AF_XDP frames skip the kernel's
//! routing, so the af-xdp sender asks the same questions the kernel would:
//! a receiver behind a router needs the *router's* MAC in the frame.
//!
//! Both files show the network namespace of the reading process.

use std::net::Ipv4Addr;

/// The next hop for `dst` out of `iface`: the gateway of the longest
/// matching route, or `dst` itself when it is on-link. `None` if no route
/// on that interface matches.
pub fn next_hop(route_table: &str, iface: &str, dst: Ipv4Addr) -> Option<Ipv4Addr> {
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in route_table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0] != iface {
            continue;
        }
        // The kernel prints the address bytes as one host-order (little-endian) hex word.
        let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(|v| u32::from_be_bytes(v.to_le_bytes()));
        let (Some(net), Some(gw), Some(mask)) = (hex(f[1]), hex(f[2]), hex(f[7])) else { continue };
        if u32::from(dst) & mask != net & mask {
            continue;
        }
        let via = if gw == 0 { dst } else { Ipv4Addr::from(gw) };
        if best.is_none_or(|(m, _)| mask.count_ones() > m.count_ones()) {
            best = Some((mask, via));
        }
    }
    best.map(|(_, v)| v)
}

/// The MAC of `ip` on `iface` in the neighbour table, if resolved.
pub fn neighbour_mac(arp_table: &str, iface: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    arp_table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // IP address, HW type, Flags, HW address, Mask, Device; flag 0x2 = complete.
        let complete =
            f.get(2).and_then(|x| u32::from_str_radix(x.trim_start_matches("0x"), 16).ok()).is_some_and(|x| x & 2 != 0);
        (f.len() >= 6 && f[5] == iface && f[0].parse::<Ipv4Addr>().ok() == Some(ip) && complete)
            .then(|| crate::wire::parse_mac(f[3]))
            .flatten()
    })
}

/// Both lookups on this namespace's live tables: (next hop, its MAC).
pub fn resolve(iface: &str, dst: Ipv4Addr) -> Option<(Ipv4Addr, [u8; 6])> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let hop = next_hop(&routes, iface, dst)?;
    let arp = std::fs::read_to_string("/proc/net/arp").ok()?;
    neighbour_mac(&arp, iface, hop).map(|m| (hop, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t01004D0A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
    const ARP: &str = "IP address       HW type     Flags       HW address            Mask     Device
10.77.0.2        0x1         0x2         c2:b9:6e:0b:94:79     *        eth0
10.77.0.1        0x1         0x2         02:00:00:00:00:01     *        eth0
10.77.0.9        0x1         0x0         00:00:00:00:00:00     *        eth0
";

    #[test]
    fn on_link_goes_direct_and_the_rest_via_the_gateway() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(next_hop(ROUTES, "eth0", ip("10.77.0.2")), Some(ip("10.77.0.2")), "the /24 is longer than the default");
        assert_eq!(next_hop(ROUTES, "eth0", ip("8.8.8.8")), Some(ip("10.77.0.1")), "default route via the gateway");
        assert_eq!(next_hop(ROUTES, "eth1", ip("8.8.8.8")), None);
        assert_eq!(neighbour_mac(ARP, "eth0", ip("10.77.0.2")), Some([0xc2, 0xb9, 0x6e, 0x0b, 0x94, 0x79]));
        assert_eq!(neighbour_mac(ARP, "eth0", ip("10.77.0.9")), None, "incomplete entries do not count");
        assert_eq!(neighbour_mac(ARP, "eth1", ip("10.77.0.2")), None);
    }
}
