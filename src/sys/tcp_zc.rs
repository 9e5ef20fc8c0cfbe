//! Receiving without copying: `TCP_ZEROCOPY_RECEIVE` maps the pages of
//! received TCP data into a region of our address space instead of copying
//! them, and `recv(MSG_TRUNC)` discards received data without copying it.
//!
//! The mapping works only where the received data lies in whole, aligned
//! pages; what does not is copied into a buffer of ours by the same call
//! (`copybuf`), so every byte is accounted as mapped or copied.

use super::cvt;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

/// `struct tcp_zerocopy_receive` (include/uapi/linux/tcp.h, Linux 5.11+).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct TcpZerocopyReceive {
    address: u64,
    length: u32,
    recv_skip_hint: u32,
    inq: u32,
    err: i32,
    copybuf_address: u64,
    copybuf_len: i32,
    flags: u32,
    msg_control: u64,
    msg_controllen: u64,
    msg_flags: u32,
    reserved: u32,
}

const _: () = assert!(std::mem::size_of::<TcpZerocopyReceive>() == 64);

/// What one zero-copy receive call gave.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZcChunk {
    /// Bytes mapped, at the start of the region.
    pub mapped: usize,
    /// Bytes the kernel copied into the copy buffer (they follow the mapped ones).
    pub copied: usize,
    /// Bytes waiting in the receive queue after the call.
    pub inq: u32,
    /// Bytes at the current position that cannot be mapped (not in a whole,
    /// aligned page): read them with `recv()` to get to a mappable position.
    pub skip: u32,
}

/// A region of our address space that receives a TCP socket's pages, and
/// the buffer for what cannot be mapped.
pub struct ZcReceiver {
    region: NonNull<u8>,
    len: usize,
    copybuf: Vec<u8>,
}

impl ZcReceiver {
    /// Maps `len` bytes (a multiple of the page size) of `sock`'s receive
    /// address space; `copy` bytes of copy buffer.
    pub fn new(sock: &impl AsRawFd, len: usize, copy: usize) -> io::Result<ZcReceiver> {
        if len == 0 || !len.is_multiple_of(super::page_size()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the region must be whole pages"));
        }
        // SAFETY: a fresh shared mapping of the TCP socket, which the kernel
        // allows for exactly this use; it aliases no memory of ours.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, sock.as_raw_fd(), 0) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let region = NonNull::new(p as *mut u8).expect("mmap never returns null on success");
        Ok(ZcReceiver { region, len, copybuf: vec![0; copy] })
    }

    /// Receives up to `max` bytes: maps what it can (whole pages); with
    /// `copy`, the kernel copies what follows into the copy buffer (and
    /// copies everything if no more than that is queued). The previous
    /// chunk's mapped bytes are gone after this call.
    pub fn receive(&mut self, sock: &impl AsRawFd, max: usize, copy: bool) -> io::Result<ZcChunk> {
        let page = super::page_size();
        let map = (max.min(self.len) / page) * page;
        let copy = if copy { (max - map).min(self.copybuf.len()) } else { 0 };
        let mut zc = TcpZerocopyReceive {
            address: self.region.as_ptr() as u64,
            length: map as u32,
            copybuf_address: self.copybuf.as_mut_ptr() as u64,
            copybuf_len: copy as i32,
            ..Default::default()
        };
        let mut optlen = std::mem::size_of::<TcpZerocopyReceive>() as libc::socklen_t;
        // SAFETY: `zc` is a live, writable struct of the size we pass; the
        // kernel maps pages only into our region (`address`, at most `length`
        // bytes, inside the `len` we mapped) and copies at most `copybuf_len`
        // bytes into `copybuf`, which we own and do not touch during the call.
        cvt(unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_ZEROCOPY_RECEIVE,
                &mut zc as *mut TcpZerocopyReceive as *mut libc::c_void,
                &mut optlen,
            )
        })?;
        if zc.err != 0 {
            return Err(io::Error::from_raw_os_error(zc.err.abs()));
        }
        Ok(ZcChunk { mapped: zc.length as usize, copied: zc.copybuf_len.max(0) as usize, inq: zc.inq, skip: zc.recv_skip_hint })
    }

    /// The bytes of the last chunk: mapped, then copied.
    pub fn bytes(&self, c: &ZcChunk) -> (&[u8], &[u8]) {
        // SAFETY: the kernel mapped `c.mapped` bytes at the start of our
        // region in the last call (never more than `len`), read-only; they
        // stay until the next `receive`, which needs `&mut self`, so no
        // slice can outlive them.
        let mapped = unsafe { std::slice::from_raw_parts(self.region.as_ptr(), c.mapped.min(self.len)) };
        (mapped, &self.copybuf[..c.copied.min(self.copybuf.len())])
    }
}

impl Drop for ZcReceiver {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; nothing refers to it after drop (slices borrow self).
        unsafe { libc::munmap(self.region.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// `recv(fd, NULL, len, MSG_TRUNC)` on a TCP socket: the kernel drops up
/// to `len` received bytes without copying them anywhere.
pub fn recv_discard(sock: &impl AsRawFd, len: usize) -> io::Result<usize> {
    // SAFETY: with MSG_TRUNC on a TCP socket the kernel never writes to the
    // buffer, so a null pointer is never dereferenced.
    let n = cvt(unsafe { libc::recv(sock.as_raw_fd(), std::ptr::null_mut(), len, libc::MSG_TRUNC) })?;
    Ok(n as usize)
}

/// Whether this kernel knows `TCP_ZEROCOPY_RECEIVE`: asked on a listening
/// socket (bound to an ephemeral port, never connected to), a kernel that
/// knows the option answers ENOTCONN, one that does not ENOPROTOOPT.
pub fn probe_zerocopy_receive() -> io::Result<bool> {
    let l = std::net::TcpListener::bind(("0.0.0.0", 0))?;
    let mut zc = TcpZerocopyReceive::default();
    let mut len = std::mem::size_of::<TcpZerocopyReceive>() as libc::socklen_t;
    // SAFETY: `zc` is a live struct of the size we pass; the kernel writes at most that much.
    let rc = unsafe {
        libc::getsockopt(
            l.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_ZEROCOPY_RECEIVE,
            (&mut zc as *mut TcpZerocopyReceive).cast(),
            &mut len,
        )
    };
    match (rc, io::Error::last_os_error().raw_os_error()) {
        (0, _) | (_, Some(libc::ENOTCONN)) => Ok(true),
        (_, Some(libc::ENOPROTOOPT)) => Ok(false),
        _ => Err(io::Error::last_os_error()),
    }
}
