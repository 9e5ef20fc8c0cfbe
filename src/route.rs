//! The next hop towards a host and that hop's MAC address, asked of the
//! kernel over rtnetlink, IPv4 and IPv6 alike. AF_XDP frames skip the
//! kernel's routing, so an af-xdp sender asks the questions the kernel
//! would: which route (`ip route get DST`: `RTM_GETROUTE`), out of which
//! interface, through which gateway; then the neighbour table for the
//! gateway's (or the host's own) link-layer address (`RTM_GETNEIGH`). A
//! receiver behind a router needs the *router's* MAC in the frame.
//!
//! When the neighbour is not known yet, a normal UDP socket sends one empty
//! datagram to the next hop's discard port (9): the kernel resolves the
//! address for it (ARP, or IPv6 neighbour discovery), and the answer is
//! read again until it is there or the time is up.
//!
//! The messages are built and parsed by `netlink-packet-route`; the
//! socket is `netlink-sys`'s. Both look at the calling thread's namespace.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Where frames to a host go: out of which interface, to which next hop
/// (the host itself when it is on-link), and that hop's MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub ifindex: u32,
    pub hop: IpAddr,
    pub mac: [u8; 6],
    /// The hop is a gateway (a router), not the host itself.
    pub via_gateway: bool,
}

/// Why the next hop could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("no route to {0} in this namespace (`ip route get {0}` says the same)")]
    NoRoute(IpAddr),
    #[error("the route to {dst} goes out of interface index {oif}, not {iface} (index {want}): name that interface with --iface, or fix the routes")]
    OtherInterface { dst: IpAddr, oif: u32, iface: String, want: u32 },
    #[error("the next hop {hop} of {dst} did not resolve within {ms} ms (no ARP or neighbour discovery answer on {iface}): is it up and on that link?")]
    Unresolved { dst: IpAddr, hop: IpAddr, iface: String, ms: u128 },
    #[error("rtnetlink: {0}")]
    Netlink(#[from] io::Error),
}

fn nl_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("a netlink message zclab cannot read: {e}"))
}

/// One request, and every message of its answer.
fn ask(msg: RouteNetlinkMessage, dump: bool) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut hdr = NetlinkHeader::default();
    hdr.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
    let mut req = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
    req.finalize();
    let mut buf = vec![0; req.header.length as usize];
    req.serialize(&mut buf[..]);
    socket.send(&buf[..], 0)?;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 65536];
    loop {
        let n = socket.recv(&mut &mut rx[..], 0)?;
        let mut at = 0;
        while at < n {
            let msg: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&rx[at..n]).map_err(nl_err)?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return Err(match e.code {
                        Some(code) => io::Error::from_raw_os_error(-code.get()),
                        None => io::Error::other("netlink error without a code"),
                    })
                }
                NetlinkPayload::InnerMessage(m) => out.push(m),
                _ => {}
            }
            if !dump {
                return Ok(out);
            }
            if len == 0 {
                break;
            }
            at += len;
        }
    }
}

/// `ip route get DST`: (out interface, gateway if any).
pub fn route_get(dst: IpAddr) -> io::Result<Option<(u32, Option<IpAddr>)>> {
    let mut m = RouteMessage::default();
    (m.header.address_family, m.header.destination_prefix_length) = match dst {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    m.attributes.push(RouteAttribute::Destination(dst.into()));
    let answer = match ask(RouteNetlinkMessage::GetRoute(m), false) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::ESRCH)) => {
            return Ok(None)
        }
        r => r?,
    };
    for msg in answer {
        if let RouteNetlinkMessage::NewRoute(r) = msg {
            let oif = r.attributes.iter().find_map(|a| if let RouteAttribute::Oif(i) = a { Some(*i) } else { None });
            let gw = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
                RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
                _ => None,
            });
            return Ok(oif.map(|o| (o, gw)));
        }
    }
    Ok(None)
}

/// The MAC of `ip` on interface `ifindex` in the neighbour table, if the
/// kernel holds a usable entry (not incomplete, not failed).
pub fn neighbour(ifindex: u32, ip: IpAddr) -> io::Result<Option<[u8; 6]>> {
    let mut m = NeighbourMessage::default();
    m.header.family = if ip.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    for msg in ask(RouteNetlinkMessage::GetNeighbour(m), true)? {
        let RouteNetlinkMessage::NewNeighbour(n) = msg else { continue };
        if n.header.ifindex != ifindex
            || matches!(n.header.state, NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None)
        {
            continue;
        }
        let dst = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => Some(IpAddr::V4(*v)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => Some(IpAddr::V6(*v)),
            _ => None,
        });
        if dst != Some(ip) {
            continue;
        }
        let mac = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => Some([b[0], b[1], b[2], b[3], b[4], b[5]]),
            _ => None,
        });
        if mac.is_some() {
            return Ok(mac);
        }
    }
    Ok(None)
}

/// The next hop towards `dst` out of interface `iface` (index `ifindex`),
/// resolving its MAC if the kernel does not know it yet, within `timeout`.
pub fn resolve(iface: &str, ifindex: u32, dst: IpAddr, timeout: Duration) -> Result<NextHop, RouteError> {
    let (oif, gw) = route_get(dst)?.ok_or(RouteError::NoRoute(dst))?;
    if oif != ifindex {
        return Err(RouteError::OtherInterface { dst, oif, iface: iface.to_string(), want: ifindex });
    }
    let hop = gw.unwrap_or(dst);
    let start = Instant::now();
    let mut asked = false;
    loop {
        if let Some(mac) = neighbour(ifindex, hop)? {
            return Ok(NextHop { ifindex, hop, mac, via_gateway: gw.is_some() });
        }
        if start.elapsed() >= timeout {
            return Err(RouteError::Unresolved { dst, hop, iface: iface.to_string(), ms: timeout.as_millis() });
        }
        if !asked {
            // One datagram makes the kernel resolve the hop (it queues it meanwhile).
            asked = true;
            let any: IpAddr =
                if hop.is_ipv4() { std::net::Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
            if let Ok(s) = std::net::UdpSocket::bind((any, 0)) {
                let _ = s.send_to(&[], (hop, 9));
            }
        }
        crate::interrupt::check()?;
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An interface's own packet and byte counts (`RTM_GETLINK`, `IFLA_STATS64`,
/// as `ip -s link` shows them): what the driver handled, whatever path the
/// packets took (AF_XDP transmits straight to the driver, where the
/// `net:net_dev_xmit` tracepoint does not see it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkCounts {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl LinkCounts {
    /// The counts from `before` to `self`.
    pub fn since(&self, before: &LinkCounts) -> LinkCounts {
        LinkCounts {
            rx_packets: self.rx_packets.saturating_sub(before.rx_packets),
            tx_packets: self.tx_packets.saturating_sub(before.tx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(before.rx_bytes),
            tx_bytes: self.tx_bytes.saturating_sub(before.tx_bytes),
        }
    }
}

/// The counts of interface `ifindex` now.
pub fn link_counts(ifindex: u32) -> io::Result<LinkCounts> {
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};
    let mut m = LinkMessage::default();
    m.header.index = ifindex;
    for msg in ask(RouteNetlinkMessage::GetLink(m), false)? {
        if let RouteNetlinkMessage::NewLink(l) = msg {
            if let Some(s) = l.attributes.iter().find_map(|a| if let LinkAttribute::Stats64(s) = a { Some(s) } else { None }) {
                return Ok(LinkCounts {
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                });
            }
        }
    }
    Err(io::Error::other(format!("interface index {ifindex} reported no IFLA_STATS64")))
}

/// One end's interface and what it handled during the timed part.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IfaceCounts {
    pub iface: String,
    #[serde(flatten)]
    pub counts: LinkCounts,
}

/// Reads an interface's counts at the start of a timed part and again at its end.
pub struct LinkMeter {
    name: String,
    index: u32,
    start: LinkCounts,
}

impl LinkMeter {
    /// The interface that holds `ip` (or `explicit`), counted from now; None if none can be read.
    pub fn start(explicit: Option<&str>, ip: IpAddr) -> Option<LinkMeter> {
        let name = match explicit {
            Some(n) => n.to_string(),
            None => crate::sys::iface::iface_with_addr(ip).ok()??,
        };
        let index = crate::sys::iface::if_index(&name).ok()?;
        let start = link_counts(index).ok()?;
        Some(LinkMeter { name, index, start })
    }

    pub fn finish(&self) -> Option<IfaceCounts> {
        let end = link_counts(self.index).ok()?;
        Some(IfaceCounts { iface: self.name.clone(), counts: end.since(&self.start) })
    }
}
