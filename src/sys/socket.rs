//! Socket calls std does not offer: `setsockopt` for plain ints,
//! `send(MSG_ZEROCOPY)` and the error queue that carries its completions.

use super::cvt;
use std::io;
use std::os::fd::AsRawFd;

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
pub fn poll_one(fd: &impl AsRawFd, events: libc::c_short, timeout_ms: i32) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: one live pollfd, count 1.
    cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) })?;
    Ok(pfd.revents)
}
