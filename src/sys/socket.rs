//! Socket calls std does not offer: `setsockopt` for plain ints,
//! `send(MSG_ZEROCOPY)` and the error queue that carries its completions.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `SO_ZEROCOPY` from include/uapi/asm-generic/socket.h.
pub const SO_ZEROCOPY: libc::c_int = 60;
/// `SO_EE_ORIGIN_ZEROCOPY` from include/uapi/linux/errqueue.h.
pub const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// `SO_EE_CODE_ZEROCOPY_COPIED`: the kernel fell back to copying the data.
pub const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// `setsockopt(fd, level, name, &int, sizeof int)`.
pub fn set_int_opt(sock: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: we pass a pointer to a live c_int and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `getsockopt(fd, level, name)` for a plain int.
pub fn get_int_opt(sock: &impl AsRawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes the kernel expects.
    cvt(unsafe {
        libc::getsockopt(sock.as_raw_fd(), level, name, &mut value as *mut libc::c_int as *mut libc::c_void, &mut len)
    })?;
    Ok(value)
}

/// `send(fd, buf, len, flags)`.
pub fn send(sock: &impl AsRawFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is a live slice; the kernel reads at most `buf.len()` bytes.
    // With MSG_ZEROCOPY the kernel keeps referencing these pages after the
    // call returns: callers pass memory that outlives the completions (a
    // read-only file mapping held until every completion has arrived).
    let n = cvt(unsafe { libc::send(sock.as_raw_fd(), buf.as_ptr() as *const libc::c_void, buf.len(), flags) })?;
    Ok(n as usize)
}

/// One MSG_ZEROCOPY completion notification: sends number `lo..=hi` are
/// done with their pages; `copied` says the kernel copied them after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZerocopyCompletion {
    pub lo: u32,
    pub hi: u32,
    pub copied: bool,
}

/// Reads one message from the socket's error queue without blocking.
/// `Ok(None)` when the queue is empty. Messages that are not zerocopy
/// notifications are returned as an error carrying their errno.
pub fn recv_zerocopy_completion(sock: &impl AsRawFd) -> io::Result<Option<ZerocopyCompletion>> {
    // Room for one cmsghdr carrying a sock_extended_err plus the offending
    // address the kernel appends (sockaddr_in6 at most).
    let mut control = [0u64; 16];
    // SAFETY: msghdr is a plain C struct; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` points at our live control buffer and no data iovecs.
    let rc = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if rc == -1 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(err);
    }
    // SAFETY: recvmsg filled `msg`; CMSG_FIRSTHDR only reads its control fields.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(io::Error::other("error queue message without control data"));
    }
    // SAFETY: `cmsg` is non-null and points inside `control`, which the
    // kernel filled with at least one complete cmsghdr.
    let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    let ip_err = (level == libc::SOL_IP && kind == libc::IP_RECVERR) || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR);
    if !ip_err {
        return Err(io::Error::other(format!("unexpected control message (level {level}, type {kind}) on the error queue")));
    }
    // SAFETY: for IP_RECVERR/IPV6_RECVERR the payload is a sock_extended_err;
    // CMSG_DATA points inside `control`, which is 8-byte aligned, and
    // read_unaligned makes no alignment assumption anyway.
    let ee: libc::sock_extended_err =
        unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::sock_extended_err) };
    if ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY {
        return Err(io::Error::from_raw_os_error(ee.ee_errno as i32));
    }
    Ok(Some(ZerocopyCompletion { lo: ee.ee_info, hi: ee.ee_data, copied: ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0 }))
}

/// `poll` on one fd for `events`, up to `timeout_ms`. Returns the revents.
///
/// A signal that interrupts the wait (EINTR) reads as "nothing ready" (0):
/// the caller's loop then asks about Ctrl-C, whose flag the handler thread
/// may set a moment after the signal has already woken this one.
pub fn poll_one(fd: &impl AsRawFd, events: libc::c_short, timeout_ms: i32) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: one live pollfd, count 1.
    match cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) }) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
        Ok(_) => Ok(pfd.revents),
    }
}

/// A TCP socket bound to `addr` (port 0: the kernel picks one) that neither
/// listens nor connects: it holds the port, so no other program can take it,
/// while zclab's own TCP speaks on it. Returns it and the address it got.
pub fn hold_tcp_port(addr: std::net::SocketAddr) -> io::Result<(OwnedFd, std::net::SocketAddr)> {
    use std::os::fd::FromRawFd;
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket takes plain integers; the fd is owned right away.
    let fd = cvt(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh fd that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // Connections of an earlier server on the port may linger in TIME-WAIT;
    // they do not stop this bind (a socket that holds the port does).
    set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid empty value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `ss` holds a valid sockaddr of `len` bytes.
    cvt(unsafe { libc::bind(sock.as_raw_fd(), &ss as *const libc::sockaddr_storage as *const libc::sockaddr, len as u32) })?;
    let mut got: libc::sockaddr_storage = ss;
    let mut got_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `got` has room for any address, `got_len` says how much.
    cvt(unsafe {
        libc::getsockname(sock.as_raw_fd(), &mut got as *mut libc::sockaddr_storage as *mut libc::sockaddr, &mut got_len)
    })?;
    let port = match addr {
        // SAFETY: the kernel wrote a sockaddr of the socket's family (checked by the match on `addr`).
        std::net::SocketAddr::V4(_) => u16::from_be(unsafe { (*(&got as *const _ as *const libc::sockaddr_in)).sin_port }),
        // SAFETY: as above, IPv6.
        std::net::SocketAddr::V6(_) => u16::from_be(unsafe { (*(&got as *const _ as *const libc::sockaddr_in6)).sin6_port }),
    };
    let mut bound = addr;
    bound.set_port(port);
    Ok((sock, bound))
}

/// `SOL_UDP` (include/linux/socket.h).
pub const SOL_UDP: libc::c_int = 17;
/// `UDP_SEGMENT` (include/uapi/linux/udp.h): GSO segment size for sends.
pub const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` (include/uapi/linux/udp.h): coalesce received datagrams.
pub const UDP_GRO: libc::c_int = 104;

/// `sendmsg` of a gather list on a connected socket.
pub fn send_vectored(sock: &impl AsRawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr is a plain C struct; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with struct iovec.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len();
    // SAFETY: `msg` points at `bufs`, live for the call; the kernel only reads them.
    let n = cvt(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) })?;
    Ok(n as usize)
}

/// `recvmsg` into `buf` without blocking, reading the UDP_GRO segment size.
/// `Ok(None)` when nothing is queued; otherwise the bytes received and the
/// size of each coalesced segment (None if the datagram was not coalesced).
pub fn recv_gro(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Option<usize>)>> {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: msghdr is a plain C struct; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` points at our live buffer and control area for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n == -1 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
    }
    let mut seg = None;
    // SAFETY: recvmsg filled `msg`; the CMSG macros walk only inside `control`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and inside `control`.
        let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
        if level == SOL_UDP && kind == UDP_GRO {
            // SAFETY: a UDP_GRO control message carries one int.
            let v: libc::c_int = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int) };
            seg = Some(v as usize);
        }
        // SAFETY: as above; CMSG_NXTHDR returns null at the end.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(Some((n as usize, seg)))
}

/// `poll` on two fds for the same `events`; says which are ready.
pub fn poll_two(a: &impl AsRawFd, b: &impl AsRawFd, events: libc::c_short, timeout_ms: i32) -> io::Result<(bool, bool)> {
    let mut fds =
        [libc::pollfd { fd: a.as_raw_fd(), events, revents: 0 }, libc::pollfd { fd: b.as_raw_fd(), events, revents: 0 }];
    // SAFETY: two live pollfds, count 2.
    cvt(unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) })?;
    Ok((fds[0].revents != 0, fds[1].revents != 0))
}

/// Busy polling on any socket: `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`
/// (microseconds a blocking receive spins on the device's NAPI context
/// before it sleeps) and `SO_BUSY_POLL_BUDGET` (packets per NAPI poll).
/// The socket must know the NAPI context its packets came through; on the
/// lab's veth a UDP server busy polling 50 us still slept for every message.
pub fn set_busy_poll(sock: &impl AsRawFd, usecs: u32, budget: u32) -> io::Result<()> {
    const SO_PREFER_BUSY_POLL: libc::c_int = 69;
    const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
    for (name, value) in [(SO_PREFER_BUSY_POLL, 1i32), (libc::SO_BUSY_POLL, usecs as i32), (SO_BUSY_POLL_BUDGET, budget as i32)] {
        set_int_opt(sock, libc::SOL_SOCKET, name, value)?;
    }
    Ok(())
}

/// `SO_RCVTIMEO`: a blocking receive gives up (EAGAIN) after `timeout`.
pub fn set_receive_timeout(sock: &impl AsRawFd, timeout: std::time::Duration) -> io::Result<()> {
    let tv = libc::timeval { tv_sec: timeout.as_secs() as libc::time_t, tv_usec: timeout.subsec_micros() as libc::suseconds_t };
    // SAFETY: we pass a pointer to a live timeval and its exact size.
    cvt(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `recv(fd, buf, len, flags)`: `Ok(None)` when nothing came (EAGAIN: a
/// non-blocking call, or a blocking one past its `SO_RCVTIMEO`), `Ok(Some(0))`
/// at the end of a stream.
pub fn recv(sock: &impl AsRawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is a live, writable slice; the kernel writes at most `buf.len()` bytes.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr() as *mut libc::c_void, buf.len(), flags) };
    if n == -1 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
    }
    Ok(Some(n as usize))
}

/// The headers of `sendmmsg`, allocated once for up to `count` datagrams a
/// call; each call points them at its own buffers.
pub struct MmsgSender {
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl MmsgSender {
    pub fn new(count: usize) -> MmsgSender {
        MmsgSender { iovs: Vec::with_capacity(count), msgs: Vec::with_capacity(count) }
    }

    /// `sendmmsg` of the first `count` of `bufs`, one datagram each, on a
    /// connected socket; returns how many datagrams went. Allocates nothing.
    pub fn send<'a>(
        &mut self,
        sock: &impl AsRawFd,
        bufs: impl IntoIterator<Item = &'a [u8]>,
        flags: libc::c_int,
    ) -> io::Result<usize> {
        let count = self.iovs.capacity();
        self.iovs.clear();
        self.iovs.extend(
            bufs.into_iter().take(count).map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() }),
        );
        self.msgs.clear();
        self.msgs.extend(self.iovs.iter_mut().map(header));
        if self.msgs.is_empty() {
            return Ok(0);
        }
        // SAFETY: every header points at one iovec of `self.iovs`, which are
        // not touched until the call returns, each over a slice of `bufs` that
        // the caller's borrow keeps alive for the call; the kernel only reads
        // them, and writes each msg_len.
        let n = cvt(unsafe { libc::sendmmsg(sock.as_raw_fd(), self.msgs.as_mut_ptr(), self.msgs.len() as libc::c_uint, flags) })?;
        Ok(n as usize)
    }
}

/// A message header for one datagram in `iov`.
fn header(iov: &mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct; all-zero is a valid empty value.
    let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
    m.msg_hdr.msg_iov = iov;
    m.msg_hdr.msg_iovlen = 1;
    m
}

/// Buffers and headers for `recvmmsg`, made once and kept from call to call:
/// `iovs` point into the heap block of `bufs` and `msgs` into that of `iovs`,
/// and neither block ever grows or moves.
pub struct MmsgReceiver {
    bufs: Vec<u8>,
    each: usize,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    lens: Vec<usize>,
}

impl MmsgReceiver {
    /// Room for `count` datagrams of up to `each` bytes.
    pub fn new(count: usize, each: usize) -> MmsgReceiver {
        let mut bufs = vec![0u8; count * each];
        let mut iovs: Vec<libc::iovec> = bufs
            .chunks_exact_mut(each)
            .map(|b| libc::iovec { iov_base: b.as_mut_ptr() as *mut libc::c_void, iov_len: each })
            .collect();
        let msgs = iovs.iter_mut().map(header).collect();
        MmsgReceiver { bufs, each, iovs, msgs, lens: Vec::with_capacity(count) }
    }

    /// `recvmmsg`: takes up to `count` datagrams; `Ok(0)` when none came
    /// (EAGAIN: non-blocking, or a blocking call past `SO_RCVTIMEO`).
    pub fn receive(&mut self, sock: &impl AsRawFd, flags: libc::c_int) -> io::Result<usize> {
        debug_assert_eq!(self.iovs.len(), self.msgs.len());
        // SAFETY: every header points at its own iovec of `self.iovs`, over
        // its own `each`-byte part of `self.bufs`; both blocks live as long as
        // `self` and are not touched during the call. The kernel writes at most
        // `each` bytes into each part, and the lengths into the headers. No
        // timeout pointer.
        let n = unsafe {
            libc::recvmmsg(sock.as_raw_fd(), self.msgs.as_mut_ptr(), self.msgs.len() as libc::c_uint, flags, std::ptr::null_mut())
        };
        self.lens.clear();
        if n == -1 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(0) } else { Err(e) };
        }
        let each = self.each;
        self.lens.extend(self.msgs[..n as usize].iter().map(|m| (m.msg_len as usize).min(each)));
        Ok(n as usize)
    }

    /// The datagrams of the last `receive`.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.lens.iter().enumerate().map(|(i, &n)| &self.bufs[i * self.each..i * self.each + n])
    }
}

/// Whether this kernel takes `SO_ZEROCOPY` on a TCP socket (MSG_ZEROCOPY, Linux 4.14+).
pub fn probe_msg_zerocopy() -> io::Result<bool> {
    // SAFETY: socket takes plain integers; the fd is owned right away.
    let fd = cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh fd that nothing else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    match set_int_opt(&sock, libc::SOL_SOCKET, SO_ZEROCOPY, 1) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `poll` on several fds for the same `events`, up to `timeout_ms`; sets
/// `ready[i]` for each fd that is. A signal (EINTR) reads as nothing ready.
pub fn poll_many(fds: &[impl AsRawFd], events: libc::c_short, timeout_ms: i32, ready: &mut [bool]) -> io::Result<()> {
    let mut p: Vec<libc::pollfd> = fds.iter().map(|f| libc::pollfd { fd: f.as_raw_fd(), events, revents: 0 }).collect();
    // SAFETY: `p` is a live array of as many pollfds as we pass.
    match cvt(unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) }) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e),
        Ok(_) => {
            for (r, pfd) in ready.iter_mut().zip(&p) {
                *r = pfd.revents != 0;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn mmsg_headers_are_made_once_and_carry_every_datagram() {
        // A datagram socket pair: sendmmsg and recvmmsg as on UDP, without a network.
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let mut tx = MmsgSender::new(4);
        let mut rx = MmsgReceiver::new(4, 16);
        let (tx_iovs, tx_msgs, rx_msgs) = (tx.iovs.as_ptr(), tx.msgs.as_ptr(), rx.msgs.as_ptr());
        for round in 0..3u8 {
            let data: Vec<Vec<u8>> = (0..6u8).map(|i| vec![round * 10 + i; 1 + i as usize]).collect();
            // Six offered, four go: the headers were made for four.
            assert_eq!(tx.send(&a, data.iter().map(|d| d.as_slice()), 0).unwrap(), 4);
            assert_eq!(rx.receive(&b, 0).unwrap(), 4);
            let got: Vec<&[u8]> = rx.datagrams().collect();
            assert_eq!(got, data[..4].iter().map(|d| d.as_slice()).collect::<Vec<_>>());
            // Nothing left: EAGAIN is 0.
            assert_eq!(rx.receive(&b, 0).unwrap(), 0);
            assert_eq!(rx.datagrams().count(), 0);
        }
        // Still the blocks made at the start: nothing was allocated per batch.
        assert_eq!((tx.iovs.as_ptr(), tx.msgs.as_ptr(), rx.msgs.as_ptr()), (tx_iovs, tx_msgs, rx_msgs));
        assert_eq!(tx.send(&a, std::iter::empty(), 0).unwrap(), 0);
    }
}
