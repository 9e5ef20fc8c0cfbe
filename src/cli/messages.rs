//! `zclab latency` and `zclab rate`: small messages, where kernel bypass is
//! meant to pay. Each runs both ends in a lab environment (the default),
//! or one end by hand: `--listen` makes a server, `--to` a client.

use anyhow::{bail, Result};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;
use zclab::messages::control::Kind;
use zclab::messages::latency::{self, LatencyConfig, LatencyReport};
use zclab::messages::rate::{self, Length, RateConfig, RateReport, MAX_MESSAGES};
use zclab::messages::server::{self, ServeConfig};
use zclab::messages::{ends, EndConfig, Mode, Wait, XdpOptions, DEFAULT_SIZE};
use zclab::netns;
use zclab::transfer::af_xdp::BUSY_POLL_BUDGET;
use zclab::xdp::AttachMode;

use super::xdp::ZeroCopy;
use super::{enter_netns, print, timeout, value_name};

/// The port the lab's message sessions use by default (TCP for control and
/// data, UDP for the packet modes).
const DEFAULT_PORT: u16 = 7790;

/// Where this end runs and how it waits: options both commands share.
#[derive(Args, Clone)]
pub struct EndArgs {
    /// Run the server here, listening on IP:PORT (it takes one session, then exits).
    #[arg(long, value_name = "IP:PORT", conflicts_with_all = ["to", "env", "pin"])]
    pub listen: Option<SocketAddr>,
    /// Run the client here, against a server at IP:PORT.
    #[arg(long, value_name = "IP:PORT", conflicts_with_all = ["env", "pin", "accept_timeout"])]
    pub to: Option<SocketAddr>,
    /// Both ends in this lab environment (server in NAME-rx, client in NAME-tx): the default.
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// With --env: the server's port.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// With --env: pin the client to CPU 0 and the server to CPU 1.
    #[arg(long)]
    pub pin: bool,
    /// Wait for messages by spinning: non-blocking calls (af-xdp: looks at the RX ring) in a
    /// loop, never sleeping. Costs a whole CPU; saves the wake-up.
    #[arg(long, conflicts_with = "busy_poll")]
    pub spin: bool,
    /// Wait by busy polling: the kernel polls the device's queue for up to USECS inside a
    /// receive before it sleeps (SO_BUSY_POLL with SO_PREFER_BUSY_POLL). af-xdp: non-blocking
    /// receive calls in a loop, inside which the kernel busy-polls. On the lab's veth, kernel
    /// UDP and TCP still slept for every message (lesson 13).
    #[arg(long, value_name = "USECS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub busy_poll: Option<u32>,
    /// Packets per busy poll (SO_BUSY_POLL_BUDGET; default 64).
    #[arg(long, value_name = "N", requires = "busy_poll", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub busy_poll_budget: Option<u32>,
    /// af-xdp: the interface (default: the one holding the local address).
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// af-xdp: the first queue to bind a socket to (default 0). Given alone, only that queue.
    #[arg(long, value_name = "N")]
    pub queue: Option<u32>,
    /// af-xdp: a socket on each of N queues, --queue to --queue+N-1 (the interface needs
    /// them: `zclab env up --queues N`). Default: every RX queue of the interface, as `zclab
    /// recv` does, since on a real NIC RSS picks the queue a flow lands on (a plain veth has
    /// one). A client's sends take turns over its queues; a reply leaves from the queue its
    /// request came in on. One thread per end serves them all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: Option<u32>,
    /// af-xdp: zero copy between NIC and UMEM (veth is copy-only).
    #[arg(long, value_enum, default_value = "auto")]
    pub zerocopy: ZeroCopy,
    /// af-xdp: where the XDP program runs (default: native, else generic).
    #[arg(long, value_enum, value_name = "MODE")]
    pub xdp_mode: Option<AttachMode>,
    /// af-xdp: XDP_USE_NEED_WAKEUP: kick the TX ring only when the kernel asks.
    #[arg(long)]
    pub need_wakeup: bool,
    /// af-xdp: frames per TX kick in copy mode (XDP_MAX_TX_SKB_BUDGET; default 256).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub tx_budget: Option<u32>,
    /// Count what the kernel did on each end (see `zclab trace-check`).
    #[arg(long)]
    pub trace: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Give up when the peer is silent this long (seconds).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Server: give up if no client comes within this many seconds (default: wait).
    #[arg(long, value_name = "SECONDS")]
    pub accept_timeout: Option<f64>,
    /// Run on this CPU only.
    #[arg(long, value_name = "N", conflicts_with = "pin")]
    pub cpu: Option<usize>,
    /// Enter this network namespace first (like `ip netns exec`).
    #[arg(long, value_name = "NAMESPACE", conflicts_with = "env")]
    pub netns: Option<String>,
}

impl EndArgs {
    fn wait(&self) -> Wait {
        match (self.spin, self.busy_poll) {
            (true, _) => Wait::Spin,
            (false, Some(usecs)) => Wait::BusyPoll { usecs, budget: self.busy_poll_budget.unwrap_or(BUSY_POLL_BUDGET) },
            (false, None) => Wait::Block,
        }
    }

    fn end(&self) -> Result<EndConfig> {
        Ok(EndConfig {
            wait: self.wait(),
            xdp: XdpOptions {
                iface: self.iface.clone(),
                queue: self.queue,
                queues: self.queues,
                bind_mode: Some(self.zerocopy.into()),
                attach: self.xdp_mode,
                need_wakeup: self.need_wakeup,
                tx_budget: self.tx_budget,
            },
            trace: self.trace,
            timeout: timeout(self.timeout)?,
        })
    }

    /// The af-xdp options make no sense for a socket mode: say so, rather than ignore them.
    fn check_mode(&self, mode: Mode) -> Result<()> {
        if mode == Mode::AfXdp {
            return Ok(());
        }
        let given = [
            ("--need-wakeup", self.need_wakeup),
            ("--xdp-mode", self.xdp_mode.is_some()),
            ("--tx-budget", self.tx_budget.is_some()),
            ("--iface", self.iface.is_some()),
            ("--queue", self.queue.is_some()),
            ("--queues", self.queues.is_some()),
            ("--zerocopy", !matches!(self.zerocopy, ZeroCopy::Auto)),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, on)| *on) {
            bail!("{flag} is an af-xdp option: --mode {mode} has no AF_XDP socket (the wait options --spin and --busy-poll apply to every mode)");
        }
        Ok(())
    }

    /// Pins this process, enters its namespace.
    fn place(&self) -> Result<()> {
        if let Some(c) = self.cpu {
            zclab::sys::sched::pin_to_cpu(c).map_err(|e| anyhow::anyhow!("--cpu {c}: {e}"))?;
        }
        enter_netns(&self.netns)
    }

    /// The options of one end as arguments of a child zclab (for --env).
    fn child_args(&self, cpu: Option<usize>, timeout: f64) -> Vec<String> {
        let mut v = vec!["--json".to_string(), "--timeout".into(), timeout.to_string()];
        if self.spin {
            v.push("--spin".into());
        }
        for (flag, value) in
            [("--busy-poll", self.busy_poll), ("--busy-poll-budget", self.busy_poll_budget), ("--tx-budget", self.tx_budget)]
        {
            if let Some(n) = value {
                v.extend([flag.to_string(), n.to_string()]);
            }
        }
        if self.need_wakeup {
            v.push("--need-wakeup".into());
        }
        if let Some(m) = self.xdp_mode {
            v.extend(["--xdp-mode".into(), value_name(&m)]);
        }
        for (flag, value) in [("--queue", self.queue), ("--queues", self.queues)] {
            if let Some(n) = value {
                v.extend([flag.to_string(), n.to_string()]);
            }
        }
        v.extend(["--zerocopy".into(), value_name(&self.zerocopy)]);
        if self.trace {
            v.push("--trace".into());
        }
        if let Some(c) = cpu {
            v.extend(["--cpu".into(), c.to_string()]);
        }
        v
    }

    /// With --env: the server's and the client's arguments so far, and the server's address.
    fn env_ends(&self, cmd: &str) -> Result<(String, Vec<String>, Vec<String>)> {
        if self.pin && zclab::sys::sched::cpus() < 2 {
            bail!("--pin needs two CPUs; this machine has one");
        }
        let env = self.env.clone().unwrap_or_else(|| netns::DEFAULT_NAME.to_string());
        let addr = format!("{}:{}", netns::RX_ADDR, self.port);
        let pins = self.pin.then_some((0, 1));
        let mut server = vec![cmd.to_string(), "--listen".into(), addr.clone(), "--accept-timeout".into(), "10".into()];
        // The server waits a little longer than the client, so that a silent path is the
        // client's verdict to give.
        server.extend(self.child_args(pins.map(|p| p.1), self.timeout + 2.0));
        let mut client = vec![cmd.to_string(), "--to".into(), addr];
        client.extend(self.child_args(pins.map(|p| p.0), self.timeout));
        Ok((env, server, client))
    }

    fn serve(&self, listen: SocketAddr, kind: Kind) -> Result<bool> {
        self.place()?;
        let cfg = ServeConfig { listen, end: self.end()?, accept_timeout: self.accept_timeout.map(timeout).transpose()?, kind };
        let r = server::serve(&cfg)?;
        print(self.json, &r, |r| {
            format!(
                "served a {} session of {} ({}-byte messages) from {}: {} messages, {:.3} CPU us and {:.2} syscalls each\n",
                r.kind.name(),
                r.mode,
                r.size,
                r.client,
                r.server.messages,
                r.server.cpu_us_per_msg,
                r.server.syscalls_per_msg
            )
        });
        Ok(true)
    }
}

#[derive(Args)]
#[command(after_help = "\
Without --listen or --to, both ends run in a lab environment (`zclab env up` first):
    zclab latency --mode udp                      # both ends block in recv()
    zclab latency --mode udp --spin               # both ends spin: no sleep, no wake-up
    zclab latency --mode af-xdp --spin --pin      # AF_XDP on both ends, pinned
By hand, one end each:
    ip netns exec zclab-rx zclab latency --listen 10.77.0.2:7790
    ip netns exec zclab-tx zclab latency --to 10.77.0.2:7790 --mode tcp

A message is SIZE bytes of UDP payload (or of a TCP stream); over IPv4 it makes a
SIZE+42-byte Ethernet frame. The client times every round trip (CLOCK_MONOTONIC) into
an HDR histogram; a reply that does not come within --reply-timeout is counted as lost
and not timed. Per message, both ends' CPU time, syscalls and sleeps (voluntary context
switches, from getrusage) are reported. Exit status 0 if any round trip completed.")]
pub struct LatencyArgs {
    /// The path (client; the server takes the client's).
    #[arg(long, value_enum, required_unless_present = "listen")]
    pub mode: Option<Mode>,
    /// Bytes per message: at least 16 (the header), at most what the path's MTU allows.
    #[arg(long, default_value_t = DEFAULT_SIZE, value_name = "BYTES")]
    pub size: usize,
    /// Round trips to time.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub count: u64,
    /// Round trips before those, not timed (caches, page faults, the first wake-ups).
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub warmup: u64,
    /// How long to wait for one reply before counting it lost (milliseconds).
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub reply_timeout: u64,
    #[command(flatten)]
    pub end: EndArgs,
}

pub fn latency(a: LatencyArgs) -> Result<bool> {
    if let Some(listen) = a.end.listen {
        return a.end.serve(listen, Kind::Latency);
    }
    let mode = a.mode.expect("clap requires --mode without --listen");
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    if !(1..=60_000).contains(&a.reply_timeout) {
        bail!("--reply-timeout must be between 1 and 60000 ms");
    }
    if mode == Mode::UdpMmsg {
        bail!("--mode udp-mmsg batches messages, and a ping-pong has one in flight: use udp (udp-mmsg is for `zclab rate`)");
    }
    a.end.check_mode(mode)?;
    zclab::messages::check_size(mode, a.size, None).map_err(anyhow::Error::msg)?;
    let own = |args: &mut Vec<String>| {
        args.extend([
            "--mode".into(),
            mode.name().into(),
            "--size".into(),
            a.size.to_string(),
            "--count".into(),
            a.count.to_string(),
            "--warmup".into(),
            a.warmup.to_string(),
            "--reply-timeout".into(),
            a.reply_timeout.to_string(),
        ])
    };
    let report: LatencyReport = match a.end.to {
        Some(to) => {
            a.end.place()?;
            let cfg = LatencyConfig {
                to,
                mode,
                size: a.size,
                count: a.count,
                warmup: a.warmup,
                reply_timeout: Duration::from_millis(a.reply_timeout),
                end: a.end.end()?,
            };
            latency::run(&cfg)?
        }
        None => {
            let (env, server, mut client) = a.end.env_ends("latency")?;
            own(&mut client);
            ends::parse(&ends::run_both(&env, server, client)?)?
        }
    };
    print(a.end.json, &report, latency::text);
    Ok(report.ok)
}

#[derive(Args)]
#[command(after_help = "\
Without --listen or --to, both ends run in a lab environment (`zclab env up` first):
    zclab rate --mode udp                # one sendmsg and one recv per message
    zclab rate --mode udp-mmsg           # 64 messages per sendmmsg / recvmmsg
    zclab rate --mode af-xdp --pin       # one frame per message, batches on the rings
By hand, one end each:
    ip netns exec zclab-rx zclab rate --listen 10.77.0.2:7790
    ip netns exec zclab-tx zclab rate --to 10.77.0.2:7790 --mode udp --duration 3

The sender sends as fast as its path takes messages; nothing is sent again. The receiver
counts messages delivered (distinct sequence numbers), duplicated and reordered, and the
rate is delivered messages per second of the receiver's window (first to last message).
Lost = sent - delivered. Exit status 0 if any message was delivered.")]
pub struct RateArgs {
    /// The path (client; the server takes the client's).
    #[arg(long, value_enum, required_unless_present = "listen")]
    pub mode: Option<Mode>,
    /// Bytes per message: at least 16 (the header), at most what the path's MTU allows.
    #[arg(long, default_value_t = DEFAULT_SIZE, value_name = "BYTES")]
    pub size: usize,
    /// Seconds to send for (the default: 2).
    #[arg(long, value_name = "SECONDS", conflicts_with = "count")]
    pub duration: Option<f64>,
    /// Messages to send, instead of a duration.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub end: EndArgs,
}

pub fn rate(a: RateArgs) -> Result<bool> {
    if let Some(listen) = a.end.listen {
        return a.end.serve(listen, Kind::Rate);
    }
    let mode = a.mode.expect("clap requires --mode without --listen");
    let length = match (a.duration, a.count) {
        (_, Some(n)) if n == 0 || n > MAX_MESSAGES => bail!("--count must be between 1 and {MAX_MESSAGES}"),
        (_, Some(n)) => Length::Messages(n),
        (Some(d), None) if !(d > 0.0 && d <= 60.0) => bail!("--duration must be more than 0 and at most 60 seconds"),
        (Some(d), None) => Length::Seconds(d),
        (None, None) => Length::Seconds(2.0),
    };
    a.end.check_mode(mode)?;
    zclab::messages::check_size(mode, a.size, None).map_err(anyhow::Error::msg)?;
    let report: RateReport = match a.end.to {
        Some(to) => {
            a.end.place()?;
            rate::run(&RateConfig { to, mode, size: a.size, length, end: a.end.end()? })?
        }
        None => {
            let (env, server, mut client) = a.end.env_ends("rate")?;
            client.extend(["--mode".into(), mode.name().into(), "--size".into(), a.size.to_string()]);
            match length {
                Length::Messages(n) => client.extend(["--count".into(), n.to_string()]),
                Length::Seconds(d) => client.extend(["--duration".into(), d.to_string()]),
            }
            ends::parse(&ends::run_both(&env, server, client)?)?
        }
    };
    print(a.end.json, &report, rate::text);
    Ok(report.ok)
}
