//! `recv --mode af-xdp-tcp`: zclab's own TCP takes a stream on an AF_XDP
//! socket and writes it to the file from the UMEM frames it landed in.
//!
//! ```text
//! peer's segment --veth--> XDP program (segments to the port) --> RX frame (4096)
//!   in order:        pwritev(file, [payload in frame, payload in frame, ...]) --> fill ring
//!   ahead of a hole: kept in its frame (never copied), written when the hole fills
//! our ACKs (every second full segment, at once around a hole, with SACK blocks)
//!   <-- TX ring: a header frame each; the window = the frames free x the MSS
//! ```
//! The state machine is `crate::tcp`'s, the socket and its XDP program the
//! sender's (`send::af_xdp_tcp::link`): passive open with MSS, window scale
//! and SACK-permitted; a kernel socket holds the port, so no other program
//! takes it. The MSS this end advertises fits one frame, so a peer's segment
//! is never a multi-buffer packet (a kernel peer toward a veth with an XDP
//! program sends no GSO super-packets). The window follows the frames that
//! are free: a peer that outruns the disk, or a hole that holds many frames,
//! closes it, and the peer waits instead of losing segments. After the
//! peer's FIN this end closes its own, so a sender that shut its writing
//! side and waits for the close returns.

pub use crate::report::AfXdpTcpRx;
use crate::send::af_xdp_tcp::buffer::SendBuffer;
use crate::send::af_xdp_tcp::link::{Bind, Link, BLOCK};
use crate::send::af_xdp_tcp::{config, TcpXdpOptions};
use crate::tcp::{Connection, State, TcpError};
use crate::transfer::af_xdp::Iface;
use crate::xsk::RxFrame;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

/// Receive frames: the most the window can count on (4096 frames of 4 KiB,
/// 16 MiB of UMEM; at MTU 1500 a window of about 5.6 MiB, as far as Linux's
/// own receive buffer grows by default).
pub const RX_FRAMES: u32 = 4096;
/// Frames kept out of the window's count: the RX ring may hold frames the
/// loop has not seen yet, and a peer may send segments shorter than the MSS.
const MARGIN: u32 = 256;
/// The delayed ACK's longest wait: Linux's least (TCP_DELACK_MIN, 40 ms);
/// RFC 1122 allows up to 500 ms. A stream in order is acknowledged every
/// second full segment long before that.
pub const DELAYED_ACK: Duration = Duration::from_millis(40);
/// The kernel's headroom in front of every received frame (XDP_PACKET_HEADROOM).
const XDP_HEADROOM: u32 = 256;

/// A receiving end set up before any peer comes: the port held, the
/// socket bound, the XDP program steering the port's segments to it.
pub struct TcpReceiver {
    // Field order is drop order: the link (program, socket) before the port's holder.
    link: Link,
    iface: Iface,
    /// A kernel socket bound to the port and never listening: no other program takes it.
    _port: std::os::fd::OwnedFd,
    local: SocketAddr,
    opts: TcpXdpOptions,
}

/// A frame kept: its segment's bytes, and how many pieces of it wait (held ahead, or to be written).
struct Kept {
    frame: RxFrame,
    refs: u32,
}

/// Kept frames, by slot.
#[derive(Default)]
struct Slots {
    slots: Vec<Option<Kept>>,
    free: Vec<usize>,
    used: u32,
    peak: u32,
}

impl Slots {
    fn keep(&mut self, frame: RxFrame, refs: u32) -> usize {
        self.used += 1;
        self.peak = self.peak.max(self.used);
        let k = Some(Kept { frame, refs });
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = k;
                i
            }
            None => {
                self.slots.push(k);
                self.slots.len() - 1
            }
        }
    }

    fn bytes<'u>(&self, slot: usize, frames: &'u crate::xsk::Frames) -> &'u [u8] {
        self.slots[slot].as_ref().expect("a kept slot").frame.bytes(frames)
    }

    /// One piece of `slot` is done with: its frame, if that was the last.
    fn release(&mut self, slot: usize) -> Option<RxFrame> {
        let k = self.slots[slot].as_mut().expect("a kept slot");
        k.refs -= 1;
        if k.refs > 0 {
            return None;
        }
        self.used -= 1;
        self.free.push(slot);
        self.slots[slot].take().map(|k| k.frame)
    }

    fn drain(&mut self) -> impl Iterator<Item = RxFrame> + '_ {
        self.used = 0;
        self.free.clear();
        self.slots.drain(..).flatten().map(|k| k.frame)
    }
}

/// A piece of a kept frame: `len` bytes at `at` in its segment's frame bytes.
#[derive(Clone, Copy)]
struct Piece {
    slot: usize,
    at: usize,
    len: usize,
}

impl TcpReceiver {
    /// Holds `listen`'s port and sets up the socket behind the XDP program.
    pub fn open(listen: SocketAddr, opts: &TcpXdpOptions) -> Result<TcpReceiver> {
        let (holder, local) =
            crate::sys::socket::hold_tcp_port(listen).with_context(|| format!("binding {listen} (is the port taken?)"))?;
        let iface = Iface::find(opts.iface.as_deref(), local.ip())?;
        let mut bind = Bind::new(&iface, opts, local);
        bind.rx_frames = RX_FRAMES;
        let link = Link::open(&bind)?;
        log::info!("af-xdp-tcp receiver on {local} ({} queue {})", iface.name, opts.queue);
        Ok(TcpReceiver { link, iface, _port: holder, local, opts: opts.clone() })
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The largest payload this end takes in one segment: the interface's
    /// MTU less the headers, and what fits one receive frame.
    pub fn mss(&self, v4: bool) -> u16 {
        let ip_tcp = if v4 { 40 } else { 60 };
        // The peer's options (SACK blocks, up to 40 bytes) ride in the frame too.
        let frame = crate::transfer::af_xdp::CHUNK - XDP_HEADROOM - 14 - ip_tcp - 40;
        (self.iface.mtu - ip_tcp).min(frame).min(u16::MAX as u32) as u16
    }

    /// Waits (up to `accept`, or for ever) for a connection from `from`
    /// (None: anyone), writes its stream into `out` until the peer's FIN,
    /// closes this end and returns once the peer acknowledged that. `idle`:
    /// how long the peer may stay silent.
    pub fn take(&mut self, out: &File, from: Option<IpAddr>, accept: Option<Duration>, idle: Duration) -> Result<AfXdpTcpRx> {
        let deadline = accept.map(|t| Instant::now() + t);
        let (peer, mac, syn) = loop {
            crate::interrupt::check()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                bail!("no sender connected to {} within the time allowed", self.local);
            }
            match self.link.wait_syn(Duration::from_millis(200))? {
                Some((peer, mac, syn)) if from.is_none_or(|ip| ip == peer.ip()) => break (peer, mac, syn),
                Some((peer, ..)) => log::warn!("a SYN from {peer}, not the sender's host: ignored"),
                None => {}
            }
        };
        self.link.steer(Some(peer))?;
        self.link.dst_mac = mac;
        let mut c = config(&self.iface, self.local.port(), peer, &self.opts);
        c.mss = c.mss.min(self.mss(peer.is_ipv4()));
        c.delayed_ack = Some(DELAYED_ACK);
        c.recv_window = (RX_FRAMES - MARGIN) * c.mss as u32;
        c.time_wait = Duration::from_millis(100);
        log::info!("af-xdp-tcp receiver: a connection from {peer}, MSS {}", c.mss);
        let usage0 = crate::sys::rusage::self_usage();
        let t0 = Instant::now();
        let mut conn = Connection::accept(c, &syn, t0).ok_or_else(|| anyhow!("the SYN from {peer} was not a plain SYN"))?;
        let mut slots = Slots::default();
        let result = self.run(&mut conn, &mut slots, out, idle);
        let seconds = t0.elapsed().as_secs_f64();
        let usage = crate::sys::rusage::self_usage();
        let frames: Vec<RxFrame> = slots.drain().collect();
        self.link.give_back_rx(frames)?;
        let writes = result.map_err(|e| match e.downcast_ref::<TcpError>() {
            Some(TcpError::Reset { .. }) => {
                anyhow!("the sender {peer} reset the connection after {} bytes had arrived in order", conn.received_bytes())
            }
            Some(t) => anyhow!("{peer}: {t}"),
            None => e,
        })?;
        let bytes = conn.received_bytes();
        let link = &self.link;
        Ok(AfXdpTcpRx {
            mode: "af-xdp-tcp".into(),
            local: self.local,
            peer,
            bytes,
            seconds,
            gbit_per_s: bytes as f64 * 8.0 / seconds.max(1e-9) / 1e9,
            iface: self.iface.name.clone(),
            zerocopy: link.is_zerocopy(),
            xdp_mode: link.xdp_mode().to_string(),
            mss: conn.mss(),
            tcp: conn.stats(),
            checksum: link.checksum.clone(),
            foreign_frames: link.foreign,
            held_frames_peak: slots.peak,
            writes,
            syscalls: link.syscalls,
            cpu_user_s: (usage.user - usage0.user).as_secs_f64(),
            cpu_sys_s: (usage.system - usage0.system).as_secs_f64(),
        })
    }

    /// The connection's loop; returns the `pwritev` calls it made.
    fn run(&mut self, conn: &mut Connection, slots: &mut Slots, out: &File, idle: Duration) -> Result<u64> {
        let link = &mut self.link;
        let bare = SendBuffer::new(Vec::new(), BLOCK, 1);
        let mss = conn.mss();
        let mut held: BTreeMap<u64, Piece> = BTreeMap::new();
        let mut writes: Vec<(u64, Piece)> = Vec::with_capacity(128);
        let mut store = super::writer::IovStore::default();
        let (mut written, mut calls) = (0u64, 0u64);
        let mut closing = false;
        let mut last_heard = Instant::now();
        loop {
            let now = Instant::now();
            if crate::interrupt::requested() {
                conn.abort();
                if let Some(t) = conn.poll_transmit(now, |_| 0) {
                    link.reclaim();
                    if link.has_room() {
                        link.transmit(&t, &bare)?;
                        link.kick()?;
                    }
                }
                bail!("interrupted after {} bytes; the sender was sent a reset", conn.received_bytes());
            }
            let got = link.receive_keeping(conn, now, |frame, f, inc| {
                let mine = inc.data.map_or(0, |d| (d.1 > 0) as u32) + inc.ahead.len() as u32;
                let (slot, back) = if mine > 0 { (Some(slots.keep(frame, mine)), None) } else { (None, Some(frame)) };
                if let (Some((skip, len)), Some(slot)) = (inc.data, slot) {
                    if len > 0 {
                        writes.push((written, Piece { slot, at: f.payload_at + skip, len }));
                        written += len as u64;
                    }
                }
                for &(off, skip, len) in &inc.ahead {
                    let slot = slot.expect("a kept slot for what is held");
                    held.insert(off, Piece { slot, at: f.payload_at + skip, len });
                }
                if let Some((from, to)) = inc.released {
                    debug_assert_eq!(from, written);
                    while let Some(entry) = held.first_entry().filter(|e| *e.key() < to) {
                        let (off, p) = entry.remove_entry();
                        writes.push((off, p));
                    }
                    written = to;
                }
                // Not kept: given back to the fill ring now.
                back
            })?;
            if got > 0 {
                last_heard = now;
            }
            if !writes.is_empty() {
                calls += write_out(out, link.frames_ref(), slots, &writes, &mut store)?;
                let back: Vec<RxFrame> = writes.drain(..).filter_map(|(_, p)| slots.release(p.slot)).collect();
                link.give_back_rx(back)?;
            }
            if conn.peer_closed() && !closing {
                // Every byte is in the file: this end closes too.
                closing = true;
                conn.close_after(0);
            }
            let room = (RX_FRAMES - MARGIN).saturating_sub(slots.used);
            conn.set_recv_window(room as u64 * mss as u64);
            link.reclaim();
            let sent = link.send_due(conn, now, &bare)?;
            if let Some(e) = conn.error() {
                return Err(anyhow::Error::new(e.clone()));
            }
            if conn.is_done() && conn.state() == State::Closed {
                return Ok(calls);
            }
            if now.duration_since(last_heard) > idle {
                bail!("the sender went silent for {:.0} s after {} bytes", idle.as_secs_f64(), conn.received_bytes());
            }
            if got == 0 && sent == 0 {
                let wait = conn.poll_deadline().map_or(Duration::from_millis(1), |d| d.saturating_duration_since(now));
                if !wait.is_zero() {
                    link.wait(wait.min(Duration::from_millis(1)).as_millis().max(1) as i32)?;
                }
            }
        }
    }
}

/// Writes `writes` (in stream order) into `out` from their frames: a run of
/// consecutive pieces per `pwritev`. Returns the calls.
fn write_out(
    out: &File,
    frames: &crate::xsk::Frames,
    slots: &Slots,
    writes: &[(u64, Piece)],
    store: &mut super::writer::IovStore,
) -> Result<u64> {
    let mut w = super::writer::RunWriter::new(out, store);
    for &(off, p) in writes {
        let bytes = slots.bytes(p.slot, frames);
        w.push(off, &bytes[p.at..p.at + p.len]).map_err(no_room)?;
    }
    w.flush().map_err(no_room)?;
    Ok(w.syscalls)
}

fn no_room(e: std::io::Error) -> anyhow::Error {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        anyhow!("no room left on the output's file system ({e})")
    } else {
        anyhow::Error::new(e).context("writing the output file")
    }
}

/// What `recv --plain --mode af-xdp-tcp` did: the connection, and the file.
#[derive(Debug, Clone, Serialize)]
pub struct PlainRecvReport {
    #[serde(flatten)]
    pub conn: AfXdpTcpRx,
    /// BLAKE3 of the file as written, read back after the connection closed.
    pub hash: String,
    pub expected_hash: Option<String>,
    /// Whether the hash is the one expected (None: none was given; a plain sender announces none).
    pub verified: Option<bool>,
    /// Where the file is (kept unless a hash was expected and it differs).
    pub out: Option<String>,
    /// The file's bytes in the page cache when the command ended (after the hash).
    pub out_cached_after_bytes: Option<u64>,
}

impl PlainRecvReport {
    pub fn text(&self) -> String {
        let verdict = match self.verified {
            Some(true) => "the expected hash: verified".to_string(),
            Some(false) => format!("NOT the expected {}: the file was not kept", self.expected_hash.as_deref().unwrap_or("")),
            None => "no hash was expected (a plain sender announces none)".to_string(),
        };
        format!("{}  BLAKE3 {}: {verdict}\n  file: {}\n", self.conn.text(), self.hash, self.out.as_deref().unwrap_or("(removed)"))
    }
}

/// `recv --plain --mode af-xdp-tcp`: one connection from any TCP sender
/// (nc, socat, `zclab send --plain`), its bytes until the FIN into `out`.
/// The file is written beside `out` and renamed to it once the stream ended
/// by a FIN (and, given `expect`, hashed to it).
pub fn receive_plain(
    listen: SocketAddr,
    out: &Path,
    opts: &TcpXdpOptions,
    accept: Option<Duration>,
    idle: Duration,
    expect: Option<String>,
) -> Result<PlainRecvReport> {
    let partial = super::PartialFile::create(out).with_context(|| format!("cannot create a file beside {}", out.display()))?;
    let mut rx = TcpReceiver::open(listen, opts)?;
    let conn = rx.take(partial.file(), None, accept, idle)?;
    drop(rx);
    let (hash, _, _) = crate::transfer::hash::hash_file_with(&partial.path, None, false).context("hashing the received file")?;
    let verified = expect.as_ref().map(|e| e.eq_ignore_ascii_case(&hash));
    let out_cached_after_bytes = crate::sys::file::cached_bytes(partial.file()).ok();
    let kept = verified != Some(false);
    if kept {
        partial.persist(out).with_context(|| format!("renaming the received file to {}", out.display()))?;
    }
    Ok(PlainRecvReport {
        conn,
        hash,
        expected_hash: expect,
        verified,
        out: kept.then(|| out.display().to_string()),
        out_cached_after_bytes,
    })
}
