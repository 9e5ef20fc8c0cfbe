//! The af-xdp options that `send`, `recv` and `run` share.

use clap::Args;
use zclab::transfer::af_xdp::FrameLayout;
use zclab::xdp::AttachMode;
use zclab::xsk::BindMode;

use super::value_name;

/// `--zerocopy`: how an AF_XDP socket binds.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ZeroCopy {
    /// XDP_ZEROCOPY only: fail if the driver cannot (veth never can).
    On,
    /// XDP_COPY: the kernel copies between its buffers and the UMEM.
    Off,
    /// Zero copy where the driver supports it, copy mode elsewhere.
    Auto,
}

impl From<ZeroCopy> for BindMode {
    fn from(z: ZeroCopy) -> BindMode {
        match z {
            ZeroCopy::On => BindMode::Zerocopy,
            ZeroCopy::Off => BindMode::Copy,
            ZeroCopy::Auto => BindMode::Auto,
        }
    }
}

/// Options of the af-xdp mode (ignored by the other modes).
#[derive(Args)]
pub struct XdpArgs {
    /// af-xdp: the interface (default: the one that holds the local address of the connection).
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    #[command(flatten)]
    pub socket: XdpSocketArgs,
}

/// How an af-xdp end binds and drives its socket; every one is reported in the JSON.
#[derive(Args, Clone)]
pub struct XdpSocketArgs {
    /// af-xdp: the NIC queue to bind the AF_XDP socket to (the first, with --queues). The
    /// sender's default is 0; the receiver's is every RX queue of its interface (a real NIC's
    /// RSS picks the queue a flow lands on), and --queue or --queues narrows that.
    #[arg(long, value_name = "N")]
    pub queue: Option<u32>,
    /// af-xdp: one AF_XDP socket and one thread per queue, on queues --queue to --queue+N-1
    /// (the interface needs them: `zclab env up --queues N`). Default: the sender uses the
    /// queues its interface has (at most one per CPU; a plain veth has one) and tells the
    /// receiver, which opens as many.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: Option<u32>,
    /// af-xdp, with several queues: one UMEM shared by the queues' sockets (XDP_SHARED_UMEM,
    /// a fill and a completion ring each), instead of one UMEM each.
    #[arg(long)]
    pub shared_umem: bool,
    /// af-xdp: zero copy between NIC and UMEM (on needs a capable driver; veth is copy-only).
    #[arg(long, value_enum, default_value = "auto")]
    pub zerocopy: ZeroCopy,
    /// af-xdp: XDP_USE_NEED_WAKEUP: kick the TX ring only when the kernel asks. Off by default
    /// in copy mode: a copy-mode socket (veth) asks every time, so it only adds a check (see the
    /// book, docs/af-xdp/costs.md). On with --zerocopy on: a zero-copy driver's NAPI sends and
    /// receives on its own and wants a syscall only when it says so.
    #[arg(long)]
    pub need_wakeup: bool,
    /// af-xdp: busy polling: SO_PREFER_BUSY_POLL, and SO_BUSY_POLL of this many microseconds.
    #[arg(long, value_name = "USECS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub busy_poll: Option<u32>,
    /// af-xdp: SO_BUSY_POLL_BUDGET, packets per busy poll (with --busy-poll; default 64).
    #[arg(long, value_name = "N", requires = "busy_poll", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub busy_poll_budget: Option<u32>,
    /// af-xdp sender: frames sent per TX kick in copy mode (XDP_MAX_TX_SKB_BUDGET; default 256).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub tx_budget: Option<u32>,
}

impl XdpSocketArgs {
    pub fn knobs(&self) -> zclab::transfer::af_xdp::Knobs {
        zclab::transfer::af_xdp::Knobs {
            need_wakeup: self.need_wakeup || matches!(self.zerocopy, ZeroCopy::On),
            busy_poll_us: self.busy_poll,
            busy_poll_budget: self.busy_poll_budget,
            tx_budget: self.tx_budget,
        }
    }

    /// The same options as arguments of a `zclab send` or `recv`.
    pub fn args(&self) -> Vec<String> {
        let mut v = vec!["--zerocopy".to_string(), value_name(&self.zerocopy)];
        if let Some(q) = self.queue {
            v.extend(["--queue".to_string(), q.to_string()]);
        }
        if let Some(n) = self.queues {
            v.extend(["--queues".to_string(), n.to_string()]);
        }
        if self.shared_umem {
            v.push("--shared-umem".into());
        }
        if self.need_wakeup {
            v.push("--need-wakeup".into());
        }
        for (flag, value) in
            [("--busy-poll", self.busy_poll), ("--busy-poll-budget", self.busy_poll_budget), ("--tx-budget", self.tx_budget)]
        {
            if let Some(n) = value {
                v.extend([flag.to_string(), n.to_string()]);
            }
        }
        v
    }
}

/// The af-xdp options of `zclab run`, passed to both ends.
#[derive(Args)]
pub struct RunXdpArgs {
    #[command(flatten)]
    pub socket: XdpSocketArgs,
    /// af-xdp: the sender's interface (default: the environment's).
    #[arg(long, value_name = "IFACE")]
    pub send_iface: Option<String>,
    /// af-xdp: the receiver's interface (default: the environment's).
    #[arg(long, value_name = "IFACE")]
    pub recv_iface: Option<String>,
    /// af-xdp: the sender's UMEM in unaligned (default) or aligned chunk mode (see `send --help`).
    #[arg(long, value_enum, default_value = "unaligned")]
    pub umem: UmemMode,
    /// af-xdp: the sender's UMEM chunk size, 2048 or 4096 (see `send --help`).
    #[arg(long, value_name = "BYTES")]
    pub umem_chunk: Option<u32>,
    /// af-xdp: the sender's frame layout (see `send --help`).
    #[arg(long, value_enum, value_name = "LAYOUT")]
    pub frame_layout: Option<FrameLayout>,
    /// af-xdp: where the receiver's XDP program runs (see `recv --help`).
    #[arg(long, value_enum, value_name = "MODE")]
    pub xdp_mode: Option<AttachMode>,
    /// af-xdp: the receiver writes payloads with O_DIRECT straight from its UMEM, so the file
    /// enters neither page cache (see `recv --help`).
    #[arg(long)]
    pub direct: bool,
}

impl RunXdpArgs {
    /// (sender's arguments, receiver's arguments).
    pub fn args(&self) -> (Vec<String>, Vec<String>) {
        let (mut send, mut recv) = (self.socket.args(), self.socket.args());
        if let Some(i) = &self.send_iface {
            send.extend(["--iface".into(), i.clone()]);
        }
        if let Some(i) = &self.recv_iface {
            recv.extend(["--iface".into(), i.clone()]);
        }
        send.extend(["--umem".into(), value_name(&self.umem)]);
        if let Some(c) = self.umem_chunk {
            send.extend(["--umem-chunk".into(), c.to_string()]);
        }
        if let Some(l) = self.frame_layout {
            send.extend(["--frame-layout".into(), value_name(&l)]);
        }
        if let Some(m) = self.xdp_mode {
            recv.extend(["--xdp-mode".into(), value_name(&m)]);
        }
        if self.direct {
            recv.push("--direct".into());
        }
        (send, recv)
    }
}

/// `--umem`: how the sender's UMEM is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UmemMode {
    /// XDP_UMEM_UNALIGNED_CHUNK_FLAG: descriptors may start anywhere.
    Unaligned,
    /// Power-of-two chunks; no descriptor may cross a chunk edge.
    Aligned,
}
