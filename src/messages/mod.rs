//! Small messages: where kernel bypass is meant to pay.
//!
//! A file moves in large packets, and the cost per byte decides the race.
//! Many small messages turn the question around: the cost per *message*
//! decides it, and that cost is the socket layer, the syscall and the
//! wake-up of a sleeping receiver, which AF_XDP leaves out. Two workloads
//! share the machinery here, as neper's do:
//!
//! - `latency` ([`latency`]): request and response, one message in
//!   flight; the client times every round trip into an HDR histogram.
//! - `rate` ([`rate`]): a one-way stream of numbered messages; the
//!   receiver counts what was delivered, lost, duplicated and reordered.
//!
//! Each path is a [`Link`] in a file of its own (`tcp.rs`, `udp.rs`,
//! `udp_mmsg.rs`, `af_xdp.rs`): how it sends, how it waits for what comes,
//! how it answers. How an end waits is the other half of the lesson
//! ([`Wait`]): sleeping in the kernel until woken, spinning without a
//! syscall, or busy polling inside the kernel.
//!
//! The two ends meet on a TCP control connection ([`control`]): the client
//! says what it will send, the server says it is ready, and after the run
//! the server reports what it saw and what it cost. So one report holds
//! both ends, and each end can be started by hand on its own.
//!
//! Every message starts with a 16-byte header: magic `ZCM1`, the session
//! (a random number each run, so that a stray message of an earlier run is
//! dropped, not counted) and the sequence number, all big-endian. The rest
//! of the message is filler. A message that does not parse, or belongs to
//! another session, is counted and dropped.

pub mod af_xdp;
pub mod control;
pub mod ends;
pub mod latency;
pub mod rate;
pub mod server;
pub mod tcp;
pub mod udp;
pub mod udp_mmsg;

use crate::metrics::ProcessCost;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::io;
use std::time::Duration;

/// Bytes of the message header: magic, session, sequence number.
pub const MSG_HEADER_LEN: usize = 16;
pub const MSG_MAGIC: [u8; 4] = *b"ZCM1";
/// The default message: 64 bytes of UDP payload (a 106-byte Ethernet frame over IPv4).
pub const DEFAULT_SIZE: usize = 64;
/// Bytes in front of a UDP payload in an IPv4 frame: Ethernet 14, IPv4 20, UDP 8.
pub const UDP_FRAME_OVERHEAD: usize = 42;
/// The most a TCP message may be (a stream has no MTU; a bound keeps buffers sane).
pub const MAX_TCP_SIZE: usize = 1 << 20;
/// The largest af-xdp message: a frame fits one 4096-byte chunk behind the
/// kernel's 256 bytes of headroom.
pub const MAX_XDP_SIZE: usize = 4096 - 256 - UDP_FRAME_OVERHEAD;

/// The paths a message can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A TCP stream (TCP_NODELAY); the receiver cuts it into messages.
    Tcp,
    /// Kernel UDP, one send() and one recv() per message.
    Udp,
    /// Kernel UDP in batches: sendmmsg() and recvmmsg() of up to 64 messages a call (rate only).
    UdpMmsg,
    /// AF_XDP on both ends: one frame per message, built and read in the UMEM, no socket layer.
    AfXdp,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Udp => "udp",
            Mode::UdpMmsg => "udp-mmsg",
            Mode::AfXdp => "af-xdp",
        }
    }

    /// The largest message the path carries at interface MTU `mtu` (IPv4).
    pub fn max_size(self, mtu: u32) -> usize {
        let udp = (mtu as usize).saturating_sub(UDP_FRAME_OVERHEAD - 14);
        match self {
            Mode::Tcp => MAX_TCP_SIZE,
            Mode::Udp | Mode::UdpMmsg => udp,
            Mode::AfXdp => udp.min(MAX_XDP_SIZE),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How an end waits for the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "style")]
pub enum Wait {
    /// Sleep in the kernel until a message wakes the process (a blocking recv, or poll).
    Block,
    /// Ask again and again without sleeping (non-blocking calls; af-xdp: look at the RX ring).
    Spin,
    /// Let the kernel poll the device's queue for this long before it sleeps (SO_BUSY_POLL).
    BusyPoll { usecs: u32, budget: u32 },
}

impl Wait {
    pub fn name(self) -> String {
        match self {
            Wait::Block => "block".into(),
            Wait::Spin => "spin".into(),
            Wait::BusyPoll { usecs, .. } => format!("busy-poll {usecs}us"),
        }
    }
}

/// The af-xdp options of an end (ignored by the socket modes).
#[derive(Debug, Clone, Default)]
pub struct XdpOptions {
    /// The interface (default: the one that holds the local address).
    pub iface: Option<String>,
    /// The first queue (default 0) and how many (default: one, if a first is
    /// given, else every RX queue of the interface).
    pub queue: Option<u32>,
    pub queues: Option<u32>,
    pub bind_mode: Option<crate::xsk::BindMode>,
    pub attach: Option<crate::xdp::AttachMode>,
    pub need_wakeup: bool,
    pub tx_budget: Option<u32>,
}

/// What one end was set to do.
#[derive(Debug, Clone)]
pub struct EndConfig {
    pub wait: Wait,
    pub xdp: XdpOptions,
    /// Count what the kernel did (`--trace`).
    pub trace: bool,
    /// Give up when the peer is silent this long.
    pub timeout: Duration,
}

/// One message's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgHeader {
    pub session: u32,
    pub seq: u64,
}

impl MsgHeader {
    pub fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&MSG_MAGIC);
        out[4..8].copy_from_slice(&self.session.to_be_bytes());
        out[8..16].copy_from_slice(&self.seq.to_be_bytes());
    }

    /// Parses the header at the start of `bytes` (None: too short or no magic).
    pub fn parse(bytes: &[u8]) -> Option<MsgHeader> {
        let h = bytes.first_chunk::<MSG_HEADER_LEN>()?;
        if h[..4] != MSG_MAGIC {
            return None;
        }
        Some(MsgHeader {
            session: u32::from_be_bytes(h[4..8].try_into().expect("4 bytes")),
            seq: u64::from_be_bytes(h[8..16].try_into().expect("8 bytes")),
        })
    }
}

/// A message of `size` bytes of `session`: the header, then filler.
pub fn message(session: u32, size: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    MsgHeader { session, seq: 0 }.write(&mut m);
    m
}

/// Sets the sequence number of a message made by [`message`].
pub fn set_seq(msg: &mut [u8], seq: u64) {
    msg[8..16].copy_from_slice(&seq.to_be_bytes());
}

/// The checks of one received message: its length, its header, its session.
/// Returns its sequence number, or counts it as malformed.
pub fn accept(bytes: &[u8], session: u32, size: usize, malformed: &mut u64) -> Option<u64> {
    match MsgHeader::parse(bytes) {
        Some(h) if bytes.len() == size && h.session == session => Some(h.seq),
        _ => {
            *malformed += 1;
            None
        }
    }
}

/// What a path counted besides messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Data-path syscalls this end made (send, recv, sendmmsg, recvmmsg, poll, the AF_XDP kick).
    pub syscalls: u64,
    /// Messages that did not parse, had the wrong length, or belonged to another session: dropped.
    pub malformed: u64,
    /// af-xdp: the socket got zero-copy mode (veth: never).
    #[serde(default)]
    pub zerocopy: Option<bool>,
    /// af-xdp: where the XDP program ran (native or generic), if this end attached one.
    #[serde(default)]
    pub xdp_mode: Option<crate::xdp::AttachMode>,
    /// af-xdp: the socket's XDP_STATISTICS (drops for a full RX ring or an empty fill ring).
    #[serde(default)]
    pub xdp_statistics: Option<crate::sys::xdp::XdpStatistics>,
    /// af-xdp: the queues this end had a socket on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<u32>,
}

/// One path between two ends, set up for a session: what `latency` and
/// `rate` drive. Waiting is the link's (its [`Wait`] was given when it was
/// made); a timeout that passes is `Ok(0)`, never an error.
pub trait Link {
    /// Sends messages number `first..first + n`; returns how many went (a
    /// ring or socket buffer that is full takes fewer).
    fn send(&mut self, first: u64, n: u32) -> io::Result<u32>;
    /// Waits up to `timeout` for messages, and hands the sequence number of
    /// each valid one to `each`; returns how many were handed.
    fn receive(&mut self, timeout: Duration, each: &mut dyn FnMut(u64)) -> io::Result<u32>;
    /// Waits up to `timeout` for messages and sends each valid one back as
    /// it came; returns how many.
    fn echo(&mut self, timeout: Duration) -> io::Result<u32>;
    /// Everything sent has left this end (af-xdp: the TX ring is empty and
    /// its frames completed); false if it had not by `timeout`.
    fn flush(&mut self, _timeout: Duration) -> io::Result<bool> {
        Ok(true)
    }
    /// The peer closed the path (a TCP stream's end).
    fn closed(&self) -> bool {
        false
    }
    fn info(&self) -> LinkInfo;
}

/// What one end paid for the part that was timed, and per message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndCost {
    /// How this end waited.
    pub wait: String,
    /// The CPU it was pinned to, if any.
    pub cpu: Option<usize>,
    pub cost: ProcessCost,
    /// Messages this end handled (sent or received, or both for an echo).
    pub messages: u64,
    pub cpu_us_per_msg: f64,
    pub syscalls_per_msg: f64,
    /// Voluntary context switches (the process slept) per message.
    pub ctx_switches_per_msg: f64,
    pub link: LinkInfo,
    /// The kernel's counters (`--trace`).
    #[serde(default)]
    pub kernel: Option<crate::trace::KernelCounters>,
}

impl EndCost {
    pub fn new(
        wait: Wait,
        cost: ProcessCost,
        messages: u64,
        link: LinkInfo,
        kernel: Option<crate::trace::KernelCounters>,
    ) -> Self {
        let per = |x: f64| if messages > 0 { x / messages as f64 } else { 0.0 };
        EndCost {
            wait: wait.name(),
            cpu: crate::sys::sched::pinned_cpu(),
            cpu_us_per_msg: per((cost.cpu_user_s + cost.cpu_sys_s) * 1e6),
            syscalls_per_msg: per(cost.syscalls as f64),
            ctx_switches_per_msg: per(cost.voluntary_ctx_switches as f64),
            cost,
            messages,
            link,
            kernel,
        }
    }
}

/// Checks a message size for a path; the error says what fits.
pub fn check_size(mode: Mode, size: usize, mtu: Option<(String, u32)>) -> Result<(), String> {
    if size < MSG_HEADER_LEN {
        return Err(format!(
            "--size {size}: a message is at least {MSG_HEADER_LEN} bytes (its header: magic, session, sequence number)"
        ));
    }
    let (iface, mtu) = mtu.unwrap_or_else(|| ("the path".into(), 65535));
    let max = mode.max_size(mtu);
    if size > max {
        let why = match mode {
            Mode::Tcp => "a TCP message is kept whole in the receiver's buffer".to_string(),
            Mode::AfXdp if max == MAX_XDP_SIZE => "an af-xdp frame must fit one 4096-byte UMEM chunk".to_string(),
            _ => format!("a UDP message must fit the MTU {mtu} of {iface} with its 28 bytes of IPv4 and UDP headers"),
        };
        return Err(format!("--size {size} is too large for {mode}: at most {max} bytes ({why})"));
    }
    Ok(())
}

/// The interface that holds `ip`: (name, MAC, MTU), if one does.
fn local_iface(ip: std::net::IpAddr) -> Option<(String, [u8; 6], u32)> {
    let name = crate::sys::iface::iface_with_addr(ip).ok()??;
    let (mac, mtu) = crate::sys::iface::iface_mac_mtu(&name).ok()?;
    Some((name, mac, mtu))
}

/// The interface that holds `ip` and its MTU, if one does.
pub fn iface_mtu(ip: std::net::IpAddr) -> Option<(String, u32)> {
    local_iface(ip).map(|(name, _, mtu)| (name, mtu))
}

/// A random session number (never 0).
pub fn new_session() -> u32 {
    let mut b = [0u8; 4];
    let _ = crate::sys::random_bytes(&mut b);
    u32::from_ne_bytes(b).max(1)
}

/// Per-message costs of both ends, as a small table.
pub fn cost_table(client: &EndCost, server: &EndCost, client_role: &str, server_role: &str) -> String {
    let mut s = String::from("  per message          CPU us   syscalls   sleeps (vol. ctx sw.)   wait\n");
    for (role, e) in [(client_role, client), (server_role, server)] {
        let _ = writeln!(
            s,
            "  {role:<18} {:>8.3} {:>10.3} {:>23.3}   {}{}",
            e.cpu_us_per_msg,
            e.syscalls_per_msg,
            e.ctx_switches_per_msg,
            e.wait,
            e.cpu.map_or(String::new(), |c| format!(" (CPU {c})"))
        );
    }
    s
}

/// The af-xdp ends' socket modes and drops, if either is af-xdp.
pub fn xdp_line(client: &EndCost, server: &EndCost) -> String {
    let mut s = String::new();
    for (role, e) in [("client", client), ("server", server)] {
        if let Some(zc) = e.link.zerocopy {
            let stats = e.link.xdp_statistics.unwrap_or_default();
            let _ = writeln!(
                s,
                "  af-xdp {role}: {}{}{}; rx_ring_full {}, fill ring empty {}, malformed {}",
                if zc { "zero copy" } else { "copy mode" },
                match &e.link.queues[..] {
                    [] | [_] => String::new(),
                    q => format!(", queues {}", q.iter().map(|q| q.to_string()).collect::<Vec<_>>().join(",")),
                },
                e.link.xdp_mode.map_or(String::new(), |m| format!(", XDP program {}", m.name())),
                stats.rx_ring_full,
                stats.rx_fill_ring_empty_descs,
                e.link.malformed
            );
        }
    }
    s
}

/// The client's end of a session, set up: the control connection, what it
/// said, and the data path.
pub struct ClientSession {
    pub ctl: control::Control,
    pub hello: control::Hello,
    pub link: Box<dyn Link>,
}

/// Connects to the server at `to`, tells it what comes, and opens the path.
pub fn open_client(
    to: std::net::SocketAddr,
    kind: control::Kind,
    mode: Mode,
    size: usize,
    end: &EndConfig,
) -> anyhow::Result<ClientSession> {
    use anyhow::Context;
    // The size against the MTU of the interface the kernel would send from,
    // before the server hears of this session (connecting a UDP socket
    // sends nothing; it only picks the route).
    let probe = std::net::UdpSocket::bind((if to.is_ipv4() { "0.0.0.0" } else { "::" }, 0))?;
    if probe.connect(to).is_ok() {
        check_size(mode, size, iface_mtu(probe.local_addr()?.ip())).map_err(anyhow::Error::msg)?;
    }
    let mut ctl = control::Control::connect(to, Duration::from_secs(5))?;
    let local = ctl.local();
    let udp = match mode {
        Mode::Udp | Mode::UdpMmsg => Some(std::net::UdpSocket::bind((local.ip(), 0)).context("a UDP socket for the messages")?),
        _ => None,
    };
    let hello = control::Hello {
        version: control::VERSION,
        kind,
        mode,
        size,
        session: new_session(),
        udp_port: udp.as_ref().map_or(Ok(0), |u| u.local_addr().map(|a| a.port()))?,
        mac: iface_mac(local.ip()),
    };
    ctl.send(&hello)?;
    // An af-xdp server may wait seconds for a queue that a socket just left.
    let ready: control::Ready = ctl.recv(Duration::from_secs(10), "answer to the Hello")?;
    if let Some(why) = ready.refused {
        anyhow::bail!("the server refused the session: {why}");
    }
    let server = ctl.peer();
    let link: Box<dyn Link> = match (mode, udp) {
        (Mode::Tcp, _) => Box::new(tcp::TcpLink::connect(server, &hello, end)?),
        (Mode::Udp, Some(u)) => Box::new(udp::UdpLink::new(u, server, &hello, end)?),
        (Mode::UdpMmsg, Some(u)) => Box::new(udp_mmsg::MmsgLink::new(u, server, &hello, end)?),
        (Mode::AfXdp, _) => {
            let receives = kind == control::Kind::Latency;
            Box::new(af_xdp::XdpLink::open(local, server, server.port(), ready.mac.as_deref(), &hello, end, receives)?)
        }
        _ => unreachable!("a UDP socket was made for the UDP modes"),
    };
    Ok(ClientSession { ctl, hello, link })
}

/// The MAC of the interface that holds `ip`, as text.
pub fn iface_mac(ip: std::net::IpAddr) -> Option<String> {
    local_iface(ip).map(|(_, mac, _)| crate::wire::format_mac(&mac))
}

/// How a kernel socket waits for what comes, as [`Wait`] says: a blocking
/// receive that gives up after `SO_RCVTIMEO` (with `SO_BUSY_POLL`, the kernel
/// first polls the device for that long), or non-blocking calls in a loop.
pub(crate) struct SockWait {
    wait: Wait,
    /// The `SO_RCVTIMEO` in force (set again only when it changes).
    rcvtimeo: Option<Duration>,
    pub syscalls: u64,
}

impl SockWait {
    pub fn new(sock: &impl std::os::fd::AsRawFd, wait: Wait) -> io::Result<SockWait> {
        if let Wait::BusyPoll { usecs, budget } = wait {
            crate::sys::socket::set_busy_poll(sock, usecs, budget)
                .map_err(|e| io::Error::new(e.kind(), format!("busy polling (SO_BUSY_POLL and friends): {e}")))?;
        }
        Ok(SockWait { wait, rcvtimeo: None, syscalls: 0 })
    }

    /// Makes `call(flags)` until it returns something or `timeout` passes
    /// (`Ok(None)`). `call` gets `MSG_DONTWAIT` when this end spins, 0 when
    /// it blocks; each call counts as a syscall.
    pub fn wait<T>(
        &mut self,
        sock: &impl std::os::fd::AsRawFd,
        timeout: Duration,
        mut call: impl FnMut(libc::c_int) -> io::Result<Option<T>>,
    ) -> io::Result<Option<T>> {
        match self.wait {
            Wait::Spin => {
                let start = std::time::Instant::now();
                let mut tries = 0u32;
                loop {
                    self.syscalls += 1;
                    if let Some(x) = call(libc::MSG_DONTWAIT)? {
                        return Ok(Some(x));
                    }
                    tries = tries.wrapping_add(1);
                    // The clock is cheap, but not free: look every 64 tries.
                    if tries.is_multiple_of(64) && start.elapsed() >= timeout {
                        return Ok(None);
                    }
                }
            }
            Wait::Block | Wait::BusyPoll { .. } => {
                // SO_RCVTIMEO of zero means "forever": never set that.
                let t = timeout.max(Duration::from_millis(1));
                if self.rcvtimeo != Some(t) {
                    crate::sys::socket::set_receive_timeout(sock, t)?;
                    self.rcvtimeo = Some(t);
                }
                self.syscalls += 1;
                match call(0) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
                    r => r,
                }
            }
        }
    }

    /// One more call that does not wait (draining what is queued).
    pub fn now<T>(&mut self, mut call: impl FnMut(libc::c_int) -> io::Result<Option<T>>) -> io::Result<Option<T>> {
        self.syscalls += 1;
        call(libc::MSG_DONTWAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_and_a_stranger_is_counted() {
        let mut m = message(7, 64);
        set_seq(&mut m, 12345);
        let mut bad = 0;
        assert_eq!(accept(&m, 7, 64, &mut bad), Some(12345));
        assert_eq!(accept(&m, 8, 64, &mut bad), None, "another session");
        assert_eq!(accept(&m[..63], 7, 64, &mut bad), None, "the wrong length");
        m[0] = b'X';
        assert_eq!(accept(&m, 7, 64, &mut bad), None, "no magic");
        assert_eq!(accept(&[], 7, 64, &mut bad), None);
        assert_eq!(bad, 4);
    }

    #[test]
    fn sizes_are_checked_against_the_header_and_the_mtu() {
        let mtu = Some(("veth0".to_string(), 1500));
        assert!(check_size(Mode::Udp, 1472, mtu.clone()).is_ok());
        let e = check_size(Mode::Udp, 1473, mtu.clone()).unwrap_err();
        assert!(e.contains("at most 1472") && e.contains("MTU 1500 of veth0"), "{e}");
        assert!(check_size(Mode::AfXdp, 1472, mtu.clone()).is_ok());
        assert!(check_size(Mode::AfXdp, 4000, Some(("v".into(), 9000))).unwrap_err().contains("4096-byte UMEM chunk"));
        assert!(check_size(Mode::Tcp, 9000, mtu.clone()).is_ok(), "a stream has no MTU");
        assert!(check_size(Mode::Tcp, 15, mtu).unwrap_err().contains("at least 16 bytes"));
    }
}
