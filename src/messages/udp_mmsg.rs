//! Kernel UDP in batches: `sendmmsg()` and `recvmmsg()` move up to 64
//! messages a call. The socket layer still handles every message; the
//! syscalls, and the wake-ups of a receiver that sleeps, are shared.

use super::control::Hello;
use super::{accept, message, set_seq, EndConfig, Link, LinkInfo, SockWait};
use crate::sys::socket::{MmsgReceiver, MmsgSender};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Messages per sendmmsg / recvmmsg.
pub const BATCH: usize = 64;

pub struct MmsgLink {
    sock: UdpSocket,
    msgs: Vec<Vec<u8>>,
    tx: MmsgSender,
    rx: MmsgReceiver,
    size: usize,
    session: u32,
    waiter: SockWait,
    malformed: u64,
}

impl MmsgLink {
    pub fn new(sock: UdpSocket, peer: SocketAddr, hello: &Hello, end: &EndConfig) -> io::Result<MmsgLink> {
        sock.connect(peer)?;
        let waiter = SockWait::new(&sock, end.wait)?;
        Ok(MmsgLink {
            sock,
            msgs: (0..BATCH).map(|_| message(hello.session, hello.size)).collect(),
            tx: MmsgSender::new(BATCH),
            rx: MmsgReceiver::new(BATCH, hello.size + 1),
            size: hello.size,
            session: hello.session,
            waiter,
            malformed: 0,
        })
    }

    fn take(&mut self, timeout: Duration) -> io::Result<usize> {
        let (sock, rx) = (&self.sock, &mut self.rx);
        let n = self.waiter.wait(sock, timeout, |flags| rx.receive(sock, flags).map(|n| (n > 0).then_some(n)))?;
        Ok(n.unwrap_or(0))
    }
}

impl Link for MmsgLink {
    fn send(&mut self, first: u64, n: u32) -> io::Result<u32> {
        let mut done = 0u32;
        while done < n {
            let k = ((n - done) as usize).min(BATCH);
            for (i, m) in self.msgs[..k].iter_mut().enumerate() {
                set_seq(m, first + done as u64 + i as u64);
            }
            self.waiter.syscalls += 1;
            match self.tx.send(&self.sock, self.msgs[..k].iter().map(|m| m.as_slice()), 0) {
                Ok(sent) => {
                    done += sent as u32;
                    if sent < k {
                        break;
                    }
                }
                Err(e) => {
                    if !super::udp::sent(Err(e))? {
                        break;
                    }
                }
            }
        }
        Ok(done)
    }

    fn receive(&mut self, timeout: Duration, each: &mut dyn FnMut(u64)) -> io::Result<u32> {
        if self.take(timeout)? == 0 {
            return Ok(0);
        }
        let mut got = 0;
        for d in self.rx.datagrams() {
            if let Some(seq) = accept(d, self.session, self.size, &mut self.malformed) {
                each(seq);
                got += 1;
            }
        }
        Ok(got)
    }

    fn echo(&mut self, timeout: Duration) -> io::Result<u32> {
        if self.take(timeout)? == 0 {
            return Ok(0);
        }
        let (session, size) = (self.session, self.size);
        let mut malformed = 0;
        let good = self.rx.datagrams().filter(|d| accept(d, session, size, &mut malformed).is_some()).count();
        if good > 0 {
            // The same datagrams again, the malformed ones left out: nothing collected.
            let mut skip = 0;
            let back = self.rx.datagrams().filter(|d| accept(d, session, size, &mut skip).is_some());
            self.waiter.syscalls += 1;
            super::udp::sent(self.tx.send(&self.sock, back, 0))?;
        }
        self.malformed += malformed;
        Ok(good as u32)
    }

    fn info(&self) -> LinkInfo {
        LinkInfo { syscalls: self.waiter.syscalls, malformed: self.malformed, ..LinkInfo::default() }
    }
}
