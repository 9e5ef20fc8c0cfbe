//! `zclab env`: make, show and remove a lab environment.

use anyhow::Result;
use clap::Subcommand;
use zclab::netns::{self, EnvConfig, LabEnv};

#[derive(Subcommand)]
pub enum EnvCmd {
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
        #[arg(long)]
        ipv6: bool,
        /// Turn tx checksumming off on both veth ends (ethtool -K IFACE tx off), so every
        /// checksum is finished by the sending kernel and judged by the receiving one. veth
        /// otherwise passes checksums unfinished (CHECKSUM_PARTIAL) to a peer that trusts them:
        /// af-xdp-tcp can then check the kernel's segments (the report's rx_verified), and its
        /// own offloaded sums (--tx-checksum offload) are proven by the peer's kernel.
        #[arg(long)]
        full_checksums: bool,
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

pub fn exec(cmd: EnvCmd) -> Result<bool> {
    match cmd {
        EnvCmd::Up { name, mtu, queues, router, loss, rate, ipv6, full_checksums } => {
            let router = router.then(|| netns::Router { loss_pct: loss.unwrap_or(0.0), rate });
            let env = LabEnv::up(&EnvConfig { name: name.clone(), mtu, queues, router, ipv6, verbose: true })?;
            if full_checksums {
                env.full_checksums(true)?;
            }
            env.keep();
            print!("{}", netns::status(&name)?);
            Ok(true)
        }
        EnvCmd::Down { name } => {
            netns::down(&name, true)?;
            Ok(true)
        }
        EnvCmd::Status { name } => {
            print!("{}", netns::status(&name)?);
            Ok(true)
        }
    }
}
