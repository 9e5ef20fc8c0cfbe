//! The `zclab` command line: parse, validate once, run, report.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use zclab::netns::{self, EnvConfig, LabEnv};
use zclab::recv::af_xdp::AfXdpRecvOptions;
use zclab::recv::{self, RecvConfig};
use zclab::report::{self, RunReport};
use zclab::run::{self, RunConfig};
use zclab::send::af_xdp::AfXdpOptions;
use zclab::send::{self, SendConfig};
use zclab::transfer::af_xdp::FrameLayout;
use zclab::transfer::mode::Via;
use zclab::transfer::Mode;
use zclab::transfer::{DEFAULT_CHUNK, DEFAULT_PORT};
use zclab::xdp::AttachMode;
use zclab::xsk::BindMode;

const ABOUT: &str = "A lab for zero-copy networking on Linux: move a file from one network namespace to \
another by each kernel data path, measure what each costs, and prove it arrived intact.";

const LONG_ABOUT: &str = "\
A lab for zero-copy networking on Linux: move a file from one network namespace to
another by each kernel data path, measure what each costs, and prove it arrived intact.

A first session, as root:
    zclab env up                                   # two namespaces and a veth pair
    head -c 256M /dev/urandom > /var/tmp/f          # a file to move
    zclab run --mode sendfile --file /var/tmp/f    # one transfer, one report
    zclab run --mode read-write --file /var/tmp/f  # compare the numbers
    zclab explain sendfile                         # the path drawn, with that run's figures
    zclab env down

To learn why the numbers differ:
    zclab lesson                                   # the lessons, each a lab of its own
    zclab lesson 3                                 # run one: evidence, then claims checked

What a report tells you: throughput; CPU seconds (user and system) of each end from
getrusage; the data-path syscalls zclab itself made; context switches; how much of
the source file sat in the page cache before and after (mincore); for the zero-copy
paths, how many sends the kernel flagged as copied after all; and the BLAKE3 hash
both ends computed. With --trace, the kernel's own counters too (zclab trace-check).
A transfer that does not verify exits with status 1.

Set RUST_LOG=debug to see each step.";

#[derive(Parser)]
#[command(name = "zclab", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create, inspect or remove a lab environment (two namespaces, one veth pair).
    #[command(subcommand)]
    Env(EnvCmd),
    /// Send a file to a waiting `zclab recv` by one data path.
    Send(SendArgs),
    /// Receive one file from `zclab send`, verify it, write it, and exit.
    Recv(RecvArgs),
    /// Run one transfer across a lab environment: receiver in NAME-rx, sender in NAME-tx.
    Run(RunArgs),
    /// Print the side-by-side table of saved `zclab run --json` reports.
    Compare(CompareArgs),
    /// Run every path side by side, interleaved: medians, ranges, charts and an HTML report.
    Bench(BenchArgs),
    /// Draw a data path: where the bytes live, each copy and who makes it, the mode switches,
    /// the page cache or not; with the figures of the last `zclab run` of that mode.
    ///
    /// Without a mode, lists them. `zclab run` keeps its last report per mode in
    /// $ZCLAB_STATE_DIR, else $XDG_STATE_HOME/zclab, else ~/.local/state/zclab.
    Explain {
        /// The data path to draw.
        #[arg(value_enum)]
        mode: Option<Mode>,
    },
    /// List the lessons, or run one: experiments, their evidence, and claims checked on this machine.
    Lesson(LessonArgs),
    /// Helpers the lessons run in a child process (not for direct use).
    #[command(hide = true, name = "lesson-helper")]
    LessonHelper {
        /// `touch-past-end`: map two pages of FILE (at most a page long) and read the second: SIGBUS.
        what: String,
        file: PathBuf,
    },
    /// Say which of the kernel counters of `--trace` work on this machine (needs root).
    ///
    /// Loads and attaches every tracing program for a moment, in this network namespace,
    /// and prints each tracepoint with "ok" or the reason it cannot be used. A tracepoint
    /// that is missing here only takes its own counters out of the reports.
    TraceCheck,
}

#[derive(Subcommand)]
enum EnvCmd {
    /// Create namespaces NAME-tx and NAME-rx joined by veth NAME-t0 <-> NAME-r0,
    /// with 10.77.0.1/24 and 10.77.0.2/24. Prints every `ip` command it runs.
    ///
    /// The root namespace is never touched. If a step fails (or Ctrl-C comes),
    /// what was made is removed again.
    Up {
        #[arg(long, default_value = netns::DEFAULT_NAME, value_name = "NAME", help = "environment name, 1 to 12 characters")]
        name: String,
        /// MTU of both veth ends (default: the kernel's 1500). Jumbo frames: 9000.
        #[arg(long, value_name = "BYTES")]
        mtu: Option<u32>,
        /// Number of TX and RX queues of each veth end (default 1).
        #[arg(long, value_name = "N")]
        queues: Option<u32>,
        /// A third namespace, NAME-rt, forwards between the two (the ends keep their
        /// addresses): a routed path, and with --loss and --rate a lossy, slower one.
        #[arg(long)]
        router: bool,
        /// With --router: drop this percent of the UDP it forwards, at random (nftables
        /// numgen), e.g. 1 or 0.1. The packet paths then show their rounds and resent packets.
        #[arg(long, value_name = "PCT", requires = "router")]
        loss: Option<f64>,
        /// With --router: limit the rate towards the receiver (a tbf qdisc), e.g. 2gbit.
        #[arg(long, value_name = "RATE", requires = "router")]
        rate: Option<String>,
        /// Give the ends IPv6 addresses too: fd77::1/64 and fd77::2/64 (unique-local, only
        /// inside the namespaces). The packet paths then run over IPv6 when sent to
        /// [fd77::2]:PORT; af-xdp builds IPv6 frames and leaves the UDP checksum to the kernel.
        #[arg(long, conflicts_with = "router")]
        ipv6: bool,
    },
    /// Remove the environment: both namespaces, and with them the veth pair.
    Down {
        #[arg(long, default_value = netns::DEFAULT_NAME, value_name = "NAME")]
        name: String,
    },
    /// Show addresses, MACs, MTU, queues and attached XDP programs.
    Status {
        #[arg(long, default_value = netns::DEFAULT_NAME, value_name = "NAME")]
        name: String,
    },
}

#[derive(Args)]
struct Common {
    /// Print the report as JSON (a stable schema) instead of a table.
    #[arg(long)]
    json: bool,
    /// Give up when the peer moves no byte for this long (seconds).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    timeout: f64,
    /// Count what the kernel did during the timed part, from its tracepoints: bytes copied
    /// into user memory, how each TCP send's bytes came (copied, page references, pinned),
    /// pages added to the page cache, packets, XDP redirects, drops and their reasons.
    /// See `zclab trace-check` for which counters work on this machine; a counter whose
    /// tracepoint is missing is null in the report (ZCLAB_TRACE_WITHOUT=name,... pretends so).
    #[arg(long)]
    trace: bool,
    /// A file holding a secret both ends share (16 bytes or more: `head -c 32 /dev/urandom >
    /// FILE`). The handshake then proves to each end that the other holds it, and the final
    /// check compares hashes keyed for this session, which no one on the path can forge.
    /// Without a key, anyone who can reach the receiver's port can send it a file, and the
    /// hashes catch accidents, not an attacker.
    #[arg(long, env = "ZCLAB_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Run on this CPU only (sched_setaffinity, before anything else). Two ends that share a
    /// core run at about 60% of their speed here, and the scheduler sometimes puts them
    /// there: `zclab run --pin` and `zclab bench` pin the sender to CPU 0 and the receiver to 1.
    #[arg(long, value_name = "N")]
    cpu: Option<usize>,
}

impl Common {
    /// Pins this process to `--cpu`, if given.
    fn pin(&self) -> Result<()> {
        if let Some(c) = self.cpu {
            zclab::sys::sched::pin_to_cpu(c).with_context(|| {
                format!("--cpu {c}: cannot run there (this machine has CPUs 0 to {})", zclab::sys::sched::cpus() - 1)
            })?;
        }
        Ok(())
    }

    fn key(&self) -> Result<Option<zclab::transfer::auth::Key>> {
        self.key.as_deref().map(zclab::transfer::auth::Key::from_file).transpose()
    }
}

/// `--zerocopy`: how an AF_XDP socket binds.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ZeroCopy {
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
struct XdpArgs {
    /// af-xdp: the interface (default: the one that holds the local address of the connection).
    #[arg(long, value_name = "IFACE")]
    iface: Option<String>,
    #[command(flatten)]
    socket: XdpSocketArgs,
}

/// How an af-xdp end binds and drives its socket; every one is reported in the JSON.
#[derive(Args, Clone)]
struct XdpSocketArgs {
    /// af-xdp: the NIC queue to bind the AF_XDP socket to (the first, with --queues).
    #[arg(long, default_value_t = 0, value_name = "N")]
    queue: u32,
    /// af-xdp: one AF_XDP socket and one thread per queue, on queues --queue to --queue+N-1
    /// (the interface needs them: `zclab env up --queues N`). Default: the sender uses the
    /// queues its interface has (at most one per CPU; a plain veth has one) and tells the
    /// receiver, which opens as many.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    queues: Option<u32>,
    /// af-xdp, with several queues: one UMEM shared by the queues' sockets (XDP_SHARED_UMEM,
    /// a fill and a completion ring each), instead of one UMEM each.
    #[arg(long)]
    shared_umem: bool,
    /// af-xdp: zero copy between NIC and UMEM (on needs a capable driver; veth is copy-only).
    #[arg(long, value_enum, default_value = "auto")]
    zerocopy: ZeroCopy,
    /// af-xdp: XDP_USE_NEED_WAKEUP: kick the TX ring only when the kernel asks. Off by default:
    /// a copy-mode socket (veth) asks every time, so it only adds a check (see README).
    #[arg(long)]
    need_wakeup: bool,
    /// af-xdp: busy polling: SO_PREFER_BUSY_POLL, and SO_BUSY_POLL of this many microseconds.
    #[arg(long, value_name = "USECS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    busy_poll: Option<u32>,
    /// af-xdp: SO_BUSY_POLL_BUDGET, packets per busy poll (with --busy-poll; default 64).
    #[arg(long, value_name = "N", requires = "busy_poll", value_parser = clap::value_parser!(u32).range(1..=65535))]
    busy_poll_budget: Option<u32>,
    /// af-xdp sender: frames sent per TX kick in copy mode (XDP_MAX_TX_SKB_BUDGET; default 256).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    tx_budget: Option<u32>,
}

impl XdpSocketArgs {
    fn knobs(&self) -> zclab::transfer::af_xdp::Knobs {
        zclab::transfer::af_xdp::Knobs {
            need_wakeup: self.need_wakeup,
            busy_poll_us: self.busy_poll,
            busy_poll_budget: self.busy_poll_budget,
            tx_budget: self.tx_budget,
        }
    }

    /// The same options as arguments of a `zclab send` or `recv`.
    fn args(&self) -> Vec<String> {
        let mut v = vec!["--queue".to_string(), self.queue.to_string(), "--zerocopy".into(), value_name(&self.zerocopy)];
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

/// `run --pin`: (sender's CPU, receiver's CPU).
fn run_pins(pin: bool, cpu: Option<usize>) -> Result<Option<(usize, usize)>> {
    if cpu.is_some() {
        bail!("zclab run starts two processes: use --pin (sender on CPU 0, receiver on CPU 1), not --cpu");
    }
    if pin && zclab::sys::sched::cpus() < 2 {
        bail!("--pin needs two CPUs; this machine has one");
    }
    Ok(pin.then_some((0, 1)))
}

/// How clap spells a value of an option (`--zerocopy auto`).
fn value_name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

/// The af-xdp options of `zclab run`, passed to both ends.
#[derive(Args)]
struct RunXdpArgs {
    #[command(flatten)]
    socket: XdpSocketArgs,
    /// af-xdp: the sender's interface (default: the environment's).
    #[arg(long, value_name = "IFACE")]
    send_iface: Option<String>,
    /// af-xdp: the receiver's interface (default: the environment's).
    #[arg(long, value_name = "IFACE")]
    recv_iface: Option<String>,
    /// af-xdp: the sender's UMEM in unaligned (default) or aligned chunk mode (see `send --help`).
    #[arg(long, value_enum, default_value = "unaligned")]
    umem: UmemMode,
    /// af-xdp: the sender's frame layout (see `send --help`).
    #[arg(long, value_enum, value_name = "LAYOUT")]
    frame_layout: Option<FrameLayout>,
    /// af-xdp: where the receiver's XDP program runs (see `recv --help`).
    #[arg(long, value_enum, value_name = "MODE")]
    xdp_mode: Option<AttachMode>,
}

impl RunXdpArgs {
    /// (sender's arguments, receiver's arguments).
    fn args(&self) -> (Vec<String>, Vec<String>) {
        let (mut send, mut recv) = (self.socket.args(), self.socket.args());
        if let Some(i) = &self.send_iface {
            send.extend(["--iface".into(), i.clone()]);
        }
        if let Some(i) = &self.recv_iface {
            recv.extend(["--iface".into(), i.clone()]);
        }
        send.extend(["--umem".into(), value_name(&self.umem)]);
        if let Some(l) = self.frame_layout {
            send.extend(["--frame-layout".into(), value_name(&l)]);
        }
        if let Some(m) = self.xdp_mode {
            recv.extend(["--xdp-mode".into(), value_name(&m)]);
        }
        (send, recv)
    }
}

/// Options of the zero-copy send paths (ignored by none: refused elsewhere).
#[derive(Args)]
struct ZcArgs {
    /// msg-zerocopy, io-uring-zc: sends in flight. msg-zerocopy waits for completions once N
    /// sends are unreleased (default: only when the kernel refuses with ENOBUFS); io-uring-zc
    /// submits N sends at once as one linked chain (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    in_flight: Option<u32>,
    /// io-uring-zc: register the file's mapping as fixed buffers (IORING_RECVSEND_FIXED_BUF).
    /// The kernel pins registered pages for writing, so it takes only a private writable
    /// mapping and copies each page as it pins it: the registration is timed.
    #[arg(long)]
    fixed_buffers: bool,
}

impl ZcArgs {
    fn options(&self, mode: Mode) -> Result<send::ZcOptions> {
        let o = send::ZcOptions { in_flight: self.in_flight, fixed_buffers: self.fixed_buffers };
        o.check(mode)?;
        Ok(o)
    }
}

/// `--umem`: how the sender's UMEM is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum UmemMode {
    /// XDP_UMEM_UNALIGNED_CHUNK_FLAG: descriptors may start anywhere.
    Unaligned,
    /// Power-of-two chunks; no descriptor may cross a chunk edge.
    Aligned,
}

#[derive(Args)]
#[command(after_help = "\
`syscalls` in the report counts the data-path calls zclab's own code made (read,
write, sendfile, splice, send, recvmsg on the error queue, poll, io_uring_enter),
not the control messages. CPU time is getrusage of this process for the timed part.

Example (in the lab environment):
    ip netns exec zclab-tx zclab send --mode splice --to 10.77.0.2:7777 --file /var/tmp/f")]
struct SendArgs {
    /// The data path to send by.
    #[arg(long, value_enum)]
    mode: Mode,
    /// The receiver's address, IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    to: SocketAddr,
    /// The file to send.
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    /// TCP paths: bytes per data-path call (read/write size, sendfile count, splice length).
    /// Packet paths cut the file by the MTU instead.
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_name = "BYTES")]
    chunk: usize,
    /// Evict the file from the page cache first (POSIX_FADV_DONTNEED): a cold-cache run.
    #[arg(long)]
    cold: bool,
    /// Enter this network namespace (by setns) before connecting, like `ip netns exec`.
    #[arg(long, value_name = "NAMESPACE")]
    netns: Option<String>,
    /// af-xdp: register the UMEM in unaligned (default) or aligned chunk mode.
    #[arg(long, value_enum, default_value = "unaligned")]
    umem: UmemMode,
    /// af-xdp: how a packet lies in the UMEM. Either way the payload is file bytes a read put
    /// there and the CPU writes only the header. Default: split for a file read with O_DIRECT
    /// (contiguous makes each packet a separate segment of the disk request, which costs more
    /// than the descriptor it saves here), contiguous for a file on tmpfs (see the README), and
    /// contiguous for IPv6 (a copy-mode socket can finish a checksum over one descriptor only).
    #[arg(long, value_enum, value_name = "LAYOUT")]
    frame_layout: Option<FrameLayout>,
    #[command(flatten)]
    xdp: XdpArgs,
    #[command(flatten)]
    zc: ZcArgs,
    #[command(flatten)]
    common: Common,
}

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
    ip netns exec zclab-rx zclab recv --listen 10.77.0.2:7777 --out /var/tmp/copy")]
struct RecvArgs {
    /// Address and port to listen on, IP:PORT (0.0.0.0:PORT for all addresses).
    #[arg(long, value_name = "IP:PORT")]
    listen: SocketAddr,
    /// Where the verified file goes.
    #[arg(long, value_name = "PATH", required_unless_present = "serve", conflicts_with = "serve")]
    out: Option<PathBuf>,
    /// Receive transfers one after another, until Ctrl-C, each into a new file in DIR named
    /// by the receiver (zclab-SECONDS-N; never a name from the wire). One report per transfer.
    #[arg(long, value_name = "DIR")]
    serve: Option<PathBuf>,
    /// Enter this network namespace (by setns) before listening.
    #[arg(long, value_name = "NAMESPACE")]
    netns: Option<String>,
    /// Give up if no sender connects within this many seconds (default: wait).
    #[arg(long, value_name = "SECONDS")]
    accept_timeout: Option<f64>,
    /// Verify against this BLAKE3 hash (hex) instead of the sender's.
    #[arg(long, value_name = "HEX")]
    expect_hash: Option<String>,
    #[command(flatten)]
    xdp: XdpArgs,
    /// Write every page of the output file once before the timed part, so it measures the
    /// data path rather than the kernel allocating fresh page-cache pages (erratic on VMs).
    #[arg(long)]
    preallocate: bool,
    /// Packet paths: drop this many packets per thousand on purpose, as a lossy link
    /// would, to watch retransmission rounds at work (fault injection).
    #[arg(long, default_value_t = 0, value_name = "PER_MILLE", value_parser = clap::value_parser!(u32).range(0..=900))]
    inject_loss: u32,
    /// af-xdp: where the XDP program runs (default: native, falling back to generic).
    #[arg(long, value_enum, value_name = "MODE")]
    xdp_mode: Option<AttachMode>,
    /// TCP paths: how to take the data off the socket.
    #[arg(long, value_enum, default_value = "splice", value_name = "HOW")]
    via: Via,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
#[command(after_help = "\
Needs an environment made by `zclab env up`. The exit status is 0 only if the file
verified. Example:
    zclab run --mode msg-zerocopy --file /var/tmp/f --json > msg-zerocopy.json")]
struct RunArgs {
    /// The lab environment to run in.
    #[arg(long, default_value = netns::DEFAULT_NAME, value_name = "NAME")]
    env: String,
    /// The data path to send by.
    #[arg(long, value_enum)]
    mode: Mode,
    /// The file to send.
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    /// Keep the received file at OUT (otherwise it is removed after verifying).
    #[arg(long, value_name = "OUT")]
    keep: Option<PathBuf>,
    /// TCP port of the receiver.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Bytes per data-path call.
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_name = "BYTES")]
    chunk: usize,
    /// Evict the file from the page cache first: a cold-cache run.
    #[arg(long)]
    cold: bool,
    /// The receiver writes the output file's pages once before the timed part (see `recv --help`).
    #[arg(long)]
    preallocate: bool,
    /// TCP paths: how the receiver takes the data off the socket (see `recv --help`).
    #[arg(long, value_enum, default_value = "splice", value_name = "HOW")]
    via: Via,
    /// Pin the sender to CPU 0 and the receiver to CPU 1 (see --cpu): steadier figures.
    #[arg(long)]
    pin: bool,
    /// Send to the receiver's IPv6 address (fd77::2; the environment needs `env up --ipv6`).
    #[arg(long)]
    ipv6: bool,
    #[command(flatten)]
    zc: ZcArgs,
    #[command(flatten)]
    xdp: RunXdpArgs,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
#[command(after_help = "\
Each lesson makes its own lab environment and file, runs its experiments, prints the
evidence, then its claims, each marked `holds` or `DOES NOT HOLD on this machine` with the
numbers that decide it. A claim that does not hold is a finding, not a failure: the exit
status is 0 whenever the lesson ran. The texts are in docs/lessons/. Examples:
    zclab lesson                 # the list
    zclab lesson 1 --size 64M    # the read-write lesson on a 64 MiB file")]
struct LessonArgs {
    /// The lesson's number (none: list the lessons).
    number: Option<u32>,
    /// Size of the file the lesson moves, in bytes or with K, M, G (powers of 1024).
    #[arg(long, default_value = "64M", value_name = "SIZE")]
    size: String,
    /// Leave out the kernel's counters (`--trace`), which the lessons use where they work.
    #[arg(long)]
    no_trace: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
    /// Check the lesson's assignment instead of running the lesson (lessons that have one):
    /// exit status 0 only if every check holds.
    #[arg(long)]
    check: bool,
}

/// A comma-separated list of numbers in `range` (none given: empty).
fn number_list(list: &Option<String>, option: &str, range: std::ops::RangeInclusive<u32>) -> Result<Vec<u32>> {
    let Some(l) = list else { return Ok(Vec::new()) };
    l.split(',')
        .map(|n| {
            n.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| range.contains(n))
                .with_context(|| format!("{option}: {n:?} is not a number from {} to {}", range.start(), range.end()))
        })
        .collect()
}

/// The list without repeats, in its order (a value given twice runs once).
fn unique<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// "64K" and friends, in bytes, any size.
fn parse_bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().with_context(|| format!("{s:?}: expected a number with an optional K, M or G"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        other => bail!("{s:?}: unknown unit {other:?} (use K, M or G)"),
    };
    n.checked_shl(shift).filter(|b| b >> shift == n).with_context(|| format!("{s:?} is too large"))
}

/// "64M" and friends, in bytes.
fn parse_size(s: &str) -> Result<u64> {
    let bytes = parse_bytes(s).with_context(|| "--size".to_string())?;
    if !(1 << 20..=16 << 30).contains(&bytes) {
        bail!("--size must be between 1M and 16G (a lesson needs a file to move, and room on /var/tmp)");
    }
    Ok(bytes)
}

#[derive(Args)]
#[command(after_help = "\
The bench makes its own lab environment (unless --env names one) and a file of random
bytes, runs every mode in turn (A B C A B C ...) so that whatever else the machine does
hits them alike, and reports each figure as the median and the range of its runs. Cold
runs evict the file from the page cache first. It writes runs.json, summary.csv,
gbit.svg, cpu.svg and report.html into --out. Example:
    zclab bench --size 256M --runs 5 --out /var/tmp/zclab-bench")]
struct BenchArgs {
    /// An environment made by `zclab env up` (default: the bench makes one and removes it).
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
    /// Size of the file, in bytes or with K, M or G; several, comma-separated, sweep the
    /// file size (one file each), e.g. 16M,256M,1G.
    #[arg(long, default_value = "256M", value_name = "SIZE|LIST")]
    size: String,
    /// The modes to run, comma-separated, or `all`.
    #[arg(long, default_value = "all", value_name = "all|LIST")]
    modes: String,
    /// Runs of each mode in each setting.
    #[arg(long, default_value_t = 3, value_name = "N")]
    runs: u32,
    /// Page cache of the sender's file: warm, cold, or both (comma-separated).
    #[arg(long, default_value = "warm", value_name = "warm,cold")]
    cache: String,
    /// MTUs to sweep, comma-separated (each gets an environment of its own), e.g. 1500,9000.
    #[arg(long, value_name = "LIST")]
    mtu: Option<String>,
    /// Bytes per data-path call of the TCP paths to sweep, comma-separated, e.g. 4K,64K,1M.
    #[arg(long, value_name = "LIST")]
    chunk: Option<String>,
    /// Sends in flight of msg-zerocopy and io-uring-zc to sweep, comma-separated, e.g. 1,4,16
    /// (see `zclab send --help`); the other modes run once per setting.
    #[arg(long, value_name = "LIST")]
    in_flight: Option<String>,
    /// Run io-uring-zc from registered (fixed) buffers too, beside the plain one.
    #[arg(long)]
    fixed_buffers: bool,
    /// af-xdp frame layouts to run side by side, e.g. split,contiguous (see `zclab send --help`);
    /// default: the sender's choice.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_enum)]
    frame_layout: Vec<FrameLayout>,
    /// af-xdp queue counts to run side by side, e.g. 1,2 (see `zclab send --help`); the bench's
    /// own environments get that many queues. Pair it with --no-pin to let the queues' threads
    /// spread over the CPUs (pinned, two queues ran slower here).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=64))]
    queues: Vec<u32>,
    /// Let the scheduler place both ends (by default the sender runs on CPU 0 and the
    /// receiver on CPU 1, and iperf3's ends likewise: two ends on one core run at about 60%
    /// of their speed here, which made some runs half as fast as the others).
    #[arg(long)]
    no_pin: bool,
    /// Where the outputs go (created if missing).
    #[arg(long, default_value = "zclab-bench", value_name = "DIR")]
    out: PathBuf,
    /// Count what the kernel did in each run (see `zclab trace-check`).
    #[arg(long)]
    trace: bool,
    /// Also measure what the machine can do at all: one core's memcpy, the disk's O_DIRECT reads.
    #[arg(long)]
    ceilings: bool,
    /// Also run iperf3 (-F FILE, and -Z -F FILE) on the same environment and file each round.
    #[arg(long)]
    peers: bool,
    /// Print the summaries as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CompareArgs {
    /// Reports written by `zclab run --json`.
    #[arg(required = true, value_name = "REPORT.json")]
    reports: Vec<PathBuf>,
}

fn timeout(secs: f64) -> Result<Duration> {
    if !(secs > 0.0 && secs <= 3600.0) {
        bail!("--timeout must be between 0 and 3600 seconds");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn chunk(bytes: usize) -> Result<usize> {
    if !(1..=(1 << 30)).contains(&bytes) {
        bail!("--chunk must be between 1 byte and 1 GiB");
    }
    Ok(bytes)
}

fn enter_netns(ns: &Option<String>) -> Result<()> {
    if let Some(ns) = ns {
        netns::require_privileges("--netns")?;
        zclab::sys::netns::enter(ns).with_context(|| {
            format!("cannot enter network namespace {ns:?} (does /var/run/netns/{ns} exist? `ip netns list`)")
        })?;
        log::debug!("entered network namespace {ns}");
    }
    Ok(())
}

fn print<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).expect("reports serialize"));
    } else {
        print!("{}", text(value));
    }
}

/// Runs the command; `Ok(false)` means it ran but the transfer did not verify.
fn run(cli: Cli) -> Result<bool> {
    match cli.cmd {
        Cmd::Env(EnvCmd::Up { name, mtu, queues, router, loss, rate, ipv6 }) => {
            let router = router.then(|| netns::Router { loss_pct: loss.unwrap_or(0.0), rate });
            let env = LabEnv::up(&EnvConfig { name: name.clone(), mtu, queues, router, ipv6, verbose: true })?;
            env.keep();
            print!("{}", netns::status(&name)?);
            Ok(true)
        }
        Cmd::Env(EnvCmd::Down { name }) => {
            netns::down(&name, true)?;
            Ok(true)
        }
        Cmd::Env(EnvCmd::Status { name }) => {
            print!("{}", netns::status(&name)?);
            Ok(true)
        }
        Cmd::Send(a) => {
            a.common.pin()?;
            let cfg = SendConfig {
                to: a.to,
                file: a.file,
                mode: a.mode,
                chunk: chunk(a.chunk)?,
                timeout: timeout(a.common.timeout)?,
                cold: a.cold,
                af_xdp: AfXdpOptions {
                    iface: a.xdp.iface,
                    queue: a.xdp.socket.queue,
                    queues: a.xdp.socket.queues,
                    bind_mode: a.xdp.socket.zerocopy.into(),
                    knobs: a.xdp.socket.knobs(),
                    unaligned: a.umem == UmemMode::Unaligned,
                    layout: a.frame_layout,
                    shared_umem: a.xdp.socket.shared_umem,
                },
                trace: a.common.trace,
                zc: a.zc.options(a.mode)?,
                key: a.common.key()?,
            };
            enter_netns(&a.netns)?;
            let rep = send::send_file(&cfg)?;
            print(a.common.json, &rep, report::send_text);
            Ok(rep.verified)
        }
        Cmd::Recv(a) => {
            a.common.pin()?;
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
        Cmd::Run(a) => {
            let cfg = RunConfig {
                env: a.env,
                mode: a.mode,
                file: a.file,
                keep: a.keep,
                port: a.port,
                chunk: chunk(a.chunk)?,
                timeout: timeout(a.common.timeout)?,
                cold: a.cold,
                preallocate: a.preallocate,
                trace: a.common.trace,
                via: a.via,
                zc: a.zc.options(a.mode)?,
                af_xdp_args: a.xdp.args(),
                pin: run_pins(a.pin, a.common.cpu)?,
                ipv6: a.ipv6,
                key: {
                    a.common.key()?; // a bad key file is refused here, not in a child
                    a.common.key.clone()
                },
            };
            let rep = run::run(&cfg)?;
            print(a.common.json, &rep, report::run_text);
            Ok(rep.verified)
        }
        Cmd::Bench(a) => {
            let modes = if a.modes == "all" {
                Mode::ALL.to_vec()
            } else {
                a.modes
                    .split(',')
                    .map(|m| {
                        <Mode as clap::ValueEnum>::from_str(m.trim(), false).map_err(anyhow::Error::msg).with_context(|| {
                            format!("--modes: no mode {m:?} (they are: {})", Mode::ALL.map(|m| m.name()).join(", "))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            };
            let caches = a
                .cache
                .split(',')
                .map(|c| match c.trim() {
                    "warm" => Ok(zclab::bench::Cache::Warm),
                    "cold" => Ok(zclab::bench::Cache::Cold),
                    other => bail!("--cache: {other:?} is neither warm nor cold"),
                })
                .collect::<Result<Vec<_>>>()?;
            if !(1..=100).contains(&a.runs) {
                bail!("--runs must be between 1 and 100");
            }
            let mtus = number_list(&a.mtu, "--mtu", 576..=65535)?;
            let chunks = match &a.chunk {
                None => Vec::new(),
                Some(l) => l.split(',').map(|c| parse_bytes(c).and_then(|b| chunk(b as usize))).collect::<Result<Vec<_>>>()?,
            };
            let in_flight = number_list(&a.in_flight, "--in-flight", 1..=4096)?;
            let cfg = zclab::bench::BenchConfig {
                env: a.env,
                sizes: unique(a.size.split(',').map(parse_size).collect::<Result<Vec<_>>>()?),
                in_flight: unique(in_flight),
                fixed_buffers: a.fixed_buffers,
                layouts: unique(a.frame_layout.clone()),
                queues: unique(a.queues.clone()),
                pin: !a.no_pin && zclab::sys::sched::cpus() >= 2,
                modes,
                runs: a.runs,
                caches,
                mtus: unique(mtus),
                chunks: unique(chunks),
                out: a.out.clone(),
                trace: a.trace,
                ceilings: a.ceilings,
                peers: a.peers,
            };
            let result = zclab::bench::bench(&cfg)?;
            print(a.json, &result, |r| zclab::bench::text(r, &a.out));
            Ok(result.summaries.iter().all(|s| s.verified == s.runs))
        }
        Cmd::Explain { mode } => {
            match mode {
                Some(m) => print!("{}", zclab::explain::explain(m)),
                None => print!("{}", zclab::explain::list()),
            }
            Ok(true)
        }
        Cmd::Lesson(a) => {
            let Some(n) = a.number else {
                print!("{}", zclab::lessons::list());
                return Ok(true);
            };
            let Some(lesson) = zclab::lessons::find(n) else {
                bail!("there is no lesson {n}; `zclab lesson` lists them");
            };
            let size = parse_size(&a.size)?;
            let findings = zclab::lessons::run(lesson, size, !a.no_trace, a.check)?;
            print(a.json, &findings, zclab::lessons::text);
            // A lesson's claims are findings; an assignment's checks must hold.
            Ok(!a.check || findings.claims.iter().all(|c| c.holds))
        }
        Cmd::LessonHelper { what, file } => match what.as_str() {
            "touch-past-end" => {
                let f = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
                let b = zclab::sys::file::touch_past_end(&f)?;
                bail!("read {b} past the end of the file without a signal: the file was longer than a page");
            }
            other => bail!("unknown lesson helper {other:?}"),
        },
        Cmd::TraceCheck => {
            netns::require_privileges("zclab trace-check (it loads BPF programs)")?;
            let mut t = zclab::trace::Tracer::load(None, None).map_err(anyhow::Error::msg)?;
            t.attach();
            let status = t.status();
            let working = status.iter().filter(|(_, why)| why.is_none()).count();
            for (tp, why) in &status {
                match why {
                    None => println!("ok       {tp}"),
                    Some(why) => println!("MISSING  {tp}: {why}"),
                }
            }
            println!("{working} of {} tracepoints work here", status.len());
            drop(t.finish());
            Ok(working == status.len())
        }
        Cmd::Compare(a) => {
            let mut runs = Vec::new();
            for p in &a.reports {
                let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                let r: RunReport =
                    serde_json::from_str(&text).with_context(|| format!("{} is not a `zclab run --json` report", p.display()))?;
                runs.push(r);
            }
            print!("{}", report::compare_table(&runs));
            Ok(runs.iter().all(|r| r.verified))
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).format_timestamp_millis().init();
    zclab::interrupt::install();
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            // A signal can wake a syscall (EINTR) a moment before the Ctrl-C
            // handler's thread has set its flag: give it that moment.
            if e.chain()
                .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::Interrupted))
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if zclab::interrupt::requested() {
                eprintln!("zclab: interrupted; cleaned up");
                return ExitCode::from(130);
            }
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    && c.to_string().contains("stdout")
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("zclab: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
