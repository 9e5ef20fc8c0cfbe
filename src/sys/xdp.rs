//! The AF_XDP socket ABI (include/uapi/linux/if_xdp.h): socket, UMEM
//! registration, ring sizes and offsets, bind, statistics, the TX kick.

use super::cvt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `XDP_MAX_TX_SKB_BUDGET` (if_xdp.h, Linux 6.x): frames sent per kick in
/// copy mode. libc 0.2.191 lacks it.
pub const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// `socket(AF_XDP, SOCK_RAW, 0)`.
pub fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; the fd is owned by the OwnedFd below.
    let fd = cvt(unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(fd: &impl AsRawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live T and we pass its exact size.
    cvt(unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_XDP, name, value as *const T as *const libc::c_void, size_of::<T>() as u32)
    })?;
    Ok(())
}

fn getsockopt<T: Default>(fd: &impl AsRawFd, name: libc::c_int) -> io::Result<(T, usize)> {
    let mut value = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a live, writable T of `len` bytes.
    cvt(unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_XDP, name, &mut value as *mut T as *mut libc::c_void, &mut len) })?;
    Ok((value, len as usize))
}

/// `XDP_UMEM_REG`: tells the kernel where the UMEM is and how it is cut.
pub fn register_umem(
    fd: &impl AsRawFd,
    addr: *mut u8,
    len: usize,
    chunk_size: u32,
    flags: u32,
    tx_metadata_len: u32,
    headroom: u32,
) -> io::Result<()> {
    let reg = libc::xdp_umem_reg { addr: addr as u64, len: len as u64, chunk_size, headroom, flags, tx_metadata_len };
    setsockopt(fd, libc::XDP_UMEM_REG, &reg)
}

/// `XDP_UMEM_TX_SW_CSUM` (if_xdp.h, Linux 6.8): in copy mode the kernel
/// computes a checksum that TX metadata asks for, in software.
pub const XDP_UMEM_TX_SW_CSUM: u32 = 1 << 1;
/// `XDP_UMEM_TX_METADATA_LEN` (Linux 6.11): honour `tx_metadata_len`.
pub const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;
/// `XDP_TX_METADATA`: a TX descriptor option, "metadata precedes my address".
pub const XDP_TX_METADATA: u32 = 1 << 1;
/// `XDP_TXMD_FLAGS_CHECKSUM`: the metadata asks for a checksum.
pub const XDP_TXMD_FLAGS_CHECKSUM: u64 = 1 << 1;

/// Sets the size (entries, a power of two) of one of the four rings.
pub fn set_ring_size(fd: &impl AsRawFd, ring: libc::c_int, entries: u32) -> io::Result<()> {
    setsockopt(fd, ring, &entries)
}

/// Where producer, consumer, flags and descriptors sit in one ring's mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingOffsets {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// The offsets of all four rings (`XDP_MMAP_OFFSETS`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MmapOffsets {
    pub rx: RingOffsets,
    pub tx: RingOffsets,
    pub fill: RingOffsets,
    pub completion: RingOffsets,
}

#[repr(C)]
#[derive(Default)]
struct RawRingOffset {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct RawMmapOffsets {
    rx: RawRingOffset,
    tx: RawRingOffset,
    fr: RawRingOffset,
    cr: RawRingOffset,
}

pub fn mmap_offsets(fd: &impl AsRawFd) -> io::Result<MmapOffsets> {
    let (o, len) = getsockopt::<RawMmapOffsets>(fd, libc::XDP_MMAP_OFFSETS)?;
    if len != size_of::<RawMmapOffsets>() {
        return Err(io::Error::other("XDP_MMAP_OFFSETS: kernel older than 5.4 (no flags field) is not supported"));
    }
    let c = |r: &RawRingOffset| RingOffsets { producer: r.producer, consumer: r.consumer, desc: r.desc, flags: r.flags };
    Ok(MmapOffsets { rx: c(&o.rx), tx: c(&o.tx), fill: c(&o.fr), completion: c(&o.cr) })
}

/// `bind` to `queue` of interface `ifindex` with `XDP_*` bind flags.
pub fn bind(fd: &impl AsRawFd, ifindex: u32, queue: u32, flags: u16) -> io::Result<()> {
    bind_to(fd, ifindex, queue, flags, 0)
}

/// Binds a socket that shares the UMEM registered on `shared_fd`
/// (`XDP_SHARED_UMEM`; the mode and flags are the first socket's).
pub fn bind_shared(fd: &impl AsRawFd, ifindex: u32, queue: u32, shared_fd: &impl AsRawFd) -> io::Result<()> {
    bind_to(fd, ifindex, queue, libc::XDP_SHARED_UMEM, shared_fd.as_raw_fd() as u32)
}

fn bind_to(fd: &impl AsRawFd, ifindex: u32, queue: u32, flags: u16, shared_fd: u32) -> io::Result<()> {
    let addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: shared_fd,
    };
    // SAFETY: `addr` is a live sockaddr_xdp and we pass its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_xdp as *const libc::sockaddr,
            size_of::<libc::sockaddr_xdp>() as u32,
        )
    })?;
    Ok(())
}

/// `XDP_STATISTICS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

impl XdpStatistics {
    /// Adds another socket's counters (the sockets of several queues, as one end).
    pub fn add(&mut self, o: &XdpStatistics) {
        self.rx_dropped += o.rx_dropped;
        self.rx_invalid_descs += o.rx_invalid_descs;
        self.tx_invalid_descs += o.tx_invalid_descs;
        self.rx_ring_full += o.rx_ring_full;
        self.rx_fill_ring_empty_descs += o.rx_fill_ring_empty_descs;
        self.tx_ring_empty_descs += o.tx_ring_empty_descs;
    }
}

#[repr(C)]
#[derive(Default)]
struct RawStatistics([u64; 6]);

pub fn statistics(fd: &impl AsRawFd) -> io::Result<XdpStatistics> {
    let (s, _) = getsockopt::<RawStatistics>(fd, libc::XDP_STATISTICS)?;
    let [rx_dropped, rx_invalid_descs, tx_invalid_descs, rx_ring_full, rx_fill_ring_empty_descs, tx_ring_empty_descs] = s.0;
    Ok(XdpStatistics {
        rx_dropped,
        rx_invalid_descs,
        tx_invalid_descs,
        rx_ring_full,
        rx_fill_ring_empty_descs,
        tx_ring_empty_descs,
    })
}

/// `XDP_OPTIONS`: true when the socket is bound in zero-copy mode.
pub fn is_zerocopy(fd: &impl AsRawFd) -> io::Result<bool> {
    let (o, _) = getsockopt::<u32>(fd, libc::XDP_OPTIONS)?;
    Ok(o & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Frames the kernel sends per kick in copy mode.
pub fn set_tx_budget(fd: &impl AsRawFd, frames: u32) -> io::Result<()> {
    setsockopt(fd, XDP_MAX_TX_SKB_BUDGET, &frames)
}

/// Busy polling on an AF_XDP socket (see [`super::socket::set_busy_poll`]).
pub fn set_busy_poll(fd: &impl AsRawFd, usecs: u32, budget: u32) -> io::Result<()> {
    super::socket::set_busy_poll(fd, usecs, budget)
}

/// The TX kick: `sendto(fd, NULL, 0, MSG_DONTWAIT)`. In copy mode the kernel
/// sends from the TX ring only inside this call. EAGAIN/EBUSY/ENOBUFS mean
/// "not all sent yet, call again" and are not errors. ENETDOWN (the
/// interface is down) and ENXIO (it is gone, or the socket is unbound) are:
/// nothing will move until someone fixes the link, and the caller must say so.
pub fn kick_tx(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: no buffer is passed; the kernel reads only the TX ring.
    let rc = unsafe { libc::sendto(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    if rc == -1 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => Ok(()),
            _ => Err(e),
        };
    }
    Ok(())
}

/// A non-blocking receive call on an AF_XDP socket (`recvfrom(fd, NULL, 0,
/// MSG_DONTWAIT)`): it moves nothing itself, but with `SO_BUSY_POLL` the
/// kernel polls the queue's NAPI context inside it, and with need-wakeup it
/// is the wake-up the fill ring asks for. EAGAIN and EBUSY are not errors.
pub fn wake_rx(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: no buffer is passed (length 0); the kernel writes nothing of ours.
    let rc = unsafe {
        libc::recvfrom(fd.as_raw_fd(), std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null_mut(), std::ptr::null_mut())
    };
    if rc == -1 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR) => Ok(()),
            _ => Err(e),
        };
    }
    Ok(())
}
