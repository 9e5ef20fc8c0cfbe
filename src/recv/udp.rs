//! The kernel UDP receiver of `udp-gso`: `UDP_GRO` hands up coalesced
//! datagrams (up to 64 KiB at a time, with the segment size in a control
//! message); each segment is one lab packet, checked and written at its
//! offset by [`Reassembly`]. The control connection tells when a round
//! ends; the receiver answers with what is still missing.

use crate::sys::socket as so;
use crate::transfer::control::{recv_msg, send_msg, Msg};
use crate::transfer::reassembly::{Reassembly, RxCounts};
use crate::transfer::Watchdog;
use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Receive buffer asked for: large, so a burst survives a slow moment.
const RCVBUF: libc::c_int = 64 << 20;
/// After a round ends, wait this long without packets before answering.
const QUIET: Duration = Duration::from_millis(5);
/// Most missing ranges in one answer; the rest are asked for next round.
const MAX_RANGES: usize = 4096;

/// Binds the data socket (same address and port as the control listener).
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(addr)?;
    so::set_int_opt(&sock, so::SOL_UDP, so::UDP_GRO, 1)?;
    // SO_RCVBUFFORCE (root) passes net.core.rmem_max; else take what we get.
    if so::set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
        let _ = so::set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

pub struct UdpReceived {
    pub counts: RxCounts,
    pub syscalls: u64,
    pub rounds: u32,
}

/// Runs the rounds until every packet is in `r`.
pub fn receive(ctrl: &TcpStream, udp: &UdpSocket, r: &mut Reassembly, wd: &mut Watchdog) -> io::Result<UdpReceived> {
    let mut buf = vec![0u8; 65536];
    let mut calls = 0u64;
    send_msg(&mut &*ctrl, &Msg::Ready { mac: None }, wd)?;
    loop {
        let (data, control) = so::poll_two(udp, ctrl, libc::POLLIN, 100)?;
        calls += 1;
        if data {
            calls += drain(udp, &mut buf, r, wd)?;
        }
        if control {
            match recv_msg(&mut &*ctrl, wd)? {
                Some(Msg::RoundDone { round, .. }) => {
                    // Packets of the round may still be on their way: take
                    // them until the socket stays quiet.
                    let mut quiet_since = Instant::now();
                    while quiet_since.elapsed() < QUIET {
                        calls += 1;
                        if so::poll_one(udp, libc::POLLIN, 1)? != 0 {
                            calls += drain(udp, &mut buf, r, wd)?;
                            quiet_since = Instant::now();
                        }
                    }
                    let ranges = r.tracker().missing_ranges(MAX_RANGES);
                    let count = r.tracker().missing_count();
                    send_msg(&mut &*ctrl, &Msg::Missing { ranges, count }, wd)?;
                    if count == 0 {
                        return Ok(UdpReceived { counts: r.counts, syscalls: calls, rounds: round + 1 });
                    }
                }
                Some(other) => return Err(io::Error::other(format!("the sender sent {other:?} mid-transfer"))),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the sender closed the control connection mid-transfer",
                    ))
                }
            }
        } else if !data {
            wd.idle()?;
        }
    }
}

/// Reads every queued datagram; returns the syscalls it took.
fn drain(udp: &UdpSocket, buf: &mut [u8], r: &mut Reassembly, wd: &mut Watchdog) -> io::Result<u64> {
    let mut calls = 0;
    loop {
        calls += 1;
        let Some((n, seg)) = so::recv_gro(udp, buf)? else {
            return Ok(calls);
        };
        wd.progress();
        let seg = seg.unwrap_or(n).max(1);
        for packet in buf[..n].chunks(seg) {
            r.accept(packet);
        }
    }
}
