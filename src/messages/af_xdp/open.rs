//! Setting an af-xdp end up: the next hop's MAC, the UMEM and its rings,
//! a socket on each of the interface's queues, and (an end that receives) the XDP
//! program that steers the session's port to it.

use super::{Queue, XdpLink, BATCH, FRAMES, RING};
use crate::messages::control::Hello;
use crate::messages::{message, EndConfig, Wait, UDP_FRAME_OVERHEAD};
use crate::transfer::af_xdp::{socket_error, wait_for_busy_queue, Iface, Knobs, TX_BUDGET};
use crate::wire::{self, FrameTemplate};
use crate::xdp::XdpSteering;
use crate::xsk::{BindMode, Frame, PoolId, Umem, UmemConfig, XskSocket};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

impl XdpLink {
    /// The af-xdp end of a session: `local` is this end's control address
    /// (its IP picks the interface), `peer` the other end's. Frames go from
    /// and to UDP port `port` (the server's) on both ends. An end that
    /// `receives` attaches the XDP program for that port.
    pub fn open(
        local: SocketAddr,
        peer: SocketAddr,
        port: u16,
        announced_mac: Option<&str>,
        hello: &Hello,
        end: &EndConfig,
        receives: bool,
    ) -> io::Result<XdpLink> {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (local.ip(), peer.ip()) else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "af-xdp messages run over IPv4 only (the file transfer's af-xdp speaks IPv6)",
            ));
        };
        let iface = Iface::find(end.xdp.iface.as_deref(), local.ip())?;
        let dst_mac = match crate::route::resolve(&iface.name, iface.index, dst.into(), Duration::from_secs(1)) {
            Ok(h) => h.mac,
            Err(crate::route::RouteError::Unresolved { hop, .. }) if hop == IpAddr::V4(dst) && announced_mac.is_some() => {
                announced_mac
                    .and_then(wire::parse_mac)
                    .ok_or_else(|| io::Error::other("the peer announced a MAC that is not one"))?
            }
            Err(e) => return Err(io::Error::other(e)),
        };
        let steering = if receives {
            let frags = iface.mtu > crate::xdp::MAX_MTU_WITHOUT_FRAGS;
            Some(XdpSteering::attach(&iface.name, port, frags, end.xdp.attach).map_err(io::Error::other)?)
        } else {
            None
        };
        let (first, count) = match (end.xdp.queue, end.xdp.queues) {
            (first, Some(n)) => (first.unwrap_or(0), n.max(1)),
            (Some(q), None) => (q, 1),
            // The XDP program's map has room for 64.
            (None, None) => (0, crate::sys::iface::queues(&iface.name).map_or(1, |(rx, _)| rx.clamp(1, 64))),
        };
        iface.check_queues(first, count, true)?;
        // A stream's receiver sends nothing: every frame can wait on the fill ring, which
        // rides out more of the moments it is not running (drops for an empty fill ring).
        let only_receives = receives && hello.kind == crate::messages::control::Kind::Rate;
        let fill_size = if only_receives { FRAMES } else { RING };
        let (busy_poll_us, busy_poll_budget) = match end.wait {
            Wait::BusyPoll { usecs, budget } => (Some(usecs), Some(budget)),
            _ => (None, None),
        };
        let knobs = Knobs {
            need_wakeup: end.xdp.need_wakeup,
            busy_poll_us,
            busy_poll_budget,
            tx_budget: Some(end.xdp.tx_budget.unwrap_or(TX_BUDGET)),
        };
        let bind = end.xdp.bind_mode.unwrap_or(BindMode::Auto);
        let mut steering = steering;
        let mut queues = Vec::with_capacity(count as usize);
        for queue in first..first + count {
            let umem = Umem::new(&UmemConfig::chunks(4096, FRAMES, fill_size, RING))?;
            let (mut sock, rx, tx) =
                XskSocket::bind_rx_tx(umem, fill_size, &iface.socket_config(queue, bind, &knobs), wait_for_busy_queue)
                    .map_err(|e| socket_error(&iface.name, e))?;
            if let Some(s) = &mut steering {
                s.register(queue, &sock).map_err(io::Error::other)?;
            }
            let frames = sock.umem_mut().frames_mut();
            let mut free: Vec<Frame> = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
            let mut fill = free.split_off(if only_receives { 0 } else { free.len() / 2 });
            sock.umem_mut().fill(&mut fill).map_err(io::Error::other)?;
            queues.push(Queue { queue, sock, rx, tx, free, refill: fill, in_flight: 0 });
        }
        let template =
            FrameTemplate { src_mac: iface.mac, dst_mac, src_ip: src.into(), dst_ip: dst.into(), src_port: port, dst_port: port };
        let mut header = [0u8; UDP_FRAME_OVERHEAD];
        template.write_udp_headers(hello.size as u16, &mut header);
        log::info!(
            "af-xdp messages on {} queue{} {}{} ({}), to {} via {}",
            iface.name,
            if count == 1 { "" } else { "s" },
            first,
            if count == 1 { String::new() } else { format!("-{}", first + count - 1) },
            if queues.iter().all(|q| q.sock.is_zerocopy()) { "zero copy" } else { "copy mode" },
            dst,
            wire::format_mac(&dst_mac)
        );
        Ok(XdpLink {
            steering,
            queues,
            next: 0,
            got: Vec::with_capacity(BATCH as usize),
            header,
            msg: message(hello.session, hello.size),
            port,
            size: hello.size,
            session: hello.session,
            wait: end.wait,
            need_wakeup: end.xdp.need_wakeup,
            syscalls: 0,
            malformed: 0,
        })
    }
}
