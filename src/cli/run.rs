//! `zclab run`: both ends of one transfer across a lab environment.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use zclab::netns;
use zclab::report;
use zclab::run::{self, RunConfig};
use zclab::transfer::mode::Via;
use zclab::transfer::{Mode, DEFAULT_CHUNK, DEFAULT_PORT};

use super::send::ZcArgs;
use super::xdp::RunXdpArgs;
use super::{chunk, print, timeout, Common};

#[derive(Args)]
#[command(after_help = "\
Needs an environment made by `zclab env up`. The exit status is 0 only if the file
verified. Example:
    zclab run --mode msg-zerocopy --file /var/tmp/f --json > msg-zerocopy.json")]
pub struct RunArgs {
    /// The lab environment to run in.
    #[arg(long, default_value = netns::DEFAULT_NAME, value_name = "NAME")]
    pub env: String,
    /// The data path to send by.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// The file to send.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// Keep the received file at OUT (otherwise it is removed after verifying).
    #[arg(long, value_name = "OUT")]
    pub keep: Option<PathBuf>,
    /// TCP port of the receiver.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Bytes per data-path call.
    #[arg(long, default_value_t = DEFAULT_CHUNK, value_name = "BYTES")]
    pub chunk: usize,
    /// Evict the file from the page cache first: a cold-cache run.
    #[arg(long)]
    pub cold: bool,
    /// The receiver writes the output file's pages once before the timed part (see `recv --help`).
    #[arg(long)]
    pub preallocate: bool,
    /// TCP paths: how the receiver takes the data off the socket (see `recv --help`).
    #[arg(long, value_enum, default_value = "splice", value_name = "HOW")]
    pub via: Via,
    /// Pin the sender to CPU 0 and the receiver to CPU 1 (see --cpu): steadier figures.
    #[arg(long)]
    pub pin: bool,
    /// Send to the receiver's IPv6 address (fd77::2; the environment needs `env up --ipv6`).
    #[arg(long)]
    ipv6: bool,
    /// TCP paths: the receiver takes the data by zclab's own TCP on an AF_XDP socket
    /// (`recv --mode af-xdp-tcp`) instead of the kernel's; with --mode af-xdp-tcp both ends
    /// are in user space.
    #[arg(long, value_enum, value_name = "MODE")]
    recv_mode: Option<super::recv::RecvMode>,
    #[command(flatten)]
    pub zc: ZcArgs,
    #[command(flatten)]
    pub xdp: RunXdpArgs,
    #[command(flatten)]
    pub common: Common,
}

/// `run --pin`: (sender's CPU, receiver's CPU).
pub fn run_pins(pin: bool, cpu: Option<usize>) -> Result<Option<(usize, usize)>> {
    if cpu.is_some() {
        bail!("zclab run starts two processes: use --pin (sender on CPU 0, receiver on CPU 1), not --cpu");
    }
    if pin && zclab::sys::sched::cpus() < 2 {
        bail!("--pin needs two CPUs; this machine has one");
    }
    Ok(pin.then_some((0, 1)))
}

pub fn exec(a: RunArgs) -> Result<bool> {
    if a.xdp.direct && a.mode != Mode::AfXdp {
        bail!(
            "--direct is af-xdp's: its receiver writes payloads with O_DIRECT from the UMEM they arrived in;              {} writes through the page cache",
            a.mode
        );
    }
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
        tcp_receiver: a.recv_mode.is_some(),
        key: {
            a.common.key()?; // a bad key file is refused here, not in a child
            a.common.key.clone()
        },
    };
    let rep = run::run(&cfg)?;
    print(a.common.json, &rep, report::run_text);
    Ok(rep.verified)
}
