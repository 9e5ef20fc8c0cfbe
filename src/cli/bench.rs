//! `zclab bench`: every path side by side.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use zclab::transfer::af_xdp::FrameLayout;
use zclab::transfer::Mode;

use super::{chunk, number_list, parse_bytes, parse_size, print, unique};

#[derive(Args)]
#[command(after_help = "\
The bench makes its own lab environment (unless --env names one) and a file of random
bytes, runs every mode in turn (A B C A B C ...) so that whatever else the machine does
hits them alike, and reports each figure as the median and the range of its runs. Cold
runs evict the file from the page cache first. It writes runs.json, summary.csv,
gbit.svg, cpu.svg and report.html into --out. Examples:
    zclab bench --size 256M --runs 5 --out /var/tmp/zclab-bench
    zclab bench --modes none --latency --peers     # small messages only, beside sockperf

--latency adds small messages: a rate section (64-byte messages one way by udp, udp-mmsg
and af-xdp, blocking and spinning) and a latency section (round trips by tcp, udp and
af-xdp, each blocking, spinning and busy polling), interleaved with the files, with
rate.svg and latency.svg (p50 to p99.99, log scale); --peers then runs sockperf too.")]
pub struct BenchArgs {
    /// An environment made by `zclab env up` (default: the bench makes one and removes it).
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Size of the file, in bytes or with K, M or G; several, comma-separated, sweep the
    /// file size (one file each), e.g. 16M,256M,1G.
    #[arg(long, default_value = "256M", value_name = "SIZE|LIST")]
    pub size: String,
    /// The modes to run, comma-separated, `all`, or `none` (with --latency: messages only).
    #[arg(long, default_value = "all", value_name = "all|LIST")]
    pub modes: String,
    /// Runs of each mode in each setting.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub runs: u32,
    /// Page cache of the sender's file: warm, cold, or both (comma-separated).
    #[arg(long, default_value = "warm", value_name = "warm,cold")]
    pub cache: String,
    /// MTUs to sweep, comma-separated (each gets an environment of its own), e.g. 1500,9000.
    #[arg(long, value_name = "LIST")]
    pub mtu: Option<String>,
    /// Bytes per data-path call of the TCP paths to sweep, comma-separated, e.g. 4K,64K,1M.
    #[arg(long, value_name = "LIST")]
    pub chunk: Option<String>,
    /// Sends in flight of msg-zerocopy and io-uring-zc to sweep, comma-separated, e.g. 1,4,16
    /// (see `zclab send --help`); the other modes run once per setting.
    #[arg(long, value_name = "LIST")]
    pub in_flight: Option<String>,
    /// Run io-uring-zc from registered (fixed) buffers too, beside the plain one.
    #[arg(long)]
    pub fixed_buffers: bool,
    /// af-xdp frame layouts to run side by side, e.g. split,contiguous (see `zclab send --help`);
    /// default: the sender's choice.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_enum)]
    pub frame_layout: Vec<FrameLayout>,
    /// af-xdp queue counts to run side by side, e.g. 1,2 (see `zclab send --help`); the bench's
    /// own environments get that many queues. Pair it with --no-pin to let the queues' threads
    /// spread over the CPUs (pinned, two queues ran slower here).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: Vec<u32>,
    /// Run af-xdp twice, side by side: with the receiver writing through its page cache and with
    /// `recv --direct` (O_DIRECT straight from its UMEM). The table shows both ends' page cache
    /// after each run and the receiver's CPU per GiB.
    #[arg(long)]
    pub direct: bool,
    /// Let the scheduler place both ends (by default the sender runs on CPU 0 and the
    /// receiver on CPU 1, and iperf3's ends likewise: two ends on one core run at about 60%
    /// of their speed here, which made some runs half as fast as the others).
    #[arg(long)]
    pub no_pin: bool,
    /// Where the outputs go (created if missing).
    #[arg(long, default_value = "zclab-bench", value_name = "DIR")]
    pub out: PathBuf,
    /// Count what the kernel did in each run (see `zclab trace-check`).
    #[arg(long)]
    pub trace: bool,
    /// Also measure what the machine can do at all: one core's memcpy, the disk's O_DIRECT reads.
    #[arg(long)]
    pub ceilings: bool,
    /// Also run iperf3 (-F FILE, and -Z -F FILE) on the same environment and file each round.
    #[arg(long)]
    pub peers: bool,
    /// Also the HTTP download section: curl, in the receiving namespace, downloads the (first)
    /// file from `zclab http --mode af-xdp-tcp`, `zclab http --mode sendfile` and nginx with
    /// `sendfile on`, each round, the same client for all three (needs nginx and curl).
    #[arg(long)]
    pub http: bool,
    /// Also measure small messages: `zclab rate` and `zclab latency` side by side (see above).
    #[arg(long)]
    pub latency: bool,
    /// With --latency: round trips timed per latency run.
    #[arg(long, default_value_t = 10_000, value_name = "N", requires = "latency")]
    pub latency_count: u64,
    /// With --latency: seconds per rate run.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS", requires = "latency")]
    pub rate_seconds: f64,
    /// Print the summaries as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn exec(a: BenchArgs) -> Result<bool> {
    let modes = if a.modes == "none" {
        if !a.latency {
            bail!("--modes none runs no file path: give --latency, or some modes");
        }
        Vec::new()
    } else if a.modes == "all" {
        Mode::ALL.to_vec()
    } else {
        a.modes
            .split(',')
            .map(|m| {
                <Mode as clap::ValueEnum>::from_str(m.trim(), false)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("--modes: no mode {m:?} (they are: {})", Mode::ALL.map(|m| m.name()).join(", ")))
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
    if a.direct && !modes.contains(&zclab::transfer::Mode::AfXdp) {
        bail!("--direct runs af-xdp's receiver both ways: include af-xdp in --modes");
    }
    let cfg = zclab::bench::BenchConfig {
        env: a.env,
        sizes: unique(a.size.split(',').map(parse_size).collect::<Result<Vec<_>>>()?),
        in_flight: unique(in_flight),
        fixed_buffers: a.fixed_buffers,
        layouts: unique(a.frame_layout.clone()),
        direct: a.direct,
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
        http: a.http,
        latency: if a.latency {
            if !(1..=10_000_000).contains(&a.latency_count) {
                bail!("--latency-count must be between 1 and 10000000");
            }
            if !(a.rate_seconds > 0.0 && a.rate_seconds <= 60.0) {
                bail!("--rate-seconds must be more than 0 and at most 60");
            }
            Some(zclab::bench::messages::MsgConfig {
                count: a.latency_count,
                seconds: a.rate_seconds,
                size: zclab::messages::DEFAULT_SIZE,
            })
        } else {
            None
        },
    };
    let result = zclab::bench::bench(&cfg)?;
    print(a.json, &result, |r| zclab::bench::text(r, &a.out));
    Ok(result.summaries.iter().all(|s| s.verified == s.runs))
}
