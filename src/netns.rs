//! The lab environment: two network namespaces joined by a veth pair.
//!
//! ```text
//!   NAME-tx                               NAME-rx
//!   NAME-t0 10.77.0.1/24  <--- veth --->  NAME-r0 10.77.0.2/24
//! ```
//! With `--router`, a third namespace forwards between the two, and may
//! drop a share of the UDP it forwards (nftables `numgen random`) and limit
//! the rate (a `tbf` qdisc): a lossy, slower link for the packet paths.
//! ```text
//!   NAME-tx                  NAME-rt (forwards)                     NAME-rx
//!   NAME-t0 10.77.0.1/32 <-> NAME-a0 10.77.1.254  NAME-b0 10.77.2.254 <-> NAME-r0 10.77.0.2/32
//! ```
//! Everything is made with iproute2's `ip`, and every command is printed so
//! a student can repeat it by hand. The veth pair is created *inside*
//! NAME-tx (`ip -n`) with its peer placed straight into NAME-rx, so the
//! root namespace never sees either end. A [`LabEnv`] removes what it made
//! when dropped, unless told to [`keep`](LabEnv::keep) it; deleting a
//! namespace deletes the veth end in it, and with it the pair.

use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const DEFAULT_NAME: &str = "zclab";
/// The sending side's address; it exists only inside NAME-tx.
pub const TX_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The receiving side's address; it exists only inside NAME-rx.
pub const RX_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
pub const PREFIX_LEN: u8 = 24;
/// The sending side's IPv6 address (`env up --ipv6`), a unique-local one.
pub const TX_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
/// The receiving side's IPv6 address.
pub const RX_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);
pub const PREFIX_LEN6: u8 = 64;
/// Interface names hold 15 bytes (IFNAMSIZ - 1); "-t0" takes 3 of them.
pub const MAX_NAME_LEN: usize = 12;

/// The names an environment's parts are given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNames {
    pub name: String,
    pub tx_ns: String,
    pub rx_ns: String,
    pub tx_if: String,
    pub rx_if: String,
    /// The router namespace and its two ends (`env up --router`).
    pub rt_ns: String,
    pub rt_tx_if: String,
    pub rt_rx_if: String,
}

impl EnvNames {
    /// Validates NAME and derives the namespace and interface names.
    pub fn new(name: &str) -> Result<EnvNames> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            bail!(
                "environment name {name:?} must be 1 to {MAX_NAME_LEN} characters: its interfaces are named NAME-t0 and NAME-r0, and Linux allows 15 characters for an interface name"
            );
        }
        let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            bail!("environment name {name:?} may hold only letters, digits, '-' and '_', and must start with a letter or digit");
        }
        Ok(EnvNames {
            name: name.to_string(),
            tx_ns: format!("{name}-tx"),
            rx_ns: format!("{name}-rx"),
            tx_if: format!("{name}-t0"),
            rx_if: format!("{name}-r0"),
            rt_ns: format!("{name}-rt"),
            rt_tx_if: format!("{name}-a0"),
            rt_rx_if: format!("{name}-b0"),
        })
    }

    fn ns_exists(ns: &str) -> bool {
        Path::new(sys::netns::NETNS_RUN_DIR).join(ns).exists()
    }

    /// True if either namespace exists.
    pub fn any_exists(&self) -> bool {
        Self::ns_exists(&self.tx_ns) || Self::ns_exists(&self.rx_ns) || Self::ns_exists(&self.rt_ns)
    }

    /// True if both namespaces exist.
    pub fn is_up(&self) -> bool {
        Self::ns_exists(&self.tx_ns) && Self::ns_exists(&self.rx_ns)
    }
}

/// How to build an environment.
#[derive(Debug, Clone)]
pub struct EnvConfig {
    pub name: String,
    pub mtu: Option<u32>,
    pub queues: Option<u32>,
    /// A router namespace between the two, with its loss and rate.
    pub router: Option<Router>,
    /// IPv6 addresses too (TX_ADDR6, RX_ADDR6), beside the IPv4 ones.
    pub ipv6: bool,
    /// Print each `ip` command as it runs.
    pub verbose: bool,
}

/// `env up --router [--loss PCT] [--rate RATE]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Router {
    /// Percent of forwarded UDP packets dropped at random (0 to 100, in steps of 0.01).
    pub loss_pct: f64,
    /// A `tbf` rate for the way to the receiver, as tc spells it ("1gbit", "500mbit").
    pub rate: Option<String>,
}

/// The router's addresses on its two links.
pub const ROUTER_TX_SIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 254);
pub const ROUTER_RX_SIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 254);
/// The router's IPv6 addresses (with --ipv6), unique-local like the ends'.
pub const ROUTER_TX_SIDE6: Ipv6Addr = Ipv6Addr::new(0xfd77, 1, 0, 0, 0, 0, 0, 0xfe);
pub const ROUTER_RX_SIDE6: Ipv6Addr = Ipv6Addr::new(0xfd77, 2, 0, 0, 0, 0, 0, 0xfe);

/// A live lab environment; removed on drop unless kept.
#[derive(Debug)]
pub struct LabEnv {
    names: EnvNames,
    verbose: bool,
    keep: bool,
}

/// Fails with the fix unless we may create namespaces and links.
pub fn require_privileges(what: &str) -> Result<()> {
    // CAP_NET_ADMIN (12) for links and addresses, CAP_SYS_ADMIN (21) for
    // the namespace mounts and setns.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff =
        status.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok()).unwrap_or(0);
    let need = (1u64 << 12) | (1u64 << 21);
    if eff & need != need {
        bail!("{what} needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN): run it with sudo, or as root");
    }
    Ok(())
}

/// Runs `ip ARGS`, printing the command first when verbose.
fn ip(args: &[&str], verbose: bool) -> Result<String> {
    if verbose {
        eprintln!("+ ip {}", args.join(" "));
    }
    let out = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("the `ip` command is missing: install iproute2 (apt-get install iproute2)")
        } else {
            anyhow!("cannot run ip: {e}")
        }
    })?;
    if !out.status.success() {
        bail!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl LabEnv {
    /// Creates the environment, checks that packets cross it, and returns
    /// it. A half-finished set-up is undone before the error is returned.
    pub fn up(cfg: &EnvConfig) -> Result<LabEnv> {
        let names = EnvNames::new(&cfg.name)?;
        require_privileges("creating a lab environment")?;
        if names.any_exists() {
            bail!(
                "environment {:?} is already up (namespace {} or {} exists): use it, or remove it first with `zclab env down --name {}`",
                names.name,
                names.tx_ns,
                names.rx_ns,
                names.name
            );
        }
        if let Some(mtu) = cfg.mtu {
            if !(68..=65535).contains(&mtu) {
                bail!("--mtu {mtu} is out of range: veth takes 68 to 65535");
            }
        }
        if let Some(q) = cfg.queues {
            if !(1..=64).contains(&q) {
                bail!("--queues {q} is out of range: 1 to 64");
            }
        }
        let v = cfg.verbose;
        // From here on, dropping `env` (an error, Ctrl-C) removes what exists.
        let env = LabEnv { names: names.clone(), verbose: v, keep: false };
        let n = &names;
        let step = |args: &[&str]| -> Result<()> {
            crate::interrupt::check()?;
            ip(args, v).map(|_| ())
        };
        if let Some(r) = &cfg.router {
            if !(0.0..=100.0).contains(&r.loss_pct) {
                bail!("--loss {} is out of range: 0 to 100 percent", r.loss_pct);
            }
            if let Some(rate) = &r.rate {
                let ok = rate.len() < 20
                    && rate.starts_with(|c: char| c.is_ascii_digit())
                    && ["bit", "kbit", "mbit", "gbit"].iter().any(|u| rate.to_ascii_lowercase().ends_with(u));
                if !ok {
                    bail!("--rate {rate:?}: give a number with bit, kbit, mbit or gbit (tc's spelling), e.g. 1gbit");
                }
            }
            if cfg.queues.is_some() {
                bail!("--queues and --router do not go together (the router's links have one queue)");
            }
        }
        step(&["netns", "add", &n.tx_ns])?;
        step(&["netns", "add", &n.rx_ns])?;
        match &cfg.router {
            None => direct_link(n, cfg, &step)?,
            Some(r) => routed_links(n, cfg, r, v, &step)?,
        }
        let rtt = probe(n, RX_ADDR.into()).context("the environment was built but packets do not cross it")?;
        if v {
            eprintln!("reachable: TCP connect {TX_ADDR} ({}) -> {RX_ADDR} ({}) took {} us", n.tx_ns, n.rx_ns, rtt.as_micros());
        }
        if cfg.ipv6 {
            let rtt = probe(n, RX_ADDR6.into()).context("the IPv6 addresses were added but packets do not cross")?;
            if v {
                eprintln!("reachable: TCP connect [{TX_ADDR6}] -> [{RX_ADDR6}] took {} us", rtt.as_micros());
            }
        }
        Ok(env)
    }

    /// Leaves the environment up after this value is dropped.
    pub fn keep(mut self) {
        self.keep = true;
    }

    pub fn names(&self) -> &EnvNames {
        &self.names
    }

    /// Turns tx checksumming off on both veth ends (`ethtool -K IFACE tx off`): each
    /// kernel then finishes every checksum in software before a packet crosses
    /// (`validate_xmit_skb`), so each end can judge the other's. Without it, veth carries
    /// CHECKSUM_PARTIAL sums unfinished to the peer, which trusts them: a user-space TCP
    /// can neither check the kernel's segments nor have its own offloaded sums proven.
    pub fn full_checksums(&self, verbose: bool) -> Result<()> {
        let n = &self.names;
        for (ns, dev) in [(&n.tx_ns, &n.tx_if), (&n.rx_ns, &n.rx_if)] {
            if verbose {
                eprintln!("+ ip netns exec {ns} ethtool -K {dev} tx off");
            }
            let o = std::process::Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"])
                .output()
                .context("running ethtool (apt-get install ethtool)")?;
            if !o.status.success() {
                bail!("ethtool -K {dev} tx off in {ns}: {}", String::from_utf8_lossy(&o.stderr).trim());
            }
        }
        Ok(())
    }
}

/// NAME-t0 <-> NAME-r0, one veth pair, a /24 between them.
fn direct_link(n: &EnvNames, cfg: &EnvConfig, step: &dyn Fn(&[&str]) -> Result<()>) -> Result<()> {
    let q = cfg.queues.map(|q| q.to_string());
    let mut add: Vec<&str> = vec!["-n", &n.tx_ns, "link", "add", &n.tx_if];
    if let Some(q) = &q {
        add.extend(["numtxqueues", q, "numrxqueues", q]);
    }
    add.extend(["type", "veth", "peer", "name", &n.rx_if]);
    if let Some(q) = &q {
        add.extend(["numtxqueues", q, "numrxqueues", q]);
    }
    add.extend(["netns", &n.rx_ns]);
    step(&add)?;
    let mtu = cfg.mtu.map(|m| m.to_string());
    for (ns, dev, addr) in [(&n.tx_ns, &n.tx_if, TX_ADDR), (&n.rx_ns, &n.rx_if, RX_ADDR)] {
        if let Some(m) = &mtu {
            step(&["-n", ns, "link", "set", dev, "mtu", m])?;
        }
        step(&["-n", ns, "addr", "add", &format!("{addr}/{PREFIX_LEN}"), "dev", dev])?;
        step(&["-n", ns, "link", "set", "lo", "up"])?;
        step(&["-n", ns, "link", "set", dev, "up"])?;
    }
    if cfg.ipv6 {
        // nodad: usable at once, without duplicate address detection's second or two.
        for (ns, dev, addr) in [(&n.tx_ns, &n.tx_if, TX_ADDR6), (&n.rx_ns, &n.rx_if, RX_ADDR6)] {
            step(&["-n", ns, "addr", "add", &format!("{addr}/{PREFIX_LEN6}"), "dev", dev, "nodad"])?;
        }
    }
    Ok(())
}

/// The routes of a routed environment for one address family, `addrs`
/// being (sender, router's sender side, router's receiver side, receiver):
/// each end reaches its router side on-link and the other end through it;
/// the router reaches each end on-link.
fn routes_through_router(n: &EnvNames, step: &dyn Fn(&[&str]) -> Result<()>, addrs: [IpAddr; 4]) -> Result<()> {
    let [tx, tx_side, rx_side, rx] = addrs.map(|a| a.to_string());
    let rt = &n.rt_ns;
    step(&["-n", &n.tx_ns, "route", "add", &tx_side, "dev", &n.tx_if])?;
    step(&["-n", &n.tx_ns, "route", "add", &rx, "via", &tx_side, "dev", &n.tx_if])?;
    step(&["-n", rt, "route", "add", &tx, "dev", &n.rt_tx_if])?;
    step(&["-n", rt, "route", "add", &rx, "dev", &n.rt_rx_if])?;
    step(&["-n", &n.rx_ns, "route", "add", &rx_side, "dev", &n.rx_if])?;
    step(&["-n", &n.rx_ns, "route", "add", &tx, "via", &rx_side, "dev", &n.rx_if])
}

/// NAME-t0 <-> NAME-a0 (router) NAME-b0 <-> NAME-r0: the ends keep their
/// addresses (as /32s, with routes through the router), the router
/// forwards, drops a share of UDP and limits the rate if asked.
fn routed_links(n: &EnvNames, cfg: &EnvConfig, r: &Router, verbose: bool, step: &dyn Fn(&[&str]) -> Result<()>) -> Result<()> {
    let rt = &n.rt_ns;
    step(&["netns", "add", rt])?;
    step(&["-n", &n.tx_ns, "link", "add", &n.tx_if, "type", "veth", "peer", "name", &n.rt_tx_if, "netns", rt])?;
    step(&["-n", rt, "link", "add", &n.rt_rx_if, "type", "veth", "peer", "name", &n.rx_if, "netns", &n.rx_ns])?;
    let mtu = cfg.mtu.map(|m| m.to_string());
    let links = [
        (&n.tx_ns, &n.tx_if, TX_ADDR),
        (rt, &n.rt_tx_if, ROUTER_TX_SIDE),
        (rt, &n.rt_rx_if, ROUTER_RX_SIDE),
        (&n.rx_ns, &n.rx_if, RX_ADDR),
    ];
    for (ns, dev, addr) in links {
        if let Some(m) = &mtu {
            step(&["-n", ns, "link", "set", dev, "mtu", m])?;
        }
        step(&["-n", ns, "addr", "add", &format!("{addr}/32"), "dev", dev])?;
        step(&["-n", ns, "link", "set", "lo", "up"])?;
        step(&["-n", ns, "link", "set", dev, "up"])?;
    }
    routes_through_router(n, step, [TX_ADDR.into(), ROUTER_TX_SIDE.into(), ROUTER_RX_SIDE.into(), RX_ADDR.into()])?;
    let exec = |args: &[&str]| -> Result<()> {
        crate::interrupt::check()?;
        let mut full = vec!["netns", "exec", rt.as_str()];
        full.extend_from_slice(args);
        ip(&full, verbose).map(|_| ())
    };
    if cfg.ipv6 {
        let links6 = [
            (&n.tx_ns, &n.tx_if, TX_ADDR6),
            (rt, &n.rt_tx_if, ROUTER_TX_SIDE6),
            (rt, &n.rt_rx_if, ROUTER_RX_SIDE6),
            (&n.rx_ns, &n.rx_if, RX_ADDR6),
        ];
        for (ns, dev, addr) in links6 {
            step(&["-n", ns, "addr", "add", &format!("{addr}/128"), "dev", dev, "nodad"])?;
        }
        routes_through_router(n, step, [TX_ADDR6.into(), ROUTER_TX_SIDE6.into(), ROUTER_RX_SIDE6.into(), RX_ADDR6.into()])?;
    }
    exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    if cfg.ipv6 {
        exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;
    }
    if r.loss_pct > 0.0 {
        // Per ten thousand: --loss 0.1 drops 10 of every 10,000 forwarded UDP packets.
        let per_10k = ((r.loss_pct * 100.0).round() as u32).min(10_000).to_string();
        exec(&["nft", "add", "table", "inet", "zclab"])?;
        exec(&["nft", "add", "chain", "inet", "zclab", "lossy", "{ type filter hook forward priority 0; }"])?;
        // nft takes `< 10000` as out of range (0-9999): all of it is a plain drop.
        let mut rule = vec!["nft", "add", "rule", "inet", "zclab", "lossy", "meta", "l4proto", "udp"];
        if per_10k != "10000" {
            rule.extend(["numgen", "random", "mod", "10000", "<", &per_10k]);
        }
        rule.extend(["counter", "drop"]);
        exec(&rule)?;
    }
    if let Some(rate) = &r.rate {
        exec(&["tc", "qdisc", "add", "dev", &n.rt_rx_if, "root", "tbf", "rate", rate, "burst", "512kb", "latency", "100ms"])?;
    }
    Ok(())
}

impl Drop for LabEnv {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = teardown(&self.names, self.verbose) {
                log::warn!("cleaning up environment {}: {e:#}", self.names.name);
            }
        }
    }
}

fn teardown(n: &EnvNames, verbose: bool) -> Result<()> {
    let mut first_err = None;
    for ns in [&n.tx_ns, &n.rx_ns, &n.rt_ns] {
        if EnvNames::ns_exists(ns) {
            if let Err(e) = ip(&["netns", "delete", ns], verbose) {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// `zclab env down`: removes both namespaces (and so the veth pair).
pub fn down(name: &str, verbose: bool) -> Result<()> {
    let n = EnvNames::new(name)?;
    require_privileges("removing a lab environment")?;
    if !n.any_exists() {
        bail!("environment {name:?} is not up (no namespace {} or {})", n.tx_ns, n.rx_ns);
    }
    teardown(&n, verbose)
}

/// Connects from NAME-tx to NAME-rx over TCP: proves addresses, links and
/// routes are all in place. Each end runs on a thread of its own that has
/// entered its namespace (setns moves only the calling thread).
fn probe(n: &EnvNames, to: IpAddr) -> Result<Duration> {
    let (rx_ns, tx_ns) = (n.rx_ns.clone(), n.tx_ns.clone());
    let (port_tx, port_rx) = std::sync::mpsc::channel::<Result<u16>>();
    let server = std::thread::spawn(move || -> Result<()> {
        let bound = sys::netns::enter(&rx_ns)
            .map_err(anyhow::Error::from)
            .and_then(|_| TcpListener::bind(SocketAddr::from((to, 0))).map_err(anyhow::Error::from));
        match bound {
            Ok(l) => {
                port_tx.send(Ok(l.local_addr()?.port()))?;
                l.set_nonblocking(true)?;
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(5) {
                    if l.accept().is_ok() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            }
            Err(e) => {
                port_tx.send(Err(e))?;
                Ok(())
            }
        }
    });
    let port = port_rx.recv().map_err(|_| anyhow!("probe listener thread died"))??;
    let client = std::thread::spawn(move || -> Result<Duration> {
        sys::netns::enter(&tx_ns)?;
        let t = Instant::now();
        TcpStream::connect_timeout(&SocketAddr::from((to, port)), Duration::from_secs(3))?;
        Ok(t.elapsed())
    });
    let rtt = client.join().map_err(|_| anyhow!("probe thread panicked"))?;
    let _ = server.join();
    rtt
}

/// `zclab env status`: what is there, read back from the kernel.
pub fn status(name: &str) -> Result<String> {
    let n = EnvNames::new(name)?;
    if !n.any_exists() {
        return Ok(format!("environment {name:?}: down (no namespace {} or {})\n", n.tx_ns, n.rx_ns));
    }
    let mut s =
        format!("environment {name:?}: {}\n", if n.is_up() { "up" } else { "half up (run `zclab env down` to clean it)" });
    let mut links = vec![(&n.tx_ns, &n.tx_if), (&n.rx_ns, &n.rx_if)];
    if EnvNames::ns_exists(&n.rt_ns) {
        links.insert(1, (&n.rt_ns, &n.rt_tx_if));
        links.insert(2, (&n.rt_ns, &n.rt_rx_if));
    }
    for (ns, dev) in links {
        if !EnvNames::ns_exists(ns) {
            s += &format!("  {ns}: missing\n");
            continue;
        }
        match ip(&["-n", ns, "-d", "-j", "addr", "show", "dev", dev], false)
            .and_then(|j| Ok(serde_json::from_str::<serde_json::Value>(&j)?))
        {
            Ok(v) => s += &describe_link(ns, &v[0]),
            Err(e) => s += &format!("  {ns}: {dev} not readable: {e:#}\n"),
        }
    }
    if EnvNames::ns_exists(&n.rt_ns) {
        let rules = ip(&["netns", "exec", &n.rt_ns, "nft", "list", "ruleset"], false).unwrap_or_default();
        let drop_rule = rules.lines().find(|l| l.contains("drop")).map(str::trim).unwrap_or("no loss");
        let qdisc = ip(&["netns", "exec", &n.rt_ns, "tc", "qdisc", "show", "dev", &n.rt_rx_if], false).unwrap_or_default();
        let tbf = qdisc.lines().find(|l| l.contains("tbf")).map(str::trim).unwrap_or("no rate limit");
        s += &format!("  {}: forwards; loss: {drop_rule}; rate: {tbf}\n", n.rt_ns);
    }
    Ok(s)
}

fn describe_link(ns: &str, l: &serde_json::Value) -> String {
    let addrs: Vec<String> = l["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                // IPv4, and IPv6 but for the link-local address every interface has.
                .filter(|x| x["family"] == "inet" || (x["family"] == "inet6" && x["scope"] == "global"))
                .map(|x| format!("{}/{}", x["local"].as_str().unwrap_or("?"), x["prefixlen"]))
                .collect()
        })
        .unwrap_or_default();
    let xdp = match l.get("xdp") {
        None => "none".to_string(),
        Some(x) => {
            let id = |p: &serde_json::Value| p["prog"]["id"].as_u64().or(p["id"].as_u64());
            match id(x) {
                Some(id) => format!("prog id {id} (mode {})", x["mode"]),
                None => x.to_string(),
            }
        }
    };
    format!(
        "  {ns}: {} {} mac {} mtu {} queues tx {} rx {} addr {} xdp {}\n",
        l["ifname"].as_str().unwrap_or("?"),
        l["operstate"].as_str().unwrap_or("?"),
        l["address"].as_str().unwrap_or("?"),
        l["mtu"],
        l["num_tx_queues"],
        l["num_rx_queues"],
        if addrs.is_empty() { "none".into() } else { addrs.join(",") },
        xdp
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let n = EnvNames::new("zclab").unwrap();
        assert_eq!((n.tx_ns.as_str(), n.rx_ns.as_str()), ("zclab-tx", "zclab-rx"));
        assert_eq!((n.tx_if.as_str(), n.rx_if.as_str()), ("zclab-t0", "zclab-r0"));
        assert!(EnvNames::new("abcdefghijkl").is_ok());
        let long = EnvNames::new("abcdefghijklm").unwrap_err().to_string();
        assert!(long.contains("15 characters"), "{long}");
        for bad in ["", "-x", "a b", "a/b", "ä"] {
            assert!(EnvNames::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
