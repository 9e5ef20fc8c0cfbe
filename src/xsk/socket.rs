//! The AF_XDP socket: registers its UMEM, sizes and maps its rings, binds
//! to one queue of one interface.

use super::ring::{CompletionRing, FillRing, RxRing, TxRing};
use super::umem::Umem;
use crate::sys::mmap::Mapping;
use crate::sys::xdp::{self, XdpStatistics};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

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

#[derive(Debug, Clone)]
pub struct XskConfig {
    pub ifindex: u32,
    pub queue: u32,
    /// Entries per ring (powers of two); 0 leaves that ring out.
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub completion_size: u32,
    pub bind_mode: BindMode,
    /// XDP_USE_NEED_WAKEUP: the kernel says when it needs a syscall to move.
    pub need_wakeup: bool,
    /// XDP_USE_SG: packets may span several descriptors (XDP_PKT_CONTD).
    pub multi_buffer: bool,
    /// Frames sent per TX kick in copy mode (XDP_MAX_TX_SKB_BUDGET).
    pub tx_budget: Option<u32>,
}

pub struct XskSocket {
    fd: OwnedFd,
    pub umem: Umem,
    pub fill: FillRing,
    pub completion: CompletionRing,
    pub rx: Option<RxRing>,
    pub tx: Option<TxRing>,
    zerocopy: bool,
}

fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl XskSocket {
    pub fn new(umem: Umem, cfg: &XskConfig) -> io::Result<XskSocket> {
        let fd = xdp::socket().map_err(|e| context("socket(AF_XDP) (needs CAP_NET_RAW; is CONFIG_XDP_SOCKETS on?)", e))?;
        let u = umem.config();
        let flags = if u.unaligned { libc::XDP_UMEM_UNALIGNED_CHUNK_FLAG } else { 0 };
        xdp::register_umem(&fd, umem.base(), umem.len(), u.chunk_size, 0, flags).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOBUFS) | Some(libc::ENOMEM) | Some(libc::EPERM) => io::Error::new(
                e.kind(),
                format!(
                    "XDP_UMEM_REG of {} MiB failed ({e}): the UMEM is locked memory and RLIMIT_MEMLOCK (`ulimit -l`) is \
                     too small; run as root (CAP_IPC_LOCK lifts the limit) or make the UMEM smaller",
                    umem.len() >> 20
                ),
            ),
            _ => context("XDP_UMEM_REG", e),
        })?;
        for (ring, size) in [
            (libc::XDP_UMEM_FILL_RING, cfg.fill_size),
            (libc::XDP_UMEM_COMPLETION_RING, cfg.completion_size),
            (libc::XDP_RX_RING, cfg.rx_size),
            (libc::XDP_TX_RING, cfg.tx_size),
        ] {
            if size > 0 {
                xdp::set_ring_size(&fd, ring, size).map_err(|e| context(&format!("ring size {size}"), e))?;
            }
        }
        let off = xdp::mmap_offsets(&fd)?;
        let map = |off: crate::sys::xdp::RingOffsets, elem: usize, size: u32, pgoff: u64| -> io::Result<Arc<Mapping>> {
            Mapping::shared(&fd, (off.desc as usize) + elem * size as usize, pgoff)
                .map(Arc::new)
                .map_err(|e| context("mmap of a ring", e))
        };
        let fill = FillRing::new(map(off.fill, 8, cfg.fill_size, libc::XDP_UMEM_PGOFF_FILL_RING)?, off.fill, cfg.fill_size)?;
        let completion = CompletionRing::new(
            map(off.completion, 8, cfg.completion_size, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?,
            off.completion,
            cfg.completion_size,
        )?;
        let rx = if cfg.rx_size > 0 {
            Some(RxRing::new(map(off.rx, 16, cfg.rx_size, libc::XDP_PGOFF_RX_RING as u64)?, off.rx, cfg.rx_size)?)
        } else {
            None
        };
        let tx = if cfg.tx_size > 0 {
            Some(TxRing::new(map(off.tx, 16, cfg.tx_size, libc::XDP_PGOFF_TX_RING as u64)?, off.tx, cfg.tx_size)?)
        } else {
            None
        };
        if let Some(b) = cfg.tx_budget {
            if let Err(e) = xdp::set_tx_budget(&fd, b) {
                log::info!("XDP_MAX_TX_SKB_BUDGET not available ({e}); the kernel default applies");
            }
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
            // A queue just released by another socket is busy for a moment.
            for _ in 0..15 {
                match xdp::bind(&fd, cfg.ifindex, cfg.queue, base | m) {
                    Ok(()) => {
                        last = None;
                        break 'modes;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        last = Some(e);
                        crate::interrupt::check()?;
                        std::thread::sleep(Duration::from_millis(200));
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
                Some(libc::EINVAL) => " (no such queue? veth has one unless created with more queues: `zclab env up --queues N`)",
                Some(libc::EBUSY) => " (another AF_XDP socket holds this queue)",
                _ => "",
            };
            return Err(io::Error::new(e.kind(), format!("bind of the AF_XDP socket to queue {}: {e}{hint}", cfg.queue)));
        }
        let zerocopy = xdp::is_zerocopy(&fd)?;
        Ok(XskSocket { fd, umem, fill, completion, rx, tx, zerocopy })
    }

    /// True if the socket got zero-copy mode (XDP_OPTIONS).
    pub fn is_zerocopy(&self) -> bool {
        self.zerocopy
    }

    pub fn statistics(&self) -> io::Result<XdpStatistics> {
        xdp::statistics(&self.fd)
    }

    /// Asks the kernel to send what is on the TX ring.
    pub fn kick_tx(&self) -> io::Result<()> {
        xdp::kick_tx(&self.fd)
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
