//! The sending end: connect, announce, stream the file by one data path,
//! then prove what was sent (hash) and hear the receiver's verdict.
//!
//! Each data path is one short file named after its syscall. They all
//! receive the same [`Stream`]: the open file, its size, the connected TCP
//! socket (blocking, with a short send timeout so loops can notice Ctrl-C
//! and a stalled peer), the chunk size, and the watchdog.

pub mod af_xdp;
pub mod af_xdp_tcp;
pub mod io_uring_zc;
pub mod mmap_write;
pub mod msg_zerocopy;
pub mod packets;
pub mod read_write;
pub mod sendfile;
pub mod splice;
pub mod udp_gso;

use crate::metrics::{self, CostMeter, PacketStats, ZerocopyStats};
use crate::report::SendReport;
use crate::report::{AfXdpTcpTx, AfXdpTx};
use crate::sys;
use crate::trace::Testimony;
use crate::transfer::auth;
use crate::transfer::control::{self, recv_msg, send_msg, Msg};
use crate::transfer::{hash, Mode, Watchdog, IO_TICK};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a send path reports back: its syscall count and, for the zero-copy
/// paths, the kernel's verdict; for packet paths, the packet counts.
#[derive(Debug, Clone, Default)]
pub struct DataPath {
    pub syscalls: u64,
    pub zerocopy: Option<ZerocopyStats>,
    pub packets: Option<PacketStats>,
    /// The AF_XDP sender's view (af-xdp only).
    pub af_xdp: Option<AfXdpTx>,
    /// zclab's own TCP's view (af-xdp-tcp only).
    pub af_xdp_tcp: Option<AfXdpTcpTx>,
    /// When the data path was done, if it lingered after that (af-xdp-tcp's
    /// TIME-WAIT, which answers a FIN sent again and moves no data).
    pub done: Option<Instant>,
}

/// A validated `zclab send`.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub to: SocketAddr,
    pub file: PathBuf,
    pub mode: Mode,
    pub chunk: usize,
    /// How long the receiver may stay silent before we give up.
    pub timeout: Duration,
    /// Evict the file from the page cache before sending (a cold-cache run).
    pub cold: bool,
    /// Interface, queue and bind mode of the af-xdp path.
    pub af_xdp: af_xdp::AfXdpOptions,
    /// The af-xdp-tcp path's socket and TCP settings.
    pub tcp: af_xdp_tcp::TcpXdpOptions,
    /// Count what the kernel did during the timed part (tracepoints).
    pub trace: bool,
    /// The zero-copy paths' sending depth and buffers.
    pub zc: ZcOptions,
    /// The shared key (`--key`): prove it, check the receiver's proof, hash keyed.
    pub key: Option<crate::transfer::auth::Key>,
}

/// How msg-zerocopy and io-uring-zc send (`--in-flight`, `--fixed-buffers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZcOptions {
    /// msg-zerocopy: sends whose pages the kernel has not released before
    /// the sender waits (None: until the kernel refuses with ENOBUFS).
    /// io-uring-zc: sends submitted at once as one linked chain (None: 1).
    pub in_flight: Option<u32>,
    /// io-uring-zc: register the file's mapping as fixed buffers.
    pub fixed_buffers: bool,
}

impl ZcOptions {
    /// Refuses an option the mode does not have.
    pub fn check(&self, mode: Mode) -> Result<()> {
        if self.in_flight.is_some() && !matches!(mode, Mode::MsgZerocopy | Mode::IoUringZc) {
            bail!("--in-flight is for msg-zerocopy and io-uring-zc, not {mode}");
        }
        if self.in_flight == Some(0) {
            bail!("--in-flight must be at least 1");
        }
        if self.fixed_buffers && mode != Mode::IoUringZc {
            bail!("--fixed-buffers is for io-uring-zc, not {mode}");
        }
        Ok(())
    }

    /// The options as `zclab send` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(n) = self.in_flight {
            v.extend(["--in-flight".to_string(), n.to_string()]);
        }
        if self.fixed_buffers {
            v.push("--fixed-buffers".into());
        }
        v
    }
}

/// What every data path gets.
pub struct Stream<'a> {
    pub file: &'a File,
    pub size: u64,
    pub sock: &'a TcpStream,
    pub chunk: usize,
    pub wd: Watchdog,
    /// What the receiver announced in its Ready.
    pub peer: packets::PeerReady,
    pub zc: ZcOptions,
}

impl Stream<'_> {
    /// A read-only mapping of the file (None when it is empty); an error if
    /// the file is already shorter than announced (it shrank since).
    pub fn map_file(&self) -> io::Result<Option<memmap2::Mmap>> {
        let m = sys::file::map_readonly(self.file)?;
        self.check_mapped(m.as_ref().map_or(0, |m| m.len()))?;
        Ok(m)
    }

    /// A mapping of `len` bytes holds the whole announced file, or the file shrank.
    pub fn check_mapped(&self, len: usize) -> io::Result<()> {
        if (len as u64) < self.size {
            return Err(file_shrank(len as u64, self.size));
        }
        Ok(())
    }

    /// The next chunk's length when `done` bytes have been sent.
    pub fn next_len(&self, done: u64) -> usize {
        (self.size - done).min(self.chunk as u64) as usize
    }

    /// `write()` all of `buf` to the socket, one counted syscall per call.
    pub fn write_all_counted(&mut self, buf: &[u8], syscalls: &mut u64) -> io::Result<()> {
        let mut off = 0;
        while off < buf.len() {
            *syscalls += 1;
            match (&mut &*self.sock).write(&buf[off..]) {
                Ok(0) => return Err(peer_closed()),
                Ok(n) => {
                    off += n;
                    self.wd.progress()?;
                }
                Err(e) if Watchdog::is_idle_error(&e) => self.wd.idle()?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn peer_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the receiver closed the connection")
}

/// The file shrank while we were sending it.
pub(crate) fn file_shrank(done: u64, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the file ended after {done} of {size} bytes: was it truncated while being sent?"),
    )
}

/// The packet paths' data sockets, set up before the Hello (so not timed):
/// what the data path needs, the payload per packet (or bytes per call),
/// and the route's MTU.
fn set_up_packets(cfg: &SendConfig, sock: &TcpStream) -> Result<(PacketSetup, usize, Option<u32>)> {
    Ok(match cfg.mode {
        Mode::UdpGso => {
            let u = udp_gso::UdpPath::connect(cfg.to).context("setting up the UDP data socket")?;
            let (payload, mtu) = (u.payload as usize, u.mtu);
            (PacketSetup::Udp(u), payload, Some(mtu))
        }
        Mode::AfXdp => {
            let p = af_xdp::XdpPath::prepare(&cfg.file, sock, &cfg.af_xdp).context("setting up the AF_XDP path")?;
            let (payload, mtu) = (p.payload as usize, p.mtu());
            (PacketSetup::Xdp(Box::new(p)), payload, Some(mtu))
        }
        Mode::AfXdpTcp => {
            let p = af_xdp_tcp::Prepared::open(cfg.to, &cfg.file, &cfg.tcp).context("setting up the af-xdp-tcp path")?;
            let (mss, mtu) = (p.mss() as usize, p.mtu());
            (PacketSetup::Tcp(Box::new(p)), mss, Some(mtu))
        }
        _ => (PacketSetup::None, cfg.chunk, None),
    })
}

/// Sends the Hello and, with a key, answers the challenge; the session's key.
fn say_hello(
    cfg: &SendConfig,
    sock: &TcpStream,
    wd: &mut Watchdog,
    (size, chunk, id): (u64, u64, u32),
    (queues, direct_payload): (Option<u32>, Option<u64>),
) -> Result<Option<[u8; 32]>> {
    let nonce = cfg.key.as_ref().map(|_| auth::nonce()).transpose()?;
    let hello = Msg::Hello { mode: cfg.mode, size, chunk, transfer_id: id as u64, nonce: nonce.clone(), queues, direct_payload };
    send_msg(&mut &*sock, &hello, wd)?;
    match (&cfg.key, &nonce) {
        (Some(k), Some(ns)) => {
            let hello = auth::hello_bytes(cfg.mode.name(), size, chunk, id as u64);
            Ok(Some(answer_challenge(sock, wd, k, ns, hello)?))
        }
        _ => Ok(None),
    }
}

/// A data path's error with its cause: after a reset or a broken pipe the
/// receiver may have said why first; otherwise what the error itself means.
fn data_path_failed(e: io::Error, mode: Mode, sock: &TcpStream, file: &File, size: u64) -> anyhow::Error {
    let may_have_said = !matches!(e.kind(), io::ErrorKind::NetworkDown | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted);
    match may_have_said.then(|| control::failure_waiting(sock, "the receiver")).flatten() {
        Some(why) => anyhow::anyhow!(why).context(format!("{mode} failed ({e})")),
        None => explain_data_error(e, mode, file, size).context(format!("{mode} failed")),
    }
}

/// The receiver's verdict: its hash, whether it verified, and why not.
fn hear_verdict(sock: &TcpStream, wd: &mut Watchdog, size: u64) -> Result<(Option<String>, bool, Option<String>)> {
    match recv_msg(&mut &*sock, wd)? {
        Some(Msg::Verdict { hash, verified, reason, bytes }) => {
            let reason = reason.or_else(|| (bytes != size).then(|| format!("receiver got {bytes} of {size} bytes")));
            Ok((Some(hash), verified && bytes == size, reason))
        }
        Some(other) => bail!("the receiver answered {other:?} where Verdict was expected"),
        None => bail!("the receiver closed the connection before its verdict"),
    }
}

/// With a key: checks the receiver's proof, sends ours; the session's key.
fn answer_challenge(sock: &TcpStream, wd: &mut Watchdog, key: &auth::Key, ns: &str, hello: Vec<u8>) -> Result<[u8; 32]> {
    let (nr, proof) = match recv_msg(&mut &*sock, wd)? {
        Some(Msg::Challenge { nonce, proof }) => (nonce, proof),
        Some(other) => bail!("the receiver answered {other:?} where a challenge was expected (does it have a --key?)"),
        None => bail!("the receiver closed the connection instead of answering the key's challenge"),
    };
    if !auth::Key::check(&key.receiver_proof(ns.as_bytes(), nr.as_bytes(), &hello), &proof) {
        bail!("the receiver's proof of the key is wrong: the two ends have different keys; nothing was sent");
    }
    send_msg(&mut &*sock, &Msg::Proof { proof: key.sender_proof(ns.as_bytes(), nr.as_bytes(), &hello) }, wd)?;
    Ok(key.session(ns.as_bytes(), nr.as_bytes()))
}

/// The local interface the connection leaves by, to watch while waiting.
fn link_to(sock: &TcpStream) -> Option<sys::iface::LinkWatch> {
    let name = sys::iface::iface_with_addr(sock.local_addr().ok()?.ip()).ok()??;
    sys::iface::LinkWatch::new(&name).map_err(|e| log::debug!("not watching {name}: {e}")).ok()
}

/// Opens the file to send without ever blocking: a FIFO would block in
/// `open()` until a writer came (deaf to Ctrl-C), so it opens with
/// `O_NONBLOCK`, then insists on a regular file and clears the flag.
fn open_source(path: &std::path::Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot open the file to send, {}", path.display()))?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO (a pipe has no size to announce and no pages to map)"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        bail!("{} is {what}: zclab sends regular files", path.display());
    }
    sys::file::set_nonblocking(&file, false)?;
    Ok(file)
}

/// A data path's error, explained where the cause is known. A file that
/// is now shorter than announced shrank while being sent: the paths that
/// hand the kernel a mapping then see EFAULT (or a short send), since the
/// mapping's pages past the new end are gone.
fn explain_data_error(e: io::Error, mode: Mode, file: &File, size: u64) -> anyhow::Error {
    let now = file.metadata().map(|m| m.len()).unwrap_or(size);
    if now < size && e.kind() != io::ErrorKind::UnexpectedEof {
        return anyhow::anyhow!(
            "{e}: the file shrank from {size} to {now} bytes while being sent (truncated?){}",
            if e.raw_os_error() == Some(libc::EFAULT) { ", and the mapping's pages past its new end are gone" } else { "" }
        );
    }
    if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) {
        return anyhow::anyhow!("{e}: the receiver is gone (it died, was stopped, or closed the connection)");
    }
    let maps = matches!(mode, Mode::MmapWrite | Mode::MsgZerocopy | Mode::IoUringZc | Mode::UdpGso);
    if maps && e.raw_os_error() == Some(libc::EFAULT) {
        return anyhow::anyhow!("{e}: the kernel could not read the mapped file (did it shrink while being sent?)");
    }
    e.into()
}

/// Connects, retrying a refused connection (the receiver may be starting)
/// until `timeout`.
fn connect(to: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    loop {
        crate::interrupt::check()?;
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        match TcpStream::connect_timeout(&to, left.min(Duration::from_secs(1))) {
            Ok(s) => return Ok(s),
            Err(e)
                if Instant::now() < deadline
                    && matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut) =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                let hint = match e.kind() {
                    io::ErrorKind::ConnectionRefused => {
                        "nothing listens there: start `zclab recv --listen ADDR` on the receiving side first"
                    }
                    io::ErrorKind::TimedOut => "no answer: is the address right, and is the network (or `zclab env up`) there?",
                    _ if e.raw_os_error() == Some(libc::ENETUNREACH) => {
                        "no route to that network from here: wrong namespace? (use --netns or `ip netns exec`)"
                    }
                    _ => "check the address and the network",
                };
                bail!("cannot reach a receiver at {to} within {:.0} s: {e}; {hint}", timeout.as_secs_f64());
            }
        }
    }
}

/// What a packet path set up before the Hello.
enum PacketSetup {
    None,
    Udp(udp_gso::UdpPath),
    Xdp(Box<af_xdp::XdpPath>),
    Tcp(Box<af_xdp_tcp::Prepared>),
}

/// Runs one data path.
fn stream(mode: Mode, s: &mut Stream, setup: PacketSetup, to: SocketAddr, transfer_id: u32) -> io::Result<DataPath> {
    match (mode, setup) {
        (Mode::ReadWrite, _) => read_write::send(s),
        (Mode::MmapWrite, _) => mmap_write::send(s),
        (Mode::Sendfile, _) => sendfile::send(s),
        (Mode::Splice, _) => splice::send(s),
        (Mode::MsgZerocopy, _) => msg_zerocopy::send(s),
        (Mode::IoUringZc, _) => io_uring_zc::send(s),
        (Mode::UdpGso, PacketSetup::Udp(u)) => udp_gso::send(s, &u, transfer_id),
        (Mode::AfXdp, PacketSetup::Xdp(p)) => af_xdp::send(s, *p, to, transfer_id),
        (Mode::AfXdpTcp, PacketSetup::Tcp(p)) => {
            let port = s
                .peer
                .data_port
                .ok_or_else(|| io::Error::other("the receiver named no port for the data connection (is it an older zclab?)"))?;
            let r = p.run(SocketAddr::new(to.ip(), port)).map_err(|e| io::Error::other(format!("{e:#}")))?;
            Ok(DataPath { syscalls: r.path.syscalls, done: r.done, af_xdp_tcp: Some(r.path), ..Default::default() })
        }
        (Mode::UdpGso | Mode::AfXdp | Mode::AfXdpTcp, _) => unreachable!("packet paths are set up before the Hello"),
    }
}

/// What `send --plain` by a kernel path did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlainReport {
    pub mode: &'static str,
    pub peer: SocketAddr,
    pub bytes: u64,
    pub seconds: f64,
    pub gbit_per_s: f64,
    /// The data path's own calls (as in every report).
    pub syscalls: u64,
    pub zerocopy: Option<ZerocopyStats>,
    /// Bytes the peer sent before it closed (a plain sink sends none).
    pub peer_bytes: u64,
}

impl PlainReport {
    pub fn text(&self) -> String {
        format!(
            "{}: {} bytes to {} in {:.3} s: {:.2} Gbit/s ({} data-path calls); the peer closed after {} bytes of its own\n",
            self.mode, self.bytes, self.peer, self.seconds, self.gbit_per_s, self.syscalls, self.peer_bytes
        )
    }
}

/// `send --plain` by one of the kernel's TCP paths: connect to any listener,
/// the file's bytes by that path, FIN (the writing side shut), then wait for
/// the peer to close. No Hello, no hash: the peer is not zclab.
pub fn send_plain(
    mode: Mode,
    to: SocketAddr,
    path: &std::path::Path,
    chunk: usize,
    zc: ZcOptions,
    timeout: Duration,
) -> Result<PlainReport> {
    if matches!(mode, Mode::UdpGso | Mode::AfXdp) {
        bail!("--plain sends over TCP: --mode {} is a packet path of zclab's own protocol", mode.name());
    }
    if mode == Mode::AfXdpTcp {
        bail!("send::send_plain is the kernel's TCP; af-xdp-tcp sends by send::af_xdp_tcp::send_plain");
    }
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    // Retried while refused: a receiver may be starting (zclab's TCP receiver steers the port only once its socket is bound).
    let sock = connect(to, timeout)?;
    sock.set_write_timeout(Some(IO_TICK))?;
    sock.set_read_timeout(Some(IO_TICK))?;
    let t0 = Instant::now();
    let mut s = Stream {
        file: &file,
        size,
        sock: &sock,
        chunk,
        wd: Watchdog::new(timeout, "the peer"),
        peer: packets::PeerReady::default(),
        zc,
    };
    let dp = stream(mode, &mut s, PacketSetup::None, to, 0).with_context(|| format!("{} to {to}", mode.name()))?;
    sock.shutdown(std::net::Shutdown::Write)?;
    let peer_bytes = await_close(&sock, &mut Watchdog::new(timeout, "the peer"), to)?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(PlainReport {
        mode: mode.name(),
        peer: to,
        bytes: size,
        seconds,
        gbit_per_s: size as f64 * 8.0 / seconds.max(1e-9) / 1e9,
        syscalls: dp.syscalls,
        zerocopy: dp.zerocopy,
        peer_bytes,
    })
}

/// A transfer id unlikely to repeat: packets of an earlier transfer that
/// arrive late are told apart by it.
fn new_transfer_id() -> u32 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(16)) ^ std::process::id()
}

/// `zclab send`: the whole sending end.
pub fn send_file(cfg: &SendConfig) -> Result<SendReport> {
    let file = open_source(&cfg.file)?;
    let meta = file.metadata()?;
    let size = meta.len();
    if cfg.cold {
        sys::file::evict_from_cache(&file).context("cannot evict the file from the page cache")?;
    }
    let cached_before = sys::file::cached_bytes(&file).context("mincore of the source file")?;

    let sock = connect(cfg.to, cfg.timeout)?;
    sock.set_write_timeout(Some(IO_TICK))?;
    sock.set_read_timeout(Some(IO_TICK))?;
    log::info!("connected to {}; sending {} bytes by {}", cfg.to, size, cfg.mode);

    let (mut setup, mut chunk, mtu) = set_up_packets(cfg, &sock)?;
    let data_target = match (cfg.mode.is_packet_path(), cfg.to.ip()) {
        (true, std::net::IpAddr::V4(ip)) => Some((ip, cfg.to.port())),
        _ => None,
    };
    let mut testimony = Testimony::prepare(cfg.trace, data_target, Some(meta.ino()));
    let mut wd = Watchdog::new(cfg.timeout, "the receiver");
    if let Some(link) = link_to(&sock) {
        wd = wd.watch_link(link);
    }
    let transfer_id = new_transfer_id();
    let offer = match &setup {
        PacketSetup::Xdp(p) => (Some(p.queues()), p.direct_payload()),
        _ => (None, None),
    };
    let session = say_hello(cfg, &sock, &mut wd, (size, chunk as u64, transfer_id), offer)?;
    // The clock starts once the receiver is ready: its set-up (creating the
    // file, attaching an XDP program) is not the data path's cost.
    let peer = packets::await_ready(&sock, &mut wd)?;
    if let Some(want) = peer.chunk {
        // A receiver that writes with O_DIRECT asked for the payload offered.
        match &mut setup {
            PacketSetup::Xdp(p) => p.recut(want).context("the receiver's Ready")?,
            _ => bail!("the receiver asked for {want}-byte packets, which only af-xdp cuts"),
        }
        log::info!("the receiver writes with O_DIRECT: payloads of {want} bytes");
        chunk = want as usize;
    }
    testimony.start();
    let xdp_iface = cfg.af_xdp.iface.as_deref().filter(|_| cfg.mode == Mode::AfXdp);
    let link = crate::route::LinkMeter::start(xdp_iface, sock.local_addr()?.ip());
    let busy0 = metrics::all_cpu_busy_s();
    let meter = CostMeter::start();
    let t0 = Instant::now();
    // A receiver that takes the data by a TCP of its own names a port for it: a kernel path
    // then sends on a connection of its own there, shuts it and waits for the receiver to close.
    let data = match peer.data_port.filter(|_| !cfg.mode.is_packet_path() && !cfg.mode.has_data_connection()) {
        Some(port) => {
            let d = connect(SocketAddr::new(cfg.to.ip(), port), cfg.timeout).context("the data connection")?;
            d.set_write_timeout(Some(IO_TICK))?;
            d.set_read_timeout(Some(IO_TICK))?;
            Some(d)
        }
        None => None,
    };
    let mut s = Stream { file: &file, size, sock: data.as_ref().unwrap_or(&sock), chunk, wd: wd.clone(), peer, zc: cfg.zc };
    let path =
        stream(cfg.mode, &mut s, setup, cfg.to, transfer_id).map_err(|e| data_path_failed(e, cfg.mode, &sock, &file, size))?;
    if let Some(d) = &data {
        d.shutdown(std::net::Shutdown::Write)?;
        await_close(d, &mut wd, d.peer_addr()?)?;
    }
    let received = match recv_msg(&mut &sock, &mut wd)? {
        Some(Msg::Received { bytes }) => bytes,
        Some(other) => bail!("the receiver answered {other:?} where Received was expected"),
        None => bail!("the receiver closed the connection before confirming the data"),
    };
    let seconds = path.done.map_or_else(|| t0.elapsed(), |d| d.duration_since(t0)).as_secs_f64();
    let cost = meter.finish(path.syscalls);
    let all_cpu_s = busy0.zip(metrics::all_cpu_busy_s()).map(|(a, b)| b - a);
    let kernel = testimony.finish();
    let iface = link.as_ref().and_then(|l| l.finish());

    // The proof reads the file the way the transfer did: with O_DIRECT where the path read
    // it so (af-xdp), so that hashing does not fill the page cache the path bypassed.
    let direct = path.af_xdp.as_ref().is_some_and(|x| x.path.o_direct);
    let (hash, hash_time, _) = hash::hash_file_with(&cfg.file, session.as_ref(), direct).context("hashing the source file")?;
    // Measured when the command ends, after the hash: what the page cache holds then.
    let cached_after = sys::file::cached_bytes(&file)?;
    send_msg(&mut &sock, &Msg::Trailer { hash: hash.clone() }, &mut wd)?;
    let (peer_hash, verified, reason) = hear_verdict(&sock, &mut wd, size)?;
    Ok(SendReport {
        mode: cfg.mode,
        bytes: size,
        bytes_confirmed: received,
        seconds,
        gbit_per_s: metrics::gbit_per_s(size, seconds),
        verified,
        hash,
        peer_hash,
        hash_seconds: hash_time.as_secs_f64(),
        chunk_bytes: chunk as u64,
        mtu,
        packets: path.packets,
        af_xdp: path.af_xdp,
        af_xdp_tcp: path.af_xdp_tcp,
        cost,
        source_cached_before_bytes: cached_before,
        source_cached_after_bytes: cached_after,
        zerocopy: path.zerocopy,
        reason,
        kernel,
        all_cpu_s,
        cpu: sys::sched::pinned_cpu(),
        iface,
    })
}

/// After this end shut its writing side: reads until the peer closes
/// (the FIN that says it has every byte); returns the bytes it sent meanwhile.
fn await_close(sock: &TcpStream, wd: &mut Watchdog, to: SocketAddr) -> Result<u64> {
    let (mut peer_bytes, mut buf) = (0u64, [0u8; 4096]);
    loop {
        match std::io::Read::read(&mut &*sock, &mut buf) {
            Ok(0) => return Ok(peer_bytes),
            Ok(n) => {
                peer_bytes += n as u64;
                wd.progress()?;
            }
            Err(e) if Watchdog::is_idle_error(&e) => wd.idle()?,
            Err(e) => return Err(anyhow::Error::new(e).context(format!("waiting for {to} to close"))),
        }
    }
}
