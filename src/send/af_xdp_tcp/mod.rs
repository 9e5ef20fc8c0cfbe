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

mod buffer;

use crate::tcp::{Config, Connection, State, TcpError, TcpStats, Transmit, Why};
use crate::transfer::af_xdp::{socket_error, wait_for_busy_queue, Iface, Knobs, CHUNK, TX_BUDGET};
use crate::wire::{self, TcpFrame};
use crate::xdp::{AttachMode, XdpSteering};
use crate::xsk::{BindMode, Frame, PoolId, PoolSpec, Received, Returned, Rx, Tx, Umem, UmemConfig, XskSocket};
use anyhow::{anyhow, bail, Context, Result};
use buffer::SendBuffer;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

const HEADERS: PoolId = PoolId(0);
const BLOCKS: PoolId = PoolId(1);
const RX_FRAMES: PoolId = PoolId(2);
/// Header frames: enough for every segment a full send buffer holds.
const HEADER_FRAMES: u32 = 4096;
const HEADER_FRAME: u32 = 256;
/// The send buffer: 16 blocks of 256 KiB.
const BLOCK: u64 = 256 << 10;
const SLOTS: u32 = 16;
const RX_COUNT: u32 = 1024;
const RING: u32 = 2048;
/// A connection that makes no progress for this long has failed, whatever its timers say.
const STALL: Duration = Duration::from_secs(30);

/// How the af-xdp-tcp sender binds and behaves.
#[derive(Debug, Clone)]
pub struct TcpXdpOptions {
    pub iface: Option<String>,
    pub queue: u32,
    pub bind_mode: BindMode,
    pub attach: Option<AttachMode>,
    pub min_rto: Duration,
    pub syn_retries: u32,
}

impl Default for TcpXdpOptions {
    fn default() -> Self {
        TcpXdpOptions {
            iface: None,
            queue: 0,
            bind_mode: BindMode::Auto,
            attach: None,
            min_rto: crate::tcp::rto::DEFAULT_MIN_RTO,
            syn_retries: 5,
        }
    }
}

/// What checking and making checksums counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChecksumCounts {
    /// How this end's segments got their checksum: "software" (the CPU summed the payload).
    pub tx_mode: &'static str,
    /// Payload bytes the CPU read to sum them (0 with offload).
    pub cpu_payload_bytes_read: u64,
    /// The peer's segments: checksum right, only the pseudo-header's sum (cannot be judged), wrong (dropped).
    pub rx_verified: u64,
    pub rx_unverifiable: u64,
    pub rx_bad: u64,
}

/// What one af-xdp-tcp send did.
#[derive(Debug, Clone, Serialize)]
pub struct TcpSendReport {
    pub mode: &'static str,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub iface: String,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    pub mss: u32,
    /// The file read with O_DIRECT (false: through the page cache, on a filesystem without it).
    pub o_direct: bool,
    pub zerocopy: bool,
    pub xdp_mode: &'static str,
    pub tcp: TcpStats,
    pub checksum: ChecksumCounts,
    /// Frames the RX ring gave that were not this connection's, or not TCP: counted, dropped.
    pub foreign_frames: u64,
    /// Bytes the peer sent on the connection (a plain sink sends none): acknowledged, dropped.
    pub peer_bytes: u64,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
}

impl TcpSendReport {
    pub fn text(&self) -> String {
        let t = &self.tcp;
        format!(
            "af-xdp-tcp: {} bytes to {} in {:.3} s: {:.2} Gbit/s (file {}; {} {}, XDP program {})\n\
             \x20 segments sent {} ({} bytes of payload), retransmitted {} fast / {} after a timeout; timeouts {}\n\
             \x20 duplicate ACKs {}, recoveries {} ({:.3} s), zero-window probes {}, largest cwnd {} bytes, srtt {} us\n\
             \x20 peer: MSS {}, window scale {:?}, largest window {} bytes; the connection's MSS {}\n\
             \x20 checksums: sent {} (the CPU read {} payload bytes); received {} verified, {} unverifiable, {} bad\n\
             \x20 dropped: {} segments (acks of unsent {}, outside the window {}, resets not exact {}), {} foreign frames\n\
             \x20 CPU: {:.3} s user, {:.3} s system\n",
            self.bytes,
            self.peer,
            self.seconds,
            self.gbit_per_s,
            if self.o_direct { "read with O_DIRECT" } else { "read through the page cache" },
            self.iface,
            if self.zerocopy { "zero copy" } else { "copy mode" },
            self.xdp_mode,
            t.segments_sent,
            t.bytes_sent,
            t.retransmits_fast,
            t.retransmits_timeout,
            t.rto_fired,
            t.dup_acks,
            t.fast_recoveries,
            t.recovery_s,
            t.zero_window_probes,
            t.largest_cwnd,
            t.srtt_us.map_or("-".into(), |u| u.to_string()),
            t.peer_mss,
            t.peer_window_scale,
            t.largest_peer_window,
            self.mss,
            self.checksum.tx_mode,
            self.checksum.cpu_payload_bytes_read,
            self.checksum.rx_verified,
            self.checksum.rx_unverifiable,
            self.checksum.rx_bad,
            t.dropped,
            t.dropped_ack_of_unsent,
            t.dropped_outside_window,
            t.dropped_rst_not_exact,
            self.foreign_frames,
            self.cpu_user_s,
            self.cpu_sys_s,
        )
    }
}

/// A random initial sequence number (RFC 9293 3.4.1 asks for one no one can guess).
fn random_iss() -> u32 {
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

/// The socket and what goes with it.
struct Link {
    // Field order is drop order: the program first, then the socket.
    steering: XdpSteering,
    sock: XskSocket,
    rx: Rx,
    tx: Tx,
    headers: Vec<Frame>,
    refill: Vec<Frame>,
    got: Vec<Received>,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    local: SocketAddr,
    peer: SocketAddr,
    checksum: ChecksumCounts,
    foreign: u64,
    peer_bytes: u64,
    in_flight: u32,
}

impl Link {
    /// Puts `t` on the TX ring: its header frame, then its payload's pieces.
    fn transmit(&mut self, t: &Transmit, buf: &SendBuffer) -> Result<()> {
        let mut hdr = [0u8; HEADER_FRAME as usize];
        let payload_len = t.payload.map_or(0, |p| p.1) as usize;
        let n = wire::write_tcp_frame_headers(
            self.src_mac,
            self.dst_mac,
            self.local.ip(),
            self.peer.ip(),
            &t.segment,
            payload_len,
            &mut hdr,
        );
        let tcp_at = n - t.segment.header_bytes().len();
        let frames = self.sock.umem_mut().frames_mut();
        let payload = match t.payload {
            Some((off, len)) => {
                let (shared, at) = buf.locate(off).ok_or_else(|| anyhow!("stream byte {off} is not in the send buffer"))?;
                let bytes = frames.shared_bytes(shared, at, len)?;
                self.checksum.cpu_payload_bytes_read += wire::finish_checksum(&mut hdr[..n], tcp_at, &[bytes]);
                Some((shared, at, len))
            }
            None => {
                wire::finish_checksum(&mut hdr[..n], tcp_at, &[]);
                None
            }
        };
        let chunk = frames.chunk_size() as u64;
        let pieces: Vec<(u64, u32)> = match payload {
            Some((shared, at, len)) => {
                crate::send::af_xdp::cut(shared.addr() + at, len as u64, chunk).map(|(a, l)| (a - shared.addr(), l)).collect()
            }
            None => Vec::new(),
        };
        let mut h = self.headers.pop().ok_or_else(|| anyhow!("no header frame free"))?;
        frames.bytes_mut(&mut h)[..n].copy_from_slice(&hdr[..n]);
        let mut r = self.tx.reserve(1 + pieces.len() as u32).ok_or_else(|| anyhow!("the TX ring had room a moment ago"))?;
        r.push_frame(frames, h, n as u32, !pieces.is_empty()).map_err(|(_, e)| anyhow!(e))?;
        if let Some((shared, _, _)) = payload {
            for (i, (at, len)) in pieces.iter().enumerate() {
                r.push_piece(frames, shared, *at, *len, i + 1 < pieces.len())?;
            }
        }
        r.submit();
        self.in_flight += 1 + pieces.len() as u32;
        Ok(())
    }

    /// Header frames and payload pieces the kernel is done with.
    fn reclaim(&mut self) {
        let headers = &mut self.headers;
        let n = self.sock.umem_mut().complete(RING, |r| {
            if let Returned::Frame(f) = r {
                headers.push(f);
            }
        });
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// The frames the RX ring holds, each checked and handed to `conn`.
    fn receive(&mut self, conn: &mut Connection, now: Instant) -> Result<u32> {
        let mut got = std::mem::take(&mut self.got);
        self.rx.receive(self.sock.umem_mut(), 64, &mut got);
        let n = got.len() as u32;
        for r in got.drain(..) {
            match r {
                Received::Packet(p) if !p.more => {
                    let frames = self.sock.umem().frames();
                    let bytes = p.bytes(frames);
                    let counts = (&mut self.checksum, &mut self.foreign);
                    if let Some(f) = check(bytes, self.local, self.peer, counts.0, counts.1) {
                        let inc = conn.on_segment(&f.segment, f.payload_len, now);
                        if let Some((_, len)) = inc.data {
                            self.peer_bytes += len as u64;
                        }
                    }
                    self.refill.push(p.into_frame());
                }
                Received::Packet(p) => {
                    self.foreign += 1;
                    self.refill.push(p.into_frame());
                }
                Received::Malformed(f) => {
                    self.foreign += 1;
                    self.refill.push(f);
                }
                Received::Foreign(_) => self.foreign += 1,
            }
        }
        self.got = got;
        self.sock.umem_mut().fill(&mut self.refill).map_err(|e| anyhow!(e))?;
        Ok(n)
    }
}

/// The segment in a frame, if it is the connection's (`local`, `peer`) and
/// its checksum is right or cannot be judged; counted either way.
fn check(bytes: &[u8], local: SocketAddr, peer: SocketAddr, sums: &mut ChecksumCounts, foreign: &mut u64) -> Option<TcpFrame> {
    let Ok(f) = wire::parse_tcp_frame(bytes, bytes.len()) else {
        *foreign += 1;
        return None;
    };
    let ours =
        f.src == peer.ip() && f.segment.src_port == peer.port() && f.dst == local.ip() && f.segment.dst_port == local.port();
    if !ours {
        *foreign += 1;
        return None;
    }
    let at = f.checksum.tcp_at + wire::TCP_CHECKSUM_OFFSET;
    let field = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    if f.checksum.checksum_ok(&[bytes]) {
        sums.rx_verified += 1;
    } else if field == f.checksum.pseudo {
        // CHECKSUM_PARTIAL left unfinished by a veth: the peer's kernel trusted a device
        // to finish it. The segment cannot be judged; it is taken.
        sums.rx_unverifiable += 1;
    } else {
        sums.rx_bad += 1;
        return None;
    }
    Some(f)
}

/// Sends the file at `path` to the TCP listener at `to`: connect, every
/// byte, FIN; returns once every byte is acknowledged and the peer closed.
pub fn send_plain(to: SocketAddr, path: &Path, opts: &TcpXdpOptions) -> Result<TcpSendReport> {
    let local_ip = local_ip_toward(to)?;
    let (holder, local) = crate::sys::socket::hold_tcp_port(SocketAddr::new(local_ip, 0))
        .with_context(|| format!("binding a TCP port on {local_ip}"))?;
    let iface = Iface::find(opts.iface.as_deref(), local_ip)?;
    let dst_mac = crate::route::resolve(&iface.name, iface.index, to.ip(), Duration::from_secs(1))
        .map_err(|e| anyhow!("the next hop toward {to}: {e}"))?
        .mac;
    let (file, align) = crate::send::af_xdp::open_direct(path, CHUNK).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata()?.len();
    let reader = crate::send::af_xdp::DirectReader::new(file, SLOTS).context("io_uring for the reads")?;
    let cfg = UmemConfig {
        pools: vec![
            PoolSpec { frame_size: HEADER_FRAME, count: HEADER_FRAMES },
            PoolSpec { frame_size: BLOCK as u32, count: SLOTS },
            PoolSpec { frame_size: CHUNK, count: RX_COUNT },
        ],
        chunk_size: CHUNK,
        unaligned: true,
        huge_pages: false,
        fill_size: RX_COUNT,
        completion_size: RING,
        tx_metadata_len: 0,
        frame_headroom: 0,
    };
    let umem = Umem::new(&cfg)?;
    let frags = iface.mtu > crate::xdp::MAX_MTU_WITHOUT_FRAGS;
    let mut steering = XdpSteering::attach(&iface.name, 0, frags, opts.attach)?;
    steering.steer_tcp(local.port(), Some(to))?;
    let knobs = Knobs { need_wakeup: false, busy_poll_us: None, busy_poll_budget: None, tx_budget: Some(TX_BUDGET) };
    let (mut sock, rx, tx) =
        XskSocket::bind_rx_tx(umem, RX_COUNT, &iface.socket_config(opts.queue, opts.bind_mode, &knobs), wait_for_busy_queue)
            .map_err(|e| socket_error(&iface.name, e))?;
    steering.register(opts.queue, &sock)?;
    let frames = sock.umem_mut().frames_mut();
    let headers: Vec<Frame> = std::iter::from_fn(|| frames.alloc(HEADERS)).collect();
    let blocks: Vec<Frame> = std::iter::from_fn(|| frames.alloc(BLOCKS)).collect();
    let mut fill: Vec<Frame> = std::iter::from_fn(|| frames.alloc(RX_FRAMES)).collect();
    sock.umem_mut().fill(&mut fill).map_err(|e| anyhow!(e))?;
    let mut buf = SendBuffer::new(blocks, BLOCK, len, align.unwrap_or(1), reader);
    let mut link = Link {
        steering,
        sock,
        rx,
        tx,
        headers,
        refill: fill,
        got: Vec::with_capacity(64),
        src_mac: iface.mac,
        dst_mac,
        local,
        peer: to,
        checksum: ChecksumCounts { tx_mode: "software", ..Default::default() },
        foreign: 0,
        peer_bytes: 0,
        in_flight: 0,
    };
    let ip_tcp = if to.is_ipv4() { 40 } else { 60 };
    let mss = (iface.mtu as usize).saturating_sub(ip_tcp).min(u16::MAX as usize) as u16;
    let mut c = Config::new(local.port(), to.port(), mss, random_iss());
    c.min_rto = opts.min_rto;
    c.syn_retries = opts.syn_retries;
    c.time_wait = Duration::from_millis(100);
    log::info!("af-xdp-tcp: {local} -> {to} on {} queue {}, MSS {mss}, {len} bytes", iface.name, opts.queue);
    let usage0 = crate::sys::rusage::self_usage();
    let t0 = Instant::now();
    let mut conn = Connection::connect(c, t0);
    conn.close_after(len);
    let result = run(&mut conn, &mut link, &mut buf, len);
    let seconds = t0.elapsed().as_secs_f64();
    let usage = crate::sys::rusage::self_usage();
    drop(holder);
    result.map_err(|e| match e.downcast_ref::<TcpError>() {
        Some(TcpError::NoAnswer { syns }) => anyhow!("no answer from {to} after {syns} SYNs"),
        Some(TcpError::Refused) => anyhow!("connection refused by {to}"),
        Some(t) => anyhow!("{to}: {t}"),
        None => e,
    })?;
    Ok(TcpSendReport {
        mode: "af-xdp-tcp",
        local,
        peer: to,
        iface: iface.name.clone(),
        bytes: len,
        seconds,
        gbit_per_s: len as f64 * 8.0 / seconds.max(1e-9) / 1e9,
        mss: conn.mss(),
        o_direct: align.is_some(),
        zerocopy: link.sock.is_zerocopy(),
        xdp_mode: link.steering.mode.name(),
        tcp: conn.stats(),
        checksum: link.checksum.clone(),
        foreign_frames: link.foreign,
        peer_bytes: link.peer_bytes,
        cpu_user_s: (usage.user - usage0.user).as_secs_f64(),
        cpu_sys_s: (usage.system - usage0.system).as_secs_f64(),
    })
}

/// The loop: reads in, segments in, segments out, until done or failed.
fn run(conn: &mut Connection, link: &mut Link, buf: &mut SendBuffer, len: u64) -> Result<()> {
    let mut last_progress = (Instant::now(), 0u64);
    loop {
        let now = Instant::now();
        if crate::interrupt::requested() {
            // Tell the peer, so it does not wait for bytes that will not come.
            conn.abort();
            if let Some(t) = conn.poll_transmit(now, |off| buf.limit(off)) {
                link.reclaim();
                if !link.headers.is_empty() && link.tx.free(1) >= 1 {
                    link.transmit(&t, buf)?;
                    link.tx.kick()?;
                }
            }
            bail!("interrupted: {} of {len} bytes acknowledged; the peer was sent a reset", conn.acked_bytes());
        }
        let frames = link.sock.umem_mut().frames_mut();
        buf.reap(frames, Duration::ZERO)?;
        buf.release(conn.acked_bytes(), frames);
        buf.fill(frames)?;
        conn.set_available(buf.available(conn.acked_bytes()));
        let got = link.receive(conn, now)?;
        link.reclaim();
        let frames = link.sock.umem_mut().frames_mut();
        buf.release(conn.acked_bytes(), frames);
        let mut sent = 0;
        while !link.headers.is_empty() && link.tx.free(4) >= 4 {
            let Some(t) = conn.poll_transmit(now, |off| buf.limit(off)) else { break };
            link.transmit(&t, buf)?;
            sent += 1;
            if t.why == Why::Rst {
                break;
            }
        }
        if sent > 0 || link.tx.pending() > 0 {
            link.tx.kick()?;
        }
        if let Some(e) = conn.error() {
            return Err(anyhow::Error::new(e.clone()));
        }
        if conn.is_done() && conn.state() == State::Closed {
            return Ok(());
        }
        if conn.acked_bytes() > last_progress.1 {
            last_progress = (now, conn.acked_bytes());
        } else if now.duration_since(last_progress.0) > STALL {
            bail!("no progress for {} s: {} of {len} bytes acknowledged", STALL.as_secs(), conn.acked_bytes());
        }
        if got == 0 && sent == 0 {
            // Idle: wait for the peer, a timer or a read, at most a millisecond.
            let wait = conn.poll_deadline().map_or(Duration::from_millis(1), |d| d.saturating_duration_since(now));
            let ms = wait.min(Duration::from_millis(1)).as_millis() as i32;
            if buf.reads_in_flight() > 0 {
                let frames = link.sock.umem_mut().frames_mut();
                buf.reap(frames, Duration::from_micros(200))?;
            } else {
                crate::sys::socket::poll_one(&link.sock, libc::POLLIN, ms.max(if wait.is_zero() { 0 } else { 1 }))?;
            }
        }
    }
}
