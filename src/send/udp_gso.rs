//! `udp-gso`: kernel UDP with generic segmentation offload, the fair
//! baseline for AF_XDP (same packets, same receiver logic).
//!
//! Each packet is a UDP datagram: the 24-byte lab header, then up to one
//! MTU's worth of file bytes. One `sendmsg` carries up to 64 packets as a
//! gather list `[header, file bytes, header, file bytes, ...]` pointing into
//! a mapping of the file; with `UDP_SEGMENT` the kernel builds one large
//! skb (one copy of the file bytes, from the page cache) and cuts it into
//! datagrams late, so the per-packet cost of the stack is paid once per
//! batch. Lost datagrams are sent again in rounds, as the receiver asks.

use super::Stream;
use crate::metrics::{DataPath, PacketStats};
use crate::sys::{self, socket as so};
use crate::transfer::control::{recv_msg, send_msg, Msg};
use crate::transfer::plan::PacketPlan;
use crate::transfer::{Watchdog, IO_TICK};
use crate::wire::{self, LabHeader, FLAG_RESENT, LAB_HEADER_LEN};
use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};

/// Most packets in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or more).
const MAX_BATCH: usize = 64;
/// Largest UDP payload of one (GSO) send: 65535 - IPv4 header - UDP header.
const MAX_GSO_BYTES: usize = 65535 - 20 - 8;
/// Give up after this many rounds of retransmission.
pub const MAX_ROUNDS: u32 = 100;

/// The data socket, connected, and the payload per packet its route allows.
pub struct UdpPath {
    sock: UdpSocket,
    pub payload: u32,
    pub mtu: u32,
}

impl UdpPath {
    pub fn connect(to: SocketAddr) -> io::Result<UdpPath> {
        let sock = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], 0)))?;
        sock.connect(to)?;
        // The route's MTU decides how large a datagram may be.
        let mtu = so::get_int_opt(&sock, libc::IPPROTO_IP, libc::IP_MTU)? as u32;
        let payload = wire::payload_for_mtu(mtu).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("MTU {mtu} is too small for the lab's packets"))
        })?;
        let _ = so::set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_SNDBUF, 8 << 20);
        sock.set_write_timeout(Some(IO_TICK))?;
        Ok(UdpPath { sock, payload, mtu })
    }
}

/// Sends every packet, then what the receiver reports missing, round by round.
pub fn send(s: &mut Stream, udp: &UdpPath, transfer_id: u32) -> io::Result<DataPath> {
    let ctrl = s.sock;
    match recv_msg(&mut &*ctrl, &mut s.wd)? {
        Some(Msg::Ready { .. }) => {}
        other => return Err(io::Error::other(format!("the receiver answered {other:?} where Ready was expected"))),
    }
    let plan = PacketPlan::new(s.size, udp.payload);
    let seg = LAB_HEADER_LEN + udp.payload as usize;
    so::set_int_opt(&udp.sock, so::SOL_UDP, so::UDP_SEGMENT, seg as libc::c_int)
        .map_err(|e| io::Error::new(e.kind(), format!("setsockopt(UDP_SEGMENT): {e} (UDP GSO needs Linux 4.18+)")))?;
    let batch_max = (MAX_GSO_BYTES / seg).clamp(1, MAX_BATCH);
    let map = sys::file::map_readonly(s.file)?;
    let data: &[u8] = map.as_deref().unwrap_or(&[]);

    let mut stats = PacketStats::default();
    let mut calls = 1u64;
    let mut todo = vec![(0, plan.packets())];
    let mut batch = Batch::new();
    for round in 0.. {
        if round >= MAX_ROUNDS {
            return Err(io::Error::other(format!("still missing packets after {MAX_ROUNDS} rounds: the link loses too much")));
        }
        let flags = if round > 0 { FLAG_RESENT } else { 0 };
        for &(a, b) in &todo {
            for i in a..b {
                let len = plan.len(i);
                batch.push(LabHeader { transfer_id, offset: plan.offset(i), len, flags });
                // Only the last segment of a GSO send may be short.
                if batch.len == batch_max || len < udp.payload {
                    calls += batch.flush(&udp.sock, data, &mut s.wd)?;
                }
            }
        }
        calls += batch.flush(&udp.sock, data, &mut s.wd)?;
        let sent: u64 = todo.iter().map(|(a, b)| b - a).sum();
        stats.packets += sent;
        if round > 0 {
            stats.retransmitted += sent;
        }
        stats.rounds = round + 1;
        send_msg(&mut &*ctrl, &Msg::RoundDone { round, sent }, &mut s.wd)?;
        match recv_msg(&mut &*ctrl, &mut s.wd)? {
            Some(Msg::Missing { ranges, count: 0 }) if ranges.is_empty() => break,
            Some(Msg::Missing { ranges, count }) => {
                log::info!("round {round}: receiver misses {count} packets");
                if ranges.iter().any(|&(a, b)| a >= b || b > plan.packets()) {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "the receiver asked for packets that do not exist"));
                }
                todo = ranges;
            }
            other => return Err(io::Error::other(format!("the receiver answered {other:?} where Missing was expected"))),
        }
    }
    Ok(DataPath { syscalls: calls, zerocopy: None, packets: Some(stats) })
}

/// Headers of the packets of one GSO send.
struct Batch {
    headers: [[u8; LAB_HEADER_LEN]; MAX_BATCH],
    spans: [(usize, usize); MAX_BATCH],
    len: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch { headers: [[0; LAB_HEADER_LEN]; MAX_BATCH], spans: [(0, 0); MAX_BATCH], len: 0 }
    }

    fn push(&mut self, h: LabHeader) {
        self.headers[self.len] = h.to_bytes();
        self.spans[self.len] = (h.offset as usize, h.len as usize);
        self.len += 1;
    }

    /// One sendmsg of the batch (retried while the kernel is out of
    /// buffers); returns the syscalls it took.
    fn flush(&mut self, sock: &UdpSocket, data: &[u8], wd: &mut Watchdog) -> io::Result<u64> {
        if self.len == 0 {
            return Ok(0);
        }
        let mut iov = [IoSlice::new(&[]); 2 * MAX_BATCH];
        for k in 0..self.len {
            let (off, len) = self.spans[k];
            iov[2 * k] = IoSlice::new(&self.headers[k]);
            iov[2 * k + 1] = IoSlice::new(&data[off..off + len]);
        }
        let mut calls = 0;
        loop {
            calls += 1;
            match so::send_vectored(sock, &iov[..2 * self.len]) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => std::thread::yield_now(),
                Err(e) if Watchdog::is_idle_error(&e) => wd.idle()?,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(io::Error::new(e.kind(), "the receiver's UDP port is closed (ICMP port unreachable)"))
                }
                Err(e) => return Err(e),
            }
        }
        wd.progress();
        self.len = 0;
        Ok(calls)
    }
}
