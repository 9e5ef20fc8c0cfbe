//! `af-xdp-tcp`: the file to any TCP listener by zclab's own TCP, on an
//! AF_XDP socket, the payload never copied by the CPU.
//!
//! ```text
//! disk --O_DIRECT read (io_uring, ahead)--> UMEM block (the send buffer, kept until ACKed)
//!   per segment: a header frame (Ethernet/IP/TCP, written by the CPU) + the payload where
//!   the disk put it, as descriptors on the TX ring; sent again from the same frame on loss
//! the peer's ACKs <--RX ring <-- XDP program (this connection's 4-tuple only; the rest,
//!   ARP too, goes on to the kernel)
//! ```
//! The state machine is `crate::tcp`'s; this file is its I/O: the socket,
//! the XDP program that steers the connection's segments to it (or the
//! kernel, which has no connection on the port, would answer each with a
//! reset), a kernel socket that holds the local port, the send buffer
//! (`buffer.rs`) and the loop. The checksum is computed in software over
//! the header and the payload's UMEM bytes (the report counts the payload
//! bytes the CPU read for it); the peer's segments are checked, and those
//! whose checksum field holds only the pseudo-header's sum (a veth peer
//! leaves it to a device that never finishes it) are counted as unverifiable.

pub(crate) mod buffer;
mod http;
pub(crate) mod link;

use crate::tcp::{Config, Connection, State, TcpError};
use crate::transfer::af_xdp::{Iface, CHUNK};
use crate::xdp::AttachMode;
use crate::xsk::BindMode;
use anyhow::{anyhow, bail, Context, Result};
use buffer::SendBuffer;
pub use http::{serve_http, HttpReport};
use link::{Bind, Link, BLOCK};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

/// A connection that makes no progress for this long has failed, whatever its timers say.
const STALL: Duration = Duration::from_secs(30);

/// Who sums the checksum of af-xdp-tcp's segments (`--tx-checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxChecksum {
    /// offload on a copy-mode socket (the kernel, or the device it hands the skb to, always
    /// finishes it), software on a zero-copy one (its driver may ignore the request).
    #[default]
    Auto,
    /// AF_XDP TX metadata asks the device to finish it: the CPU reads no payload byte.
    Offload,
    /// The CPU sums the header and every payload byte in the UMEM.
    Software,
}

/// How the af-xdp-tcp sender binds and behaves.
#[derive(Debug, Clone)]
pub struct TcpXdpOptions {
    pub iface: Option<String>,
    pub queue: u32,
    pub bind_mode: BindMode,
    pub attach: Option<AttachMode>,
    pub min_rto: Duration,
    pub syn_retries: u32,
    pub tx_checksum: TxChecksum,
    /// Record the congestion window, the bytes in flight and the peer's window every
    /// `TIMELINE_EVERY` (`send --timeline`).
    pub timeline: bool,
}

/// How often `--timeline` records the sender's state.
pub const TIMELINE_EVERY: Duration = Duration::from_millis(1);

impl Default for TcpXdpOptions {
    fn default() -> Self {
        TcpXdpOptions {
            iface: None,
            queue: 0,
            bind_mode: BindMode::Auto,
            attach: None,
            min_rto: crate::tcp::rto::DEFAULT_MIN_RTO,
            syn_retries: 5,
            tx_checksum: TxChecksum::Auto,
            timeline: false,
        }
    }
}

pub use crate::report::{AfXdpTcpTx, ChecksumCounts, TimelinePoint};

/// What one af-xdp-tcp send did.
#[derive(Debug, Clone, Serialize)]
pub struct TcpSendReport {
    pub mode: &'static str,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    #[serde(flatten)]
    pub path: AfXdpTcpTx,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    /// The sender's state every millisecond, with `--timeline` (empty without).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelinePoint>,
    /// When every byte was acknowledged and the peer had closed (`seconds` ends there).
    #[serde(skip)]
    pub done: Option<Instant>,
}

impl TcpSendReport {
    pub fn text(&self) -> String {
        let p = &self.path;
        format!(
            "af-xdp-tcp: {} bytes to {} in {:.3} s: {:.2} Gbit/s (file {}; {} {}, XDP program {})\n{}\x20 CPU: {:.3} s user, {:.3} s system\n",
            self.bytes,
            self.peer,
            self.seconds,
            self.gbit_per_s,
            if p.o_direct { "read with O_DIRECT" } else { "read through the page cache" },
            p.iface,
            if p.zerocopy { "zero copy" } else { "copy mode" },
            p.xdp_mode,
            p.text(),
            self.cpu_user_s,
            self.cpu_sys_s,
        )
    }
}

/// A random initial sequence number (RFC 9293 3.4.1 asks for one no one can guess).
pub(crate) fn random_iss() -> u32 {
    let mut b = [0u8; 4];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return t.subsec_nanos() ^ std::process::id();
    }
    u32::from_ne_bytes(b)
}

/// The local address the kernel would use toward `to`.
fn local_ip_toward(to: SocketAddr) -> Result<IpAddr> {
    let any: SocketAddr = if to.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let probe = UdpSocket::bind(any)?;
    probe.connect(to).with_context(|| format!("no route to {to}"))?;
    Ok(probe.local_addr()?.ip())
}

/// An af-xdp-tcp sender with everything set up but the connection: the
/// port held, the file open for O_DIRECT reads, the socket bound and the XDP
/// program steering segments to the port. Set up before a transfer's clock
/// starts (attaching a program takes milliseconds).
pub struct Prepared {
    // Field order is drop order: the link (program, socket) before the port's holder.
    link: Link,
    buf: SendBuffer,
    iface: Iface,
    holder: std::os::fd::OwnedFd,
    local: SocketAddr,
    len: u64,
    o_direct: bool,
    opts: TcpXdpOptions,
}

impl Prepared {
    /// Sets up a sender of `path` toward the host `to` (its port may change: see `run`).
    pub fn open(to: SocketAddr, path: &Path, opts: &TcpXdpOptions) -> Result<Prepared> {
        let local_ip = local_ip_toward(to)?;
        let (holder, local) = crate::sys::socket::hold_tcp_port(SocketAddr::new(local_ip, 0))
            .with_context(|| format!("binding a TCP port on {local_ip}"))?;
        let iface = Iface::find(opts.iface.as_deref(), local_ip)?;
        let dst_mac = crate::route::resolve(&iface.name, iface.index, to.ip(), Duration::from_secs(1))
            .map_err(|e| anyhow!("the next hop toward {to}: {e}"))?
            .mac;
        let (file, align) =
            crate::send::af_xdp::open_direct(path, CHUNK).with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        let reader = crate::send::af_xdp::DirectReader::new(file, 16).context("io_uring for the reads")?;
        // Steered from any peer until the connection's peer is known.
        let bind = Bind::new(&iface, opts, local);
        let mut link = Link::open(&bind)?;
        link.dst_mac = dst_mac;
        let blocks = std::mem::take(&mut link.blocks);
        let mut buf = SendBuffer::new(blocks, BLOCK, align.unwrap_or(1));
        buf.start(link.frames(), None, Some((reader, len)));
        Ok(Prepared { link, buf, iface, holder, local, len, o_direct: align.is_some(), opts: opts.clone() })
    }

    /// The largest payload a segment can carry on the interface (before the peer's MSS).
    pub fn mss(&self) -> u32 {
        config(&self.iface, self.local.port(), self.local, &self.opts).mss as u32
    }

    pub fn mtu(&self) -> u32 {
        self.iface.mtu
    }

    /// Connects to `to`, sends every byte, FIN; returns once every byte is
    /// acknowledged and the peer closed.
    pub fn run(mut self, to: SocketAddr) -> Result<TcpSendReport> {
        self.link.steer(Some(to))?;
        let mut c = config(&self.iface, self.local.port(), to, &self.opts);
        c.time_wait = Duration::from_millis(100);
        let (local, len) = (self.local, self.len);
        log::info!("af-xdp-tcp: {local} -> {to} on {} queue {}, MSS {}, {len} bytes", self.iface.name, self.opts.queue, c.mss);
        let usage0 = crate::sys::rusage::self_usage();
        let t0 = Instant::now();
        let mut conn = Connection::connect(c, t0);
        conn.close_after(len);
        let mut timeline = Vec::new();
        let mut next_sample = t0;
        let sample = self.opts.timeline;
        let result = drive(&mut conn, &mut self.link, &mut self.buf, |conn, _, _| {
            let now = Instant::now();
            if sample && now >= next_sample {
                timeline.push(TimelinePoint {
                    t_ms: now.duration_since(t0).as_secs_f64() * 1e3,
                    cwnd: conn.cwnd(),
                    in_flight: conn.in_flight(),
                    peer_window: conn.peer_window(),
                });
                next_sample = now + TIMELINE_EVERY;
            }
            Ok(())
        });
        let usage = crate::sys::rusage::self_usage();
        drop(self.holder);
        // Timed to the moment every byte was acknowledged and the peer closed, not to the
        // end of TIME-WAIT, which only lingers to answer a FIN sent again.
        let done = result.map_err(|e| name_error(e, to))?;
        let seconds = done.duration_since(t0).as_secs_f64();
        let link = &self.link;
        Ok(TcpSendReport {
            mode: "af-xdp-tcp",
            local,
            peer: to,
            bytes: len,
            seconds,
            gbit_per_s: len as f64 * 8.0 / seconds.max(1e-9) / 1e9,
            path: AfXdpTcpTx {
                iface: self.iface.name.clone(),
                mss: conn.mss(),
                o_direct: self.o_direct,
                zerocopy: link.is_zerocopy(),
                xdp_mode: link.xdp_mode().to_string(),
                tcp: conn.stats(),
                checksum: link.checksum.clone(),
                foreign_frames: link.foreign,
                peer_bytes: link.peer_bytes,
                icmp_unreachable: link.icmp_unreachable,
                syscalls: link.syscalls,
            },
            cpu_user_s: (usage.user - usage0.user).as_secs_f64(),
            cpu_sys_s: (usage.system - usage0.system).as_secs_f64(),
            timeline,
            done: Some(done),
        })
    }
}

/// Sends the file at `path` to the TCP listener at `to`: connect, every
/// byte, FIN; returns once every byte is acknowledged and the peer closed.
pub fn send_plain(to: SocketAddr, path: &Path, opts: &TcpXdpOptions) -> Result<TcpSendReport> {
    Prepared::open(to, path, opts)?.run(to)
}

/// A connection's settings on `iface` toward `peer`.
pub(crate) fn config(iface: &Iface, local_port: u16, peer: SocketAddr, opts: &TcpXdpOptions) -> Config {
    let ip_tcp = if peer.is_ipv4() { 40 } else { 60 };
    let mss = (iface.mtu as usize).saturating_sub(ip_tcp).min(u16::MAX as usize) as u16;
    let mut c = Config::new(local_port, peer.port(), mss, random_iss());
    c.min_rto = opts.min_rto;
    c.syn_retries = opts.syn_retries;
    c
}

/// A connection's end, said with the peer's address.
fn name_error(e: anyhow::Error, to: SocketAddr) -> anyhow::Error {
    match e.downcast_ref::<TcpError>() {
        Some(TcpError::NoAnswer { syns }) => {
            anyhow!("no answer from {to} after {syns} SYNs: is the host up, and does a firewall drop them? (--syn-retries sets how many)")
        }
        Some(TcpError::Refused) => anyhow!("connection refused by {to}: nothing listens on that port there"),
        Some(t) => anyhow!("{to}: {t}"),
        None => e,
    }
}

/// The loop of one connection: reads in, segments in, segments out, until
/// it is done or failed. `tick` runs once a round (a server reads the
/// request there and starts the response). Returns when the connection
/// was done (every byte acknowledged and the peer's FIN taken), before
/// its TIME-WAIT.
fn drive(
    conn: &mut Connection,
    link: &mut Link,
    buf: &mut SendBuffer,
    mut tick: impl FnMut(&mut Connection, &mut Link, &mut SendBuffer) -> Result<()>,
) -> Result<Instant> {
    let mut last_progress = (Instant::now(), 0u64);
    let mut done_at = None;
    loop {
        let now = Instant::now();
        if crate::interrupt::requested() {
            // Tell the peer, so it does not wait for bytes that will not come.
            conn.abort();
            if let Some(t) = conn.poll_transmit(now, |off| buf.limit(off)) {
                link.reclaim();
                if link.has_room() {
                    link.transmit(&t, buf)?;
                    link.kick()?;
                }
            }
            bail!("interrupted: {} bytes acknowledged; the peer was sent a reset", conn.acked_bytes());
        }
        let frames = link.frames();
        buf.reap(frames, Duration::ZERO)?;
        buf.release(conn.acked_bytes(), frames);
        buf.fill(frames)?;
        conn.set_available(buf.available(conn.acked_bytes()));
        let got = link.receive(conn, now)?;
        tick(conn, link, buf)?;
        conn.set_available(buf.available(conn.acked_bytes()));
        link.reclaim();
        let frames = link.frames();
        buf.release(conn.acked_bytes(), frames);
        let sent = link.send_due(conn, now, buf)?;
        if let Some(e) = conn.error() {
            return Err(anyhow::Error::new(e.clone()));
        }
        if conn.is_done() {
            let at = *done_at.get_or_insert(now);
            if conn.state() == State::Closed {
                return Ok(at);
            }
        }
        if conn.acked_bytes() > last_progress.1 || got > 0 {
            last_progress = (now, conn.acked_bytes());
        } else if now.duration_since(last_progress.0) > STALL {
            bail!("no progress for {} s: {} bytes acknowledged", STALL.as_secs(), conn.acked_bytes());
        }
        if got == 0 && sent == 0 {
            // Idle: wait for the peer, a timer or a read, at most a millisecond.
            let wait = conn.poll_deadline().map_or(Duration::from_millis(1), |d| d.saturating_duration_since(now));
            if buf.reads_in_flight() > 0 {
                buf.reap(link.frames(), Duration::from_micros(200))?;
            } else if !wait.is_zero() {
                link.wait(wait.min(Duration::from_millis(1)).as_millis().max(1) as i32)?;
            }
        }
    }
}

/// Gets every frame of `buf` back into `link` (waiting for the kernel's
/// completions, a second at most), for the next connection.
fn give_back(mut buf: SendBuffer, link: &mut Link) -> Result<()> {
    let t0 = Instant::now();
    loop {
        link.kick()?;
        link.reclaim();
        match buf.take_frames(link.frames()) {
            Some((blocks, prefix)) => {
                link.blocks = blocks;
                if prefix.is_some() {
                    link.spare = prefix;
                }
                return Ok(());
            }
            None if t0.elapsed() < Duration::from_secs(1) => std::thread::sleep(Duration::from_micros(200)),
            None => bail!("the kernel kept TX frames for a second after the connection ended"),
        }
    }
}
