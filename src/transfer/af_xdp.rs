//! What both af-xdp ends set up alike: the interface they use, the UMEM
//! chunk size, and the socket settings. The sender (`send::af_xdp`) and the
//! receiver (`recv::af_xdp`) build on this and never on each other.

use crate::sys::iface;
use crate::xsk::{BindMode, SocketConfig};
use std::io;
use std::net::IpAddr;

/// UMEM chunk size on both ends, and so the most one descriptor carries.
/// Larger chunks are refused by `XDP_UMEM_REG` on this kernel.
pub const CHUNK: u32 = 4096;

/// The O_DIRECT unit a receiver that writes straight from its UMEM
/// (`recv --direct`) needs payloads cut in: address, file offset and length
/// each a multiple of it (512 on this machine's ext4, `statx STATX_DIOALIGN`).
pub const DIRECT_UNIT: u64 = 512;
/// Where such a receiver puts a payload in its frame: a packet lands at the
/// frame's address + `XDP_PACKET_HEADROOM` (256) + the UMEM's frame
/// headroom, so a headroom of 512 - 256 - the header (190 for IPv4's 66
/// bytes, 170 for IPv6's 86) makes the payload start at +512.
pub const DIRECT_PAYLOAD_AT: u64 = 512;
/// The largest payload a direct receiver takes: the rest of one 4096-byte
/// frame behind +512, since a packet in several frames cannot keep every
/// piece aligned.
pub const DIRECT_MAX_PAYLOAD: u64 = CHUNK as u64 - DIRECT_PAYLOAD_AT;

/// The payload a sender offers a direct receiver, from the largest its MTU
/// allows: whole O_DIRECT units, at most one frame's worth (1024 bytes at
/// MTU 1500, 3584 from MTU 3636 up). None below one unit.
pub fn direct_payload(mtu_payload: u64) -> Option<u64> {
    let p = mtu_payload.min(DIRECT_MAX_PAYLOAD) / DIRECT_UNIT * DIRECT_UNIT;
    (p > 0).then_some(p)
}

/// The receiving UMEM's frame headroom that puts the payload behind a
/// `header`-byte frame header at [`DIRECT_PAYLOAD_AT`].
pub fn direct_headroom(header: u64) -> u32 {
    (DIRECT_PAYLOAD_AT - 256 - header) as u32
}

/// Frames sent per TX kick in copy mode (`XDP_MAX_TX_SKB_BUDGET`; the
/// kernel's default is 32, and 256 sent about a third more frames per
/// second here).
pub const TX_BUDGET: u32 = 256;

/// How the sender lays a packet out in the UMEM (`--frame-layout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameLayout {
    /// Two or more descriptors a packet: a header frame of its own, then the payload where the
    /// O_DIRECT read of a whole block put it (any payload size the MTU allows).
    #[default]
    Split,
    /// One descriptor a packet: each payload is read (one iovec per packet) into a cell of its
    /// own, right behind room for its header, so header and payload are one run of UMEM bytes.
    /// The payload is a multiple of the O_DIRECT alignment (1024 bytes at MTU 1500) and at most
    /// a chunk less the header room (3584 bytes).
    Contiguous,
}

impl FrameLayout {
    /// The layout that moved the most file bytes per second on the lab's
    /// machines, at every MTU (docs/af-xdp/layouts.md): split when the file
    /// is read with O_DIRECT, because a contiguous frame makes every packet
    /// one segment of the disk request, and the virtual disk here serves
    /// about 360 k segments/s whatever their size (1 KiB segments: 0.37
    /// GB/s, against 1.1-1.3 GB/s for one large read); contiguous when the
    /// file is read through the page cache (tmpfs), where one descriptor a
    /// packet sent 1.2x the packets of two.
    pub fn best_for(o_direct: bool) -> FrameLayout {
        if o_direct {
            FrameLayout::Split
        } else {
            FrameLayout::Contiguous
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FrameLayout::Split => "split",
            FrameLayout::Contiguous => "contiguous",
        }
    }
}

/// How an af-xdp end drives its socket (`--need-wakeup`, `--busy-poll`,
/// `--tx-budget`), as set and as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Knobs {
    /// XDP_USE_NEED_WAKEUP: kick (or poll) only when the kernel says it needs it.
    pub need_wakeup: bool,
    /// SO_BUSY_POLL microseconds (with SO_PREFER_BUSY_POLL), if set.
    pub busy_poll_us: Option<u32>,
    /// SO_BUSY_POLL_BUDGET: packets per busy poll.
    pub busy_poll_budget: Option<u32>,
    /// Frames per TX kick (sender; XDP_MAX_TX_SKB_BUDGET).
    pub tx_budget: Option<u32>,
}

impl Knobs {
    /// The knobs as they apply: a busy-poll budget whenever busy polling is on.
    pub fn effective(self) -> Knobs {
        Knobs { busy_poll_budget: self.busy_poll_us.map(|_| self.busy_poll_budget.unwrap_or(BUSY_POLL_BUDGET)), ..self }
    }
}

/// Packets per busy poll when `--busy-poll` is given without a budget.
pub const BUSY_POLL_BUDGET: u32 = 64;

/// Between two tries to bind a busy queue (a socket that just closed holds
/// it for a moment; 0.6 s was enough here): wait a little, unless Ctrl-C came.
pub fn wait_for_busy_queue() -> io::Result<()> {
    crate::interrupt::check()?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    Ok(())
}

/// A socket set-up error, with the interface named and the lab's own fix
/// where there is one.
pub fn socket_error(iface: &str, e: io::Error) -> io::Error {
    let fix = if e.raw_os_error() == Some(libc::EINVAL) || e.to_string().contains("no such queue") {
        "; the lab makes a veth with more queues by `zclab env up --queues N`".to_string()
    } else if e.kind() == io::ErrorKind::Unsupported {
        // Zero copy refused: the driver's own word on what it can do.
        match iface::if_index(iface).ok().and_then(|i| crate::sys::netdev::xdp_features(i).ok().flatten()) {
            Some(f) if !f.has(crate::sys::netdev::XDP_ACT_XSK_ZEROCOPY) => {
                format!("; the driver's xdp-features are {} (no xsk-zerocopy): use --zerocopy off or auto", f.names())
            }
            _ => String::new(),
        }
    } else {
        String::new()
    };
    io::Error::new(e.kind(), format!("AF_XDP socket on {iface}: {e}{fix}"))
}

/// The interface an af-xdp end binds to.
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
}

impl Iface {
    /// The interface named `explicit`, or else the one that holds `ip`
    /// (the control connection's local address on the sender, the listen
    /// address on the receiver).
    pub fn find(explicit: Option<&str>, ip: IpAddr) -> io::Result<Iface> {
        let name = match explicit {
            Some(name) => name.to_string(),
            None if ip.is_unspecified() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("af-xdp needs --iface when listening on {ip} (all addresses)"),
                ))
            }
            None => iface::iface_with_addr(ip)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no interface holds {ip}: name one with --iface"))
            })?,
        };
        let index = iface::if_index(&name)?;
        let (mac, mtu) = iface::iface_mac_mtu(&name)?;
        // Set down by someone: refused. A missing carrier is not judged here: tests saw a
        // lab veth without carrier for a moment while the other end was setting up.
        if let Some(why) = iface::LinkWatch::new(&name).ok().and_then(|w| w.down()).filter(|w| w.starts_with("down")) {
            return Err(io::Error::new(
                io::ErrorKind::NetworkDown,
                format!("interface {name} is {why}: nothing would move; bring it up (`ip link set {name} up`)"),
            ));
        }
        Ok(Iface { name, index, mac, mtu })
    }

    /// Refuses queues `first..first + count` if the interface has fewer
    /// (`rx`: its RX queues, else its TX ones), naming what it has.
    pub fn check_queues(&self, first: u32, count: u32, rx: bool) -> io::Result<()> {
        let Ok((rxq, txq)) = iface::queues(&self.name) else { return Ok(()) };
        let (has, what) = if rx { (rxq, "RX") } else { (txq, "TX") };
        let last = first.saturating_add(count.max(1)) - 1;
        if last >= has {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "queue {last} is beyond {}'s {has} {what} queue{} (0 to {}): give --queue and --queues within them{}",
                    self.name,
                    if has == 1 { "" } else { "s" },
                    has.saturating_sub(1),
                    "; the lab makes a veth with more by `zclab env up --queues N`"
                ),
            ));
        }
        Ok(())
    }

    /// Moves the calling thread into network namespace `ns` and finds
    /// interface `name` there (for a thread of its own, as the lessons and
    /// the bench's ceiling run their AF_XDP experiments).
    pub fn enter(ns: &str, name: &str) -> io::Result<Iface> {
        crate::sys::netns::enter(ns).map_err(|e| io::Error::new(e.kind(), format!("entering namespace {ns}: {e}")))?;
        Iface::find(Some(name), std::net::Ipv4Addr::UNSPECIFIED.into())
    }

    /// The socket settings both ends use on this interface: multi-buffer
    /// packets on (a jumbo frame spans several 4096-byte chunks), no
    /// need-wakeup (it cost speed in copy mode here, see FACTS).
    pub fn socket_config(&self, queue: u32, bind_mode: BindMode, knobs: &Knobs) -> SocketConfig {
        SocketConfig {
            ifindex: self.index,
            queue,
            bind_mode,
            need_wakeup: knobs.need_wakeup,
            multi_buffer: true,
            tx_budget: knobs.tx_budget,
            busy_poll: knobs.busy_poll_us.map(|us| (us, knobs.busy_poll_budget.unwrap_or(BUSY_POLL_BUDGET))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{payload_for, FRAME_HEADER_LEN, FRAME_HEADER_LEN_V6};

    #[test]
    fn a_direct_payload_is_whole_units_that_fit_one_frame() {
        let at = |mtu, v6| direct_payload(payload_for(mtu, v6).unwrap() as u64);
        assert_eq!(at(1500, false), Some(1024));
        assert_eq!(at(1500, true), Some(1024));
        assert_eq!(at(3636, false), Some(3584), "the first MTU with a whole frame's worth");
        assert_eq!(at(3635, false), Some(3072));
        assert_eq!(at(9000, false), Some(3584));
        assert_eq!(direct_payload(511), None);
    }

    #[test]
    fn the_headroom_puts_the_payload_at_512() {
        for header in [FRAME_HEADER_LEN, FRAME_HEADER_LEN_V6] {
            assert_eq!(256 + direct_headroom(header as u64) as u64 + header as u64, DIRECT_PAYLOAD_AT);
        }
        assert_eq!(direct_headroom(FRAME_HEADER_LEN as u64), 190);
        assert_eq!(direct_headroom(FRAME_HEADER_LEN_V6 as u64), 170);
    }
}
