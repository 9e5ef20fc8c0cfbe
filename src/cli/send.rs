//! `zclab send`: one end of a transfer, the sending one.

use anyhow::Result;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use zclab::report;
use zclab::send::af_xdp::AfXdpOptions;
use zclab::send::{self, SendConfig};
use zclab::transfer::af_xdp::FrameLayout;
use zclab::transfer::{Mode, DEFAULT_CHUNK};

use super::xdp::{UmemMode, XdpArgs};
use super::{chunk, enter_netns, print, timeout, Common};

/// Options of the zero-copy send paths (ignored by none: refused elsewhere).
#[derive(Args)]
pub struct ZcArgs {
    /// msg-zerocopy, io-uring-zc: sends in flight. msg-zerocopy waits for completions once N
    /// sends are unreleased (default: only when the kernel refuses with ENOBUFS); io-uring-zc
    /// submits N sends at once as one linked chain (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub in_flight: Option<u32>,
    /// io-uring-zc: register the file's mapping as fixed buffers (IORING_RECVSEND_FIXED_BUF).
    /// The kernel pins registered pages for writing, so it takes only a private writable
    /// mapping and copies each page as it pins it: the registration is timed.
    #[arg(long)]
    pub fixed_buffers: bool,
}

impl ZcArgs {
    pub fn options(&self, mode: Mode) -> Result<send::ZcOptions> {
        let o = send::ZcOptions { in_flight: self.in_flight, fixed_buffers: self.fixed_buffers };
        o.check(mode)?;
        Ok(o)
    }
}

#[derive(Args)]
#[command(after_help = "\
`syscalls` in the report counts the data-path calls zclab's own code made (read,
write, sendfile, splice, send, recvmsg on the error queue, poll, io_uring_enter),
not the control messages. CPU time is getrusage of this process for the timed part.

Example (in the lab environment):
    ip netns exec zclab-tx zclab send --mode splice --to 10.77.0.2:7777 --file /var/tmp/f

By zclab's own TCP on AF_XDP to a zclab recv (the data on a connection of its own, the
file verified by BLAKE3 as by every mode):
    zclab send --netns zclab-tx --mode af-xdp-tcp --to 10.77.0.2:7777 --file /var/tmp/f

To any TCP listener, with zclab's own TCP on AF_XDP (--plain: the file's bytes, then FIN):
    ip netns exec zclab-rx socat -u TCP-LISTEN:8000 OPEN:/var/tmp/copy,creat,trunc &
    zclab send --netns zclab-tx --plain --mode af-xdp-tcp --to 10.77.0.2:8000 --file /var/tmp/f
It exits 0 once the listener acknowledged every byte and closed; the report counts segments,
retransmissions (fast and after a timeout), duplicate ACKs, zero-window probes, the largest
cwnd, and the checksums it made and checked. --plain with a kernel mode (sendfile, splice,
...) is the kernel's TCP doing the same, for comparison.")]
pub struct SendArgs {
    /// The data path to send by.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Send to any TCP listener (nc, socat, a program that reads and closes), not to a zclab
    /// recv: the file's bytes and then FIN, nothing else; exit 0 once every byte is
    /// acknowledged and the peer closed. Takes every TCP mode: af-xdp-tcp, and the kernel's
    /// read-write, mmap-write, sendfile, splice, msg-zerocopy and io-uring-zc.
    #[arg(long)]
    pub plain: bool,
    /// af-xdp-tcp: the retransmission timeout's floor in milliseconds (RFC 6298 says 1000;
    /// Linux, and this default, 200).
    #[arg(long, value_name = "MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub min_rto: u64,
    /// af-xdp-tcp: SYNs sent again (1 s, 2 s, 4 s apart ...) before giving up.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub syn_retries: u32,
    /// af-xdp-tcp: who sums each segment's TCP checksum. offload: AF_XDP TX metadata asks the
    /// device (or the kernel, for a device that cannot) to finish the sum the header carries,
    /// so the CPU reads no payload byte; software: the CPU sums every payload byte in the
    /// UMEM; auto: offload on a copy-mode socket, software on a zero-copy one (a driver may
    /// ignore the request). On veth an offloaded sum stays unfinished all the way to the peer,
    /// which trusts it: `zclab env up --full-checksums` makes the kernel finish it, so the
    /// peer can judge it. The report says which was used and the payload bytes the CPU read.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHO")]
    pub tx_checksum: send::af_xdp_tcp::TxChecksum,
    /// af-xdp-tcp: record the congestion window, the bytes in flight and the peer's window
    /// every millisecond, into the JSON report's `timeline` (what lesson 14 draws beside the
    /// kernel's `ss -ti`).
    #[arg(long)]
    pub timeline: bool,
    /// The receiver's address, IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    pub to: SocketAddr,
    /// The file to send.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// TCP paths: bytes per data-path call (read/write size, sendfile count, splice length).
    /// Packet paths cut the file by the MTU instead.
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_name = "BYTES")]
    pub chunk: usize,
    /// Evict the file from the page cache first (POSIX_FADV_DONTNEED): a cold-cache run.
    #[arg(long)]
    pub cold: bool,
    /// Enter this network namespace (by setns) before connecting, like `ip netns exec`.
    #[arg(long, value_name = "NAMESPACE")]
    pub netns: Option<String>,
    /// af-xdp: register the UMEM in unaligned (default) or aligned chunk mode.
    #[arg(long, value_enum, default_value = "unaligned")]
    pub umem: UmemMode,
    /// af-xdp: the UMEM's chunk size, 2048 or 4096 (zero-copy drivers take one or the other;
    /// a descriptor never crosses a chunk edge in aligned mode, so every frame layout is cut
    /// to fit it).
    #[arg(long, default_value_t = 4096, value_name = "BYTES")]
    pub umem_chunk: u32,
    /// af-xdp: how a packet lies in the UMEM. Either way the payload is file bytes a read put
    /// there and the CPU writes only the header. Default: split for a file read with O_DIRECT
    /// (contiguous makes each packet a separate segment of the disk request, which costs more
    /// than the descriptor it saves here), contiguous for a file on tmpfs (docs/af-xdp/layouts.md), and
    /// contiguous for IPv6 (a copy-mode socket can finish a checksum over one descriptor only).
    #[arg(long, value_enum, value_name = "LAYOUT")]
    pub frame_layout: Option<FrameLayout>,
    #[command(flatten)]
    pub xdp: XdpArgs,
    #[command(flatten)]
    pub zc: ZcArgs,
    #[command(flatten)]
    pub common: Common,
}

pub fn exec(a: SendArgs) -> Result<bool> {
    a.common.pin()?;
    if a.timeline && !(a.plain && a.mode == Mode::AfXdpTcp) {
        anyhow::bail!("--timeline records zclab's own TCP: it goes with --plain --mode af-xdp-tcp");
    }
    if a.plain {
        return plain(a);
    }
    let mode = a.mode;
    let tcp = tcp_options(&a);
    let cfg = SendConfig {
        to: a.to,
        file: a.file,
        mode,
        chunk: chunk(a.chunk)?,
        timeout: timeout(a.common.timeout)?,
        cold: a.cold,
        af_xdp: AfXdpOptions {
            iface: a.xdp.iface,
            queue: a.xdp.socket.queue.unwrap_or(0),
            queues: a.xdp.socket.queues,
            bind_mode: a.xdp.socket.zerocopy.into(),
            knobs: a.xdp.socket.knobs(),
            unaligned: a.umem == UmemMode::Unaligned,
            chunk: a.umem_chunk,
            layout: a.frame_layout,
            shared_umem: a.xdp.socket.shared_umem,
        },
        tcp,
        trace: a.common.trace,
        zc: a.zc.options(mode)?,
        key: a.common.key()?,
    };
    enter_netns(&a.netns)?;
    let rep = send::send_file(&cfg)?;
    print(a.common.json, &rep, report::send_text);
    Ok(rep.verified)
}

/// af-xdp-tcp's socket and TCP settings.
fn tcp_options(a: &SendArgs) -> send::af_xdp_tcp::TcpXdpOptions {
    send::af_xdp_tcp::TcpXdpOptions {
        iface: a.xdp.iface.clone(),
        queue: a.xdp.socket.queue.unwrap_or(0),
        bind_mode: a.xdp.socket.zerocopy.into(),
        attach: None,
        min_rto: std::time::Duration::from_millis(a.min_rto),
        syn_retries: a.syn_retries,
        tx_checksum: a.tx_checksum,
        timeline: a.timeline,
    }
}

/// `--plain`: the file to any TCP listener.
fn plain(a: SendArgs) -> Result<bool> {
    enter_netns(&a.netns)?;
    if a.mode == Mode::AfXdpTcp {
        let rep = send::af_xdp_tcp::send_plain(a.to, &a.file, &tcp_options(&a))?;
        print(a.common.json, &rep, |r| r.text());
        return Ok(true);
    }
    let mode = a.mode;
    let rep = send::send_plain(mode, a.to, &a.file, chunk(a.chunk)?, a.zc.options(mode)?, timeout(a.common.timeout)?)?;
    print(a.common.json, &rep, |r| r.text());
    Ok(true)
}
