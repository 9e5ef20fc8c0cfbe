//! The bench's matrix: one cell per path and setting (environment, file
//! size, chunk, cache, frame layout, queues, sends in flight), in the
//! order a round runs them, and the names cells go by in tables and charts.

use super::{BenchConfig, Cache};
use crate::report::human_bytes;
use crate::transfer::af_xdp::FrameLayout;
use crate::transfer::{Mode, DEFAULT_CHUNK};
use serde::Serialize;

/// One cell of the matrix: a path and every setting it runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub mode: Mode,
    pub cache: Cache,
    /// The environment's MTU (None: the one it had).
    pub mtu: Option<u32>,
    /// The file's size.
    pub size: u64,
    /// Bytes per data-path call (None: a packet path, which cuts by the MTU).
    pub chunk: Option<usize>,
    /// Sends in flight (msg-zerocopy, io-uring-zc; None: the path's default).
    pub in_flight: Option<u32>,
    /// io-uring-zc from registered buffers.
    pub fixed_buffers: bool,
    /// af-xdp's frame layout (None: the sender's default).
    pub layout: Option<FrameLayout>,
    /// af-xdp's queues (None: the sender's default).
    pub queues: Option<u32>,
    /// af-xdp's receiver writes with O_DIRECT from its UMEM (`recv --direct`).
    #[serde(default)]
    pub direct: bool,
    /// A kernel TCP path with an XDP program (passing everything) on the receiving veth:
    /// the sender's veth then loses GSO and sends MSS-sized segments, as af-xdp-tcp does.
    #[serde(default)]
    pub xdp_rx: bool,
    /// A TCP path into zclab's own TCP receiver on AF_XDP (`recv --mode af-xdp-tcp`).
    #[serde(default)]
    pub tcp_rx: bool,
}

impl Cell {
    /// "af-xdp split 2q direct": the path and its variant.
    pub fn path_name(&self) -> String {
        let mut s = self.mode.name().to_string();
        if self.fixed_buffers {
            s += " fixed";
        }
        if let Some(l) = self.layout {
            s = format!("{s} {}", l.name());
        }
        if let Some(q) = self.queues {
            s = format!("{s} {q}q");
        }
        if self.direct {
            s += " direct";
        }
        if self.xdp_rx {
            s += " xdp-rx";
        }
        if self.tcp_rx {
            s += " tcp-rx";
        }
        s
    }

    /// "io-uring-zc fixed (warm, MTU 9000, 64.0 KiB, 4 in flight)": the
    /// path, then its settings, those that vary among `all` or are set.
    pub fn label(&self, all: &[Cell]) -> String {
        let s = self.path_name();
        let mut parts = vec![format!("{:?}", self.cache).to_lowercase()];
        if let Some(mtu) = self.mtu {
            parts.push(format!("MTU {mtu}"));
        }
        if all.iter().any(|o| o.size != self.size) {
            parts.push(format!("{} file", human_bytes(self.size)));
        }
        if let Some(c) = self.chunk.filter(|_| all.iter().any(|o| o.chunk.is_some() && o.chunk != self.chunk)) {
            parts.push(human_bytes(c as u64));
        }
        if let Some(n) = self.in_flight {
            parts.push(format!("{n} in flight"));
        }
        format!("{s} ({})", parts.join(", "))
    }
}

/// The cells of one round, in the order they run: per environment, file
/// size, chunk and cache setting, every mode (and its variants) in turn.
pub fn matrix(cfg: &BenchConfig, mtus: &[Option<u32>]) -> Vec<Cell> {
    let chunks: Vec<usize> = if cfg.chunks.is_empty() { vec![DEFAULT_CHUNK] } else { cfg.chunks.clone() };
    let mut cells = Vec::new();
    for &mtu in mtus {
        for &size in &cfg.sizes {
            for (ci, &chunk) in chunks.iter().enumerate() {
                for &cache in &cfg.caches {
                    for &mode in &cfg.modes {
                        // A packet path cuts by the MTU: one chunk setting is enough.
                        if mode.is_packet_path() && ci > 0 {
                            continue;
                        }
                        let base = Cell {
                            mode,
                            cache,
                            mtu,
                            size,
                            chunk: (!mode.is_packet_path()).then_some(chunk),
                            in_flight: None,
                            fixed_buffers: false,
                            layout: None,
                            queues: None,
                            direct: false,
                            xdp_rx: false,
                            tcp_rx: false,
                        };
                        let zc = matches!(mode, Mode::MsgZerocopy | Mode::IoUringZc);
                        let depths: Vec<Option<u32>> = if zc && !cfg.in_flight.is_empty() {
                            cfg.in_flight.iter().map(|&n| Some(n)).collect()
                        } else {
                            vec![None]
                        };
                        let fixed: &[bool] = if mode == Mode::IoUringZc && cfg.fixed_buffers { &[false, true] } else { &[false] };
                        let layouts: Vec<Option<FrameLayout>> = if mode == Mode::AfXdp && !cfg.layouts.is_empty() {
                            cfg.layouts.iter().map(|&l| Some(l)).collect()
                        } else {
                            vec![None]
                        };
                        let queues: Vec<Option<u32>> = if mode == Mode::AfXdp && !cfg.queues.is_empty() {
                            cfg.queues.iter().map(|&q| Some(q)).collect()
                        } else {
                            vec![None]
                        };
                        let direct: &[bool] = if mode == Mode::AfXdp && cfg.direct { &[false, true] } else { &[false] };
                        // Beside af-xdp-tcp, the kernel's TCP with the same segment sizes.
                        let xdp_rx = mode == Mode::Sendfile && cfg.modes.contains(&Mode::AfXdpTcp);
                        // Into zclab's own TCP receiver: from the kernel's sendfile, and from zclab's TCP.
                        let tcp_rx = matches!(mode, Mode::Sendfile | Mode::AfXdpTcp) && cfg.modes.contains(&Mode::AfXdpTcp);
                        for &fixed_buffers in fixed {
                            for &in_flight in &depths {
                                for &layout in &layouts {
                                    for &queues in &queues {
                                        for &direct in direct {
                                            cells.push(Cell { in_flight, fixed_buffers, layout, queues, direct, ..base });
                                        }
                                        if xdp_rx {
                                            cells.push(Cell { in_flight, fixed_buffers, layout, queues, xdp_rx, ..base });
                                        }
                                        if tcp_rx {
                                            cells.push(Cell { in_flight, fixed_buffers, layout, queues, tcp_rx, ..base });
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    cells
}

/// A setting's title: everything about a cell but its path.
pub(super) fn setting_title(c: &Cell, all: &[Cell]) -> String {
    let mut s = format!("{} file, {} cache", human_bytes(c.size), format!("{:?}", c.cache).to_lowercase());
    if let Some(m) = c.mtu {
        s += &format!(", MTU {m}");
    }
    if let Some(ch) = c.chunk.filter(|_| all.iter().any(|o| o.chunk.is_some() && o.chunk != c.chunk)) {
        s += &format!(", {} per call", human_bytes(ch as u64));
    }
    s
}
