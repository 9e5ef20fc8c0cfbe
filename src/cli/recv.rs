//! `zclab recv`: one end of a transfer, the receiving one.

use anyhow::Result;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use zclab::recv::af_xdp::AfXdpRecvOptions;
use zclab::recv::{self, RecvConfig};
use zclab::report;
use zclab::send::af_xdp_tcp::TcpXdpOptions;
use zclab::transfer::mode::Via;
use zclab::xdp::AttachMode;

use super::xdp::XdpArgs;
use super::{enter_netns, print, timeout, Common};

#[derive(Args)]
#[command(after_help = "\
The receiver writes to a hidden temporary file beside --out and renames it to --out
only when the size and BLAKE3 hash match what the sender announced. It serves the first
valid sender and exits: status 0 if it verified, 1 if not. A connection that is not a
sender (no Hello within 3 s, a wrong protocol, absurd sizes, a wrong key) is told why
and closed, and the receiver goes on waiting; a second sender during a transfer is told
it is busy. It reserves the file's space before the transfer (or refuses, saying how
much is needed and free), and tells the sender why whenever it gives up.

Memory: one transfer can make the receiver allocate at most 64 MiB of bookkeeping (the
packet paths' bitmap, one bit per packet, checked against the Hello before anything is
allocated) besides its fixed buffers. Without --key, anyone who reaches the port can send.

Example (in the lab environment):
    ip netns exec zclab-rx zclab recv --listen 10.77.0.2:7777 --out /var/tmp/copy

By zclab's own TCP on AF_XDP, from any TCP sender (no zclab protocol; the report prints the
file's BLAKE3):
    ip netns exec zclab-rx zclab recv --plain --mode af-xdp-tcp --listen 10.77.0.2:8000 --out /var/tmp/copy
    ip netns exec zclab-tx socat -u FILE:/var/tmp/f TCP:10.77.0.2:8000")]
pub struct RecvArgs {
    /// Address and port to listen on, IP:PORT (0.0.0.0:PORT for all addresses).
    #[arg(long, value_name = "IP:PORT")]
    pub listen: SocketAddr,
    /// Where the verified file goes.
    #[arg(long, value_name = "PATH", required_unless_present = "serve", conflicts_with = "serve")]
    pub out: Option<PathBuf>,
    /// Receive transfers one after another, until Ctrl-C, each into a new file in DIR named
    /// by the receiver (zclab-SECONDS-N; never a name from the wire). One report per transfer.
    #[arg(long, value_name = "DIR")]
    pub serve: Option<PathBuf>,
    /// Enter this network namespace (by setns) before listening.
    #[arg(long, value_name = "NAMESPACE")]
    pub netns: Option<String>,
    /// Give up if no sender connects within this many seconds (default: wait).
    #[arg(long, value_name = "SECONDS")]
    pub accept_timeout: Option<f64>,
    /// Verify against this BLAKE3 hash (hex) instead of the sender's.
    #[arg(long, value_name = "HEX")]
    pub expect_hash: Option<String>,
    #[command(flatten)]
    pub xdp: XdpArgs,
    /// Write every page of the output file once before the timed part, so it measures the
    /// data path rather than the kernel allocating fresh page-cache pages (erratic on VMs).
    /// With --direct: zeros written over the file's blocks by O_DIRECT instead (the page
    /// cache untouched), so the transfer's writes overwrite them, up to 32 in flight (ext4
    /// runs writes into fresh blocks one at a time).
    #[arg(long)]
    pub preallocate: bool,
    /// Packet paths: drop this many packets per thousand on purpose, as a lossy link
    /// would, to watch retransmission rounds at work (fault injection).
    #[arg(long, default_value_t = 0, value_name = "PER_MILLE", value_parser = clap::value_parser!(u32).range(0..=900))]
    pub inject_loss: u32,
    /// af-xdp: where the XDP program runs (default: native, falling back to generic).
    #[arg(long, value_enum, value_name = "MODE")]
    pub xdp_mode: Option<AttachMode>,
    /// af-xdp: write each payload with O_DIRECT straight from the UMEM frame it arrived in: no
    /// CPU copy, and the file never enters this machine's page cache. The UMEM's headroom puts
    /// every payload at +512 of its frame and the sender is asked to cut payloads of whole
    /// 512-byte units that fit one frame (1024 bytes at MTU 1500, 3584 from MTU 3636 up). The
    /// writes stay in flight on an io_uring, a frame back to the fill ring once its write is
    /// done; one not done within --timeout ends the run. Where O_DIRECT cannot be had (tmpfs,
    /// another mode, a sender without the offer) it writes through the page cache and says
    /// why; a payload off a boundary is counted and written through the page cache at the
    /// end. The hash then reads with O_DIRECT too. On the lab's virtual disk (with
    /// --preallocate, 512 MiB, 8 December 2026) it took 0.52x to 0.72x of the page-cache
    /// receiver's CPU per GiB and moved 0.61x to 0.70x of its Gbit/s: its payloads are
    /// smaller, so it moves more packets (the book, docs/af-xdp/direct.md).
    #[arg(long)]
    pub direct: bool,
    /// TCP paths: how to take the data off the socket.
    #[arg(long, value_enum, default_value = "splice", value_name = "HOW")]
    pub via: Via,
    /// Take the stream by zclab's own TCP on an AF_XDP socket (af-xdp-tcp) instead of the
    /// kernel's: passive open, segments out of order kept in the UMEM frames they landed in
    /// until the hole fills, every byte written to the file from its frame, ACKs with SACK
    /// blocks, the window as large as the frames free. Needs --plain for now.
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<RecvMode>,
    /// With --mode af-xdp-tcp: one connection from any TCP sender, not zclab's protocol (nc,
    /// socat, curl, `zclab send --plain`); its bytes until the FIN become --out. No size or
    /// hash is announced: the report prints the file's BLAKE3, and --expect-hash checks it.
    #[arg(long, requires = "mode", conflicts_with = "serve")]
    pub plain: bool,
    #[command(flatten)]
    pub common: Common,
}

/// The data paths `recv --mode` takes (the others a zclab sender's Hello names).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecvMode {
    /// zclab's own TCP on an AF_XDP socket.
    AfXdpTcp,
}

/// How the af-xdp-tcp receiver binds.
fn tcp_options(a: &RecvArgs) -> TcpXdpOptions {
    TcpXdpOptions {
        iface: a.xdp.iface.clone(),
        queue: a.xdp.socket.queue.unwrap_or(0),
        bind_mode: a.xdp.socket.zerocopy.into(),
        attach: a.xdp_mode,
        ..Default::default()
    }
}

/// `recv --plain --mode af-xdp-tcp`: one plain connection into --out.
fn exec_plain(a: &RecvArgs) -> Result<bool> {
    let Some(out) = &a.out else { anyhow::bail!("--plain needs --out") };
    let opts = tcp_options(a);
    enter_netns(&a.netns)?;
    let accept = a.accept_timeout.map(timeout).transpose()?;
    let rep = recv::af_xdp_tcp::receive_plain(a.listen, out, &opts, accept, timeout(a.common.timeout)?, a.expect_hash.clone())?;
    print(a.common.json, &rep, |r| r.text());
    Ok(rep.verified != Some(false))
}

pub fn exec(a: RecvArgs) -> Result<bool> {
    a.common.pin()?;
    if a.plain {
        return exec_plain(&a);
    }
    let tcp_receiver = (a.mode == Some(RecvMode::AfXdpTcp)).then(|| tcp_options(&a));
    let cfg = RecvConfig {
        listen: a.listen,
        out: a.out.clone().unwrap_or_default(),
        timeout: timeout(a.common.timeout)?,
        accept_timeout: a.accept_timeout.map(timeout).transpose()?,
        expect_hash: a.expect_hash,
        af_xdp: AfXdpRecvOptions {
            iface: a.xdp.iface,
            queue: a.xdp.socket.queue,
            queues: a.xdp.socket.queues,
            shared_umem: a.xdp.socket.shared_umem,
            bind_mode: a.xdp.socket.zerocopy.into(),
            attach: a.xdp_mode,
            knobs: a.xdp.socket.knobs(),
        },
        inject_loss: a.inject_loss,
        preallocate: a.preallocate,
        trace: a.common.trace,
        via: a.via,
        key: a.common.key()?,
        direct: a.direct,
        tcp_receiver,
    };
    enter_netns(&a.netns)?;
    if let Some(dir) = &a.serve {
        recv::serve_dir(&cfg, dir, |r| match r {
            // One line of JSON per transfer, so that a reader can take them one at a time.
            Ok(rep) if a.common.json => println!("{}", serde_json::to_string(&rep).expect("reports serialize")),
            Ok(rep) => print!("{}", report::recv_text(&rep)),
            Err(e) => log::error!("a transfer failed: {e:#}; serving on"),
        })?;
        return Ok(true);
    }
    let rep = recv::receive(&cfg)?;
    print(a.common.json, &rep, report::recv_text);
    Ok(rep.verified)
}
