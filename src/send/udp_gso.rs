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

use super::packets::{send_rounds, Flow, PacketSink};
use super::DataPath;
use super::Stream;
use crate::sys::socket as so;
use crate::transfer::plan::PacketPlan;
use crate::transfer::{Watchdog, IO_TICK};
use crate::wire::{self, LabHeader, FLAG_RESENT, LAB_HEADER_LEN};
use std::io::{self, IoSlice};
use std::net::{SocketAddr, UdpSocket};

/// Most packets in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 or more).
const MAX_BATCH: usize = 64;
/// Largest UDP payload of one (GSO) send: 65535 - IPv4 header - UDP header
/// (IPv6's payload length leaves its own header out, so it allows 20 more).
const MAX_GSO_BYTES: usize = 65535 - 20 - 8;

/// The data socket, connected, and the payload per packet its route allows.
pub struct UdpPath {
    sock: UdpSocket,
    pub payload: u32,
    pub mtu: u32,
}

impl UdpPath {
    pub fn connect(to: SocketAddr) -> io::Result<UdpPath> {
        let any: SocketAddr = if to.is_ipv6() { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() } else { ([0, 0, 0, 0], 0).into() };
        let sock = UdpSocket::bind(any)?;
        sock.connect(to)?;
        // The route's MTU decides how large a datagram may be.
        let mtu = if to.is_ipv6() {
            so::get_int_opt(&sock, libc::IPPROTO_IPV6, libc::IPV6_MTU)?
        } else {
            so::get_int_opt(&sock, libc::IPPROTO_IP, libc::IP_MTU)?
        } as u32;
        let payload = wire::payload_for(mtu, to.is_ipv6()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("MTU {mtu} is too small for the lab's packets"))
        })?;
        let _ = so::set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_SNDBUF, 8 << 20);
        sock.set_write_timeout(Some(IO_TICK))?;
        Ok(UdpPath { sock, payload, mtu })
    }
}

/// Sends every packet, then what the receiver reports missing, round by round.
pub fn send(s: &mut Stream, udp: &UdpPath, transfer_id: u32) -> io::Result<DataPath> {
    let window = s.peer.window;
    let plan = PacketPlan::new(s.size, udp.payload);
    let seg = LAB_HEADER_LEN + udp.payload as usize;
    so::set_int_opt(&udp.sock, so::SOL_UDP, so::UDP_SEGMENT, seg as libc::c_int)
        .map_err(|e| io::Error::new(e.kind(), format!("setsockopt(UDP_SEGMENT): {e} (UDP GSO needs Linux 4.18+)")))?;
    let map = s.map_file()?;
    let mut sink = GsoSink {
        sock: &udp.sock,
        data: map.as_deref().unwrap_or(&[]),
        transfer_id,
        batch_max: (MAX_GSO_BYTES / seg).clamp(1, MAX_BATCH),
        batch: Batch::new(),
    };
    let (stats, calls) = send_rounds(s, &plan, window, &mut sink)?;
    Ok(DataPath { syscalls: calls + 1, zerocopy: None, packets: Some(stats), af_xdp: None, af_xdp_tcp: None, done: None })
}

struct GsoSink<'a> {
    sock: &'a UdpSocket,
    data: &'a [u8],
    transfer_id: u32,
    batch_max: usize,
    batch: Batch,
}

impl PacketSink for GsoSink<'_> {
    fn send(
        &mut self,
        plan: &PacketPlan,
        ranges: &[(u64, u64)],
        resent: bool,
        flow: &mut Flow,
        wd: &mut Watchdog,
    ) -> io::Result<u64> {
        let flags = if resent { FLAG_RESENT } else { 0 };
        let mut calls = 0;
        for &(a, b) in ranges {
            for i in a..b {
                if flow.must_wait() {
                    calls += self.batch.flush(self.sock, self.data, wd)?;
                }
                flow.admit(wd)?;
                let len = plan.len(i);
                self.batch.push(LabHeader { transfer_id: self.transfer_id, offset: plan.offset(i), len, flags });
                // Only the last segment of a GSO send may be short.
                if self.batch.len == self.batch_max || len < plan.payload {
                    calls += self.batch.flush(self.sock, self.data, wd)?;
                }
            }
        }
        calls += self.batch.flush(self.sock, self.data, wd)?;
        Ok(calls)
    }
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
                    return Err(io::Error::new(e.kind(), "the receiver is gone: its UDP port is closed (ICMP port unreachable)"))
                }
                Err(e) => return Err(e),
            }
        }
        wd.progress()?;
        self.len = 0;
        Ok(calls)
    }
}
