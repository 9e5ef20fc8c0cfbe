//! The AF_XDP socket: binds a UMEM to one queue of one interface, with the
//! one data ring its user needs: an [`Rx`] ring to receive, or a [`Tx`]
//! ring to send (libxdp's `xsk_socket_config`, split from the UMEM's).
//!
//! The rings are separate values from the socket, so code that sends holds
//! a `Tx` and cannot reach for an RX ring that does not exist, and frames
//! move only as the types allow: a [`Frame`] goes *into* the TX ring by
//! value, comes *back* from the completion ring ([`Umem::complete`]); a
//! frame comes *out* of the RX ring as an [`RxFrame`] and goes back to the
//! kernel through the fill ring ([`Umem::fill`]).

use super::frame::{DescError, Foreign, Frame, Frames, Returned, SharedFrame};
use super::ring::{Reservation, RxRing, TxRing, XdpDesc};
use super::umem::{context, map_ring, Umem};
use crate::sys::xdp::{self, XdpStatistics};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

/// How the socket may move packets between the NIC and the UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    /// XDP_COPY: the kernel copies between its buffers and the UMEM (works on every driver, veth too).
    Copy,
    /// XDP_ZEROCOPY: the NIC DMAs straight into the UMEM (needs a driver that supports it).
    Zerocopy,
    /// Try zero copy, fall back to copy.
    Auto,
}

/// Tries to bind a busy queue before giving up.
const BUSY_TRIES: u32 = 15;

/// Where and how the socket binds (libxdp's `xsk_socket_config`).
#[derive(Debug, Clone)]
pub struct SocketConfig {
    pub ifindex: u32,
    pub queue: u32,
    pub bind_mode: BindMode,
    /// XDP_USE_NEED_WAKEUP: the kernel says when it needs a syscall to move.
    pub need_wakeup: bool,
    /// XDP_USE_SG: packets may span several descriptors (XDP_PKT_CONTD).
    pub multi_buffer: bool,
    /// Frames sent per TX kick in copy mode (XDP_MAX_TX_SKB_BUDGET).
    pub tx_budget: Option<u32>,
    /// Busy polling: (microseconds, packets per poll).
    pub busy_poll: Option<(u32, u32)>,
}

/// A bound AF_XDP socket and the UMEM it owns.
pub struct XskSocket {
    fd: Arc<OwnedFd>,
    umem: Umem,
    zerocopy: bool,
}

impl XskSocket {
    /// Binds a receiving socket with an RX ring of `entries`. `on_busy` is
    /// called before each new try while the queue is busy (see [`Self::bind`]).
    pub fn bind_rx(
        umem: Umem,
        entries: u32,
        cfg: &SocketConfig,
        on_busy: impl FnMut() -> io::Result<()>,
    ) -> io::Result<(XskSocket, Rx)> {
        let fd = umem.fd().clone();
        xdp::set_ring_size(&*fd, libc::XDP_RX_RING, entries).map_err(|e| context(&format!("RX ring size {entries}"), e))?;
        let off = xdp::mmap_offsets(&*fd)?.rx;
        let ring = RxRing::new(map_ring(&fd, off, 16, entries, libc::XDP_PGOFF_RX_RING as u64)?, off, entries)?;
        let umem_id = umem.frames().id();
        let sock = Self::bind(umem, cfg, on_busy)?;
        Ok((sock, Rx { ring, fd, umem: umem_id }))
    }

    /// Binds a sending socket with a TX ring of `entries`. `on_busy` as for `bind_rx`.
    pub fn bind_tx(
        umem: Umem,
        entries: u32,
        cfg: &SocketConfig,
        on_busy: impl FnMut() -> io::Result<()>,
    ) -> io::Result<(XskSocket, Tx)> {
        let fd = umem.fd().clone();
        xdp::set_ring_size(&*fd, libc::XDP_TX_RING, entries).map_err(|e| context(&format!("TX ring size {entries}"), e))?;
        let off = xdp::mmap_offsets(&*fd)?.tx;
        let ring = TxRing::new(map_ring(&fd, off, 16, entries, libc::XDP_PGOFF_TX_RING as u64)?, off, entries)?;
        if let Some(b) = cfg.tx_budget {
            if let Err(e) = xdp::set_tx_budget(&*fd, b) {
                log::info!("XDP_MAX_TX_SKB_BUDGET not available ({e}); the kernel default applies");
            }
        }
        let umem_id = umem.frames().id();
        let sock = Self::bind(umem, cfg, on_busy)?;
        Ok((sock, Tx { ring, fd, umem: umem_id }))
    }

    /// Binds a socket with both data rings, an RX ring and a TX ring of
    /// `entries` each: an end that answers what it receives (ping-pong).
    pub fn bind_rx_tx(
        umem: Umem,
        entries: u32,
        cfg: &SocketConfig,
        on_busy: impl FnMut() -> io::Result<()>,
    ) -> io::Result<(XskSocket, Rx, Tx)> {
        let fd = umem.fd().clone();
        for (ring, name) in [(libc::XDP_RX_RING, "RX"), (libc::XDP_TX_RING, "TX")] {
            xdp::set_ring_size(&*fd, ring, entries).map_err(|e| context(&format!("{name} ring size {entries}"), e))?;
        }
        let off = xdp::mmap_offsets(&*fd)?;
        let rx = RxRing::new(map_ring(&fd, off.rx, 16, entries, libc::XDP_PGOFF_RX_RING as u64)?, off.rx, entries)?;
        let tx = TxRing::new(map_ring(&fd, off.tx, 16, entries, libc::XDP_PGOFF_TX_RING as u64)?, off.tx, entries)?;
        if let Some(b) = cfg.tx_budget {
            if let Err(e) = xdp::set_tx_budget(&*fd, b) {
                log::info!("XDP_MAX_TX_SKB_BUDGET not available ({e}); the kernel default applies");
            }
        }
        let umem_id = umem.frames().id();
        let sock = Self::bind(umem, cfg, on_busy)?;
        Ok((sock, Rx { ring: rx, fd: fd.clone(), umem: umem_id }, Tx { ring: tx, fd, umem: umem_id }))
    }

    /// Binds to the queue, in zero-copy or copy mode as asked. A queue just
    /// released by another socket is busy for a moment (EBUSY): each of up
    /// to BUSY_TRIES tries is preceded by `on_busy`, which waits (and may
    /// give up, say on Ctrl-C, by returning an error).
    fn bind(umem: Umem, cfg: &SocketConfig, mut on_busy: impl FnMut() -> io::Result<()>) -> io::Result<XskSocket> {
        let fd = umem.fd().clone();
        if let Some((usecs, budget)) = cfg.busy_poll {
            xdp::set_busy_poll(&*fd, usecs, budget).map_err(|e| context("busy polling (SO_BUSY_POLL and friends)", e))?;
        }
        let mut base = 0u16;
        if cfg.need_wakeup {
            base |= libc::XDP_USE_NEED_WAKEUP;
        }
        if cfg.multi_buffer {
            base |= libc::XDP_USE_SG;
        }
        let attempts: &[u16] = match cfg.bind_mode {
            BindMode::Copy => &[libc::XDP_COPY],
            BindMode::Zerocopy => &[libc::XDP_ZEROCOPY],
            BindMode::Auto => &[libc::XDP_ZEROCOPY, libc::XDP_COPY],
        };
        let mut last = None;
        'modes: for &m in attempts {
            for _ in 0..BUSY_TRIES {
                let bound = match umem.owner() {
                    // Mode and flags come from the registering socket.
                    Some(owner) => xdp::bind_shared(&*fd, cfg.ifindex, cfg.queue, &**owner),
                    None => xdp::bind(&*fd, cfg.ifindex, cfg.queue, base | m),
                };
                match bound {
                    Ok(()) => {
                        last = None;
                        break 'modes;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        last = Some(e);
                        on_busy()?;
                    }
                    Err(e) => {
                        last = Some(e);
                        continue 'modes;
                    }
                }
            }
        }
        if let Some(e) = last {
            let hint = match e.raw_os_error() {
                Some(libc::EOPNOTSUPP) => " (this driver has no zero-copy AF_XDP: use copy mode; veth never has it)",
                Some(libc::EINVAL) => " (no such queue? a veth has one unless it was created with more)",
                Some(libc::EBUSY) => " (another AF_XDP socket holds this queue)",
                _ => "",
            };
            return Err(io::Error::new(e.kind(), format!("bind of the AF_XDP socket to queue {}: {e}{hint}", cfg.queue)));
        }
        let zerocopy = xdp::is_zerocopy(&*fd)?;
        Ok(XskSocket { fd, umem, zerocopy })
    }

    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    pub fn umem_mut(&mut self) -> &mut Umem {
        &mut self.umem
    }

    /// True if the socket got zero-copy mode (XDP_OPTIONS).
    pub fn is_zerocopy(&self) -> bool {
        self.zerocopy
    }

    pub fn statistics(&self) -> io::Result<XdpStatistics> {
        xdp::statistics(&*self.fd)
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The RX ring of a bound socket: received packets, one descriptor each
/// (or several, chained with `XDP_PKT_CONTD`, for a multi-buffer packet).
pub struct Rx {
    ring: RxRing,
    fd: Arc<OwnedFd>,
    /// The UMEM its descriptors point into.
    umem: u32,
}

/// A received buffer: the frame it landed in, now ours, and where in it
/// the bytes are.
#[derive(Debug)]
pub struct RxFrame {
    frame: Frame,
    offset: u32,
    len: u32,
    /// More descriptors of the same packet follow (`XDP_PKT_CONTD`).
    pub more: bool,
}

impl RxFrame {
    /// The received bytes.
    pub fn bytes<'u>(&self, frames: &'u Frames) -> &'u [u8] {
        &frames.bytes(&self.frame)[self.offset as usize..(self.offset + self.len) as usize]
    }

    /// The received bytes and the rest of their frame behind them: what
    /// a writer may round a short last piece up into (`recv --direct`).
    pub fn bytes_to_frame_end<'u>(&self, frames: &'u Frames) -> &'u [u8] {
        &frames.bytes(&self.frame)[self.offset as usize..]
    }

    /// Where in its frame the bytes start (the kernel's headroom in front).
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// How many bytes the descriptor holds.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame, to give back to the fill ring.
    pub fn into_frame(self) -> Frame {
        self.frame
    }
}

/// One entry taken off the RX ring.
#[derive(Debug)]
pub enum Received {
    /// A buffer of a packet.
    Packet(RxFrame),
    /// A frame came back, but the descriptor's bytes do not fit in it: the
    /// frame is ours again, its contents are not to be trusted.
    Malformed(Frame),
    /// An address the kernel was not holding: nothing to give back.
    Foreign(Foreign),
}

impl Rx {
    /// Descriptors ready now.
    pub fn ready(&mut self) -> u32 {
        self.ring.ready()
    }

    /// Takes up to `max` descriptors off the RX ring into `out`; returns how
    /// many. The frames are ours from here until they go back to the fill ring.
    pub fn receive(&mut self, umem: &mut Umem, max: u32, out: &mut Vec<Received>) -> u32 {
        assert_eq!(umem.frames().id(), self.umem, "the RX ring of another UMEM");
        let got = self.ring.peek(max);
        for d in got.iter() {
            out.push(match umem.frames_mut().take_back_at(d.addr) {
                Ok((Returned::Frame(frame), offset)) => {
                    let fits = offset.checked_add(d.len as u64).is_some_and(|end| end <= frame.size() as u64);
                    if fits {
                        Received::Packet(RxFrame {
                            frame,
                            offset: offset as u32,
                            len: d.len,
                            more: d.options & libc::XDP_PKT_CONTD != 0,
                        })
                    } else {
                        Received::Malformed(frame)
                    }
                }
                Ok((Returned::Piece(_), _)) | Err(_) => {
                    umem.count_foreign();
                    Received::Foreign(Foreign { addr: d.addr })
                }
            });
        }
        let n = got.len();
        got.release();
        n
    }
}

impl AsFd for Rx {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The TX ring of a bound socket.
pub struct Tx {
    ring: TxRing,
    fd: Arc<OwnedFd>,
    /// The UMEM its descriptors point into.
    umem: u32,
}

impl Tx {
    /// Reserves `n` descriptors, or `None` if fewer are free.
    pub fn reserve(&mut self, n: u32) -> Option<TxReservation<'_>> {
        let umem = self.umem;
        self.ring.reserve(n).map(|r| TxReservation { ring: r, umem })
    }

    /// Free descriptors (looks at the kernel's index if fewer than `want` are known).
    pub fn free(&mut self, want: u32) -> u32 {
        self.ring.free(want)
    }

    /// Descriptors published and not yet taken by the kernel.
    pub fn pending(&self) -> u32 {
        self.ring.pending()
    }

    pub fn size(&self) -> u32 {
        self.ring.size()
    }

    /// True if the kernel asks for a kick (XDP_USE_NEED_WAKEUP).
    pub fn needs_wakeup(&self) -> bool {
        self.ring.needs_wakeup()
    }

    /// Asks the kernel to send what is on the TX ring (`sendto`).
    pub fn kick(&self) -> io::Result<()> {
        xdp::kick_tx(&*self.fd)
    }
}

/// Descriptors reserved on the TX ring. Frames go in by value; pieces of
/// shared frames by reference. Submitted when `submit` is called or it is
/// dropped; the descriptors of one packet go in one reservation.
pub struct TxReservation<'r> {
    ring: Reservation<'r, XdpDesc>,
    umem: u32,
}

impl TxReservation<'_> {
    /// Sends `len` bytes from the start of `frame`; `more` chains the next
    /// descriptor to the same packet (`XDP_PKT_CONTD`).
    pub fn push_frame(&mut self, frames: &mut Frames, frame: Frame, len: u32, more: bool) -> Result<(), (Frame, DescError)> {
        self.push_frame_at(frames, frame, 0, len, DescOpts { more, metadata: false })
    }

    /// Sends `len` bytes at `offset` of `frame` (the bytes in front of it
    /// may hold TX metadata); `opts` say what the descriptor carries.
    pub fn push_frame_at(
        &mut self,
        frames: &mut Frames,
        frame: Frame,
        offset: u32,
        len: u32,
        opts: DescOpts,
    ) -> Result<(), (Frame, DescError)> {
        assert_eq!(frames.id(), self.umem, "frames of another UMEM");
        if self.ring.remaining() == 0 {
            return Err((frame, DescError::NotReserved));
        }
        let addr = frames.give_whole_at(frame, offset, len)?;
        let pushed = self.ring.push(XdpDesc { addr, len, options: opts.bits() });
        debug_assert!(pushed.is_ok(), "checked that an entry is left");
        Ok(())
    }

    /// Sends `len` bytes at `offset` of a shared frame, with `opts`.
    pub fn push_piece_with(
        &mut self,
        frames: &mut Frames,
        shared: &SharedFrame,
        offset: u64,
        len: u32,
        opts: DescOpts,
    ) -> Result<(), DescError> {
        assert_eq!(frames.id(), self.umem, "frames of another UMEM");
        if self.ring.remaining() == 0 {
            return Err(DescError::NotReserved);
        }
        let addr = frames.give_piece(shared, offset, len)?;
        let pushed = self.ring.push(XdpDesc { addr, len, options: opts.bits() });
        debug_assert!(pushed.is_ok(), "checked that an entry is left");
        Ok(())
    }

    /// Sends `len` bytes at `offset` of a shared frame.
    pub fn push_piece(
        &mut self,
        frames: &mut Frames,
        shared: &SharedFrame,
        offset: u64,
        len: u32,
        more: bool,
    ) -> Result<(), DescError> {
        self.push_piece_with(frames, shared, offset, len, DescOpts { more, metadata: false })
    }

    /// Sends `len` bytes from the start of `frame` with raw `options` bits,
    /// skipping this layer's checks of length and chunk edges: the kernel
    /// then judges the descriptor alone and counts what it refuses in
    /// `XDP_STATISTICS.tx_invalid_descs`. For showing exactly that (the
    /// AF_XDP lesson); the kernel validates every descriptor, so nothing
    /// unsound can follow. The frame is the kernel's until the completion
    /// ring hands it back, if it ever does.
    pub fn push_frame_unchecked(
        &mut self,
        frames: &mut Frames,
        frame: Frame,
        len: u32,
        options: u32,
    ) -> Result<(), (Frame, DescError)> {
        assert_eq!(frames.id(), self.umem, "frames of another UMEM");
        if self.ring.remaining() == 0 {
            return Err((frame, DescError::NotReserved));
        }
        let addr = frames.give_whole(frame, 0)?;
        let pushed = self.ring.push(XdpDesc { addr, len, options });
        debug_assert!(pushed.is_ok(), "checked that an entry is left");
        Ok(())
    }

    /// Descriptors reserved and not yet written.
    pub fn remaining(&self) -> u32 {
        self.ring.remaining()
    }

    /// Publishes the descriptors written.
    pub fn submit(self) {
        self.ring.submit()
    }
}

/// What a TX descriptor carries besides its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescOpts {
    /// More descriptors of the same packet follow (`XDP_PKT_CONTD`).
    pub more: bool,
    /// TX metadata sits right in front of the descriptor's address
    /// (`XDP_TX_METADATA`; the UMEM must be registered with room for it).
    pub metadata: bool,
}

impl DescOpts {
    fn bits(self) -> u32 {
        options(self.more) | if self.metadata { xdp::XDP_TX_METADATA } else { 0 }
    }
}

/// Bytes of `struct xsk_tx_metadata` (if_xdp.h): flags, then the request.
pub const TX_METADATA_LEN: u32 = 24;

/// Writes TX metadata that asks the kernel (or NIC) to finish a checksum:
/// sum from `start` (an offset in the packet) to its end, and store the
/// result at `start + offset`.
pub fn checksum_request(out: &mut [u8], start: u16, offset: u16) {
    assert_eq!(out.len(), TX_METADATA_LEN as usize, "a whole struct xsk_tx_metadata");
    out.fill(0);
    out[..8].copy_from_slice(&xdp::XDP_TXMD_FLAGS_CHECKSUM.to_ne_bytes());
    out[8..10].copy_from_slice(&start.to_ne_bytes());
    out[10..12].copy_from_slice(&offset.to_ne_bytes());
}

fn options(more: bool) -> u32 {
    if more {
        libc::XDP_PKT_CONTD
    } else {
        0
    }
}
