//! Kernel UDP, one `send()` and one `recv()` per message, on connected
//! sockets. Every message crosses the socket layer twice and, for a
//! receiver that blocks, wakes it once.

use super::control::{Hello, Kind};
use super::{accept, message, set_seq, EndConfig, Link, LinkInfo, SockWait};
use crate::sys::socket;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Messages one `receive` takes at most before it returns (rate).
const DRAIN: u32 = 64;

pub struct UdpLink {
    sock: UdpSocket,
    msg: Vec<u8>,
    buf: Vec<u8>,
    size: usize,
    session: u32,
    waiter: SockWait,
    malformed: u64,
    /// Take what else is queued after a message, without waiting (a stream
    /// does; a ping-pong has nothing else queued, and the extra call would
    /// be a syscall per round trip).
    drain: bool,
}

impl UdpLink {
    /// A UDP socket on `sock`, connected to `peer`.
    pub fn new(sock: UdpSocket, peer: SocketAddr, hello: &Hello, end: &EndConfig) -> io::Result<UdpLink> {
        sock.connect(peer)?;
        let waiter = SockWait::new(&sock, end.wait)?;
        Ok(UdpLink {
            sock,
            msg: message(hello.session, hello.size),
            // One byte more than a message: a longer datagram shows as one.
            buf: vec![0; hello.size + 1],
            size: hello.size,
            session: hello.session,
            waiter,
            malformed: 0,
            drain: hello.kind == Kind::Rate,
        })
    }

    /// Takes one datagram: Some(its length), None if none came.
    fn recv_one(&mut self, timeout: Option<Duration>) -> io::Result<Option<usize>> {
        let (sock, buf) = (&self.sock, &mut self.buf);
        let call = |flags| socket::recv(sock, buf, flags);
        match timeout {
            Some(t) => self.waiter.wait(sock, t, call),
            None => self.waiter.now(call),
        }
    }
}

/// A send on a connected UDP socket: Ok(false) when the kernel had no room
/// (ENOBUFS, EAGAIN): the message was not sent.
pub(super) fn sent(r: io::Result<usize>) -> io::Result<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN)) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            Err(io::Error::new(e.kind(), "the peer's UDP port is closed (ICMP port unreachable): did the server stop?"))
        }
        Err(e) => Err(e),
    }
}

impl Link for UdpLink {
    fn send(&mut self, first: u64, n: u32) -> io::Result<u32> {
        for i in 0..n {
            set_seq(&mut self.msg, first + i as u64);
            self.waiter.syscalls += 1;
            if !sent(socket::send(&self.sock, &self.msg, 0))? {
                return Ok(i);
            }
        }
        Ok(n)
    }

    fn receive(&mut self, timeout: Duration, each: &mut dyn FnMut(u64)) -> io::Result<u32> {
        let mut got = 0;
        let mut next = self.recv_one(Some(timeout))?;
        while let Some(len) = next {
            if let Some(seq) = accept(&self.buf[..len], self.session, self.size, &mut self.malformed) {
                each(seq);
                got += 1;
            }
            if got >= DRAIN || !self.drain {
                break;
            }
            next = self.recv_one(None)?;
        }
        Ok(got)
    }

    fn echo(&mut self, timeout: Duration) -> io::Result<u32> {
        let mut got = 0;
        let mut next = self.recv_one(Some(timeout))?;
        while let Some(len) = next {
            if accept(&self.buf[..len], self.session, self.size, &mut self.malformed).is_some() {
                self.waiter.syscalls += 1;
                sent(socket::send(&self.sock, &self.buf[..len], 0))?;
                got += 1;
            }
            if got >= DRAIN || !self.drain {
                break;
            }
            next = self.recv_one(None)?;
        }
        Ok(got)
    }

    fn info(&self) -> LinkInfo {
        LinkInfo { syscalls: self.waiter.syscalls, malformed: self.malformed, ..LinkInfo::default() }
    }
}
