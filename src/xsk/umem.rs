//! The UMEM: one region of memory, registered with the kernel, that every
//! packet buffer of a socket lives in, with the two rings that move its
//! frames between user space and the kernel without a packet: the *fill*
//! ring (frames we give the kernel to receive into) and the *completion*
//! ring (frames the kernel has finished sending). Descriptors name buffers
//! by their byte offset (the "address") into it.
//!
//! *Aligned* mode cuts the UMEM into chunks of a power-of-two size and a
//! descriptor may not cross a chunk edge (the kernel drops it silently,
//! counting `tx_invalid_descs`; [`Frames`] refuses to make one). *Unaligned*
//! mode (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`) lets a descriptor start anywhere:
//! what lets zclab point a TX descriptor straight at file bytes read into
//! the UMEM with O_DIRECT.
//!
//! As in libxdp (`xsk_umem__create`), the UMEM is registered on an AF_XDP
//! socket of its own; the first socket bound with it is that same socket.

use super::frame::{DescError, Foreign, Frame, Frames, PoolId, PoolSpec, Returned};
use super::ring::{CompletionRing, FillRing};
use crate::sys::mmap::Mapping;
use crate::sys::xdp::{self, RingOffsets};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// How the UMEM is cut and how large its two rings are
/// (libxdp's `xsk_umem_config`).
#[derive(Debug, Clone)]
pub struct UmemConfig {
    /// The frames, pool by pool; each pool starts on a chunk edge.
    pub pools: Vec<PoolSpec>,
    /// Aligned mode: a power of two from 2048 to the page size.
    pub chunk_size: u32,
    /// Allow descriptors to start anywhere.
    pub unaligned: bool,
    /// Back the UMEM with 2 MiB huge pages (vm.nr_hugepages must allow it).
    pub huge_pages: bool,
    /// Fill ring entries (a power of two; the kernel wants the ring even on a TX-only socket).
    pub fill_size: u32,
    /// Completion ring entries (a power of two).
    pub completion_size: u32,
    /// Bytes of TX metadata in front of a descriptor that asks for it (0: none).
    pub tx_metadata_len: u32,
    /// With TX metadata: a copy-mode socket computes a requested checksum
    /// in software as it builds the skb (`XDP_UMEM_TX_SW_CSUM`), over the
    /// first descriptor only; without it, the skb leaves CHECKSUM_PARTIAL
    /// for the device (or `validate_xmit_skb`) to finish over every part.
    pub tx_sw_csum: bool,
    /// Bytes the kernel leaves free in front of a received packet, after
    /// its own `XDP_PACKET_HEADROOM` (256): a packet lands at the frame's
    /// address + 256 + this. A receiver picks it so that the payload behind
    /// its headers starts on an O_DIRECT boundary.
    pub frame_headroom: u32,
}

impl UmemConfig {
    /// `count` frames of one aligned chunk each (4096 bytes here), in one
    /// pool: what a receiver, or a small experiment, needs.
    pub fn chunks(chunk_size: u32, count: u32, fill_size: u32, completion_size: u32) -> UmemConfig {
        UmemConfig {
            pools: vec![PoolSpec { frame_size: chunk_size, count }],
            chunk_size,
            unaligned: false,
            huge_pages: false,
            fill_size,
            completion_size,
            tx_metadata_len: 0,
            tx_sw_csum: false,
            frame_headroom: 0,
        }
    }
}

pub struct Umem {
    fd: Arc<OwnedFd>,
    frames: Frames,
    fill: FillRing,
    completion: CompletionRing,
    /// Addresses the kernel handed back that it was not holding.
    foreign: u64,
    /// The socket that registered this memory, when this one shares it
    /// (`XDP_SHARED_UMEM`): kept open until this one is bound and gone.
    owner: Option<Arc<OwnedFd>>,
}

pub(super) fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Maps one ring of `fd`.
pub(super) fn map_ring(fd: &OwnedFd, off: RingOffsets, elem: usize, size: u32, pgoff: u64) -> io::Result<Arc<Mapping>> {
    Mapping::shared(fd, (off.desc as usize) + elem * size as usize, pgoff).map(Arc::new).map_err(|e| context("mmap of a ring", e))
}

impl Umem {
    /// Maps the memory, registers it on a new AF_XDP socket, and maps its
    /// fill and completion rings.
    pub fn new(cfg: &UmemConfig) -> io::Result<Umem> {
        let frames = Frames::new(&cfg.pools, cfg.chunk_size, cfg.unaligned, cfg.huge_pages)?;
        let fd = xdp::socket().map_err(|e| context("socket(AF_XDP) (needs CAP_NET_RAW; is CONFIG_XDP_SOCKETS on?)", e))?;
        let mut flags = if cfg.unaligned { libc::XDP_UMEM_UNALIGNED_CHUNK_FLAG } else { 0 };
        if cfg.tx_metadata_len > 0 {
            flags |= xdp::XDP_UMEM_TX_METADATA_LEN;
            if cfg.tx_sw_csum {
                flags |= xdp::XDP_UMEM_TX_SW_CSUM;
            }
        }
        let reg =
            xdp::register_umem(&fd, frames.base(), frames.len(), cfg.chunk_size, flags, cfg.tx_metadata_len, cfg.frame_headroom);
        reg.map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL) if cfg.tx_metadata_len > 0 => io::Error::new(
                e.kind(),
                format!(
                    "XDP_UMEM_REG with {} bytes of TX metadata: {e} (TX checksum requests need Linux 6.11)",
                    cfg.tx_metadata_len
                ),
            ),
            Some(libc::ENOBUFS) | Some(libc::ENOMEM) | Some(libc::EPERM) => io::Error::new(
                e.kind(),
                format!(
                    "XDP_UMEM_REG of {} MiB failed ({e}): the UMEM is locked memory and RLIMIT_MEMLOCK (`ulimit -l`) \
                         is too small; run as root (CAP_IPC_LOCK lifts the limit) or make the UMEM smaller",
                    frames.len() >> 20
                ),
            ),
            _ => context("XDP_UMEM_REG", e),
        })?;
        let (fill, completion) = Self::rings(&fd, cfg)?;
        Ok(Umem { fd: Arc::new(fd), frames, fill, completion, foreign: 0, owner: None })
    }

    /// One UMEM for several sockets (`XDP_SHARED_UMEM`), on other queues
    /// too: registered once, on the first socket, with a fill and a
    /// completion ring for each socket and the frames cut into one ledger
    /// per socket by `groups` of pools (see [`Frames::partition`]). The
    /// first is the registering one; bind it first.
    fn new_shared(cfg: &UmemConfig, groups: &[Vec<PoolId>]) -> io::Result<Vec<Umem>> {
        let first = Umem::new(cfg)?;
        let owner = first.fd.clone();
        let Umem { fd, frames, fill, completion, .. } = first;
        let mut parts = frames.partition(groups)?.into_iter();
        let mut out =
            vec![Umem { fd, frames: parts.next().expect("one group at least"), fill, completion, foreign: 0, owner: None }];
        for frames in parts {
            let fd = xdp::socket().map_err(|e| context("socket(AF_XDP)", e))?;
            let (fill, completion) = Self::rings(&fd, cfg)?;
            out.push(Umem { fd: Arc::new(fd), frames, fill, completion, foreign: 0, owner: Some(owner.clone()) });
        }
        Ok(out)
    }

    /// The UMEMs of `count` sockets, one per queue, each with `cfg`'s pools:
    /// one UMEM each, or (`shared`, with two or more) one registration
    /// shared by all, each socket's pools in a ledger of its own.
    pub fn per_queue(cfg: &UmemConfig, count: u32, shared: bool) -> io::Result<Vec<Umem>> {
        if !shared || count < 2 {
            return (0..count).map(|_| Umem::new(cfg)).collect();
        }
        let k = cfg.pools.len();
        let all = UmemConfig { pools: cfg.pools.repeat(count as usize), ..cfg.clone() };
        let groups: Vec<Vec<PoolId>> =
            (0..count as usize).map(|q| (0..k).map(|p| PoolId((q * k + p) as u16)).collect()).collect();
        Umem::new_shared(&all, &groups)
    }

    /// Sizes and maps the fill and completion rings of socket `fd`.
    fn rings(fd: &OwnedFd, cfg: &UmemConfig) -> io::Result<(FillRing, CompletionRing)> {
        xdp::set_ring_size(fd, libc::XDP_UMEM_FILL_RING, cfg.fill_size)
            .map_err(|e| context(&format!("fill ring size {}", cfg.fill_size), e))?;
        xdp::set_ring_size(fd, libc::XDP_UMEM_COMPLETION_RING, cfg.completion_size)
            .map_err(|e| context(&format!("completion ring size {}", cfg.completion_size), e))?;
        let off = xdp::mmap_offsets(fd)?;
        let fill_map = map_ring(fd, off.fill, 8, cfg.fill_size, libc::XDP_UMEM_PGOFF_FILL_RING)?;
        let fill = FillRing::new(fill_map, off.fill, cfg.fill_size)?;
        let completion_map = map_ring(fd, off.completion, 8, cfg.completion_size, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?;
        let completion = CompletionRing::new(completion_map, off.completion, cfg.completion_size)?;
        Ok((fill, completion))
    }

    /// The registering socket, when this UMEM shares another's memory.
    pub(super) fn owner(&self) -> Option<&Arc<OwnedFd>> {
        self.owner.as_ref()
    }

    /// The memory and who owns each frame of it.
    pub fn frames(&self) -> &Frames {
        &self.frames
    }

    pub fn frames_mut(&mut self) -> &mut Frames {
        &mut self.frames
    }

    pub(super) fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// Moves frames from the end of `from` onto the fill ring, as many as
    /// there is room for; returns how many went. A frame that cannot
    /// receive (not a whole chunk) stays in `from` and ends the call.
    pub fn fill(&mut self, from: &mut Vec<Frame>) -> Result<u32, DescError> {
        let want = from.len().min(u32::MAX as usize) as u32;
        let n = want.min(self.fill.free(want));
        if n == 0 {
            return Ok(0);
        }
        let Some(mut r) = self.fill.reserve(n) else { return Ok(0) };
        let mut moved = 0;
        while let Some(f) = from.pop() {
            match self.frames.give_to_fill(f) {
                Ok(addr) => {
                    let pushed = r.push(addr);
                    debug_assert!(pushed.is_ok(), "reserved one entry per frame");
                    moved += 1;
                    if moved == n {
                        break;
                    }
                }
                Err((f, e)) => {
                    from.push(f);
                    return Err(e);
                }
            }
        }
        r.submit();
        Ok(moved)
    }

    /// Takes up to `max` entries off the completion ring and hands each to
    /// `each`: whole frames come back as [`Frame`]s, pieces of shared frames
    /// as their names. An address the kernel was not holding is counted and
    /// skipped. Returns the entries taken.
    pub fn complete(&mut self, max: u32, mut each: impl FnMut(Returned)) -> u32 {
        let done = self.completion.peek(max);
        for addr in done.iter() {
            match self.frames.take_back(addr) {
                Ok(r) => each(r),
                Err(Foreign { addr }) => {
                    log::warn!("completion ring: address {addr:#x} was not lent to the kernel; ignored");
                    self.foreign += 1;
                }
            }
        }
        let n = done.len();
        done.release();
        n
    }

    /// Completion entries ready now.
    pub fn completions_ready(&mut self) -> u32 {
        self.completion.ready()
    }

    /// Addresses the kernel handed back (completion or RX ring) that it was not holding.
    pub fn foreign_addresses(&self) -> u64 {
        self.foreign
    }

    pub(super) fn count_foreign(&mut self) {
        self.foreign += 1;
    }
}
