//! The kernel UDP receiver of `udp-gso`: `UDP_GRO` hands up coalesced
//! datagrams (up to 64 KiB at a time, with the segment size in a control
//! message); each segment is one lab packet, checked and written at its
//! offset by [`Reassembly`].

use super::packets::PacketSource;
use super::writer::{IovStore, RunWriter};
use crate::sys::socket as so;
use crate::transfer::reassembly::Outcome;
use crate::transfer::reassembly::Reassembly;
use crate::transfer::Watchdog;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

/// Receive buffer asked for: large, so a burst survives a slow moment.
const RCVBUF: libc::c_int = 64 << 20;
/// Packets the sender may have in flight: well within the receive buffer
/// (a queued GRO skb of 44 packets costs about 128 KiB of it).
pub const WINDOW: u64 = 8192;

pub struct UdpSource {
    sock: UdpSocket,
    buf: Vec<u8>,
    iov: IovStore,
}

impl UdpSource {
    /// Binds the data socket (same address and port as the control listener).
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSource> {
        let sock = UdpSocket::bind(addr)?;
        so::set_int_opt(&sock, so::SOL_UDP, so::UDP_GRO, 1)?;
        // SO_RCVBUFFORCE (root) passes net.core.rmem_max; else take what we get.
        if so::set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            let _ = so::set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
        }
        sock.set_nonblocking(true)?;
        Ok(UdpSource { sock, buf: vec![0u8; 65536], iov: IovStore::default() })
    }
}

impl PacketSource for UdpSource {
    fn pollable(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    fn drain(&mut self, r: &Reassembly, out: &File, wd: &mut Watchdog) -> io::Result<u64> {
        let mut calls = 0;
        loop {
            calls += 1;
            let Some((n, seg)) = so::recv_gro(&self.sock, &mut self.buf)? else {
                return Ok(calls);
            };
            wd.progress()?;
            let seg = seg.unwrap_or(n).max(1);
            let mut w = RunWriter::new(out, &mut self.iov);
            for packet in self.buf[..n].chunks(seg) {
                if let (Outcome::Accept(offset), data) = r.admit_udp(packet) {
                    w.push(offset, data)?;
                }
            }
            w.flush()?;
            calls += w.syscalls;
        }
    }
}
