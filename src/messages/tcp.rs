//! A TCP stream with `TCP_NODELAY`: messages back to back, which the
//! receiver cuts at every `size` bytes. A stream has no message boundaries
//! of its own; it delivers everything, in order, or fails.

use super::control::Hello;
use super::{accept, message, set_seq, EndConfig, Link, LinkInfo, SockWait};
use crate::sys::socket;
use std::io;
use std::net::TcpStream;
use std::time::Duration;

/// Messages one `send` writes at most in one call.
const BATCH: usize = 64;

pub struct TcpLink {
    stream: TcpStream,
    /// BATCH messages, back to back: what `send` writes.
    out: Vec<u8>,
    /// What came and is not yet a whole message.
    buf: Vec<u8>,
    filled: usize,
    size: usize,
    session: u32,
    waiter: SockWait,
    malformed: u64,
    closed: bool,
}

impl TcpLink {
    pub fn new(stream: TcpStream, hello: &Hello, end: &EndConfig) -> io::Result<TcpLink> {
        stream.set_nodelay(true)?;
        let waiter = SockWait::new(&stream, end.wait)?;
        let one = message(hello.session, hello.size);
        Ok(TcpLink {
            stream,
            out: one.repeat(BATCH),
            buf: vec![0; hello.size * BATCH],
            filled: 0,
            size: hello.size,
            session: hello.session,
            waiter,
            malformed: 0,
            closed: false,
        })
    }

    /// Connects the data stream to the server (after its Ready).
    pub fn connect(server: std::net::SocketAddr, hello: &Hello, end: &EndConfig) -> io::Result<TcpLink> {
        let s = TcpStream::connect_timeout(&server, Duration::from_secs(3))
            .map_err(|e| io::Error::new(e.kind(), format!("the TCP data connection to {server}: {e}")))?;
        TcpLink::new(s, hello, end)
    }

    /// Reads what has come (waiting up to `timeout`, or not at all); returns
    /// how many whole messages are now in the buffer.
    fn fill(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let (stream, buf, filled) = (&self.stream, &mut self.buf, self.filled);
        let call = |flags| socket::recv(stream, &mut buf[filled..], flags);
        let got = match timeout {
            Some(t) => self.waiter.wait(stream, t, call)?,
            None => self.waiter.now(call)?,
        };
        match got {
            Some(0) => self.closed = true,
            Some(n) => self.filled += n,
            None => {}
        }
        Ok(self.filled / self.size)
    }

    /// Drops the first `n` whole messages from the buffer.
    fn consume(&mut self, n: usize) {
        let used = n * self.size;
        self.buf.copy_within(used..self.filled, 0);
        self.filled -= used;
    }

    fn write_all(&mut self, bytes: std::ops::Range<usize>, from_buf: bool) -> io::Result<()> {
        let mut at = bytes.start;
        while at < bytes.end {
            self.waiter.syscalls += 1;
            let src = if from_buf { &self.buf[at..bytes.end] } else { &self.out[at..bytes.end] };
            match socket::send(&self.stream, src, libc::MSG_NOSIGNAL) {
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Link for TcpLink {
    fn send(&mut self, first: u64, n: u32) -> io::Result<u32> {
        let k = (n as usize).min(BATCH);
        for i in 0..k {
            set_seq(&mut self.out[i * self.size..(i + 1) * self.size], first + i as u64);
        }
        self.write_all(0..k * self.size, false)?;
        Ok(k as u32)
    }

    fn receive(&mut self, timeout: Duration, each: &mut dyn FnMut(u64)) -> io::Result<u32> {
        let mut whole = self.fill(Some(timeout))?;
        if whole == 0 && self.filled > 0 && !self.closed {
            // A message cut in two by the stream: its rest is on the way.
            whole = self.fill(Some(timeout))?;
        }
        let mut got = 0;
        for i in 0..whole {
            let m = &self.buf[i * self.size..(i + 1) * self.size];
            if let Some(seq) = accept(m, self.session, self.size, &mut self.malformed) {
                each(seq);
                got += 1;
            }
        }
        self.consume(whole);
        Ok(got)
    }

    fn echo(&mut self, timeout: Duration) -> io::Result<u32> {
        let whole = self.fill(Some(timeout))?;
        let mut good = 0;
        for i in 0..whole {
            let m = &self.buf[i * self.size..(i + 1) * self.size];
            good += u32::from(accept(m, self.session, self.size, &mut self.malformed).is_some());
        }
        if whole > 0 {
            // The stream is the session's own: what came goes back as it came.
            self.write_all(0..whole * self.size, true)?;
            self.consume(whole);
        }
        Ok(good)
    }

    fn closed(&self) -> bool {
        self.closed
    }

    fn info(&self) -> LinkInfo {
        LinkInfo { syscalls: self.waiter.syscalls, malformed: self.malformed, ..LinkInfo::default() }
    }
}
