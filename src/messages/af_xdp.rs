//! AF_XDP on both ends: one frame per message, no socket layer.
//!
//! Each end binds one AF_XDP socket with both rings to its interface's
//! queue, and an end that receives puts zclab's XDP program in front of it
//! (steering the session's UDP port to the socket; everything else, the
//! control connection too, goes on to the kernel). A message is written
//! straight into a UMEM frame behind a prebuilt Ethernet/IPv4/UDP header and
//! put on the TX ring; a received one is read where it landed in the UMEM.
//! An echo rewrites the header of the received frame in place and sends that
//! same frame back: the message itself is never copied by user space.
//!
//! What is left of the kernel: in copy mode (veth) the TX kick (`sendto`)
//! copies each frame into an skb, and the receiving side's XDP program
//! redirects it and copies it into the peer's UMEM. No socket lookup, no
//! socket buffer accounting, no `recv` and, for an end that spins, no sleep.

use super::control::Hello;
use super::{accept, message, set_seq, EndConfig, Link, LinkInfo, Wait, UDP_FRAME_OVERHEAD};
use crate::transfer::af_xdp::{socket_error, wait_for_busy_queue, Iface, Knobs, TX_BUDGET};
use crate::wire::{self, FrameTemplate};
use crate::xdp::XdpSteering;
use crate::xsk::{BindMode, Frame, PoolId, Received, Returned, Rx, Tx, Umem, UmemConfig, XskSocket};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Frames of the UMEM (4096 bytes each): half for the fill ring, half to
/// send from; an end that only receives (a rate server) gives the fill ring all.
const FRAMES: u32 = 4096;
/// Entries of every ring: the fill ring holds half the frames (or all).
const RING: u32 = 2048;
/// Descriptors taken off the RX ring at once.
const BATCH: u32 = 64;

pub struct XdpLink {
    // Field order is drop order: the program goes first, then the socket.
    steering: Option<XdpSteering>,
    sock: XskSocket,
    rx: Rx,
    tx: Tx,
    /// Frames user space holds, to send from.
    free: Vec<Frame>,
    /// Frames going back to the fill ring.
    refill: Vec<Frame>,
    got: Vec<Received>,
    /// The header of every frame this end sends (all are the same length).
    header: [u8; UDP_FRAME_OVERHEAD],
    msg: Vec<u8>,
    port: u16,
    size: usize,
    session: u32,
    wait: Wait,
    need_wakeup: bool,
    /// TX descriptors not yet completed.
    in_flight: u32,
    syscalls: u64,
    malformed: u64,
}

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
        // A stream's receiver sends nothing: every frame can wait on the fill ring, which
        // rides out more of the moments it is not running (drops for an empty fill ring).
        let only_receives = receives && hello.kind == super::control::Kind::Rate;
        let fill_size = if only_receives { FRAMES } else { RING };
        let umem = Umem::new(&UmemConfig::chunks(4096, FRAMES, fill_size, RING))?;
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
        let (mut sock, rx, tx) =
            XskSocket::bind_rx_tx(umem, fill_size, &iface.socket_config(end.xdp.queue, bind, &knobs), wait_for_busy_queue)
                .map_err(|e| socket_error(&iface.name, e))?;
        let mut steering = steering;
        if let Some(s) = &mut steering {
            s.register(end.xdp.queue, &sock).map_err(io::Error::other)?;
        }
        let frames = sock.umem_mut().frames_mut();
        let mut free: Vec<Frame> = std::iter::from_fn(|| frames.alloc(PoolId(0))).collect();
        let mut fill = free.split_off(if only_receives { 0 } else { free.len() / 2 });
        sock.umem_mut().fill(&mut fill).map_err(io::Error::other)?;
        let template =
            FrameTemplate { src_mac: iface.mac, dst_mac, src_ip: src.into(), dst_ip: dst.into(), src_port: port, dst_port: port };
        let mut header = [0u8; UDP_FRAME_OVERHEAD];
        template.write_udp_headers(hello.size as u16, &mut header);
        log::info!(
            "af-xdp messages on {} queue {} ({}), to {} via {}",
            iface.name,
            end.xdp.queue,
            if sock.is_zerocopy() { "zero copy" } else { "copy mode" },
            dst,
            wire::format_mac(&dst_mac)
        );
        Ok(XdpLink {
            steering,
            sock,
            rx,
            tx,
            free,
            refill: fill,
            got: Vec::with_capacity(BATCH as usize),
            header,
            msg: message(hello.session, hello.size),
            port,
            size: hello.size,
            session: hello.session,
            wait: end.wait,
            need_wakeup: end.xdp.need_wakeup,
            in_flight: 0,
            syscalls: 0,
            malformed: 0,
        })
    }

    /// Completed TX frames come back: to `free`, or (an echo's frames, which
    /// were received ones) to the fill ring.
    fn reclaim(&mut self, to_fill: bool) {
        let (free, refill) = (&mut self.free, &mut self.refill);
        let n = self.sock.umem_mut().complete(RING, |r| {
            if let Returned::Frame(f) = r {
                if to_fill {
                    refill.push(f)
                } else {
                    free.push(f)
                }
            }
        });
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// Asks the kernel to send what is on the TX ring (copy mode sends only
    /// inside this call), unless need-wakeup says it need not.
    fn kick(&mut self) -> io::Result<()> {
        if !self.need_wakeup || self.tx.needs_wakeup() {
            self.syscalls += 1;
            self.tx.kick()?;
        }
        Ok(())
    }

    /// Waits for the RX ring as this end waits, up to `deadline`; false if
    /// nothing came.
    fn wait_rx(&mut self, start: Instant, timeout: Duration) -> io::Result<bool> {
        let mut tries = 0u32;
        loop {
            if self.rx.ready() > 0 {
                return Ok(true);
            }
            match self.wait {
                Wait::Spin => {
                    std::hint::spin_loop();
                    tries = tries.wrapping_add(1);
                    if !tries.is_multiple_of(64) {
                        continue;
                    }
                }
                Wait::Block => {
                    let left = timeout.saturating_sub(start.elapsed());
                    let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
                    self.syscalls += 1;
                    crate::sys::socket::poll_one(&self.sock, libc::POLLIN, ms)?;
                }
                Wait::BusyPoll { .. } => {
                    // A non-blocking receive call: the kernel busy-polls the queue's NAPI inside it.
                    self.syscalls += 1;
                    crate::sys::xdp::wake_rx(&self.sock)?;
                }
            }
            if start.elapsed() >= timeout {
                return Ok(self.rx.ready() > 0);
            }
        }
    }

    /// Takes what the RX ring holds (after waiting for it) and hands each
    /// valid message's frame, offset and length to `each`, which returns
    /// the frame if it is done with it.
    fn take(
        &mut self,
        timeout: Duration,
        mut each: impl FnMut(&mut Self, Frame, u32, u32, u64) -> io::Result<Option<Frame>>,
    ) -> io::Result<u32> {
        if !self.wait_rx(Instant::now(), timeout)? {
            return Ok(0);
        }
        let mut got = std::mem::take(&mut self.got);
        self.rx.receive(self.sock.umem_mut(), BATCH, &mut got);
        let mut count = 0;
        for r in got.drain(..) {
            match r {
                Received::Packet(p) if !p.more => {
                    let bytes = p.bytes(self.sock.umem().frames());
                    let seq = wire::parse_udp_headers(bytes, bytes.len(), self.port).ok().and_then(|(u, _)| {
                        accept(&bytes[u.payload_at..u.payload_at + u.payload_len], self.session, self.size, &mut self.malformed)
                    });
                    let (offset, len) = (p.offset(), p.len());
                    let frame = p.into_frame();
                    match seq {
                        Some(seq) => {
                            count += 1;
                            if let Some(f) = each(self, frame, offset, len, seq)? {
                                self.refill.push(f);
                            }
                        }
                        None => self.refill.push(frame),
                    }
                }
                Received::Packet(p) => {
                    // A message is one descriptor; a multi-buffer packet is not one of ours.
                    self.malformed += 1;
                    self.refill.push(p.into_frame());
                }
                Received::Malformed(f) => {
                    self.malformed += 1;
                    self.refill.push(f);
                }
                Received::Foreign(_) => self.malformed += 1,
            }
        }
        self.got = got;
        self.sock.umem_mut().fill(&mut self.refill).map_err(io::Error::other)?;
        Ok(count)
    }
}

impl Link for XdpLink {
    fn send(&mut self, first: u64, n: u32) -> io::Result<u32> {
        self.reclaim(false);
        let n = n.min(self.free.len() as u32).min(self.tx.free(n));
        if n == 0 {
            if self.tx.pending() > 0 {
                self.kick()?;
            }
            return Ok(0);
        }
        let len = (UDP_FRAME_OVERHEAD + self.size) as u32;
        let frames = self.sock.umem_mut().frames_mut();
        let mut r = self.tx.reserve(n).ok_or_else(|| io::Error::other("the TX ring had room a moment ago"))?;
        for i in 0..n {
            let mut f = self.free.pop().expect("counted");
            set_seq(&mut self.msg, first + i as u64);
            let b = frames.bytes_mut(&mut f);
            b[..UDP_FRAME_OVERHEAD].copy_from_slice(&self.header);
            b[UDP_FRAME_OVERHEAD..len as usize].copy_from_slice(&self.msg);
            r.push_frame(frames, f, len, false).map_err(|(_, e)| io::Error::other(e))?;
        }
        r.submit();
        self.in_flight += n;
        self.kick()?;
        Ok(n)
    }

    fn receive(&mut self, timeout: Duration, each: &mut dyn FnMut(u64)) -> io::Result<u32> {
        self.take(timeout, |_, frame, _, _, seq| {
            each(seq);
            Ok(Some(frame))
        })
    }

    fn echo(&mut self, timeout: Duration) -> io::Result<u32> {
        self.reclaim(true);
        let n = self.take(timeout, |me, mut frame, offset, len, _| {
            if len as usize != UDP_FRAME_OVERHEAD + me.size {
                return Ok(Some(frame));
            }
            let frames = me.sock.umem_mut().frames_mut();
            // The reply is the request with this end's header in front: same frame, same bytes.
            frames.bytes_mut(&mut frame)[offset as usize..offset as usize + UDP_FRAME_OVERHEAD].copy_from_slice(&me.header);
            let Some(mut r) = me.tx.reserve(1) else { return Ok(Some(frame)) };
            r.push_frame_at(frames, frame, offset, len, Default::default()).map_err(|(_, e)| io::Error::other(e))?;
            r.submit();
            me.in_flight += 1;
            Ok(None)
        })?;
        if n > 0 {
            self.kick()?;
        }
        Ok(n)
    }

    fn flush(&mut self, timeout: Duration) -> io::Result<bool> {
        let start = Instant::now();
        while self.in_flight > 0 {
            if start.elapsed() >= timeout {
                return Ok(false);
            }
            self.kick()?;
            self.reclaim(false);
        }
        Ok(true)
    }

    fn info(&self) -> LinkInfo {
        LinkInfo {
            syscalls: self.syscalls,
            malformed: self.malformed,
            zerocopy: Some(self.sock.is_zerocopy()),
            xdp_mode: self.steering.as_ref().map(|s| s.mode),
            xdp_statistics: self.sock.statistics().ok(),
        }
    }
}
