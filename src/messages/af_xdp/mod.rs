//! AF_XDP on both ends: one frame per message, no socket layer.
//!
//! Each end binds an AF_XDP socket with both rings to each of its
//! interface's queues (`--queues`; by default every RX queue, since on a
//! real NIC RSS picks the queue a flow lands on), and an end that receives puts zclab's XDP program in front of it
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
//!
//! `open.rs` sets an end up (route, UMEM, socket, XDP program); this file
//! moves the frames.

mod open;

use super::{accept, set_seq, Link, LinkInfo, Wait, UDP_FRAME_OVERHEAD};
use crate::wire::{self};
use crate::xdp::XdpSteering;
use crate::xsk::{Frame, Received, Returned, Rx, Tx, XskSocket};
use std::io;
use std::time::{Duration, Instant};

/// Frames of the UMEM (4096 bytes each): half for the fill ring, half to
/// send from; an end that only receives (a rate server) gives the fill ring all.
const FRAMES: u32 = 4096;
/// Entries of every ring: the fill ring holds half the frames (or all).
const RING: u32 = 2048;
/// Descriptors taken off the RX ring at once.
const BATCH: u32 = 64;

/// One queue's socket: its rings and the frames it holds.
struct Queue {
    queue: u32,
    sock: XskSocket,
    rx: Rx,
    tx: Tx,
    /// Frames user space holds, to send from.
    free: Vec<Frame>,
    /// Frames going back to the fill ring.
    refill: Vec<Frame>,
    /// TX descriptors not yet completed.
    in_flight: u32,
}

impl Queue {
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
    fn kick(&mut self, need_wakeup: bool, syscalls: &mut u64) -> io::Result<()> {
        if !need_wakeup || self.tx.needs_wakeup() {
            *syscalls += 1;
            self.tx.kick()?;
        }
        Ok(())
    }
}

pub struct XdpLink {
    // Field order is drop order: the program goes first, then the sockets.
    steering: Option<XdpSteering>,
    /// A socket per queue (`--queues`): a flow may land on any of them.
    queues: Vec<Queue>,
    /// The queue the next send goes from: sends take turns.
    next: usize,
    got: Vec<Received>,
    /// The header of every frame this end sends (all are the same length).
    header: [u8; UDP_FRAME_OVERHEAD],
    msg: Vec<u8>,
    port: u16,
    size: usize,
    session: u32,
    wait: Wait,
    need_wakeup: bool,
    syscalls: u64,
    malformed: u64,
}

impl XdpLink {
    fn ready(&mut self) -> bool {
        self.queues.iter_mut().any(|q| q.rx.ready() > 0)
    }

    /// Waits for any queue's RX ring as this end waits, up to `timeout`;
    /// false if nothing came.
    fn wait_rx(&mut self, start: Instant, timeout: Duration) -> io::Result<bool> {
        let mut tries = 0u32;
        loop {
            if self.ready() {
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
                    if let [q] = &self.queues[..] {
                        crate::sys::socket::poll_one(&q.sock, libc::POLLIN, ms)?;
                    } else {
                        use std::os::fd::AsRawFd;
                        let socks: Vec<std::os::fd::RawFd> = self.queues.iter().map(|q| q.sock.as_raw_fd()).collect();
                        let mut ready = vec![false; socks.len()];
                        crate::sys::socket::poll_many(&socks, libc::POLLIN, ms, &mut ready)?;
                    }
                }
                Wait::BusyPoll { .. } => {
                    // A non-blocking receive call: the kernel busy-polls the queue's NAPI inside it.
                    for q in &self.queues {
                        self.syscalls += 1;
                        crate::sys::xdp::wake_rx(&q.sock)?;
                    }
                }
            }
            if start.elapsed() >= timeout {
                return Ok(self.ready());
            }
        }
    }

    /// Takes what the RX rings hold (after waiting for it) and hands each
    /// valid message's queue, frame, offset and length to `each`, which
    /// returns the frame if it is done with it.
    fn take(
        &mut self,
        timeout: Duration,
        mut each: impl FnMut(&mut Self, usize, Frame, u32, u32, u64) -> io::Result<Option<Frame>>,
    ) -> io::Result<u32> {
        if !self.wait_rx(Instant::now(), timeout)? {
            return Ok(0);
        }
        let mut count = 0;
        for qi in 0..self.queues.len() {
            if self.queues[qi].rx.ready() == 0 {
                continue;
            }
            let mut got = std::mem::take(&mut self.got);
            let q = &mut self.queues[qi];
            q.rx.receive(q.sock.umem_mut(), BATCH, &mut got);
            for r in got.drain(..) {
                match r {
                    Received::Packet(p) if !p.more => {
                        let q = &self.queues[qi];
                        let bytes = p.bytes(q.sock.umem().frames());
                        let seq = wire::parse_udp_headers(bytes, bytes.len(), self.port).ok().and_then(|(u, _)| {
                            accept(
                                &bytes[u.payload_at..u.payload_at + u.payload_len],
                                self.session,
                                self.size,
                                &mut self.malformed,
                            )
                        });
                        let (offset, len) = (p.offset(), p.len());
                        let frame = p.into_frame();
                        match seq {
                            Some(seq) => {
                                count += 1;
                                if let Some(f) = each(self, qi, frame, offset, len, seq)? {
                                    self.queues[qi].refill.push(f);
                                }
                            }
                            None => self.queues[qi].refill.push(frame),
                        }
                    }
                    Received::Packet(p) => {
                        // A message is one descriptor; a multi-buffer packet is not one of ours.
                        self.malformed += 1;
                        self.queues[qi].refill.push(p.into_frame());
                    }
                    Received::Malformed(f) => {
                        self.malformed += 1;
                        self.queues[qi].refill.push(f);
                    }
                    Received::Foreign(_) => self.malformed += 1,
                }
            }
            self.got = got;
            let q = &mut self.queues[qi];
            q.sock.umem_mut().fill(&mut q.refill).map_err(io::Error::other)?;
        }
        Ok(count)
    }
}

impl Link for XdpLink {
    fn send(&mut self, first: u64, n: u32) -> io::Result<u32> {
        let qi = self.next;
        self.next = (self.next + 1) % self.queues.len();
        let (need_wakeup, len) = (self.need_wakeup, (UDP_FRAME_OVERHEAD + self.size) as u32);
        let q = &mut self.queues[qi];
        q.reclaim(false);
        let n = n.min(q.free.len() as u32).min(q.tx.free(n));
        if n == 0 {
            if q.tx.pending() > 0 {
                q.kick(need_wakeup, &mut self.syscalls)?;
            }
            return Ok(0);
        }
        let frames = q.sock.umem_mut().frames_mut();
        let mut r = q.tx.reserve(n).ok_or_else(|| io::Error::other("the TX ring had room a moment ago"))?;
        for i in 0..n {
            let mut f = q.free.pop().expect("counted");
            set_seq(&mut self.msg, first + i as u64);
            let b = frames.bytes_mut(&mut f);
            b[..UDP_FRAME_OVERHEAD].copy_from_slice(&self.header);
            b[UDP_FRAME_OVERHEAD..len as usize].copy_from_slice(&self.msg);
            r.push_frame(frames, f, len, false).map_err(|(_, e)| io::Error::other(e))?;
        }
        r.submit();
        q.in_flight += n;
        q.kick(need_wakeup, &mut self.syscalls)?;
        Ok(n)
    }

    fn receive(&mut self, timeout: Duration, each: &mut dyn FnMut(u64)) -> io::Result<u32> {
        self.take(timeout, |_, _, frame, _, _, seq| {
            each(seq);
            Ok(Some(frame))
        })
    }

    fn echo(&mut self, timeout: Duration) -> io::Result<u32> {
        for q in &mut self.queues {
            q.reclaim(true);
        }
        let mut answered = vec![false; self.queues.len()];
        let n = self.take(timeout, |me, qi, mut frame, offset, len, _| {
            if len as usize != UDP_FRAME_OVERHEAD + me.size {
                return Ok(Some(frame));
            }
            // The reply goes back from the queue the request came in on.
            let q = &mut me.queues[qi];
            let frames = q.sock.umem_mut().frames_mut();
            // The reply is the request with this end's header in front: same frame, same bytes.
            frames.bytes_mut(&mut frame)[offset as usize..offset as usize + UDP_FRAME_OVERHEAD].copy_from_slice(&me.header);
            let Some(mut r) = q.tx.reserve(1) else { return Ok(Some(frame)) };
            r.push_frame_at(frames, frame, offset, len, Default::default()).map_err(|(_, e)| io::Error::other(e))?;
            r.submit();
            q.in_flight += 1;
            answered[qi] = true;
            Ok(None)
        })?;
        for (q, _) in self.queues.iter_mut().zip(&answered).filter(|(_, a)| **a) {
            q.kick(self.need_wakeup, &mut self.syscalls)?;
        }
        Ok(n)
    }

    fn flush(&mut self, timeout: Duration) -> io::Result<bool> {
        let start = Instant::now();
        for q in &mut self.queues {
            while q.in_flight > 0 {
                if start.elapsed() >= timeout {
                    return Ok(false);
                }
                q.kick(self.need_wakeup, &mut self.syscalls)?;
                q.reclaim(false);
            }
        }
        Ok(true)
    }

    fn info(&self) -> LinkInfo {
        let mut stats: Option<crate::sys::xdp::XdpStatistics> = None;
        for q in &self.queues {
            if let Ok(s) = q.sock.statistics() {
                stats.get_or_insert_with(Default::default).add(&s);
            }
        }
        LinkInfo {
            syscalls: self.syscalls,
            malformed: self.malformed,
            zerocopy: Some(self.queues.iter().all(|q| q.sock.is_zerocopy())),
            xdp_mode: self.steering.as_ref().map(|s| s.mode),
            xdp_statistics: stats,
            queues: self.queues.iter().map(|q| q.queue).collect(),
        }
    }
}
